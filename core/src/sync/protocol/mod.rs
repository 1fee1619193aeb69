//! The automerge-repo WebSocket protocol v1: one binary frame holds one CBOR map.
//!
//! Decoding goes through `ciborium::Value`, so any valid CBOR encoding of the map is accepted:
//! keys in any order, extra keys, non-minimal length headers (cbor-x writes maps with 16-bit
//! length headers), `undefined` for absent values, byte strings with or without tag 64.

use std::fmt;

use ciborium::Value;

use super::doc_id::DocumentId;
use super::error::SyncError;
use super::heads::HeadsDigest;
use crate::authorship::carrier;

/// The only protocol version this build speaks.
pub const PROTOCOL_V1: &str = "1";

/// The default largest frame accepted (a plan with years of check-ins stays far below it).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Nesting deeper than this is refused while decoding (protocol maps are two levels deep).
const MAX_NESTING: usize = 32;

/// The field of a `sync` or `request` message that carries the signatures of the changes in
/// its `data` (`crate::authorship::carrier`): records of 96 bytes.
const SIGNATURES_FIELD: &str = "allianceSignatures";

/// A byte string, or one tagged 64 as cbor-x tags Uint8Arrays unless told not to.
fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::Tag(64, inner) => match *inner {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        },
        _ => None,
    }
}

/// A peer's id in the protocol: random per connection in automerge-repo.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(String);

impl PeerId {
    /// A peer id from its text.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The text of the id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.0)
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> Self {
        Self(id.to_string())
    }
}

impl From<String> for PeerId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

/// What a peer says about itself in `join` and `peer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// A stable id of the peer's storage; sync state is kept per storage id.
    pub storage_id: Option<String>,
    /// True when the peer keeps nothing between sessions.
    pub is_ephemeral: bool,
    /// Alliance relays only, in `peer`: the plans that enroll the joining device, so it can
    /// ask for them without knowing their ids (discovery). Other peers ignore the field.
    pub enrolled_documents: Vec<DocumentId>,
    /// Alliance peers only, in `join` and `peer`: the peer speaks the heads-digest extension
    /// ([`Message::HeadsDigests`]). Used only when both sides say so; other peers ignore it.
    pub heads_digest: bool,
    /// Alliance devices only, in `join`: the peer understands refused notices
    /// ([`Message::Refused`]). A relay sends them only to peers that said so; it does not
    /// offer anything in `peer`.
    pub refused_notices: bool,
}

/// The `peerMetadata` key of [`PeerMetadata::enrolled_documents`].
const ENROLLED_DOCUMENTS_KEY: &str = "allianceEnrolledDocuments";

/// The `peerMetadata` key of [`PeerMetadata::heads_digest`]; its value is the extension's
/// version.
const HEADS_DIGEST_KEY: &str = "allianceHeadsDigest";

/// The version of the heads-digest extension this build speaks.
pub const HEADS_DIGEST_VERSION: u64 = 1;

/// The `peerMetadata` key of [`PeerMetadata::refused_notices`]; its value is the extension's
/// version.
const REFUSED_NOTICES_KEY: &str = "allianceRefusedNotices";

/// The version of the refused-notice extension this build speaks.
pub const REFUSED_NOTICES_VERSION: u64 = 1;

/// The `type` of [`Message::Refused`].
pub const REFUSED_TYPE: &str = "alliance-refused";

/// Most changes one [`Message::Refused`] names; a sender splits longer lists.
pub const MAX_REFUSALS_PER_NOTICE: usize = 1024;

/// Longest rule (in bytes) a [`ChangeRefusal`] carries; the role rules' are under 100.
pub const MAX_RULE_BYTES: usize = 512;

/// One change a peer refused: its hash (64 lowercase hex digits) and the rule it broke, in
/// words without personal data (e.g. "only a counselor writes a goal's status").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChangeRefusal {
    pub change_hash: String,
    pub rule: String,
}

/// The `type` of [`Message::HeadsDigests`].
pub const HEADS_DIGESTS_TYPE: &str = "alliance-heads";

/// The `type` of [`Message::HeadsDiffer`].
pub const HEADS_DIFFER_TYPE: &str = "alliance-heads-differ";

/// Bytes of one record of [`HeadsDigests`]: a document id, then its heads digest.
const DIGEST_RECORD_LEN: usize = 16 + 8;

/// The documents a device holds and a digest of each one's heads, as one byte string of
/// fixed-size records (16 bytes of document id, 8 bytes of [`HeadsDigest`]). Decoding checks
/// only the record size; [`HeadsDigests::entries`] checks the count and duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadsDigests {
    records: Vec<u8>,
}

impl HeadsDigests {
    /// The records of these documents, in this order.
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a (DocumentId, HeadsDigest)>) -> Self {
        let mut records = Vec::new();
        for (document, digest) in entries {
            records.extend_from_slice(document.as_bytes());
            records.extend_from_slice(digest);
        }
        Self { records }
    }

    fn from_bytes(records: Vec<u8>) -> Result<Self, SyncError> {
        if !records.len().is_multiple_of(DIGEST_RECORD_LEN) {
            return Err(SyncError::InvalidField {
                field: "digests",
                reason: "not a whole number of 24-byte records",
            });
        }
        Ok(Self { records })
    }

    /// How many documents are listed.
    pub fn len(&self) -> usize {
        self.records.len() / DIGEST_RECORD_LEN
    }

    /// Whether no document is listed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The listed documents and digests, refusing more than `max` records (before reading
    /// them) and a document listed twice.
    pub fn entries(&self, max: usize) -> Result<Vec<(DocumentId, HeadsDigest)>, SyncError> {
        if self.len() > max {
            return Err(SyncError::Limit(format!(
                "a heads digest lists {} documents, at most {max} allowed",
                self.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.len());
        let mut out = Vec::with_capacity(self.len());
        for record in self.records.chunks_exact(DIGEST_RECORD_LEN) {
            let (id, digest) = record.split_at(16);
            let mut id_bytes = [0u8; 16];
            id_bytes.copy_from_slice(id);
            let mut digest_bytes = [0u8; 8];
            digest_bytes.copy_from_slice(digest);
            let document = DocumentId::from_bytes(id_bytes);
            if !seen.insert(document) {
                return Err(SyncError::InvalidField {
                    field: "digests",
                    reason: "a document is listed twice",
                });
            }
            out.push((document, digest_bytes));
        }
        Ok(out)
    }
}

/// A `request` or `sync` message: an Automerge sync message for one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentMessage {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
    /// The Automerge sync message, with the signatures of the changes it carries beside it
    /// when there are any (`crate::authorship::carrier`). On the wire the two are split:
    /// `data` holds the Automerge message alone, `allianceSignatures` the signature records
    /// (a field automerge-repo peers ignore; `docs/sync.md`, Signed changes).
    pub data: Vec<u8>,
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Client → server: the first message of a connection.
    Join {
        sender_id: PeerId,
        peer_metadata: Option<PeerMetadata>,
        /// Absent means "1" to automerge-repo servers.
        supported_protocol_versions: Option<Vec<String>>,
    },
    /// Server → client: the answer to `join`.
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        peer_metadata: Option<PeerMetadata>,
        selected_protocol_version: String,
    },
    /// Client → server: going away.
    Leave { sender_id: PeerId },
    /// The first sync message for a document the sender does not have yet.
    Request(DocumentMessage),
    /// A sync message for a document.
    Sync(DocumentMessage),
    /// The sender does not have the document (and none of its peers do).
    DocUnavailable {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
    },
    /// Application data gossiped about a document; never stored.
    Ephemeral {
        sender_id: PeerId,
        target_id: PeerId,
        count: u64,
        session_id: String,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    /// The sender refuses something; usually followed by a close.
    Error {
        sender_id: Option<PeerId>,
        target_id: Option<PeerId>,
        message: String,
    },
    /// Alliance extension, device → relay, once after `peer` when both advertised
    /// `allianceHeadsDigest`: a digest of the heads of every document the device holds.
    HeadsDigests {
        sender_id: PeerId,
        target_id: PeerId,
        digests: HeadsDigests,
    },
    /// Alliance extension, relay → device: the answer to [`Message::HeadsDigests`]. Lists the
    /// documents to sync the usual way (digest differs, not held, not opened by the token, or
    /// not comparable); every other listed document is the same on both sides.
    HeadsDiffer {
        sender_id: PeerId,
        target_id: PeerId,
        documents: Vec<DocumentId>,
    },
    /// Alliance extension, relay → device, only to a device whose `join` carried
    /// `allianceRefusedNotices`: the role rules refused these changes of the device's last
    /// message about the document (at most [`MAX_REFUSALS_PER_NOTICE`], at least one). The
    /// device sets its own refused changes aside (see `docs/sync.md`, Refused notices).
    Refused {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        refused: Vec<ChangeRefusal>,
    },
    /// A message type this build does not act on (e.g. `remote-heads-changed`); tolerated.
    Unknown {
        message_type: String,
        sender_id: Option<PeerId>,
    },
}

/// Picks the protocol version for a `join`: "1" when offered, or when nothing is offered
/// (what automerge-repo servers do).
pub fn select_protocol_version(offered: Option<&[String]>) -> Result<&'static str, SyncError> {
    match offered {
        None => Ok(PROTOCOL_V1),
        Some(versions) if versions.iter().any(|v| v == PROTOCOL_V1) => Ok(PROTOCOL_V1),
        Some(versions) => Err(SyncError::UnsupportedProtocolVersion {
            offered: versions.to_vec(),
        }),
    }
}

/// Checks the version a server selected in its `peer` message.
pub fn check_selected_version(selected: &str) -> Result<(), SyncError> {
    if selected == PROTOCOL_V1 {
        Ok(())
    } else {
        Err(SyncError::UnsupportedProtocolVersion {
            offered: vec![selected.to_string()],
        })
    }
}

mod decode;
mod encode;

#[cfg(test)]
mod tests;
