//! A relay's working copy of a database it shares with other relay instances (the PostgreSQL
//! relay store, `relay-pg/`; `docs/operations.md`): the database holds every change the role
//! rules accepted, and each instance mirrors what it needs into an `Alliance` of its own,
//! which judges what its peers push exactly as a SQLite relay does.

use automerge::{Change, ChangeHash};

use super::Alliance;
use crate::authorship::Signature;
use crate::error::{Error, Result};
use crate::model::{DeviceId, PlanId};
use crate::store;

/// One device a plan lists, as the relay's token index keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedDevice {
    pub device_id: DeviceId,
    /// Hex SHA-256 of its relay token, once one was issued.
    pub token_hash: Option<String>,
    pub revoked: bool,
    /// Its member id (UUID text), when known.
    pub member_id: Option<String>,
}

impl Alliance {
    /// The raw bytes of every change of `plan` that is not among `heads` or their ancestors,
    /// in an order Automerge can apply them in; every change when `heads` is empty. Errors:
    /// [`Error::NotFound`] when this store does not hold the plan.
    pub fn changes_after(&self, plan: PlanId, heads: &[ChangeHash]) -> Result<Vec<Vec<u8>>> {
        self.reading(|inner| {
            let open = inner.open(plan)?;
            Ok(open
                .doc
                .automerge()
                .get_changes(heads)
                .into_iter()
                .map(|change| change.raw_bytes().to_vec())
                .collect())
        })
    }

    /// Adopts changes that the relay's database holds, so already judged by the role rules
    /// (by this instance or another over the same database), with their authors' signatures
    /// (change hash, 64 signature bytes), which travel on with them to peers: applied without
    /// judging them again, and stored in one transaction; the plan is created when new.
    /// Changes and signatures already held are skipped. Returns whether the plan changed.
    /// Errors: [`Error::Malformed`] for bytes that are no Automerge change or no signature.
    pub fn adopt_changes(
        &self,
        plan: PlanId,
        changes: &[Vec<u8>],
        signatures: &[(ChangeHash, Vec<u8>)],
    ) -> Result<bool> {
        let parsed = changes
            .iter()
            .map(|bytes| {
                Change::from_bytes(bytes.clone())
                    .map_err(|error| Error::Malformed(format!("a stored change: {error}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let records = signatures
            .iter()
            .map(|(hash, bytes)| {
                Signature::from_slice(bytes)
                    .map(|signature| (*hash, signature))
                    .ok_or_else(|| Error::Malformed("a stored change signature".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let doc_id = plan.to_string();
        let changed = self.writing(|inner| {
            let open = inner.open_or_empty(plan)?;
            // Judged and stored elsewhere: none of them is this store's to sign.
            let adopted = parsed.clone();
            open.doc.automerge_mut().apply_changes(parsed)?;
            if open.doc.heads().is_empty() {
                return Ok(false);
            }
            inner.persist_received(plan, &adopted, |tx| {
                store::save_signatures(tx, &doc_id, &records)
            })
        })?;
        if changed {
            self.notify(plan);
        }
        Ok(changed)
    }

    /// The recorded signatures of these changes of `plan` (those it has): change hash and
    /// the 64 signature bytes.
    pub fn signatures_of(
        &self,
        plan: PlanId,
        hashes: &[ChangeHash],
    ) -> Result<Vec<(ChangeHash, Vec<u8>)>> {
        let doc_id = plan.to_string();
        let mut inner = self.inner.lock();
        inner.sign_waiting(Some(&doc_id))?;
        let records = inner
            .store
            .read(|tx| store::load_signatures(tx, &doc_id, Some(hashes)))?;
        Ok(records
            .into_iter()
            .map(|(hash, signature)| (hash, signature.0.to_vec()))
            .collect())
    }

    /// The devices `plan` lists, from its document. Errors: [`Error::NotFound`].
    pub fn listed_devices(&self, plan: PlanId) -> Result<Vec<ListedDevice>> {
        self.reading(|inner| {
            let open = inner.open(plan)?;
            Ok(open
                .doc
                .device_access()
                .into_iter()
                .map(|access| ListedDevice {
                    device_id: access.device_id,
                    token_hash: access.token_hash,
                    revoked: access.revoked,
                    member_id: access.member_id.map(|member| member.to_string()),
                })
                .collect())
        })
    }

    /// The sync state persisted for `plan` and the peer `key` (what
    /// `automerge::sync::State::encode` gives), if any.
    pub fn stored_sync_state(&self, plan: PlanId, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::load_sync_state(tx, &plan.to_string(), key))
    }

    /// Persists a sync state for `plan` and the peer `key` that another instance kept, unless
    /// this store already keeps one (its own is newer).
    pub fn seed_sync_state(&self, plan: PlanId, key: &str, state: &[u8]) -> Result<()> {
        let doc_id = plan.to_string();
        self.inner.lock().store.write(|tx| {
            if store::load_sync_state(tx, &doc_id, key)?.is_none() {
                store::save_sync_state(tx, &doc_id, key, state)?;
            }
            Ok(())
        })
    }
}
