//! Progress on a plan as the shells chart it: each goal's GAS series, latest level and trend,
//! the client's check-in days, and the plan's T-score over time. Converted from the core's
//! progress, which reads the plan model only.

use alliance_core::progress as core_progress;

use crate::alliance::Alliance;
use crate::error::ApiError;
use crate::inputs::parse;

/// Where a goal's GAS levels are heading over its latest ratings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Trend {
    Improving,
    Worsening,
    NoChange,
}

impl From<core_progress::Trend> for Trend {
    fn from(trend: core_progress::Trend) -> Self {
        match trend {
            core_progress::Trend::Improving => Trend::Improving,
            core_progress::Trend::Worsening => Trend::Worsening,
            core_progress::Trend::NoChange => Trend::NoChange,
        }
    }
}

/// One GAS rating of a goal: the check-in that gave it and the client's day.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct GasPoint {
    pub checkin_id: String,
    /// UTC milliseconds.
    pub at: i64,
    /// The client's calendar day, "YYYY-MM-DD".
    pub local_date: String,
    /// -2..=2.
    pub level: i32,
}

impl From<core_progress::GasPoint> for GasPoint {
    fn from(point: core_progress::GasPoint) -> Self {
        Self {
            checkin_id: point.checkin_id.to_string(),
            at: point.at,
            local_date: point.local_date,
            level: i32::from(point.level),
        }
    }
}

/// Distinct days the client checked in, counted back from today (included) on the client's
/// calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CheckInDays {
    pub last_7_days: i32,
    pub last_30_days: i32,
}

impl From<core_progress::CheckInDays> for CheckInDays {
    fn from(days: core_progress::CheckInDays) -> Self {
        Self {
            last_7_days: i32::try_from(days.last_7_days).unwrap_or(i32::MAX),
            last_30_days: i32::try_from(days.last_30_days).unwrap_or(i32::MAX),
        }
    }
}

/// One goal's progress.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct GoalProgress {
    pub goal_id: String,
    /// GAS ratings ordered by the client's days (then by time), corrections applied.
    pub series: Vec<GasPoint>,
    pub latest_level: Option<i32>,
    /// None with fewer than two ratings.
    pub trend: Option<Trend>,
    /// Days on which the client checked in on this goal.
    pub days_checked_in: CheckInDays,
}

impl From<core_progress::GoalProgress> for GoalProgress {
    fn from(goal: core_progress::GoalProgress) -> Self {
        Self {
            goal_id: goal.goal_id.to_string(),
            series: goal.series.into_iter().map(Into::into).collect(),
            latest_level: goal.latest_level.map(i32::from),
            trend: goal.trend.map(Into::into),
            days_checked_in: goal.days_checked_in.into(),
        }
    }
}

/// The plan's GAS T-score at the end of one of the client's days.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct TScorePoint {
    pub local_date: String,
    pub t_score: f64,
}

impl From<core_progress::TScorePoint> for TScorePoint {
    fn from(point: core_progress::TScorePoint) -> Self {
        Self {
            local_date: point.local_date,
            t_score: point.t_score,
        }
    }
}

/// A plan's progress as of the client's today (their calendar day, the same on every device).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PlanProgress {
    /// The day counted as today, "YYYY-MM-DD".
    pub as_of: String,
    /// How many latest ratings each trend looks at.
    pub trend_window: i32,
    pub goals: Vec<GoalProgress>,
    /// The T-score after each day on which some goal was rated, oldest first.
    pub t_scores: Vec<TScorePoint>,
    /// Days on which the client checked in on any goal.
    pub days_checked_in: CheckInDays,
}

impl From<core_progress::PlanProgress> for PlanProgress {
    fn from(progress: core_progress::PlanProgress) -> Self {
        Self {
            as_of: progress.as_of,
            trend_window: i32::try_from(progress.trend_window).unwrap_or(i32::MAX),
            goals: progress.goals.into_iter().map(Into::into).collect(),
            t_scores: progress.t_scores.into_iter().map(Into::into).collect(),
            days_checked_in: progress.days_checked_in.into(),
        }
    }
}

#[uniffi::export]
impl Alliance {
    /// The plan's progress as of the client's today (their calendar day, the same on every
    /// device). Trends look at the last `trend_window` GAS ratings of each goal (at least 2; 3
    /// when none is given); future-dated check-ins do not count.
    pub async fn progress(
        &self,
        plan_id: String,
        trend_window: Option<u32>,
    ) -> Result<PlanProgress, ApiError> {
        let plan = parse(&plan_id)?;
        let window = match trend_window {
            Some(window) => {
                usize::try_from(window).map_err(|_| ApiError::out_of_range("trend window"))?
            }
            None => core_progress::DEFAULT_TREND_WINDOW,
        };
        self.run(move |store| Ok(store.progress(plan, window)?.into()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_progress_converts_field_by_field() {
        let goal_id = alliance_core::GoalId::new();
        let checkin_id = alliance_core::CheckInId::new();
        let days = core_progress::CheckInDays {
            last_7_days: 2,
            last_30_days: 5,
        };
        let progress = PlanProgress::from(core_progress::PlanProgress {
            as_of: "2026-03-03".into(),
            trend_window: 3,
            goals: vec![core_progress::GoalProgress {
                goal_id,
                series: vec![core_progress::GasPoint {
                    checkin_id,
                    at: 1_000,
                    local_date: "2026-03-02".into(),
                    level: -2,
                }],
                latest_level: Some(-2),
                trend: Some(core_progress::Trend::NoChange),
                days_checked_in: days,
            }],
            t_scores: vec![core_progress::TScorePoint {
                local_date: "2026-03-02".into(),
                t_score: 30.0,
            }],
            days_checked_in: days,
        });
        let goal = &progress.goals[0];
        assert_eq!(goal.goal_id, goal_id.to_string());
        assert_eq!(goal.series[0].checkin_id, checkin_id.to_string());
        assert_eq!(goal.series[0].level, -2);
        assert_eq!(goal.latest_level, Some(-2));
        assert_eq!(goal.trend, Some(Trend::NoChange));
        assert_eq!(progress.trend_window, 3);
        assert_eq!(
            progress.days_checked_in,
            CheckInDays {
                last_7_days: 2,
                last_30_days: 5
            }
        );
        assert_eq!(progress.t_scores[0].t_score, 30.0);
    }
}
