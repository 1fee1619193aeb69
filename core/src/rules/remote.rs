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
    // The usual message, a chain of changes all let in, is applied at once and each change
    // judged at its dependencies in the result.
    // Automerge panicking on a historical read leaves it to change-by-change judging.
    let together = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        judge_together(doc, &context, &incoming)
    }));
    if let Ok(Some(together)) = together {
        // Debug builds (every test) judge it change by change too: both must agree.
        #[cfg(debug_assertions)]
        agrees_with_each(doc, &context, incoming, &together);
        return together;
    }
    judge_changes(doc, &context, incoming)
}

/// Judges change by change: accepted changes are applied to the plan in batches; should a
/// batch fail where each change alone was let into its author's view, everything is judged
/// again applying each change as it is let in, which names the change that cannot be applied.
fn judge_changes(doc: &Automerge, context: &Context<'_>, incoming: Vec<Change>) -> Judgement {
    judge_pass(doc, context, incoming.clone(), Applying::InBatches).unwrap_or_else(|| {
        judge_pass(doc, context, incoming, Applying::OneByOne).unwrap_or_default()
    })
}

/// Panics unless judging `incoming` change by change gives what [`judge_together`] gave:
/// the same changes let in, nothing refused or held, the same plan.
#[cfg(debug_assertions)]
fn agrees_with_each(
    doc: &Automerge,
    context: &Context<'_>,
    incoming: Vec<Change>,
    together: &Judgement,
) {
    let each = judge_changes(doc, context, incoming);
    let hashes = |changes: &[Change]| {
        let mut hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        hashes.sort();
        hashes
    };
    assert_eq!(
        each.refused, together.refused,
        "judged together and one by one"
    );
    assert_eq!(hashes(&each.accepted), hashes(&together.accepted));
    assert_eq!(hashes(&each.held), hashes(&together.held));
    let heads = |judgement: &Judgement| judgement.applied.as_ref().map(Automerge::get_heads);
    assert_eq!(heads(&each), heads(together));
}

/// Changes larger than this are judged change by change: one such change is a batch of its
/// own, and judging it at its dependencies (a long text read there, a copy of the plan there
/// to measure a long rewrite) made the long-rewrite tests five times slower
/// (`docs/design.md`, "Applying each change once").
const TOGETHER_MAX_OPERATIONS: u64 = 256;

/// Messages with more new changes than this are judged change by change: what each change's
/// view does not hold ([`outside_views`]) is listed per change, which grows with the square of
/// the changes (a phone's year-long backlog in one message would list millions).
const TOGETHER_MAX_CHANGES: usize = 128;

/// Judges a message whose changes all come in, the usual case, in one step: every new change
/// is applied to a copy of the plan in one batch (Automerge applies a chain of twenty in about
/// a third of the time it takes one by one), then each is judged in its author's view, read
/// from that copy at the change's dependencies ([`View::at`]), which holds what a fork at
/// them would. None, and the message is judged change by change, when anything is not
/// usual: a change refused, held for a missing dependency, without dependencies, building on
/// a refused change, past a budget, refused by Automerge, or naming an operation its
/// author's view does not hold.
fn judge_together(
    doc: &Automerge,
    context: &Context<'_>,
    incoming: &[Change],
) -> Option<Judgement> {
    let mut fresh: Vec<&Change> = Vec::new();
    let mut hashes: HashSet<ChangeHash> = HashSet::new();
    for change in incoming {
        let hash = change.hash();
        if !has_change(doc, &hash) && hashes.insert(hash) {
            fresh.push(change);
        }
    }
    if fresh.is_empty() || fresh.len() > TOGETHER_MAX_CHANGES {
        return None;
    }
    let mut operations = doc.stats().num_ops;
    for change in &fresh {
        let deps = change.deps();
        let refused = |hash: &ChangeHash| context.known_refused.contains(hash);
        let present = |hash: &ChangeHash| hashes.contains(hash) || has_change(doc, hash);
        if deps.is_empty()
            || refused(&change.hash())
            || deps.iter().any(refused)
            || !deps.iter().all(present)
        {
            return None;
        }
        let length = change.len() as u64;
        operations = operations.saturating_add(length);
        if length > context.budgets.operations_per_change
            || operations > context.budgets.operations_per_document
            || length > TOGETHER_MAX_OPERATIONS
        {
            return None;
        }
    }
    // Dependencies first.
    let mut ordered: Vec<Change> = Vec::with_capacity(fresh.len());
    let mut placed: HashSet<ChangeHash> = HashSet::new();
    while !fresh.is_empty() {
        let before = fresh.len();
        fresh.retain(|change| {
            let ready = change
                .deps()
                .iter()
                .all(|d| placed.contains(d) || !hashes.contains(d));
            if ready {
                placed.insert(change.hash());
                ordered.push((*change).clone());
            }
            !ready
        });
        if fresh.len() == before {
            return None;
        }
    }
    let mut all = doc.fork();
    if !apply(&mut all, ordered.clone()) || !ordered.iter().all(|c| has_change(&all, &c.hash())) {
        return None;
    }
    let mut roster = change::Roster::default();
    let outside = outside_views(doc, &ordered);
    let decoded: Vec<automerge::ExpandedChange> = ordered.iter().map(Change::decode).collect();
    let mut batch_ops = view::BatchOps::new();
    for (change, expanded) in ordered.iter().zip(&decoded) {
        let actor = change.actor_id();
        let start = change.start_op().get();
        for (index, op) in expanded.operations.iter().enumerate() {
            let id = start.saturating_add(index as u64);
            batch_ops.insert((id, actor.clone()), (op.obj.clone(), op.insert));
        }
    }
    for ((change, outside), expanded) in ordered.iter().zip(&outside).zip(&decoded) {
        let mut deps = change.deps().to_vec();
        deps.sort();
        if !names_only_its_view(change, expanded, outside) {
            return None;
        }
        let view = View::at(&all, &deps, &batch_ops);
        let signatures = (context.signatures, &mut roster);
        let judged = judge_decoded(&view, context.plan_id, (change, Some(expanded)), signatures);
        if judged.is_err() {
            return None;
        }
    }
    Some(Judgement {
        accepted: ordered,
        refused: Vec::new(),
        held: Vec::new(),
        applied: Some(all),
    })
}

/// Who made which operations: an author and the first and last operation counters of one
/// of its changes.
type Made = (ActorId, u64, u64);

/// For each change of `ordered` (dependencies first), the changes of `doc` with `ordered`
/// applied that its view (the document at its dependencies) does not hold: the batch's
/// changes that are not its ancestors, itself included, and `doc`'s changes that are not
/// ancestors of its dependencies.
fn outside_views(doc: &Automerge, ordered: &[Change]) -> Vec<Vec<Made>> {
    let at: HashMap<ChangeHash, usize> = ordered
        .iter()
        .enumerate()
        .map(|(index, change)| (change.hash(), index))
        .collect();
    // Each change's ancestors in the batch, and the changes of `doc` it builds on.
    let mut ancestors: Vec<HashSet<usize>> = Vec::with_capacity(ordered.len());
    let mut in_doc: Vec<Vec<ChangeHash>> = Vec::with_capacity(ordered.len());
    for change in ordered {
        let mut mine = HashSet::new();
        let mut below: HashSet<ChangeHash> = HashSet::new();
        for dep in change.deps() {
            match at.get(dep) {
                Some(&index) => {
                    mine.insert(index);
                    mine.extend(ancestors[index].iter().copied());
                    below.extend(in_doc[index].iter().copied());
                }
                None => {
                    below.insert(*dep);
                }
            }
        }
        let mut below: Vec<ChangeHash> = below.into_iter().collect();
        below.sort();
        ancestors.push(mine);
        in_doc.push(below);
    }
    let made = |change: &Change| -> Made {
        let start = change.start_op().get();
        let last = start.saturating_add((change.len() as u64).saturating_sub(1));
        (change.actor_id().clone(), start, last)
    };
    let mut past_in_doc: HashMap<Vec<ChangeHash>, Vec<Made>> = HashMap::new();
    (0..ordered.len())
        .map(|index| {
            let mut outside: Vec<Made> = past_in_doc
                .entry(in_doc[index].clone())
                .or_insert_with(|| {
                    doc.get_changes_meta(&in_doc[index])
                        .into_iter()
                        .map(|m| (m.actor.into_owned(), m.start_op, m.max_op))
                        .collect()
                })
                .clone();
            outside.extend(
                (0..ordered.len())
                    .filter(|other| !ancestors[index].contains(other))
                    .map(|other| made(&ordered[other])),
            );
            outside
        })
        .collect()
}

/// Whether every object, character and replaced value `change` names, besides what it makes
/// itself, was made by a change its view holds, not by one of `outside` (a later change of
/// the same chain, or one concurrent with it). A fork at its dependencies would not hold
/// those: reading them from the document past the view might find them, so such a change is
/// judged on a fork.
fn names_only_its_view(
    change: &Change,
    expanded: &automerge::ExpandedChange,
    outside: &[Made],
) -> bool {
    let actor = change.actor_id();
    let start = change.start_op().get();
    let end = start.saturating_add(change.len() as u64);
    let past_view = |id: &OpId| {
        let made_here = &id.1 == actor && start <= id.0 && id.0 < end;
        !made_here
            && outside
                .iter()
                .any(|(author, first, last)| author == &id.1 && *first <= id.0 && id.0 <= *last)
    };
    expanded.operations.iter().all(|op| {
        let object = match &op.obj {
            ObjectId::Id(id) => past_view(id),
            ObjectId::Root => false,
        };
        let element = match &op.key {
            Key::Seq(ElementId::Id(id)) => past_view(id),
            _ => false,
        };
        !object && !element && !op.pred.iter().any(past_view)
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

/// [`judge_together`] alone, with no budgets but the defaults (for tests): None when the
/// message is not one it judges.
#[cfg(test)]
pub(crate) fn judged_together(
    doc: &Automerge,
    plan_id: PlanId,
    incoming: &[Change],
    signatures: &Signatures,
) -> Option<Judgement> {
    let context = Context {
        plan_id,
        known_refused: &HashSet::new(),
        budgets: &Budgets::default(),
        signatures,
    };
    judge_together(doc, &context, incoming)
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
        return Some(judge_one(
            &View::whole(plan),
            context.plan_id,
            change,
            signatures,
        ));
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
    let verdict = judge_one(&View::whole(&current), context.plan_id, change, signatures);
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
    change::judge_signature(&View::whole(doc), (&plan, None), device, change, &one).is_ok()
}

mod change;
mod references;
mod values;
mod view;
use change::*;
use references::*;
use values::*;
pub(crate) use view::View;
