//! Sync messages in and out of a store: generating them, judging and merging what peers send
//! (own changes set aside live in `set_aside.rs`), and sync state per peer.

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
        let lane = self.lanes.of(plan);
        let in_lane = lane.lock();
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
            inner.docs.insert(plan, OpenDoc::new(doc, false));
            let doc_id = plan.to_string();
            inner.persist_received(plan, &judgement.accepted, |tx| {
                store::save_signatures(tx, &doc_id, &kept)
            })
        })?;
        drop(in_lane);
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
        let lane = self.lanes.of(plan);
        let _lane = lane.lock();
        let (mut state, held_deps, out) = self.reading(|inner| {
            let state = load_session(inner, plan, &peer)?;
            // Held changes wait outside Automerge, which therefore never asks for what they
            // lack (a peer's Bloom filter false positive can skip a change while sending its
            // successors): ask for it here, or the peers resend the successors forever.
            let mut held_deps = inner.held.missing_deps(plan);
            if let Some(unproven) = inner.unproven.get(&(plan, peer.clone())) {
                held_deps.retain(|dep| !unproven.contains(dep));
            }
            match inner.check_out(plan) {
                Ok(out) => Ok((state, held_deps, out)),
                Err(error) => {
                    inner.sessions.insert((plan, peer.clone()), state);
                    Err(error)
                }
            }
        })?;
        // Without the store lock: other plans' messages are made and judged meanwhile.
        let doc = out.open.doc.automerge();
        let mut message = generate_in_changes(doc, &mut state);
        if let Some(message) = message.as_mut() {
            for dep in held_deps {
                if doc.get_change_by_hash(&dep).is_none() && !message.need.contains(&dep) {
                    message.need.push(dep);
                }
            }
            message.need.sort();
        }
        self.reading(|inner| {
            inner.check_in(plan, out);
            let signed = message
                .map(|message| inner.sign_outgoing(plan, message))
                .transpose();
            // A message that could not be signed (signing writes) is never sent: the state
            // that takes it as sent is dropped, and the conversation goes on from the
            // persisted one, sending its changes again.
            if signed.is_ok() {
                inner.sessions.insert((plan, peer), state);
            }
            signed
        })
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

/// Automerge's next sync message for `state`, carrying what the peer lacks as changes once the
/// peer holds part of the plan. Automerge sends its whole document instead when a message would
/// carry more than a third of the plan's changes (a V2 message); that costs the sender a
/// `save()` and the receiver a load of the whole plan beside its own, only to find the same
/// changes, which it judges one by one anyway (`docs/design.md`, "Sync messages carry
/// changes"). A peer that holds nothing of the plan still gets the whole document: the fewest
/// bytes for a first fetch.
pub(super) fn generate_in_changes(
    doc: &Automerge,
    state: &mut sync::State,
) -> Option<sync::Message> {
    let peer_holds_some = state
        .their_heads
        .as_ref()
        .is_some_and(|heads| !heads.is_empty());
    let capabilities = state.their_capabilities.clone();
    if peer_holds_some {
        if let Some(capabilities) = state.their_capabilities.as_mut() {
            capabilities.retain(|c| *c != sync::Capability::MessageV2);
        }
    }
    let message = doc.generate_sync_message(state);
    state.their_capabilities = capabilities;
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::chunks;

    /// The kinds of chunk (`chunks::CHANGE`, …) a signed sync message from `store` carries.
    fn chunk_kinds(message: &[u8]) -> Vec<u8> {
        let (_, bare) = crate::authorship::carrier::split(message).unwrap();
        let message = sync::Message::decode(bare).unwrap();
        message
            .changes
            .iter()
            .flat_map(|blob| {
                chunks::split(blob)
                    .unwrap()
                    .into_iter()
                    .map(|chunk| chunk[chunks::TYPE_AT])
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Syncs `plan` from `a` to `b` until `a` has nothing more to say, returning the kinds of
    /// chunk every message carried.
    fn push(a: &Alliance, b: &Alliance, plan: PlanId) -> Vec<u8> {
        let mut kinds = Vec::new();
        for _ in 0..20 {
            let Some(out) = a.generate_sync_message(plan, "b").unwrap() else {
                return kinds;
            };
            kinds.extend(chunk_kinds(&out));
            b.receive_sync_message(plan, "a", &out).unwrap();
            if let Some(back) = b.generate_sync_message(plan, "a").unwrap() {
                a.receive_sync_message(plan, "b", &back).unwrap();
            }
        }
        panic!("the sync did not end");
    }

    /// Most of a plan new to a peer that holds the rest goes as changes, not as the whole
    /// document (which the peer would load beside its own to find the same changes); a peer
    /// that holds nothing gets the whole document.
    #[test]
    fn a_peer_holding_the_plan_gets_changes_not_the_whole_document() {
        let w = super::super::tests::world_with(Alliance::open_in_memory().unwrap());
        let (counselor, client, plan, goal) = (&w.counselor, &w.client, w.plan, w.goal);
        let fresh = Alliance::open_in_memory().unwrap();
        let first = push(counselor, &fresh, plan);
        assert!(
            first.contains(&chunks::DOCUMENT),
            "a first fetch takes the whole document: {first:?}"
        );
        for n in 0..12 {
            counselor
                .edit_goal(
                    plan,
                    goal,
                    &GoalEdit {
                        clinical_statement: Some(format!("Sleep hygiene, step {n}")),
                        ..GoalEdit::default()
                    },
                )
                .unwrap();
        }
        let before = client.saved_document(plan).unwrap();
        let news = counselor.saved_document(plan).unwrap();
        assert!(
            Automerge::load(&news).unwrap().get_changes(&[]).len()
                < 3 * (Automerge::load(&news).unwrap().get_changes(&[]).len()
                    - Automerge::load(&before).unwrap().get_changes(&[]).len()),
            "more than a third of the plan is new to the client"
        );
        let kinds = push(counselor, client, plan);
        assert_eq!(kinds.len(), 12, "one chunk per new change: {kinds:?}");
        assert!(
            kinds
                .iter()
                .all(|kind| [chunks::CHANGE, chunks::COMPRESSED_CHANGE].contains(kind)),
            "{kinds:?}"
        );
        assert_eq!(
            client.plan(plan).unwrap(),
            counselor.plan(plan).unwrap(),
            "the client has every change"
        );
    }
}
