//! R1: the sync workload of C3 (100 plans, 2 edits per device and plan: the counselor's device
//! pushes the plans, the client's fetches them, both edit, both sync until their heads agree)
//! through the SQLite relay, one relay instance on PostgreSQL, and two instances on one
//! PostgreSQL database with the client on the second — in the same run. Needs a PostgreSQL
//! server (`ALLIANCE_TEST_POSTGRES_URL`; `scripts/bench` starts one with
//! `scripts/test-postgres.sh`); each run gets a fresh database.

use std::path::Path;
use std::sync::Arc;

use alliance_core::sync::{BackgroundRelay, RelayOptions};
use alliance_relay_pg::PgStore;

use crate::fixture::Result;
use crate::process::{run_to_end, this_binary, Server};
use crate::versus_js::Run;

/// A relay on loopback over the PostgreSQL database at `url` (as `relay_at` over a file).
pub fn relay_on_postgres(url: &str) -> Result<BackgroundRelay> {
    let store = Arc::new(PgStore::open(url).map_err(|error| error.to_string())?);
    let options = RelayOptions {
        max_documents_per_connection: 100_000,
        ..RelayOptions::default()
    };
    Ok(BackgroundRelay::start("127.0.0.1:0", store, options)?)
}

/// The workload through `instances` relay processes over a fresh database on the test server:
/// the counselor's device on the first, the client's on the last. `server_kib` is the largest
/// peak of the instances, `server_cpu_s` their sum.
pub fn run_postgres(dir: &Path, plans: usize, edits: usize, instances: usize) -> Result<Run> {
    let url = alliance_relay_pg::testing::postgres_database()
        .ok_or("R1 needs a PostgreSQL server: ALLIANCE_TEST_POSTGRES_URL")?;
    std::fs::create_dir_all(dir)?;
    let relays = (0..instances)
        .map(|_| Server::start(this_binary(&["serve-relay", &url])?, None))
        .collect::<Result<Vec<Server>>>()?;
    let (first, last) = match (relays.first(), relays.last()) {
        (Some(first), Some(last)) => (first.port, last.port),
        _ => return Err("R1 needs at least one instance".into()),
    };
    let mut command = this_binary(&["sync-devices", &first.to_string(), &dir.to_string_lossy()])?;
    command
        .env("ALLIANCE_BENCH_PLANS", plans.to_string())
        .env("ALLIANCE_BENCH_EDITS", edits.to_string())
        .env("ALLIANCE_BENCH_CLIENT_PORT", last.to_string());
    let devices = run_to_end(command)?;
    let mut server_kib: f64 = 0.0;
    let mut server_cpu_s = 0.0;
    for relay in relays {
        server_kib = server_kib.max(relay.peak_kib()? as f64);
        server_cpu_s += relay.cpu_seconds()?;
        relay.stop()?;
    }
    Ok(Run {
        elapsed_s: devices.get("elapsed_s")?,
        devices_kib: devices.get("peak_kib")?,
        server_kib,
        devices_cpu_s: devices.get("cpu_s")?,
        server_cpu_s,
    })
}
