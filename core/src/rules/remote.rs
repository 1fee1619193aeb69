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
    let fresh = incoming.iter().any(|c| !has_change(doc, &c.hash()));
    if !fresh {
        return Judgement::default();
    }
    judge_into(
        doc.fork(),
        plan_id,
        incoming,
        known_refused,
        budgets,
        signatures,
    )
}

/// [`judge_within`] on a document the caller gives up (one taken out of memory for the
/// judge): the accepted changes are applied to it in place, with no copy of the document,
/// and it comes back in [`Judgement::applied`] — always `Some`, whether or not any change
/// was accepted.
pub fn judge_into(
    doc: Automerge,
    plan_id: PlanId,
    incoming: Vec<Change>,
    known_refused: &HashSet<ChangeHash>,
    budgets: &Budgets,
    signatures: &Signatures,
) -> Judgement {
    let mut judgement = Judgement::default();
    let mut work = doc;
    let mut pending: Vec<Change> = incoming
        .into_iter()
        .filter(|c| !has_change(&work, &c.hash()))
        .collect();
    if pending.is_empty() {
        judgement.applied = Some(work);
        return judgement;
    }
    // The author's view (see `judge_in_authors_view`) last built, kept one change ahead so
    // the next change of the same chain is judged without forking the document again.
    let mut view: Option<Automerge> = None;
    let mut refused: HashSet<ChangeHash> = known_refused.clone();
    let mut seen = HashSet::new();
    loop {
        let mut progress = false;
        let mut next = Vec::new();
        for change in pending {
            let hash = change.hash();
            if !seen.insert(hash) || has_change(&work, &hash) {
                progress = true;
                continue;
            }
            if refused.contains(&hash) {
                progress = true;
                continue;
            }
            if change.deps().iter().any(|d| refused.contains(d)) {
                refused.insert(hash);
                judgement
                    .refused
                    .push(refusal(&work, &change, BUILDS_ON_REFUSED));
                progress = true;
                continue;
            }
            if !change.deps().iter().all(|d| has_change(&work, d)) {
                seen.remove(&hash);
                next.push(change);
                continue;
            }
            progress = true;
            let operations = change.len() as u64;
            let over = if operations > budgets.operations_per_change {
                Some(TOO_MANY_OPERATIONS)
            } else if work.stats().num_ops.saturating_add(operations)
                > budgets.operations_per_document
            {
                Some(DOCUMENT_TOO_LARGE)
            } else {
                None
            };
            if let Some(rule) = over {
                refused.insert(hash);
                judgement.refused.push(refusal(&work, &change, rule));
                continue;
            }
            match judge_in_authors_view(&work, &mut view, (plan_id, signatures), &change) {
                Ok(()) => match work.apply_changes([change.clone()]) {
                    Ok(()) => judgement.accepted.push(change),
                    Err(_) => {
                        refused.insert(hash);
                        // Its author's change number is taken here by another change that
                        // passed every check, its signature included: two copies of one
                        // identity (a copied or restored store used on two phones).
                        let rule = if crate::plan::rebase::last_seq(&work, change.actor_id())
                            >= change.seq()
                        {
                            COPIED_IDENTITY
                        } else {
                            "cannot be applied"
                        };
                        judgement.refused.push(refusal(&work, &change, rule));
                    }
                },
                Err(rule) => {
                    // A change without its proof may come again with it: what builds on it
                    // waits (held, its dependency missing) rather than being refused with it.
                    if !crate::authorship::lacks_proof(&rule) {
                        refused.insert(hash);
                    }
                    judgement.refused.push(refusal(&work, &change, &rule));
                }
            }
        }
        pending = next;
        if pending.is_empty() || !progress {
            break;
        }
    }
    judgement.held = pending;
    judgement.applied = Some(work);
    judgement
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
    work: &Automerge,
    view: &mut Option<Automerge>,
    (plan_id, signatures): (PlanId, &Signatures),
    change: &Change,
) -> Rule {
    let mut deps = change.deps().to_vec();
    deps.sort();
    if deps.is_empty() || deps == work.get_heads() {
        return judge_one(work, plan_id, change, signatures);
    }
    // Same heads, same document: a view left at exactly these dependencies is reused.
    let mut current = match view.take() {
        Some(kept) if kept.get_heads() == deps => kept,
        _ => work
            .fork_at(&deps)
            .map_err(|_| "cannot be applied".to_owned())?,
    };
    let verdict = judge_one(&current, plan_id, change, signatures);
    if verdict.is_ok() && current.apply_changes([change.clone()]).is_ok() {
        *view = Some(current);
    }
    verdict
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
    change::judge_signature(doc, &plan, device, change, &one).is_ok()
}

mod change;
mod values;
use change::*;
use values::*;
