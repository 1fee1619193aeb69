//! Unit tests of the exports: instants, plan-file checks, Markdown escaping.

use super::*;
use crate::local_sync::sync_stores;
use crate::model::{GoalEdit, GoalStatus, NewCheckIn, NewObjective, Role};
use crate::NewPlan;

/// A counselor's store and a client's store sharing one plan with one agreed goal.
fn shared_plan() -> (Alliance, Alliance, PlanId) {
    let counselor = Alliance::open_in_memory().unwrap();
    let client = Alliance::open_in_memory().unwrap();
    counselor.init("Dana", Role::Counselor, None).unwrap();
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan | one".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    sync_stores(&counselor, &client).unwrap();
    let goal = client.propose_goal(plan, "Sleep | rest *well*").unwrap();
    sync_stores(&counselor, &client).unwrap();
    counselor
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                clinical_statement: Some("# Not a heading\nsecond line".into()),
                status: Some(GoalStatus::Active),
                ..Default::default()
            },
        )
        .unwrap();
    counselor
        .add_objective(
            plan,
            goal,
            &NewObjective {
                text: "In bed by 23:00".into(),
                ..Default::default()
            },
        )
        .unwrap();
    counselor.agree(plan, goal).unwrap();
    sync_stores(&counselor, &client).unwrap();
    client.agree(plan, goal).unwrap();
    client
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                gas_level: Some(0),
                local_date: Some("2026-03-01".into()),
                tz_offset_min: Some(60),
                ..Default::default()
            },
        )
        .unwrap();
    sync_stores(&counselor, &client).unwrap();
    (counselor, client, plan)
}

#[test]
fn instants_are_utc_with_milliseconds() {
    assert_eq!(instant(0).unwrap(), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        instant(1_772_407_800_123).unwrap(),
        "2026-03-01T23:30:00.123Z"
    );
    assert!(instant(i64::MAX).is_err());
}

#[test]
fn plan_files_that_do_not_match_their_document_are_refused() {
    let (counselor, _client, plan) = shared_plan();
    let text = counselor.export_json(plan).unwrap();
    let decoded = json::decode(&text).unwrap();
    assert_eq!(decoded.plan_id, plan);
    assert!(!decoded.changes.is_empty());

    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    file["plan"]["title"] = "Another title".into();
    let reason = |file: &serde_json::Value| match json::decode(&file.to_string()) {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "plan file");
            reason
        }
        other => panic!("expected InvalidInput, got {:?}", other.map(|d| d.plan_id)),
    };
    assert!(reason(&file).contains("does not match the plan"));

    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    file["history"][0]["description"] = "something else".into();
    assert!(reason(&file).contains("does not match the history"));

    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    file["version"] = 2.into();
    assert!(reason(&file).contains("another version"));

    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    file["document"] = "zz".into();
    assert!(reason(&file).contains("not hex"));

    file["format"] = "something".into();
    assert!(reason(&file).contains("not an Alliance plan file"));
    assert!(json::decode("[1, 2]").is_err());
}

#[test]
fn markdown_escapes_what_people_typed() {
    let (counselor, _client, plan) = shared_plan();
    let text = counselor.export_markdown(plan).unwrap();
    // Table cells and headings keep a typed pipe from breaking the table.
    assert!(
        text.starts_with("# Treatment plan: Plan \\| one\n"),
        "{text}"
    );
    assert!(text.contains("## Goal 1: Sleep \\| rest *well*"), "{text}");
    // A clinical statement that starts like a heading stays a paragraph.
    assert!(text.contains("**Clinical statement.** \\# Not a heading  \nsecond line"));
    assert!(text.contains("This goal is **agreed by client and counselor**"));
    assert!(text.contains(PART2_NOTICE));
}
