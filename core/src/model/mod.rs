//! Plain domain types of a goal plan: what counselors and clients read and write. No I/O.

mod gas;
mod ids;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use gas::{gas_t_score, GasRating, GAS_RHO};
pub use ids::{CheckInId, DeviceId, GoalId, InterventionId, MemberId, ObjectiveId, PlanId};

use crate::error::{Error, Result};

/// What a member is in a plan; decides what they may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Counselor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Counselor => "counselor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "client" => Ok(Role::Client),
            "counselor" => Ok(Role::Counselor),
            _ => Err(Error::invalid("role", "expected client or counselor")),
        }
    }
}

/// A goal's lifecycle: proposed → active → on_hold / achieved / discontinued. Goals are never
/// deleted; they end by status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalStatus {
    Proposed,
    Active,
    OnHold,
    Achieved,
    Discontinued,
}

impl GoalStatus {
    pub const ALL: [GoalStatus; 5] = [
        GoalStatus::Proposed,
        GoalStatus::Active,
        GoalStatus::OnHold,
        GoalStatus::Achieved,
        GoalStatus::Discontinued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::Proposed => "proposed",
            GoalStatus::Active => "active",
            GoalStatus::OnHold => "on_hold",
            GoalStatus::Achieved => "achieved",
            GoalStatus::Discontinued => "discontinued",
        }
    }

    /// Whether the lifecycle allows moving from `self` to `next`. Achieved and discontinued
    /// goals may be reopened (set active) when counselor and client decide so; nothing goes
    /// back to proposed once it left it.
    pub fn can_become(self, next: GoalStatus) -> bool {
        use GoalStatus::*;
        match (self, next) {
            (a, b) if a == b => true,
            (_, Proposed) => false,
            _ => true,
        }
    }
}

impl fmt::Display for GoalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GoalStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GoalStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s.trim())
            .ok_or_else(|| {
                Error::invalid(
                    "status",
                    "expected proposed, active, on_hold, achieved or discontinued",
                )
            })
    }
}

/// A person in a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub member_id: MemberId,
    pub name: String,
    pub role: Role,
    pub added_at: i64,
}

/// A device enrolled in a plan; its id is its Automerge actor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub device_id: DeviceId,
    pub member_id: MemberId,
    pub label: String,
    pub added_at: i64,
    /// The device's Ed25519 public key (64 hex digits) when it was enrolled with one: its
    /// changes are then accepted only with its signature. None for devices enrolled by id
    /// alone (plans from before signed changes, peers that cannot sign): SECURITY.md §6.
    #[serde(default)]
    pub public_key: Option<String>,
    /// When a counselor revoked the device (UTC ms): changes it makes knowing of it are
    /// refused everywhere (SECURITY.md §6, Revocation).
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// A goal plan as read from its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub plan_id: PlanId,
    pub title: String,
    pub review_on: Option<String>,
    pub created_at: i64,
    pub members: Vec<Member>,
    pub devices: Vec<Device>,
    pub goals: Vec<Goal>,
    /// Kiresuk–Sherman T-score over goals with a latest GAS level; None when none has one.
    /// Future-dated check-ins do not count (see [`crate::clinical_time`]).
    pub gas_t_score: Option<f64>,
    /// The client's calendar day when the plan was read (YYYY-MM-DD): this device's clock seen
    /// at the UTC offset of the client's latest check-in (this device's own offset while the
    /// client has none). Progress, summaries and exports count days to it.
    pub client_today: String,
}

impl Plan {
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == id)
    }
    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.iter().find(|d| d.device_id == id)
    }
    pub fn goal(&self, id: GoalId) -> Result<&Goal> {
        self.goals
            .iter()
            .find(|g| g.goal_id == id)
            .ok_or_else(|| Error::not_found("goal", id))
    }
    /// The member a device belongs to, through the plan's device list.
    pub fn member_of_device(&self, id: DeviceId) -> Option<&Member> {
        self.device(id).and_then(|d| self.member(d.member_id))
    }
    /// The plan's client (the first client member).
    pub fn client(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.role == Role::Client)
    }
}

/// A treatment goal, in the client's words and the counselor's clinical statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub goal_id: GoalId,
    pub proposed_by: Option<MemberId>,
    pub created_at: i64,
    pub rank: String,
    pub client_words: String,
    pub clinical_statement: String,
    pub life_area: String,
    pub status: GoalStatus,
    /// Hash of the agreed content: client words, clinical statement, objectives, GAS levels.
    pub content_hash: String,
    pub agreement: AgreementStatus,
    pub objectives: Vec<Objective>,
    pub interventions: Vec<Intervention>,
    pub gas: GasScale,
    pub checkins: Vec<CheckIn>,
    /// The GAS level of the latest check-in that rated one: latest by the client's day (a day
    /// not yet come counts as today), then by causal order; corrections applied, future-dated
    /// check-ins left out (see [`crate::clinical_time`]).
    pub latest_gas_level: Option<i8>,
    pub conflicts: Vec<Conflict>,
}

/// A SMART objective: specific text, a measure, a target and a due date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub objective_id: ObjectiveId,
    pub text: String,
    pub measure: Option<String>,
    pub target: Option<f64>,
    pub unit: Option<String>,
    pub due_on: Option<String>,
    pub status: String,
}

/// A strategy the counselor (or client) carries out, with its frequency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    pub intervention_id: InterventionId,
    pub text: String,
    pub owner: Option<MemberId>,
    pub frequency: Option<String>,
}

/// A goal's Goal Attainment Scale: five described levels, a weight and a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GasScale {
    /// Level ("-2".."2") → description.
    pub levels: BTreeMap<String, String>,
    pub weight: f64,
    pub baseline: Option<i8>,
}

impl Default for GasScale {
    fn default() -> Self {
        Self {
            levels: BTreeMap::new(),
            weight: 1.0,
            baseline: None,
        }
    }
}

/// One check-in. Entries are never edited: a correction is a new entry naming the old one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckIn {
    pub checkin_id: CheckInId,
    pub by: MemberId,
    /// UTC milliseconds.
    pub at: i64,
    /// The calendar day the client meant (YYYY-MM-DD), kept across time zones.
    pub local_date: String,
    pub tz_offset_min: i32,
    pub gas_level: Option<i8>,
    pub value: Option<f64>,
    pub mood: Option<u8>,
    pub craving: Option<u8>,
    pub note: String,
    pub corrects: Option<CheckInId>,
    /// True when a later entry corrects this one.
    pub superseded: bool,
    /// The counter of the operation that made the entry: a Lamport clock, so an entry made
    /// after its author saw another has a larger number, on every device. It orders a day's
    /// entries; no device clock enters it.
    pub causal_order: u64,
    /// Dated beyond this device's clock plus 36 hours (its author's clock was ahead, or it
    /// names a day not yet come): shown, but left out of latest levels, trends and T-scores
    /// until its day comes (see [`crate::clinical_time`]).
    pub future_dated: bool,
}

/// Whether counselor and client both agree to a goal's current content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementState {
    /// The client and at least one counselor agreed to the current content.
    Agreed,
    /// Someone still has to agree; nobody's agreement went stale.
    Pending,
    /// Someone agreed, then the content changed: needs re-agreement.
    Stale,
}

/// One member's agreement: a dated signature bound to a content hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub member_id: MemberId,
    pub content_hash: String,
    pub at: i64,
}

/// A goal's derived agreement state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgreementStatus {
    pub state: AgreementState,
    pub agreed_by: Vec<MemberId>,
    pub waiting_for: Vec<MemberId>,
    pub agreements: Vec<Agreement>,
}

/// Concurrent values of one field that Automerge kept: counselor and client settle them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub field: String,
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values, with who wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictValue {
    pub value: serde_json::Value,
    /// The member's name, or the device id when the device is unknown.
    pub by: String,
    pub device_id: String,
}

/// One change in a plan's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub hash: String,
    /// UTC milliseconds as recorded by the authoring device.
    pub at: i64,
    pub device_id: String,
    pub member_id: Option<MemberId>,
    /// The member's name, or "unknown device".
    pub author: String,
    pub description: String,
    /// True for a change from a peer that the role rules refused (it is not in the plan).
    pub refused: bool,
}

/// A change from a peer that the role rules refused: recorded, never stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedChange {
    pub change_hash: String,
    /// The peer that sent it (a device or the relay).
    pub peer: String,
    /// The Automerge actor that made it (a device id when it has that shape).
    pub device_id: String,
    pub member_id: Option<MemberId>,
    pub rule: String,
    /// The time the change claims (UTC milliseconds).
    pub change_at: i64,
    /// When this device refused it (UTC milliseconds).
    pub recorded_at: i64,
}

/// One of this device's own changes that it took out of a plan, kept with its bytes, and
/// replayed as a new change where it could be: a fork of its own history (a restored backup
/// or a copied store was used), or a change a peer refused (see `docs/design.md`, Nothing
/// lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAsideChange {
    pub change_hash: String,
    /// Why, in words without personal data (e.g. "refused by a peer: …").
    pub reason: String,
    /// The hash of the new change that carries the same operations; None when the change
    /// itself was refused, or when what it builds on is gone.
    pub replayed_as: Option<String>,
    /// When this device set it aside (UTC milliseconds).
    pub recorded_at: i64,
}

/// A plan as listed from the catalog, without loading its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub plan_id: PlanId,
    pub title: String,
    pub review_on: Option<String>,
    pub client_name: Option<String>,
    pub goal_count: u32,
    pub updated_at: i64,
}

/// This device's identity: who uses it and its actor id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub member_id: MemberId,
    pub device_id: DeviceId,
    pub name: String,
    pub role: Role,
}

/// Changes to a goal's fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoalEdit {
    pub client_words: Option<String>,
    pub clinical_statement: Option<String>,
    pub life_area: Option<String>,
    pub status: Option<GoalStatus>,
}

impl GoalEdit {
    pub fn is_empty(&self) -> bool {
        self == &GoalEdit::default()
    }
}

/// A new SMART objective.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewObjective {
    pub text: String,
    pub measure: Option<String>,
    pub target: Option<f64>,
    pub unit: Option<String>,
    pub due_on: Option<String>,
}

/// A new intervention.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewIntervention {
    pub text: String,
    pub owner: Option<MemberId>,
    pub frequency: Option<String>,
}

/// A new check-in. `local_date` and `tz_offset_min` default to the device's clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewCheckIn {
    pub gas_level: Option<i8>,
    pub value: Option<f64>,
    pub mood: Option<u8>,
    pub craving: Option<u8>,
    pub note: String,
    pub local_date: Option<String>,
    pub tz_offset_min: Option<i32>,
    pub corrects: Option<CheckInId>,
}

/// A change to a goal's GAS scale.
#[derive(Clone, Debug, PartialEq)]
pub enum GasEdit {
    /// Describe one level (-2..=2) in words.
    Level { level: i8, text: String },
    /// The goal's weight in the T-score.
    Weight(f64),
    /// The level at which the client starts.
    Baseline(i8),
}
