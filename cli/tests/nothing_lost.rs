//! Nothing a user was told is saved gets lost: several `alliance` processes on one client store,
//! a store restored from a copy, and a stress run, each checked the way a user would — the
//! check-in is on the phone, it reaches the counselor, the file passes `alliance check`.
//!
//! Every client process runs with `ALLIANCE_VERIFY_WRITES=1`: the core then checks after each
//! write that the heads it records for a plan are the heads of the document it stored.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{alliance, json, ok, people, save_token, start_relay, summary, People};

/// How long one command may take before the test calls it hung.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// `alliance --db DB` for a process on a client store: it verifies every write.
fn client(db: &Path) -> Command {
    let mut command = alliance(db);
    command.env("ALLIANCE_VERIFY_WRITES", "1");
    command
}

/// What a finished command did.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn describe(&self, what: &str) -> String {
        format!(
            "{what}: {} — stdout: {} — stderr: {}",
            if self.success { "ok" } else { "FAILED" },
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Runs `command` to its end, killing it (and failing) when it takes longer than `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> Ran {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stdout = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let (stdout, mut stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    if status.is_none() {
        stderr.push_str(&format!("(killed: still running after {limit:?})"));
    }
    Ran {
        success: status.is_some_and(|status| status.success()),
        stdout,
        stderr,
    }
}

/// Runs a client command that must succeed; returns its trimmed stdout.
fn client_ok(db: &Path, args: &[&str]) -> String {
    let mut command = client(db);
    command.args(args);
    let ran = run_bounded(command, COMMAND_LIMIT);
    assert!(ran.success, "{}", ran.describe(&format!("{args:?}")));
    ran.stdout.trim().to_owned()
}

/// A background process (e.g. `sync --watch`) whose output goes to files; killed when dropped.
struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn spawn(mut command: Command, logs: &Path, name: &str) -> Self {
        let (stdout, stderr) = (
            logs.join(format!("{name}.out")),
            logs.join(format!("{name}.err")),
        );
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its output so far: the last lines of stdout, and all of stderr.
    fn log(&self) -> String {
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let tail: Vec<&str> = stdout.lines().rev().take(5).collect();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("last lines: {tail:?}; stderr: {}", stderr.trim())
    }

    /// Stops it; returns its log.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `alliance sync --server URL --watch` on the client store.
fn watch(db: &Path, url: &str) -> Background {
    let mut command = client(db);
    command.args(["sync", "--server", url, "--watch"]);
    Background::spawn(command, db.parent().unwrap(), "watch")
}

/// Polls `done` until it holds, for at most `limit`; whether it did.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// The plan as `show --json` prints it on this store.
fn plan_on(db: &Path, plan: &str) -> Value {
    json(db, &["show", plan, "--json"])
}

/// [`plan_on`], or none when `show` fails (while polling).
fn try_plan_on(db: &Path, plan: &str) -> Option<Value> {
    let mut command = client(db);
    command.args(["show", plan, "--json"]);
    let ran = run_bounded(command, COMMAND_LIMIT);
    ran.success
        .then(|| serde_json::from_str(&ran.stdout).ok())
        .flatten()
}

/// Every check-in of the plan on this store: id → note.
fn checkins_on(db: &Path, plan: &str, who: &str) -> std::collections::BTreeMap<String, String> {
    let mut command = client(db);
    command.args(["show", plan, "--json"]);
    let ran = run_bounded(command, COMMAND_LIMIT);
    assert!(
        ran.success,
        "{}",
        ran.describe(&format!("{who}: show --json"))
    );
    let plan: Value = serde_json::from_str(&ran.stdout).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for goal in plan["goals"].as_array().unwrap() {
        for checkin in goal["checkins"].as_array().unwrap() {
            found.insert(
                checkin["checkin_id"].as_str().unwrap().to_owned(),
                checkin["note"].as_str().unwrap().to_owned(),
            );
        }
    }
    found
}

/// Asserts every `(id, note)` is among the store's check-ins.
fn assert_has_checkins(db: &Path, plan: &str, expected: &[(String, String)], who: &str) {
    assert_all_have_checkins(&[(db, who)], plan, expected);
}

/// [`assert_has_checkins`] on several stores, naming every one that lacks some.
fn assert_all_have_checkins(stores: &[(&Path, &str)], plan: &str, expected: &[(String, String)]) {
    let mut lacking = Vec::new();
    for (db, who) in stores {
        let found = checkins_on(db, plan, who);
        let missing: Vec<&(String, String)> = expected
            .iter()
            .filter(|(id, note)| found.get(id) != Some(note))
            .collect();
        if !missing.is_empty() {
            lacking.push(format!(
                "{who} lacks {} of {} acknowledged check-in(s) (holds {}): {missing:?}",
                missing.len(),
                expected.len(),
                found.len()
            ));
        }
    }
    assert!(lacking.is_empty(), "{lacking:#?}");
}

/// `alliance check` says `ok`, and every plan on the store opens.
fn assert_sound(db: &Path, who: &str) {
    let mut command = client(db);
    command.arg("check");
    let ran = run_bounded(command, COMMAND_LIMIT);
    assert!(
        ran.success && ran.stdout.trim() == "ok",
        "{}",
        ran.describe(&format!("{who}: check"))
    );
    for plan in json(db, &["plan", "list", "--json"]).as_array().unwrap() {
        let id = plan["plan_id"].as_str().unwrap();
        client_ok(db, &["show", id]);
    }
}

/// A client check-in with a note; the id it printed.
fn check_in(db: &Path, plan: &str, goal: &str, note: &str) -> (String, String) {
    let id = client_ok(db, &["checkin", plan, goal, "--mood", "6", "--note", note]);
    assert!(!id.is_empty() && !id.contains(' '), "printed {id:?}");
    (id, note.to_owned())
}

/// Dana proposes a goal and pushes the plan; Sam's phone receives it. Returns the goal.
fn a_goal_on_both(people: &People, url: &str) -> String {
    let People {
        dana, sam, plan, ..
    } = people;
    let goal = ok(
        dana,
        &["goal", "propose", plan, "--words", "Walk every day"],
    );
    ok(dana, &["sync", "--server", url]);
    assert_eq!(
        summary(&client_ok(sam, &["sync", "--server", url])),
        (1, 1, 1)
    );
    goal
}

#[test]
fn two_processes_on_one_store_lose_no_check_in() {
    let people = people();
    let People {
        relay_db,
        dana,
        sam,
        plan,
        ..
    } = &people;
    let (_relay, url) = start_relay(relay_db);
    let goal = ok(
        dana,
        &["goal", "propose", plan, "--words", "Walk every day"],
    );
    ok(
        dana,
        &["objective", "add", plan, &goal, "--text", "Walk 20 minutes"],
    );
    ok(dana, &["sync", "--server", &url]);

    // The phone keeps syncing in the background; the objective arrives.
    let mut watcher = watch(sam, &url);
    let arrived = eventually(Duration::from_secs(30), || {
        try_plan_on(sam, plan).is_some_and(|shown| shown.to_string().contains("Walk 20 minutes"))
    });
    assert!(
        arrived,
        "the objective reached the phone: {}",
        watcher.log()
    );

    // Meanwhile Sam checks in from another process on the same store: it says OK.
    let kept = check_in(sam, plan, &goal, "kept-while-watching");

    // Dana goes on editing and syncing while the phone's watch receives it all.
    for round in 1..=30 {
        let clinical = format!("Daily walk, step {round}");
        ok(
            dana,
            &["goal", "edit", plan, &goal, "--clinical", &clinical],
        );
        ok(dana, &["sync", "--server", &url]);
    }
    let settled = eventually(Duration::from_secs(30), || {
        try_plan_on(sam, plan)
            .is_some_and(|shown| shown["goals"][0]["clinical_statement"] == "Daily walk, step 30")
    });
    assert!(
        watcher.is_running(),
        "the watch ended early: {}",
        watcher.log()
    );
    let log = watcher.stop();
    assert!(settled, "the phone received Dana's last edit: {log}");

    // A last sync each way; the check-in is on the phone and reached the counselor.
    client_ok(sam, &["sync", "--server", &url]);
    ok(dana, &["sync", "--server", &url]);
    client_ok(sam, &["sync", "--server", &url]);
    let kept = [kept];
    let stores = [
        (sam.as_path(), "the phone"),
        (dana.as_path(), "the counselor"),
    ];
    assert_all_have_checkins(&stores, plan, &kept);
    assert_eq!(
        plan_on(sam, plan),
        plan_on(dana, plan),
        "both hold one plan"
    );
    assert_sound(sam, "the phone");
    assert_sound(dana, "the counselor");
}

/// Copies a store (with its WAL files, when there are any) into `to`.
fn back_up(db: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            let name = from.file_name().unwrap();
            std::fs::copy(&from, to.join(name)).unwrap();
        }
    }
}

/// Puts the copy made by [`back_up`] back in place of the store, as a restore from a backup
/// does: the store's own WAL files go, the copy's come back.
fn restore(from: &Path, db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        let _ = std::fs::remove_file(&path);
        let copy = from.join(path.file_name().unwrap());
        if copy.exists() {
            std::fs::copy(&copy, &path).unwrap();
        }
    }
}

/// `sync --with OTHER` (both stores in this process), run on a client store.
fn sync_with(db: &Path, other: &Path) -> Ran {
    let mut command = client(db);
    command
        .env_remove("ALLIANCE_TOKEN")
        .arg("sync")
        .arg("--with")
        .arg(other);
    run_bounded(command, COMMAND_LIMIT)
}

/// `sync --server URL`, run on a client store.
fn sync_server(db: &Path, url: &str) -> Ran {
    let mut command = client(db);
    command.args(["sync", "--server", url]);
    run_bounded(command, COMMAND_LIMIT)
}

#[test]
fn a_restored_store_recovers_and_loses_nothing() {
    let people = people();
    let People {
        relay_db,
        dana,
        sam,
        plan,
        ..
    } = &people;
    let (_relay, url) = start_relay(relay_db);
    let goal = a_goal_on_both(&people, &url);

    let first = check_in(sam, plan, &goal, "first");
    // A backup of the phone's store, taken while no process has it open.
    let backup = sam.with_file_name("backup");
    back_up(sam, &backup);
    let second = check_in(sam, plan, &goal, "second");
    client_ok(sam, &["sync", "--server", &url]);

    // The phone is restored from the backup: "second" is gone from it, not from the relay.
    restore(&backup, sam);
    let third = check_in(sam, plan, &goal, "third after restore");
    let before = json(sam, &["whoami", "--json"]);

    let mut problems = Vec::new();
    let ran = sync_server(sam, &url);
    if !ran.success || ran.stderr.contains("duplicate seq") {
        problems.push(ran.describe("sync --server after the restore"));
    }
    // The restored store found its identity's change numbers taken (a copied identity,
    // docs/design.md): it took a new device id and key, and "third" waits for the counselor
    // to enroll it again from its new code (and give it a token of its own).
    let me = json(sam, &["whoami", "--json"]);
    assert_ne!(me["device_id"], before["device_id"], "a new device id");
    assert_eq!(me["member_id"], before["member_id"]);
    let code = ok(sam, &["whoami", "--enrollment"]);
    let member = me["member_id"].as_str().unwrap();
    ok(
        dana,
        &[
            "device",
            "add",
            plan,
            "--member",
            member,
            "--device",
            code.trim(),
        ],
    );
    let device = me["device_id"].as_str().unwrap();
    save_token(
        sam,
        &ok(dana, &["device", "token", plan, "--device", device]),
    );
    ok(dana, &["sync", "--server", &url]);
    for (what, ran) in [
        ("sync --with the counselor's store", sync_with(sam, dana)),
        ("sync --server again", sync_server(sam, &url)),
    ] {
        if !ran.success || ran.stderr.contains("duplicate seq") {
            problems.push(ran.describe(what));
        }
    }
    let mut counselor = alliance(dana);
    counselor.args(["sync", "--server", &url]);
    let counselor = run_bounded(counselor, COMMAND_LIMIT);
    if !counselor.success {
        problems.push(counselor.describe("the counselor's sync --server"));
    }
    let again = sync_server(sam, &url);
    if !again.success {
        problems.push(again.describe("sync --server once the counselor synced"));
    }
    assert!(problems.is_empty(), "{problems:#?}");

    let all = [first, second, third];
    let stores = [
        (sam.as_path(), "the phone"),
        (dana.as_path(), "the counselor"),
    ];
    assert_all_have_checkins(&stores, plan, &all);
    assert_eq!(
        plan_on(sam, plan),
        plan_on(dana, plan),
        "both hold one plan"
    );
    // Nothing left to exchange: a further sync succeeds and changes nothing.
    let further = sync_server(sam, &url);
    assert!(further.success, "{}", further.describe("a further sync"));
    assert_eq!(
        summary(further.stdout.trim()),
        (1, 1, 0),
        "{}",
        further.stdout
    );
    assert_sound(sam, "the phone");
    assert_sound(dana, "the counselor");
}

/// After this many failed commands the stress run stops early: the store is not taking writes.
const MAX_FAILURES: usize = 50;

/// What the concurrent processes of the stress test saw.
#[derive(Default)]
struct Tally {
    /// Check-ins whose command exited 0: (id printed, note).
    acknowledged: Vec<(String, String)>,
    /// Every command that failed, described.
    failures: Vec<String>,
    syncs: usize,
}

impl Tally {
    fn failed(&mut self, failure: String, stop: &AtomicBool) {
        self.failures.push(failure);
        if self.failures.len() >= MAX_FAILURES {
            stop.store(true, Ordering::SeqCst);
        }
    }

    /// The first failures, for a message.
    fn first_failures(&self) -> &[String] {
        &self.failures[..self.failures.len().min(10)]
    }
}

#[test]
fn multi_process_stress_loses_nothing() {
    let edits: usize = std::env::var("ALLIANCE_STRESS_EDITS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200);
    const WRITERS: usize = 2;
    let time_limit = Duration::from_secs(90);

    let people = people();
    let People {
        relay_db,
        dana,
        sam,
        plan,
        ..
    } = &people;
    let (_relay, url) = start_relay(relay_db);
    let goal = a_goal_on_both(&people, &url);

    let watcher = watch(sam, &url);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + time_limit;
    let mut workers = Vec::new();
    for writer in 0..WRITERS {
        let (tally, stop) = (tally.clone(), stop.clone());
        let (sam, plan, goal) = (sam.clone(), plan.clone(), goal.clone());
        workers.push(thread::spawn(move || {
            for round in 0.. {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let note = format!("writer {writer} round {round}");
                let mood = (round % 11).to_string();
                let mut command = client(&sam);
                command.args(["checkin", &plan, &goal, "--mood", &mood, "--note", &note]);
                let ran = run_bounded(command, COMMAND_LIMIT);
                let mut tally = tally.lock().unwrap();
                if ran.success {
                    tally
                        .acknowledged
                        .push((ran.stdout.trim().to_owned(), note));
                    if tally.acknowledged.len() >= edits {
                        stop.store(true, Ordering::SeqCst);
                    }
                } else {
                    tally.failed(ran.describe(&format!("checkin {note}")), &stop);
                }
            }
        }));
    }
    {
        let (tally, stop) = (tally.clone(), stop.clone());
        let (sam, url) = (sam.clone(), url.clone());
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let ran = sync_server(&sam, &url);
                let mut tally = tally.lock().unwrap();
                tally.syncs += 1;
                if !ran.success {
                    tally.failed(ran.describe("sync --server"), &stop);
                }
            }
        }));
    }
    {
        // The counselor edits too, so changes arrive while the phone writes.
        let (tally, stop) = (tally.clone(), stop.clone());
        let (dana, plan, goal, url) = (dana.clone(), plan.clone(), goal.clone(), url.clone());
        workers.push(thread::spawn(move || {
            for round in 0.. {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let clinical = format!("Daily walk, round {round}");
                let mut edit = alliance(&dana);
                edit.args(["goal", "edit", &plan, &goal, "--clinical", &clinical]);
                let mut sync = alliance(&dana);
                sync.args(["sync", "--server", &url]);
                for (what, command) in [("counselor edit", edit), ("counselor sync", sync)] {
                    let ran = run_bounded(command, COMMAND_LIMIT);
                    if !ran.success {
                        tally.lock().unwrap().failed(ran.describe(what), &stop);
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.join().unwrap();
    }
    let mut watcher = watcher;
    let watch_alive = watcher.is_running();
    let watch_log = watcher.stop();

    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "{} check-ins acknowledged, {} one-shot syncs, {} failed command(s)",
        tally.acknowledged.len(),
        tally.syncs,
        tally.failures.len()
    );
    for failure in tally.first_failures() {
        eprintln!("  {failure}");
    }
    let verify_failures: Vec<&String> = tally
        .failures
        .iter()
        .filter(|failure| failure.to_lowercase().contains("heads"))
        .collect();
    assert!(
        verify_failures.is_empty(),
        "writes failed their heads check: {verify_failures:#?}"
    );
    // Every check-in the phone said OK to is on it.
    assert_has_checkins(sam, plan, &tally.acknowledged, "the phone");
    assert!(
        tally.acknowledged.len() >= edits,
        "only {} of {edits} check-ins acknowledged in {time_limit:?}; {} failed command(s), \
         the first: {:#?}",
        tally.acknowledged.len(),
        tally.failures.len(),
        tally.first_failures()
    );
    assert!(watch_alive, "the watch ended early: {watch_log}");

    // A final sync each way: through the relay, every one reached the counselor's store.
    let last = sync_server(sam, &url);
    assert!(last.success, "{}", last.describe("the final sync"));
    ok(dana, &["sync", "--server", &url]);
    let stores = [
        (sam.as_path(), "the phone"),
        (dana.as_path(), "the counselor"),
    ];
    assert_all_have_checkins(&stores, plan, &tally.acknowledged);
    assert_sound(sam, "the phone");
    assert_sound(dana, "the counselor");
}
