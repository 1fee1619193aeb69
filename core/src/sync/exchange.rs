//! Calls into a [`SyncStore`] for one remote peer, run off the async reactor (SQLite blocks).

use std::sync::Arc;

use super::doc_id::DocumentId;
use super::error::SyncError;
use super::heads::{HeadsDigest, SyncEnvelope};
use super::metrics::MetricsSink;
use super::protocol::ChangeRefusal;
use super::store::{SyncStore, TokenVoucher};
use crate::SyncPeer;

/// One store seen from one connection: sync state is persisted under `key`, and the
/// connection is a conversation of its own (see [`SyncPeer`]).
#[derive(Clone)]
pub struct Exchange {
    store: Arc<dyn SyncStore>,
    peer: Arc<SyncPeer>,
    /// Told how long each received message took to store.
    metrics: MetricsSink,
}

impl Exchange {
    pub fn new(store: Arc<dyn SyncStore>, key: &str) -> Self {
        Self {
            store,
            peer: Arc::new(SyncPeer::conversation(key)),
            metrics: MetricsSink::default(),
        }
    }

    /// Reports store-write latencies to `metrics`.
    pub fn with_metrics(mut self, metrics: MetricsSink) -> Self {
        self.metrics = metrics;
        self
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn SyncStore, &SyncPeer) -> Result<T, SyncError> + Send + 'static,
    ) -> Result<T, SyncError> {
        let store = Arc::clone(&self.store);
        let peer = Arc::clone(&self.peer);
        tokio::task::spawn_blocking(move || work(store.as_ref(), &peer))
            .await
            .map_err(|_| SyncError::Transport("store task failed".into()))?
    }

    /// The next sync message for the peer, with what it says.
    pub async fn generate(
        &self,
        document: DocumentId,
    ) -> Result<Option<(Vec<u8>, SyncEnvelope)>, SyncError> {
        self.run(
            move |store, key| match store.generate_sync_message(document, key)? {
                Some(data) => {
                    let envelope = SyncEnvelope::read(&data)?;
                    Ok(Some((data, envelope)))
                }
                None => Ok(None),
            },
        )
        .await
    }

    /// Applies a sync message from the peer; returns the changes in it the rules refused.
    pub async fn receive(
        &self,
        document: DocumentId,
        data: Vec<u8>,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        self.receive_as(document, data, None).await
    }

    /// [`Exchange::receive`] of a message pushed with a relay token: kept only when the
    /// plan stays bound to its tokens (see [`TokenVoucher`]).
    pub async fn receive_vouched(
        &self,
        document: DocumentId,
        data: Vec<u8>,
        voucher: TokenVoucher,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        self.receive_as(document, data, Some(voucher)).await
    }

    async fn receive_as(
        &self,
        document: DocumentId,
        data: Vec<u8>,
        voucher: Option<TokenVoucher>,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        let started = std::time::Instant::now();
        let refused = self
            .run(move |store, key| match &voucher {
                Some(voucher) => store.receive_vouched_sync_message(document, key, &data, voucher),
                None => store.receive_sync_message(document, key, &data),
            })
            .await?;
        let elapsed = started.elapsed();
        self.metrics.with(|m| m.store_write(elapsed));
        Ok(refused)
    }

    /// Digests of the documents' heads (None: unknown or not held).
    pub async fn heads_digests(
        &self,
        documents: Vec<DocumentId>,
    ) -> Result<Vec<(DocumentId, Option<HeadsDigest>)>, SyncError> {
        self.run(move |store, _| store.heads_digests(&documents))
            .await
    }

    /// Whether the store holds the document.
    pub async fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        self.run(move |store, _| store.has_document(document)).await
    }

    /// Ends the session with an ephemeral peer: its persisted sync state is dropped too.
    pub async fn forget(&self) {
        if let Err(error) = self.run(|store, key| store.forget_peer(key)).await {
            tracing::warn!(%error, "could not forget an ephemeral peer's sync state");
        }
    }

    /// Ends the session with the peer (in-memory sync state is dropped).
    pub async fn end(&self) {
        let _ = self
            .run(|store, key| {
                store.end_sync_session(key);
                Ok(())
            })
            .await;
    }
}
