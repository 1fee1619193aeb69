//! Discovery: a device enrolled in a plan by its counselor finds the plan on its first sync
//! through the relay, without anyone typing the plan's id. On the simulated network
//! (`alliance_core::sync::relay::sim`): the relay's and devices' sessions, no socket.

mod sync_support;

use alliance_core::{NewDevice, Role};
use sync_support::{plan_for, sim_relay_at, sim_relay_in_memory, Phone};

#[test]
fn an_enrolled_client_phone_finds_its_plan_on_first_sync() {
    let (relay, relay_store) = sim_relay_in_memory();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    counselor.store.propose_goal(plan, "Sleep better").unwrap();
    counselor.sync(&relay, &[]);

    // The client's phone knows nothing but its own identity.
    assert!(client.store.plan_ids().unwrap().is_empty());
    let summary = client.sync(&relay, &[]);
    assert_eq!((summary.documents_total, summary.documents_synced), (1, 1));
    assert_eq!(client.store.plan_ids().unwrap(), vec![plan]);
    assert_eq!(
        client.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );
    assert!(client.store.refused_changes(None).unwrap().is_empty());
    assert!(relay_store.refused_changes(None).unwrap().is_empty());

    // Its own edits then reach the counselor as usual.
    client
        .store
        .propose_goal(plan, "Walk every morning")
        .unwrap();
    client.sync(&relay, &[]);
    counselor.sync(&relay, &[]);
    assert_eq!(counselor.store.plan(plan).unwrap().goals.len(), 2);
}

#[test]
fn devices_enrolled_later_find_the_plan_and_strangers_find_nothing() {
    let folder = tempfile::tempdir().unwrap();
    let db = folder.path().join("relay.db");
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let laptop = counselor.another();
    let tablet = client.another();
    let stranger = Phone::new("Lee", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan");
    let other_plan = plan_for(&counselor, &stranger, "Lee's plan");
    {
        let (relay, _) = sim_relay_at(&db);
        counselor.sync(&relay, &[]);
        // Not enrolled yet: the laptop is offered nothing.
        let before = laptop.sync(&relay, &[]);
        assert_eq!(before.documents_total, 0);
        assert!(laptop.store.plan_ids().unwrap().is_empty());
    }

    counselor.enroll(plan, &laptop);
    counselor
        .store
        .enroll_device(
            plan,
            &NewDevice {
                device: tablet.me.device_id,
                member: tablet.me.member_id,
                new_member: None,
                label: "tablet".into(),
            },
        )
        .unwrap();
    // A restarted relay still knows which plans enroll which devices.
    let (relay, _) = sim_relay_at(&db);
    counselor.sync(&relay, &[]);
    laptop.sync(&relay, &[]);
    tablet.sync(&relay, &[]);
    stranger.sync(&relay, &[]);
    assert_eq!(laptop.store.plan_ids().unwrap(), vec![plan]);
    assert_eq!(tablet.store.plan_ids().unwrap(), vec![plan]);
    assert_eq!(stranger.store.plan_ids().unwrap(), vec![other_plan]);
    assert_eq!(
        laptop.store.plan(plan).unwrap(),
        counselor.store.plan(plan).unwrap()
    );
    // The laptop is a counselor device of the plan: its edits are kept everywhere.
    laptop.store.set_title(plan, "Plan, revised").unwrap();
    laptop.sync(&relay, &[]);
    tablet.sync(&relay, &[]);
    assert_eq!(tablet.store.plan(plan).unwrap().title, "Plan, revised");
    assert!(tablet.store.refused_changes(None).unwrap().is_empty());
}
