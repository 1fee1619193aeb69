//! Writing a [`Message`] as one CBOR map, and reading a frame back into one.

use super::decode::{cbor_reason, Fields};
use super::*;

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

pub(super) fn entry(key: &str, value: Value) -> (Value, Value) {
    (text(key), value)
}

pub(super) fn text(value: &str) -> Value {
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
