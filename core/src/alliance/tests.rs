//! Unit tests of the API on in-memory stores: every operation and every local refusal.

use super::*;
use crate::model::{AgreementState, GoalStatus};

pub(super) struct World {
    pub(super) counselor: Alliance,
    pub(super) client: Alliance,
    pub(super) plan: PlanId,
    pub(super) goal: GoalId,
}

fn world() -> World {
    world_with(Alliance::open_in_memory().unwrap())
}

/// [`world`] with the counselor's store given (a file, say).
pub(super) fn world_with(counselor: Alliance) -> World {
    world_of(counselor, Alliance::open_in_memory().unwrap())
}

/// [`world`] with both stores given.
fn world_of(counselor: Alliance, client: Alliance) -> World {
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    crate::local_sync::sync_stores(&counselor, &client).unwrap();
    let goal = client.propose_goal(plan, "Sleep before midnight").unwrap();
    crate::local_sync::sync_stores(&counselor, &client).unwrap();
    World {
        counselor,
        client,
        plan,
        goal,
    }
}

/// The plan's document as `store` holds it in memory.
pub(super) fn document(store: &Alliance, plan: PlanId) -> Automerge {
    store
        .inner
        .lock()
        .open(plan)
        .unwrap()
        .doc
        .automerge()
        .clone()
}

fn heads(store: &Alliance, plan: PlanId) -> Vec<ChangeHash> {
    store.inner.lock().open(plan).unwrap().doc.heads()
}

fn assert_refused<T: std::fmt::Debug>(
    store: &Alliance,
    plan: PlanId,
    op: impl FnOnce() -> Result<T>,
) {
    let before = heads(store, plan);
    let sizes_before = store.document_sizes(plan).unwrap();
    let plan_before = store.plan(plan).unwrap();
    match op() {
        Err(Error::NotAllowed { .. }) => {}
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    assert_eq!(
        heads(store, plan),
        before,
        "a refused edit changed the document"
    );
    assert_eq!(
        store.document_sizes(plan).unwrap(),
        sizes_before,
        "a refused edit was stored"
    );
    assert_eq!(store.plan(plan).unwrap(), plan_before);
}

#[test]
fn every_operation_reads_back() {
    let w = world();
    let (c, plan, goal) = (&w.counselor, w.plan, w.goal);
    c.set_title(plan, "Sam's plan").unwrap();
    c.set_review_on(plan, "2027-02-23").unwrap();
    c.edit_goal(
        plan,
        goal,
        &GoalEdit {
            clinical_statement: Some("Client will keep a sleep schedule".into()),
            life_area: Some("health".into()),
            status: Some(GoalStatus::Active),
            ..Default::default()
        },
    )
    .unwrap();
    let objective = c
        .add_objective(
            plan,
            goal,
            &NewObjective {
                text: "Lights out by 23:30".into(),
                measure: Some("nights".into()),
                target: Some(5.0),
                unit: Some("nights a week".into()),
                due_on: Some("2027-01-31".into()),
            },
        )
        .unwrap();
    let intervention = c
        .add_intervention(
            plan,
            goal,
            &NewIntervention {
                text: "Sleep hygiene coaching".into(),
                owner: None,
                frequency: Some("weekly".into()),
            },
        )
        .unwrap();
    c.set_gas(
        plan,
        goal,
        &GasEdit::Level {
            level: -2,
            text: "No nights".into(),
        },
    )
    .unwrap();
    c.set_gas(plan, goal, &GasEdit::Weight(2.0)).unwrap();
    c.set_gas(plan, goal, &GasEdit::Baseline(-1)).unwrap();
    let dana = c.identity().unwrap().member_id;
    let checkin = c
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                gas_level: Some(1),
                value: Some(4.0),
                mood: Some(7),
                craving: Some(0),
                note: "session note".into(),
                local_date: Some("2026-11-20".into()),
                tz_offset_min: Some(-300),
                corrects: None,
            },
        )
        .unwrap();
    c.agree(plan, goal).unwrap();

    let read = c.plan(plan).unwrap();
    assert_eq!(read.title, "Sam's plan");
    assert_eq!(read.review_on.as_deref(), Some("2027-02-23"));
    let g = read.goal(goal).unwrap();
    assert_eq!(g.client_words, "Sleep before midnight");
    assert_eq!(g.clinical_statement, "Client will keep a sleep schedule");
    assert_eq!(g.life_area, "health");
    assert_eq!(g.status, GoalStatus::Active);
    assert_eq!(g.objectives.len(), 1);
    assert_eq!(g.objectives[0].objective_id, objective);
    assert_eq!(g.objectives[0].target, Some(5.0));
    assert_eq!(g.objectives[0].due_on.as_deref(), Some("2027-01-31"));
    assert_eq!(g.interventions[0].intervention_id, intervention);
    assert_eq!(g.interventions[0].frequency.as_deref(), Some("weekly"));
    assert_eq!(
        g.gas.levels.get("-2").map(String::as_str),
        Some("No nights")
    );
    assert_eq!(g.gas.weight, 2.0);
    assert_eq!(g.gas.baseline, Some(-1));
    assert_eq!(g.checkins.len(), 1);
    let entry = &g.checkins[0];
    assert_eq!(entry.checkin_id, checkin);
    assert_eq!(entry.by, dana);
    assert_eq!(entry.local_date, "2026-11-20");
    assert_eq!(entry.tz_offset_min, -300);
    assert_eq!(
        (entry.gas_level, entry.mood, entry.craving),
        (Some(1), Some(7), Some(0))
    );
    assert_eq!(g.latest_gas_level, Some(1));
    assert_eq!(g.agreement.agreed_by, vec![dana]);
    assert_eq!(g.agreement.state, AgreementState::Pending);
    // One goal at +1 with any weight: T = 50 + 10·w / √(w²) = 60.
    assert!((read.gas_t_score.unwrap() - 60.0).abs() < 1e-9);
    let history = c.history(plan).unwrap();
    assert!(history
        .iter()
        .any(|h| h.description == "proposed a goal" && h.author == "Sam"));
    assert!(history
        .iter()
        .any(|h| h.description == "checked in" && h.author == "Dana"));
    let listed = c.list_plans().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].title, "Sam's plan");
    assert_eq!(listed[0].client_name.as_deref(), Some("Sam"));
    assert_eq!(listed[0].goal_count, 1);
}

#[test]
fn the_client_is_refused_what_only_a_counselor_writes() {
    let w = world();
    let (s, plan, goal) = (&w.client, w.plan, w.goal);
    let only = |edit: GoalEdit| move || s.edit_goal(plan, goal, &edit);
    assert_refused(
        s,
        plan,
        only(GoalEdit {
            clinical_statement: Some("x".into()),
            ..Default::default()
        }),
    );
    assert_refused(
        s,
        plan,
        only(GoalEdit {
            status: Some(GoalStatus::Active),
            ..Default::default()
        }),
    );
    assert_refused(
        s,
        plan,
        only(GoalEdit {
            life_area: Some("work".into()),
            ..Default::default()
        }),
    );
    assert_refused(s, plan, || {
        s.add_objective(
            plan,
            goal,
            &NewObjective {
                text: "x".into(),
                ..Default::default()
            },
        )
    });
    assert_refused(s, plan, || {
        s.add_intervention(
            plan,
            goal,
            &NewIntervention {
                text: "x".into(),
                ..Default::default()
            },
        )
    });
    assert_refused(s, plan, || s.set_gas(plan, goal, &GasEdit::Weight(2.0)));
    assert_refused(s, plan, || s.set_gas(plan, goal, &GasEdit::Baseline(0)));
    assert_refused(s, plan, || s.set_title(plan, "Mine"));
    assert_refused(s, plan, || s.set_review_on(plan, "2027-01-01"));
    let dana = w.counselor.identity().unwrap().member_id;
    assert_refused(s, plan, || {
        s.enroll_device(
            plan,
            &NewDevice {
                device: DeviceId::new(),
                member: dana,
                new_member: None,
                label: "tablet".into(),
            },
        )
    });
    assert_refused(s, plan, || {
        s.enroll_device(
            plan,
            &NewDevice {
                device: DeviceId::new(),
                member: MemberId::new(),
                new_member: Some(("Friend".into(), Role::Client)),
                label: "phone".into(),
            },
        )
    });
    // What the client may write still works.
    let me = s.identity().unwrap().member_id;
    s.enroll_device(
        plan,
        &NewDevice {
            device: DeviceId::new(),
            member: me,
            new_member: None,
            label: "tablet".into(),
        },
    )
    .unwrap();
    s.set_gas(
        plan,
        goal,
        &GasEdit::Level {
            level: 2,
            text: "Every night".into(),
        },
    )
    .unwrap();
}

#[test]
fn the_counselor_suggests_words_only_while_a_goal_is_proposed() {
    let w = world();
    let (c, plan, goal) = (&w.counselor, w.plan, w.goal);
    let words = |text: &str| GoalEdit {
        client_words: Some(text.into()),
        ..Default::default()
    };
    c.edit_goal(plan, goal, &words("Sleep before midnight most nights"))
        .unwrap();
    c.edit_goal(
        plan,
        goal,
        &GoalEdit {
            status: Some(GoalStatus::Active),
            ..Default::default()
        },
    )
    .unwrap();
    assert_refused(c, plan, || c.edit_goal(plan, goal, &words("Sleep more")));
    // The client still may.
    crate::local_sync::sync_stores(c, &w.client).unwrap();
    w.client
        .edit_goal(plan, goal, &words("Sleep more"))
        .unwrap();
}

#[test]
fn nobody_writes_another_members_agreement_or_check_ins() {
    let w = world();
    let plan = w.counselor.plan(w.plan).unwrap();
    let dana = w.counselor.identity().unwrap().member_id;
    let sam = w.client.identity().unwrap().member_id;
    assert!(matches!(
        rules::check(&plan, dana, Edit::Agree { member: sam }),
        Err(Error::NotAllowed { .. })
    ));
    assert!(matches!(
        rules::check(
            &plan,
            sam,
            Edit::CheckIn {
                by: dana,
                corrects: None
            }
        ),
        Err(Error::NotAllowed { .. })
    ));
    assert!(matches!(
        rules::check(&plan, MemberId::new(), Edit::ProposeGoal),
        Err(Error::NotAllowed { .. })
    ));
    // Correcting someone else's check-in through the API is refused.
    let theirs = w
        .client
        .check_in(
            w.plan,
            w.goal,
            &NewCheckIn {
                mood: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    crate::local_sync::sync_stores(&w.counselor, &w.client).unwrap();
    assert_refused(&w.counselor, w.plan, || {
        w.counselor.check_in(
            w.plan,
            w.goal,
            &NewCheckIn {
                mood: Some(1),
                corrects: Some(theirs),
                ..Default::default()
            },
        )
    });
}

#[test]
fn a_device_not_enrolled_writes_nothing() {
    let w = world();
    // Another device of the same counselor, not enrolled, that got the plan somehow.
    let laptop = Alliance::open_in_memory().unwrap();
    let dana = w.counselor.identity().unwrap();
    laptop
        .init("Dana", Role::Counselor, Some(dana.member_id))
        .unwrap();
    // Nothing is shared with a device that is not enrolled.
    let report = crate::local_sync::sync_stores(&w.counselor, &laptop).unwrap();
    assert!(report.plans.is_empty());
    assert!(matches!(laptop.plan(w.plan), Err(Error::NotFound { .. })));
    // Once it holds a copy (e.g. enrolled, then copied) but is not in `devices`, it is refused.
    let msg = w
        .counselor
        .generate_sync_message(w.plan, "laptop")
        .unwrap()
        .unwrap();
    laptop.receive_sync_message(w.plan, "dana", &msg).unwrap();
    let reply = laptop
        .generate_sync_message(w.plan, "dana")
        .unwrap()
        .unwrap();
    w.counselor
        .receive_sync_message(w.plan, "laptop", &reply)
        .unwrap();
    let msg = w
        .counselor
        .generate_sync_message(w.plan, "laptop")
        .unwrap()
        .unwrap();
    laptop.receive_sync_message(w.plan, "dana", &msg).unwrap();
    assert!(laptop.has_plan(w.plan).unwrap());
    assert_refused(&laptop, w.plan, || laptop.propose_goal(w.plan, "anything"));
}

#[test]
fn agreement_goes_agreed_then_stale_then_agreed_again() {
    let w = world();
    let (c, s, plan, goal) = (&w.counselor, &w.client, w.plan, w.goal);
    let state = |store: &Alliance| {
        store
            .plan(plan)
            .unwrap()
            .goal(goal)
            .unwrap()
            .agreement
            .clone()
    };
    assert_eq!(state(c).state, AgreementState::Pending);
    assert_eq!(state(c).waiting_for.len(), 2);
    c.agree(plan, goal).unwrap();
    s.agree(plan, goal).unwrap();
    crate::local_sync::sync_stores(c, s).unwrap();
    assert_eq!(state(c).state, AgreementState::Agreed);
    assert_eq!(state(s).state, AgreementState::Agreed);
    assert!(state(c).waiting_for.is_empty());
    // Status and check-ins are not agreed content.
    c.edit_goal(
        plan,
        goal,
        &GoalEdit {
            status: Some(GoalStatus::Active),
            ..Default::default()
        },
    )
    .unwrap();
    s.check_in(
        plan,
        goal,
        &NewCheckIn {
            gas_level: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    crate::local_sync::sync_stores(c, s).unwrap();
    assert_eq!(state(c).state, AgreementState::Agreed);
    // An objective is: the agreement goes stale on both devices.
    c.add_objective(
        plan,
        goal,
        &NewObjective {
            text: "Journal nightly".into(),
            ..Default::default()
        },
    )
    .unwrap();
    crate::local_sync::sync_stores(c, s).unwrap();
    for store in [c, s] {
        let a = state(store);
        assert_eq!(a.state, AgreementState::Stale);
        assert!(a.agreed_by.is_empty());
        assert_eq!(a.waiting_for.len(), 2);
    }
    s.agree(plan, goal).unwrap();
    crate::local_sync::sync_stores(c, s).unwrap();
    let a = state(c);
    assert_eq!(a.state, AgreementState::Stale);
    assert_eq!(a.waiting_for, vec![c.identity().unwrap().member_id]);
    c.agree(plan, goal).unwrap();
    crate::local_sync::sync_stores(c, s).unwrap();
    assert_eq!(state(s).state, AgreementState::Agreed);
}

#[test]
fn corrections_supersede_the_original_and_keep_its_day() {
    let w = world();
    let (s, plan, goal) = (&w.client, w.plan, w.goal);
    let first = s
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                gas_level: Some(2),
                mood: Some(9),
                local_date: Some("2026-11-20".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        s.plan(plan).unwrap().goal(goal).unwrap().latest_gas_level,
        Some(2)
    );
    let fix = s
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                gas_level: Some(-1),
                note: "I tapped the wrong level".into(),
                corrects: Some(first),
                ..Default::default()
            },
        )
        .unwrap();
    let g = s.plan(plan).unwrap().goal(goal).unwrap().clone();
    assert_eq!(
        g.checkins.len(),
        2,
        "a correction is a new entry; nothing is deleted"
    );
    let original = g.checkins.iter().find(|c| c.checkin_id == first).unwrap();
    let correction = g.checkins.iter().find(|c| c.checkin_id == fix).unwrap();
    assert!(original.superseded);
    assert_eq!(original.gas_level, Some(2));
    assert!(!correction.superseded);
    assert_eq!(correction.corrects, Some(first));
    assert_eq!(correction.local_date, "2026-11-20");
    assert_eq!(g.latest_gas_level, Some(-1));
    assert!(matches!(
        s.check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(1),
                corrects: Some(CheckInId::new()),
                ..Default::default()
            }
        ),
        Err(Error::NotFound {
            what: "check-in",
            ..
        })
    ));
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let w = world();
    let (c, plan, goal) = (&w.counselor, w.plan, w.goal);
    let before = heads(c, plan);
    let invalid = |r: Result<()>| assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    invalid(c.propose_goal(plan, "  ").map(|_| ()));
    invalid(c.propose_goal(plan, &"x".repeat(5000)).map(|_| ()));
    invalid(c.set_gas(
        plan,
        goal,
        &GasEdit::Level {
            level: 7,
            text: "x".into(),
        },
    ));
    invalid(c.set_review_on(plan, "2026-13-01"));
    invalid(
        c.add_objective(
            plan,
            goal,
            &NewObjective {
                text: "x".into(),
                due_on: Some("tomorrow".into()),
                ..Default::default()
            },
        )
        .map(|_| ()),
    );
    invalid(
        c.check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(11),
                ..Default::default()
            },
        )
        .map(|_| ()),
    );
    invalid(
        c.edit_goal(
            plan,
            goal,
            &GoalEdit {
                status: Some(GoalStatus::Active),
                ..Default::default()
            },
        )
        .and_then(|_| {
            c.edit_goal(
                plan,
                goal,
                &GoalEdit {
                    status: Some(GoalStatus::Proposed),
                    ..Default::default()
                },
            )
        }),
    );
    let after_status = heads(c, plan);
    assert_ne!(after_status, before, "the valid status change landed");
    assert!(matches!(
        c.plan(PlanId::new()),
        Err(Error::NotFound { what: "plan", .. })
    ));
    assert!(matches!(
        c.edit_goal(
            plan,
            GoalId::new(),
            &GoalEdit {
                clinical_statement: Some("x".into()),
                ..Default::default()
            }
        ),
        Err(Error::NotFound { what: "goal", .. })
    ));
    assert_eq!(heads(c, plan), after_status);
    assert!(matches!(
        c.init("Again", Role::Client, None),
        Err(Error::AlreadyInitialized)
    ));
    let fresh = Alliance::open_in_memory().unwrap();
    assert!(matches!(
        fresh.create_plan(&NewPlan {
            title: "t".into(),
            client_name: "c".into(),
            ..Default::default()
        }),
        Err(Error::NotInitialized)
    ));
    assert!(matches!(
        w.client.create_plan(&NewPlan {
            title: "t".into(),
            client_name: "c".into(),
            ..Default::default()
        }),
        Err(Error::NotAllowed { .. })
    ));
}

#[test]
fn observers_hear_local_and_merged_changes() {
    let w = world();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    w.client
        .add_observer(Arc::new(move |plan: PlanId| sink.lock().push(plan)));
    w.client
        .check_in(
            w.plan,
            w.goal,
            &NewCheckIn {
                mood: Some(4),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(heard.lock().len(), 1);
    w.counselor.set_title(w.plan, "Renamed").unwrap();
    crate::local_sync::sync_stores(&w.counselor, &w.client).unwrap();
    assert!(heard.lock().len() >= 2);
    assert!(heard.lock().iter().all(|p| *p == w.plan));
}

#[test]
fn a_removed_observer_hears_nothing_more() {
    let w = world();
    let kept = Arc::new(Mutex::new(0));
    let removed = Arc::new(Mutex::new(0));
    let (kept_sink, removed_sink) = (kept.clone(), removed.clone());
    w.client
        .add_observer(Arc::new(move |_: PlanId| *kept_sink.lock() += 1));
    let observer: Arc<dyn PlanObserver> = Arc::new(move |_: PlanId| *removed_sink.lock() += 1);
    w.client.add_observer(observer.clone());
    w.client
        .set_gas(
            w.plan,
            w.goal,
            &GasEdit::Level {
                level: 0,
                text: "Most nights".into(),
            },
        )
        .unwrap();
    w.client.remove_observer(&observer);
    w.client
        .set_gas(
            w.plan,
            w.goal,
            &GasEdit::Level {
                level: 1,
                text: "Every night".into(),
            },
        )
        .unwrap();
    assert_eq!((*kept.lock(), *removed.lock()), (2, 1));
}

#[test]
fn the_catalog_follows_goal_edits_and_plan_edits() {
    let w = world();
    let listed = |store: &Alliance| store.list_plans().unwrap().remove(0);
    let before = listed(&w.client);
    assert_eq!((before.title.as_str(), before.goal_count), ("Plan", 1));
    std::thread::sleep(std::time::Duration::from_millis(3));
    // A check-in touches only the catalog's time.
    w.client
        .check_in(
            w.plan,
            w.goal,
            &NewCheckIn {
                mood: Some(5),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
    let after = listed(&w.client);
    assert!(after.updated_at > before.updated_at);
    assert_eq!((after.title.as_str(), after.goal_count), ("Plan", 1));
    // A plan-wide edit still refreshes every field, here and on the peer that receives it.
    w.counselor.set_title(w.plan, "Sleep plan").unwrap();
    w.counselor
        .propose_goal(w.plan, "Walk after lunch")
        .unwrap();
    assert_eq!(listed(&w.counselor).title, "Sleep plan");
    assert_eq!(listed(&w.counselor).goal_count, 2);
    crate::local_sync::sync_stores(&w.counselor, &w.client).unwrap();
    let synced = listed(&w.client);
    assert_eq!(
        (synced.title.as_str(), synced.goal_count),
        ("Sleep plan", 2)
    );
    // Missing catalog row (a store repaired by hand, say): the next goal edit writes it whole.
    w.client
        .inner
        .lock()
        .store
        .write(|tx| Ok(tx.execute("DELETE FROM plans", [])?))
        .unwrap();
    assert!(w.client.list_plans().unwrap().is_empty());
    w.client
        .edit_goal(
            w.plan,
            w.goal,
            &GoalEdit {
                client_words: Some("Sleep before eleven".into()),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    assert_eq!(listed(&w.client).title, "Sleep plan");
}

/// Writes as `store`'s own device without the local role check: what an app with an older
/// rule, or a role changed concurrently, can leave in a store.
fn write_unchecked(
    store: &Alliance,
    plan: PlanId,
    edit: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
) {
    store
        .writing(|inner| {
            let open = inner.open(plan)?;
            open.doc.change("unchecked", clock::now_ms(), edit)?;
            inner.persist(plan, |_| Ok(()))
        })
        .unwrap();
}

fn checkin_notes(store: &Alliance, plan: PlanId, goal: GoalId) -> Vec<String> {
    let mut notes: Vec<String> = store
        .plan(plan)
        .unwrap()
        .goal(goal)
        .unwrap()
        .checkins
        .iter()
        .map(|c| c.note.clone())
        .collect();
    notes.sort();
    notes
}

#[test]
fn an_own_change_a_peer_refuses_is_set_aside_and_later_edits_still_arrive() {
    let w = world();
    // The client's store holds a status change only a counselor may make…
    write_unchecked(&w.client, w.plan, |tx| {
        write::edit_goal(
            tx,
            w.goal,
            &GoalEdit {
                status: Some(GoalStatus::Active),
                ..Default::default()
            },
        )
    });
    // …and, built on it, an honest check-in made before anyone objected.
    let note = |n: &str| NewCheckIn {
        note: n.into(),
        gas_level: Some(1),
        ..Default::default()
    };
    w.client.check_in(w.plan, w.goal, &note("walked")).unwrap();
    let client_key = w.client.identity().unwrap().device_id.to_string();
    let mut refused = Vec::new();
    for _ in 0..8 {
        if let Some(m) = w.client.generate_sync_message(w.plan, "counselor").unwrap() {
            let receipt = w
                .counselor
                .receive_sync_message(w.plan, client_key.as_str(), &m)
                .unwrap();
            refused.extend(receipt.refused);
        }
        if let Some(m) = w
            .counselor
            .generate_sync_message(w.plan, client_key.as_str())
            .unwrap()
        {
            w.client
                .receive_sync_message(w.plan, "counselor", &m)
                .unwrap();
        }
    }
    let rules: Vec<&str> = refused.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "only a counselor writes a goal's status",
            remote::BUILDS_ON_REFUSED
        ],
        "{refused:?}"
    );
    assert!(checkin_notes(&w.counselor, w.plan, w.goal).is_empty());
    // The counselor's device tells the client (as a relay's `refused` notice does).
    let notice: Vec<(String, String)> = refused
        .iter()
        .map(|r| (r.change_hash.clone(), r.rule.clone()))
        .collect();
    let set_aside = w.client.own_changes_refused(w.plan, &notice).unwrap();
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");
    let status_change = set_aside
        .iter()
        .find(|s| s.reason.contains("only a counselor"))
        .unwrap();
    assert_eq!(status_change.replayed_as, None);
    assert!(set_aside
        .iter()
        .any(|s| s.reason == BUILT_ON_REFUSED && s.replayed_as.is_some()));
    assert_eq!(w.client.set_aside_changes(w.plan).unwrap(), {
        let mut stored = set_aside.clone();
        stored.sort_by(|a, b| a.change_hash.cmp(&b.change_hash));
        stored
    });
    // The client's plan no longer claims the refused status; the check-in is still there.
    let goal = w.client.plan(w.plan).unwrap().goal(w.goal).unwrap().clone();
    assert_eq!(goal.status, GoalStatus::Proposed);
    assert_eq!(checkin_notes(&w.client, w.plan, w.goal), ["walked"]);
    // Later edits flow again, and nothing more is refused.
    w.client.check_in(w.plan, w.goal, &note("slept")).unwrap();
    crate::local_sync::sync_stores(&w.counselor, &w.client).unwrap();
    assert_eq!(
        checkin_notes(&w.counselor, w.plan, w.goal),
        ["slept", "walked"]
    );
    assert_eq!(w.counselor.refused_changes(None).unwrap().len(), 2);
    assert_eq!(
        w.counselor.plan(w.plan).unwrap(),
        w.client.plan(w.plan).unwrap()
    );
    // A notice about changes that are not this device's is ignored.
    let stray = [("00".repeat(32), "anything".to_owned())];
    assert!(w
        .client
        .own_changes_refused(w.plan, &stray)
        .unwrap()
        .is_empty());
}

/// How many objectives the world's goal has in `store`.
fn objectives(store: &Alliance, w: &World) -> usize {
    store
        .plan(w.plan)
        .unwrap()
        .goal(w.goal)
        .unwrap()
        .objectives
        .len()
}

/// The counselor's two latest changes of a plan (the first the dependency of the second), and a
/// way to build a sync message from the counselor that carries exactly the given changes with
/// their signatures, as a sender does.
struct TwoChanges {
    dependency: ChangeHash,
    later: ChangeHash,
    bytes: HashMap<ChangeHash, Vec<u8>>,
    signatures: Vec<crate::authorship::carrier::Record>,
    template: sync::Message,
}

impl TwoChanges {
    /// A clinical statement, then an objective, written on the counselor's device.
    fn written(w: &World) -> Self {
        let statement = GoalEdit {
            clinical_statement: Some("Delayed sleep phase".into()),
            ..GoalEdit::default()
        };
        w.counselor.edit_goal(w.plan, w.goal, &statement).unwrap();
        let dependency = heads(&w.counselor, w.plan)[0];
        let objective = crate::model::NewObjective {
            text: "Lights out by 23:30".into(),
            ..crate::model::NewObjective::default()
        };
        w.counselor
            .add_objective(w.plan, w.goal, &objective)
            .unwrap();
        let later = heads(&w.counselor, w.plan)[0];
        let mut inner = w.counselor.inner.lock();
        let doc = inner.open(w.plan).unwrap().doc.automerge().clone();
        let bytes = [dependency, later]
            .into_iter()
            .map(|hash| {
                (
                    hash,
                    doc.get_change_by_hash(&hash).unwrap().raw_bytes().to_vec(),
                )
            })
            .collect();
        let doc_id = w.plan.to_string();
        // As a sender does before it reads them (`docs/design.md`, A local edit).
        inner.sign_waiting(Some(&doc_id)).unwrap();
        let signatures = inner
            .store
            .read(|tx| store::load_signatures(tx, &doc_id, None))
            .unwrap();
        let template = doc.generate_sync_message(&mut sync::State::new()).unwrap();
        Self {
            dependency,
            later,
            bytes,
            signatures,
            template,
        }
    }

    fn message(&self, changes: &[ChangeHash]) -> Vec<u8> {
        let records: Vec<_> = self
            .signatures
            .iter()
            .filter(|(hash, _)| changes.contains(hash))
            .copied()
            .collect();
        self.message_with(changes, &records)
    }

    /// The changes with records that are not their signatures (a peer that tampers with
    /// what it forwards).
    fn tampered(&self, changes: &[ChangeHash]) -> Vec<u8> {
        let garbage: Vec<_> = changes
            .iter()
            .map(|hash| (*hash, crate::authorship::Signature([7; 64])))
            .collect();
        self.message_with(changes, &garbage)
    }

    fn message_with(
        &self,
        changes: &[ChangeHash],
        records: &[crate::authorship::carrier::Record],
    ) -> Vec<u8> {
        let message = sync::Message {
            changes: changes
                .iter()
                .map(|hash| self.bytes[hash].clone())
                .collect::<Vec<_>>()
                .into(),
            ..self.template.clone()
        };
        crate::authorship::carrier::wrap(message.encode(), records)
    }
}

/// A change that arrives before its dependency waits, and so does its signature, even when a
/// message without changes comes in between (a peer's Bloom filter false positive makes this
/// order: the dependency comes later, on request). The waiting signature was once dropped by
/// the change-less message, and the genuine change was then refused as unsigned.
#[test]
fn a_held_change_keeps_its_signature_across_a_message_without_changes() {
    let w = world();
    let two = TwoChanges::written(&w);
    let peer = "counselor-phone";
    for message in [two.message(&[two.later]), two.message(&[])] {
        let receipt = w
            .client
            .receive_sync_message(w.plan, peer, &message)
            .unwrap();
        assert!(receipt.refused.is_empty(), "{:?}", receipt.refused);
    }
    let last = w
        .client
        .receive_sync_message(w.plan, peer, &two.message(&[two.dependency]))
        .unwrap();
    assert!(
        last.refused.is_empty(),
        "the genuine change was refused: {:?}",
        last.refused
    );
    let goal = w.client.plan(w.plan).unwrap().goal(w.goal).unwrap().clone();
    assert_eq!(goal.clinical_statement, "Delayed sleep phase");
    assert_eq!(goal.objectives.len(), 1, "the held change was let in");
    assert_eq!(heads(&w.client, w.plan), vec![two.later]);
}

/// A genuine change that a tampering peer delivers first, with a record that is not its
/// signature, is refused as unsigned then; it is still let in when it comes with its
/// signature (a refusal for a missing signature says nothing about the change itself, and
/// once kept every later delivery was refused).
#[test]
fn a_genuine_change_delivered_first_without_its_signature_gets_in_with_it_later() {
    let w = world();
    let two = TwoChanges::written(&w);
    let both = [two.dependency, two.later];
    let tampered = w
        .client
        .receive_sync_message(w.plan, "tampering-peer", &two.tampered(&both))
        .unwrap();
    assert_eq!(tampered.refused.len(), 1, "{:?}", tampered.refused);
    assert_eq!(tampered.refused[0].rule, crate::authorship::FORGED);
    assert_eq!(heads(&w.client, w.plan).len(), 1);
    assert!(w
        .client
        .plan(w.plan)
        .unwrap()
        .goal(w.goal)
        .unwrap()
        .objectives
        .is_empty());

    let genuine = w
        .client
        .receive_sync_message(w.plan, "counselor-phone", &two.message(&both))
        .unwrap();
    assert!(genuine.refused.is_empty(), "{:?}", genuine.refused);
    assert_eq!(heads(&w.client, w.plan), vec![two.later]);
    assert_eq!(objectives(&w.client, &w), 1);
}

/// A change waiting for its dependency keeps the signature it came with: a tampering peer
/// that sends the same change again with another record does not replace it.
#[test]
fn a_held_change_keeps_the_record_it_came_with() {
    let w = world();
    let two = TwoChanges::written(&w);
    let peer = "counselor-phone";
    w.client
        .receive_sync_message(w.plan, peer, &two.message(&[two.later]))
        .unwrap();
    w.client
        .receive_sync_message(w.plan, "tampering-peer", &two.tampered(&[two.later]))
        .unwrap();
    let last = w
        .client
        .receive_sync_message(w.plan, peer, &two.message(&[two.dependency]))
        .unwrap();
    assert!(last.refused.is_empty(), "{:?}", last.refused);
    assert_eq!(heads(&w.client, w.plan), vec![two.later]);
}

/// A peer that says one of this device's own signed changes came without its signature (the
/// record was lost on the way) does not make the device set the change aside: it stays in the
/// plan and goes again, with its signature, at the next sync.
#[test]
fn an_own_change_refused_for_a_missing_signature_stays_and_goes_again() {
    let w = world();
    let two = TwoChanges::written(&w);
    let told = w
        .counselor
        .own_changes_refused(
            w.plan,
            &[(two.later.to_string(), crate::authorship::FORGED.to_string())],
        )
        .unwrap();
    assert!(told.is_empty(), "{told:?}");
    assert!(w.counselor.set_aside_changes(w.plan).unwrap().is_empty());
    assert_eq!(heads(&w.counselor, w.plan), vec![two.later]);
    let report = crate::local_sync::sync_stores(&w.counselor, &w.client).unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(objectives(&w.client, &w), 1);
}

/// One batch carries the counselor's enrollment of a new device and that device's first
/// edit, made on top of it: both get in. The judge keeps the plan's members and devices from
/// one change to the next of a chain only while the changes write goals alone; kept across the
/// enrollment, it refused the new device's edit as not enrolled.
#[test]
fn a_batch_with_an_enrollment_and_the_new_devices_edit_lets_both_in() {
    let w = world();
    let before = document(&w.counselor, w.plan);
    let tablet = Alliance::open_in_memory().unwrap();
    let dana = tablet.init("Dana", Role::Counselor, None).unwrap();
    w.counselor
        .enroll_device(
            w.plan,
            &NewDevice {
                device: dana.device_id,
                member: dana.member_id,
                new_member: Some(("Dana".into(), Role::Counselor)),
                label: "tablet".into(),
            },
        )
        .unwrap();
    let enrolled = heads(&w.counselor, w.plan);
    crate::local_sync::sync_stores(&w.counselor, &tablet).unwrap();
    let statement = GoalEdit {
        clinical_statement: Some("Delayed sleep phase".into()),
        ..GoalEdit::default()
    };
    tablet.edit_goal(w.plan, w.goal, &statement).unwrap();
    let doc = document(&tablet, w.plan);
    let incoming: Vec<Change> = doc.get_changes(&before.get_heads());
    assert_eq!(incoming.len(), 2, "the enrollment and the edit");
    assert_eq!(
        incoming[1].deps(),
        &enrolled[..],
        "the edit builds on the enrollment alone"
    );
    let signatures: remote::Signatures = w
        .counselor
        .change_signatures(w.plan)
        .unwrap()
        .into_iter()
        .chain(tablet.change_signatures(w.plan).unwrap())
        .collect();
    let judgement = remote::judge(&before, w.plan, incoming, &HashSet::new(), &signatures);
    assert!(judgement.refused.is_empty(), "{:?}", judgement.refused);
    assert_eq!(judgement.accepted.len(), 2);
}

/// The client's signatures of its changes to the world's plan.
fn client_signatures(w: &World) -> remote::Signatures {
    w.client
        .change_signatures(w.plan)
        .unwrap()
        .into_iter()
        .collect()
}

/// A tampered client app writes the goal's clinical statement, which only a counselor writes.
fn forge_clinical_statement(w: &World) {
    let goal = w.goal.to_string();
    write_unchecked(&w.client, w.plan, |tx| {
        use automerge::transaction::Transactable;
        let goals = tx.get(automerge::ROOT, "goals")?.unwrap().1;
        let goal = tx.get(&goals, goal.as_str())?.unwrap().1;
        tx.put(&goal, "clinical_statement", "written by the client")?;
        Ok(())
    });
}

/// Judging a batch applies the accepted changes together, or adopts the author's view that
/// already holds them; the outcome is the one of applying each change as it is let in: the
/// same changes accepted and refused, and the same plan. Here the client's check-ins and a
/// change the client may not make arrive against the counselor's concurrent edits.
#[test]
fn a_batch_judged_together_ends_as_one_judged_change_by_change() {
    let w = world();
    let before = document(&w.counselor, w.plan);
    for n in 0..6 {
        let statement = GoalEdit {
            clinical_statement: Some(format!("Delayed sleep phase, week {n}")),
            ..GoalEdit::default()
        };
        w.counselor.edit_goal(w.plan, w.goal, &statement).unwrap();
        let checkin = crate::model::NewCheckIn {
            note: format!("day {n}"),
            ..crate::model::NewCheckIn::default()
        };
        w.client.check_in(w.plan, w.goal, &checkin).unwrap();
    }
    // A tampered client app writes the clinical statement, which only a counselor writes;
    // then checks in once more on top of it.
    forge_clinical_statement(&w);
    let last = crate::model::NewCheckIn {
        note: "after the forged change".into(),
        ..crate::model::NewCheckIn::default()
    };
    let _ = w.client.check_in(w.plan, w.goal, &last);
    let counselor = document(&w.counselor, w.plan);
    let client = document(&w.client, w.plan);
    let incoming: Vec<Change> = client.get_changes(&before.get_heads());
    let signatures = client_signatures(&w);
    let together = remote::judge(
        &counselor,
        w.plan,
        incoming.clone(),
        &HashSet::new(),
        &signatures,
    );
    let each = remote::judge_applying_each(&counselor, w.plan, incoming, &signatures);
    let hashes = |changes: &[Change]| changes.iter().map(Change::hash).collect::<Vec<_>>();
    assert_eq!(hashes(&together.accepted), hashes(&each.accepted));
    assert!(together.accepted.len() >= 6, "the check-ins get in");
    assert_eq!(together.refused, each.refused);
    assert!(!together.refused.is_empty(), "the forged change is refused");
    assert_eq!(hashes(&together.held), hashes(&each.held));
    let (together, each) = (together.applied.unwrap(), each.applied.unwrap());
    assert_eq!(together.get_heads(), each.get_heads());
    assert_eq!(
        crate::plan::read::read_plan(&together).unwrap(),
        crate::plan::read::read_plan(&each).unwrap()
    );
}

/// The usual message, the other device's chain of edits concurrent with this one's, is
/// judged together: applied at once, each change judged at its dependencies in the result.
/// It lets in what judging change by change lets in, and ends at the same plan. A chain with
/// a change the rules refuse is not judged together (judging change by change names it).
#[test]
fn a_chain_of_edits_is_judged_together_as_change_by_change_judges_it() {
    let w = world();
    let before = document(&w.counselor, w.plan);
    for n in 0..8 {
        let statement = GoalEdit {
            clinical_statement: Some(format!("Delayed sleep phase, week {n}")),
            ..GoalEdit::default()
        };
        w.counselor.edit_goal(w.plan, w.goal, &statement).unwrap();
        let words = GoalEdit {
            client_words: Some(format!("I want to sleep by {n} am")),
            ..GoalEdit::default()
        };
        w.client.edit_goal(w.plan, w.goal, &words).unwrap();
        let checkin = crate::model::NewCheckIn {
            note: format!("day {n}"),
            ..crate::model::NewCheckIn::default()
        };
        w.client.check_in(w.plan, w.goal, &checkin).unwrap();
    }
    let counselor = document(&w.counselor, w.plan);
    let client = document(&w.client, w.plan);
    let incoming: Vec<Change> = client.get_changes(&before.get_heads());
    assert_eq!(incoming.len(), 16);
    let signatures = client_signatures(&w);
    let together = remote::judged_together(&counselor, w.plan, &incoming, &signatures)
        .expect("a chain of honest edits is judged together");
    let each = remote::judge_applying_each(&counselor, w.plan, incoming.clone(), &signatures);
    let hashes = |changes: &[Change]| {
        let mut hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        hashes.sort();
        hashes
    };
    assert_eq!(hashes(&together.accepted), hashes(&incoming));
    assert_eq!(hashes(&together.accepted), hashes(&each.accepted));
    assert!(each.refused.is_empty());
    let (applied, by_each) = (together.applied.unwrap(), each.applied.unwrap());
    assert_eq!(applied.get_heads(), by_each.get_heads());
    assert_eq!(
        crate::plan::read::read_plan(&applied).unwrap(),
        crate::plan::read::read_plan(&by_each).unwrap()
    );

    // The same chain, and a change the client may not make on top of it.
    forge_clinical_statement(&w);
    let client = document(&w.client, w.plan);
    let incoming: Vec<Change> = client.get_changes(&before.get_heads());
    assert!(remote::judged_together(&counselor, w.plan, &incoming, &signatures).is_none());
    let judged = remote::judge(&counselor, w.plan, incoming, &HashSet::new(), &signatures);
    assert_eq!(judged.accepted.len(), 16);
    assert_eq!(judged.refused.len(), 1);
}

/// Changes taken from a peer are stored as the bytes they came in: the chunk a receive
/// appends is the accepted changes' own bytes, joined in dependency order, beside the
/// receiver's own edits made meanwhile; the store reopened holds the same plan.
#[test]
fn a_receive_appends_the_accepted_changes_own_bytes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.db");
    let w = world_of(
        Alliance::open_in_memory().unwrap(),
        Alliance::open(&path).unwrap(),
    );
    let (counselor, client, plan, goal) = (w.counselor, w.client, w.plan, w.goal);
    let before = document(&counselor, plan).get_heads();
    for n in 0..3 {
        counselor
            .check_in(
                plan,
                goal,
                &NewCheckIn {
                    note: format!("night {n}"),
                    ..NewCheckIn::default()
                },
            )
            .unwrap();
    }
    // The client's own edit, concurrent with the counselor's check-ins.
    client
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                note: "my own".into(),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
    let theirs: Vec<u8> = document(&counselor, plan)
        .get_changes(&before)
        .iter()
        .flat_map(|change| change.raw_bytes().to_vec())
        .collect();
    let chunks = |store: &Alliance| {
        let doc_id = plan.to_string();
        store
            .inner
            .lock()
            .store
            .read(|tx| crate::store::load_document_parts(tx, &doc_id))
            .unwrap()
            .unwrap()
            .1
    };
    let held_before = chunks(&client);
    // Message by message (an in-person session would compact its chunks when it ends).
    for _ in 0..10 {
        if let Some(out) = counselor.generate_sync_message(plan, "client").unwrap() {
            client
                .receive_sync_message(plan, "counselor", &out)
                .unwrap();
        }
        match client.generate_sync_message(plan, "counselor").unwrap() {
            Some(back) => counselor
                .receive_sync_message(plan, "client", &back)
                .unwrap(),
            None => break,
        };
    }
    let appended: Vec<Vec<u8>> = chunks(&client)
        .into_iter()
        .filter(|chunk| !held_before.contains(chunk))
        .collect();
    let lengths: Vec<usize> = appended.iter().map(Vec::len).collect();
    assert!(
        appended.contains(&theirs),
        "the counselor's three changes as one chunk: {} bytes, appended {lengths:?}",
        theirs.len()
    );
    let heads = document(&client, plan).get_heads();
    assert_eq!(heads, document(&counselor, plan).get_heads());
    drop(client);
    let reopened = Alliance::open(&path).unwrap();
    assert_eq!(document(&reopened, plan).get_heads(), heads);
    assert_eq!(reopened.plan(plan).unwrap().goals[0].checkins.len(), 4);
}
