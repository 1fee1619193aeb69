//! The relay's side of vouching (SECURITY.md §6, Peers that cannot sign): its signing key, and
//! the vouchers it attaches to the unsigned changes a token's own keyless device pushes; and
//! the counselor's side: pinning that key in a plan (`relay_key`), so devices accept a keyless
//! device's change only with the pinned relay's voucher ([`crate::authorship::voucher`]).

use automerge::{Automerge, Change};

use super::{Alliance, Inner};
use crate::authorship::{voucher, DeviceKey, PublicKey};
use crate::clock;
use crate::error::{Error, Result};
use crate::model::{DeviceId, PlanId};
use crate::plan::read::{read_plan_for_edit, relay_key};
use crate::plan::{write, DeviceAccess};
use crate::rules::{self, remote::Signatures, Edit};
use crate::store;

impl Alliance {
    /// This relay's public key, the one counselors pin in their plans
    /// ([`Alliance::pin_relay_key`]); the signing key is made and stored (encrypted with the
    /// store) on the first call. Only a relay's store (one without an identity) has one:
    /// on a device's store this is [`Error::InvalidInput`].
    pub fn relay_public_key(&self) -> Result<PublicKey> {
        self.relay_key_or(DeviceKey::generate)
    }

    /// Makes `key` this relay store's key unless it has one already, and returns the public
    /// key it has: for a relay whose key is kept outside the store (the PostgreSQL store's
    /// working copies). On a device's store this is [`Error::InvalidInput`].
    pub fn adopt_relay_key(&self, key: &DeviceKey) -> Result<PublicKey> {
        self.relay_key_or(|| DeviceKey::from_bytes(key.to_bytes().as_ref()))
    }

    fn relay_key_or(&self, make: impl FnOnce() -> Result<DeviceKey>) -> Result<PublicKey> {
        self.writing(|inner| {
            if inner.identity.is_some() {
                return Err(Error::invalid(
                    "store",
                    "a device's store is not a relay's: it has no relay key",
                ));
            }
            if let Some(key) = inner.store.read(store::load_device_key)? {
                return Ok(key.public_key());
            }
            let key = make()?;
            inner
                .store
                .write(|tx| store::save_device_key(tx, &key, clock::now_ms()))?;
            // Another process may have stored its key first: the stored one is the relay's.
            let stored = inner
                .store
                .read(store::load_device_key)?
                .ok_or_else(|| Error::Malformed("the relay key was not stored".into()))?;
            Ok(stored.public_key())
        })
    }

    /// Pins `key` as the plan's relay key (counselor): from then on a change by a device
    /// enrolled without a key is accepted only with that relay's voucher. A counselor may
    /// replace it (a new relay); others get [`Error::NotAllowed`].
    pub fn pin_relay_key(&self, plan: PlanId, key: &PublicKey) -> Result<()> {
        self.edit(plan, "pinned the relay key", |model, me, tx| {
            rules::check(model, me.member_id, Edit::RelayKey)?;
            write::set_relay_key(tx, key)
        })
    }

    /// The relay key the plan pins, if any.
    pub fn pinned_relay_key(&self, plan: PlanId) -> Result<Option<PublicKey>> {
        self.reading(|inner| {
            relay_key(inner.open(plan)?.doc.automerge())
                .map(|key| PublicKey::parse(&key))
                .transpose()
        })
    }
}

impl Inner {
    /// The key this store vouches with: a relay's (a store without identity) once it has one.
    pub(super) fn vouching_key(&mut self) -> Result<Option<DeviceKey>> {
        if self.identity.is_some() {
            return Ok(None);
        }
        self.store.read(store::load_device_key)
    }
}

/// Vouches, with the relay's `key`, for the changes in `incoming` written by a device that the
/// pushing token (`token_hash`) opens in this plan (`doc`, `devices`, when it pins a relay
/// key), not revoked, and that has no recorded key: the voucher goes into `signatures` in place of whatever record came with
/// the change (such a device cannot sign). Other changes keep their records, to be judged.
pub(super) fn vouch_own(
    doc: &Automerge,
    devices: &[DeviceAccess],
    (key, token_hash): (&DeviceKey, &str),
    incoming: &[Change],
    signatures: &mut Signatures,
) {
    let own: Vec<DeviceId> = devices
        .iter()
        .filter(|d| !d.revoked && d.token_hash.as_deref() == Some(token_hash))
        .map(|d| d.device_id)
        .collect();
    // Vouchers count only in a plan that pins a relay key (`relay_key`).
    if own.is_empty() || relay_key(doc).is_none() {
        return;
    }
    let Ok(plan) = read_plan_for_edit(doc, None, false) else {
        return;
    };
    let keyless: Vec<DeviceId> = own
        .into_iter()
        .filter(|d| plan.device(*d).is_some_and(|d| d.public_key.is_none()))
        .collect();
    for change in incoming {
        let Some(device) = DeviceId::from_actor(change.actor_id()) else {
            continue;
        };
        if keyless.contains(&device) {
            let hash = change.hash();
            signatures.insert(hash, voucher::vouch(key, &hash, device));
        }
    }
}
