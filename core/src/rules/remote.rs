//! Rules on merge: every change that arrives from a peer is judged by its author's role
//! before it is stored. A change is mapped to a device and member through the plan's
//! `devices`, its operations are decoded and their objects mapped to plan paths, and each
//! operation is checked against the role table. A refused change is never applied, and
//! neither is anything built on top of it.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjType, Prop, ReadDoc, ScalarValue};

use crate::authorship::voucher::{self, UNVOUCHED};
use crate::authorship::{PublicKey, Signature, FORGED};
use crate::budgets::{Budgets, DOCUMENT_TOO_LARGE, TOO_MANY_OPERATIONS};
use crate::model::validate::{self, MAX_LABEL, MAX_TEXT};
use crate::model::{DeviceId, GoalStatus, MemberId, PlanId, Role};
use crate::plan::read::{get_string, goal_obj, is_plan, read_plan, read_plan_for_edit};
use crate::plan::schema as k;
use crate::rules::table::{self, Kind, Value, Write, Writer};

/// The rule named for a change whose author's actor and sequence number a change already here
/// holds: the first is kept, this one refused (SECURITY.md §6, copied identity).
pub const COPIED_IDENTITY: &str =
    "another copy of its device already wrote this change number (a copied identity)";

/// The rule named for a change its device made after it learned it was revoked.
pub const REVOKED: &str = "comes from a device revoked before it";

/// The rule named for a change refused only because it builds on a refused one.
pub const BUILDS_ON_REFUSED: &str = "builds on a refused change";

/// A change that was not let in, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub hash: ChangeHash,
    pub actor: ActorId,
    pub device: Option<DeviceId>,
    pub member: Option<MemberId>,
    /// The rule the change broke, in words without personal data.
    pub rule: String,
    /// The time the change claims (UTC milliseconds).
    pub at: i64,
}

/// The outcome of judging a batch of incoming changes.
#[derive(Debug, Default)]
pub struct Judgement {
    /// Changes to apply, in an order where each one's dependencies come first.
    pub accepted: Vec<Change>,
    /// Changes refused now (not counting ones refused before).
    pub refused: Vec<Refusal>,
    /// Changes whose dependencies have not arrived yet: judged when they do.
    pub held: Vec<Change>,
    /// The document with every accepted change applied (a fork of the one judged, with its own
    /// actor id), when any change was judged: callers may adopt it instead of applying the
    /// accepted changes a second time.
    pub applied: Option<Automerge>,
}

/// The signatures that came with incoming changes, by change hash (`crate::authorship`).
pub type Signatures = HashMap<ChangeHash, Signature>;

/// Judges `incoming` against the document `doc` of plan `plan_id`. `known_refused` holds
/// hashes refused earlier: they and their descendants are dropped without a new record.
/// `signatures` are the ones that came with the changes: a change naming a device whose
/// public key the plan records (in its author's view) needs that key's signature there, or it
/// is refused as forged ([`crate::authorship::FORGED`]).
pub fn judge(
    doc: &Automerge,
    plan_id: PlanId,
    incoming: Vec<Change>,
    known_refused: &HashSet<ChangeHash>,
    signatures: &Signatures,
) -> Judgement {
    judge_within(
        doc,
        plan_id,
        incoming,
        known_refused,
        &Budgets::default(),
        signatures,
    )
}

/// [`judge`] with these budgets: a change that expands to more operations than
/// `budgets.operations_per_change`, or would take the plan past
/// `budgets.operations_per_document`, is refused as a rule before it is decoded or applied.
pub fn judge_within(
    doc: &Automerge,
    plan_id: PlanId,
    incoming: Vec<Change>,
    known_refused: &HashSet<ChangeHash>,
    budgets: &Budgets,
    signatures: &Signatures,
) -> Judgement {
    let context = Context {
        plan_id,
        known_refused,
        budgets,
        signatures,
    };
    // Accepted changes are applied to the plan in one batch; should the batch fail where each
    // change alone was let into its author's view, everything is judged again applying each
    // change as it is let in, which names the change that cannot be applied.
    judge_pass(doc, &context, incoming.clone(), Applying::InBatches).unwrap_or_else(|| {
        judge_pass(doc, &context, incoming, Applying::OneByOne).unwrap_or_default()
    })
}

/// [`judge_within`] applying each accepted change as it is let in, never in a batch: what the
/// batched judging must agree with (for tests).
#[cfg(test)]
pub(crate) fn judge_applying_each(
    doc: &Automerge,
    plan_id: PlanId,
    incoming: Vec<Change>,
    signatures: &Signatures,
) -> Judgement {
    let context = Context {
        plan_id,
        known_refused: &HashSet::new(),
        budgets: &Budgets::default(),
        signatures,
    };
    judge_pass(doc, &context, incoming, Applying::OneByOne).unwrap_or_default()
}

/// What one judging of a batch needs besides the document and the changes.
struct Context<'a> {
    plan_id: PlanId,
    known_refused: &'a HashSet<ChangeHash>,
    budgets: &'a Budgets,
    signatures: &'a Signatures,
}

/// How accepted changes reach the plan judged: gathered and applied together (Automerge
/// applies twenty changes of a chain in about a third of the time it takes one by one), or
/// each as it is let in.
#[derive(Clone, Copy, PartialEq)]
enum Applying {
    InBatches,
    OneByOne,
}

/// The plan as judged so far: `doc` with every accepted change applied but those `pending`.
struct Work {
    doc: Automerge,
    pending: Vec<Change>,
    pending_hashes: HashSet<ChangeHash>,
    pending_ops: u64,
    /// The heads (sorted) of `doc` with `pending` applied.
    heads: Vec<ChangeHash>,
}

impl Work {
    fn new(doc: Automerge) -> Self {
        let heads = doc.get_heads();
        Work {
            doc,
            pending: Vec::new(),
            pending_hashes: HashSet::new(),
            pending_ops: 0,
            heads,
        }
    }

    fn has(&self, hash: &ChangeHash) -> bool {
        self.pending_hashes.contains(hash) || has_change(&self.doc, hash)
    }

    fn operations(&self) -> u64 {
        self.doc.stats().num_ops.saturating_add(self.pending_ops)
    }

    /// Takes in an accepted change, applied to `doc` later.
    fn accept(&mut self, change: &Change) {
        self.pending_hashes.insert(change.hash());
        self.pending_ops = self.pending_ops.saturating_add(change.len() as u64);
        self.heads.retain(|head| !change.deps().contains(head));
        self.heads.push(change.hash());
        self.heads.sort();
        self.pending.push(change.clone());
    }

    /// Applies what is pending; None when Automerge refuses the batch.
    fn settle(&mut self) -> Option<&Automerge> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            if !apply(&mut self.doc, pending) {
                return None;
            }
            self.pending_hashes.clear();
            self.pending_ops = 0;
        }
        Some(&self.doc)
    }
}

/// One judging of `incoming` against `doc`; None when a batch of accepted changes could not
/// be applied (only when `applying` is [`Applying::InBatches`]).
fn judge_pass(
    doc: &Automerge,
    context: &Context<'_>,
    incoming: Vec<Change>,
    applying: Applying,
) -> Option<Judgement> {
    let mut judgement = Judgement::default();
    let mut pending: Vec<Change> = incoming
        .into_iter()
        .filter(|c| !has_change(doc, &c.hash()))
        .collect();
    if pending.is_empty() {
        return Some(judgement);
    }
    let mut work = Work::new(doc.fork());
    // The author's view (see `judge_in_authors_view`) last built, kept one change ahead so
    // the next change of the same chain is judged without forking the document again.
    let mut view: Option<Automerge> = None;
    let mut roster = change::Roster::default();
    let mut refused: HashSet<ChangeHash> = context.known_refused.clone();
    let mut seen = HashSet::new();
    loop {
        let mut progress = false;
        let mut next = Vec::new();
        for change in pending {
            let hash = change.hash();
            if !seen.insert(hash) || work.has(&hash) {
                progress = true;
                continue;
            }
            if refused.contains(&hash) {
                progress = true;
                continue;
            }
            if change.deps().iter().any(|d| refused.contains(d)) {
                refused.insert(hash);
                let rule = BUILDS_ON_REFUSED;
                judgement
                    .refused
                    .push(refusal(work.settle()?, &change, rule));
                progress = true;
                continue;
            }
            if !change.deps().iter().all(|d| work.has(d)) {
                seen.remove(&hash);
                next.push(change);
                continue;
            }
            progress = true;
            let operations = change.len() as u64;
            let over = if operations > context.budgets.operations_per_change {
                Some(TOO_MANY_OPERATIONS)
            } else if work.operations().saturating_add(operations)
                > context.budgets.operations_per_document
            {
                Some(DOCUMENT_TOO_LARGE)
            } else {
                None
            };
            if let Some(rule) = over {
                refused.insert(hash);
                judgement
                    .refused
                    .push(refusal(work.settle()?, &change, rule));
                continue;
            }
            let verdict =
                judge_in_authors_view(&mut work, &mut view, context, &mut roster, &change)?;
            let rule = match verdict {
                Ok(()) => {
                    let applied = match applying {
                        // A change number taken twice fails the batch, and the message is
                        // judged again one change at a time (below).
                        Applying::InBatches => {
                            work.accept(&change);
                            true
                        }
                        Applying::OneByOne => {
                            // On a copy: a change Automerge panics on leaves the plan as it was.
                            let mut next = work.doc.fork();
                            let applied = apply(&mut next, vec![change.clone()]);
                            if applied {
                                work.doc = next;
                                work.heads = work.doc.get_heads();
                            }
                            applied
                        }
                    };
                    if applied {
                        judgement.accepted.push(change);
                        continue;
                    }
                    view = None;
                    // Its author's change number is taken here by another change that passed
                    // every check, its signature included: two copies of one identity (a
                    // copied or restored store used on two phones).
                    if crate::plan::rebase::last_seq(&work.doc, change.actor_id()) >= change.seq() {
                        COPIED_IDENTITY.to_owned()
                    } else {
                        "cannot be applied".to_owned()
                    }
                }
                Err(rule) => rule,
            };
            // A change without its proof may come again with it: what builds on it waits
            // (held, its dependency missing) rather than being refused with it.
            if !crate::authorship::lacks_proof(&rule) {
                refused.insert(hash);
            }
            judgement
                .refused
                .push(refusal(work.settle()?, &change, &rule));
        }
        pending = next;
        if pending.is_empty() || !progress {
            break;
        }
    }
    judgement.held = pending;
    // The view holds exactly the plan as judged when its heads are the plan's: it is adopted
    // in place of applying the pending changes again.
    match view {
        Some(view) if !work.pending.is_empty() && view.get_heads() == work.heads => {
            judgement.applied = Some(view);
        }
        _ => {
            work.settle()?;
            judgement.applied = Some(work.doc);
        }
    }
    Some(judgement)
}

/// Applies `changes` to `doc`; false when Automerge refuses them or panics on them (a peer's
/// change can make it do either). After false, `doc` is not to be used again.
fn apply(doc: &mut Automerge, changes: Vec<Change>) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        doc.apply_changes(changes).is_ok()
    }))
    .unwrap_or(false)
}

/// Whether `doc` holds the change: read from the change graph (`get_change_by_hash` would
/// rebuild the whole change from the document's operations).
fn has_change(doc: &Automerge, hash: &ChangeHash) -> bool {
    doc.get_change_meta_by_hash(hash).is_some()
}

/// Judges a change against the plan as its author saw it: the document at the change's
/// dependencies. A change concurrent with others already here (a counselor suggesting the
/// client's words while another counselor device activated the goal) is honest in that view,
/// and every replica judges it the same whatever order changes arrive in. A change without
/// dependencies on an existing plan is judged against the plan as it stands (as before), so a
/// second "creation" can never claim the plan.
fn judge_in_authors_view(
    work: &mut Work,
    view: &mut Option<Automerge>,
    context: &Context<'_>,
    roster: &mut change::Roster,
    change: &Change,
) -> Option<Rule> {
    let signatures = (context.signatures, &mut *roster);
    let mut deps = change.deps().to_vec();
    deps.sort();
    if deps.is_empty() {
        *view = None;
        let plan = work.settle()?;
        return Some(judge_one(plan, context.plan_id, change, signatures));
    }
    // Same changes, same document: a view that holds the dependencies and whose heads are
    // among them is the plan at the dependencies, and is reused. (A change lists its author's
    // previous change beside the heads it saw, so its dependencies may name more than heads.)
    let at_deps = |doc: &Automerge| {
        doc.get_heads().iter().all(|head| deps.contains(head))
            && deps.iter().all(|dep| has_change(doc, dep))
    };
    let mut current = match view.take() {
        Some(kept) if at_deps(&kept) => kept,
        _ => {
            let plan = work.settle()?;
            let forked = if at_deps(plan) {
                Ok(plan.fork())
            } else {
                plan.fork_at(&deps)
            };
            match forked {
                Ok(forked) => forked,
                Err(_) => return Some(Err("cannot be applied".to_owned())),
            }
        }
    };
    let verdict = judge_one(&current, context.plan_id, change, signatures);
    // A change its view cannot take leaves no view: the plan itself then decides (below).
    if verdict.is_ok() && apply(&mut current, vec![change.clone()]) {
        *view = Some(current);
    }
    Some(verdict)
}

fn refusal(work: &Automerge, change: &Change, rule: &str) -> Refusal {
    refusal_of(
        work,
        change.hash(),
        change.actor_id(),
        change.timestamp(),
        rule,
    )
}

/// The refusal of a change known only by its header (`hash`, author `actor`, claimed time
/// `at`), e.g. one refused before it was decoded; `work` is the plan it was refused from.
pub fn refusal_of(
    work: &Automerge,
    hash: ChangeHash,
    actor: &ActorId,
    at: i64,
    rule: &str,
) -> Refusal {
    let device = DeviceId::from_actor(actor);
    let member = device.and_then(|d| {
        read_plan_for_edit(work, None, false)
            .ok()?
            .member_of_device(d)
            .map(|m| m.member_id)
    });
    Refusal {
        hash,
        actor: actor.clone(),
        device,
        member,
        rule: rule.to_owned(),
        at,
    }
}

/// Whether `signature` is the proof `change` needs in `doc` as it stands: its author's
/// signature when the plan records the author's key, the pinned relay's voucher for a keyless
/// device, anything when neither applies (a device trusted by its actor). For choosing
/// between two records of one change; the judge still decides.
pub(crate) fn proves(doc: &Automerge, change: &Change, signature: Signature) -> bool {
    let Ok(plan) = read_plan(doc) else {
        return false;
    };
    let Some(device) = DeviceId::from_actor(change.actor_id()) else {
        return false;
    };
    let one: Signatures = HashMap::from([(change.hash(), signature)]);
    change::judge_signature(doc, (&plan, None), device, change, &one).is_ok()
}

mod change;
mod references;
mod values;
use change::*;
use references::*;
use values::*;
