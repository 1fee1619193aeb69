//! Enrollment codes through the CLI: `whoami --enrollment` prints the device id and public key
//! as one string, enrolling from it records the key, and a damaged code is refused with
//! nothing written.

mod common;

use common::{json, ok, run};

#[test]
fn an_enrollment_code_records_the_devices_key_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (dana, sam, plan) = common::counselor_and_client(dir.path());
    let code = ok(&sam, &["whoami", "--enrollment"]);
    assert!(code.starts_with("alliance-device:"), "{code}");
    let me = json(&sam, &["whoami", "--json"]);
    // The client's phone, enrolled from its code at creation, has its key in the plan.
    let shown = json(&dana, &["show", &plan, "--json"]);
    let devices = shown["devices"].as_array().unwrap();
    let phone = devices
        .iter()
        .find(|d| d["device_id"] == me["device_id"])
        .unwrap();
    assert_eq!(phone["public_key"].as_str().unwrap().len(), 64);
    // Dana's own device records its key when it creates the plan.
    assert!(devices.iter().all(|d| d["public_key"].is_string()));

    // A tablet of Sam's: its code, with one character changed, is refused; the plan is as it
    // was. The code as printed enrolls it with its key.
    let tablet = dir.path().join("tablet.db");
    let member = me["member_id"].as_str().unwrap();
    ok(
        &tablet,
        &[
            "init", "--name", "Sam", "--role", "client", "--member", member,
        ],
    );
    let tablet_code = ok(&tablet, &["whoami", "--enrollment"]);
    let mut damaged: Vec<char> = tablet_code.chars().collect();
    let at = damaged.len() - 4;
    damaged[at] = if damaged[at] == 'x' { 'y' } else { 'x' };
    let damaged: String = damaged.into_iter().collect();
    let before = ok(&dana, &["show", &plan, "--json"]);
    let refused = run(
        &dana,
        &[
            "device", "add", &plan, "--member", member, "--device", &damaged,
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("enrollment code"), "{stderr}");
    assert_eq!(ok(&dana, &["show", &plan, "--json"]), before);
    ok(
        &dana,
        &[
            "device",
            "add",
            &plan,
            "--member",
            member,
            "--device",
            &tablet_code,
        ],
    );
    let shown = json(&dana, &["show", &plan, "--json"]);
    let tablet_id = json(&tablet, &["whoami", "--json"])["device_id"].clone();
    let enrolled = shown["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == tablet_id)
        .cloned()
        .unwrap();
    assert_eq!(enrolled["public_key"].as_str().unwrap().len(), 64);
}

/// `alliance relay key` prints the relay's public key (the same each time); a counselor pins it
/// with `plan set --relay-key`; a client cannot, and a malformed key is refused.
#[test]
fn the_relay_key_is_printed_by_the_relay_and_pinned_by_a_counselor() {
    let dir = tempfile::tempdir().unwrap();
    let (dana, sam, plan) = common::counselor_and_client(dir.path());
    let relay = dir.path().join("relay.db");
    let key = ok(&relay, &["relay", "key"]);
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert_eq!(ok(&relay, &["relay", "key"]), key);
    let before = ok(&dana, &["show", &plan, "--json"]);
    let refused = run(&sam, &["plan", "set", &plan, "--relay-key", &key]);
    assert!(!refused.status.success());
    let refused = run(&dana, &["plan", "set", &plan, "--relay-key", "abcd"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("public key"));
    assert_eq!(ok(&dana, &["show", &plan, "--json"]), before);
    ok(&dana, &["plan", "set", &plan, "--relay-key", &key]);
    // A device's store has no relay key.
    assert!(!run(&dana, &["relay", "key"]).status.success());
}
