//! Two `Alliance` objects converge through a loopback relay, with progress and plan
//! notifications reaching the shell's callbacks.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alliance_core::sync::{Relay, RelayOptions};
use alliance_ffi::{
    Alliance, ApiError, GoalEdit, NewCheckIn, PlanObserver, RefusedChange, SyncObserver,
    SyncProgress,
};
use parking_lot::Mutex;
use support::{block_on, world};

#[derive(Default)]
struct Heard {
    progress: Mutex<Vec<SyncProgress>>,
    plans: Mutex<Vec<String>>,
    refused: Mutex<Vec<RefusedChange>>,
}

struct Listener(Arc<Heard>);

impl SyncObserver for Listener {
    fn sync_progress(&self, progress: SyncProgress) {
        self.0.progress.lock().push(progress);
    }

    fn changes_refused(&self, changes: Vec<RefusedChange>) {
        self.0.refused.lock().extend(changes);
    }
}

impl PlanObserver for Listener {
    fn plan_changed(&self, plan_id: String) {
        self.0.plans.lock().push(plan_id);
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A relay on 127.0.0.1 over an in-memory store, served by its own runtime.
fn loopback_relay() -> (tokio::runtime::Runtime, Relay) {
    loopback_relay_with(RelayOptions::default())
}

/// A loopback relay that serves a device only the plans its token opens, and lets a token that
/// opens nothing yet push a new plan listing it.
fn token_relay() -> (tokio::runtime::Runtime, Relay) {
    loopback_relay_with(RelayOptions {
        require_token: true,
        open_enrollment: true,
        ..RelayOptions::default()
    })
}

fn loopback_relay_with(options: RelayOptions) -> (tokio::runtime::Runtime, Relay) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(alliance_core::Alliance::open_in_memory().unwrap());
    let relay = runtime
        .block_on(Relay::bind("127.0.0.1:0", store, options))
        .unwrap();
    (runtime, relay)
}

fn plan(store: &Alliance, plan_id: &str) -> alliance_ffi::Plan {
    block_on(store.plan(plan_id.to_owned())).unwrap()
}

#[test]
fn two_alliances_converge_through_a_loopback_relay() {
    let (_relay_runtime, relay) = loopback_relay();
    let w = world();
    let (counselor_heard, client_heard) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    let _subscription = w
        .counselor
        .observe(Box::new(Listener(counselor_heard.clone())))
        .unwrap();
    w.counselor
        .start_sync(
            relay.url(),
            None,
            Box::new(Listener(counselor_heard.clone())),
        )
        .unwrap();
    w.client
        .start_sync(relay.url(), None, Box::new(Listener(client_heard.clone())))
        .unwrap();

    // Edits on both sides while both are connected.
    block_on(w.counselor.edit_goal(
        w.plan_id.clone(),
        w.goal_id.clone(),
        GoalEdit {
            clinical_statement: Some("Delayed sleep phase".into()),
            ..Default::default()
        },
    ))
    .unwrap();
    block_on(w.client.check_in(
        w.plan_id.clone(),
        w.goal_id.clone(),
        NewCheckIn {
            gas_level: Some(1),
            ..Default::default()
        },
    ))
    .unwrap();
    wait_for("both devices to hold the same plan", || {
        let (theirs, ours) = (plan(&w.counselor, &w.plan_id), plan(&w.client, &w.plan_id));
        theirs == ours && ours.goals.iter().any(|g| g.checkins.len() == 1)
    });
    let merged = plan(&w.client, &w.plan_id);
    assert_eq!(merged.goals[0].clinical_statement, "Delayed sleep phase");

    // The counselor's observer heard the client's check-in arrive.
    assert!(counselor_heard.plans.lock().contains(&w.plan_id));
    wait_for("progress to report the plan synced", || {
        client_heard
            .progress
            .lock()
            .iter()
            .any(|p| p.connected && p.plans_total == 1 && p.plans_synced == 1)
    });
    assert!(w.counselor.sync_progress().unwrap().is_some());
    // Honest edits: nothing refused on either side.
    assert!(client_heard.refused.lock().is_empty());
    assert!(counselor_heard.refused.lock().is_empty());

    block_on(w.client.stop_sync()).unwrap();
    assert_eq!(w.client.sync_progress().unwrap(), None);
    assert!(relay.connections_accepted() >= 2);
    w.counselor.close_store();
    assert!(matches!(
        block_on(w.counselor.stop_sync()),
        Err(ApiError::Closed)
    ));
}

#[test]
fn an_unreachable_server_is_reported_as_progress_not_a_crash() {
    let w = world();
    let heard = Arc::new(Heard::default());
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w.client
        .start_sync(
            format!("ws://127.0.0.1:{port}"),
            None,
            Box::new(Listener(heard.clone())),
        )
        .unwrap();
    wait_for("a failure in the progress", || {
        heard
            .progress
            .lock()
            .iter()
            .any(|p| !p.connected && p.last_error.is_some())
    });
    // Local work goes on meanwhile.
    block_on(
        w.client
            .propose_goal(w.plan_id.clone(), "Walk daily".into()),
    )
    .unwrap();
    block_on(w.client.stop_sync()).unwrap();
}

#[test]
fn devices_sync_through_a_token_relay_with_the_tokens_their_counselor_issued() {
    let (_relay_runtime, relay) = token_relay();
    let w = world();
    let counselor_device = block_on(w.counselor.identity()).unwrap().unwrap().device_id;
    let counselor_token = block_on(w.counselor.issue_device_token(
        w.plan_id.clone(),
        counselor_device,
        None,
    ))
    .unwrap();
    let client_token = block_on(w.counselor.issue_device_token(
        w.plan_id.clone(),
        w.sam.device_id.clone(),
        None,
    ))
    .unwrap();
    assert_eq!(client_token.len(), 64);
    assert_ne!(client_token, counselor_token);
    // The client's device gets the plan that lists its token's hash in person, as it would
    // when enrolled at the clinic.
    block_on(w.counselor.sync_with(w.client.clone())).unwrap();

    // Without its token the client is refused, and that shows as progress.
    let refused = Arc::new(Heard::default());
    w.client
        .start_sync(relay.url(), None, Box::new(Listener(refused.clone())))
        .unwrap();
    wait_for("the refusal in the progress", || {
        refused
            .progress
            .lock()
            .iter()
            .any(|p| p.last_error.is_some())
    });
    block_on(w.client.stop_sync()).unwrap();
    assert!(!refused.progress.lock().iter().any(|p| p.plans_synced > 0));

    // With their tokens both converge through the relay.
    let (counselor_heard, client_heard) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    w.counselor
        .start_sync(
            relay.url(),
            Some(counselor_token.clone()),
            Box::new(Listener(counselor_heard.clone())),
        )
        .unwrap();
    w.client
        .start_sync(
            relay.url(),
            Some(client_token.clone()),
            Box::new(Listener(client_heard.clone())),
        )
        .unwrap();
    block_on(w.client.check_in(
        w.plan_id.clone(),
        w.goal_id.clone(),
        NewCheckIn {
            gas_level: Some(2),
            ..Default::default()
        },
    ))
    .unwrap();
    wait_for(
        "the check-in to reach the counselor through the relay",
        || plan(&w.counselor, &w.plan_id).goals[0].latest_gas_level == Some(2),
    );
    for heard in [&counselor_heard, &client_heard, &refused] {
        for progress in heard.progress.lock().iter() {
            let error = progress.last_error.as_deref().unwrap_or_default();
            assert!(!error.contains(&client_token) && !error.contains(&counselor_token));
        }
    }
    block_on(w.client.stop_sync()).unwrap();
    block_on(w.counselor.stop_sync()).unwrap();
}

#[test]
fn a_malformed_token_is_invalid_input_and_not_echoed() {
    let w = world();
    let heard = Arc::new(Heard::default());
    let typo = "0123456789abcdef-not-a-token";
    match w.client.start_sync(
        "ws://127.0.0.1:9".into(),
        Some(typo.into()),
        Box::new(Listener(heard)),
    ) {
        Err(ApiError::InvalidInput { reason }) => assert!(!reason.contains(typo), "{reason}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        w.client.sync_progress().unwrap(),
        None,
        "no sync was started"
    );
}
