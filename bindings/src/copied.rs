//! A copied identity (`docs/design.md`, "A copied identity"): what a device that found another
//! copy of its store using its identity knows, for the shell to show with its new enrollment
//! code until a counselor enrolls it again.

use alliance_core as core;

use crate::alliance::Alliance;
use crate::error::ApiError;

/// This store found another copy of itself (a restored backup, a copied phone) writing under
/// its device id, and took a new device id and key for the same member. Show the enrollment
/// code to a counselor; until they enroll it, writes to the plans in `not_enrolled_plan_ids`
/// throw `CopiedIdentity`, and the device's own edits in `waiting_plan_ids` wait (they are
/// replayed, nothing lost, once it is enrolled).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CopiedIdentity {
    /// The device id this store used before, left to the other copy.
    pub former_device_id: String,
    /// Its new device id.
    pub device_id: String,
    /// When it found the other copy (UTC milliseconds).
    pub detected_at: i64,
    /// Its new enrollment code (`alliance-device:…`), for a counselor to enroll it from.
    pub enrollment_code: String,
    /// Plans that enroll its former device but not its new one.
    pub not_enrolled_plan_ids: Vec<String>,
    /// Plans where its own edits wait to be replayed once it is enrolled.
    pub waiting_plan_ids: Vec<String>,
}

impl From<core::CopiedIdentity> for CopiedIdentity {
    fn from(copied: core::CopiedIdentity) -> Self {
        Self {
            former_device_id: copied.former_device.to_string(),
            device_id: copied.enrollment.device.to_string(),
            detected_at: copied.detected_at,
            enrollment_code: copied.enrollment.to_string(),
            not_enrolled_plan_ids: copied
                .not_enrolled
                .iter()
                .map(ToString::to_string)
                .collect(),
            waiting_plan_ids: copied.waiting.iter().map(ToString::to_string).collect(),
        }
    }
}

#[uniffi::export]
impl Alliance {
    /// Whether this store found another copy of itself using its identity (see
    /// [`CopiedIdentity`]); None when it never did.
    pub async fn copied_identity(&self) -> Result<Option<CopiedIdentity>, ApiError> {
        self.run(|store| Ok(store.copied_identity()?.map(Into::into)))
            .await
    }
}
