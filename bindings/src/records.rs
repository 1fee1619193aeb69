//! The domain records the shells read: plain values converted from the core's model, ids as
//! strings, times as UTC milliseconds. Never an Automerge type.

use std::collections::HashMap;

use alliance_core as core;

use crate::sync::RefusedChange;

/// What a member is in a plan; decides what they may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    Client,
    Counselor,
}

impl From<core::Role> for Role {
    fn from(role: core::Role) -> Self {
        match role {
            core::Role::Client => Role::Client,
            core::Role::Counselor => Role::Counselor,
        }
    }
}

impl From<Role> for core::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Client => core::Role::Client,
            Role::Counselor => core::Role::Counselor,
        }
    }
}

/// A goal's lifecycle; goals are never deleted, they end by status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum GoalStatus {
    Proposed,
    Active,
    OnHold,
    Achieved,
    Discontinued,
}

impl From<core::GoalStatus> for GoalStatus {
    fn from(status: core::GoalStatus) -> Self {
        match status {
            core::GoalStatus::Proposed => GoalStatus::Proposed,
            core::GoalStatus::Active => GoalStatus::Active,
            core::GoalStatus::OnHold => GoalStatus::OnHold,
            core::GoalStatus::Achieved => GoalStatus::Achieved,
            core::GoalStatus::Discontinued => GoalStatus::Discontinued,
        }
    }
}

impl From<GoalStatus> for core::GoalStatus {
    fn from(status: GoalStatus) -> Self {
        match status {
            GoalStatus::Proposed => core::GoalStatus::Proposed,
            GoalStatus::Active => core::GoalStatus::Active,
            GoalStatus::OnHold => core::GoalStatus::OnHold,
            GoalStatus::Achieved => core::GoalStatus::Achieved,
            GoalStatus::Discontinued => core::GoalStatus::Discontinued,
        }
    }
}

/// This device's identity: who uses it, and the device id other members enroll.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Identity {
    pub member_id: String,
    pub device_id: String,
    pub name: String,
    pub role: Role,
}

impl From<core::Identity> for Identity {
    fn from(identity: core::Identity) -> Self {
        Self {
            member_id: identity.member_id.to_string(),
            device_id: identity.device_id.to_string(),
            name: identity.name,
            role: identity.role.into(),
        }
    }
}

/// One row of the plan list, read without opening the plan.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PlanSummary {
    pub plan_id: String,
    pub title: String,
    /// "YYYY-MM-DD", or none before the counselor sets one.
    pub review_on: Option<String>,
    pub client_name: Option<String>,
    pub goal_count: i32,
    pub updated_at: i64,
}

impl From<core::PlanSummary> for PlanSummary {
    fn from(summary: core::PlanSummary) -> Self {
        Self {
            plan_id: summary.plan_id.to_string(),
            title: summary.title,
            review_on: summary.review_on,
            client_name: summary.client_name,
            goal_count: i32::try_from(summary.goal_count).unwrap_or(i32::MAX),
            updated_at: summary.updated_at,
        }
    }
}

/// A person in a plan.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Member {
    pub member_id: String,
    pub name: String,
    pub role: Role,
    pub added_at: i64,
}

impl From<core::Member> for Member {
    fn from(member: core::Member) -> Self {
        Self {
            member_id: member.member_id.to_string(),
            name: member.name,
            role: member.role.into(),
            added_at: member.added_at,
        }
    }
}

/// A device enrolled in a plan.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Device {
    pub device_id: String,
    pub member_id: String,
    pub label: String,
    pub added_at: i64,
    /// The device's public key (64 hex digits) when it was enrolled from its enrollment code;
    /// none for a device enrolled by id alone, whose changes are trusted by their author id.
    pub public_key: Option<String>,
}

impl From<core::Device> for Device {
    fn from(device: core::Device) -> Self {
        Self {
            device_id: device.device_id.to_string(),
            member_id: device.member_id.to_string(),
            label: device.label,
            added_at: device.added_at,
            public_key: device.public_key,
        }
    }
}

/// A goal plan: its members, devices and goals, with conflicts inside each goal.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Plan {
    pub plan_id: String,
    pub title: String,
    pub review_on: Option<String>,
    pub created_at: i64,
    pub members: Vec<Member>,
    pub devices: Vec<Device>,
    pub goals: Vec<Goal>,
    /// Kiresuk–Sherman T-score over goals with a latest GAS level; none when no goal has one.
    /// Future-dated check-ins do not count.
    pub gas_t_score: Option<f64>,
    /// The client's calendar day as the plan was read, "YYYY-MM-DD": the same on every
    /// device (this device's clock at the UTC offset of the client's latest check-in).
    pub client_today: String,
}

impl From<core::Plan> for Plan {
    fn from(plan: core::Plan) -> Self {
        Self {
            plan_id: plan.plan_id.to_string(),
            title: plan.title,
            review_on: plan.review_on,
            created_at: plan.created_at,
            members: plan.members.into_iter().map(Into::into).collect(),
            devices: plan.devices.into_iter().map(Into::into).collect(),
            goals: plan.goals.into_iter().map(Into::into).collect(),
            gas_t_score: plan.gas_t_score,
            client_today: plan.client_today,
        }
    }
}

/// A goal in the client's words and the counselor's clinical statement.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Goal {
    pub goal_id: String,
    pub proposed_by: Option<String>,
    pub created_at: i64,
    /// Sort key among the plan's goals.
    pub rank: String,
    pub client_words: String,
    pub clinical_statement: String,
    pub life_area: String,
    pub status: GoalStatus,
    /// Hash of the content members agree to.
    pub content_hash: String,
    pub agreement: AgreementStatus,
    pub objectives: Vec<Objective>,
    pub interventions: Vec<Intervention>,
    pub gas: GasScale,
    pub checkins: Vec<CheckIn>,
    /// The GAS level of the latest check-in that rated one: by the client's day, then causal
    /// order; corrections applied, future-dated check-ins left out.
    pub latest_gas_level: Option<i32>,
    /// Values written concurrently on different devices, to settle together.
    pub conflicts: Vec<Conflict>,
}

impl From<core::Goal> for Goal {
    fn from(goal: core::Goal) -> Self {
        Self {
            goal_id: goal.goal_id.to_string(),
            proposed_by: goal.proposed_by.map(|m| m.to_string()),
            created_at: goal.created_at,
            rank: goal.rank,
            client_words: goal.client_words,
            clinical_statement: goal.clinical_statement,
            life_area: goal.life_area,
            status: goal.status.into(),
            content_hash: goal.content_hash,
            agreement: goal.agreement.into(),
            objectives: goal.objectives.into_iter().map(Into::into).collect(),
            interventions: goal.interventions.into_iter().map(Into::into).collect(),
            gas: goal.gas.into(),
            checkins: goal.checkins.into_iter().map(Into::into).collect(),
            latest_gas_level: goal.latest_gas_level.map(i32::from),
            conflicts: goal.conflicts.into_iter().map(Into::into).collect(),
        }
    }
}

/// A SMART objective of a goal.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Objective {
    pub objective_id: String,
    pub text: String,
    pub measure: Option<String>,
    pub target: Option<f64>,
    pub unit: Option<String>,
    pub due_on: Option<String>,
    pub status: String,
}

impl From<core::Objective> for Objective {
    fn from(objective: core::Objective) -> Self {
        Self {
            objective_id: objective.objective_id.to_string(),
            text: objective.text,
            measure: objective.measure,
            target: objective.target,
            unit: objective.unit,
            due_on: objective.due_on,
            status: objective.status,
        }
    }
}

/// A strategy for a goal, who carries it out and how often.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Intervention {
    pub intervention_id: String,
    pub text: String,
    pub owner: Option<String>,
    pub frequency: Option<String>,
}

impl From<core::Intervention> for Intervention {
    fn from(intervention: core::Intervention) -> Self {
        Self {
            intervention_id: intervention.intervention_id.to_string(),
            text: intervention.text,
            owner: intervention.owner.map(|m| m.to_string()),
            frequency: intervention.frequency,
        }
    }
}

/// A goal's Goal Attainment Scale.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct GasScale {
    /// Level (-2..=2) → its description; levels not yet described are absent.
    pub levels: HashMap<i32, String>,
    pub weight: f64,
    pub baseline: Option<i32>,
}

impl From<core::GasScale> for GasScale {
    fn from(gas: core::GasScale) -> Self {
        Self {
            levels: gas
                .levels
                .into_iter()
                .filter_map(|(level, text)| Some((level.parse().ok()?, text)))
                .collect(),
            weight: gas.weight,
            baseline: gas.baseline.map(i32::from),
        }
    }
}

/// One check-in; a correction is a new entry naming the one it corrects.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct CheckIn {
    pub checkin_id: String,
    pub by: String,
    /// UTC milliseconds.
    pub at: i64,
    /// The calendar day the member meant, "YYYY-MM-DD".
    pub local_date: String,
    pub tz_offset_min: i32,
    pub gas_level: Option<i32>,
    pub value: Option<f64>,
    pub mood: Option<i32>,
    pub craving: Option<i32>,
    pub note: String,
    pub corrects: Option<String>,
    /// A later entry corrects this one.
    pub superseded: bool,
    /// Dated beyond this device's clock plus 36 hours: shown, but not counted in latest
    /// levels, trends or T-scores until its day comes.
    pub future_dated: bool,
}

impl From<core::CheckIn> for CheckIn {
    fn from(checkin: core::CheckIn) -> Self {
        Self {
            checkin_id: checkin.checkin_id.to_string(),
            by: checkin.by.to_string(),
            at: checkin.at,
            local_date: checkin.local_date,
            tz_offset_min: checkin.tz_offset_min,
            gas_level: checkin.gas_level.map(i32::from),
            value: checkin.value,
            mood: checkin.mood.map(i32::from),
            craving: checkin.craving.map(i32::from),
            note: checkin.note,
            corrects: checkin.corrects.map(|c| c.to_string()),
            superseded: checkin.superseded,
            future_dated: checkin.future_dated,
        }
    }
}

/// Whether counselor and client both agree to a goal's current content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AgreementState {
    /// The client and at least one counselor agreed to the current content.
    Agreed,
    /// Someone still has to agree.
    Pending,
    /// Someone agreed, then the content changed: needs re-agreement.
    Stale,
}

impl From<core::AgreementState> for AgreementState {
    fn from(state: core::AgreementState) -> Self {
        match state {
            core::AgreementState::Agreed => AgreementState::Agreed,
            core::AgreementState::Pending => AgreementState::Pending,
            core::AgreementState::Stale => AgreementState::Stale,
        }
    }
}

/// One member's agreement, bound to the content hash it agreed to.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Agreement {
    pub member_id: String,
    pub content_hash: String,
    pub at: i64,
}

impl From<core::Agreement> for Agreement {
    fn from(agreement: core::Agreement) -> Self {
        Self {
            member_id: agreement.member_id.to_string(),
            content_hash: agreement.content_hash,
            at: agreement.at,
        }
    }
}

/// A goal's agreement, derived by the core from content hashes.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct AgreementStatus {
    pub state: AgreementState,
    pub agreed_by: Vec<String>,
    pub waiting_for: Vec<String>,
    pub agreements: Vec<Agreement>,
}

impl From<core::AgreementStatus> for AgreementStatus {
    fn from(status: core::AgreementStatus) -> Self {
        Self {
            state: status.state.into(),
            agreed_by: status.agreed_by.iter().map(ToString::to_string).collect(),
            waiting_for: status.waiting_for.iter().map(ToString::to_string).collect(),
            agreements: status.agreements.into_iter().map(Into::into).collect(),
        }
    }
}

/// Concurrent values of one field, kept for counselor and client to settle.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Conflict {
    pub field: String,
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values and who wrote it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ConflictValue {
    /// The value as JSON text.
    pub value_json: String,
    /// The member's name, or the device id when the device is unknown.
    pub by: String,
    pub device_id: String,
}

impl From<core::Conflict> for Conflict {
    fn from(conflict: core::Conflict) -> Self {
        Self {
            field: conflict.field,
            values: conflict
                .values
                .into_iter()
                .map(|v| ConflictValue {
                    value_json: v.value.to_string(),
                    by: v.by,
                    device_id: v.device_id,
                })
                .collect(),
        }
    }
}

/// One change in a plan's history.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct HistoryEntry {
    pub hash: String,
    /// UTC milliseconds as recorded by the authoring device.
    pub at: i64,
    pub device_id: String,
    pub member_id: Option<String>,
    /// The member's name, or "unknown device".
    pub author: String,
    pub description: String,
}

impl From<core::HistoryEntry> for HistoryEntry {
    fn from(entry: core::HistoryEntry) -> Self {
        Self {
            hash: entry.hash,
            at: entry.at,
            device_id: entry.device_id,
            member_id: entry.member_id.map(|m| m.to_string()),
            author: entry.author,
            description: entry.description,
        }
    }
}

/// What one in-process sync did.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct LocalSyncReport {
    /// Plans both stores now hold identically.
    pub plan_ids: Vec<String>,
    /// Sync messages exchanged, both directions.
    pub messages: i64,
    pub bytes: i64,
    /// Own changes of either store that the other one refused, now set aside by the store
    /// that made them (`device_id` says which).
    pub refused: Vec<RefusedChange>,
}

/// What an in-person session has done so far.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct InPersonReport {
    /// Plans synced with the other device.
    pub plan_ids: Vec<String>,
    /// Frames this side sent, and their bytes.
    pub frames_sent: i64,
    pub bytes_sent: i64,
    /// This device's own changes the other device refused, now set aside here.
    pub refused: Vec<RefusedChange>,
}

impl From<core::in_person::InPersonReport> for InPersonReport {
    fn from(report: core::in_person::InPersonReport) -> Self {
        Self {
            plan_ids: report.plans.iter().map(ToString::to_string).collect(),
            frames_sent: i64::try_from(report.frames_sent).unwrap_or(i64::MAX),
            bytes_sent: i64::try_from(report.bytes_sent).unwrap_or(i64::MAX),
            refused: report.refused.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<core::local_sync::LocalSyncReport> for LocalSyncReport {
    fn from(report: core::local_sync::LocalSyncReport) -> Self {
        Self {
            plan_ids: report.plans.iter().map(ToString::to_string).collect(),
            messages: i64::try_from(report.messages).unwrap_or(i64::MAX),
            bytes: i64::try_from(report.bytes).unwrap_or(i64::MAX),
            refused: report.refused.into_iter().map(Into::into).collect(),
        }
    }
}
