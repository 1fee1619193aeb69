//! Rules on merge: a corpus of tampered changes, each written with raw Automerge operations
//! that bypass the API, sent together with an honest change. Each is refused on a device and
//! on the relay's store; nothing of it is stored; the honest change is stored; the sync ends.

use alliance_core::authorship::carrier;
use alliance_core::validate::{MAX_LABEL, MAX_TEXT};
use alliance_core::{
    Alliance, DeviceId, GoalEdit, GoalId, GoalStatus, MemberId, NewCheckIn, NewPlan, PlanId, Role,
};
use alliance_tests::unsigned;
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ReadDoc, ROOT};

struct Fixture {
    counselor: Alliance,
    client: Alliance,
    relay: Alliance,
    plan: PlanId,
    goal: GoalId,
    counselor_member: MemberId,
    counselor_device: DeviceId,
    client_member: MemberId,
    client_device: DeviceId,
    client_checkin: String,
}

/// Syncs two stores through their sync-message API until both are quiet.
fn exchange(a: &Alliance, a_id: &str, b: &Alliance, b_id: &str, plan: PlanId) {
    for _ in 0..50 {
        let mut quiet = true;
        if let Some(m) = a.generate_sync_message(plan, b_id).unwrap() {
            quiet = false;
            b.receive_sync_message(plan, a_id, &m).unwrap();
        }
        if let Some(m) = b.generate_sync_message(plan, a_id).unwrap() {
            quiet = false;
            a.receive_sync_message(plan, b_id, &m).unwrap();
        }
        if quiet {
            a.end_sync_session(b_id);
            b.end_sync_session(a_id);
            return;
        }
    }
    panic!("stores did not settle");
}

fn fixture() -> Fixture {
    let counselor = Alliance::open_in_memory().unwrap();
    let client = Alliance::open_in_memory().unwrap();
    let relay = Alliance::open_in_memory().unwrap();
    let dana = counselor.init("Dana", Role::Counselor, None).unwrap();
    let sam = client.init("Sam", Role::Client, None).unwrap();
    let plan = counselor
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.member_id),
            client_device: Some(sam.device_id),
        })
        .unwrap();
    exchange(&counselor, "dana", &client, "sam", plan);
    let goal = client.propose_goal(plan, "Walk to work").unwrap();
    let client_checkin = client
        .check_in(
            plan,
            goal,
            &NewCheckIn {
                mood: Some(5),
                ..Default::default()
            },
        )
        .unwrap()
        .to_string();
    exchange(&counselor, "dana", &client, "sam", plan);
    counselor
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                clinical_statement: Some("Increase daily activity".into()),
                status: Some(GoalStatus::Active),
                ..Default::default()
            },
        )
        .unwrap();
    exchange(&counselor, "dana", &client, "sam", plan);
    exchange(&counselor, "dana", &relay, "relay", plan);
    assert_eq!(relay.plan(plan).unwrap(), client.plan(plan).unwrap());
    Fixture {
        counselor,
        client,
        relay,
        plan,
        goal,
        counselor_member: dana.member_id,
        counselor_device: dana.device_id,
        client_member: sam.member_id,
        client_device: sam.device_id,
        client_checkin,
    }
}

fn map(doc: &Automerge, obj: &ObjId, key: &str) -> ObjId {
    match doc.get(obj, key).unwrap() {
        Some((_, id)) => id,
        None => panic!("no {key}"),
    }
}

fn goal_obj(doc: &Automerge, goal: GoalId) -> ObjId {
    let goals = map(doc, &ROOT, "goals");
    map(doc, &goals, &goal.to_string())
}

/// A raw copy of the plan as a tampered device would hold it.
fn raw_copy(f: &Fixture) -> Automerge {
    Automerge::load(&f.client.saved_document(f.plan).unwrap()).unwrap()
}

/// An honest check-in by the client, written raw.
fn honest_checkin(doc: &mut Automerge, f: &Fixture) -> ChangeHash {
    doc.set_actor(f.client_device.actor());
    let goal = goal_obj(doc, f.goal);
    let checkins = map(doc, &goal, "checkins");
    let mut tx = doc.transaction();
    let entry = tx
        .put_object(&checkins, uuid::Uuid::new_v4().to_string(), ObjType::Map)
        .unwrap();
    tx.put(&entry, "by", f.client_member.to_string()).unwrap();
    tx.put(&entry, "at", 1_795_000_000_000i64).unwrap();
    tx.put(&entry, "local_date", "2026-11-20").unwrap();
    tx.put(&entry, "tz_offset_min", 0i64).unwrap();
    tx.put(&entry, "mood", 6i64).unwrap();
    tx.put(&entry, "note", "honest").unwrap();
    tx.commit().0.unwrap()
}

/// Sends everything `raw` has to `victim`, both ways, until quiet (bounded: a loop fails).
/// Changes made under the counselor's actor go with the counselor device's signature, as if
/// the tampered build held its key: the corpus tests the role rules, not authorship
/// (`authorship.rs` tests forgeries).
fn push(raw: &mut Automerge, victim: &Alliance, f: &Fixture) -> usize {
    let plan = f.plan;
    let mut state = sync::State::new();
    let mut messages = 0;
    for _ in 0..50 {
        let mut quiet = true;
        if let Some(m) = raw.generate_sync_message(&mut state) {
            quiet = false;
            messages += 1;
            let signatures: Vec<_> = raw
                .get_changes(&[])
                .into_iter()
                .filter(|change| change.actor_id() == &f.counselor_device.actor())
                .filter_map(|change| {
                    Some((change.hash(), f.counselor.sign_for_tests(&change.hash())?))
                })
                .collect();
            let signed = carrier::wrap(m.encode(), &signatures);
            victim
                .receive_sync_message(plan, "tamperer", &signed)
                .unwrap();
        }
        if let Some(m) = victim.generate_sync_message(plan, "tamperer").unwrap() {
            quiet = false;
            messages += 1;
            raw.receive_sync_message(&mut state, sync::Message::decode(unsigned(&m)).unwrap())
                .unwrap();
        }
        if quiet {
            victim.end_sync_session("tamperer");
            return messages;
        }
    }
    panic!("sync with the tampered peer kept looping");
}

fn accepted_hashes(store: &Alliance, plan: PlanId) -> Vec<String> {
    store
        .history(plan)
        .unwrap()
        .into_iter()
        .filter(|h| !h.refused)
        .map(|h| h.hash)
        .collect()
}

type Tamper = fn(&mut Automerge, &Fixture) -> Vec<ChangeHash>;

/// Runs one tampering case against `victim`: honest change first, then the tampered ones
/// (all in the same sync message). Returns the refusal rules recorded.
fn run_case(name: &str, f: &Fixture, victim: &Alliance, tamper: Tamper, expect_rule: &str) {
    let before = accepted_hashes(victim, f.plan);
    let plan_before = victim.plan(f.plan).unwrap();
    let mut raw = raw_copy(f);
    let honest = honest_checkin(&mut raw, f);
    let tampered = tamper(&mut raw, f);
    assert!(!tampered.is_empty(), "{name}: made no change");
    push(&mut raw, victim, f);

    let after = accepted_hashes(victim, f.plan);
    assert!(
        after.contains(&honest.to_string()),
        "{name}: the honest change was not stored"
    );
    assert_eq!(
        after.len(),
        before.len() + 1,
        "{name}: more than the honest change was stored"
    );
    for hash in &tampered {
        assert!(
            !after.contains(&hash.to_string()),
            "{name}: a tampered change was stored"
        );
    }
    let refusals = victim.refused_changes(Some(f.plan)).unwrap();
    for hash in &tampered {
        let record = refusals
            .iter()
            .find(|(_, r)| r.change_hash == hash.to_string())
            .unwrap_or_else(|| panic!("{name}: no refusal recorded"));
        assert_eq!(record.1.peer, "tamperer");
    }
    let first = refusals
        .iter()
        .find(|(_, r)| r.change_hash == tampered[0].to_string())
        .unwrap();
    assert!(
        first.1.rule.contains(expect_rule),
        "{name}: refused for '{}', expected '{expect_rule}'",
        first.1.rule
    );
    // The plan differs from before only by the honest check-in.
    let plan_after = victim.plan(f.plan).unwrap();
    let mut expected = plan_before.clone();
    let goal_after = plan_after.goal(f.goal).unwrap();
    let goal_expected = expected
        .goals
        .iter_mut()
        .find(|g| g.goal_id == f.goal)
        .unwrap();
    goal_expected.checkins = goal_after.checkins.clone();
    goal_expected.latest_gas_level = goal_after.latest_gas_level;
    assert_eq!(
        plan_after, expected,
        "{name}: something other than the honest check-in changed"
    );
    assert_eq!(
        goal_after.checkins.len(),
        plan_before.goal(f.goal).unwrap().checkins.len() + 1
    );
    // Sending the same again records nothing new and stores nothing.
    push(&mut raw, victim, f);
    assert_eq!(
        accepted_hashes(victim, f.plan),
        after,
        "{name}: resent changes were stored"
    );
    assert_eq!(
        victim.refused_changes(Some(f.plan)).unwrap().len(),
        refusals.len()
    );
}

fn commit(
    doc: &mut Automerge,
    edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> ChangeHash {
    let mut tx = doc.transaction();
    edit(&mut tx);
    tx.commit().0.unwrap()
}

fn client_edits_clinical_statement(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let text = map(doc, &goal, "clinical_statement");
    vec![commit(doc, |tx| {
        tx.splice_text(&text, 0, 0, "No need: ").unwrap()
    })]
}

fn client_sets_status(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    vec![commit(doc, |tx| {
        tx.put(&goal, "status", "achieved").unwrap()
    })]
}

fn client_writes_counselors_agreement(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let agreements = map(doc, &goal, "agreements");
    let them = f.counselor_member.to_string();
    vec![commit(doc, |tx| {
        let entry = tx
            .put_object(&agreements, them.as_str(), ObjType::Map)
            .unwrap();
        tx.put(&entry, "content_hash", "0123").unwrap();
        tx.put(&entry, "at", 1i64).unwrap();
    })]
}

fn unknown_actor_adds_a_goal(doc: &mut Automerge, _f: &Fixture) -> Vec<ChangeHash> {
    doc.set_actor(ActorId::random());
    let goals = map(doc, &ROOT, "goals");
    vec![commit(doc, |tx| {
        let goal = tx
            .put_object(&goals, uuid::Uuid::new_v4().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&goal, "status", "proposed").unwrap();
    })]
}

fn client_enrolls_a_device_for_the_counselor(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let devices = map(doc, &ROOT, "devices");
    let counselor = f.counselor_member.to_string();
    vec![commit(doc, |tx| {
        let entry = tx
            .put_object(&devices, DeviceId::new().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&entry, "member_id", counselor.as_str()).unwrap();
        tx.put(&entry, "label", "mine now").unwrap();
        tx.put(&entry, "added_at", 1i64).unwrap();
    })]
}

fn a_change_deletes_goals(doc: &mut Automerge, _f: &Fixture) -> Vec<ChangeHash> {
    vec![commit(doc, |tx| tx.delete(ROOT, "goals").unwrap())]
}

fn a_checkin_with_a_forged_by(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let checkins = map(doc, &goal, "checkins");
    let them = f.counselor_member.to_string();
    vec![commit(doc, |tx| {
        let entry = tx
            .put_object(&checkins, uuid::Uuid::new_v4().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&entry, "by", them.as_str()).unwrap();
        tx.put(&entry, "at", 1i64).unwrap();
        tx.put(&entry, "local_date", "2026-11-20").unwrap();
        tx.put(&entry, "note", "forged").unwrap();
    })]
}

fn counselor_rewrites_words_of_an_active_goal(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    doc.set_actor(f.counselor_device.actor());
    let goal = goal_obj(doc, f.goal);
    let words = map(doc, &goal, "client_words");
    vec![commit(doc, |tx| {
        tx.update_text(&words, "Walk to work every day").unwrap()
    })]
}

fn a_type_change_of_a_known_field(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    vec![commit(doc, |tx| {
        tx.put(&goal, "client_words", 42i64).unwrap()
    })]
}

fn an_oversized_text(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let words = map(doc, &goal, "client_words");
    let long = "walk ".repeat(1200);
    vec![commit(doc, |tx| {
        tx.splice_text(&words, 0, 0, &long).unwrap()
    })]
}

fn a_change_built_on_a_refused_change(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let mut hashes = client_sets_status(doc, f);
    let goal = goal_obj(doc, f.goal);
    let levels = map(doc, &map(doc, &goal, "gas"), "levels");
    // On its own this would be allowed (clients describe GAS levels).
    hashes.push(commit(doc, |tx| {
        let text = tx.put_object(&levels, "1", ObjType::Text).unwrap();
        tx.splice_text(&text, 0, 0, "Walk 4 days").unwrap();
    }));
    hashes
}

fn a_schema_field_rewrite(doc: &mut Automerge, _f: &Fixture) -> Vec<ChangeHash> {
    vec![commit(doc, |tx| tx.put(ROOT, "schema", 2i64).unwrap())]
}

fn client_edits_an_existing_checkin(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let checkins = map(doc, &goal, "checkins");
    let entry = map(doc, &checkins, &f.client_checkin);
    vec![commit(doc, |tx| tx.put(&entry, "mood", 9i64).unwrap())]
}

fn client_adds_an_objective(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let objectives = map(doc, &goal, "objectives");
    vec![commit(doc, |tx| {
        let o = tx
            .put_object(&objectives, uuid::Uuid::new_v4().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&o, "status", "open").unwrap();
    })]
}

fn client_adds_a_member(doc: &mut Automerge, _f: &Fixture) -> Vec<ChangeHash> {
    let members = map(doc, &ROOT, "members");
    vec![commit(doc, |tx| {
        let m = tx
            .put_object(&members, uuid::Uuid::new_v4().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&m, "role", "counselor").unwrap();
        tx.put(&m, "name", "Me too").unwrap();
    })]
}

/// A client writing a relay token hash for its own device (minting relay access).
fn client_sets_its_token_hash(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let devices = map(doc, &ROOT, "devices");
    let mine = map(doc, &devices, &f.client_device.to_string());
    vec![commit(doc, |tx| {
        tx.put(&mine, "token_hash", "00".repeat(32)).unwrap();
    })]
}

/// A client marking the counselor's device revoked.
fn client_revokes_a_device(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let devices = map(doc, &ROOT, "devices");
    let theirs = map(doc, &devices, &f.counselor_device.to_string());
    vec![commit(doc, |tx| {
        tx.put(&theirs, "revoked_at", 1_795_000_000_000i64).unwrap();
    })]
}

/// A rewrite that deletes the old words but leaves more than the limit: judged on what it
/// leaves, not on what it inserts.
fn an_oversized_rewrite(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let words = map(doc, &goal, "client_words");
    let old = doc.text(&words).unwrap().chars().count();
    let long = "é".repeat(MAX_TEXT + 1);
    vec![commit(doc, |tx| {
        tx.splice_text(&words, 0, old as isize, &long).unwrap()
    })]
}

fn counselor_writes_a_title_longer_than_a_label(
    doc: &mut Automerge,
    f: &Fixture,
) -> Vec<ChangeHash> {
    doc.set_actor(f.counselor_device.actor());
    let title = map(doc, &ROOT, "title");
    let long = "t".repeat(MAX_LABEL + 1);
    vec![commit(doc, |tx| tx.update_text(&title, &long).unwrap())]
}

fn a_nul_in_the_clients_words(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let words = map(doc, &goal, "client_words");
    vec![commit(doc, |tx| {
        tx.splice_text(&words, 0, 0, "a\0").unwrap()
    })]
}

fn counselor_sets_a_baseline_off_the_scale(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    doc.set_actor(f.counselor_device.actor());
    let goal = goal_obj(doc, f.goal);
    let gas = map(doc, &goal, "gas");
    vec![commit(doc, |tx| tx.put(&gas, "baseline", 5i64).unwrap())]
}

fn counselor_sets_a_weight_out_of_range(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    doc.set_actor(f.counselor_device.actor());
    let goal = goal_obj(doc, f.goal);
    let gas = map(doc, &goal, "gas");
    vec![commit(doc, |tx| tx.put(&gas, "weight", 1000.0).unwrap())]
}

fn a_checkin_with_an_impossible_date(doc: &mut Automerge, f: &Fixture) -> Vec<ChangeHash> {
    let goal = goal_obj(doc, f.goal);
    let checkins = map(doc, &goal, "checkins");
    let me = f.client_member.to_string();
    vec![commit(doc, |tx| {
        let entry = tx
            .put_object(&checkins, uuid::Uuid::new_v4().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&entry, "by", me.as_str()).unwrap();
        tx.put(&entry, "at", 1i64).unwrap();
        tx.put(&entry, "local_date", "2026-02-30").unwrap();
        tx.put(&entry, "note", "impossible").unwrap();
    })]
}

fn client_enrolls_a_device_with_a_two_line_label(
    doc: &mut Automerge,
    f: &Fixture,
) -> Vec<ChangeHash> {
    let devices = map(doc, &ROOT, "devices");
    let me = f.client_member.to_string();
    vec![commit(doc, |tx| {
        let entry = tx
            .put_object(&devices, DeviceId::new().to_string(), ObjType::Map)
            .unwrap();
        tx.put(&entry, "member_id", me.as_str()).unwrap();
        tx.put(&entry, "label", "my\nphone").unwrap();
        tx.put(&entry, "added_at", 1i64).unwrap();
    })]
}

const CORPUS: &[(&str, Tamper, &str)] = &[
    (
        "client edits the clinical statement",
        client_edits_clinical_statement,
        "clinical statement",
    ),
    ("client sets status", client_sets_status, "status"),
    (
        "client writes the counselor's agreement",
        client_writes_counselors_agreement,
        "own agreement",
    ),
    (
        "unknown actor adds a goal",
        unknown_actor_adds_a_goal,
        "not a device enrolled",
    ),
    (
        "client enrolls a device for the counselor",
        client_enrolls_a_device_for_the_counselor,
        "only for themself",
    ),
    ("a change deletes goals", a_change_deletes_goals, "deleted"),
    (
        "a check-in with a forged by",
        a_checkin_with_a_forged_by,
        "own check-ins",
    ),
    (
        "counselor rewrites words of an active goal",
        counselor_rewrites_words_of_an_active_goal,
        "while the goal is proposed",
    ),
    (
        "a type change of a known field",
        a_type_change_of_a_known_field,
        "type",
    ),
    (
        "an oversized text",
        an_oversized_text,
        "longer than allowed",
    ),
    (
        "a change built on a refused change",
        a_change_built_on_a_refused_change,
        "status",
    ),
    (
        "a schema field rewrite",
        a_schema_field_rewrite,
        "structure",
    ),
    (
        "client edits an existing check-in",
        client_edits_an_existing_checkin,
        "append-only",
    ),
    (
        "client adds an objective",
        client_adds_an_objective,
        "objectives",
    ),
    ("client adds a member", client_adds_a_member, "members"),
    (
        "client sets its own relay token hash",
        client_sets_its_token_hash,
        "relay tokens",
    ),
    (
        "client revokes a device",
        client_revokes_a_device,
        "relay tokens",
    ),
    (
        "an oversized rewrite",
        an_oversized_rewrite,
        "longer than allowed",
    ),
    (
        "counselor writes a title longer than a label",
        counselor_writes_a_title_longer_than_a_label,
        "longer than allowed",
    ),
    (
        "a NUL in the client's words",
        a_nul_in_the_clients_words,
        "character",
    ),
    (
        "counselor sets a baseline off the scale",
        counselor_sets_a_baseline_off_the_scale,
        "GAS level outside",
    ),
    (
        "counselor sets a weight out of range",
        counselor_sets_a_weight_out_of_range,
        "invalid GAS weight",
    ),
    (
        "a check-in with an impossible date",
        a_checkin_with_an_impossible_date,
        "invalid check-in date",
    ),
    (
        "client enrolls a device with a two-line label",
        client_enrolls_a_device_with_a_two_line_label,
        "invalid device label",
    ),
];

#[test]
fn every_tampered_change_is_refused_on_a_device() {
    for (name, tamper, rule) in CORPUS {
        let f = fixture();
        // A change made as the client goes to the counselor's device; one made as the
        // counselor goes to the client's.
        let victim = if name.starts_with("counselor") {
            &f.client
        } else {
            &f.counselor
        };
        run_case(name, &f, victim, *tamper, rule);
    }
}

#[test]
fn every_tampered_change_is_refused_on_the_relay() {
    for (name, tamper, rule) in CORPUS {
        let f = fixture();
        run_case(name, &f, &f.relay, *tamper, rule);
        // And an honest device syncing with the relay gets the honest change only.
        exchange(&f.relay, "relay", &f.counselor, "dana", f.plan);
        assert_eq!(
            f.counselor.plan(f.plan).unwrap(),
            f.relay.plan(f.plan).unwrap(),
            "{name}"
        );
        assert!(
            f.counselor.refused_changes(None).unwrap().is_empty(),
            "{name}"
        );
    }
}

#[test]
fn refusals_show_in_history_with_the_author() {
    let f = fixture();
    run_case(
        "client sets status",
        &f,
        &f.counselor,
        client_sets_status,
        "status",
    );
    let history = f.counselor.history(f.plan).unwrap();
    let refused: Vec<_> = history.iter().filter(|h| h.refused).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].author, "Sam");
    assert_eq!(refused[0].device_id, f.client_device.to_string());
    assert!(refused[0].description.starts_with("refused: "));
    assert!(history
        .iter()
        .filter(|h| !h.refused)
        .all(|h| h.author == "Dana" || h.author == "Sam"));
}
