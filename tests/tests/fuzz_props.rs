//! The three fuzz targets of `fuzz/` as property tests, so they run in `scripts/test`: the
//! protocol frame decoder, sync message handling on a store holding a plan, and loading a plan
//! document. Arbitrary bytes and mutated valid inputs must give `Ok` or `Err`, never a panic,
//! and a message refused with an error must leave the store as it was.
//!
//! `ALLIANCE_PROPTEST_CASES` sets the number of cases per property (256 by default).

use std::sync::OnceLock;

use alliance_core::sync::Message;
use alliance_core::Alliance;
use alliance_tests::fuzz_inputs::{
    decode_frame, frames, hostile_sync_inputs, join_messages, load_plan_document, receive_all,
    receive_input, split_messages, sync_input, sync_scene, SyncScene,
};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("ALLIANCE_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

fn scene() -> &'static SyncScene {
    static SCENE: OnceLock<SyncScene> = OnceLock::new();
    SCENE.get_or_init(sync_scene)
}

fn hostile_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| hostile_sync_inputs(scene()))
}

fn valid_frames() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| frames(scene()))
}

/// One change to a byte string; positions wrap around its length.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        value: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// Copies a span of the input elsewhere (repeats a field, a change, a length).
    Repeat {
        from: usize,
        len: usize,
        at: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1usize..17).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), 1usize..65, any::<usize>())
            .prop_map(|(from, len, at)| Mutation::Repeat { from, len, at }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len().max(1);
        match mutation {
            Mutation::FlipBit { at, bit } => {
                if let Some(byte) = bytes.get_mut(at % len) {
                    *byte ^= 1 << bit;
                }
            }
            Mutation::Set { at, value } => {
                if let Some(byte) = bytes.get_mut(at % len) {
                    *byte = *value;
                }
            }
            Mutation::Insert { at, bytes: new } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Remove { at, len: count } => {
                let at = at % len;
                let end = (at + count).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
            Mutation::Repeat {
                from,
                len: count,
                at,
            } => {
                let from = from % len;
                let end = (from + count).min(bytes.len());
                if from < end {
                    let span = bytes[from..end].to_vec();
                    let at = at % (bytes.len() + 1);
                    bytes.splice(at..at, span);
                }
            }
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..5)
}

/// A store that has received the scene's plan from the counselor.
fn store_with_plan() -> Alliance {
    let store = Alliance::open_in_memory().unwrap();
    let scene = scene();
    let base: Vec<&[u8]> = scene.base.iter().map(Vec::as_slice).collect();
    receive_all(&store, scene.plan, &base);
    assert!(
        store.has_plan(scene.plan).unwrap(),
        "the scene gives the plan"
    );
    store
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 500,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_frames_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_frame(&bytes);
    }

    #[test]
    fn mutated_frames_decode_or_fail(index in any::<prop::sample::Index>(), changes in mutations()) {
        let frames = valid_frames();
        let frame = frames[index.index(frames.len())].clone();
        decode_frame(&mutate(frame, &changes));
    }

    #[test]
    fn arbitrary_sync_messages_change_nothing_or_apply(
        inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4)
    ) {
        let store = store_with_plan();
        let messages: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        receive_all(&store, scene().plan, &messages);
    }

    #[test]
    fn mutated_sync_messages_change_nothing_or_apply(
        index in any::<prop::sample::Index>(),
        changes in mutations(),
    ) {
        // A mutated client message among valid ones: what comes after it must be handled too.
        let scene = scene();
        let store = store_with_plan();
        let target = index.index(scene.client.len());
        let mut messages = scene.client.clone();
        messages[target] = mutate(messages[target].clone(), &changes);
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        receive_all(&store, scene.plan, &messages);
    }

    #[test]
    fn a_mutated_message_stream_from_an_empty_store_is_handled(changes in mutations()) {
        // The whole conversation as the fuzz target sees it: every message, joined, mutated.
        let scene = scene();
        let joined = join_messages(scene.base.iter().chain(&scene.client));
        let input = mutate(joined, &changes);
        let store = Alliance::open_in_memory().unwrap();
        receive_all(&store, scene.plan, &split_messages(&input));
    }

    #[test]
    fn mutated_fuzz_seeds_of_the_sync_target_are_handled(changes in mutations()) {
        // The exact input format of `fuzz/fuzz_targets/sync_message.rs`, plan id included.
        let scene = scene();
        let seed = sync_input(scene.plan, scene.base.iter().chain(&scene.client));
        receive_input(&mutate(seed, &changes));
    }

    #[test]
    fn mutated_hostile_seeds_are_handled(index in any::<prop::sample::Index>(), changes in mutations()) {
        // A change bomb or a held-change chain, mutated: still bounded, never a panic.
        let seeds = hostile_seeds();
        let seed = seeds[index.index(seeds.len())].clone();
        receive_input(&mutate(seed, &changes));
    }

    #[test]
    fn arbitrary_plan_documents_load_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        load_plan_document(&bytes);
    }

    #[test]
    fn mutated_plan_documents_load_or_fail(index in any::<prop::sample::Index>(), changes in mutations()) {
        let documents = &scene().documents;
        let document = documents[index.index(documents.len())].clone();
        load_plan_document(&mutate(document, &changes));
    }
}

#[test]
fn the_valid_inputs_are_accepted_whole() {
    // The seeds the mutations start from really are valid.
    let scene = scene();
    assert!(!scene.base.is_empty() && !scene.client.is_empty());
    for frame in valid_frames() {
        assert!(Message::decode(frame).is_ok());
    }
    let store = store_with_plan();
    let client: Vec<&[u8]> = scene.client.iter().map(Vec::as_slice).collect();
    receive_all(&store, scene.plan, &client);
    assert!(store.refused_changes(None).unwrap().is_empty());
    let plan = store.plan(scene.plan).unwrap();
    assert_eq!(plan.goals.len(), 3, "the client's goal arrived");
    for document in &scene.documents {
        let doc =
            alliance_core::plan::PlanDoc::load(document, automerge::ActorId::random()).unwrap();
        assert!(doc.read().is_ok());
    }
}

#[test]
fn the_hostile_seeds_are_refused_within_the_budgets() {
    let scene = scene();
    let [bomb, chain] = hostile_seeds() else {
        panic!("two hostile seeds");
    };
    // The bomb: the plan arrives, the bomb is refused as a rule and recorded.
    let store = Alliance::open_in_memory().unwrap();
    let messages = split_messages(&bomb[16..]);
    receive_all(&store, scene.plan, &messages);
    let refused = store.refused_changes(None).unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].1.rule,
        alliance_core::budgets::TOO_MANY_OPERATIONS
    );
    // The chain: refused whole, nothing held.
    let store = Alliance::open_in_memory().unwrap();
    let messages = split_messages(&chain[16..]);
    let (last, base) = messages.split_last().unwrap();
    receive_all(&store, scene.plan, base);
    assert!(store.receive_sync_message(scene.plan, "x", last).is_err());
    assert_eq!(store.held_changes().changes, 0);
}
