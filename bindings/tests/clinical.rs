//! Exports, progress, relay tokens and reviews through the FFI: what a shell gets back, and the
//! typed errors it acts on.

mod support;

use alliance_ffi::{Alliance, ApiError, NewCheckIn, Role, Trend};
use serde_json::Value;
use support::{block_on, world};

fn check_in_on(store: &Alliance, plan_id: &str, goal_id: &str, day: &str, level: i32) {
    block_on(store.check_in(
        plan_id.to_owned(),
        goal_id.to_owned(),
        NewCheckIn {
            gas_level: Some(level),
            local_date: Some(day.to_owned()),
            tz_offset_min: Some(0),
            ..Default::default()
        },
    ))
    .unwrap();
}

#[test]
fn fhir_export_is_a_bundle_with_the_goal_in_the_clients_words() {
    let w = world();
    let text = block_on(w.counselor.export_fhir(w.plan_id.clone())).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| &entry["resource"])
        .collect();
    let goal = resources
        .iter()
        .find(|r| r["resourceType"] == "Goal")
        .expect("a Goal resource");
    assert_eq!(goal["id"], w.goal_id.as_str());
    assert_eq!(goal["description"]["text"], "Asleep before midnight");
    let care_plan = resources
        .iter()
        .find(|r| r["resourceType"] == "CarePlan")
        .expect("a CarePlan resource");
    assert_eq!(care_plan["title"], "Sleep");
    assert!(matches!(
        block_on(w.counselor.export_fhir("not-a-plan".into())),
        Err(ApiError::InvalidInput { .. })
    ));
}

#[test]
fn a_json_export_imports_into_another_store_as_the_same_plan() {
    let w = world();
    check_in_on(&w.client, &w.plan_id, &w.goal_id, "2026-03-01", 1);
    block_on(w.client.sync_with(w.counselor.clone())).unwrap();
    let file = block_on(w.counselor.export_json(w.plan_id.clone())).unwrap();

    let archive = Alliance::open_in_memory().unwrap();
    block_on(archive.init_identity("Lee".into(), Role::Counselor, None)).unwrap();
    let imported = block_on(archive.import_json(file.clone())).unwrap();
    assert_eq!(imported, w.plan_id);
    assert_eq!(
        block_on(archive.plan(w.plan_id.clone())).unwrap(),
        block_on(w.counselor.plan(w.plan_id.clone())).unwrap()
    );
    assert_eq!(
        block_on(archive.history(w.plan_id.clone())).unwrap().len(),
        block_on(w.counselor.history(w.plan_id.clone()))
            .unwrap()
            .len()
    );
    // Importing again, or a file that is not a plan file, is refused as input.
    assert!(matches!(
        block_on(archive.import_json(file)),
        Err(ApiError::InvalidInput { .. })
    ));
    assert!(matches!(
        block_on(archive.import_json("{\"hello\": 1}".into())),
        Err(ApiError::InvalidInput { .. })
    ));
}

#[test]
fn the_markdown_summary_holds_the_goal_and_the_part2_notice() {
    let w = world();
    let text = block_on(w.client.export_markdown(w.plan_id.clone())).unwrap();
    assert!(text.contains("Asleep before midnight"), "{text}");
    assert!(text.contains("42 CFR part 2"), "{text}");
}

#[test]
fn progress_follows_the_check_ins() {
    let w = world();
    for (day, level) in [("2026-03-01", -1), ("2026-03-02", 0), ("2026-03-03", 1)] {
        check_in_on(&w.client, &w.plan_id, &w.goal_id, day, level);
    }
    // A check-in today without a rating counts as a day checked in, not as a rating.
    block_on(w.client.check_in(
        w.plan_id.clone(),
        w.goal_id.clone(),
        NewCheckIn {
            mood: Some(6),
            ..Default::default()
        },
    ))
    .unwrap();
    let progress = block_on(w.client.progress(w.plan_id.clone(), None)).unwrap();
    assert_eq!(progress.trend_window, 3);
    let goal = &progress.goals[0];
    assert_eq!(goal.goal_id, w.goal_id);
    let levels: Vec<i32> = goal.series.iter().map(|p| p.level).collect();
    assert_eq!(levels, [-1, 0, 1]);
    assert_eq!(goal.series[0].local_date, "2026-03-01");
    assert_eq!(goal.latest_level, Some(1));
    assert_eq!(goal.trend, Some(Trend::Improving));
    assert_eq!(goal.days_checked_in.last_7_days, 1);
    assert_eq!(progress.days_checked_in.last_30_days, 1);
    let days: Vec<&str> = progress
        .t_scores
        .iter()
        .map(|p| p.local_date.as_str())
        .collect();
    assert_eq!(days, ["2026-03-01", "2026-03-02", "2026-03-03"]);
    assert!(progress.t_scores[0].t_score < progress.t_scores[2].t_score);
    assert!(matches!(
        block_on(w.client.progress(w.plan_id.clone(), Some(1))),
        Err(ApiError::InvalidInput { .. })
    ));
}

#[test]
fn future_dated_check_ins_and_the_clients_today_reach_the_shell() {
    let w = world();
    // The client checks in at UTC+14, then names a day a year ahead.
    block_on(w.client.check_in(
        w.plan_id.clone(),
        w.goal_id.clone(),
        NewCheckIn {
            gas_level: Some(-1),
            tz_offset_min: Some(840),
            ..Default::default()
        },
    ))
    .unwrap();
    check_in_on(&w.client, &w.plan_id, &w.goal_id, "2099-01-01", 2);
    block_on(w.client.sync_with(w.counselor.clone())).unwrap();
    let plan = block_on(w.counselor.plan(w.plan_id.clone())).unwrap();
    let checkins = &plan.goals[0].checkins;
    let flags: Vec<(&str, bool)> = checkins
        .iter()
        .map(|c| (c.local_date.as_str(), c.future_dated))
        .collect();
    assert!(flags.contains(&("2099-01-01", true)), "{flags:?}");
    assert_eq!(flags.iter().filter(|(_, f)| *f).count(), 1);
    // The client's today is their day at UTC+14, on the counselor's device too.
    let today_there = &checkins
        .iter()
        .find(|c| !c.future_dated)
        .unwrap()
        .local_date;
    assert_eq!(&plan.client_today, today_there);
    assert_eq!(plan.goals[0].latest_gas_level, Some(-1));
    let progress = block_on(w.counselor.progress(w.plan_id.clone(), None)).unwrap();
    assert_eq!(&progress.as_of, today_there);
    assert_eq!(progress.goals[0].latest_level, Some(-1));
}

#[test]
fn tokens_are_issued_by_counselors_for_enrolled_devices_only() {
    let w = world();
    let token = block_on(w.counselor.issue_device_token(
        w.plan_id.clone(),
        w.sam.device_id.clone(),
        None,
    ))
    .unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // The same token may be recorded again, e.g. for the device's other plans.
    let reused = block_on(w.counselor.issue_device_token(
        w.plan_id.clone(),
        w.sam.device_id.clone(),
        Some(token.clone()),
    ))
    .unwrap();
    assert_eq!(reused, token);

    let stranger = "0123456789abcdef0123456789abcdef".to_owned();
    assert!(matches!(
        block_on(
            w.counselor
                .issue_device_token(w.plan_id.clone(), stranger.clone(), None)
        ),
        Err(ApiError::NotFound { .. })
    ));
    assert!(matches!(
        block_on(w.counselor.revoke_device(w.plan_id.clone(), stranger)),
        Err(ApiError::NotFound { .. })
    ));
    assert!(matches!(
        block_on(
            w.client
                .issue_device_token(w.plan_id.clone(), w.sam.device_id.clone(), None)
        ),
        Err(ApiError::NotAllowed { .. })
    ));
    match block_on(w.counselor.issue_device_token(
        w.plan_id.clone(),
        w.sam.device_id.clone(),
        Some("secret-but-malformed".into()),
    )) {
        Err(ApiError::InvalidInput { reason }) => assert!(!reason.contains("secret")),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(matches!(
        block_on(
            w.client
                .revoke_device(w.plan_id.clone(), w.sam.device_id.clone())
        ),
        Err(ApiError::NotAllowed { .. })
    ));
    block_on(
        w.counselor
            .revoke_device(w.plan_id.clone(), w.sam.device_id.clone()),
    )
    .unwrap();
    let history = block_on(w.counselor.history(w.plan_id.clone())).unwrap();
    assert_eq!(history.last().unwrap().description, "revoked a device");
    assert!(history
        .iter()
        .all(|entry| !entry.description.contains(&token)));
}

#[test]
fn plans_due_for_review_follow_their_review_dates() {
    let w = world();
    let due = |within| -> Vec<String> {
        block_on(w.counselor.plans_due_for_review(within))
            .unwrap()
            .into_iter()
            .map(|p| p.plan_id)
            .collect()
    };
    assert_eq!(due(0), [w.plan_id.as_str()], "a plan without a date is due");
    block_on(
        w.counselor
            .set_review_on(w.plan_id.clone(), "2999-01-01".into()),
    )
    .unwrap();
    assert!(due(30).is_empty());
    block_on(
        w.counselor
            .set_review_on(w.plan_id.clone(), "2020-01-01".into()),
    )
    .unwrap();
    assert_eq!(due(0), [w.plan_id.as_str()], "an overdue plan is due");
}
