//! Progress on a plan: each goal's GAS level series, latest level and trend, the days the
//! client checked in (on the client's own calendar days), and the plan's GAS T-score over time.
//!
//! Everything here reads the plan model only; no clock. "Today" is given by the caller as the
//! client's calendar day (the plan's `client_today`), so a check-in keeps the day the client
//! meant wherever it was made and read. Ratings are ordered by that day, a day not yet come
//! counting as today, then by causal order; future-dated check-ins do not count (see
//! [`crate::clinical_time`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::clinical_time::counted_day;
use crate::error::{Error, Result};
use crate::model::{
    gas_t_score, validate, CheckIn, CheckInId, GasRating, Goal, GoalId, Plan, Role,
};

/// How many of the latest GAS ratings a trend looks at, unless told otherwise.
pub const DEFAULT_TREND_WINDOW: usize = 3;

/// Where a goal's GAS levels are heading over the latest ratings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Improving,
    Worsening,
    NoChange,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Improving => "improving",
            Trend::Worsening => "worsening",
            Trend::NoChange => "no change",
        }
    }
}

/// A GAS level as people write it: -2, -1, 0, +1, +2.
pub fn level_label(level: i8) -> String {
    if level == 0 {
        "0".to_owned()
    } else {
        format!("{level:+}")
    }
}

/// One GAS rating of a goal: the check-in that gave it and the day it counts on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GasPoint {
    pub checkin_id: CheckInId,
    /// UTC milliseconds, as the author's clock said.
    pub at: i64,
    /// The client's calendar day it counts on (YYYY-MM-DD): the day the client meant, or
    /// today for a day not yet come.
    pub local_date: String,
    pub level: i8,
}

/// Check-in days on the client's calendar, counted back from "today" (included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInDays {
    pub last_7_days: u32,
    pub last_30_days: u32,
}

/// One goal's progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoalProgress {
    pub goal_id: GoalId,
    /// GAS ratings in the order of the client's days (then causal order), corrections
    /// applied, future-dated check-ins left out.
    pub series: Vec<GasPoint>,
    pub latest_level: Option<i8>,
    /// None with fewer than two ratings.
    pub trend: Option<Trend>,
    /// Days on which the client checked in on this goal.
    pub days_checked_in: CheckInDays,
}

/// The plan's GAS T-score at the end of one of the client's days: each goal counts with its
/// latest level on or before that day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TScorePoint {
    pub local_date: String,
    pub t_score: f64,
}

/// A plan's progress as of one of the client's calendar days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanProgress {
    /// The day counted as "today" (YYYY-MM-DD).
    pub as_of: String,
    /// How many latest ratings each trend looks at.
    pub trend_window: usize,
    pub goals: Vec<GoalProgress>,
    /// The T-score after each day on which some goal was rated, oldest first.
    pub t_scores: Vec<TScorePoint>,
    /// Days on which the client checked in on any goal.
    pub days_checked_in: CheckInDays,
}

/// The check-ins that count: those not superseded by a correction.
fn current(goal: &Goal) -> impl Iterator<Item = &CheckIn> {
    goal.checkins.iter().filter(|c| !c.superseded)
}

/// A goal's GAS ratings as of `today` (the client's day): ordered by the day each counts on,
/// then by causal order; corrections applied, future-dated check-ins left out.
pub fn gas_series(goal: &Goal, today: &str) -> Vec<GasPoint> {
    let mut rated: Vec<(&CheckIn, i8)> = current(goal)
        .filter(|c| !c.future_dated)
        .filter_map(|c| Some((c, c.gas_level?)))
        .collect();
    rated.sort_by(|(a, _), (b, _)| {
        let key = |c: &CheckIn| (c.causal_order, c.checkin_id);
        counted_day(&a.local_date, today)
            .cmp(counted_day(&b.local_date, today))
            .then(key(a).cmp(&key(b)))
    });
    rated
        .into_iter()
        .map(|(c, level)| GasPoint {
            checkin_id: c.checkin_id,
            at: c.at,
            local_date: counted_day(&c.local_date, today).to_owned(),
            level,
        })
        .collect()
}

/// The trend of the last `window` levels (at least two are needed): the sign of their
/// least-squares slope, so one dip between two equal levels is no change.
pub fn trend(levels: &[i8], window: usize) -> Option<Trend> {
    let window = window.max(2);
    let recent = &levels[levels.len().saturating_sub(window)..];
    if recent.len() < 2 {
        return None;
    }
    let n = recent.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = recent.iter().map(|&l| f64::from(l)).sum::<f64>() / n;
    let covariance: f64 = recent
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as f64 - mean_x) * (f64::from(l) - mean_y))
        .sum();
    Some(if covariance > 1e-9 {
        Trend::Improving
    } else if covariance < -1e-9 {
        Trend::Worsening
    } else {
        Trend::NoChange
    })
}

/// Distinct days in `dates` within the last `days` days up to `today` (included).
fn days_within(dates: &BTreeSet<NaiveDate>, today: NaiveDate, days: u64) -> u32 {
    let first = today
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(NaiveDate::MIN);
    let count = dates.range(first..=today).count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn check_in_days<'a>(dates: impl Iterator<Item = &'a str>, today: NaiveDate) -> CheckInDays {
    let dates: BTreeSet<NaiveDate> = dates
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect();
    CheckInDays {
        last_7_days: days_within(&dates, today, 7),
        last_30_days: days_within(&dates, today, 30),
    }
}

/// The plan's progress as of `today`, the client's calendar day (YYYY-MM-DD); trends look at
/// the last `window` ratings of each goal.
pub fn plan_progress(plan: &Plan, today: &str, window: usize) -> Result<PlanProgress> {
    let today_date = validate::date("today", today)?;
    if window < 2 {
        return Err(Error::invalid("trend window", "must be at least 2"));
    }
    let is_client = |c: &&CheckIn| {
        plan.member(c.by)
            .is_some_and(|member| member.role == Role::Client)
    };
    let mut goals = Vec::with_capacity(plan.goals.len());
    for goal in &plan.goals {
        let series = gas_series(goal, today);
        let levels: Vec<i8> = series.iter().map(|p| p.level).collect();
        let client_days = current(goal)
            .filter(is_client)
            .map(|c| c.local_date.as_str());
        goals.push(GoalProgress {
            goal_id: goal.goal_id,
            latest_level: levels.last().copied(),
            trend: trend(&levels, window),
            days_checked_in: check_in_days(client_days, today_date),
            series,
        });
    }
    let all_days = plan
        .goals
        .iter()
        .flat_map(current)
        .filter(is_client)
        .map(|c| c.local_date.as_str());
    let days_checked_in = check_in_days(all_days, today_date);
    let t_scores = t_score_series(plan, &goals);
    Ok(PlanProgress {
        as_of: today.to_owned(),
        trend_window: window,
        goals,
        t_scores,
        days_checked_in,
    })
}

/// The T-score after each rated day, each goal at its latest level up to that day.
fn t_score_series(plan: &Plan, goals: &[GoalProgress]) -> Vec<TScorePoint> {
    let days: BTreeSet<&str> = goals
        .iter()
        .flat_map(|g| g.series.iter().map(|p| p.local_date.as_str()))
        .collect();
    let weights: BTreeMap<GoalId, f64> = plan
        .goals
        .iter()
        .map(|g| (g.goal_id, g.gas.weight))
        .collect();
    days.into_iter()
        .filter_map(|day| {
            let ratings: Vec<GasRating> = goals
                .iter()
                .filter_map(|g| {
                    let level = g
                        .series
                        .iter()
                        .take_while(|p| p.local_date.as_str() <= day)
                        .last()?
                        .level;
                    Some(GasRating {
                        level,
                        weight: weights.get(&g.goal_id).copied().unwrap_or(1.0),
                    })
                })
                .collect();
            Some(TScorePoint {
                local_date: day.to_owned(),
                t_score: gas_t_score(&ratings)?,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
