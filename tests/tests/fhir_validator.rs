//! The FHIR R4 export checked by validators that are not code of this project: the official
//! HL7 FHIR R4 JSON Schema and the fhir.resources R4 models, which `scripts/validate-fhir.sh`
//! installs outside the repository. Skipped (with the reason printed) only where node, npm or
//! python3 is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alliance_core::{Alliance, NewCheckIn};
use alliance_tests::known_plan::known_plan;
use alliance_tests::{client, counselor, plan_with_client};
use serde_json::Value;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("validate-fhir.sh")
}

/// Why the validators cannot run here, if they cannot.
fn missing_tool() -> Option<String> {
    for tool in ["node", "npm", "python3", "bash"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn validate(files: &[&Path]) -> Output {
    let output = Command::new("bash")
        .arg(script())
        .args(files)
        .output()
        .expect("run scripts/validate-fhir.sh");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn exported_bundles_pass_independent_fhir_r4_validators() {
    if let Some(reason) = missing_tool() {
        println!("skipped: {reason}; the FHIR validators need node, npm and python3");
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    // The known plan: every resource kind the export makes, the review report attached as a
    // DocumentReference, and a future-dated check-in (preliminary, with its note).
    let known = known_plan();
    known
        .client
        .store
        .check_in(
            known.plan,
            known.work,
            &NewCheckIn {
                gas_level: Some(2),
                local_date: Some("2099-01-01".into()),
                ..Default::default()
            },
        )
        .unwrap();
    known.counselor.sync(&known.client);
    let full = folder.path().join("known-plan.json");
    let text = known.counselor.store.export_fhir(known.plan).unwrap();
    let kinds: Vec<String> = serde_json::from_str::<Value>(&text).unwrap()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "DocumentReference"));
    assert!(text.contains("\"status\": \"preliminary\""));
    std::fs::write(&full, text).unwrap();
    // A plan just started: no goals, no check-ins, no agreements.
    let (dana, sam) = (counselor(), client());
    let plan = plan_with_client(&dana, &sam);
    let empty = folder.path().join("new-plan.json");
    std::fs::write(&empty, dana.store.export_fhir(plan).unwrap()).unwrap();
    // The same plan imported into a relay's store exports the same resources.
    let relay = Alliance::open_in_memory().unwrap();
    relay
        .import_json(&known.counselor.store.export_json(known.plan).unwrap())
        .unwrap();
    let from_relay = folder.path().join("from-relay.json");
    std::fs::write(&from_relay, relay.export_fhir(known.plan).unwrap()).unwrap();

    let output = validate(&[&full, &empty, &from_relay]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the validators rejected the export (or could not be installed)"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout
            .matches("valid against the FHIR R4 JSON schema")
            .count(),
        3
    );
    assert_eq!(stdout.matches("R4 models").count(), 3);
}

#[test]
fn the_validators_reject_a_broken_bundle() {
    if let Some(reason) = missing_tool() {
        println!("skipped: {reason}; the FHIR validators need node, npm and python3");
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let known = known_plan();
    let good: Value =
        serde_json::from_str(&known.counselor.store.export_fhir(known.plan).unwrap()).unwrap();
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut bundle = good.clone();
        change(&mut bundle);
        bundle
    };
    let find = |bundle: &mut Value, kind: &str| -> usize {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e["resource"]["resourceType"] == kind)
            .unwrap()
    };
    let cases = [
        // A lifecycle status FHIR does not have.
        broken(&|b| {
            let i = find(b, "Goal");
            b["entry"][i]["resource"]["lifecycleStatus"] = "achieved".into();
        }),
        // A Goal without its required description.
        broken(&|b| {
            let i = find(b, "Goal");
            b["entry"][i]["resource"]
                .as_object_mut()
                .unwrap()
                .remove("description");
        }),
        // An instant without a time zone.
        broken(&|b| {
            let i = find(b, "Provenance");
            b["entry"][i]["resource"]["recorded"] = "2026-03-01T10:00:00".into();
        }),
    ];
    for (index, bundle) in cases.iter().enumerate() {
        let path = folder.path().join(format!("broken-{index}.json"));
        std::fs::write(&path, bundle.to_string()).unwrap();
        let output = validate(&[&path]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "case {index} was not rejected"
        );
    }
}
