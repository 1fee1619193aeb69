//! Draining: `alliance relay` gets SIGTERM while 100 devices (50 plans, a counselor's device and
//! a client's phone each) edit and sync in a loop. No edit the relay acknowledged (a sync that
//! completed) is lost, and the process exits 0 within its grace period.
//!
//! `ALLIANCE_DRAIN_DEVICES` sets the number of devices (default 100).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alliance_core::sync::{sync_once, SyncOptions};
use alliance_core::{Alliance, PlanId};
use common::{alliance, Running};

/// The grace period the relay is started with.
const GRACE_SECS: u64 = 20;

fn options(token: &str) -> SyncOptions {
    SyncOptions {
        token: Some(token.to_string()),
        handshake_timeout: Duration::from_secs(60),
        settle_timeout: Duration::from_secs(120),
        ..SyncOptions::default()
    }
}

/// One device: its store, token, plan, and how many of its edits the relay acknowledged.
struct Device {
    store: Arc<Alliance>,
    token: String,
    plan: PlanId,
    name: String,
    acknowledged: AtomicUsize,
}

fn pair(index: usize) -> [Arc<Device>; 2] {
    let (plan, devices) = common::plan_pair(index);
    let mut sides = ["counselor", "client"].into_iter();
    devices.map(|(store, token)| {
        Arc::new(Device {
            store,
            token,
            plan,
            name: format!("{} {index}", sides.next().unwrap_or("device")),
            acknowledged: AtomicUsize::new(0),
        })
    })
}

/// Edits and syncs until a sync fails (the relay went away); counts acknowledged edits.
async fn edit_until_refused(device: Arc<Device>, url: String, terminated: Arc<AtomicBool>) {
    let mut made = 0;
    loop {
        if device.store.plan(device.plan).is_ok() {
            made += 1;
            device
                .store
                .propose_goal(device.plan, &format!("{} edit {made}", device.name))
                .unwrap();
        }
        match sync_once(device.store.clone(), &url, &options(&device.token)).await {
            Ok(_) => device.acknowledged.store(made, Ordering::SeqCst),
            Err(error) => {
                assert!(
                    terminated.load(Ordering::SeqCst),
                    "{} failed before the relay was told to stop: {error}",
                    device.name
                );
                return;
            }
        }
    }
}

#[test]
fn sigterm_during_a_100_device_sync_loses_no_acknowledged_edit() {
    let count = std::env::var("ALLIANCE_DRAIN_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize)
        .max(2)
        / 2;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let mut command = alliance(&db);
    command.args(["relay", "--listen", "127.0.0.1:0", "--open-enrollment"]);
    command.args(["--drain-grace-secs", &GRACE_SECS.to_string()]);
    let mut relay = Running::spawn(command);
    let url = relay
        .next_line()
        .strip_prefix("relay listening on ")
        .unwrap()
        .to_owned();
    let devices: Vec<Arc<Device>> = (0..count).flat_map(pair).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Counselors push their plans first, so phones find theirs on joining.
    runtime.block_on(async {
        for device in devices.iter().step_by(2) {
            sync_once(device.store.clone(), &url, &options(&device.token))
                .await
                .expect("first push");
        }
    });
    let terminated = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = devices
        .iter()
        .map(|device| {
            runtime.spawn(edit_until_refused(
                device.clone(),
                url.clone(),
                terminated.clone(),
            ))
        })
        .collect();
    // Once every device has had edits acknowledged, the relay is told to stop mid-traffic.
    let busy = || {
        devices
            .iter()
            .all(|d| d.acknowledged.load(Ordering::SeqCst) >= 2)
    };
    for _ in 0..6000 {
        if busy() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(busy(), "devices did not all get edits acknowledged");
    terminated.store(true, Ordering::SeqCst);
    relay.signal("TERM");
    let status = relay
        .wait_for_exit(Duration::from_secs(GRACE_SECS + 5))
        .expect("the relay exits within its grace period");
    assert!(status.success(), "{status}");
    runtime.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });

    // Every acknowledged edit is in the relay's file.
    let stored = Alliance::open(&db).unwrap();
    let mut acknowledged = 0;
    for device in &devices {
        let goals: Vec<String> = stored
            .plan(device.plan)
            .unwrap()
            .goals
            .into_iter()
            .map(|g| g.client_words)
            .collect();
        let acked = device.acknowledged.load(Ordering::SeqCst);
        acknowledged += acked;
        for n in 1..=acked {
            let words = format!("{} edit {n}", device.name);
            assert!(goals.contains(&words), "lost: {words}");
        }
    }
    println!(
        "drain: {} devices, {acknowledged} acknowledged edits, none lost, exit {status}",
        devices.len()
    );
}
