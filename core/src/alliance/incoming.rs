//! The changes a sync message carries, read in two steps: outside the store lock each chunk
//! is measured from its header (`plan::expansion`) and, within the budgets, parsed; inside
//! the lock whole-document chunks are read against the plan's copy.

use std::collections::HashSet;

use automerge::sync;
use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::budgets::Budgets;
use crate::error::{Error, Result};
use crate::plan::expansion::{self, ChangeOutline, Outline};
use crate::plan::{chunks, rebase};

/// Where a storage chunk's checksum sits (after the magic bytes), and its length.
const CHECKSUM_AT: std::ops::Range<usize> = 4..8;

/// Most changes past the change budget one message may carry; each is refused and recorded,
/// past this the message is refused whole (no honest peer sends one).
const MAX_OVERSIZED_PER_MESSAGE: usize = 16;

/// A sync message's chunks, measured and parsed outside the store lock.
#[derive(Clone)]
pub(crate) struct Screened {
    /// Change and bundle chunks, parsed.
    changes: Vec<Change>,
    /// Changes that claim more operations than a change may hold: never decoded.
    oversized: Vec<ChangeOutline>,
    /// Whole-document chunks (within the document budget), read against the plan's copy.
    documents: Vec<Vec<u8>>,
}

/// Measures every chunk of `message` from its header and parses those within `budgets`.
/// A message whose chunks claim more operations together than a document may hold fails
/// ([`Error::Limit`]); a change past the change budget is kept aside (never decoded), to be
/// refused as a rule.
pub(crate) fn screen(message: &sync::Message, budgets: &Budgets) -> Result<Screened> {
    let mut screened = Screened {
        changes: Vec::new(),
        oversized: Vec::new(),
        documents: Vec::new(),
    };
    // Every chunk counts towards one message's total, so many changes each within the
    // change budget cannot add up to more than a document may hold.
    let mut total: u64 = 0;
    for blob in message.changes.iter() {
        for chunk in chunks::split(blob)? {
            let outline = expansion::outline(chunk, budgets.operations_per_document)?;
            total = total.saturating_add(match &outline {
                // Never decoded: refused as a rule on its header alone.
                Outline::Change(change) if change.operations > budgets.operations_per_change => 0,
                Outline::Change(change) => change.operations,
                Outline::Many { operations } => *operations,
            });
            if total > budgets.operations_per_document {
                return Err(Error::Limit(format!(
                    "a sync message claims more than {} operations",
                    budgets.operations_per_document
                )));
            }
            // Dispatch on the chunk type: `Bundle::try_from` does not check it, and now and
            // then reads a whole-document chunk (what V2 messages carry) as an empty bundle,
            // which silently lost every change in it.
            match outline {
                Outline::Change(change) if change.operations > budgets.operations_per_change => {
                    if screened.oversized.len() >= MAX_OVERSIZED_PER_MESSAGE {
                        return Err(Error::Limit(format!(
                            "a sync message carries more than {MAX_OVERSIZED_PER_MESSAGE} \
                             changes past the operations a change may hold"
                        )));
                    }
                    screened.oversized.push(change);
                }
                Outline::Change(_) => {
                    let change = unwinding(|| {
                        let change = Change::from_bytes(chunk.to_vec())
                            .map_err(|e| Error::SyncMessage(e.to_string()))?;
                        // The header's checksum is the first bytes of the change's hash.
                        // Automerge does not check it on parsing; a change whose bytes were
                        // altered hashes to one thing here and, once stored and encoded
                        // again, to another: its signature and every record of it would
                        // name a change the plan no longer holds.
                        if chunk.get(CHECKSUM_AT) != Some(&change.hash().0[..4]) {
                            return Err(Error::SyncMessage(
                                "a change whose checksum is not its hash's".into(),
                            ));
                        }
                        // A change that parses may still name actors its header does not
                        // list; Automerge panics decoding it, as the judge does for every
                        // change: found here, outside every lock, as a malformed message.
                        drop(change.decode());
                        Ok(change)
                    })?;
                    screened.changes.push(change);
                }
                Outline::Many { operations } if operations > budgets.operations_per_document => {
                    return Err(too_large(budgets));
                }
                Outline::Many { .. } if chunk.get(chunks::TYPE_AT) == Some(&chunks::BUNDLE) => {
                    let bundled = unwinding(|| {
                        let changes = automerge::Bundle::try_from(chunk)
                            .map_err(|e| Error::SyncMessage(e.to_string()))?
                            .to_changes()
                            .map_err(|e| Error::SyncMessage(e.to_string()))?;
                        changes.iter().for_each(|change| drop(change.decode()));
                        Ok(changes)
                    })?;
                    screened.changes.extend(bundled);
                }
                Outline::Many { .. } => screened.documents.push(chunk.to_vec()),
            }
        }
    }
    Ok(screened)
}

/// Runs Automerge's reading of a peer's bytes, which panics on some malformed input (an
/// operation counter past 32 bits): such a panic becomes [`Error::SyncMessage`]. `read` only
/// parses, or loads into a scratch copy, so nothing shared is left half-changed.
fn unwinding<T>(read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(Error::SyncMessage(
            "a change Automerge cannot read (malformed operation numbers)".into(),
        ))
    })
}

fn too_large(budgets: &Budgets) -> Error {
    Error::Limit(format!(
        "a document chunk claims more than {} operations",
        budgets.operations_per_document
    ))
}

impl Screened {
    /// The changes `doc` does not have yet, whole-document chunks read through a scratch copy
    /// of `doc`, and the changes refused before decoding. Changes whose dependencies are
    /// missing are kept, to be held.
    pub(crate) fn changes_in(
        self,
        doc: &Automerge,
        own_actors: &[ActorId],
        budgets: &Budgets,
    ) -> Result<(Vec<Change>, Vec<ChangeOutline>)> {
        let mut changes = self.changes;
        let mut oversized = self.oversized;
        for chunk in &self.documents {
            for change in document_chunk_changes(doc, chunk, own_actors)? {
                if change.len() as u64 > budgets.operations_per_change {
                    oversized.push(ChangeOutline {
                        hash: change.hash(),
                        actor: change.actor_id().clone(),
                        timestamp: change.timestamp(),
                        operations: change.len() as u64,
                    });
                } else {
                    changes.push(change);
                }
            }
        }
        Ok((changes, oversized))
    }
}

/// The changes in a whole-document chunk that `doc` does not have, read through a scratch
/// copy of `doc`. When the chunk holds changes of one of this device's own actors (its current
/// one or one it left to another copy of its store) with seq numbers `doc` already used (the
/// other copy wrote them), the copy cannot take them: it is then made without that actor's
/// latest own changes, one more at a time, until it can.
fn document_chunk_changes(
    doc: &Automerge,
    chunk: &[u8],
    own_actors: &[ActorId],
) -> Result<Vec<Change>> {
    let mut scratch = doc.fork();
    let loaded = unwinding(|| {
        scratch
            .load_incremental(chunk)
            .map_err(|e| Error::SyncMessage(e.to_string()))
    });
    let first_error = match loaded {
        Ok(_) => return Ok(doc.get_changes_added(&scratch)),
        Err(error) => error,
    };
    for actor in own_actors {
        let last = rebase::last_seq(doc, actor);
        let own: Vec<(u64, ChangeHash)> = doc
            .get_changes(&[])
            .iter()
            .filter(|c| c.actor_id() == actor)
            .map(|c| (c.seq(), c.hash()))
            .collect();
        for from in (1..=last).rev().take(64) {
            let drop: HashSet<ChangeHash> = own
                .iter()
                .filter(|(seq, _)| *seq >= from)
                .map(|(_, hash)| *hash)
                .collect();
            let (base, _) = rebase::without(doc, &drop)?;
            let mut scratch = base.fork();
            if unwinding(|| Ok(scratch.load_incremental(chunk).is_ok()))? {
                return Ok(base.get_changes_added(&scratch));
            }
        }
    }
    Err(first_error)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;

    fn edit(doc: &mut Automerge, key: &str) {
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, key, 1_i64).unwrap();
        tx.commit();
    }

    #[test]
    fn a_whole_document_colliding_with_a_former_identitys_change_is_read() {
        // Two copies of one store wrote seq 2 of one actor; this copy has since taken a new
        // identity (`current`), and the other copy's document arrives whole.
        let former = ActorId::random();
        let current = ActorId::random();
        let mut ours = Automerge::new().with_actor(former.clone());
        edit(&mut ours, "one");
        let mut theirs = ours.fork().with_actor(former.clone());
        edit(&mut ours, "four");
        edit(&mut theirs, "two");
        let chunk = theirs.save();
        let two = theirs.get_last_local_change().unwrap().hash();

        let read = document_chunk_changes(&ours, &chunk, &[current.clone(), former]).unwrap();
        assert_eq!(read.iter().map(Change::hash).collect::<Vec<_>>(), vec![two]);
        // Only the current actor tried: the collision is an error, as before this was fixed.
        assert!(document_chunk_changes(&ours, &chunk, &[current]).is_err());
    }

    /// A change whose bytes were altered after its checksum was written still parses, with a
    /// hash of the altered bytes; stored and encoded again it would hash to another. It is
    /// refused as a malformed message before anything is judged or stored (the fuzz target
    /// found it: the stored plan then held a change under two hashes). Its honest original
    /// passes.
    #[test]
    fn a_change_whose_checksum_is_not_its_hash_is_refused() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "title", "Plan").unwrap();
        tx.commit_with(automerge::transaction::CommitOptions::default().with_message("abc"));
        let honest = doc.get_changes(&[])[0].raw_bytes().to_vec();
        let mut altered = honest.clone();
        let at = altered.windows(3).position(|w| w == b"abc").unwrap();
        altered[at] = b'x';
        assert!(
            Change::from_bytes(altered.clone()).is_ok(),
            "Automerge parses it"
        );
        let message = |bytes: Vec<u8>| sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: vec![bytes].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let budgets = Budgets::default();
        assert_eq!(screen(&message(honest), &budgets).unwrap().changes.len(), 1);
        match screen(&message(altered), &budgets) {
            Err(Error::SyncMessage(reason)) => assert!(reason.contains("checksum"), "{reason}"),
            Err(other) => panic!("a malformed message, not {other}"),
            Ok(_) => panic!("the altered change was let through"),
        }
    }
}
