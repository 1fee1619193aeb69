//! The client session on a simulated link, without sockets or a runtime: a small in-memory
//! server answers it, and the link reorders frames between plans or goes down mid-way.

use std::collections::VecDeque;
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::sync::memory_store::{MemoryStore, Overlapping};

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

/// Every frame waiting for the device is handed over in one `receive_all`, as the driver does
/// with the frames already received: several plans' messages, and one
/// about a document nobody asked for, which is declined.
#[test]
fn messages_received_together_sync_every_plan_as_one_by_one_does() {
    let (device, plans) = device_with_plans(9);
    let server_store = Arc::new(MemoryStore::new("server"));
    for plan in &plans[..5] {
        server_store.put(*plan, "reviewed", "yes");
    }
    let unasked = doc();
    server_store.put(unasked, "title", "not asked for");
    let mut server = Server::new(&server_store);
    let (mut session, first) = session_of(&device);
    let mut to_server: VecDeque<Message> = first.into();
    let mut to_device: Vec<Message> = Vec::new();
    let mut together = 0;
    let mut declined = 0;
    let mut injected = false;
    for _ in 0..1_000 {
        if let Some(message) = to_server.pop_front() {
            to_device.extend(server.answer(message));
            continue;
        }
        if to_device.is_empty() && !session.waits_to_push() {
            break;
        }
        if to_device.is_empty() {
            to_server.extend(session.quiet().unwrap());
            continue;
        }
        if session.is_syncing() && !injected {
            injected = true;
            // A document nobody asked for, in the same batch as the plans.
            to_device.push(Message::Sync(DocumentMessage {
                sender_id: server.me.clone(),
                target_id: PeerId::new("device"),
                document_id: unasked,
                data: server_store
                    .generate_sync_message(unasked, &SyncPeer::conversation("other"))
                    .unwrap()
                    .unwrap(),
            }));
        }
        let batch = std::mem::take(&mut to_device);
        together = together.max(batch.len());
        let out = session.receive_all(batch).unwrap();
        declined += out
            .iter()
            .filter(|m| matches!(m, Message::DocUnavailable { document_id, .. } if *document_id == unasked))
            .count();
        to_server.extend(out);
    }
    assert!(together >= 4, "batches of {together}");
    assert_eq!(declined, 1);
    assert!(session.all_settled());
    for plan in &plans {
        assert_eq!(server_store.heads(*plan), device.heads(*plan));
    }
    assert_eq!(device.get(plans[0], "reviewed").as_deref(), Some("yes"));
    assert!(device.heads(unasked).is_empty());
    let summary = session.summary(Traffic::default());
    assert_eq!(summary.documents_synced, 9);
    let mut updated = plans[..5].to_vec();
    updated.sort();
    assert_eq!(summary.documents_updated, updated);
}

/// Messages about different plans received together are taken in by the store at the same
/// time, on more than one thread (on a machine with more than one core).
#[test]
fn messages_about_different_plans_are_stored_in_parallel() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("one core: nothing runs in parallel here");
        return;
    }
    let (device, plans) = device_with_plans(4);
    let server_store = Arc::new(MemoryStore::new("server"));
    for plan in &plans {
        server_store.put(*plan, "reviewed", "yes");
    }
    let store = Arc::new(Overlapping::new(Arc::clone(&device)));
    let dyn_store: Arc<dyn SyncStore> = store.clone();
    let (mut session, join) = ClientSession::new(dyn_store, "device".into(), &options());
    let mut server = Server::new(&server_store);
    let peer = server.answer(join).remove(0);
    let pushed = session.receive(peer).unwrap();
    let answers: Vec<Message> = pushed.into_iter().flat_map(|m| server.answer(m)).collect();
    assert_eq!(answers.len(), 4);
    session.receive_all(answers).unwrap();
    assert_eq!(store.most(), 2, "two plans' messages in the store at once");
    for plan in &plans {
        assert_eq!(device.get(*plan, "reviewed").as_deref(), Some("yes"));
    }
}
