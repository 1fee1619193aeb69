//! Compaction off the sync path: a relay compacts the plans a connection's burst of messages
//! left due once the burst is over, and a device compacts what its edits and a sync left due
//! when the sync ends, or in watch mode when its burst is over (`docs/design.md`, "Compaction").

mod sync_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alliance_core::store::DocumentSizes;
use alliance_core::sync::{spawn_alliance_watch, SyncProgress};
use alliance_core::{Alliance, NewCheckIn, PlanId, Role};
use sync_support::{options, plan_for, relay_in_memory, sim_relay_in_memory, Phone};

fn check_in(store: &Alliance, plan: PlanId, goal: alliance_core::GoalId, n: usize) {
    store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                note: format!("walked to work, day {n}"),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
}

/// Waits (up to a generous bound, never asserting on time) until `store`'s sizes for `plan`
/// satisfy `done`; returns the last sizes read.
fn sizes_once(
    store: &Alliance,
    plan: PlanId,
    done: impl Fn(&DocumentSizes) -> bool,
) -> DocumentSizes {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let sizes = store.document_sizes(plan).unwrap();
        if done(&sizes) || Instant::now() > until {
            return sizes;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_relay_compacts_a_plan_once_a_burst_of_changes_is_over() {
    let (relay, relay_store) = relay_in_memory();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    let goal = counselor.store.propose_goal(plan, "Walk more").unwrap();
    counselor.sync(relay.url().as_str(), &[]);
    let first = relay_store.document_sizes(plan).unwrap();
    assert_eq!(first.chunk_count, 0);

    // One check-in per sync, each a chunk on the relay, until the relay's chunks outgrow its
    // snapshot one and a half times over (under the cap at which a write compacts inline), or
    // the relay compacted them meanwhile.
    let mut n = 0;
    loop {
        check_in(&counselor.store, plan, goal, n);
        counselor.sync(relay.url().as_str(), &[]);
        n += 1;
        let sizes = relay_store.document_sizes(plan).unwrap();
        if sizes.snapshot_len != first.snapshot_len
            || sizes.chunk_bytes * 2 > first.snapshot_len * 3
        {
            break;
        }
        assert!(n < 500, "500 check-ins never outgrew the relay's snapshot");
    }
    let after = sizes_once(&relay_store, plan, |s| {
        s.snapshot_len > first.snapshot_len && s.chunk_bytes <= s.snapshot_len
    });
    assert!(
        after.snapshot_len > first.snapshot_len && after.chunk_bytes <= after.snapshot_len,
        "the relay never compacted: {first:?} then {after:?}"
    );
    // Nothing lost: a new device gets every check-in from the relay.
    client.sync(relay.url().as_str(), &[plan]);
    let plan_read = client.store.plan(plan).unwrap();
    assert_eq!(plan_read.goals[0].checkins.len(), n);
    assert_eq!(plan_read, counselor.store.plan(plan).unwrap());
    assert_eq!(
        relay_store.plan_heads(&[plan]).unwrap(),
        client.store.plan_heads(&[plan]).unwrap()
    );
}

/// A device's edits past the threshold only append; its next sync compacts them when it ends
/// (on the real socket and on the simulated network alike).
#[test]
fn a_device_compacts_what_its_edits_left_when_a_sync_ends() {
    for simulated in [false, true] {
        let counselor = Phone::new("Dana", Role::Counselor);
        let client = Phone::new("Sam", Role::Client);
        let plan = plan_for(&counselor, &client, "Sleep plan");
        let goal = counselor.store.propose_goal(plan, "Walk more").unwrap();
        let mut n = 0;
        let due = loop {
            check_in(&counselor.store, plan, goal, n);
            n += 1;
            let sizes = counselor.store.document_sizes(plan).unwrap();
            if sizes.chunk_bytes > sizes.snapshot_len {
                break sizes;
            }
            assert!(n < 500, "500 check-ins never outgrew the snapshot");
        };
        let (socket, _relay_store) = relay_in_memory();
        let (sim, _sim_store) = sim_relay_in_memory();
        if simulated {
            counselor.sync(&sim, &[]);
        } else {
            counselor.sync(socket.url().as_str(), &[]);
        }
        let after = counselor.store.document_sizes(plan).unwrap();
        assert_eq!(
            after.chunk_count, 0,
            "simulated {simulated}: {due:?} then {after:?}"
        );
        assert!(after.snapshot_len > due.snapshot_len);
        let fresh = counselor.store.plan_from_document(plan).unwrap();
        assert_eq!(fresh.goals[0].checkins.len(), n);
        assert_eq!(fresh, counselor.store.plan(plan).unwrap());
    }
}

/// A device in watch mode stays connected, so no session ends: once a second passes with no
/// message and no local edit, it compacts what its edits left due, and the relay has them all.
#[test]
fn a_device_in_watch_mode_compacts_once_its_burst_is_over() {
    let (relay, relay_store) = relay_in_memory();
    let url = relay.url();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    let goal = counselor.store.propose_goal(plan, "Walk more").unwrap();
    counselor.sync(url.as_str(), &[]);
    let first = counselor.store.document_sizes(plan).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = {
        let _inside = runtime.enter();
        let quiet = |_: &SyncProgress| {};
        spawn_alliance_watch(counselor.store.clone(), &url, options(&[]), Arc::new(quiet))
    };
    let mut n = 0;
    loop {
        check_in(&counselor.store, plan, goal, n);
        n += 1;
        let sizes = counselor.store.document_sizes(plan).unwrap();
        if sizes.chunk_bytes > sizes.snapshot_len || sizes.snapshot_len != first.snapshot_len {
            break;
        }
        assert!(n < 500, "500 check-ins never outgrew the snapshot");
    }
    let after = sizes_once(&counselor.store, plan, |s| {
        s.chunk_count == 0 && s.snapshot_len > first.snapshot_len
    });
    assert!(
        after.chunk_count == 0 && after.snapshot_len > first.snapshot_len,
        "watch mode never compacted: {first:?} then {after:?}"
    );
    let until = Instant::now() + Duration::from_secs(30);
    while relay_store.plan_heads(&[plan]).unwrap() != counselor.store.plan_heads(&[plan]).unwrap()
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    runtime.block_on(handle.stop());
    let read = relay_store.plan(plan).unwrap();
    assert_eq!(read.goals[0].checkins.len(), n);
    assert_eq!(read, counselor.store.plan_from_document(plan).unwrap());
}
