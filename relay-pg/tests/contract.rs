//! The relay store contract: what a relay needs from its store, run against every store it can
//! run on (the SQLite file and PostgreSQL), each test through a real relay and real devices.
//!
//! PostgreSQL comes from `ALLIANCE_TEST_POSTGRES_URL` (set by `scripts/test-postgres.sh`, which
//! `scripts/test` runs the tests under); each test gets a database of its own. Without the URL
//! the PostgreSQL variants are skipped with the reason printed, unless
//! `ALLIANCE_REQUIRE_POSTGRES=1` (set by that script), where they fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alliance_core::sync::{
    sync_once_blocking, token_hash, BackgroundRelay, DocumentId, RelayOptions, SyncOptions,
    SyncStore,
};
use alliance_core::{Alliance, GoalEdit, GoalStatus, Identity, NewPlan, PlanId, Role, SyncPeer};
use alliance_relay_pg::testing::{check_in, check_ins, postgres_database};
use alliance_relay_pg::PgStore;

/// Where a test's relay keeps its data; each `open` is a new handle (a new process, as far as
/// the store can tell) on the same data.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    fn sqlite() -> Option<Self> {
        Some(Self::Sqlite(tempfile::tempdir().unwrap()))
    }

    fn postgres() -> Option<Self> {
        postgres_database().map(Self::Postgres)
    }

    fn open(&self) -> Arc<dyn SyncStore> {
        match self {
            Self::Sqlite(dir) => {
                let path: PathBuf = dir.path().join("relay.db");
                Arc::new(Alliance::open(&path).unwrap())
            }
            Self::Postgres(url) => Arc::new(PgStore::open(url).unwrap()),
        }
    }

    /// The relay's public key, as `alliance relay key` prints it.
    fn relay_key(&self) -> alliance_core::authorship::PublicKey {
        match self {
            Self::Sqlite(dir) => Alliance::open(&dir.path().join("relay.db"))
                .unwrap()
                .relay_public_key()
                .unwrap(),
            Self::Postgres(url) => PgStore::open(url).unwrap().relay_public_key(),
        }
    }
}

fn relay(store: Arc<dyn SyncStore>) -> BackgroundRelay {
    BackgroundRelay::start(
        "127.0.0.1:0",
        store,
        RelayOptions {
            require_token: true,
            open_enrollment: true,
            ..RelayOptions::default()
        },
    )
    .unwrap()
}

fn options(token: &str) -> SyncOptions {
    SyncOptions {
        token: Some(token.to_string()),
        settle_timeout: Duration::from_secs(20),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..SyncOptions::default()
    }
}

fn sync(device: &Arc<Alliance>, relay: &BackgroundRelay, token: &str) {
    sync_once_blocking(device.clone(), &relay.url(), &options(token)).unwrap();
}

/// A counselor's plan for a client, both devices holding relay tokens.
struct Clinic {
    counselor: Arc<Alliance>,
    client: Arc<Alliance>,
    sam: Identity,
    plan: PlanId,
    goal: alliance_core::GoalId,
    counselor_token: String,
    client_token: String,
}

fn clinic() -> Clinic {
    let counselor = Arc::new(Alliance::open_in_memory().unwrap());
    let dana = counselor.init("Dana", Role::Counselor, None).unwrap();
    let client = Arc::new(Alliance::open_in_memory().unwrap());
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    let goal = counselor.propose_goal(plan, "Sleep").unwrap();
    let counselor_token = counselor
        .issue_device_token(plan, dana.device_id, None)
        .unwrap();
    let client_token = counselor
        .issue_device_token(plan, sam.device_id, None)
        .unwrap();
    Clinic {
        counselor,
        client,
        sam,
        plan,
        goal,
        counselor_token,
        client_token,
    }
}

fn document(plan: PlanId) -> DocumentId {
    DocumentId::from_uuid(plan.as_uuid())
}

/// Plans pushed by a counselor reach the client; the store answers what a relay asks it
/// (documents of a token, plans enrolling a device, heads digests) from what it stored.
fn devices_converge_and_the_store_indexes_tokens(backend: Backend) {
    let store = backend.open();
    let relay = relay(store.clone());
    let c = clinic();
    sync(&c.counselor, &relay, &c.counselor_token);
    sync(&c.client, &relay, &c.client_token);
    assert!(c.client.has_plan(c.plan).unwrap());
    check_in(&c.client, c.plan, c.goal, 4);
    sync(&c.client, &relay, &c.client_token);
    sync(&c.counselor, &relay, &c.counselor_token);
    assert_eq!(check_ins(&c.counselor, c.plan), 1);

    let doc = document(c.plan);
    assert!(store.has_document(doc).unwrap());
    assert!(!store
        .has_document(DocumentId::from_uuid(uuid::Uuid::new_v4()))
        .unwrap());
    assert_eq!(
        store
            .documents_of_token(&token_hash(&c.client_token))
            .unwrap(),
        vec![doc]
    );
    assert!(store
        .documents_of_token(&"0".repeat(64))
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .enrolled_documents(&c.sam.device_id.to_string())
            .unwrap(),
        vec![doc]
    );
    let heads = c.counselor.plan_heads(&[c.plan]).unwrap()[0]
        .1
        .clone()
        .unwrap();
    assert_eq!(
        store.heads_digests(&[doc]).unwrap(),
        vec![(doc, Some(alliance_core::sync::heads_digest(&heads)))]
    );
    let storage_id = store.storage_id().unwrap();
    drop(relay);
    drop(store);
    // Another handle on the same data is the same store to peers.
    assert_eq!(backend.open().storage_id().unwrap(), storage_id);
}

/// A change the role rules refuse is not stored and its author hears of it; a revoked device
/// opens nothing.
fn refused_changes_are_not_stored_and_revocation_closes(backend: Backend) {
    let store = backend.open();
    let relay = relay(store.clone());
    let c = clinic();
    sync(&c.counselor, &relay, &c.counselor_token);
    sync(&c.client, &relay, &c.client_token);
    let status = GoalEdit {
        status: Some(GoalStatus::Active),
        ..GoalEdit::default()
    };
    // Only a counselor may change a goal's status.
    c.client
        .edit_goal_unchecked(c.plan, c.goal, &status)
        .unwrap();
    sync(&c.client, &relay, &c.client_token);
    sync(&c.counselor, &relay, &c.counselor_token);
    let goal = &c.counselor.plan(c.plan).unwrap().goals[0];
    assert_ne!(goal.status, GoalStatus::Active);
    assert_eq!(c.client.set_aside_changes(c.plan).unwrap().len(), 1);

    c.counselor.revoke_device(c.plan, c.sam.device_id).unwrap();
    sync(&c.counselor, &relay, &c.counselor_token);
    assert!(store
        .documents_of_token(&token_hash(&c.client_token))
        .unwrap()
        .is_empty());
    let denied = sync_once_blocking(c.client.clone(), &relay.url(), &options(&c.client_token));
    assert!(denied.is_err(), "a revoked token still syncs: {denied:?}");
}

/// Everything stored survives a new handle (a restarted relay), compaction included: 300
/// check-ins (past the PostgreSQL store's 256 changes before compaction) reach a device that
/// never saw them, from a store opened after they were pushed.
fn plans_survive_a_restart_and_compaction(backend: Backend) {
    let c = clinic();
    {
        let store = backend.open();
        let relay = relay(store.clone());
        sync(&c.counselor, &relay, &c.counselor_token);
        for mood in 0..300 {
            check_in(&c.counselor, c.plan, c.goal, (mood % 5 + 1) as u8);
        }
        sync(&c.counselor, &relay, &c.counselor_token);
        check_in(&c.counselor, c.plan, c.goal, 2);
        sync(&c.counselor, &relay, &c.counselor_token);
    }
    let store = backend.open();
    let relay = relay(store.clone());
    sync(&c.client, &relay, &c.client_token);
    assert_eq!(check_ins(&c.client, c.plan), 301);
    assert_eq!(
        c.client.plan_heads(&[c.plan]).unwrap(),
        c.counselor.plan_heads(&[c.plan]).unwrap()
    );
}

/// Two relays over the same data (two instances) each take changes to one plan at the same
/// time; every change is kept and every device ends with all of them.
fn concurrent_pushes_through_two_handles_keep_every_change(backend: Backend) {
    let (a, b) = (relay(backend.open()), relay(backend.open()));
    let c = clinic();
    sync(&c.counselor, &a, &c.counselor_token);
    sync(&c.client, &b, &c.client_token);
    for round in 0..5 {
        check_in(&c.counselor, c.plan, c.goal, 1 + round % 5);
        check_in(&c.client, c.plan, c.goal, 1 + round % 5);
        std::thread::scope(|scope| {
            scope.spawn(|| sync(&c.counselor, &a, &c.counselor_token));
            scope.spawn(|| sync(&c.client, &b, &c.client_token));
        });
    }
    sync(&c.counselor, &a, &c.counselor_token);
    sync(&c.client, &b, &c.client_token);
    sync(&c.counselor, &a, &c.counselor_token);
    assert_eq!(check_ins(&c.counselor, c.plan), 10);
    assert_eq!(check_ins(&c.client, c.plan), 10);
}

/// An ephemeral peer's sync state is forgotten when asked; other peers' stays.
fn forgetting_a_peer_keeps_the_documents(backend: Backend) {
    let store = backend.open();
    let relay = relay(store.clone());
    let c = clinic();
    sync(&c.counselor, &relay, &c.counselor_token);
    let peer = SyncPeer::conversation("ephemeral-peer");
    let doc = document(c.plan);
    assert!(store.generate_sync_message(doc, &peer).unwrap().is_some());
    store.forget_peer(&peer).unwrap();
    assert!(store.has_document(doc).unwrap());
    sync(&c.client, &relay, &c.client_token);
    assert!(c.client.has_plan(c.plan).unwrap());
}

/// Mallory, a counselor of another plan, lists Dana's device with Dana's token in a plan of
/// her own. Dana's token opens Dana's plan; pushed through a relay, Mallory's plan.
fn mallory_lists_danas_token(dana: &Alliance, dana_token: &str) -> (Arc<Alliance>, String, PlanId) {
    let mallory = Arc::new(Alliance::open_in_memory().unwrap());
    let me = mallory.init("Mallory", Role::Counselor, None).unwrap();
    let plan = mallory
        .create_plan(&NewPlan {
            title: "Mallory's plan".into(),
            client_name: "Someone".into(),
            ..NewPlan::default()
        })
        .unwrap();
    let token = mallory
        .issue_device_token(plan, me.device_id, None)
        .unwrap();
    let dana_device = dana.identity().unwrap().device_id;
    mallory
        .enroll_device(
            plan,
            &alliance_core::NewDevice {
                device: dana_device,
                member: alliance_core::MemberId::new(),
                new_member: Some(("Dana".into(), Role::Counselor)),
                label: "Dana's laptop".into(),
            },
        )
        .unwrap();
    mallory
        .issue_device_token(plan, dana_device, Some(dana_token))
        .unwrap();
    (mallory, token, plan)
}

/// Nobody plants a plan on a counselor's token: a plan listing a token another plan lists
/// for a counselor's device is refused whole.
fn a_plan_cannot_list_another_counselors_token(backend: Backend) {
    let store = backend.open();
    let relay = relay(store.clone());
    let c = clinic();
    sync(&c.counselor, &relay, &c.counselor_token);
    let (mallory, token, plan) = mallory_lists_danas_token(&c.counselor, &c.counselor_token);
    let pushed = sync_once_blocking(mallory.clone(), &relay.url(), &options(&token));
    assert!(pushed.is_err(), "{pushed:?}");
    assert!(!store.has_document(document(plan)).unwrap());
    assert_eq!(
        store
            .documents_of_token(&token_hash(&c.counselor_token))
            .unwrap(),
        vec![document(c.plan)]
    );
}

/// The same, when instance B stored Dana's plan after instance A last caught up with the
/// database (a commit that arrives out of order, simulated by renumbering it): A finds the
/// other plan when it locks the token, refuses the push, and the next attempt is refused by
/// the token rule; nothing of Mallory's plan is ever stored.
#[test]
fn postgres_a_token_listed_by_a_write_the_instance_missed_still_cannot_be_planted() {
    let Some(url) = postgres_database() else {
        return;
    };
    let (a, b) = (
        Arc::new(PgStore::open(&url).unwrap()),
        Arc::new(PgStore::open(&url).unwrap()),
    );
    let (relay_a, relay_b) = (relay(a.clone()), relay(b.clone()));
    let c = clinic();
    sync(&c.counselor, &relay_b, &c.counselor_token);
    alliance_relay_pg::testing::run_sql(&url, "UPDATE documents SET changed = 0");
    let (mallory, token, plan) = mallory_lists_danas_token(&c.counselor, &c.counselor_token);
    for _ in 0..2 {
        let pushed = sync_once_blocking(mallory.clone(), &relay_a.url(), &options(&token));
        assert!(pushed.is_err(), "{pushed:?}");
        assert!(!a.has_document(document(plan)).unwrap());
    }
    assert_eq!(
        b.documents_of_token(&token_hash(&c.counselor_token))
            .unwrap(),
        vec![document(c.plan)]
    );
}

/// A plan that pins the relay's key (SECURITY.md §6, Peers that cannot sign): the client's
/// phone is enrolled without a key, so its check-ins count only with the relay's voucher,
/// which every handle on the store gives (every instance over one database) and the counselor's
/// device verifies.
fn a_pinned_relay_vouches_for_a_tokens_keyless_device(backend: Backend) {
    let key = backend.relay_key();
    let (first, second) = (relay(backend.open()), relay(backend.open()));
    let c = clinic();
    c.counselor.pin_relay_key(c.plan, &key).unwrap();
    assert!(c
        .counselor
        .plan(c.plan)
        .unwrap()
        .devices
        .iter()
        .any(|d| d.device_id == c.sam.device_id && d.public_key.is_none()));
    sync(&c.counselor, &first, &c.counselor_token);
    sync(&c.client, &first, &c.client_token);
    check_in(&c.client, c.plan, c.goal, 4);
    sync(&c.client, &first, &c.client_token);
    check_in(&c.client, c.plan, c.goal, 6);
    sync(&c.client, &second, &c.client_token);
    sync(&c.counselor, &first, &c.counselor_token);
    assert_eq!(check_ins(&c.counselor, c.plan), 2);
    assert!(c.counselor.refused_changes(None).unwrap().is_empty());
}

/// One `#[test]` per store for each contract test.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::sqlite().unwrap());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(backend) = super::Backend::postgres() {
                    super::$name(backend);
                }
            })*
        }
    };
}

contract!(
    devices_converge_and_the_store_indexes_tokens,
    refused_changes_are_not_stored_and_revocation_closes,
    plans_survive_a_restart_and_compaction,
    concurrent_pushes_through_two_handles_keep_every_change,
    forgetting_a_peer_keeps_the_documents,
    a_plan_cannot_list_another_counselors_token,
    a_pinned_relay_vouches_for_a_tokens_keyless_device,
);
