//! `alliance-bench`: measures the performance budgets of Alliance, each against a baseline
//! measured in the same run, and prints one table. Run by `scripts/bench` in release mode.
//!
//!   alliance-bench                 every budget
//!   ALLIANCE_BENCH_ONLY=P1,P4 alliance-bench    some of them
//!
//! The other subcommands are child roles the benchmark starts itself (relay, devices, memory).

mod fixture;
mod instances;
mod library_size;
mod local_edit;
mod memory;
mod open_plan;
mod process;
mod reconnect;
mod report;
mod signing;
mod versus_js;

use std::path::Path;

use fixture::Result;
use report::{mean, median, percentile, print_table, Row, Unit};

/// Plans held by the device of P4 and of the memory measure.
const MANY_PLANS: usize = 500;
/// Runs of the P5 workload on each side (the median is reported).
const P5_RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        [] => run_all(),
        ["serve-relay", db] => versus_js::relay_child(Path::new(db)),
        ["sync-devices", port, dir] => versus_js::devices_child(port, Path::new(dir)),
        ["memory", action, db] => memory::child(action, Path::new(db)),
        ["open-plan", db, plan, times] => open_plan::child(Path::new(db), plan, times),
        ["edit-plan", db, times] => local_edit::child(Path::new(db), times),
        ["edit-floor", db, times] => local_edit::floor_child(Path::new(db), times),
        _ => Err("usage: alliance-bench (no arguments; see scripts/bench)".into()),
    };
    if let Err(error) = outcome {
        eprintln!("alliance-bench: {error}");
        std::process::exit(1);
    }
}

fn selected(id: &str) -> bool {
    match std::env::var("ALLIANCE_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => only
            .split(',')
            .any(|wanted| wanted.trim().eq_ignore_ascii_case(id)),
        _ => true,
    }
}

fn step(what: &str) {
    eprintln!("== {what}");
}

fn run_all() -> Result<()> {
    let base = std::env::var_os("ALLIANCE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let scratch = tempfile::Builder::new()
        .prefix("alliance-bench-")
        .tempdir_in(&base)?;
    let dir = scratch.path().to_path_buf();
    let dir = dir.as_path();
    if std::env::var_os("ALLIANCE_BENCH_KEEP").is_some() {
        eprintln!("keeping {}", scratch.keep().display());
    }
    let mut rows = Vec::new();

    if selected("P1") || selected("P2") || selected("P6") {
        step("building a plan with a year of check-ins (365) and 500 other edits");
        let year_db = dir.join("year.db");
        let year = fixture::year_plan(&year_db)?;
        if selected("P2") {
            step(&format!("P2: open plan {} and read it", year.plan));
            let open = open_plan::measure(&year_db, year.plan)?;
            let api = median(&open.api);
            rows.push(Row::limit(
                "P2",
                "open + read a year plan from SQLite (median)",
                Unit::Seconds,
                api,
                0.001,
            ));
            rows.push(Row::ratio(
                "P2",
                &format!(
                    "… vs bare Automerge::load of its {} stored bytes",
                    open.stored_bytes
                ),
                Unit::Seconds,
                api,
                median(&open.bare),
                0.2,
            ));
            rows.push(Row::info(
                "P2",
                &format!(
                    "… bare Automerge::load of save() ({} bytes, no chunks), for scale",
                    open.saved_bytes
                ),
                Unit::Seconds,
                median(&open.bare_saved),
                Some(median(&open.bare)),
            ));
        }
        let counselor = fixture::Device::reopen(&year_db)?;
        if selected("P6") {
            let sizes = counselor.store.document_sizes(year.plan)?;
            let saved = counselor.store.saved_document(year.plan)?.len();
            rows.push(Row::ratio(
                "P6",
                &format!(
                    "year plan stored (snapshot {} + {} chunks) vs save()",
                    sizes.snapshot_len, sizes.chunk_count
                ),
                Unit::Bytes,
                (sizes.snapshot_len + sizes.chunk_bytes) as f64,
                saved as f64,
                1.5,
            ));
        }
        if selected("P1") || selected("P6") {
            step("P1: local edits of the year plan vs bare inserts");
            let goal = year.goals[0];
            let edits = local_edit::measure(
                &counselor,
                year.plan,
                goal,
                &dir.join("bare-year.db"),
                selected("P6"),
            )?;
            if selected("P1") {
                push_local_edit_rows(&mut rows, "year plan", &edits);
                push_signing_rows(&mut rows, &edits)?;
            }
            if selected("P6") {
                let worst = edits
                    .stored_over_saved
                    .iter()
                    .copied()
                    .fold(0.0_f64, f64::max);
                let average = edits.stored_over_saved.iter().sum::<f64>()
                    / edits.stored_over_saved.len().max(1) as f64;
                rows.push(Row::info(
                    "P6",
                    &format!(
                        "… stored / save() over {} more edits: worst (average {average:.2}×)",
                        edits.stored_over_saved.len()
                    ),
                    Unit::Times,
                    worst,
                    Some(1.0),
                ));
            }
        }
        drop(counselor);
        if selected("P1") {
            step("P1: local edits of a new plan vs bare inserts");
            let counselor = fixture::Device::at(
                &dir.join("fresh.db"),
                "Dana",
                alliance_core::Role::Counselor,
            )?;
            let client = fixture::Device::in_memory("Sam", alliance_core::Role::Client)?;
            let plan = counselor.plan_with(&client, "Sleep and mornings")?;
            let goal = counselor
                .store
                .propose_goal(plan, "Sleep through the night")?;
            let edits =
                local_edit::measure(&counselor, plan, goal, &dir.join("bare-fresh.db"), false)?;
            push_local_edit_rows(&mut rows, "new plan", &edits);
        }
    }

    if selected("C1") {
        cost_curves(dir, &mut rows)?;
    }
    if selected("C2") {
        idle_curve(dir, &mut rows)?;
    }
    if selected("C3") {
        relay_curve(dir, &mut rows)?;
    }

    if selected("R1") {
        instances_rows(dir, &mut rows)?;
    }

    if selected("P3") {
        step("P3: reconnect after 50 offline edits on each side");
        let p3 = reconnect::offline_edits(dir)?;
        rows.push(Row::ratio(
            "P3",
            "bytes to reconnect, direct (both directions) vs new changes",
            Unit::Bytes,
            p3.direct.0 as f64,
            p3.direct.1 as f64,
            1.5,
        ));
        rows.push(Row::ratio(
            "P3",
            "… through the relay (3 sessions) vs new changes × 2 hops",
            Unit::Bytes,
            p3.relayed.0 as f64,
            p3.relayed.1 as f64,
            1.5,
        ));
    }

    let many_db = dir.join("many.db");
    if selected("P4") || selected("M1") {
        step("P4: idle reconnect of a device with 500 plans");
        let p4 = reconnect::idle(&many_db, &dir.join("many-relay.db"), MANY_PLANS)?;
        if selected("P4") {
            let t = p4.cold_traffic;
            rows.push(Row::limit(
                "P4",
                &format!(
                    "idle reconnect, {} plans, app restarted: bytes ({} frames / {} B out, {} / {} B in)",
                    p4.plans, t.frames_sent, t.bytes_sent, t.frames_received, t.bytes_received
                ),
                Unit::Bytes,
                p4.cold.0 as f64,
                50_000.0,
            ));
            rows.push(Row::limit(
                "P4",
                "… time",
                Unit::Seconds,
                p4.cold.1.as_secs_f64(),
                0.2,
            ));
            rows.push(Row::info(
                "P4",
                &format!("… again while running ({} bytes): time", p4.warm.0),
                Unit::Seconds,
                p4.warm.1.as_secs_f64(),
                None,
            ));
        }
    }
    if selected("M1") {
        step("M1: peak memory of a device process listing 500 plans");
        let peaks = memory::measure(&many_db)?;
        rows.push(Row::info(
            "M1",
            &format!(
                "peak RSS listing {} plans vs only opening the store",
                peaks.listed
            ),
            Unit::KiB,
            peaks.list,
            Some(peaks.open),
        ));
        rows.push(Row::info(
            "M1",
            "… reading every plan instead (for scale)",
            Unit::KiB,
            peaks.read_all,
            Some(peaks.open),
        ));
    }

    if selected("P5") {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for run in 0..P5_RUNS {
            step(&format!("P5: run {} of {P5_RUNS}: Alliance", run + 1));
            ours.push(versus_js::run_alliance(&dir.join(format!("p5-{run}")))?);
            step(&format!(
                "P5: run {} of {P5_RUNS}: automerge-repo JS",
                run + 1
            ));
            // A node run that stalls (seen once under heavy load) gets one more chance.
            theirs.push(match versus_js::run_js() {
                Ok(run) => run,
                Err(error) => {
                    eprintln!("the JS run failed ({error}); running it again");
                    versus_js::run_js()?
                }
            });
        }
        let mid = |runs: &[versus_js::Run], f: fn(&versus_js::Run) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(f).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let workload = format!(
            "{} plans × {} edits per device, 2 devices via a relay",
            versus_js::PLANS,
            versus_js::EDITS
        );
        rows.push(Row::ratio(
            "P5",
            &format!("{workload}: wall-clock vs JS (≥ 3× faster)"),
            Unit::Seconds,
            mid(&ours, |r| r.elapsed_s),
            mid(&theirs, |r| r.elapsed_s),
            1.0 / 3.0,
        ));
        rows.push(Row::ratio(
            "P5",
            "… peak RSS, devices + server processes vs JS",
            Unit::KiB,
            mid(&ours, |r| r.devices_kib + r.server_kib),
            mid(&theirs, |r| r.devices_kib + r.server_kib),
            0.5,
        ));
        rows.push(Row::info(
            "P5",
            "… peak RSS of the devices process vs JS",
            Unit::KiB,
            mid(&ours, |r| r.devices_kib),
            Some(mid(&theirs, |r| r.devices_kib)),
        ));
        rows.push(Row::info(
            "P5",
            "… peak RSS of the relay vs the JS sync server",
            Unit::KiB,
            mid(&ours, |r| r.server_kib),
            Some(mid(&theirs, |r| r.server_kib)),
        ));
        rows.push(Row::info(
            "P5",
            "… CPU time, devices + server processes vs JS",
            Unit::Seconds,
            mid(&ours, |r| r.devices_cpu_s + r.server_cpu_s),
            Some(mid(&theirs, |r| r.devices_cpu_s + r.server_cpu_s)),
        ));
    }

    if selected("S1") {
        step("S1: size of liballiance_ffi.so for ARM");
        rows.extend(library_size::rows()?);
    }

    println!();
    print_table(&rows);
    let missed = rows.iter().filter(|r| r.passes() == Some(false)).count();
    println!();
    println!(
        "{} budget rows, {} pass, {missed} miss",
        rows.iter().filter(|r| r.passes().is_some()).count(),
        rows.iter().filter(|r| r.passes() == Some(true)).count()
    );
    Ok(())
}

/// C1: P1 and P2 on plans kept 1, 2 and 5 years, each against the 1-year plan of the same run,
/// so the ratio is how the cost grows with the plan's history.
fn cost_curves(dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let mut first: Option<(f64, f64, f64)> = None;
    for years in [1, 2, 5] {
        step(&format!("C1: a plan of {years} year(s) of daily check-ins"));
        let db = dir.join(format!("years-{years}.db"));
        let plan = fixture::plan_of_years(&db, years)?;
        let open = open_plan::measure(&db, plan.plan)?;
        let device = fixture::Device::reopen(&db)?;
        let edits = local_edit::measure(
            &device,
            plan.plan,
            plan.goals[0],
            &dir.join(format!("bare-years-{years}.db")),
            false,
        )?;
        let now = (median(&open.api), median(&open.bare), median(&edits.api));
        let base = *first.get_or_insert(now);
        rows.push(Row::info(
            "C1",
            &format!("open + read a {years}-year plan vs the 1-year plan"),
            Unit::Seconds,
            now.0,
            Some(base.0),
        ));
        rows.push(Row::info(
            "C1",
            &format!(
                "… bare Automerge::load of its {} stored bytes vs 1 year",
                open.stored_bytes
            ),
            Unit::Seconds,
            now.1,
            Some(base.1),
        ));
        rows.push(Row::info(
            "C1",
            &format!("durable local edit of a {years}-year plan vs the 1-year plan"),
            Unit::Seconds,
            now.2,
            Some(base.2),
        ));
    }
    Ok(())
}

/// C2: an idle reconnect (P4) of a device holding 500, 5,000 and 20,000 plans: bytes and time,
/// each against 500 plans.
fn idle_curve(dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let mut first: Option<(f64, f64)> = None;
    for count in [500, 5_000, 20_000] {
        step(&format!(
            "C2: idle reconnect of a device holding {count} plans"
        ));
        let run = dir.join(format!("idle-{count}"));
        std::fs::create_dir_all(&run)?;
        let p4 = reconnect::idle(&run.join("device.db"), &run.join("relay.db"), count)?;
        let now = (p4.cold.0 as f64, p4.cold.1.as_secs_f64());
        let base = *first.get_or_insert(now);
        rows.push(Row::info(
            "C2",
            &format!("idle reconnect, {count} plans, app restarted: bytes vs 500 plans"),
            Unit::Bytes,
            now.0,
            Some(base.0),
        ));
        rows.push(Row::info(
            "C2",
            "… time vs 500 plans",
            Unit::Seconds,
            now.1,
            Some(base.1),
        ));
    }
    Ok(())
}

/// C3: the P5 workload through the relay (separate processes) with 100, 1,000 and 10,000 plans
/// and 2 edits per device and plan: wall-clock and peak RSS of the relay and of the devices,
/// each against 100 plans.
fn relay_curve(dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    const EDITS: usize = 2;
    let mut first: Option<versus_js::Run> = None;
    for plans in [100, 1_000, 10_000] {
        step(&format!("C3: {plans} plans synced through a relay"));
        let run = versus_js::run_alliance_with(&dir.join(format!("c3-{plans}")), plans, EDITS)?;
        let base = first.get_or_insert_with(|| run.clone());
        rows.push(Row::info(
            "C3",
            &format!("{plans} plans × {EDITS} edits per device via a relay: time vs 100 plans"),
            Unit::Seconds,
            run.elapsed_s,
            Some(base.elapsed_s),
        ));
        rows.push(Row::info(
            "C3",
            "… peak RSS of the relay vs 100 plans",
            Unit::KiB,
            run.server_kib,
            Some(base.server_kib),
        ));
        rows.push(Row::info(
            "C3",
            "… peak RSS of the devices process vs 100 plans",
            Unit::KiB,
            run.devices_kib,
            Some(base.devices_kib),
        ));
    }
    Ok(())
}

/// R1: sync throughput through 1 and 2 relay instances on PostgreSQL against the SQLite relay.
fn instances_rows(dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    const PLANS: usize = 100;
    const EDITS: usize = 2;
    step("R1: the sync workload through the SQLite relay, then 1 and 2 instances on PostgreSQL");
    let sqlite = versus_js::run_alliance_with(&dir.join("r1-sqlite"), PLANS, EDITS)?;
    let one = instances::run_postgres(&dir.join("r1-pg1"), PLANS, EDITS, 1)?;
    let two = instances::run_postgres(&dir.join("r1-pg2"), PLANS, EDITS, 2)?;
    // Edits made on both devices, per second of the workload.
    let rate = |run: &versus_js::Run| (PLANS * EDITS * 2) as f64 / run.elapsed_s;
    rows.push(Row::info(
        "R1",
        &format!(
            "{PLANS} plans × {EDITS} edits per device, 1 instance on PostgreSQL ({:.0} edits/s; \
             SQLite {:.0}): time vs the SQLite relay",
            rate(&one),
            rate(&sqlite)
        ),
        Unit::Seconds,
        one.elapsed_s,
        Some(sqlite.elapsed_s),
    ));
    rows.push(Row::info(
        "R1",
        &format!(
            "… 2 instances on one PostgreSQL, client on the second ({:.0} edits/s): time vs the \
             SQLite relay",
            rate(&two)
        ),
        Unit::Seconds,
        two.elapsed_s,
        Some(sqlite.elapsed_s),
    ));
    rows.push(Row::info(
        "R1",
        "… peak RSS of an instance, 2 on PostgreSQL vs the SQLite relay",
        Unit::KiB,
        two.server_kib,
        Some(sqlite.server_kib),
    ));
    Ok(())
}

/// What authorship adds: one signature per durable edit (P1), one verification per change a
/// device or relay accepts from a peer (P5 receives every change twice: relay, then device).
fn push_signing_rows(rows: &mut Vec<Row>, edits: &local_edit::LocalEdits) -> Result<()> {
    let cost = signing::measure()?;
    rows.push(Row::info(
        "P1",
        &format!(
            "… of which signing the change (Ed25519, median of {}) vs the whole edit",
            cost.sign.len()
        ),
        Unit::Seconds,
        median(&cost.sign),
        Some(median(&edits.api)),
    ));
    rows.push(Row::info(
        "P5",
        &format!(
            "verifying one signature (Ed25519, median of {}): per change accepted, twice per \
             change in the P5 workload; vs signing one",
            cost.verify.len()
        ),
        Unit::Seconds,
        median(&cost.verify),
        Some(median(&cost.sign)),
    ));
    Ok(())
}

fn push_local_edit_rows(rows: &mut Vec<Row>, plan: &str, edits: &local_edit::LocalEdits) {
    rows.push(Row::ratio(
        "P1",
        &format!(
            "durable local edit, {plan} (median of {}) vs its floor: bare Automerge tx + \
             save_after + bare insert",
            edits.api.len()
        ),
        Unit::Seconds,
        median(&edits.api),
        median(&edits.floor),
        1.3,
    ));
    rows.push(Row::info(
        "P1",
        "… vs a bare insert of the same change bytes alone",
        Unit::Seconds,
        median(&edits.api),
        Some(median(&edits.bare)),
    ));
    rows.push(Row::info(
        "P1",
        "… mean (compactions included) / p95",
        Unit::Seconds,
        mean(&edits.api),
        Some(percentile(&edits.api, 0.95)),
    ));
}
