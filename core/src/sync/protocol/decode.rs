//! Reading the fields of a decoded CBOR map: types, limits and typed errors per field.

use super::*;

pub(super) fn cbor_reason<E: fmt::Debug>(error: &ciborium::de::Error<E>) -> String {
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
pub(super) struct Fields {
    message_type: String,
    entries: Vec<(String, Value)>,
}

impl Fields {
    pub(super) fn new(entries: Vec<(Value, Value)>) -> Result<Self, SyncError> {
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

    pub(super) fn into_message(mut self) -> Result<Message, SyncError> {
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
