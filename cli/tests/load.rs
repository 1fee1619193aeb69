//! Load: many simulated devices on one `alliance relay` process (tokens required), all held
//! open in watch mode, each making edits; no edit may be lost. Prints connections held,
//! edits per second and the relay's peak memory (VmHWM of its process).
//!
//! `ALLIANCE_LOAD_DEVICES` sets the number of devices (default 100; the note reports 1,000),
//! `ALLIANCE_LOAD_EDITS` the edits per device (default 2).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alliance_core::sync::{
    spawn_alliance_watch, sync_once, SyncHandle, SyncObserver, SyncOptions, SyncProgress,
};
use alliance_core::{Alliance, PlanId};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The relay process, killed when dropped.
struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One plan: a counselor's device and the client's phone, each with its relay token.
struct Pair {
    plan: PlanId,
    devices: [(Arc<Alliance>, String); 2],
}

fn pair(index: usize) -> Pair {
    let (plan, devices) = common::plan_pair(index);
    Pair { plan, devices }
}

fn options(token: &str) -> SyncOptions {
    SyncOptions {
        token: Some(token.to_string()),
        handshake_timeout: Duration::from_secs(60),
        settle_timeout: Duration::from_secs(120),
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..SyncOptions::default()
    }
}

/// `alliance relay` on a free loopback port, storing in the file `db` or, given `store`, in
/// that PostgreSQL database.
fn start_relay(db: &std::path::Path, store: Option<&str>) -> (RelayProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alliance"));
    command
        .arg("--db")
        .arg(db)
        .args(["relay", "--listen", "127.0.0.1:0", "--open-enrollment"])
        .env_remove("ALLIANCE_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(store) = store {
        command.env("ALLIANCE_RELAY_STORE", store);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let relay = RelayProcess(child);
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let url = line.strip_prefix("relay listening on ").unwrap().to_owned();
    (relay, url)
}

/// Counselors push their plans through `urls[0]`; every device then holds a watch-mode
/// connection (counselors on `urls[0]`, phones on `urls[1]`) and makes `edits` edits, until
/// every edit reached both devices of its plan. Returns the connections held and the seconds
/// the edits took.
fn drive(pairs: &[Pair], urls: [&str; 2], edits: usize) -> (usize, f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Counselors push their new plans (open enrollment), so phones find them on joining.
    runtime.block_on(async {
        let mut pushes = tokio::task::JoinSet::new();
        for pair in pairs {
            let (store, token) = pair.devices[0].clone();
            let url = urls[0].to_owned();
            pushes.spawn(async move { sync_once(store, &url, &options(&token)).await });
        }
        while let Some(done) = pushes.join_next().await {
            done.unwrap().expect("first push");
        }
    });

    // Every device connects in watch mode and stays connected.
    let observer: Arc<dyn SyncObserver> = Arc::new(|_: &SyncProgress| {});
    let handles: Vec<SyncHandle> = {
        let _entered = runtime.enter();
        pairs
            .iter()
            .flat_map(|pair| pair.devices.iter().zip(urls))
            .map(|((store, token), url)| {
                spawn_alliance_watch(store.clone(), url, options(token), observer.clone())
            })
            .collect()
    };
    let settled = |handles: &[SyncHandle]| {
        handles.iter().all(|handle| {
            let progress = handle.progress();
            progress.connected && progress.plans_total == 1 && progress.plans_synced == 1
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while !settled(&handles) {
        assert!(Instant::now() < deadline, "devices did not all connect");
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = handles.iter().filter(|h| h.progress().connected).count();

    // Each device makes its edits; watch mode pushes each as it is stored.
    let started = Instant::now();
    for pair in pairs {
        for (side, (store, _)) in pair.devices.iter().enumerate() {
            for edit in 0..edits {
                store
                    .propose_goal(pair.plan, &format!("edit {edit} from side {side}"))
                    .unwrap();
            }
        }
    }
    let complete = |pairs: &[Pair]| {
        pairs.iter().all(|pair| {
            pair.devices.iter().all(|(store, _)| {
                store.plan(pair.plan).map_or(0, |plan| plan.goals.len()) == 2 * edits
            })
        })
    };
    // Past this long with nothing arriving, the edits are stuck: say where.
    let quiet_limit = Duration::from_secs(120);
    let mut last_progress = (missing_goals(pairs, edits), Instant::now());
    while !complete(pairs) {
        let missing = missing_goals(pairs, edits);
        if missing < last_progress.0 {
            last_progress = (missing, Instant::now());
        }
        assert!(
            Instant::now() < deadline && last_progress.1.elapsed() < quiet_limit,
            "edits did not all arrive: {}",
            stuck(pairs, edits)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed().as_secs_f64();
    runtime.block_on(async {
        for handle in handles {
            handle.stop().await;
        }
    });
    (held, elapsed)
}

/// Goals still missing across every device of every plan.
fn missing_goals(pairs: &[Pair], edits: usize) -> usize {
    pairs
        .iter()
        .flat_map(|pair| {
            pair.devices
                .iter()
                .map(move |(store, _)| (store, pair.plan))
        })
        .map(|(store, plan)| {
            (2 * edits).saturating_sub(store.plan(plan).map_or(0, |plan| plan.goals.len()))
        })
        .sum()
}

/// The plans whose edits have not all arrived, with every refusal and set-aside change their
/// devices recorded: what a stuck run needs to be understood.
fn stuck(pairs: &[Pair], edits: usize) -> String {
    let mut report = Vec::new();
    for pair in pairs {
        let counts: Vec<usize> = pair
            .devices
            .iter()
            .map(|(store, _)| store.plan(pair.plan).map_or(0, |plan| plan.goals.len()))
            .collect();
        if counts.iter().all(|count| *count == 2 * edits) {
            continue;
        }
        let mut line = format!("plan {} goals {counts:?}", pair.plan);
        for (side, (store, _)) in pair.devices.iter().enumerate() {
            let refused = store.refused_changes(Some(pair.plan)).unwrap_or_default();
            let set_aside = store.set_aside_changes(pair.plan).unwrap_or_default();
            for (_, refusal) in refused {
                line.push_str(&format!("; side {side} refused {refusal:?}"));
            }
            for change in set_aside {
                line.push_str(&format!("; side {side} set aside {change:?}"));
            }
        }
        report.push(line);
    }
    format!("{} plans: {}", report.len(), report.join(" | "))
}

#[test]
fn many_devices_edit_through_one_relay_and_no_edit_is_lost() {
    let devices = env_number("ALLIANCE_LOAD_DEVICES", 100).max(2) / 2 * 2;
    let edits = env_number("ALLIANCE_LOAD_EDITS", 2).max(1);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (relay, url) = start_relay(&db, None);
    let pairs: Vec<Pair> = (0..devices / 2).map(pair).collect();
    let (held, elapsed) = drive(&pairs, [&url, &url], edits);
    let peak = peak_kib(relay.0.id());
    drop(relay);

    // The relay's file holds every edit of every plan.
    let stored = Alliance::open(&db).unwrap();
    let lost: usize = pairs
        .iter()
        .map(|pair| 2 * edits - stored.plan(pair.plan).unwrap().goals.len())
        .sum();
    let total = devices * edits;
    println!(
        "load: {devices} devices, {held} connections held, {total} edits in {elapsed:.2} s \
         ({:.0} edits/s, each delivered to both devices of its plan), {lost} lost, \
         relay peak memory {:.1} MiB",
        total as f64 / elapsed,
        peak as f64 / 1024.0
    );
    assert_eq!(held, devices);
    assert_eq!(lost, 0);
}

/// The same load on two relay instances over one PostgreSQL database, each plan's counselor on
/// one instance and its phone on the other: every edit crosses between instances (LISTEN/
/// NOTIFY) and none is lost. Needs `ALLIANCE_TEST_POSTGRES_URL` (`scripts/test-postgres.sh`).
#[test]
fn many_devices_edit_through_two_postgres_instances_and_no_edit_is_lost() {
    let Some(store) = alliance_relay_pg::testing::postgres_database() else {
        return;
    };
    let devices = env_number("ALLIANCE_LOAD_DEVICES", 100).max(2) / 2 * 2;
    let edits = env_number("ALLIANCE_LOAD_EDITS", 2).max(1);
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.db");
    let (a, url_a) = start_relay(&unused, Some(&store));
    let (b, url_b) = start_relay(&unused, Some(&store));
    let pairs: Vec<Pair> = (0..devices / 2).map(pair).collect();
    let (held, elapsed) = drive(&pairs, [&url_a, &url_b], edits);
    let (peak_a, peak_b) = (peak_kib(a.0.id()), peak_kib(b.0.id()));
    drop((a, b));

    // The database holds every edit of every plan: its heads are the devices' heads.
    let stored = alliance_relay_pg::PgStore::open(&store).unwrap();
    let lost = pairs
        .iter()
        .filter(|pair| {
            let heads = pair.devices[0].0.plan_heads(&[pair.plan]).unwrap()[0]
                .1
                .clone()
                .unwrap();
            let document = alliance_core::sync::DocumentId::from_uuid(pair.plan.as_uuid());
            let digest =
                alliance_core::sync::SyncStore::heads_digests(&stored, &[document]).unwrap()[0].1;
            digest != Some(alliance_core::sync::heads_digest(&heads))
        })
        .count();
    let total = devices * edits;
    println!(
        "load (PostgreSQL, 2 instances): {devices} devices, {held} connections held, {total} \
         edits in {elapsed:.2} s ({:.0} edits/s, each delivered to both devices of its plan), \
         {lost} plan(s) missing edits, peak memory A {:.1} MiB, B {:.1} MiB",
        total as f64 / elapsed,
        peak_a as f64 / 1024.0,
        peak_b as f64 / 1024.0
    );
    assert_eq!(held, devices);
    assert_eq!(lost, 0);
}
