//! [`Alliance`] as a [`SyncStore`], and watch mode hooked to its change observers.

use std::sync::Arc;

use crate::alliance::{Alliance, PlanObserver};
#[cfg(feature = "relay")]
use crate::model::DeviceId;
use crate::model::PlanId;
use crate::{own_refusals, SyncPeer};

use super::client::{self, SyncHandle, SyncObserver, SyncOptions};
use super::doc_id::DocumentId;
use super::error::SyncError;
use super::heads::{heads_digest, HeadsDigest};
use super::protocol::ChangeRefusal;
use super::store::SyncStore;
#[cfg(feature = "relay")]
use super::store::{TokenVoucher, CANNOT_VOUCH, NOT_LISTED};

fn plan(document: DocumentId) -> PlanId {
    PlanId::from(document.as_uuid())
}

/// The changes a receipt says the rules refused, as a relay tells its peer (any relay store
/// built on [`Alliance`]).
pub fn receipt_refusals(receipt: crate::SyncReceipt) -> Vec<ChangeRefusal> {
    receipt
        .refused
        .into_iter()
        .map(|refused| ChangeRefusal {
            change_hash: refused.change_hash,
            rule: refused.rule,
        })
        .collect()
}

fn document(plan: PlanId) -> DocumentId {
    DocumentId::from_uuid(plan.as_uuid())
}

#[cfg(feature = "relay")]
/// The error of [`Alliance::receive_vouched`] as a relay reports it: a token refused its
/// binding is an authorization failure, as the relay words them.
pub fn vouched_error(error: crate::Error) -> SyncError {
    match error {
        crate::Error::NotAllowed { rule } if rule == CANNOT_VOUCH => {
            SyncError::Unauthorized(CANNOT_VOUCH)
        }
        crate::Error::NotAllowed { rule } if rule == NOT_LISTED => {
            SyncError::Unauthorized(NOT_LISTED)
        }
        other => SyncError::store(other),
    }
}

impl SyncStore for Alliance {
    fn storage_id(&self) -> Result<String, SyncError> {
        match self.identity() {
            Some(identity) => Ok(identity.device_id.to_string()),
            None => self.store_id().map_err(SyncError::store),
        }
    }

    // Only a relay asks for these (feature `relay`); the phone library keeps the defaults.
    #[cfg(feature = "relay")]
    fn enrolled_documents(&self, storage_id: &str) -> Result<Vec<DocumentId>, SyncError> {
        let Ok(device) = DeviceId::parse(storage_id) else {
            return Ok(Vec::new());
        };
        Ok(self
            .plans_of_device(device)
            .map_err(SyncError::store)?
            .into_iter()
            .map(document)
            .collect())
    }

    #[cfg(feature = "relay")]
    fn documents_of_token(&self, token_hash: &str) -> Result<Vec<DocumentId>, SyncError> {
        let mut out: Vec<DocumentId> = self
            .plans_of_token(token_hash)
            .map_err(SyncError::store)?
            .into_iter()
            .map(|(plan, _)| document(plan))
            .collect();
        out.dedup();
        Ok(out)
    }

    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        Ok(self
            .plan_ids()
            .map_err(SyncError::store)?
            .into_iter()
            .map(document)
            .collect())
    }

    fn heads_digests(
        &self,
        documents: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Option<HeadsDigest>)>, SyncError> {
        let plans: Vec<PlanId> = documents.iter().copied().map(plan).collect();
        Ok(self
            .plan_heads(&plans)
            .map_err(SyncError::store)?
            .into_iter()
            .map(|(plan, heads)| (document(plan), heads.as_deref().map(heads_digest)))
            .collect())
    }

    fn compact_due(&self, max_documents: usize) -> Result<usize, SyncError> {
        Alliance::compact_due(self, max_documents).map_err(SyncError::store)
    }

    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        self.has_plan(plan(document)).map_err(SyncError::store)
    }

    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        Alliance::generate_sync_message(self, plan(document), peer).map_err(SyncError::store)
    }

    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        let receipt = Alliance::receive_sync_message(self, plan(document), peer, message)
            .map_err(SyncError::store)?;
        Ok(receipt_refusals(receipt))
    }

    #[cfg(feature = "relay")]
    fn receive_vouched_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
        voucher: &TokenVoucher,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        let receipt = self
            .receive_vouched(plan(document), peer, message, voucher)
            .map_err(vouched_error)?;
        Ok(receipt_refusals(receipt))
    }

    fn own_changes_refused(
        &self,
        document: DocumentId,
        refused: &[ChangeRefusal],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        let refused: Vec<(String, String)> = refused
            .iter()
            .map(|r| (r.change_hash.clone(), r.rule.clone()))
            .collect();
        Ok(own_refusals::set_aside(self, plan(document), &refused)
            .map_err(SyncError::store)?
            .into_iter()
            .map(|(change_hash, rule)| ChangeRefusal { change_hash, rule })
            .collect())
    }

    #[cfg(feature = "relay")]
    fn record_audit(&self, entry: &crate::audit::NewAuditEntry) -> Result<(), SyncError> {
        Alliance::record_audit(self, entry)
            .map(|_| ())
            .map_err(SyncError::store)
    }

    fn end_sync_session(&self, peer: &SyncPeer) {
        Alliance::end_sync_session(self, peer)
    }

    fn forget_peer(&self, peer: &SyncPeer) -> Result<(), SyncError> {
        self.forget_sync_peer(peer).map_err(SyncError::store)
    }
}

/// How often watch mode looks for edits other processes stored (see [`Alliance::watch_file`]).
pub const OUTSIDE_CHANGES_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Watch mode inside a tokio runtime (shells): syncs until the handle is stopped or dropped,
/// and pushes every local edit as soon as it is stored.
pub fn spawn_alliance_watch(
    alliance: Arc<Alliance>,
    server_url: &str,
    options: SyncOptions,
    observer: Arc<dyn SyncObserver>,
) -> SyncHandle {
    let mut handle = client::spawn_watch(alliance.clone(), server_url, options, observer);
    let changes = handle.change_sender();
    let hook: Arc<dyn PlanObserver> = Arc::new(move |plan: PlanId| {
        let _ = changes.send(document(plan));
    });
    alliance.add_observer(hook.clone());
    // Edits another process stores (the app beside the CLI, a widget) are pushed too.
    let file_watch = alliance.watch_file(OUTSIDE_CHANGES_INTERVAL).ok();
    handle.set_on_stop(Box::new(move || {
        drop(file_watch);
        alliance.remove_observer(&hook);
    }));
    handle
}

/// `alliance sync --server URL --watch`: keeps syncing until the process ends.
pub fn watch_blocking(
    alliance: Arc<Alliance>,
    server_url: &str,
    options: SyncOptions,
    observer: Arc<dyn SyncObserver>,
) -> Result<(), SyncError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| SyncError::Transport(format!("cannot start the runtime: {error}")))?;
    runtime.block_on(async {
        let _handle = spawn_alliance_watch(alliance, server_url, options, observer);
        std::future::pending::<()>().await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::NewPlan;

    #[test]
    fn plans_are_documents_with_the_same_uuid() {
        let alliance = Alliance::open_in_memory().unwrap();
        let store_id = alliance.storage_id().unwrap();
        assert_eq!(store_id.len(), 32);
        assert_eq!(alliance.storage_id().unwrap(), store_id);
        assert_ne!(
            Alliance::open_in_memory().unwrap().storage_id().unwrap(),
            store_id
        );
        let me = alliance.init("Dana", Role::Counselor, None).unwrap();
        assert_eq!(alliance.storage_id().unwrap(), me.device_id.to_string());
        let id = alliance
            .create_plan(&NewPlan {
                title: "Plan".into(),
                client_name: "Sam".into(),
                ..NewPlan::default()
            })
            .unwrap();
        let documents = SyncStore::document_ids(&alliance).unwrap();
        assert_eq!(documents, vec![DocumentId::from_uuid(id.as_uuid())]);
        assert!(alliance.has_document(documents[0]).unwrap());
        assert!(!alliance
            .has_document(DocumentId::from_uuid(uuid::Uuid::new_v4()))
            .unwrap());
    }
}
