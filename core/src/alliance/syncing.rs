//! Sync messages in and out of a store: generating them, judging and merging what peers send,
//! own changes refused elsewhere or set aside after a copied store, and sync state per peer.

use super::*;

impl Alliance {
    /// Snapshot and chunk sizes of a plan's stored document.
    pub fn document_sizes(&self, plan: PlanId) -> Result<DocumentSizes> {
        self.inner
            .lock()
            .store
            .read(|tx| store::document_sizes(tx, &plan.to_string()))?
            .ok_or_else(|| Error::not_found("plan", plan))
    }

    /// The bytes of `save()` of a plan's document (what compaction stores as its snapshot).
    pub fn saved_document(&self, plan: PlanId) -> Result<Vec<u8>> {
        self.reading(|inner| Ok(inner.open(plan)?.doc.save()))
    }

    /// Stores a plan that arrives outside sync (an imported file) from all its changes. This
    /// store must not hold the plan yet. Every change is judged by its author's role exactly
    /// as a change from a peer is (see [`rules::remote`]); unless every one is accepted and
    /// none is missing a dependency, nothing is stored.
    pub(crate) fn import_changes(
        &self,
        plan: PlanId,
        changes: Vec<Change>,
        signatures: &remote::Signatures,
    ) -> Result<()> {
        self.writing(|inner| {
            let stored = inner.docs.get(&plan).is_some_and(|open| open.stored)
                || inner
                    .store
                    .read(|tx| store::has_document(tx, &plan.to_string()))?;
            if stored {
                return Err(Error::invalid(
                    "plan",
                    "this store already holds it: sync instead of importing",
                ));
            }
            let mut doc = PlanDoc::empty(inner.actor());
            let judgement =
                remote::judge(doc.automerge(), plan, changes, &HashSet::new(), signatures);
            if let Some(refusal) = judgement.refused.first() {
                return Err(Error::not_allowed(format!(
                    "an imported change was refused: {}",
                    refusal.rule
                )));
            }
            if !judgement.held.is_empty() || judgement.accepted.is_empty() {
                return Err(Error::Malformed(
                    "the imported plan misses some of its changes".into(),
                ));
            }
            doc.automerge_mut()
                .apply_changes(judgement.accepted.iter().cloned())?;
            if !doc.is_plan() {
                return Err(Error::Malformed(
                    "the imported document holds no plan".into(),
                ));
            }
            inner.sessions.retain(|(p, _), _| *p != plan);
            inner.held.forget_plan(plan);
            let kept: Vec<crate::authorship::carrier::Record> = judgement
                .accepted
                .iter()
                .filter_map(|c| Some((c.hash(), *signatures.get(&c.hash())?)))
                .collect();
            inner.received = judgement.accepted.iter().map(Change::hash).collect();
            inner.docs.insert(plan, OpenDoc::new(doc, false));
            let doc_id = plan.to_string();
            let stored = inner.persist(plan, |tx| store::save_signatures(tx, &doc_id, &kept));
            inner.received.clear();
            stored
        })?;
        self.notify(plan);
        Ok(())
    }

    // ---- transport-agnostic sync: bytes in, bytes out ----

    /// The next Automerge sync message for `peer` about `plan`, or None when the peer has
    /// everything we know of. Works for a plan not stored here yet (asks the peer for it).
    pub fn generate_sync_message(
        &self,
        plan: PlanId,
        peer: impl Into<SyncPeer>,
    ) -> Result<Option<Vec<u8>>> {
        let peer = peer.into();
        self.reading(|inner| Self::generate_for(inner, plan, peer))
    }

    pub(super) fn generate_for(
        inner: &mut Inner,
        plan: PlanId,
        peer: SyncPeer,
    ) -> Result<Option<Vec<u8>>> {
        let state = load_session(inner, plan, &peer)?;
        // Held changes wait outside Automerge, which therefore never asks for what they
        // lack (a peer's Bloom filter false positive can skip a change while sending its
        // successors): ask for it here, or the peers resend the successors forever.
        let held_deps = inner.held.missing_deps(plan);
        let open = inner.open_or_empty(plan)?;
        let mut state = state;
        let mut message = open.doc.automerge().generate_sync_message(&mut state);
        if let Some(message) = message.as_mut() {
            let doc = open.doc.automerge();
            for dep in held_deps {
                if automerge::ReadDoc::get_change_by_hash(doc, &dep).is_none()
                    && !message.need.contains(&dep)
                {
                    message.need.push(dep);
                }
            }
            message.need.sort();
        }
        inner.sessions.insert((plan, peer), state);
        message
            .map(|message| inner.sign_outgoing(plan, message))
            .transpose()
    }

    /// Applies a sync message from `peer` in one SQLite transaction (document, sync state and
    /// refusal records together). Every change in it is first judged by its author's role
    /// (see [`rules::remote`]); refused changes, and anything built on them, are not applied.
    /// Creates the plan here when it is new.
    pub fn receive_sync_message(
        &self,
        plan: PlanId,
        peer: impl Into<SyncPeer>,
        message: &[u8],
    ) -> Result<SyncReceipt> {
        self.receive_checked(plan, peer.into(), message, None)
    }

    /// [`Alliance::receive_sync_message`] of a message a relay's device pushed with its
    /// token: kept only when the plan stays bound to its tokens as `voucher` says (see
    /// [`crate::token::TokenVoucher`]); otherwise nothing is stored and the error is
    /// [`Error::NotAllowed`].
    pub fn receive_vouched(
        &self,
        plan: PlanId,
        peer: impl Into<SyncPeer>,
        message: &[u8],
        voucher: &crate::token::TokenVoucher,
    ) -> Result<SyncReceipt> {
        self.receive_checked(plan, peer.into(), message, Some(voucher))
    }

    pub(super) fn receive_checked(
        &self,
        plan: PlanId,
        peer: SyncPeer,
        message: &[u8],
        voucher: Option<&crate::token::TokenVoucher>,
    ) -> Result<SyncReceipt> {
        let (signatures, message) = crate::authorship::carrier::split(message)?;
        let message =
            sync::Message::decode(message).map_err(|e| Error::SyncMessage(e.to_string()))?;
        // Read and bounded before the store lock is taken: one peer's large message does not
        // stall the others (`docs/design.md`, Hostile input).
        let budgets = self.budgets();
        let screened = incoming::screen(&message, &budgets)?;
        let (receipt, changed) = self.writing(|inner| {
            let listed_before = match voucher {
                Some(_) => vouch::listed(inner, plan),
                None => Vec::new(),
            };
            // A message that fails leaves what waits for a dependency as it was, whichever
            // conversation sent it.
            let held_before = inner.held.before(plan);
            let in_flight_before = inner.in_flight.get(&plan).cloned();
            let received = Self::receive_in(inner, plan, &peer, message, (screened, signatures))
                .and_then(|received| match voucher {
                    Some(voucher) => {
                        vouch::check(inner, plan, &listed_before, voucher).map(|()| received)
                    }
                    None => Ok(received),
                });
            if received.is_err() {
                inner.held.restore(held_before);
                match in_flight_before {
                    Some(signatures) => inner.in_flight.insert(plan, signatures),
                    None => inner.in_flight.remove(&plan),
                };
                inner.docs.remove(&plan);
                inner.sessions.remove(&(plan, peer.clone()));
            }
            received
        })?;
        if changed {
            self.notify(plan);
        }
        Ok(receipt)
    }

    /// [`Alliance::receive_sync_message`] inside its transaction; returns what it refused or
    /// set aside, and whether the stored document changed.
    pub(super) fn receive_in(
        inner: &mut Inner,
        plan: PlanId,
        peer: &SyncPeer,
        mut message: sync::Message,
        (screened, signatures): (incoming::Screened, Vec<crate::authorship::carrier::Record>),
    ) -> Result<(SyncReceipt, bool)> {
        let mut kept_signatures = inner.in_flight.remove(&plan).unwrap_or_default();
        let mut state = load_session(inner, plan, peer)?;
        let mut known_refused = inner.refused_hashes(plan)?;
        let budgets = inner.budgets;
        let own_actor = inner.identity.as_ref().map(|me| me.device_id.actor());
        // Changes that arrived before their dependencies get another chance now.
        let mut earlier = if message.changes.is_empty() {
            None
        } else {
            Some(inner.held.take(plan))
        };
        let mut still_held = Vec::new();
        let mut received: HashSet<ChangeHash> = HashSet::new();
        let open = inner.open_or_empty(plan)?;
        let mut refused: Vec<remote::Refusal> = Vec::new();
        // Own changes taken out of the document because the peer holds others with the same
        // seq: replayed once the peer's are in.
        let mut forked: Vec<Change> = Vec::new();
        // The judge's working copy already holds every accepted change: adopted in place
        // of the document instead of applying them a second time.
        let mut adopted = false;
        let mut before_heads = open.doc.heads();
        if !message.changes.is_empty() {
            let (mut incoming, oversized) =
                screened.changes_in(open.doc.automerge(), own_actor.as_ref(), &budgets)?;
            // Changes refused before they were decoded: recorded like any refusal, and
            // everything built on them is refused with them.
            for change in oversized {
                if known_refused.insert(change.hash) {
                    refused.push(remote::refusal_of(
                        open.doc.automerge(),
                        change.hash,
                        &change.actor,
                        change.timestamp,
                        crate::budgets::TOO_MANY_OPERATIONS,
                    ));
                }
            }
            if let Some(earlier) = earlier.as_mut() {
                incoming.extend(earlier.changes());
            }
            signing::keep_incoming(&mut kept_signatures, signatures, &incoming);
            if let Some(actor) = &own_actor {
                // A forgery under this device's actor is no sign of another copy: it is left
                // to the judge, which refuses it (SECURITY.md §6).
                let genuine = signing::genuinely_own(open.doc.automerge(), actor, &kept_signatures);
                let own: Vec<Change> = incoming
                    .iter()
                    .filter(|c| c.actor_id() == actor && genuine(c))
                    .cloned()
                    .collect();
                if let Some(drop) = own_fork(open.doc.automerge(), &own, actor) {
                    let (base, left_out) = rebase::without(open.doc.automerge(), &drop)?;
                    *open.doc.automerge_mut() = base.with_actor(actor.clone());
                    open.rewrite = true;
                    forked = left_out;
                    before_heads = open.doc.heads();
                    // What this conversation believed shared may name changes taken out.
                    state = sync::State::new();
                }
            }
            let judgement = remote::judge_within(
                open.doc.automerge(),
                plan,
                incoming,
                &known_refused,
                &budgets,
                &kept_signatures,
            );
            received.extend(judgement.accepted.iter().map(Change::hash));
            still_held = judgement.held;
            refused.extend(judgement.refused);
            match judgement.applied {
                Some(mut applied) if !judgement.accepted.is_empty() => {
                    applied.set_actor(open.doc.automerge().get_actor().clone());
                    *open.doc.automerge_mut() = applied;
                    adopted = true;
                }
                _ => {}
            }
            message.changes = Vec::<Vec<u8>>::new().into();
        }
        let last_sent_heads = state.last_sent_heads.clone();
        let shared_before = state.shared_heads.clone();
        open.doc
            .automerge_mut()
            .receive_sync_message(&mut state, message)?;
        if adopted {
            // What receiving the changes would have done to the sync state (as
            // `receive_sync_message` does it): unless the peer's heads are all known here
            // (then they are the shared heads, as set above), the shared heads advance by
            // the changes just applied, plus the peer's heads known here; and, the message
            // having carried changes, what we last sent is not taken as acknowledged.
            let doc = open.doc.automerge();
            let theirs = state.their_heads.clone().unwrap_or_default();
            let known: Vec<ChangeHash> = theirs
                .iter()
                .filter(|h| doc.get_change_by_hash(h).is_some())
                .copied()
                .collect();
            if known.len() != theirs.len() {
                let after: HashSet<ChangeHash> = doc.get_heads().into_iter().collect();
                let before: HashSet<ChangeHash> = before_heads.into_iter().collect();
                let mut shared: Vec<ChangeHash> = after
                    .iter()
                    .filter(|h| !before.contains(h))
                    .chain(shared_before.iter().filter(|h| after.contains(h)))
                    .chain(known.iter())
                    .copied()
                    .collect();
                shared.sort();
                shared.dedup();
                state.shared_heads = shared;
            }
            state.last_sent_heads = last_sent_heads;
        }
        // The peer holds changes we refused: count them as settled so that neither side
        // keeps asking for or offering them in this session.
        let all_refused: HashSet<ChangeHash> = known_refused
            .iter()
            .copied()
            .chain(refused.iter().map(|r| r.hash))
            .collect();
        if state
            .their_heads
            .as_ref()
            .is_some_and(|heads| heads.iter().any(|h| all_refused.contains(h)))
        {
            state.their_heads = Some(open.doc.heads());
        }
        let now = clock::now_ms();
        let set_aside = if forked.is_empty() {
            Vec::new()
        } else {
            replay_own(open, own_actor.as_ref(), &forked, FORKED, now)?
        };
        let has_content = !open.doc.heads().is_empty();
        // Signatures of the changes let in are stored beside them; those of held changes wait.
        let accepted_signatures: Vec<crate::authorship::carrier::Record> = received
            .iter()
            .filter_map(|hash| Some((*hash, *kept_signatures.get(hash)?)))
            .collect();
        if earlier.is_some() {
            // The held changes were judged again: only theirs wait. A message without changes
            // judged nothing, and every signature kept for a held change keeps waiting (a
            // heads-only message between a change and its late dependency once dropped them,
            // and the change was then refused as unsigned).
            let held_hashes: HashSet<ChangeHash> = still_held.iter().map(Change::hash).collect();
            kept_signatures.retain(|hash, _| held_hashes.contains(hash));
        }
        if !kept_signatures.is_empty() {
            inner.in_flight.insert(plan, kept_signatures);
        }
        if let Some(earlier) = earlier {
            let budgets = inner.budgets;
            inner.held.hold(plan, peer, earlier, still_held, &budgets)?;
        }
        let encoded = state.encode();
        inner.sessions.insert((plan, peer.clone()), state);
        let records: Vec<RefusedChange> = refused
            .iter()
            .map(|r| RefusedChange {
                change_hash: r.hash.to_string(),
                peer: peer.key.clone(),
                device_id: r.actor.to_hex_string(),
                member_id: r.member,
                rule: r.rule.clone(),
                change_at: r.at,
                recorded_at: now,
            })
            .collect();
        let doc_id = plan.to_string();
        let write_records = |tx: &rusqlite::Connection| -> Result<()> {
            store::save_signatures(tx, &doc_id, &accepted_signatures)?;
            for record in &records {
                store::record_refusal(tx, plan, record)?;
            }
            for (record, bytes) in &set_aside {
                store::record_set_aside(tx, plan, record, bytes)?;
            }
            if !set_aside.is_empty() {
                // Other conversations' states may name the changes taken out.
                store::delete_plan_sync_states(tx, &doc_id)?;
            }
            Ok(())
        };
        let changed = if has_content {
            inner.received = received;
            let persisted = inner.persist(plan, |tx| {
                write_records(tx)?;
                store::save_sync_state(tx, &doc_id, &peer.key, &encoded)
            });
            inner.received.clear();
            persisted?
        } else {
            inner.store.write(write_records)?;
            false
        };
        if !set_aside.is_empty() {
            inner
                .sessions
                .retain(|(p, who), _| *p != plan || who == peer);
        }
        if let Some(set) = inner.refused.get_mut(&plan) {
            set.extend(refused.iter().map(|r| r.hash));
        }
        let receipt = SyncReceipt {
            refused: records,
            set_aside: set_aside.into_iter().map(|(record, _)| record).collect(),
        };
        Ok((receipt, changed))
    }

    /// A peer refused some of this device's own changes of `plan` (`refusals`: change hash in
    /// hex, rule), as a relay tells a device in its `refused` notice. Each refused change is
    /// taken out of the plan here too, kept with its bytes (see [`Alliance::set_aside_changes`]),
    /// and every later own change built on it is replayed as a new change that does not
    /// depend on it, so later edits are not lost behind it. Hashes that are not this device's
    /// changes in the plan, and refusals that only say "builds on a refused change", are
    /// ignored. Returns what was set aside; observers hear of the plan when it changed.
    pub fn own_changes_refused(
        &self,
        plan: PlanId,
        refusals: &[(String, String)],
    ) -> Result<Vec<SetAsideChange>> {
        let set_aside = self.writing(|inner| {
            let Some(me) = inner.identity.clone() else {
                return Ok(Vec::new());
            };
            let actor = me.device_id.actor();
            let open = inner.open(plan)?;
            let rules: HashMap<ChangeHash, &str> = refusals
                .iter()
                .filter(|(_, rule)| rule != remote::BUILDS_ON_REFUSED)
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
            let (base, left_out) = rebase::without(open.doc.automerge(), &roots)?;
            *open.doc.automerge_mut() = base.with_actor(actor.clone());
            open.rewrite = true;
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

    /// Forgets the in-memory sync sessions of this conversation with `peer` (call on
    /// disconnect); the next conversation starts from the persisted state, so only news is
    /// sent. Other conversations with the same peer are left alone.
    pub fn end_sync_session(&self, peer: impl Into<SyncPeer>) {
        let peer = peer.into();
        let mut inner = self.inner.lock();
        inner.sessions.retain(|(_, p), _| *p != peer);
        inner.held.drop_conversation(&peer);
        inner.drop_unstored_docs();
    }

    /// Changes peers sent that still wait for a dependency they did not send, over all plans
    /// and conversations (bounded by [`Budgets`]; dropped when their conversation ends).
    pub fn held_changes(&self) -> HeldCount {
        self.inner.lock().held.total()
    }

    /// Sets what peers' changes may cost this store (the defaults suit devices and relays).
    pub fn set_budgets(&self, budgets: Budgets) {
        self.inner.lock().budgets = budgets;
    }

    /// What peers' changes may cost this store.
    pub fn budgets(&self) -> Budgets {
        self.inner.lock().budgets
    }

    /// Re-encrypts this store under `new_key` in one transaction; the next open needs the new
    /// key. A store opened without a key cannot be rekeyed.
    pub fn rekey(&self, new_key: &StoreKey) -> Result<()> {
        self.inner.lock().store.rekey(new_key)
    }

    /// Problems SQLite finds in the store's file (its integrity check, and for an encrypted
    /// store every page's authentication code); empty when the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.inner.lock().store.integrity_check()
    }

    /// Ends the sessions with `peer` and deletes its persisted sync state too: for ephemeral
    /// peers (they keep nothing, so there is nothing to resume), called when they disconnect.
    pub fn forget_sync_peer(&self, peer: impl Into<SyncPeer>) -> Result<()> {
        let peer = peer.into();
        let mut inner = self.inner.lock();
        inner.sessions.retain(|(_, p), _| p.key != peer.key);
        inner.held.drop_key(&peer.key);
        inner.drop_unstored_docs();
        inner
            .store
            .write(|tx| store::delete_sync_states(tx, &peer.key))?;
        Ok(())
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
pub(super) fn replay_own(
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

pub(super) fn load_session(
    inner: &mut Inner,
    plan: PlanId,
    peer: &SyncPeer,
) -> Result<sync::State> {
    if let Some(state) = inner.sessions.remove(&(plan, peer.clone())) {
        return Ok(state);
    }
    let stored = inner
        .store
        .read(|tx| store::load_sync_state(tx, &plan.to_string(), &peer.key))?;
    Ok(match stored {
        Some(bytes) => sync::State::decode(&bytes).unwrap_or_else(|_| sync::State::new()),
        None => sync::State::new(),
    })
}
