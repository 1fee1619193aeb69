//! Several `alliance relay` processes over one PostgreSQL database (`ALLIANCE_RELAY_STORE`):
//! devices on different instances converge, a watching device on one instance hears of an
//! edit pushed through the other within a second, kill -9 of an instance loses nothing
//! acknowledged, and concurrent pushes of one plan through both keep every change.
//!
//! Needs the server `scripts/test-postgres.sh` starts (`ALLIANCE_TEST_POSTGRES_URL`); skipped
//! without it unless `ALLIANCE_REQUIRE_POSTGRES=1`, where it fails.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alliance_core::sync::{
    spawn_alliance_watch, sync_once_blocking, SyncHandle, SyncOptions, SyncProgress,
};
use alliance_core::{Alliance, GoalId, NewDevice, PlanId, Role};
use alliance_relay_pg::testing::{check_in, check_ins, drop_listeners, postgres_database};
use common::{plan_pair, start_relay_with, Running};

/// An `alliance relay` storing in `store` (given by environment, as a service manager would).
fn instance(store: &str, dir: &std::path::Path) -> (Running, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alliance"));
    command
        .arg("--db")
        .arg(dir.join("unused.db"))
        .env_remove("ALLIANCE_DB")
        .env("ALLIANCE_RELAY_STORE", store);
    start_relay_with(command)
}

fn options(token: &str) -> SyncOptions {
    SyncOptions {
        token: Some(token.to_string()),
        settle_timeout: Duration::from_secs(30),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..SyncOptions::default()
    }
}

fn sync(device: &Arc<Alliance>, url: &str, token: &str) {
    sync_once_blocking(device.clone(), url, &options(token)).unwrap();
}

fn heads(device: &Alliance, plan: PlanId) -> Vec<automerge::ChangeHash> {
    device.plan_heads(&[plan]).unwrap()[0].1.clone().unwrap()
}

/// A plan with one goal: the counselor's device, the client's phone, and the client's second
/// device (a tablet), each with a relay token.
struct Three {
    plan: PlanId,
    goal: GoalId,
    counselor: (Arc<Alliance>, String),
    phone: (Arc<Alliance>, String),
    tablet: (Arc<Alliance>, String),
}

fn three_devices() -> Three {
    let (plan, [counselor, phone]) = plan_pair(0);
    let goal = counselor.0.propose_goal(plan, "Sleep").unwrap();
    let sam = phone.0.identity().unwrap();
    let tablet = Arc::new(Alliance::open_in_memory().unwrap());
    let tablet_id = tablet
        .init("Sam", Role::Client, Some(sam.member_id))
        .unwrap();
    counselor
        .0
        .enroll_device(
            plan,
            &NewDevice {
                device: tablet_id.device_id,
                member: sam.member_id,
                new_member: None,
                label: "tablet".into(),
            },
        )
        .unwrap();
    let tablet_token = counselor
        .0
        .issue_device_token(plan, tablet_id.device_id, None)
        .unwrap();
    Three {
        plan,
        goal,
        counselor,
        phone,
        tablet: (tablet, tablet_token),
    }
}

/// `device` in watch mode on `url`, connected and settled; keep the runtime while it watches.
fn watching(device: &(Arc<Alliance>, String), url: &str) -> (tokio::runtime::Runtime, SyncHandle) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Told of every step of the watcher's sync.
    let (heard, hear) = mpsc::channel();
    let observer = Arc::new(move |_: &SyncProgress| {
        let _ = heard.send(());
    });
    let watch = {
        let _inside = runtime.enter();
        spawn_alliance_watch(device.0.clone(), url, options(&device.1), observer)
    };
    // Settled once a while goes by without a step.
    let settled = Instant::now() + Duration::from_secs(30);
    while hear.recv_timeout(Duration::from_millis(300)).is_ok() && Instant::now() < settled {}
    (runtime, watch)
}

#[test]
fn three_devices_on_two_instances_converge_and_a_watcher_hears_within_a_second() {
    let Some(store) = postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_a, url_a) = instance(&store, dir.path());
    let (_b, url_b) = instance(&store, dir.path());
    let t = three_devices();
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    sync(&t.phone.0, &url_b, &t.phone.1);
    sync(&t.tablet.0, &url_a, &t.tablet.1);
    assert!(t.phone.0.has_plan(t.plan).unwrap());
    assert!(t.tablet.0.has_plan(t.plan).unwrap());

    // The phone watches on instance B; the counselor's edit goes through instance A.
    let (runtime, watch) = watching(&t.phone, &url_b);
    check_in(&t.counselor.0, t.plan, t.goal, 4);
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    let pushed = Instant::now();
    let deadline = pushed + Duration::from_secs(1);
    while check_ins(&t.phone.0, t.plan) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let latency = pushed.elapsed();
    assert_eq!(
        check_ins(&t.phone.0, t.plan),
        1,
        "the phone watching on B did not get the edit pushed through A within 1 s"
    );
    println!("edit through A reached the watcher on B in {latency:?}");
    drop(watch);
    drop(runtime);

    // The phone's own edit, through B, reaches the tablet on A.
    check_in(&t.phone.0, t.plan, t.goal, 2);
    sync(&t.phone.0, &url_b, &t.phone.1);
    sync(&t.tablet.0, &url_a, &t.tablet.1);
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    for device in [&t.counselor.0, &t.phone.0, &t.tablet.0] {
        assert_eq!(check_ins(device, t.plan), 2);
        assert_eq!(heads(device, t.plan), heads(&t.counselor.0, t.plan));
    }
}

#[test]
fn kill_9_of_an_instance_mid_sync_loses_nothing_and_its_devices_finish_on_the_other() {
    let Some(store) = postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut a, url_a) = instance(&store, dir.path());
    let (_b, url_b) = instance(&store, dir.path());
    let t = three_devices();
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    sync(&t.phone.0, &url_a, &t.phone.1);

    // The counselor pushes rounds of check-ins through A; A is killed after the second
    // round is acknowledged, while later rounds are in flight.
    let (acknowledged, rounds_done) = mpsc::channel();
    let pusher = {
        let counselor = t.counselor.clone();
        let url_a = url_a.clone();
        let (plan, goal) = (t.plan, t.goal);
        std::thread::spawn(move || {
            let mut made = 0;
            for round in 0..40 {
                for mood in 0..10 {
                    check_in(&counselor.0, plan, goal, 1 + (round + mood) % 5);
                    made += 1;
                }
                if sync_once_blocking(counselor.0.clone(), &url_a, &options(&counselor.1)).is_ok() {
                    let _ = acknowledged.send(round);
                }
            }
            made
        })
    };
    rounds_done.recv_timeout(Duration::from_secs(60)).unwrap();
    rounds_done.recv_timeout(Duration::from_secs(60)).unwrap();
    a.signal("KILL");
    assert!(a.wait_for_exit(Duration::from_secs(10)).is_some());
    let made = pusher.join().unwrap();
    assert_eq!(made, 400);
    assert!(
        rounds_done.try_iter().count() < 38,
        "A was killed while rounds were still to come"
    );

    // Both devices of A finish on B: everything the counselor made reaches the phone.
    sync(&t.counselor.0, &url_b, &t.counselor.1);
    sync(&t.phone.0, &url_b, &t.phone.1);
    assert_eq!(check_ins(&t.counselor.0, t.plan), 400);
    assert_eq!(check_ins(&t.phone.0, t.plan), 400);
    assert_eq!(heads(&t.phone.0, t.plan), heads(&t.counselor.0, t.plan));
    // And a device that never met A gets it all from the database through B.
    sync(&t.tablet.0, &url_b, &t.tablet.1);
    assert_eq!(check_ins(&t.tablet.0, t.plan), 400);
}

#[test]
fn concurrent_pushes_of_one_plan_through_both_instances_keep_every_change() {
    let Some(store) = postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_a, url_a) = instance(&store, dir.path());
    let (_b, url_b) = instance(&store, dir.path());
    let t = three_devices();
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    sync(&t.phone.0, &url_b, &t.phone.1);
    sync(&t.tablet.0, &url_b, &t.tablet.1);
    let rounds = 10;
    std::thread::scope(|scope| {
        for (device, url) in [
            (&t.counselor, &url_a),
            (&t.phone, &url_b),
            (&t.tablet, &url_a),
        ] {
            let (plan, goal) = (t.plan, t.goal);
            scope.spawn(move || {
                for round in 0..rounds {
                    check_in(&device.0, plan, goal, 1 + (round % 5) as u8);
                    check_in(&device.0, plan, goal, 1 + (round % 3) as u8);
                    sync(&device.0, url, &device.1);
                }
            });
        }
    });
    // Every device ends with every change: 3 devices × 10 rounds × 2 check-ins.
    for _ in 0..2 {
        sync(&t.counselor.0, &url_a, &t.counselor.1);
        sync(&t.phone.0, &url_b, &t.phone.1);
        sync(&t.tablet.0, &url_a, &t.tablet.1);
    }
    for device in [&t.counselor.0, &t.phone.0, &t.tablet.0] {
        assert_eq!(check_ins(device, t.plan), 3 * rounds * 2);
        assert_eq!(heads(device, t.plan), heads(&t.counselor.0, t.plan));
    }
}

#[test]
fn a_watcher_hears_of_an_edit_made_while_its_instance_was_not_listening() {
    let Some(store) = postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_a, url_a) = instance(&store, dir.path());
    let (_b, url_b) = instance(&store, dir.path());
    let t = three_devices();
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    sync(&t.phone.0, &url_b, &t.phone.1);
    let (_runtime, watch) = watching(&t.phone, &url_b);

    // Both instances lose their LISTEN connection (they reconnect after a second); the edit is
    // pushed through A meanwhile, so B hears no notification of it.
    assert_eq!(drop_listeners(&store), 2);
    check_in(&t.counselor.0, t.plan, t.goal, 3);
    sync(&t.counselor.0, &url_a, &t.counselor.1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while check_ins(&t.phone.0, t.plan) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        check_ins(&t.phone.0, t.plan),
        1,
        "B, back to listening, did not catch up with the write it missed"
    );
    drop(watch);
}

/// `alliance relay key --store URL` prints one key per database, whichever process asks, and
/// it is the key every instance over that database vouches with.
#[test]
fn every_instance_over_one_database_has_the_same_relay_key() {
    let Some(store) = postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_alliance"))
            .arg("--db")
            .arg(dir.path().join("unused.db"))
            .env_remove("ALLIANCE_DB")
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let first = key(&["relay", "key", "--store", &store]);
    assert_eq!(first.len(), 64, "{first}");
    assert_eq!(key(&["relay", "key", "--store", &store]), first);
    let pg = alliance_relay_pg::PgStore::open(&store).unwrap();
    assert_eq!(pg.relay_public_key().to_string(), first);
}
