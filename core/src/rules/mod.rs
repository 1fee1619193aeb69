//! Who may write what, before any local edit is written: each [`Edit`] names the fields it
//! writes, and the role table ([`table::FIELDS`], one row per schema path) says who may. Changes
//! from peers are judged by the same rows ([`remote`]), so the rights on a field are one line of
//! `table.rs` (`docs/design.md`, "Who may write what").
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
//! | relay tokens, revocation | – | write |
//! | a plan's creation change | – | the rows marked `at_creation` only |
//!
//! A plan's first change (its creation) is judged operation by operation like any other: it
//! may write the plan's skeleton (schema, id, creation time, title, the members, devices and
//! goals maps), its members and their devices — the rows of [`table::FIELDS`] marked
//! `at_creation` — and nothing else: no goal, agreement, check-in, relay token or revocation.
//! Those come later, each in its own change judged by the rows above.

pub mod remote;
pub mod table;

use crate::error::{Error, Result};
use crate::model::{CheckIn, GasEdit, GoalEdit, GoalId, GoalStatus, MemberId, Plan};
use crate::plan::schema as k;

/// A write someone wants to make, described by what it touches.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'a> {
    /// The plan's title.
    Title,
    /// The plan's review date.
    ReviewOn,
    /// The key of the relay that vouches for devices without a key.
    RelayKey,
    /// A new member of the plan (or a member's name or role).
    Member,
    /// Enroll a device for `member`.
    EnrollDevice { member: MemberId },
    /// Issue a relay token to an enrolled device.
    IssueToken,
    /// Revoke an enrolled device.
    Revoke,
    /// A new goal.
    ProposeGoal,
    /// Change fields of the existing goal `goal`, whose status is `status`.
    EditGoal {
        goal: GoalId,
        status: GoalStatus,
        edit: &'a GoalEdit,
    },
    /// A new objective of a goal.
    Objective,
    /// A new intervention of a goal.
    Intervention,
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
///
/// Errors: [`Error::NotAllowed`] with the rule the edit breaks.
pub fn check(plan: &Plan, author: MemberId, edit: Edit<'_>) -> Result<()> {
    use table::{Value, Write, ANY};
    let member = plan
        .member(author)
        .ok_or_else(|| Error::not_allowed("only members of a plan write to it"))?;
    let me = author.to_string();
    let writer = table::Writer {
        member: &me,
        role: member.role,
    };
    let id = |member: MemberId| member.to_string();
    // (path, made by this edit, value): what the edit writes, one entry per field the role
    // table has a say on.
    let (key, status) = match edit {
        Edit::EditGoal { goal, status, .. } => (goal.to_string(), Some(status)),
        _ => (ANY.to_owned(), None),
    };
    let owner;
    let whose;
    let by;
    let level;
    let writes: Vec<(Vec<&str>, bool, Value<'_>)> = match edit {
        Edit::Title => vec![(vec![k::TITLE], false, Value::Characters)],
        Edit::ReviewOn => vec![(vec![k::REVIEW_ON], false, Value::Other)],
        Edit::RelayKey => vec![(vec![k::RELAY_KEY], false, Value::Other)],
        Edit::Member => vec![(vec![k::MEMBERS, ANY], false, Value::Other)],
        Edit::EnrollDevice { member } => {
            owner = id(member);
            vec![(
                vec![k::DEVICES, ANY, k::MEMBER_ID],
                true,
                Value::Str(&owner),
            )]
        }
        Edit::IssueToken => vec![(vec![k::DEVICES, ANY, k::TOKEN_HASH], false, Value::Other)],
        Edit::Revoke => vec![(vec![k::DEVICES, ANY, k::REVOKED_AT], false, Value::Other)],
        Edit::ProposeGoal => vec![
            (vec![k::GOALS, ANY], false, Value::Other),
            (vec![k::GOALS, ANY, k::PROPOSED_BY], true, Value::Str(&me)),
        ],
        Edit::EditGoal { edit, .. } => {
            let field = |name| vec![k::GOALS, key.as_str(), name];
            let mut writes = Vec::new();
            if edit.clinical_statement.is_some() {
                writes.push((field(k::CLINICAL_STATEMENT), false, Value::Characters));
            }
            if let Some(status) = edit.status {
                writes.push((field(k::STATUS), false, Value::Str(status.as_str())));
            }
            if let Some(area) = &edit.life_area {
                writes.push((field(k::LIFE_AREA), false, Value::Str(area)));
            }
            if edit.client_words.is_some() {
                writes.push((field(k::CLIENT_WORDS), false, Value::Characters));
            }
            writes
        }
        Edit::Objective => vec![(vec![k::GOALS, ANY, k::OBJECTIVES, ANY], false, Value::Other)],
        Edit::Intervention => {
            vec![(
                vec![k::GOALS, ANY, k::INTERVENTIONS, ANY],
                false,
                Value::Other,
            )]
        }
        Edit::Gas(GasEdit::Level { level: at, .. }) => {
            level = at.to_string();
            vec![(
                vec![k::GOALS, ANY, k::GAS, k::LEVELS, &level],
                false,
                Value::Characters,
            )]
        }
        Edit::Gas(GasEdit::Weight(weight)) => {
            vec![(
                vec![k::GOALS, ANY, k::GAS, k::WEIGHT],
                false,
                Value::Number(*weight),
            )]
        }
        Edit::Gas(GasEdit::Baseline(level)) => vec![(
            vec![k::GOALS, ANY, k::GAS, k::BASELINE],
            false,
            Value::Int(i64::from(*level)),
        )],
        Edit::Agree { member } => {
            whose = id(member);
            vec![(
                vec![k::GOALS, ANY, k::AGREEMENTS, &whose],
                false,
                Value::Other,
            )]
        }
        Edit::CheckIn { by: author_of, .. } => {
            by = id(author_of);
            vec![(
                vec![k::GOALS, ANY, k::CHECKINS, ANY, k::BY],
                true,
                Value::Str(&by),
            )]
        }
    };
    for (path, fresh, value) in writes {
        let write = Write {
            path: &path,
            fresh,
            value,
        };
        table::judge(writer, write, &|_| status).map_err(Error::not_allowed)?;
    }
    // A correction is a check-in of its own (judged above) that names the one it corrects;
    // only that check-in's author corrects it.
    if let Edit::CheckIn {
        corrects: Some(original),
        ..
    } = edit
    {
        if original.by != author {
            return Err(Error::not_allowed(
                "members correct only their own check-ins",
            ));
        }
    }
    Ok(())
}
