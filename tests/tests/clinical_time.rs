//! Clinical time that a wrong clock cannot fake, and the client's calendar on every device:
//! the two faults of issue 15 replayed as a client and a counselor would meet them.

use alliance_core::export::fhir::GOAL_ACHIEVEMENT;
use alliance_core::plan::{write, PlanDoc};
use alliance_core::progress::Trend;
use alliance_core::{Alliance, CheckInId, GoalId, NewCheckIn, PlanId};
use alliance_tests::{client, counselor, plan_with_client, unsigned, Device};
use automerge::sync::{self, SyncDoc};
use chrono::{Local, Offset, TimeZone, Utc};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

/// The calendar day at UTC milliseconds `at` seen `offset_min` east of UTC.
fn day_at(at: i64, offset_min: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
    offset
        .timestamp_millis_opt(at)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

/// Sends everything `raw` holds to `store` until both are quiet.
fn push(raw: &mut automerge::Automerge, store: &Alliance, plan: PlanId) {
    let mut state = sync::State::new();
    for _ in 0..50 {
        let mut quiet = true;
        if let Some(m) = raw.generate_sync_message(&mut state) {
            quiet = false;
            store
                .receive_sync_message(plan, "phone-copy", &m.encode())
                .unwrap();
        }
        if let Some(m) = store.generate_sync_message(plan, "phone-copy").unwrap() {
            quiet = false;
            raw.receive_sync_message(&mut state, sync::Message::decode(unsigned(&m)).unwrap())
                .unwrap();
        }
        if quiet {
            store.end_sync_session("phone-copy");
            return;
        }
    }
    panic!("the sync did not settle");
}

/// A check-in by the client's phone while its clock showed `clock` (UTC ms): written as the
/// API writes one, with the phone's own actor, and taken in by the phone's store.
fn check_in_with_clock(
    phone: &Device,
    plan: PlanId,
    goal: GoalId,
    clock: i64,
    level: i8,
    note: &str,
) -> CheckInId {
    let bytes = phone.store.saved_document(plan).unwrap();
    let mut doc = PlanDoc::load(&bytes, phone.me.device_id.actor()).unwrap();
    let id = CheckInId::new();
    let local_date = day_at(clock, 0);
    doc.change("checked in", clock, |tx| {
        write::add_checkin(
            tx,
            goal,
            &write::CheckInEntry {
                id,
                by: phone.me.member_id,
                at: clock,
                local_date: &local_date,
                tz_offset_min: 0,
                gas_level: Some(level),
                value: None,
                mood: None,
                craving: None,
                note,
                corrects: None,
            },
        )
    })
    .unwrap();
    push(doc.automerge_mut(), &phone.store, plan);
    id
}

fn rate(device: &Device, plan: PlanId, goal: GoalId, level: i8, note: &str) -> CheckInId {
    device
        .store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                gas_level: Some(level),
                note: note.into(),
                tz_offset_min: Some(0),
                ..Default::default()
            },
        )
        .unwrap()
}

fn achievement(bundle: &str, goal: GoalId) -> String {
    let bundle: Value = serde_json::from_str(bundle).unwrap();
    let resource = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Goal" && r["id"] == goal.to_string())
        .unwrap();
    let coding = &resource["achievementStatus"]["coding"][0];
    assert_eq!(coding["system"], GOAL_ACHIEVEMENT);
    coding["code"].as_str().unwrap().to_owned()
}

/// Issue 15, first fault: the phone's clock is a year ahead for one check-in (+2, "great
/// day"); corrected, the client then records -1 and -2 today. The counselor must see the
/// relapse: latest level -2, worsening, T-score 30, FHIR `worsening`.
#[test]
fn a_clock_a_year_ahead_does_not_hide_todays_relapse() {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let goal = sam.store.propose_goal(plan, "Stay sober").unwrap();
    dana.sync(&sam);

    let a_year_ahead = Utc::now().timestamp_millis() + 365 * DAY_MS;
    let great_day = check_in_with_clock(&sam, plan, goal, a_year_ahead, 2, "great day");
    rate(&sam, plan, goal, -1, "rough day");
    rate(&sam, plan, goal, -2, "relapse");
    dana.sync(&sam);

    for device in [&dana, &sam] {
        let model = device.store.plan(plan).unwrap();
        let read = model.goal(goal).unwrap();
        assert_eq!(read.latest_gas_level, Some(-2));
        assert_eq!(model.gas_t_score, Some(30.0));
        let progress = device.store.progress(plan, 3).unwrap();
        let goal_progress = &progress.goals[0];
        assert_eq!(goal_progress.latest_level, Some(-2));
        assert_eq!(goal_progress.trend, Some(Trend::Worsening));
        let levels: Vec<i8> = goal_progress.series.iter().map(|p| p.level).collect();
        assert_eq!(levels, [-1, -2]);
        assert_eq!(progress.t_scores.last().unwrap().t_score, 30.0);
        let bundle = device.store.export_fhir(plan).unwrap();
        assert_eq!(achievement(&bundle, goal), "worsening");
        // The year-ahead check-in is shown, marked future_dated, everywhere.
        let flagged: Vec<CheckInId> = read
            .checkins
            .iter()
            .filter(|c| c.future_dated)
            .map(|c| c.checkin_id)
            .collect();
        assert_eq!(flagged, [great_day]);
        let bundle: Value = serde_json::from_str(&bundle).unwrap();
        let observation = resource(&bundle, &great_day.to_string());
        assert_eq!(observation["status"], "preliminary");
        let notes = observation["note"].to_string();
        assert!(notes.contains("future_dated"), "{notes}");
    }
    let summary = dana.store.export_markdown(plan).unwrap();
    assert!(
        summary.contains("Latest GAS level: -2; trend: worsening"),
        "{summary}"
    );
    assert!(summary.contains("| GAS T-score | 30.0"), "{summary}");
    assert!(summary.contains("1 future-dated check-in"), "{summary}");
}

fn resource<'a>(bundle: &'a Value, id: &str) -> &'a Value {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no resource {id}"))
}

/// A day named well ahead (not only a clock that is ahead) is future-dated too; when the
/// client names tomorrow, as a traveller across the date line may, it is not.
#[test]
fn a_named_day_ahead_is_future_dated_tomorrow_is_not() {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let goal = sam.store.propose_goal(plan, "Call my sister").unwrap();
    let now = Utc::now().timestamp_millis();
    let named = |days: i64, level: i8| NewCheckIn {
        gas_level: Some(level),
        local_date: Some(day_at(now + days * DAY_MS, 0)),
        tz_offset_min: Some(0),
        ..Default::default()
    };
    let today = sam.store.check_in(plan, goal, &named(0, 0)).unwrap();
    let in_ten_days = sam.store.check_in(plan, goal, &named(10, 2)).unwrap();
    dana.sync(&sam);
    let model = dana.store.plan(plan).unwrap();
    let flags: Vec<(CheckInId, bool)> = model.goals[0]
        .checkins
        .iter()
        .map(|c| (c.checkin_id, c.future_dated))
        .collect();
    assert!(flags.contains(&(today, false)));
    assert!(flags.contains(&(in_ten_days, true)));
    assert_eq!(model.goals[0].latest_gas_level, Some(0));
    // Tomorrow counts, as a rating of today: made last, it is the latest.
    sam.store.check_in(plan, goal, &named(1, -1)).unwrap();
    dana.sync(&sam);
    let progress = dana.store.progress(plan, 3).unwrap();
    assert_eq!(progress.goals[0].latest_level, Some(-1));
    assert!(progress.goals[0]
        .series
        .iter()
        .all(|p| p.local_date == progress.as_of));
}

/// Issue 15, second fault: the client checks in on their own calendar day while the
/// counselor's device is on another day. Everyone counts on the client's calendar.
#[test]
fn progress_counts_on_the_clients_calendar_not_the_readers() {
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let goal = sam.store.propose_goal(plan, "Walk every day").unwrap();
    // An offset at which the client's day differs from this device's day right now: the
    // offsets on Earth (UTC-12 to UTC+14) span 26 hours, so one always does.
    let now = Utc::now().timestamp_millis();
    let device_offset = Local::now().offset().fix().local_minus_utc() / 60;
    let device_day = day_at(now + 120_000, device_offset);
    let client_offset = (-720..=840)
        .rev()
        .step_by(15)
        .find(|&o| day_at(now, o) != device_day && day_at(now + 120_000, o) == day_at(now, o))
        .unwrap();
    let client_day = day_at(now, client_offset);
    sam.store
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(6),
                tz_offset_min: Some(client_offset),
                ..Default::default()
            },
        )
        .unwrap();
    dana.sync(&sam);

    for device in [&dana, &sam] {
        let progress = device.store.progress(plan, 3).unwrap();
        assert_eq!(progress.as_of, client_day, "offset {client_offset}");
        assert_eq!(progress.days_checked_in.last_7_days, 1);
        assert_eq!(progress.goals[0].days_checked_in.last_7_days, 1);
        let summary = device.store.export_markdown(plan).unwrap();
        assert!(
            summary.contains(&format!(
                "1 of the last 7, 1 of the last 30 (to {client_day})"
            )),
            "{summary}"
        );
    }
}
