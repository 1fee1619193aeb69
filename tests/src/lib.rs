//! Shared helpers for the integration tests: devices with their own stores, set up as a
//! counselor and a client would be.

pub mod known_plan;

pub mod fuzz_inputs;

pub mod hostile;

use alliance_core::local_sync::sync_stores;
use alliance_core::{Alliance, Identity, NewDevice, NewPlan, PlanId, Role};

/// One device: a store and who uses it.
pub struct Device {
    pub store: Alliance,
    pub me: Identity,
}

impl Device {
    /// A new person's first device.
    pub fn new(name: &str, role: Role) -> Self {
        let store = Alliance::open_in_memory().expect("in-memory store");
        let me = store.init(name, role, None).expect("init");
        Self { store, me }
    }

    /// Another device of the same person.
    pub fn another_of(&self) -> Self {
        let store = Alliance::open_in_memory().expect("in-memory store");
        let me = store
            .init(&self.me.name, self.me.role, Some(self.me.member_id))
            .expect("init");
        Self { store, me }
    }

    /// Syncs with another device in process, to convergence.
    pub fn sync(&self, other: &Device) {
        sync_stores(&self.store, &other.store).expect("sync");
    }
}

/// A counselor's plan with a client's phone enrolled and received.
pub fn plan_with_client(counselor: &Device, client: &Device) -> PlanId {
    let plan = counselor
        .store
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: client.me.name.clone(),
            client_member: Some(client.me.member_id),
            client_device: Some(client.me.device_id),
        })
        .expect("create plan");
    counselor.sync(client);
    plan
}

/// Enrolls `device` (another device of an existing member) through `by`.
pub fn enroll(by: &Device, plan: PlanId, device: &Device) {
    by.store
        .enroll_device(
            plan,
            &NewDevice {
                device: device.me.device_id,
                member: device.me.member_id,
                new_member: None,
                label: "another device".into(),
            },
        )
        .expect("enroll");
}

pub fn counselor() -> Device {
    Device::new("Dana", Role::Counselor)
}

pub fn client() -> Device {
    Device::new("Sam", Role::Client)
}

/// The Automerge sync message inside what `Alliance::generate_sync_message` returns, without
/// the signatures beside it (`alliance_core::authorship::carrier`): what a raw Automerge peer
/// reads.
pub fn unsigned(message: &[u8]) -> &[u8] {
    alliance_core::authorship::carrier::split_raw(message)
        .expect("a signature envelope")
        .1
}

/// Syncs `a` and `b` about `plan` through their sync-message API until both are quiet (a
/// relay's store, which has no identity for an in-person session, included).
pub fn exchange(a: &Alliance, b: &Alliance, plan: PlanId) {
    for _ in 0..50 {
        let mut quiet = true;
        if let Some(m) = a.generate_sync_message(plan, "b").expect("message for b") {
            quiet = false;
            b.receive_sync_message(plan, "a", &m).expect("b receives");
        }
        if let Some(m) = b.generate_sync_message(plan, "a").expect("message for a") {
            quiet = false;
            a.receive_sync_message(plan, "b", &m).expect("a receives");
        }
        if quiet {
            a.end_sync_session("b");
            b.end_sync_session("a");
            return;
        }
    }
    panic!("stores did not settle");
}
