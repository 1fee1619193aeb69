//! Who a sync conversation is with.

use std::sync::atomic::{AtomicU64, Ordering};

/// The other side of a sync conversation about some plans.
///
/// Sync state has two lives: what is **persisted** between connections (the heads both sides
/// had in common, so a reconnecting peer is sent only news) is kept under the peer's `key`;
/// what lives **in memory** during one conversation (what was just sent, what is in flight)
/// belongs to that conversation alone. Two conversations with the same peer can overlap — a
/// phone reconnects before the relay has noticed its old socket die, two browser tabs share
/// one storage id — and must not see each other's in-memory state, or one of them waits for
/// an answer the other already received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncPeer {
    /// The key the persisted state is kept under: the peer's storage or device id.
    pub key: String,
    /// Tells overlapping conversations with the same key apart.
    pub conversation: u64,
}

static NEXT_CONVERSATION: AtomicU64 = AtomicU64::new(1);

impl SyncPeer {
    /// A peer spoken to one conversation at a time (in-process sync, tests).
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            conversation: 0,
        }
    }

    /// A new conversation with `key`, distinct from every other one in this process.
    pub fn conversation(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            conversation: NEXT_CONVERSATION.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl From<&str> for SyncPeer {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl From<&String> for SyncPeer {
    fn from(key: &String) -> Self {
        Self::new(key.as_str())
    }
}

impl From<String> for SyncPeer {
    fn from(key: String) -> Self {
        Self::new(key)
    }
}

impl From<&SyncPeer> for SyncPeer {
    fn from(peer: &SyncPeer) -> Self {
        peer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_with_one_key_are_distinct() {
        let a = SyncPeer::conversation("device");
        let b = SyncPeer::conversation("device");
        assert_eq!(a.key, b.key);
        assert_ne!(a, b);
        assert_eq!(SyncPeer::from("device"), SyncPeer::new("device"));
        assert_ne!(SyncPeer::from("device"), a);
    }
}
