//! Helpers for the network sync tests: devices with shared stores, relays, sync runs.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alliance_core::sync::relay::sim::SimRelay;
use alliance_core::sync::{
    sync_once_blocking, BackgroundRelay, DocumentId, RelayOptions, SyncError, SyncOptions,
    SyncSummary,
};
use alliance_core::{Alliance, Identity, MemberId, NewDevice, NewPlan, PlanId, Role};

/// One device: a store the sync engine can share, and who uses it.
pub struct Phone {
    pub store: Arc<Alliance>,
    pub me: Identity,
}

impl Phone {
    /// A new person's first device.
    pub fn new(name: &str, role: Role) -> Self {
        Self::of_member(name, role, None)
    }

    /// A device of `member` (None: a new person).
    pub fn of_member(name: &str, role: Role, member: Option<MemberId>) -> Self {
        let store = Arc::new(Alliance::open_in_memory().expect("in-memory store"));
        let me = store.init(name, role, member).expect("init");
        Self { store, me }
    }

    /// Another device of the same person.
    pub fn another(&self) -> Self {
        Self::of_member(&self.me.name, self.me.role, Some(self.me.member_id))
    }

    /// Syncs with the server until every plan it holds (and `wanted`) is settled.
    pub fn sync<S: Server + ?Sized>(&self, server: &S, wanted: &[PlanId]) -> SyncSummary {
        server
            .sync_once(self.store.clone(), &options(wanted))
            .expect("sync")
    }

    /// Enrolls `other` (a device of a member already in the plan) from this device.
    pub fn enroll(&self, plan: PlanId, other: &Phone) {
        self.store
            .enroll_device(
                plan,
                &NewDevice {
                    device: other.me.device_id,
                    member: other.me.member_id,
                    new_member: None,
                    label: "another device".into(),
                },
            )
            .expect("enroll");
    }
}

/// Where a phone syncs: a relay on a loopback socket (its URL, a `str`), or one on the
/// simulated network (`alliance_core::sync::relay::sim`: the same sessions, no socket).
pub trait Server {
    fn sync_once(
        &self,
        store: Arc<Alliance>,
        options: &SyncOptions,
    ) -> Result<SyncSummary, SyncError>;
}

impl Server for str {
    fn sync_once(
        &self,
        store: Arc<Alliance>,
        options: &SyncOptions,
    ) -> Result<SyncSummary, SyncError> {
        sync_once_blocking(store, self, options)
    }
}

impl Server for SimRelay {
    fn sync_once(
        &self,
        store: Arc<Alliance>,
        options: &SyncOptions,
    ) -> Result<SyncSummary, SyncError> {
        SimRelay::sync_once(self, store, options)
    }
}

/// Sync options for tests: short timeouts, and plans to ask for by id.
pub fn options(wanted: &[PlanId]) -> SyncOptions {
    SyncOptions {
        settle_timeout: Duration::from_secs(20),
        also_request: wanted
            .iter()
            .map(|plan| DocumentId::from_uuid(plan.as_uuid()))
            .collect(),
        ..SyncOptions::default()
    }
}

/// A counselor's plan with the client's phone enrolled (not yet synced anywhere).
pub fn plan_for(counselor: &Phone, client: &Phone, title: &str) -> PlanId {
    counselor
        .store
        .create_plan(&NewPlan {
            title: title.into(),
            client_name: client.me.name.clone(),
            client_member: Some(client.me.member_id),
            client_device: Some(client.me.device_id),
        })
        .expect("create plan")
}

/// A relay over a store (no identity) kept in `db`.
pub fn relay_at(db: &Path) -> (BackgroundRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open(db).expect("relay store"));
    let relay = BackgroundRelay::start("127.0.0.1:0", store.clone(), RelayOptions::default())
        .expect("relay");
    (relay, store)
}

/// A relay on the simulated network over a store kept in `db` (a new one over the same file
/// is a restarted relay).
pub fn sim_relay_at(db: &Path) -> (SimRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open(db).expect("relay store"));
    let relay = SimRelay::new(store.clone(), RelayOptions::default()).expect("relay");
    (relay, store)
}

/// A relay on the simulated network over an in-memory store.
pub fn sim_relay_in_memory() -> (SimRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open_in_memory().expect("relay store"));
    let relay = SimRelay::new(store.clone(), RelayOptions::default()).expect("relay");
    (relay, store)
}

/// A relay over an in-memory store.
pub fn relay_in_memory() -> (BackgroundRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open_in_memory().expect("relay store"));
    let relay = BackgroundRelay::start("127.0.0.1:0", store.clone(), RelayOptions::default())
        .expect("relay");
    (relay, store)
}

/// A counselor's plan with the client's phone and a goal, relay tokens issued to both devices
/// (nothing synced yet).
pub struct Clinic {
    pub counselor: Phone,
    pub client: Phone,
    pub plan: PlanId,
    pub counselor_token: String,
    pub client_token: String,
}

impl Clinic {
    pub fn new() -> Self {
        let counselor = Phone::new("Dana", Role::Counselor);
        let client = Phone::new("Sam", Role::Client);
        let plan = plan_for(&counselor, &client, "Sleep plan");
        counselor.store.propose_goal(plan, "Sleep better").unwrap();
        let counselor_token = counselor
            .store
            .issue_device_token(plan, counselor.me.device_id, None)
            .unwrap();
        let client_token = counselor
            .store
            .issue_device_token(plan, client.me.device_id, None)
            .unwrap();
        Self {
            counselor,
            client,
            plan,
            counselor_token,
            client_token,
        }
    }
}
