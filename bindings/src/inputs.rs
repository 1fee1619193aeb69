//! What the shells give: new plans, devices, goal edits, objectives, GAS edits and check-ins.
//! Converted to the core's inputs by parsing ids and narrowing numbers; the core validates.

use alliance_core as core;

use crate::error::ApiError;
use crate::records::{GoalStatus, Role};

/// Parses an id string; a malformed one is `InvalidInput`.
pub(crate) fn parse<T>(text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = core::Error>,
{
    text.parse().map_err(ApiError::from)
}

fn parse_optional<T>(text: Option<&str>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr<Err = core::Error>,
{
    text.map(parse).transpose()
}

/// Narrows a number the FFI carries as `i32` to the core's smaller type.
fn narrow<T: TryFrom<i32>>(field: &str, value: i32) -> Result<T, ApiError> {
    T::try_from(value).map_err(|_| ApiError::out_of_range(field))
}

fn narrow_optional<T: TryFrom<i32>>(
    field: &str,
    value: Option<i32>,
) -> Result<Option<T>, ApiError> {
    value.map(|v| narrow(field, v)).transpose()
}

/// What a counselor gives to start a plan.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewPlan {
    pub title: String,
    pub client_name: String,
    /// The client's member id when they already use Alliance; a new one otherwise.
    #[uniffi(default = None)]
    pub client_member_id: Option<String>,
    /// The client's device to enroll right away.
    #[uniffi(default = None)]
    pub client_device_id: Option<String>,
}

impl TryFrom<NewPlan> for core::NewPlan {
    type Error = ApiError;
    fn try_from(new: NewPlan) -> Result<Self, ApiError> {
        Ok(Self {
            client_member: parse_optional(new.client_member_id.as_deref())?,
            client_device: parse_optional(new.client_device_id.as_deref())?,
            title: new.title,
            client_name: new.client_name,
        })
    }
}

/// A device to enroll in a plan; name and role are needed when the member is new to the plan.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewDevice {
    pub device_id: String,
    pub member_id: String,
    pub label: String,
    #[uniffi(default = None)]
    pub new_member: Option<NewMember>,
}

/// A member joining a plan with a device.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewMember {
    pub name: String,
    pub role: Role,
}

impl TryFrom<NewDevice> for core::NewDevice {
    type Error = ApiError;
    fn try_from(new: NewDevice) -> Result<Self, ApiError> {
        Ok(Self {
            device: parse(&new.device_id)?,
            member: parse(&new.member_id)?,
            new_member: new.new_member.map(|m| (m.name, m.role.into())),
            label: new.label,
        })
    }
}

/// Changes to a goal; a field left out stays as it is.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct GoalEdit {
    #[uniffi(default = None)]
    pub client_words: Option<String>,
    #[uniffi(default = None)]
    pub clinical_statement: Option<String>,
    #[uniffi(default = None)]
    pub life_area: Option<String>,
    #[uniffi(default = None)]
    pub status: Option<GoalStatus>,
}

impl From<GoalEdit> for core::GoalEdit {
    fn from(edit: GoalEdit) -> Self {
        Self {
            client_words: edit.client_words,
            clinical_statement: edit.clinical_statement,
            life_area: edit.life_area,
            status: edit.status.map(Into::into),
        }
    }
}

/// A new SMART objective.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewObjective {
    pub text: String,
    #[uniffi(default = None)]
    pub measure: Option<String>,
    #[uniffi(default = None)]
    pub target: Option<f64>,
    #[uniffi(default = None)]
    pub unit: Option<String>,
    /// "YYYY-MM-DD".
    #[uniffi(default = None)]
    pub due_on: Option<String>,
}

impl From<NewObjective> for core::NewObjective {
    fn from(new: NewObjective) -> Self {
        Self {
            text: new.text,
            measure: new.measure,
            target: new.target,
            unit: new.unit,
            due_on: new.due_on,
        }
    }
}

/// A new intervention.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewIntervention {
    pub text: String,
    /// The member who carries it out.
    #[uniffi(default = None)]
    pub owner: Option<String>,
    #[uniffi(default = None)]
    pub frequency: Option<String>,
}

impl TryFrom<NewIntervention> for core::NewIntervention {
    type Error = ApiError;
    fn try_from(new: NewIntervention) -> Result<Self, ApiError> {
        Ok(Self {
            owner: parse_optional(new.owner.as_deref())?,
            text: new.text,
            frequency: new.frequency,
        })
    }
}

/// A change to a goal's GAS scale.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum GasEdit {
    /// Describe one level (-2..=2) in words (both roles).
    Level { level: i32, text: String },
    /// The goal's weight in the T-score (counselor).
    Weight { weight: f64 },
    /// The level at which the client starts (counselor).
    Baseline { level: i32 },
}

impl TryFrom<GasEdit> for core::GasEdit {
    type Error = ApiError;
    fn try_from(edit: GasEdit) -> Result<Self, ApiError> {
        Ok(match edit {
            GasEdit::Level { level, text } => core::GasEdit::Level {
                level: narrow("gas level", level)?,
                text,
            },
            GasEdit::Weight { weight } => core::GasEdit::Weight(weight),
            GasEdit::Baseline { level } => core::GasEdit::Baseline(narrow("gas baseline", level)?),
        })
    }
}

/// A new check-in. The day and the time zone default to the device's clock.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct NewCheckIn {
    /// -2..=2.
    #[uniffi(default = None)]
    pub gas_level: Option<i32>,
    #[uniffi(default = None)]
    pub value: Option<f64>,
    /// 0..=10.
    #[uniffi(default = None)]
    pub mood: Option<i32>,
    /// 0..=10.
    #[uniffi(default = None)]
    pub craving: Option<i32>,
    #[uniffi(default = "")]
    pub note: String,
    /// "YYYY-MM-DD", the day the member means.
    #[uniffi(default = None)]
    pub local_date: Option<String>,
    #[uniffi(default = None)]
    pub tz_offset_min: Option<i32>,
    /// The check-in this one corrects.
    #[uniffi(default = None)]
    pub corrects: Option<String>,
}

impl TryFrom<NewCheckIn> for core::NewCheckIn {
    type Error = ApiError;
    fn try_from(new: NewCheckIn) -> Result<Self, ApiError> {
        Ok(Self {
            gas_level: narrow_optional("gas level", new.gas_level)?,
            value: new.value,
            mood: narrow_optional("mood", new.mood)?,
            craving: narrow_optional("craving", new.craving)?,
            note: new.note,
            local_date: new.local_date,
            tz_offset_min: new.tz_offset_min,
            corrects: parse_optional(new.corrects.as_deref())?,
        })
    }
}
