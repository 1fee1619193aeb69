//! Whether what a peer's change names exists: every object, list or text element and
//! replaced value an operation refers to must be in the plan as its author saw it, or made
//! earlier in the same change. Automerge trusts these references and panics, or stores a
//! document it cannot save, on one that does not exist.

use super::*;

pub(super) const DANGLING: &str = "names an object, character or value the plan does not hold";

pub(super) fn exid_key(id: &automerge::ObjId) -> Option<String> {
    match id {
        automerge::ObjId::Id(counter, actor, _) => Some(format!("{counter}@{actor}")),
        automerge::ObjId::Root => None,
    }
}

/// Every character and predecessor an operation names exists where it names it: made earlier
/// in the same change (`earlier`: the change's operations before this one, numbered from
/// `start`), or present in the author's view `work`. Automerge trusts both and panics, or
/// stores a document it cannot save, on one that does not exist.
pub(super) fn judge_references(
    work: &View<'_>,
    (actor, start, earlier): (&ActorId, u64, &[Op]),
    place: &Place,
    op: &Op,
    found: &mut Found,
) -> Rule {
    let made_here = |id: &OpId| -> Option<&Op> {
        let at = id.0.checked_sub(start)?;
        (&id.1 == actor).then(|| earlier.get(usize::try_from(at).ok()?))?
    };
    // An operation this one replaces: written at the same key, earlier in this change or
    // already in the plan.
    let same_key = |p: &OpId, found: &mut Found| {
        let at_key = |o: &Op| o.obj == op.obj && !o.insert && o.key == op.key;
        made_here(p).is_some_and(at_key) || found.stored(work, p).is_some_and(|o| at_key(&o))
    };
    let existing = place.exid.as_ref().filter(|_| !place.created_here);
    let visible: Vec<String> = match &op.key {
        Key::Map(key) => match existing {
            Some(exid) => visible_at(work, exid, key.as_str()),
            None => Vec::new(),
        },
        Key::Seq(ElementId::Head) if op.insert => Vec::new(),
        Key::Seq(ElementId::Head) => return refuse(DANGLING),
        Key::Seq(ElementId::Id(element)) => {
            let is_element = |o: &Op| o.insert && o.obj == op.obj;
            if made_here(element).is_some_and(is_element) {
                Vec::new()
            } else {
                let Some(exid) = existing else {
                    return refuse(DANGLING);
                };
                // In a view read past its heads (see `View::at`), an insertion after the
                // character, or a deletion naming only the character itself, needs no more
                // than that the character is one of this text's: inserted into it by a change
                // applied together, or by one stored before (the caller made sure no change past
                // the view made it). Finding its place in the view would scan the text.
                let only_itself = op.pred.iter().all(|p| p == element);
                if work.is_past() && (op.insert || only_itself) {
                    let known = match work.batch_op(element) {
                        Some((obj, insert)) => *insert && obj == &op.obj,
                        None => found.stored(work, element).is_some_and(|o| is_element(&o)),
                    };
                    if !known {
                        return refuse(DANGLING);
                    }
                    Vec::new()
                } else {
                    match element_index(work, exid, element) {
                        Some(index) if !op.insert => visible_at(work, exid, index),
                        Some(_) => Vec::new(),
                        // Not among the visible characters (one put over): looked up among the
                        // plan's operations.
                        None if found.stored(work, element).is_some_and(|o| is_element(&o)) => {
                            Vec::new()
                        }
                        None => return refuse(DANGLING),
                    }
                }
            }
        }
    };
    if op.insert && !op.pred.is_empty() {
        return refuse(DANGLING);
    }
    let element = op.key.to_opid();
    for p in op.pred.iter() {
        let known =
            Some(p) == element.as_ref() || visible.contains(&obj_key(p)) || same_key(p, found);
        if !known {
            return refuse(DANGLING);
        }
    }
    Ok(())
}

/// The ids of the operations visible at `prop` of `exid` in `work`.
fn visible_at(work: &View<'_>, exid: &automerge::ObjId, prop: impl Into<Prop>) -> Vec<String> {
    work.get_all(exid, prop)
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, id)| exid_key(id))
        .collect()
}

/// Where the plan's changes number their operations, when one of a change's references had to
/// be looked up (read once per change, from the change graph: metadata only).
#[derive(Default)]
pub(super) struct Found {
    /// Each change's author, first and last operation number, and hash.
    changes: Option<Vec<(ActorId, u64, u64, ChangeHash)>>,
}

impl Found {
    /// The operation `id` of the plan `work`, decoded (only the change holding it is).
    fn stored(&mut self, work: &View<'_>, id: &OpId) -> Option<Op> {
        let changes = self.changes.get_or_insert_with(|| {
            work.document()
                .get_changes_meta(&[])
                .into_iter()
                .map(|m| (m.actor.into_owned(), m.start_op, m.max_op, m.hash))
                .collect()
        });
        let (_, first, _, hash) = changes
            .iter()
            .find(|(actor, first, last, _)| actor == &id.1 && *first <= id.0 && id.0 <= *last)?;
        let at = usize::try_from(id.0 - first).ok()?;
        work.document()
            .get_change_by_hash(hash)?
            .decode()
            .operations
            .get(at)
            .cloned()
    }
}

/// A plan's creation has no dependencies: every object, character and predecessor it names
/// is one it makes itself, earlier in the change. Checked before the change is applied to
/// anything, as Automerge panics on a reference to what its document lacks.
pub(super) fn judge_creation_references(change: &Change) -> Rule {
    let expanded = change.decode();
    let actor = change.actor_id();
    let start = change.start_op().get();
    let ops = &expanded.operations;
    // The operation of this change numbered `id`, when it comes before operation `index`.
    let earlier = |id: &OpId, index: usize| {
        let at = id.0.checked_sub(start)?;
        (&id.1 == actor && at < index as u64).then(|| &ops[at as usize])
    };
    for (index, op) in ops.iter().enumerate() {
        let object = match &op.obj {
            ObjectId::Root => true,
            ObjectId::Id(id) => {
                earlier(id, index).is_some_and(|o| matches!(o.action, OpType::Make(_)))
            }
        };
        let element = match &op.key {
            Key::Seq(ElementId::Id(id)) => {
                earlier(id, index).is_some_and(|o| o.insert && o.obj == op.obj)
            }
            _ => true,
        };
        let replaced = op.pred.iter().all(|p| {
            earlier(p, index).is_some_and(|o| o.obj == op.obj && !o.insert && o.key == op.key)
        });
        if !(object && element && replaced) {
            return refuse(DANGLING);
        }
    }
    Ok(())
}

/// An object id as `import_obj` reads it.
pub(super) fn obj_key(op_id: &automerge::legacy::OpId) -> String {
    format!("{}@{}", op_id.0, op_id.1.to_hex_string())
}
