//! Changes received before their dependencies, held until those arrive: bounded per
//! conversation and per plan (count and bytes), and dropped when their conversation ends.

use std::collections::{HashMap, HashSet};

use automerge::{Change, ChangeHash};

use crate::budgets::Budgets;
use crate::error::{Error, Result};
use crate::model::PlanId;
use crate::sync_peer::SyncPeer;

/// How many changes wait for a dependency, and their size as received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldCount {
    pub changes: usize,
    pub bytes: usize,
}

impl HeldCount {
    fn add(&mut self, change: &Change) {
        self.changes += 1;
        self.bytes += change.raw_bytes().len();
    }
}

/// One held change and the conversation that sent it.
#[derive(Clone)]
struct Held {
    change: Change,
    from: SyncPeer,
}

/// Every held change of a store, per plan.
#[derive(Default)]
pub(crate) struct HeldChanges {
    by_plan: HashMap<PlanId, Vec<Held>>,
}

/// What a plan held before a message was read: put back when that message fails.
pub(crate) struct Before {
    plan: PlanId,
    held: Option<Vec<Held>>,
}

/// Held changes taken out of a plan to be judged again, with who sent each.
pub(crate) struct Taken {
    changes: Vec<Change>,
    from: HashMap<ChangeHash, SyncPeer>,
}

impl Taken {
    pub(crate) fn changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

impl HeldChanges {
    /// What `plan` holds now, to [`HeldChanges::restore`] if the message about to be read
    /// fails: a failed message (another conversation's, maybe) changes nothing held.
    pub(crate) fn before(&self, plan: PlanId) -> Before {
        Before {
            plan,
            held: self.by_plan.get(&plan).cloned(),
        }
    }

    /// Puts back what the plan held before a message that failed.
    pub(crate) fn restore(&mut self, before: Before) {
        match before.held {
            Some(held) => self.by_plan.insert(before.plan, held),
            None => self.by_plan.remove(&before.plan),
        };
    }

    /// Takes every change held for `plan`, to be judged again with newly arrived ones.
    pub(crate) fn take(&mut self, plan: PlanId) -> Taken {
        let held = self.by_plan.remove(&plan).unwrap_or_default();
        let from = held
            .iter()
            .map(|h| (h.change.hash(), h.from.clone()))
            .collect();
        Taken {
            changes: held.into_iter().map(|h| h.change).collect(),
            from,
        }
    }

    /// Holds `still` (changes of `plan` whose dependencies are still missing): those taken
    /// before go back to the conversation that sent them, the others are `peer`'s. Refused
    /// with [`Error::Limit`] — and only what was held before is kept — when `peer` or the plan
    /// would pass its budget.
    pub(crate) fn hold(
        &mut self,
        plan: PlanId,
        peer: &SyncPeer,
        taken: Taken,
        still: Vec<Change>,
        budgets: &Budgets,
    ) -> Result<()> {
        let mut kept = Vec::new();
        let mut new = Vec::new();
        for change in still {
            match taken.from.get(&change.hash()) {
                Some(from) => kept.push(Held {
                    change,
                    from: from.clone(),
                }),
                None => new.push(Held {
                    change,
                    from: peer.clone(),
                }),
            }
        }
        let mut plan_count = HeldCount::default();
        let mut peer_count = self.count_of(peer);
        for held in kept.iter().chain(&new) {
            plan_count.add(&held.change);
        }
        for held in kept.iter().filter(|h| &h.from == peer).chain(&new) {
            peer_count.add(&held.change);
        }
        let over = if plan_count.changes > budgets.held_changes_per_plan
            || plan_count.bytes > budgets.held_bytes_per_plan
        {
            Some("per plan")
        } else if peer_count.changes > budgets.held_changes_per_conversation
            || peer_count.bytes > budgets.held_bytes_per_conversation
        {
            Some("per connection")
        } else {
            None
        };
        if let Some(which) = over {
            if !kept.is_empty() {
                self.by_plan.insert(plan, kept);
            }
            return Err(Error::Limit(format!(
                "too many changes waiting for a missing dependency {which} (at most {} changes, \
                 {} bytes {which})",
                if which == "per plan" {
                    budgets.held_changes_per_plan
                } else {
                    budgets.held_changes_per_conversation
                },
                if which == "per plan" {
                    budgets.held_bytes_per_plan
                } else {
                    budgets.held_bytes_per_conversation
                },
            )));
        }
        kept.extend(new);
        if !kept.is_empty() {
            self.by_plan.insert(plan, kept);
        }
        Ok(())
    }

    /// Forgets `plan`'s held changes (the plan was stored whole, e.g. imported).
    pub(crate) fn forget_plan(&mut self, plan: PlanId) {
        self.by_plan.remove(&plan);
    }

    /// Drops every change `peer` left waiting: its conversation ended.
    pub(crate) fn drop_conversation(&mut self, peer: &SyncPeer) {
        self.by_plan.retain(|_, held| {
            held.retain(|h| &h.from != peer);
            !held.is_empty()
        });
    }

    /// Drops every change of conversations with this key (its sync state is forgotten).
    pub(crate) fn drop_key(&mut self, key: &str) {
        self.by_plan.retain(|_, held| {
            held.retain(|h| h.from.key != key);
            !held.is_empty()
        });
    }

    /// Dependencies the held changes of `plan` wait for (not among the held ones).
    pub(crate) fn missing_deps(&self, plan: PlanId) -> Vec<ChangeHash> {
        let Some(held) = self.by_plan.get(&plan) else {
            return Vec::new();
        };
        let hashes: HashSet<ChangeHash> = held.iter().map(|h| h.change.hash()).collect();
        held.iter()
            .flat_map(|h| h.change.deps().iter().copied())
            .filter(|d| !hashes.contains(d))
            .collect()
    }

    /// What `peer` holds over all plans.
    fn count_of(&self, peer: &SyncPeer) -> HeldCount {
        let mut count = HeldCount::default();
        for held in self.by_plan.values().flatten().filter(|h| &h.from == peer) {
            count.add(&held.change);
        }
        count
    }

    /// Everything held, over all plans and conversations.
    pub(crate) fn total(&self) -> HeldCount {
        let mut count = HeldCount::default();
        for held in self.by_plan.values().flatten() {
            count.add(&held.change);
        }
        count
    }
}
