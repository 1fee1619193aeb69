//! Per-plan state for sync: one lane (lock) per plan, and a plan's document taken out of the
//! store's memory while a peer's message is judged or a message is generated without the
//! store lock (`docs/design.md`, "Per-plan lanes").
//!
//! The store lock (`Alliance::inner`) guards the SQLite connection and what every plan
//! shares; it is held only to read what a step needs and to commit what it did. A plan's
//! lane is held for the whole of a sync step or a local edit of that plan, so steps of one
//! plan run one after another, while the CPU work of steps of different plans (judging
//! changes, Automerge's sync) runs side by side. Lock order: a lane, then the store lock;
//! never the other way round, and never two lanes. A lane is reentrant: an observer told of an
//! outside change while its thread holds the lane may edit that plan (the step under way
//! then finds the plan moved on and starts again).

use parking_lot::ReentrantMutex;

use super::*;

/// One lock per plan this store has synced or edited since it was opened.
#[derive(Default)]
pub(super) struct Lanes {
    by_plan: Mutex<HashMap<PlanId, Arc<ReentrantMutex<()>>>>,
}

impl Lanes {
    /// The lane of `plan`: lock it for the length of one step of that plan.
    pub(super) fn of(&self, plan: PlanId) -> Arc<ReentrantMutex<()>> {
        self.by_plan.lock().entry(plan).or_default().clone()
    }
}

/// What a plan's stored state was when its document was taken out: the heads column as this
/// connection knows it (moved on by every write of this process, and by [`Inner::catch_up`]
/// for other processes' writes) and this device's identity. A step whose stamp no longer
/// matches when it commits worked on a stale copy and starts again.
#[derive(Clone, PartialEq, Debug)]
pub(super) struct Stamp {
    heads: Option<Option<Vec<u8>>>,
    device: Option<DeviceId>,
}

/// A plan's document out of [`Inner::docs`] for work done without the store lock.
pub(super) struct CheckedOut {
    pub(super) open: OpenDoc,
    pub(super) stamp: Stamp,
}

impl Inner {
    pub(super) fn stamp(&self, plan: PlanId) -> Stamp {
        Stamp {
            heads: self.known_heads.get(&plan.to_string()).cloned(),
            device: self.identity.as_ref().map(|me| me.device_id),
        }
    }

    /// Takes the plan's document (an empty one when it is not stored here) out of memory.
    /// While it is out, a reader of the plan reads what SQLite holds.
    pub(super) fn check_out(&mut self, plan: PlanId) -> Result<CheckedOut> {
        self.open_or_empty(plan)?;
        let stamp = self.stamp(plan);
        let mut open = self
            .docs
            .remove(&plan)
            .ok_or_else(|| Error::not_found("plan", plan))?;
        // Out of memory, it misses what `catch_up` forgets: its stored sizes are read again.
        open.stored_sizes = None;
        Ok(CheckedOut { open, stamp })
    }

    /// Whether the plan's stored state is still what it was when `out` was taken.
    pub(super) fn still_current(&self, plan: PlanId, out: &CheckedOut) -> bool {
        self.stamp(plan) == out.stamp
    }

    /// Puts a document taken out back in memory, when nothing wrote the plan meanwhile;
    /// otherwise it is dropped (the plan reloads from SQLite on next use).
    pub(super) fn check_in(&mut self, plan: PlanId, out: CheckedOut) {
        if self.still_current(plan, &out) {
            self.docs.insert(plan, out.open);
        }
    }
}
