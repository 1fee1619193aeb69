//! Exports of the known plan: the FHIR R4 mapping field by field, and the JSON plan file's
//! round trip through another store (with its history), judged by the role rules on import.

use std::collections::{HashMap, HashSet};

use alliance_core::export::fhir::{self, GOAL_ACCEPTANCE, GOAL_ACHIEVEMENT};
use alliance_core::export::{instant, json, PART2_NOTICE};
use alliance_core::plan::{write, PlanDoc};
use alliance_core::{Alliance, DeviceId, Error, GasEdit, HistoryEntry, Plan, Role};
use alliance_tests::enroll;
use alliance_tests::known_plan::{known_plan, KnownPlan};
use serde_json::Value;

const EXPORTED_AT: i64 = 1_772_593_567_008; // 2026-03-04T03:06:07.008Z

fn bundle(known: &KnownPlan) -> (Plan, Value) {
    let plan = known.counselor.store.plan(known.plan).unwrap();
    let bundle = fhir::bundle(&plan, EXPORTED_AT).unwrap();
    (plan, bundle)
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

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn urn(id: impl ToString) -> String {
    format!("urn:uuid:{}", id.to_string())
}

/// Every `reference` anywhere in `value`, with the `type` beside it.
fn references<'a>(value: &'a Value, out: &mut Vec<(&'a str, Option<&'a str>)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("reference") {
                out.push((reference, map.get("type").and_then(Value::as_str)));
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn bundle_is_a_collection_with_stable_ids_and_resolvable_references() {
    let known = known_plan();
    let (plan, bundle) = bundle(&known);
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["timestamp"], "2026-03-04T03:06:07.008Z");
    assert_eq!(bundle["meta"]["security"][0]["code"], "R");
    // The same plan exports to the same ids, whenever it is exported.
    let again = fhir::bundle(&plan, EXPORTED_AT + 86_400_000).unwrap();
    let ids = |b: &Value| -> Vec<String> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&bundle), ids(&again));
    assert_eq!(bundle["id"], again["id"]);
    // Ids are unique, and each entry's fullUrl is its urn:uuid.
    let mut types_by_url = HashMap::new();
    for entry in bundle["entry"].as_array().unwrap() {
        let id = entry["resource"]["id"].as_str().unwrap();
        assert_eq!(entry["fullUrl"], urn(id));
        let kind = entry["resource"]["resourceType"].as_str().unwrap();
        assert!(
            types_by_url.insert(urn(id), kind).is_none(),
            "duplicate {id}"
        );
    }
    // Every reference points to an entry of the type it names.
    let mut refs = Vec::new();
    references(&bundle, &mut refs);
    assert!(refs.len() > 50);
    for (reference, kind) in refs {
        let target = types_by_url
            .get(reference)
            .unwrap_or_else(|| panic!("dangling reference {reference}"));
        assert_eq!(Some(*target), kind, "{reference}");
    }
    // Resources by type: one Patient, one Practitioner, the CarePlan, three Goals; six
    // check-ins, each with a GAS level, and the plan's T-score; five agreements.
    let count = |kind| of_type(&bundle, kind).len();
    assert_eq!(count("Patient"), 1);
    assert_eq!(count("Practitioner"), 1);
    assert_eq!(count("CarePlan"), 1);
    assert_eq!(count("Goal"), 3);
    assert_eq!(count("Observation"), 6 + 6 + 1);
    assert_eq!(count("Provenance"), 5);
    assert_eq!(
        bundle["entry"].as_array().unwrap().len(),
        1 + 1 + 1 + 3 + 13 + 5
    );
    // Every instant is UTC.
    for observation in of_type(&bundle, "Observation") {
        assert!(observation["effectiveDateTime"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
    }
    for provenance in of_type(&bundle, "Provenance") {
        assert!(provenance["recorded"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn members_and_care_plan_map_field_by_field() {
    let known = known_plan();
    let (plan, bundle) = bundle(&known);
    let (dana, sam) = (known.counselor.me.member_id, known.client.me.member_id);
    let patient = resource(&bundle, &sam.to_string());
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["name"][0]["text"], "Sam");
    let practitioner = resource(&bundle, &dana.to_string());
    assert_eq!(practitioner["resourceType"], "Practitioner");
    assert_eq!(practitioner["name"][0]["text"], "Dana");

    let care_plan = resource(&bundle, &known.plan.to_string());
    assert_eq!(care_plan["resourceType"], "CarePlan");
    assert_eq!(care_plan["status"], "active");
    assert_eq!(care_plan["intent"], "plan");
    assert_eq!(care_plan["title"], "Sam's recovery plan");
    assert_eq!(care_plan["subject"]["reference"], urn(sam));
    assert_eq!(care_plan["subject"]["type"], "Patient");
    assert_eq!(care_plan["author"]["reference"], urn(dana));
    assert_eq!(care_plan["author"]["display"], "Dana");
    assert_eq!(care_plan["contributor"].as_array().unwrap().len(), 1);
    assert_eq!(care_plan["contributor"][0]["reference"], urn(sam));
    let created = instant(plan.created_at).unwrap();
    assert_eq!(care_plan["period"]["start"], created.as_str());
    assert_eq!(care_plan["created"], created.as_str());
    let goals: Vec<&str> = care_plan["goal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["reference"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = plan.goals.iter().map(|g| urn(g.goal_id)).collect();
    assert_eq!(goals, expected);
    assert!(goals.contains(&urn(known.sleep).as_str()));
    // Interventions become activities of their goal, with frequency and performer.
    let activities = care_plan["activity"].as_array().unwrap();
    assert_eq!(activities.len(), 2);
    let hygiene = activities
        .iter()
        .map(|a| &a["detail"])
        .find(|d| d["description"] == "Sleep hygiene psychoeducation")
        .unwrap();
    assert_eq!(hygiene["status"], "in-progress");
    assert_eq!(hygiene["scheduledString"], "weekly, 30 minutes");
    assert_eq!(hygiene["performer"][0]["reference"], urn(dana));
    assert_eq!(hygiene["goal"][0]["reference"], urn(known.sleep));
    let routine = activities
        .iter()
        .map(|a| &a["detail"])
        .find(|d| d["description"] == "Wind-down routine")
        .unwrap();
    assert_eq!(routine["performer"][0]["reference"], urn(sam));
    assert_eq!(routine["scheduledString"], "nightly");
    // The review date and the Part 2 notice ride along as notes.
    let notes: Vec<&str> = care_plan["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["Next review on 2026-09-01.", PART2_NOTICE]);
}

fn acceptance(goal: &Value) -> HashMap<String, String> {
    goal["extension"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["url"] == GOAL_ACCEPTANCE)
        .map(|e| {
            let part = |name: &str| {
                e["extension"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["url"] == name)
                    .cloned()
                    .unwrap()
            };
            (
                part("individual")["valueReference"]["reference"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                part("status")["valueCode"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn goals_map_field_by_field() {
    let known = known_plan();
    let (plan, bundle) = bundle(&known);
    let (dana, sam) = (
        urn(known.counselor.me.member_id),
        urn(known.client.me.member_id),
    );

    let sleep = resource(&bundle, &known.sleep.to_string());
    assert_eq!(sleep["resourceType"], "Goal");
    assert_eq!(sleep["lifecycleStatus"], "active");
    let achievement = &sleep["achievementStatus"]["coding"][0];
    assert_eq!(achievement["system"], GOAL_ACHIEVEMENT);
    assert_eq!(achievement["code"], "improving");
    assert_eq!(
        sleep["description"]["text"],
        "I want to sleep through the night"
    );
    assert_eq!(sleep["subject"]["reference"], sam.as_str());
    assert_eq!(sleep["expressedBy"]["reference"], sam.as_str());
    assert_eq!(
        sleep["category"][0]["text"],
        "Emotional, behavioral or cognitive conditions"
    );
    assert!(sleep["category"][0].get("coding").is_none());
    let notes: Vec<&str> = sleep["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes[0], "Client will keep a regular sleep schedule.");
    assert_eq!(notes[1], "Objective: In bed by 23:00 on weeknights");
    assert_eq!(
        notes[2],
        "Goal Attainment Scale (weight 2, baseline -1):\n\
         +2: Sleeps through every night\n\
         +1: Sleeps through six nights a week\n\
         0: Sleeps through five nights a week\n\
         -1: Awake three or more nights a week\n\
         -2: Awake most nights"
    );
    // Objectives become targets: measure, detail and due date.
    let targets = sleep["target"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    let weeknights = targets
        .iter()
        .find(|t| t["measure"]["text"] == "Weeknights in bed by 23:00")
        .unwrap();
    assert_eq!(weeknights["detailQuantity"]["value"], 5.0);
    assert_eq!(weeknights["detailQuantity"]["unit"], "nights per week");
    assert!(weeknights["detailQuantity"].get("system").is_none());
    assert_eq!(weeknights["dueDate"], "2026-06-30");
    let diary = targets
        .iter()
        .find(|t| t["measure"]["text"] == "Keep a sleep diary")
        .unwrap();
    assert_eq!(diary["detailString"], "Keep a sleep diary");
    assert!(diary.get("dueDate").is_none());
    // Both agreed to the current content.
    let accepted = acceptance(sleep);
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[&dana], "agree");
    assert_eq!(accepted[&sam], "agree");
    // The outcomes are the GAS levels that count (not the corrected one).
    let outcomes: HashSet<&str> = sleep["outcomeReference"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["reference"].as_str().unwrap())
        .collect();
    let goal = plan.goal(known.sleep).unwrap();
    let expected: HashSet<String> = goal
        .checkins
        .iter()
        .filter(|c| !c.superseded)
        .map(|c| urn(fhir::gas_observation_id(c)))
        .collect();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(
        outcomes,
        expected.iter().map(String::as_str).collect::<HashSet<_>>()
    );

    // Proposed by the counselor and agreed by both: accepted; never rated: no achievement.
    let drinking = resource(&bundle, &known.drinking.to_string());
    assert_eq!(drinking["lifecycleStatus"], "accepted");
    assert!(drinking.get("achievementStatus").is_none());
    assert!(drinking.get("target").is_none());
    assert_eq!(drinking["expressedBy"]["reference"], dana.as_str());
    assert_eq!(drinking["description"]["text"], "Fewer drinks at weekends");
    let accepted = acceptance(drinking);
    assert_eq!(
        (&accepted[&dana][..], &accepted[&sam][..]),
        ("agree", "agree")
    );

    // On hold; rated 0 then 0: no change; the counselor's agreement went stale.
    let work = resource(&bundle, &known.work.to_string());
    assert_eq!(work["lifecycleStatus"], "on-hold");
    assert_eq!(work["achievementStatus"]["coding"][0]["code"], "no-change");
    assert_eq!(work["description"]["text"], "Go back to work part-time");
    let accepted = acceptance(work);
    assert_eq!(
        (&accepted[&dana][..], &accepted[&sam][..]),
        ("pending", "pending")
    );
}

#[test]
fn observations_and_provenance_map_field_by_field() {
    let known = known_plan();
    let (plan, bundle) = bundle(&known);
    let sam = urn(known.client.me.member_id);
    let goal = plan.goal(known.sleep).unwrap();
    let first = goal
        .checkins
        .iter()
        .find(|c| c.local_date == "2026-03-01")
        .unwrap();
    let observation = resource(&bundle, &first.checkin_id.to_string());
    assert_eq!(observation["status"], "final");
    assert_eq!(observation["code"]["text"], fhir::CHECKIN_CODE_TEXT);
    assert!(observation["code"].get("coding").is_none());
    assert_eq!(observation["subject"]["reference"], sam.as_str());
    assert_eq!(observation["performer"][0]["reference"], sam.as_str());
    assert_eq!(observation["focus"][0]["reference"], urn(known.sleep));
    assert_eq!(
        observation["effectiveDateTime"],
        instant(first.at).unwrap().as_str()
    );
    assert_eq!(observation["note"][0]["text"], "Rough night");
    let component = |text: &str| {
        observation["component"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"]["text"] == text)
            .cloned()
            .unwrap_or_else(|| panic!("no component {text}"))
    };
    assert_eq!(
        component("Calendar day the client meant")["valueDateTime"],
        "2026-03-01"
    );
    assert_eq!(component("Mood (0 to 10)")["valueInteger"], 4);
    assert_eq!(component("Craving (0 to 10)")["valueInteger"], 6);
    let gas_id = fhir::gas_observation_id(first);
    assert_eq!(observation["hasMember"][0]["reference"], urn(&gas_id));
    let gas = resource(&bundle, &gas_id);
    assert_eq!(gas["code"]["text"], fhir::GAS_LEVEL_CODE_TEXT);
    assert_eq!(gas["valueInteger"], -1);
    assert_eq!(gas["note"][0]["text"], "Awake three or more nights a week");
    assert_eq!(gas["derivedFrom"][0]["reference"], urn(first.checkin_id));
    assert_eq!(gas["focus"][0]["reference"], urn(known.sleep));

    let second = goal
        .checkins
        .iter()
        .find(|c| c.local_date == "2026-03-02")
        .unwrap();
    let observation = resource(&bundle, &second.checkin_id.to_string());
    let value = observation["component"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"]["text"] == "Value recorded toward the goal")
        .unwrap();
    assert_eq!(value["valueQuantity"]["value"], 4.0);

    // A corrected check-in was entered in error; its correction is the corrected value.
    let corrected = resource(&bundle, &known.corrected.to_string());
    assert_eq!(corrected["status"], "entered-in-error");
    let correction = resource(&bundle, &known.correction.to_string());
    assert_eq!(correction["status"], "corrected");
    let correction_checkin = goal
        .checkins
        .iter()
        .find(|c| c.checkin_id == known.correction)
        .unwrap();
    let gas = resource(&bundle, &fhir::gas_observation_id(correction_checkin));
    assert_eq!(gas["valueInteger"], 1);
    assert_eq!(gas["status"], "corrected");
    // The correction kept the day of the entry it corrects.
    assert_eq!(correction_checkin.local_date, "2026-03-03");

    // The plan's T-score, from each goal's latest level.
    let t_score = of_type(&bundle, "Observation")
        .into_iter()
        .find(|o| o["code"]["text"] == fhir::T_SCORE_CODE_TEXT)
        .unwrap();
    let expected = plan.gas_t_score.unwrap();
    // sleep +1 (weight 2), work 0 (weight 1): 50 + 10·2/√(0.7·5 + 0.3·9).
    assert!((expected - (50.0 + 20.0 / 6.2f64.sqrt())).abs() < 1e-9);
    let value = t_score["valueQuantity"]["value"].as_f64().unwrap();
    assert!((value - expected).abs() < 0.005);
    assert_eq!(t_score["focus"][0]["reference"], urn(known.plan));
    assert_eq!(t_score["derivedFrom"].as_array().unwrap().len(), 2);

    // One Provenance per agreement: who, when, and the content hash signed.
    let provenances = of_type(&bundle, "Provenance");
    let mut seen = 0;
    for goal in &plan.goals {
        for agreement in &goal.agreement.agreements {
            let provenance = provenances
                .iter()
                .find(|p| {
                    p["target"][0]["reference"] == urn(goal.goal_id)
                        && p["agent"][0]["who"]["reference"] == urn(agreement.member_id)
                })
                .unwrap();
            assert_eq!(
                provenance["recorded"],
                instant(agreement.at).unwrap().as_str()
            );
            let what = &provenance["entity"][0]["what"];
            assert_eq!(provenance["entity"][0]["role"], "source");
            assert_eq!(what["identifier"]["value"], agreement.content_hash.as_str());
            let current = agreement.content_hash == goal.content_hash;
            assert_eq!(
                what["display"].as_str().unwrap().ends_with("still current"),
                current
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
    let stale = provenances
        .iter()
        .filter(|p| {
            p["entity"][0]["what"]["display"]
                .as_str()
                .unwrap()
                .ends_with("changed since")
        })
        .count();
    assert_eq!(stale, 1);
}

fn by_hash(mut entries: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
    entries.sort_by(|a, b| a.hash.cmp(&b.hash));
    entries
}

#[test]
fn plan_file_imports_to_an_identical_plan_with_its_history() {
    let known = known_plan();
    let dana = &known.counselor;
    let file = dana.store.export_json(known.plan).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("tablet.db");
    {
        let store = Alliance::open(&path).unwrap();
        store.init("Lee", Role::Counselor, None).unwrap();
        assert_eq!(store.import_json(&file).unwrap(), known.plan);
    }
    // Reopened from disk: the same plan, the same history, the same catalog entry.
    let store = Alliance::open(&path).unwrap();
    let original = dana.store.plan(known.plan).unwrap();
    assert_eq!(store.plan(known.plan).unwrap(), original);
    // The same changes with the same authors, times and descriptions. (Their order is the
    // order the document loads them in, which any reload may change.)
    assert_eq!(
        by_hash(store.history(known.plan).unwrap()),
        by_hash(dana.store.history(known.plan).unwrap())
    );
    assert!(store.history(known.plan).unwrap().len() > 30);
    let listed = store.list_plans().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].review_on.as_deref(), Some("2026-09-01"));
    assert_eq!(listed[0].goal_count, 3);
    // The same file again: this store already holds the plan.
    assert!(matches!(
        store.import_json(&file),
        Err(Error::InvalidInput { field: "plan", .. })
    ));
    // A store with no identity (a relay) imports it too.
    let relay = Alliance::open_in_memory().unwrap();
    relay.import_json(&file).unwrap();
    assert_eq!(relay.plan(known.plan).unwrap(), original);
}

#[test]
fn an_imported_plan_goes_on_syncing_like_any_other() {
    let known = known_plan();
    let (dana, sam) = (&known.counselor, &known.client);
    let tablet = dana.another_of();
    enroll(dana, known.plan, &tablet);
    dana.sync(sam);
    let file = dana.store.export_json(known.plan).unwrap();
    assert!(!tablet.store.has_plan(known.plan).unwrap());
    tablet.store.import_json(&file).unwrap();
    // Edits on the tablet and the phone merge with the imported history.
    tablet
        .store
        .set_gas(known.plan, known.work, &GasEdit::Weight(3.0))
        .unwrap();
    sam.store
        .propose_goal(known.plan, "Call my sister weekly")
        .unwrap();
    tablet.sync(sam);
    let on_phone = sam.store.plan(known.plan).unwrap();
    assert_eq!(tablet.store.plan(known.plan).unwrap(), on_phone);
    assert_eq!(on_phone.goals.len(), 4);
    assert_eq!(on_phone.goal(known.work).unwrap().gas.weight, 3.0);
}

/// A plan file whose document holds a change `tamper` makes on the counselor's document with
/// `actor`: the file is consistent (plan and history rebuilt from that document).
fn tampered_file(known: &KnownPlan, actor: DeviceId) -> String {
    let bytes = known.counselor.store.saved_document(known.plan).unwrap();
    let mut doc = PlanDoc::load(&bytes, actor.actor()).unwrap();
    doc.change("renamed the plan", EXPORTED_AT, |tx| {
        write::set_title(tx, "Renamed by someone who may not")
    })
    .unwrap();
    let plan = doc.read().unwrap();
    assert_eq!(plan.title, "Renamed by someone who may not");
    // The honest changes keep their signatures (from an honest export of the plan): only the
    // tampered change goes unsigned, and its author's role is what refuses it.
    let honest = known.counselor.store.export_json(known.plan).unwrap();
    let honest: serde_json::Value = serde_json::from_str(&honest).unwrap();
    let records = hex_bytes(honest["signatures"].as_str().unwrap());
    let signatures = alliance_core::authorship::carrier::decode_records(&records).unwrap();
    assert!(!signatures.is_empty());
    json::encode(&plan, &doc.history(), &doc.save(), &signatures, EXPORTED_AT).unwrap()
}

#[test]
fn imported_changes_are_judged_like_changes_from_peers() {
    let known = known_plan();
    // The client's own device writing the plan's title: the client may not.
    let by_client = tampered_file(&known, known.client.me.device_id);
    // A device nobody enrolled.
    let by_stranger = tampered_file(&known, DeviceId::new());
    for file in [by_client, by_stranger] {
        let store = Alliance::open_in_memory().unwrap();
        match store.import_json(&file) {
            Err(Error::NotAllowed { rule }) => {
                assert!(rule.starts_with("an imported change"));
                assert!(!rule.contains(alliance_core::authorship::FORGED), "{rule}");
            }
            other => panic!("expected NotAllowed, got {other:?}"),
        }
        // Nothing was stored.
        assert!(store.list_plans().unwrap().is_empty());
        assert!(!store.has_plan(known.plan).unwrap());
        assert!(store.plan(known.plan).is_err());
    }
    // The untouched file still imports.
    let store = Alliance::open_in_memory().unwrap();
    let file = known.counselor.store.export_json(known.plan).unwrap();
    store.import_json(&file).unwrap();
    assert_eq!(store.plan(known.plan).unwrap().title, "Sam's recovery plan");
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
