//! A short multi-device scenario, the one `scripts/test-arm.sh` also runs on 32- and 64-bit ARM
//! under qemu: a counselor's encrypted store and a client's store on disk set a goal together,
//! sync in process and through a TLS relay, the role rules refuse a client's change to the
//! goal's status, and the plan is exported (JSON, FHIR, Markdown) and imported elsewhere.
//! It touches everything whose code differs between CPUs: SQLCipher and its OpenSSL, ring
//! (TLS), Automerge's columnar encoding and hashes, and the wire formats' integer widths.

mod sync_support;

use std::sync::Arc;
use std::time::Duration;

use alliance_core::local_sync::sync_stores;
use alliance_core::sync::{
    sync_once_blocking, BackgroundRelay, RelayOptions, SyncOptions, TlsIdentity,
};
use alliance_core::{Alliance, GasEdit, GoalEdit, GoalStatus, NewCheckIn, NewPlan, Role, StoreKey};

fn rated(day: &str, level: i8) -> NewCheckIn {
    NewCheckIn {
        gas_level: Some(level),
        note: "slept better".into(),
        local_date: Some(day.into()),
        tz_offset_min: Some(60),
        ..NewCheckIn::default()
    }
}

#[test]
fn counselor_and_client_set_a_goal_sync_and_export_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = StoreKey::new([0x5A; 32]);
    let laptop_path = dir.path().join("counselor.db");
    let counselor = Arc::new(Alliance::open_encrypted(&laptop_path, &key).unwrap());
    let client = Arc::new(Alliance::open(&dir.path().join("client.db")).unwrap());
    let dana = counselor.init("Dana", Role::Counselor, None).unwrap();
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Sleep plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    sync_stores(&counselor, &client).unwrap();

    // The client proposes in their words, the counselor makes it clinical and both agree.
    let goal = client
        .propose_goal(plan, "I want to sleep through the night — 😴")
        .unwrap();
    sync_stores(&client, &counselor).unwrap();
    counselor
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                clinical_statement: Some("Client will keep a regular sleep schedule.".into()),
                status: Some(GoalStatus::Active),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    for (level, text) in [(-2, "never"), (0, "most nights"), (2, "every night")] {
        counselor
            .set_gas(
                plan,
                goal,
                &GasEdit::Level {
                    level,
                    text: text.into(),
                },
            )
            .unwrap();
    }
    counselor.agree(plan, goal).unwrap();
    sync_stores(&counselor, &client).unwrap();
    client.agree(plan, goal).unwrap();
    for (day, level) in [("2026-03-01", -1), ("2026-03-02", 0), ("2026-03-03", 1)] {
        client.check_in(plan, goal, &rated(day, level)).unwrap();
    }

    // Rules: a client may not set a goal's status; the counselor refuses, the client sets it
    // aside, and both end with the same plan.
    let on_hold = GoalEdit {
        status: Some(GoalStatus::OnHold),
        ..GoalEdit::default()
    };
    client.edit_goal_unchecked(plan, goal, &on_hold).unwrap();
    let report = sync_stores(&client, &counselor).unwrap();
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert_eq!(report.refused[0].device, sam.device_id);
    assert_eq!(client.set_aside_changes(plan).unwrap().len(), 1);
    let on_laptop = counselor.plan(plan).unwrap();
    assert_eq!(on_laptop, client.plan(plan).unwrap());
    let read = on_laptop.goal(goal).unwrap();
    assert_eq!(read.status, GoalStatus::Active);
    assert_eq!(read.checkins.len(), 3);

    // Through a relay over TLS (ring), a second device of the counselor gets the plan.
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let relay_store = Arc::new(Alliance::open_in_memory().unwrap());
    let relay = BackgroundRelay::start(
        "127.0.0.1:0",
        relay_store.clone(),
        RelayOptions {
            tls: Some(TlsIdentity {
                cert_chain_pem: made.cert.pem().into_bytes(),
                private_key_pem: made.signing_key.serialize_pem().into_bytes(),
            }),
            ..RelayOptions::default()
        },
    )
    .unwrap();
    let trusting = SyncOptions {
        extra_root_certificate: Some(made.cert.pem().into_bytes()),
        // qemu runs this tens of times slower than the CPU it emulates.
        settle_timeout: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(60),
        ..sync_support::options(&[plan])
    };
    let desk = sync_support::Phone::of_member("Dana", Role::Counselor, Some(dana.member_id));
    counselor
        .enroll_device(
            plan,
            &alliance_core::NewDevice {
                device: desk.me.device_id,
                member: desk.me.member_id,
                new_member: None,
                label: "desk".into(),
            },
        )
        .unwrap();
    sync_once_blocking(counselor.clone(), &relay.url(), &trusting).unwrap();
    sync_once_blocking(desk.store.clone(), &relay.url(), &trusting).unwrap();
    assert_eq!(
        desk.store.plan(plan).unwrap(),
        counselor.plan(plan).unwrap()
    );
    drop(relay);

    // Exports: the same plan in every format, and the JSON file imports as the same plan.
    let progress = counselor.progress(plan, 3).unwrap();
    assert_eq!(progress.goals[0].latest_level, Some(1));
    assert_eq!(progress.t_scores.len(), 3);
    let fhir: serde_json::Value =
        serde_json::from_str(&counselor.export_fhir_without_report(plan).unwrap()).unwrap();
    assert_eq!(fhir["resourceType"], "Bundle");
    assert!(counselor
        .export_markdown(plan)
        .unwrap()
        .contains("I want to sleep through the night — 😴"));
    let archive = Alliance::open_in_memory().unwrap();
    archive.init("Lee", Role::Counselor, None).unwrap();
    assert_eq!(
        archive
            .import_json(&counselor.export_json(plan).unwrap())
            .unwrap(),
        plan
    );
    assert_eq!(archive.plan(plan).unwrap(), counselor.plan(plan).unwrap());

    // The encrypted store opens again from disk with its key only.
    drop(counselor);
    assert!(Alliance::open(&laptop_path).is_err());
    let reopened = Alliance::open_encrypted(&laptop_path, &key).unwrap();
    assert_eq!(reopened.plan(plan).unwrap().devices.len(), 3);
    sync_stores(&reopened, &client).unwrap();
    assert_eq!(reopened.plan(plan).unwrap(), client.plan(plan).unwrap());
}
