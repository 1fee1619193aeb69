//! A copied identity (SECURITY.md §6; `docs/design.md`, "A copied identity"): this device found
//! another copy of its store writing under its device id, so it leaves that identity to the
//! other copy, takes a new device id and key for the same member, keeps its own edits that
//! lost the collision aside until it is enrolled again, and then replays them as new changes
//! of its new device. No edit is lost: until the replay they wait, with their bytes, in
//! `set_aside_changes`.

use std::collections::HashSet;

use automerge::{ActorId, Change, ChangeHash, ReadDoc};

use super::{Alliance, Inner, OpenDoc};
use crate::authorship::{DeviceKey, Enrollment};
use crate::clock;
use crate::error::{Error, Result};
use crate::model::{DeviceId, Identity, Plan, PlanId, SetAsideChange};
use crate::plan::rebase;
use crate::rules::remote::COPIED_IDENTITY;
use crate::store;

/// Why own changes wait in `set_aside_changes` (its `reason`): another copy of this store used
/// the identity that made them. They are replayed under the new identity once it is enrolled.
pub const COPIED: &str =
    "another copy of this store used its identity: replayed once this device is enrolled again";

/// What a device that found it was copied knows (see [`Alliance::copied_identity`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedIdentity {
    /// The device id this store used before, now left to the other copy (the latest one, if
    /// it happened more than once).
    pub former_device: DeviceId,
    /// When this store found the other copy (UTC milliseconds).
    pub detected_at: i64,
    /// Its new device id and public key: the code a counselor enrolls it from.
    pub enrollment: Enrollment,
    /// Plans that enroll a former device of this store but not its new one: it cannot write
    /// there until it is enrolled again ([`Error::CopiedIdentity`]).
    pub not_enrolled: Vec<PlanId>,
    /// Plans where own edits wait to be replayed once this device is enrolled there.
    pub waiting: Vec<PlanId>,
}

/// What receiving (or a peer's refusal) did about a copied identity in one plan.
#[derive(Default)]
pub(super) struct Settled {
    /// Own changes set aside now, with their bytes: replayed already, or waiting.
    pub(super) set_aside: Vec<(SetAsideChange, Vec<u8>)>,
    /// Changes set aside earlier and replayed now: (original hash, hash of the replay).
    pub(super) replayed: Vec<(String, String)>,
    /// This device's current identity is the one another copy uses: it takes a new one.
    pub(super) retire: bool,
}

impl Settled {
    /// Records what was set aside and replayed (in the transaction that stores the plan).
    pub(super) fn record(&self, tx: &rusqlite::Connection, plan: PlanId) -> Result<()> {
        for (record, bytes) in &self.set_aside {
            store::record_set_aside(tx, plan, record, bytes)?;
        }
        for (original, replay) in &self.replayed {
            store::mark_replayed(tx, plan, original, replay)?;
        }
        Ok(())
    }
}

/// Own changes of a plan as one receive sees them (see [`settle`]).
pub(super) struct OwnChanges {
    /// This device's actor now.
    pub(super) me: ActorId,
    /// Actors of this store's former identities (none on most stores).
    pub(super) former: Vec<ActorId>,
    /// Own changes set aside earlier, still waiting for this device to be enrolled.
    pub(super) waiting: Vec<Change>,
}

impl OwnChanges {
    fn is_own(&self, actor: &ActorId) -> bool {
        actor == &self.me || self.former.contains(actor)
    }
}

/// After a peer's changes are in `open`: `forked` are the changes taken out of it because the
/// peer holds others with an own actor's change numbers (another copy wrote those). They wait
/// (every own one of them; the others, built on them, are only recorded), and when this
/// device's current identity is not the copied one and the plan enrolls it, every waiting
/// own change is replayed now as a new change of it.
pub(super) fn settle(
    open: &mut OpenDoc,
    own: &OwnChanges,
    forked: Vec<Change>,
    now: i64,
) -> Result<Settled> {
    let mut settled = Settled {
        retire: forked.iter().any(|c| c.actor_id() == &own.me),
        ..Settled::default()
    };
    let mut pending: Vec<Change> = own.waiting.clone();
    for change in forked {
        if own.is_own(change.actor_id()) {
            pending.push(change.clone());
        }
        let record = SetAsideChange {
            change_hash: change.hash().to_string(),
            reason: COPIED.to_owned(),
            replayed_as: None,
            recorded_at: now,
        };
        settled
            .set_aside
            .push((record, change.raw_bytes().to_vec()));
    }
    if settled.retire || pending.is_empty() || !enrolls(open, &own.me) {
        return Ok(settled);
    }
    // One actor's changes at a time, each in the order its author made them.
    let mut actors: Vec<ActorId> = Vec::new();
    for change in &pending {
        if !actors.contains(change.actor_id()) {
            actors.push(change.actor_id().clone());
        }
    }
    let mut replayed: Vec<(ChangeHash, ChangeHash)> = Vec::new();
    for actor in actors {
        let mut theirs: Vec<Change> = pending
            .iter()
            .filter(|c| c.actor_id() == &actor)
            .cloned()
            .collect();
        theirs.sort_by_key(Change::seq);
        theirs.dedup_by_key(|c| c.hash());
        let done = rebase::replay_as(open.doc.automerge_mut(), &theirs, &own.me)?;
        replayed.extend(done.replayed);
    }
    for (original, replay) in replayed {
        let original = original.to_string();
        match settled
            .set_aside
            .iter_mut()
            .find(|(r, _)| r.change_hash == original)
        {
            Some((record, _)) => record.replayed_as = Some(replay.to_string()),
            None => settled.replayed.push((original, replay.to_string())),
        }
    }
    Ok(settled)
}

/// Whether the plan in `open` enrolls the device of `actor`, unrevoked.
fn enrolls(open: &OpenDoc, actor: &ActorId) -> bool {
    let Some(device) = DeviceId::from_actor(actor) else {
        return false;
    };
    open.doc
        .read_for_edit(None, false)
        .ok()
        .and_then(|plan| plan.device(device).map(|d| d.revoked_at.is_none()))
        .unwrap_or(false)
}

impl Inner {
    /// Own changes of `plan` for a receive: None on a store without identity (a relay).
    pub(super) fn own_changes(&mut self, plan: PlanId) -> Result<Option<OwnChanges>> {
        let Some(me) = &self.identity else {
            return Ok(None);
        };
        let former = self
            .store
            .read(store::retired_devices)?
            .into_iter()
            .map(|(device, _)| device.actor())
            .collect::<Vec<_>>();
        let waiting = if former.is_empty() {
            Vec::new()
        } else {
            self.store
                .read(|tx| store::waiting_changes(tx, plan, COPIED))?
                .into_iter()
                .map(|bytes| Change::from_bytes(bytes).map_err(|e| Error::Malformed(e.to_string())))
                .collect::<Result<_>>()?
        };
        Ok(Some(OwnChanges {
            me: me.device_id.actor(),
            former,
            waiting,
        }))
    }

    /// Leaves this device's identity to the other copy: a new device id and key for the same
    /// member, written in the open transaction; every open plan writes as the new device.
    pub(super) fn retire_identity(&mut self, now: i64) -> Result<()> {
        let old = self.identity()?;
        let new = Identity {
            device_id: DeviceId::new(),
            ..old.clone()
        };
        // What waits for its signature was made under the identity being left: its key signs
        // it now, or never.
        self.sign_waiting(None)?;
        let key = DeviceKey::generate()?;
        self.store
            .write(|tx| store::retire_identity(tx, old.device_id, &new, &key, now))?;
        let actor = new.device_id.actor();
        for open in self.docs.values_mut() {
            open.doc.automerge_mut().set_actor(actor.clone());
        }
        self.identity = Some(new);
        self.key = Some(key);
        tracing::warn!(
            "another copy of this store used its identity: this device took a new device id \
             and key, and waits to be enrolled again"
        );
        Ok(())
    }

    /// Takes the identity (and key) the store holds when it is not the one in memory: another
    /// connection made it (`init`) or left a copied identity, or this one's write that left it
    /// rolled back. Called when another connection wrote.
    pub(super) fn reload_identity(&mut self) -> Result<()> {
        let stored = self.store.read(store::load_identity)?;
        let device = |identity: &Option<Identity>| identity.as_ref().map(|i| i.device_id);
        if device(&stored) == device(&self.identity) {
            return Ok(());
        }
        self.key = self.store.read(store::load_device_key)?;
        if let Some(me) = &stored {
            let actor = me.device_id.actor();
            for open in self.docs.values_mut() {
                open.doc.automerge_mut().set_actor(actor.clone());
            }
        }
        self.identity = stored;
        Ok(())
    }

    /// The error of a write to `model`, a plan that does not enroll this device: a copied
    /// identity ([`Error::CopiedIdentity`]) when it enrolls a former device of this store.
    pub(super) fn not_enrolled(&mut self, model: &Plan) -> Error {
        let former = self.store.read(store::retired_devices).unwrap_or_default();
        if former
            .iter()
            .any(|(device, _)| model.device(*device).is_some())
        {
            if let Ok(enrollment) = self.enrollment() {
                return Error::CopiedIdentity {
                    enrollment: enrollment.to_string(),
                };
            }
        }
        Error::not_allowed("only devices enrolled in a plan write to it")
    }

    /// [`Alliance::own_changes_refused`] when a peer refused own changes as a copied identity
    /// (rule [`COPIED_IDENTITY`]): they, and every own change built on them, wait for this
    /// device to be enrolled under a new identity, which it takes now when the refused
    /// changes were made under its current one. None when no such refusal names an own
    /// change of the plan.
    pub(super) fn refused_as_copy(
        &mut self,
        plan: PlanId,
        refusals: &[(String, String)],
    ) -> Result<Option<Vec<SetAsideChange>>> {
        let copied: HashSet<ChangeHash> = refusals
            .iter()
            .filter(|(_, rule)| rule == COPIED_IDENTITY)
            .filter_map(|(hash, _)| hash.parse().ok())
            .collect();
        if copied.is_empty() {
            return Ok(None);
        }
        let Some(own) = self.own_changes(plan)? else {
            return Ok(None);
        };
        let open = self.open(plan)?;
        let roots: HashSet<ChangeHash> = copied
            .into_iter()
            .filter(|hash| {
                open.doc
                    .automerge()
                    .get_change_by_hash(hash)
                    .is_some_and(|c| own.is_own(c.actor_id()))
            })
            .collect();
        if roots.is_empty() {
            return Ok(None);
        }
        open.mark_rewrite();
        let (base, left_out) = rebase::without(open.doc.automerge(), &roots)?;
        *open.doc.automerge_mut() = base.with_actor(own.me.clone());
        let now = clock::now_ms();
        let settled = settle(open, &own, left_out, now)?;
        let doc_id = plan.to_string();
        self.persist(plan, |tx| {
            settled.record(tx, plan)?;
            store::delete_plan_sync_states(tx, &doc_id).map(|_| ())
        })?;
        self.sessions.retain(|(p, _), _| *p != plan);
        if settled.retire {
            self.retire_identity(now)?;
        }
        Ok(Some(
            settled.set_aside.into_iter().map(|(r, _)| r).collect(),
        ))
    }
}

impl Alliance {
    /// Whether this store found another copy of itself using its identity (a restored
    /// backup, a copied phone) and took a new one; None when it never did. Shells show it
    /// with the enrollment code until [`CopiedIdentity::not_enrolled`] is empty, and a
    /// counselor enrolls the device from that code (`docs/design.md`, "A copied identity").
    pub fn copied_identity(&self) -> Result<Option<CopiedIdentity>> {
        self.reading(|inner| {
            let former = inner.store.read(store::retired_devices)?;
            let Some((former_device, detected_at)) = former.last().copied() else {
                return Ok(None);
            };
            let me = inner.identity()?;
            let enrolled: HashSet<PlanId> = inner
                .store
                .read(|tx| store::plans_of_device(tx, me.device_id))?
                .into_iter()
                .collect();
            let mut not_enrolled = Vec::new();
            for (device, _) in &former {
                for plan in inner.store.read(|tx| store::plans_of_device(tx, *device))? {
                    if !enrolled.contains(&plan) && !not_enrolled.contains(&plan) {
                        not_enrolled.push(plan);
                    }
                }
            }
            not_enrolled.sort();
            let waiting = inner.store.read(|tx| store::plans_waiting(tx, COPIED))?;
            Ok(Some(CopiedIdentity {
                former_device,
                detected_at,
                enrollment: inner.enrollment()?,
                not_enrolled,
                waiting,
            }))
        })
    }
}
