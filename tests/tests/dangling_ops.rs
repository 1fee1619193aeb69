//! Changes whose operations name what the plan does not hold — a character, an object or a
//! predecessor that never existed — signed by an enrolled device (a tampered build holds its
//! key). Each is refused as a rule, by a device and by a relay's store, without a panic, and
//! the plan stays as it was.

use alliance_core::authorship::carrier;
use alliance_core::{Alliance, PlanId};
use alliance_tests::{client, counselor, exchange, hostile, plan_with_client, Device};
use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
use automerge::transaction::Transactable;
use automerge::{Automerge, Change, ExpandedChange, ObjId, ReadDoc, ScalarValue, ROOT};

/// A raw copy of `plan` as the counselor's tampered build holds it, writing as her device.
fn raw_copy(dana: &Device, plan: PlanId) -> Automerge {
    let mut doc = Automerge::load(&dana.store.saved_document(plan).unwrap()).unwrap();
    doc.set_actor(dana.me.device_id.actor());
    doc
}

fn title(doc: &Automerge) -> ObjId {
    doc.get(ROOT, "title").unwrap().unwrap().1
}

/// An honest title edit by the counselor (inserts "X" after the first character), decoded.
fn honest_title_edit(doc: &mut Automerge) -> ExpandedChange {
    let title = title(doc);
    let mut tx = doc.transaction();
    tx.splice_text(&title, 1, 0, "X").unwrap();
    let hash = tx.commit().0.unwrap();
    doc.get_change_by_hash(&hash).unwrap().decode()
}

/// Sends `change`, signed by the counselor's device, to `victim` in one sync message, and
/// returns what the victim said.
fn send(
    dana: &Device,
    victim: &Alliance,
    plan: PlanId,
    change: &Change,
) -> alliance_core::Result<alliance_core::SyncReceipt> {
    let shape = victim
        .generate_sync_message(plan, "tamperer")
        .unwrap()
        .unwrap();
    let message = hostile::message_with(&shape, vec![change.raw_bytes().to_vec()]);
    let signature = dana.store.sign_for_tests(&change.hash()).unwrap();
    let signed = carrier::wrap(message, &[(change.hash(), signature)]);
    victim.receive_sync_message(plan, "tamperer", &signed)
}

/// Sends `change` to `victim` (which holds `plan` as `before`, or not at all) and says what
/// went wrong: None when it was refused as a rule, nothing else was touched, and the store
/// still saves the plan and takes an honest edit afterwards.
fn outcome(dana: &Device, victim: &Alliance, plan: PlanId, change: &Change) -> Option<String> {
    let before = victim.plan(plan).ok();
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        send(dana, victim, plan, change)
    }));
    let receipt = match sent {
        Ok(Ok(receipt)) => receipt,
        Ok(Err(error)) => return Some(format!("answered with an error: {error}")),
        Err(_) => return Some("panicked on it".into()),
    };
    if receipt.refused.len() != 1 {
        return Some(format!("did not refuse it: {:?}", receipt.refused));
    }
    if victim.plan(plan).ok() != before {
        return Some("its plan changed".into());
    }
    None
}

/// The counselor, the client, their plan (on a relay's store too) and the counselor's honest
/// title edit with `edit` applied (its hash changes with it).
fn scene(edit: impl FnOnce(&mut ExpandedChange)) -> (Device, Device, PlanId, Alliance, Change) {
    let dana = counselor();
    let sam = client();
    let plan = plan_with_client(&dana, &sam);
    let relay = Alliance::open_in_memory().unwrap();
    exchange(&dana.store, &relay, plan);
    let mut raw = raw_copy(&dana, plan);
    let mut expanded = honest_title_edit(&mut raw);
    expanded.hash = None;
    edit(&mut expanded);
    (dana, sam, plan, relay, Change::from(expanded))
}

fn run(name: &str, edit: fn(&mut ExpandedChange)) {
    let (dana, sam, plan, relay, change) = scene(edit);
    let mut faults = Vec::new();
    for (who, victim) in [("the client's phone", &sam.store), ("the relay", &relay)] {
        if let Some(fault) = outcome(&dana, victim, plan, &change) {
            faults.push(format!("{who} {fault}"));
            continue;
        }
        // The store is sound afterwards: an honest edit still arrives and the plan saves.
        dana.store.set_title(plan, "Plan B").unwrap();
        let after = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exchange(&dana.store, victim, plan);
            victim.saved_document(plan).unwrap();
            victim.plan(plan).unwrap().title
        }));
        match after {
            Ok(title) if title == "Plan B" => {}
            Ok(title) => faults.push(format!("{who} lost an honest edit: title {title:?}")),
            Err(_) => faults.push(format!("{who} panicked on a later honest sync")),
        }
    }
    assert!(faults.is_empty(), "{name}: {faults:#?}");
}

/// The title edit turned into `action` over a character that never existed.
fn over_missing(c: &mut ExpandedChange, action: OpType) {
    let missing = OpId(9_999, c.actor_id.clone());
    let op = &mut c.operations[0];
    op.insert = false;
    op.action = action;
    op.key = Key::Seq(ElementId::Id(missing.clone()));
    op.pred = vec![missing].into();
}

fn delete_missing(c: &mut ExpandedChange) {
    over_missing(c, OpType::Delete);
}

fn put_over_missing(c: &mut ExpandedChange) {
    over_missing(c, OpType::Put(ScalarValue::Str("Y".into())));
}

fn missing_predecessor(c: &mut ExpandedChange) {
    c.operations[0].pred = vec![OpId(9_999, c.actor_id.clone())].into();
}

fn other_actor() -> automerge::ActorId {
    automerge::ActorId::from(vec![7u8; 16])
}

#[test]
fn a_character_inserted_after_one_that_never_existed_is_refused() {
    run("insert after a missing character", |c| {
        let actor = c.actor_id.clone();
        c.operations[0].key = Key::Seq(ElementId::Id(OpId(9_999, actor)));
    });
}

#[test]
fn a_character_inserted_after_one_of_an_unknown_actor_is_refused() {
    run("insert after a character of an unknown actor", |c| {
        c.operations[0].key = Key::Seq(ElementId::Id(OpId(2, other_actor())));
    });
}

#[test]
fn a_character_deleted_that_never_existed_is_refused() {
    run("delete a missing character", delete_missing);
}

#[test]
fn a_character_overwritten_that_never_existed_is_refused() {
    run("put over a missing character", put_over_missing);
}

#[test]
fn a_character_inserted_with_a_missing_predecessor_is_refused() {
    run("insert with a missing predecessor", missing_predecessor);
}

#[test]
fn a_title_put_with_a_missing_predecessor_is_refused() {
    run("map put with a missing predecessor", |c| {
        let actor = c.actor_id.clone();
        let op = &mut c.operations[0];
        op.insert = false;
        op.obj = ObjectId::Root;
        op.key = Key::Map("title".into());
        op.action = OpType::Put(ScalarValue::Str("Y".into()));
        op.pred = vec![OpId(9_999, actor)].into();
    });
}

/// A new plan's creation change with `edit` applied, sent to the client's phone and to a
/// relay's store, neither of which holds the plan: both refuse it without a panic.
fn run_creation(name: &str, edit: fn(&mut ExpandedChange)) {
    let dana = counselor();
    let sam = client();
    let _known = plan_with_client(&dana, &sam);
    let plan = dana
        .store
        .create_plan(&alliance_core::NewPlan {
            title: "Second".into(),
            client_name: "Sam".into(),
            client_member: Some(sam.me.member_id),
            client_device: Some(sam.me.device_id),
        })
        .unwrap();
    let raw = raw_copy(&dana, plan);
    let mut expanded = raw.get_changes(&[])[0].decode();
    expanded.hash = None;
    edit(&mut expanded);
    let change = Change::from(expanded);
    let relay = Alliance::open_in_memory().unwrap();
    let mut faults = Vec::new();
    for (who, victim) in [("the client's phone", &sam.store), ("the relay", &relay)] {
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            send(&dana, victim, plan, &change)
        }));
        match sent {
            Ok(Ok(receipt)) if receipt.refused.len() == 1 => {}
            Ok(Ok(receipt)) => faults.push(format!("{who} did not refuse it: {receipt:?}")),
            Ok(Err(error)) => faults.push(format!("{who} answered with an error: {error}")),
            Err(_) => faults.push(format!("{who} panicked on it")),
        }
        if victim.plan(plan).is_ok() {
            faults.push(format!("{who} stored the plan"));
        }
    }
    assert!(faults.is_empty(), "{name}: {faults:#?}");
}

#[test]
fn a_creation_writing_into_an_object_that_never_existed_is_refused() {
    run_creation("creation writes into a missing object", |c| {
        let actor = c.actor_id.clone();
        let mut op = c.operations[0].clone();
        op.obj = ObjectId::Id(OpId(9_999, actor));
        op.key = Key::Map("x".into());
        op.insert = false;
        op.action = OpType::Put(ScalarValue::Str("x".into()));
        op.pred = Vec::new().into();
        c.operations.push(op);
    });
}

#[test]
fn a_creation_writing_a_title_after_a_missing_character_is_refused() {
    run_creation("creation inserts after a missing character", |c| {
        let actor = c.actor_id.clone();
        let at = c
            .operations
            .iter()
            .position(|op| matches!(op.key, Key::Seq(ElementId::Id(_))))
            .expect("the title's characters");
        c.operations[at].key = Key::Seq(ElementId::Id(OpId(9_999, actor)));
    });
}

/// Whatever a tampered change does inside Automerge, the store survives it: one crafted
/// message must not leave the store's write transaction open, or every later write of every
/// plan fails ("a transaction is already open") and another process on the same file waits
/// on its lock — on a relay, every device's sync.
#[test]
fn the_store_takes_writes_after_a_message_that_failed_inside_automerge() {
    let (dana, sam, plan, relay, change) =
        scene(|c| c.operations[0].key = Key::Seq(ElementId::Id(OpId(9_999, c.actor_id.clone()))));
    let mut faults = Vec::new();
    for (who, victim) in [("the client's phone", &sam.store), ("the relay", &relay)] {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            send(&dana, victim, plan, &change)
        }));
        // Another plan, untouched by the crafted change, is written afterwards.
        let other = dana
            .store
            .create_plan(&alliance_core::NewPlan {
                title: format!("Another plan for {who}"),
                client_name: "Sam".into(),
                client_member: Some(sam.me.member_id),
                client_device: Some(sam.me.device_id),
            })
            .unwrap();
        let synced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for _ in 0..50 {
                let Some(m) = dana.store.generate_sync_message(other, who).unwrap() else {
                    break;
                };
                victim.receive_sync_message(other, "dana", &m)?;
                if let Some(m) = victim.generate_sync_message(other, "dana")? {
                    dana.store.receive_sync_message(other, who, &m).unwrap();
                }
            }
            victim.plan(other)
        }));
        match synced {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => faults.push(format!("{who} cannot store another plan: {error}")),
            Err(_) => faults.push(format!("{who} panicked storing another plan")),
        }
    }
    assert!(faults.is_empty(), "{faults:#?}");
}

/// One way to tamper with a decoded change.
type Edit = fn(&mut ExpandedChange);

/// A whole-document chunk (what automerge-repo's V2 sync messages carry) holding a change that
/// names what the plan lacks: read against a copy of the plan before any rule runs, it must
/// fail or be refused, never panic.
#[test]
fn a_document_chunk_holding_a_dangling_change_is_refused() {
    let cases: [(&str, Edit); 3] = [
        ("delete a missing character", delete_missing),
        ("insert with a missing predecessor", missing_predecessor),
        ("put over a missing character", put_over_missing),
    ];
    let mut faults = Vec::new();
    for (name, edit) in cases {
        let dana = counselor();
        let sam = client();
        let plan = plan_with_client(&dana, &sam);
        let mut raw = raw_copy(&dana, plan);
        let base = raw.clone();
        let mut expanded = honest_title_edit(&mut raw);
        expanded.hash = None;
        edit(&mut expanded);
        let change = Change::from(expanded);
        let mut bad = base;
        let saved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bad.apply_changes([change.clone()]).ok()?;
            Some(bad.save())
        }));
        let Ok(Some(document)) = saved else {
            eprintln!("{name}: no document could be saved");
            continue;
        };
        let shape = sam
            .store
            .generate_sync_message(plan, "tamperer")
            .unwrap()
            .unwrap();
        let message = hostile::message_with(&shape, vec![document]);
        let signature = dana.store.sign_for_tests(&change.hash()).unwrap();
        let signed = carrier::wrap(message, &[(change.hash(), signature)]);
        let before = sam.store.plan(plan).unwrap();
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sam.store.receive_sync_message(plan, "tamperer", &signed)
        }));
        match sent {
            Ok(_) if sam.store.plan(plan).unwrap() == before => {}
            Ok(outcome) => faults.push(format!("{name}: plan changed ({outcome:?})")),
            Err(_) => faults.push(format!("{name}: the client's phone panicked")),
        }
    }
    assert!(faults.is_empty(), "{faults:#?}");
}

/// The check finds characters however they were written: a character put over (a valid
/// operation, though the apps splice) is still the element later edits insert after.
#[test]
fn an_insert_after_a_character_put_over_is_accepted() {
    let dana = counselor();
    let sam = client();
    let plan = plan_with_client(&dana, &sam);
    let mut raw = raw_copy(&dana, plan);
    let title = title(&raw);
    let mut tx = raw.transaction();
    tx.put(&title, 0, "Z").unwrap();
    let put_over = tx.commit().0.unwrap();
    let mut tx = raw.transaction();
    tx.splice_text(&title, 1, 0, "Q").unwrap();
    let inserted = tx.commit().0.unwrap();
    for hash in [put_over, inserted] {
        let change = raw.get_change_by_hash(&hash).unwrap();
        let receipt = send(&dana, &sam.store, plan, &change).unwrap();
        assert!(receipt.refused.is_empty(), "refused: {:?}", receipt.refused);
    }
    assert_eq!(
        sam.store.plan(plan).unwrap().title,
        raw.text(&title).unwrap()
    );
}

/// Automerge numbers operations with 32 bits: a change naming a larger counter is refused
/// (with a typed error, the message being malformed), never a panic in parsing it.
#[test]
fn a_change_naming_an_operation_counter_past_32_bits_is_refused_without_a_panic() {
    let (dana, sam, plan, relay, change) = scene(|c| {
        let past = u64::from(u32::MAX) + 1;
        c.operations[0].key = Key::Seq(ElementId::Id(OpId(past, c.actor_id.clone())));
    });
    let mut faults = Vec::new();
    for (who, victim) in [("the client's phone", &sam.store), ("the relay", &relay)] {
        let before = victim.plan(plan).unwrap();
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            send(&dana, victim, plan, &change)
        }));
        match sent {
            Ok(Ok(receipt)) if receipt.refused.len() == 1 => {}
            Ok(Err(alliance_core::Error::SyncMessage(_))) => {}
            Ok(other) => faults.push(format!("{who}: {other:?}")),
            Err(_) => faults.push(format!("{who} panicked on it")),
        }
        if victim.plan(plan).unwrap() != before {
            faults.push(format!("{who}'s plan changed"));
        }
    }
    assert!(faults.is_empty(), "{faults:#?}");
}
