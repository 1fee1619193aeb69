//! Numbered SQL migrations of the relay's PostgreSQL schema (`relay-pg/migrations/`), as the
//! SQLite store numbers its own: a shipped migration is never edited, a new file is added.

use deadpool_postgres::Client;
use deadpool_postgres::GenericClient;

use crate::{PgStoreError, Result};

/// Every migration, in order; migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[include_str!("../migrations/001_relay.sql")];

/// Any fixed number: the advisory lock instances take while migrating.
const MIGRATION_LOCK: i64 = 0x616c_6c69_616e_6365;

/// Brings the schema up to date in one transaction. Several instances starting at once take
/// turns (an advisory lock); a database migrated by a newer build is refused.
pub async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS relay_schema (version integer NOT NULL)")
        .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM relay_schema", &[])
        .await?
        .map(|row| row.get(0));
    let supported = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    let found = match found {
        Some(version) => version,
        None => {
            tx.execute("INSERT INTO relay_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if found > supported {
        return Err(PgStoreError::SchemaTooNew { found, supported });
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(sql).await?;
    }
    tx.execute("UPDATE relay_schema SET version = $1", &[&supported])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The id every instance announces as `storageId`: one per database, so a device that
/// reconnects to another instance is recognised.
pub async fn storage_id(client: &impl GenericClient) -> Result<String> {
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    meta_once(client, "storage_id", &fresh).await
}

/// The value of `key` in `relay_meta`: `fresh`, written by the first instance that asks, or
/// the one already there.
pub async fn meta_once(client: &impl GenericClient, key: &str, fresh: &str) -> Result<String> {
    client
        .execute(
            "INSERT INTO relay_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &fresh],
        )
        .await?;
    let row = client
        .query_one("SELECT value FROM relay_meta WHERE key = $1", &[&key])
        .await?;
    Ok(row.get(0))
}
