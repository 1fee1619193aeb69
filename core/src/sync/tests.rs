//! Device ↔ relay tests on loopback WebSockets with in-memory stores: only what needs the
//! drivers (`client/mod.rs`, `client/watch_mode.rs`, `relay/connection.rs`) and a real socket —
//! watch mode pushing local changes and reconnecting after a relay restart, frames only the
//! WebSocket layer sees (text, oversized), keepalive pings against the relay's idle timeout
//! and against a silent server, and the push window's quiet timer against a server that reads
//! without answering. Session logic (convergence, the heads digest, tokens, refused notices,
//! bad messages) runs on the simulated network in `sim_tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Frame;
use uuid::Uuid;

use super::memory_store::MemoryStore;
use super::*;
use crate::SyncPeer;

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

/// A store that makes a local edit, and announces it, right after it has given the heads
/// digests of the first connection: the edit falls between the comparison of heads and the end
/// of the handshake.
struct EditsDuringHandshake {
    inner: Arc<MemoryStore>,
    plan: DocumentId,
    /// Where the watch handle's change sender arrives; taken on the first call.
    announce: parking_lot::Mutex<
        Option<std::sync::mpsc::Receiver<tokio::sync::mpsc::UnboundedSender<DocumentId>>>,
    >,
}

impl SyncStore for EditsDuringHandshake {
    fn storage_id(&self) -> Result<String, SyncError> {
        self.inner.storage_id()
    }
    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        self.inner.document_ids()
    }
    fn heads_digests(
        &self,
        documents: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Option<heads::HeadsDigest>)>, SyncError> {
        let digests = self.inner.heads_digests(documents)?;
        if let Some(announce) = self.announce.lock().take() {
            // Called off the reactor: waiting here for the handle is fine.
            let sender = announce.recv().unwrap();
            self.inner
                .put(self.plan, "title", "edited while connecting");
            sender.send(self.plan).unwrap();
        }
        Ok(digests)
    }
    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        self.inner.has_document(document)
    }
    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        self.inner.generate_sync_message(document, peer)
    }
    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        self.inner.receive_sync_message(document, peer, message)
    }
    fn end_sync_session(&self, peer: &SyncPeer) {
        self.inner.end_sync_session(peer)
    }
}

/// An edit announced while watch mode is still connecting is pushed once connected. Before,
/// the session dropped every announcement queued when the handshake ended as already covered,
/// so an edit made after the heads were compared waited for the next reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_connecting_is_pushed() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store).await;
    let device = Arc::new(MemoryStore::new("device"));
    let plan = doc();
    device.put(plan, "title", "before");
    sync(&device, &relay).await;
    let (handle_sender, announce) = std::sync::mpsc::channel();
    let store = Arc::new(EditsDuringHandshake {
        inner: device.clone(),
        plan,
        announce: parking_lot::Mutex::new(Some(announce)),
    });
    let watch = spawn_watch(
        store.clone(),
        &relay.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );
    handle_sender.send(watch.change_sender()).unwrap();
    wait_for(|| relay_store.get(plan, "title").as_deref() == Some("edited while connecting")).await;
    watch.stop().await;
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

/// Frames only the WebSocket layer sees — a text frame, a frame over the size limit — close
/// the connection with a reason, while a device in watch mode on another connection keeps
/// being served. (Bad input that reaches the sessions: `sim_tests.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refuses_text_and_oversized_frames_and_keeps_serving_others() {
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

    // A device stays connected throughout, in watch mode.
    let watch = spawn_watch(
        device.clone(),
        &relay.url(),
        quick(),
        Arc::new(|_: &SyncProgress| {}),
    );

    // A text frame.
    let mut socket = raw(&relay).await;
    socket
        .send(Frame::text("{\"type\":\"join\"}"))
        .await
        .unwrap();
    expect_error_then_close(&mut socket, "text frame").await;

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

    assert_eq!(relay.connections_refused(), 2);
    assert_eq!(relay_store.heads(plan), heads, "nothing stored changed");

    // The well-behaved device is still served.
    device.put(plan, "title", "still served");
    watch.local_change(plan);
    wait_for(|| relay_store.get(plan, "title").as_deref() == Some("still served")).await;
    watch.stop().await;
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
