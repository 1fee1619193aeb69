//! The relay's peer sessions and devices' client sessions on a simulated network, without
//! sockets or a runtime: frames move through in-memory queues, some reordered between plans,
//! some connections dropped, and the relay's news to other connections goes through its event
//! channel as it does over WebSockets.

use std::collections::VecDeque;
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::sync::client::session::ClientSession;
use crate::sync::memory_store::MemoryStore;
use crate::sync::SyncOptions;

fn doc() -> DocumentId {
    DocumentId::from_uuid(Uuid::new_v4())
}

/// A relay's shared state over `store`, as `Relay::bind` makes it, with no listener.
fn relay(store: &Arc<MemoryStore>) -> Arc<Shared> {
    let (_, drain) = watch::channel(None);
    Arc::new(Shared {
        store: store.clone(),
        options: RelayOptions::default(),
        storage_id: "relay".into(),
        peer_id: PeerId::new("alliance-relay-test"),
        events: broadcast::channel(1024).0,
        counters: Arc::new(RelayCounters::default()),
        per_token: Mutex::new(HashMap::new()),
        drain,
    })
}

/// One device's connection to the relay: both ends' sessions, the frames in flight each way,
/// and the relay's event feed for this connection.
struct Link {
    device: ClientSession,
    relay: PeerSession,
    events: broadcast::Receiver<RelayEvent>,
    to_relay: VecDeque<Message>,
    to_device: Vec<Message>,
}

impl Link {
    /// Connects `store` (a device) to the relay: `join`, the relay's `peer`, and the pushes
    /// the device's session starts with, in flight.
    fn open(shared: &Arc<Shared>, id: u64, store: &Arc<MemoryStore>) -> Self {
        let device_store: Arc<dyn SyncStore> = store.clone();
        let storage_id = device_store.storage_id().unwrap();
        let (mut device, join) =
            ClientSession::new(device_store, storage_id, &SyncOptions::default());
        let events = shared.events.subscribe();
        let (peer, answer) = answer_join(shared, None, join).unwrap();
        let relay = PeerSession::new(
            id,
            peer,
            Arc::clone(shared),
            None,
            Who::new("127.0.0.1:9".parse().unwrap(), None),
        );
        let first = device.receive(answer).unwrap();
        Self {
            device,
            relay,
            events,
            to_relay: first.into(),
            to_device: Vec::new(),
        }
    }

    /// Moves one frame (to the relay first, then to the device, `pick` choosing which of the
    /// waiting ones), or passes on one piece of relay news; false when nothing was waiting.
    fn step(&mut self, pick: &mut dyn FnMut(usize) -> usize) -> bool {
        if let Some(message) = self.to_relay.pop_front() {
            assert!(
                self.relay.handle(message).unwrap(),
                "the relay ended the session"
            );
            self.to_device.append(&mut self.relay.out);
            return true;
        }
        if let Ok(event) = self.events.try_recv() {
            self.relay.relay(event).unwrap();
            self.to_device.append(&mut self.relay.out);
            return true;
        }
        if !self.to_device.is_empty() {
            let message = self.to_device.remove(pick(self.to_device.len()));
            self.to_relay.extend(self.device.receive(message).unwrap());
            return true;
        }
        if self.device.waits_to_push() {
            self.to_relay.extend(self.device.quiet().unwrap());
            return true;
        }
        false
    }

    fn close(self) {
        self.device.end();
        self.relay
            .shared
            .store
            .end_sync_session(&self.relay.conversation);
    }
}

/// Runs every link until none has anything to move.
fn settle(links: &mut [Link], pick: &mut dyn FnMut(usize) -> usize) {
    for _ in 0..100_000 {
        let mut moved = false;
        for link in links.iter_mut() {
            moved |= link.step(pick);
        }
        if !moved {
            return;
        }
    }
    panic!("the simulated network did not settle");
}

fn first(_: usize) -> usize {
    0
}

/// A pseudo-random choice among the waiting frames (xorshift, seeded).
fn shuffled(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |len| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % len as u64) as usize
    }
}

#[test]
fn two_devices_converge_through_the_relay_on_a_simulated_network() {
    for seed in 0..6 {
        let relay_store = Arc::new(MemoryStore::new("relay"));
        let shared = relay(&relay_store);
        let a = Arc::new(MemoryStore::new("device-a"));
        let b = Arc::new(MemoryStore::new("device-b"));
        let plans: Vec<DocumentId> = (0..4).map(|_| doc()).collect();
        for plan in &plans {
            a.put(*plan, "title", "from a");
            b.want(*plan);
        }
        let mut pick = shuffled(seed);
        let mut links = vec![Link::open(&shared, 1, &a)];
        settle(&mut links, &mut pick);
        links.push(Link::open(&shared, 2, &b));
        settle(&mut links, &mut pick);
        for plan in &plans {
            assert_eq!(
                b.get(*plan, "title").as_deref(),
                Some("from a"),
                "seed {seed}"
            );
            assert_eq!(relay_store.heads(*plan), a.heads(*plan), "seed {seed}");
        }
        assert!(
            links.iter().all(|link| link.device.all_settled()),
            "seed {seed}"
        );
    }
}

#[test]
fn an_edit_on_one_connection_reaches_the_other_through_the_relays_news() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let shared = relay(&relay_store);
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plan = doc();
    a.put(plan, "title", "first");
    b.want(plan);
    let mut links = vec![Link::open(&shared, 1, &a), Link::open(&shared, 2, &b)];
    settle(&mut links, &mut first);
    assert_eq!(b.get(plan, "title").as_deref(), Some("first"));

    // Both stay connected; an edit on A is pushed, and B hears of it without asking.
    a.put(plan, "title", "second");
    let pushed = links[0].device.local_change(plan).unwrap();
    assert_eq!(pushed.len(), 1);
    links[0].to_relay.extend(pushed);
    settle(&mut links, &mut first);
    assert_eq!(b.get(plan, "title").as_deref(), Some("second"));
    assert_eq!(a.heads(plan), b.heads(plan));
}

#[test]
fn a_dropped_connection_loses_nothing_and_the_next_one_finishes() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let shared = relay(&relay_store);
    let a = Arc::new(MemoryStore::new("device-a"));
    let plans: Vec<DocumentId> = (0..6).map(|_| doc()).collect();
    for plan in &plans {
        a.put(*plan, "title", "offline edit");
    }
    let mut link = Link::open(&shared, 1, &a);
    // A few frames, then the connection drops with frames still in flight.
    for _ in 0..3 {
        link.step(&mut first);
    }
    link.close();

    let mut links = vec![Link::open(&shared, 2, &a)];
    settle(&mut links, &mut first);
    for plan in &plans {
        assert_eq!(relay_store.heads(*plan), a.heads(*plan));
    }
    assert!(links[0].device.all_settled());
}
