//! What a remote change's values may be: the kind each schema path holds (from the role table)
//! and the bounds of local validation (`model/validate.rs`), so a replica accepts every value a
//! local edit can write and no other.

use super::*;

/// The kind of value a schema path holds, from its row of the role table.
pub(super) fn kind_of(path: &[&str]) -> Option<Kind> {
    table::field(path).map(|f| f.kind)
}

pub(super) fn kind_matches(kind: Kind, action: &OpType) -> bool {
    match (kind, action) {
        (Kind::Map, OpType::Make(ObjType::Map)) => true,
        (Kind::Text, OpType::Make(ObjType::Text)) => true,
        (Kind::Str, OpType::Put(ScalarValue::Str(_))) => true,
        (Kind::Int, OpType::Put(ScalarValue::Int(_) | ScalarValue::Uint(_))) => true,
        (Kind::Int, OpType::Put(ScalarValue::F64(f))) => f.fract() == 0.0,
        (
            Kind::Number,
            OpType::Put(ScalarValue::F64(_) | ScalarValue::Int(_) | ScalarValue::Uint(_)),
        ) => true,
        _ => false,
    }
}

pub(super) fn str_value(op: &Op) -> Option<&str> {
    match &op.action {
        OpType::Put(ScalarValue::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}

pub(super) fn number_value(op: &Op) -> Option<f64> {
    match &op.action {
        OpType::Put(ScalarValue::F64(f)) => Some(*f),
        OpType::Put(ScalarValue::Int(n)) => Some(*n as f64),
        OpType::Put(ScalarValue::Uint(n)) => Some(*n as f64),
        _ => None,
    }
}

pub(super) fn int_value(op: &Op) -> Option<i64> {
    match &op.action {
        OpType::Put(ScalarValue::Int(n)) => Some(*n),
        OpType::Put(ScalarValue::Uint(n)) => i64::try_from(*n).ok(),
        OpType::Put(ScalarValue::F64(f)) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// A GAS level as local validation accepts it.
pub(super) fn is_gas_level(value: i64) -> bool {
    i8::try_from(value).is_ok_and(|level| validate::gas_level(level).is_ok())
}

/// A rating (mood, craving) as local validation accepts it.
pub(super) fn is_rating(value: i64) -> bool {
    u8::try_from(value).is_ok_and(|rating| validate::rating("rating", rating).is_ok())
}

pub(super) fn goal_status(work: &View<'_>, goal: &str) -> Option<GoalStatus> {
    let goal = crate::model::GoalId::parse(goal).ok()?;
    let obj = goal_obj(work, goal).ok()?;
    get_string(work, &obj, k::STATUS)?.parse().ok()
}

/// Refuses a value that local validation never writes, checked with the same functions
/// (`model::validate`), so that a replica accepts every value a local edit can write and no
/// other. Fields local validation does not bound (ids, times, statuses) pass.
pub(super) fn judge_value(parts: &[&str], op: &Op) -> Rule {
    let label = |field| str_value(op).is_some_and(|s| validate::label(field, s).is_ok());
    let date = |field| str_value(op).is_some_and(|s| validate::date(field, s).is_ok());
    let number = || number_value(op).is_some_and(|n| validate::number("number", n).is_ok());
    let (valid, what) = match parts {
        [k::GOALS, _, k::STATUS] => {
            return match str_value(op).map(str::parse::<GoalStatus>) {
                Some(Ok(_)) => Ok(()),
                _ => refuse("writes an unknown goal status"),
            }
        }
        [k::REVIEW_ON] => (date("review date"), "review date"),
        [k::MEMBERS, _, k::NAME] => (label("name"), "name"),
        [k::MEMBERS, _, k::ROLE] => (
            str_value(op).is_some_and(|r| r.parse::<Role>().is_ok()),
            "role",
        ),
        [k::DEVICES, _, k::LABEL] => (label("device label"), "device label"),
        [k::RELAY_KEY] => (
            str_value(op).is_some_and(|key| crate::authorship::PublicKey::parse(key).is_ok()),
            "relay key",
        ),
        [k::DEVICES, _, k::PUBLIC_KEY] => (
            str_value(op).is_some_and(|key| crate::authorship::PublicKey::parse(key).is_ok()),
            "public key",
        ),
        [k::GOALS, _, k::LIFE_AREA] => {
            (str_value(op) == Some("") || label("life area"), "life area")
        }
        [k::GOALS, _, k::OBJECTIVES, _, k::MEASURE | k::UNIT]
        | [k::GOALS, _, k::INTERVENTIONS, _, k::FREQUENCY] => (label("label"), "label"),
        [k::GOALS, _, k::OBJECTIVES, _, k::DUE_ON] => (date("due date"), "due date"),
        [k::GOALS, _, k::OBJECTIVES, _, k::TARGET] => (number(), "target"),
        [k::GOALS, _, k::GAS, k::WEIGHT] => (
            number_value(op).is_some_and(|w| validate::gas_weight(w).is_ok()),
            "GAS weight",
        ),
        [k::GOALS, _, k::GAS, k::BASELINE] | [k::GOALS, _, k::CHECKINS, _, k::GAS_LEVEL] => {
            if int_value(op).is_some_and(is_gas_level) {
                return Ok(());
            }
            return refuse(format!(
                "writes a GAS level outside {}..{}",
                validate::GAS_LEVELS.start(),
                validate::GAS_LEVELS.end()
            ));
        }
        [k::GOALS, _, k::CHECKINS, _, k::MOOD | k::CRAVING] => {
            if int_value(op).is_some_and(is_rating) {
                return Ok(());
            }
            return refuse(format!(
                "writes a rating outside {}..{}",
                validate::RATINGS.start(),
                validate::RATINGS.end()
            ));
        }
        [k::GOALS, _, k::CHECKINS, _, k::LOCAL_DATE] => (date("date"), "check-in date"),
        [k::GOALS, _, k::CHECKINS, _, k::TZ_OFFSET_MIN] => (
            int_value(op)
                .and_then(|m| i32::try_from(m).ok())
                .is_some_and(|m| validate::tz_offset(m).is_ok()),
            "time-zone offset",
        ),
        [k::GOALS, _, k::CHECKINS, _, k::VALUE] => (number(), "check-in value"),
        [k::GOALS, _, k::CHECKINS, _, k::NOTE] => (
            str_value(op).is_some_and(|s| validate::optional_text("note", s).is_ok()),
            "note",
        ),
        _ => (true, ""),
    };
    if valid {
        Ok(())
    } else {
        refuse(format!("writes an invalid {what}"))
    }
}
