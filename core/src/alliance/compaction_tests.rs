//! Compaction off the edit path: an edit past the threshold only appends, `compact_due` merges
//! the chunks later with nothing lost, the hard cap still compacts inline, and a compaction by
//! one connection keeps what another connection on the same file appends meanwhile.

use super::compaction::Policy;
use super::tests::world_with;
use super::*;

fn check_in(store: &Alliance, plan: PlanId, goal: GoalId, n: usize) {
    store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                note: format!("slept well, night {n}"),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
}

fn sorted_heads(store: &Alliance, plan: PlanId) -> Option<Vec<ChangeHash>> {
    let mut heads = store.plan_heads(&[plan]).unwrap().remove(0).1?;
    heads.sort();
    Some(heads)
}

/// Check-ins until the stored chunks outgrow half the snapshot; returns how many were made.
fn edit_until_due(store: &Alliance, plan: PlanId, goal: GoalId, from: usize) -> usize {
    for n in from..from + 400 {
        check_in(store, plan, goal, n);
        let sizes = store.document_sizes(plan).unwrap();
        if Policy::of(&sizes) == Policy::Due {
            return n + 1;
        }
    }
    panic!("400 check-ins never left the chunks larger than half the snapshot");
}

#[test]
fn an_edit_past_the_threshold_only_appends_and_compact_due_merges_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = world_with(Alliance::open(&path).unwrap());
    let store = &p.counselor;
    let made = edit_until_due(store, p.plan, p.goal, 0);
    // Past the threshold and still under the cap: the next edit appends one more chunk.
    let before = store.document_sizes(p.plan).unwrap();
    check_in(store, p.plan, p.goal, made);
    let after = store.document_sizes(p.plan).unwrap();
    assert_eq!(after.chunk_count, before.chunk_count + 1, "{after:?}");
    assert_eq!(Policy::of(&after), Policy::Due, "{after:?}");

    let plan_before = store.plan(p.plan).unwrap();
    let heads_before = sorted_heads(store, p.plan);
    assert_eq!(plan_before.goals[0].checkins.len(), made + 1);

    assert_eq!(store.compact_due(10).unwrap(), 1);
    let compacted = store.document_sizes(p.plan).unwrap();
    assert_eq!(compacted.chunk_count, 0, "{compacted:?}");
    assert_eq!(compacted.chunk_bytes, 0);
    assert!(compacted.snapshot_len > before.snapshot_len);
    // Nothing left to do.
    assert_eq!(store.compact_due(10).unwrap(), 0);

    assert_eq!(store.plan(p.plan).unwrap(), plan_before);
    assert_eq!(store.plan_from_document(p.plan).unwrap(), plan_before);
    assert_eq!(sorted_heads(store, p.plan), heads_before);
    let fresh = Alliance::open(&path).unwrap();
    assert_eq!(fresh.plan(p.plan).unwrap(), plan_before);
    assert_eq!(fresh.plan_from_document(p.plan).unwrap(), plan_before);
    assert_eq!(sorted_heads(&fresh, p.plan), heads_before);
    // And edits go on after it.
    check_in(store, p.plan, p.goal, made + 1);
    assert_eq!(
        fresh.plan(p.plan).unwrap().goals[0].checkins.len(),
        made + 2
    );
}

#[test]
fn a_store_nobody_compacts_still_compacts_inline_past_the_cap() {
    let p = world_with(Alliance::open_in_memory().unwrap());
    let store = &p.counselor;
    let mut largest = 0.0_f64;
    let mut inline = false;
    for n in 0..2_000 {
        check_in(store, p.plan, p.goal, n);
        let sizes = store.document_sizes(p.plan).unwrap();
        // After every write the chunks stay under the cap.
        assert_ne!(Policy::of(&sizes), Policy::Inline, "{n}: {sizes:?}");
        if sizes.chunk_count == 0 {
            inline = true;
            break;
        }
        largest = largest.max(sizes.chunk_bytes as f64 / sizes.snapshot_len as f64);
    }
    assert!(inline, "2,000 check-ins never compacted inline");
    // Compacted past the cap, not at the threshold.
    assert!(
        largest > 3.0,
        "the chunks reached only {largest:.2}× the snapshot"
    );
    assert!(!store.plan(p.plan).unwrap().goals[0].checkins.is_empty());
}

/// Another connection on the same file appends a check-in after this one saved the plan for
/// compaction and before it stores the snapshot: the compaction steps aside (nothing of the
/// other's chunk is dropped) and the next call compacts everything.
#[test]
fn compaction_keeps_what_another_connection_appends_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = world_with(Alliance::open(&path).unwrap());
    let first = &p.counselor;
    let second = Alliance::open(&path).unwrap();
    let made = edit_until_due(first, p.plan, p.goal, 0);

    let compacted = first
        .compact_due_with(10, &|| check_in(&second, p.plan, p.goal, made))
        .unwrap();
    assert_eq!(
        compacted, 0,
        "a compaction stored over another connection's chunk"
    );
    let plan = first.plan(p.plan).unwrap();
    assert_eq!(plan.goals[0].checkins.len(), made + 1);
    assert_eq!(second.plan(p.plan).unwrap(), plan);

    // Retried, it merges every chunk, the other connection's included.
    assert_eq!(first.compact_due(10).unwrap(), 1);
    assert_eq!(first.document_sizes(p.plan).unwrap().chunk_count, 0);
    let fresh = Alliance::open(&path).unwrap();
    assert_eq!(fresh.plan_from_document(p.plan).unwrap(), plan);
    assert_eq!(
        fresh.plan(p.plan).unwrap().goals[0].checkins.len(),
        made + 1
    );
    assert_eq!(sorted_heads(&fresh, p.plan), sorted_heads(&second, p.plan));

    // The other connection's next edit builds on the compacted file, and both agree.
    check_in(&second, p.plan, p.goal, made + 1);
    check_in(first, p.plan, p.goal, made + 2);
    let fresh = Alliance::open(&path).unwrap();
    assert_eq!(
        fresh.plan_from_document(p.plan).unwrap().goals[0]
            .checkins
            .len(),
        made + 3
    );
    assert_eq!(first.plan(p.plan).unwrap(), second.plan(p.plan).unwrap());
}

/// Two connections on one file, one compacting in a loop while the other edits: every
/// check-in of both survives, and the stored document loads whole.
#[test]
fn compacting_while_another_connection_edits_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = world_with(Alliance::open(&path).unwrap());
    let plan = p.plan;
    let goal = p.goal;
    let editor = Alliance::open(&path).unwrap();
    let compactor = Arc::new(Alliance::open(&path).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let looping = {
        let (compactor, done) = (Arc::clone(&compactor), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut compacted = 0;
            while !done.load(Ordering::Relaxed) {
                // A second search: the plans the editor left due are in the file, not in
                // this connection's memory.
                compacted += compactor.compact_due(4).unwrap();
                compactor.inner.lock().due.forget_search();
            }
            compacted
        })
    };
    let edits = 300;
    for n in 0..edits {
        let store = if n % 2 == 0 { &editor } else { &p.counselor };
        check_in(store, plan, goal, n);
        if n % 20 == 19 {
            // A pause now and then, so the loop also finds the plan still and compacts it.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    done.store(true, Ordering::Relaxed);
    let mut compacted = looping.join().unwrap();
    compactor.inner.lock().due.forget_search();
    compacted += compactor.compact_due(4).unwrap();
    assert!(compacted > 0, "the loop never compacted");
    let fresh = Alliance::open(&path).unwrap();
    let stored = fresh.plan_from_document(plan).unwrap();
    assert_eq!(stored.goals[0].checkins.len(), edits);
    assert_eq!(fresh.plan(plan).unwrap(), stored);
    assert_eq!(editor.plan(plan).unwrap(), stored);
}

/// Compaction is upkeep, not an edit: `compact_due` (run when the app is idle) leaves the
/// time the catalog lists for the plan as the last write left it.
#[test]
fn compact_due_leaves_the_catalog_time_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = world_with(Alliance::open(&path).unwrap());
    let store = &p.counselor;
    edit_until_due(store, p.plan, p.goal, 0);
    // The last edit's time, set to a known one (no wall clock in the assertion).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE documents SET updated_at = 1234", [])
        .unwrap();
    let listed = |store: &Alliance| {
        store
            .list_plans()
            .unwrap()
            .into_iter()
            .find(|s| s.plan_id == p.plan)
            .unwrap()
            .updated_at
    };
    let fresh = Alliance::open(&path).unwrap();
    assert_eq!(listed(&fresh), 1234);
    assert_eq!(fresh.compact_due(10).unwrap(), 1);
    assert_eq!(fresh.document_sizes(p.plan).unwrap().chunk_count, 0);
    assert_eq!(
        listed(&fresh),
        1234,
        "compaction moved the plan's listed time"
    );
}

/// A store whose write lock another connection holds past the busy timeout leaves its plans
/// due and ends the call without an error: an app calls it after every sync, and a busy store
/// is no failure of that sync (seen under emulation, where editors kept the lock for seconds).
#[test]
fn a_busy_store_keeps_its_plans_due_and_reports_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let p = world_with(Alliance::open(&path).unwrap());
    let store = &p.counselor;
    edit_until_due(store, p.plan, p.goal, 0);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert_eq!(store.compact_due(10).unwrap(), 0);
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(store.compact_due(10).unwrap(), 1, "the plan stayed due");
    assert_eq!(store.document_sizes(p.plan).unwrap().chunk_count, 0);
}

/// A small plan's chunks past four times its snapshot, but under the floor, wait for
/// `compact_due`: a new plan edited twenty times in a row compacted inline in the middle of
/// the burst, and again after it. Past the floor, the factor caps as before; past 1,000
/// chunks, whatever their size.
#[test]
fn a_small_plan_past_the_factor_but_under_the_floor_waits_for_compact_due() {
    let sizes = |snapshot_len, chunk_bytes, chunk_count| crate::store::DocumentSizes {
        snapshot_len,
        chunk_bytes,
        chunk_count,
    };
    assert_eq!(Policy::of(&sizes(2_000, 12_000, 40)), Policy::Due);
    assert_eq!(Policy::of(&sizes(2_000, 40_000, 40)), Policy::Inline);
    assert_eq!(Policy::of(&sizes(20_000, 81_000, 40)), Policy::Inline);
    assert_eq!(Policy::of(&sizes(20_000, 79_000, 40)), Policy::Due);
    assert_eq!(Policy::of(&sizes(2_000, 12_000, 1_001)), Policy::Inline);
    assert_eq!(Policy::of(&sizes(2_000, 900, 3)), Policy::Keep);

    // Through the API: twenty check-ins on a new plan append, and leave it due.
    let p = world_with(Alliance::open_in_memory().unwrap());
    let before = p.counselor.document_sizes(p.plan).unwrap();
    for n in 0..20 {
        check_in(&p.counselor, p.plan, p.goal, n);
    }
    let after = p.counselor.document_sizes(p.plan).unwrap();
    assert!(
        after.chunk_bytes > 4 * after.snapshot_len,
        "past the factor: {after:?}"
    );
    assert_eq!(after.chunk_count, before.chunk_count + 20, "{after:?}");
    assert_eq!(Policy::of(&after), Policy::Due);
    assert_eq!(p.counselor.compact_due(10).unwrap(), 1);
    assert_eq!(p.counselor.document_sizes(p.plan).unwrap().chunk_count, 0);
}

/// A small plan's snapshot is stored undeflated (deflating it cost zlib's set-up per column,
/// more than the bytes it saved); one past `DEFLATE_FROM` undeflated is deflated as before.
/// Both load to the same plan.
#[test]
fn a_small_snapshot_is_stored_undeflated_and_a_large_one_deflated() {
    use crate::plan::DEFLATE_FROM;
    let undeflated = |doc: &Automerge| {
        doc.save_with_options(automerge::SaveOptions {
            deflate: false,
            retain_orphans: true,
        })
    };
    let p = world_with(Alliance::open_in_memory().unwrap());
    let store = &p.counselor;
    let made = edit_until_due(store, p.plan, p.goal, 0);
    assert_eq!(store.compact_due(10).unwrap(), 1);
    let small = super::tests::document(store, p.plan);
    let sizes = store.document_sizes(p.plan).unwrap();
    assert_eq!(sizes.snapshot_len, undeflated(&small).len(), "{sizes:?}");
    assert!(sizes.snapshot_len > small.save().len(), "{sizes:?}");

    let mut n = made;
    while undeflated(&super::tests::document(store, p.plan)).len() <= DEFLATE_FROM {
        check_in(store, p.plan, p.goal, n);
        n += 1;
        assert!(
            n < 3_000,
            "3,000 check-ins stayed under {DEFLATE_FROM} bytes"
        );
    }
    n = edit_until_due(store, p.plan, p.goal, n);
    store.compact_due(10).unwrap();
    let large = super::tests::document(store, p.plan);
    let sizes = store.document_sizes(p.plan).unwrap();
    assert_eq!(sizes.chunk_count, 0, "{sizes:?}");
    assert_eq!(sizes.snapshot_len, large.save().len(), "{sizes:?}");
    assert!(sizes.snapshot_len < undeflated(&large).len(), "{sizes:?}");
    let stored = store.saved_document(p.plan).unwrap();
    assert_eq!(
        Automerge::load(&stored).unwrap().get_heads(),
        large.get_heads()
    );
    assert_eq!(store.plan(p.plan).unwrap().goals[0].checkins.len(), n);
}
