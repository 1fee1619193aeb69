//! Encryption at rest: an encrypted store's files hold none of a plan's text, a wrong key is
//! refused with the file left byte for byte as it was, and a rekey moves the store to a new key.

use std::fs;
use std::path::{Path, PathBuf};

use alliance_core::{Alliance, Error, NewCheckIn, NewPlan, Role, StoreKey};

const TITLE: &str = "Quillfeather-title-58213";
const WORDS: &str = "walk the heron trail at dawn 77412";
const NOTE: &str = "slept through the night marigold 90331";

fn key(byte: u8) -> StoreKey {
    StoreKey::new([byte; 32])
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// Every file of the store (the database, its WAL and shared memory) with its bytes.
fn store_files(db: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .into_iter()
        .filter_map(|suffix| {
            let path = with_suffix(db, suffix);
            fs::read(&path).ok().map(|bytes| (suffix.to_owned(), bytes))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Which of the plan's texts appear in plaintext in any file of the store.
fn leaked(db: &Path) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    for (suffix, bytes) in store_files(db) {
        for text in [TITLE, WORDS, NOTE] {
            if contains(&bytes, text) {
                found.push((format!("alliance.db{suffix}"), text));
            }
        }
    }
    found
}

/// A counselor's plan with a goal and a check-in, written through the API.
fn write_plan(store: &Alliance) {
    store.init("Counselor", Role::Counselor, None).unwrap();
    let plan = store
        .create_plan(&NewPlan {
            title: TITLE.into(),
            client_name: "Client".into(),
            ..NewPlan::default()
        })
        .unwrap();
    let goal = store.propose_goal(plan, WORDS).unwrap();
    store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                note: NOTE.into(),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
}

/// Copies every WAL frame into the main file while leaving the WAL in place, through a second
/// connection that holds the same key.
fn checkpoint_keeping_wal(db: &Path, key_hex: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{key_hex}'\";"))
        .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
}

#[test]
fn an_encrypted_store_holds_no_plan_text_in_its_files() {
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("alliance.db");
    let store = Alliance::open_encrypted(&db, &key(0x5A)).unwrap();
    write_plan(&store);

    // While open: the plan is in the WAL, not yet in the main file.
    assert!(with_suffix(&db, "-wal").exists());
    assert_eq!(leaked(&db), Vec::new());

    // After a checkpoint the main file holds the pages and the WAL keeps its frames.
    checkpoint_keeping_wal(&db, &"5A".repeat(32));
    assert!(fs::metadata(with_suffix(&db, "-wal")).unwrap().len() > 0);
    assert_eq!(leaked(&db), Vec::new());

    // Closed: everything is in the main file.
    drop(store);
    assert_eq!(leaked(&db), Vec::new());
    let reopened = Alliance::open_encrypted(&db, &key(0x5A)).unwrap();
    let plans = reopened.list_plans().unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].title, TITLE);
    assert_eq!(reopened.integrity_check().unwrap(), Vec::<String>::new());
}

#[test]
fn the_same_plan_in_an_unencrypted_store_is_readable_in_its_file() {
    // The control for the test above: the search does find text stored in plaintext.
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("alliance.db");
    let store = Alliance::open(&db).unwrap();
    write_plan(&store);
    drop(store);
    assert!(leaked(&db).iter().any(|(_, text)| *text == TITLE));
}

#[test]
fn a_wrong_key_is_refused_and_the_file_is_untouched() {
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("alliance.db");
    let store = Alliance::open_encrypted(&db, &key(1)).unwrap();
    write_plan(&store);
    drop(store);
    let before = store_files(&db);
    assert_eq!(before.len(), 1, "a closed store is one file");

    for attempt in 0..3 {
        let result = match attempt {
            0 => Alliance::open_encrypted(&db, &key(2)),
            1 => Alliance::open(&db),
            _ => Alliance::open_encrypted(&db, &StoreKey::new([0; 32])),
        };
        let error = result.err().expect("refused");
        assert!(matches!(error, Error::WrongKey), "{error}");
        let message = error.to_string().to_lowercase();
        assert!(!message.contains("0101") && !message.contains("0202"));
        assert_eq!(
            store_files(&db),
            before,
            "attempt {attempt} changed the files"
        );
    }

    // The right key still opens it, with the plan intact.
    let store = Alliance::open_encrypted(&db, &key(1)).unwrap();
    assert_eq!(store.list_plans().unwrap()[0].title, TITLE);
}

#[test]
fn a_key_for_an_unencrypted_store_is_refused_and_the_file_is_untouched() {
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("alliance.db");
    let store = Alliance::open(&db).unwrap();
    write_plan(&store);
    drop(store);
    let before = store_files(&db);
    let error = Alliance::open_encrypted(&db, &key(3))
        .err()
        .expect("refused");
    assert!(matches!(error, Error::WrongKey), "{error}");
    assert_eq!(store_files(&db), before);
    let store = Alliance::open(&db).unwrap();
    let error = store.rekey(&key(3)).unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
}

#[test]
fn after_a_rekey_only_the_new_key_opens_the_store() {
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("alliance.db");
    let store = Alliance::open_encrypted(&db, &key(0x11)).unwrap();
    write_plan(&store);
    store.rekey(&key(0x22)).unwrap();
    // The open store keeps working under the new key.
    let plan = store.plan_ids().unwrap()[0];
    store.set_title(plan, "after the rekey").unwrap();
    drop(store);

    let error = Alliance::open_encrypted(&db, &key(0x11))
        .err()
        .expect("old key refused");
    assert!(matches!(error, Error::WrongKey), "{error}");
    let store = Alliance::open_encrypted(&db, &key(0x22)).unwrap();
    assert_eq!(store.plan(plan).unwrap().title, "after the rekey");
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    assert_eq!(leaked(&db), Vec::new());
}

#[test]
fn stores_are_encrypted_by_sqlcipher_4_through_openssl() {
    let folder = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(folder.path().join("probe.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", "AB".repeat(32)))
        .unwrap();
    let version: String = conn
        .query_row("PRAGMA cipher_version", [], |row| row.get(0))
        .unwrap();
    let provider: String = conn
        .query_row("PRAGMA cipher_provider", [], |row| row.get(0))
        .unwrap();
    eprintln!("SQLCipher {version}, provider {provider}");
    assert!(version.starts_with("4."), "{version}");
    assert_eq!(provider, "openssl");
}
