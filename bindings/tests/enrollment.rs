//! Enrollment codes through the bindings: the code names this device and its key, enrolling
//! from it records the key, and a damaged code is `InvalidInput` with nothing written.

mod support;

use alliance_ffi::ApiError;
use support::{block_on, world};

#[test]
fn a_code_enrolls_a_device_with_its_key_and_a_damaged_code_changes_nothing() {
    let w = world();
    block_on(async {
        let plan = w.counselor.plan(w.plan_id.clone()).await.unwrap();
        let phone = plan
            .devices
            .iter()
            .find(|d| d.device_id == w.sam.device_id)
            .unwrap();
        assert_eq!(phone.public_key.as_deref().map(str::len), Some(64));
        // The client's code names the client's device.
        let code = w.client.enrollment_code().await.unwrap();
        assert!(code.starts_with("alliance-device:"));
        // Cut short: refused, the plan unchanged.
        let before = w.counselor.plan(w.plan_id.clone()).await.unwrap();
        let cut = code[..code.len() - 2].to_owned();
        let refused = w
            .counselor
            .enroll_device_from_code(
                w.plan_id.clone(),
                cut,
                w.sam.member_id.clone(),
                "tablet".into(),
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(ApiError::InvalidInput { .. })),
            "{refused:?}"
        );
        assert_eq!(w.counselor.plan(w.plan_id.clone()).await.unwrap(), before);
        // The same code again: already enrolled with that key, nothing to do.
        w.counselor
            .enroll_device_from_code(
                w.plan_id.clone(),
                code,
                w.sam.member_id.clone(),
                "Sam's phone".into(),
                None,
            )
            .await
            .unwrap();
    });
}
