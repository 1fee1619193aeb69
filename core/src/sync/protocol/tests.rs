//! Frames as automerge-repo writes them, and every malformed one refused with its field.

use super::encode::{entry, text};
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
