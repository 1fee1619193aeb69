//! Authenticated authorship (SECURITY.md §6): a tampered app writes raw Automerge changes under
//! another enrolled device's actor — bypassing the API, as the tamper corpus does — and sends
//! them through the relay (on the simulated network, with its own valid token) and in person
//! (in process). Each forgery is refused as forged: nothing forged is stored on any replica, the
//! refusal is recorded with its rule, and the genuine edits land everywhere. A forgery that
//! takes the sequence number of an unsynced genuine change loses to it in either arrival order.

mod sync_support;

#[path = "authorship/copied.rs"]
mod copied;

use std::sync::Arc;
use std::time::Duration;

use alliance_core::authorship::{carrier, FORGED};
use alliance_core::local_sync::sync_stores;
use alliance_core::plan::{write, PlanDoc};
use alliance_core::sync::relay::sim::SimRelay;
use alliance_core::sync::{RelayOptions, SyncOptions, SyncSummary};
use alliance_core::{
    Alliance, CheckInId, GoalEdit, GoalId, GoalStatus, NewCheckIn, NewDevice, NewObjective,
    NewPlan, PlanId, Role,
};
use alliance_tests::hostile::HostileStore;
use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, Change, ChangeHash, ReadDoc};
use sync_support::{options, Phone};

/// A counselor (Dana) and her client (Sam), each device enrolled from its enrollment code (so
/// the plan records both public keys), a goal the counselor activated, and both in sync.
struct World {
    counselor: Phone,
    client: Phone,
    plan: PlanId,
    goal: GoalId,
}

fn world() -> World {
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let client_key = client.store.enrollment().unwrap().public_key;
    let plan = counselor
        .store
        .create_plan_with_key(
            &NewPlan {
                title: "Sleep plan".into(),
                client_name: "Sam".into(),
                client_member: Some(client.me.member_id),
                client_device: Some(client.me.device_id),
            },
            Some(client_key),
        )
        .unwrap();
    sync_stores(&counselor.store, &client.store).unwrap();
    let goal = client.store.propose_goal(plan, "Walk to work").unwrap();
    sync_stores(&client.store, &counselor.store).unwrap();
    counselor
        .store
        .edit_goal(
            plan,
            goal,
            &GoalEdit {
                clinical_statement: Some("Increase daily activity".into()),
                status: Some(GoalStatus::Active),
                ..GoalEdit::default()
            },
        )
        .unwrap();
    sync_stores(&counselor.store, &client.store).unwrap();
    let devices = client.store.plan(plan).unwrap().devices;
    assert!(
        devices.iter().all(|d| d.public_key.is_some()),
        "{devices:?}"
    );
    World {
        counselor,
        client,
        plan,
        goal,
    }
}

#[derive(Clone, Copy, Debug)]
enum Forgery {
    /// The client's app edits the clinical statement (Text) under the counselor's actor.
    Text,
    /// The client's app sets the status (a scalar) under the counselor's actor.
    Status,
    /// The client's app writes the counselor's agreement under the counselor's actor.
    Agreement,
    /// The counselor's app writes a check-in in the client's name under the client's actor.
    CheckIn,
}

const FORGERIES: [Forgery; 4] = [
    Forgery::Text,
    Forgery::Status,
    Forgery::Agreement,
    Forgery::CheckIn,
];

impl Forgery {
    /// Who forges, and whose actor the forgery names.
    fn parts<'a>(&self, w: &'a World) -> (&'a Phone, &'a Phone) {
        match self {
            Forgery::CheckIn => (&w.counselor, &w.client),
            _ => (&w.client, &w.counselor),
        }
    }

    /// The forged change, written raw on the forger's copy of the plan under the victim's
    /// actor: the next sequence number of that actor the forger knows of.
    fn forge(&self, w: &World) -> Change {
        let (forger, victim) = self.parts(w);
        let bytes = forger.store.saved_document(w.plan).unwrap();
        let mut doc = PlanDoc::load(&bytes, victim.me.device_id.actor()).unwrap();
        let goal = w.goal;
        let content_hash = forger
            .store
            .plan(w.plan)
            .unwrap()
            .goal(goal)
            .unwrap()
            .content_hash
            .clone();
        let hash = doc
            .change("forged", 1_795_000_000_000, |tx| match self {
                Forgery::Text => write::edit_goal(
                    tx,
                    goal,
                    &GoalEdit {
                        clinical_statement: Some("Forged statement".into()),
                        ..GoalEdit::default()
                    },
                ),
                Forgery::Status => write::edit_goal(
                    tx,
                    goal,
                    &GoalEdit {
                        status: Some(GoalStatus::Discontinued),
                        ..GoalEdit::default()
                    },
                ),
                Forgery::Agreement => write::agree(
                    tx,
                    goal,
                    victim.me.member_id,
                    &content_hash,
                    1_795_000_000_000,
                ),
                Forgery::CheckIn => write::add_checkin(
                    tx,
                    goal,
                    &write::CheckInEntry {
                        id: CheckInId::new(),
                        by: victim.me.member_id,
                        at: 1_795_000_000_000,
                        local_date: "2026-11-20",
                        tz_offset_min: 0,
                        gas_level: Some(-2),
                        value: None,
                        mood: Some(0),
                        craving: Some(10),
                        note: "forged",
                        corrects: None,
                    },
                ),
            })
            .unwrap()
            .expect("a forged change");
        doc.automerge().get_change_by_hash(&hash).unwrap()
    }
}

/// An honest check-in through the API (signed by its device), not synced yet.
fn honest_checkin(phone: &Phone, w: &World) -> ChangeHash {
    phone
        .store
        .check_in(
            w.plan,
            w.goal,
            &NewCheckIn {
                mood: Some(6),
                ..NewCheckIn::default()
            },
        )
        .unwrap();
    last_change(&phone.store, w.plan)
}

/// An honest objective by the counselor through the API, not synced yet.
fn genuine_objective(w: &World) -> ChangeHash {
    w.counselor
        .store
        .add_objective(
            w.plan,
            w.goal,
            &NewObjective {
                text: "Walk 20 minutes a day".into(),
                ..NewObjective::default()
            },
        )
        .unwrap();
    last_change(&w.counselor.store, w.plan)
}

fn last_change(store: &Alliance, plan: PlanId) -> ChangeHash {
    let doc = Automerge::load(&store.saved_document(plan).unwrap()).unwrap();
    let heads = doc.get_heads();
    assert_eq!(heads.len(), 1);
    heads[0]
}

/// Whether the store's document holds the change.
fn holds(store: &Alliance, plan: PlanId, change: &ChangeHash) -> bool {
    Automerge::load(&store.saved_document(plan).unwrap())
        .unwrap()
        .get_change_by_hash(change)
        .is_some()
}

/// The forged change is in no replica, every genuine change is in every one, and they all
/// read the same plan.
fn assert_outcome(
    name: &str,
    replicas: &[(&str, &Alliance)],
    plan: PlanId,
    forged: &ChangeHash,
    genuine: &[ChangeHash],
) {
    for (who, store) in replicas {
        assert!(
            !holds(store, plan, forged),
            "{name}: {who} stored the forgery"
        );
        for change in genuine {
            assert!(
                holds(store, plan, change),
                "{name}: {who} lacks a genuine change"
            );
        }
        let history = store.history(plan).unwrap();
        assert!(
            !history
                .iter()
                .any(|h| !h.refused && h.hash == forged.to_string()),
            "{name}: {who} shows the forgery as an edit"
        );
        assert_eq!(
            store.plan(plan).unwrap(),
            replicas[0].1.plan(plan).unwrap(),
            "{name}: {who} reads another plan"
        );
    }
}

/// The refusal of `forged` recorded on `store`, with the forged rule.
fn assert_refused_as_forged(name: &str, store: &Alliance, plan: PlanId, forged: &ChangeHash) {
    let refusals = store.refused_changes(Some(plan)).unwrap();
    let record = refusals
        .iter()
        .find(|(_, r)| r.change_hash == forged.to_string())
        .unwrap_or_else(|| panic!("{name}: no refusal recorded: {refusals:?}"));
    assert_eq!(record.1.rule, FORGED, "{name}");
}

/// In person: the forger's raw copy — the plan as its store holds it, the forged change on
/// top — syncs with `victim` in process, every change of the copy sent with the signature
/// its store holds for it; the forged change goes with a signature by the forger's own key
/// (a valid signature, by the wrong device). Returns the forger's peer name.
fn push_in_person(forger: &Phone, forged: &Change, victim: &Alliance, plan: PlanId) {
    let mut raw = Automerge::load(&forger.store.saved_document(plan).unwrap()).unwrap();
    raw.apply_changes([forged.clone()]).unwrap();
    let own = forger.me.device_id.actor();
    let mut signatures: Vec<_> = raw
        .get_changes(&[])
        .iter()
        .filter(|c| c.actor_id() == &own)
        .map(|c| (c.hash(), forger.store.sign_for_tests(&c.hash()).unwrap()))
        .collect();
    signatures.push((
        forged.hash(),
        forger.store.sign_for_tests(&forged.hash()).unwrap(),
    ));
    // The forged change goes first, on its own: the victim may hold a genuine change with its
    // sequence number, which the raw copy could not take in.
    let forged_alone = sync::Message {
        heads: raw.get_heads(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![forged.raw_bytes().to_vec()].into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    victim
        .receive_sync_message(
            plan,
            "forger",
            &carrier::wrap(forged_alone.encode(), &signatures),
        )
        .unwrap();
    let mut state = sync::State::new();
    for _ in 0..50 {
        let mut quiet = true;
        if let Some(m) = raw.generate_sync_message(&mut state) {
            quiet = false;
            victim
                .receive_sync_message(plan, "forger", &carrier::wrap(m.encode(), &signatures))
                .unwrap();
        }
        if let Some(m) = victim.generate_sync_message(plan, "forger").unwrap() {
            quiet = false;
            let m = sync::Message::decode(alliance_tests::unsigned(&m)).unwrap();
            if raw.receive_sync_message(&mut state, m).is_err() {
                // The genuine change of the forged seq: the raw copy cannot go on.
                victim.end_sync_session("forger");
                return;
            }
        }
        if quiet {
            victim.end_sync_session("forger");
            return;
        }
    }
    panic!("the forger's sync did not settle");
}

#[test]
fn forgeries_in_person_are_refused_and_genuine_edits_land_everywhere() {
    for forgery in FORGERIES {
        let name = format!("{forgery:?} in person");
        let w = world();
        let (forger, victim) = forgery.parts(&w);
        let honest = honest_checkin(forger, &w);
        let forged = forgery.forge(&w);
        // Sent to the device whose actor it names.
        push_in_person(forger, &forged, &victim.store, w.plan);
        assert_refused_as_forged(&name, &victim.store, w.plan, &forged.hash());
        assert!(
            victim.store.set_aside_changes(w.plan).unwrap().is_empty(),
            "{name}"
        );
        // The victim keeps working, and both sync in person.
        let after = honest_checkin(victim, &w);
        sync_stores(&victim.store, &forger.store).unwrap();
        assert_outcome(
            &name,
            &[("forger", &forger.store), ("victim", &victim.store)],
            w.plan,
            &forged.hash(),
            &[honest, after],
        );
    }
}

/// A relay that requires tokens, seeded in process with the plan; tokens for both devices. On
/// the simulated network (`alliance_core::sync::relay::sim`): the relay's real sessions, no
/// socket.
struct Relay {
    relay: SimRelay,
    store: Arc<Alliance>,
    counselor_token: String,
    client_token: String,
}

fn relay_for(w: &World) -> Relay {
    let issue = |phone: &Phone| {
        w.counselor
            .store
            .issue_device_token(w.plan, phone.me.device_id, None)
            .unwrap()
    };
    let counselor_token = issue(&w.counselor);
    let client_token = issue(&w.client);
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    let store = Arc::new(Alliance::open_in_memory().unwrap());
    sync_stores_into(&w.counselor.store, &store, w.plan);
    assert!(store.has_plan(w.plan).unwrap());
    let relay = SimRelay::new(
        store.clone(),
        RelayOptions {
            require_token: true,
            ..RelayOptions::default()
        },
    )
    .unwrap();
    Relay {
        relay,
        store,
        counselor_token,
        client_token,
    }
}

impl Relay {
    fn token_of(&self, w: &World, phone: &Phone) -> String {
        if phone.me.device_id == w.counselor.me.device_id {
            self.counselor_token.clone()
        } else {
            self.client_token.clone()
        }
    }

    /// One sync of an honest device through the relay.
    fn sync(&self, w: &World, phone: &Phone) -> SyncSummary {
        self.relay
            .sync_once(phone.store.clone(), &self.options(w, phone))
            .unwrap()
    }

    fn options(&self, w: &World, phone: &Phone) -> SyncOptions {
        SyncOptions {
            token: Some(self.token_of(w, phone)),
            handshake_timeout: Duration::from_secs(20),
            ..options(&[w.plan])
        }
    }

    /// The forger's app syncs through the relay with its own token, its next message about
    /// the plan carrying the forged change (raw, as an automerge-repo peer would send it).
    fn push_forged(&self, w: &World, forger: &Phone, forged: &Change) {
        let hostile = HostileStore::new(forger.store.clone());
        hostile.queue(w.plan, vec![forged.raw_bytes().to_vec()]);
        let _ = self
            .relay
            .sync_once(hostile.clone(), &self.options(w, forger));
        assert_eq!(hostile.pending(), 0, "the forged change was not sent");
    }
}

#[test]
fn forgeries_through_the_relay_are_refused_and_genuine_edits_land_everywhere() {
    for forgery in FORGERIES {
        let name = format!("{forgery:?} through the relay");
        let w = world();
        let relay = relay_for(&w);
        let (forger, victim) = forgery.parts(&w);
        let honest = honest_checkin(forger, &w);
        let forged = forgery.forge(&w);
        relay.push_forged(&w, forger, &forged);
        assert_refused_as_forged(&name, &relay.store, w.plan, &forged.hash());
        // The forger's honest edit went through with it; the victim syncs and keeps working.
        let after = honest_checkin(victim, &w);
        let summary = relay.sync(&w, victim);
        assert!(summary.refused.is_empty(), "{name}: {:?}", summary.refused);
        relay.sync(&w, forger);
        assert_outcome(
            &name,
            &[
                ("relay", &relay.store),
                ("forger", &forger.store),
                ("victim", &victim.store),
            ],
            w.plan,
            &forged.hash(),
            &[honest, after],
        );
    }
}

/// The forged status never took: the goal is active on the client's device.
fn assert_still_active(name: &str, w: &World) {
    let plan = w.client.store.plan(w.plan).unwrap();
    assert_eq!(
        plan.goal(w.goal).unwrap().status,
        GoalStatus::Active,
        "{name}"
    );
}

/// The counselor's laptop, enrolled from its code, in sync with the plan.
fn laptop_of(w: &World) -> Phone {
    let laptop = w.counselor.another();
    let key = laptop.store.enrollment().unwrap().public_key;
    w.counselor
        .store
        .enroll_with_key(
            w.plan,
            &NewDevice {
                device: laptop.me.device_id,
                member: laptop.me.member_id,
                new_member: None,
                label: "laptop".into(),
            },
            key,
        )
        .unwrap();
    sync_stores(&w.counselor.store, &laptop.store).unwrap();
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    laptop
}

/// The counselor's unsynced objective and a forged status under her actor with the same
/// sequence number: whichever arrives first, every replica ends with the objective and
/// without the forgery, and the counselor is never told her change was refused.
#[test]
fn a_forgery_colliding_with_an_unsynced_genuine_change_loses_in_person_in_both_orders() {
    for forged_first in [true, false] {
        let name = format!("in person, forged first: {forged_first}");
        let w = world();
        let laptop = laptop_of(&w);
        let forged = Forgery::Status.forge(&w);
        let genuine = genuine_objective(&w);
        let seq_of = |store: &Alliance, hash: &ChangeHash| {
            Automerge::load(&store.saved_document(w.plan).unwrap())
                .unwrap()
                .get_change_by_hash(hash)
                .unwrap()
                .seq()
        };
        assert_eq!(seq_of(&w.counselor.store, &genuine), forged.seq(), "{name}");
        // The counselor's own device meets the forgery while it holds the genuine change.
        push_in_person(&w.client, &forged, &w.counselor.store, w.plan);
        assert_refused_as_forged(&name, &w.counselor.store, w.plan, &forged.hash());
        assert!(
            w.counselor
                .store
                .set_aside_changes(w.plan)
                .unwrap()
                .is_empty(),
            "{name}: the genuine change was set aside"
        );
        // The laptop meets both, in either order.
        if forged_first {
            push_in_person(&w.client, &forged, &laptop.store, w.plan);
            let report = sync_stores(&w.counselor.store, &laptop.store).unwrap();
            assert!(report.refused.is_empty(), "{name}: {:?}", report.refused);
        } else {
            let report = sync_stores(&w.counselor.store, &laptop.store).unwrap();
            assert!(report.refused.is_empty(), "{name}: {:?}", report.refused);
            push_in_person(&w.client, &forged, &laptop.store, w.plan);
        }
        assert_refused_as_forged(&name, &laptop.store, w.plan, &forged.hash());
        let later = genuine_objective(&w);
        sync_stores(&w.counselor.store, &w.client.store).unwrap();
        sync_stores(&w.counselor.store, &laptop.store).unwrap();
        assert_outcome(
            &name,
            &[
                ("counselor", &w.counselor.store),
                ("laptop", &laptop.store),
                ("client", &w.client.store),
            ],
            w.plan,
            &forged.hash(),
            &[genuine, later],
        );
        assert_still_active(&name, &w);
    }
}

#[test]
fn a_forgery_colliding_with_an_unsynced_genuine_change_loses_at_the_relay_in_both_orders() {
    for forged_first in [true, false] {
        let name = format!("through the relay, forged first: {forged_first}");
        let w = world();
        let relay = relay_for(&w);
        let forged = Forgery::Status.forge(&w);
        let genuine = genuine_objective(&w);
        let counselor_summary = if forged_first {
            relay.push_forged(&w, &w.client, &forged);
            relay.sync(&w, &w.counselor)
        } else {
            let summary = relay.sync(&w, &w.counselor);
            relay.push_forged(&w, &w.client, &forged);
            summary
        };
        assert!(
            counselor_summary.refused.is_empty(),
            "{name}: the counselor was told {:?}",
            counselor_summary.refused
        );
        assert_refused_as_forged(&name, &relay.store, w.plan, &forged.hash());
        // The counselor is not cut off: a later edit lands too.
        let later = genuine_objective(&w);
        let summary = relay.sync(&w, &w.counselor);
        assert!(summary.refused.is_empty(), "{name}: {:?}", summary.refused);
        relay.sync(&w, &w.client);
        assert_outcome(
            &name,
            &[
                ("relay", &relay.store),
                ("counselor", &w.counselor.store),
                ("client", &w.client.store),
            ],
            w.plan,
            &forged.hash(),
            &[genuine, later],
        );
        assert!(w
            .counselor
            .store
            .set_aside_changes(w.plan)
            .unwrap()
            .is_empty());
        assert_still_active(&name, &w);
    }
}

/// Revocation: once the client's phone knows it was revoked, it writes nothing locally, and a
/// change it signs on top of its revocation anyway (a tampered build) is refused in person and
/// at the relay's store; a check-in it made offline before the revocation reached it
/// (concurrent with it) is kept, as SECURITY.md §6 decides.
#[test]
fn changes_a_device_signs_after_its_revocation_are_refused_and_concurrent_ones_kept() {
    let w = world();
    let relay = Alliance::open_in_memory().unwrap();
    let concurrent = honest_checkin(&w.client, &w);
    w.counselor
        .store
        .revoke_device(w.plan, w.client.me.device_id)
        .unwrap();
    sync_stores(&w.counselor.store, &w.client.store).unwrap();
    assert!(holds(&w.counselor.store, w.plan, &concurrent));
    let refused = w.client.store.check_in(
        w.plan,
        w.goal,
        &NewCheckIn {
            mood: Some(3),
            ..NewCheckIn::default()
        },
    );
    assert!(
        matches!(refused, Err(alliance_core::Error::NotAllowed { .. })),
        "{refused:?}"
    );
    // A tampered build signs a change on top of its revocation with the phone's key.
    let bytes = w.client.store.saved_document(w.plan).unwrap();
    let mut doc = PlanDoc::load(&bytes, w.client.me.device_id.actor()).unwrap();
    let after = doc
        .change("after revocation", 1_795_000_000_000, |tx| {
            write::edit_goal(
                tx,
                w.goal,
                &GoalEdit {
                    client_words: Some("Written after the revocation".into()),
                    ..GoalEdit::default()
                },
            )
        })
        .unwrap()
        .unwrap();
    let change = doc.automerge().get_change_by_hash(&after).unwrap();
    for (who, store) in [("counselor", w.counselor.store.as_ref()), ("relay", &relay)] {
        if who == "relay" {
            sync_stores_into(&w.counselor.store, &relay, w.plan);
        }
        let signature = w.client.store.sign_for_tests(&after).unwrap();
        let message = sync::Message {
            heads: vec![after],
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![change.raw_bytes().to_vec()].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        store
            .receive_sync_message(
                w.plan,
                "revoked phone",
                &carrier::wrap(message.encode(), &[(after, signature)]),
            )
            .unwrap();
        assert!(!holds(store, w.plan, &after), "{who} stored it");
        let refusals = store.refused_changes(Some(w.plan)).unwrap();
        assert!(
            refusals
                .iter()
                .any(|(_, r)| r.change_hash == after.to_string()
                    && r.rule == alliance_core::rules::remote::REVOKED),
            "{who}: {refusals:?}"
        );
        assert!(holds(store, w.plan, &concurrent), "{who}");
    }
}

/// Everything `from` holds of `plan`, into `to` (a store without identity), in process.
fn sync_stores_into(from: &Alliance, to: &Alliance, plan: PlanId) {
    for _ in 0..20 {
        let Some(m) = from.generate_sync_message(plan, "into").unwrap() else {
            return;
        };
        to.receive_sync_message(plan, "from", &m).unwrap();
        if let Some(m) = to.generate_sync_message(plan, "from").unwrap() {
            from.receive_sync_message(plan, "into", &m).unwrap();
        }
    }
}

/// In-person sessions (the frames the shells carry over Bluetooth or a socket) carry the
/// signatures: both devices are enrolled with their keys, so an edit that arrived without
/// its signature would be refused as forged; each side's edit lands on the other.
#[test]
fn in_person_session_frames_carry_the_signatures() {
    use alliance_core::in_person::InPersonSession;
    let w = world();
    let from_client = honest_checkin(&w.client, &w);
    let from_counselor = genuine_objective(&w);
    let mut a = InPersonSession::new(w.counselor.store.clone()).unwrap();
    let mut b = InPersonSession::new(w.client.store.clone()).unwrap();
    let mut to_b = a.start();
    let mut to_a = b.start();
    for _ in 0..1_000 {
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        let mut next_a = Vec::new();
        for frame in to_b.drain(..) {
            next_a.extend(b.receive(&frame).unwrap());
        }
        let mut next_b = Vec::new();
        for frame in to_a.drain(..) {
            next_b.extend(a.receive(&frame).unwrap());
        }
        to_a = next_a;
        to_b = next_b;
    }
    assert!(a.is_settled() && b.is_settled());
    for (who, store) in [
        ("counselor", &w.counselor.store),
        ("client", &w.client.store),
    ] {
        assert!(holds(store, w.plan, &from_client), "{who}");
        assert!(holds(store, w.plan, &from_counselor), "{who}");
        assert!(
            store.refused_changes(Some(w.plan)).unwrap().is_empty(),
            "{who}"
        );
    }
}
