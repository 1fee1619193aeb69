//! Devices syncing through a relay: convergence, restarts, idle reconnects, refused notices on
//! the simulated network (`alliance_core::sync::relay::sim`: the relay's and devices' sessions,
//! no socket); watch mode's observer over a loopback WebSocket (its driver).

mod sync_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alliance_core::sync::{
    spawn_alliance_watch, DocumentId, OwnChangesRefused, SyncObserver, SyncOptions, SyncProgress,
};
use alliance_core::{Alliance, GoalEdit, GoalId, GoalStatus, NewCheckIn, PlanId, Role};
use sync_support::{
    options, plan_for, relay_in_memory, sim_relay_at, sim_relay_in_memory, Phone, Server,
};

#[test]
fn two_devices_converge_after_offline_edits_on_both_sides() {
    let (relay, relay_store) = sim_relay_in_memory();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    let goal = counselor
        .store
        .propose_goal(plan, "Sleep through the night")
        .unwrap();

    let first = counselor.sync(&relay, &[]);
    assert_eq!((first.documents_total, first.documents_synced), (1, 1));
    assert!(relay_store.has_plan(plan).unwrap());
    let received = client.sync(&relay, &[plan]);
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

    client.sync(&relay, &[]);
    counselor.sync(&relay, &[]);
    client.sync(&relay, &[]);

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
        let (relay, _) = sim_relay_in_memory();
        let phone = Phone::new("Dana", Role::Counselor);
        let laptop = phone.another();
        let client = Phone::new("Sam", Role::Client);
        let plan = plan_for(&phone, &client, "Plan");
        phone.enroll(plan, &laptop);
        let goal = phone.store.propose_goal(plan, "Cut down drinking").unwrap();
        phone.sync(&relay, &[]);
        laptop.sync(&relay, &[plan]);
        client.sync(&relay, &[plan]);

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
                devices[index].sync(&relay, &[]);
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

    let (relay, store) = sim_relay_at(&db);
    counselor.sync(&relay, &[]);
    drop(relay);
    drop(store);

    // A new process over the same file, on another port.
    let (relay, store) = sim_relay_at(&db);
    assert!(store.has_plan(plan).unwrap());
    let summary = client.sync(&relay, &[plan]);
    assert!(summary.documents_unavailable.is_empty());
    assert_eq!(
        client.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );

    client.store.propose_goal(plan, "Call my sister").unwrap();
    client.sync(&relay, &[]);
    drop(relay);
    drop(store);

    let (relay, _store) = sim_relay_at(&db);
    counselor.sync(&relay, &[]);
    assert_eq!(counselor.store.plan(plan).unwrap().goals.len(), 2);
    assert_eq!(
        client.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );
}

#[test]
fn reconnecting_with_nothing_new_exchanges_a_few_small_messages() {
    let (relay, _) = sim_relay_in_memory();
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
    let first = counselor.sync(&relay, &[]);
    assert_eq!(first.documents_synced, plans.len());

    // Both sides speak the heads digest: `join` + one digest frame out, `peer` + one answer
    // back, whatever the number of plans.
    let idle = counselor.sync(&relay, &[]);
    assert_eq!(idle.documents_synced, plans.len());
    assert!(idle.documents_updated.is_empty());
    assert_eq!(idle.traffic.frames_sent, 2, "{:?}", idle.traffic);
    assert_eq!(idle.traffic.frames_received, 2, "{:?}", idle.traffic);
    // 24 bytes per plan out, and a fixed part: `join` (its metadata offers the extensions) and
    // the frame headers; `peer` lists the plans that enroll the device (discovery).
    assert!(
        idle.traffic.bytes_sent < 350 + 24 * plans.len() as u64,
        "{:?}",
        idle.traffic
    );

    // Without the extension (as with an automerge-repo peer): one small message per plan.
    let options = SyncOptions {
        heads_digest: false,
        ..options(&[])
    };
    let per_plan = relay
        .sync_once(counselor.store.clone(), &options)
        .expect("sync");
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
    let (relay, relay_store) = sim_relay_in_memory();
    let client = Phone::new("Sam", Role::Client);
    let unknown = alliance_core::PlanId::new();
    let summary = client.sync(&relay, &[unknown]);
    assert_eq!(summary.documents_unavailable.len(), 1);
    assert!(!client.store.has_plan(unknown).unwrap());
    assert!(!relay_store.has_plan(unknown).unwrap());
}

const STATUS_RULE: &str = "only a counselor writes a goal's status";

fn check_in(note: &str) -> NewCheckIn {
    NewCheckIn {
        note: note.into(),
        gas_level: Some(1),
        ..NewCheckIn::default()
    }
}

fn notes(store: &Alliance, plan: PlanId, goal: GoalId) -> Vec<String> {
    let mut notes: Vec<String> = store
        .plan(plan)
        .unwrap()
        .goals
        .iter()
        .filter(|g| g.goal_id == goal)
        .flat_map(|g| g.checkins.iter().map(|c| c.note.clone()))
        .collect();
    notes.sort();
    notes
}

/// A counselor's plan with one goal on the relay and on the client's phone; then the phone
/// writes a status change only a counselor may make (as a build with other rules would, or a
/// client whose role changed meanwhile) and, built on it, an honest check-in.
fn client_holding_a_refused_change<S: Server + ?Sized>(
    server: &S,
) -> (Phone, Phone, PlanId, GoalId) {
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan");
    let goal = counselor
        .store
        .propose_goal(plan, "Sleep before midnight")
        .unwrap();
    counselor.sync(server, &[]);
    client.sync(server, &[plan]);
    client
        .store
        .edit_goal_unchecked(
            plan,
            goal,
            &GoalEdit {
                status: Some(GoalStatus::Active),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    client
        .store
        .check_in(plan, goal, &check_in("walked"))
        .unwrap();
    (counselor, client, plan, goal)
}

#[test]
fn a_device_told_its_change_was_refused_sets_it_aside_and_its_later_check_in_arrives() {
    let (relay, relay_store) = sim_relay_in_memory();
    let (counselor, client, plan, goal) = client_holding_a_refused_change(&relay);

    let summary = client.sync(&relay, &[]);
    // The relay told the device, naming the plan and the rule; nothing else was reported.
    let document = DocumentId::from_uuid(plan.as_uuid());
    assert_eq!(summary.refused.len(), 1, "{:?}", summary.refused);
    assert_eq!(summary.refused[0].document, document);
    let rules: Vec<&str> = summary.refused[0]
        .changes
        .iter()
        .map(|c| c.rule.as_str())
        .collect();
    assert_eq!(rules, [STATUS_RULE]);
    assert_eq!(summary.documents_synced, 1);
    // The device set the status change aside and replayed the check-in without it.
    let set_aside = client.store.set_aside_changes(plan).unwrap();
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");
    let refused = set_aside
        .iter()
        .find(|s| s.change_hash == summary.refused[0].changes[0].change_hash)
        .expect("the refused change is set aside");
    assert_eq!(refused.replayed_as, None);
    assert!(set_aside.iter().any(|s| s.replayed_as.is_some()));
    // The check-in reached the relay, the refused status did not; both sides agree.
    assert_eq!(notes(&relay_store, plan, goal), ["walked"]);
    let on_relay = relay_store.plan(plan).unwrap();
    assert_eq!(on_relay.goals[0].status, GoalStatus::Proposed);
    assert_eq!(client.store.plan(plan).unwrap(), on_relay);
    // …and a second device.
    counselor.sync(&relay, &[]);
    assert_eq!(notes(&counselor.store, plan, goal), ["walked"]);
    assert_eq!(counselor.store.plan(plan).unwrap(), on_relay);

    // Nothing further is refused: later edits flow, nothing more is set aside or recorded.
    let refused_on_relay = relay_store.refused_changes(Some(plan)).unwrap().len();
    assert_eq!(
        refused_on_relay, 2,
        "the status change and the check-in built on it"
    );
    client
        .store
        .check_in(plan, goal, &check_in("slept"))
        .unwrap();
    let again = client.sync(&relay, &[]);
    assert!(again.refused.is_empty(), "{:?}", again.refused);
    counselor.sync(&relay, &[]);
    assert_eq!(notes(&counselor.store, plan, goal), ["slept", "walked"]);
    assert_eq!(
        relay_store.refused_changes(Some(plan)).unwrap().len(),
        refused_on_relay
    );
    assert_eq!(client.store.set_aside_changes(plan).unwrap().len(), 2);
    let on_relay = relay_store.plan(plan).unwrap();
    assert_eq!(client.store.plan(plan).unwrap(), on_relay);
    assert_eq!(counselor.store.plan(plan).unwrap(), on_relay);
}

/// Items shared between the sync engine's threads and the test.
struct Log<T>(Mutex<Vec<T>>);

impl<T: Clone> Log<T> {
    fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn push(&self, item: T) {
        self.0.lock().unwrap().push(item);
    }

    fn items(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

/// Collects what a watch-mode sync reports.
struct Recorder {
    progress: Log<SyncProgress>,
    refused: Log<OwnChangesRefused>,
}

impl SyncObserver for Recorder {
    fn progress(&self, progress: &SyncProgress) {
        self.progress.push(progress.clone());
    }

    fn own_changes_refused(&self, refused: &OwnChangesRefused) {
        self.refused.push(refused.clone());
    }
}

#[test]
fn watch_mode_tells_the_observer_and_keeps_syncing() {
    let (relay, relay_store) = relay_in_memory();
    let url = relay.url();
    let (counselor, client, plan, goal) = client_holding_a_refused_change(url.as_str());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let recorder = Arc::new(Recorder {
        progress: Log::new(),
        refused: Log::new(),
    });
    let handle = {
        let _inside = runtime.enter();
        spawn_alliance_watch(client.store.clone(), &url, options(&[]), recorder.clone())
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        for _ in 0..1000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}");
    };
    wait("the refused notice", &|| {
        !recorder.refused.items().is_empty()
    });
    let refused = recorder.refused.items();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].document, DocumentId::from_uuid(plan.as_uuid()));
    assert_eq!(refused[0].changes.len(), 1);
    assert_eq!(refused[0].changes[0].rule, STATUS_RULE);
    wait("the check-in on the relay", &|| {
        notes(&relay_store, plan, goal) == ["walked"]
    });
    // Still connected: a later check-in goes out as it is made.
    client
        .store
        .check_in(plan, goal, &check_in("slept"))
        .unwrap();
    wait("the later check-in on the relay", &|| {
        notes(&relay_store, plan, goal) == ["slept", "walked"]
    });
    wait("the plan settled", &|| {
        handle.progress().connected && handle.progress().plans_synced == 1
    });
    assert!(recorder
        .progress
        .items()
        .iter()
        .all(|p| p.last_error.is_none()));
    runtime.block_on(handle.stop());
    assert_eq!(recorder.refused.items().len(), 1, "told once");
    counselor.sync(url.as_str(), &[]);
    assert_eq!(
        counselor.store.plan(plan).unwrap(),
        client.store.plan(plan).unwrap()
    );
}
