//! The relay's signing key on PostgreSQL (SECURITY.md §6, Peers that cannot sign): one per
//! database, kept in `relay_meta`, so every instance vouches with the key counselors pin;
//! each working copy adopts it.

use alliance_core::authorship::DeviceKey;
use deadpool_postgres::GenericClient;

use crate::{PgStoreError, Result};

/// The database's relay key, made by the first instance that asks.
pub async fn load_or_make(client: &impl GenericClient) -> Result<DeviceKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| PgStoreError::Damaged(format!("no randomness: {e}")))?;
    let stored = crate::schema::meta_once(client, "relay_key", &hex::encode(seed)).await?;
    let bytes = hex::decode(stored).map_err(|_| PgStoreError::Damaged("the relay key".into()))?;
    Ok(DeviceKey::from_bytes(&bytes)?)
}
