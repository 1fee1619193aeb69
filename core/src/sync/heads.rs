//! Reading the envelope of Automerge sync messages: who has which heads, and when a document
//! is settled between two peers.

use automerge::sync;
use automerge::ChangeHash;
use sha2::{Digest, Sha256};

use super::error::SyncError;

/// A short digest of a document's heads: the first 8 bytes of SHA-256 over the sorted heads.
/// Different heads get the same digest with probability 2^-64 per comparison; a collision
/// would leave one document unsynced until its next change on either side.
pub type HeadsDigest = [u8; 8];

/// The [`HeadsDigest`] of these heads, in any order.
pub fn heads_digest(heads: &[ChangeHash]) -> HeadsDigest {
    let mut sorted = heads.to_vec();
    sorted.sort();
    let mut hasher = Sha256::new();
    for head in &sorted {
        hasher.update(head.0);
    }
    let hash = hasher.finalize();
    let mut digest = [0u8; 8];
    digest.copy_from_slice(&hash[..8]);
    digest
}

/// What a sync message says, without applying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncEnvelope {
    /// The sender's heads, sorted.
    pub heads: Vec<ChangeHash>,
    /// Whether the message carries changes (or a whole document).
    pub carries_changes: bool,
}

impl SyncEnvelope {
    /// Decodes an Automerge sync message; truncated or foreign bytes are refused.
    pub fn read(data: &[u8]) -> Result<Self, SyncError> {
        if data.is_empty() {
            return Err(SyncError::InvalidSyncData("empty".into()));
        }
        // Signatures beside the message (`crate::authorship::carrier`) say nothing of heads.
        let (_, data) = crate::authorship::carrier::split_raw(data)
            .map_err(|error| SyncError::InvalidSyncData(error.to_string()))?;
        let message = sync::Message::decode(data)
            .map_err(|error| SyncError::InvalidSyncData(error.to_string()))?;
        let mut heads = message.heads;
        heads.sort();
        Ok(Self {
            heads,
            carries_changes: !message.changes.is_empty(),
        })
    }
}

/// Where one document stands with one peer during a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentProgress {
    /// Heads in the last message we sent.
    pub ours: Option<Vec<ChangeHash>>,
    /// Heads in the last message the peer sent.
    pub theirs: Option<Vec<ChangeHash>>,
    /// The peer said it does not have the document and cannot get it.
    pub unavailable: bool,
    /// The heads digests of both sides matched (see `docs/sync.md`, Heads digest): in sync
    /// with no per-document message, until either side sends one.
    pub matched: bool,
}

impl DocumentProgress {
    /// Both sides said the same heads (or the peer cannot have it): nothing left to exchange.
    pub fn is_settled(&self) -> bool {
        self.unavailable || self.matched || (self.theirs.is_some() && self.theirs == self.ours)
    }

    /// Records a message we sent.
    pub fn sent(&mut self, envelope: &SyncEnvelope) {
        self.ours = Some(envelope.heads.clone());
        self.matched = false;
    }

    /// Records a message the peer sent.
    pub fn received(&mut self, envelope: &SyncEnvelope) {
        self.theirs = Some(envelope.heads.clone());
        self.unavailable = false;
        self.matched = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    #[test]
    fn reads_heads_and_changes_and_refuses_truncation() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "title", "x").unwrap();
        let heads = doc.get_heads();
        let mut state = sync::State::new();
        let first = doc.sync().generate_sync_message(&mut state).unwrap();
        let bytes = first.encode();
        let envelope = SyncEnvelope::read(&bytes).unwrap();
        assert_eq!(envelope.heads, heads);
        assert!(!envelope.carries_changes);
        assert!(SyncEnvelope::read(&bytes[..bytes.len() / 2]).is_err());
        assert!(SyncEnvelope::read(&[]).is_err());
        assert!(SyncEnvelope::read(b"not a sync message").is_err());

        // A peer that has nothing answers; then we send our changes.
        let mut other = AutoCommit::new();
        let mut other_state = sync::State::new();
        other
            .sync()
            .receive_sync_message(&mut other_state, sync::Message::decode(&bytes).unwrap())
            .unwrap();
        let reply = other
            .sync()
            .generate_sync_message(&mut other_state)
            .unwrap();
        doc.sync().receive_sync_message(&mut state, reply).unwrap();
        let changes = doc.sync().generate_sync_message(&mut state).unwrap();
        assert!(
            SyncEnvelope::read(&changes.encode())
                .unwrap()
                .carries_changes
        );
    }

    #[test]
    fn settles_only_on_equal_heads_or_unavailability() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        let one = SyncEnvelope {
            heads: doc.get_heads(),
            carries_changes: false,
        };
        doc.put(ROOT, "a", 2).unwrap();
        let two = SyncEnvelope {
            heads: doc.get_heads(),
            carries_changes: false,
        };
        let mut progress = DocumentProgress::default();
        assert!(!progress.is_settled());
        progress.sent(&two);
        assert!(!progress.is_settled());
        progress.received(&one);
        assert!(!progress.is_settled());
        progress.received(&two);
        assert!(progress.is_settled());
        let mut refused = DocumentProgress {
            unavailable: true,
            ..DocumentProgress::default()
        };
        assert!(refused.is_settled());
        refused.received(&one);
        assert!(!refused.is_settled());
        // Matched digests settle at once; any message afterwards reopens the exchange.
        let mut matched = DocumentProgress {
            matched: true,
            ..DocumentProgress::default()
        };
        assert!(matched.is_settled());
        matched.received(&two);
        assert!(!matched.is_settled());
        matched.sent(&two);
        assert!(matched.is_settled());
    }

    #[test]
    fn digest_ignores_order_and_tells_heads_apart() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        let mut fork = doc.fork();
        doc.put(ROOT, "b", 2).unwrap();
        fork.put(ROOT, "c", 3).unwrap();
        doc.merge(&mut fork).unwrap();
        let mut heads = doc.get_heads();
        assert_eq!(heads.len(), 2);
        let digest = heads_digest(&heads);
        heads.reverse();
        assert_eq!(heads_digest(&heads), digest);
        assert_ne!(heads_digest(&heads[..1]), digest);
        assert_ne!(heads_digest(&[]), digest);
    }
}
