//! A plan as a FHIR R4 `Bundle` (type `collection`): the client as `Patient`, counselors as
//! `Practitioner`, the plan as `CarePlan`, one `Goal` per goal, `Observation`s for check-ins,
//! GAS levels and the plan's T-score, and one `Provenance` per agreement.
//!
//! Ids are stable: a resource made from one Alliance entity carries that entity's UUID; a
//! resource derived from one (a GAS level from a check-in, a Provenance from an agreement)
//! carries a name-based UUID of it. Every entry's `fullUrl` is `urn:uuid:<id>` and references
//! point there. Instants are UTC. No codes are invented: where no terminology fits, the
//! `CodeableConcept` carries text only.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{instant, PART2_NOTICE};
use crate::error::{Error, Result};
use crate::model::{AgreementState, CheckIn, Goal, GoalStatus, MemberId, Objective, Plan, Role};
use crate::progress::{gas_series, level_label, trend, Trend, DEFAULT_TREND_WINDOW};

/// The goal-acceptance extension of FHIR R4 core.
pub const GOAL_ACCEPTANCE: &str = "http://hl7.org/fhir/StructureDefinition/goal-acceptance";
/// The code system of `Goal.achievementStatus`.
pub const GOAL_ACHIEVEMENT: &str = "http://terminology.hl7.org/CodeSystem/goal-achievement";
/// The code system of confidentiality labels (`meta.security`).
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// Text of the check-in Observation's code (no standard code fits a free check-in).
pub const CHECKIN_CODE_TEXT: &str = "Check-in on a treatment goal";
/// Text of the GAS level Observation's code.
pub const GAS_LEVEL_CODE_TEXT: &str = "Goal Attainment Scaling level (-2 to +2)";
/// Text of the plan's GAS T-score Observation's code.
pub const T_SCORE_CODE_TEXT: &str = "Goal Attainment Scaling summary T-score";
/// The note on the Observations of a future-dated check-in (also marked `preliminary`).
pub const FUTURE_DATED_NOTE: &str = "future_dated: dated beyond the exporting device's clock \
plus 36 hours; not counted in the goal's latest level, trend or T-score until its day comes.";

/// A name-based UUID for a resource derived from an Alliance entity: the first 16 bytes of
/// SHA-256 over `alliance/fhir/<kind>/<key>`, marked as a version 8 (custom) UUID.
pub fn derived_id(kind: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("alliance/fhir/{kind}/{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// The id of the GAS level Observation made from a check-in.
pub fn gas_observation_id(checkin: &CheckIn) -> String {
    derived_id("gas-level", &checkin.checkin_id.to_string())
}

fn urn(id: &str) -> String {
    format!("urn:uuid:{id}")
}

fn entry(id: &str, resource: Value) -> Value {
    json!({ "fullUrl": urn(id), "resource": resource })
}

fn text_concept(text: &str) -> Value {
    json!({ "text": text })
}

/// A reference to a member of the plan: the client as Patient, a counselor as Practitioner.
fn member_ref(plan: &Plan, member: MemberId) -> Value {
    match plan.member(member) {
        Some(m) => json!({
            "reference": urn(&m.member_id.to_string()),
            "type": resource_type_of(m.role),
            "display": m.name,
        }),
        None => json!({ "display": "a former member of the plan" }),
    }
}

fn resource_type_of(role: Role) -> &'static str {
    match role {
        Role::Client => "Patient",
        Role::Counselor => "Practitioner",
    }
}

/// `Goal.lifecycleStatus`: a proposed goal that counselor and client agreed to is accepted.
pub fn lifecycle_status(goal: &Goal) -> &'static str {
    match goal.status {
        GoalStatus::Proposed if goal.agreement.state == AgreementState::Agreed => "accepted",
        GoalStatus::Proposed => "proposed",
        GoalStatus::Active => "active",
        GoalStatus::OnHold => "on-hold",
        GoalStatus::Achieved => "completed",
        GoalStatus::Discontinued => "cancelled",
    }
}

/// `Goal.achievementStatus` code: achieved goals are achieved; otherwise the GAS trend over
/// the last ratings as of `today` (the client's day); one rating only is in progress; none at
/// all gives no status.
pub fn achievement_code(goal: &Goal, today: &str) -> Option<(&'static str, &'static str)> {
    if goal.status == GoalStatus::Achieved {
        return Some(("achieved", "Achieved"));
    }
    let levels: Vec<i8> = gas_series(goal, today).iter().map(|p| p.level).collect();
    match trend(&levels, DEFAULT_TREND_WINDOW) {
        Some(Trend::Improving) => Some(("improving", "Improving")),
        Some(Trend::Worsening) => Some(("worsening", "Worsening")),
        Some(Trend::NoChange) => Some(("no-change", "No Change")),
        None if !levels.is_empty() => Some(("in-progress", "In Progress")),
        None => None,
    }
}

fn activity_status(status: GoalStatus) -> &'static str {
    match status {
        GoalStatus::Proposed => "not-started",
        GoalStatus::Active => "in-progress",
        GoalStatus::OnHold => "on-hold",
        GoalStatus::Achieved => "completed",
        GoalStatus::Discontinued => "stopped",
    }
}

fn care_plan_status(plan: &Plan) -> &'static str {
    let any = |statuses: &[GoalStatus]| plan.goals.iter().any(|g| statuses.contains(&g.status));
    if any(&[GoalStatus::Active, GoalStatus::OnHold]) {
        "active"
    } else if plan.goals.is_empty() || any(&[GoalStatus::Proposed]) {
        "draft"
    } else {
        "completed"
    }
}

/// The plan as a FHIR R4 Bundle of type collection, stamped `exported_at` (UTC ms).
pub fn bundle(plan: &Plan, exported_at: i64) -> Result<Value> {
    let client = plan
        .client()
        .ok_or_else(|| Error::invalid("plan", "has no client member"))?;
    let client_ref = member_ref(plan, client.member_id);
    let mut entries = Vec::new();
    for member in &plan.members {
        let id = member.member_id.to_string();
        let resource = json!({
            "resourceType": resource_type_of(member.role),
            "id": id,
            "active": true,
            "name": [{ "text": member.name }],
        });
        entries.push(entry(&id, resource));
    }
    entries.push(entry(
        &plan.plan_id.to_string(),
        care_plan(plan, &client_ref)?,
    ));
    for goal in &plan.goals {
        entries.push(entry(
            &goal.goal_id.to_string(),
            goal_resource(plan, goal, &client_ref),
        ));
    }
    for goal in &plan.goals {
        for checkin in &goal.checkins {
            let id = checkin.checkin_id.to_string();
            entries.push(entry(
                &id,
                checkin_observation(plan, goal, checkin, &client_ref)?,
            ));
            if let Some(level) = checkin.gas_level {
                let gas = gas_observation(plan, goal, checkin, level, &client_ref)?;
                entries.push(entry(&gas_observation_id(checkin), gas));
            }
        }
    }
    if let Some((id, observation)) = t_score_observation(plan, &client_ref)? {
        entries.push(entry(&id, observation));
    }
    for goal in &plan.goals {
        for agreement in &goal.agreement.agreements {
            let key = format!(
                "{}/{}/{}",
                goal.goal_id, agreement.member_id, agreement.content_hash
            );
            let id = derived_id("agreement", &key);
            let current = agreement.content_hash == goal.content_hash;
            let resource = json!({
                "resourceType": "Provenance",
                "id": id,
                "target": [{ "reference": urn(&goal.goal_id.to_string()), "type": "Goal" }],
                "recorded": instant(agreement.at)?,
                "activity": text_concept("Agreed to the goal's content (a dated signature)"),
                "agent": [{ "who": member_ref(plan, agreement.member_id) }],
                "entity": [{
                    "role": "source",
                    "what": {
                        "type": "Goal",
                        "identifier": {
                            "type": text_concept(
                                "Alliance content hash (first 128 bits of SHA-256)"
                            ),
                            "value": agreement.content_hash,
                        },
                        "display": if current {
                            "the goal's content as agreed; still current"
                        } else {
                            "the goal's content as agreed; changed since"
                        },
                    },
                }],
            });
            entries.push(entry(&id, resource));
        }
    }
    Ok(json!({
        "resourceType": "Bundle",
        "id": derived_id("bundle", &plan.plan_id.to_string()),
        "meta": {
            "security": [{
                "system": CONFIDENTIALITY,
                "code": "R",
                "display": "restricted",
            }],
        },
        "type": "collection",
        "timestamp": instant(exported_at)?,
        "entry": entries,
    }))
}

/// The id of the DocumentReference that carries a plan's review report.
pub fn report_id(plan: &Plan) -> String {
    derived_id("review-report", &plan.plan_id.to_string())
}

/// Title of the review report's attachment.
pub const REPORT_TITLE: &str = "Treatment plan review report";

/// Attaches the review report (`html`, printed at `printed_at`) to a bundle made by
/// [`bundle`]: a `DocumentReference` holding it as base64 `text/html`, referenced from the
/// CarePlan's `supportingInfo`.
pub fn attach_report(bundle: &mut Value, plan: &Plan, html: &str, printed_at: i64) -> Result<()> {
    use base64::Engine as _;
    let client = plan
        .client()
        .ok_or_else(|| Error::invalid("plan", "has no client member"))?;
    let id = report_id(plan);
    let plan_id = plan.plan_id.to_string();
    let mut resource = json!({
        "resourceType": "DocumentReference",
        "id": id,
        "status": "current",
        "docStatus": "final",
        "type": text_concept(REPORT_TITLE),
        "subject": member_ref(plan, client.member_id),
        "date": instant(printed_at)?,
        "description": "Goals in the client's words, agreement with dated signatures, \
                        objectives, GAS and T-score charts, mood and craving, check-in calendar",
        "securityLabel": [{
            "coding": [{ "system": CONFIDENTIALITY, "code": "R", "display": "restricted" }],
        }],
        "content": [{
            "attachment": {
                "contentType": "text/html",
                "language": "en",
                "data": base64::engine::general_purpose::STANDARD.encode(html.as_bytes()),
                "title": REPORT_TITLE,
                "creation": instant(printed_at)?,
            },
        }],
        "context": {
            "related": [{ "reference": urn(&plan_id), "type": "CarePlan" }],
        },
    });
    let authors: Vec<Value> = plan
        .members
        .iter()
        .filter(|m| m.role == Role::Counselor)
        .map(|m| member_ref(plan, m.member_id))
        .collect();
    if !authors.is_empty() {
        object(&mut resource)?.insert("author".into(), Value::Array(authors));
    }
    let entries = bundle
        .get_mut("entry")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::Malformed("a FHIR bundle without entries".into()))?;
    let care_plan = entries
        .iter_mut()
        .filter_map(|e| e.get_mut("resource"))
        .find(|r| r["resourceType"] == "CarePlan" && r["id"] == plan_id.as_str())
        .ok_or_else(|| Error::Malformed("a FHIR bundle without its CarePlan".into()))?;
    object(care_plan)?.insert(
        "supportingInfo".into(),
        json!([{ "reference": urn(&id), "type": "DocumentReference", "display": REPORT_TITLE }]),
    );
    entries.push(entry(&id, resource));
    Ok(())
}

fn care_plan(plan: &Plan, client_ref: &Value) -> Result<Value> {
    let mut counselors = plan.members.iter().filter(|m| m.role == Role::Counselor);
    let mut resource = json!({
        "resourceType": "CarePlan",
        "id": plan.plan_id.to_string(),
        "status": care_plan_status(plan),
        "intent": "plan",
        "title": plan.title,
        "subject": client_ref,
        "period": { "start": instant(plan.created_at)? },
        "created": instant(plan.created_at)?,
    });
    let map = object(&mut resource)?;
    if let Some(author) = counselors.next() {
        map.insert("author".into(), member_ref(plan, author.member_id));
    }
    let mut contributors = vec![client_ref.clone()];
    contributors.extend(counselors.map(|m| member_ref(plan, m.member_id)));
    map.insert("contributor".into(), Value::Array(contributors));
    if !plan.goals.is_empty() {
        let goals = plan
            .goals
            .iter()
            .map(|g| json!({ "reference": urn(&g.goal_id.to_string()), "type": "Goal" }))
            .collect();
        map.insert("goal".into(), Value::Array(goals));
    }
    let activities: Vec<Value> = plan
        .goals
        .iter()
        .flat_map(|goal| {
            goal.interventions.iter().map(move |i| {
                let mut detail = json!({
                    "status": activity_status(goal.status),
                    "description": i.text,
                    "goal": [{ "reference": urn(&goal.goal_id.to_string()), "type": "Goal" }],
                });
                if let Some(map) = detail.as_object_mut() {
                    if let Some(owner) = i.owner {
                        map.insert("performer".into(), json!([member_ref(plan, owner)]));
                    }
                    if let Some(frequency) = &i.frequency {
                        map.insert("scheduledString".into(), json!(frequency));
                    }
                }
                json!({ "detail": detail })
            })
        })
        .collect();
    if !activities.is_empty() {
        map.insert("activity".into(), Value::Array(activities));
    }
    let mut notes = Vec::new();
    if let Some(review_on) = &plan.review_on {
        notes.push(json!({ "text": format!("Next review on {review_on}.") }));
    }
    notes.push(json!({ "text": PART2_NOTICE }));
    map.insert("note".into(), Value::Array(notes));
    Ok(resource)
}

fn object(value: &mut Value) -> Result<&mut Map<String, Value>> {
    value
        .as_object_mut()
        .ok_or_else(|| Error::Malformed("a FHIR resource is not an object".into()))
}

/// One target per objective: the measure (or the objective itself) as text, the target as a
/// quantity when there is one (its unit as text: units are free text here), and the due date.
fn goal_target(objective: &Objective) -> Value {
    let measure = objective.measure.as_deref().unwrap_or(&objective.text);
    let mut target = json!({ "measure": text_concept(measure) });
    if let Some(map) = target.as_object_mut() {
        match objective.target {
            Some(value) => {
                let mut quantity = json!({ "value": value });
                if let (Some(unit), Some(q)) = (&objective.unit, quantity.as_object_mut()) {
                    q.insert("unit".into(), json!(unit));
                }
                map.insert("detailQuantity".into(), quantity);
            }
            None => {
                map.insert("detailString".into(), json!(objective.text));
            }
        }
        if let Some(due) = &objective.due_on {
            map.insert("dueDate".into(), json!(due));
        }
    }
    target
}

fn goal_resource(plan: &Plan, goal: &Goal, client_ref: &Value) -> Value {
    let acceptance: Vec<Value> = plan
        .members
        .iter()
        .map(|member| {
            let status = if goal.agreement.agreed_by.contains(&member.member_id) {
                "agree"
            } else {
                "pending"
            };
            json!({
                "url": GOAL_ACCEPTANCE,
                "extension": [
                    { "url": "individual", "valueReference": member_ref(plan, member.member_id) },
                    { "url": "status", "valueCode": status },
                ],
            })
        })
        .collect();
    let mut resource = json!({
        "resourceType": "Goal",
        "id": goal.goal_id.to_string(),
        "extension": acceptance,
        "lifecycleStatus": lifecycle_status(goal),
        "description": { "text": goal.client_words },
        "subject": client_ref,
    });
    let Some(map) = resource.as_object_mut() else {
        return resource;
    };
    if let Some((code, display)) = achievement_code(goal, &plan.client_today) {
        map.insert(
            "achievementStatus".into(),
            json!({
                "coding": [{ "system": GOAL_ACHIEVEMENT, "code": code, "display": display }],
                "text": display,
            }),
        );
    }
    if !goal.life_area.is_empty() {
        map.insert("category".into(), json!([text_concept(&goal.life_area)]));
    }
    if !goal.objectives.is_empty() {
        let targets = goal.objectives.iter().map(goal_target).collect();
        map.insert("target".into(), Value::Array(targets));
    }
    if let Some(by) = goal.proposed_by {
        map.insert("expressedBy".into(), member_ref(plan, by));
    }
    let mut notes = Vec::new();
    if !goal.clinical_statement.trim().is_empty() {
        notes.push(json!({ "text": goal.clinical_statement }));
    }
    // An objective whose words are not in its target (it has both a measure and a number).
    for objective in &goal.objectives {
        if objective.measure.is_some() && objective.target.is_some() {
            notes.push(json!({ "text": format!("Objective: {}", objective.text) }));
        }
    }
    if !goal.gas.levels.is_empty() {
        let mut lines = vec![format!(
            "Goal Attainment Scale (weight {}{}):",
            goal.gas.weight,
            goal.gas
                .baseline
                .map(|b| format!(", baseline {}", level_label(b)))
                .unwrap_or_default()
        )];
        for level in (-2i8..=2).rev() {
            if let Some(text) = goal.gas.levels.get(&level.to_string()) {
                lines.push(format!("{}: {text}", level_label(level)));
            }
        }
        notes.push(json!({ "text": lines.join("\n") }));
    }
    if !notes.is_empty() {
        map.insert("note".into(), Value::Array(notes));
    }
    let outcomes: Vec<Value> = goal
        .checkins
        .iter()
        .filter(|c| c.gas_level.is_some() && !c.superseded && !c.future_dated)
        .map(|c| json!({ "reference": urn(&gas_observation_id(c)), "type": "Observation" }))
        .collect();
    if !outcomes.is_empty() {
        map.insert("outcomeReference".into(), Value::Array(outcomes));
    }
    resource
}

/// Observation status of a check-in: a corrected entry was entered in error; a future-dated
/// one is preliminary (its date is not to be trusted yet: see [`FUTURE_DATED_NOTE`]); a
/// correction is a corrected value; anything else final.
fn observation_status(checkin: &CheckIn) -> &'static str {
    if checkin.superseded {
        "entered-in-error"
    } else if checkin.future_dated {
        "preliminary"
    } else if checkin.corrects.is_some() {
        "corrected"
    } else {
        "final"
    }
}

fn checkin_observation(
    plan: &Plan,
    goal: &Goal,
    checkin: &CheckIn,
    client_ref: &Value,
) -> Result<Value> {
    let mut components = vec![json!({
        "code": text_concept("Calendar day the client meant"),
        "valueDateTime": checkin.local_date,
    })];
    if let Some(mood) = checkin.mood {
        components.push(json!({
            "code": text_concept("Mood (0 to 10)"),
            "valueInteger": mood,
        }));
    }
    if let Some(craving) = checkin.craving {
        components.push(json!({
            "code": text_concept("Craving (0 to 10)"),
            "valueInteger": craving,
        }));
    }
    if let Some(value) = checkin.value {
        components.push(json!({
            "code": text_concept("Value recorded toward the goal"),
            "valueQuantity": { "value": value },
        }));
    }
    let mut resource = json!({
        "resourceType": "Observation",
        "id": checkin.checkin_id.to_string(),
        "status": observation_status(checkin),
        "code": text_concept(CHECKIN_CODE_TEXT),
        "subject": client_ref,
        "focus": [{ "reference": urn(&goal.goal_id.to_string()), "type": "Goal" }],
        "effectiveDateTime": instant(checkin.at)?,
        "issued": instant(checkin.at)?,
        "performer": [member_ref(plan, checkin.by)],
        "component": components,
    });
    let map = object(&mut resource)?;
    let mut notes = Vec::new();
    if !checkin.note.trim().is_empty() {
        notes.push(json!({ "text": checkin.note }));
    }
    if checkin.future_dated {
        notes.push(json!({ "text": FUTURE_DATED_NOTE }));
    }
    if !notes.is_empty() {
        map.insert("note".into(), Value::Array(notes));
    }
    if checkin.gas_level.is_some() {
        map.insert(
            "hasMember".into(),
            json!([{ "reference": urn(&gas_observation_id(checkin)), "type": "Observation" }]),
        );
    }
    Ok(resource)
}

fn gas_observation(
    plan: &Plan,
    goal: &Goal,
    checkin: &CheckIn,
    level: i8,
    client_ref: &Value,
) -> Result<Value> {
    let mut resource = json!({
        "resourceType": "Observation",
        "id": gas_observation_id(checkin),
        "status": observation_status(checkin),
        "code": text_concept(GAS_LEVEL_CODE_TEXT),
        "subject": client_ref,
        "focus": [{ "reference": urn(&goal.goal_id.to_string()), "type": "Goal" }],
        "effectiveDateTime": instant(checkin.at)?,
        "issued": instant(checkin.at)?,
        "performer": [member_ref(plan, checkin.by)],
        "valueInteger": level,
        "derivedFrom": [{
            "reference": urn(&checkin.checkin_id.to_string()),
            "type": "Observation",
        }],
    });
    let mut notes = Vec::new();
    if let Some(text) = goal.gas.levels.get(&level.to_string()) {
        notes.push(json!({ "text": text }));
    }
    if checkin.future_dated {
        notes.push(json!({ "text": FUTURE_DATED_NOTE }));
    }
    if !notes.is_empty() {
        object(&mut resource)?.insert("note".into(), Value::Array(notes));
    }
    Ok(resource)
}

/// The plan's current GAS T-score, derived from each goal's latest GAS level Observation.
fn t_score_observation(plan: &Plan, client_ref: &Value) -> Result<Option<(String, Value)>> {
    let Some(t_score) = plan.gas_t_score else {
        return Ok(None);
    };
    let latest: Vec<&CheckIn> = plan
        .goals
        .iter()
        .filter_map(|goal| {
            let point = gas_series(goal, &plan.client_today).pop()?;
            goal.checkins
                .iter()
                .find(|c| c.checkin_id == point.checkin_id)
        })
        .collect();
    let Some(effective) = latest.iter().map(|c| c.at).max() else {
        return Ok(None);
    };
    let id = derived_id("t-score", &plan.plan_id.to_string());
    let derived: Vec<Value> = latest
        .iter()
        .map(|c| json!({ "reference": urn(&gas_observation_id(c)), "type": "Observation" }))
        .collect();
    let resource = json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": text_concept(T_SCORE_CODE_TEXT),
        "subject": client_ref,
        "focus": [{ "reference": urn(&plan.plan_id.to_string()), "type": "CarePlan" }],
        "effectiveDateTime": instant(effective)?,
        "valueQuantity": { "value": (t_score * 100.0).round() / 100.0 },
        "derivedFrom": derived,
    });
    Ok(Some((id, resource)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_version_8_uuids() {
        let a = derived_id("gas-level", "x");
        assert_eq!(a, derived_id("gas-level", "x"));
        assert_ne!(a, derived_id("gas-level", "y"));
        assert_ne!(a, derived_id("agreement", "x"));
        let uuid = Uuid::parse_str(&a).unwrap();
        assert_eq!(uuid.get_version_num(), 8);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
    }
}
