//! Changes held for a missing dependency, and the signatures that came with them, belong to
//! the conversation that sent them: another conversation's message that fails (a peer sends
//! a whole-document chunk the plan cannot take) must not drop them.

use alliance_core::authorship::carrier;
use alliance_core::Alliance;
use alliance_tests::{client, counselor, exchange, hostile, plan_with_client, Device};
use automerge::transaction::Transactable;
use automerge::{Automerge, Change, ROOT};

/// `changes` of the counselor, each with her device's signature, in one message shaped like
/// `shape` (a message about the plan).
fn signed(dana: &Device, shape: &[u8], changes: &[&Change]) -> Vec<u8> {
    let chunks = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
    let message = hostile::message_with(shape, chunks);
    let signatures: Vec<_> = changes
        .iter()
        .map(|c| (c.hash(), dana.store.sign_for_tests(&c.hash()).unwrap()))
        .collect();
    carrier::wrap(message, &signatures)
}

#[test]
fn a_failed_message_of_another_conversation_keeps_held_changes_and_their_signatures() {
    let dana = counselor();
    let sam = client();
    let plan = plan_with_client(&dana, &sam);
    let relay = Alliance::open_in_memory().unwrap();
    exchange(&dana.store, &relay, plan);
    let shape = relay.generate_sync_message(plan, "shape").unwrap().unwrap();
    let known = Automerge::load(&dana.store.saved_document(plan).unwrap()).unwrap();
    dana.store.set_title(plan, "First").unwrap();
    dana.store.set_title(plan, "Second").unwrap();
    let doc = Automerge::load(&dana.store.saved_document(plan).unwrap()).unwrap();
    let new = doc.get_changes(&known.get_heads());
    assert_eq!(new.len(), 2);
    let (first, second) = (&new[0], &new[1]);
    assert_eq!(second.deps(), &[first.hash()]);

    // The second edit arrives ahead of the first: held, its signature waiting with it.
    let m = signed(&dana, &shape, &[second]);
    relay.receive_sync_message(plan, "dana", &m).unwrap();
    assert_eq!(relay.held_changes().changes, 1);

    // Another peer sends a whole document whose history clashes with the plan's (a change
    // numbered like one of the counselor's first): that message fails, as it should.
    let mut clash = Automerge::new().with_actor(dana.me.device_id.actor());
    clash.transact(|tx| tx.put(ROOT, "x", 1)).unwrap();
    let bad = hostile::message_with(&shape, vec![clash.save()]);
    assert!(relay.receive_sync_message(plan, "other", &bad).is_err());

    // The first edit arrives: both are in, the second with its signature.
    let m = signed(&dana, &shape, &[first]);
    let receipt = relay.receive_sync_message(plan, "dana", &m).unwrap();
    assert!(receipt.refused.is_empty(), "refused: {:?}", receipt.refused);
    assert_eq!(relay.plan(plan).unwrap().title, "Second");
}
