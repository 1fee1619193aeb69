//! `alliance export`, `import`, `progress`, `plan list --due` and `show --format markdown`.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{counselor_and_client, json, ok, run};

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    dana: PathBuf,
    plan: String,
    goal: String,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (dana, sam, plan) = counselor_and_client(&root);
    ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    let goal = ok(
        &sam,
        &["goal", "propose", &plan, "--words", "I want to sleep"],
    );
    for (level, date) in [
        ("-1", "2026-03-01"),
        ("0", "2026-03-02"),
        ("1", "2026-03-03"),
    ] {
        ok(
            &sam,
            &["checkin", &plan, &goal, "--level", level, "--date", date],
        );
    }
    ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    ok(&dana, &["goal", "agree", &plan, &goal]);
    World {
        _dir: dir,
        root,
        dana,
        plan,
        goal,
    }
}

#[test]
fn export_and_import_through_files() {
    let w = world();
    let fhir_path = w.root.join("plan.fhir.json");
    let said = ok(
        &w.dana,
        &[
            "export",
            &w.plan,
            "--format",
            "fhir",
            "--out",
            fhir_path.to_str().unwrap(),
        ],
    );
    assert!(said.starts_with("wrote "));
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(&fhir_path).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let goal = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Goal")
        .unwrap();
    assert_eq!(goal["id"], w.goal.as_str());
    assert_eq!(goal["achievementStatus"]["coding"][0]["code"], "improving");
    // FHIR is the default format, to standard output. Only the attached report (printed at
    // another time) differs.
    let printed: Value = serde_json::from_str(&ok(&w.dana, &["export", &w.plan])).unwrap();
    let without_report = |b: &Value| -> Vec<Value> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] != "DocumentReference")
            .cloned()
            .collect()
    };
    assert_eq!(without_report(&printed), without_report(&bundle));

    let file = w.root.join("plan.json");
    ok(
        &w.dana,
        &[
            "export",
            &w.plan,
            "--format",
            "json",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    let lee = w.root.join("lee.db");
    ok(&lee, &["init", "--name", "Lee", "--role", "counselor"]);
    assert_eq!(ok(&lee, &["import", file.to_str().unwrap()]), w.plan);
    let mine = json(&w.dana, &["show", &w.plan, "--json"]);
    let theirs = json(&lee, &["show", &w.plan, "--format", "json"]);
    assert_eq!(mine, theirs);
    let history = |db: &Path| {
        let mut hashes: Vec<String> = json(db, &["history", &w.plan, "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["hash"].as_str().unwrap().to_owned())
            .collect();
        hashes.sort();
        hashes
    };
    assert_eq!(history(&w.dana), history(&lee));
    // Importing it again: one line on stderr, a failure exit.
    let again = run(&lee, &["import", file.to_str().unwrap()]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("already holds it"));
    // Not a plan file.
    let junk = w.root.join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let out = run(&lee, &["import", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plan file"));
}

#[test]
fn progress_reviews_and_the_printable_summary() {
    let w = world();
    let progress = json(&w.dana, &["progress", &w.plan, "--json"]);
    let goal = &progress["goals"][0];
    assert_eq!(goal["latest_level"], 1);
    assert_eq!(goal["trend"], "improving");
    assert_eq!(goal["series"].as_array().unwrap().len(), 3);
    assert_eq!(progress["t_scores"].as_array().unwrap().len(), 3);
    assert_eq!(progress["trend_window"], 3);
    let text = ok(&w.dana, &["progress", &w.plan, "--window", "2"]);
    assert!(text.contains("trend: improving"), "{text}");
    assert!(!run(&w.dana, &["progress", &w.plan, "--window", "1"])
        .status
        .success());

    // No review date yet: due.
    let due = json(&w.dana, &["plan", "list", "--due", "--json"]);
    assert_eq!(due.as_array().unwrap().len(), 1);
    ok(
        &w.dana,
        &["plan", "set", &w.plan, "--review-on", "2999-01-01"],
    );
    let due = json(&w.dana, &["plan", "list", "--due", "--json"]);
    assert!(due.as_array().unwrap().is_empty());
    assert_eq!(
        ok(&w.dana, &["plan", "list", "--due"]),
        "no plan is due for review"
    );
    ok(
        &w.dana,
        &["plan", "set", &w.plan, "--review-on", "2001-01-01"],
    );
    let due = ok(&w.dana, &["plan", "list", "--due", "--within", "30"]);
    assert!(due.starts_with("2001-01-01  "), "{due}");
    assert!(!run(&w.dana, &["plan", "list", "--within", "3"])
        .status
        .success());

    let summary = ok(&w.dana, &["show", &w.plan, "--format", "markdown"]);
    assert!(
        summary.starts_with("# Treatment plan: Sam's plan"),
        "{summary}"
    );
    assert!(summary.contains("| Next review | 2001-01-01 |"));
    assert!(summary.contains("## Goal 1: I want to sleep"));
    assert!(summary.contains("This goal is **waiting for agreement**"));
    assert!(summary.contains("| Dana | counselor |"));
    assert!(summary.contains("Waiting for: Sam."));
    assert!(summary.contains("## Signatures"));
    assert!(summary.contains("Client: Sam"));
    assert!(summary.contains("Counselor: Dana"));
    assert!(summary.contains("42 CFR part 2"));
    assert!(!run(
        &w.dana,
        &["show", &w.plan, "--json", "--format", "markdown"]
    )
    .status
    .success());
}

#[test]
fn report_writes_one_html_file_and_rides_along_in_fhir() {
    let w = world();
    let file = w.root.join("report.html");
    let said = ok(
        &w.dana,
        &["report", &w.plan, "--out", file.to_str().unwrap()],
    );
    assert!(said.starts_with("wrote "), "{said}");
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("I want to sleep"));
    assert!(html.contains("<svg "));
    assert!(!html.to_lowercase().contains("<script"));

    let bundle: Value =
        serde_json::from_str(&ok(&w.dana, &["export", &w.plan, "--format", "fhir"])).unwrap();
    let kinds: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert!(kinds.contains(&"DocumentReference"));
    let plain: Value = serde_json::from_str(&ok(
        &w.dana,
        &["export", &w.plan, "--format", "fhir", "--no-report"],
    ))
    .unwrap();
    assert!(plain["entry"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["resource"]["resourceType"] != "DocumentReference"));
}

#[test]
fn a_check_in_dated_ahead_is_shown_future_dated_and_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (dana, sam, plan) = counselor_and_client(dir.path());
    ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    let goal = ok(&sam, &["goal", "propose", &plan, "--words", "Walk daily"]);
    ok(&sam, &["checkin", &plan, &goal, "--level", "-1"]);
    ok(
        &sam,
        &[
            "checkin",
            &plan,
            &goal,
            "--level",
            "2",
            "--date",
            "2099-01-01",
        ],
    );
    ok(&dana, &["sync", "--with", sam.to_str().unwrap()]);
    let shown = ok(&dana, &["show", &plan]);
    assert!(
        shown.contains("check-in 2099-01-01 by Sam: level +2 (future_dated"),
        "{shown}"
    );
    let model = json(&dana, &["show", &plan, "--json"]);
    let checkins = model["goals"][0]["checkins"].as_array().unwrap();
    let flagged: Vec<&Value> = checkins
        .iter()
        .filter(|c| c["future_dated"] == true)
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["local_date"], "2099-01-01");
    assert_eq!(model["goals"][0]["latest_gas_level"], -1);
    let progress = json(&dana, &["progress", &plan, "--json"]);
    assert_eq!(progress["goals"][0]["latest_level"], -1);
    assert_eq!(progress["as_of"], model["client_today"]);
    let text = ok(&dana, &["progress", &plan]);
    assert!(
        text.contains("future_dated check-ins (not counted until their day comes): 1"),
        "{text}"
    );
}
