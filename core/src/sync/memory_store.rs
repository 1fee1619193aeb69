//! An in-memory [`SyncStore`] over plain Automerge documents, for the sync layer's own tests.

use std::collections::HashMap;
use std::sync::Arc;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ROOT};
use parking_lot::Mutex;

use super::doc_id::DocumentId;
use super::error::SyncError;
use super::heads::{heads_digest, HeadsDigest};
use super::protocol::ChangeRefusal;
use super::store::SyncStore;
use crate::SyncPeer;

#[derive(Default)]
struct Inner {
    docs: HashMap<DocumentId, AutoCommit>,
    sessions: HashMap<(DocumentId, SyncPeer), sync::State>,
    saved_states: HashMap<(DocumentId, String), Vec<u8>>,
    wanted: Vec<DocumentId>,
    /// Answers "unknown" for every heads digest, like a store from before the extension.
    no_digests: bool,
    /// Every document a sync message was generated for, in order.
    generated: Vec<DocumentId>,
}

/// Documents in memory; sync state "persisted" in a map that survives `end_sync_session`.
pub struct MemoryStore {
    storage_id: String,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new(storage_id: &str) -> Self {
        Self {
            storage_id: storage_id.to_string(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Creates or edits a document: sets `key` to `value` at the root.
    pub fn put(&self, document: DocumentId, key: &str, value: &str) {
        let mut inner = self.inner.lock();
        let doc = inner.docs.entry(document).or_default();
        doc.put(ROOT, key, value).unwrap();
        doc.commit();
    }

    /// The value at `key`, if the document is here.
    pub fn get(&self, document: DocumentId, key: &str) -> Option<String> {
        let inner = self.inner.lock();
        let doc = inner.docs.get(&document)?;
        doc.get(ROOT, key)
            .ok()
            .flatten()
            .map(|(value, _)| value.as_str().unwrap_or_default().to_string())
    }

    /// The document's heads (empty when absent).
    pub fn heads(&self, document: DocumentId) -> Vec<automerge::ChangeHash> {
        let mut inner = self.inner.lock();
        inner
            .docs
            .get_mut(&document)
            .map(|doc| doc.get_heads())
            .unwrap_or_default()
    }

    pub fn want(&self, document: DocumentId) {
        self.inner.lock().wanted.push(document);
    }

    /// The documents sync messages were generated for since the last call.
    #[cfg(feature = "relay")]
    pub fn take_generated(&self) -> Vec<DocumentId> {
        std::mem::take(&mut self.inner.lock().generated)
    }

    /// Makes [`SyncStore::heads_digests`] answer "unknown" for every document.
    #[cfg(feature = "relay")]
    pub fn without_digests(self) -> Self {
        self.inner.lock().no_digests = true;
        self
    }
}

impl SyncStore for MemoryStore {
    fn storage_id(&self) -> Result<String, SyncError> {
        Ok(self.storage_id.clone())
    }

    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        let mut ids: Vec<_> = self.inner.lock().docs.keys().copied().collect();
        ids.sort();
        Ok(ids)
    }

    fn wanted_document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        let inner = self.inner.lock();
        Ok(inner
            .wanted
            .iter()
            .filter(|id| !inner.docs.contains_key(id))
            .copied()
            .collect())
    }

    fn heads_digests(
        &self,
        documents: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Option<HeadsDigest>)>, SyncError> {
        let mut inner = self.inner.lock();
        let known = !inner.no_digests;
        Ok(documents
            .iter()
            .map(|document| {
                let digest = inner
                    .docs
                    .get_mut(document)
                    .filter(|_| known)
                    .map(|doc| heads_digest(&doc.get_heads()));
                (*document, digest)
            })
            .collect())
    }

    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        Ok(self.inner.lock().docs.contains_key(&document))
    }

    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let mut inner = self.inner.lock();
        inner.generated.push(document);
        let key = (document, peer.clone());
        let mut state = session(&mut inner, &key);
        let mut empty = AutoCommit::new();
        let doc = inner.docs.get_mut(&document).unwrap_or(&mut empty);
        let message = doc.sync().generate_sync_message(&mut state);
        inner.sessions.insert(key, state);
        Ok(message.map(sync::Message::encode))
    }

    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        // A peer that signs nothing ignores the signatures beside a message.
        let (_, message) = crate::authorship::carrier::split_raw(message)
            .map_err(|error| SyncError::InvalidSyncData(error.to_string()))?;
        let message = sync::Message::decode(message)
            .map_err(|error| SyncError::InvalidSyncData(error.to_string()))?;
        let mut inner = self.inner.lock();
        let key = (document, peer.clone());
        let mut state = session(&mut inner, &key);
        let mut doc = inner.docs.get(&document).cloned().unwrap_or_default();
        doc.sync()
            .receive_sync_message(&mut state, message)
            .map_err(SyncError::store)?;
        if !doc.get_heads().is_empty() {
            inner.docs.insert(document, doc);
        }
        inner
            .saved_states
            .insert((document, peer.key.clone()), state.encode());
        inner.sessions.insert(key, state);
        Ok(Vec::new())
    }

    fn end_sync_session(&self, peer: &SyncPeer) {
        self.inner.lock().sessions.retain(|(_, p), _| p != peer);
    }
}

fn session(inner: &mut Inner, key: &(DocumentId, SyncPeer)) -> sync::State {
    if let Some(state) = inner.sessions.remove(key) {
        return state;
    }
    inner
        .saved_states
        .get(&(key.0, key.1.key.clone()))
        .and_then(|bytes| sync::State::decode(bytes).ok())
        .unwrap_or_default()
}

/// A store whose `receive_sync_message` notes how many calls are inside it at once, holding
/// each call until a second one arrives (or 2 s pass): for tests that messages about
/// different plans are taken in side by side.
pub(crate) struct Overlapping {
    inner: Arc<MemoryStore>,
    inside: parking_lot::Mutex<usize>,
    most: parking_lot::Mutex<usize>,
    arrived: parking_lot::Condvar,
}

impl Overlapping {
    pub(crate) fn new(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            inside: parking_lot::Mutex::new(0),
            most: parking_lot::Mutex::new(0),
            arrived: parking_lot::Condvar::new(),
        }
    }

    /// The most calls of `receive_sync_message` that were inside at once.
    pub(crate) fn most(&self) -> usize {
        *self.most.lock()
    }
}

impl SyncStore for Overlapping {
    fn storage_id(&self) -> Result<String, SyncError> {
        self.inner.storage_id()
    }
    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        self.inner.document_ids()
    }
    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        self.inner.has_document(document)
    }
    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        self.inner.generate_sync_message(document, peer)
    }
    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        {
            let mut inside = self.inside.lock();
            *inside += 1;
            let mut most = self.most.lock();
            *most = (*most).max(*inside);
            drop(most);
            self.arrived.notify_all();
            if *inside < 2 {
                let _ = self
                    .arrived
                    .wait_for(&mut inside, std::time::Duration::from_secs(2));
            }
        }
        let result = self.inner.receive_sync_message(document, peer, message);
        *self.inside.lock() -= 1;
        result
    }
    fn end_sync_session(&self, peer: &SyncPeer) {
        self.inner.end_sync_session(peer)
    }
}
