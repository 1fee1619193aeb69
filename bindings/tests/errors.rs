//! Bad input through the FFI gives the right `ApiError`, with no personal data in its message.

mod support;

use alliance_ffi::{
    Alliance, ApiError, GasEdit, GoalEdit, NewCheckIn, NewDevice, NewPlan, PlanObserver, Role,
};
use support::{block_on, world};

const UNKNOWN: &str = "6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f";

fn invalid<T: std::fmt::Debug>(result: Result<T, ApiError>) {
    assert!(
        matches!(result, Err(ApiError::InvalidInput { .. })),
        "expected InvalidInput, got {result:?}"
    );
}

#[test]
fn malformed_ids_are_invalid_input() {
    let w = world();
    let c = &w.client;
    block_on(async {
        invalid(c.plan("not-a-plan".into()).await);
        invalid(c.history(String::new()).await);
        invalid(c.agree(w.plan_id.clone(), "42".into()).await);
        invalid(
            c.check_in(
                w.plan_id.clone(),
                w.goal_id.clone(),
                NewCheckIn {
                    corrects: Some("nope".into()),
                    ..Default::default()
                },
            )
            .await,
        );
        invalid(
            w.counselor
                .enroll_device(
                    w.plan_id.clone(),
                    NewDevice {
                        device_id: "abc".into(),
                        member_id: w.sam.member_id.clone(),
                        label: "phone".into(),
                        new_member: None,
                    },
                )
                .await,
        );
        invalid(
            w.counselor
                .create_plan(NewPlan {
                    title: "Plan".into(),
                    client_name: "Sam".into(),
                    client_member_id: Some("someone".into()),
                    client_device_id: None,
                })
                .await,
        );
        invalid(
            c.init_identity("Sam".into(), Role::Client, Some("x".into()))
                .await,
        );
    });
}

#[test]
fn empty_words_bad_levels_and_bad_dates_are_invalid_input() {
    let w = world();
    let (plan, goal) = (w.plan_id.clone(), w.goal_id.clone());
    let c = &w.client;
    block_on(async {
        invalid(c.propose_goal(plan.clone(), "   ".into()).await);
        invalid(
            c.edit_goal(
                plan.clone(),
                goal.clone(),
                GoalEdit {
                    client_words: Some(String::new()),
                    ..Default::default()
                },
            )
            .await,
        );
        for level in [7, -3, 300, i32::MIN] {
            invalid(
                c.set_gas(
                    plan.clone(),
                    goal.clone(),
                    GasEdit::Level {
                        level,
                        text: "level".into(),
                    },
                )
                .await,
            );
            invalid(
                c.check_in(
                    plan.clone(),
                    goal.clone(),
                    NewCheckIn {
                        gas_level: Some(level),
                        ..Default::default()
                    },
                )
                .await,
            );
        }
        invalid(
            c.check_in(
                plan.clone(),
                goal.clone(),
                NewCheckIn {
                    mood: Some(11),
                    ..Default::default()
                },
            )
            .await,
        );
        invalid(
            w.counselor
                .set_review_on(plan.clone(), "2026-02-30".into())
                .await,
        );
        invalid(
            w.counselor
                .create_plan(NewPlan {
                    title: String::new(),
                    client_name: "Sam".into(),
                    client_member_id: None,
                    client_device_id: None,
                })
                .await,
        );
        let after = c.plan(plan.clone()).await.unwrap();
        let goal = after.goals.iter().find(|g| g.goal_id == goal).unwrap();
        assert!(goal.checkins.is_empty() && goal.gas.levels.is_empty());
        assert_eq!(after.goals.len(), 1, "nothing was written");
    });
}

#[test]
fn wrong_role_is_not_allowed_and_says_nothing_personal() {
    let w = world();
    let (plan, goal) = (w.plan_id.clone(), w.goal_id.clone());
    block_on(async {
        let refused = w
            .client
            .edit_goal(
                plan.clone(),
                goal.clone(),
                GoalEdit {
                    clinical_statement: Some("Insomnia, moderate".into()),
                    ..Default::default()
                },
            )
            .await;
        let Err(error @ ApiError::NotAllowed { .. }) = refused else {
            panic!("expected NotAllowed, got {refused:?}");
        };
        let message = error.to_string();
        for private in ["Insomnia", "Sam", "Dana", "midnight"] {
            assert!(!message.contains(private), "{message:?} names {private}");
        }
        assert!(matches!(
            w.client.set_title(plan.clone(), "Mine".into()).await,
            Err(ApiError::NotAllowed { .. })
        ));
        assert!(matches!(
            w.client
                .set_gas(plan.clone(), goal.clone(), GasEdit::Weight { weight: 2.0 })
                .await,
            Err(ApiError::NotAllowed { .. })
        ));
        assert!(matches!(
            w.client
                .create_plan(NewPlan {
                    title: "Plan".into(),
                    client_name: "Someone".into(),
                    client_member_id: None,
                    client_device_id: None,
                })
                .await,
            Err(ApiError::NotAllowed { .. })
        ));
        assert!(matches!(
            w.client
                .init_identity("Sam".into(), Role::Client, None)
                .await,
            Err(ApiError::NotAllowed { .. })
        ));
    });
}

#[test]
fn unknown_ids_are_not_found_and_a_new_store_is_not_initialized() {
    let w = world();
    block_on(async {
        assert!(matches!(
            w.client.plan(UNKNOWN.into()).await,
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            w.client.agree(w.plan_id.clone(), UNKNOWN.into()).await,
            Err(ApiError::NotFound { .. })
        ));
        let fresh = Alliance::open_in_memory().unwrap();
        assert_eq!(fresh.identity().await.unwrap(), None);
        assert!(matches!(
            fresh
                .create_plan(NewPlan {
                    title: "Plan".into(),
                    client_name: "Sam".into(),
                    client_member_id: None,
                    client_device_id: None,
                })
                .await,
            Err(ApiError::NotInitialized)
        ));
    });
}

struct Silent;

impl PlanObserver for Silent {
    fn plan_changed(&self, _plan_id: String) {}
}

#[test]
fn a_closed_store_is_closed_for_every_call() {
    let w = world();
    let c = w.client.clone();
    c.close_store();
    c.close_store();
    block_on(async {
        assert!(matches!(c.identity().await, Err(ApiError::Closed)));
        assert!(matches!(c.list_plans().await, Err(ApiError::Closed)));
        assert!(matches!(
            c.plan(w.plan_id.clone()).await,
            Err(ApiError::Closed)
        ));
        assert!(matches!(
            c.propose_goal(w.plan_id.clone(), "words".into()).await,
            Err(ApiError::Closed)
        ));
        assert!(matches!(c.observe(Box::new(Silent)), Err(ApiError::Closed)));
        assert!(matches!(
            w.counselor.sync_with(c.clone()).await,
            Err(ApiError::Closed)
        ));
        assert!(matches!(
            c.sync_with(w.counselor.clone()).await,
            Err(ApiError::Closed)
        ));
        // The other store carries on.
        assert_eq!(
            w.counselor.plan(w.plan_id.clone()).await.unwrap().title,
            "Sleep"
        );
    });
}

#[test]
fn a_store_file_that_cannot_be_opened_is_a_storage_error() {
    let folder = tempfile::tempdir().unwrap();
    let result = block_on(Alliance::open(
        folder
            .path()
            .join("missing/folder/store.db")
            .display()
            .to_string(),
        None,
    ));
    assert!(
        matches!(result, Err(ApiError::Storage { .. })),
        "{:?}",
        result.err()
    );
    let path = folder.path().join("store.db").display().to_string();
    let store = block_on(Alliance::open(path.clone(), None)).unwrap();
    block_on(store.init_identity("Dana".into(), Role::Counselor, None)).unwrap();
    store.close_store();
    let reopened = block_on(Alliance::open(path, None)).unwrap();
    let identity = block_on(reopened.identity()).unwrap().unwrap();
    assert_eq!(identity.role, Role::Counselor);
}

#[test]
fn an_encrypted_store_opens_with_its_key_only_and_can_be_rekeyed() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("store.db").display().to_string();
    let store = block_on(Alliance::open(path.clone(), Some(vec![1; 32]))).unwrap();
    block_on(store.init_identity("Dana".into(), Role::Counselor, None)).unwrap();
    store.close_store();
    for key in [None, Some(vec![2; 32])] {
        let result = block_on(Alliance::open(path.clone(), key));
        assert!(
            matches!(result, Err(ApiError::WrongKey)),
            "{:?}",
            result.err()
        );
    }
    let result = block_on(Alliance::open(path.clone(), Some(vec![1; 16])));
    assert!(matches!(result, Err(ApiError::InvalidInput { .. })));

    let store = block_on(Alliance::open(path.clone(), Some(vec![1; 32]))).unwrap();
    invalid(block_on(store.rekey(vec![3; 31])));
    block_on(store.rekey(vec![3; 32])).unwrap();
    store.close_store();
    let result = block_on(Alliance::open(path.clone(), Some(vec![1; 32])));
    assert!(matches!(result, Err(ApiError::WrongKey)));
    let reopened = block_on(Alliance::open(path, Some(vec![3; 32]))).unwrap();
    assert!(block_on(reopened.identity()).unwrap().is_some());
}

#[test]
fn a_store_open_twice_is_not_rekeyed_until_the_other_closes() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("store.db").display().to_string();
    let store = block_on(Alliance::open(path.clone(), Some(vec![1; 32]))).unwrap();
    let other = block_on(Alliance::open(path.clone(), Some(vec![1; 32]))).unwrap();
    let result = block_on(store.rekey(vec![3; 32]));
    assert!(
        matches!(result, Err(ApiError::StoreInUse)),
        "{:?}",
        result.err()
    );
    other.close_store();
    block_on(store.rekey(vec![3; 32])).unwrap();
}
