//! The review report on the known plan: chart data (points, axes, missing days), the check-in
//! calendar, the HTML (self-contained, every part the issue lists, text escaped), and the FHIR
//! DocumentReference that carries it.

use alliance_core::export::charts::{self, LineKind};
use alliance_core::export::fhir;
use alliance_core::progress::plan_progress;
use alliance_core::{NewCheckIn, Plan};
use alliance_tests::known_plan::{known_plan, KnownPlan};
use base64::Engine as _;
use chrono::NaiveDate;
use serde_json::Value;

/// The day the chart tests look from: two days after the known plan's last rating.
const TODAY: &str = "2026-03-05";

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn days(texts: &[&str]) -> Vec<NaiveDate> {
    texts.iter().map(|t| day(t)).collect()
}

/// The known plan with mood and craving check-ins on 2, 4 (twice) March and one named a day
/// far ahead (future-dated), all by the client.
fn known_plan_with_moods() -> (KnownPlan, Plan) {
    let known = known_plan();
    let moods = [
        ("2026-03-02", Some(6), Some(3)),
        ("2026-03-04", Some(6), None),
        ("2026-03-04", Some(8), None),
        ("2099-01-01", Some(1), Some(10)),
    ];
    for (date, mood, craving) in moods {
        known
            .client
            .store
            .check_in(
                known.plan,
                known.work,
                &NewCheckIn {
                    mood,
                    craving,
                    local_date: Some(date.into()),
                    tz_offset_min: Some(60),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    known.counselor.sync(&known.client);
    let plan = known.counselor.store.plan(known.plan).unwrap();
    (known, plan)
}

#[test]
fn gas_chart_has_a_point_per_rated_day_on_a_seven_day_axis() {
    let known = known_plan();
    let plan = known.counselor.store.plan(known.plan).unwrap();
    let progress = plan_progress(&plan, TODAY, 3).unwrap();
    let sleep = progress
        .goals
        .iter()
        .find(|g| g.goal_id == known.sleep)
        .unwrap();
    let chart = charts::gas_chart(sleep, day(TODAY)).unwrap();
    // Rated on 1-3 March: the axis reaches back to span seven days, up to today.
    assert_eq!(chart.x.first, day("2026-02-27"));
    assert_eq!(chart.x.last, day(TODAY));
    assert_eq!(chart.x.len(), 7);
    assert_eq!(chart.x.ticks(), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(chart.x.label(day("2026-03-01")), "1 Mar");
    assert_eq!(chart.y.min, -2.5);
    assert_eq!(chart.y.max, 2.5);
    assert_eq!(chart.y.ticks, [-2.0, -1.0, 0.0, 1.0, 2.0]);
    assert_eq!(charts::gas_label(1.0), "+1");
    assert_eq!(charts::gas_label(0.0), "0");
    // -1, 0, then the +2 corrected to +1 on the same day: one point per day, corrected.
    let line = &chart.lines[0];
    assert_eq!(line.kind, LineKind::GasLevel);
    let points: Vec<(u32, f64)> = line.points.iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(points, [(2, -1.0), (3, 0.0), (4, 1.0)]);
    assert_eq!(
        line.points.iter().map(|p| p.day).collect::<Vec<_>>(),
        days(&["2026-03-01", "2026-03-02", "2026-03-03"])
    );
    // A level holds until the next rating: one stroke.
    assert_eq!(line.segments().len(), 1);
    assert_eq!(
        chart.missing_days(),
        days(&["2026-02-27", "2026-02-28", "2026-03-04", "2026-03-05"])
    );
    // The goal never rated has no chart.
    let drinking = progress
        .goals
        .iter()
        .find(|g| g.goal_id == known.drinking)
        .unwrap();
    assert!(charts::gas_chart(drinking, day(TODAY)).is_none());
}

#[test]
fn t_score_chart_follows_the_days_with_fifty_marked() {
    let known = known_plan();
    let plan = known.counselor.store.plan(known.plan).unwrap();
    let progress = plan_progress(&plan, TODAY, 3).unwrap();
    let chart = charts::t_score_chart(&progress, day(TODAY)).unwrap();
    assert_eq!(chart.reference, Some(50.0));
    let points: Vec<(u32, f64)> = chart.lines[0].points.iter().map(|p| (p.x, p.y)).collect();
    // 1 March: sleep (weight 2) at -1 alone → 40. 2 March: sleep 0, work 0 → 50.
    // 3 March: sleep +1 (w 2), work 0 → 50 + 20/√6.2.
    assert_eq!(points.len(), 3);
    assert_eq!((points[0].0, points[1].0, points[2].0), (2, 3, 4));
    assert!((points[0].1 - 40.0).abs() < 1e-9);
    assert!((points[1].1 - 50.0).abs() < 1e-9);
    assert!((points[2].1 - (50.0 + 20.0 / 6.2f64.sqrt())).abs() < 1e-9);
    // The axis holds 30 to 70 at least, in tens.
    assert_eq!(chart.y.min, 30.0);
    assert_eq!(chart.y.max, 70.0);
    assert_eq!(chart.y.ticks, [30.0, 40.0, 50.0, 60.0, 70.0]);
}

#[test]
fn mood_chart_breaks_at_missing_days_and_marks_check_in_days() {
    let (_known, plan) = known_plan_with_moods();
    let chart = charts::mood_chart(&plan, day(TODAY), 30);
    assert_eq!(chart.x.first, day("2026-02-04"));
    assert_eq!(chart.x.len(), 30);
    assert_eq!(chart.x.ticks(), [0, 5, 10, 15, 20, 25, 29]);
    assert_eq!(chart.y.ticks, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    let (mood, craving) = (&chart.lines[0], &chart.lines[1]);
    assert_eq!(
        (mood.kind, craving.kind),
        (LineKind::Mood, LineKind::Craving)
    );
    // Mood 4 on 1 March (the known plan), 6 on the 2nd, 6 and 8 on the 4th: their mean.
    let mood_points: Vec<(u32, f64)> = mood.points.iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(mood_points, [(25, 4.0), (26, 6.0), (28, 7.0)]);
    // No mood on 3 March: the line breaks there.
    let runs: Vec<Vec<u32>> = mood
        .segments()
        .iter()
        .map(|s| s.iter().map(|p| p.x).collect())
        .collect();
    assert_eq!(runs, [vec![25, 26], vec![28]]);
    let craving_points: Vec<(u32, f64)> = craving.points.iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(craving_points, [(25, 6.0), (26, 3.0)]);
    // Every day the client checked in is marked, a rating alone included (3 March); the
    // check-in dated far ahead is not, nor are its values.
    assert_eq!(chart.marks, [25, 26, 27, 28]);
    let missing = chart.missing_days();
    assert_eq!(missing.len(), 27);
    assert!(missing.contains(&day("2026-03-03")));
    assert!(missing.contains(&day(TODAY)));
    assert!(!missing.contains(&day("2026-03-04")));
}

#[test]
fn calendar_shows_the_last_30_days_on_the_clients_calendar() {
    let (_known, plan) = known_plan_with_moods();
    let calendar = charts::calendar(&plan, day(TODAY), 30);
    assert_eq!(calendar.len(), 30);
    assert_eq!(calendar[0].day, day("2026-02-04"));
    assert_eq!(calendar[29].day, day(TODAY));
    let checked: Vec<NaiveDate> = calendar
        .iter()
        .filter(|d| d.checked_in)
        .map(|d| d.day)
        .collect();
    assert_eq!(
        checked,
        days(&["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"])
    );
}

#[test]
fn report_is_one_self_contained_html_file_with_every_part() {
    let (known, _) = known_plan_with_moods();
    let store = &known.counselor.store;
    // Words with markup in them stay text.
    known
        .client
        .store
        .propose_goal(known.plan, "Say <script>alert(1)</script> & mean it")
        .unwrap();
    known.counselor.sync(&known.client);
    let html = store.export_report(known.plan).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing runs and nothing is fetched.
    let lower = html.to_lowercase();
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "<object", "<embed", "src=", "href=", "url(",
        "@import", "http:", "https:", "xlink",
    ] {
        assert!(!lower.contains(forbidden), "the report holds {forbidden}");
    }
    assert!(html.contains("Say &lt;script&gt;alert(1)&lt;/script&gt; &amp; mean it"));
    assert!(html.contains("Content-Security-Policy"));
    // Goals in the client's words with the clinical statement.
    assert!(html.contains("I want to sleep through the night"));
    assert!(html.contains("Client will keep a regular sleep schedule."));
    // Agreement with dated signatures.
    assert!(html.contains("agreed by client and counselor"));
    assert!(html.contains("changed since it was agreed: needs re-agreement"));
    assert!(html.contains("<th>Signed by</th>"));
    assert!(html.matches(" UTC</td>").count() >= 5, "dated signatures");
    // Objectives with due dates.
    assert!(html.contains("In bed by 23:00 on weeknights"));
    assert!(html.contains("<td>2026-06-30</td>"));
    // Charts as inline SVG: the two rated goals, the T-score, mood and craving.
    assert_eq!(html.matches("<svg ").count(), 4);
    assert!(html.contains("aria-label=\"GAS T-score over time\""));
    assert!(html.contains("aria-label=\"Daily mood and craving, check-in days marked\""));
    // The calendar of the last 30 days, and the footer with the time and the heads.
    assert!(html.contains("Check-in calendar, last 30 days"));
    assert_eq!(html.matches("<tr><th>Mon</th>").count(), 1);
    assert!(html.contains("Printed 20"));
    let heads = store.plan_heads(&[known.plan]).unwrap()[0]
        .1
        .clone()
        .unwrap();
    for head in heads {
        assert!(html.contains(&head.to_string()), "head {head}");
    }
    assert!(html.contains("42 CFR part 2"));
    // Printing: page margins for any paper, no fixed size; nothing splits a goal or a chart.
    assert!(html.contains("@page { margin: 14mm 12mm; }"));
    assert!(html.contains("@media print"));
    assert!(!lower.contains("size: a4") && !lower.contains("size: letter"));
}

#[test]
fn fhir_export_attaches_the_report_from_the_care_plan() {
    let known = known_plan();
    let text = known.counselor.store.export_fhir(known.plan).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let plan = known.counselor.store.plan(known.plan).unwrap();
    let id = fhir::report_id(&plan);
    let document = resources
        .iter()
        .find(|r| r["resourceType"] == "DocumentReference")
        .unwrap();
    assert_eq!(document["id"], id.as_str());
    assert_eq!(document["status"], "current");
    assert_eq!(document["subject"]["type"], "Patient");
    assert_eq!(document["context"]["related"][0]["type"], "CarePlan");
    let attachment = &document["content"][0]["attachment"];
    assert_eq!(attachment["contentType"], "text/html");
    let html = base64::engine::general_purpose::STANDARD
        .decode(attachment["data"].as_str().unwrap())
        .unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("I want to sleep through the night"));
    let care_plan = resources
        .iter()
        .find(|r| r["resourceType"] == "CarePlan")
        .unwrap();
    assert_eq!(
        care_plan["supportingInfo"][0]["reference"],
        format!("urn:uuid:{id}")
    );
    assert_eq!(care_plan["supportingInfo"][0]["type"], "DocumentReference");
    // Without the report: the same bundle, no DocumentReference, no supportingInfo.
    let plain: Value = serde_json::from_str(
        &known
            .counselor
            .store
            .export_fhir_without_report(known.plan)
            .unwrap(),
    )
    .unwrap();
    let plain_resources = plain["entry"].as_array().unwrap();
    assert_eq!(plain_resources.len() + 1, resources.len());
    assert!(plain_resources
        .iter()
        .all(|e| e["resource"]["resourceType"] != "DocumentReference"));
}
