//! Shared by the CLI test files: run the `alliance` binary on a store, set up a counselor and
//! a client with a plan, and run a relay.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

/// `alliance --db DB`, with a relay token kept beside the store (`DB.token`) passed by
/// environment when there is one.
pub fn alliance(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alliance"));
    command.arg("--db").arg(db).env_remove("ALLIANCE_DB");
    match std::fs::read_to_string(db.with_extension("token")) {
        Ok(token) => command.env("ALLIANCE_TOKEN", token.trim()),
        Err(_) => command.env_remove("ALLIANCE_TOKEN"),
    };
    command
}

pub fn run(db: &Path, args: &[&str]) -> Output {
    alliance(db).args(args).output().unwrap()
}

/// Runs a command that must succeed; returns its trimmed stdout.
pub fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn json(db: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(db, args)).unwrap()
}

/// Dana (counselor, `dir/dana.db`) starts "Sam's plan" enrolling the phone of Sam (client,
/// `dir/sam.db`), whose codes she got in person. Returns both stores and the plan id.
pub fn counselor_and_client(dir: &Path) -> (PathBuf, PathBuf, String) {
    let (dana, sam) = (dir.join("dana.db"), dir.join("sam.db"));
    ok(&dana, &["init", "--name", "Dana", "--role", "counselor"]);
    ok(&sam, &["init", "--name", "Sam", "--role", "client"]);
    let me = json(&sam, &["whoami", "--json"]);
    // The phone's enrollment code: its id and public key, so its changes need its signature.
    let code = ok(&sam, &["whoami", "--enrollment"]);
    let plan = ok(
        &dana,
        &[
            "plan",
            "new",
            "--title",
            "Sam's plan",
            "--client-name",
            "Sam",
            "--client-member",
            me["member_id"].as_str().unwrap(),
            "--client-device",
            &code,
        ],
    );
    (dana, sam, plan)
}

/// A running child process, killed when dropped; its stdout read line by line.
pub struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    pub fn next_line(&mut self) -> String {
        self.lines
            .next()
            .expect("the process printed a line")
            .unwrap()
    }

    /// Sends the process a signal by name (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        send_signal(self.child.id(), name);
    }

    /// Waits up to `limit` for the process to exit: its status, or None while it still runs.
    pub fn wait_for_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends process `pid` a signal by name (`TERM`, `HUP`, …) with the shell's `kill` builtin
/// (no procps needed).
pub fn send_signal(pid: u32, name: &str) {
    let sent = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {pid}"))
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid} failed");
}

/// `alliance relay` on a free loopback port; returns it and its ws:// URL.
pub fn start_relay(db: &Path) -> (Running, String) {
    start_relay_with(alliance(db))
}

/// `command` (`alliance --db …`, with any options) run as a relay on a free loopback port.
pub fn start_relay_with(mut command: Command) -> (Running, String) {
    command.args(["relay", "--listen", "127.0.0.1:0", "--open-enrollment"]);
    let mut relay = Running::spawn(command);
    let line = relay.next_line();
    let url = line
        .strip_prefix("relay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    (relay, url)
}

pub struct People {
    pub _dir: tempfile::TempDir,
    pub relay_db: PathBuf,
    pub dana: PathBuf,
    pub sam: PathBuf,
    pub plan: String,
}

/// Dana (counselor) makes a plan enrolling Sam's phone, whose code she got in person, and
/// issues relay tokens for both devices (kept beside their stores).
pub fn people() -> People {
    let dir = tempfile::tempdir().unwrap();
    let (dana, sam, plan) = counselor_and_client(dir.path());
    let me = json(&sam, &["whoami", "--json"]);
    // Dana issues relay tokens for her own device and Sam's phone.
    let dana_me = json(&dana, &["whoami", "--json"]);
    for (db, device) in [(&dana, &dana_me), (&sam, &me)] {
        let device = device["device_id"].as_str().unwrap();
        let line = ok(&dana, &["device", "token", &plan, "--device", device]);
        save_token(db, &line);
    }
    People {
        relay_db: dir.path().join("relay.db"),
        _dir: dir,
        dana,
        sam,
        plan,
    }
}

/// Keeps the token printed on a `relay token: …` line beside the store at `db`.
pub fn save_token(db: &Path, output: &str) {
    let token = output
        .lines()
        .find_map(|line| line.strip_prefix("relay token: "))
        .expect("a relay token line");
    std::fs::write(db.with_extension("token"), token).unwrap();
}

/// "synced 1/1 plan(s), 1 updated, …" → (synced, total, updated).
pub fn summary(line: &str) -> (u32, u32, u32) {
    let numbers: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect();
    assert!(line.starts_with("synced "), "{line}");
    assert!(line.contains("bytes"), "{line}");
    (numbers[0], numbers[1], numbers[2])
}

/// The rule a client's status change breaks.
pub const STATUS_RULE: &str = "only a counselor writes a goal's status";

/// Writes into the store at `db` a status change of `goal` that only a counselor may make, the
/// way a build with other rules would (core's test-support hook, no `alliance` command does
/// this): the next peer this device syncs with refuses it.
pub fn write_refused_status_change(db: &Path, plan: &str, goal: &str) {
    use alliance_core::{Alliance, GoalEdit, GoalId, GoalStatus, PlanId};
    let store = Alliance::open(db).unwrap();
    let edit = GoalEdit {
        status: Some(GoalStatus::Active),
        ..GoalEdit::default()
    };
    store
        .edit_goal_unchecked(
            PlanId::parse(plan).unwrap(),
            GoalId::parse(goal).unwrap(),
            &edit,
        )
        .unwrap();
}

/// The notes of a plan's check-ins, sorted.
pub fn checkin_notes(db: &Path, plan: &str) -> Vec<String> {
    let shown = json(db, &["show", plan, "--json"]);
    let mut notes: Vec<String> = shown["goals"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["checkins"].as_array().unwrap().iter())
        .map(|c| c["note"].as_str().unwrap_or_default().to_owned())
        .collect();
    notes.sort();
    notes
}

/// Plan `index` in memory: a counselor's device and the client's phone, each with the relay
/// token the counselor issued it (load and drain tests).
pub fn plan_pair(
    index: usize,
) -> (
    alliance_core::PlanId,
    [(std::sync::Arc<alliance_core::Alliance>, String); 2],
) {
    use alliance_core::{Alliance, NewPlan, Role};
    use std::sync::Arc;
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    let client = Arc::new(Alliance::open_in_memory().unwrap());
    let dana = counselor
        .init(&format!("Counselor {index}"), Role::Counselor, None)
        .unwrap();
    let sam = client
        .init(&format!("Client {index}"), Role::Client, None)
        .unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: format!("Plan {index}"),
            client_name: format!("Client {index}"),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    let counselor_token = counselor
        .issue_device_token(plan, dana.device_id, None)
        .unwrap();
    let client_token = counselor
        .issue_device_token(plan, sam.device_id, None)
        .unwrap();
    (plan, [(counselor, counselor_token), (client, client_token)])
}
