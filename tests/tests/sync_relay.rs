//! Devices syncing through `alliance relay` over loopback WebSockets.

mod sync_support;

use alliance_core::sync::{sync_once_blocking, SyncOptions};
use alliance_core::{GoalEdit, GoalStatus, NewCheckIn, Role};
use sync_support::{options, plan_for, relay_at, relay_in_memory, Phone};

#[test]
fn two_devices_converge_after_offline_edits_on_both_sides() {
    let (relay, relay_store) = relay_in_memory();
    let url = relay.url();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    let goal = counselor
        .store
        .propose_goal(plan, "Sleep through the night")
        .unwrap();

    let first = counselor.sync(&url, &[]);
    assert_eq!((first.documents_total, first.documents_synced), (1, 1));
    assert!(relay_store.has_plan(plan).unwrap());
    let received = client.sync(&url, &[plan]);
    assert_eq!(received.documents_updated.len(), 1);
    assert_eq!(
        client.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );

    // Both work offline.
    counselor
        .store
        .set_title(plan, "Sleep and mornings")
        .unwrap();
    counselor
        .store
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                clinical_statement: Some("Insomnia, initial".into()),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    let own_goal = client
        .store
        .propose_goal(plan, "Walk every morning")
        .unwrap();
    client
        .store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                note: "slept 5 hours".into(),
                ..NewCheckIn::default()
            },
        )
        .unwrap();

    client.sync(&url, &[]);
    counselor.sync(&url, &[]);
    client.sync(&url, &[]);

    let theirs = counselor.store.plan(plan).unwrap();
    let ours = client.store.plan(plan).unwrap();
    assert_eq!(theirs, ours);
    assert_eq!(ours.title, "Sleep and mornings");
    assert_eq!(ours.goals.len(), 2);
    assert!(ours.goals.iter().any(|g| g.goal_id == own_goal));
    let shared = ours.goals.iter().find(|g| g.goal_id == goal).unwrap();
    assert_eq!(shared.clinical_statement, "Insomnia, initial");
    assert_eq!(shared.checkins.len(), 1);
    assert_eq!(relay_store.plan(plan).unwrap(), ours);
}

#[test]
fn three_devices_converge_in_any_order() {
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let (relay, _) = relay_in_memory();
        let url = relay.url();
        let phone = Phone::new("Dana", Role::Counselor);
        let laptop = phone.another();
        let client = Phone::new("Sam", Role::Client);
        let plan = plan_for(&phone, &client, "Plan");
        phone.enroll(plan, &laptop);
        let goal = phone.store.propose_goal(plan, "Cut down drinking").unwrap();
        phone.sync(&url, &[]);
        laptop.sync(&url, &[plan]);
        client.sync(&url, &[plan]);

        // Concurrent edits on all three, including the same goal's status and words.
        phone
            .store
            .edit_goal(
                plan,
                goal,
                &GoalEdit {
                    status: Some(GoalStatus::Active),
                    ..GoalEdit::default()
                },
            )
            .unwrap();
        laptop.store.set_review_on(plan, "2030-01-15").unwrap();
        client
            .store
            .edit_goal(
                plan,
                goal,
                &GoalEdit {
                    client_words: Some("Drink only on weekends".into()),
                    ..GoalEdit::default()
                },
            )
            .unwrap();
        client
            .store
            .check_in(
                plan,
                goal,
                &NewCheckIn {
                    mood: Some(3),
                    ..NewCheckIn::default()
                },
            )
            .unwrap();

        let devices = [&phone, &laptop, &client];
        for _round in 0..2 {
            for index in order {
                devices[index].sync(&url, &[]);
            }
        }
        let expected = phone.store.plan(plan).unwrap();
        assert_eq!(
            laptop.store.plan(plan).unwrap(),
            expected,
            "order {order:?}"
        );
        assert_eq!(
            client.store.plan(plan).unwrap(),
            expected,
            "order {order:?}"
        );
        assert_eq!(expected.review_on.as_deref(), Some("2030-01-15"));
        let merged = expected.goals.iter().find(|g| g.goal_id == goal).unwrap();
        assert_eq!(merged.status, GoalStatus::Active);
        assert_eq!(merged.client_words, "Drink only on weekends");
        assert_eq!(merged.checkins.len(), 1);
    }
}

#[test]
fn a_relay_restarted_between_syncs_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan");
    counselor.store.propose_goal(plan, "Find a job").unwrap();

    let (relay, store) = relay_at(&db);
    counselor.sync(&relay.url(), &[]);
    relay.stop();
    drop(store);

    // A new process over the same file, on another port.
    let (relay, store) = relay_at(&db);
    assert!(store.has_plan(plan).unwrap());
    let summary = client.sync(&relay.url(), &[plan]);
    assert!(summary.documents_unavailable.is_empty());
    assert_eq!(
        client.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );

    client.store.propose_goal(plan, "Call my sister").unwrap();
    client.sync(&relay.url(), &[]);
    relay.stop();
    drop(store);

    let (relay, _store) = relay_at(&db);
    counselor.sync(&relay.url(), &[]);
    assert_eq!(counselor.store.plan(plan).unwrap().goals.len(), 2);
    assert_eq!(
        client.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );
}

#[test]
fn reconnecting_with_nothing_new_exchanges_a_few_small_messages() {
    let (relay, _) = relay_in_memory();
    let url = relay.url();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plans: Vec<_> = (0..30)
        .map(|i| {
            let plan = plan_for(&counselor, &client, &format!("Plan {i}"));
            for words in ["Sleep better", "Walk daily", "Call family"] {
                counselor.store.propose_goal(plan, words).unwrap();
            }
            plan
        })
        .collect();
    let first = counselor.sync(&url, &[]);
    assert_eq!(first.documents_synced, plans.len());

    // Both sides speak the heads digest: `join` + one digest frame out, `peer` + one answer
    // back, whatever the number of plans.
    let idle = counselor.sync(&url, &[]);
    assert_eq!(idle.documents_synced, plans.len());
    assert!(idle.documents_updated.is_empty());
    assert_eq!(idle.traffic.frames_sent, 2, "{:?}", idle.traffic);
    assert_eq!(idle.traffic.frames_received, 2, "{:?}", idle.traffic);
    // 24 bytes per plan out; `peer` lists the plans that enroll the device (discovery).
    assert!(
        idle.traffic.bytes_sent < 300 + 24 * plans.len() as u64,
        "{:?}",
        idle.traffic
    );

    // Without the extension (as with an automerge-repo peer): one small message per plan.
    let options = SyncOptions {
        heads_digest: false,
        ..options(&[])
    };
    let per_plan = sync_once_blocking(counselor.store.clone(), &url, &options).expect("sync");
    assert_eq!(per_plan.documents_synced, plans.len());
    assert!(per_plan.documents_updated.is_empty());
    // `join` + one message per plan out, `peer` + one answer per plan back.
    let expected_frames = 1 + plans.len() as u64;
    assert_eq!(
        per_plan.traffic.frames_sent, expected_frames,
        "{:?}",
        per_plan.traffic
    );
    assert_eq!(
        per_plan.traffic.frames_received, expected_frames,
        "{:?}",
        per_plan.traffic
    );
    // Each is an envelope with heads: a few hundred bytes, whatever the plan's size.
    assert!(
        per_plan.traffic.bytes_sent < 300 * expected_frames,
        "{:?}",
        per_plan.traffic
    );
    assert!(
        per_plan.traffic.bytes_received < 300 * expected_frames,
        "{:?}",
        per_plan.traffic
    );
    assert!(per_plan.traffic.bytes_sent * 5 < first.traffic.bytes_sent);
    assert!(idle.traffic.bytes_sent * 5 < per_plan.traffic.bytes_sent);
}

#[test]
fn a_plan_the_relay_does_not_have_is_reported_unavailable() {
    let (relay, relay_store) = relay_in_memory();
    let client = Phone::new("Sam", Role::Client);
    let unknown = alliance_core::PlanId::new();
    let summary = client.sync(&relay.url(), &[unknown]);
    assert_eq!(summary.documents_unavailable.len(), 1);
    assert!(!client.store.has_plan(unknown).unwrap());
    assert!(!relay_store.has_plan(unknown).unwrap());
}
