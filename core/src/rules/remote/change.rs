//! One change from a peer, judged operation by operation: each operation's object is mapped
//! to a plan path and the write is checked against its row of the role table
//! ([`crate::rules::table`]); the author's signature and revocation are checked first, and a
//! plan's creation change is held to the rows marked `at_creation`.

use super::*;

pub(super) type Rule = Result<(), String>;

pub(super) fn refuse<T>(rule: impl Into<String>) -> Result<T, String> {
    Err(rule.into())
}

/// Who wrote the change being judged, and the plan as it stood before it.
pub(super) struct Author {
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
pub(super) struct Place {
    path: Vec<String>,
    pub(super) created_here: bool,
    /// The object's id in the document before this change (None when the change made it).
    pub(super) exid: Option<automerge::ObjId>,
}

/// The plan's members and devices as one view of it holds them, kept by that view's heads:
/// judging a chain of changes that write only goals reads them once, not once per change.
/// Heads name a document's whole content, so what is kept under the heads of the view being
/// judged is what reading it afresh would give.
#[derive(Default)]
pub(super) struct Roster {
    /// The heads (sorted) of the view `plan` was read from, or of that view with changes that
    /// wrote only goals applied.
    at: Vec<ChangeHash>,
    plan: Option<crate::model::Plan>,
    /// Public keys as the plan spells them, parsed (None: one that does not parse): a pure
    /// function of the text, kept across views.
    keys: HashMap<String, Option<PublicKey>>,
}

impl Roster {
    /// The plan read without its goals (members and devices are what judging needs: reading
    /// every goal and check-in per change would cost more than judging it).
    fn read(&mut self, work: &View<'_>) -> Result<(), String> {
        let heads = work.heads();
        if self.at != heads || self.plan.is_none() {
            let plan = read_plan_for_edit(work, None, false)
                .map_err(|_| "the plan cannot be read".to_owned())?;
            self.at = heads;
            self.plan = Some(plan);
        }
        Ok(())
    }

    /// `change`, judged against the view the roster was read from, was let in: when it wrote
    /// only goals, the roster is that of the view with the change applied, whose heads are the
    /// view's but those the change depends on, and the change.
    fn advance(&mut self, change: &Change, wrote_only_goals: bool) {
        if wrote_only_goals {
            self.at.retain(|head| !change.deps().contains(head));
            self.at.push(change.hash());
            self.at.sort();
        } else {
            self.plan = None;
        }
    }
}

pub(super) fn judge_one(
    work: &View<'_>,
    plan_id: PlanId,
    change: &Change,
    signatures: (&Signatures, &mut Roster),
) -> Rule {
    judge_decoded(work, plan_id, (change, None), signatures)
}

/// [`judge_one`] of a change whose operations were decoded already (`decoded`).
pub(super) fn judge_decoded(
    work: &View<'_>,
    plan_id: PlanId,
    (change, decoded): (&Change, Option<&automerge::ExpandedChange>),
    (signatures, roster): (&Signatures, &mut Roster),
) -> Rule {
    if !is_plan(work) {
        return judge_creation(work, plan_id, change, signatures);
    }
    roster.read(work)?;
    let Roster { plan, keys, .. } = &mut *roster;
    let plan = plan
        .as_ref()
        .ok_or_else(|| "the plan cannot be read".to_owned())?;
    let device = DeviceId::from_actor(change.actor_id())
        .ok_or_else(|| "the author is not a device of this plan".to_owned())?;
    let member = plan
        .member_of_device(device)
        .ok_or_else(|| "the author is not a device enrolled in this plan".to_owned())?;
    judge_signature(work, (plan, Some(keys)), device, change, signatures)?;
    // Revoked in the author's own view: made after the device knew of it. A change concurrent
    // with the revocation (made offline before it arrived) is judged as before.
    if plan.device(device).is_some_and(|d| d.revoked_at.is_some()) {
        return refuse(REVOKED);
    }
    let author = Author {
        member_key: member.member_id.to_string(),
        role: member.role,
    };
    // Whether every operation writes inside a goal: then the roster read above still holds.
    let mut wrote_only_goals = true;
    let decoding;
    let expanded = match decoded {
        Some(decoded) => decoded,
        None => {
            decoding = change.decode();
            &decoding
        }
    };
    let actor = change.actor_id();
    let start = change.start_op().get();
    let mut created: HashMap<u64, Place> = HashMap::new();
    let mut texts: HashMap<&ObjectId, TextWrite> = HashMap::new();
    // A text edit is one operation per character, all on the same object: resolved once.
    let mut resolved: HashMap<&ObjectId, Place> = HashMap::new();
    let mut found = Found::default();
    for (index, op) in expanded.operations.iter().enumerate() {
        let place = match resolved.get(&op.obj) {
            Some(place) => place.clone(),
            None => {
                let place = resolve(work, actor, &created, &op.obj)?;
                resolved.insert(&op.obj, place.clone());
                place
            }
        };
        wrote_only_goals &= place.path.first().map(String::as_str) == Some(k::GOALS);
        let ops = &expanded.operations[..index];
        judge_references(work, (actor, start, ops), &place, op, &mut found)?;
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
    judge_text_lengths(work, change, &texts)?;
    roster.advance(change, wrote_only_goals);
    Ok(())
}

/// The index of the character `element` (the id of the operation that inserted it) among
/// the visible characters of the text `exid` in `work`, or None when it is not visible there
/// (deleted, or unknown). Found through Automerge's cursor for the element: one seek, where
/// reading every character's id would cost the length of the text per change judged.
pub(super) fn element_index(
    work: &View<'_>,
    exid: &automerge::ObjId,
    element: &automerge::legacy::OpId,
) -> Option<usize> {
    let cursor = automerge::Cursor::try_from(obj_key(element).as_str()).ok()?;
    let index = work.get_cursor_position(exid, &cursor, None).ok()?;
    // A deleted character's cursor gives the place it was: only the character itself counts.
    (work.get_cursor(exid, index, None).ok()? == cursor).then_some(index)
}

/// The first change of a plan: it must create this plan and enroll its author as a
/// counselor device — the first counselor device of a plan is its creator.
pub(super) fn judge_creation(
    work: &View<'_>,
    plan_id: PlanId,
    change: &Change,
    signatures: &Signatures,
) -> Rule {
    if !change.deps().is_empty() {
        return refuse("a plan starts with its creation");
    }
    judge_creation_references(change)?;
    let mut scratch = work.fork().map_err(|_| "cannot be applied".to_owned())?;
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
        judge_signature(
            &View::whole(&scratch),
            (&plan, None),
            device,
            change,
            signatures,
        )?;
    }
    judge_creation_ops(change)
}

/// A change of a device whose public key `plan` records (the author's view, `view`) must
/// carry a valid signature by that key over its hash. A device with no recorded key (enrolled
/// by id alone: older plans, peers that cannot sign) needs, when the plan pins a relay key, that
/// relay's voucher ([`crate::authorship::voucher`]); in a plan that pins none it is trusted by
/// its actor id as before (SECURITY.md §6).
/// `keys`, when given, keeps the keys parsed (see [`Roster`]).
pub(super) fn judge_signature(
    view: &View<'_>,
    (plan, keys): (
        &crate::model::Plan,
        Option<&mut HashMap<String, Option<PublicKey>>>,
    ),
    device: DeviceId,
    change: &Change,
    signatures: &Signatures,
) -> Rule {
    let Some(text) = plan.device(device).and_then(|d| d.public_key.as_deref()) else {
        return judge_voucher(view, device, change, signatures);
    };
    let parse = |text: &str| PublicKey::parse(text).ok();
    let key = match keys {
        Some(keys) => *keys.entry(text.to_owned()).or_insert_with(|| parse(text)),
        None => parse(text),
    };
    // The rules let only a valid key into `public_key`; one that does not parse proves nothing.
    let key = key.ok_or_else(|| FORGED.to_owned())?;
    let hash = change.hash();
    match signatures.get(&hash) {
        Some(signature) if key.verifies(&hash, signature) => Ok(()),
        _ => refuse(FORGED),
    }
}

/// A keyless device's change in a plan that pins a relay key (in its author's view): accepted
/// only with that relay's voucher for it and its device.
fn judge_voucher(
    view: &View<'_>,
    device: DeviceId,
    change: &Change,
    signatures: &Signatures,
) -> Rule {
    let Some(relay) = crate::plan::read::relay_key(view) else {
        return Ok(());
    };
    // The rules let only a valid key into `relay_key`; one that does not parse vouches nothing.
    let relay = PublicKey::parse(&relay).map_err(|_| UNVOUCHED.to_owned())?;
    let hash = change.hash();
    match signatures.get(&hash) {
        Some(voucher) if voucher::verifies(&relay, &hash, device, voucher) => Ok(()),
        _ => refuse(UNVOUCHED),
    }
}

/// Every operation of a plan's creation change: it writes only paths the role table lets a
/// creation write (the rows of [`table::FIELDS`] marked `at_creation`), each value as local validation
/// would, into objects the change itself makes.
pub(super) fn judge_creation_ops(change: &Change) -> Rule {
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

pub(super) fn resolve(
    work: &View<'_>,
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

pub(super) fn judge_map_op(
    work: &View<'_>,
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
pub(super) fn judge_characters(parts: &[&str], op: &Op) -> Rule {
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
pub(super) fn judge_role(
    work: &View<'_>,
    author: &Author,
    place: &Place,
    parts: &[&str],
    op: &Op,
) -> Rule {
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

/// A delete of a map key is allowed only when it settles a conflict: it removes some of the
/// key's concurrent values and one survives. It is then judged as writing the survivor.
pub(super) fn judge_settling(
    work: &View<'_>,
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

pub(super) fn exists(work: &View<'_>, path: &[String]) -> bool {
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
pub(super) fn judge_text_op<'a>(
    work: &View<'_>,
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
pub(super) struct TextWrite {
    path: Vec<String>,
    /// Characters in the text before the change (in the author's view).
    existing: usize,
    /// Characters the change writes into it (inserted, or put over an element).
    written: usize,
}

/// The longest a text field may be, as local validation bounds it: the plan's title is a
/// label, every other text is free text.
pub(super) fn text_limit(path: &[String]) -> usize {
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
pub(super) fn judge_text_lengths(
    work: &View<'_>,
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
    let mut after = work.fork().map_err(|_| "cannot be applied".to_owned())?;
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
