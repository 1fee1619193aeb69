//! Tests of GAS series, trends, check-in days and the T-score over time.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};

use super::*;
use crate::clock;
use crate::model::{
    AgreementState, AgreementStatus, GasScale, GoalStatus, Member, MemberId, PlanId,
};

pub(crate) fn utc_ms(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
}

pub(crate) struct Fixture {
    pub(crate) client: MemberId,
    pub(crate) counselor: MemberId,
    pub(crate) plan: Plan,
}

pub(crate) fn fixture(goal_count: usize) -> Fixture {
    let client = MemberId::new();
    let counselor = MemberId::new();
    let goals = (0..goal_count)
        .map(|i| Goal {
            goal_id: GoalId::new(),
            proposed_by: Some(client),
            created_at: 0,
            rank: format!("{i:015}"),
            client_words: format!("goal {i}"),
            clinical_statement: String::new(),
            life_area: String::new(),
            status: GoalStatus::Active,
            content_hash: String::new(),
            agreement: AgreementStatus {
                state: AgreementState::Pending,
                agreed_by: Vec::new(),
                waiting_for: Vec::new(),
                agreements: Vec::new(),
            },
            objectives: Vec::new(),
            interventions: Vec::new(),
            gas: GasScale::default(),
            checkins: Vec::new(),
            latest_gas_level: None,
            conflicts: Vec::new(),
        })
        .collect();
    let plan = Plan {
        plan_id: PlanId::new(),
        title: "plan".into(),
        review_on: None,
        created_at: 0,
        members: vec![
            Member {
                member_id: client,
                name: "C".into(),
                role: Role::Client,
                added_at: 0,
            },
            Member {
                member_id: counselor,
                name: "K".into(),
                role: Role::Counselor,
                added_at: 0,
            },
        ],
        devices: Vec::new(),
        goals,
        gas_t_score: None,
        client_today: String::new(),
    };
    Fixture {
        client,
        counselor,
        plan,
    }
}

/// Causal order of the fixtures' check-ins: each is made after every one made before it.
static MADE: AtomicU64 = AtomicU64::new(1);

/// A check-in made at UTC `at` on a device `offset_min` east of UTC: its day is the one the
/// device's clock showed, as the API records it. Each is causally after the ones made before.
pub(crate) fn checkin(by: MemberId, at: i64, offset_min: i32, level: Option<i8>) -> CheckIn {
    CheckIn {
        checkin_id: CheckInId::new(),
        by,
        at,
        local_date: clock::local_date(at, offset_min),
        tz_offset_min: offset_min,
        gas_level: level,
        value: None,
        mood: None,
        craving: None,
        note: String::new(),
        corrects: None,
        superseded: false,
        causal_order: MADE.fetch_add(1, Ordering::Relaxed),
        future_dated: false,
    }
}

#[test]
fn trend_reads_the_slope_of_the_last_ratings() {
    assert_eq!(trend(&[], 3), None);
    assert_eq!(trend(&[1], 3), None);
    assert_eq!(trend(&[-1, 0], 3), Some(Trend::Improving));
    assert_eq!(trend(&[1, 0], 3), Some(Trend::Worsening));
    assert_eq!(trend(&[0, 0, 0], 3), Some(Trend::NoChange));
    // A dip between two equal levels is no change.
    assert_eq!(trend(&[0, -1, 0], 3), Some(Trend::NoChange));
    // Only the window counts: an early climb, then a slide.
    assert_eq!(trend(&[-2, -1, 0, 1, 1, 0, -1], 3), Some(Trend::Worsening));
    assert_eq!(trend(&[-2, -1, 0, 1, 1, 0, -1], 7), Some(Trend::Improving));
    // A window below two is taken as two.
    assert_eq!(trend(&[2, -2, 0, 1], 1), Some(Trend::Improving));
}

#[test]
fn series_applies_corrections_and_orders_by_the_clients_day() {
    let mut f = fixture(1);
    let goal = &mut f.plan.goals[0];
    let first = checkin(f.client, utc_ms(2026, 3, 1, 12, 0), 0, Some(-1));
    let mut wrong = checkin(f.client, utc_ms(2026, 3, 2, 12, 0), 0, Some(2));
    wrong.superseded = true;
    let mut fixed = checkin(f.client, utc_ms(2026, 3, 2, 13, 0), 0, Some(0));
    fixed.corrects = Some(wrong.checkin_id);
    // Logged later for an earlier day: it belongs to that day.
    let mut backdated = checkin(f.client, utc_ms(2026, 3, 5, 9, 0), 0, Some(-2));
    backdated.local_date = "2026-02-28".into();
    let unrated = checkin(f.client, utc_ms(2026, 3, 3, 12, 0), 0, None);
    goal.checkins = vec![
        first.clone(),
        wrong,
        fixed.clone(),
        backdated.clone(),
        unrated,
    ];
    let series = gas_series(goal, "2026-03-05");
    let ids: Vec<CheckInId> = series.iter().map(|p| p.checkin_id).collect();
    assert_eq!(
        ids,
        vec![backdated.checkin_id, first.checkin_id, fixed.checkin_id]
    );
    let levels: Vec<i8> = series.iter().map(|p| p.level).collect();
    assert_eq!(levels, vec![-2, -1, 0]);

    let progress = plan_progress(&f.plan, "2026-03-05", 3).unwrap();
    let goal = &progress.goals[0];
    assert_eq!(goal.latest_level, Some(0));
    assert_eq!(goal.trend, Some(Trend::Improving));
}

#[test]
fn travel_keeps_the_day_the_client_meant() {
    let mut f = fixture(1);
    // 23:30 on 1 March in London (UTC+0) and 00:30 on 2 March in Paris (UTC+1) are the same
    // UTC minute, yet two different days for the client.
    let evening = checkin(f.client, utc_ms(2026, 3, 1, 23, 30), 0, Some(-1));
    let after_midnight = checkin(f.client, utc_ms(2026, 3, 1, 23, 30), 60, Some(0));
    assert_eq!(evening.local_date, "2026-03-01");
    assert_eq!(after_midnight.local_date, "2026-03-02");
    // 23:30 on 3 March in New York (UTC-5) is 04:30 on 4 March in UTC: still 3 March.
    let new_york = checkin(f.client, utc_ms(2026, 3, 4, 4, 30), -300, Some(1));
    assert_eq!(new_york.local_date, "2026-03-03");
    // 00:30 on 4 March in Tokyo (UTC+9) is 15:30 on 3 March in UTC: still 4 March.
    let tokyo = checkin(f.client, utc_ms(2026, 3, 3, 15, 30), 540, Some(1));
    assert_eq!(tokyo.local_date, "2026-03-04");
    f.plan.goals[0].checkins = vec![evening, after_midnight, new_york, tokyo];

    let progress = plan_progress(&f.plan, "2026-03-04", 3).unwrap();
    // Four days for the client, although in UTC the check-ins fall on only three.
    assert_eq!(progress.days_checked_in.last_7_days, 4);
    assert_eq!(progress.goals[0].days_checked_in.last_7_days, 4);
    let days: Vec<&str> = progress.goals[0]
        .series
        .iter()
        .map(|p| p.local_date.as_str())
        .collect();
    assert_eq!(
        days,
        ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    );
    // The Tokyo check-in happened before the New York one in UTC, but came a day later for
    // the client: the series follows the client's days.
    let levels: Vec<i8> = progress.goals[0].series.iter().map(|p| p.level).collect();
    assert_eq!(levels, [-1, 0, 1, 1]);
    assert_eq!(progress.goals[0].trend, Some(Trend::Improving));
    // One T-score per day.
    let t_days: Vec<&str> = progress
        .t_scores
        .iter()
        .map(|t| t.local_date.as_str())
        .collect();
    assert_eq!(t_days, days);
}

#[test]
fn check_in_days_count_the_clients_distinct_days_in_each_window() {
    let mut f = fixture(2);
    let day = |d: u32| utc_ms(2026, 4, d, 12, 0);
    // Goal 0: the client on 1, 10, 24 (twice), 30 April; goal 1: 24 and 25 April.
    f.plan.goals[0].checkins = vec![
        checkin(f.client, day(1), 0, None),
        checkin(f.client, day(10), 0, Some(0)),
        checkin(f.client, day(24), 0, Some(1)),
        checkin(f.client, day(24) + 60_000, 0, None),
        checkin(f.client, day(30), 0, None),
    ];
    let mut superseded = checkin(f.client, day(20), 0, None);
    superseded.superseded = true;
    f.plan.goals[1].checkins = vec![
        checkin(f.client, day(24), 0, None),
        checkin(f.client, day(25), 0, None),
        // The counselor's check-ins are not the client's days.
        checkin(f.counselor, day(27), 0, Some(1)),
        // A corrected entry does not count.
        superseded,
    ];
    let progress = plan_progress(&f.plan, "2026-04-30", 3).unwrap();
    // Last 7 days: 24..=30 April.
    assert_eq!(progress.goals[0].days_checked_in.last_7_days, 2);
    assert_eq!(progress.goals[1].days_checked_in.last_7_days, 2);
    assert_eq!(progress.days_checked_in.last_7_days, 3);
    // Last 30 days: 1..=30 April.
    assert_eq!(progress.goals[0].days_checked_in.last_30_days, 4);
    assert_eq!(progress.days_checked_in.last_30_days, 5);
    // A day after: 1 April drops out of the 30-day window.
    let next = plan_progress(&f.plan, "2026-05-01", 3).unwrap();
    assert_eq!(next.days_checked_in.last_30_days, 4);
    // And 24 April drops out of the 7-day window.
    assert_eq!(next.days_checked_in.last_7_days, 2);
}

#[test]
fn t_score_follows_each_goals_latest_level_day_by_day() {
    let mut f = fixture(2);
    f.plan.goals[1].gas.weight = 2.0;
    let day = |d: u32| utc_ms(2026, 5, d, 12, 0);
    f.plan.goals[0].checkins = vec![
        checkin(f.client, day(1), 0, Some(-2)),
        checkin(f.client, day(3), 0, Some(0)),
    ];
    f.plan.goals[1].checkins = vec![checkin(f.counselor, day(2), 0, Some(1))];
    let progress = plan_progress(&f.plan, "2026-05-03", 3).unwrap();
    let expected = [
        // 1 May: goal 0 alone at -2 → 50 + 10·(-2)/1 = 30.
        ("2026-05-01", 30.0),
        // 2 May: -2 (w 1) and +1 (w 2): Σwx = 0 → 50.
        ("2026-05-02", 50.0),
        // 3 May: 0 and +1 (w 2): Σwx = 2; √(0.7·5 + 0.3·9) = √6.2.
        ("2026-05-03", 50.0 + 20.0 / 6.2f64.sqrt()),
    ];
    assert_eq!(progress.t_scores.len(), expected.len());
    for (point, (date, t)) in progress.t_scores.iter().zip(expected) {
        assert_eq!(point.local_date, date);
        assert!(
            (point.t_score - t).abs() < 1e-9,
            "{date}: {}",
            point.t_score
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let f = fixture(1);
    assert!(matches!(
        plan_progress(&f.plan, "2026-02-30", 3),
        Err(Error::InvalidInput { field: "today", .. })
    ));
    assert!(matches!(
        plan_progress(&f.plan, "2026-02-01", 1),
        Err(Error::InvalidInput { .. })
    ));
    let empty = plan_progress(&f.plan, "2026-02-01", 3).unwrap();
    assert_eq!(empty.goals[0].trend, None);
    assert_eq!(empty.goals[0].latest_level, None);
    assert!(empty.t_scores.is_empty());
    assert_eq!(empty.days_checked_in, CheckInDays::default());
}
