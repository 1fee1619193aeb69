//! Compaction off the edit and sync paths (`docs/design.md`, "Compaction"): a write appends its
//! changes as a chunk and only notes the plan as due once the chunks outgrow half the snapshot; a
//! separate, bounded step ([`Alliance::compact_due`]) merges them into a new snapshot later,
//! each plan in its own write transaction holding the plan's lane. A write compacts inline only
//! past a hard cap, so a store nobody maintains stays bounded.

use super::*;

/// Chunks holding more than the snapshot's bytes divided by this are due for
/// [`Alliance::compact_due`]: off the edit path it compacts early, so a store it keeps holds at
/// most about 1.5× what `save()` gives (BENCHMARKS.md, P6).
const DUE_DIVISOR: usize = 2;
/// Chunks holding more than this many times the snapshot's bytes, and more than
/// [`INLINE_FLOOR`], compact inline, in the write that appended them.
const INLINE_FACTOR: usize = 4;
/// Chunks under this many bytes never compact inline by [`INLINE_FACTOR`]: a new plan's
/// snapshot is a few KB, so a burst of edits passed four times it at once and was compacted in
/// the middle of the burst, then again after it (BENCHMARKS.md, P5). A store nobody compacts
/// holds at most this much in chunks beside a small plan.
const INLINE_FLOOR: usize = 32 * 1024;
/// More chunks than this compact inline, whatever their size (each chunk is loaded by itself).
const INLINE_CHUNKS: usize = 1_000;

/// Most plans compacted when a sync session ends (with a server, or in person); the rest wait
/// for the next.
pub(crate) const COMPACT_AFTER_SESSION: usize = 64;

/// What a document's stored sizes call for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Policy {
    /// The chunks are still smaller than half the snapshot.
    Keep,
    /// The chunks outgrew half the snapshot: [`Alliance::compact_due`] merges them.
    Due,
    /// Past the hard cap: the write that appended the last chunk compacts.
    Inline,
}

impl Policy {
    pub(super) fn of(sizes: &DocumentSizes) -> Self {
        let past_factor = sizes.chunk_bytes > sizes.snapshot_len.saturating_mul(INLINE_FACTOR)
            && sizes.chunk_bytes > INLINE_FLOOR;
        if past_factor || sizes.chunk_count > INLINE_CHUNKS {
            Policy::Inline
        } else if sizes.chunk_bytes.saturating_mul(DUE_DIVISOR) > sizes.snapshot_len {
            Policy::Due
        } else {
            Policy::Keep
        }
    }
}

/// Plans this connection knows to be due for compaction.
#[derive(Default)]
pub(super) struct Due {
    plans: HashSet<PlanId>,
    /// Whether the store was searched for due plans (once per connection: those left due by
    /// an earlier run or by another process; later ones are noted by this connection's writes).
    searched: bool,
}

impl Due {
    /// Notes a plan whose write left it due.
    pub(super) fn note(&mut self, plan: PlanId) {
        self.plans.insert(plan);
    }

    /// Searches the store again on the next call (for tests of other connections' writes).
    #[cfg(test)]
    pub(super) fn forget_search(&mut self) {
        self.searched = false;
    }
}

/// A plan's document taken out for compaction, and whether it was in memory before.
struct Taken {
    out: lanes::CheckedOut,
    was_open: bool,
}

impl Alliance {
    /// Compacts up to `max_plans` plans whose stored chunks outgrew half their snapshot: each
    /// plan's document is saved whole (`save()`, deflated) as its new snapshot, replacing the
    /// snapshot and the chunks it merged. Returns how many plans were compacted.
    ///
    /// Each plan is compacted in a write transaction of its own while holding the plan's lane,
    /// so it never races an edit or a sync step of that plan; the save runs without the store
    /// lock, so other plans' edits and sync steps go on meanwhile. Nothing another connection or
    /// process appended is dropped: a plan whose stored heads moved while it was being saved is
    /// left for the next call. Shells call it when a sync session is over or the app is idle
    /// (the relay after a connection's burst); writes compact inline only past a hard cap
    /// (`docs/design.md`, "Compaction"). Errors: SQLite failures ([`Error::Storage`]).
    pub fn compact_due(&self, max_plans: usize) -> Result<usize> {
        self.compact_plans(max_plans, &|| {})
    }

    /// [`Alliance::compact_due`], running `between` after each plan is saved and before it is
    /// stored: for tests of what another connection writes meanwhile.
    #[cfg(test)]
    pub(super) fn compact_due_with(&self, max_plans: usize, between: &dyn Fn()) -> Result<usize> {
        self.compact_plans(max_plans, between)
    }

    fn compact_plans(&self, max_plans: usize, between: &dyn Fn()) -> Result<usize> {
        let plans = self.reading(|inner| inner.take_due(max_plans))?;
        let mut compacted = 0;
        for (n, plan) in plans.iter().enumerate() {
            match self.compact_plan(*plan, between) {
                Ok(true) => compacted += 1,
                Ok(false) => {}
                Err(error) => {
                    // The plans not done stay due for the next call.
                    let mut inner = self.inner.lock();
                    for rest in &plans[n..] {
                        inner.due.note(*rest);
                    }
                    // Compaction is work for later: when other connections kept the store's
                    // write lock past the busy timeout, this call ends without an error (an
                    // app calls it after every sync) and the plans wait for the next one.
                    if is_busy(&error) {
                        return Ok(compacted);
                    }
                    return Err(error);
                }
            }
        }
        Ok(compacted)
    }

    /// Compacts one plan if it is still due; false when there was nothing to do or the plan
    /// moved on meanwhile (it is then noted as due again).
    fn compact_plan(&self, plan: PlanId, between: &dyn Fn()) -> Result<bool> {
        let lane = self.lanes.of(plan);
        let _in_lane = lane.lock();
        let Some(taken) = self.reading(|inner| inner.take_for_compaction(plan))? else {
            return Ok(false);
        };
        // The CPU work, without the store lock.
        let snapshot = taken.out.open.doc.save();
        let heads = taken.out.open.doc.heads();
        between();
        self.writing(|inner| inner.store_compacted(plan, taken, &snapshot, &heads))
    }
}

/// Whether `error` is SQLite's busy or locked: another connection held the write lock.
fn is_busy(error: &Error) -> bool {
    matches!(
        error,
        Error::Storage(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Inner {
    /// Up to `max_plans` plans due for compaction, taken from the ones noted (the store is
    /// searched the first time).
    fn take_due(&mut self, max_plans: usize) -> Result<Vec<PlanId>> {
        if !self.due.searched {
            let ids = self
                .store
                .read(|tx| store::documents_due_for_compaction(tx, usize::MAX))?;
            self.due
                .plans
                .extend(ids.iter().filter_map(|id| PlanId::parse(id).ok()));
            self.due.searched = true;
        }
        let mut plans: Vec<PlanId> = self.due.plans.iter().copied().collect();
        plans.sort();
        plans.truncate(max_plans);
        for plan in &plans {
            self.due.plans.remove(plan);
        }
        Ok(plans)
    }

    /// The plan's document taken out of memory (loaded when it is not there), when its stored
    /// chunks still outgrow half the snapshot and memory holds exactly what is stored.
    fn take_for_compaction(&mut self, plan: PlanId) -> Result<Option<Taken>> {
        let doc_id = plan.to_string();
        let due = self
            .store
            .read(|tx| store::document_sizes(tx, &doc_id))?
            .is_some_and(|sizes| Policy::of(&sizes) != Policy::Keep);
        if !due {
            return Ok(None);
        }
        let was_open = self.docs.contains_key(&plan);
        let out = self.check_out(plan)?;
        let open = &out.open;
        // A document with changes taken out is rewritten whole by its next write.
        if !open.stored || open.rewrite || open.doc.heads() != open.saved_heads {
            if was_open {
                self.check_in(plan, out);
            }
            return Ok(None);
        }
        Ok(Some(Taken { out, was_open }))
    }

    /// Stores `snapshot` (the document taken out, saved at `heads`) in place of the snapshot
    /// and every chunk, in the write transaction [`Alliance::writing`] opened. Does nothing
    /// when the stored document moved on since it was taken out (its heads changed).
    fn store_compacted(
        &mut self,
        plan: PlanId,
        mut taken: Taken,
        snapshot: &[u8],
        heads: &[ChangeHash],
    ) -> Result<bool> {
        if !self.still_current(plan, &taken.out) {
            // Another connection wrote the plan meanwhile: the next call compacts what it left.
            self.due.note(plan);
            return Ok(false);
        }
        let doc_id = plan.to_string();
        let verify = self.verify_writes;
        let done = self.store.write_in_place(|tx| {
            let due = store::document_sizes(tx, &doc_id)?
                .is_some_and(|sizes| Policy::of(&sizes) != Policy::Keep);
            if !due {
                return Ok(false);
            }
            // Caught up under the write lock with the heads unchanged: every stored chunk holds
            // changes of this document, and none is written until this transaction ends.
            let merged = store::last_chunk_seq(tx, &doc_id)?;
            // Upkeep, not an edit: the catalog keeps the last write's time.
            store::replace_snapshot(tx, &doc_id, snapshot, &heads_bytes(heads), None, merged)?;
            if verify {
                verify_stored_heads(tx, &doc_id, heads)?;
            }
            Ok(true)
        })?;
        if taken.was_open {
            taken.out.open.stored_sizes = None;
            self.check_in(plan, taken.out);
        }
        Ok(done)
    }
}
