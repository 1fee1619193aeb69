//! Inputs for the fuzz targets (`fuzz/`) and their property-test twins
//! (`tests/tests/fuzz_props.rs`): valid protocol frames, a plan's sync messages and saved plan
//! documents, all made through the public API, plus the checks both share.

use alliance_core::plan::PlanDoc;
use alliance_core::store::DocumentSizes;
use alliance_core::sync::{
    ChangeRefusal, DocumentId, DocumentMessage, HeadsDigests, Message, PeerId, PeerMetadata,
};
use alliance_core::{
    Alliance, GasEdit, HistoryEntry, NewCheckIn, NewPlan, PlanId, PlanSummary, RefusedChange, Role,
};

use crate::Device;

/// The peer name a store receiving scene messages knows the sender by.
pub const SENDER: &str = "fuzz-peer";

/// A counselor's plan as sync messages: `base` gives an empty store the plan, `client` then
/// carries a client's edits to it. Applied in order, every message is accepted.
pub struct SyncScene {
    pub plan: PlanId,
    pub base: Vec<Vec<u8>>,
    pub client: Vec<Vec<u8>>,
    /// The plan's saved document (`Alliance::saved_document`) before and after the client's
    /// edits.
    pub documents: Vec<Vec<u8>>,
}

/// Runs a sync session from `from` to `to` until both are done, returning what `from` sent.
fn session(from: &Alliance, to: &Alliance, plan: PlanId) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for _ in 0..32 {
        let forward = from.generate_sync_message(plan, "to").expect("generate");
        if let Some(message) = &forward {
            to.receive_sync_message(plan, "from", message)
                .expect("receive");
            sent.push(message.clone());
        }
        let back = to.generate_sync_message(plan, "from").expect("generate");
        if let Some(message) = &back {
            from.receive_sync_message(plan, "to", message)
                .expect("receive");
        }
        if forward.is_none() && back.is_none() {
            break;
        }
    }
    sent
}

/// Builds a scene: a counselor's plan with two goals, then a client's goal, check-in, GAS
/// words and agreement, each as the messages that reach a relay.
pub fn sync_scene() -> SyncScene {
    let counselor = Device::new("Counselor", Role::Counselor);
    let client = Device::new("Client", Role::Client);
    let plan = counselor
        .store
        .create_plan(&NewPlan {
            title: "Plan".into(),
            client_name: "Client".into(),
            client_member: Some(client.me.member_id),
            client_device: Some(client.me.device_id),
        })
        .expect("create plan");
    let first = counselor
        .store
        .propose_goal(plan, "walk every morning")
        .expect("goal");
    counselor
        .store
        .propose_goal(plan, "call my sister on Sundays")
        .expect("goal");
    counselor
        .store
        .set_gas(
            plan,
            first,
            &GasEdit::Level {
                level: 0,
                text: "three walks a week".into(),
            },
        )
        .expect("gas");
    let relay = Alliance::open_in_memory().expect("relay store");
    let base = session(&counselor.store, &relay, plan);
    let before = counselor.store.saved_document(plan).expect("document");

    session(&relay, &client.store, plan);
    let own = client
        .store
        .propose_goal(plan, "sleep before midnight")
        .expect("client goal");
    let _ = client.store.check_in(
        plan,
        first,
        &NewCheckIn {
            gas_level: Some(1),
            mood: Some(6),
            note: "a good week".into(),
            ..NewCheckIn::default()
        },
    );
    let _ = client.store.set_gas(
        plan,
        own,
        &GasEdit::Level {
            level: 1,
            text: "asleep by eleven".into(),
        },
    );
    let _ = client.store.agree(plan, first);
    let client_messages = session(&client.store, &relay, plan);
    let after = relay.saved_document(plan).expect("document");
    SyncScene {
        plan,
        base,
        client: client_messages,
        documents: vec![before, after],
    }
}

/// Sync inputs from a hostile peer: the scene's plan, then a message carrying a change bomb
/// (a billion operations claimed in a few dozen bytes), and one carrying a chain of changes
/// built on one never sent, longer than a connection may leave waiting. A store must refuse
/// both within its budgets (`alliance_core::budgets`), storing nothing of them.
pub fn hostile_sync_inputs(scene: &SyncScene) -> Vec<Vec<u8>> {
    use crate::hostile::{change_bomb, held_chain, message_with, next_numbers};
    use automerge::Automerge;
    let before = &scene.documents[0];
    let doc = Automerge::load(before).expect("scene document");
    let changes = doc.get_changes(&[]);
    let actor = changes.first().expect("a change").actor_id().clone();
    let (seq, start_op) = next_numbers(&doc, &actor);
    let shape = scene.base.last().expect("a message");
    let bomb = message_with(
        shape,
        vec![change_bomb(
            &actor,
            seq,
            start_op,
            &doc.get_heads(),
            1_000_000_000,
        )],
    );
    let chain = message_with(
        shape,
        held_chain(
            before,
            &actor,
            alliance_core::budgets::HELD_CHANGES_PER_CONVERSATION + 1,
            7,
        ),
    );
    vec![
        sync_input(scene.plan, scene.base.iter().chain([&bomb])),
        sync_input(scene.plan, scene.base.iter().chain([&chain])),
    ]
}

/// Valid protocol frames of every message type, some carrying the scene's sync messages.
pub fn frames(scene: &SyncScene) -> Vec<Vec<u8>> {
    let document_id = DocumentId::from_uuid(scene.plan.as_uuid());
    let peer = |name: &str| PeerId::new(name);
    let mut messages = vec![
        Message::Join {
            sender_id: peer("device"),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some("storage".into()),
                is_ephemeral: false,
                enrolled_documents: vec![document_id],
                heads_digest: true,
                refused_notices: true,
            }),
            supported_protocol_versions: Some(vec!["1".into()]),
        },
        Message::Peer {
            sender_id: peer("relay"),
            target_id: peer("device"),
            peer_metadata: None,
            selected_protocol_version: "1".into(),
        },
        Message::Leave {
            sender_id: peer("device"),
        },
        Message::DocUnavailable {
            sender_id: peer("relay"),
            target_id: peer("device"),
            document_id,
        },
        Message::Ephemeral {
            sender_id: peer("device"),
            target_id: peer("relay"),
            count: 3,
            session_id: "session".into(),
            document_id,
            data: vec![0xA0],
        },
        Message::Error {
            sender_id: None,
            target_id: Some(peer("device")),
            message: "refused".into(),
        },
        Message::HeadsDigests {
            sender_id: peer("device"),
            target_id: peer("relay"),
            digests: HeadsDigests::new(&[(document_id, [5; 8])]),
        },
        Message::HeadsDiffer {
            sender_id: peer("relay"),
            target_id: peer("device"),
            documents: vec![document_id],
        },
        Message::Refused {
            sender_id: peer("relay"),
            target_id: peer("device"),
            document_id,
            refused: vec![ChangeRefusal {
                change_hash: "ab".repeat(32),
                rule: "only a counselor writes a goal's status".into(),
            }],
        },
    ];
    for (index, data) in scene.base.iter().chain(&scene.client).enumerate() {
        let message = DocumentMessage {
            sender_id: peer("device"),
            target_id: peer("relay"),
            document_id,
            data: data.clone(),
        };
        messages.push(if index == 0 {
            Message::Request(message)
        } else {
            Message::Sync(message)
        });
    }
    messages.iter().map(Message::encode).collect()
}

/// Joins sync messages into one input: each is a 4-byte little-endian length, then its bytes.
pub fn join_messages<'a>(messages: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.extend_from_slice(&(message.len() as u32).to_le_bytes());
        out.extend_from_slice(message);
    }
    out
}

/// Splits an input made by [`join_messages`] (or mutated from one): a length larger than what
/// is left takes the rest.
pub fn split_messages(mut input: &[u8]) -> Vec<&[u8]> {
    let mut messages = Vec::new();
    while input.len() >= 4 {
        let len = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
        let rest = &input[4..];
        let len = len.min(rest.len());
        messages.push(&rest[..len]);
        input = &rest[len..];
    }
    messages
}

/// What a store holds, as far as its API shows: the plan catalog, every plan's history and the
/// sizes of its rows in SQLite, and the refusal records.
#[derive(Debug, PartialEq)]
pub struct StoreState {
    plans: Vec<PlanSummary>,
    documents: Vec<(PlanId, Vec<HistoryEntry>, Option<DocumentSizes>)>,
    refusals: Vec<(PlanId, RefusedChange)>,
}

pub fn store_state(store: &Alliance) -> StoreState {
    let plans = store.list_plans().expect("list plans");
    let documents = store
        .plan_ids()
        .expect("plan ids")
        .into_iter()
        .map(|plan| {
            (
                plan,
                store.history(plan).expect("history"),
                store.document_sizes(plan).ok(),
            )
        })
        .collect();
    StoreState {
        plans,
        documents,
        refusals: store.refused_changes(None).expect("refusals"),
    }
}

/// Feeds `messages` to `store` one by one as sync messages about `plan` from [`SENDER`].
/// A message refused with an error leaves the store as it was; after each accepted one the
/// store's file stays sound and every plan in it stays readable. Panics otherwise.
pub fn receive_all(store: &Alliance, plan: PlanId, messages: &[&[u8]]) {
    for message in messages {
        let before = store_state(store);
        match store.receive_sync_message(plan, SENDER, message) {
            Ok(_) => {
                assert_eq!(
                    store.integrity_check().expect("integrity"),
                    Vec::<String>::new()
                );
                for id in store.plan_ids().expect("plan ids") {
                    store.plan(id).expect("a stored plan reads");
                }
            }
            Err(_) => assert_eq!(store_state(store), before, "an error changed the store"),
        }
    }
}

/// One input of the sync-message target: the plan's 16-byte id, then messages joined by
/// [`join_messages`]. The scene's whole conversation makes the seed.
pub fn sync_input<'a>(plan: PlanId, messages: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut input = plan.as_uuid().as_bytes().to_vec();
    input.extend(join_messages(messages));
    input
}

/// The sync-message target: a fresh store receives every message of `input` (see
/// [`sync_input`]) with the checks of [`receive_all`].
pub fn receive_input(input: &[u8]) {
    let Some((id, messages)) = input.split_first_chunk::<16>() else {
        return;
    };
    let plan = PlanId::from(DocumentId::from_bytes(*id).as_uuid());
    let store = Alliance::open_in_memory().expect("in-memory store");
    receive_all(&store, plan, &split_messages(messages));
}

/// The frame target: decodes a frame; a decoded message encodes to a frame that decodes to
/// the same message.
pub fn decode_frame(bytes: &[u8]) {
    if let Ok(message) = Message::decode(bytes) {
        let again = Message::decode(&message.encode()).expect("a re-encoded frame decodes");
        assert_eq!(
            again, message,
            "a frame changed in a decode-encode round trip"
        );
    }
}

/// Loads bytes as a plan document and reads everything from it; errors are fine.
pub fn load_plan_document(bytes: &[u8]) {
    // A fixed actor: a loaded document is only read, never written.
    if let Ok(doc) = PlanDoc::load(bytes, automerge::ActorId::from([7u8; 16])) {
        let _ = doc.read();
        let _ = doc.summary();
        let _ = doc.history();
        let _ = doc.device_ids();
        let _ = doc.is_plan();
    }
}
