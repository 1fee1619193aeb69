//! Writes a plan document by Automerge operations. Callers validate input and check the role
//! rules first; these functions only shape the document.

use std::collections::HashMap;

use automerge::transaction::{Transactable, Transaction};
use automerge::{hydrate, ObjId, ObjType, ScalarValue, ROOT};

use super::read::{get_map, get_text_obj, goal_obj};
use super::schema as k;
use crate::error::{Error, Result};
use crate::model::{
    CheckInId, DeviceId, GasEdit, GoalEdit, GoalId, InterventionId, MemberId, NewIntervention,
    NewObjective, ObjectiveId, PlanId, Role,
};

type Tx<'a> = Transaction<'a>;

/// A map field, created when missing.
fn ensure_map(tx: &mut Tx<'_>, obj: &ObjId, key: &str) -> Result<ObjId> {
    match get_map(tx, obj, key) {
        Some(id) => Ok(id),
        None => Ok(tx.put_object(obj, key, ObjType::Map)?),
    }
}

/// Sets a Text field to `text` by the smallest edit, so concurrent edits merge by character.
fn set_text(tx: &mut Tx<'_>, obj: &ObjId, key: &str, text: &str) -> Result<()> {
    let text_obj = match get_text_obj(tx, obj, key) {
        Some(id) => id,
        None => tx.put_object(obj, key, ObjType::Text)?,
    };
    tx.update_text(&text_obj, text)?;
    Ok(())
}

/// Puts a scalar only when it differs, so re-saving a value makes no change.
fn put_if_changed<V: Into<ScalarValue>>(
    tx: &mut Tx<'_>,
    obj: &ObjId,
    key: &str,
    value: V,
) -> Result<()> {
    let value = value.into();
    let same = matches!(
        automerge::ReadDoc::get_all(tx, obj, key),
        Ok(all) if all.len() == 1
            && matches!(&all[0].0, automerge::Value::Scalar(s) if s.as_ref() == &value)
    );
    if !same {
        tx.put(obj, key, value)?;
    }
    Ok(())
}

pub fn init_plan(tx: &mut Tx<'_>, plan_id: PlanId, title: &str, now: i64) -> Result<()> {
    tx.put(ROOT, k::SCHEMA, k::SCHEMA_VERSION)?;
    tx.put(ROOT, k::PLAN_ID, plan_id.to_string())?;
    tx.put(ROOT, k::CREATED_AT, now)?;
    set_text(tx, &ROOT, k::TITLE, title)?;
    tx.put_object(ROOT, k::MEMBERS, ObjType::Map)?;
    tx.put_object(ROOT, k::DEVICES, ObjType::Map)?;
    tx.put_object(ROOT, k::GOALS, ObjType::Map)?;
    Ok(())
}

pub fn set_title(tx: &mut Tx<'_>, title: &str) -> Result<()> {
    set_text(tx, &ROOT, k::TITLE, title)
}

/// Pins the relay that vouches for the plan's devices without a key (`relay_key`).
pub fn set_relay_key(tx: &mut Tx<'_>, key: &crate::authorship::PublicKey) -> Result<()> {
    put_if_changed(tx, &ROOT, k::RELAY_KEY, key.to_string())
}

pub fn set_review_on(tx: &mut Tx<'_>, date: &str) -> Result<()> {
    put_if_changed(tx, &ROOT, k::REVIEW_ON, date)
}

pub fn put_member(
    tx: &mut Tx<'_>,
    member: MemberId,
    name: &str,
    role: Role,
    now: i64,
) -> Result<()> {
    let members = ensure_map(tx, &ROOT, k::MEMBERS)?;
    let obj = tx.put_object(&members, member.to_string(), ObjType::Map)?;
    tx.put(&obj, k::ROLE, role.as_str())?;
    tx.put(&obj, k::NAME, name)?;
    tx.put(&obj, k::ADDED_AT, now)?;
    Ok(())
}

pub fn put_device(
    tx: &mut Tx<'_>,
    device: DeviceId,
    member: MemberId,
    label: &str,
    now: i64,
) -> Result<()> {
    let devices = ensure_map(tx, &ROOT, k::DEVICES)?;
    let obj = tx.put_object(&devices, device.to_string(), ObjType::Map)?;
    tx.put(&obj, k::MEMBER_ID, member.to_string())?;
    tx.put(&obj, k::LABEL, label)?;
    tx.put(&obj, k::ADDED_AT, now)?;
    Ok(())
}

/// Records a device's public key (`devices.<id>.public_key`): from then on its changes need its
/// signature (`crate::authorship`).
pub fn set_device_public_key(
    tx: &mut Tx<'_>,
    device: DeviceId,
    key: &crate::authorship::PublicKey,
) -> Result<()> {
    let devices = ensure_map(tx, &ROOT, k::DEVICES)?;
    let obj = ensure_map(tx, &devices, &device.to_string())?;
    tx.put(&obj, k::PUBLIC_KEY, key.to_string())?;
    Ok(())
}

/// Records the hash of a device's relay token (the token itself is never stored).
pub fn set_device_token_hash(tx: &mut Tx<'_>, device: DeviceId, token_hash: &str) -> Result<()> {
    let devices = ensure_map(tx, &ROOT, k::DEVICES)?;
    let obj = ensure_map(tx, &devices, &device.to_string())?;
    tx.put(&obj, k::TOKEN_HASH, token_hash)?;
    Ok(())
}

/// Marks a device revoked: a relay then refuses its token.
pub fn revoke_device(tx: &mut Tx<'_>, device: DeviceId, now: i64) -> Result<()> {
    let devices = ensure_map(tx, &ROOT, k::DEVICES)?;
    let obj = ensure_map(tx, &devices, &device.to_string())?;
    tx.put(&obj, k::REVOKED_AT, now)?;
    Ok(())
}

pub fn add_goal(
    tx: &mut Tx<'_>,
    goal: GoalId,
    proposed_by: MemberId,
    words: &str,
    rank: &str,
    now: i64,
) -> Result<()> {
    let goals = ensure_map(tx, &ROOT, k::GOALS)?;
    let obj = tx.put_object(&goals, goal.to_string(), ObjType::Map)?;
    tx.put(&obj, k::PROPOSED_BY, proposed_by.to_string())?;
    tx.put(&obj, k::CREATED_AT, now)?;
    tx.put(&obj, k::RANK, rank)?;
    set_text(tx, &obj, k::CLIENT_WORDS, words)?;
    tx.put_object(&obj, k::CLINICAL_STATEMENT, ObjType::Text)?;
    tx.put(&obj, k::LIFE_AREA, "")?;
    tx.put(&obj, k::STATUS, "proposed")?;
    tx.put_object(&obj, k::OBJECTIVES, ObjType::Map)?;
    tx.put_object(&obj, k::INTERVENTIONS, ObjType::Map)?;
    let gas = tx.put_object(&obj, k::GAS, ObjType::Map)?;
    tx.put_object(&gas, k::LEVELS, ObjType::Map)?;
    tx.put(&gas, k::WEIGHT, 1.0)?;
    tx.put_object(&obj, k::AGREEMENTS, ObjType::Map)?;
    tx.put_object(&obj, k::CHECKINS, ObjType::Map)?;
    Ok(())
}

pub fn edit_goal(tx: &mut Tx<'_>, goal: GoalId, edit: &GoalEdit) -> Result<()> {
    let obj = goal_obj(tx, goal)?;
    if let Some(words) = &edit.client_words {
        set_text(tx, &obj, k::CLIENT_WORDS, words)?;
    }
    if let Some(statement) = &edit.clinical_statement {
        set_text(tx, &obj, k::CLINICAL_STATEMENT, statement)?;
    }
    if let Some(area) = &edit.life_area {
        put_if_changed(tx, &obj, k::LIFE_AREA, area.as_str())?;
    }
    if let Some(status) = edit.status {
        put_if_changed(tx, &obj, k::STATUS, status.as_str())?;
    }
    Ok(())
}

pub fn add_objective(
    tx: &mut Tx<'_>,
    goal: GoalId,
    id: ObjectiveId,
    objective: &NewObjective,
) -> Result<()> {
    let goal_obj = goal_obj(tx, goal)?;
    let objectives = ensure_map(tx, &goal_obj, k::OBJECTIVES)?;
    let obj = tx.put_object(&objectives, id.to_string(), ObjType::Map)?;
    set_text(tx, &obj, k::TEXT, &objective.text)?;
    if let Some(measure) = &objective.measure {
        tx.put(&obj, k::MEASURE, measure.as_str())?;
    }
    if let Some(target) = objective.target {
        tx.put(&obj, k::TARGET, target)?;
    }
    if let Some(unit) = &objective.unit {
        tx.put(&obj, k::UNIT, unit.as_str())?;
    }
    if let Some(due) = &objective.due_on {
        tx.put(&obj, k::DUE_ON, due.as_str())?;
    }
    tx.put(&obj, k::STATUS, "open")?;
    Ok(())
}

pub fn add_intervention(
    tx: &mut Tx<'_>,
    goal: GoalId,
    id: InterventionId,
    intervention: &NewIntervention,
) -> Result<()> {
    let goal_obj = goal_obj(tx, goal)?;
    let interventions = ensure_map(tx, &goal_obj, k::INTERVENTIONS)?;
    let obj = tx.put_object(&interventions, id.to_string(), ObjType::Map)?;
    set_text(tx, &obj, k::TEXT, &intervention.text)?;
    if let Some(owner) = intervention.owner {
        tx.put(&obj, k::OWNER, owner.to_string())?;
    }
    if let Some(frequency) = &intervention.frequency {
        tx.put(&obj, k::FREQUENCY, frequency.as_str())?;
    }
    Ok(())
}

pub fn set_gas(tx: &mut Tx<'_>, goal: GoalId, edit: &GasEdit) -> Result<()> {
    let goal_obj = goal_obj(tx, goal)?;
    let gas = ensure_map(tx, &goal_obj, k::GAS)?;
    match edit {
        GasEdit::Level { level, text } => {
            let levels = ensure_map(tx, &gas, k::LEVELS)?;
            set_text(tx, &levels, &level.to_string(), text)
        }
        GasEdit::Weight(weight) => put_if_changed(tx, &gas, k::WEIGHT, *weight),
        GasEdit::Baseline(level) => put_if_changed(tx, &gas, k::BASELINE, i64::from(*level)),
    }
}

pub fn agree(
    tx: &mut Tx<'_>,
    goal: GoalId,
    member: MemberId,
    content_hash: &str,
    now: i64,
) -> Result<()> {
    let goal_obj = goal_obj(tx, goal)?;
    let agreements = ensure_map(tx, &goal_obj, k::AGREEMENTS)?;
    let entry = ensure_map(tx, &agreements, &member.to_string())?;
    tx.put(&entry, k::CONTENT_HASH, content_hash)?;
    tx.put(&entry, k::AT, now)?;
    Ok(())
}

/// A check-in with every field resolved (dates filled in, validated).
pub struct CheckInEntry<'a> {
    pub id: CheckInId,
    pub by: MemberId,
    pub at: i64,
    pub local_date: &'a str,
    pub tz_offset_min: i32,
    pub gas_level: Option<i8>,
    pub value: Option<f64>,
    pub mood: Option<u8>,
    pub craving: Option<u8>,
    pub note: &'a str,
    pub corrects: Option<CheckInId>,
}

pub fn add_checkin(tx: &mut Tx<'_>, goal: GoalId, entry: &CheckInEntry<'_>) -> Result<()> {
    let goal_obj = goal_obj(tx, goal)?;
    let checkins = ensure_map(tx, &goal_obj, k::CHECKINS)?;
    if get_map(tx, &checkins, &entry.id.to_string()).is_some() {
        return Err(Error::invalid("check-in id", "already used"));
    }
    // The check-in map and its fields go in as one batch: the same operations as a put per
    // field, but two splices into Automerge's op set instead of one per field (a check-in is
    // the edit a client makes most).
    let mut fields: HashMap<&str, hydrate::Value> = HashMap::new();
    let mut field = |key: &'static str, value: ScalarValue| {
        fields.insert(key, hydrate::Value::Scalar(value));
    };
    field(k::BY, ScalarValue::Str(entry.by.to_string().into()));
    field(k::AT, ScalarValue::Int(entry.at));
    field(k::LOCAL_DATE, ScalarValue::Str(entry.local_date.into()));
    field(
        k::TZ_OFFSET_MIN,
        ScalarValue::Int(i64::from(entry.tz_offset_min)),
    );
    if let Some(level) = entry.gas_level {
        field(k::GAS_LEVEL, ScalarValue::Int(i64::from(level)));
    }
    if let Some(value) = entry.value {
        field(k::VALUE, ScalarValue::F64(value));
    }
    if let Some(mood) = entry.mood {
        field(k::MOOD, ScalarValue::Int(i64::from(mood)));
    }
    if let Some(craving) = entry.craving {
        field(k::CRAVING, ScalarValue::Int(i64::from(craving)));
    }
    field(k::NOTE, ScalarValue::Str(entry.note.into()));
    if let Some(corrects) = entry.corrects {
        field(k::CORRECTS, ScalarValue::Str(corrects.to_string().into()));
    }
    let value = hydrate::Value::Map(fields.into());
    tx.batch_create_object(&checkins, entry.id.to_string(), &value, false)?;
    Ok(())
}
