//! Rules on merge: every change that arrives from a peer is judged by its author's role
//! before it is stored. A change is mapped to a device and member through the plan's
//! `devices`, its operations are decoded and their objects mapped to plan paths, and each
//! operation is checked against the role table. A refused change is never applied, and
//! neither is anything built on top of it.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{Key, ObjectId, Op, OpType};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjType, Prop, ReadDoc, ScalarValue};

use crate::authorship::{PublicKey, Signature, FORGED};
use crate::budgets::{Budgets, DOCUMENT_TOO_LARGE, TOO_MANY_OPERATIONS};
use crate::model::validate::{self, MAX_LABEL, MAX_TEXT};
use crate::model::{DeviceId, GoalStatus, MemberId, PlanId, Role};
use crate::plan::read::{get_string, goal_obj, is_plan, read_plan, read_plan_for_edit};
use crate::plan::schema as k;
use crate::rules::table::{self, Kind, Value, Write, Writer};

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
    let mut judgement = Judgement::default();
    let mut pending: Vec<Change> = incoming
        .into_iter()
        .filter(|c| !has_change(doc, &c.hash()))
        .collect();
    if pending.is_empty() {
        return judgement;
    }
    let mut work = doc.fork();
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
                        judgement
                            .refused
                            .push(refusal(&work, &change, "cannot be applied"));
                    }
                },
                Err(rule) => {
                    refused.insert(hash);
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

type Rule = Result<(), String>;

fn refuse<T>(rule: impl Into<String>) -> Result<T, String> {
    Err(rule.into())
}

/// Who wrote the change being judged, and the plan as it stood before it.
struct Author {
    /// The member id as the plan document spells it.
    member_key: String,
    role: Role,
}

impl Author {
    fn writer(&self) -> Writer<'_> {
        Writer {
            member: &self.member_key,
            role: self.role,
        }
    }
}

/// What an object found at a path is: its path and whether this change created it.
#[derive(Clone)]
struct Place {
    path: Vec<String>,
    created_here: bool,
    /// The object's id in the document before this change (None when the change made it).
    exid: Option<automerge::ObjId>,
}

fn judge_one(work: &Automerge, plan_id: PlanId, change: &Change, signatures: &Signatures) -> Rule {
    if !is_plan(work) {
        return judge_creation(work, plan_id, change, signatures);
    }
    // Members and devices are all it needs: reading every goal and check-in per change would
    // cost more than judging it.
    let plan =
        read_plan_for_edit(work, None, false).map_err(|_| "the plan cannot be read".to_owned())?;
    let device = DeviceId::from_actor(change.actor_id())
        .ok_or_else(|| "the author is not a device of this plan".to_owned())?;
    let member = plan
        .member_of_device(device)
        .ok_or_else(|| "the author is not a device enrolled in this plan".to_owned())?;
    judge_signature(&plan, device, change, signatures)?;
    // Revoked in the author's own view: made after the device knew of it. A change concurrent
    // with the revocation (made offline before it arrived) is judged as before.
    if plan.device(device).is_some_and(|d| d.revoked_at.is_some()) {
        return refuse(REVOKED);
    }
    let author = Author {
        member_key: member.member_id.to_string(),
        role: member.role,
    };
    let expanded = change.decode();
    let actor = change.actor_id();
    let start = change.start_op().get();
    let mut created: HashMap<u64, Place> = HashMap::new();
    let mut texts: HashMap<&ObjectId, TextWrite> = HashMap::new();
    // A text edit is one operation per character, all on the same object: resolved once.
    let mut resolved: HashMap<&ObjectId, Place> = HashMap::new();
    for (index, op) in expanded.operations.iter().enumerate() {
        let place = match resolved.get(&op.obj) {
            Some(place) => place.clone(),
            None => {
                let place = resolve(work, actor, &created, &op.obj)?;
                resolved.insert(&op.obj, place.clone());
                place
            }
        };
        let target = match &op.key {
            Key::Map(key) => {
                let mut path = place.path.clone();
                path.push(key.to_string());
                judge_map_op(work, &author, &place, &path, op)?;
                path
            }
            Key::Seq(_) => {
                judge_text_op(work, &author, &place, op, &mut texts)?;
                place.path.clone()
            }
        };
        if let OpType::Make(_) = op.action {
            created.insert(
                start + index as u64,
                Place {
                    path: target,
                    created_here: true,
                    exid: None,
                },
            );
        }
    }
    judge_text_lengths(work, change, &texts)
}

/// The first change of a plan: it must create this plan and enroll its author as a
/// counselor device — the first counselor device of a plan is its creator.
fn judge_creation(
    work: &Automerge,
    plan_id: PlanId,
    change: &Change,
    signatures: &Signatures,
) -> Rule {
    if !change.deps().is_empty() {
        return refuse("a plan starts with its creation");
    }
    let mut scratch = work.fork();
    scratch
        .apply_changes([change.clone()])
        .map_err(|_| "cannot be applied".to_owned())?;
    let plan = read_plan(&scratch).map_err(|_| "the first change must create a plan".to_owned())?;
    if plan.plan_id != plan_id {
        return refuse("the plan id does not match the document");
    }
    let creator = DeviceId::from_actor(change.actor_id())
        .and_then(|d| plan.member_of_device(d))
        .filter(|m| m.role == table::CREATES_PLANS);
    if creator.is_none() {
        return refuse("a plan is created by a counselor device enrolled in it");
    }
    // The creation records its author's key itself: it must already carry its signature.
    if let Some(device) = DeviceId::from_actor(change.actor_id()) {
        judge_signature(&plan, device, change, signatures)?;
    }
    judge_creation_ops(change)
}

/// A change of a device whose public key `plan` records (the author's view) must carry a
/// valid signature by that key over its hash; a device with no recorded key (enrolled by id
/// alone: older plans, peers that cannot sign) is trusted by its actor id as before
/// (SECURITY.md §6).
fn judge_signature(
    plan: &crate::model::Plan,
    device: DeviceId,
    change: &Change,
    signatures: &Signatures,
) -> Rule {
    let Some(key) = plan.device(device).and_then(|d| d.public_key.as_deref()) else {
        return Ok(());
    };
    // The rules let only a valid key into `public_key`; one that does not parse proves nothing.
    let key = PublicKey::parse(key).map_err(|_| FORGED.to_owned())?;
    let hash = change.hash();
    match signatures.get(&hash) {
        Some(signature) if key.verifies(&hash, signature) => Ok(()),
        _ => refuse(FORGED),
    }
}

/// Every operation of a plan's creation change: it writes only paths the role table lets a
/// creation write (the rows of [`table::FIELDS`] marked `at_creation`), each value as local validation
/// would, into objects the change itself makes.
fn judge_creation_ops(change: &Change) -> Rule {
    const ONLY_SKELETON: &str = "a plan's creation writes only its skeleton, members and devices";
    let expanded = change.decode();
    let actor = change.actor_id();
    let start = change.start_op().get();
    let mut created: HashMap<u64, Vec<String>> = HashMap::new();
    let mut title_chars = 0usize;
    for (index, op) in expanded.operations.iter().enumerate() {
        let parent = match &op.obj {
            ObjectId::Root => Vec::new(),
            ObjectId::Id(id) if &id.1 == actor => created
                .get(&id.0)
                .cloned()
                .ok_or_else(|| "writes to an object that is not in the plan".to_owned())?,
            ObjectId::Id(_) => return refuse("writes to an object that is not in the plan"),
        };
        let target = match &op.key {
            Key::Map(key) => {
                let mut path = parent;
                path.push(key.to_string());
                let parts: Vec<&str> = path.iter().map(String::as_str).collect();
                if !table::field(&parts).is_some_and(|f| f.at_creation) {
                    return refuse(ONLY_SKELETON);
                }
                if !matches!(op.action, OpType::Make(_) | OpType::Put(_)) {
                    return refuse("uses an operation plans do not use");
                }
                let kind = kind_of(&parts).ok_or_else(|| ONLY_SKELETON.to_owned())?;
                if !kind_matches(kind, &op.action) {
                    return refuse("changes the type of a known field");
                }
                if let Some(text) = str_value(op) {
                    if !text.chars().all(validate::label_char) {
                        return refuse("writes a character text does not hold");
                    }
                }
                judge_value(&parts, op)?;
                path
            }
            Key::Seq(_) => {
                let title = parent.len() == 1 && parent[0] == k::TITLE;
                let Some(text) = str_value(op).filter(|_| title) else {
                    return refuse(ONLY_SKELETON);
                };
                if !text.chars().all(validate::label_char) {
                    return refuse("writes a character text does not hold");
                }
                title_chars += text.chars().count();
                if title_chars > MAX_LABEL {
                    return refuse("writes text longer than allowed");
                }
                parent
            }
        };
        if let OpType::Make(_) = op.action {
            created.insert(start + index as u64, target);
        }
    }
    Ok(())
}

fn resolve(
    work: &Automerge,
    actor: &ActorId,
    created: &HashMap<u64, Place>,
    obj: &ObjectId,
) -> Result<Place, String> {
    let op_id = match obj {
        ObjectId::Root => {
            return Ok(Place {
                path: Vec::new(),
                created_here: false,
                exid: Some(automerge::ROOT),
            })
        }
        ObjectId::Id(op_id) => op_id,
    };
    if &op_id.1 == actor {
        if let Some(place) = created.get(&op_id.0) {
            return Ok(place.clone());
        }
    }
    let exid = work
        .import_obj(&obj_key(op_id))
        .map_err(|_| "writes to an object that is not in the plan".to_owned())?;
    let parents = work
        .parents(&exid)
        .map_err(|_| "writes to an object that is not in the plan".to_owned())?;
    let path = parents
        .path()
        .into_iter()
        .map(|(_, prop)| match prop {
            Prop::Map(key) => key,
            Prop::Seq(index) => index.to_string(),
        })
        .collect();
    Ok(Place {
        path,
        created_here: false,
        exid: Some(exid),
    })
}

/// The kind of value a schema path holds, from its row of the role table.
fn kind_of(path: &[&str]) -> Option<Kind> {
    table::field(path).map(|f| f.kind)
}

fn kind_matches(kind: Kind, action: &OpType) -> bool {
    match (kind, action) {
        (Kind::Map, OpType::Make(ObjType::Map)) => true,
        (Kind::Text, OpType::Make(ObjType::Text)) => true,
        (Kind::Str, OpType::Put(ScalarValue::Str(_))) => true,
        (Kind::Int, OpType::Put(ScalarValue::Int(_) | ScalarValue::Uint(_))) => true,
        (Kind::Int, OpType::Put(ScalarValue::F64(f))) => f.fract() == 0.0,
        (
            Kind::Number,
            OpType::Put(ScalarValue::F64(_) | ScalarValue::Int(_) | ScalarValue::Uint(_)),
        ) => true,
        _ => false,
    }
}

fn str_value(op: &Op) -> Option<&str> {
    match &op.action {
        OpType::Put(ScalarValue::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn number_value(op: &Op) -> Option<f64> {
    match &op.action {
        OpType::Put(ScalarValue::F64(f)) => Some(*f),
        OpType::Put(ScalarValue::Int(n)) => Some(*n as f64),
        OpType::Put(ScalarValue::Uint(n)) => Some(*n as f64),
        _ => None,
    }
}

fn int_value(op: &Op) -> Option<i64> {
    match &op.action {
        OpType::Put(ScalarValue::Int(n)) => Some(*n),
        OpType::Put(ScalarValue::Uint(n)) => i64::try_from(*n).ok(),
        OpType::Put(ScalarValue::F64(f)) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// A GAS level as local validation accepts it.
fn is_gas_level(value: i64) -> bool {
    i8::try_from(value).is_ok_and(|level| validate::gas_level(level).is_ok())
}

/// A rating (mood, craving) as local validation accepts it.
fn is_rating(value: i64) -> bool {
    u8::try_from(value).is_ok_and(|rating| validate::rating("rating", rating).is_ok())
}

fn goal_status(work: &Automerge, goal: &str) -> Option<GoalStatus> {
    let goal = crate::model::GoalId::parse(goal).ok()?;
    let obj = goal_obj(work, goal).ok()?;
    get_string(work, &obj, k::STATUS)?.parse().ok()
}

fn judge_map_op(
    work: &Automerge,
    author: &Author,
    place: &Place,
    path: &[String],
    op: &Op,
) -> Rule {
    match &op.action {
        OpType::Delete => return judge_settling(work, author, place, path, op),
        OpType::Increment(_) | OpType::MarkBegin(..) | OpType::MarkEnd(_) => {
            return refuse("uses an operation plans do not use")
        }
        OpType::Make(_) | OpType::Put(_) => {}
    }
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let kind = kind_of(&parts).ok_or_else(|| "writes outside the plan's schema".to_owned())?;
    if !kind_matches(kind, &op.action) {
        return refuse("changes the type of a known field");
    }
    if let Some(text) = str_value(op) {
        if text.chars().count() > MAX_TEXT {
            return refuse("writes text longer than allowed");
        }
    }
    // An object-valued field is made once; making it again would replace what others wrote.
    if matches!(op.action, OpType::Make(_)) && !place.created_here && exists(work, path) {
        return refuse("replaces a field that already exists");
    }
    judge_role(work, author, place, &parts, op)?;
    judge_value(&parts, op)?;
    judge_characters(&parts, op)
}

/// Refuses control characters in a string field as local validation does: a check-in's note
/// is free text (newline and tab allowed), every other string field is one line.
fn judge_characters(parts: &[&str], op: &Op) -> Rule {
    let Some(text) = str_value(op) else {
        return Ok(());
    };
    let allowed = match parts {
        [k::GOALS, _, k::CHECKINS, _, k::NOTE] => validate::free_text_char,
        _ => validate::label_char,
    };
    if text.chars().all(allowed) {
        Ok(())
    } else {
        refuse("writes a character text does not hold")
    }
}

/// Who may write a field of the plan: its row of the role table ([`table`]).
fn judge_role(work: &Automerge, author: &Author, place: &Place, parts: &[&str], op: &Op) -> Rule {
    if let [k::GOALS, goal] = parts {
        if crate::model::GoalId::parse(goal).is_err() {
            return refuse("a goal's key must be a goal id");
        }
    }
    // Who writes a key is the row's business; that it is written once is this check's.
    if let [k::DEVICES, _, k::PUBLIC_KEY] = parts {
        let path: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        if !place.created_here && exists(work, &path) {
            return refuse("a device's public key is written once");
        }
    }
    let value = match &op.action {
        OpType::Put(ScalarValue::Str(s)) => Value::Str(s),
        OpType::Put(ScalarValue::F64(f)) => Value::Number(*f),
        OpType::Put(ScalarValue::Int(n)) => Value::Int(*n),
        OpType::Put(ScalarValue::Uint(n)) => i64::try_from(*n).map_or(Value::Other, Value::Int),
        _ => Value::Other,
    };
    let write = Write {
        path: parts,
        fresh: place.created_here,
        value,
    };
    table::judge(author.writer(), write, &|goal| goal_status(work, goal))
}

/// Refuses a value that local validation never writes, checked with the same functions
/// (`model::validate`), so that a replica accepts every value a local edit can write and no
/// other. Fields local validation does not bound (ids, times, statuses) pass.
fn judge_value(parts: &[&str], op: &Op) -> Rule {
    let label = |field| str_value(op).is_some_and(|s| validate::label(field, s).is_ok());
    let date = |field| str_value(op).is_some_and(|s| validate::date(field, s).is_ok());
    let number = || number_value(op).is_some_and(|n| validate::number("number", n).is_ok());
    let (valid, what) = match parts {
        [k::GOALS, _, k::STATUS] => {
            return match str_value(op).map(str::parse::<GoalStatus>) {
                Some(Ok(_)) => Ok(()),
                _ => refuse("writes an unknown goal status"),
            }
        }
        [k::REVIEW_ON] => (date("review date"), "review date"),
        [k::MEMBERS, _, k::NAME] => (label("name"), "name"),
        [k::MEMBERS, _, k::ROLE] => (
            str_value(op).is_some_and(|r| r.parse::<Role>().is_ok()),
            "role",
        ),
        [k::DEVICES, _, k::LABEL] => (label("device label"), "device label"),
        [k::DEVICES, _, k::PUBLIC_KEY] => (
            str_value(op).is_some_and(|key| crate::authorship::PublicKey::parse(key).is_ok()),
            "public key",
        ),
        [k::GOALS, _, k::LIFE_AREA] => {
            (str_value(op) == Some("") || label("life area"), "life area")
        }
        [k::GOALS, _, k::OBJECTIVES, _, k::MEASURE | k::UNIT]
        | [k::GOALS, _, k::INTERVENTIONS, _, k::FREQUENCY] => (label("label"), "label"),
        [k::GOALS, _, k::OBJECTIVES, _, k::DUE_ON] => (date("due date"), "due date"),
        [k::GOALS, _, k::OBJECTIVES, _, k::TARGET] => (number(), "target"),
        [k::GOALS, _, k::GAS, k::WEIGHT] => (
            number_value(op).is_some_and(|w| validate::gas_weight(w).is_ok()),
            "GAS weight",
        ),
        [k::GOALS, _, k::GAS, k::BASELINE] | [k::GOALS, _, k::CHECKINS, _, k::GAS_LEVEL] => {
            if int_value(op).is_some_and(is_gas_level) {
                return Ok(());
            }
            return refuse(format!(
                "writes a GAS level outside {}..{}",
                validate::GAS_LEVELS.start(),
                validate::GAS_LEVELS.end()
            ));
        }
        [k::GOALS, _, k::CHECKINS, _, k::MOOD | k::CRAVING] => {
            if int_value(op).is_some_and(is_rating) {
                return Ok(());
            }
            return refuse(format!(
                "writes a rating outside {}..{}",
                validate::RATINGS.start(),
                validate::RATINGS.end()
            ));
        }
        [k::GOALS, _, k::CHECKINS, _, k::LOCAL_DATE] => (date("date"), "check-in date"),
        [k::GOALS, _, k::CHECKINS, _, k::TZ_OFFSET_MIN] => (
            int_value(op)
                .and_then(|m| i32::try_from(m).ok())
                .is_some_and(|m| validate::tz_offset(m).is_ok()),
            "time-zone offset",
        ),
        [k::GOALS, _, k::CHECKINS, _, k::VALUE] => (number(), "check-in value"),
        [k::GOALS, _, k::CHECKINS, _, k::NOTE] => (
            str_value(op).is_some_and(|s| validate::optional_text("note", s).is_ok()),
            "note",
        ),
        _ => (true, ""),
    };
    if valid {
        Ok(())
    } else {
        refuse(format!("writes an invalid {what}"))
    }
}

/// A delete of a map key is allowed only when it settles a conflict: it removes some of the
/// key's concurrent values and one survives. It is then judged as writing the survivor.
fn judge_settling(
    work: &Automerge,
    author: &Author,
    place: &Place,
    path: &[String],
    op: &Op,
) -> Rule {
    let (Some(obj), Some(key)) = (&place.exid, path.last()) else {
        return refuse("nothing in a plan is deleted");
    };
    let removed = |id: &automerge::ObjId| match id {
        automerge::ObjId::Id(counter, actor, _) => {
            op.pred.iter().any(|p| p.0 == *counter && &p.1 == actor)
        }
        automerge::ObjId::Root => false,
    };
    let values = work.get_all(obj, key.as_str()).unwrap_or_default();
    let survivor = values.iter().find(|(_, id)| !removed(id));
    match survivor {
        Some((automerge::Value::Scalar(value), _)) => {
            let as_put = Op {
                action: OpType::Put(value.as_ref().clone()),
                obj: op.obj.clone(),
                key: op.key.clone(),
                pred: op.pred.clone(),
                insert: false,
            };
            judge_map_op(work, author, place, path, &as_put)
        }
        _ => refuse("nothing in a plan is deleted"),
    }
}

fn exists(work: &Automerge, path: &[String]) -> bool {
    let mut obj = automerge::ROOT;
    for (i, key) in path.iter().enumerate() {
        match work.get(&obj, key.as_str()) {
            Ok(Some((value, id))) => {
                if i + 1 == path.len() {
                    return true;
                }
                if !value.is_object() {
                    return false;
                }
                obj = id;
            }
            _ => return false,
        }
    }
    false
}

/// One operation of a text edit (a character inserted or deleted). Who may write the field
/// is judged once per text object; what the change writes into it is counted to bound its
/// length (see [`judge_text_lengths`]).
fn judge_text_op<'a>(
    work: &Automerge,
    author: &Author,
    place: &Place,
    op: &'a Op,
    texts: &mut HashMap<&'a ObjectId, TextWrite>,
) -> Rule {
    match &op.action {
        OpType::Put(ScalarValue::Str(_)) | OpType::Delete => {}
        _ => return refuse("uses an operation plans do not use"),
    }
    let write = match texts.get_mut(&op.obj) {
        Some(write) => write,
        None => {
            let parts: Vec<&str> = place.path.iter().map(String::as_str).collect();
            // Text made by this same change (a goal's proposal) is written by whoever the
            // row lets write a new object's fields.
            let write = Write {
                path: &parts,
                fresh: place.created_here,
                value: Value::Characters,
            };
            table::judge(author.writer(), write, &|goal| goal_status(work, goal))?;
            let existing = match (&place.exid, place.created_here) {
                (Some(exid), false) => work.text(exid).map(|t| t.chars().count()).unwrap_or(0),
                _ => 0,
            };
            texts.entry(&op.obj).or_insert(TextWrite {
                path: place.path.clone(),
                existing,
                written: 0,
            })
        }
    };
    if let Some(text) = str_value(op) {
        write.written += text.chars().count();
        // Local validation refuses control characters (NUL, ESC, CR, C1, ...) in every text
        // but newline and tab, and any control character in the title (a label: one line).
        let title = write.path.len() == 1 && write.path[0] == k::TITLE;
        let allowed = if title {
            validate::label_char
        } else {
            validate::free_text_char
        };
        if !text.chars().all(allowed) {
            return refuse("writes a character text does not hold");
        }
    }
    Ok(())
}

/// What a change writes into one text object: enough to bound the text's length after it.
struct TextWrite {
    path: Vec<String>,
    /// Characters in the text before the change (in the author's view).
    existing: usize,
    /// Characters the change writes into it (inserted, or put over an element).
    written: usize,
}

/// The longest a text field may be, as local validation bounds it: the plan's title is a
/// label, every other text is free text.
fn text_limit(path: &[String]) -> usize {
    match path {
        [title] if title == k::TITLE => MAX_LABEL,
        _ => MAX_TEXT,
    }
}

/// Refuses a change that leaves a text longer than local validation allows — judged on the
/// text the change leaves in its author's view (`work`), never on a merge with concurrent
/// edits: two honest edits may merge over the limit, and every replica must judge alike.
/// Characters are counted as local validation counts them (`chars`). The bound "existing plus
/// written" settles nearly every change; a long rewrite (which deletes as much as it writes)
/// is measured exactly on a copy with the change applied.
fn judge_text_lengths(
    work: &Automerge,
    change: &Change,
    texts: &HashMap<&ObjectId, TextWrite>,
) -> Rule {
    let over: Vec<(&&ObjectId, &TextWrite)> = texts
        .iter()
        .filter(|(_, t)| t.existing + t.written > text_limit(&t.path))
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    let mut after = work.fork();
    after
        .apply_changes([change.clone()])
        .map_err(|_| "cannot be applied".to_owned())?;
    for (obj, write) in over {
        let ObjectId::Id(op_id) = obj else {
            return refuse("writes outside the plan's schema");
        };
        let length = after
            .import_obj(&obj_key(op_id))
            .ok()
            .and_then(|obj| after.text(&obj).ok())
            .map(|text| text.chars().count())
            .ok_or_else(|| "writes to an object that is not in the plan".to_owned())?;
        if length > text_limit(&write.path) {
            return refuse("writes text longer than allowed");
        }
    }
    Ok(())
}

/// An object id as `import_obj` reads it.
fn obj_key(op_id: &automerge::legacy::OpId) -> String {
    format!("{}@{}", op_id.0, op_id.1.to_hex_string())
}
