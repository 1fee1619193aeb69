//! Time as a plan's clinical picture uses it (see `docs/design.md`, Clinical time): the
//! client's calendar day, check-ins dated beyond this device's clock, and the order of a
//! goal's ratings, which no device clock can rewrite.
//!
//! What is trusted: the day the client states on each check-in (their calendar, kept across
//! time zones), the author's clock only as far as the reading device's own clock allows (up
//! to [`FUTURE_TOLERANCE_MS`] ahead), and the change graph's order. "Latest" means latest by
//! the client's day, a day not yet come counting as today, then by causal order.

use chrono::{NaiveDate, NaiveTime};

use crate::clock;
use crate::model::{gas_t_score, CheckIn, GasRating, Plan, Role};
use crate::progress;

/// How far past this device's clock a check-in may be dated and still count: time zones put
/// the client up to 26 hours ahead of a reader's calendar; the rest is slack for clocks.
pub const FUTURE_TOLERANCE_MS: i64 = 36 * 60 * 60 * 1000;

/// UTC milliseconds at which `local_date` (YYYY-MM-DD) begins at `offset_min` east of UTC.
pub fn day_start_ms(local_date: &str, offset_min: i32) -> Option<i64> {
    let date = NaiveDate::parse_from_str(local_date, "%Y-%m-%d").ok()?;
    let utc = date.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
    Some(utc - i64::from(offset_min) * 60_000)
}

/// Whether a check-in is dated beyond `now_ms` (this device's clock) plus the tolerance: its
/// author's clock said so, or the day it names has not begun by then.
pub fn is_future_dated(checkin: &CheckIn, now_ms: i64) -> bool {
    let limit = now_ms.saturating_add(FUTURE_TOLERANCE_MS);
    checkin.at > limit
        || day_start_ms(&checkin.local_date, checkin.tz_offset_min).is_some_and(|s| s > limit)
}

/// The day a rating counts on: the day the client meant, or `today` for a day not yet come.
pub fn counted_day<'a>(local_date: &'a str, today: &'a str) -> &'a str {
    local_date.min(today)
}

/// The UTC offset of the client's calendar: that of the client's latest check-in in causal
/// order, future-dated ones aside. None while the client has not checked in.
pub fn client_offset_min(plan: &Plan) -> Option<i32> {
    plan.goals
        .iter()
        .flat_map(|g| &g.checkins)
        .filter(|c| !c.future_dated)
        .filter(|c| plan.member(c.by).is_some_and(|m| m.role == Role::Client))
        .max_by_key(|c| (c.causal_order, c.checkin_id))
        .map(|c| c.tz_offset_min)
}

/// Settles a plan as read at `now_ms` on this device: marks future-dated check-ins, finds
/// the client's today (`device_offset_min` is asked only when the client never checked in),
/// and derives each goal's latest GAS level and the plan's T-score from what counts.
pub fn settle(plan: &mut Plan, now_ms: i64, device_offset_min: impl FnOnce() -> i32) {
    for checkin in plan.goals.iter_mut().flat_map(|g| g.checkins.iter_mut()) {
        checkin.future_dated = is_future_dated(checkin, now_ms);
    }
    let offset = client_offset_min(plan).unwrap_or_else(device_offset_min);
    let today = clock::local_date(now_ms, offset);
    let mut ratings = Vec::new();
    for goal in &mut plan.goals {
        goal.latest_gas_level = progress::gas_series(goal, &today).last().map(|p| p.level);
        if let Some(level) = goal.latest_gas_level {
            ratings.push(GasRating {
                level,
                weight: goal.gas.weight,
            });
        }
    }
    plan.gas_t_score = gas_t_score(&ratings);
    plan.client_today = today;
}

#[cfg(test)]
mod tests;
