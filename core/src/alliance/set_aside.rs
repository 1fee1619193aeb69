//! This device's own changes taken out of a plan: those a peer refused (set aside, later ones
//! replayed without them), and the side of a fork another copy of this store made.

use super::*;

impl Alliance {
    /// A peer refused some of this device's own changes of `plan` (`refusals`: change hash in
    /// hex, rule), as a relay tells a device in its `refused` notice. Each refused change is
    /// taken out of the plan here too, kept with its bytes (see [`Alliance::set_aside_changes`]),
    /// and every later own change built on it is replayed as a new change that does not
    /// depend on it, so later edits are not lost behind it. Hashes that are not this device's
    /// changes in the plan, refusals that only say "builds on a refused change", and those for
    /// a missing signature or voucher (the record was lost, not the change wrong), are
    /// ignored. Returns what was set aside; observers hear of the plan when it changed.
    pub fn own_changes_refused(
        &self,
        plan: PlanId,
        refusals: &[(String, String)],
    ) -> Result<Vec<SetAsideChange>> {
        let set_aside = self.writing(|inner| {
            if let Some(set_aside) = inner.refused_as_copy(plan, refusals)? {
                return Ok(set_aside);
            }
            let Some(me) = inner.identity.clone() else {
                return Ok(Vec::new());
            };
            let actor = me.device_id.actor();
            let open = inner.open(plan)?;
            let rules: HashMap<ChangeHash, &str> = refusals
                .iter()
                .filter(|(_, rule)| rule != remote::BUILDS_ON_REFUSED)
                // A refusal for a missing signature or voucher is about the record the change
                // came with, not the change: it stays, and goes again with its proof.
                .filter(|(_, rule)| !crate::authorship::lacks_proof(rule))
                .filter_map(|(hash, rule)| Some((hash.parse().ok()?, rule.as_str())))
                .filter(|(hash, _)| {
                    open.doc
                        .automerge()
                        .get_change_by_hash(hash)
                        .is_some_and(|c| c.actor_id() == &actor)
                })
                .collect();
            if rules.is_empty() {
                return Ok(Vec::new());
            }
            let roots: HashSet<ChangeHash> = rules.keys().copied().collect();
            open.mark_rewrite();
            let (base, left_out) = rebase::without(open.doc.automerge(), &roots)?;
            *open.doc.automerge_mut() = base.with_actor(actor.clone());
            let later: Vec<Change> = left_out
                .iter()
                .filter(|c| !roots.contains(&c.hash()))
                .cloned()
                .collect();
            let now = clock::now_ms();
            let mut set_aside = replay_own(open, Some(&actor), &later, BUILT_ON_REFUSED, now)?;
            for change in left_out.iter().filter(|c| roots.contains(&c.hash())) {
                let rule = rules.get(&change.hash()).copied().unwrap_or_default();
                let record = SetAsideChange {
                    change_hash: change.hash().to_string(),
                    reason: format!("refused by a peer: {rule}"),
                    replayed_as: None,
                    recorded_at: now,
                };
                set_aside.push((record, change.raw_bytes().to_vec()));
            }
            let doc_id = plan.to_string();
            inner.persist(plan, |tx| {
                for (record, bytes) in &set_aside {
                    store::record_set_aside(tx, plan, record, bytes)?;
                }
                store::delete_plan_sync_states(tx, &doc_id)?;
                Ok(())
            })?;
            inner.sessions.retain(|(p, _), _| *p != plan);
            Ok(set_aside.into_iter().map(|(record, _)| record).collect())
        })?;
        if !set_aside.is_empty() {
            self.notify(plan);
        }
        Ok(set_aside)
    }

    /// This device's own changes it took out of `plan` (a forked history, or changes a peer
    /// refused), oldest first, with the change that replays each where there is one.
    pub fn set_aside_changes(&self, plan: PlanId) -> Result<Vec<SetAsideChange>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::list_set_aside(tx, plan))
    }

    /// Changes from peers that the role rules refused, for one plan or all (`None`).
    pub fn refused_changes(&self, plan: Option<PlanId>) -> Result<Vec<(PlanId, RefusedChange)>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::list_refusals(tx, plan))
    }
}

/// The own changes to take out of `doc` when `incoming` holds changes of this device's
/// `actor` that it does not have, with a seq it has already used: another copy of this store
/// (a restored backup, a copied device) wrote them. None when there is no such fork: own
/// changes past the last seq here are simply this device's history coming back.
pub(super) fn own_fork(
    doc: &Automerge,
    incoming: &[Change],
    actor: &ActorId,
) -> Option<HashSet<ChangeHash>> {
    let theirs: Vec<u64> = incoming
        .iter()
        .filter(|c| c.actor_id() == actor && doc.get_change_by_hash(&c.hash()).is_none())
        .map(Change::seq)
        .collect();
    if theirs.is_empty() {
        return None;
    }
    let last = rebase::last_seq(doc, actor);
    let from = theirs.into_iter().filter(|seq| *seq <= last).min()?;
    Some(
        doc.get_changes(&[])
            .iter()
            .filter(|c| c.actor_id() == actor && c.seq() >= from)
            .map(Change::hash)
            .collect(),
    )
}

/// Replays the own changes among `left_out` (taken out of `open`'s document) as new changes
/// and returns a record, with the original bytes, for every change in `left_out`.
fn replay_own(
    open: &mut OpenDoc,
    actor: Option<&ActorId>,
    left_out: &[Change],
    reason: &str,
    now: i64,
) -> Result<Vec<(SetAsideChange, Vec<u8>)>> {
    let own: Vec<Change> = left_out
        .iter()
        .filter(|c| Some(c.actor_id()) == actor)
        .cloned()
        .collect();
    let done = rebase::replay(open.doc.automerge_mut(), &own)?;
    open.rewrite = true;
    let replayed: HashMap<ChangeHash, ChangeHash> = done.replayed.into_iter().collect();
    Ok(left_out
        .iter()
        .map(|change| {
            let record = SetAsideChange {
                change_hash: change.hash().to_string(),
                reason: reason.to_owned(),
                replayed_as: replayed.get(&change.hash()).map(ToString::to_string),
                recorded_at: now,
            };
            (record, change.raw_bytes().to_vec())
        })
        .collect())
}
