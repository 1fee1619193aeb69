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
//! | a plan's creation change | – | [`CREATION_MAY_WRITE`] only |
//!
//! A plan's first change (its creation) is judged operation by operation like any other: it
//! may write the plan's skeleton (schema, id, creation time, title, the members, devices and
//! goals maps), its members and their devices — the paths of [`CREATION_MAY_WRITE`] — and
//! nothing else: no goal, agreement, check-in, relay token or revocation. Those come later,
//! each in its own change judged by the rows above.

pub mod remote;

/// Every path a plan's creation change may write (`*`: any one key); see the table above.
pub const CREATION_MAY_WRITE: &[&[&str]] = {
    use crate::plan::schema as k;
    &[
        &[k::SCHEMA],
        &[k::PLAN_ID],
        &[k::CREATED_AT],
        &[k::TITLE],
        &[k::MEMBERS],
        &[k::DEVICES],
        &[k::GOALS],
        &[k::MEMBERS, "*"],
        &[k::MEMBERS, "*", k::ROLE],
        &[k::MEMBERS, "*", k::NAME],
        &[k::MEMBERS, "*", k::ADDED_AT],
        &[k::DEVICES, "*"],
        &[k::DEVICES, "*", k::MEMBER_ID],
        &[k::DEVICES, "*", k::LABEL],
        &[k::DEVICES, "*", k::ADDED_AT],
        &[k::DEVICES, "*", k::PUBLIC_KEY],
    ]
};

/// Whether a plan's creation change may write `path` (see [`CREATION_MAY_WRITE`]).
pub fn creation_may_write(path: &[&str]) -> bool {
    CREATION_MAY_WRITE.iter().any(|allowed| {
        allowed.len() == path.len()
            && allowed
                .iter()
                .zip(path)
                .all(|(allowed, key)| *allowed == "*" || allowed == key)
    })
}

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
