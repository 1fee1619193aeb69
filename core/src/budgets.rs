//! Budgets on what a peer's sync messages may make this store hold or expand, checked before
//! the work is done (`docs/design.md`, Hostile input; `SECURITY.md` §3 lists the defaults).

/// Limits on what peers' changes may cost a store. Every device and the relay use the
/// defaults unless told otherwise ([`crate::Alliance::set_budgets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// Changes one conversation (one connection, see [`crate::SyncPeer`]) may leave waiting
    /// for a dependency it has not sent, over all plans.
    pub held_changes_per_conversation: usize,
    /// Bytes (as received) of those changes.
    pub held_bytes_per_conversation: usize,
    /// Changes all conversations together may leave waiting in one plan.
    pub held_changes_per_plan: usize,
    /// Bytes of those changes.
    pub held_bytes_per_plan: usize,
    /// Operations one change may expand to, read from its header and columns before it is
    /// decoded; a change past it is refused as a rule.
    pub operations_per_change: u64,
    /// Operations a plan's document may hold; a change that would take it past is refused as
    /// a rule, and a whole-document chunk past it is refused before it is loaded.
    pub operations_per_document: u64,
}

/// Default [`Budgets::held_changes_per_conversation`].
pub const HELD_CHANGES_PER_CONVERSATION: usize = 1_024;
/// Default [`Budgets::held_bytes_per_conversation`]: 4 MiB.
pub const HELD_BYTES_PER_CONVERSATION: usize = 4 << 20;
/// Default [`Budgets::held_changes_per_plan`].
pub const HELD_CHANGES_PER_PLAN: usize = 4_096;
/// Default [`Budgets::held_bytes_per_plan`]: 16 MiB.
pub const HELD_BYTES_PER_PLAN: usize = 16 << 20;
/// Default [`Budgets::operations_per_change`]. The largest honest change (a goal proposed
/// with every text at its longest and then rewritten whole) stays far below it.
pub const OPERATIONS_PER_CHANGE: u64 = 100_000;
/// Default [`Budgets::operations_per_document`].
pub const OPERATIONS_PER_DOCUMENT: u64 = 2_000_000;

impl Default for Budgets {
    fn default() -> Self {
        Self {
            held_changes_per_conversation: HELD_CHANGES_PER_CONVERSATION,
            held_bytes_per_conversation: HELD_BYTES_PER_CONVERSATION,
            held_changes_per_plan: HELD_CHANGES_PER_PLAN,
            held_bytes_per_plan: HELD_BYTES_PER_PLAN,
            operations_per_change: OPERATIONS_PER_CHANGE,
            operations_per_document: OPERATIONS_PER_DOCUMENT,
        }
    }
}

/// The rule recorded for a change refused because it expands past
/// [`Budgets::operations_per_change`].
pub const TOO_MANY_OPERATIONS: &str = "expands to more operations than a change may hold";
/// The rule recorded for a change refused because the plan would grow past
/// [`Budgets::operations_per_document`].
pub const DOCUMENT_TOO_LARGE: &str = "would grow the plan past the operations it may hold";
