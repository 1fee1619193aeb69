//! Device ↔ relay session logic on the simulated network (`relay::sim`): convergence,
//! doc-unavailable, the heads digest, per-connection conversations, refused notices, bad input
//! and ephemeral peers — no socket, no runtime. What needs a socket (WebSocket framing,
//! timers, watch mode's reconnects) stays in `tests.rs`.

use std::sync::Arc;

use uuid::Uuid;

use super::memory_store::MemoryStore;
use super::relay::sim::{Faults, SimConnection, SimRelay};
use super::*;

fn doc() -> DocumentId {
    DocumentId::from_uuid(Uuid::new_v4())
}

fn relay(store: Arc<dyn SyncStore>) -> SimRelay {
    SimRelay::new(store, RelayOptions::default()).unwrap()
}

fn relay_with(store: Arc<dyn SyncStore>, options: RelayOptions) -> SimRelay {
    SimRelay::new(store, options).unwrap()
}

fn sync(store: &Arc<MemoryStore>, relay: &SimRelay) -> SyncSummary {
    relay
        .sync_once(store.clone(), &SyncOptions::default())
        .unwrap()
}

#[test]
fn two_devices_converge_through_the_relay() {
    for seed in 0..4 {
        let relay_store = Arc::new(MemoryStore::new("relay"));
        let relay = relay(relay_store.clone());
        let a = Arc::new(MemoryStore::new("device-a"));
        let b = Arc::new(MemoryStore::new("device-b"));
        let plan = doc();
        a.put(plan, "title", "first");
        b.want(plan);
        let sync = |store: &Arc<MemoryStore>| {
            relay
                .sync_once_with(
                    store.clone(),
                    &SyncOptions::default(),
                    Faults::reordering(seed),
                )
                .unwrap()
        };

        let summary = sync(&a);
        assert_eq!((summary.documents_total, summary.documents_synced), (1, 1));
        assert_eq!(relay_store.get(plan, "title").as_deref(), Some("first"));

        let summary = sync(&b);
        assert_eq!(summary.documents_updated, vec![plan]);
        assert_eq!(b.get(plan, "title").as_deref(), Some("first"));

        // Offline edits on both sides, then any order of syncs.
        a.put(plan, "title", "from a");
        a.put(plan, "a", "1");
        b.put(plan, "b", "2");
        sync(&a);
        sync(&b);
        sync(&a);
        assert_eq!(a.heads(plan), b.heads(plan), "seed {seed}");
        assert_eq!(a.heads(plan), relay_store.heads(plan), "seed {seed}");
        assert_eq!(b.get(plan, "a").as_deref(), Some("1"));
        assert_eq!(a.get(plan, "b").as_deref(), Some("2"));
    }
}

#[test]
fn a_sync_cut_off_mid_way_loses_nothing_and_the_next_one_finishes() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store.clone());
    let device = Arc::new(MemoryStore::new("device"));
    let plans: Vec<_> = (0..5).map(|_| doc()).collect();
    for plan in &plans {
        device.put(*plan, "title", "offline edit");
    }
    for cut in [1, 3, 6] {
        let error = relay
            .sync_once_with(
                device.clone(),
                &SyncOptions::default(),
                Faults::reordering(cut as u64).dropping_after(cut),
            )
            .unwrap_err();
        assert!(matches!(error, SyncError::Transport(_)), "{error}");
    }
    let summary = sync(&device, &relay);
    assert_eq!(summary.documents_synced, 5);
    for plan in &plans {
        assert_eq!(relay_store.heads(*plan), device.heads(*plan));
    }
}

#[test]
fn unknown_plans_are_answered_doc_unavailable() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store.clone());
    let device = Arc::new(MemoryStore::new("device"));
    let missing = doc();
    device.want(missing);
    let summary = sync(&device, &relay);
    assert_eq!(summary.documents_unavailable, vec![missing]);
    assert_eq!(summary.documents_synced, 0);
    assert!(!relay_store.has_document(missing).unwrap());
    assert!(!device.has_document(missing).unwrap());
}

/// A device holding 20 plans of some size, synced once with `relay`.
fn device_with_plans(relay: &SimRelay) -> (Arc<MemoryStore>, Vec<DocumentId>, SyncSummary) {
    let device = Arc::new(MemoryStore::new("device"));
    let plans: Vec<_> = (0..20).map(|_| doc()).collect();
    for plan in &plans {
        for round in 0..20 {
            let text: String = (0..10).map(|_| Uuid::new_v4().to_string()).collect();
            device.put(*plan, &format!("note-{round}"), &text);
        }
    }
    let first = sync(&device, relay);
    assert_eq!(first.documents_synced, 20);
    (device, plans, first)
}

fn without_digest() -> SyncOptions {
    SyncOptions {
        heads_digest: false,
        ..SyncOptions::default()
    }
}

#[test]
fn idle_reconnect_exchanges_one_heads_digest_frame_each_way() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store.clone());
    let (device, plans, first) = device_with_plans(&relay);
    device.take_generated();
    let idle = sync(&device, &relay);
    assert_eq!((idle.documents_total, idle.documents_synced), (20, 20));
    assert!(idle.documents_updated.is_empty());
    assert!(idle.documents_unavailable.is_empty());
    // join + one digest frame; peer + one answer. No per-plan message either way.
    assert_eq!(idle.traffic.frames_sent, 2, "{:?}", idle.traffic);
    assert_eq!(idle.traffic.frames_received, 2, "{:?}", idle.traffic);
    assert!(device.take_generated().is_empty());
    // 24 bytes per plan out, a fixed few hundred for the rest.
    assert!(
        idle.traffic.bytes_sent < 24 * plans.len() as u64 + 300,
        "{:?}",
        idle.traffic
    );
    assert!(idle.traffic.bytes_received < 300, "{:?}", idle.traffic);

    // The per-plan path for the same reconnect costs several times as much.
    let per_plan = relay.sync_once(device.clone(), &without_digest()).unwrap();
    assert_eq!(per_plan.documents_synced, 20);
    let total = |summary: &SyncSummary| summary.traffic.bytes_sent + summary.traffic.bytes_received;
    assert!(
        total(&idle) * 5 < total(&per_plan),
        "{:?} vs {:?}",
        idle.traffic,
        per_plan.traffic
    );
    assert!(idle.traffic.bytes_sent * 20 < first.traffic.bytes_sent);
}

/// Without the capability on either side (an automerge-repo JS peer never has it), an idle
/// reconnect is exactly the automerge-repo exchange: one small message each way per plan.
#[test]
fn idle_reconnect_exchanges_one_small_message_each_way_per_plan() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let digest_relay = relay(relay_store.clone());
    let plain_relay = relay_with(
        relay_store.clone(),
        RelayOptions {
            heads_digest: false,
            ..RelayOptions::default()
        },
    );
    let (device, _, first) = device_with_plans(&digest_relay);
    for (relay, options) in [
        (&digest_relay, without_digest()),
        (&plain_relay, SyncOptions::default()),
        (&plain_relay, without_digest()),
    ] {
        let idle = relay.sync_once(device.clone(), &options).unwrap();
        assert_eq!(idle.documents_synced, 20);
        assert!(idle.documents_updated.is_empty());
        // join + one sync per plan; peer + one answer per plan.
        assert_eq!(idle.traffic.frames_sent, 21, "{:?}", idle.traffic);
        assert_eq!(idle.traffic.frames_received, 21, "{:?}", idle.traffic);
        // Each idle message is an envelope plus heads and an empty bloom filter: a few
        // hundred bytes, against the whole plan the first time.
        assert!(idle.traffic.bytes_sent < 21 * 300, "{:?}", idle.traffic);
        assert!(idle.traffic.bytes_received < 21 * 300, "{:?}", idle.traffic);
        assert!(
            idle.traffic.bytes_sent * 20 < first.traffic.bytes_sent,
            "{:?} vs {:?}",
            idle.traffic,
            first.traffic
        );
    }
}

/// A store that cannot tell its heads cheaply sends no digest and syncs every plan as before.
#[test]
fn a_store_without_digests_syncs_every_plan_the_usual_way() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store);
    let device = Arc::new(MemoryStore::new("device").without_digests());
    let plans: Vec<_> = (0..3).map(|_| doc()).collect();
    for plan in &plans {
        device.put(*plan, "title", "t");
    }
    sync(&device, &relay);
    let idle = sync(&device, &relay);
    assert_eq!(idle.documents_synced, 3);
    assert_eq!(idle.traffic.frames_sent, 4, "{:?}", idle.traffic);
}

#[test]
fn only_the_plan_changed_while_away_gets_sync_messages() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store.clone());
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plans: Vec<_> = (0..5).map(|_| doc()).collect();
    for plan in &plans {
        a.put(*plan, "title", "from a");
        b.want(*plan);
    }
    sync(&a, &relay);
    sync(&b, &relay);
    sync(&a, &relay);
    // While a is away, b changes one plan and a plan wanted by a arrives at the relay.
    let changed = plans[2];
    b.put(changed, "title", "from b");
    let newcomer = doc();
    b.put(newcomer, "title", "new");
    a.want(newcomer);
    sync(&b, &relay);
    assert_eq!(relay_store.heads(changed), b.heads(changed));

    a.take_generated();
    let summary = sync(&a, &relay);
    assert_eq!((summary.documents_total, summary.documents_synced), (6, 6));
    let mut updated = summary.documents_updated.clone();
    updated.sort();
    let mut expected = vec![changed, newcomer];
    expected.sort();
    assert_eq!(updated, expected);
    let mut generated = a.take_generated();
    generated.sort();
    generated.dedup();
    assert_eq!(generated, expected, "sync messages only for these");
    assert_eq!(a.get(changed, "title").as_deref(), Some("from b"));
    assert_eq!(a.get(newcomer, "title").as_deref(), Some("new"));
    for plan in plans.iter().chain([&newcomer]) {
        assert_eq!(a.heads(*plan), relay_store.heads(*plan));
    }
}

/// Plans settled by their digests stay subscribed: the relay pushes later changes to them on
/// the connection watch mode holds open.
#[test]
fn watch_mode_gets_changes_to_plans_settled_by_digest() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store);
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plan = doc();
    a.put(plan, "title", "v1");
    b.want(plan);
    sync(&a, &relay);
    sync(&b, &relay);
    a.take_generated();
    let mut watch = relay.open(a.clone(), &SyncOptions::default()).unwrap();
    watch.settle().unwrap();
    let summary = watch.summary();
    assert_eq!((summary.documents_total, summary.documents_synced), (1, 1));
    assert!(a.take_generated().is_empty(), "settled by the digest");
    b.put(plan, "title", "v2");
    sync(&b, &relay);
    watch.settle().unwrap();
    assert_eq!(a.get(plan, "title").as_deref(), Some("v2"));
    assert_eq!(watch.summary().documents_updated, vec![plan]);
    watch.close();
}

/// A device's second connection while its first is still open (a phone reconnecting before
/// the relay noticed the old socket die; two browser tabs of one storage): each connection is
/// its own conversation, so the new one is answered even though the old one already settled.
#[test]
fn overlapping_connections_of_one_device_each_settle() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store.clone());
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "v1");
    let options = without_digest();
    let mut first = relay.open(device.clone(), &options).unwrap();
    first.settle().unwrap();
    // The first connection stays open and settled; the same device connects again.
    let summary = relay
        .sync_once(device.clone(), &options)
        .expect("the second connection settles");
    assert_eq!((summary.documents_total, summary.documents_synced), (1, 1));
    // And the first one still works: a new edit reaches the relay through it.
    device.put(plan, "title", "v2");
    first.local_change(plan).unwrap();
    first.settle().unwrap();
    assert_eq!(relay_store.get(plan, "title").as_deref(), Some("v2"));
    first.close();
}

fn join(sender: &str, versions: &[&str]) -> Message {
    Message::Join {
        sender_id: sender.into(),
        peer_metadata: None,
        supported_protocol_versions: Some(versions.iter().map(|v| v.to_string()).collect()),
    }
}

/// The relay answered the last frame with exactly one `error` naming `contains`, and closed.
fn expect_error_then_close(connection: &mut SimConnection, contains: &str) {
    match connection.take().as_slice() {
        [Message::Error { message, .. }] => {
            assert!(message.contains(contains), "{message} lacks {contains}")
        }
        other => panic!("expected one error frame, got {other:?}"),
    }
    assert!(!connection.is_open(), "connection should close");
}

/// The relay answered `join` with `peer`.
fn expect_peer(connection: &mut SimConnection) -> Option<PeerMetadata> {
    match connection.take().as_slice() {
        [Message::Peer { peer_metadata, .. }] => peer_metadata.clone(),
        other => panic!("expected peer, got {other:?}"),
    }
}

/// The Automerge sync message of a peer holding nothing.
fn empty_request() -> Vec<u8> {
    use automerge::sync::{State, SyncDoc};
    automerge::Automerge::new()
        .generate_sync_message(&mut State::new())
        .unwrap()
        .encode()
}

/// A sync message that carries a change.
fn sync_message_with_changes() -> Vec<u8> {
    use automerge::sync::{State, SyncDoc};
    use automerge::transaction::Transactable;
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "title", "x".repeat(100)).unwrap();
    let mut state = State::new();
    let hello = doc.sync().generate_sync_message(&mut state).unwrap();
    let mut empty = automerge::AutoCommit::new();
    let mut empty_state = State::new();
    empty
        .sync()
        .receive_sync_message(&mut empty_state, hello)
        .unwrap();
    let ask = empty
        .sync()
        .generate_sync_message(&mut empty_state)
        .unwrap();
    doc.sync().receive_sync_message(&mut state, ask).unwrap();
    let message = doc.sync().generate_sync_message(&mut state).unwrap();
    message.encode()
}

fn document_message(sender: &str, document: DocumentId, data: Vec<u8>) -> DocumentMessage {
    DocumentMessage {
        sender_id: sender.into(),
        target_id: "relay".into(),
        document_id: document,
        data,
    }
}

/// Bad input that reaches the sessions (not the WebSocket layer: text and oversized frames are
/// in `tests.rs`) closes the connection with a reason; nothing is stored and a device on an open
/// connection keeps being served.
#[test]
fn relay_refuses_bad_input_and_keeps_serving_others() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(relay_store.clone());
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "kept");
    sync(&device, &relay);
    let heads = relay_store.heads(plan);
    let mut documents_before = relay_store.document_ids().unwrap();
    documents_before.sort();
    // A device stays connected throughout, as in watch mode.
    let mut watch = relay.open(device.clone(), &SyncOptions::default()).unwrap();
    watch.settle().unwrap();

    // Garbage instead of join.
    let mut connection = relay.connect(None);
    connection.send_frame(&[0xff, 0x00, 0x13]);
    expect_error_then_close(&mut connection, "malformed");

    // Wrong protocol version.
    let mut connection = relay.connect(None);
    connection.send(&join("old", &["0", "2"]));
    expect_error_then_close(&mut connection, "protocol version");

    // Something other than join first.
    let mut connection = relay.connect(None);
    connection.send(&Message::DocUnavailable {
        sender_id: "x".into(),
        target_id: "y".into(),
        document_id: plan,
    });
    expect_error_then_close(&mut connection, "doc-unavailable");

    // After a good join: unknown types are tolerated, truncated sync data is refused.
    let mut connection = relay.connect(None);
    connection.send(&join("mallory", &["1"]));
    expect_peer(&mut connection);
    let mut unknown = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            ("type".into(), "remote-heads-changed".into()),
            ("senderId".into(), "mallory".into()),
        ]),
        &mut unknown,
    )
    .unwrap();
    connection.send_frame(&unknown);
    assert!(connection.take().is_empty());
    assert!(connection.is_open());
    connection.send(&Message::Request(document_message(
        "mallory",
        plan,
        empty_request(),
    )));
    // Still connected: the plan comes back.
    assert!(
        matches!(connection.take().as_slice(), [Message::Sync(m)] if m.document_id == plan),
        "the plan is sent"
    );
    let mut truncated = sync_message_with_changes();
    truncated.truncate(truncated.len() - 7);
    connection.send(&Message::Sync(document_message("mallory", plan, truncated)));
    expect_error_then_close(&mut connection, "invalid sync data");

    assert_eq!(relay.connections_refused(), 4);
    assert_eq!(relay_store.heads(plan), heads, "nothing stored changed");
    let mut documents_after = relay_store.document_ids().unwrap();
    documents_after.sort();
    assert_eq!(documents_after, documents_before);

    // The well-behaved device is still served.
    device.put(plan, "title", "still served");
    watch.local_change(plan).unwrap();
    watch.settle().unwrap();
    assert_eq!(
        relay_store.get(plan, "title").as_deref(),
        Some("still served")
    );
    watch.close();
}

/// A counselor's store with one plan, synced once with `relay`: who she is, and the plan.
fn counselor_synced_with(relay: &SimRelay) -> (crate::Identity, crate::PlanId) {
    use crate::{Alliance, NewPlan, Role};
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    let me = counselor.init("Dana", Role::Counselor, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            ..NewPlan::default()
        })
        .unwrap();
    relay
        .sync_once(counselor.clone(), &SyncOptions::default())
        .unwrap();
    (me, plan)
}

#[test]
fn bad_input_leaves_an_alliance_relay_unchanged() {
    use crate::Alliance;
    let relay_store = Arc::new(Alliance::open_in_memory().unwrap());
    let relay = relay(relay_store.clone());
    let (_, plan) = counselor_synced_with(&relay);
    let saved = relay_store.saved_document(plan).unwrap();
    let document = DocumentId::from_uuid(plan.as_uuid());

    let mut connection = relay.connect(None);
    connection.send(&join("mallory", &["1"]));
    expect_peer(&mut connection);
    let mut truncated = sync_message_with_changes();
    truncated.truncate(truncated.len() / 2);
    connection.send(&Message::Sync(document_message(
        "mallory", document, truncated,
    )));
    expect_error_then_close(&mut connection, "invalid sync data");

    assert_eq!(relay_store.saved_document(plan).unwrap(), saved);
    assert_eq!(relay_store.plan_ids().unwrap(), vec![plan]);
    assert_eq!(relay.connections_refused(), 1);
}

/// An ephemeral peer (no storage id) leaves no sync-state rows behind on the relay; a device
/// that keeps storage does.
#[test]
fn ephemeral_peers_leave_no_sync_state_behind() {
    use crate::Alliance;
    use automerge::sync::{State, SyncDoc};
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("relay.db");
    let relay_store = Arc::new(Alliance::open(&db).unwrap());
    let relay = relay(relay_store.clone());
    let (me, plan) = counselor_synced_with(&relay);
    let peers = || -> Vec<String> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut statement = conn
            .prepare("SELECT DISTINCT peer_id FROM sync_state ORDER BY peer_id")
            .unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(peers(), vec![me.device_id.to_string()]);

    let mut connection = relay.connect(None);
    connection.send(&join("visitor", &["1"]));
    expect_peer(&mut connection);
    let mut empty = automerge::Automerge::new();
    let mut state = State::new();
    let ask = empty.generate_sync_message(&mut state).unwrap();
    let document = DocumentId::from_uuid(plan.as_uuid());
    connection.send(&Message::Request(document_message(
        "visitor",
        document,
        ask.encode(),
    )));
    let answered = connection.take();
    let [Message::Sync(answer)] = answered.as_slice() else {
        panic!("the relay answers a request for a plan it holds");
    };
    // The Automerge message, without the signatures beside it (`authorship::carrier`).
    let (_, answer) = crate::authorship::carrier::split_raw(&answer.data).unwrap();
    let answer = automerge::sync::Message::decode(answer).unwrap();
    empty.receive_sync_message(&mut state, answer).unwrap();
    let reply = empty.generate_sync_message(&mut state).unwrap();
    connection.send(&Message::Sync(document_message(
        "visitor",
        document,
        reply.encode(),
    )));
    assert_eq!(peers().len(), 2);
    assert!(peers().contains(&"ephemeral:visitor".to_string()));

    connection.close();
    assert_eq!(peers(), vec![me.device_id.to_string()]);
}

fn join_with_digest(sender: &str) -> Message {
    Message::Join {
        sender_id: sender.into(),
        peer_metadata: Some(PeerMetadata {
            storage_id: Some(format!("storage-{sender}")),
            is_ephemeral: false,
            enrolled_documents: Vec::new(),
            heads_digest: true,
            refused_notices: false,
        }),
        supported_protocol_versions: Some(vec!["1".into()]),
    }
}

/// Joins with the digest offered, checks the relay offers it too, and returns the connection.
fn joined_with_digest(relay: &SimRelay, token: Option<&str>, sender: &str) -> SimConnection {
    let mut connection = relay.connect(token);
    connection.send(&join_with_digest(sender));
    let metadata = expect_peer(&mut connection).unwrap();
    assert!(metadata.heads_digest, "the relay offers it");
    connection
}

fn digests_frame(sender: &str, digests: ciborium::Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            ("type".into(), protocol::HEADS_DIGESTS_TYPE.into()),
            ("senderId".into(), sender.into()),
            ("targetId".into(), "relay".into()),
            ("digests".into(), digests),
        ]),
        &mut bytes,
    )
    .unwrap();
    bytes
}

fn digests_message(sender: &str, entries: &[(DocumentId, heads::HeadsDigest)]) -> Message {
    Message::HeadsDigests {
        sender_id: sender.into(),
        target_id: "relay".into(),
        digests: HeadsDigests::new(entries),
    }
}

#[test]
fn relay_refuses_malformed_heads_digests_and_keeps_its_store() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay_with(
        relay_store.clone(),
        RelayOptions {
            max_documents_per_connection: 3,
            ..RelayOptions::default()
        },
    );
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "kept");
    sync(&device, &relay);
    let heads = relay_store.heads(plan);
    let digest = heads::heads_digest(&heads);

    // Records that are not 24 bytes each.
    let mut connection = joined_with_digest(&relay, None, "short");
    connection.send_frame(&digests_frame("short", ciborium::Value::Bytes(vec![7; 23])));
    expect_error_then_close(&mut connection, "digests");

    // Not a byte string at all.
    let mut connection = joined_with_digest(&relay, None, "text");
    connection.send_frame(&digests_frame("text", "abc".into()));
    expect_error_then_close(&mut connection, "digests");

    // More documents than a connection may sync.
    let mut connection = joined_with_digest(&relay, None, "many");
    let many: Vec<_> = (0..4).map(|_| (doc(), [0u8; 8])).collect();
    connection.send(&digests_message("many", &many));
    expect_error_then_close(&mut connection, "at most 3 documents per connection");

    // A document listed twice.
    let mut connection = joined_with_digest(&relay, None, "twice");
    connection.send(&digests_message("twice", &[(plan, digest), (plan, digest)]));
    expect_error_then_close(&mut connection, "listed twice");

    // From a peer that did not offer the extension in `join`.
    let mut connection = relay.connect(None);
    connection.send(&join("plain", &["1"]));
    expect_peer(&mut connection);
    connection.send(&digests_message("plain", &[(plan, digest)]));
    expect_error_then_close(&mut connection, "alliance-heads");

    // A well-formed digest is answered once; a second one is refused.
    let mut connection = joined_with_digest(&relay, None, "twice-sent");
    let unknown = doc();
    connection.send(&digests_message(
        "twice-sent",
        &[(plan, digest), (unknown, [1; 8])],
    ));
    match connection.take().as_slice() {
        [Message::HeadsDiffer { documents, .. }] => assert_eq!(documents, &vec![unknown]),
        other => panic!("expected the answer, got {other:?}"),
    }
    connection.send(&digests_message("twice-sent", &[(plan, digest)]));
    expect_error_then_close(&mut connection, "alliance-heads");

    assert_eq!(relay.connections_refused(), 6);
    assert_eq!(relay_store.heads(plan), heads, "nothing stored changed");
    assert_eq!(relay_store.document_ids().unwrap(), vec![plan]);
    // And the device still syncs.
    device.put(plan, "title", "still served");
    sync(&device, &relay);
    assert_eq!(
        relay_store.get(plan, "title").as_deref(),
        Some("still served")
    );
}

/// With tokens required, a plan the token does not open is never reported equal, whether the
/// relay holds it with the same heads or not at all; syncing it meets the usual refusal.
#[test]
fn a_digest_never_reports_a_plan_the_token_does_not_open_as_equal() {
    use crate::{Alliance, NewPlan, Role};
    let relay_store = Arc::new(Alliance::open_in_memory().unwrap());
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    let me = counselor.init("Dana", Role::Counselor, None).unwrap();
    let new_plan = |title: &str| {
        counselor
            .create_plan(&NewPlan {
                title: title.into(),
                client_name: "Sam".into(),
                ..NewPlan::default()
            })
            .unwrap()
    };
    let (opened, closed) = (new_plan("Opened"), new_plan("Closed"));
    let token = counselor
        .issue_device_token(opened, me.device_id, None)
        .unwrap();
    // Both plans reach the relay store through a relay without tokens.
    relay(relay_store.clone())
        .sync_once(counselor.clone(), &SyncOptions::default())
        .unwrap();
    let relay = relay_with(
        relay_store.clone(),
        RelayOptions {
            require_token: true,
            ..RelayOptions::default()
        },
    );
    let digest_of = |plan: crate::PlanId| {
        let heads = relay_store.plan_heads(&[plan]).unwrap()[0]
            .1
            .clone()
            .unwrap();
        (
            DocumentId::from_uuid(plan.as_uuid()),
            heads::heads_digest(&heads),
        )
    };
    let (opened_doc, opened_digest) = digest_of(opened);
    let (closed_doc, closed_digest) = digest_of(closed);
    assert_eq!(
        counselor.plan_heads(&[closed]).unwrap()[0].1,
        relay_store.plan_heads(&[closed]).unwrap()[0].1,
        "the device holds the same heads as the relay"
    );
    let mut connection = joined_with_digest(&relay, Some(&token), "device");
    let absent = doc();
    connection.send(&digests_message(
        "device",
        &[
            (opened_doc, opened_digest),
            (closed_doc, closed_digest),
            (absent, closed_digest),
        ],
    ));
    match connection.take().as_slice() {
        // The held-but-closed plan is answered exactly like one the relay does not hold.
        [Message::HeadsDiffer { documents, .. }] => {
            assert_eq!(documents, &vec![closed_doc, absent])
        }
        other => panic!("expected the answer, got {other:?}"),
    }
    // Syncing it the usual way meets the usual refusal.
    connection.send(&Message::Request(document_message(
        "device",
        closed_doc,
        empty_request(),
    )));
    expect_error_then_close(&mut connection, "does not open that plan");

    // The device's own session: same outcome as without the extension.
    let options = SyncOptions {
        token: Some(token.clone()),
        ..SyncOptions::default()
    };
    let error = relay.sync_once(counselor.clone(), &options).unwrap_err();
    assert!(
        error.to_string().contains("does not open that plan"),
        "{error}"
    );
}

/// Stores written before migration 006 have no recorded heads: they sync correctly, record
/// them on the way, and the next idle reconnect uses the digest.
#[test]
fn stores_from_before_the_heads_column_still_sync() {
    use crate::{Alliance, NewPlan, Role};
    let folder = tempfile::tempdir().unwrap();
    let device_db = folder.path().join("device.db");
    let relay_db = folder.path().join("relay.db");
    let null_heads = |db: &std::path::Path| {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute("UPDATE documents SET heads = NULL", [])
            .unwrap();
    };
    let nulls = |db: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM documents WHERE heads IS NULL",
            [],
            |row| row.get(0),
        )
        .unwrap()
    };
    let plans: Vec<crate::PlanId> = {
        let device = Arc::new(Alliance::open(&device_db).unwrap());
        device.init("Dana", Role::Counselor, None).unwrap();
        let plans = (0..4)
            .map(|i| {
                device
                    .create_plan(&NewPlan {
                        title: format!("Plan {i}"),
                        client_name: "Sam".into(),
                        ..NewPlan::default()
                    })
                    .unwrap()
            })
            .collect();
        let relay_store = Arc::new(Alliance::open(&relay_db).unwrap());
        relay(relay_store)
            .sync_once(device.clone(), &SyncOptions::default())
            .unwrap();
        plans
    };
    // Both files as an older build left them.
    null_heads(&device_db);
    null_heads(&relay_db);
    assert_eq!(nulls(&device_db), 4);

    let device = Arc::new(Alliance::open(&device_db).unwrap());
    device.set_title(plans[1], "Renamed").unwrap();
    assert_eq!(nulls(&device_db), 3, "a write records the heads");
    let relay_store = Arc::new(Alliance::open(&relay_db).unwrap());
    let relay = relay(relay_store.clone());
    let summary = relay
        .sync_once(device.clone(), &SyncOptions::default())
        .unwrap();
    assert_eq!((summary.documents_total, summary.documents_synced), (4, 4));
    assert_eq!(relay_store.plan(plans[1]).unwrap().title, "Renamed");
    for plan in &plans {
        assert_eq!(
            relay_store.saved_document(*plan).unwrap(),
            device.saved_document(*plan).unwrap()
        );
    }
    assert_eq!(nulls(&device_db), 0);
    assert_eq!(nulls(&relay_db), 0);

    let idle = relay
        .sync_once(device.clone(), &SyncOptions::default())
        .unwrap();
    assert_eq!(idle.documents_synced, 4);
    assert_eq!(idle.traffic.frames_sent, 2, "{:?}", idle.traffic);
    assert_eq!(idle.traffic.frames_received, 2, "{:?}", idle.traffic);
}

/// A counselor's plan with one goal on a fresh Alliance relay and on the client's store, which
/// then holds a status change only a counselor may make and, built on it, a check-in.
fn relay_and_client_with_refused_change() -> (
    SimRelay,
    Arc<crate::Alliance>,
    Arc<crate::Alliance>,
    crate::PlanId,
) {
    use crate::{Alliance, GoalEdit, GoalStatus, NewCheckIn, NewPlan, Role};
    let relay_store = Arc::new(Alliance::open_in_memory().unwrap());
    let relay = relay(relay_store.clone());
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let client = Arc::new(Alliance::open_in_memory().unwrap());
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    let goal = counselor.propose_goal(plan, "Sleep").unwrap();
    relay
        .sync_once(counselor.clone(), &SyncOptions::default())
        .unwrap();
    relay
        .sync_once(client.clone(), &SyncOptions::default())
        .unwrap();
    assert!(client.has_plan(plan).unwrap());
    let status = GoalEdit {
        status: Some(GoalStatus::Active),
        ..GoalEdit::default()
    };
    client.edit_goal_unchecked(plan, goal, &status).unwrap();
    client
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(3),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
    (relay, relay_store, client, plan)
}

/// Speaks for `client` on a raw connection, offering refused notices or not, until the relay
/// has nothing more to say. Returns every message the relay sent after `peer`, and the index of
/// the first one that came after our first message carrying changes.
fn raw_sync(
    relay: &SimRelay,
    client: &crate::Alliance,
    plan: crate::PlanId,
    offer_notices: bool,
) -> (Vec<Message>, Option<usize>) {
    let me = client.identity().unwrap().device_id.to_string();
    let mut connection = relay.connect(None);
    connection.send(&Message::Join {
        sender_id: "raw".into(),
        peer_metadata: Some(PeerMetadata {
            storage_id: Some(me),
            refused_notices: offer_notices,
            ..PeerMetadata::default()
        }),
        supported_protocol_versions: Some(vec!["1".into()]),
    });
    expect_peer(&mut connection);
    let document = DocumentId::from_uuid(plan.as_uuid());
    let mut received = Vec::new();
    let mut after_changes = None;
    for _ in 0..20 {
        let mut quiet = true;
        if let Some(data) = client.generate_sync_message(plan, "raw-relay").unwrap() {
            quiet = false;
            if after_changes.is_none() && heads::SyncEnvelope::read(&data).unwrap().carries_changes
            {
                after_changes = Some(received.len());
            }
            connection.send(&Message::Sync(DocumentMessage {
                sender_id: "raw".into(),
                target_id: "alliance-relay-sim".into(),
                document_id: document,
                data,
            }));
        }
        for message in connection.take() {
            quiet = false;
            if let Message::Sync(sync) = &message {
                client
                    .receive_sync_message(plan, "raw-relay", &sync.data)
                    .unwrap();
            }
            received.push(message);
        }
        if quiet {
            assert!(connection.is_open());
            return (received, after_changes);
        }
    }
    panic!("the exchange did not settle");
}

#[test]
fn only_a_peer_that_offered_refused_notices_is_told_and_before_the_reply() {
    // Without the offer (what automerge-repo peers send): refused as before, and silently.
    let (relay, relay_store, client, plan) = relay_and_client_with_refused_change();
    let (received, _) = raw_sync(&relay, &client, plan, false);
    assert!(
        received.iter().all(|m| matches!(m, Message::Sync(_))),
        "{received:?}"
    );
    assert_eq!(relay_store.refused_changes(Some(plan)).unwrap().len(), 2);

    // With it: one notice naming both changes, the first answer to the message carrying them.
    let (relay, relay_store, client, plan) = relay_and_client_with_refused_change();
    let (received, after_changes) = raw_sync(&relay, &client, plan, true);
    let notices: Vec<usize> = received
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, Message::Refused { .. }))
        .map(|(at, _)| at)
        .collect();
    assert_eq!(notices.len(), 1, "{received:?}");
    let Message::Refused {
        document_id,
        refused,
        target_id,
        ..
    } = &received[notices[0]]
    else {
        unreachable!()
    };
    assert_eq!(*document_id, DocumentId::from_uuid(plan.as_uuid()));
    assert_eq!(target_id.as_str(), "raw");
    let rules: Vec<&str> = refused.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "only a counselor writes a goal's status",
            crate::rules::remote::BUILDS_ON_REFUSED
        ]
    );
    let recorded: Vec<String> = relay_store
        .refused_changes(Some(plan))
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.change_hash)
        .collect();
    assert!(refused.iter().all(|r| recorded.contains(&r.change_hash)));
    assert_eq!(after_changes, Some(notices[0]), "{received:?}");
}
