//! Moving a device's own changes onto another base: how a device whose history forked (a
//! restored backup, a copied store) or whose change a peer refused keeps every other edit.
//!
//! Automerge identifies an operation by (counter, actor) and a change by (actor, seq). When
//! one actor has two different changes with the same seq — the store was restored from a
//! backup older than what it had already synced, then used — no replica can hold both. The
//! device then sets its side of the fork aside and replays it: each change is rewritten with
//! the next free seq and counters, depending on the current heads, so its operations keep
//! their meaning (the same objects, keys, text positions and overwritten values) and merge
//! like any concurrent edit. See `docs/design.md`, "Nothing lost".

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;

use automerge::legacy::{ElementId, Key, ObjectId, OpId, SortedVec};
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};

use crate::error::{Error, Result};

/// `doc`'s changes split at `drop`: the document without `drop` and everything built on it,
/// and what was left out, in causal order.
pub fn without(doc: &Automerge, drop: &HashSet<ChangeHash>) -> Result<(Automerge, Vec<Change>)> {
    let mut removed: HashSet<ChangeHash> = HashSet::new();
    let mut kept = Vec::new();
    let mut left_out = Vec::new();
    // `get_changes` lists changes in an order where dependencies come first.
    for change in doc.get_changes(&[]) {
        let hash = change.hash();
        if drop.contains(&hash) || change.deps().iter().any(|d| removed.contains(d)) {
            removed.insert(hash);
            left_out.push(change);
        } else {
            kept.push(change);
        }
    }
    let mut base = Automerge::new().with_actor(doc.get_actor().clone());
    base.apply_changes(kept)?;
    Ok((base, left_out))
}

/// The highest seq `actor` has in `doc` (0 when it has none).
pub fn last_seq(doc: &Automerge, actor: &ActorId) -> u64 {
    // From the change graph's metadata: building every change would cost a save.
    doc.get_changes_meta(&[])
        .iter()
        .filter(|meta| meta.actor.as_ref() == actor)
        .map(|meta| meta.seq)
        .max()
        .unwrap_or(0)
}

/// What [`replay`] did with each change it was given.
#[derive(Debug, Default)]
pub struct Replayed {
    /// (original hash, hash of its replayed copy).
    pub replayed: Vec<(ChangeHash, ChangeHash)>,
    /// Changes that could not be replayed (they build on something no longer here).
    pub failed: Vec<ChangeHash>,
}

/// Applies `changes` (one actor's, in causal order) to `doc` again as new changes of that same
/// actor: the next free seq, fresh counters above every operation in `doc`, and the current
/// heads as dependencies. References between the replayed operations follow them to their new
/// ids; references to anything else stay as they were.
pub fn replay(doc: &mut Automerge, changes: &[Change]) -> Result<Replayed> {
    let Some(first) = changes.first() else {
        return Ok(Replayed::default());
    };
    let actor = first.actor_id().clone();
    replay_as(doc, changes, &actor)
}

/// [`replay`] of one actor's `changes` as new changes of `into` (another actor, or the same):
/// how a device that left a copied identity moves its own edits to its new one
/// (`docs/design.md`, "A copied identity").
pub fn replay_as(doc: &mut Automerge, changes: &[Change], into: &ActorId) -> Result<Replayed> {
    let mut out = Replayed::default();
    let Some(first) = changes.first() else {
        return Ok(out);
    };
    let actor = first.actor_id().clone();
    if changes.iter().any(|c| c.actor_id() != &actor) {
        return Err(Error::Malformed(
            "replayed changes of several actors".into(),
        ));
    }
    let mut seq = last_seq(doc, into);
    let mut max_op = doc
        .get_changes(&[])
        .iter()
        .map(Change::max_op)
        .max()
        .unwrap_or(0);
    let mut held = Operations::of(doc);
    // Old counter of a replayed operation → its new counter.
    let mut moved: HashMap<u64, u64> = HashMap::new();
    for change in changes {
        let mut expanded = change.decode();
        let old_start = change.start_op().get();
        let new_start = max_op + 1;
        let mut attempt = moved.clone();
        for index in 0..expanded.operations.len() as u64 {
            attempt.insert(old_start + index, new_start + index);
        }
        // Automerge panics on a change that refers to an operation the document lacks (an
        // object, a text character or an overwritten value one of the left-out changes
        // made): such a change cannot be replayed. An operation is there when this change or
        // an earlier replayed one makes it, or `doc` holds it.
        let there = |id: &OpId| (id.1 == actor && attempt.contains_key(&id.0)) || held.holds(id);
        if !refers_only_to(&expanded, there) {
            out.failed.push(change.hash());
            continue;
        }
        let follow = |id: &OpId| -> OpId {
            match attempt.get(&id.0) {
                Some(new) if id.1 == actor => OpId(*new, into.clone()),
                _ => id.clone(),
            }
        };
        for op in &mut expanded.operations {
            if let ObjectId::Id(id) = &op.obj {
                op.obj = ObjectId::Id(follow(id));
            }
            if let Key::Seq(ElementId::Id(id)) = &op.key {
                op.key = Key::Seq(ElementId::Id(follow(id)));
            }
            let pred: Vec<OpId> = op.pred.iter().map(follow).collect();
            op.pred = SortedVec::from(pred);
        }
        expanded.actor_id = into.clone();
        expanded.seq = seq + 1;
        expanded.start_op = NonZeroU64::new(new_start).unwrap_or(NonZeroU64::MIN);
        expanded.deps = doc.get_heads();
        expanded.hash = None;
        let ops = expanded.operations.len() as u64;
        let rewritten = Change::from(expanded);
        let hash = rewritten.hash();
        let mut scratch = doc.fork();
        match scratch.apply_changes([rewritten]) {
            Ok(()) if scratch.get_change_by_hash(&hash).is_some() => {
                *doc = scratch.with_actor(doc.get_actor().clone());
                held.add(into, new_start, ops);
                seq += 1;
                max_op = new_start + ops.max(1) - 1;
                moved = attempt;
                out.replayed.push((change.hash(), hash));
            }
            _ => out.failed.push(change.hash()),
        }
    }
    Ok(out)
}

/// The operations a document holds, as counter ranges per actor (one per change).
struct Operations(HashMap<ActorId, Vec<(u64, u64)>>);

impl Operations {
    fn of(doc: &Automerge) -> Self {
        let mut held = Operations(HashMap::new());
        for change in doc.get_changes(&[]) {
            held.add(
                change.actor_id(),
                change.start_op().get(),
                change.len() as u64,
            );
        }
        held
    }

    /// Adds the `count` operations of `actor` from counter `start` on.
    fn add(&mut self, actor: &ActorId, start: u64, count: u64) {
        self.0
            .entry(actor.clone())
            .or_default()
            .push((start, start + count));
    }

    fn holds(&self, id: &OpId) -> bool {
        self.0.get(&id.1).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|(start, end)| (*start..*end).contains(&id.0))
        })
    }
}

/// Whether every operation `change` refers to (the object it writes in, the list element it
/// writes after, the values it overwrites) is one `there` accepts.
fn refers_only_to(change: &automerge::ExpandedChange, there: impl Fn(&OpId) -> bool) -> bool {
    change.operations.iter().all(|op| {
        let object = match &op.obj {
            ObjectId::Root => true,
            ObjectId::Id(id) => there(id),
        };
        let element = match &op.key {
            Key::Seq(ElementId::Id(id)) => there(id),
            _ => true,
        };
        object && element && op.pred.iter().all(&there)
    })
}

/// An original change set aside while loading, and the hash of its replayed copy (None when
/// it could not be replayed).
pub type ReplayedOriginal = (Change, Option<ChangeHash>);

/// Loads a stored document (`snapshot`, then its stored `chunks` in order) that Automerge will
/// not load whole because two of its changes share an actor and seq — what two writers that
/// each built on a stale copy left in a store before every write took the write lock. Every
/// change that fits is kept; the other of each pair is replayed as a new change of its actor
/// (see [`replay`]). Returns the document and, for each replayed original, the hash of its
/// replayed copy (None when it could not be replayed).
pub fn load_forked(
    snapshot: &[u8],
    chunks: &[Vec<u8>],
) -> Result<(Automerge, Vec<ReplayedOriginal>)> {
    let mut doc = if snapshot.is_empty() {
        Automerge::new()
    } else {
        Automerge::load(snapshot)?
    };
    let mut conflicting: Vec<Change> = Vec::new();
    for chunk in chunks {
        for change in super::chunks::changes(chunk)? {
            if doc.get_change_by_hash(&change.hash()).is_some() {
                continue;
            }
            let mut scratch = doc.fork();
            match scratch.apply_changes([change.clone()]) {
                Ok(()) if scratch.get_change_by_hash(&change.hash()).is_some() => doc = scratch,
                _ => conflicting.push(change),
            }
        }
    }
    let mut out = Vec::new();
    let mut actors: Vec<ActorId> = conflicting.iter().map(|c| c.actor_id().clone()).collect();
    actors.dedup();
    for actor in actors {
        let theirs: Vec<Change> = conflicting
            .iter()
            .filter(|c| c.actor_id() == &actor)
            .cloned()
            .collect();
        let done = replay(&mut doc, &theirs)?;
        let replayed: HashMap<ChangeHash, ChangeHash> = done.replayed.into_iter().collect();
        out.extend(theirs.into_iter().map(|change| {
            let copy = replayed.get(&change.hash()).copied();
            (change, copy)
        }));
    }
    Ok((doc, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ReadDoc, ROOT};

    fn text_of(doc: &Automerge, key: &str) -> String {
        let (_, id) = doc.get(ROOT, key).unwrap().unwrap();
        doc.text(&id).unwrap()
    }

    #[test]
    fn a_forked_actor_replays_its_side_and_both_sides_survive() {
        let actor = ActorId::random();
        let mut base = Automerge::new().with_actor(actor.clone());
        let mut tx = base.transaction();
        let text = tx.put_object(ROOT, "words", ObjType::Text).unwrap();
        tx.splice_text(&text, 0, 0, "walk daily").unwrap();
        tx.commit();
        // Two copies of one store, each used: the same actor makes seq 2 twice.
        let mut restored = base.fork().with_actor(actor.clone());
        let mut original = base.fork().with_actor(actor.clone());
        let mut tx = original.transaction();
        tx.put(ROOT, "status", "active").unwrap();
        tx.commit();
        let mut tx = restored.transaction();
        tx.splice_text(&text, 4, 0, " the dog").unwrap();
        tx.put(ROOT, "note", "after restore").unwrap();
        tx.commit();
        let mut tx = restored.transaction();
        let list = tx.put_object(ROOT, "log", ObjType::List).unwrap();
        tx.insert(&list, 0, "one").unwrap();
        tx.commit();
        assert!(restored
            .clone()
            .apply_changes(original.get_changes(&[]))
            .is_err());

        let mine: HashSet<ChangeHash> = restored
            .get_changes(&[])
            .iter()
            .filter(|c| c.seq() >= 2)
            .map(Change::hash)
            .collect();
        let (mut rebuilt, left_out) = without(&restored, &mine).unwrap();
        assert_eq!(left_out.len(), 2);
        rebuilt.apply_changes(original.get_changes(&[])).unwrap();
        let done = replay(&mut rebuilt, &left_out).unwrap();
        assert!(done.failed.is_empty());
        assert_eq!(done.replayed.len(), 2);
        assert_eq!(text_of(&rebuilt, "words"), "walk the dog daily");
        assert_eq!(
            rebuilt.get(ROOT, "status").unwrap().unwrap().0.as_str(),
            Some("active")
        );
        assert_eq!(
            rebuilt.get(ROOT, "note").unwrap().unwrap().0.as_str(),
            Some("after restore")
        );
        let (_, log) = rebuilt.get(ROOT, "log").unwrap().unwrap();
        assert_eq!(rebuilt.length(&log), 1);
        assert_eq!(last_seq(&rebuilt, &actor), 4);
        // The original side accepts the replayed changes: the fork is healed.
        original
            .apply_changes(rebuilt.get_changes(&original.get_heads()))
            .unwrap();
        assert_eq!(original.get_heads(), rebuilt.get_heads());
    }

    /// A device that left a copied identity moves its edits to its new actor: the text it
    /// inserted (each character built on the one before) reads the same, under the new actor.
    #[test]
    fn changes_replayed_as_another_actor_keep_their_meaning() {
        let old = ActorId::random();
        let mut doc = Automerge::new().with_actor(old.clone());
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "words", ObjType::Text).unwrap();
        tx.commit();
        let base = doc.fork();
        let mut tx = doc.transaction();
        tx.splice_text(&text, 0, 0, "walk").unwrap();
        tx.commit();
        let mut tx = doc.transaction();
        tx.splice_text(&text, 4, 0, " daily").unwrap();
        tx.commit();
        let mine: Vec<Change> = doc.get_changes(&base.get_heads());
        let new = ActorId::random();
        let mut moved = base.fork().with_actor(new.clone());
        let done = replay_as(&mut moved, &mine, &new).unwrap();
        assert!(done.failed.is_empty(), "{done:?}");
        assert_eq!(done.replayed.len(), 2);
        assert_eq!(text_of(&moved, "words"), "walk daily");
        assert_eq!(last_seq(&moved, &new), 2);
        assert_eq!(last_seq(&moved, &old), 1);
    }

    #[test]
    fn a_replayed_overwrite_merges_as_a_concurrent_edit() {
        let actor = ActorId::random();
        let mut doc = Automerge::new().with_actor(actor.clone());
        let mut tx = doc.transaction();
        tx.put(ROOT, "status", "proposed").unwrap();
        tx.commit();
        let mut mine = doc.fork().with_actor(actor.clone());
        let mut tx = mine.transaction();
        tx.put(ROOT, "status", "active").unwrap();
        tx.commit();
        let drop: HashSet<ChangeHash> = [mine.get_heads()[0]].into();
        let (mut rebuilt, left_out) = without(&mine, &drop).unwrap();
        assert_eq!(rebuilt.get_heads(), doc.get_heads());
        replay(&mut rebuilt, &left_out).unwrap();
        assert_eq!(
            rebuilt.get(ROOT, "status").unwrap().unwrap().0.as_str(),
            Some("active")
        );
        assert_eq!(last_seq(&rebuilt, &actor), 2);
    }

    #[test]
    fn a_store_two_writers_forked_loads_with_both_sides() {
        let actor = ActorId::random();
        let mut doc = Automerge::new().with_actor(actor.clone());
        let mut tx = doc.transaction();
        tx.put(ROOT, "title", "Plan").unwrap();
        tx.commit();
        let snapshot = doc.save();
        let heads = doc.get_heads();
        // Two processes with the same stale copy each append a chunk.
        let mut first = doc.fork().with_actor(actor.clone());
        let mut tx = first.transaction();
        tx.put(ROOT, "checkin-a", "slept well").unwrap();
        tx.commit();
        let mut second = doc.fork().with_actor(actor.clone());
        let mut tx = second.transaction();
        tx.put(ROOT, "checkin-b", "walked").unwrap();
        tx.commit();
        let chunks = vec![first.save_after(&heads), second.save_after(&heads)];
        let mut joined = snapshot.clone();
        chunks.iter().for_each(|c| joined.extend_from_slice(c));
        assert!(Automerge::load(&joined).is_err());

        let (loaded, replayed) = load_forked(&snapshot, &chunks).unwrap();
        assert_eq!(replayed.len(), 1);
        assert!(replayed[0].1.is_some());
        for (key, value) in [("checkin-a", "slept well"), ("checkin-b", "walked")] {
            assert_eq!(
                loaded.get(ROOT, key).unwrap().unwrap().0.as_str(),
                Some(value)
            );
        }
        assert_eq!(last_seq(&loaded, &actor), 3);
        // What it saves loads whole.
        assert_eq!(
            Automerge::load(&loaded.save()).unwrap().get_heads(),
            loaded.get_heads()
        );
    }

    /// A later own change that writes into an object a left-out change made cannot be
    /// replayed: it is reported as failed (Automerge itself panics on applying it, which
    /// once crashed an in-person sync).
    #[test]
    fn a_change_into_an_object_left_out_fails_to_replay_and_nothing_panics() {
        let actor = ActorId::random();
        let mut doc = Automerge::new().with_actor(actor.clone());
        let mut tx = doc.transaction();
        tx.put(ROOT, "title", "Plan").unwrap();
        tx.commit();
        let mut tx = doc.transaction();
        let objective = tx.put_object(ROOT, "objective", ObjType::Map).unwrap();
        tx.commit();
        let made = doc.get_heads()[0];
        let mut tx = doc.transaction();
        tx.put(&objective, "text", "Lights out by 23:30").unwrap();
        tx.commit();
        let mut tx = doc.transaction();
        tx.put(ROOT, "review_on", "2026-04-01").unwrap();
        tx.commit();

        let (mut base, left_out) = without(&doc, &HashSet::from([made])).unwrap();
        assert_eq!(left_out.len(), 3, "the object's change and all built on it");
        let replayable: Vec<Change> = left_out[1..].to_vec();
        let done = replay(&mut base, &replayable).unwrap();
        assert_eq!(done.failed, vec![replayable[0].hash()]);
        assert_eq!(
            done.replayed.len(),
            1,
            "the unrelated later change is replayed"
        );
        assert_eq!(
            base.get(ROOT, "review_on")
                .unwrap()
                .map(|(v, _)| v.to_string()),
            Some("\"2026-04-01\"".to_string())
        );
        assert!(base.get(ROOT, "objective").unwrap().is_none());
    }

    /// The same for a change that types after characters, or overwrites a value, that a
    /// left-out change wrote.
    #[test]
    fn a_change_after_left_out_characters_or_values_fails_to_replay() {
        let actor = ActorId::random();
        let mut doc = Automerge::new().with_actor(actor.clone());
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "words", ObjType::Text).unwrap();
        tx.put(ROOT, "status", "proposed").unwrap();
        tx.commit();
        let mut tx = doc.transaction();
        tx.splice_text(&text, 0, 0, "walk").unwrap();
        tx.put(ROOT, "status", "active").unwrap();
        tx.commit();
        let made = doc.get_heads()[0];
        for (at, words, status) in [(4, " daily", None), (0, "", Some("done"))] {
            let mut tx = doc.transaction();
            tx.splice_text(&text, at, 0, words).unwrap();
            if let Some(status) = status {
                tx.put(ROOT, "status", status).unwrap();
            }
            tx.commit();
        }
        let (mut base, left_out) = without(&doc, &HashSet::from([made])).unwrap();
        let done = replay(&mut base, &left_out[1..]).unwrap();
        assert_eq!(done.failed.len(), 2, "{done:?}");
        assert!(done.replayed.is_empty());
        assert_eq!(text_of(&base, "words"), "");
    }
}
