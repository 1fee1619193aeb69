//! The role table: who may write each field of a plan, one row per schema path of
//! `plan/schema.rs`. Local edits ([`crate::rules::check`]) and changes from peers
//! ([`crate::rules::remote`]) are both judged by [`judge`] against these rows, so the rights on
//! a field are one line here (`docs/design.md`, "Who may write what").

use crate::model::validate::DEFAULT_GAS_WEIGHT;
use crate::model::{GoalStatus, Role};
use crate::plan::schema as k;

/// Any one key of a map (a member, device, goal, objective or check-in id).
pub const ANY: &str = "*";

/// The role that creates plans: its device writes a plan's creation change.
pub const CREATES_PLANS: Role = Role::Counselor;

/// The kind of value a field holds: which Automerge operation writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A map object (`Make(Map)`).
    Map,
    /// A text object (`Make(Text)`), its characters written by text operations.
    Text,
    /// An immutable string (`Put(Str)`).
    Str,
    /// An integer (`Put(Int)`, `Put(Uint)`, or a whole `F64`).
    Int,
    /// Any number (`Put(F64)`, `Put(Int)`, `Put(Uint)`).
    Number,
}

/// Who may write a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Who {
    /// Nobody; the words are the rule a write breaks.
    Nobody(&'static str),
    /// Any member of the plan.
    Member,
    /// Counselors; the words name the field ("only a counselor writes {what}").
    Counselor(&'static str),
    /// A member writing their own member id as the value; with `counselor_any`, a counselor
    /// writes any member's. The words are the rule a write breaks.
    OwnId {
        counselor_any: bool,
        rule: &'static str,
    },
    /// A member, under a key (at this position of the path) that is their own member id.
    OwnKey(usize, &'static str),
    /// This value only, unless the writer is a counselor and `counselor_any`.
    Only {
        value: Fixed,
        counselor_any: bool,
        rule: &'static str,
    },
    /// Any member makes it, empty: its text is written by whoever the row's `after` names.
    Empty,
    /// A client writes it any time; a counselor suggests it only while the goal is proposed.
    ClientWhileProposed,
}

/// A fixed value a [`Who::Only`] row allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fixed {
    Str(&'static str),
    F64(f64),
}

/// One row of the role table.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The schema path; [`ANY`] stands for any one key.
    pub path: &'static [&'static str],
    pub kind: Kind,
    /// Whether a plan's creation change may write it: its skeleton, members and devices.
    pub at_creation: bool,
    /// Who writes it in the change that makes the object holding it (a new goal, device or
    /// check-in).
    pub new: Who,
    /// Who writes it afterwards.
    pub after: Who,
}

const STRUCTURE: Who = Who::Nobody("the plan's structure is written only when it is created");
const ORIGIN: Who = Who::Nobody("a goal's origin and parts are written only when it is proposed");
const APPEND_ONLY: Who = Who::Nobody("check-ins are append-only");
const MEMBERS: Who = Who::Counselor("the plan's members");
const ENROLLED: Who = Who::Counselor("an enrolled device");
const TOKENS: Who = Who::Counselor("relay tokens and revocation");
const PLAN_ITEMS: Who = Who::Counselor("objectives and interventions");
const AGREEMENT: Who = Who::OwnKey(3, "members write only their own agreement");

const OWN_DEVICE: Who = Who::OwnId {
    counselor_any: true,
    rule: "a client enrolls devices only for themself",
};
const OWN_PROPOSAL: Who = Who::OwnId {
    counselor_any: false,
    rule: "a goal is proposed in its author's own name",
};
const OWN_CHECKIN: Who = Who::OwnId {
    counselor_any: false,
    rule: "members write only their own check-ins",
};
const NO_AREA_YET: Who = Who::Only {
    value: Fixed::Str(""),
    counselor_any: true,
    rule: "only a counselor writes a goal's life area",
};
const STARTS_PROPOSED: Who = Who::Only {
    value: Fixed::Str("proposed"),
    counselor_any: false,
    rule: "a new goal starts as proposed",
};
const DEFAULT_WEIGHT: Who = Who::Only {
    value: Fixed::F64(DEFAULT_GAS_WEIGHT),
    counselor_any: true,
    rule: "only a counselor writes a goal's GAS weight",
};

const fn row(path: &'static [&'static str], kind: Kind, new: Who, after: Who) -> Field {
    Field {
        path,
        kind,
        at_creation: false,
        new,
        after,
    }
}

const fn creation(path: &'static [&'static str], kind: Kind, new: Who, after: Who) -> Field {
    Field {
        path,
        kind,
        at_creation: true,
        new,
        after,
    }
}

use Kind::{Int, Map, Number, Str, Text};
use Who::Member;

/// Every field of a plan, and who may write it: path, kind, then who writes it into an object
/// the same change makes, then who writes it afterwards. One row per field, one line per row.
#[rustfmt::skip]
pub static FIELDS: &[Field] = &[
    creation(&[k::SCHEMA], Int, STRUCTURE, STRUCTURE),
    creation(&[k::PLAN_ID], Str, STRUCTURE, STRUCTURE),
    creation(&[k::CREATED_AT], Int, STRUCTURE, STRUCTURE),
    creation(&[k::TITLE], Text, Who::Counselor("the plan's title"), Who::Counselor("the plan's title")),
    row(&[k::RELAY_KEY], Str, Who::Counselor("the plan's relay key"), Who::Counselor("the plan's relay key")),
    row(&[k::REVIEW_ON], Str, Who::Counselor("the plan's review date"), Who::Counselor("the plan's review date")),
    creation(&[k::MEMBERS], Map, STRUCTURE, STRUCTURE),
    creation(&[k::DEVICES], Map, STRUCTURE, STRUCTURE),
    creation(&[k::GOALS], Map, STRUCTURE, STRUCTURE),
    creation(&[k::MEMBERS, ANY], Map, MEMBERS, MEMBERS),
    creation(&[k::MEMBERS, ANY, k::ROLE], Str, MEMBERS, MEMBERS),
    creation(&[k::MEMBERS, ANY, k::NAME], Str, MEMBERS, MEMBERS),
    creation(&[k::MEMBERS, ANY, k::ADDED_AT], Int, MEMBERS, MEMBERS),
    creation(&[k::DEVICES, ANY], Map, Member, Member),
    creation(&[k::DEVICES, ANY, k::MEMBER_ID], Str, OWN_DEVICE, ENROLLED),
    creation(&[k::DEVICES, ANY, k::LABEL], Str, Member, ENROLLED),
    creation(&[k::DEVICES, ANY, k::ADDED_AT], Int, Member, ENROLLED),
    creation(&[k::DEVICES, ANY, k::PUBLIC_KEY], Str, Member, Who::Counselor("a device's public key")),
    row(&[k::DEVICES, ANY, k::TOKEN_HASH], Str, TOKENS, TOKENS),
    row(&[k::DEVICES, ANY, k::REVOKED_AT], Int, TOKENS, TOKENS),
    row(&[k::GOALS, ANY], Map, Member, Member),
    row(&[k::GOALS, ANY, k::PROPOSED_BY], Str, OWN_PROPOSAL, ORIGIN),
    row(&[k::GOALS, ANY, k::CREATED_AT], Int, Member, ORIGIN),
    row(&[k::GOALS, ANY, k::RANK], Str, Member, Who::Counselor("a goal's rank")),
    row(&[k::GOALS, ANY, k::CLIENT_WORDS], Text, Member, Who::ClientWhileProposed),
    row(&[k::GOALS, ANY, k::CLINICAL_STATEMENT], Text, Who::Empty, Who::Counselor("the clinical statement")),
    row(&[k::GOALS, ANY, k::LIFE_AREA], Str, NO_AREA_YET, Who::Counselor("a goal's life area")),
    row(&[k::GOALS, ANY, k::STATUS], Str, STARTS_PROPOSED, Who::Counselor("a goal's status")),
    row(&[k::GOALS, ANY, k::OBJECTIVES], Map, Member, ORIGIN),
    row(&[k::GOALS, ANY, k::INTERVENTIONS], Map, Member, ORIGIN),
    row(&[k::GOALS, ANY, k::GAS], Map, Member, ORIGIN),
    row(&[k::GOALS, ANY, k::AGREEMENTS], Map, Member, ORIGIN),
    row(&[k::GOALS, ANY, k::CHECKINS], Map, Member, ORIGIN),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY], Map, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY, k::TEXT], Text, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY, k::MEASURE], Str, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY, k::UNIT], Str, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY, k::DUE_ON], Str, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY, k::STATUS], Str, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::OBJECTIVES, ANY, k::TARGET], Number, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::INTERVENTIONS, ANY], Map, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::INTERVENTIONS, ANY, k::TEXT], Text, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::INTERVENTIONS, ANY, k::OWNER], Str, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::INTERVENTIONS, ANY, k::FREQUENCY], Str, PLAN_ITEMS, PLAN_ITEMS),
    row(&[k::GOALS, ANY, k::GAS, k::LEVELS], Map, Member, Who::Nobody("replaces a field that already exists")),
    row(&[k::GOALS, ANY, k::GAS, k::LEVELS, "-2"], Text, Member, Member),
    row(&[k::GOALS, ANY, k::GAS, k::LEVELS, "-1"], Text, Member, Member),
    row(&[k::GOALS, ANY, k::GAS, k::LEVELS, "0"], Text, Member, Member),
    row(&[k::GOALS, ANY, k::GAS, k::LEVELS, "1"], Text, Member, Member),
    row(&[k::GOALS, ANY, k::GAS, k::LEVELS, "2"], Text, Member, Member),
    row(&[k::GOALS, ANY, k::GAS, k::WEIGHT], Number, DEFAULT_WEIGHT, Who::Counselor("a goal's GAS weight")),
    row(&[k::GOALS, ANY, k::GAS, k::BASELINE], Int, Who::Counselor("a goal's GAS baseline"), Who::Counselor("a goal's GAS baseline")),
    row(&[k::GOALS, ANY, k::AGREEMENTS, ANY], Map, AGREEMENT, AGREEMENT),
    row(&[k::GOALS, ANY, k::AGREEMENTS, ANY, k::CONTENT_HASH], Str, AGREEMENT, AGREEMENT),
    row(&[k::GOALS, ANY, k::AGREEMENTS, ANY, k::AT], Int, AGREEMENT, AGREEMENT),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY], Map, Member, Member),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::BY], Str, OWN_CHECKIN, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::AT], Int, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::LOCAL_DATE], Str, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::TZ_OFFSET_MIN], Int, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::GAS_LEVEL], Int, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::VALUE], Number, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::MOOD], Int, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::CRAVING], Int, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::NOTE], Str, Member, APPEND_ONLY),
    row(&[k::GOALS, ANY, k::CHECKINS, ANY, k::CORRECTS], Str, Member, APPEND_ONLY),
];

/// The row of `path` (keys as written), or `None` for a path outside the plan's schema.
pub fn field(path: &[&str]) -> Option<&'static Field> {
    FIELDS.iter().find(|f| {
        f.path.len() == path.len()
            && f.path
                .iter()
                .zip(path)
                .all(|(row, key)| *row == ANY || row == key)
    })
}

/// The member writing, as the table sees them.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// Their member id, as the plan document spells it.
    pub member: &'a str,
    pub role: Role,
}

/// What a write puts in a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A string (`Put(Str)`).
    Str(&'a str),
    /// A floating-point number (`Put(F64)`).
    Number(f64),
    /// An integer (`Put(Int)`, `Put(Uint)`).
    Int(i64),
    /// An object made (`Make`), or a value the table does not look at.
    Other,
    /// Characters written into a text field.
    Characters,
}

/// One write to judge.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// The field's path, keys as written.
    pub path: &'a [&'a str],
    /// Whether the object holding the field was made by the same change (for text
    /// characters: whether the text itself was).
    pub fresh: bool,
    pub value: Value<'a>,
}

/// Whether `writer` may make `write`, by the row of its path. `goal_status` gives the status
/// of a goal by its key (for [`Who::ClientWhileProposed`]; `None` when unknown).
///
/// Errors: the rule the write breaks, in words without personal data; a path outside the
/// schema is refused as such.
pub fn judge(
    writer: Writer<'_>,
    write: Write<'_>,
    goal_status: &dyn Fn(&str) -> Option<GoalStatus>,
) -> Result<(), String> {
    let row = field(write.path)
        .filter(|row| row.kind == Kind::Text || write.value != Value::Characters)
        .ok_or_else(|| "writes outside the plan's schema".to_owned())?;
    let who = match (write.fresh, row.new, write.value) {
        // Text made empty by anyone: its characters are the `after` writer's.
        (true, Who::Empty, Value::Characters) => row.after,
        (true, new, _) => new,
        (false, _, _) => row.after,
    };
    let counselor = writer.role == Role::Counselor;
    let allowed = |ok: bool, rule: &str| if ok { Ok(()) } else { Err(rule.to_owned()) };
    match who {
        Who::Nobody(rule) => Err(rule.to_owned()),
        Who::Member | Who::Empty => Ok(()),
        Who::Counselor(what) => allowed(counselor, &format!("only a counselor writes {what}")),
        Who::OwnId {
            counselor_any,
            rule,
        } => allowed(
            (counselor && counselor_any) || write.value == Value::Str(writer.member),
            rule,
        ),
        Who::OwnKey(at, rule) => allowed(write.path.get(at) == Some(&writer.member), rule),
        Who::Only {
            value,
            counselor_any,
            rule,
        } => {
            let fixed = match (value, write.value) {
                (Fixed::Str(fixed), Value::Str(written)) => fixed == written,
                (Fixed::F64(fixed), Value::Number(written)) => fixed == written,
                _ => false,
            };
            allowed((counselor && counselor_any) || fixed, rule)
        }
        Who::ClientWhileProposed => {
            let goal = write.path.get(1).copied().unwrap_or_default();
            allowed(
                !counselor || matches!(goal_status(goal), Some(GoalStatus::Proposed) | None),
                "a counselor suggests the client's words only while the goal is proposed",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_row() {
        for (i, a) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[..i].iter().all(|b| b.path != a.path),
                "{:?} twice",
                a.path
            );
            assert!(std::ptr::eq(field(a.path).unwrap(), a), "{:?}", a.path);
        }
        assert!(field(&[k::GOALS, "g", "unknown"]).is_none());
        // A GAS scale has the five levels of `schema::GAS_LEVEL_KEYS` and no other.
        for level in k::GAS_LEVEL_KEYS {
            assert!(field(&[k::GOALS, "g", k::GAS, k::LEVELS, level]).is_some());
        }
        assert!(field(&[k::GOALS, "g", k::GAS, k::LEVELS, "3"]).is_none());
    }

    #[test]
    fn the_creation_change_writes_the_skeleton_members_and_devices_only() {
        for f in FIELDS.iter().filter(|f| f.at_creation) {
            let skeleton = f.path.len() == 1;
            let people = matches!(f.path[0], k::MEMBERS | k::DEVICES);
            assert!(skeleton || people, "{:?}", f.path);
        }
        for path in [
            &[k::REVIEW_ON][..],
            &[k::GOALS, "g"],
            &[k::DEVICES, "d", k::TOKEN_HASH],
            &[k::DEVICES, "d", k::REVOKED_AT],
        ] {
            assert!(field(path).is_some_and(|f| !f.at_creation), "{path:?}");
        }
    }

    fn client() -> Writer<'static> {
        Writer {
            member: "m-client",
            role: Role::Client,
        }
    }

    fn counselor() -> Writer<'static> {
        Writer {
            member: "m-counselor",
            role: Role::Counselor,
        }
    }

    fn judge_at(
        writer: Writer<'_>,
        path: &[&str],
        fresh: bool,
        value: Value<'_>,
        status: Option<GoalStatus>,
    ) -> Result<(), String> {
        judge(writer, Write { path, fresh, value }, &move |_| status)
    }

    #[test]
    fn rights_follow_the_rows() {
        let status = [k::GOALS, "g", k::STATUS];
        assert_eq!(
            judge_at(client(), &status, false, Value::Str("active"), None),
            Err("only a counselor writes a goal's status".into())
        );
        assert_eq!(
            judge_at(counselor(), &status, false, Value::Str("active"), None),
            Ok(())
        );
        assert!(judge_at(client(), &status, true, Value::Str("proposed"), None).is_ok());
        assert!(judge_at(counselor(), &status, true, Value::Str("active"), None).is_err());

        let words = [k::GOALS, "g", k::CLIENT_WORDS];
        let proposed = Some(GoalStatus::Proposed);
        let active = Some(GoalStatus::Active);
        assert!(judge_at(client(), &words, false, Value::Characters, active).is_ok());
        assert!(judge_at(counselor(), &words, false, Value::Characters, proposed).is_ok());
        assert!(judge_at(counselor(), &words, false, Value::Characters, active).is_err());

        let statement = [k::GOALS, "g", k::CLINICAL_STATEMENT];
        assert!(judge_at(client(), &statement, true, Value::Other, None).is_ok());
        assert!(judge_at(client(), &statement, true, Value::Characters, None).is_err());
        assert!(judge_at(counselor(), &statement, true, Value::Characters, None).is_ok());

        let agreement = [k::GOALS, "g", k::AGREEMENTS, "m-client", k::AT];
        assert!(judge_at(client(), &agreement, false, Value::Number(1.0), None).is_ok());
        assert!(judge_at(counselor(), &agreement, false, Value::Number(1.0), None).is_err());

        let by = [k::GOALS, "g", k::CHECKINS, "c", k::BY];
        assert!(judge_at(client(), &by, true, Value::Str("m-client"), None).is_ok());
        assert!(judge_at(counselor(), &by, true, Value::Str("m-client"), None).is_err());
        assert_eq!(
            judge_at(client(), &by, false, Value::Str("m-client"), None),
            Err("check-ins are append-only".into())
        );

        let owner = [k::DEVICES, "d", k::MEMBER_ID];
        assert!(judge_at(client(), &owner, true, Value::Str("m-client"), None).is_ok());
        assert!(judge_at(client(), &owner, true, Value::Str("m-counselor"), None).is_err());
        assert!(judge_at(counselor(), &owner, true, Value::Str("m-client"), None).is_ok());
        assert!(judge_at(client(), &owner, false, Value::Str("m-client"), None).is_err());

        let relay = [k::RELAY_KEY];
        assert!(judge_at(counselor(), &relay, false, Value::Str("k"), None).is_ok());
        assert_eq!(
            judge_at(client(), &relay, false, Value::Str("k"), None),
            Err("only a counselor writes the plan's relay key".into())
        );
        assert!(field(&relay).is_some_and(|f| !f.at_creation));

        let weight = [k::GOALS, "g", k::GAS, k::WEIGHT];
        let default = Value::Number(DEFAULT_GAS_WEIGHT);
        assert!(judge_at(client(), &weight, true, default, None).is_ok());
        assert!(judge_at(client(), &weight, true, Value::Number(2.0), None).is_err());
        assert!(judge_at(client(), &weight, false, default, None).is_err());

        assert_eq!(
            judge_at(
                counselor(),
                &[k::GOALS, "g", "nope"],
                false,
                Value::Other,
                None
            ),
            Err("writes outside the plan's schema".into())
        );
    }
}
