//! Receiving a peer's sync message in three steps: take what the plan needs out of the store's
//! memory, judge and merge without the store lock (so other plans' messages are judged side by
//! side), then commit in one SQLite transaction (`docs/design.md`, "Per-plan lanes").

use super::lanes::CheckedOut;
use super::set_aside::own_fork;
use super::syncing::load_session;
use super::*;

/// Judged without the store lock this many times at most when other writers keep moving the
/// plan on; then judged and committed under the lock, where nothing can move it.
const UNLOCKED_ATTEMPTS: usize = 3;

/// Messages judged again because the plan moved on meanwhile (for tests).
#[cfg(test)]
pub(super) static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A message as read outside every lock: decoded, its chunks parsed within the budgets, and
/// the signature records that came with it.
#[derive(Clone)]
struct Incoming {
    /// The message with its changes taken out (they are in `screened`).
    message: sync::Message,
    carries_changes: bool,
    screened: incoming::Screened,
    signatures: Vec<crate::authorship::carrier::Record>,
}

/// What a receive took out of the store's memory for the plan and conversation.
struct Taken {
    out: CheckedOut,
    state: sync::State,
    kept_signatures: remote::Signatures,
    known_refused: HashSet<ChangeHash>,
    unproven: HashSet<ChangeHash>,
    budgets: Budgets,
    own_changes: Option<copied::OwnChanges>,
    /// Changes that arrived before their dependencies, judged again with this message.
    earlier: Option<held::Taken>,
    vouching: Option<crate::authorship::DeviceKey>,
    listed_before: Vec<String>,
}

/// What a receive puts back when it does not commit.
struct PutBack {
    held: held::Before,
    in_flight: Option<remote::Signatures>,
    state: Option<sync::State>,
    unproven: Option<HashSet<ChangeHash>>,
}

/// What judging a message decided, to be committed.
struct Judged {
    refused: Vec<remote::Refusal>,
    still_held: Vec<Change>,
    /// The changes let in, in dependency order.
    accepted: Vec<Change>,
    settled: copied::Settled,
    accepted_signatures: Vec<crate::authorship::carrier::Record>,
    has_content: bool,
}

impl Alliance {
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
        // Read and bounded before any lock is taken: one peer's large message does not stall
        // the others (`docs/design.md`, Hostile input).
        let budgets = self.budgets();
        let screened = incoming::screen(&message, &budgets)?;
        let carries_changes = !message.changes.is_empty();
        let mut message = message;
        message.changes = Vec::<Vec<u8>>::new().into();
        let incoming = Incoming {
            message,
            carries_changes,
            screened,
            signatures,
        };
        let token = voucher.map(|v| v.token_hash.as_str());
        let (receipt, changed) = {
            let lane = self.lanes.of(plan);
            let _lane = lane.lock();
            self.receive_in_lane(plan, &peer, &incoming, voucher, token)?
        };
        // Observers are told once the lane is free: one may edit the plan at once.
        if changed {
            self.notify(plan);
        }
        Ok(receipt)
    }

    /// [`Alliance::receive_checked`] holding the plan's lane.
    fn receive_in_lane(
        &self,
        plan: PlanId,
        peer: &SyncPeer,
        incoming: &Incoming,
        voucher: Option<&crate::token::TokenVoucher>,
        token: Option<&str>,
    ) -> Result<(SyncReceipt, bool)> {
        for _ in 0..UNLOCKED_ATTEMPTS {
            let (mut taken, put_back) =
                self.reading(|inner| take(inner, plan, peer, incoming, voucher))?;
            // Without the store lock. On failure, or a panic inside Automerge, what was taken
            // out is put back as a failed message leaves it.
            let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                judge(plan, &mut taken, incoming.clone(), token)
            }));
            let judged = match judged {
                Ok(Ok(judged)) => judged,
                Ok(Err(error)) => {
                    put_back.after_failure(&mut self.inner.lock(), plan, peer);
                    return Err(error);
                }
                Err(panic) => {
                    put_back.after_failure(&mut self.inner.lock(), plan, peer);
                    std::panic::resume_unwind(panic)
                }
            };
            let committed = self.writing(|inner| {
                if !inner.still_current(plan, &taken.out) {
                    #[cfg(test)]
                    RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    put_back.restore(inner, plan, peer);
                    return Ok(None);
                }
                commit_checked(inner, plan, peer, taken, put_back, judged, voucher).map(Some)
            })?;
            if let Some(done) = committed {
                return Ok(done);
            }
        }
        // Other writers moved the plan on every time: judge under the store lock.
        self.writing(|inner| {
            let (mut taken, put_back) = take(inner, plan, peer, incoming, voucher)?;
            match judge(plan, &mut taken, incoming.clone(), token) {
                Ok(judged) => commit_checked(inner, plan, peer, taken, put_back, judged, voucher),
                Err(error) => {
                    put_back.after_failure(inner, plan, peer);
                    Err(error)
                }
            }
        })
    }
}

impl PutBack {
    /// The plan moved on while the message was judged: everything is as before it, and the
    /// message is judged again.
    fn restore(self, inner: &mut Inner, plan: PlanId, peer: &SyncPeer) {
        let (state, unproven) = (self.state, self.unproven);
        restore_waiting(inner, plan, self.held, self.in_flight);
        if let Some(state) = state {
            inner.sessions.insert((plan, peer.clone()), state);
        }
        match unproven {
            Some(unproven) => inner.unproven.insert((plan, peer.clone()), unproven),
            None => inner.unproven.remove(&(plan, peer.clone())),
        };
    }

    /// The message failed: what waits for a dependency stays as it was, whichever
    /// conversation sent it, and the plan and this conversation reload from SQLite.
    fn after_failure(self, inner: &mut Inner, plan: PlanId, peer: &SyncPeer) {
        restore_waiting(inner, plan, self.held, self.in_flight);
        inner.docs.remove(&plan);
        inner.sessions.remove(&(plan, peer.clone()));
    }
}

/// Puts back the changes held for a dependency and the signatures waiting beside them as they
/// were before a receive took them.
fn restore_waiting(
    inner: &mut Inner,
    plan: PlanId,
    held: held::Before,
    in_flight: Option<remote::Signatures>,
) {
    inner.held.restore(held);
    match in_flight {
        Some(signatures) => inner.in_flight.insert(plan, signatures),
        None => inner.in_flight.remove(&plan),
    };
}

/// Takes out of memory what receiving a message about `plan` from `peer` needs.
fn take(
    inner: &mut Inner,
    plan: PlanId,
    peer: &SyncPeer,
    incoming: &Incoming,
    voucher: Option<&crate::token::TokenVoucher>,
) -> Result<(Taken, PutBack)> {
    let listed_before = match voucher {
        Some(_) => vouch::listed(inner, plan),
        None => Vec::new(),
    };
    // A relay vouches for what a token's own keyless device pushes (SECURITY.md §6).
    let vouching = match voucher {
        Some(_) if incoming.carries_changes => inner.vouching_key()?,
        _ => None,
    };
    let held_before = inner.held.before(plan);
    let in_flight_before = inner.in_flight.get(&plan).cloned();
    let state_before = inner.sessions.get(&(plan, peer.clone())).cloned();
    let unproven_before = inner.unproven.get(&(plan, peer.clone())).cloned();
    let kept_signatures = inner.in_flight.remove(&plan).unwrap_or_default();
    let state = load_session(inner, plan, peer)?;
    let known_refused = inner.refused_hashes(plan)?;
    let unproven = inner
        .unproven
        .remove(&(plan, peer.clone()))
        .unwrap_or_default();
    let own_changes = inner.own_changes(plan)?;
    // Changes that arrived before their dependencies get another chance now.
    let earlier = if !incoming.carries_changes {
        None
    } else {
        Some(inner.held.take(plan))
    };
    let taken = Taken {
        out: inner.check_out(plan)?,
        state,
        kept_signatures,
        known_refused,
        unproven,
        budgets: inner.budgets,
        own_changes,
        earlier,
        vouching,
        listed_before,
    };
    let put_back = PutBack {
        held: held_before,
        in_flight: in_flight_before,
        state: state_before,
        unproven: unproven_before,
    };
    Ok((taken, put_back))
}

/// Judges the changes of `incoming` by their authors' roles and merges the accepted ones
/// into the plan's document taken out, and advances the conversation's sync state: no SQLite,
/// no store lock.
fn judge(
    plan: PlanId,
    taken: &mut Taken,
    incoming: Incoming,
    token: Option<&str>,
) -> Result<Judged> {
    let Incoming {
        message,
        carries_changes,
        screened,
        signatures,
    } = incoming;
    #[cfg(test)]
    super::lanes_tests::pass(plan, carries_changes);
    let budgets = taken.budgets;
    let open = &mut taken.out.open;
    let mut still_held = Vec::new();
    let mut received: HashSet<ChangeHash> = HashSet::new();
    let mut accepted: Vec<Change> = Vec::new();
    let mut refused: Vec<remote::Refusal> = Vec::new();
    // Own changes taken out of the document because the peer holds others with the same
    // seq: replayed once the peer's are in.
    let mut forked: Vec<Change> = Vec::new();
    // The judge's working copy already holds every accepted change: adopted in place of the
    // document instead of applying them a second time.
    let mut adopted = false;
    let mut before_heads = open.doc.heads();
    if carries_changes {
        // This device's actor, and those it left to another copy of its store.
        let own_actors: Vec<ActorId> = taken
            .own_changes
            .iter()
            .flat_map(|own| std::iter::once(&own.me).chain(&own.former))
            .cloned()
            .collect();
        let (mut incoming, oversized) =
            screened.changes_in(open.doc.automerge(), &own_actors, &budgets)?;
        // Changes refused before they were decoded: recorded like any refusal, and everything
        // built on them is refused with them.
        for change in oversized {
            if taken.known_refused.insert(change.hash) {
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
        if let Some(earlier) = taken.earlier.as_mut() {
            incoming.extend(earlier.changes());
        }
        signing::keep_incoming(
            &mut taken.kept_signatures,
            signatures,
            &incoming,
            open.doc.automerge(),
        );
        // Only what this message carries: never a change held from another peer.
        if let (Some(key), Some(token)) = (&taken.vouching, token) {
            let devices = open.doc.device_access();
            relay_voucher::vouch_own(
                open.doc.automerge(),
                &devices,
                (key, token),
                &incoming[..sent_now],
                &mut taken.kept_signatures,
            );
        }
        for actor in &own_actors {
            // A forgery under this device's actor is no sign of another copy: it is left to
            // the judge, which refuses it (SECURITY.md §6).
            let genuine =
                signing::genuinely_own(open.doc.automerge(), actor, &taken.kept_signatures);
            let own: Vec<Change> = incoming
                .iter()
                .filter(|c| c.actor_id() == actor && genuine(c))
                .cloned()
                .collect();
            if let Some(drop) = own_fork(open.doc.automerge(), &own, actor) {
                open.mark_rewrite();
                let (base, left_out) = rebase::without(open.doc.automerge(), &drop)?;
                let me = open.doc.automerge().get_actor().clone();
                *open.doc.automerge_mut() = base.with_actor(me);
                forked.extend(left_out);
                before_heads = open.doc.heads();
                // What this conversation believed shared may name changes taken out.
                taken.state = sync::State::new();
            }
        }
        let judgement = remote::judge_within(
            open.doc.automerge(),
            plan,
            incoming,
            &taken.known_refused,
            &budgets,
            &taken.kept_signatures,
        );
        received.extend(judgement.accepted.iter().map(Change::hash));
        accepted = judgement.accepted;
        still_held = judgement.held;
        refused.extend(judgement.refused);
        match judgement.applied {
            Some(mut applied) if !accepted.is_empty() => {
                applied.set_actor(open.doc.automerge().get_actor().clone());
                *open.doc.automerge_mut() = applied;
                adopted = true;
            }
            _ => {}
        }
    }
    let state = &mut taken.state;
    let last_sent_heads = state.last_sent_heads.clone();
    let shared_before = state.shared_heads.clone();
    open.doc
        .automerge_mut()
        .receive_sync_message(state, message)?;
    if adopted {
        // What receiving the changes would have done to the sync state (as
        // `receive_sync_message` does it): unless the peer's heads are all known here (then
        // they are the shared heads, as set above), the shared heads advance by the changes
        // just applied, plus the peer's heads known here; and, the message having carried
        // changes, what we last sent is not taken as acknowledged.
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
    // The peer holds changes we refused: count them as settled so that neither side keeps
    // asking for or offering them in this session.
    taken.unproven.extend(
        refused
            .iter()
            .filter(|r| crate::authorship::lacks_proof(&r.rule))
            .map(|r| r.hash),
    );
    let all_refused: HashSet<ChangeHash> = taken
        .known_refused
        .iter()
        .copied()
        .chain(refused.iter().map(|r| r.hash))
        .chain(taken.unproven.iter().copied())
        .collect();
    if state
        .their_heads
        .as_ref()
        .is_some_and(|heads| heads.iter().any(|h| all_refused.contains(h)))
    {
        state.their_heads = Some(open.doc.heads());
    }
    // Own changes another copy of this store took the numbers of wait for this device's new
    // identity; waiting ones are replayed once the plan enrolls it.
    let settled = match &taken.own_changes {
        Some(own) => copied::settle(open, own, forked, clock::now_ms())?,
        None => copied::Settled::default(),
    };
    let has_content = !open.doc.heads().is_empty();
    // Signatures of the changes let in are stored beside them; those of held changes wait.
    let accepted_signatures = received
        .iter()
        .filter_map(|hash| Some((*hash, *taken.kept_signatures.get(hash)?)))
        .collect();
    if taken.earlier.is_some() {
        // The held changes were judged again: only theirs wait. A message without changes
        // judged nothing, and every signature kept for a held change keeps waiting (a
        // heads-only message between a change and its late dependency once dropped them, and
        // the change was then refused as unsigned).
        let held_hashes: HashSet<ChangeHash> = still_held.iter().map(Change::hash).collect();
        taken
            .kept_signatures
            .retain(|hash, _| held_hashes.contains(hash));
    }
    Ok(Judged {
        refused,
        still_held,
        accepted,
        settled,
        accepted_signatures,
        has_content,
    })
}

/// [`commit`], and with a relay's `voucher` the check that the plan stays bound to its tokens;
/// on failure what was taken is put back as a failed message leaves it.
fn commit_checked(
    inner: &mut Inner,
    plan: PlanId,
    peer: &SyncPeer,
    mut taken: Taken,
    put_back: PutBack,
    judged: Judged,
    voucher: Option<&crate::token::TokenVoucher>,
) -> Result<(SyncReceipt, bool)> {
    let listed_before = std::mem::take(&mut taken.listed_before);
    let committed = commit(inner, plan, peer, taken, judged).and_then(|done| match voucher {
        Some(voucher) => vouch::check(inner, plan, &listed_before, voucher).map(|()| done),
        None => Ok(done),
    });
    if committed.is_err() {
        put_back.after_failure(inner, plan, peer);
    }
    committed
}

/// Puts the judged document back and writes it, the sync state and the refusal records in
/// the open transaction; returns what was refused or set aside, and whether the stored
/// document changed.
fn commit(
    inner: &mut Inner,
    plan: PlanId,
    peer: &SyncPeer,
    taken: Taken,
    judged: Judged,
) -> Result<(SyncReceipt, bool)> {
    let Taken {
        out,
        state,
        kept_signatures,
        unproven,
        earlier,
        ..
    } = taken;
    let Judged {
        refused,
        still_held,
        accepted,
        settled,
        accepted_signatures,
        has_content,
    } = judged;
    inner.docs.insert(plan, out.open);
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
    let now = clock::now_ms();
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
        inner.persist_received(plan, &accepted, |tx| {
            write_records(tx)?;
            store::save_sync_state(tx, &doc_id, &peer.key, &encoded)
        })?
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
