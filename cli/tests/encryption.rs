//! `--key-file` and `alliance rekey`: an encrypted store opens only with its key, errors are
//! one line that never shows key bytes, and without a key file the help says the store is
//! unencrypted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn alliance(db: &Path, key_file: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alliance"));
    command
        .arg("--db")
        .arg(db)
        .env_remove("ALLIANCE_DB")
        .env_remove("ALLIANCE_KEY_FILE");
    if let Some(key_file) = key_file {
        command.arg("--key-file").arg(key_file);
    }
    command.args(args).output().unwrap()
}

fn ok(db: &Path, key_file: Option<&Path>, args: &[&str]) -> String {
    let out = alliance(db, key_file, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs a command that must fail; returns its one-line stderr.
fn refused(db: &Path, key_file: Option<&Path>, args: &[&str]) -> String {
    let out = alliance(db, key_file, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

fn key_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn an_encrypted_store_opens_only_with_its_key_and_can_be_rekeyed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dana.db");
    let first = key_file(dir.path(), "first.key", &[0x41; 32]);
    let second = key_file(dir.path(), "second.key", &[0x42; 32]);

    ok(
        &db,
        Some(&first),
        &["init", "--name", "Dana", "--role", "counselor"],
    );
    let plan = ok(
        &db,
        Some(&first),
        &[
            "plan",
            "new",
            "--title",
            "Harbor-lights-6120",
            "--client-name",
            "Sam",
        ],
    );
    let bytes = std::fs::read(&db).unwrap();
    assert!(!bytes.windows(10).any(|w| w == b"Harbor-lig"));

    for (key, why) in [(None, "no key"), (Some(second.as_path()), "wrong key")] {
        let stderr = refused(&db, key, &["plan", "list"]);
        assert!(stderr.contains("key"), "{why}: {stderr}");
        assert!(
            !stderr.contains("4141") && !stderr.contains("AAAA"),
            "{stderr}"
        );
    }

    let rekey = ["rekey", "--new-key-file", second.to_str().unwrap()];
    assert!(ok(&db, Some(&first), &rekey).starts_with("rekeyed"));
    refused(&db, Some(&first), &["plan", "list"]);
    assert!(ok(&db, Some(&second), &["plan", "list"]).contains(&plan));
    assert_eq!(ok(&db, Some(&second), &["check"]), "ok");
}

#[test]
fn a_store_a_relay_has_open_is_not_rekeyed_under_it() {
    let people = common::people();
    let relay_db = &people.relay_db;
    let dir = relay_db.parent().unwrap();
    let first = key_file(dir, "relay.key", &[0x51; 32]);
    let second = key_file(dir, "relay-new.key", &[0x52; 32]);
    let mut command = common::alliance(relay_db);
    command.arg("--key-file").arg(&first);
    let (relay, url) = common::start_relay_with(command);
    common::ok(&people.dana, &["sync", "--server", &url]);

    let rekey = ["rekey", "--new-key-file", second.to_str().unwrap()];
    let stderr = refused(relay_db, Some(&first), &rekey);
    assert!(
        stderr.contains("open in another process or connection"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("5151") && !stderr.contains("QQQQ"),
        "{stderr}"
    );

    // The relay serves on: Sam's phone receives the plan Dana pushed.
    let synced = common::ok(&people.sam, &["sync", "--server", &url]);
    assert_eq!(common::summary(&synced), (1, 1, 1));
    let list = common::json(&people.sam, &["plan", "list", "--json"]);
    assert_eq!(list[0]["plan_id"], people.plan.as_str());

    // Once the relay has stopped, the store is rekeyed and opens with the new key only.
    drop(relay);
    assert!(ok(relay_db, Some(&first), &rekey).starts_with("rekeyed"));
    refused(relay_db, Some(&first), &["plan", "list"]);
    assert!(ok(relay_db, Some(&second), &["plan", "list"]).contains(&people.plan));
}

#[test]
fn a_key_file_must_hold_exactly_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dana.db");
    let short = key_file(dir.path(), "short.key", b"Kestrel-secret");
    let stderr = refused(
        &db,
        Some(&short),
        &["init", "--name", "Dana", "--role", "counselor"],
    );
    assert!(stderr.contains("32 raw bytes"), "{stderr}");
    assert!(!stderr.contains("Kestrel"), "{stderr}");
    assert!(!db.exists(), "no store was created");
    let missing = dir.path().join("missing.key");
    refused(
        &db,
        Some(&missing),
        &["init", "--name", "Dana", "--role", "counselor"],
    );
    assert!(!db.exists());
}

#[test]
fn an_unencrypted_store_cannot_be_rekeyed_and_help_says_it_is_unencrypted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sam.db");
    let key = key_file(dir.path(), "new.key", &[7; 32]);
    ok(&db, None, &["init", "--name", "Sam", "--role", "client"]);
    let stderr = refused(
        &db,
        None,
        &["rekey", "--new-key-file", key.to_str().unwrap()],
    );
    assert!(stderr.contains("not encrypted"), "{stderr}");
    ok(&db, None, &["whoami"]);

    let help = ok(&db, None, &["--help"]);
    assert!(help.contains("--key-file"), "{help}");
    assert!(help.contains("NOT encrypted"), "{help}");
}
