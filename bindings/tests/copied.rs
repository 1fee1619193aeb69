//! A copied identity through the bindings: a phone's store copied and both used; the copy is
//! told with the typed `CopiedIdentity` error and `copied_identity`, a counselor enrolls it
//! from its new code, and every edit lands on every store.

mod support;

use std::sync::Arc;

use alliance_ffi::{Alliance, ApiError, NewCheckIn};
use support::{block_on, world_with};

async fn check_in(
    store: &Alliance,
    plan: &str,
    goal: &str,
    note: &str,
) -> Result<String, ApiError> {
    let check_in = NewCheckIn {
        gas_level: Some(0),
        note: note.into(),
        ..NewCheckIn::default()
    };
    store.check_in(plan.into(), goal.into(), check_in).await
}

async fn notes(store: &Alliance, plan: &str) -> Vec<String> {
    let plan = store.plan(plan.into()).await.unwrap();
    let mut notes: Vec<String> = plan.goals[0]
        .checkins
        .iter()
        .map(|c| c.note.clone())
        .collect();
    notes.sort();
    notes
}

#[test]
fn a_copied_phone_is_told_by_a_typed_error_and_once_enrolled_every_edit_lands() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let w = world_with(block_on(Alliance::open(path("phone.db"), None)).unwrap());
    let (counselor, sam, plan, goal) = (w.counselor, w.sam, w.plan_id, w.goal_id);
    block_on(async {
        let client = w.client;
        client.close_store();
        std::fs::copy(path("phone.db"), path("copy.db")).unwrap();
        let client = Alliance::open(path("phone.db"), None).await.unwrap();
        let copy: Arc<Alliance> = Alliance::open(path("copy.db"), None).await.unwrap();

        check_in(&client, &plan, &goal, "original").await.unwrap();
        check_in(&copy, &plan, &goal, "copy").await.unwrap();
        client.sync_with(counselor.clone()).await.unwrap();
        copy.sync_with(counselor.clone()).await.unwrap();

        let known = copy
            .copied_identity()
            .await
            .unwrap()
            .expect("the copy knows");
        assert_eq!(known.former_device_id, sam.device_id);
        assert_ne!(known.device_id, sam.device_id);
        assert_eq!(known.waiting_plan_ids, vec![plan.clone()]);
        assert_eq!(client.copied_identity().await.unwrap(), None);
        match check_in(&copy, &plan, &goal, "later").await {
            Err(ApiError::CopiedIdentity {
                enrollment_code, ..
            }) => assert_eq!(enrollment_code, known.enrollment_code),
            other => panic!("expected CopiedIdentity, got {other:?}"),
        }
        counselor
            .enroll_device_from_code(
                plan.clone(),
                known.enrollment_code.clone(),
                sam.member_id.clone(),
                "second phone".into(),
                None,
            )
            .await
            .unwrap();
        counselor.sync_with(copy.clone()).await.unwrap();
        counselor.sync_with(client.clone()).await.unwrap();
        for store in [&client, &copy, &counselor] {
            assert_eq!(notes(store, &plan).await, ["copy", "original"]);
        }
    });
}
