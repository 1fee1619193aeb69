//! P5: the same sync workload on Alliance (two devices through `alliance relay`) and on
//! automerge-repo JS 2.5.6 on node (two repos through its own sync server): 100 plans, each
//! started on the counselor's device and fetched by the client's, then 20 edits on each
//! device per plan, synced until both hold the same heads. Wall-clock of the workload (from
//! the first plan to convergence, process start-up excluded) and peak resident memory of the
//! device process and the server process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use alliance_core::{GoalId, PlanId, Role};
use automerge::Automerge;

use crate::fixture::{daily_checkin, statement_edit, words_edit, Device, Result};
use crate::process::{cpu_seconds, own_peak_kib, report, run_to_end, this_binary, Server};
use crate::reconnect::{relay_at, sync};

pub const PLANS: usize = 100;
pub const EDITS: usize = 20;

/// The relay child: serves `db` on loopback until stdin closes.
pub fn relay_child(db: &Path) -> Result<()> {
    // R1: a `postgres://` URL in place of a file.
    let relay = match db.to_str().filter(|text| text.starts_with("postgres")) {
        Some(url) => crate::instances::relay_on_postgres(url)?,
        None => relay_at(db)?,
    };
    println!("ready {}", relay.local_addr().port());
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest)?;
    relay.stop();
    Ok(())
}

/// The devices child: both devices in one process, stores in `dir`.
pub fn devices_child(port: &str, dir: &Path) -> Result<()> {
    let url = format!("ws://127.0.0.1:{port}");
    // R1: the client on another relay instance than the counselor.
    let client_url = std::env::var("ALLIANCE_BENCH_CLIENT_PORT")
        .map_or_else(|_| url.clone(), |port| format!("ws://127.0.0.1:{port}"));
    let counselor = Device::at(&dir.join("counselor.db"), "Dana", Role::Counselor)?;
    let client = Device::at(&dir.join("client.db"), "Sam", Role::Client)?;
    let started = Instant::now();
    let verbose = std::env::var_os("ALLIANCE_BENCH_VERBOSE").is_some();
    let phase = |what: &str| {
        if verbose {
            eprintln!("{what} at {:.2} s", started.elapsed().as_secs_f64());
        }
    };
    // Fewer plans only for profiling runs.
    let count = std::env::var("ALLIANCE_BENCH_PLANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(PLANS);
    // Fewer edits for the cost curves (C3).
    let edits = std::env::var("ALLIANCE_BENCH_EDITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(EDITS);
    let mut plans: Vec<(PlanId, GoalId)> = Vec::with_capacity(count);
    for n in 0..count {
        let plan = counselor.plan_with(&client, &format!("Plan {n:03}"))?;
        let goal = counselor
            .store
            .propose_goal(plan, "Sleep through the night")?;
        plans.push((plan, goal));
    }
    let ids: Vec<PlanId> = plans.iter().map(|(plan, _)| *plan).collect();
    phase("created");
    sync(&counselor, &url, &[])?;
    phase("pushed");
    sync(&client, &client_url, &ids)?;
    phase("fetched");
    // The two devices edit at the same time and sync at the same time, as the JS side's two
    // repos do in one event loop: the relay serves both connections at once.
    both(
        || {
            for (plan, goal) in &plans {
                for n in 0..edits {
                    if n.is_multiple_of(2) {
                        counselor.store.check_in(*plan, *goal, &daily_checkin(n))?;
                    } else {
                        counselor
                            .store
                            .edit_goal(*plan, *goal, &statement_edit(n))?;
                    }
                }
            }
            Ok(())
        },
        || {
            for (plan, goal) in &plans {
                for n in 0..edits {
                    if n.is_multiple_of(2) {
                        client.store.edit_goal(*plan, *goal, &words_edit(n))?;
                    } else {
                        client.store.check_in(*plan, *goal, &daily_checkin(n))?;
                    }
                }
            }
            Ok(())
        },
    )?;
    phase("edited");
    // Each pushes its edits and takes what the relay holds; the second round brings each what
    // the other pushed after it had looked.
    for round in ["first", "second"] {
        both(
            || sync(&counselor, &url, &[]).map(|_| ()),
            || sync(&client, &client_url, &[]).map(|_| ()),
        )?;
        phase(&format!("{round} sync round"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    for plan in &ids {
        let a = Automerge::load(&counselor.store.saved_document(*plan)?)?.get_heads();
        let b = Automerge::load(&client.store.saved_document(*plan)?)?.get_heads();
        if a != b {
            return Err(format!("P5: plan {plan} did not converge").into());
        }
    }
    report(&[
        ("elapsed_s", elapsed),
        ("peak_kib", own_peak_kib()? as f64),
        ("cpu_s", cpu_seconds("self")?),
    ]);
    Ok(())
}

/// Runs `a` and `b` on two threads and waits for both.
fn both(
    a: impl FnOnce() -> Result<()> + Send,
    b: impl FnOnce() -> Result<()> + Send,
) -> Result<()> {
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(a);
        let b = scope.spawn(b);
        (a.join(), b.join())
    });
    for done in [a, b] {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err("a device's thread panicked".into()),
        }
    }
    Ok(())
}

/// One run of the workload on either side.
#[derive(Clone)]
pub struct Run {
    pub elapsed_s: f64,
    pub devices_kib: f64,
    pub server_kib: f64,
    /// CPU seconds of the devices process (whole run) and of the server.
    pub devices_cpu_s: f64,
    pub server_cpu_s: f64,
}

pub fn js_dir() -> PathBuf {
    std::env::var_os("ALLIANCE_JS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js"))
}

pub fn run_alliance(dir: &Path) -> Result<Run> {
    run_alliance_with(dir, PLANS, EDITS)
}

/// The workload with `plans` plans and `edits` edits per device and plan.
pub fn run_alliance_with(dir: &Path, plans: usize, edits: usize) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    let relay_db = dir.join("relay.db");
    let relay = Server::start(
        this_binary(&["serve-relay", &relay_db.to_string_lossy()])?,
        None,
    )?;
    let mut command = this_binary(&[
        "sync-devices",
        &relay.port.to_string(),
        &dir.to_string_lossy(),
    ])?;
    command
        .env("ALLIANCE_BENCH_PLANS", plans.to_string())
        .env("ALLIANCE_BENCH_EDITS", edits.to_string());
    let devices = run_to_end(command)?;
    let server_kib = relay.peak_kib()? as f64;
    let server_cpu_s = relay.cpu_seconds()?;
    relay.stop()?;
    Ok(Run {
        elapsed_s: devices.get("elapsed_s")?,
        devices_kib: devices.get("peak_kib")?,
        server_kib,
        devices_cpu_s: devices.get("cpu_s")?,
        server_cpu_s,
    })
}

pub fn run_js() -> Result<Run> {
    let dir = js_dir();
    let mut server = Command::new("node");
    server.args(["server.mjs", "0"]);
    let server = Server::start(server, Some(&dir))?;
    let mut devices = Command::new("node");
    devices
        .current_dir(&dir)
        .args(["bench-sync.mjs", &server.port.to_string()])
        .env("ALLIANCE_JS_TIMEOUT_MS", "120000")
        .env("ALLIANCE_BENCH_PLANS", PLANS.to_string())
        .env("ALLIANCE_BENCH_EDITS", EDITS.to_string());
    let devices = run_to_end(devices)?;
    let server_kib = server.peak_kib()? as f64;
    let server_cpu_s = server.cpu_seconds()?;
    server.stop()?;
    Ok(Run {
        elapsed_s: devices.get("elapsed_s")?,
        devices_kib: devices.get("peak_kib")?,
        server_kib,
        devices_cpu_s: devices.get("cpu_s")?,
        server_cpu_s,
    })
}
