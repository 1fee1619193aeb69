//! Reads a plan document into model types: goals, derived agreement, conflicts, GAS T-score.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};

pub(crate) use super::fields::{get_i64, get_map, get_string, get_text_obj, goal_obj, Fields};
use super::hash::content_hash;
use super::schema as k;
use crate::error::{Error, Result};
use crate::model::{
    Agreement, AgreementState, AgreementStatus, CheckIn, CheckInId, Conflict, ConflictValue,
    Device, DeviceId, GasScale, Goal, GoalId, GoalStatus, Intervention, InterventionId, Member,
    MemberId, Objective, ObjectiveId, Plan, PlanId, Role,
};
use crate::{clinical_time, clock};

/// Whether the document holds a plan yet (a freshly synced document may still be empty).
pub fn is_plan<R: ReadDoc>(doc: &R) -> bool {
    get_string(doc, &ROOT, k::PLAN_ID).is_some()
}

/// The relay key a plan pins (`relay_key`, 64 hex digits), if any: unparsed.
pub fn relay_key<R: ReadDoc>(doc: &R) -> Option<String> {
    get_string(doc, &ROOT, k::RELAY_KEY)
}

/// The light catalog facts of a plan, without reading its goals.
pub struct Summary {
    pub plan_id: PlanId,
    pub title: String,
    pub review_on: Option<String>,
    pub client_name: Option<String>,
    pub goal_count: u32,
}

pub fn read_summary<R: ReadDoc>(doc: &R) -> Result<Summary> {
    let plan_id = read_plan_id(doc)?;
    let members = read_members(doc);
    Ok(Summary {
        plan_id,
        title: get_string(doc, &ROOT, k::TITLE).unwrap_or_default(),
        review_on: get_string(doc, &ROOT, k::REVIEW_ON),
        client_name: members
            .iter()
            .find(|m| m.role == Role::Client)
            .map(|m| m.name.clone()),
        goal_count: get_map(doc, &ROOT, k::GOALS)
            .map(|goals| doc.length(&goals) as u32)
            .unwrap_or(0),
    })
}

fn read_plan_id<R: ReadDoc>(doc: &R) -> Result<PlanId> {
    let text = get_string(doc, &ROOT, k::PLAN_ID)
        .ok_or_else(|| Error::Malformed("the document has no plan id".into()))?;
    PlanId::parse(&text).map_err(|_| Error::Malformed("the plan id is not a UUID".into()))
}

fn read_members<R: ReadDoc>(doc: &R) -> Vec<Member> {
    let Some(members) = get_map(doc, &ROOT, k::MEMBERS) else {
        return Vec::new();
    };
    let mut out: Vec<Member> = Fields::of(doc, &members)
        .maps()
        .filter_map(|(key, obj)| {
            let member_id = MemberId::parse(key).ok()?;
            let fields = Fields::of(doc, obj);
            let role = fields.string(doc, k::ROLE)?.parse().ok()?;
            Some(Member {
                member_id,
                name: fields.string(doc, k::NAME).unwrap_or_default(),
                role,
                added_at: fields.i64(k::ADDED_AT).unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|m| (m.added_at, m.member_id));
    out
}

pub(crate) fn read_devices<R: ReadDoc>(doc: &R) -> Vec<Device> {
    let Some(devices) = get_map(doc, &ROOT, k::DEVICES) else {
        return Vec::new();
    };
    let mut out: Vec<Device> = Fields::of(doc, &devices)
        .maps()
        .filter_map(|(key, obj)| {
            let device_id = DeviceId::parse(key).ok()?;
            let fields = Fields::of(doc, obj);
            Some(Device {
                device_id,
                member_id: MemberId::parse(&fields.string(doc, k::MEMBER_ID)?).ok()?,
                label: fields.string(doc, k::LABEL).unwrap_or_default(),
                added_at: fields.i64(k::ADDED_AT).unwrap_or(0),
                public_key: fields.string(doc, k::PUBLIC_KEY),
                revoked_at: fields.i64(k::REVOKED_AT),
            })
        })
        .collect();
    out.sort_by_key(|d| (d.added_at, d.device_id));
    out
}

/// Each enrolled device with the hash of its relay token and whether it is revoked.
pub(crate) fn read_device_access<R: ReadDoc>(doc: &R) -> Vec<super::DeviceAccess> {
    let Some(devices) = get_map(doc, &ROOT, k::DEVICES) else {
        return Vec::new();
    };
    let mut out: Vec<super::DeviceAccess> = Fields::of(doc, &devices)
        .maps()
        .filter_map(|(key, obj)| {
            let device_id = DeviceId::parse(key).ok()?;
            let fields = Fields::of(doc, obj);
            Some(super::DeviceAccess {
                device_id,
                token_hash: fields.string(doc, k::TOKEN_HASH),
                revoked: fields.i64(k::REVOKED_AT).is_some(),
                member_id: fields
                    .string(doc, k::MEMBER_ID)
                    .and_then(|member| MemberId::parse(&member).ok()),
            })
        })
        .collect();
    out.sort_by_key(|d| d.device_id);
    out
}

/// Names the author of a value by its Automerge actor.
struct Authors {
    by_device: HashMap<DeviceId, String>,
}

impl Authors {
    fn new(members: &[Member], devices: &[Device]) -> Self {
        let names: HashMap<MemberId, &str> = members
            .iter()
            .map(|m| (m.member_id, m.name.as_str()))
            .collect();
        let by_device = devices
            .iter()
            .filter_map(|d| Some((d.device_id, names.get(&d.member_id)?.to_string())))
            .collect();
        Self { by_device }
    }

    fn name_of(&self, actor: &automerge::ActorId) -> (String, String) {
        let device = DeviceId::from_actor(actor);
        let device_text = actor.to_hex_string();
        let name = device
            .and_then(|d| self.by_device.get(&d).cloned())
            .unwrap_or_else(|| "unknown device".to_owned());
        (name, device_text)
    }
}

fn json_of<R: ReadDoc>(doc: &R, value: &Value<'_>, id: &ObjId) -> serde_json::Value {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(text) => serde_json::Value::from(text.to_string()),
            ScalarValue::Int(n) => serde_json::Value::from(*n),
            ScalarValue::Uint(n) => serde_json::Value::from(*n),
            ScalarValue::F64(f) => serde_json::Value::from(*f),
            ScalarValue::Boolean(b) => serde_json::Value::from(*b),
            ScalarValue::Null => serde_json::Value::Null,
            other => serde_json::Value::from(other.to_string()),
        },
        Value::Object(ObjType::Text) => serde_json::Value::from(doc.text(id).unwrap_or_default()),
        Value::Object(_) => serde_json::Value::from("(object)"),
    }
}

/// The concurrent values of one field, when there is more than one.
fn conflict<R: ReadDoc>(
    doc: &R,
    (obj, fields): (&ObjId, &Fields),
    key: &str,
    field: String,
    authors: &Authors,
) -> Option<Conflict> {
    if !fields.conflicted(key) {
        return None;
    }
    let all = doc.get_all(obj, key).ok()?;
    if all.len() < 2 {
        return None;
    }
    let values = all
        .iter()
        .map(|(value, id)| {
            let (by, device_id) = match id {
                ObjId::Id(_, actor, _) => authors.name_of(actor),
                ObjId::Root => ("unknown device".to_owned(), String::new()),
            };
            ConflictValue {
                value: json_of(doc, value, id),
                by,
                device_id,
            }
        })
        .collect();
    Some(Conflict { field, values })
}

/// Reads the whole plan into model types.
pub fn read_plan<R: ReadDoc>(doc: &R) -> Result<Plan> {
    read_plan_with(doc, None, true)
}

/// Reads what the role rules need to judge a local edit: the plan with its members and
/// devices, and only `goal` of its goals (none when None), that goal's check-ins only when
/// `with_checkins` is set. The cost stays the same after a year of check-ins and edits; the
/// T-score and latest GAS levels of such a partial plan mean nothing.
pub fn read_plan_for_edit<R: ReadDoc>(
    doc: &R,
    goal: Option<GoalId>,
    with_checkins: bool,
) -> Result<Plan> {
    read_plan_with(doc, Some(goal), with_checkins)
}

/// The status of `goal`, read as [`read_plan`] reads it (a missing or unknown value is
/// `proposed`); None when the plan has no such goal. Three map lookups: what the role rules of
/// an edit that names a goal read of it (see `Alliance::edit_scoped`).
pub fn read_goal_status<R: ReadDoc>(doc: &R, goal: GoalId) -> Option<GoalStatus> {
    let obj = goal_obj(doc, goal).ok()?;
    Some(
        get_string(doc, &obj, k::STATUS)
            .and_then(|s| s.parse().ok())
            .unwrap_or(GoalStatus::Proposed),
    )
}

/// `only`: None reads every goal; Some(goal) reads only that goal (or none).
fn read_plan_with<R: ReadDoc>(
    doc: &R,
    only: Option<Option<GoalId>>,
    with_checkins: bool,
) -> Result<Plan> {
    let plan_id = read_plan_id(doc)?;
    let members = read_members(doc);
    let devices = read_devices(doc);
    let authors = Authors::new(&members, &devices);
    let mut goals = Vec::new();
    if let (Some(goals_obj), Some(only)) = (get_map(doc, &ROOT, k::GOALS), only) {
        if let Some(goal_id) = only {
            if let Some(obj) = get_map(doc, &goals_obj, &goal_id.to_string()) {
                goals.push(read_goal(
                    doc,
                    goal_id,
                    &obj,
                    (&members, &authors),
                    with_checkins,
                ));
            }
        }
    } else if let Some(goals_obj) = get_map(doc, &ROOT, k::GOALS) {
        for (key, obj) in Fields::of(doc, &goals_obj).maps() {
            let Ok(goal_id) = GoalId::parse(key) else {
                continue;
            };
            goals.push(read_goal(
                doc,
                goal_id,
                obj,
                (&members, &authors),
                with_checkins,
            ));
        }
    }
    goals.sort_by(|a, b| (&a.rank, a.goal_id).cmp(&(&b.rank, b.goal_id)));
    let mut plan = Plan {
        plan_id,
        title: get_string(doc, &ROOT, k::TITLE).unwrap_or_default(),
        review_on: get_string(doc, &ROOT, k::REVIEW_ON),
        created_at: get_i64(doc, &ROOT, k::CREATED_AT).unwrap_or(0),
        members,
        devices,
        gas_t_score: None,
        goals,
        client_today: String::new(),
    };
    // Latest levels, the T-score and the client's today need this device's clock.
    clinical_time::settle(&mut plan, clock::now_ms(), clock::local_offset_min);
    Ok(plan)
}

fn read_goal<R: ReadDoc>(
    doc: &R,
    goal_id: GoalId,
    obj: &ObjId,
    (members, authors): (&[Member], &Authors),
    with_checkins: bool,
) -> Goal {
    let fields = Fields::of(doc, obj);
    let client_words = fields.string(doc, k::CLIENT_WORDS).unwrap_or_default();
    let clinical_statement = fields
        .string(doc, k::CLINICAL_STATEMENT)
        .unwrap_or_default();
    let objectives = read_objectives(doc, &fields);
    let gas_obj = fields.map(k::GAS);
    let gas_fields = gas_obj.as_ref().map(|gas| Fields::of(doc, gas));
    let gas = read_gas(doc, gas_fields.as_ref());
    let hash = content_hash(&client_words, &clinical_statement, &objectives, &gas);
    let agreement = read_agreement(doc, &fields, members, &hash);
    let checkins = if with_checkins {
        read_checkins(doc, &fields)
    } else {
        Vec::new()
    };
    let mut conflicts = Vec::new();
    for key in [k::STATUS, k::LIFE_AREA] {
        conflicts.extend(conflict(doc, (obj, &fields), key, key.to_owned(), authors));
    }
    if let (Some(gas_obj), Some(gas_fields)) = (&gas_obj, &gas_fields) {
        for key in [k::WEIGHT, k::BASELINE] {
            let field = format!("gas.{key}");
            conflicts.extend(conflict(doc, (gas_obj, gas_fields), key, field, authors));
        }
    }
    if let Some(objectives_obj) = fields.map(k::OBJECTIVES) {
        let objectives_fields = Fields::of(doc, &objectives_obj);
        for objective in &objectives {
            let id = objective.objective_id.to_string();
            if let Some(o) = objectives_fields.map(&id) {
                let o_fields = Fields::of(doc, &o);
                for key in [k::MEASURE, k::TARGET, k::UNIT, k::DUE_ON, k::STATUS] {
                    let field = format!("objectives.{id}.{key}");
                    conflicts.extend(conflict(doc, (&o, &o_fields), key, field, authors));
                }
            }
        }
    }

    Goal {
        goal_id,
        proposed_by: fields
            .string(doc, k::PROPOSED_BY)
            .and_then(|s| MemberId::parse(&s).ok()),
        created_at: fields.i64(k::CREATED_AT).unwrap_or(0),
        rank: fields.string(doc, k::RANK).unwrap_or_default(),
        client_words,
        clinical_statement,
        life_area: fields.string(doc, k::LIFE_AREA).unwrap_or_default(),
        status: fields
            .string(doc, k::STATUS)
            .and_then(|s| s.parse().ok())
            .unwrap_or(GoalStatus::Proposed),
        content_hash: hash,
        agreement,
        objectives,
        interventions: read_interventions(doc, &fields),
        gas,
        checkins,
        // Derived with the plan's clock and calendar in `clinical_time::settle`.
        latest_gas_level: None,
        conflicts,
    }
}

fn read_objectives<R: ReadDoc>(doc: &R, goal: &Fields) -> Vec<Objective> {
    let Some(map) = goal.map(k::OBJECTIVES) else {
        return Vec::new();
    };
    Fields::of(doc, &map)
        .maps()
        .filter_map(|(key, o)| {
            let objective_id = ObjectiveId::parse(key).ok()?;
            let o = Fields::of(doc, o);
            Some(Objective {
                objective_id,
                text: o.string(doc, k::TEXT).unwrap_or_default(),
                measure: o.string(doc, k::MEASURE),
                target: o.f64(k::TARGET),
                unit: o.string(doc, k::UNIT),
                due_on: o.string(doc, k::DUE_ON),
                status: o
                    .string(doc, k::STATUS)
                    .unwrap_or_else(|| "open".to_owned()),
            })
        })
        .collect()
}

fn read_interventions<R: ReadDoc>(doc: &R, goal: &Fields) -> Vec<Intervention> {
    let Some(map) = goal.map(k::INTERVENTIONS) else {
        return Vec::new();
    };
    Fields::of(doc, &map)
        .maps()
        .filter_map(|(key, o)| {
            let intervention_id = InterventionId::parse(key).ok()?;
            let o = Fields::of(doc, o);
            Some(Intervention {
                intervention_id,
                text: o.string(doc, k::TEXT).unwrap_or_default(),
                owner: o
                    .string(doc, k::OWNER)
                    .and_then(|s| MemberId::parse(&s).ok()),
                frequency: o.string(doc, k::FREQUENCY),
            })
        })
        .collect()
}

fn read_gas<R: ReadDoc>(doc: &R, gas: Option<&Fields>) -> GasScale {
    let Some(gas) = gas else {
        return GasScale::default();
    };
    let levels: BTreeMap<String, String> = gas
        .map(k::LEVELS)
        .map(|levels| {
            let levels = Fields::of(doc, &levels);
            k::GAS_LEVEL_KEYS
                .iter()
                .filter_map(|key| Some((key.to_string(), levels.string(doc, key)?)))
                .collect()
        })
        .unwrap_or_default();
    GasScale {
        levels,
        weight: gas
            .f64(k::WEIGHT)
            .filter(|w| w.is_finite() && *w > 0.0)
            .unwrap_or(1.0),
        baseline: gas
            .i64(k::BASELINE)
            .filter(|b| (-2..=2).contains(b))
            .map(|b| b as i8),
    }
}

fn read_agreement<R: ReadDoc>(
    doc: &R,
    goal: &Fields,
    members: &[Member],
    current_hash: &str,
) -> AgreementStatus {
    let mut agreements: Vec<Agreement> = goal
        .map(k::AGREEMENTS)
        .map(|map| {
            Fields::of(doc, &map)
                .maps()
                .filter_map(|(key, entry)| {
                    let member_id = MemberId::parse(key).ok()?;
                    members.iter().find(|m| m.member_id == member_id)?;
                    let entry = Fields::of(doc, entry);
                    Some(Agreement {
                        member_id,
                        content_hash: entry.string(doc, k::CONTENT_HASH)?,
                        at: entry.i64(k::AT).unwrap_or(0),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    agreements.sort_by_key(|a| (a.at, a.member_id));
    derive_agreement(agreements, members, current_hash)
}

/// Agreement is derived, never stored as a flag: agreed when the client and at least one
/// counselor hold an agreement on the current content hash.
pub(crate) fn derive_agreement(
    agreements: Vec<Agreement>,
    members: &[Member],
    current_hash: &str,
) -> AgreementStatus {
    let agreed_by: Vec<MemberId> = agreements
        .iter()
        .filter(|a| a.content_hash == current_hash)
        .map(|a| a.member_id)
        .collect();
    let has_agreed = |role: Role| {
        members
            .iter()
            .any(|m| m.role == role && agreed_by.contains(&m.member_id))
    };
    let mut waiting_for = Vec::new();
    for role in [Role::Client, Role::Counselor] {
        if !has_agreed(role) {
            waiting_for.extend(
                members
                    .iter()
                    .filter(|m| m.role == role)
                    .map(|m| m.member_id),
            );
        }
    }
    let any_stale = agreements.iter().any(|a| a.content_hash != current_hash);
    let state = if has_agreed(Role::Client) && has_agreed(Role::Counselor) {
        AgreementState::Agreed
    } else if any_stale {
        AgreementState::Stale
    } else {
        AgreementState::Pending
    };
    AgreementStatus {
        state,
        agreed_by,
        waiting_for,
        agreements,
    }
}

fn read_checkins<R: ReadDoc>(doc: &R, goal: &Fields) -> Vec<CheckIn> {
    let Some(map) = goal.map(k::CHECKINS) else {
        return Vec::new();
    };
    let mut out: Vec<CheckIn> = Fields::of(doc, &map)
        .maps()
        .filter_map(|(key, c)| {
            let checkin_id = CheckInId::parse(key).ok()?;
            // Operation counters are Lamport clocks: the entry's place in the change graph.
            let causal_order = match c {
                ObjId::Id(counter, _, _) => *counter,
                ObjId::Root => 0,
            };
            let c = Fields::of(doc, c);
            Some(CheckIn {
                checkin_id,
                by: MemberId::parse(&c.string(doc, k::BY)?).ok()?,
                at: c.i64(k::AT).unwrap_or(0),
                local_date: c.string(doc, k::LOCAL_DATE).unwrap_or_default(),
                tz_offset_min: c.i64(k::TZ_OFFSET_MIN).unwrap_or(0) as i32,
                gas_level: c
                    .i64(k::GAS_LEVEL)
                    .filter(|l| (-2..=2).contains(l))
                    .map(|l| l as i8),
                value: c.f64(k::VALUE),
                mood: c
                    .i64(k::MOOD)
                    .filter(|m| (0..=10).contains(m))
                    .map(|m| m as u8),
                craving: c
                    .i64(k::CRAVING)
                    .filter(|m| (0..=10).contains(m))
                    .map(|m| m as u8),
                note: c.string(doc, k::NOTE).unwrap_or_default(),
                corrects: c
                    .string(doc, k::CORRECTS)
                    .and_then(|s| CheckInId::parse(&s).ok()),
                superseded: false,
                causal_order,
                future_dated: false,
            })
        })
        .collect();
    // A correction supersedes the entry it names, when both have the same author.
    let authors: HashMap<CheckInId, MemberId> = out.iter().map(|c| (c.checkin_id, c.by)).collect();
    let superseded: HashSet<CheckInId> = out
        .iter()
        .filter_map(|c| {
            let target = c.corrects?;
            (authors.get(&target) == Some(&c.by)).then_some(target)
        })
        .collect();
    for c in &mut out {
        c.superseded = superseded.contains(&c.checkin_id);
    }
    out.sort_by_key(|c| (c.at, c.checkin_id));
    out
}
