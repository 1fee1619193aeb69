//! The relay's hooks into the audit trail (see `crate::audit`): who a connection is, and one
//! entry per authentication, refusal, and plan read or written (once per plan and connection).
//! Entries go to the relay's store through [`SyncStore::record_audit`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::warn;

use super::doc_id::DocumentId;
use super::error::SyncError;
use super::metrics::rule_of;
use super::store::SyncStore;
use super::token::{check_token, token_hash};
use crate::audit::{AuditKind, NewAuditEntry};
use crate::model::{DeviceId, PlanId};

/// Who is on one connection, as far as the relay knows: its address, the hash of the token it
/// presented (kept only to name its device; never stored) and its device once it joined.
pub(crate) struct Who {
    remote: SocketAddr,
    token_hash: Option<String>,
    device: Option<String>,
    /// (plan, kind) pairs recorded on this connection already.
    noted: HashSet<(DocumentId, AuditKind)>,
}

impl Who {
    /// A connection from `remote` that presented `token` (if any, well-formed or not).
    pub(crate) fn new(remote: SocketAddr, token: Option<&str>) -> Self {
        let token_hash = token
            .filter(|token| check_token(token).is_ok())
            .map(token_hash);
        Self {
            remote,
            token_hash,
            device: None,
            noted: HashSet::new(),
        }
    }

    /// The peer's address.
    pub(crate) fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The peer joined announcing `storage_id`: a device's storage id is its device id.
    pub(crate) fn joined(&mut self, storage_id: &str) {
        if let Ok(device) = DeviceId::parse(storage_id) {
            self.device = Some(device.to_string());
        }
    }

    fn entry(&self, kind: AuditKind, outcome: &str) -> NewAuditEntry {
        NewAuditEntry {
            device_id: self.device.clone(),
            remote: Some(self.remote.to_string()),
            token_hash: self.token_hash.clone(),
            ..NewAuditEntry::new(kind, outcome)
        }
    }

    /// Records that the connection authenticated (`error` None) or was denied.
    pub(crate) async fn authenticated(
        &self,
        store: &Arc<dyn SyncStore>,
        error: Option<&SyncError>,
    ) {
        best_effort(store, self.authentication(error)).await;
    }

    /// The entry saying the connection authenticated (`error` None) or was denied.
    pub(crate) fn authentication(&self, error: Option<&SyncError>) -> NewAuditEntry {
        let mut entry = match error {
            None => self.entry(AuditKind::Auth, "ok"),
            Some(error) => NewAuditEntry {
                detail: Some(rule_of(error).to_string()),
                ..self.entry(AuditKind::Auth, "denied")
            },
        };
        if let Some(SyncError::Unauthorized(reason)) = error {
            entry.detail = Some(format!("unauthorized: {reason}"));
        }
        entry
    }

    /// Records that the connection was closed for breaking a rule.
    pub(crate) async fn refused(&self, store: &Arc<dyn SyncStore>, error: &SyncError) {
        best_effort(store, self.refusal(error)).await;
    }

    /// The entry saying the connection was closed for breaking a rule.
    pub(crate) fn refusal(&self, error: &SyncError) -> NewAuditEntry {
        NewAuditEntry {
            detail: Some(rule_of(error).to_string()),
            ..self.entry(AuditKind::Refusal, "closed")
        }
    }

    /// Records, once per plan and connection, that the device read (`Read`: was sent changes)
    /// or wrote (`Write`: its changes were stored) `document`. A failure to record fails the
    /// connection: no access goes unrecorded. Blocks on the store (call it off the reactor).
    pub(crate) fn accessed(
        &mut self,
        store: &dyn SyncStore,
        document: DocumentId,
        kind: AuditKind,
    ) -> Result<(), SyncError> {
        if !self.noted.insert((document, kind)) {
            return Ok(());
        }
        let entry = NewAuditEntry {
            plan_id: Some(PlanId::from(document.as_uuid()).to_string()),
            ..self.entry(kind, "ok")
        };
        store.record_audit(&entry)
    }

    /// Records that the role rules refused changes of `document` (their rule names), logging
    /// a failure to record. Blocks on the store (call it off the reactor).
    pub(crate) fn changes_refused(
        &self,
        store: &dyn SyncStore,
        document: DocumentId,
        rules: Vec<String>,
    ) {
        let mut rules = rules;
        rules.sort();
        rules.dedup();
        let entry = NewAuditEntry {
            plan_id: Some(PlanId::from(document.as_uuid()).to_string()),
            detail: Some(rules.join(",")),
            ..self.entry(AuditKind::ChangeRefused, "refused")
        };
        if let Err(error) = store.record_audit(&entry) {
            warn!(%error, "could not append to the audit trail");
        }
    }
}

/// Appends `entry` to the store's trail off the async reactor.
pub(crate) async fn record(
    store: &Arc<dyn SyncStore>,
    entry: NewAuditEntry,
) -> Result<(), SyncError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.record_audit(&entry))
        .await
        .map_err(|_| SyncError::Transport("store task failed".into()))?
}

/// Appends `entry`, logging a failure: for entries about a connection that ends anyway.
async fn best_effort(store: &Arc<dyn SyncStore>, entry: NewAuditEntry) {
    if let Err(error) = record(store, entry).await {
        warn!(%error, "could not append to the audit trail");
    }
}
