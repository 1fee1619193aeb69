//! What the network layer needs from a store of documents: sync messages in, sync messages out.
//!
//! [`crate::Alliance`] implements it (see `alliance_store.rs`); tests use an in-memory store.
//! Every method is synchronous and may touch SQLite; the network layer calls them off the
//! async reactor.

use super::doc_id::DocumentId;
use super::error::SyncError;
use super::heads::HeadsDigest;
use super::protocol::ChangeRefusal;
use crate::SyncPeer;

pub use crate::token::{TokenVoucher, CANNOT_VOUCH, NOT_LISTED};

/// A store the sync engine and the relay exchange Automerge sync messages with.
///
/// `peer` names the conversation: its `key` is what sync state is persisted under (the
/// remote's storage id when it keeps one, so a reconnecting peer is recognised and only news
/// is sent), and its `conversation` keeps overlapping connections of one peer apart.
pub trait SyncStore: Send + Sync + 'static {
    /// A stable id of this store, announced to peers as `storageId`.
    fn storage_id(&self) -> Result<String, SyncError>;

    /// The documents this store syncs on every connection (a device: its plans).
    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError>;

    /// Documents this store wants but does not hold yet (e.g. plans a member was enrolled in,
    /// found through discovery). Requested on every connection until they arrive.
    fn wanted_document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        Ok(Vec::new())
    }

    /// Documents to offer a peer that joined with `storage_id`, without it asking: for a
    /// device (its storage id is its device id), the plans that enroll it. This is how a
    /// newly enrolled device finds its plans (see `docs/sync.md`, Discovery).
    fn enrolled_documents(&self, storage_id: &str) -> Result<Vec<DocumentId>, SyncError> {
        let _ = storage_id;
        Ok(Vec::new())
    }

    /// The documents a relay token opens (its SHA-256 in hex): those whose plan lists a
    /// device with that token hash and not revoked. Empty when it opens nothing (a store
    /// that knows no tokens).
    fn documents_of_token(&self, token_hash: &str) -> Result<Vec<DocumentId>, SyncError> {
        let _ = token_hash;
        Ok(Vec::new())
    }

    /// A [`HeadsDigest`] of the current heads of each of these documents, cheaply (without
    /// loading them), in the same order. None means "unknown, sync it the usual way": a
    /// document not held here, or a store that cannot tell (the default).
    fn heads_digests(
        &self,
        documents: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Option<HeadsDigest>)>, SyncError> {
        Ok(documents.iter().map(|document| (*document, None)).collect())
    }

    /// Whether this store holds the document.
    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError>;

    /// The next sync message for `peer`, or None when the peer has everything we know of.
    /// Must work for a document not held yet (the message then asks for everything).
    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError>;

    /// Applies a sync message from `peer` atomically; creates the document when it is new.
    /// A refusal (rules, malformed data) must leave the store unchanged.
    ///
    /// Returns the changes in the message that the store's rules refused (none for a store
    /// without rules): what a relay tells the peer in a refused notice.
    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<ChangeRefusal>, SyncError>;

    /// [`SyncStore::receive_sync_message`] from a peer that presented a relay token: the
    /// message is kept only if the plan it leaves stays bound to its tokens as `voucher`
    /// says (see [`TokenVoucher`]); otherwise nothing of it is stored and the error says why.
    /// A store that knows no tokens (the default) receives it as usual.
    fn receive_vouched_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
        voucher: &TokenVoucher,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        let _ = voucher;
        self.receive_sync_message(document, peer, message)
    }

    /// A peer refused these changes of `document` (its refused notice). The store takes its own
    /// refused changes out of the document and keeps them aside, replaying later own changes
    /// so they no longer depend on them; other hashes are ignored. Returns what it set aside
    /// and the user should hear of: its own refused changes, and later ones that could not be
    /// replayed. A store without rules ignores notices (the default).
    fn own_changes_refused(
        &self,
        document: DocumentId,
        refused: &[ChangeRefusal],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        let _ = (document, refused);
        Ok(Vec::new())
    }

    /// Appends an entry to this store's audit trail (see `crate::audit`). A store without one
    /// ignores it (the default).
    fn record_audit(&self, entry: &crate::audit::NewAuditEntry) -> Result<(), SyncError> {
        let _ = entry;
        Ok(())
    }

    /// Documents that changed in this store outside this process (another relay instance over
    /// the same database stored a change), as a stream the relay takes once when it starts: it
    /// pushes each to its peers as if one of its own connections had brought the change. None
    /// (the default): nothing changes behind this process's back.
    fn outside_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<DocumentId>> {
        None
    }

    /// Forgets the in-memory state of this conversation; called when its connection ends.
    fn end_sync_session(&self, peer: &SyncPeer);

    /// Compacts up to `max_documents` documents whose storage grew by appending, off the
    /// sync path: called when a burst of messages is over or a session ended. Returns how many
    /// it compacted; a store that does not compact does nothing (the default). Blocks.
    fn compact_due(&self, max_documents: usize) -> Result<usize, SyncError> {
        let _ = max_documents;
        Ok(0)
    }

    /// Forgets everything kept about `peer`, persisted sync state included; called instead
    /// of [`SyncStore::end_sync_session`] when an ephemeral peer (one that keeps nothing
    /// between sessions) disconnects, so its rows do not pile up.
    fn forget_peer(&self, peer: &SyncPeer) -> Result<(), SyncError> {
        self.end_sync_session(peer);
        Ok(())
    }
}
