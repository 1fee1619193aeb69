//! The client session on a simulated link, without sockets or a runtime: a small in-memory
//! server answers it, and the link reorders frames between plans or goes down mid-way.

use std::collections::VecDeque;
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::sync::memory_store::MemoryStore;

fn doc() -> DocumentId {
    DocumentId::from_uuid(Uuid::new_v4())
}

/// The server side of the link: a store that answers `join` with `peer` and each sync
/// message with its own, as a relay does (no rules, no tokens).
struct Server {
    store: Arc<MemoryStore>,
    me: PeerId,
    peer: SyncPeer,
}

impl Server {
    fn new(store: &Arc<MemoryStore>) -> Self {
        Self {
            store: Arc::clone(store),
            me: PeerId::new("server"),
            peer: SyncPeer::conversation("device"),
        }
    }

    fn answer(&mut self, message: Message) -> Vec<Message> {
        match message {
            Message::Join { sender_id, .. } => vec![Message::Peer {
                sender_id: self.me.clone(),
                target_id: sender_id,
                peer_metadata: Some(PeerMetadata {
                    storage_id: Some("server".into()),
                    ..PeerMetadata::default()
                }),
                selected_protocol_version: PROTOCOL_V1.into(),
            }],
            Message::Sync(message) | Message::Request(message) => {
                let document = message.document_id;
                self.store
                    .receive_sync_message(document, &self.peer, &message.data)
                    .unwrap();
                self.store
                    .generate_sync_message(document, &self.peer)
                    .unwrap()
                    .map(|data| {
                        Message::Sync(DocumentMessage {
                            sender_id: self.me.clone(),
                            target_id: message.sender_id.clone(),
                            document_id: document,
                            data,
                        })
                    })
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Moves frames both ways until neither side has any; `order` picks which waiting frame to
/// the device goes next (a link that reorders), `deliver(n)` false drops the n-th frame and
/// everything after it (a link that goes down). Returns whether the link stayed up.
fn run(
    session: &mut ClientSession,
    server: &mut Server,
    first: Vec<Message>,
    order: &mut dyn FnMut(usize) -> usize,
    deliver: &dyn Fn(usize) -> bool,
) -> bool {
    let mut to_server: VecDeque<Message> = first.into();
    let mut to_device: Vec<Message> = Vec::new();
    let mut moved = 0;
    loop {
        if let Some(message) = to_server.pop_front() {
            moved += 1;
            if !deliver(moved) {
                return false;
            }
            to_device.extend(server.answer(message));
        } else if !to_device.is_empty() {
            let message = to_device.remove(order(to_device.len()));
            moved += 1;
            if !deliver(moved) {
                return false;
            }
            to_server.extend(session.receive(message).unwrap());
        } else if session.waits_to_push() {
            to_server.extend(session.quiet().unwrap());
        } else {
            return true;
        }
    }
}

fn in_order(_: usize) -> usize {
    0
}

fn options() -> SyncOptions {
    SyncOptions {
        push_window: 4,
        ..SyncOptions::default()
    }
}

fn device_with_plans(count: usize) -> (Arc<MemoryStore>, Vec<DocumentId>) {
    let store = Arc::new(MemoryStore::new("device"));
    let plans: Vec<DocumentId> = (0..count).map(|_| doc()).collect();
    for (index, plan) in plans.iter().enumerate() {
        store.put(*plan, "title", &format!("plan {index}"));
    }
    (store, plans)
}

fn session_of(store: &Arc<MemoryStore>) -> (ClientSession, Vec<Message>) {
    let store: Arc<dyn SyncStore> = store.clone();
    let (session, join) = ClientSession::new(store, "device".into(), &options());
    (session, vec![join])
}

#[test]
fn a_session_on_a_simulated_link_syncs_every_plan_both_ways() {
    let (device, plans) = device_with_plans(10);
    let server_store = Arc::new(MemoryStore::new("server"));
    let theirs = doc();
    server_store.put(theirs, "title", "made elsewhere");
    device.want(theirs);
    let mut server = Server::new(&server_store);
    let (mut session, first) = session_of(&device);

    assert!(run(
        &mut session,
        &mut server,
        first,
        &mut in_order,
        &|_| true
    ));
    assert!(session.is_syncing() && session.all_settled());
    for plan in &plans {
        assert_eq!(server_store.get(*plan, "title"), device.get(*plan, "title"));
    }
    assert_eq!(
        device.get(theirs, "title").as_deref(),
        Some("made elsewhere")
    );
    let summary = session.summary(Traffic::default());
    assert_eq!(
        (summary.documents_total, summary.documents_synced),
        (11, 11)
    );
    assert_eq!(summary.documents_updated, vec![theirs]);
}

#[test]
fn frames_reordered_between_plans_still_sync_every_plan() {
    for seed in 0..8u64 {
        let (device, plans) = device_with_plans(6);
        let server_store = Arc::new(MemoryStore::new("server"));
        // Half of them the server already holds, with an edit the device lacks.
        for plan in &plans[..3] {
            server_store.put(*plan, "reviewed", "yes");
        }
        let mut server = Server::new(&server_store);
        let (mut session, first) = session_of(&device);
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut shuffled = |len: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % len as u64) as usize
        };
        assert!(run(
            &mut session,
            &mut server,
            first,
            &mut shuffled,
            &|_| true
        ));
        assert!(session.all_settled(), "seed {seed}");
        for plan in &plans {
            assert_eq!(
                server_store.heads(*plan),
                device.heads(*plan),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn a_link_that_goes_down_resumes_in_a_new_session() {
    let (device, plans) = device_with_plans(8);
    let server_store = Arc::new(MemoryStore::new("server"));
    let mut server = Server::new(&server_store);
    let (mut session, first) = session_of(&device);
    assert!(!run(
        &mut session,
        &mut server,
        first,
        &mut in_order,
        &|n| n < 7
    ));
    assert!(!session.all_settled() || session.waits_to_push());
    session.end();

    let (mut again, first) = session_of(&device);
    assert!(run(&mut again, &mut server, first, &mut in_order, &|_| {
        true
    }));
    assert!(again.all_settled());
    for plan in &plans {
        assert_eq!(server_store.heads(*plan), device.heads(*plan));
    }
}

#[test]
fn no_more_than_the_push_window_goes_out_before_the_server_answers() {
    let (device, _) = device_with_plans(10);
    let server_store = Arc::new(MemoryStore::new("server"));
    let mut server = Server::new(&server_store);
    let (mut session, first) = session_of(&device);
    let peer = server.answer(first.into_iter().next().unwrap());
    let pushed = session.receive(peer.into_iter().next().unwrap()).unwrap();
    assert_eq!(pushed.len(), 4, "one window");
    assert!(session.waits_to_push());
    // A server quiet for a while: the next window goes out.
    assert_eq!(session.quiet().unwrap().len(), 4);
    assert_eq!(session.quiet().unwrap().len(), 2);
    assert!(!session.waits_to_push());
}

#[test]
fn what_a_server_says_before_peer_is_a_typed_error() {
    let (device, _) = device_with_plans(1);
    let (mut session, _) = session_of(&device);
    let error = session
        .receive(Message::Error {
            sender_id: Some(PeerId::new("server")),
            target_id: None,
            message: "token refused".into(),
        })
        .unwrap_err();
    assert!(
        matches!(error, SyncError::Remote(ref m) if m == "token refused"),
        "{error:?}"
    );
    let (mut session, _) = session_of(&device);
    let sync = Message::Leave {
        sender_id: PeerId::new("server"),
    };
    assert!(matches!(
        session.receive(sync),
        Err(SyncError::UnexpectedMessage(_))
    ));
    assert_eq!(session.awaiting(), "the server's `peer` message");
}
