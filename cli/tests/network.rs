//! `alliance relay` and `alliance sync --server`: real processes on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::{
    alliance, checkin_notes, json, ok, people, run, save_token, start_relay, summary,
    write_refused_status_change, People, Running, STATUS_RULE,
};

#[test]
fn two_devices_sync_through_a_relay_and_the_client_finds_its_plan() {
    let People {
        _dir,
        relay_db,
        dana,
        sam,
        plan,
    } = people();
    let (relay, url) = start_relay(&relay_db);
    let goal = ok(
        &dana,
        &["goal", "propose", &plan, "--words", "Sleep better"],
    );
    assert_eq!(summary(&ok(&dana, &["sync", "--server", &url])), (1, 1, 0));

    // Sam's phone was never told the plan id: the relay offers it.
    assert_eq!(summary(&ok(&sam, &["sync", "--server", &url])), (1, 1, 1));
    let list = json(&sam, &["plan", "list", "--json"]);
    assert_eq!(list[0]["plan_id"], plan.as_str());

    // Offline edits on both sides, then both sync: identical plans.
    ok(
        &dana,
        &["goal", "edit", &plan, &goal, "--clinical", "Insomnia"],
    );
    ok(&sam, &["checkin", &plan, &goal, "--mood", "6"]);
    ok(&sam, &["sync", "--server", &url]);
    assert_eq!(summary(&ok(&dana, &["sync", "--server", &url])), (1, 1, 1));
    ok(&sam, &["sync", "--server", &url]);
    let on_phone = json(&sam, &["show", &plan, "--json"]);
    let on_laptop = json(&dana, &["show", &plan, "--json"]);
    assert_eq!(on_phone, on_laptop);
    assert_eq!(on_phone["goals"][0]["clinical_statement"], "Insomnia");
    assert_eq!(
        on_phone["goals"][0]["checkins"].as_array().unwrap().len(),
        1
    );

    // Nothing new: still one plan, nothing updated.
    assert_eq!(summary(&ok(&sam, &["sync", "--server", &url])), (1, 1, 0));

    // Restarted on the same file, the relay has lost nothing.
    drop(relay);
    let (_relay, url) = start_relay(&relay_db);
    let laptop = dana.with_file_name("laptop.db");
    let dana_me = json(&dana, &["whoami", "--json"]);
    ok(
        &laptop,
        &[
            "init",
            "--name",
            "Dana",
            "--role",
            "counselor",
            "--member",
            dana_me["member_id"].as_str().unwrap(),
        ],
    );
    let laptop_me = json(&laptop, &["whoami", "--json"]);
    let added = ok(
        &dana,
        &[
            "device",
            "add",
            &plan,
            "--member",
            dana_me["member_id"].as_str().unwrap(),
            "--device",
            laptop_me["device_id"].as_str().unwrap(),
        ],
    );
    save_token(&laptop, &added);
    ok(&dana, &["sync", "--server", &url]);
    assert_eq!(
        summary(&ok(&laptop, &["sync", "--server", &url])),
        (1, 1, 1)
    );
    assert_eq!(
        json(&laptop, &["show", &plan, "--json"])["goals"],
        on_laptop["goals"]
    );
}

#[test]
fn watch_mode_prints_progress_until_stopped() {
    let People {
        _dir,
        relay_db,
        dana,
        sam,
        plan,
    } = people();
    let (_relay, url) = start_relay(&relay_db);
    ok(&dana, &["sync", "--server", &url]);
    let mut command = alliance(&sam);
    command.args(["sync", "--server", &url, "--watch"]);
    let mut watch = Running::spawn(command);
    let mut seen = Vec::new();
    loop {
        let line = watch.next_line();
        seen.push(line.clone());
        if line == "connected: 1/1 plan(s) synced" {
            break;
        }
        assert!(seen.len() < 20, "no settled line in {seen:?}");
    }
    assert!(
        seen.iter().all(|l| l.starts_with("connected: ")),
        "{seen:?}"
    );
    // Still running: a change from the counselor arrives while it watches.
    ok(&dana, &["plan", "set", &plan, "--title", "Renamed"]);
    ok(&dana, &["sync", "--server", &url]);
    let mut renamed = false;
    for _ in 0..200 {
        if json(&sam, &["plan", "list", "--json"])[0]["title"] == "Renamed" {
            renamed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(renamed, "the watching phone received the new title");
}

#[test]
fn sync_needs_exactly_one_peer_and_reports_errors_on_one_line() {
    let People { _dir, sam, .. } = people();
    let neither = run(&sam, &["sync"]);
    assert_eq!(neither.status.code(), Some(2));
    let both = run(
        &sam,
        &["sync", "--with", "other.db", "--server", "ws://127.0.0.1:9"],
    );
    assert_eq!(both.status.code(), Some(2));
    let watch_local = run(&sam, &["sync", "--with", "other.db", "--watch"]);
    assert_eq!(watch_local.status.code(), Some(2));
    for bad in [
        run(&sam, &["sync", "--server", "http://127.0.0.1:9"]),
        run(&sam, &["sync", "--server", "ws://127.0.0.1:9"]),
    ] {
        assert_eq!(bad.status.code(), Some(1));
        let stderr = String::from_utf8(bad.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: sync error:"), "{stderr}");
    }
    for out in [neither, both, watch_local] {
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn the_relay_refuses_devices_without_a_token_and_revoked_ones() {
    let People {
        _dir,
        relay_db,
        dana,
        sam,
        plan,
    } = people();
    let (_relay, url) = start_relay(&relay_db);
    ok(&dana, &["sync", "--server", &url]);
    let token = std::fs::read_to_string(sam.with_extension("token")).unwrap();
    // Without its token the phone gets nothing; the error names no token.
    let mut bare = alliance(&sam);
    bare.env_remove("ALLIANCE_TOKEN")
        .args(["sync", "--server", &url]);
    let out = bare.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not authorized"), "{stderr}");
    assert!(json(&sam, &["plan", "list", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    // With it, the plan arrives; once revoked, the phone is refused.
    assert_eq!(summary(&ok(&sam, &["sync", "--server", &url])), (1, 1, 1));
    let sam_device = json(&sam, &["whoami", "--json"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&dana, &["device", "revoke", &plan, "--device", &sam_device]);
    ok(&dana, &["sync", "--server", &url]);
    let out = run(&sam, &["sync", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not authorized"), "{stderr}");
    assert!(!stderr.contains(token.trim()), "{stderr}");
}

#[test]
fn a_tls_relay_serves_wss_to_devices_that_trust_its_certificate() {
    let People {
        _dir,
        relay_db,
        dana,
        sam,
        ..
    } = people();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (
        relay_db.with_file_name("relay.crt"),
        relay_db.with_file_name("relay.key"),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut command = alliance(&relay_db);
    command.args([
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--open-enrollment",
        "--tls-cert",
    ]);
    command.arg(&cert).arg("--tls-key").arg(&key);
    let mut relay = Running::spawn(command);
    let url = relay
        .next_line()
        .strip_prefix("relay listening on ")
        .expect("the relay prints its URL")
        .to_owned();
    assert!(url.starts_with("wss://"), "{url}");
    let cert = cert.to_str().unwrap();
    ok(&dana, &["sync", "--server", &url, "--ca-cert", cert]);
    assert_eq!(
        summary(&ok(&sam, &["sync", "--server", &url, "--ca-cert", cert])),
        (1, 1, 1)
    );
    // Without trusting the certificate: one line, naming the certificate problem.
    let out = run(&sam, &["sync", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}

#[test]
fn a_relay_that_cannot_listen_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (_relay, url) = start_relay(&db);
    let taken = url.trim_start_matches("ws://");
    let other = dir.path().join("other.db");
    let out = run(&other, &["relay", "--listen", taken]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn the_demo_runs_through_a_relay_and_both_devices_agree() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&dir.path().join("unused.db"), &["demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("the clinic's relay listens on ws://127.0.0.1:"));
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("synced 1 plan(s) through the relay"))
            .count(),
        6,
        "{stdout}"
    );
    assert!(stdout.contains("agreement: stale"));
    assert!(stdout
        .trim_end()
        .ends_with("Both devices hold the same plan: yes"));
}

/// Sam's phone holds the plan and a goal from the relay, then a status change the relay will
/// refuse and, built on it, an honest check-in.
fn phone_holding_a_refused_change(people: &People, url: &str) -> String {
    let People {
        dana, sam, plan, ..
    } = people;
    let goal = ok(dana, &["goal", "propose", plan, "--words", "Sleep better"]);
    ok(dana, &["sync", "--server", url]);
    ok(sam, &["sync", "--server", url]);
    write_refused_status_change(sam, plan, &goal);
    ok(
        sam,
        &["checkin", plan, &goal, "--mood", "6", "--note", "walked"],
    );
    goal
}

#[test]
fn sync_exits_3_naming_plan_and_rule_when_the_relay_refuses_an_own_change() {
    let people = people();
    let (_relay, url) = start_relay(&people.relay_db);
    let goal = phone_holding_a_refused_change(&people, &url);
    let People {
        dana, sam, plan, ..
    } = &people;

    let out = run(sam, &["sync", "--server", &url]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("refused: "), "{stderr}");
    assert!(lines[0].contains(plan.as_str()), "{stderr}");
    assert!(lines[0].contains(STATUS_RULE), "{stderr}");
    // The summary still says how the sync went: the plan is synced.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(summary(stdout.trim()).0, 1, "{stdout}");

    // The check-in built on the refused change reached the relay and the counselor; the
    // phone's plan no longer claims the refused status.
    ok(dana, &["sync", "--server", &url]);
    assert_eq!(checkin_notes(dana, plan), ["walked"]);
    assert_eq!(
        json(sam, &["show", plan, "--json"])["goals"],
        json(dana, &["show", plan, "--json"])["goals"]
    );
    let shown = json(sam, &["show", plan, "--json"]);
    assert_eq!(shown["goals"][0]["status"], "proposed");

    // Told once: the next sync has nothing refused and exits 0.
    ok(
        sam,
        &["checkin", plan, &goal, "--mood", "7", "--note", "slept"],
    );
    let again = run(sam, &["sync", "--server", &url]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        again.stderr.is_empty(),
        "{:?}",
        String::from_utf8(again.stderr)
    );
    ok(dana, &["sync", "--server", &url]);
    assert_eq!(checkin_notes(dana, plan), ["slept", "walked"]);
}

#[test]
fn watch_mode_logs_a_refused_own_change_and_keeps_syncing() {
    let people = people();
    let (_relay, url) = start_relay(&people.relay_db);
    phone_holding_a_refused_change(&people, &url);
    let People {
        dana, sam, plan, ..
    } = &people;

    let mut command = alliance(sam);
    command.args(["sync", "--server", &url, "--watch"]);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, errors) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let watch = WatchChild(child);
    let line = errors
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("a refused line on stderr");
    assert!(line.starts_with("refused: "), "{line}");
    assert!(
        line.contains(plan.as_str()) && line.contains(STATUS_RULE),
        "{line}"
    );
    // It syncs on: the check-in built on the refused change, replayed without it, reaches the
    // counselor through the relay while the phone keeps watching.
    let mut arrived = false;
    for _ in 0..200 {
        ok(dana, &["sync", "--server", &url]);
        if checkin_notes(dana, plan) == ["walked"] {
            arrived = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        arrived,
        "the watching phone's check-in reached the counselor"
    );
    let mut watch = watch;
    assert!(watch.0.try_wait().unwrap().is_none(), "still watching");
    drop(watch);
    let rest: Vec<String> = errors.try_iter().collect();
    assert!(
        rest.iter().all(|l| !l.starts_with("refused: ")),
        "told once: {rest:?}"
    );
}

/// A running child process whose output is read elsewhere, killed when dropped.
struct WatchChild(Child);

impl Drop for WatchChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
