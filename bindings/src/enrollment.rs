//! Enrollment codes: this device's id and public key as one string (the QR code a counselor
//! scans), and enrolling a device from one, which records its key so that only changes it
//! signed are accepted as its own (SECURITY.md §6).

use alliance_core as core;
use alliance_core::authorship::Enrollment;

use crate::alliance::Alliance;
use crate::error::ApiError;
use crate::inputs::{parse, NewMember};

#[uniffi::export]
impl Alliance {
    /// This device's enrollment code (`alliance-device:…`, about 90 characters), to show as a
    /// QR code. `NotInitialized` before `init_identity`.
    pub async fn enrollment_code(&self) -> Result<String, ApiError> {
        self.run(|store| Ok(store.enrollment()?.to_string())).await
    }

    /// Enrolls the device an enrollment code names in the plan, as a device of `member_id`,
    /// and records its public key (a counselor: anyone's device; a client: their own). A
    /// damaged or mistyped code is `InvalidInput` and nothing is written; so is a device
    /// already enrolled with another key.
    pub async fn enroll_device_from_code(
        &self,
        plan_id: String,
        code: String,
        member_id: String,
        label: String,
        new_member: Option<NewMember>,
    ) -> Result<(), ApiError> {
        let plan = parse(&plan_id)?;
        let enrollment = Enrollment::parse(&code).map_err(ApiError::from)?;
        let device = core::NewDevice {
            device: enrollment.device,
            member: parse(&member_id)?,
            new_member: new_member.map(|m| (m.name, m.role.into())),
            label,
        };
        self.run(move |store| Ok(store.enroll_with_key(plan, &device, enrollment.public_key)?))
            .await
    }
}
