//! Tests of clinical time at fixed instants: the client's today across time zones, DST switch
//! days and the date line; future-dated check-ins; ratings ordered by day, then causal order.

use super::*;
use crate::progress::tests::{checkin, fixture, utc_ms, Fixture};
use crate::progress::{plan_progress, Trend};

const HOUR_MS: i64 = 3_600_000;

/// Settles `f.plan` at `now` on a device `device_offset` east of UTC, and returns its
/// progress as of the client's today.
fn read_at(f: &mut Fixture, now: i64, device_offset: i32) -> progress::PlanProgress {
    settle(&mut f.plan, now, || device_offset);
    plan_progress(&f.plan, &f.plan.client_today.clone(), 3).unwrap()
}

#[test]
fn new_york_client_los_angeles_counselor() {
    // 01:30 on 10 March in New York (EDT, UTC-4) is 05:30 UTC ...
    let mut f = fixture(1);
    let at = utc_ms(2026, 3, 10, 5, 30);
    let c = checkin(f.client, at, -240, Some(0));
    assert_eq!(c.local_date, "2026-03-10");
    f.plan.goals[0].checkins = vec![c];
    // ... and five minutes later it is 22:35 on 9 March in Los Angeles (PDT, UTC-7).
    let now = at + 5 * 60_000;
    assert_eq!(clock::local_date(now, -420), "2026-03-09");
    let progress = read_at(&mut f, now, -420);
    assert_eq!(f.plan.client_today, "2026-03-10");
    assert_eq!(progress.as_of, "2026-03-10");
    assert_eq!(progress.days_checked_in.last_7_days, 1);
    assert_eq!(progress.goals[0].days_checked_in.last_7_days, 1);
    // The counselor's own calendar would have said 0: the fault this replaces.
    let on_readers_day = plan_progress(&f.plan, "2026-03-09", 3).unwrap();
    assert_eq!(on_readers_day.days_checked_in.last_7_days, 0);
    // Every reader, wherever it is, counts the same.
    for device_offset in [-720, -420, 0, 330, 840] {
        let progress = read_at(&mut f, now, device_offset);
        assert_eq!(progress.as_of, "2026-03-10");
        assert_eq!(progress.days_checked_in.last_7_days, 1);
    }
}

#[test]
fn spring_forward_day_follows_the_latest_offset() {
    // New York switches from EST (UTC-5) to EDT (UTC-4) at 02:00 on 8 March 2026.
    let mut f = fixture(1);
    let before = checkin(f.client, utc_ms(2026, 3, 8, 6, 30), -300, Some(-1)); // 01:30 EST
    let after = checkin(f.client, utc_ms(2026, 3, 8, 7, 30), -240, Some(0)); // 03:30 EDT
    assert_eq!(before.local_date, "2026-03-08");
    assert_eq!(after.local_date, "2026-03-08");
    f.plan.goals[0].checkins = vec![before, after];
    // 23:59 EDT on 8 March: still the 8th for the client, one day checked in.
    let progress = read_at(&mut f, utc_ms(2026, 3, 9, 3, 59), 0);
    assert_eq!(progress.as_of, "2026-03-08");
    assert_eq!(progress.days_checked_in.last_7_days, 1);
    assert_eq!(progress.goals[0].latest_level, Some(0));
    // 00:01 EDT on 9 March: the 9th (with the old EST offset it would still be the 8th).
    let progress = read_at(&mut f, utc_ms(2026, 3, 9, 4, 1), 0);
    assert_eq!(progress.as_of, "2026-03-09");
    assert_eq!(
        clock::local_date(utc_ms(2026, 3, 9, 4, 1), -300),
        "2026-03-08"
    );
    assert_eq!(progress.days_checked_in.last_7_days, 1);
}

#[test]
fn fall_back_day_keeps_the_repeated_hour_on_one_day() {
    // New York goes back from EDT (UTC-4) to EST (UTC-5) at 02:00 on 1 November 2026: 01:30
    // happens twice. The second 01:30 is an hour later in UTC, on the same day.
    let mut f = fixture(1);
    let first = checkin(f.client, utc_ms(2026, 11, 1, 5, 30), -240, Some(1));
    let second = checkin(f.client, utc_ms(2026, 11, 1, 6, 30), -300, Some(-1));
    assert_eq!(first.local_date, "2026-11-01");
    assert_eq!(second.local_date, "2026-11-01");
    f.plan.goals[0].checkins = vec![second, first];
    // 23:30 EST on 1 November is 04:30 UTC on the 2nd: still the 1st for the client.
    let now = utc_ms(2026, 11, 2, 4, 30);
    assert_eq!(clock::local_date(now, -240), "2026-11-02");
    let progress = read_at(&mut f, now, 0);
    assert_eq!(progress.as_of, "2026-11-01");
    assert_eq!(progress.days_checked_in.last_7_days, 1);
    // Both on one day: the one made later (causal order) is the latest.
    assert_eq!(progress.goals[0].latest_level, Some(-1));
    assert_eq!(progress.goals[0].trend, Some(Trend::Worsening));
    assert_eq!(f.plan.goals[0].latest_gas_level, Some(-1));
}

#[test]
fn date_line_client_ahead_of_the_reader() {
    // 00:30 on 10 March at UTC+14 (Kiritimati) is 10:30 UTC on 9 March, and 22:30 on 8 March
    // at UTC-12: the client is two calendar days ahead of such a reader.
    let mut f = fixture(1);
    let at = utc_ms(2026, 3, 9, 10, 30);
    let c = checkin(f.client, at, 840, Some(1));
    assert_eq!(c.local_date, "2026-03-10");
    f.plan.goals[0].checkins = vec![c];
    let now = at + 5 * 60_000;
    assert_eq!(clock::local_date(now, -720), "2026-03-08");
    let progress = read_at(&mut f, now, -720);
    assert!(!f.plan.goals[0].checkins[0].future_dated);
    assert_eq!(progress.as_of, "2026-03-10");
    assert_eq!(progress.days_checked_in.last_7_days, 1);
    assert_eq!(progress.goals[0].latest_level, Some(1));
    assert_eq!(f.plan.gas_t_score, Some(60.0));
}

#[test]
fn date_line_client_behind_the_reader() {
    // 23:30 on 8 March at UTC-12 is 11:30 UTC on 9 March, and 01:30 on 10 March at UTC+14.
    let mut f = fixture(1);
    let at = utc_ms(2026, 3, 9, 11, 30);
    let c = checkin(f.client, at, -720, Some(0));
    assert_eq!(c.local_date, "2026-03-08");
    f.plan.goals[0].checkins = vec![c];
    let progress = read_at(&mut f, at + 5 * 60_000, 840);
    assert_eq!(progress.as_of, "2026-03-08");
    assert_eq!(progress.days_checked_in.last_7_days, 1);
    // A day later for the client, the check-in is yesterday: still within the last 7 days.
    let progress = read_at(&mut f, at + 24 * HOUR_MS, 840);
    assert_eq!(progress.as_of, "2026-03-09");
    assert_eq!(progress.days_checked_in.last_7_days, 1);
}

#[test]
fn future_dated_means_beyond_this_devices_clock_plus_36_hours() {
    let f = fixture(1);
    let now = utc_ms(2026, 6, 1, 12, 0);
    let at_limit = checkin(f.client, now + FUTURE_TOLERANCE_MS, 0, Some(0));
    assert!(!is_future_dated(&at_limit, now));
    let past_limit = checkin(f.client, now + FUTURE_TOLERANCE_MS + 1, 0, Some(0));
    assert!(is_future_dated(&past_limit, now));
    // The client's clock may be 26 hours ahead of a reader's calendar across time zones:
    // tomorrow at UTC+14 is not future-dated.
    let mut tomorrow = checkin(f.client, now, 840, Some(0));
    tomorrow.local_date = "2026-06-02".into();
    assert!(!is_future_dated(&tomorrow, now));
    // A day named three days ahead is, whatever the author's clock said.
    let mut named = checkin(f.client, now, 0, Some(0));
    named.local_date = "2026-06-04".into();
    assert!(is_future_dated(&named, now));
    assert_eq!(
        day_start_ms("2026-06-02", 840),
        Some(utc_ms(2026, 6, 1, 10, 0))
    );
    assert_eq!(
        day_start_ms("2026-06-02", -720),
        Some(utc_ms(2026, 6, 2, 12, 0))
    );
    assert_eq!(day_start_ms("not a day", 0), None);
}

#[test]
fn a_clock_a_year_ahead_counts_only_when_its_day_comes() {
    let mut f = fixture(1);
    let now = utc_ms(2026, 6, 1, 12, 0);
    let a_year_ahead = now + 365 * 24 * HOUR_MS;
    let great_day = checkin(f.client, a_year_ahead, 0, Some(2));
    let rough_day = checkin(f.client, now - HOUR_MS, 0, Some(-1));
    let relapse = checkin(f.client, now, 0, Some(-2));
    f.plan.goals[0].checkins = vec![rough_day, relapse, great_day];
    let progress = read_at(&mut f, now, 0);
    let goal = &f.plan.goals[0];
    assert!(goal.checkins[2].future_dated);
    assert!(!goal.checkins[0].future_dated && !goal.checkins[1].future_dated);
    assert_eq!(goal.latest_gas_level, Some(-2));
    assert_eq!(f.plan.gas_t_score, Some(30.0));
    assert_eq!(progress.goals[0].latest_level, Some(-2));
    assert_eq!(progress.goals[0].trend, Some(Trend::Worsening));
    assert_eq!(progress.goals[0].series.len(), 2);
    assert_eq!(progress.t_scores.last().unwrap().t_score, 30.0);
    // Its day is not counted as a check-in day before it comes.
    assert_eq!(progress.days_checked_in.last_30_days, 1);
    // The future-dated check-in does not set the client's offset either, even as the last
    // one made.
    f.plan.goals[0].checkins[2].tz_offset_min = 600;
    f.plan.goals[0].checkins[2].causal_order = u64::MAX;
    settle(&mut f.plan, now, || 0);
    assert_eq!(client_offset_min(&f.plan), Some(0));
    // When its day comes it counts, as a rating of that day.
    let progress = read_at(&mut f, a_year_ahead, 0);
    assert!(!f.plan.goals[0].checkins[2].future_dated);
    assert_eq!(progress.goals[0].latest_level, Some(2));
    assert_eq!(f.plan.goals[0].latest_gas_level, Some(2));
}

#[test]
fn a_day_not_yet_come_counts_as_today_and_causal_order_breaks_ties() {
    let mut f = fixture(1);
    let now = utc_ms(2026, 6, 1, 12, 0);
    // Dated tomorrow (within the tolerance), then a rating today by a device whose clock was
    // hours behind: it was made after, so it is the latest.
    let mut tomorrow = checkin(f.client, now, 0, Some(2));
    tomorrow.local_date = "2026-06-02".into();
    let later_with_a_slow_clock = checkin(f.client, now - 10 * HOUR_MS, 0, Some(-1));
    f.plan.goals[0].checkins = vec![later_with_a_slow_clock, tomorrow];
    let progress = read_at(&mut f, now, 0);
    assert!(!f.plan.goals[0].checkins[1].future_dated);
    let series = &progress.goals[0].series;
    let levels: Vec<i8> = series.iter().map(|p| p.level).collect();
    assert_eq!(levels, [2, -1]);
    assert!(series.iter().all(|p| p.local_date == "2026-06-01"));
    assert_eq!(progress.goals[0].latest_level, Some(-1));
    assert_eq!(f.plan.goals[0].latest_gas_level, Some(-1));
    // One T-score point, for today.
    assert_eq!(progress.t_scores.len(), 1);
    assert_eq!(progress.t_scores[0].local_date, "2026-06-01");
}

#[test]
fn the_clients_offset_comes_from_the_clients_latest_check_in() {
    let mut f = fixture(2);
    let now = utc_ms(2026, 6, 1, 12, 0);
    // Nobody checked in: this device's offset, asked for only now.
    let mut asked = false;
    settle(&mut f.plan, now, || {
        asked = true;
        330
    });
    assert!(asked);
    assert_eq!(f.plan.client_today, "2026-06-01");
    assert_eq!(client_offset_min(&f.plan), None);
    // The client's latest check-in decides, whatever its clock said; a counselor's does not.
    let paris = checkin(f.client, now + HOUR_MS, 120, None);
    let tokyo = checkin(f.client, now - HOUR_MS, 540, None);
    let counselor = checkin(f.counselor, now, -600, Some(0));
    f.plan.goals[0].checkins = vec![paris];
    f.plan.goals[1].checkins = vec![tokyo, counselor];
    settle(&mut f.plan, now, || panic!("the client's offset is known"));
    assert_eq!(client_offset_min(&f.plan), Some(540));
    assert_eq!(f.plan.client_today, "2026-06-01");
    settle(&mut f.plan, utc_ms(2026, 6, 1, 15, 30), || 0);
    assert_eq!(f.plan.client_today, "2026-06-02");
}
