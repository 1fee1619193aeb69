//! Test support (the `test-support` feature): edits written without the local role check, the
//! way a build with other rules (older, newer, or tampered) would write them. Peers judge them by
//! the rules they run and may refuse them: how tests make a device hold an own change that a
//! relay refuses (see `docs/sync.md`, Refused notices). Never part of a shipped build.

use super::{write, Alliance, Result};
use crate::model::{GoalEdit, GoalId, PlanId};

impl Alliance {
    /// Test support only: [`Alliance::edit_goal`] without the role table (the device must still
    /// be enrolled in the plan). A client's status change is written here, and refused by peers.
    #[doc(hidden)]
    pub fn edit_goal_unchecked(&self, plan: PlanId, goal: GoalId, edit: &GoalEdit) -> Result<()> {
        let writes = match edit.status {
            Some(_) => super::edits::Writes::GoalStatus(goal),
            None => super::edits::Writes::InGoal(goal),
        };
        let scope = (plan, super::edits::Reads::Status(goal), writes);
        self.edit_scoped(scope, "edited a goal", |model, _, tx| {
            model.status(goal)?;
            write::edit_goal(tx, goal, edit)
        })
    }
}
