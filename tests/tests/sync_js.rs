//! Interop with automerge-repo 2.5.6 (JS): a JS client through `alliance relay`, and Rust
//! devices through a JS sync server (which carries no signatures). Skipped, with the reason printed, when node or
//! tests/js/node_modules is missing (`scripts/test` runs `npm ci` in tests/js first).

mod sync_support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alliance_core::sync::plan_url;
use alliance_core::{DeviceId, NewDevice, Role};
use sync_support::{plan_for, relay_in_memory, Phone};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Why the JS tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !js_dir()
        .join("node_modules/@automerge/automerge-repo")
        .is_dir()
    {
        return Some(format!(
            "{} is missing: run `npm ci` in tests/js",
            js_dir().join("node_modules").display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        _ => Some("node is not on PATH".into()),
    }
}

macro_rules! require_js {
    ($test:literal) => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED {}: {reason}", $test);
            return;
        }
    };
}

/// Runs `node client.mjs` and returns its stdout lines.
fn js_client(args: &[&str]) -> Vec<String> {
    let output = Command::new("node")
        .arg("client.mjs")
        .args(args)
        .current_dir(js_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run node client.mjs");
    assert!(
        output.status.success(),
        "client.mjs failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A JS automerge-repo server, killed when dropped.
struct JsServer {
    child: Child,
    port: u16,
}

impl JsServer {
    fn start() -> Self {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("0")
            .current_dir(js_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node server.mjs");
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server.mjs prints its ready line");
        let port = line
            .strip_prefix("ready ")
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected ready line: {line}"));
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_js_client_reads_and_edits_a_plan_through_the_relay() {
    require_js!("a_js_client_reads_and_edits_a_plan_through_the_relay");
    let (relay, relay_store) = relay_in_memory();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    counselor
        .store
        .propose_goal(plan, "Sleep through the night")
        .unwrap();
    // The JS peer edits as an enrolled device of the counselor, so the rules accept it.
    let js_device = DeviceId::new();
    counselor
        .store
        .enroll_device(
            plan,
            &NewDevice {
                device: js_device,
                member: counselor.me.member_id,
                new_member: None,
                label: "web".into(),
            },
        )
        .unwrap();
    counselor.sync(relay.url().as_str(), &[]);

    let port = relay.local_addr().port().to_string();
    let url = plan_url(plan.as_uuid());
    let lines = js_client(&[&port, &url, "Sleep and mornings", &js_device.to_string()]);
    assert_eq!(
        lines.first().map(String::as_str),
        Some(r#"{"title":"Sleep plan","client_words":"Sleep through the night"}"#),
        "{lines:?}"
    );
    assert_eq!(lines.get(1).map(String::as_str), Some(r#"{"edited":true}"#));
    assert_eq!(relay_store.plan(plan).unwrap().title, "Sleep and mornings");

    let summary = counselor.sync(relay.url().as_str(), &[]);
    assert_eq!(summary.documents_updated.len(), 1);
    assert_eq!(
        counselor.store.plan(plan).unwrap().title,
        "Sleep and mornings"
    );
    let history = counselor.store.history(plan).unwrap();
    assert!(
        history
            .iter()
            .any(|entry| entry.device_id == js_device.to_string()),
        "the JS edit is attributed to its device"
    );

    // A plan the relay does not have: automerge-repo gets doc-unavailable promptly.
    let missing = plan_url(alliance_core::PlanId::new().as_uuid());
    let output = Command::new("node")
        .args(["client.mjs", &port, &missing])
        .current_dir(js_dir())
        .env("ALLIANCE_JS_TIMEOUT_MS", "5000")
        .output()
        .expect("run node client.mjs");
    assert_eq!(output.status.code(), Some(4), "find fails as unavailable");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unavailable"));
}

/// A relay that requires tokens (open enrollment), on an in-memory store.
fn token_relay() -> (
    alliance_core::sync::BackgroundRelay,
    std::sync::Arc<alliance_core::Alliance>,
) {
    let relay_store = std::sync::Arc::new(alliance_core::Alliance::open_in_memory().unwrap());
    let options = alliance_core::sync::RelayOptions {
        require_token: true,
        open_enrollment: true,
        ..alliance_core::sync::RelayOptions::default()
    };
    let relay =
        alliance_core::sync::BackgroundRelay::start("127.0.0.1:0", relay_store.clone(), options)
            .unwrap();
    (relay, relay_store)
}

#[test]
fn a_js_client_presents_its_token_in_the_url_and_without_one_gets_nothing() {
    require_js!("a_js_client_presents_its_token_in_the_url_and_without_one_gets_nothing");
    let (relay, relay_store) = token_relay();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    counselor.store.propose_goal(plan, "Rest").unwrap();
    let js_device = DeviceId::new();
    counselor
        .store
        .enroll_device(
            plan,
            &NewDevice {
                device: js_device,
                member: counselor.me.member_id,
                new_member: None,
                label: "web".into(),
            },
        )
        .unwrap();
    let counselor_token = counselor
        .store
        .issue_device_token(plan, counselor.me.device_id, None)
        .unwrap();
    let js_token = counselor
        .store
        .issue_device_token(plan, js_device, None)
        .unwrap();
    let options = alliance_core::sync::SyncOptions {
        token: Some(counselor_token),
        ..sync_support::options(&[])
    };
    alliance_core::sync::sync_once_blocking(counselor.store.clone(), &relay.url(), &options)
        .unwrap();

    let port = relay.local_addr().port().to_string();
    let url = plan_url(plan.as_uuid());
    let output = Command::new("node")
        .args([
            "client.mjs",
            &port,
            &url,
            "Edited by web",
            &js_device.to_string(),
        ])
        .current_dir(js_dir())
        .env("ALLIANCE_TOKEN", &js_token)
        .output()
        .expect("run node client.mjs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(relay_store.plan(plan).unwrap().title, "Edited by web");

    // The same app, with its own valid token, writing under the counselor's actor: her key is
    // recorded and the app cannot sign, so the relay refuses it as forged and keeps nothing.
    let output = Command::new("node")
        .args([
            "client.mjs",
            &port,
            &url,
            "Forged as the counselor",
            &counselor.me.device_id.to_string(),
        ])
        .current_dir(js_dir())
        .env("ALLIANCE_TOKEN", &js_token)
        .env("ALLIANCE_JS_TIMEOUT_MS", "5000")
        .output()
        .expect("run node client.mjs");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Edited by web"),
        "{output:?}"
    );
    assert_eq!(relay_store.plan(plan).unwrap().title, "Edited by web");
    let refused = relay_store.refused_changes(Some(plan)).unwrap();
    assert!(
        refused
            .iter()
            .any(|(_, r)| r.rule == alliance_core::authorship::FORGED
                && r.device_id == counselor.me.device_id.to_string()),
        "{refused:?}"
    );
    alliance_core::sync::sync_once_blocking(counselor.store.clone(), &relay.url(), &options)
        .unwrap();
    assert_eq!(counselor.store.plan(plan).unwrap().title, "Edited by web");

    // Without the token: refused at once, nothing read or written.
    let output = Command::new("node")
        .args(["client.mjs", &port, &url, "Taken over"])
        .current_dir(js_dir())
        .env("ALLIANCE_JS_TIMEOUT_MS", "3000")
        .env_remove("ALLIANCE_TOKEN")
        .output()
        .expect("run node client.mjs");
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("Edited by web"));
    assert_eq!(relay_store.plan(plan).unwrap().title, "Edited by web");
}

/// A JS automerge-repo sync server carries Alliance frames (it ignores `allianceSignatures`
/// and serves the plan to JS clients), but it keeps only Automerge changes: the signatures
/// stay behind, so a device refuses, as forged, the changes of a device whose key the plan
/// records when they arrive only that way (SECURITY.md §6; Alliance peers carry them).
#[test]
fn a_js_automerge_repo_server_carries_the_plan_but_not_its_signatures() {
    require_js!("a_js_automerge_repo_server_carries_the_plan_but_not_its_signatures");
    let server = JsServer::start();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan via JS");
    counselor
        .store
        .propose_goal(plan, "Keep a sleep diary")
        .unwrap();

    // The JS server takes the signed frames and stores the plan.
    let pushed = counselor.sync(server.url().as_str(), &[]);
    assert_eq!(pushed.documents_synced, 1);
    let lines = js_client(&[&server.port.to_string(), &plan_url(plan.as_uuid())]);
    assert_eq!(
        lines.first().map(String::as_str),
        Some(r#"{"title":"Plan via JS","client_words":"Keep a sleep diary"}"#)
    );

    // The client's device gets the counselor's changes without their signatures: refused as
    // forged, nothing stored, and its sync does not settle.
    let options = alliance_core::sync::SyncOptions {
        settle_timeout: Duration::from_secs(3),
        ..sync_support::options(&[plan])
    };
    let result =
        alliance_core::sync::sync_once_blocking(client.store.clone(), &server.url(), &options);
    assert!(result.is_err(), "{result:?}");
    assert!(!client.store.has_plan(plan).unwrap());
    let refused = client.store.refused_changes(Some(plan)).unwrap();
    assert!(!refused.is_empty());
    assert!(refused
        .iter()
        .any(|(_, r)| r.rule == alliance_core::authorship::FORGED));
}

#[test]
fn an_unenrolled_js_app_writes_nothing_the_relay_or_a_device_keeps() {
    require_js!("an_unenrolled_js_app_writes_nothing_the_relay_or_a_device_keeps");
    let (relay, relay_store) = relay_in_memory();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    counselor.sync(relay.url().as_str(), &[]);

    // A random actor, enrolled by nobody, edits the title.
    let port = relay.local_addr().port().to_string();
    let output = Command::new("node")
        .args(["client.mjs", &port, &plan_url(plan.as_uuid()), "Taken over"])
        .current_dir(js_dir())
        .env("ALLIANCE_JS_TIMEOUT_MS", "4000")
        .output()
        .expect("run node client.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(r#""title":"Sleep plan""#), "{stdout}");
    // The relay never acknowledges the edit: the JS app times out waiting for it.
    assert!(
        !output.status.success(),
        "the relay acknowledged a refused edit"
    );
    assert!(!stdout.contains(r#"{"edited":true}"#));

    assert_eq!(relay_store.plan(plan).unwrap().title, "Sleep plan");
    let refused = relay_store.refused_changes(Some(plan)).unwrap();
    assert!(!refused.is_empty(), "the relay recorded no refusal");
    assert!(refused
        .iter()
        .all(|(_, r)| r.rule.contains("not a device enrolled")));
    counselor.sync(relay.url().as_str(), &[]);
    client.sync(relay.url().as_str(), &[plan]);
    assert_eq!(counselor.store.plan(plan).unwrap().title, "Sleep plan");
    assert_eq!(client.store.plan(plan).unwrap().title, "Sleep plan");
    assert!(counselor.store.refused_changes(None).unwrap().is_empty());
}

/// Runs `node client.mjs` as the JS app holding `token`, writing a check-in (its note `note`)
/// on `goal` by `by` under `actor`; returns whether the relay acknowledged it.
fn js_check_in(
    port: &str,
    plan: alliance_core::PlanId,
    (goal, by): (alliance_core::GoalId, alliance_core::MemberId),
    (note, actor): (&str, DeviceId),
    token: &str,
) -> bool {
    let output = Command::new("node")
        .args([
            "client.mjs",
            port,
            &plan_url(plan.as_uuid()),
            note,
            &actor.to_string(),
        ])
        .current_dir(js_dir())
        .env("ALLIANCE_TOKEN", token)
        .env("ALLIANCE_JS_CHECKIN", format!("{goal} {by}"))
        .env("ALLIANCE_JS_TIMEOUT_MS", "4000")
        .output()
        .expect("run node client.mjs");
    String::from_utf8_lossy(&output.stdout).contains(r#"{"edited":true}"#)
}

fn notes(store: &alliance_core::Alliance, plan: alliance_core::PlanId) -> Vec<String> {
    store
        .plan(plan)
        .unwrap()
        .goals
        .iter()
        .flat_map(|g| g.checkins.iter().map(|c| c.note.clone()))
        .collect()
}

/// A JS automerge-repo app enrolled as the client's keyless device, with its own token, in a
/// plan that pins the relay's key (SECURITY.md §6, Peers that cannot sign): the relay vouches
/// for its own check-in, which the counselor's device keeps; the same app cannot write under
/// the actor of the client's other (keyless) device, nor under the counselor's (keyed) one —
/// nothing forged is stored on the relay or on any device.
#[test]
fn a_js_client_enrolled_as_a_device_writes_its_own_changes_vouched_and_no_one_elses() {
    require_js!("a_js_client_enrolled_as_a_device_writes_its_own_changes_vouched_and_no_one_elses");
    let (relay, relay_store) = token_relay();
    let relay_key = relay_store.relay_public_key().unwrap();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Sleep plan");
    let goal = counselor.store.propose_goal(plan, "Rest").unwrap();
    counselor.store.pin_relay_key(plan, &relay_key).unwrap();
    let web = DeviceId::new();
    counselor
        .store
        .enroll_device(
            plan,
            &NewDevice {
                device: web,
                member: client.me.member_id,
                new_member: None,
                label: "web".into(),
            },
        )
        .unwrap();
    let devices = counselor.store.plan(plan).unwrap().devices;
    let keyless = |d: DeviceId| {
        devices
            .iter()
            .any(|x| x.device_id == d && x.public_key.is_none())
    };
    assert!(keyless(web) && keyless(client.me.device_id), "{devices:?}");
    let issue = |device| {
        counselor
            .store
            .issue_device_token(plan, device, None)
            .unwrap()
    };
    let (counselor_token, web_token, client_token) = (
        issue(counselor.me.device_id),
        issue(web),
        issue(client.me.device_id),
    );
    let sync_with = |phone: &Phone, token: &str| {
        let options = alliance_core::sync::SyncOptions {
            token: Some(token.to_string()),
            ..sync_support::options(&[plan])
        };
        alliance_core::sync::sync_once_blocking(phone.store.clone(), &relay.url(), &options)
            .unwrap();
    };
    sync_with(&counselor, &counselor_token);
    let port = relay.local_addr().port().to_string();
    let sam = client.me.member_id;

    // Its own check-in: vouched by the relay, kept by the relay and the counselor's device,
    // which accepts it only with the pinned relay's voucher.
    assert!(js_check_in(
        &port,
        plan,
        (goal, sam),
        ("from the web", web),
        &web_token
    ));
    assert_eq!(notes(&relay_store, plan), ["from the web"]);
    sync_with(&counselor, &counselor_token);
    assert_eq!(notes(&counselor.store, plan), ["from the web"]);
    assert!(counselor
        .store
        .refused_changes(Some(plan))
        .unwrap()
        .is_empty());

    // Under the client's other device's actor (keyless): refused at the relay as unvouched.
    assert!(!js_check_in(
        &port,
        plan,
        (goal, sam),
        ("forged as the phone", client.me.device_id),
        &web_token
    ));
    // Under the counselor's actor (keyed): refused as forged.
    let output = Command::new("node")
        .args([
            "client.mjs",
            &port,
            &plan_url(plan.as_uuid()),
            "Forged as the counselor",
            &counselor.me.device_id.to_string(),
        ])
        .current_dir(js_dir())
        .env("ALLIANCE_TOKEN", &web_token)
        .env("ALLIANCE_JS_TIMEOUT_MS", "4000")
        .output()
        .expect("run node client.mjs");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(r#"{"edited":true}"#));

    let refused = relay_store.refused_changes(Some(plan)).unwrap();
    let rule_for = |device: DeviceId| {
        refused
            .iter()
            .find(|(_, r)| r.device_id == device.to_string())
            .map(|(_, r)| r.rule.clone())
    };
    assert_eq!(
        rule_for(client.me.device_id).as_deref(),
        Some(alliance_core::authorship::voucher::UNVOUCHED),
        "{refused:?}"
    );
    assert_eq!(
        rule_for(counselor.me.device_id).as_deref(),
        Some(alliance_core::authorship::FORGED),
        "{refused:?}"
    );
    sync_with(&counselor, &counselor_token);
    sync_with(&client, &client_token);
    for store in [&relay_store, &counselor.store, &client.store] {
        assert_eq!(notes(store, plan), ["from the web"]);
        assert_eq!(store.plan(plan).unwrap().title, "Sleep plan");
    }
}
