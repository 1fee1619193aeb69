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

impl Message {
    /// The `type` field of this message.
    pub fn message_type(&self) -> &str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Leave { .. } => "leave",
            Message::Request(_) => "request",
            Message::Sync(_) => "sync",
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral { .. } => "ephemeral",
            Message::Error { .. } => "error",
            Message::HeadsDigests { .. } => HEADS_DIGESTS_TYPE,
            Message::HeadsDiffer { .. } => HEADS_DIFFER_TYPE,
            Message::Refused { .. } => REFUSED_TYPE,
            Message::Unknown { message_type, .. } => message_type,
        }
    }

    /// The sender, when the message names one.
    pub fn sender_id(&self) -> Option<&PeerId> {
        match self {
            Message::Join { sender_id, .. }
            | Message::Peer { sender_id, .. }
            | Message::Leave { sender_id }
            | Message::DocUnavailable { sender_id, .. }
            | Message::Ephemeral { sender_id, .. }
            | Message::HeadsDigests { sender_id, .. }
            | Message::HeadsDiffer { sender_id, .. }
            | Message::Refused { sender_id, .. } => Some(sender_id),
            Message::Request(message) | Message::Sync(message) => Some(&message.sender_id),
            Message::Error { sender_id, .. } | Message::Unknown { sender_id, .. } => {
                sender_id.as_ref()
            }
        }
    }

    /// The document this message is about, if any.
    pub fn document_id(&self) -> Option<DocumentId> {
        match self {
            Message::Request(message) | Message::Sync(message) => Some(message.document_id),
            Message::DocUnavailable { document_id, .. }
            | Message::Ephemeral { document_id, .. }
            | Message::Refused { document_id, .. } => Some(*document_id),
            _ => None,
        }
    }

    /// Encodes this message as one CBOR map (the payload of one binary frame).
    pub fn encode(&self) -> Vec<u8> {
        let mut map: Vec<(Value, Value)> = vec![entry("type", text(self.message_type()))];
        match self {
            Message::Join {
                sender_id,
                peer_metadata,
                supported_protocol_versions,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                if let Some(metadata) = peer_metadata {
                    map.push(entry("peerMetadata", metadata_value(metadata)));
                }
                if let Some(versions) = supported_protocol_versions {
                    let versions = versions.iter().map(|v| text(v)).collect();
                    map.push(entry("supportedProtocolVersions", Value::Array(versions)));
                }
            }
            Message::Peer {
                sender_id,
                target_id,
                peer_metadata,
                selected_protocol_version,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                map.push(entry("targetId", peer(target_id)));
                if let Some(metadata) = peer_metadata {
                    map.push(entry("peerMetadata", metadata_value(metadata)));
                }
                map.push(entry(
                    "selectedProtocolVersion",
                    text(selected_protocol_version),
                ));
            }
            Message::Leave { sender_id } => map.push(entry("senderId", peer(sender_id))),
            Message::Request(message) | Message::Sync(message) => {
                map.push(entry("senderId", peer(&message.sender_id)));
                map.push(entry("targetId", peer(&message.target_id)));
                map.push(entry("documentId", text(&message.document_id.to_string())));
                let (records, data) =
                    carrier::split_raw(&message.data).unwrap_or((&[], message.data.as_slice()));
                map.push(entry("data", Value::Bytes(data.to_vec())));
                if !records.is_empty() {
                    map.push(entry(SIGNATURES_FIELD, Value::Bytes(records.to_vec())));
                }
            }
            Message::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                map.push(entry("targetId", peer(target_id)));
                map.push(entry("documentId", text(&document_id.to_string())));
            }
            Message::Ephemeral {
                sender_id,
                target_id,
                count,
                session_id,
                document_id,
                data,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                map.push(entry("targetId", peer(target_id)));
                map.push(entry("count", Value::Integer((*count).into())));
                map.push(entry("sessionId", text(session_id)));
                map.push(entry("documentId", text(&document_id.to_string())));
                map.push(entry("data", Value::Bytes(data.clone())));
            }
            Message::Error {
                sender_id,
                target_id,
                message,
            } => {
                if let Some(sender_id) = sender_id {
                    map.push(entry("senderId", peer(sender_id)));
                }
                if let Some(target_id) = target_id {
                    map.push(entry("targetId", peer(target_id)));
                }
                map.push(entry("message", text(message)));
            }
            Message::HeadsDigests {
                sender_id,
                target_id,
                digests,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                map.push(entry("targetId", peer(target_id)));
                map.push(entry("digests", Value::Bytes(digests.records.clone())));
            }
            Message::HeadsDiffer {
                sender_id,
                target_id,
                documents,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                map.push(entry("targetId", peer(target_id)));
                let ids = documents.iter().flat_map(|d| *d.as_bytes()).collect();
                map.push(entry("documents", Value::Bytes(ids)));
            }
            Message::Refused {
                sender_id,
                target_id,
                document_id,
                refused,
            } => {
                map.push(entry("senderId", peer(sender_id)));
                map.push(entry("targetId", peer(target_id)));
                map.push(entry("documentId", text(&document_id.to_string())));
                let items = refused
                    .iter()
                    .map(|r| {
                        Value::Map(vec![
                            entry("hash", text(&r.change_hash)),
                            entry("rule", text(&r.rule)),
                        ])
                    })
                    .collect();
                map.push(entry("refused", Value::Array(items)));
            }
            Message::Unknown { sender_id, .. } => {
                if let Some(sender_id) = sender_id {
                    map.push(entry("senderId", peer(sender_id)));
                }
            }
        }
        let mut bytes = Vec::new();
        // Writing into a Vec cannot fail, and every value above is plain data.
        if ciborium::into_writer(&Value::Map(map), &mut bytes).is_err() {
            bytes.clear();
        }
        bytes
    }

    /// Decodes one frame, refusing frames above [`DEFAULT_MAX_FRAME_BYTES`].
    pub fn decode(frame: &[u8]) -> Result<Self, SyncError> {
        Self::decode_with_limit(frame, DEFAULT_MAX_FRAME_BYTES)
    }

    /// Decodes one frame, refusing frames above `limit` bytes before reading them.
    pub fn decode_with_limit(frame: &[u8], limit: usize) -> Result<Self, SyncError> {
        if frame.len() > limit {
            return Err(SyncError::FrameTooLarge {
                size: frame.len(),
                limit,
            });
        }
        if frame.is_empty() {
            return Err(SyncError::MalformedFrame("empty frame".into()));
        }
        let mut rest = frame;
        let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_NESTING)
            .map_err(|error| SyncError::MalformedFrame(cbor_reason(&error)))?;
        if !rest.is_empty() {
            return Err(SyncError::MalformedFrame(format!(
                "{} bytes after the message",
                rest.len()
            )));
        }
        let Value::Map(entries) = value else {
            return Err(SyncError::MalformedFrame("not a CBOR map".into()));
        };
        Fields::new(entries)?.into_message()
    }
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

fn entry(key: &str, value: Value) -> (Value, Value) {
    (text(key), value)
}

fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

fn peer(id: &PeerId) -> Value {
    text(id.as_str())
}

fn metadata_value(metadata: &PeerMetadata) -> Value {
    let mut map = Vec::new();
    if let Some(storage_id) = &metadata.storage_id {
        map.push(entry("storageId", text(storage_id)));
    }
    map.push(entry("isEphemeral", Value::Bool(metadata.is_ephemeral)));
    if !metadata.enrolled_documents.is_empty() {
        let ids = metadata
            .enrolled_documents
            .iter()
            .map(|id| text(&id.to_string()))
            .collect();
        map.push(entry(ENROLLED_DOCUMENTS_KEY, Value::Array(ids)));
    }
    if metadata.heads_digest {
        map.push(entry(
            HEADS_DIGEST_KEY,
            Value::Integer(HEADS_DIGEST_VERSION.into()),
        ));
    }
    if metadata.refused_notices {
        map.push(entry(
            REFUSED_NOTICES_KEY,
            Value::Integer(REFUSED_NOTICES_VERSION.into()),
        ));
    }
    Value::Map(map)
}

fn cbor_reason<E: fmt::Debug>(error: &ciborium::de::Error<E>) -> String {
    match error {
        ciborium::de::Error::Io(_) => "truncated CBOR".into(),
        ciborium::de::Error::Syntax(offset) => format!("CBOR syntax error at byte {offset}"),
        ciborium::de::Error::Semantic(offset, _) => match offset {
            Some(offset) => format!("unsupported CBOR item at byte {offset}"),
            None => "unsupported CBOR item".into(),
        },
        ciborium::de::Error::RecursionLimitExceeded => "CBOR nested too deeply".into(),
    }
}

/// Document ids written back to back as their 16 raw bytes.
fn document_ids(bytes: &[u8]) -> Result<Vec<DocumentId>, SyncError> {
    if !bytes.len().is_multiple_of(16) {
        return Err(SyncError::InvalidField {
            field: "documents",
            reason: "not a whole number of 16-byte document ids",
        });
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| {
            let mut id = [0u8; 16];
            id.copy_from_slice(chunk);
            DocumentId::from_bytes(id)
        })
        .collect())
}

/// The list of a [`Message::Refused`]: 1 to [`MAX_REFUSALS_PER_NOTICE`] maps, each a `hash` of
/// 64 hex digits and a non-empty `rule` of at most [`MAX_RULE_BYTES`].
fn change_refusals(value: Value) -> Result<Vec<ChangeRefusal>, SyncError> {
    let invalid = |reason| SyncError::InvalidField {
        field: "refused",
        reason,
    };
    let Value::Array(items) = value else {
        return Err(invalid("not an array"));
    };
    if items.is_empty() {
        return Err(invalid("names no change"));
    }
    if items.len() > MAX_REFUSALS_PER_NOTICE {
        return Err(invalid("names more than 1024 changes"));
    }
    items
        .into_iter()
        .map(|item| {
            let Value::Map(fields) = item else {
                return Err(invalid("an entry is not a map"));
            };
            let (mut hash, mut rule) = (None, None);
            for (key, value) in fields {
                match (key.as_text(), value) {
                    (Some("hash"), Value::Text(text)) if hash.is_none() => hash = Some(text),
                    (Some("rule"), Value::Text(text)) if rule.is_none() => rule = Some(text),
                    (Some("hash" | "rule"), _) => {
                        return Err(invalid("a hash or rule is not a single string"))
                    }
                    _ => {}
                }
            }
            let hash = hash.ok_or(invalid("an entry has no hash"))?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("a hash is not 64 hex digits"));
            }
            let rule = rule.ok_or(invalid("an entry has no rule"))?;
            if rule.is_empty() || rule.len() > MAX_RULE_BYTES {
                return Err(invalid("a rule is empty or longer than 512 bytes"));
            }
            Ok(ChangeRefusal {
                change_hash: hash.to_ascii_lowercase(),
                rule,
            })
        })
        .collect()
}

/// The text-keyed entries of a decoded map.
struct Fields {
    message_type: String,
    entries: Vec<(String, Value)>,
}

impl Fields {
    fn new(entries: Vec<(Value, Value)>) -> Result<Self, SyncError> {
        let mut message_type = None;
        let mut fields = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Value::Text(key) = key else {
                continue;
            };
            if key == "type" {
                match value {
                    Value::Text(kind) => message_type = Some(kind),
                    _ => {
                        return Err(SyncError::InvalidField {
                            field: "type",
                            reason: "not a string",
                        })
                    }
                }
            } else {
                fields.push((key, value));
            }
        }
        let message_type =
            message_type.ok_or(SyncError::MalformedFrame("map has no `type`".into()))?;
        Ok(Self {
            message_type,
            entries: fields,
        })
    }

    /// Takes a field out; the first occurrence wins, `null`/`undefined` count as absent.
    fn take(&mut self, field: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(key, _)| key == field)?;
        match self.entries.swap_remove(index).1 {
            Value::Null => None,
            value => Some(value),
        }
    }

    fn missing(&self, field: &'static str) -> SyncError {
        SyncError::MissingField {
            message_type: self.message_type.clone(),
            field,
        }
    }

    fn opt_text(&mut self, field: &'static str) -> Result<Option<String>, SyncError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Text(value)) => Ok(Some(value)),
            Some(_) => Err(SyncError::InvalidField {
                field,
                reason: "not a string",
            }),
        }
    }

    fn text(&mut self, field: &'static str) -> Result<String, SyncError> {
        self.opt_text(field)?.ok_or_else(|| self.missing(field))
    }

    fn peer(&mut self, field: &'static str) -> Result<PeerId, SyncError> {
        self.text(field).map(PeerId)
    }

    fn opt_peer(&mut self, field: &'static str) -> Result<Option<PeerId>, SyncError> {
        Ok(self.opt_text(field)?.map(PeerId))
    }

    fn document_id(&mut self) -> Result<DocumentId, SyncError> {
        DocumentId::parse(&self.text("documentId")?)
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, SyncError> {
        match self.take(field) {
            None => Err(self.missing(field)),
            Some(value) => bytes_of(value).ok_or(SyncError::InvalidField {
                field,
                reason: "not a byte string",
            }),
        }
    }

    fn count(&mut self, field: &'static str) -> Result<u64, SyncError> {
        let invalid = SyncError::InvalidField {
            field,
            reason: "not a non-negative integer",
        };
        match self.take(field) {
            None => Err(self.missing(field)),
            Some(Value::Integer(value)) => u64::try_from(value).map_err(|_| invalid),
            // JavaScript numbers may arrive as floats; accept whole ones.
            Some(Value::Float(value))
                if value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64 =>
            {
                Ok(value as u64)
            }
            Some(_) => Err(invalid),
        }
    }

    fn metadata(&mut self) -> Result<Option<PeerMetadata>, SyncError> {
        let invalid = |reason| SyncError::InvalidField {
            field: "peerMetadata",
            reason,
        };
        let Some(value) = self.take("peerMetadata") else {
            return Ok(None);
        };
        let Value::Map(entries) = value else {
            return Err(invalid("not a map"));
        };
        let mut metadata = PeerMetadata::default();
        for (key, value) in entries {
            match (key.as_text(), value) {
                (Some("storageId"), Value::Text(id)) => metadata.storage_id = Some(id),
                (Some("storageId"), Value::Null) => {}
                (Some("storageId"), _) => return Err(invalid("storageId is not a string")),
                (Some("isEphemeral"), Value::Bool(flag)) => metadata.is_ephemeral = flag,
                (Some("isEphemeral"), Value::Null) => {}
                (Some("isEphemeral"), _) => return Err(invalid("isEphemeral is not a boolean")),
                (Some(ENROLLED_DOCUMENTS_KEY), Value::Array(items)) => {
                    for item in items {
                        let id = item
                            .as_text()
                            .and_then(|id| DocumentId::parse(id).ok())
                            .ok_or_else(|| invalid("an enrolled document id is invalid"))?;
                        metadata.enrolled_documents.push(id);
                    }
                }
                (Some(ENROLLED_DOCUMENTS_KEY), _) => {
                    return Err(invalid("enrolled documents are not an array"))
                }
                // Another version (or a value of another type) is not this extension: the
                // peer is served without it.
                (Some(HEADS_DIGEST_KEY), Value::Integer(version)) => {
                    metadata.heads_digest = u64::try_from(version) == Ok(HEADS_DIGEST_VERSION);
                }
                (Some(REFUSED_NOTICES_KEY), Value::Integer(version)) => {
                    metadata.refused_notices =
                        u64::try_from(version) == Ok(REFUSED_NOTICES_VERSION);
                }
                _ => {}
            }
        }
        Ok(Some(metadata))
    }

    fn versions(&mut self) -> Result<Option<Vec<String>>, SyncError> {
        let invalid = SyncError::InvalidField {
            field: "supportedProtocolVersions",
            reason: "not an array of strings",
        };
        match self.take("supportedProtocolVersions") {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Text(version) => Ok(version),
                    _ => Err(SyncError::InvalidField {
                        field: "supportedProtocolVersions",
                        reason: "not an array of strings",
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid),
        }
    }

    fn document_message(&mut self) -> Result<DocumentMessage, SyncError> {
        Ok(DocumentMessage {
            sender_id: self.peer("senderId")?,
            target_id: self.peer("targetId")?,
            document_id: self.document_id()?,
            data: {
                let data = self.bytes("data")?;
                match self.take(SIGNATURES_FIELD) {
                    None => data,
                    Some(value) => {
                        let records = bytes_of(value).ok_or(SyncError::InvalidField {
                            field: SIGNATURES_FIELD,
                            reason: "not a byte string",
                        })?;
                        carrier::join(&records, &data).map_err(|_| SyncError::InvalidField {
                            field: SIGNATURES_FIELD,
                            reason: "not whole signature records",
                        })?
                    }
                }
            },
        })
    }

    fn into_message(mut self) -> Result<Message, SyncError> {
        let message = match self.message_type.as_str() {
            "join" => Message::Join {
                sender_id: self.peer("senderId")?,
                peer_metadata: self.metadata()?,
                supported_protocol_versions: self.versions()?,
            },
            "peer" => Message::Peer {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                peer_metadata: self.metadata()?,
                selected_protocol_version: self.text("selectedProtocolVersion")?,
            },
            "leave" => Message::Leave {
                sender_id: self.peer("senderId")?,
            },
            "request" => Message::Request(self.document_message()?),
            "sync" => Message::Sync(self.document_message()?),
            "doc-unavailable" => Message::DocUnavailable {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document_id()?,
            },
            "ephemeral" => Message::Ephemeral {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                count: self.count("count")?,
                session_id: self.text("sessionId")?,
                document_id: self.document_id()?,
                data: self.bytes("data")?,
            },
            HEADS_DIGESTS_TYPE => Message::HeadsDigests {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                digests: HeadsDigests::from_bytes(self.bytes("digests")?)?,
            },
            HEADS_DIFFER_TYPE => Message::HeadsDiffer {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                documents: document_ids(&self.bytes("documents")?)?,
            },
            REFUSED_TYPE => Message::Refused {
                sender_id: self.peer("senderId")?,
                target_id: self.peer("targetId")?,
                document_id: self.document_id()?,
                refused: change_refusals(
                    self.take("refused")
                        .ok_or_else(|| self.missing("refused"))?,
                )?,
            },
            "error" => Message::Error {
                sender_id: self.opt_peer("senderId")?,
                target_id: self.opt_peer("targetId")?,
                message: self.opt_text("message")?.unwrap_or_default(),
            },
            _ => Message::Unknown {
                sender_id: self.opt_peer("senderId").ok().flatten(),
                message_type: self.message_type,
            },
        };
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    // Document id of 9b2f4c1e-8d3a-4f6b-a1c2-3d4e5f607182, as automerge-repo writes it.
    const DOC: &str = "3APv7dCA4yNK5y5HxwTGR7VpRu3D";

    fn doc() -> DocumentId {
        DocumentId::parse(DOC).unwrap()
    }

    fn all_messages() -> Vec<Message> {
        vec![
            Message::Join {
                sender_id: "device-a".into(),
                peer_metadata: Some(PeerMetadata {
                    storage_id: Some("store-1".into()),
                    is_ephemeral: false,
                    enrolled_documents: Vec::new(),
                    heads_digest: false,
                    refused_notices: false,
                }),
                supported_protocol_versions: Some(vec!["1".into()]),
            },
            Message::Join {
                sender_id: "device-b".into(),
                peer_metadata: None,
                supported_protocol_versions: None,
            },
            Message::Peer {
                sender_id: "relay".into(),
                target_id: "device-a".into(),
                peer_metadata: Some(PeerMetadata {
                    storage_id: None,
                    is_ephemeral: true,
                    enrolled_documents: Vec::new(),
                    heads_digest: false,
                    refused_notices: false,
                }),
                selected_protocol_version: "1".into(),
            },
            Message::Leave {
                sender_id: "device-a".into(),
            },
            Message::Request(DocumentMessage {
                sender_id: "a".into(),
                target_id: "b".into(),
                document_id: doc(),
                data: vec![0x42, 0, 1],
            }),
            Message::Sync(DocumentMessage {
                sender_id: "a".into(),
                target_id: "b".into(),
                document_id: doc(),
                data: vec![0x42; 300],
            }),
            Message::DocUnavailable {
                sender_id: "b".into(),
                target_id: "a".into(),
                document_id: doc(),
            },
            Message::Ephemeral {
                sender_id: "a".into(),
                target_id: "b".into(),
                count: u64::from(u32::MAX) + 5,
                session_id: "session".into(),
                document_id: doc(),
                data: vec![1, 2, 3],
            },
            Message::Error {
                sender_id: Some("relay".into()),
                target_id: None,
                message: "unsupported protocol version".into(),
            },
            Message::Unknown {
                message_type: "remote-heads-changed".into(),
                sender_id: Some("a".into()),
            },
            Message::Peer {
                sender_id: "relay".into(),
                target_id: "device-a".into(),
                peer_metadata: Some(PeerMetadata {
                    storage_id: Some("relay-store".into()),
                    is_ephemeral: false,
                    enrolled_documents: vec![doc()],
                    heads_digest: true,
                    refused_notices: true,
                }),
                selected_protocol_version: "1".into(),
            },
            Message::HeadsDigests {
                sender_id: "device-a".into(),
                target_id: "relay".into(),
                digests: HeadsDigests::new(&[(doc(), [1, 2, 3, 4, 5, 6, 7, 8])]),
            },
            Message::HeadsDiffer {
                sender_id: "relay".into(),
                target_id: "device-a".into(),
                documents: vec![doc()],
            },
            Message::HeadsDiffer {
                sender_id: "relay".into(),
                target_id: "device-a".into(),
                documents: Vec::new(),
            },
            Message::Refused {
                sender_id: "relay".into(),
                target_id: "device-a".into(),
                document_id: doc(),
                refused: vec![
                    refusal('a', "only a counselor writes a goal's status"),
                    refusal('b', "builds on a refused change"),
                ],
            },
            Message::Join {
                sender_id: "device-c".into(),
                peer_metadata: Some(PeerMetadata {
                    storage_id: Some("store-3".into()),
                    is_ephemeral: false,
                    enrolled_documents: Vec::new(),
                    heads_digest: true,
                    refused_notices: true,
                }),
                supported_protocol_versions: Some(vec!["1".into()]),
            },
        ]
    }

    fn refusal(digit: char, rule: &str) -> ChangeRefusal {
        ChangeRefusal {
            change_hash: std::iter::repeat_n(digit, 64).collect(),
            rule: rule.into(),
        }
    }

    /// A `alliance-refused` frame whose `refused` field is `refused` (absent when None).
    fn refused_frame(refused: Option<Value>) -> Vec<u8> {
        let mut map = vec![
            entry("type", text(REFUSED_TYPE)),
            entry("senderId", text("relay")),
            entry("targetId", text("device")),
            entry("documentId", text(DOC)),
        ];
        if let Some(refused) = refused {
            map.push(entry("refused", refused));
        }
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Map(map), &mut out).unwrap();
        out
    }

    fn refused_entry(hash: Value, rule: Value) -> Value {
        Value::Map(vec![entry("hash", hash), entry("rule", rule)])
    }

    #[test]
    fn refused_notices_decode_within_bounds_and_refuse_garbage() {
        let hash = || text(&"0f".repeat(32));
        let rule = || text("only a counselor writes a goal's status");
        // Upper-case digits are read as the same hash.
        let decoded = Message::decode(&refused_frame(Some(Value::Array(vec![refused_entry(
            text(&"0F".repeat(32)),
            rule(),
        )]))))
        .unwrap();
        let Message::Refused { refused, .. } = decoded else {
            panic!("not a refused notice: {decoded:?}");
        };
        assert_eq!(refused[0].change_hash, "0f".repeat(32));
        // The most a notice may name is accepted; one more is not.
        let many = |n: usize| Value::Array((0..n).map(|_| refused_entry(hash(), rule())).collect());
        assert!(Message::decode(&refused_frame(Some(many(MAX_REFUSALS_PER_NOTICE)))).is_ok());
        let garbage: Vec<(&str, Option<Value>)> = vec![
            ("absent", None),
            ("not an array", Some(text("refused"))),
            ("empty", Some(Value::Array(Vec::new()))),
            ("too many", Some(many(MAX_REFUSALS_PER_NOTICE + 1))),
            ("entry not a map", Some(Value::Array(vec![hash()]))),
            (
                "short hash",
                Some(Value::Array(vec![refused_entry(text("0f0f"), rule())])),
            ),
            (
                "hash not hex",
                Some(Value::Array(vec![refused_entry(
                    text(&"zz".repeat(32)),
                    rule(),
                )])),
            ),
            (
                "hash as bytes",
                Some(Value::Array(vec![refused_entry(
                    Value::Bytes(vec![0; 32]),
                    rule(),
                )])),
            ),
            (
                "no rule",
                Some(Value::Array(vec![Value::Map(vec![entry("hash", hash())])])),
            ),
            (
                "empty rule",
                Some(Value::Array(vec![refused_entry(hash(), text(""))])),
            ),
            (
                "rule too long",
                Some(Value::Array(vec![refused_entry(
                    hash(),
                    text(&"x".repeat(MAX_RULE_BYTES + 1)),
                )])),
            ),
            (
                "hash twice",
                Some(Value::Array(vec![Value::Map(vec![
                    entry("hash", hash()),
                    entry("hash", hash()),
                    entry("rule", rule()),
                ])])),
            ),
        ];
        for (name, refused) in garbage {
            let result = Message::decode(&refused_frame(refused));
            assert!(
                matches!(
                    result,
                    Err(SyncError::InvalidField {
                        field: "refused",
                        ..
                    } | SyncError::MissingField {
                        field: "refused",
                        ..
                    })
                ),
                "{name}: {result:?}"
            );
        }
        // A notice without a valid document id is refused too.
        let map = Value::Map(vec![
            entry("type", text(REFUSED_TYPE)),
            entry("senderId", text("relay")),
            entry("targetId", text("device")),
            entry("documentId", text("not-a-doc")),
            entry("refused", many(1)),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&map, &mut bytes).unwrap();
        assert!(matches!(
            Message::decode(&bytes),
            Err(SyncError::InvalidDocumentId(_))
        ));
    }

    #[test]
    fn refused_notices_capability_is_read_only_at_version_one() {
        let metadata = |value: Value| {
            let map = Value::Map(vec![
                entry("type", text("join")),
                entry("senderId", text("a")),
                entry(
                    "peerMetadata",
                    Value::Map(vec![entry(REFUSED_NOTICES_KEY, value)]),
                ),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&map, &mut out).unwrap();
            match Message::decode(&out).unwrap() {
                Message::Join { peer_metadata, .. } => peer_metadata.unwrap().refused_notices,
                other => panic!("not a join: {other:?}"),
            }
        };
        assert!(metadata(Value::Integer(1.into())));
        assert!(!metadata(Value::Integer(2.into())));
        assert!(!metadata(Value::Bool(true)));
        // Absent (what automerge-repo peers send): not spoken.
        let join = Message::Join {
            sender_id: "js".into(),
            peer_metadata: Some(PeerMetadata::default()),
            supported_protocol_versions: None,
        };
        let Message::Join { peer_metadata, .. } = Message::decode(&join.encode()).unwrap() else {
            panic!("not a join");
        };
        assert!(!peer_metadata.unwrap().refused_notices);
    }

    #[test]
    fn heads_digests_are_fixed_size_records_checked_on_decode() {
        let other = DocumentId::from_uuid(uuid::Uuid::new_v4());
        let entries = vec![(doc(), [9; 8]), (other, [7; 8])];
        let digests = HeadsDigests::new(&entries);
        assert_eq!(digests.len(), 2);
        assert_eq!(digests.entries(2).unwrap(), entries);
        assert!(matches!(digests.entries(1), Err(SyncError::Limit(_))));
        let twice = HeadsDigests::new(&[(doc(), [1; 8]), (doc(), [2; 8])]);
        assert!(matches!(
            twice.entries(10),
            Err(SyncError::InvalidField {
                field: "digests",
                ..
            })
        ));
        let encode = |field: &str, bytes: Vec<u8>, kind: &str| {
            let map = Value::Map(vec![
                entry("type", text(kind)),
                entry("senderId", text("a")),
                entry("targetId", text("b")),
                entry(field, Value::Bytes(bytes)),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&map, &mut out).unwrap();
            out
        };
        for bad in [vec![0u8; 23], vec![0u8; 25], vec![0u8; 47]] {
            assert!(matches!(
                Message::decode(&encode("digests", bad, HEADS_DIGESTS_TYPE)),
                Err(SyncError::InvalidField {
                    field: "digests",
                    ..
                })
            ));
        }
        assert!(matches!(
            Message::decode(&encode("documents", vec![0u8; 17], HEADS_DIFFER_TYPE)),
            Err(SyncError::InvalidField {
                field: "documents",
                ..
            })
        ));
        assert!(matches!(
            Message::decode(&encode("other", vec![0u8; 24], HEADS_DIGESTS_TYPE)),
            Err(SyncError::MissingField {
                field: "digests",
                ..
            })
        ));
    }

    #[test]
    fn heads_digest_capability_is_read_only_at_version_one() {
        let metadata = |value: Value| {
            let map = Value::Map(vec![
                entry("type", text("join")),
                entry("senderId", text("a")),
                entry(
                    "peerMetadata",
                    Value::Map(vec![
                        entry("isEphemeral", Value::Bool(false)),
                        entry(HEADS_DIGEST_KEY, value),
                    ]),
                ),
            ]);
            let mut out = Vec::new();
            ciborium::into_writer(&map, &mut out).unwrap();
            match Message::decode(&out).unwrap() {
                Message::Join { peer_metadata, .. } => peer_metadata.unwrap().heads_digest,
                other => panic!("not a join: {other:?}"),
            }
        };
        assert!(metadata(Value::Integer(1.into())));
        assert!(!metadata(Value::Integer(2.into())));
        assert!(!metadata(Value::Integer((-1).into())));
        assert!(!metadata(text("1")));
    }

    #[test]
    fn every_message_round_trips() {
        for message in all_messages() {
            let bytes = message.encode();
            assert!(!bytes.is_empty());
            assert_eq!(Message::decode(&bytes).unwrap(), message, "{message:?}");
        }
    }

    #[test]
    fn decodes_cbor_x_join_with_map16_headers_and_undefined() {
        // `cbor.encode` of automerge-repo 2.5.6 (cbor-x) for
        // {type:"join", senderId:"peer-js", peerMetadata:{storageId: undefined,
        //  isEphemeral: true}, supportedProtocolVersions:["1"]}
        let bytes = hex(concat!(
            "b900046474797065646a6f696e6873656e646572496467706565722d6a736c7065",
            "65724d65746164617461b900026973746f726167654964f76b6973457068656d65",
            "72616cf57819737570706f7274656450726f746f636f6c56657273696f6e738161",
            "31"
        ));
        assert_eq!(&bytes[..3], &[0xb9, 0x00, 0x04]);
        assert_eq!(
            Message::decode(&bytes).unwrap(),
            Message::Join {
                sender_id: "peer-js".into(),
                peer_metadata: Some(PeerMetadata {
                    storage_id: None,
                    is_ephemeral: true,
                    enrolled_documents: Vec::new(),
                    heads_digest: false,
                    refused_notices: false,
                }),
                supported_protocol_versions: Some(vec!["1".into()]),
            }
        );
    }

    #[test]
    fn decodes_cbor_x_sync_and_ephemeral() {
        let sync = hex(concat!(
            "b9000564747970656473796e636873656e646572496461616874617267657449",
            "6461626a646f63756d656e744964781c334150763764434134794e4b35793548",
            "78775447523756705275334464646174614442010203"
        ));
        assert_eq!(&sync[..3], &[0xb9, 0x00, 0x05]);
        assert_eq!(
            Message::decode(&sync).unwrap(),
            Message::Sync(DocumentMessage {
                sender_id: "a".into(),
                target_id: "b".into(),
                document_id: doc(),
                data: vec![0x42, 1, 2, 3],
            })
        );
        let ephemeral = hex(concat!(
            "b90007647479706569657068656d6572616c6873656e64657249646161687461",
            "726765744964616265636f756e74076973657373696f6e49646273316a646f63",
            "756d656e744964781c334150763764434134794e4b3579354878775447523756",
            "705275334464646174614101"
        ));
        assert_eq!(
            Message::decode(&ephemeral).unwrap(),
            Message::Ephemeral {
                sender_id: "a".into(),
                target_id: "b".into(),
                count: 7,
                session_id: "s1".into(),
                document_id: doc(),
                data: vec![1],
            }
        );
    }

    #[test]
    fn decodes_non_minimal_headers_everywhere() {
        // {type: "leave", senderId: "x"} with a 32-bit map length, a 16-bit text length,
        // an 8-bit text length below 24, and then the same map with an indefinite length.
        let bytes = hex(concat!(
            "ba00000002",
            "780474797065",
            "7900056c65617665",
            "6873656e6465724964",
            "7801",
            "78"
        ));
        let expected = Message::Leave {
            sender_id: "x".into(),
        };
        assert_eq!(Message::decode(&bytes).unwrap(), expected);
        let indefinite = hex("bf6474797065656c656176656873656e64657249646178ff");
        assert_eq!(Message::decode(&indefinite).unwrap(), expected);
    }

    #[test]
    fn accepts_tagged_byte_strings_and_float_counts() {
        let map = Value::Map(vec![
            entry("type", text("ephemeral")),
            entry("senderId", text("a")),
            entry("targetId", text("b")),
            entry("count", Value::Float(12.0)),
            entry("sessionId", text("s")),
            entry("documentId", text(DOC)),
            entry("data", Value::Tag(64, Box::new(Value::Bytes(vec![9, 9])))),
            entry("extra", text("ignored")),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&map, &mut bytes).unwrap();
        let Message::Ephemeral { count, data, .. } = Message::decode(&bytes).unwrap() else {
            panic!("not ephemeral");
        };
        assert_eq!((count, data), (12, vec![9, 9]));
    }

    #[test]
    fn tolerates_unknown_types() {
        let map = Value::Map(vec![
            entry("type", text("remote-heads-changed")),
            entry("senderId", text("js")),
            entry("targetId", text("me")),
            entry("documentId", text(DOC)),
            entry("newHeads", Value::Map(vec![])),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&map, &mut bytes).unwrap();
        assert_eq!(
            Message::decode(&bytes).unwrap(),
            Message::Unknown {
                message_type: "remote-heads-changed".into(),
                sender_id: Some("js".into()),
            }
        );
    }

    #[test]
    fn refuses_garbage() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("not cbor", b"hello world".to_vec()),
            ("truncated map", hex("b9000564747970")),
            ("array", hex("8101")),
            ("trailing bytes", {
                let mut bytes = all_messages()[3].encode();
                bytes.push(0);
                bytes
            }),
            ("no type", hex("a1616101")),
            ("deep nesting", {
                let mut bytes = vec![0x81; 100];
                bytes.push(0);
                bytes
            }),
        ];
        for (name, bytes) in cases {
            assert!(
                matches!(Message::decode(&bytes), Err(SyncError::MalformedFrame(_))),
                "{name}: {:?}",
                Message::decode(&bytes)
            );
        }
    }

    #[test]
    fn refuses_missing_or_mistyped_fields() {
        let encode = |entries: Vec<(Value, Value)>| {
            let mut bytes = Vec::new();
            ciborium::into_writer(&Value::Map(entries), &mut bytes).unwrap();
            bytes
        };
        let no_data = encode(vec![
            entry("type", text("sync")),
            entry("senderId", text("a")),
            entry("targetId", text("b")),
            entry("documentId", text(DOC)),
        ]);
        assert!(matches!(
            Message::decode(&no_data),
            Err(SyncError::MissingField { field: "data", .. })
        ));
        let text_data = encode(vec![
            entry("type", text("request")),
            entry("senderId", text("a")),
            entry("targetId", text("b")),
            entry("documentId", text(DOC)),
            entry("data", text("not bytes")),
        ]);
        assert!(matches!(
            Message::decode(&text_data),
            Err(SyncError::InvalidField { field: "data", .. })
        ));
        let bad_doc = encode(vec![
            entry("type", text("doc-unavailable")),
            entry("senderId", text("a")),
            entry("targetId", text("b")),
            entry("documentId", text("not-a-doc")),
        ]);
        assert!(matches!(
            Message::decode(&bad_doc),
            Err(SyncError::InvalidDocumentId(_))
        ));
        let negative_count = encode(vec![
            entry("type", text("ephemeral")),
            entry("senderId", text("a")),
            entry("targetId", text("b")),
            entry("count", Value::Integer((-1).into())),
            entry("sessionId", text("s")),
            entry("documentId", text(DOC)),
            entry("data", Value::Bytes(vec![1])),
        ]);
        assert!(matches!(
            Message::decode(&negative_count),
            Err(SyncError::InvalidField { field: "count", .. })
        ));
        let numeric_type = encode(vec![entry("type", Value::Integer(3.into()))]);
        assert!(matches!(
            Message::decode(&numeric_type),
            Err(SyncError::InvalidField { field: "type", .. })
        ));
    }

    #[test]
    fn refuses_oversized_frames_before_decoding() {
        let message = all_messages()[5].encode();
        assert!(matches!(
            Message::decode_with_limit(&message, 100),
            Err(SyncError::FrameTooLarge { limit: 100, .. })
        ));
        assert!(Message::decode_with_limit(&message, message.len()).is_ok());
        // Garbage that is too large is refused by size, not by content.
        let huge = vec![0xffu8; DEFAULT_MAX_FRAME_BYTES + 1];
        assert!(matches!(
            Message::decode(&huge),
            Err(SyncError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn negotiates_protocol_version_one_only() {
        assert_eq!(select_protocol_version(None).unwrap(), "1");
        assert_eq!(
            select_protocol_version(Some(&["0".into(), "1".into()])).unwrap(),
            "1"
        );
        assert!(matches!(
            select_protocol_version(Some(&["2".into()])),
            Err(SyncError::UnsupportedProtocolVersion { offered }) if offered == ["2"]
        ));
        assert!(select_protocol_version(Some(&[])).is_err());
        assert!(check_selected_version("1").is_ok());
        assert!(matches!(
            check_selected_version("2"),
            Err(SyncError::UnsupportedProtocolVersion { .. })
        ));
    }
}
