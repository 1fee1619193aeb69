//! Relay vouchers on a device (SECURITY.md §6, Peers that cannot sign): in a plan that pins a
//! relay key, a change by a device enrolled without a key is kept only with that relay's
//! voucher for it and its device; a plan that pins none trusts such a device by its actor, as
//! before. The changes here go to the counselor's device in person, as raw sync messages with
//! exactly the records each case gives.

mod sync_support;

use std::sync::Arc;
use std::time::Duration;

use alliance_core::authorship::voucher::{self, UNVOUCHED};
use alliance_core::authorship::{carrier, DeviceKey};
use alliance_core::sync::relay::sim::SimRelay;
use alliance_core::sync::{RelayOptions, SyncOptions};
use alliance_core::{Alliance, PlanId, Role};
use alliance_tests::{client, counselor, enroll, plan_with_client, Device};
use automerge::sync;
use automerge::{Automerge, Change, ReadDoc};
use sync_support::{plan_for, Phone};

/// A counselor's plan with a second, keyless counselor device (a tablet enrolled by id) that
/// renamed the plan; the rename is not synced. The plan pins `relay`'s key when given.
struct World {
    counselor: Device,
    client: Device,
    tablet: Device,
    plan: PlanId,
    rename: Change,
}

fn world(relay: Option<&DeviceKey>) -> World {
    let counselor = counselor();
    let client = client();
    let plan = plan_with_client(&counselor, &client);
    let tablet = counselor.another_of();
    enroll(&counselor, plan, &tablet);
    if let Some(relay) = relay {
        counselor
            .store
            .pin_relay_key(plan, &relay.public_key())
            .unwrap();
    }
    counselor.sync(&tablet);
    counselor.sync(&client);
    let devices = counselor.store.plan(plan).unwrap().devices;
    assert!(devices
        .iter()
        .any(|d| d.device_id == tablet.me.device_id && d.public_key.is_none()));
    tablet
        .store
        .set_title(plan, "Renamed on the tablet")
        .unwrap();
    let doc = Automerge::load(&tablet.store.saved_document(plan).unwrap()).unwrap();
    let heads = doc.get_heads();
    let rename = doc.get_change_by_hash(&heads[0]).unwrap();
    World {
        counselor,
        client,
        tablet,
        plan,
        rename,
    }
}

/// Sends the rename to `to` with these signature records; returns the rules it was refused by.
fn send(w: &World, to: &Alliance, records: &[carrier::Record]) -> Vec<String> {
    let message = sync::Message {
        heads: vec![w.rename.hash()],
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![w.rename.raw_bytes().to_vec()].into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    let receipt = to
        .receive_sync_message(w.plan, "tablet", &carrier::wrap(message.encode(), records))
        .unwrap();
    receipt.refused.into_iter().map(|r| r.rule).collect()
}

/// The signature records a case sends with the rename.
type Records<'a> = dyn Fn(&World) -> Vec<carrier::Record> + 'a;

fn title(store: &Alliance, plan: PlanId) -> String {
    store.plan(plan).unwrap().title
}

#[test]
fn a_keyless_device_change_needs_the_pinned_relays_voucher() {
    let relay = DeviceKey::generate().unwrap();
    let other_relay = DeviceKey::generate().unwrap();
    let vouched_by = |key: &DeviceKey, w: &World, device| {
        let hash = w.rename.hash();
        vec![(hash, voucher::vouch(key, &hash, device))]
    };
    let cases: Vec<(&str, Box<Records<'_>>)> = vec![
        ("no record", Box::new(|_| Vec::new())),
        (
            "a voucher by another relay",
            Box::new(|w| vouched_by(&other_relay, w, w.tablet.me.device_id)),
        ),
        (
            "the relay's voucher for another device",
            Box::new(|w| vouched_by(&relay, w, w.counselor.me.device_id)),
        ),
        (
            "the tablet's own signature (its key is not recorded)",
            Box::new(|w| {
                let hash = w.rename.hash();
                vec![(hash, w.tablet.store.sign_for_tests(&hash).unwrap())]
            }),
        ),
    ];
    for (name, records) in cases {
        let w = world(Some(&relay));
        let refused = send(&w, &w.counselor.store, &records(&w));
        assert_eq!(refused, [UNVOUCHED], "{name}");
        assert_eq!(title(&w.counselor.store, w.plan), "Plan", "{name}");
        let recorded = w.counselor.store.refused_changes(Some(w.plan)).unwrap();
        assert!(
            recorded
                .iter()
                .any(|(_, r)| r.rule == UNVOUCHED
                    && r.device_id == w.tablet.me.device_id.to_string()),
            "{name}: {recorded:?}"
        );
        // Nothing of it reaches the client's device either.
        w.counselor.sync(&w.client);
        assert_eq!(title(&w.client.store, w.plan), "Plan", "{name}");
    }

    // With the pinned relay's voucher it is kept, and the voucher travels on with it: the
    // client's device, which gets it from the counselor's in person, keeps it too.
    let w = world(Some(&relay));
    let refused = send(
        &w,
        &w.counselor.store,
        &vouched_by(&relay, &w, w.tablet.me.device_id),
    );
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(title(&w.counselor.store, w.plan), "Renamed on the tablet");
    w.counselor.sync(&w.client);
    assert_eq!(title(&w.client.store, w.plan), "Renamed on the tablet");
    assert!(w.client.store.refused_changes(None).unwrap().is_empty());
}

#[test]
fn a_plan_that_pins_no_relay_key_trusts_a_keyless_device_as_before() {
    let w = world(None);
    let refused = send(&w, &w.counselor.store, &[]);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(title(&w.counselor.store, w.plan), "Renamed on the tablet");
}

#[test]
fn only_a_counselor_pins_the_relay_key_and_only_a_relay_has_one() {
    let relay_store = Alliance::open_in_memory().unwrap();
    let key = relay_store.relay_public_key().unwrap();
    assert_eq!(relay_store.relay_public_key().unwrap(), key, "made once");
    let counselor = counselor();
    let client = client();
    let plan = plan_with_client(&counselor, &client);
    assert!(counselor.store.relay_public_key().is_err());
    assert!(matches!(
        client.store.pin_relay_key(plan, &key),
        Err(alliance_core::Error::NotAllowed { .. })
    ));
    assert_eq!(counselor.store.pinned_relay_key(plan).unwrap(), None);
    counselor.store.pin_relay_key(plan, &key).unwrap();
    assert_eq!(counselor.store.pinned_relay_key(plan).unwrap(), Some(key));
    counselor.sync(&client);
    assert_eq!(client.store.pinned_relay_key(plan).unwrap(), Some(key));
}

/// A relay on an in-memory store with its key, requiring tokens or not, on the simulated
/// network (`alliance_core::sync::relay::sim`: the relay's real sessions, no socket).
fn relay_with_key(require_token: bool) -> (SimRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open_in_memory().unwrap());
    store.relay_public_key().unwrap();
    let options = RelayOptions {
        require_token,
        open_enrollment: require_token,
        ..RelayOptions::default()
    };
    let relay = SimRelay::new(store.clone(), options).unwrap();
    (relay, store)
}

fn sync_through(phone: &Phone, relay: &SimRelay, token: Option<&str>, plan: PlanId) {
    let options = SyncOptions {
        token: token.map(str::to_string),
        handshake_timeout: Duration::from_secs(20),
        ..sync_support::options(&[plan])
    };
    let _ = relay.sync_once(phone.store.clone(), &options);
}

/// Through the network: a keyless counselor tablet (enrolled by id) in a plan that pins the
/// relay's key. Pushed with its own token, its rename is vouched for by the relay and kept by
/// the counselor's device; a relay without tokens (`--no-auth`) vouches for nothing, so the
/// same push is refused there and reaches nobody.
#[test]
fn the_relay_vouches_for_a_tokens_own_keyless_device_and_nothing_without_a_token() {
    for require_token in [true, false] {
        let name = if require_token { "token" } else { "no-auth" };
        let (relay, relay_store) = relay_with_key(require_token);
        let counselor = Phone::new("Dana", Role::Counselor);
        let client = Phone::new("Sam", Role::Client);
        let plan = plan_for(&counselor, &client, "Plan");
        let tablet = counselor.another();
        counselor.enroll(plan, &tablet);
        let key = relay_store.relay_public_key().unwrap();
        counselor.store.pin_relay_key(plan, &key).unwrap();
        let issue = |phone: &Phone| {
            require_token.then(|| {
                counselor
                    .store
                    .issue_device_token(plan, phone.me.device_id, None)
                    .unwrap()
            })
        };
        let (counselor_token, tablet_token) = (issue(&counselor), issue(&tablet));
        sync_through(&counselor, &relay, counselor_token.as_deref(), plan);
        sync_through(&tablet, &relay, tablet_token.as_deref(), plan);
        assert!(tablet.store.has_plan(plan).unwrap(), "{name}");
        tablet
            .store
            .set_title(plan, "Renamed on the tablet")
            .unwrap();
        sync_through(&tablet, &relay, tablet_token.as_deref(), plan);
        sync_through(&counselor, &relay, counselor_token.as_deref(), plan);
        let expected = if require_token {
            "Renamed on the tablet"
        } else {
            "Plan"
        };
        assert_eq!(title(&relay_store, plan), expected, "{name}");
        assert_eq!(title(&counselor.store, plan), expected, "{name}");
        let refused = relay_store.refused_changes(Some(plan)).unwrap();
        if require_token {
            assert!(refused.is_empty(), "{name}: {refused:?}");
            assert!(counselor.store.refused_changes(None).unwrap().is_empty());
        } else {
            assert!(
                refused
                    .iter()
                    .any(|(_, r)| r.rule == UNVOUCHED
                        && r.device_id == tablet.me.device_id.to_string()),
                "{name}: {refused:?}"
            );
        }
    }
}

/// A raw sync message carrying `changes`, with these signature records beside it.
fn raw_message(changes: &[&Change], records: &[carrier::Record]) -> Vec<u8> {
    let mut heads: Vec<_> = changes.iter().map(|c| c.hash()).collect();
    heads.sort();
    let message = sync::Message {
        heads,
        need: Vec::new(),
        have: Vec::new(),
        changes: changes
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect::<Vec<_>>()
            .into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    carrier::wrap(message.encode(), records)
}

/// The relay vouches only for what the pushing connection's own message carries: a change a
/// forger pushed earlier under a keyless device's actor, held for a missing dependency, is not
/// vouched for when that device's own token later pushes the dependency.
#[test]
fn a_held_forgery_is_not_vouched_for_by_the_next_push_of_the_device_it_names() {
    let relay = Alliance::open_in_memory().unwrap();
    let key = relay.relay_public_key().unwrap();
    let counselor = counselor();
    let client = client();
    let plan = plan_with_client(&counselor, &client);
    let tablet = counselor.another_of();
    enroll(&counselor, plan, &tablet);
    counselor.store.pin_relay_key(plan, &key).unwrap();
    let token = |device: &Device| {
        counselor
            .store
            .issue_device_token(plan, device.me.device_id, None)
            .unwrap()
    };
    let (client_token, tablet_token) = (token(&client), token(&tablet));
    // The relay gets the plan: every change so far is the counselor's, signed by her.
    let doc = Automerge::load(&counselor.store.saved_document(plan).unwrap()).unwrap();
    let changes = doc.get_changes(&[]);
    let records: Vec<carrier::Record> = changes
        .iter()
        .map(|c| (c.hash(), counselor.store.sign_for_tests(&c.hash()).unwrap()))
        .collect();
    let all: Vec<&Change> = changes.iter().collect();
    relay
        .receive_sync_message(plan, "counselor", &raw_message(&all, &records))
        .unwrap();
    assert!(relay.has_plan(plan).unwrap());
    counselor.sync(&client);
    counselor.sync(&tablet);

    // The counselor's signed edit, which the relay does not hold yet; the client's app forges
    // a rename under the tablet's actor on top of it.
    counselor.store.set_review_on(plan, "2027-01-01").unwrap();
    let counselor_doc = Automerge::load(&counselor.store.saved_document(plan).unwrap()).unwrap();
    let edit = counselor_doc
        .get_change_by_hash(&counselor_doc.get_heads()[0])
        .unwrap();
    let mut forged_doc = alliance_core::plan::PlanDoc::load(
        &counselor.store.saved_document(plan).unwrap(),
        tablet.me.device_id.actor(),
    )
    .unwrap();
    let forged = forged_doc
        .change("forged", 1_795_000_000_000, |tx| {
            alliance_core::plan::write::set_title(tx, "Forged")
        })
        .unwrap()
        .unwrap();
    let forged = forged_doc.automerge().get_change_by_hash(&forged).unwrap();

    let push = |token: &str, peer: &str, message: Vec<u8>| {
        let voucher = alliance_core::sync::TokenVoucher {
            token_hash: alliance_core::sync::token_hash(token),
            must_be_listed: false,
        };
        relay
            .receive_vouched(plan, peer, &message, &voucher)
            .unwrap()
    };
    // The forgery arrives first, from the client's app: held for the counselor's edit.
    push(&client_token, "app", raw_message(&[&forged], &[]));
    // The tablet's own token then pushes the counselor's edit (signed by her).
    let signed = (
        edit.hash(),
        counselor.store.sign_for_tests(&edit.hash()).unwrap(),
    );
    push(&tablet_token, "tablet", raw_message(&[&edit], &[signed]));

    let held = Automerge::load(&relay.saved_document(plan).unwrap()).unwrap();
    assert!(held.get_change_by_hash(&edit.hash()).is_some());
    assert!(held.get_change_by_hash(&forged.hash()).is_none());
    assert_eq!(title(&relay, plan), "Plan");
    let refused = relay.refused_changes(Some(plan)).unwrap();
    assert!(
        refused
            .iter()
            .any(|(_, r)| r.rule == UNVOUCHED && r.device_id == tablet.me.device_id.to_string()),
        "{refused:?}"
    );
}
