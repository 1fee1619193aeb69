//! Tests of reading stored plans. Read models (docs/design.md, Read model): a cold read loads
//! no document when the kept model is current, and a kept model is never used once stale.
//! Stored sizes: a damaged one does not stop a plan from loading.

use super::*;
use crate::model::NewCheckIn;

/// A counselor's store file holding one plan with a goal and a check-in, read once.
fn stored_plan(dir: &Path) -> (std::path::PathBuf, PlanId, GoalId) {
    let path = dir.join("store.db");
    let store = Alliance::open(&path).unwrap();
    store.init("Dana", Role::Counselor, None).unwrap();
    let plan = store
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: None,
            client_device: None,
        })
        .unwrap();
    let goal = store.propose_goal(plan, "Sleep before midnight").unwrap();
    let (_, from) = store.plan_traced(plan).unwrap();
    assert_eq!(from, ReadFrom::Memory);
    (path, plan, goal)
}

fn check_in(store: &Alliance, plan: PlanId, goal: GoalId, mood: u8) {
    let checkin = NewCheckIn {
        mood: Some(mood),
        local_date: Some("2026-03-01".into()),
        tz_offset_min: Some(0),
        ..NewCheckIn::default()
    };
    store.check_in(plan, goal, &checkin).unwrap();
}

#[test]
fn a_cold_read_of_an_unchanged_plan_loads_no_document() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, _) = stored_plan(dir.path());
    let reopened = Alliance::open(&path).unwrap();
    let (read, from) = reopened.plan_traced(plan).unwrap();
    assert_eq!(from, ReadFrom::ReadModel);
    assert!(
        reopened.inner.lock().docs.is_empty(),
        "no document was loaded"
    );
    assert_eq!(read, reopened.plan_from_document(plan).unwrap());
}

#[test]
fn a_kept_model_is_not_used_once_another_process_wrote_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, goal) = stored_plan(dir.path());
    // Another process (a widget, the CLI) adds a check-in and never reads the plan.
    let other = Alliance::open(&path).unwrap();
    check_in(&other, plan, goal, 7);
    drop(other);

    let reopened = Alliance::open(&path).unwrap();
    assert_eq!(
        reopened.kept_read_model(plan).unwrap(),
        None,
        "stale: not offered"
    );
    let (read, from) = reopened.plan_traced(plan).unwrap();
    assert_eq!(from, ReadFrom::Document);
    assert_eq!(read.goals[0].checkins.len(), 1);
    // The read kept a model of the new heads: the next cold read uses it.
    let again = Alliance::open(&path).unwrap();
    assert_eq!(
        again.plan_traced(plan).unwrap(),
        (read, ReadFrom::ReadModel)
    );
}

#[test]
fn an_edit_in_this_process_is_in_the_next_cold_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, goal) = stored_plan(dir.path());
    let store = Alliance::open(&path).unwrap();
    store.plan(plan).unwrap();
    check_in(&store, plan, goal, 3);
    check_in(&store, plan, goal, 4);
    // The app shows the plan after its edit: that read keeps the model of the new heads.
    let shown = store.plan(plan).unwrap();
    assert_eq!(shown.goals[0].checkins.len(), 2);
    let cold = Alliance::open(&path).unwrap();
    assert_eq!(
        cold.plan_traced(plan).unwrap(),
        (shown, ReadFrom::ReadModel)
    );
}

#[test]
fn a_model_of_another_format_or_undecodable_is_read_again_from_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, _) = stored_plan(dir.path());
    for tamper in [
        "UPDATE plan_read_models SET format = format + 1",
        "UPDATE plan_read_models SET model = x'7b7d'",
    ] {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(tamper, []).unwrap();
        drop(conn);
        let reopened = Alliance::open(&path).unwrap();
        let (read, from) = reopened.plan_traced(plan).unwrap();
        assert_eq!(from, ReadFrom::Document, "after {tamper}");
        assert_eq!(read, reopened.plan_from_document(plan).unwrap());
    }
}

#[test]
fn a_model_is_kept_only_for_the_heads_the_document_still_has() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, goal) = stored_plan(dir.path());
    let store = Alliance::open(&path).unwrap();
    let read = store.plan(plan).unwrap();
    let old_heads = heads_bytes(&store.inner.lock().open(plan).unwrap().saved_heads);
    check_in(&store, plan, goal, 5);
    // A model read at the old heads, offered after the document moved on, is not kept.
    let bytes = read_model::encode(&read).unwrap();
    let kept = store
        .inner
        .lock()
        .store
        .write(|tx| {
            store::save_read_model(
                tx,
                &plan.to_string(),
                &old_heads,
                read_model::FORMAT,
                &bytes,
            )
        })
        .unwrap();
    assert!(!kept);
    let cold = Alliance::open(&path).unwrap();
    assert_eq!(cold.kept_read_model(plan).unwrap(), None);
}

#[test]
fn a_kept_model_settles_with_the_readers_clock() {
    let (store, plan, goal) = {
        let store = Alliance::open_in_memory().unwrap();
        store.init("Dana", Role::Counselor, None).unwrap();
        let plan = store
            .create_plan(&NewPlan {
                title: "Plan".into(),
                client_name: "Sam".into(),
                client_member: None,
                client_device: None,
            })
            .unwrap();
        let goal = store.propose_goal(plan, "Walk").unwrap();
        (store, plan, goal)
    };
    let checkin = NewCheckIn {
        mood: Some(5),
        local_date: Some("2027-06-01".into()),
        tz_offset_min: Some(0),
        ..NewCheckIn::default()
    };
    store.check_in(plan, goal, &checkin).unwrap();
    let read = store.plan(plan).unwrap();
    let day_ms = 86_400_000;
    let now = clock::now_ms();
    let later = now + 365 * day_ms;
    let settled_at = |plan: &Plan, at: i64| {
        let mut plan = plan.clone();
        crate::clinical_time::settle(&mut plan, at, || 0);
        plan
    };
    // Kept when the check-in was still ahead, read a year later: as if read fresh then.
    let kept_then_read_later = settled_at(&settled_at(&read, now), later);
    assert_eq!(kept_then_read_later, settled_at(&read, later));
    assert_ne!(settled_at(&read, now), settled_at(&read, later));
    assert!(settled_at(&read, now).goals[0].checkins[0].future_dated);
    assert!(!kept_then_read_later.goals[0].checkins[0].future_dated);
}

#[test]
fn a_read_while_another_process_writes_reads_the_document_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, _) = stored_plan(dir.path());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM plan_read_models", []).unwrap();
    // Another process holds SQLite's write lock (a sync writing a large plan).
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let reader = Alliance::open(&path).unwrap();
    let (read, from) = reader.plan_traced(plan).unwrap();
    assert_eq!(from, ReadFrom::Document);
    assert_eq!(read.title, "Plan");
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(reader.kept_read_model(plan).unwrap(), None);
}

/// A damaged size column (here the chunks' byte count) is a hint that must not abort the process
/// when the document is loaded: it once reserved that many bytes up front.
#[test]
fn a_damaged_chunk_count_does_not_stop_a_plan_from_loading() {
    let dir = tempfile::tempdir().unwrap();
    let (path, plan, _) = stored_plan(dir.path());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE documents SET chunk_bytes = ?1", [i64::MAX])
        .unwrap();
    drop(conn);
    let reopened = Alliance::open(&path).unwrap();
    let read = reopened.plan_from_document(plan).unwrap();
    assert_eq!(read.title, "Plan");
    // The count as this platform can hold it: all of it on 64 bits, saturated on 32.
    assert_eq!(
        reopened.document_sizes(plan).unwrap().chunk_bytes,
        usize::try_from(i64::MAX).unwrap_or(usize::MAX)
    );
}
