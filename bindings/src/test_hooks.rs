//! Test hooks (the `test-hooks` feature, which `scripts/test-bindings.sh` turns on): what the
//! Kotlin and Swift tests need and no app may do. Never in a shipped build.

use crate::alliance::Alliance;
use crate::error::ApiError;
use crate::inputs::{parse, GoalEdit};
use alliance_core as core;

#[uniffi::export]
impl Alliance {
    /// Test builds only: `edit_goal` without the role check, as a build with other rules would
    /// write it; the relay then refuses it (how the tests get a refused change).
    pub async fn test_edit_goal_unchecked(
        &self,
        plan_id: String,
        goal_id: String,
        edit: GoalEdit,
    ) -> Result<(), ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        let edit = core::GoalEdit::from(edit);
        self.run(move |store| Ok(store.edit_goal_unchecked(plan, goal, &edit)?))
            .await
    }
}
