//! Hostile peers, as an attacker would be: a token holder (or, under open enrollment, anyone)
//! sending chains of changes built on one never sent, change bombs, plan creations that write
//! more than the skeleton, plans planted on someone else's token, and text with control
//! characters — at the relay, and from a fake relay at a device. Each test checks that memory
//! stays bounded (peak resident memory, and the counts the store reports), that other
//! connections keep working, and that nothing of the attack is stored.
//!
//! Relays and devices meet on the simulated network (`alliance_core::sync::relay::sim`): the
//! real sessions and stores, every frame encoded and decoded, no socket.

mod sync_support;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alliance_core::budgets::{
    Budgets, DOCUMENT_TOO_LARGE, HELD_CHANGES_PER_CONVERSATION, HELD_CHANGES_PER_PLAN,
    OPERATIONS_PER_CHANGE, TOO_MANY_OPERATIONS,
};
use alliance_core::plan::expansion::{outline, Outline};
use alliance_core::sync::relay::sim::SimRelay;
use alliance_core::sync::{token_hash, RelayOptions, SyncOptions};
use alliance_core::{Alliance, Error, GoalEdit, NewCheckIn, NewPlan, PlanId, Role, SyncPeer};
use alliance_tests::hostile::{
    change_bomb, held_chain, message_with, next_numbers, peak_memory, reset_peak_memory,
    HostileStore,
};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ReadDoc, ROOT};
use sync_support::{options, plan_for, Clinic, Phone};

/// Peak memory is per process: the tests of this file run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Growth of peak resident memory an attack may cause, whatever it claims: the budgets hold
/// it to a few MiB of held changes per connection; the rest is the test's own stores.
const MEMORY_BOUND: u64 = 192 << 20;

fn assert_memory_bounded(start: u64, what: &str) {
    let grown = peak_memory().saturating_sub(start);
    eprintln!("{what}: peak resident memory grew {} MiB", grown >> 20);
    assert!(
        grown < MEMORY_BOUND,
        "{what}: peak memory grew {} MiB",
        grown >> 20
    );
}

fn with_token(token: &str, wanted: &[PlanId]) -> SyncOptions {
    SyncOptions {
        token: Some(token.to_owned()),
        handshake_timeout: Duration::from_secs(20),
        ..options(wanted)
    }
}

fn auth_relay(open_enrollment: bool) -> (SimRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open_in_memory().expect("relay store"));
    let relay = SimRelay::new(
        store.clone(),
        RelayOptions {
            require_token: true,
            open_enrollment,
            ..RelayOptions::default()
        },
    )
    .expect("relay");
    (relay, store)
}

/// A fake relay serving `store` (no tokens).
fn fake_relay(store: Arc<HostileStore>) -> SimRelay {
    SimRelay::new(store, RelayOptions::default()).expect("fake relay")
}

/// A counselor's plan with the client's phone, a goal, tokens for both, on the relay and on
/// the phone.
fn clinic(relay: &SimRelay, relay_store: &Alliance) -> Clinic {
    let clinic = Clinic::new();
    let Clinic {
        counselor,
        client,
        plan,
        counselor_token,
        client_token,
    } = &clinic;
    let plan = *plan;
    // Seeded in process, as an operator would with enrollment closed.
    push_in_process(&counselor.store, relay_store, plan);
    relay
        .sync_once(counselor.store.clone(), &with_token(counselor_token, &[]))
        .expect("counselor's first sync");
    relay
        .sync_once(client.store.clone(), &with_token(client_token, &[]))
        .expect("client's first sync");
    clinic
}

/// An honest edit by the client reaches the counselor through the relay: other connections
/// keep working.
fn honest_sync_still_works(c: &Clinic, relay: &SimRelay, note: &str) {
    let goal = c.client.store.plan(c.plan).unwrap().goals[0].goal_id;
    c.client
        .store
        .check_in(
            c.plan,
            goal,
            &NewCheckIn {
                note: note.into(),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
    relay
        .sync_once(c.client.store.clone(), &with_token(&c.client_token, &[]))
        .expect("client syncs");
    relay
        .sync_once(
            c.counselor.store.clone(),
            &with_token(&c.counselor_token, &[]),
        )
        .expect("counselor syncs");
    let plan = c.counselor.store.plan(c.plan).unwrap();
    assert!(
        plan.goals[0]
            .checkins
            .iter()
            .any(|checkin| checkin.note == note),
        "the honest check-in arrived"
    );
}

fn heads_of(store: &Alliance, plan: PlanId) -> Vec<automerge::ChangeHash> {
    Automerge::load(&store.saved_document(plan).unwrap())
        .unwrap()
        .get_heads()
}

// ---- 1. Held changes ----

#[test]
fn held_changes_are_bounded_per_connection_and_plan_and_dropped_when_it_ends() {
    let _one = one_at_a_time();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan");
    let relay = Alliance::open_in_memory().unwrap();
    let honest = counselor
        .store
        .generate_sync_message(plan, "relay")
        .unwrap()
        .unwrap();
    relay.receive_sync_message(plan, "dana", &honest).unwrap();
    while let Some(m) = relay.generate_sync_message(plan, "dana").unwrap() {
        counselor
            .store
            .receive_sync_message(plan, "relay", &m)
            .unwrap();
        match counselor
            .store
            .generate_sync_message(plan, "relay")
            .unwrap()
        {
            Some(m) => {
                relay.receive_sync_message(plan, "dana", &m).unwrap();
            }
            None => break,
        }
    }
    assert!(relay.has_plan(plan).unwrap());
    let saved = relay.saved_document(plan).unwrap();
    let heads = heads_of(&relay, plan);
    let actor = client.me.device_id.actor();
    let start = reset_peak_memory();

    // One connection: past its budget the message is refused whole and nothing is held.
    let too_long = held_chain(&saved, &actor, HELD_CHANGES_PER_CONVERSATION + 10, 0);
    let peer = SyncPeer::conversation("attacker");
    let error = relay
        .receive_sync_message(plan, peer.clone(), &message_with(&honest, too_long))
        .unwrap_err();
    assert!(matches!(error, Error::Limit(_)), "{error}");
    assert!(error.to_string().contains("per connection"), "{error}");
    assert_eq!(relay.held_changes().changes, 0);

    // Within it, they are held, counted, and dropped when the connection ends.
    let per_peer = 1_000;
    let mut peers = Vec::new();
    for salt in 0..(HELD_CHANGES_PER_PLAN / per_peer) {
        let peer = SyncPeer::conversation("attacker");
        let chain = held_chain(&saved, &actor, per_peer, salt as i64 + 1);
        relay
            .receive_sync_message(plan, peer.clone(), &message_with(&honest, chain))
            .unwrap();
        peers.push(peer);
    }
    let held = relay.held_changes();
    assert_eq!(held.changes, peers.len() * per_peer);
    // The plan's budget holds over all connections together.
    let one_more = held_chain(&saved, &actor, per_peer, 99);
    let error = relay
        .receive_sync_message(
            plan,
            SyncPeer::conversation("attacker"),
            &message_with(&honest, one_more),
        )
        .unwrap_err();
    assert!(error.to_string().contains("per plan"), "{error}");
    assert_eq!(relay.held_changes(), held, "what was held before is kept");
    relay.end_sync_session(peers[0].clone());
    assert_eq!(relay.held_changes().changes, held.changes - per_peer);
    for peer in &peers {
        relay.end_sync_session(peer.clone());
    }
    assert_eq!(relay.held_changes().changes, 0);
    assert_eq!(
        heads_of(&relay, plan),
        heads,
        "nothing of the attack is stored"
    );
    assert_memory_bounded(start, "held changes in process");
}

#[test]
fn a_relay_bounds_held_changes_from_a_token_holder_and_from_strangers() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay, &relay_store);
    let heads = heads_of(&relay_store, c.plan);
    let saved = relay_store.saved_document(c.plan).unwrap();
    let actor = c.client.me.device_id.actor();
    let start = reset_peak_memory();

    // The client's own token, again and again: each connection is refused past its budget
    // and what it left waiting is dropped when it closes.
    let attacker = HostileStore::new(c.client.store.clone());
    for round in 0..8 {
        attacker.queue(
            c.plan,
            held_chain(&saved, &actor, HELD_CHANGES_PER_CONVERSATION * 3, round),
        );
        let error = relay
            .sync_once(attacker.clone(), &with_token(&c.client_token, &[]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("waiting for a missing dependency"),
            "{error}"
        );
        assert_eq!(relay_store.held_changes().changes, 0, "dropped at the end");
    }
    // A stranger under open enrollment, pushing chains for a plan nobody has.
    let stranger_store = Arc::new(Alliance::open_in_memory().unwrap());
    stranger_store.init("Eve", Role::Counselor, None).unwrap();
    let stranger = HostileStore::new(stranger_store.clone());
    let fake = stranger_store
        .create_plan(&NewPlan {
            title: "Fake".into(),
            client_name: "Nobody".into(),
            ..NewPlan::default()
        })
        .unwrap();
    let fake_saved = stranger_store.saved_document(fake).unwrap();
    let eve = stranger_store.identity().unwrap().device_id.actor();
    let random = alliance_core::sync::generate_token();
    for round in 0..4 {
        stranger.queue(
            fake,
            held_chain(&fake_saved, &eve, HELD_CHANGES_PER_CONVERSATION * 3, round),
        );
        let _ = relay.sync_once(stranger.clone(), &with_token(&random, &[]));
        assert_eq!(relay_store.held_changes().changes, 0);
    }
    assert!(
        !relay_store.has_plan(fake).unwrap(),
        "nothing of it is stored"
    );
    assert_eq!(heads_of(&relay_store, c.plan), heads);
    // While a copy of the attacker keeps pushing chains on other connections, the honest
    // devices sync (the judge and the held-change check run one message at a time, measured
    // before the store lock).
    let copy = Arc::new(Alliance::open_in_memory().unwrap());
    copy.import_json(&c.counselor.store.export_json(c.plan).unwrap())
        .unwrap();
    let busy = HostileStore::new(copy);
    std::thread::scope(|scope| {
        let during = scope.spawn(|| {
            for round in 100..106 {
                busy.queue(
                    c.plan,
                    held_chain(&saved, &actor, HELD_CHANGES_PER_CONVERSATION * 3, round),
                );
                let _ = relay.sync_once(busy.clone(), &with_token(&c.client_token, &[]));
            }
        });
        honest_sync_still_works(&c, &relay, "while chains arrive");
        during.join().unwrap();
    });
    assert_eq!(relay_store.held_changes().changes, 0);
    honest_sync_still_works(&c, &relay, "after the chains");
    assert_memory_bounded(start, "held chains at the relay");
}

#[test]
fn a_device_bounds_held_changes_from_a_fake_relay() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(false);
    let c = clinic(&relay, &relay_store);
    let start = reset_peak_memory();
    // A fake relay holding the plan sends the client's phone, on every connection, changes
    // built on one it never sends.
    let fake_store = Arc::new(Alliance::open_in_memory().unwrap());
    fake_store
        .import_json(&c.counselor.store.export_json(c.plan).unwrap())
        .unwrap();
    let saved = fake_store.saved_document(c.plan).unwrap();
    let fake = HostileStore::new(fake_store);
    let fake_relay = fake_relay(fake.clone());
    let heads = heads_of(&c.client.store, c.plan);
    let actor = c.counselor.me.device_id.actor();
    for round in 0..6 {
        fake.queue(
            c.plan,
            held_chain(&saved, &actor, HELD_CHANGES_PER_CONVERSATION * 3, round),
        );
        let error = fake_relay
            .sync_once(c.client.store.clone(), &options(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("waiting for a missing dependency"),
            "{error}"
        );
        assert_eq!(
            c.client.store.held_changes().changes,
            0,
            "dropped at the end"
        );
    }
    assert_eq!(
        heads_of(&c.client.store, c.plan),
        heads,
        "nothing of it is stored"
    );
    drop(fake_relay);
    honest_sync_still_works(&c, &relay, "after the fake relay's chains");
    assert_memory_bounded(start, "held chains at a device");
}

// ---- 2. Change bombs ----

#[test]
fn a_bomb_is_built_as_automerge_reads_it() {
    let _one = one_at_a_time();
    let actor = automerge::ActorId::random();
    let small = change_bomb(&actor, 1, 1, &[], 1_000);
    let change = automerge::Change::from_bytes(small.clone()).expect("a valid change");
    assert_eq!(change.len(), 1_000);
    assert_eq!(
        outline(&small, OPERATIONS_PER_CHANGE).unwrap(),
        Outline::Change(alliance_core::plan::expansion::ChangeOutline {
            hash: change.hash(),
            actor: actor.clone(),
            timestamp: change.timestamp(),
            operations: 1_000,
        })
    );
    // A billion operations in a few dozen bytes; counted past the budget without decoding.
    let big = change_bomb(&actor, 1, 1, &[], 1_000_000_000);
    assert!(big.len() < 200, "{} bytes", big.len());
    match outline(&big, OPERATIONS_PER_CHANGE).unwrap() {
        Outline::Change(read) => assert_eq!(read.operations, OPERATIONS_PER_CHANGE + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_change_bomb_is_refused_as_a_rule_on_a_relay_and_a_device() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(false);
    let c = clinic(&relay, &relay_store);
    let heads = heads_of(&relay_store, c.plan);
    let start = reset_peak_memory();
    let actor = c.client.me.device_id.actor();
    let doc = Automerge::load(&relay_store.saved_document(c.plan).unwrap()).unwrap();
    let (seq, start_op) = next_numbers(&doc, &actor);
    let bomb = change_bomb(&actor, seq, start_op, &heads, 1_000_000_000);
    let bomb_hash = match outline(&bomb, OPERATIONS_PER_CHANGE).unwrap() {
        Outline::Change(read) => read.hash,
        other => panic!("{other:?}"),
    };

    // At the relay, from the client's own token.
    let attacker = HostileStore::new(c.client.store.clone());
    attacker.queue(c.plan, vec![bomb.clone()]);
    let _ = relay.sync_once(attacker.clone(), &with_token(&c.client_token, &[]));
    assert_eq!(attacker.pending(), 0, "the bomb was sent");
    let refused = relay_store.refused_changes(Some(c.plan)).unwrap();
    assert!(
        refused
            .iter()
            .any(|(_, r)| r.rule == TOO_MANY_OPERATIONS && r.change_hash == bomb_hash.to_string()),
        "{refused:?}"
    );
    assert_eq!(
        heads_of(&relay_store, c.plan),
        heads,
        "nothing of it is stored"
    );
    honest_sync_still_works(&c, &relay, "after the bomb");

    // At a device, from a fake relay that holds the plan.
    let fake_store = Arc::new(Alliance::open_in_memory().unwrap());
    let copy = c.counselor.store.saved_document(c.plan).unwrap();
    fake_store
        .import_json(&c.counselor.store.export_json(c.plan).unwrap())
        .unwrap();
    let fake = HostileStore::new(fake_store.clone());
    let counselor_actor = c.counselor.me.device_id.actor();
    let doc = Automerge::load(&copy).unwrap();
    let (seq, start_op) = next_numbers(&doc, &counselor_actor);
    fake.queue(
        c.plan,
        vec![change_bomb(
            &counselor_actor,
            seq,
            start_op,
            &doc.get_heads(),
            1_000_000_000,
        )],
    );
    let fake_relay = fake_relay(fake.clone());
    let before = heads_of(&c.client.store, c.plan);
    let _ = fake_relay.sync_once(c.client.store.clone(), &options(&[]));
    assert_eq!(fake.pending(), 0, "the bomb was sent");
    let refused = c.client.store.refused_changes(Some(c.plan)).unwrap();
    assert!(
        refused.iter().any(|(_, r)| r.rule == TOO_MANY_OPERATIONS),
        "{refused:?}"
    );
    let after = heads_of(&c.client.store, c.plan);
    assert!(before.iter().all(|h| after.contains(h)));
    assert_eq!(c.client.store.held_changes().changes, 0);
    drop(fake_relay);
    honest_sync_still_works(&c, &relay, "after the fake relay");
    assert_memory_bounded(start, "change bombs");
}

/// Syncs `from` into `to` in process until quiet; returns what `to` refused.
fn push_in_process(
    from: &Alliance,
    to: &Alliance,
    plan: PlanId,
) -> Vec<alliance_core::RefusedChange> {
    let mut refused = Vec::new();
    for _ in 0..20 {
        let Some(m) = from.generate_sync_message(plan, "to").unwrap() else {
            break;
        };
        refused.extend(to.receive_sync_message(plan, "from", &m).unwrap().refused);
        if let Some(m) = to.generate_sync_message(plan, "from").unwrap() {
            from.receive_sync_message(plan, "to", &m).unwrap();
        }
    }
    refused
}

#[test]
fn a_document_may_not_grow_past_its_budget() {
    let _one = one_at_a_time();
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan");
    let device = Alliance::open_in_memory().unwrap();
    let goal = counselor.store.propose_goal(plan, "Walk").unwrap();
    assert!(push_in_process(&counselor.store, &device, plan).is_empty());
    let held = Automerge::load(&device.saved_document(plan).unwrap())
        .unwrap()
        .stats()
        .num_ops;
    device.set_budgets(Budgets {
        operations_per_document: held + 30,
        ..Budgets::default()
    });
    counselor
        .store
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                client_words: Some("Walk ".repeat(12)),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    let refused = push_in_process(&counselor.store, &device, plan);
    assert!(
        refused.iter().any(|r| r.rule == DOCUMENT_TOO_LARGE),
        "{refused:?}"
    );
    let words = &device.plan(plan).unwrap().goals[0].client_words;
    assert_eq!(words, "Walk", "the change past the budget is not stored");
    // A whole document past the budget is refused before it is loaded.
    let fresh = Alliance::open_in_memory().unwrap();
    fresh.set_budgets(Budgets {
        operations_per_document: held,
        ..Budgets::default()
    });
    let mut outcome = None;
    for _ in 0..10 {
        let Some(m) = counselor
            .store
            .generate_sync_message(plan, "fresh")
            .unwrap()
        else {
            break;
        };
        if let Err(error) = fresh.receive_sync_message(plan, "dana", &m) {
            outcome = Some(error);
            break;
        }
        if let Some(m) = fresh.generate_sync_message(plan, "dana").unwrap() {
            counselor
                .store
                .receive_sync_message(plan, "fresh", &m)
                .unwrap();
        }
    }
    assert!(matches!(outcome, Some(Error::Limit(_))), "{outcome:?}");
    assert!(!fresh.has_plan(plan).unwrap());
}

// ---- 3. The creation change ----

/// A plan whose creation change, by the counselor's real device, also writes the client's
/// agreement to a goal and a relapse check-in `by` the client.
fn forged_creation(c: &Clinic) -> (PlanId, Automerge) {
    let plan = PlanId::new();
    let mut doc = Automerge::new().with_actor(c.counselor.me.device_id.actor());
    let mut tx = doc.transaction();
    tx.put(ROOT, "schema", 1i64).unwrap();
    tx.put(ROOT, "plan_id", plan.to_string()).unwrap();
    tx.put(ROOT, "created_at", 1_795_000_000_000i64).unwrap();
    let title = tx.put_object(ROOT, "title", ObjType::Text).unwrap();
    tx.splice_text(&title, 0, 0, "Plan").unwrap();
    let members = tx.put_object(ROOT, "members", ObjType::Map).unwrap();
    for (member, name, role) in [
        (c.counselor.me.member_id, "Dana", "counselor"),
        (c.client.me.member_id, "Sam", "client"),
    ] {
        let m = tx
            .put_object(&members, member.to_string(), ObjType::Map)
            .unwrap();
        tx.put(&m, "role", role).unwrap();
        tx.put(&m, "name", name).unwrap();
        tx.put(&m, "added_at", 1_795_000_000_000i64).unwrap();
    }
    let devices = tx.put_object(ROOT, "devices", ObjType::Map).unwrap();
    for (device, member) in [
        (c.counselor.me.device_id, c.counselor.me.member_id),
        (c.client.me.device_id, c.client.me.member_id),
    ] {
        let d = tx
            .put_object(&devices, device.to_string(), ObjType::Map)
            .unwrap();
        tx.put(&d, "member_id", member.to_string()).unwrap();
        tx.put(&d, "label", "phone").unwrap();
        tx.put(&d, "added_at", 1_795_000_000_000i64).unwrap();
    }
    let goals = tx.put_object(ROOT, "goals", ObjType::Map).unwrap();
    let goal = tx
        .put_object(
            &goals,
            alliance_core::GoalId::new().to_string(),
            ObjType::Map,
        )
        .unwrap();
    tx.put(&goal, "proposed_by", c.counselor.me.member_id.to_string())
        .unwrap();
    tx.put(&goal, "status", "active").unwrap();
    let words = tx.put_object(&goal, "client_words", ObjType::Text).unwrap();
    tx.splice_text(&words, 0, 0, "Stay sober").unwrap();
    let agreements = tx.put_object(&goal, "agreements", ObjType::Map).unwrap();
    let agreed = tx
        .put_object(&agreements, c.client.me.member_id.to_string(), ObjType::Map)
        .unwrap();
    tx.put(&agreed, "content_hash", "x").unwrap();
    tx.put(&agreed, "at", 1_795_000_000_000i64).unwrap();
    let checkins = tx.put_object(&goal, "checkins", ObjType::Map).unwrap();
    let checkin = tx
        .put_object(&checkins, uuid::Uuid::new_v4().to_string(), ObjType::Map)
        .unwrap();
    tx.put(&checkin, "by", c.client.me.member_id.to_string())
        .unwrap();
    tx.put(&checkin, "note", "relapsed").unwrap();
    tx.commit();
    (plan, doc)
}

#[test]
fn a_creation_change_writes_only_the_skeleton_on_relay_device_and_import() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay, &relay_store);
    let (plan, doc) = forged_creation(&c);
    let start = reset_peak_memory();

    // Pushed by the counselor's own device under its own token.
    let forger_store = Arc::new(Alliance::open_in_memory().unwrap());
    let forger = HostileStore::new(forger_store);
    let honest_shape = c
        .counselor
        .store
        .generate_sync_message(c.plan, SyncPeer::conversation("shape"))
        .unwrap()
        .unwrap();
    let creation: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .iter()
        .map(|change| change.raw_bytes().to_vec())
        .collect();
    // In process at the relay's store: refused as a rule, not stored.
    let receipt = relay_store
        .receive_sync_message(
            plan,
            "forger",
            &message_with(&honest_shape, creation.clone()),
        )
        .unwrap();
    assert!(
        receipt
            .refused
            .iter()
            .any(|r| r.rule.contains("creation writes only its skeleton")),
        "{:?}",
        receipt.refused
    );
    assert!(!relay_store.has_plan(plan).unwrap());
    // On the client's phone, from a fake relay.
    let receipt = c
        .client
        .store
        .receive_sync_message(
            plan,
            "fake relay",
            &message_with(&honest_shape, creation.clone()),
        )
        .unwrap();
    assert_eq!(receipt.refused.len(), 1);
    assert!(!c.client.store.has_plan(plan).unwrap());
    drop(forger);
    // And over the network: a fake relay hands the counselor's other device the forged plan it
    // asks for.
    let other_device = c.counselor.another();
    let fake = HostileStore::new(Arc::new(Alliance::open_in_memory().unwrap()));
    fake.queue(plan, creation.clone());
    let fake_relay = fake_relay(fake.clone());
    let _ = fake_relay.sync_once(other_device.store.clone(), &options(&[plan]));
    assert_eq!(fake.pending(), 0, "the forged creation was sent");
    assert!(!other_device.store.has_plan(plan).unwrap());
    let refused = other_device.store.refused_changes(Some(plan)).unwrap();
    assert!(
        refused
            .iter()
            .any(|(_, r)| r.rule.contains("creation writes only its skeleton")),
        "{refused:?}"
    );
    drop(fake_relay);
    // Imported as a plan file: the same rules, nothing stored.
    let file = alliance_core::export::json::encode(
        &alliance_core::plan::read::read_plan(&doc).unwrap(),
        &alliance_core::plan::history::history(&doc),
        &doc.save(),
        &[],
        1_795_000_000_000,
    )
    .unwrap();
    let error = c.client.store.import_json(&file).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("creation writes only its skeleton"),
        "{error}"
    );
    assert!(!c.client.store.has_plan(plan).unwrap());
    honest_sync_still_works(&c, &relay, "after the forged creation");
    assert_memory_bounded(start, "forged creation");
}

// ---- 4. Plans planted on someone else's token ----

#[test]
fn no_device_plants_plans_on_another_token_and_revocation_reaches_the_relay() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay, &relay_store);
    let start = reset_peak_memory();
    let counselor_hash = token_hash(&c.counselor_token);
    // Every member's copy of the plan holds every device's token hash in `devices`:
    let copy = Automerge::load(&c.client.store.saved_document(c.plan).unwrap()).unwrap();
    let devices = copy.get(ROOT, "devices").unwrap().unwrap().1;
    let hers = copy
        .get(&devices, c.counselor.me.device_id.to_string())
        .unwrap()
        .unwrap()
        .1;
    let read = copy
        .get(&hers, "token_hash")
        .unwrap()
        .unwrap()
        .0
        .to_string();
    assert!(read.contains(&counselor_hash), "{read}");

    // The client's tampered app makes plans of its own (it is their "counselor") that list
    // the counselor's device and token hash, and pushes them with its own token.
    // One plan per connection: the relay closes on the first refusal.
    let mut planted = Vec::new();
    for i in 0..3 {
        let planter = Arc::new(Alliance::open_in_memory().unwrap());
        planter.init("Sam", Role::Counselor, None).unwrap();
        let plan = planter
            .create_plan(&NewPlan {
                title: format!("Planted {i}"),
                client_name: "Dana".into(),
                client_member: Some(c.counselor.me.member_id),
                client_device: Some(c.counselor.me.device_id),
            })
            .unwrap();
        planter
            .issue_device_token(plan, c.counselor.me.device_id, Some(&c.counselor_token))
            .unwrap();
        let me = planter.identity().unwrap().device_id;
        planter
            .issue_device_token(plan, me, Some(&c.client_token))
            .unwrap();
        let error = relay
            .sync_once(planter.clone(), &with_token(&c.client_token, &[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot vouch"), "{error}");
        assert!(!relay_store.has_plan(plan).unwrap(), "never stored");
        planted.push(plan);
    }
    assert_eq!(
        relay_store.plans_of_token(&counselor_hash).unwrap().len(),
        1,
        "the counselor's token opens her one plan"
    );

    // A plan that does not list its pusher's token is never stored either.
    let stranger = Arc::new(Alliance::open_in_memory().unwrap());
    stranger.init("Eve", Role::Counselor, None).unwrap();
    let unlisted = stranger
        .create_plan(&NewPlan {
            title: "Unlisted".into(),
            client_name: "Nobody".into(),
            ..NewPlan::default()
        })
        .unwrap();
    let random = alliance_core::sync::generate_token();
    let error = relay
        .sync_once(stranger.clone(), &with_token(&random, &[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("must list the token"), "{error}");
    assert!(!relay_store.has_plan(unlisted).unwrap());

    // The counselor keeps syncing, and her revocation of the client reaches the relay.
    honest_sync_still_works(&c, &relay, "after the planting");
    c.counselor
        .store
        .revoke_device(c.plan, c.client.me.device_id)
        .unwrap();
    relay
        .sync_once(
            c.counselor.store.clone(),
            &with_token(&c.counselor_token, &[]),
        )
        .expect("the counselor's revocation syncs");
    let error = relay
        .sync_once(c.client.store.clone(), &with_token(&c.client_token, &[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("not authorized"), "{error}");
    assert_memory_bounded(start, "planted plans");
}

#[test]
fn a_counselor_may_reuse_a_clients_token_in_her_next_plan() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay, &relay_store);
    let second = plan_for(&c.counselor, &c.client, "Second plan");
    c.counselor
        .store
        .issue_device_token(second, c.counselor.me.device_id, Some(&c.counselor_token))
        .unwrap();
    c.counselor
        .store
        .issue_device_token(second, c.client.me.device_id, Some(&c.client_token))
        .unwrap();
    relay
        .sync_once(
            c.counselor.store.clone(),
            &with_token(&c.counselor_token, &[]),
        )
        .expect("the counselor vouches for her client's token");
    assert!(relay_store.has_plan(second).unwrap());
    relay
        .sync_once(c.client.store.clone(), &with_token(&c.client_token, &[]))
        .expect("the client syncs both plans");
    assert!(c.client.store.has_plan(second).unwrap());
}

#[test]
fn a_colleague_sharing_a_plan_cannot_plant_plans_on_a_counselors_token() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay, &relay_store);
    // A second counselor joins the plan with a token of her own.
    let colleague = Phone::new("Lee", Role::Counselor);
    c.counselor
        .store
        .enroll_device(
            c.plan,
            &alliance_core::NewDevice {
                device: colleague.me.device_id,
                member: colleague.me.member_id,
                new_member: Some(("Lee".into(), Role::Counselor)),
                label: "colleague".into(),
            },
        )
        .unwrap();
    let colleague_token = c
        .counselor
        .store
        .issue_device_token(c.plan, colleague.me.device_id, None)
        .unwrap();
    relay
        .sync_once(
            c.counselor.store.clone(),
            &with_token(&c.counselor_token, &[]),
        )
        .unwrap();
    relay
        .sync_once(colleague.store.clone(), &with_token(&colleague_token, &[]))
        .unwrap();
    // She is a counselor where Dana's token is listed, yet cannot vouch for it.
    let plan = colleague
        .store
        .create_plan(&NewPlan {
            title: "Planted".into(),
            client_name: "Dana".into(),
            client_member: Some(c.counselor.me.member_id),
            client_device: Some(c.counselor.me.device_id),
        })
        .unwrap();
    for (device, token) in [
        (c.counselor.me.device_id, &c.counselor_token),
        (colleague.me.device_id, &colleague_token),
    ] {
        colleague
            .store
            .issue_device_token(plan, device, Some(token))
            .unwrap();
    }
    let error = relay
        .sync_once(colleague.store.clone(), &with_token(&colleague_token, &[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("cannot vouch"), "{error}");
    assert!(!relay_store.has_plan(plan).unwrap());
    honest_sync_still_works(&c, &relay, "after the colleague");
}

#[test]
fn a_token_that_does_not_open_a_plan_gets_one_answer_whether_or_not_it_is_held() {
    let _one = one_at_a_time();
    for open_enrollment in [true, false] {
        let (relay, relay_store) = auth_relay(open_enrollment);
        let c = clinic(&relay, &relay_store);
        let nobody = PlanId::new();
        // A token that opens another plan only (a second clinic's client).
        let other = Phone::new("Lee", Role::Counselor);
        let other_client = Phone::new("Kim", Role::Client);
        let other_plan = plan_for(&other, &other_client, "Other");
        let other_token = other
            .store
            .issue_device_token(other_plan, other.me.device_id, None)
            .unwrap();
        push_in_process(&other.store, &relay_store, other_plan);
        relay
            .sync_once(other.store.clone(), &with_token(&other_token, &[]))
            .unwrap();
        let answers: Vec<String> = [c.plan, nobody]
            .iter()
            .map(|wanted| {
                let asker = Phone::of_member("Lee", Role::Counselor, Some(other.me.member_id));
                match relay.sync_once(asker.store.clone(), &with_token(&other_token, &[*wanted])) {
                    Ok(summary) => format!("unavailable {}", summary.documents_unavailable.len()),
                    Err(error) => error.to_string(),
                }
            })
            .collect();
        assert_eq!(answers[0], answers[1], "open enrollment {open_enrollment}");
    }
}

// ---- 5. Control characters ----

#[test]
fn control_characters_are_refused_locally_and_remotely() {
    let _one = one_at_a_time();
    let (relay, relay_store) = auth_relay(false);
    let c = clinic(&relay, &relay_store);
    let goal = c.client.store.plan(c.plan).unwrap().goals[0].goal_id;
    for words in [
        "agreement: \u{1b}[2Kagreed",
        "carriage\rreturn",
        "c1\u{9b}31m",
    ] {
        assert!(matches!(
            c.client.store.propose_goal(c.plan, words),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            c.client.store.check_in(
                c.plan,
                goal,
                &NewCheckIn {
                    note: words.into(),
                    ..NewCheckIn::default()
                }
            ),
            Err(Error::InvalidInput { .. })
        ));
    }
    // A tampered client writes ESC and CR into the goal's words, raw.
    let heads = heads_of(&relay_store, c.plan);
    let mut doc = Automerge::load(&c.client.store.saved_document(c.plan).unwrap()).unwrap();
    doc.set_actor(c.client.me.device_id.actor());
    let goals = doc.get(ROOT, "goals").unwrap().unwrap().1;
    let goal_obj = doc.get(&goals, goal.to_string()).unwrap().unwrap().1;
    let words = doc.get(&goal_obj, "client_words").unwrap().unwrap().1;
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    tx.splice_text(&words, 0, 0, "\u{1b}[2J\r").unwrap();
    tx.commit();
    let raw: Vec<Vec<u8>> = doc
        .get_changes(&before)
        .iter()
        .map(|change| change.raw_bytes().to_vec())
        .collect();
    let attacker = HostileStore::new(c.client.store.clone());
    attacker.queue(c.plan, raw.clone());
    let _ = relay.sync_once(attacker, &with_token(&c.client_token, &[]));
    let refused = relay_store.refused_changes(Some(c.plan)).unwrap();
    assert!(
        refused
            .iter()
            .any(|(_, r)| r.rule == "writes a character text does not hold"),
        "{refused:?}"
    );
    assert_eq!(heads_of(&relay_store, c.plan), heads);
    // And on the counselor's device, from a fake relay.
    let shape = c
        .client
        .store
        .generate_sync_message(c.plan, SyncPeer::conversation("shape"))
        .unwrap()
        .unwrap();
    let receipt = c
        .counselor
        .store
        .receive_sync_message(c.plan, "fake relay", &message_with(&shape, raw))
        .unwrap();
    assert_eq!(receipt.refused.len(), 1);
    let plan = c.counselor.store.plan(c.plan).unwrap();
    assert!(plan.goals[0]
        .client_words
        .chars()
        .all(|ch| !ch.is_control()));
    honest_sync_still_works(&c, &relay, "after the escape codes");
}
