//! Multi-device scenarios: offline edits on several devices merge without loss.

use alliance_core::{
    AgreementState, Alliance, Error, GasEdit, GoalEdit, GoalStatus, NewCheckIn, NewObjective,
};
use alliance_tests::{client, counselor, enroll, plan_with_client};

#[test]
fn concurrent_word_edits_merge_character_by_character() {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let goal = sam.store.propose_goal(plan, "I want to sleep").unwrap();
    dana.sync(&sam);
    // Offline: the client adds a time, the counselor (while proposed) adds a reason.
    let words = |text: &str| GoalEdit {
        client_words: Some(text.into()),
        ..Default::default()
    };
    sam.store
        .edit_goal(plan, goal, &words("I want to sleep before midnight"))
        .unwrap();
    dana.store
        .edit_goal(plan, goal, &words("I really want to sleep"))
        .unwrap();
    dana.sync(&sam);
    let on_phone = sam.store.plan(plan).unwrap();
    let on_laptop = dana.store.plan(plan).unwrap();
    assert_eq!(on_phone, on_laptop);
    assert_eq!(
        on_phone.goal(goal).unwrap().client_words,
        "I really want to sleep before midnight"
    );
    assert!(on_phone.goal(goal).unwrap().conflicts.is_empty());
}

#[test]
fn concurrent_status_writes_are_reported_as_a_conflict_with_their_authors() {
    let (phone, sam) = (counselor(), client());
    let laptop = phone.another_of();
    let plan = plan_with_client(&phone, &sam);
    enroll(&phone, plan, &laptop);
    phone.sync(&laptop);
    let goal = sam.store.propose_goal(plan, "Walk every day").unwrap();
    sam.sync(&phone);
    phone.sync(&laptop);
    let status = |s| GoalEdit {
        status: Some(s),
        ..Default::default()
    };
    phone
        .store
        .edit_goal(plan, goal, &status(GoalStatus::Active))
        .unwrap();
    laptop
        .store
        .edit_goal(plan, goal, &status(GoalStatus::OnHold))
        .unwrap();
    phone.sync(&laptop);
    phone.sync(&sam);
    let read = sam.store.plan(plan).unwrap();
    assert_eq!(read, phone.store.plan(plan).unwrap());
    assert_eq!(read, laptop.store.plan(plan).unwrap());
    let g = read.goal(goal).unwrap();
    let conflict = g
        .conflicts
        .iter()
        .find(|c| c.field == "status")
        .expect("a status conflict");
    let mut values: Vec<_> = conflict
        .values
        .iter()
        .map(|v| v.value.as_str().unwrap().to_owned())
        .collect();
    values.sort();
    assert_eq!(values, vec!["active", "on_hold"]);
    assert!(conflict.values.iter().all(|v| v.by == "Dana"));
    let devices: Vec<_> = conflict
        .values
        .iter()
        .map(|v| v.device_id.clone())
        .collect();
    assert!(devices.contains(&phone.me.device_id.to_string()));
    assert!(devices.contains(&laptop.me.device_id.to_string()));
    // Settling it: one new write replaces both values everywhere.
    phone
        .store
        .edit_goal(plan, goal, &status(GoalStatus::Active))
        .unwrap();
    phone.sync(&laptop);
    let settled = laptop.store.plan(plan).unwrap();
    assert!(settled.goal(goal).unwrap().conflicts.is_empty());
    assert_eq!(settled.goal(goal).unwrap().status, GoalStatus::Active);
}

#[test]
fn three_devices_converge_in_any_order() {
    let (phone, sam) = (counselor(), client());
    let laptop = phone.another_of();
    let plan = plan_with_client(&phone, &sam);
    enroll(&phone, plan, &laptop);
    phone.sync(&laptop);
    let goal = sam
        .store
        .propose_goal(plan, "Call my sister weekly")
        .unwrap();
    sam.sync(&phone);
    phone.sync(&laptop);
    laptop
        .store
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                clinical_statement: Some("Rebuild family support".into()),
                ..Default::default()
            },
        )
        .unwrap();
    phone
        .store
        .add_objective(
            plan,
            goal,
            &NewObjective {
                text: "One call a week".into(),
                ..Default::default()
            },
        )
        .unwrap();
    sam.store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(6),
                ..Default::default()
            },
        )
        .unwrap();
    sam.store
        .set_gas(
            plan,
            goal,
            &GasEdit::Level {
                level: 1,
                text: "Two calls".into(),
            },
        )
        .unwrap();
    // Sync in a ring: laptop–sam, then sam–phone, then phone–laptop.
    laptop.sync(&sam);
    sam.sync(&phone);
    phone.sync(&laptop);
    let a = phone.store.plan(plan).unwrap();
    assert_eq!(a, laptop.store.plan(plan).unwrap());
    assert_eq!(a, sam.store.plan(plan).unwrap());
    let g = a.goal(goal).unwrap();
    assert_eq!(g.clinical_statement, "Rebuild family support");
    assert_eq!(g.objectives.len(), 1);
    assert_eq!(g.checkins.len(), 1);
    assert_eq!(g.gas.levels.len(), 1);
}

#[test]
fn gas_t_score_of_a_plan_matches_hand_computation() {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let a = sam.store.propose_goal(plan, "Goal A").unwrap();
    let b = sam.store.propose_goal(plan, "Goal B").unwrap();
    let c = sam.store.propose_goal(plan, "Goal C").unwrap();
    assert_eq!(sam.store.plan(plan).unwrap().gas_t_score, None);
    let level = |g, l| {
        sam.store
            .check_in(
                plan,
                g,
                &NewCheckIn {
                    gas_level: Some(l),
                    ..Default::default()
                },
            )
            .unwrap()
    };
    level(a, 1);
    level(b, 0);
    level(c, 1);
    // Unweighted, x = (1, 0, 1): T = 50 + 10·2/√(0.7·3 + 0.3·9) = 50 + 20/√4.8.
    let t = sam.store.plan(plan).unwrap().gas_t_score.unwrap();
    assert!((t - (50.0 + 20.0 / 4.8f64.sqrt())).abs() < 1e-9, "{t}");
    // Weighted: w = (3, 1, 1), x = (2, -1, 1) after a later rating of A and B.
    dana.sync(&sam);
    dana.store.set_gas(plan, a, &GasEdit::Weight(3.0)).unwrap();
    dana.sync(&sam);
    level(a, 2);
    level(b, -1);
    // Σwx = 6 - 1 + 1 = 6; Σw² = 11; (Σw)² = 25; T = 50 + 60/√(7.7 + 7.5) = 50 + 60/√15.2.
    let t = sam.store.plan(plan).unwrap().gas_t_score.unwrap();
    assert!((t - (50.0 + 60.0 / 15.2f64.sqrt())).abs() < 1e-9, "{t}");
}

#[test]
fn reopening_after_compaction_gives_the_same_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.db");
    let (plan, goal, before) = {
        let store = Alliance::open(&path).unwrap();
        let me = store
            .init("Dana", alliance_core::Role::Counselor, None)
            .unwrap();
        let plan = store
            .create_plan(&alliance_core::NewPlan {
                title: "Plan".into(),
                client_name: "Sam".into(),
                ..Default::default()
            })
            .unwrap();
        let goal = store.propose_goal(plan, "Run a 5k").unwrap();
        let mut compacted = false;
        for day in 0..60 {
            store
                .check_in(
                    plan,
                    goal,
                    &NewCheckIn {
                        mood: Some((day % 11) as u8),
                        local_date: Some(format!("2026-{:02}-{:02}", 1 + day / 28, 1 + day % 28)),
                        ..Default::default()
                    },
                )
                .unwrap();
            // What an app does when idle: compact what its edits left due.
            store.compact_due(8).unwrap();
            let sizes = store.document_sizes(plan).unwrap();
            assert!(
                sizes.chunk_bytes <= sizes.snapshot_len,
                "chunks outgrew the snapshot: {sizes:?}"
            );
            compacted |= sizes.chunk_count == 0;
        }
        assert!(compacted, "60 check-ins never triggered a compaction");
        assert_eq!(me.member_id, store.identity().unwrap().member_id);
        (plan, goal, store.plan(plan).unwrap())
    };
    let reopened = Alliance::open(&path).unwrap();
    assert_eq!(reopened.plan(plan).unwrap(), before);
    assert_eq!(
        reopened
            .plan(plan)
            .unwrap()
            .goal(goal)
            .unwrap()
            .checkins
            .len(),
        60
    );
    // Still writable after reopening, by the same device.
    reopened
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        reopened.history(plan).unwrap().last().unwrap().author,
        "Dana"
    );
}

#[test]
fn a_database_from_a_future_schema_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(Alliance::open(&path).unwrap());
    {
        // A later version of Alliance wrote this file.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let bytes_before = std::fs::read(&path).unwrap();
    match Alliance::open(&path) {
        Err(Error::SchemaTooNew { found, supported }) => assert!(found > supported),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a future database was opened"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes_before);
}

#[test]
fn agreement_survives_sync_in_both_directions() {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let goal = sam.store.propose_goal(plan, "Cook at home").unwrap();
    dana.sync(&sam);
    sam.store.agree(plan, goal).unwrap();
    dana.store.agree(plan, goal).unwrap();
    dana.sync(&sam);
    assert_eq!(
        dana.store
            .plan(plan)
            .unwrap()
            .goal(goal)
            .unwrap()
            .agreement
            .state,
        AgreementState::Agreed
    );
    sam.store
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                client_words: Some("Cook at home thrice weekly".into()),
                ..Default::default()
            },
        )
        .unwrap();
    dana.sync(&sam);
    assert_eq!(
        dana.store
            .plan(plan)
            .unwrap()
            .goal(goal)
            .unwrap()
            .agreement
            .state,
        AgreementState::Stale
    );
}
