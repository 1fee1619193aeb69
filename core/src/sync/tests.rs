//! Device ↔ relay tests on loopback with in-memory stores.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Frame;
use uuid::Uuid;

use super::memory_store::MemoryStore;
use super::*;

fn doc() -> DocumentId {
    DocumentId::from_uuid(Uuid::new_v4())
}

fn quick() -> SyncOptions {
    SyncOptions {
        settle_timeout: Duration::from_secs(10),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..SyncOptions::default()
    }
}

async fn relay(store: &Arc<MemoryStore>) -> Relay {
    Relay::bind("127.0.0.1:0", store.clone(), RelayOptions::default())
        .await
        .unwrap()
}

async fn sync(store: &Arc<MemoryStore>, relay: &Relay) -> SyncSummary {
    sync_once(store.clone(), &relay.url(), &quick())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_through_the_relay() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plan = doc();
    a.put(plan, "title", "first");
    b.want(plan);

    let summary = sync(&a, &relay).await;
    assert_eq!((summary.documents_total, summary.documents_synced), (1, 1));
    assert_eq!(relay_store.get(plan, "title").as_deref(), Some("first"));

    let summary = sync(&b, &relay).await;
    assert_eq!(summary.documents_updated, vec![plan]);
    assert_eq!(b.get(plan, "title").as_deref(), Some("first"));

    // Offline edits on both sides, then any order of syncs.
    a.put(plan, "title", "from a");
    a.put(plan, "a", "1");
    b.put(plan, "b", "2");
    sync(&a, &relay).await;
    sync(&b, &relay).await;
    sync(&a, &relay).await;
    assert_eq!(a.heads(plan), b.heads(plan));
    assert_eq!(a.heads(plan), relay_store.heads(plan));
    assert_eq!(b.get(plan, "a").as_deref(), Some("1"));
    assert_eq!(a.get(plan, "b").as_deref(), Some("2"));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_plans_are_answered_doc_unavailable() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let device = Arc::new(MemoryStore::new("device"));
    let missing = doc();
    device.want(missing);
    let summary = sync(&device, &relay).await;
    assert_eq!(summary.documents_unavailable, vec![missing]);
    assert_eq!(summary.documents_synced, 0);
    assert!(!relay_store.has_document(missing).unwrap());
    assert!(!device.has_document(missing).unwrap());
}

/// A device holding 20 plans of some size, synced once with `relay`.
async fn device_with_plans(relay: &Relay) -> (Arc<MemoryStore>, Vec<DocumentId>, SyncSummary) {
    let device = Arc::new(MemoryStore::new("device"));
    let plans: Vec<_> = (0..20).map(|_| doc()).collect();
    for plan in &plans {
        for round in 0..20 {
            let text: String = (0..10).map(|_| Uuid::new_v4().to_string()).collect();
            device.put(*plan, &format!("note-{round}"), &text);
        }
    }
    let first = sync(&device, relay).await;
    assert_eq!(first.documents_synced, 20);
    (device, plans, first)
}

fn without_digest() -> SyncOptions {
    SyncOptions {
        heads_digest: false,
        ..quick()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reconnect_exchanges_one_heads_digest_frame_each_way() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let (device, plans, first) = device_with_plans(&relay).await;
    device.take_generated();
    let idle = sync(&device, &relay).await;
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
    let per_plan = sync_once(device.clone(), &relay.url(), &without_digest())
        .await
        .unwrap();
    assert_eq!(per_plan.documents_synced, 20);
    let total = |summary: &SyncSummary| summary.traffic.bytes_sent + summary.traffic.bytes_received;
    assert!(
        total(&idle) * 5 < total(&per_plan),
        "{:?} vs {:?}",
        idle.traffic,
        per_plan.traffic
    );
    assert!(idle.traffic.bytes_sent * 20 < first.traffic.bytes_sent);
    relay.shutdown().await;
}

/// Without the capability on either side (an automerge-repo JS peer never has it), an idle
/// reconnect is exactly the automerge-repo exchange: one small message each way per plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reconnect_exchanges_one_small_message_each_way_per_plan() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let plain_relay = Relay::bind(
        "127.0.0.1:0",
        relay_store.clone(),
        RelayOptions {
            heads_digest: false,
            ..RelayOptions::default()
        },
    )
    .await
    .unwrap();
    let (device, _, first) = device_with_plans(&relay).await;
    for (url, options) in [
        (relay.url(), without_digest()),
        (plain_relay.url(), quick()),
        (plain_relay.url(), without_digest()),
    ] {
        let idle = sync_once(device.clone(), &url, &options).await.unwrap();
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
    relay.shutdown().await;
    plain_relay.shutdown().await;
}

/// A store that cannot tell its heads cheaply sends no digest and syncs every plan as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_digests_syncs_every_plan_the_usual_way() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let device = Arc::new(MemoryStore::new("device").without_digests());
    let plans: Vec<_> = (0..3).map(|_| doc()).collect();
    for plan in &plans {
        device.put(*plan, "title", "t");
    }
    sync(&device, &relay).await;
    let idle = sync(&device, &relay).await;
    assert_eq!(idle.documents_synced, 3);
    assert_eq!(idle.traffic.frames_sent, 4, "{:?}", idle.traffic);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_plan_changed_while_away_gets_sync_messages() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plans: Vec<_> = (0..5).map(|_| doc()).collect();
    for plan in &plans {
        a.put(*plan, "title", "from a");
        b.want(*plan);
    }
    sync(&a, &relay).await;
    sync(&b, &relay).await;
    sync(&a, &relay).await;
    // While a is away, b changes one plan and a plan wanted by a arrives at the relay.
    let changed = plans[2];
    b.put(changed, "title", "from b");
    let newcomer = doc();
    b.put(newcomer, "title", "new");
    a.want(newcomer);
    sync(&b, &relay).await;
    assert_eq!(relay_store.heads(changed), b.heads(changed));

    a.take_generated();
    let summary = sync(&a, &relay).await;
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
    relay.shutdown().await;
}

/// Plans settled by their digests stay subscribed: the relay pushes later changes to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_gets_changes_to_plans_settled_by_digest() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plan = doc();
    a.put(plan, "title", "v1");
    b.want(plan);
    sync(&a, &relay).await;
    sync(&b, &relay).await;
    a.take_generated();
    let watch = spawn_watch(
        a.clone(),
        &relay.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );
    wait_for(|| watch.progress().plans_synced == 1).await;
    assert_eq!(watch.progress().plans_total, 1);
    assert!(a.take_generated().is_empty(), "settled by the digest");
    b.put(plan, "title", "v2");
    sync(&b, &relay).await;
    wait_for(|| a.get(plan, "title").as_deref() == Some("v2")).await;
    wait_for(|| watch.progress().plans_synced == 1).await;
    watch.stop().await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_pushes_local_changes_to_other_devices() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plan = doc();
    a.put(plan, "title", "v1");
    b.want(plan);
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<SyncProgress>::new()));
    let observer = {
        let seen = seen.clone();
        Arc::new(move |p: &SyncProgress| seen.lock().push(p.clone()))
    };
    let watch_a = spawn_watch(a.clone(), &relay.url(), quick(), observer);
    let watch_b = spawn_watch(
        b.clone(),
        &relay.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );
    wait_for(|| b.get(plan, "title").as_deref() == Some("v1")).await;
    a.put(plan, "title", "v2");
    watch_a.local_change(plan);
    wait_for(|| b.get(plan, "title").as_deref() == Some("v2")).await;
    b.put(plan, "title", "v3");
    watch_b.local_change(plan);
    wait_for(|| a.get(plan, "title").as_deref() == Some("v3")).await;
    wait_for(|| watch_a.progress().plans_synced == 1).await;
    let progress = watch_a.progress();
    assert!(progress.connected);
    assert_eq!(progress.plans_total, 1);
    assert!(seen
        .lock()
        .iter()
        .any(|p| p.connected && p.plans_synced == 1));
    watch_a.stop().await;
    watch_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_reconnects_after_the_relay_restarts() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let first = relay(&relay_store).await;
    let addr = first.local_addr();
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "v1");
    let watch = spawn_watch(
        device.clone(),
        &first.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );
    wait_for(|| relay_store.get(plan, "title").as_deref() == Some("v1")).await;
    first.shutdown().await;
    wait_for(|| !watch.progress().connected).await;
    device.put(plan, "title", "v2");
    watch.local_change(plan);
    // Same address, same store: the device comes back by itself.
    let second = Relay::bind(
        &addr.to_string(),
        relay_store.clone(),
        RelayOptions::default(),
    )
    .await
    .unwrap();
    wait_for(|| relay_store.get(plan, "title").as_deref() == Some("v2")).await;
    assert!(watch.progress().last_error.is_none() || watch.progress().connected);
    watch.stop().await;
    second.shutdown().await;
}

/// A device's second connection while its first is still open (a phone reconnecting before
/// the relay noticed the old socket die; two browser tabs of one storage): each connection is
/// its own conversation, so the new one is answered even though the old one already settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_connections_of_one_device_each_settle() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "v1");
    let watch = spawn_watch(
        device.clone(),
        &relay.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );
    wait_for(|| watch.progress().plans_synced == 1).await;
    // The first connection stays open and settled; the same device connects again.
    let options = SyncOptions {
        settle_timeout: Duration::from_secs(5),
        ..quick()
    };
    let summary = sync_once(device.clone(), &relay.url(), &options)
        .await
        .expect("the second connection settles");
    assert_eq!((summary.documents_total, summary.documents_synced), (1, 1));
    // And the first one still works: a new edit reaches the relay through it.
    device.put(plan, "title", "v2");
    watch.local_change(plan);
    wait_for(|| relay_store.get(plan, "title").as_deref() == Some("v2")).await;
    watch.stop().await;
    relay.shutdown().await;
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(relay: &Relay) -> RawSocket {
    tokio_tungstenite::connect_async(relay.url())
        .await
        .unwrap()
        .0
}

async fn send(socket: &mut RawSocket, message: &Message) {
    socket.send(Frame::binary(message.encode())).await.unwrap();
}

/// The next protocol message, or None when the relay closed the connection.
async fn next(socket: &mut RawSocket) -> Option<Message> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("relay answered in time");
        match frame {
            Some(Ok(Frame::Binary(bytes))) => return Some(Message::decode(&bytes).unwrap()),
            Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

fn join(sender: &str, versions: &[&str]) -> Message {
    Message::Join {
        sender_id: sender.into(),
        peer_metadata: None,
        supported_protocol_versions: Some(versions.iter().map(|v| v.to_string()).collect()),
    }
}

async fn expect_error_then_close(socket: &mut RawSocket, contains: &str) {
    match next(socket).await {
        Some(Message::Error { message, .. }) => {
            assert!(message.contains(contains), "{message} lacks {contains}")
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert_eq!(next(socket).await, None, "connection should close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refuses_bad_input_and_keeps_serving_others() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = Relay::bind(
        "127.0.0.1:0",
        relay_store.clone(),
        RelayOptions {
            max_frame_bytes: 64 * 1024,
            ..RelayOptions::default()
        },
    )
    .await
    .unwrap();
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "kept");
    sync(&device, &relay).await;
    let heads = relay_store.heads(plan);
    let mut documents_before = relay_store.document_ids().unwrap();
    documents_before.sort();

    // A device stays connected throughout, in watch mode.
    let watch = spawn_watch(
        device.clone(),
        &relay.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );

    // Garbage instead of join.
    let mut socket = raw(&relay).await;
    socket
        .send(Frame::binary(vec![0xff, 0x00, 0x13]))
        .await
        .unwrap();
    expect_error_then_close(&mut socket, "malformed").await;

    // A text frame.
    let mut socket = raw(&relay).await;
    socket
        .send(Frame::text("{\"type\":\"join\"}"))
        .await
        .unwrap();
    expect_error_then_close(&mut socket, "text frame").await;

    // Wrong protocol version.
    let mut socket = raw(&relay).await;
    send(&mut socket, &join("old", &["0", "2"])).await;
    expect_error_then_close(&mut socket, "protocol version").await;

    // Something other than join first.
    let mut socket = raw(&relay).await;
    send(
        &mut socket,
        &Message::DocUnavailable {
            sender_id: "x".into(),
            target_id: "y".into(),
            document_id: plan,
        },
    )
    .await;
    expect_error_then_close(&mut socket, "doc-unavailable").await;

    // After a good join: unknown types are tolerated, truncated sync data is refused.
    let mut socket = raw(&relay).await;
    send(&mut socket, &join("mallory", &["1"])).await;
    assert!(matches!(
        next(&mut socket).await,
        Some(Message::Peer { .. })
    ));
    let unknown = {
        let mut bytes = Vec::new();
        ciborium::into_writer(
            &ciborium::Value::Map(vec![
                ("type".into(), "remote-heads-changed".into()),
                ("senderId".into(), "mallory".into()),
            ]),
            &mut bytes,
        )
        .unwrap();
        bytes
    };
    socket.send(Frame::binary(unknown)).await.unwrap();
    let mut request = Vec::new();
    {
        let mut state = automerge::sync::State::new();
        use automerge::sync::SyncDoc;
        let empty = automerge::Automerge::new();
        request.extend(empty.generate_sync_message(&mut state).unwrap().encode());
    }
    send(
        &mut socket,
        &Message::Request(DocumentMessage {
            sender_id: "mallory".into(),
            target_id: "relay".into(),
            document_id: plan,
            data: request.clone(),
        }),
    )
    .await;
    // Still connected: the plan comes back.
    assert!(matches!(next(&mut socket).await, Some(Message::Sync(m)) if m.document_id == plan));
    let mut truncated = sync_message_with_changes();
    truncated.truncate(truncated.len() - 7);
    send(
        &mut socket,
        &Message::Sync(DocumentMessage {
            sender_id: "mallory".into(),
            target_id: "relay".into(),
            document_id: plan,
            data: truncated,
        }),
    )
    .await;
    expect_error_then_close(&mut socket, "invalid sync data").await;

    // An oversized frame.
    let mut socket = raw(&relay).await;
    send(&mut socket, &join("big", &["1"])).await;
    assert!(matches!(
        next(&mut socket).await,
        Some(Message::Peer { .. })
    ));
    let _ = socket.send(Frame::binary(vec![0u8; 100 * 1024])).await;
    match next(&mut socket).await {
        None => {}
        Some(Message::Error { message, .. }) => assert!(message.contains("exceeds")),
        other => panic!("expected a refusal, got {other:?}"),
    }

    assert_eq!(relay.connections_refused(), 6);
    assert_eq!(relay_store.heads(plan), heads, "nothing stored changed");
    let mut documents_after = relay_store.document_ids().unwrap();
    documents_after.sort();
    assert_eq!(documents_after, documents_before);

    // The well-behaved device is still served.
    device.put(plan, "title", "still served");
    watch.local_change(plan);
    wait_for(|| relay_store.get(plan, "title").as_deref() == Some("still served")).await;
    watch.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_leaves_an_alliance_relay_unchanged() {
    use crate::{Alliance, NewPlan, Role};
    let relay_store = Arc::new(Alliance::open_in_memory().unwrap());
    let relay = Relay::bind("127.0.0.1:0", relay_store.clone(), RelayOptions::default())
        .await
        .unwrap();
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            ..NewPlan::default()
        })
        .unwrap();
    sync_once(counselor.clone(), &relay.url(), &quick())
        .await
        .unwrap();
    let saved = relay_store.saved_document(plan).unwrap();
    let document = DocumentId::from_uuid(plan.as_uuid());

    let mut socket = raw(&relay).await;
    send(&mut socket, &join("mallory", &["1"])).await;
    assert!(matches!(
        next(&mut socket).await,
        Some(Message::Peer { .. })
    ));
    let mut truncated = sync_message_with_changes();
    truncated.truncate(truncated.len() / 2);
    send(
        &mut socket,
        &Message::Sync(DocumentMessage {
            sender_id: "mallory".into(),
            target_id: "relay".into(),
            document_id: document,
            data: truncated,
        }),
    )
    .await;
    expect_error_then_close(&mut socket, "invalid sync data").await;

    assert_eq!(relay_store.saved_document(plan).unwrap(), saved);
    assert_eq!(relay_store.plan_ids().unwrap(), vec![plan]);
    assert_eq!(relay.connections_refused(), 1);
}

/// An ephemeral peer (no storage id) leaves no sync-state rows behind on the relay; a device
/// that keeps storage does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_peers_leave_no_sync_state_behind() {
    use crate::{Alliance, NewPlan, Role};
    use automerge::sync::{State, SyncDoc};
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("relay.db");
    let relay_store = Arc::new(Alliance::open(&db).unwrap());
    let relay = Relay::bind("127.0.0.1:0", relay_store.clone(), RelayOptions::default())
        .await
        .unwrap();
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    let me = counselor.init("Dana", Role::Counselor, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            ..NewPlan::default()
        })
        .unwrap();
    sync_once(counselor.clone(), &relay.url(), &quick())
        .await
        .unwrap();
    let peers = || -> Vec<String> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut statement = conn
            .prepare("SELECT DISTINCT peer_id FROM sync_state ORDER BY peer_id")
            .unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(peers(), vec![me.device_id.to_string()]);

    let mut socket = raw(&relay).await;
    send(&mut socket, &join("visitor", &["1"])).await;
    assert!(matches!(
        next(&mut socket).await,
        Some(Message::Peer { .. })
    ));
    let mut empty = automerge::Automerge::new();
    let mut state = State::new();
    let ask = empty.generate_sync_message(&mut state).unwrap();
    let document = DocumentId::from_uuid(plan.as_uuid());
    send(
        &mut socket,
        &Message::Request(DocumentMessage {
            sender_id: "visitor".into(),
            target_id: "relay".into(),
            document_id: document,
            data: ask.encode(),
        }),
    )
    .await;
    let Some(Message::Sync(answer)) = next(&mut socket).await else {
        panic!("the relay answers a request for a plan it holds");
    };
    // The Automerge message, without the signatures beside it (`authorship::carrier`).
    let (_, answer) = crate::authorship::carrier::split_raw(&answer.data).unwrap();
    let answer = automerge::sync::Message::decode(answer).unwrap();
    empty.receive_sync_message(&mut state, answer).unwrap();
    let reply = empty.generate_sync_message(&mut state).unwrap();
    send(
        &mut socket,
        &Message::Sync(DocumentMessage {
            sender_id: "visitor".into(),
            target_id: "relay".into(),
            document_id: document,
            data: reply.encode(),
        }),
    )
    .await;
    wait_for(|| peers().len() == 2).await;
    assert!(peers().contains(&"ephemeral:visitor".to_string()));

    drop(socket);
    wait_for(|| peers() == vec![me.device_id.to_string()]).await;
    relay.shutdown().await;
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

/// Joins, checks the relay offers the heads digest, and returns the socket.
async fn joined_with_digest(url: &str, sender: &str) -> RawSocket {
    let mut socket = tokio_tungstenite::connect_async(url).await.unwrap().0;
    send(&mut socket, &join_with_digest(sender)).await;
    match next(&mut socket).await {
        Some(Message::Peer { peer_metadata, .. }) => {
            assert!(peer_metadata.unwrap().heads_digest, "the relay offers it")
        }
        other => panic!("expected peer, got {other:?}"),
    }
    socket
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refuses_malformed_heads_digests_and_keeps_its_store() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = Relay::bind(
        "127.0.0.1:0",
        relay_store.clone(),
        RelayOptions {
            max_documents_per_connection: 3,
            ..RelayOptions::default()
        },
    )
    .await
    .unwrap();
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "kept");
    sync(&device, &relay).await;
    let heads = relay_store.heads(plan);
    let digest = heads::heads_digest(&heads);
    let url = relay.url();

    // Records that are not 24 bytes each.
    let mut socket = joined_with_digest(&url, "short").await;
    socket
        .send(Frame::binary(digests_frame(
            "short",
            ciborium::Value::Bytes(vec![7; 23]),
        )))
        .await
        .unwrap();
    expect_error_then_close(&mut socket, "digests").await;

    // Not a byte string at all.
    let mut socket = joined_with_digest(&url, "text").await;
    socket
        .send(Frame::binary(digests_frame("text", "abc".into())))
        .await
        .unwrap();
    expect_error_then_close(&mut socket, "digests").await;

    // More documents than a connection may sync.
    let mut socket = joined_with_digest(&url, "many").await;
    let many: Vec<_> = (0..4).map(|_| (doc(), [0u8; 8])).collect();
    send(&mut socket, &digests_message("many", &many)).await;
    expect_error_then_close(&mut socket, "at most 3 documents per connection").await;

    // A document listed twice.
    let mut socket = joined_with_digest(&url, "twice").await;
    send(
        &mut socket,
        &digests_message("twice", &[(plan, digest), (plan, digest)]),
    )
    .await;
    expect_error_then_close(&mut socket, "listed twice").await;

    // From a peer that did not offer the extension in `join`.
    let mut socket = raw(&relay).await;
    send(&mut socket, &join("plain", &["1"])).await;
    assert!(matches!(
        next(&mut socket).await,
        Some(Message::Peer { .. })
    ));
    send(&mut socket, &digests_message("plain", &[(plan, digest)])).await;
    expect_error_then_close(&mut socket, "alliance-heads").await;

    // A well-formed digest is answered once; a second one is refused.
    let mut socket = joined_with_digest(&url, "twice-sent").await;
    let unknown = doc();
    send(
        &mut socket,
        &digests_message("twice-sent", &[(plan, digest), (unknown, [1; 8])]),
    )
    .await;
    match next(&mut socket).await {
        Some(Message::HeadsDiffer { documents, .. }) => assert_eq!(documents, vec![unknown]),
        other => panic!("expected the answer, got {other:?}"),
    }
    send(
        &mut socket,
        &digests_message("twice-sent", &[(plan, digest)]),
    )
    .await;
    expect_error_then_close(&mut socket, "alliance-heads").await;

    assert_eq!(relay.connections_refused(), 6);
    assert_eq!(relay_store.heads(plan), heads, "nothing stored changed");
    assert_eq!(relay_store.document_ids().unwrap(), vec![plan]);
    // And the device still syncs.
    device.put(plan, "title", "still served");
    sync(&device, &relay).await;
    assert_eq!(
        relay_store.get(plan, "title").as_deref(),
        Some("still served")
    );
    relay.shutdown().await;
}

/// With tokens required, a plan the token does not open is never reported equal, whether the
/// relay holds it with the same heads or not at all; syncing it meets the usual refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_never_reports_a_plan_the_token_does_not_open_as_equal() {
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
    {
        let open_relay = Relay::bind("127.0.0.1:0", relay_store.clone(), RelayOptions::default())
            .await
            .unwrap();
        sync_once(counselor.clone(), &open_relay.url(), &quick())
            .await
            .unwrap();
        open_relay.shutdown().await;
    }
    let relay = Relay::bind(
        "127.0.0.1:0",
        relay_store.clone(),
        RelayOptions {
            require_token: true,
            ..RelayOptions::default()
        },
    )
    .await
    .unwrap();
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
    let url = format!("{}/?token={token}", relay.url());
    let mut socket = joined_with_digest(&url, "device").await;
    let absent = doc();
    send(
        &mut socket,
        &digests_message(
            "device",
            &[
                (opened_doc, opened_digest),
                (closed_doc, closed_digest),
                (absent, closed_digest),
            ],
        ),
    )
    .await;
    match next(&mut socket).await {
        // The held-but-closed plan is answered exactly like one the relay does not hold.
        Some(Message::HeadsDiffer { documents, .. }) => {
            assert_eq!(documents, vec![closed_doc, absent])
        }
        other => panic!("expected the answer, got {other:?}"),
    }
    // Syncing it the usual way meets the usual refusal.
    let ask = {
        use automerge::sync::{State, SyncDoc};
        automerge::Automerge::new()
            .generate_sync_message(&mut State::new())
            .unwrap()
            .encode()
    };
    send(
        &mut socket,
        &Message::Request(DocumentMessage {
            sender_id: "device".into(),
            target_id: "relay".into(),
            document_id: closed_doc,
            data: ask,
        }),
    )
    .await;
    expect_error_then_close(&mut socket, "does not open that plan").await;

    // The device's own session: same outcome as without the extension.
    let options = SyncOptions {
        token: Some(token.clone()),
        ..quick()
    };
    let error = sync_once(counselor.clone(), &relay.url(), &options)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("does not open that plan"),
        "{error}"
    );
    relay.shutdown().await;
}

/// Stores written before migration 006 have no recorded heads: they sync correctly, record
/// them on the way, and the next idle reconnect uses the digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_from_before_the_heads_column_still_sync() {
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
        let relay = Relay::bind("127.0.0.1:0", relay_store, RelayOptions::default())
            .await
            .unwrap();
        sync_once(device.clone(), &relay.url(), &quick())
            .await
            .unwrap();
        relay.shutdown().await;
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
    let relay = Relay::bind("127.0.0.1:0", relay_store.clone(), RelayOptions::default())
        .await
        .unwrap();
    let summary = sync_once(device.clone(), &relay.url(), &quick())
        .await
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

    let idle = sync_once(device.clone(), &relay.url(), &quick())
        .await
        .unwrap();
    assert_eq!(idle.documents_synced, 4);
    assert_eq!(idle.traffic.frames_sent, 2, "{:?}", idle.traffic);
    assert_eq!(idle.traffic.frames_received, 2, "{:?}", idle.traffic);
    relay.shutdown().await;
}

#[test]
fn sync_options_never_print_the_token() {
    let token = generate_token();
    let options = SyncOptions {
        token: Some(token.clone()),
        ..SyncOptions::default()
    };
    let printed = format!("{options:?} {options:#?}");
    assert!(!printed.contains(&token), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
    let without = format!("{:?}", SyncOptions::default());
    assert!(without.contains("token: None"), "{without}");
}

/// Watch mode pings a quiet relay, so the relay's idle timeout closes only peers that are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_keep_a_quiet_watch_connection_open() {
    for keepalive in [Some(Duration::from_millis(100)), None] {
        let relay_store = Arc::new(MemoryStore::new("relay"));
        let relay = Relay::bind(
            "127.0.0.1:0",
            relay_store.clone(),
            RelayOptions {
                idle_timeout: Duration::from_millis(800),
                ..RelayOptions::default()
            },
        )
        .await
        .unwrap();
        let device = Arc::new(MemoryStore::new("device"));
        device.put(doc(), "title", "v1");
        let watch = spawn_watch(
            device.clone(),
            &relay.url(),
            SyncOptions {
                keepalive,
                ..quick()
            },
            Arc::new(|_: &SyncProgress| {}),
        );
        wait_for(|| watch.progress().plans_synced == 1).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        match keepalive {
            Some(_) => {
                assert_eq!(
                    relay.connections_accepted(),
                    1,
                    "one connection, never closed"
                );
                assert_eq!(relay.connections_refused(), 0);
                assert!(watch.progress().connected);
            }
            // Without pings the relay closes the quiet connection and the device comes back.
            None => assert!(relay.connections_refused() >= 1),
        }
        watch.stop().await;
        relay.shutdown().await;
    }
}

/// A server that stops answering (a connection a network dropped without a word) is noticed
/// by the missing answers to keepalive pings: the device says so and tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_notices_a_server_that_went_silent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
                let Some(Ok(Frame::Binary(_join))) = socket.next().await else {
                    continue;
                };
                let peer = Message::Peer {
                    sender_id: "silent-server".into(),
                    target_id: "device".into(),
                    peer_metadata: None,
                    selected_protocol_version: PROTOCOL_V1.into(),
                };
                socket.send(Frame::binary(peer.encode())).await.unwrap();
                // From here on nothing is read, so no ping is ever answered.
                held.push(socket);
            }
        })
    };
    let device = Arc::new(MemoryStore::new("device"));
    device.put(doc(), "title", "v1");
    let watch = spawn_watch(
        device.clone(),
        &url,
        SyncOptions {
            keepalive: Some(Duration::from_millis(100)),
            ..quick()
        },
        Arc::new(|_: &SyncProgress| {}),
    );
    wait_for(|| {
        watch
            .progress()
            .last_error
            .is_some_and(|e| e.contains("keepalive"))
    })
    .await;
    wait_for(|| accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2).await;
    watch.stop().await;
    server.abort();
}

/// The next message within `wait`, or None when the relay says nothing more by then.
async fn next_within<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
    wait: Duration,
) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Frame::Binary(bytes)))) => return Some(Message::decode(&bytes).unwrap()),
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A counselor's plan with one goal on a fresh Alliance relay and on the client's store, which
/// then holds a status change only a counselor may make and, built on it, a check-in.
async fn relay_and_client_with_refused_change() -> (
    Relay,
    Arc<crate::Alliance>,
    Arc<crate::Alliance>,
    crate::PlanId,
) {
    use crate::{Alliance, GoalEdit, GoalStatus, NewCheckIn, NewPlan, Role};
    let relay_store = Arc::new(Alliance::open_in_memory().unwrap());
    let relay = Relay::bind("127.0.0.1:0", relay_store.clone(), RelayOptions::default())
        .await
        .unwrap();
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
    sync_once(counselor.clone(), &relay.url(), &quick())
        .await
        .unwrap();
    sync_once(client.clone(), &relay.url(), &quick())
        .await
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

/// Speaks for `client` over a raw socket, offering refused notices or not, until the relay has
/// nothing more to say. Returns every message the relay sent after `peer`, and the index of the
/// first one that came after our first message carrying changes.
async fn raw_sync(
    relay: &Relay,
    client: &crate::Alliance,
    plan: crate::PlanId,
    offer_notices: bool,
) -> (Vec<Message>, Option<usize>) {
    let me = client.identity().unwrap().device_id.to_string();
    let mut socket = raw(relay).await;
    send(
        &mut socket,
        &Message::Join {
            sender_id: "raw".into(),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(me),
                refused_notices: offer_notices,
                ..PeerMetadata::default()
            }),
            supported_protocol_versions: Some(vec!["1".into()]),
        },
    )
    .await;
    let Some(Message::Peer { sender_id, .. }) = next(&mut socket).await else {
        panic!("no peer message");
    };
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
            send(
                &mut socket,
                &Message::Sync(DocumentMessage {
                    sender_id: "raw".into(),
                    target_id: sender_id.clone(),
                    document_id: document,
                    data,
                }),
            )
            .await;
        }
        while let Some(message) = next_within(&mut socket, Duration::from_millis(300)).await {
            quiet = false;
            if let Message::Sync(sync) = &message {
                client
                    .receive_sync_message(plan, "raw-relay", &sync.data)
                    .unwrap();
            }
            received.push(message);
        }
        if quiet {
            return (received, after_changes);
        }
    }
    panic!("the exchange did not settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_peer_that_offered_refused_notices_is_told_and_before_the_reply() {
    // Without the offer (what automerge-repo peers send): refused as before, and silently.
    let (relay, relay_store, client, plan) = relay_and_client_with_refused_change().await;
    let (received, _) = raw_sync(&relay, &client, plan, false).await;
    assert!(
        received.iter().all(|m| matches!(m, Message::Sync(_))),
        "{received:?}"
    );
    assert_eq!(relay_store.refused_changes(Some(plan)).unwrap().len(), 2);
    relay.shutdown().await;

    // With it: one notice naming both changes, the first answer to the message carrying them.
    let (relay, relay_store, client, plan) = relay_and_client_with_refused_change().await;
    let (received, after_changes) = raw_sync(&relay, &client, plan, true).await;
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
    relay.shutdown().await;
}

/// A device with many plans never sends more than a window of sync messages without hearing
/// from the server. Sending one per plan all at once (as it did) filled both sides' socket
/// buffers with a few thousand plans, and the device and the relay each waited for the other
/// to read, for ever. A server here reads everything and answers nothing until the device
/// pauses; it counts the first burst, then says it holds none of the plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_many_plans_pushes_a_window_at_a_time() {
    const PLANS: usize = 200;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        let Some(Ok(Frame::Binary(_join))) = socket.next().await else {
            panic!("no join");
        };
        let peer = Message::Peer {
            sender_id: "server".into(),
            target_id: "device".into(),
            peer_metadata: None,
            selected_protocol_version: PROTOCOL_V1.into(),
        };
        socket.send(Frame::binary(peer.encode())).await.unwrap();
        let mut bursts = Vec::new();
        let mut answered = 0;
        while answered < PLANS {
            // Everything the device sends before it waits for an answer.
            let mut burst = Vec::new();
            while let Some(message) = next_within(&mut socket, Duration::from_millis(200)).await {
                burst.push(message);
            }
            bursts.push(burst.len());
            if burst.is_empty() {
                break;
            }
            for message in burst {
                let (Message::Request(m) | Message::Sync(m)) = message else {
                    continue;
                };
                let unavailable = Message::DocUnavailable {
                    sender_id: "server".into(),
                    target_id: m.sender_id,
                    document_id: m.document_id,
                };
                socket
                    .send(Frame::binary(unavailable.encode()))
                    .await
                    .unwrap();
                answered += 1;
            }
        }
        bursts
    });
    let device = Arc::new(MemoryStore::new("device"));
    for n in 0..PLANS {
        device.put(doc(), "title", &format!("plan {n}"));
    }
    let options = SyncOptions {
        heads_digest: false,
        ..quick()
    };
    let summary = sync_once(device.clone(), &url, &options).await.unwrap();
    assert_eq!(summary.documents_unavailable.len(), PLANS);
    let bursts = server.await.unwrap();
    assert!(bursts.len() > 1, "bursts: {bursts:?}");
    assert!(
        bursts.iter().all(|&n| n <= client::PUSH_WINDOW),
        "more than {} messages unanswered: {bursts:?}",
        client::PUSH_WINDOW
    );
}
