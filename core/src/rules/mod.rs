//! Who may write what: the role table (`docs/design.md`), applied before any local edit is written.
//!
//! | path | client | counselor |
//! |---|---|---|
//! | title, review_on, members, status, life_area, objectives, interventions, gas weight/baseline | – | write |
//! | propose a goal | write | write |
//! | client_words | write | only while the goal is proposed |
//! | clinical_statement | – | write |
//! | gas levels | write | write |
//! | agreements.<own member> | write | write |
//! | check-ins authored by self | write | write |
//! | devices | own member's | any |

pub mod remote;

use crate::error::{Error, Result};
use crate::model::{CheckIn, GasEdit, Goal, GoalEdit, GoalStatus, MemberId, Plan, Role};

/// A write someone wants to make, described by what it touches.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'a> {
    /// Title or review date.
    PlanSettings,
    /// A new member of the plan (or a member's name or role).
    Member,
    /// Enroll a device for `member`.
    EnrollDevice { member: MemberId },
    /// A new goal.
    ProposeGoal,
    /// Change fields of an existing goal.
    EditGoal { goal: &'a Goal, edit: &'a GoalEdit },
    /// A new objective or intervention of a goal.
    Objective,
    /// A change to a goal's GAS scale.
    Gas(&'a GasEdit),
    /// An agreement entry for `member`.
    Agree { member: MemberId },
    /// A new check-in authored by `by`, optionally correcting `corrects`.
    CheckIn {
        by: MemberId,
        corrects: Option<&'a CheckIn>,
    },
}

/// Refuses `edit` by `author` when the role table does not allow it. Nothing is written by
/// the caller on refusal.
pub fn check(plan: &Plan, author: MemberId, edit: Edit<'_>) -> Result<()> {
    let member = plan
        .member(author)
        .ok_or_else(|| Error::not_allowed("only members of a plan write to it"))?;
    let counselor = member.role == Role::Counselor;
    let counselor_only = |what: &str| {
        if counselor {
            Ok(())
        } else {
            Err(Error::not_allowed(format!(
                "only a counselor writes {what}"
            )))
        }
    };
    match edit {
        Edit::PlanSettings => counselor_only("the plan's title and review date"),
        Edit::Member => counselor_only("the plan's members"),
        Edit::EnrollDevice { member: owner } => {
            if counselor || owner == author {
                Ok(())
            } else {
                Err(Error::not_allowed(
                    "a client enrolls devices only for themself",
                ))
            }
        }
        Edit::ProposeGoal => Ok(()),
        Edit::EditGoal { goal, edit } => {
            if edit.clinical_statement.is_some() {
                counselor_only("the clinical statement")?;
            }
            if edit.status.is_some() {
                counselor_only("a goal's status")?;
            }
            if edit.life_area.is_some() {
                counselor_only("a goal's life area")?;
            }
            if edit.client_words.is_some() && counselor && goal.status != GoalStatus::Proposed {
                return Err(Error::not_allowed(
                    "a counselor suggests the client's words only while the goal is proposed",
                ));
            }
            Ok(())
        }
        Edit::Objective => counselor_only("objectives and interventions"),
        Edit::Gas(GasEdit::Level { .. }) => Ok(()),
        Edit::Gas(GasEdit::Weight(_)) => counselor_only("a goal's GAS weight"),
        Edit::Gas(GasEdit::Baseline(_)) => counselor_only("a goal's GAS baseline"),
        Edit::Agree { member: whose } => {
            if whose == author {
                Ok(())
            } else {
                Err(Error::not_allowed("members write only their own agreement"))
            }
        }
        Edit::CheckIn { by, corrects } => {
            if by != author {
                return Err(Error::not_allowed("members write only their own check-ins"));
            }
            match corrects {
                Some(original) if original.by != author => Err(Error::not_allowed(
                    "members correct only their own check-ins",
                )),
                _ => Ok(()),
            }
        }
    }
}
