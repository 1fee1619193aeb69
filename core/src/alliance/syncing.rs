//! Sync messages in and out of a store: generating them, judging and merging what peers send
//! (own changes set aside live in `set_aside.rs`), and sync state per peer.

use super::set_aside::own_fork;
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
        let mut held_deps = inner.held.missing_deps(plan);
        if let Some(unproven) = inner.unproven.get(&(plan, peer.clone())) {
            held_deps.retain(|dep| !unproven.contains(dep));
        }
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
            let token = voucher.map(|v| v.token_hash.as_str());
            let received =
                Self::receive_in(inner, plan, &peer, message, (screened, signatures, token))
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
        (screened, signatures, token): (
            incoming::Screened,
            Vec<crate::authorship::carrier::Record>,
            Option<&str>,
        ),
    ) -> Result<(SyncReceipt, bool)> {
        // A relay vouches for what a token's own keyless device pushes (SECURITY.md §6).
        let vouching = match token {
            Some(token) if !message.changes.is_empty() => {
                inner.vouching_key()?.map(|key| (key, token))
            }
            _ => None,
        };
        let mut kept_signatures = inner.in_flight.remove(&plan).unwrap_or_default();
        let mut state = load_session(inner, plan, peer)?;
        let mut known_refused = inner.refused_hashes(plan)?;
        // Put back at the end: `open` below holds `inner` until then.
        let mut unproven = inner
            .unproven
            .remove(&(plan, peer.clone()))
            .unwrap_or_default();
        let budgets = inner.budgets;
        let own_actor = inner.identity.as_ref().map(|me| me.device_id.actor());
        let own_changes = inner.own_changes(plan)?;
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
            let sent_now = incoming.len();
            if let Some(earlier) = earlier.as_mut() {
                incoming.extend(earlier.changes());
            }
            signing::keep_incoming(
                &mut kept_signatures,
                signatures,
                &incoming,
                open.doc.automerge(),
            );
            // Only what this message carries: never a change held from another peer.
            if let Some((key, token)) = &vouching {
                let devices = open.doc.device_access();
                let doc = open.doc.automerge();
                relay_voucher::vouch_own(
                    doc,
                    &devices,
                    (key, token),
                    &incoming[..sent_now],
                    &mut kept_signatures,
                );
            }
            // This device's actor, and those it left to another copy of its store.
            let own_actors = own_changes
                .iter()
                .flat_map(|own| std::iter::once(&own.me).chain(&own.former));
            for actor in own_actors {
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
                    let me = open.doc.automerge().get_actor().clone();
                    *open.doc.automerge_mut() = base.with_actor(me);
                    open.rewrite = true;
                    forked.extend(left_out);
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
        unproven.extend(
            refused
                .iter()
                .filter(|r| crate::authorship::lacks_proof(&r.rule))
                .map(|r| r.hash),
        );
        let all_refused: HashSet<ChangeHash> = known_refused
            .iter()
            .copied()
            .chain(refused.iter().map(|r| r.hash))
            .chain(unproven.iter().copied())
            .collect();
        if state
            .their_heads
            .as_ref()
            .is_some_and(|heads| heads.iter().any(|h| all_refused.contains(h)))
        {
            state.their_heads = Some(open.doc.heads());
        }
        let now = clock::now_ms();
        // Own changes another copy of this store took the numbers of wait for this device's
        // new identity; waiting ones are replayed once the plan enrolls it.
        let settled = match &own_changes {
            Some(own) => copied::settle(open, own, forked, now)?,
            None => copied::Settled::default(),
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
        if !unproven.is_empty() {
            inner.unproven.insert((plan, peer.clone()), unproven);
        }
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
            settled.record(tx, plan)?;
            if !settled.set_aside.is_empty() {
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
        if settled.retire {
            inner.retire_identity(now)?;
        }
        if !settled.set_aside.is_empty() {
            inner
                .sessions
                .retain(|(p, who), _| *p != plan || who == peer);
        }
        if let Some(set) = inner.refused.get_mut(&plan) {
            set.extend(
                refused
                    .iter()
                    .filter(|r| !crate::authorship::lacks_proof(&r.rule))
                    .map(|r| r.hash),
            );
        }
        let receipt = SyncReceipt {
            refused: records,
            set_aside: settled
                .set_aside
                .into_iter()
                .map(|(record, _)| record)
                .collect(),
            copied_identity: settled.retire,
        };
        Ok((receipt, changed))
    }

    /// Forgets the in-memory sync sessions of this conversation with `peer` (call on
    /// disconnect); the next conversation starts from the persisted state, so only news is
    /// sent. Other conversations with the same peer are left alone.
    pub fn end_sync_session(&self, peer: impl Into<SyncPeer>) {
        let peer = peer.into();
        let mut inner = self.inner.lock();
        inner.sessions.retain(|(_, p), _| *p != peer);
        inner.unproven.retain(|(_, p), _| *p != peer);
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
        inner.unproven.retain(|(_, p), _| p.key != peer.key);
        inner.held.drop_key(&peer.key);
        inner.drop_unstored_docs();
        inner
            .store
            .write(|tx| store::delete_sync_states(tx, &peer.key))?;
        Ok(())
    }
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
