//! Local edits: each checks the role table (`rules::check`), writes one Automerge change and
//! stores it in one SQLite transaction.

use super::*;

impl Alliance {
    /// Starts a plan with this counselor and a client. Returns its id.
    pub fn create_plan(&self, new: &NewPlan) -> Result<PlanId> {
        self.create_plan_with_key(new, None)
    }

    /// [`Alliance::create_plan`], recording `client_key` as the public key of
    /// `new.client_device` (from its enrollment code, see [`Alliance::enrollment`]). This
    /// device's own public key is always recorded.
    pub fn create_plan_with_key(
        &self,
        new: &NewPlan,
        client_key: Option<crate::authorship::PublicKey>,
    ) -> Result<PlanId> {
        validate::label("title", &new.title)?;
        validate::label("client name", &new.client_name)?;
        let plan = PlanId::new();
        self.writing(|inner| {
            let me = inner.identity()?;
            if me.role != rules::table::CREATES_PLANS {
                return Err(Error::not_allowed("only a counselor creates plans"));
            }
            let client = new.client_member.unwrap_or_default();
            if client == me.member_id {
                return Err(Error::invalid("client member", "is this counselor"));
            }
            if new.client_device == Some(me.device_id) {
                return Err(Error::invalid("client device", "is this device"));
            }
            let now = clock::now_ms();
            let my_key = inner.key.as_ref().map(|key| key.public_key());
            let mut doc = PlanDoc::empty(me.device_id.actor());
            doc.change("created the plan", now, |tx| {
                write::init_plan(tx, plan, new.title.trim(), now)?;
                write::put_member(tx, me.member_id, &me.name, Role::Counselor, now)?;
                write::put_device(tx, me.device_id, me.member_id, "creator", now)?;
                if let Some(key) = &my_key {
                    write::set_device_public_key(tx, me.device_id, key)?;
                }
                write::put_member(tx, client, new.client_name.trim(), Role::Client, now)?;
                if let Some(device) = new.client_device {
                    write::put_device(tx, device, client, "client device", now)?;
                    if let Some(key) = &client_key {
                        write::set_device_public_key(tx, device, key)?;
                    }
                }
                Ok(())
            })?;
            inner.store_new(plan, doc)
        })?;
        self.notify(plan);
        Ok(plan)
    }

    /// Runs one local edit: lets `edit` check the rules against the plan's members and
    /// devices (kept in memory across edits, see [`EditView`]) and write operations in one
    /// Automerge change, then stores it in one SQLite transaction. If `edit` fails, nothing is
    /// written anywhere. The model `edit` sees holds no goal (see [`Alliance::edit_scoped`]):
    /// reading a whole plan on every edit would cost more than the edit.
    pub(super) fn edit<T>(
        &self,
        plan: PlanId,
        description: &str,
        edit: impl FnOnce(&EditModel<'_>, &Identity, &mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.edit_scoped((plan, Reads::Roles, Writes::Plan), description, edit)
    }

    /// The edit of [`Alliance::edit`], told what its rules read of a goal (`reads`) and what
    /// it may write (`writes`: what the change may do to the plan's catalog row, and which of
    /// the [`EditView`] stays current after it).
    pub(super) fn edit_scoped<T>(
        &self,
        (plan, reads, writes): (PlanId, Reads, Writes),
        description: &str,
        edit: impl FnOnce(&EditModel<'_>, &Identity, &mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let lane = self.lanes.of(plan);
        let in_lane = lane.lock();
        let out = self.writing(|inner| {
            let me = inner.identity()?;
            let open = inner.open(plan)?;
            let mut view = EditView::current(open.edit_view.take(), &open.doc)?;
            let mut status = None;
            let whole = match reads {
                Reads::Roles => None,
                Reads::Status(goal) => {
                    status = view.status(&open.doc, goal).map(|s| (goal, s));
                    None
                }
                Reads::Goal(goal, checkins) => Some(open.doc.read_for_edit(Some(goal), checkins)?),
            };
            let model = EditModel {
                plan: whole.as_ref().unwrap_or(&view.roles),
                status,
            };
            match model.device(me.device_id) {
                Some(device) if device.revoked_at.is_some() => {
                    return Err(Error::not_allowed("this device was revoked from the plan"))
                }
                Some(device) if device.member_id == me.member_id => {}
                _ => return Err(inner.not_enrolled(&model)),
            }
            let now = clock::now_ms();
            let mut out = None;
            let change = open.doc.change(description, now, |tx| {
                out = Some(edit(&model, &me, tx)?);
                Ok(())
            });
            let change = match change {
                Ok(change) => change,
                Err(error) => {
                    // Nothing was applied: the view is still current.
                    open.edit_view = Some(view);
                    return Err(error);
                }
            };
            if change.is_none() {
                open.edit_view = Some(view);
                return Ok((out, false));
            }
            open.edit_view = view.after(writes, open.doc.heads());
            inner.persist_edit(plan, writes.catalog())?;
            Ok((out, true))
        })?;
        // Observers are told once the lane is free: one may edit the plan at once.
        drop(in_lane);
        let (out, changed) = out;
        if changed {
            self.notify(plan);
        }
        out.ok_or_else(|| Error::Malformed("the edit produced no result".into()))
    }

    /// Renames the plan (counselor).
    pub fn set_title(&self, plan: PlanId, title: &str) -> Result<()> {
        validate::label("title", title)?;
        self.edit(plan, "renamed the plan", |model, me, tx| {
            rules::check(model, me.member_id, Edit::Title)?;
            write::set_title(tx, title.trim())
        })
    }

    /// Sets the date of the plan's next review (counselor).
    pub fn set_review_on(&self, plan: PlanId, date: &str) -> Result<()> {
        validate::date("review date", date)?;
        self.edit(plan, "set the review date", |model, me, tx| {
            rules::check(model, me.member_id, Edit::ReviewOn)?;
            write::set_review_on(tx, date)
        })
    }

    /// Enrolls a device in the plan (a counselor: any member's; a client: their own).
    pub fn enroll_device(&self, plan: PlanId, new: &NewDevice) -> Result<()> {
        self.enroll_device_keyed(plan, new, None)
    }

    /// [`Alliance::enroll_device`], recording `key` as the device's public key in the same
    /// change (see [`Alliance::enroll_with_key`]).
    pub(super) fn enroll_device_keyed(
        &self,
        plan: PlanId,
        new: &NewDevice,
        key: Option<crate::authorship::PublicKey>,
    ) -> Result<()> {
        validate::label("device label", &new.label)?;
        if let Some((name, _)) = &new.new_member {
            validate::label("name", name)?;
        }
        self.edit(plan, "enrolled a device", |model, me, tx| {
            let now = clock::now_ms();
            if let Some(existing) = model.device(new.device) {
                if existing.member_id != new.member {
                    return Err(Error::invalid(
                        "device id",
                        "already enrolled for another member",
                    ));
                }
            }
            if model.member(new.member).is_none() {
                let (name, role) = new.new_member.as_ref().ok_or_else(|| {
                    Error::invalid("member", "not in this plan: give a name and role")
                })?;
                rules::check(model, me.member_id, Edit::Member)?;
                write::put_member(tx, new.member, name.trim(), *role, now)?;
            }
            rules::check(
                model,
                me.member_id,
                Edit::EnrollDevice { member: new.member },
            )?;
            match model.device(new.device) {
                None => write::put_device(tx, new.device, new.member, new.label.trim(), now)?,
                Some(device) if key.is_some() => signing::may_record_key(device, me)?,
                Some(_) => {}
            }
            if let Some(key) = &key {
                write::set_device_public_key(tx, new.device, key)?;
            }
            Ok(())
        })
    }

    /// Issues a relay token for an enrolled device (counselor): stores only its SHA-256 in the
    /// plan (`devices.<id>.token_hash`) and returns the token, to be handed to the device in
    /// person. `reuse` stores the hash of a token the device already holds (one token for all
    /// of a device's plans); otherwise a fresh one is made. Issuing again replaces the hash, so
    /// the old token stops opening this plan.
    pub fn issue_device_token(
        &self,
        plan: PlanId,
        device: DeviceId,
        reuse: Option<&str>,
    ) -> Result<String> {
        let token = match reuse {
            Some(token) => {
                crate::token::check_token(token)?;
                token.to_ascii_lowercase()
            }
            None => crate::token::generate_token(),
        };
        let hash = crate::token::token_hash(&token);
        self.edit(plan, "issued a relay token", |model, me, tx| {
            rules::check(model, me.member_id, Edit::IssueToken)?;
            if model.device(device).is_none() {
                return Err(Error::not_found("device", device));
            }
            write::set_device_token_hash(tx, device, &hash)
        })?;
        Ok(token)
    }

    /// Revokes an enrolled device (counselor): relays refuse its token for this plan from the
    /// moment they receive the change.
    pub fn revoke_device(&self, plan: PlanId, device: DeviceId) -> Result<()> {
        self.edit(plan, "revoked a device", |model, me, tx| {
            rules::check(model, me.member_id, Edit::Revoke)?;
            if model.device(device).is_none() {
                return Err(Error::not_found("device", device));
            }
            write::revoke_device(tx, device, clock::now_ms())
        })
    }

    /// The plans a relay token opens here, with the device it was issued to (a relay's
    /// access check).
    pub fn plans_of_token(&self, token_hash: &str) -> Result<Vec<(PlanId, DeviceId)>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::plans_of_token(tx, token_hash))
    }

    /// Proposes a goal in the proposer's words. Returns its id.
    pub fn propose_goal(&self, plan: PlanId, words: &str) -> Result<GoalId> {
        validate::words("client words", words)?;
        let goal = GoalId::new();
        self.edit(plan, "proposed a goal", |model, me, tx| {
            rules::check(model, me.member_id, Edit::ProposeGoal)?;
            let now = clock::now_ms();
            write::add_goal(tx, goal, me.member_id, words, &format!("{now:015}"), now)?;
            Ok(goal)
        })
    }

    /// Changes a goal's words, clinical statement, life area or status.
    pub fn edit_goal(&self, plan: PlanId, goal: GoalId, edit: &GoalEdit) -> Result<()> {
        validate::goal_edit(edit)?;
        let description = describe_goal_edit(edit);
        let writes = match edit.status {
            Some(_) => Writes::GoalStatus(goal),
            None => Writes::InGoal(goal),
        };
        let scope = (plan, Reads::Status(goal), writes);
        self.edit_scoped(scope, &description, |model, me, tx| {
            let current = model.status(goal)?;
            rules::check(
                model,
                me.member_id,
                Edit::EditGoal {
                    goal,
                    status: current,
                    edit,
                },
            )?;
            if let Some(status) = edit.status {
                if !current.can_become(status) {
                    return Err(Error::invalid(
                        "status",
                        format!("a goal does not go from {current} to {status}"),
                    ));
                }
            }
            write::edit_goal(tx, goal, edit)
        })
    }

    /// Adds a SMART objective to a goal (counselor). Returns its id.
    pub fn add_objective(
        &self,
        plan: PlanId,
        goal: GoalId,
        objective: &NewObjective,
    ) -> Result<ObjectiveId> {
        validate::objective(objective)?;
        let id = ObjectiveId::new();
        let scope = (plan, Reads::Status(goal), Writes::InGoal(goal));
        self.edit_scoped(scope, "added an objective", |model, me, tx| {
            model.status(goal)?;
            rules::check(model, me.member_id, Edit::Objective)?;
            write::add_objective(tx, goal, id, objective)?;
            Ok(id)
        })
    }

    /// Adds an intervention to a goal (counselor). Returns its id.
    pub fn add_intervention(
        &self,
        plan: PlanId,
        goal: GoalId,
        intervention: &NewIntervention,
    ) -> Result<InterventionId> {
        validate::intervention(intervention)?;
        let id = InterventionId::new();
        let scope = (plan, Reads::Status(goal), Writes::InGoal(goal));
        self.edit_scoped(scope, "added an intervention", |model, me, tx| {
            model.status(goal)?;
            if let Some(owner) = intervention.owner {
                if model.member(owner).is_none() {
                    return Err(Error::not_found("member", owner));
                }
            }
            rules::check(model, me.member_id, Edit::Intervention)?;
            write::add_intervention(tx, goal, id, intervention)?;
            Ok(id)
        })
    }

    /// Describes a GAS level (both roles) or sets the weight or baseline (counselor).
    pub fn set_gas(&self, plan: PlanId, goal: GoalId, edit: &GasEdit) -> Result<()> {
        validate::gas_edit(edit)?;
        let description = match edit {
            GasEdit::Level { .. } => "described a GAS level",
            GasEdit::Weight(_) => "set a GAS weight",
            GasEdit::Baseline(_) => "set a GAS baseline",
        };
        let scope = (plan, Reads::Status(goal), Writes::InGoal(goal));
        self.edit_scoped(scope, description, |model, me, tx| {
            model.status(goal)?;
            rules::check(model, me.member_id, Edit::Gas(edit))?;
            write::set_gas(tx, goal, edit)
        })
    }

    /// Records this member's agreement to the goal's current content.
    pub fn agree(&self, plan: PlanId, goal: GoalId) -> Result<()> {
        let scope = (plan, Reads::Goal(goal, false), Writes::InGoal(goal));
        self.edit_scoped(scope, "agreed to a goal", |model, me, tx| {
            let current = model.goal(goal)?;
            rules::check(
                model,
                me.member_id,
                Edit::Agree {
                    member: me.member_id,
                },
            )?;
            let already = current
                .agreement
                .agreements
                .iter()
                .any(|a| a.member_id == me.member_id && a.content_hash == current.content_hash);
            if !already {
                write::agree(
                    tx,
                    goal,
                    me.member_id,
                    &current.content_hash,
                    clock::now_ms(),
                )?;
            }
            Ok(())
        })
    }

    /// Records a check-in by this member (or a correction of one of theirs). Returns its id.
    pub fn check_in(&self, plan: PlanId, goal: GoalId, checkin: &NewCheckIn) -> Result<CheckInId> {
        validate::checkin(checkin)?;
        let id = CheckInId::new();
        let description = if checkin.corrects.is_some() {
            "corrected a check-in"
        } else {
            "checked in"
        };
        // Only a correction reads the goal and its check-ins (to find the one it corrects); a
        // new check-in of a goal that does not exist fails when it is written.
        let reads = match checkin.corrects {
            Some(_) => Reads::Goal(goal, true),
            None => Reads::Roles,
        };
        // A check-in writes only inside its goal (no catalog field, member, device or status).
        let scope = (plan, reads, Writes::InGoal(goal));
        self.edit_scoped(scope, description, |model, me, tx| {
            let corrects = match checkin.corrects {
                Some(original) => Some(
                    model
                        .goal(goal)?
                        .checkins
                        .iter()
                        .find(|c| c.checkin_id == original)
                        .ok_or_else(|| Error::not_found("check-in", original))?,
                ),
                None => None,
            };
            rules::check(
                model,
                me.member_id,
                Edit::CheckIn {
                    by: me.member_id,
                    corrects,
                },
            )?;
            let now = clock::now_ms();
            let tz_offset_min = checkin
                .tz_offset_min
                .unwrap_or_else(clock::local_offset_min);
            let local_date = match (&checkin.local_date, corrects) {
                (Some(day), _) => day.clone(),
                (None, Some(original)) => original.local_date.clone(),
                (None, None) => clock::local_date(now, tz_offset_min),
            };
            write::add_checkin(
                tx,
                goal,
                &write::CheckInEntry {
                    id,
                    by: me.member_id,
                    at: now,
                    local_date: &local_date,
                    tz_offset_min,
                    gas_level: checkin.gas_level,
                    value: checkin.value,
                    mood: checkin.mood,
                    craving: checkin.craving,
                    note: &checkin.note,
                    corrects: checkin.corrects,
                },
            )?;
            Ok(id)
        })
    }
}

pub(super) fn describe_goal_edit(edit: &GoalEdit) -> String {
    let mut fields = Vec::new();
    if edit.client_words.is_some() {
        fields.push("client words".to_owned());
    }
    if edit.clinical_statement.is_some() {
        fields.push("clinical statement".to_owned());
    }
    if edit.life_area.is_some() {
        fields.push("life area".to_owned());
    }
    if let Some(status) = edit.status {
        fields.push(format!("status → {status}"));
    }
    format!("edited a goal: {}", fields.join(", "))
}

/// What a local edit's rules read of the plan besides its members and devices.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reads {
    /// No goal.
    Roles,
    /// That the goal exists, and its status ([`EditModel::status`]).
    Status(GoalId),
    /// The whole goal ([`Plan::goal`]), with its check-ins when set: read from the document.
    Goal(GoalId, bool),
}

/// What a local edit may write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Writes {
    /// Anything: the plan's catalog row and device index are recomputed, and the
    /// [`EditView`] is read again by the next edit.
    Plan,
    /// Only inside this existing goal (its words, GAS scale, objectives, interventions,
    /// agreements, check-ins), not its status: no catalog field (title, members, devices, goal
    /// count) changes, and the [`EditView`] stays current.
    InGoal(GoalId),
    /// [`Writes::InGoal`], the goal's status included: the view forgets that status.
    GoalStatus(GoalId),
}

impl Writes {
    fn catalog(self) -> Catalog {
        match self {
            Writes::Plan => Catalog::Refresh,
            Writes::InGoal(_) | Writes::GoalStatus(_) => Catalog::Touch,
        }
    }
}

/// What the role rules of local edits read of a plan — its members and devices, and the status
/// of each goal an edit named — kept in memory across edits ([`OpenDoc::edit_view`]), so that an
/// edit reads nothing of the document for its rules. It is current at `heads`: any other change
/// to the document (a sync, a rewrite, another process's write) moves the heads and the next
/// edit reads it again; a local edit that writes only inside one goal ([`Writes::InGoal`],
/// [`Writes::GoalStatus`]) cannot change members, devices or another goal's status, so the view
/// moves to the heads after it (`docs/design.md`, A local edit).
pub(super) struct EditView {
    /// The document heads this view was read at (or carried to).
    heads: Vec<ChangeHash>,
    /// The plan with its members and devices and no goal (see [`PlanDoc::read_for_edit`]).
    roles: Plan,
    /// The status of each existing goal an edit named.
    statuses: HashMap<GoalId, crate::model::GoalStatus>,
}

impl EditView {
    /// `cached` when it is current for `doc`, otherwise read from `doc`.
    fn current(cached: Option<Self>, doc: &PlanDoc) -> Result<Self> {
        let heads = doc.heads();
        match cached {
            Some(view) if view.heads == heads => Ok(view),
            _ => Ok(Self {
                roles: doc.read_for_edit(None, false)?,
                heads,
                statuses: HashMap::new(),
            }),
        }
    }

    /// The status of `goal` (None when the plan has no such goal), read once per view.
    fn status(&mut self, doc: &PlanDoc, goal: GoalId) -> Option<crate::model::GoalStatus> {
        if let Some(status) = self.statuses.get(&goal) {
            return Some(*status);
        }
        let status = doc.goal_status(goal)?;
        self.statuses.insert(goal, status);
        Some(status)
    }

    /// The view after a local change that wrote `writes` and left the document at `heads`:
    /// None when it may no longer be current.
    fn after(mut self, writes: Writes, heads: Vec<ChangeHash>) -> Option<Self> {
        match writes {
            Writes::Plan => return None,
            Writes::InGoal(_) => {}
            Writes::GoalStatus(goal) => {
                self.statuses.remove(&goal);
            }
        }
        self.heads = heads;
        Some(self)
    }
}

/// What a local edit judges by: a plan holding the members and devices (and the goal the edit
/// reads whole, [`Reads::Goal`]; otherwise no goal), and the status of the goal named by
/// [`Reads::Status`].
pub(super) struct EditModel<'a> {
    plan: &'a Plan,
    status: Option<(GoalId, crate::model::GoalStatus)>,
}

impl EditModel<'_> {
    /// The status of `goal`. Errors: [`Error::NotFound`] when the plan has no such goal (or
    /// the edit read neither it nor its status).
    pub(super) fn status(&self, goal: GoalId) -> Result<crate::model::GoalStatus> {
        match self.status {
            Some((id, status)) if id == goal => Ok(status),
            _ => self.plan.goal(goal).map(|g| g.status),
        }
    }
}

impl std::ops::Deref for EditModel<'_> {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        self.plan
    }
}
