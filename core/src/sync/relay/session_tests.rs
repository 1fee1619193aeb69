//! The relay's peer sessions and devices' client sessions on the simulated network (`sim.rs`),
//! without sockets or a runtime: frames reordered between plans, connections held open while
//! the relay's news goes from one to the other through its event channel, connections dropped.

use std::sync::Arc;

use uuid::Uuid;

use super::sim::{settle, Faults, SimRelay};
use super::*;
use crate::sync::memory_store::{MemoryStore, Overlapping};
use crate::sync::SyncOptions;

fn doc() -> DocumentId {
    DocumentId::from_uuid(Uuid::new_v4())
}

fn relay(store: &Arc<MemoryStore>) -> SimRelay {
    SimRelay::new(store.clone(), RelayOptions::default()).unwrap()
}

#[test]
fn two_devices_converge_through_the_relay_on_a_simulated_network() {
    for seed in 0..6 {
        let relay_store = Arc::new(MemoryStore::new("relay"));
        let relay = relay(&relay_store);
        let a = Arc::new(MemoryStore::new("device-a"));
        let b = Arc::new(MemoryStore::new("device-b"));
        let plans: Vec<DocumentId> = (0..4).map(|_| doc()).collect();
        for plan in &plans {
            a.put(*plan, "title", "from a");
            b.want(*plan);
        }
        let options = SyncOptions::default();
        let mut devices = vec![relay
            .open_with(a.clone(), &options, Faults::reordering(seed))
            .unwrap()];
        settle(&mut devices).unwrap();
        devices.push(
            relay
                .open_with(b.clone(), &options, Faults::reordering(seed + 100))
                .unwrap(),
        );
        settle(&mut devices).unwrap();
        for plan in &plans {
            assert_eq!(
                b.get(*plan, "title").as_deref(),
                Some("from a"),
                "seed {seed}"
            );
            assert_eq!(relay_store.heads(*plan), a.heads(*plan), "seed {seed}");
        }
    }
}

#[test]
fn an_edit_on_one_connection_reaches_the_other_through_the_relays_news() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store);
    let a = Arc::new(MemoryStore::new("device-a"));
    let b = Arc::new(MemoryStore::new("device-b"));
    let plan = doc();
    a.put(plan, "title", "first");
    b.want(plan);
    let options = SyncOptions::default();
    let mut devices = vec![
        relay.open(a.clone(), &options).unwrap(),
        relay.open(b.clone(), &options).unwrap(),
    ];
    settle(&mut devices).unwrap();
    assert_eq!(b.get(plan, "title").as_deref(), Some("first"));

    // Both stay connected; an edit on A is pushed, and B hears of it without asking.
    a.put(plan, "title", "second");
    devices[0].local_change(plan).unwrap();
    settle(&mut devices).unwrap();
    assert_eq!(b.get(plan, "title").as_deref(), Some("second"));
    assert_eq!(a.heads(plan), b.heads(plan));
}

#[test]
fn a_dropped_connection_loses_nothing_and_the_next_one_finishes() {
    let relay_store = Arc::new(MemoryStore::new("relay"));
    let relay = relay(&relay_store);
    let a = Arc::new(MemoryStore::new("device-a"));
    let plans: Vec<DocumentId> = (0..6).map(|_| doc()).collect();
    for plan in &plans {
        a.put(*plan, "title", "offline edit");
    }
    // A few frames, then the connection drops with frames still in flight.
    let options = SyncOptions::default();
    let mut device = relay
        .open_with(a.clone(), &options, Faults::none().dropping_after(3))
        .unwrap();
    let error = device.settle().unwrap_err();
    assert!(matches!(error, SyncError::Transport(_)), "{error}");
    assert!(!device.is_open(), "the relay saw the connection go");
    device.close();

    let summary = relay.sync_once(a.clone(), &options).unwrap();
    assert_eq!(summary.documents_synced, plans.len());
    for plan in &plans {
        assert_eq!(relay_store.heads(*plan), a.heads(*plan));
    }
}

/// Both sides take every frame waiting for them in one step (the relay's `handle_all`, the
/// device's `receive_all`), frames reordered between plans: two devices still converge on
/// every plan, each edited on both sides, and the relay holds what they hold.
#[test]
fn frames_arriving_together_on_both_sides_still_converge() {
    for seed in 0..6 {
        let relay_store = Arc::new(MemoryStore::new("relay"));
        let relay = relay(&relay_store);
        let a = Arc::new(MemoryStore::new("device-a"));
        let b = Arc::new(MemoryStore::new("device-b"));
        let plans: Vec<DocumentId> = (0..8).map(|_| doc()).collect();
        for plan in &plans {
            a.put(*plan, "title", "from a");
            b.want(*plan);
        }
        let options = SyncOptions::default();
        let faults = |n: u64| Faults::reordering(seed + n).batching();
        let mut devices = vec![relay.open_with(a.clone(), &options, faults(0)).unwrap()];
        settle(&mut devices).unwrap();
        for plan in &plans {
            a.put(*plan, "note", "a again");
        }
        devices.push(relay.open_with(b.clone(), &options, faults(100)).unwrap());
        settle(&mut devices).unwrap();
        for plan in &plans {
            b.put(*plan, "reply", "from b");
            devices[1].local_change(*plan).unwrap();
        }
        settle(&mut devices).unwrap();
        for plan in &plans {
            assert_eq!(
                a.get(*plan, "reply").as_deref(),
                Some("from b"),
                "seed {seed}"
            );
            assert_eq!(
                b.get(*plan, "note").as_deref(),
                Some("a again"),
                "seed {seed}"
            );
            assert_eq!(relay_store.heads(*plan), a.heads(*plan), "seed {seed}");
            assert_eq!(relay_store.heads(*plan), b.heads(*plan), "seed {seed}");
        }
    }
}

/// Messages about different plans that reach the relay together are taken in by its store
/// side by side (on a machine with more than one core).
#[test]
fn the_relay_stores_messages_about_different_plans_in_parallel() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("one core: nothing runs in parallel here");
        return;
    }
    let relay_store = Arc::new(Overlapping::new(Arc::new(MemoryStore::new("relay"))));
    let relay = SimRelay::new(relay_store.clone(), RelayOptions::default()).unwrap();
    let a = Arc::new(MemoryStore::new("device-a"));
    let plans: Vec<DocumentId> = (0..4).map(|_| doc()).collect();
    for plan in &plans {
        a.put(*plan, "title", "from a");
    }
    let options = SyncOptions::default();
    let mut device = relay
        .open_with(a.clone(), &options, Faults::none().batching())
        .unwrap();
    device.settle().unwrap();
    assert_eq!(
        relay_store.most(),
        2,
        "two plans' messages in the store at once"
    );
}
