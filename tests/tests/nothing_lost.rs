//! Nothing lost: several connections on one store file, restored stores, and forks of one
//! device's history. Each connection here is what a second process (an app's widget or share
//! extension, a background sync, the CLI) is to SQLite.

use std::path::Path;

use alliance_core::local_sync::sync_stores;
use alliance_core::{
    Alliance, Identity, NewCheckIn, NewObjective, NewPlan, PlanId, Role, SyncPeer,
};

fn checkin(note: &str) -> NewCheckIn {
    NewCheckIn {
        gas_level: Some(0),
        note: note.into(),
        ..Default::default()
    }
}

fn objective(text: &str) -> NewObjective {
    NewObjective {
        text: text.into(),
        ..Default::default()
    }
}

fn notes(store: &Alliance, plan: PlanId) -> Vec<String> {
    let mut notes: Vec<String> = store
        .plan(plan)
        .unwrap()
        .goals
        .iter()
        .flat_map(|g| g.checkins.iter().map(|c| c.note.clone()))
        .collect();
    notes.sort();
    notes
}

/// A counselor (in memory) and a client whose store is a file; the plan has one goal.
struct Setup {
    counselor: Alliance,
    client_id: Identity,
    plan: PlanId,
    goal: alliance_core::GoalId,
}

fn setup(client_db: &Path) -> Setup {
    let counselor = Alliance::open_in_memory().unwrap();
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let client = Alliance::open(client_db).unwrap();
    let client_id = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(client_id.member_id),
            client_device: Some(client_id.device_id),
        })
        .unwrap();
    let goal = counselor
        .propose_goal(plan, "Sleep before midnight")
        .unwrap();
    sync_stores(&counselor, &client).unwrap();
    Setup {
        counselor,
        client_id,
        plan,
        goal,
    }
}

/// Syncs `device` with a relay (a store without identity) to convergence, as the network
/// engine does: messages both ways until neither has anything to say.
fn sync_via_relay(device: &Alliance, relay: &Alliance, plan: PlanId) {
    let device_key = device.identity().unwrap().device_id.to_string();
    let relay_key = SyncPeer::from("relay");
    for _ in 0..64 {
        let up = device
            .generate_sync_message(plan, relay_key.clone())
            .unwrap();
        if let Some(message) = &up {
            relay
                .receive_sync_message(plan, device_key.as_str(), message)
                .unwrap();
        }
        let down = relay
            .generate_sync_message(plan, device_key.as_str())
            .unwrap();
        if let Some(message) = &down {
            device
                .receive_sync_message(plan, relay_key.clone(), message)
                .unwrap();
        }
        if up.is_none() && down.is_none() {
            device.end_sync_session(relay_key);
            relay.end_sync_session(device_key.as_str());
            return;
        }
    }
    panic!("the device and the relay did not converge");
}

#[test]
fn a_check_in_written_by_another_connection_survives_compaction_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let s = setup(&db);
    // The long-running sync process keeps the plan open…
    let watcher = Alliance::open(&db).unwrap();
    s.counselor
        .add_objective(s.plan, s.goal, &objective("Lights out by 23:30"))
        .unwrap();
    sync_stores(&s.counselor, &watcher).unwrap();
    // …while a second process records a check-in.
    let widget = Alliance::open(&db).unwrap();
    widget
        .check_in(s.plan, s.goal, &checkin("slept well"))
        .unwrap();
    drop(widget);
    // The counselor keeps editing; the sync process merges every edit (and compacts).
    for n in 0..30 {
        s.counselor
            .add_objective(s.plan, s.goal, &objective(&format!("step {n}")))
            .unwrap();
        sync_stores(&s.counselor, &watcher).unwrap();
        watcher.compact_due(8).unwrap();
    }
    assert_eq!(notes(&watcher, s.plan), ["slept well"]);
    assert_eq!(notes(&s.counselor, s.plan), ["slept well"]);
    let reopened = Alliance::open(&db).unwrap();
    assert_eq!(notes(&reopened, s.plan), ["slept well"]);
    assert_eq!(reopened.plan(s.plan).unwrap().goals[0].objectives.len(), 31);
    assert!(reopened.integrity_check().unwrap().is_empty());
}

#[test]
fn two_connections_editing_in_turn_never_reuse_a_change_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let s = setup(&db);
    let app = Alliance::open(&db).unwrap();
    let extension = Alliance::open(&db).unwrap();
    // Both have the plan open, then write in turn: each must build on the other's change.
    app.plan(s.plan).unwrap();
    extension.plan(s.plan).unwrap();
    for n in 0..10 {
        let writer = if n % 2 == 0 { &app } else { &extension };
        writer
            .check_in(s.plan, s.goal, &checkin(&format!("day {n}")))
            .unwrap();
    }
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..10).map(|n| format!("day {n}")).collect();
        v.sort();
        v
    };
    assert_eq!(notes(&app, s.plan), expected);
    assert_eq!(notes(&extension, s.plan), expected);
    sync_stores(&s.counselor, &app).unwrap();
    assert_eq!(notes(&s.counselor, s.plan), expected);
    assert!(s.counselor.refused_changes(None).unwrap().is_empty());
}

#[test]
fn two_connections_checking_in_at_the_same_moment_both_land_and_the_plan_still_opens() {
    // Two `alliance checkin` processes at once once both succeeded and left two changes with
    // one actor and seq ("duplicate seq": the plan no longer opened, exported or synced).
    // Here two connections (each what a process is to SQLite) start together, many times.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let s = setup(&db);
    let rounds = 15;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = ["app", "widget"]
        .into_iter()
        .map(|who| {
            let (db, barrier, plan, goal) = (db.clone(), barrier.clone(), s.plan, s.goal);
            std::thread::spawn(move || {
                let store = Alliance::open(&db).unwrap();
                store.plan(plan).unwrap();
                for round in 0..rounds {
                    barrier.wait();
                    store
                        .check_in(plan, goal, &checkin(&format!("{who} {round:02}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let reopened = Alliance::open(&db).unwrap();
    let mut expected: Vec<String> = (0..rounds)
        .flat_map(|round| [format!("app {round:02}"), format!("widget {round:02}")])
        .collect();
    expected.sort();
    assert_eq!(notes(&reopened, s.plan), expected);
    let bytes = reopened.saved_document(s.plan).unwrap();
    assert!(automerge::Automerge::load(&bytes).is_ok(), "the plan opens");
    assert!(reopened.export_json(s.plan).is_ok(), "and exports");
    assert!(reopened.integrity_check().unwrap().is_empty());
    sync_stores(&s.counselor, &reopened).unwrap();
    assert_eq!(notes(&s.counselor, s.plan), expected, "and syncs");
    assert!(s.counselor.refused_changes(None).unwrap().is_empty());
}

#[test]
fn observers_hear_of_another_connections_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let s = setup(&db);
    let app = std::sync::Arc::new(Alliance::open(&db).unwrap());
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = heard.clone();
    app.add_observer(std::sync::Arc::new(move |plan: PlanId| {
        sink.lock().unwrap().push(plan)
    }));
    assert!(app.check_outside_changes().unwrap().is_empty());
    let widget = Alliance::open(&db).unwrap();
    widget
        .check_in(s.plan, s.goal, &checkin("from the widget"))
        .unwrap();
    assert_eq!(app.check_outside_changes().unwrap(), vec![s.plan]);
    assert_eq!(heard.lock().unwrap().as_slice(), &[s.plan]);
    // Seen once: a second look finds nothing new.
    assert!(app.check_outside_changes().unwrap().is_empty());
    assert_eq!(notes(&app, s.plan), ["from the widget"]);
}

/// Copies a store file as a backup would, with the store closed.
fn backup(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

fn restore(backup: &Path, to: &Path) {
    for suffix in ["-wal", "-shm"] {
        let side = format!("{}{suffix}", to.display());
        let _ = std::fs::remove_file(side);
    }
    std::fs::copy(backup, to).unwrap();
}

/// The restored store found that its identity's change numbers were used by the store it was
/// restored over (a copied identity, `docs/design.md`): it took a new device id, which the
/// counselor enrolls from its new enrollment code, so that its waiting edits replay.
fn enroll_again(counselor: &Alliance, client: &Alliance, s: &Setup) {
    let me = client.identity().unwrap();
    assert_ne!(me.device_id, s.client_id.device_id);
    let known = client
        .copied_identity()
        .unwrap()
        .expect("a copied identity");
    assert_eq!(known.former_device, s.client_id.device_id);
    assert_eq!(known.waiting, vec![s.plan]);
    counselor
        .enroll_with_key(
            s.plan,
            &alliance_core::NewDevice {
                device: known.enrollment.device,
                member: me.member_id,
                new_member: None,
                label: "restored phone".into(),
            },
            known.enrollment.public_key,
        )
        .unwrap();
}

/// Only refusals of changes made under the identity the restored store left.
fn refused_only_as_copied(store: &Alliance, s: &Setup) {
    for (_, refusal) in store.refused_changes(None).unwrap() {
        assert_eq!(
            refusal.rule,
            alliance_core::rules::remote::COPIED_IDENTITY,
            "{refusal:?}"
        );
        assert_eq!(
            refusal.device_id,
            s.client_id.device_id.actor().to_hex_string()
        );
    }
}

#[test]
fn a_restored_store_recovers_in_person_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let copy = dir.path().join("backup.db");
    let s = setup(&db);
    {
        let client = Alliance::open(&db).unwrap();
        client.check_in(s.plan, s.goal, &checkin("one")).unwrap();
    }
    backup(&db, &copy);
    {
        let client = Alliance::open(&db).unwrap();
        client.check_in(s.plan, s.goal, &checkin("two")).unwrap();
        sync_stores(&s.counselor, &client).unwrap();
    }
    restore(&copy, &db);
    let client = Alliance::open(&db).unwrap();
    assert_eq!(client.identity().unwrap().device_id, s.client_id.device_id);
    client.check_in(s.plan, s.goal, &checkin("three")).unwrap();
    sync_stores(&s.counselor, &client).unwrap();
    // "three" waits for the restored store's new identity to be enrolled.
    assert_eq!(notes(&client, s.plan), ["one", "two"]);
    enroll_again(&s.counselor, &client, &s);
    sync_stores(&s.counselor, &client).unwrap();
    assert_eq!(notes(&client, s.plan), ["one", "three", "two"]);
    assert_eq!(notes(&s.counselor, s.plan), ["one", "three", "two"]);
    refused_only_as_copied(&s.counselor, &s);
    let set_aside = client.set_aside_changes(s.plan).unwrap();
    assert_eq!(set_aside.len(), 1, "{set_aside:?}");
    assert!(set_aside[0].replayed_as.is_some());
    // Healed: the next sync has nothing to do, and later edits flow.
    let report = sync_stores(&s.counselor, &client).unwrap();
    assert!(report.messages <= 2, "{report:?}");
    client.check_in(s.plan, s.goal, &checkin("four")).unwrap();
    sync_stores(&s.counselor, &client).unwrap();
    assert_eq!(notes(&s.counselor, s.plan), ["four", "one", "three", "two"]);
    drop(client);
    let reopened = Alliance::open(&db).unwrap();
    assert_eq!(notes(&reopened, s.plan), ["four", "one", "three", "two"]);
    assert!(reopened.integrity_check().unwrap().is_empty());
}

#[test]
fn a_restored_store_recovers_through_the_relay_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let copy = dir.path().join("backup.db");
    let s = setup(&db);
    let relay = Alliance::open_in_memory().unwrap();
    sync_via_relay(&s.counselor, &relay, s.plan);
    {
        let client = Alliance::open(&db).unwrap();
        client.check_in(s.plan, s.goal, &checkin("one")).unwrap();
        sync_via_relay(&client, &relay, s.plan);
    }
    backup(&db, &copy);
    {
        let client = Alliance::open(&db).unwrap();
        client.check_in(s.plan, s.goal, &checkin("two")).unwrap();
        client.check_in(s.plan, s.goal, &checkin("three")).unwrap();
        sync_via_relay(&client, &relay, s.plan);
    }
    restore(&copy, &db);
    let client = Alliance::open(&db).unwrap();
    client.check_in(s.plan, s.goal, &checkin("four")).unwrap();
    client.check_in(s.plan, s.goal, &checkin("five")).unwrap();
    sync_via_relay(&client, &relay, s.plan);
    // The relay refused the copy's first changes (same numbers as ones it holds), or the
    // device found the relay's: either way it took a new identity, and once the counselor
    // enrolls it, it replays them, so everything arrives.
    enroll_again(&s.counselor, &client, &s);
    sync_via_relay(&s.counselor, &relay, s.plan);
    sync_via_relay(&client, &relay, s.plan);
    sync_via_relay(&s.counselor, &relay, s.plan);
    refused_only_as_copied(&relay, &s);
    let all = ["five", "four", "one", "three", "two"];
    assert_eq!(notes(&client, s.plan), all);
    assert_eq!(notes(&relay, s.plan), all);
    assert_eq!(notes(&s.counselor, s.plan), all);
    assert_eq!(client.plan(s.plan).unwrap(), relay.plan(s.plan).unwrap());
    assert_eq!(client.set_aside_changes(s.plan).unwrap().len(), 2);
    client.check_in(s.plan, s.goal, &checkin("six")).unwrap();
    sync_via_relay(&client, &relay, s.plan);
    assert!(notes(&relay, s.plan).contains(&"six".to_owned()));
}

#[test]
fn a_store_left_forked_by_two_stale_writers_opens_and_keeps_both_check_ins() {
    // Before every write took the write lock, two processes could each append a chunk built on
    // the same stale copy: two changes with one actor and seq, and a plan that no longer
    // opened ("duplicate seq"). Such a store is rebuilt here the way it was left.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let other = dir.path().join("other.db");
    let s = setup(&db);
    std::fs::copy(&db, &other).unwrap();
    Alliance::open(&db)
        .unwrap()
        .check_in(s.plan, s.goal, &checkin("from the app"))
        .unwrap();
    Alliance::open(&other)
        .unwrap()
        .check_in(s.plan, s.goal, &checkin("from the widget"))
        .unwrap();
    {
        let doc_id = s.plan.to_string();
        let source = rusqlite::Connection::open(&other).unwrap();
        let chunk: Vec<u8> = source
            .query_row(
                "SELECT bytes FROM chunks WHERE doc_id = ?1 ORDER BY seq DESC LIMIT 1",
                [&doc_id],
                |row| row.get(0),
            )
            .unwrap();
        let target = rusqlite::Connection::open(&db).unwrap();
        target
            .execute(
                "INSERT INTO chunks (doc_id, seq, bytes)
                 VALUES (?1, (SELECT max(seq) + 1 FROM chunks WHERE doc_id = ?1), ?2)",
                rusqlite::params![doc_id, chunk],
            )
            .unwrap();
        target
            .execute(
                "UPDATE documents SET chunk_bytes = chunk_bytes + ?2 WHERE doc_id = ?1",
                rusqlite::params![doc_id, chunk.len() as i64],
            )
            .unwrap();
    }
    let client = Alliance::open(&db).unwrap();
    assert_eq!(notes(&client, s.plan), ["from the app", "from the widget"]);
    client.check_in(s.plan, s.goal, &checkin("later")).unwrap();
    sync_stores(&s.counselor, &client).unwrap();
    let all = ["from the app", "from the widget", "later"];
    assert_eq!(notes(&s.counselor, s.plan), all);
    assert!(s.counselor.refused_changes(None).unwrap().is_empty());
    assert_eq!(client.set_aside_changes(s.plan).unwrap().len(), 1);
    drop(client);
    // Rewritten whole by the next write: it loads without repair now.
    let reopened = Alliance::open(&db).unwrap();
    assert_eq!(notes(&reopened, s.plan), all);
    let bytes = reopened.saved_document(s.plan).unwrap();
    assert!(automerge::Automerge::load(&bytes).is_ok());
    assert!(reopened.integrity_check().unwrap().is_empty());
}
