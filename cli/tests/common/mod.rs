//! Shared by the CLI test files: run the `alliance` binary on a store, and set up a counselor
//! and a client with a plan.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
            me["device_id"].as_str().unwrap(),
        ],
    );
    (dana, sam, plan)
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
