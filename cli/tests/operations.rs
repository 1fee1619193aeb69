//! The relay as a service: its audit trail (every kind of entry, nothing secret in it, the
//! hash chain catching a removed and an edited row), `/metrics` counting what devices did,
//! configuration errors naming their key, TLS certificates reloaded on SIGHUP without dropping
//! connections, and backups taken while a writer runs, restored, and caught up by devices.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A relay started with `extra` flags on a free port; returns it, its URL and the admin
/// address when `--admin` was given.
fn relay_with(db: &Path, extra: &[&str]) -> (Running, String, Option<String>) {
    let mut command = alliance(db);
    command.args(["relay", "--listen", "127.0.0.1:0", "--open-enrollment"]);
    command.args(extra);
    let mut relay = Running::spawn(command);
    let url = relay
        .next_line()
        .strip_prefix("relay listening on ")
        .expect("the relay prints its URL")
        .to_owned();
    let admin = extra.contains(&"--admin").then(|| {
        relay
            .next_line()
            .strip_prefix("admin listening on http://")
            .expect("the relay prints its admin address")
            .to_owned()
    });
    (relay, url, admin)
}

/// Stops a relay as systemd would (SIGTERM) and waits for it: exit 0.
fn stop(mut relay: Running) {
    relay.signal("TERM");
    let status = relay
        .wait_for_exit(Duration::from_secs(60))
        .expect("the relay exits after SIGTERM");
    assert!(status.success(), "{status}");
}

/// GET `path` from the admin listener: (status line, body).
fn get(admin: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(admin).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: relay\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of one series (`name` with its labels, exactly) in a scrape; 0 when absent.
fn value(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn device_of(db: &Path) -> (String, String) {
    let me = json(db, &["whoami", "--json"]);
    (
        me["device_id"].as_str().unwrap().to_owned(),
        me["member_id"].as_str().unwrap().to_owned(),
    )
}

fn token_of(db: &Path) -> String {
    std::fs::read_to_string(db.with_extension("token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn sha256_hex(text: &str) -> String {
    // The relay stores and looks up SHA-256(token) (core/src/sync/token.rs).
    alliance_core::sync::token_hash(text)
}

/// Every entry of the relay's trail, as `relay audit --json` prints them.
fn trail(db: &Path, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["relay", "audit", "--json"];
    args.extend_from_slice(filters);
    json(db, &args).as_array().unwrap().clone()
}

/// Dana pushes the plan, Sam reads it and sends a change the rules refuse, a stranger presents
/// a wrong token, Dana revokes Sam's phone, and Sam is turned away: every kind of entry.
fn busy_relay() -> (People, PathBuf) {
    let people = people();
    let (relay, url, _) = relay_with(&people.relay_db, &[]);
    let People {
        dana, sam, plan, ..
    } = &people;
    let goal = ok(dana, &["goal", "propose", plan, "--words", "Sleep better"]);
    ok(dana, &["sync", "--server", &url]);
    ok(sam, &["sync", "--server", &url]);
    write_refused_status_change(sam, plan, &goal);
    assert_eq!(run(sam, &["sync", "--server", &url]).status.code(), Some(3));
    // A malformed token is denied at once (an unknown well-formed one may still push a new
    // plan under open enrollment, and is refused when it asks for this one).
    let mut stranger = alliance(sam);
    stranger
        .env("ALLIANCE_TOKEN", "not-a-token")
        .args(["sync", "--server", &url]);
    assert_eq!(stranger.output().unwrap().status.code(), Some(1));
    let (sam_device, _) = device_of(sam);
    ok(dana, &["device", "revoke", plan, "--device", &sam_device]);
    ok(dana, &["sync", "--server", &url]);
    assert_eq!(run(sam, &["sync", "--server", &url]).status.code(), Some(1));
    stop(relay);
    let db = people.relay_db.clone();
    (people, db)
}

#[test]
fn the_audit_trail_records_every_kind_of_entry_and_nothing_secret() {
    let (people, db) = busy_relay();
    let entries = trail(&db, &[]);
    let (dana_device, dana_member) = device_of(&people.dana);
    let (sam_device, sam_member) = device_of(&people.sam);
    let has = |kind: &str, outcome: &str, device: Option<&str>| {
        entries.iter().any(|e| {
            e["kind"] == kind
                && e["outcome"] == outcome
                && device.is_none_or(|d| e["device_id"] == d)
        })
    };
    assert!(has("auth", "ok", Some(&dana_device)), "{entries:#?}");
    assert!(has("auth", "ok", Some(&sam_device)));
    assert!(has("auth", "denied", None));
    assert!(has("write", "ok", Some(&dana_device)));
    assert!(has("read", "ok", Some(&sam_device)));
    assert!(has("change_refused", "refused", Some(&sam_device)));
    assert!(has("refusal", "closed", None));
    assert!(has("token_issued", "learned", Some(&sam_device)));
    assert!(has("token_issued", "learned", Some(&dana_device)));
    assert!(has("token_revoked", "learned", Some(&sam_device)));
    assert!(entries.iter().any(|e| e["kind"] == "admin"
        && e["detail"] == "relay_started"
        && e["remote"].as_str().unwrap().starts_with("local:")));
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "admin" && e["detail"] == "relay_stopped"));
    // Each access names time, device, member, plan and remote address.
    for entry in entries
        .iter()
        .filter(|e| e["kind"] == "read" || e["kind"] == "write")
    {
        assert_eq!(entry["plan_id"], people.plan.as_str(), "{entry}");
        assert!(entry["at"].as_i64().unwrap() > 0);
        assert!(entry["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
        let member = if entry["device_id"] == dana_device.as_str() {
            &dana_member
        } else {
            &sam_member
        };
        assert_eq!(entry["member_id"], member.as_str(), "{entry}");
    }
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "change_refused"
            && e["detail"].as_str().unwrap().contains(STATUS_RULE)));

    // Nothing secret: no token or token hash in the trail, no plan content; the token is
    // nowhere in the store file (only its hash, in the plan index).
    let dump = serde_json::to_string(&entries).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: String = conn
        .query_row(
            "SELECT group_concat(seq || at || kind || outcome || coalesce(device_id, '') ||
                coalesce(member_id, '') || coalesce(plan_id, '') || coalesce(remote, '') ||
                coalesce(detail, '') || prev_hash || hash, '|') FROM audit_log",
            [],
            |row| row.get(0),
        )
        .unwrap();
    drop(conn);
    let file = std::fs::read(&db).unwrap();
    for db in [&people.dana, &people.sam] {
        let token = token_of(db);
        for secret in [token.clone(), sha256_hex(&token)] {
            assert!(!dump.contains(&secret) && !rows.contains(&secret));
        }
        assert!(!file.windows(token.len()).any(|w| w == token.as_bytes()));
    }
    for content in ["Sam's plan", "Sleep better", "Dana", "\"Sam\""] {
        assert!(
            !dump.contains(content) && !rows.contains(content),
            "{content}"
        );
    }

    // Filters.
    let of_sam = trail(&db, &["--device", &sam_device]);
    assert!(!of_sam.is_empty() && of_sam.iter().all(|e| e["device_id"] == sam_device.as_str()));
    let of_plan = trail(&db, &["--plan", &people.plan]);
    assert!(of_plan.iter().all(|e| e["plan_id"] == people.plan.as_str()));
    assert!(of_plan.iter().any(|e| e["kind"] == "read"));
    assert!(trail(&db, &["--since", "2999-01-01"]).is_empty());
    let text = ok(&db, &["relay", "audit", "--device", &sam_device]);
    assert!(text.lines().all(|l| l.contains(&sam_device)), "{text}");
    // The relay's settings file names its store, as the service runs it.
    let config = db.with_file_name("relay.toml");
    std::fs::write(&config, format!("db = {:?}\n", db.to_str().unwrap())).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_alliance"));
    command
        .env_remove("ALLIANCE_DB")
        .args(["relay", "audit", "--json", "--config"])
        .arg(&config);
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed.len() >= entries.len());
}

/// A copy of `db` that an attacker with the file changed by `sql` (the append-only triggers
/// dropped first, as they could).
fn tampered(db: &Path, name: &str, sql: &str) -> PathBuf {
    let copy = db.with_file_name(name);
    std::fs::copy(db, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    // The triggers refuse it as it stands.
    assert!(conn.execute_batch(sql).is_err());
    conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    conn.execute_batch(sql).unwrap();
    copy
}

#[test]
fn verify_catches_a_deleted_row_and_an_edited_row() {
    let (_people, db) = busy_relay();
    let intact = ok(&db, &["relay", "audit", "--verify"]);
    assert!(intact.starts_with("ok: "), "{intact}");
    let cases = [
        (
            "deleted.db",
            "DELETE FROM audit_log WHERE seq = 3",
            "entry 4",
        ),
        (
            "edited.db",
            "UPDATE audit_log SET outcome = 'ok' WHERE kind = 'auth' AND outcome = 'denied'",
            "altered",
        ),
        (
            "truncated.db",
            "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
            "recorded head",
        ),
    ];
    for (name, sql, found) in cases {
        let copy = tampered(&db, name, sql);
        let out = run(&copy, &["relay", "audit", "--verify"]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains(found), "{name}: {stdout}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("audit trail is broken"), "{stderr}");
    }
}

#[test]
fn metrics_count_what_devices_did() {
    let People {
        _dir,
        relay_db,
        dana,
        sam,
        plan,
    } = people();
    let (relay, url, admin) = relay_with(&relay_db, &["--admin", "127.0.0.1:0"]);
    let admin = admin.unwrap();
    assert_eq!(
        get(&admin, "/healthz"),
        ("HTTP/1.0 200 OK".into(), "ok\n".into())
    );
    assert_eq!(get(&admin, "/readyz").0, "HTTP/1.0 200 OK");
    assert_eq!(get(&admin, "/nothing").0, "HTTP/1.0 404 Not Found");
    let scrape = || get(&admin, "/metrics").1;
    let before = scrape();
    assert_eq!(value(&before, "alliance_relay_connections_total"), 0.0);
    assert_eq!(value(&before, "alliance_relay_plans_held"), 0.0);

    // Devices sync one after another; after each, the counters moved by what it reports.
    let (mut sent, mut received) = (0.0, 0.0);
    // Sam's phone has no plan before its first sync: it only reads then.
    let rounds: [(&Path, Option<&str>); 4] = [
        (&dana, Some("a")),
        (&sam, None),
        (&dana, Some("c")),
        (&sam, Some("d")),
    ];
    for (round, (db, words)) in rounds.into_iter().enumerate() {
        if let Some(words) = words {
            ok(db, &["goal", "propose", &plan, "--words", words]);
        }
        let line = ok(db, &["sync", "--server", &url]);
        let numbers: Vec<f64> = line
            .split(", ")
            .filter_map(|part| {
                let (n, rest) = part.split_once(' ')?;
                rest.starts_with("bytes").then(|| n.parse().ok())?
            })
            .collect();
        sent += numbers[0];
        received += numbers[1];
        // The relay counts a connection's last frames as it closes: wait for that.
        let mut now = scrape();
        for _ in 0..200 {
            if value(&now, "alliance_relay_connections_open") == 0.0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
            now = scrape();
        }
        let round = (round + 1) as f64;
        assert_eq!(
            value(&now, "alliance_relay_connections_total"),
            round,
            "{now}"
        );
        assert_eq!(value(&now, "alliance_relay_connections_open"), 0.0);
        assert_eq!(value(&now, "alliance_relay_devices_connected"), 0.0);
        assert_eq!(
            value(&now, "alliance_relay_bytes_received_total"),
            sent,
            "{line}\n{now}"
        );
        assert_eq!(
            value(&now, "alliance_relay_bytes_sent_total"),
            received,
            "{line}\n{now}"
        );
        assert_eq!(value(&now, "alliance_relay_plans_held"), 1.0);
        assert!(value(&now, "alliance_relay_frames_received_total") >= 2.0 * round);
        assert!(value(&now, "alliance_relay_sync_round_trip_seconds_count") >= round);
        assert!(value(&now, "alliance_relay_store_write_seconds_count") >= round);
    }
    // A wrong token is one refusal, under its rule.
    let mut stranger = alliance(&sam);
    stranger
        .env("ALLIANCE_TOKEN", "cd".repeat(32))
        .args(["sync", "--server", &url]);
    assert_eq!(stranger.output().unwrap().status.code(), Some(1));
    let mut now = scrape();
    for _ in 0..200 {
        if value(&now, "alliance_relay_refusals_total{rule=\"unauthorized\"}") > 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        now = scrape();
    }
    assert_eq!(
        value(&now, "alliance_relay_refusals_total{rule=\"unauthorized\"}"),
        1.0
    );
    assert_eq!(value(&now, "alliance_relay_connections_total"), 5.0);
    // A store whose schema is not this build's (a newer build migrated it) is not ready.
    let conn = rusqlite::Connection::open(&relay_db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let (status, body) = get(&admin, "/readyz");
    assert_eq!(status, "HTTP/1.0 503 Service Unavailable", "{body}");
    assert!(body.contains("version 999"), "{body}");
    assert_eq!(get(&admin, "/healthz").0, "HTTP/1.0 200 OK");
    stop(relay);
}

#[test]
fn a_bad_key_or_value_stops_the_relay_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let config = dir.path().join("relay.toml");
    let cases = [
        ("listen = \"127.0.0.1:0\"\nadmn = \"127.0.0.1:0\"\n", "admn"),
        (
            "[limits]\nmax_frame_bytes = \"big\"\n",
            "limits.max_frame_bytes",
        ),
        ("drain_grace_secs = 0\n", "drain_grace_secs"),
    ];
    for (text, key) in cases {
        std::fs::write(&config, text).unwrap();
        let mut command = alliance(&db);
        command.arg("relay").arg("--config").arg(&config);
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
    }
    // The environment is checked the same way.
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    for (name, value, named) in [
        ("ALLIANCE_RELAY_ADMIN", "not-an-address", "`admin`"),
        (
            "ALLIANCE_RELAY_LISTN",
            "127.0.0.1:0",
            "ALLIANCE_RELAY_LISTN",
        ),
    ] {
        let mut command = alliance(&db);
        command
            .env(name, value)
            .arg("relay")
            .arg("--config")
            .arg(&config);
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(named), "{stderr}");
    }
    // A good file starts a relay with its settings.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nopen_enrollment = true\nadmin = \"127.0.0.1:0\"\n\
         log_format = \"json\"\ndrain_grace_secs = 5\n[limits]\nmax_connections_per_token = 2\n",
    )
    .unwrap();
    let mut command = alliance(&db);
    command.arg("relay").arg("--config").arg(&config);
    let mut relay = Running::spawn(command);
    assert!(relay.next_line().starts_with("relay listening on ws://"));
    assert!(relay.next_line().starts_with("admin listening on http://"));
    stop(relay);
}

fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    use alliance_core::sync::{spawn_alliance_watch, SyncObserver, SyncOptions, SyncProgress};
    use alliance_core::{Alliance, PlanId};

    let People {
        _dir,
        relay_db,
        dana,
        sam,
        plan,
    } = people();
    let dir = relay_db.parent().unwrap().to_owned();
    let (cert, key) = (dir.join("relay.crt"), dir.join("relay.key"));
    let (old_cert, old_key) = self_signed();
    let (new_cert, new_key) = self_signed();
    let old_ca = dir.join("old-ca.pem");
    let new_ca = dir.join("new-ca.pem");
    std::fs::write(&old_ca, &old_cert).unwrap();
    std::fs::write(&new_ca, &new_cert).unwrap();
    std::fs::write(&cert, &old_cert).unwrap();
    std::fs::write(&key, &old_key).unwrap();
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (relay, url, _) = relay_with(&relay_db, &["--tls-cert", cert_arg, "--tls-key", key_arg]);
    assert!(url.starts_with("wss://"));
    let old = old_ca.to_str().unwrap();
    let new = new_ca.to_str().unwrap();
    ok(&dana, &["sync", "--server", &url, "--ca-cert", old]);

    // Sam's phone stays connected in watch mode, trusting only the old certificate: were its
    // connection dropped, it could not reconnect.
    let phone = Arc::new(Alliance::open(&sam).unwrap());
    let dropped = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let observer: Arc<dyn SyncObserver> = {
        let (dropped, connected) = (dropped.clone(), connected.clone());
        Arc::new(move |progress: &SyncProgress| {
            if progress.connected {
                connected.store(1, Ordering::SeqCst);
            } else if connected.load(Ordering::SeqCst) == 1 {
                dropped.store(true, Ordering::SeqCst);
            }
        })
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plan_id = PlanId::parse(&plan).unwrap();
    let options = SyncOptions {
        token: Some(token_of(&sam)),
        extra_root_certificate: Some(old_cert.clone().into_bytes()),
        ..SyncOptions::default()
    };
    let handle = {
        let _entered = runtime.enter();
        spawn_alliance_watch(phone.clone(), &url, options, observer)
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        for _ in 0..1000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what}");
    };
    wait("the phone connects and gets the plan", &|| {
        connected.load(Ordering::SeqCst) == 1 && phone.plan(plan_id).is_ok()
    });

    std::fs::write(&cert, &new_cert).unwrap();
    std::fs::write(&key, &new_key).unwrap();
    relay.signal("HUP");
    // New connections get the new certificate: the old trust fails, the new one works.
    wait("the relay presents the new certificate", &|| {
        !run(&dana, &["sync", "--server", &url, "--ca-cert", old])
            .status
            .success()
    });
    ok(&dana, &["goal", "propose", &plan, "--words", "Walk daily"]);
    ok(&dana, &["sync", "--server", &url, "--ca-cert", new]);
    // The phone's connection, opened under the old certificate, carries the new goal.
    wait("the phone hears of the new goal", &|| {
        phone
            .plan(plan_id)
            .is_ok_and(|p| p.goals.iter().any(|g| g.client_words == "Walk daily"))
    });
    assert!(
        !dropped.load(Ordering::SeqCst),
        "the phone's connection dropped"
    );
    runtime.block_on(handle.stop());
    // A pair that does not load is refused and the current one stays.
    std::fs::write(&key, "not a key").unwrap();
    relay.signal("HUP");
    std::fs::write(&key, &new_key).unwrap();
    ok(&dana, &["sync", "--server", &url, "--ca-cert", new]);
    stop(relay);
    let entries = trail(&relay_db, &[]);
    assert!(entries.iter().any(|e| e["detail"] == "tls_reloaded"));
}

#[test]
fn a_backup_taken_while_a_writer_runs_is_sound_and_holds_every_acknowledged_edit() {
    use alliance_core::{Alliance, NewPlan, Role, StoreKey};

    // An encrypted store: its backup must be encrypted with the same key.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("store.key");
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let key = StoreKey::new([7u8; 32]);
    let db = dir.path().join("dana.db");
    let plan = {
        let store = Alliance::open_encrypted(&db, &key).unwrap();
        store.init("Dana", Role::Counselor, None).unwrap();
        store
            .create_plan(&NewPlan {
                title: "Sam's plan".into(),
                client_name: "Sam".into(),
                ..NewPlan::default()
            })
            .unwrap()
    };
    let encrypted = |args: &[&str]| {
        let mut command = alliance(&db);
        command.arg("--key-file").arg(&key_file).args(args);
        command.output().unwrap()
    };

    // A writer adds goals one after another; each returned call is an acknowledged edit.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, key, acknowledged, stop_writing) = (
            db.clone(),
            key.clone(),
            acknowledged.clone(),
            stop_writing.clone(),
        );
        std::thread::spawn(move || {
            let store = Alliance::open_encrypted(&db, &key).unwrap();
            let mut n = 0;
            while !stop_writing.load(Ordering::SeqCst) {
                store.propose_goal(plan, &format!("edit {n}")).unwrap();
                n += 1;
                acknowledged.store(n, Ordering::SeqCst);
                // A busy relay's pace: other connections get the write lock in between.
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    while acknowledged.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let backup = dir.path().join("backup.db");
    let before = acknowledged.load(Ordering::SeqCst);
    let out = encrypted(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = acknowledged.load(Ordering::SeqCst);
    stop_writing.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let after = acknowledged.load(Ordering::SeqCst);

    // The copy is sound, opens only with the key, and holds every edit acknowledged before it
    // began (and none that did not exist yet).
    let mut check = alliance(&backup);
    check.arg("--key-file").arg(&key_file).arg("check");
    let checked = check.output().unwrap();
    assert_eq!(String::from_utf8(checked.stdout).unwrap().trim(), "ok");
    assert!(
        Alliance::open(&backup).is_err(),
        "the backup must be encrypted"
    );
    let copy = Alliance::open_encrypted(&backup, &key).unwrap();
    let goals: Vec<String> = copy
        .plan(plan)
        .unwrap()
        .goals
        .into_iter()
        .map(|g| g.client_words)
        .collect();
    for n in 0..before {
        assert!(goals.contains(&format!("edit {n}")), "edit {n} is missing");
    }
    assert!(
        goals.len() <= during.max(before) + 1,
        "{} goals",
        goals.len()
    );
    assert!(after >= during);
    drop(copy);
    // Writing over an existing file is refused.
    let again = encrypted(&["backup", "--out", backup.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn a_restored_relay_catches_up_from_devices() {
    let People {
        _dir,
        relay_db,
        dana,
        sam,
        plan,
    } = people();
    let (relay, url, _) = relay_with(&relay_db, &[]);
    ok(
        &dana,
        &["goal", "propose", &plan, "--words", "Before the backup"],
    );
    ok(&dana, &["sync", "--server", &url]);
    ok(&sam, &["sync", "--server", &url]);
    let backup = relay_db.with_file_name("relay-backup.db");
    ok(&relay_db, &["backup", "--out", backup.to_str().unwrap()]);
    // After the backup, Dana adds a goal that reaches the relay, then the relay's disk is lost.
    ok(
        &dana,
        &["goal", "propose", &plan, "--words", "After the backup"],
    );
    ok(&dana, &["sync", "--server", &url]);
    // Restoring over a store in use is refused.
    let busy = run(&relay_db, &["restore", "--from", backup.to_str().unwrap()]);
    assert_eq!(busy.status.code(), Some(1));
    stop(relay);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = relay_db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
    ok(&relay_db, &["restore", "--from", backup.to_str().unwrap()]);
    let (relay, url, _) = relay_with(&relay_db, &[]);
    // The restored relay lacks the later goal until Dana's device syncs it again; then Sam gets it.
    ok(&sam, &["sync", "--server", &url]);
    let words = |db: &Path| -> Vec<String> {
        json(db, &["show", &plan, "--json"])["goals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["client_words"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(words(&sam), vec!["Before the backup"]);
    ok(&dana, &["sync", "--server", &url]);
    ok(&sam, &["sync", "--server", &url]);
    let mut got = words(&sam);
    got.sort();
    assert_eq!(got, vec!["After the backup", "Before the backup"]);
    stop(relay);
}

#[test]
fn json_logs_are_one_object_per_line_and_hold_no_token() {
    use std::io::BufRead;
    use std::process::Stdio;

    let People {
        _dir,
        relay_db,
        dana,
        ..
    } = people();
    let mut command = alliance(&relay_db);
    command
        .env("RUST_LOG", "info")
        .args(["relay", "--listen", "127.0.0.1:0", "--open-enrollment"])
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = stdout
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("relay listening on ")
        .unwrap()
        .to_owned();
    ok(&dana, &["sync", "--server", &url]);
    send_signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "peer joined"),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "draining"),
        "{stderr}"
    );
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    assert!(!stderr.contains(&token_of(&dana)));
}

#[test]
fn a_second_sigterm_stops_a_drain_that_waits_on_a_stuck_connection() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (mut relay, url, admin) = {
        let mut command = alliance(&db);
        command.env("ALLIANCE_RELAY_LIMITS_HANDSHAKE_TIMEOUT_SECS", "600");
        command.args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--drain-grace-secs",
            "600",
        ]);
        command.args(["--admin", "127.0.0.1:0"]);
        let mut relay = Running::spawn(command);
        let url = relay.next_line();
        let admin = relay.next_line();
        (relay, url, admin)
    };
    let addr = url.strip_prefix("relay listening on ws://").unwrap();
    let admin = admin.strip_prefix("admin listening on http://").unwrap();
    // A connection that never completes its WebSocket upgrade keeps the drain waiting.
    let stuck = TcpStream::connect(addr).unwrap();
    for _ in 0..400 {
        if value(&get(admin, "/metrics").1, "alliance_relay_connections_open") == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(
        value(&get(admin, "/metrics").1, "alliance_relay_connections_open"),
        1.0
    );
    relay.signal("TERM");
    assert!(
        relay.wait_for_exit(Duration::from_millis(500)).is_none(),
        "the drain waits for the stuck connection"
    );
    relay.signal("TERM");
    let status = relay
        .wait_for_exit(Duration::from_secs(30))
        .expect("a second SIGTERM stops the relay");
    assert!(status.success(), "{status}");
    drop(stuck);
    let entries = trail(&db, &[]);
    assert!(entries.iter().any(|e| e["detail"] == "relay_stopped_early"));
}
