//! A joined peer's session as a state machine (sans-IO): what it may sync, its sync messages
//! applied and answered, refusals told, heads digests compared, and changes of other peers
//! passed on. Messages in, messages to send out; it calls the store directly (SQLite blocks,
//! so the driver in `connection.rs` runs each step on the blocking pool) and never touches a
//! socket or a clock.

use super::connection::JoinedPeer;
use super::*;
use crate::sync::parallel::per_plan;
use crate::SyncPeer;

/// What a peer's sync message calls for once checked ([`PeerSession::handle_all`]).
enum Prepared {
    /// Answered already (the document is unavailable): nothing for the store.
    Answered,
    /// A new plan pushed under open enrollment: stored one message at a time.
    Enrolling(DocumentMessage),
    /// For the store to take in and answer.
    Store(Checked),
}

/// A sync message that may go to the store.
struct Checked {
    document: DocumentId,
    data: Vec<u8>,
    carries_changes: bool,
}

/// The changes the store refused from a message, and its reply (None: nothing to say).
type Stored = Result<(Vec<ChangeRefusal>, Option<Vec<u8>>), SyncError>;

/// The store takes in `checked` from the peer of `conversation` (bound to its token's plans,
/// `access`), then makes its reply. Runs on any thread ([`per_plan`]).
fn store_checked(
    shared: &Shared,
    conversation: &SyncPeer,
    access: &Option<Access>,
    checked: &Checked,
) -> Stored {
    let refused = received_timed(shared, || {
        receive_as(
            shared,
            conversation,
            access,
            checked.document,
            &checked.data,
            false,
        )
    })?;
    let reply = shared
        .store
        .generate_sync_message(checked.document, conversation)?;
    Ok((refused, reply))
}

/// Applies a peer's message; with tokens, the plan must stay bound to them ([`TokenVoucher`])
/// — and, for a new plan pushed under open enrollment (`enrolling`), list the peer's token —
/// or nothing of the message is stored.
fn receive_as(
    shared: &Shared,
    conversation: &SyncPeer,
    access: &Option<Access>,
    document: DocumentId,
    data: &[u8],
    enrolling: bool,
) -> Result<Vec<ChangeRefusal>, SyncError> {
    match access {
        Some(access) => {
            let voucher = TokenVoucher {
                token_hash: access.hash.clone(),
                must_be_listed: enrolling,
            };
            shared
                .store
                .receive_vouched_sync_message(document, conversation, data, &voucher)
        }
        None => shared
            .store
            .receive_sync_message(document, conversation, data),
    }
}

/// Stores what a peer sent, telling the metrics how long the store took.
fn received_timed(
    shared: &Shared,
    receive: impl FnOnce() -> Result<Vec<ChangeRefusal>, SyncError>,
) -> Result<Vec<ChangeRefusal>, SyncError> {
    let started = std::time::Instant::now();
    let refused = receive()?;
    let elapsed = started.elapsed();
    shared.options.metrics.with(|m| m.store_write(elapsed));
    Ok(refused)
}

/// One joined peer: the documents it syncs with the relay.
pub(super) struct PeerSession {
    pub(super) id: u64,
    pub(super) peer: JoinedPeer,
    /// The conversation the peer's sync state is kept under.
    pub(super) conversation: SyncPeer,
    pub(super) shared: Arc<Shared>,
    /// Documents this peer asked for or sent; changes to them are pushed to it.
    pub(super) documents: HashSet<DocumentId>,
    /// What the peer's token opens; None when tokens are not required.
    pub(super) access: Option<Access>,
    /// The peer's heads digest was answered (once per connection).
    pub(super) digests_compared: bool,
    /// Who the peer is, for the audit trail.
    pub(super) who: Who,
    /// Messages to send, gathered by the step that runs.
    pub(super) out: Vec<Message>,
}

impl PeerSession {
    /// The session of connection `id` with a peer that joined, with what its token opens
    /// (None without tokens).
    pub(super) fn new(
        id: u64,
        peer: JoinedPeer,
        shared: Arc<Shared>,
        access: Option<Access>,
        who: Who,
    ) -> Self {
        Self {
            id,
            conversation: SyncPeer::conversation(&peer.key),
            peer,
            shared,
            documents: HashSet::new(),
            access,
            digests_compared: false,
            who,
            out: Vec::new(),
        }
    }

    /// Acts on one message; `Ok(false)` ends the connection quietly.
    pub(super) fn handle(&mut self, message: Message) -> Result<bool, SyncError> {
        match message {
            Message::Request(message) | Message::Sync(message) => {
                let started = std::time::Instant::now();
                self.receive(message)?;
                let elapsed = started.elapsed();
                self.shared
                    .options
                    .metrics
                    .with(|m| m.sync_round_trip(elapsed));
                Ok(true)
            }
            Message::Ephemeral {
                ref sender_id,
                document_id,
                ..
            } => {
                if *sender_id == self.peer.id && self.documents.contains(&document_id) {
                    let _ = self.shared.events.send(RelayEvent::Ephemeral {
                        message,
                        origin: self.id,
                    });
                }
                Ok(true)
            }
            Message::HeadsDigests {
                sender_id, digests, ..
            } => {
                self.compare_heads(&sender_id, &digests)?;
                Ok(true)
            }
            Message::DocUnavailable { .. } => Ok(true),
            Message::Leave { .. } => Ok(false),
            Message::Error { message, .. } => {
                info!(connection = self.id, %message, "peer reported an error");
                Ok(false)
            }
            Message::Join { .. }
            | Message::Peer { .. }
            | Message::HeadsDiffer { .. }
            | Message::Refused { .. } => Err(SyncError::UnexpectedMessage(
                message.message_type().to_string(),
            )),
            Message::Unknown { message_type, .. } => {
                debug!(connection = self.id, %message_type, "ignored unknown message");
                Ok(true)
            }
        }
    }

    fn receive(&mut self, message: DocumentMessage) -> Result<(), SyncError> {
        match self.prepare(message)? {
            Prepared::Answered => Ok(()),
            Prepared::Enrolling(message) => self.enroll(message),
            Prepared::Store(checked) => {
                let stored =
                    store_checked(&self.shared, &self.conversation, &self.access, &checked);
                self.stored(checked, stored)
            }
        }
    }

    /// Acts on messages that arrived together, in order, as [`PeerSession::handle`] does one
    /// by one; `Ok(false)` ends the connection quietly. The store's work on a run of sync
    /// messages about different plans (judging and storing what came, making the reply) runs
    /// side by side ([`per_plan`]): the store judges each plan in its own lane
    /// (`docs/design.md`, "Plans in parallel"). A message about a plan already in the run, a
    /// plan pushed under open enrollment, or any other message first finishes the run, so each
    /// plan's messages, and everything else, keep their order.
    pub(super) fn handle_all(&mut self, messages: Vec<Message>) -> Result<bool, SyncError> {
        // Each sync message's round trip is counted from the step's start to its reply.
        let started = std::time::Instant::now();
        let mut run: Vec<Checked> = Vec::new();
        for message in messages {
            let (Message::Request(message) | Message::Sync(message)) = message else {
                self.finish_run(std::mem::take(&mut run), started)?;
                if !self.handle(message)? {
                    return Ok(false);
                }
                continue;
            };
            if run
                .iter()
                .any(|checked| checked.document == message.document_id)
            {
                self.finish_run(std::mem::take(&mut run), started)?;
            }
            let prepared = match self.prepare(message) {
                Ok(prepared) => prepared,
                Err(error) => {
                    self.finish_run(run, started)?;
                    return Err(error);
                }
            };
            match prepared {
                Prepared::Answered => self.answered(started),
                Prepared::Store(checked) => run.push(checked),
                Prepared::Enrolling(message) => {
                    self.finish_run(std::mem::take(&mut run), started)?;
                    self.enroll(message)?;
                    self.answered(started);
                }
            }
        }
        self.finish_run(run, started)?;
        Ok(true)
    }

    /// Counts a sync message answered, `started` being when its step began.
    fn answered(&self, started: std::time::Instant) {
        let elapsed = started.elapsed();
        self.shared
            .options
            .metrics
            .with(|m| m.sync_round_trip(elapsed));
    }

    /// The store's work on `run`, side by side across plans, then each message's notices,
    /// audit and reply in order; the first error ends it.
    fn finish_run(
        &mut self,
        run: Vec<Checked>,
        started: std::time::Instant,
    ) -> Result<(), SyncError> {
        if run.is_empty() {
            return Ok(());
        }
        let (shared, conversation, access) = (&self.shared, &self.conversation, &self.access);
        let stored = per_plan(
            &run,
            |checked| checked.document,
            |checked| store_checked(shared, conversation, access, checked),
        );
        for (checked, stored) in run.into_iter().zip(stored) {
            self.stored(checked, stored)?;
            self.answered(started);
        }
        Ok(())
    }

    /// A peer's sync message read and checked: what it may sync, and whether there is
    /// anything for the store to do.
    fn prepare(&mut self, message: DocumentMessage) -> Result<Prepared, SyncError> {
        if message.sender_id != self.peer.id {
            return Err(SyncError::UnexpectedMessage(
                "message from another sender id".into(),
            ));
        }
        let document = message.document_id;
        // Refuse undecodable sync data before the store sees it.
        let envelope = SyncEnvelope::read(&message.data)?;
        let mut enrolling = false;
        if !self.may_sync(document, false)? {
            // A token that does not open a plan gets the same answer, after the same work,
            // whether or not this relay holds it: only a push under open enrollment looks
            // further (a plan that exists cannot be created again).
            if !self.shared.options.open_enrollment {
                return Err(SyncError::Unauthorized(
                    "this token does not open that plan",
                ));
            }
            if envelope.heads.is_empty() {
                // Open enrollment: nothing to tell and nothing to remember.
                self.out.push(Message::DocUnavailable {
                    sender_id: self.shared.peer_id.clone(),
                    target_id: self.peer.id.clone(),
                    document_id: document,
                });
                return Ok(Prepared::Answered);
            }
            if self.shared.store.has_document(document)? {
                return Err(SyncError::Unauthorized(
                    "this token does not open that plan",
                ));
            }
            enrolling = true;
        }
        if !self.documents.contains(&document)
            && self.documents.len() >= self.shared.options.max_documents_per_connection
        {
            return Err(SyncError::Limit(format!(
                "at most {} documents per connection",
                self.shared.options.max_documents_per_connection
            )));
        }
        if enrolling {
            return Ok(Prepared::Enrolling(message));
        }
        self.documents.insert(document);
        if envelope.heads.is_empty() && !self.shared.store.has_document(document)? {
            // Neither side has it. The peer stays subscribed: if the plan arrives later it is
            // pushed, as automerge-repo peers expect.
            self.out.push(Message::DocUnavailable {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
            });
            return Ok(Prepared::Answered);
        }
        Ok(Prepared::Store(Checked {
            document,
            data: message.data,
            carries_changes: envelope.carries_changes,
        }))
    }

    /// A new plan pushed under open enrollment: the sync exchange runs until the plan is
    /// stored, and it is stored only if it lists this token; until then nothing is relayed.
    fn enroll(&mut self, message: DocumentMessage) -> Result<(), SyncError> {
        let document = message.document_id;
        let refused = self.receive_from_peer(document, message.data, true)?;
        self.tell_refused(document, refused)?;
        if self.shared.store.has_document(document)? {
            self.who
                .accessed(self.shared.store.as_ref(), document, AuditKind::Write)?;
            if !self.may_sync(document, true)? {
                return Err(SyncError::Unauthorized(
                    "the pushed plan does not list this token",
                ));
            }
            self.documents.insert(document);
            let _ = self.shared.events.send(RelayEvent::Changed {
                document,
                origin: self.id,
            });
        }
        self.push(document)
    }

    /// What the store did with a checked message (`stored`: the changes it refused and its
    /// reply): the peer is told of refusals before the reply, a write is audited and passed on
    /// to other connections, and the reply goes out.
    fn stored(&mut self, checked: Checked, stored: Stored) -> Result<(), SyncError> {
        let (refused, reply) = stored?;
        let document = checked.document;
        self.tell_refused(document, refused)?;
        if checked.carries_changes {
            self.who
                .accessed(self.shared.store.as_ref(), document, AuditKind::Write)?;
            let _ = self.shared.events.send(RelayEvent::Changed {
                document,
                origin: self.id,
            });
        }
        match reply {
            Some(data) => self.send_reply(document, data),
            None => Ok(()),
        }
    }

    /// Applies the peer's message; with tokens, the plan must stay bound to them
    /// ([`TokenVoucher`]) — and, for a new plan pushed under open enrollment (`enrolling`),
    /// list this peer's token — or nothing of the message is stored.
    fn receive_from_peer(
        &self,
        document: DocumentId,
        data: Vec<u8>,
        enrolling: bool,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        received_timed(&self.shared, || {
            receive_as(
                &self.shared,
                &self.conversation,
                &self.access,
                document,
                &data,
                enrolling,
            )
        })
    }

    /// Tells the peer which changes of its last message about `document` the rules refused
    /// (`alliance-refused`, see `docs/sync.md`), before the sync reply, so that the device sets
    /// them aside before it could count the document as settled. Only peers that offered the
    /// extension in `join` hear of it: to others (automerge-repo clients) a refusal stays silent.
    fn tell_refused(
        &mut self,
        document: DocumentId,
        refused: Vec<ChangeRefusal>,
    ) -> Result<(), SyncError> {
        if refused.is_empty() {
            return Ok(());
        }
        let rules: Vec<String> = refused.iter().map(|r| r.rule.clone()).collect();
        for rule in &rules {
            self.shared.options.metrics.with(|m| m.refused(rule));
        }
        self.who
            .changes_refused(self.shared.store.as_ref(), document, rules);
        info!(
            connection = self.id,
            %document,
            refused = refused.len(),
            told = self.peer.refused_notices,
            "refused changes from a peer"
        );
        if !self.peer.refused_notices {
            return Ok(());
        }
        for refused in refused.chunks(MAX_REFUSALS_PER_NOTICE) {
            self.out.push(Message::Refused {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
                refused: refused.to_vec(),
            });
        }
        Ok(())
    }

    /// The heads-digest extension: answers which of the listed documents differ from this
    /// store. A document counts as equal only when the token opens it, this store holds it and
    /// the digests match; equal ones are subscribed to (pushed on change) like synced ones,
    /// every other one is listed, so the device syncs it the usual way (and meets today's
    /// refusal when the token does not open it). Nothing about a document the token does not
    /// open is looked up.
    fn compare_heads(
        &mut self,
        sender_id: &PeerId,
        digests: &HeadsDigests,
    ) -> Result<(), SyncError> {
        if !self.peer.heads_digest || self.digests_compared {
            return Err(SyncError::UnexpectedMessage(HEADS_DIGESTS_TYPE.into()));
        }
        if *sender_id != self.peer.id {
            return Err(SyncError::UnexpectedMessage(
                "message from another sender id".into(),
            ));
        }
        self.digests_compared = true;
        let max = self.shared.options.max_documents_per_connection;
        let room = max.saturating_sub(self.documents.len());
        if digests.len() > room {
            return Err(SyncError::Limit(format!(
                "at most {max} documents per connection"
            )));
        }
        let entries = digests.entries(room)?;
        let listed: Vec<DocumentId> = entries.iter().map(|(document, _)| *document).collect();
        let opened = self.opened(&listed)?;
        let ours: HashMap<DocumentId, HeadsDigest> = self
            .shared
            .store
            .heads_digests(&opened)?
            .into_iter()
            .filter_map(|(document, digest)| Some((document, digest?)))
            .collect();
        let mut differ = Vec::new();
        for (document, digest) in entries {
            if ours.get(&document) == Some(&digest) {
                self.documents.insert(document);
            } else {
                differ.push(document);
            }
        }
        debug!(
            connection = self.id,
            listed = listed.len(),
            differ = differ.len(),
            "heads digests compared"
        );
        self.out.push(Message::HeadsDiffer {
            sender_id: self.shared.peer_id.clone(),
            target_id: self.peer.id.clone(),
            documents: differ,
        });
        Ok(())
    }

    /// Those of `documents` this peer's token opens (all, without tokens). The token is looked
    /// up again, once, when some are not in the cached answer.
    fn opened(&mut self, documents: &[DocumentId]) -> Result<Vec<DocumentId>, SyncError> {
        let Some(access) = self.access.as_mut() else {
            return Ok(documents.to_vec());
        };
        if documents.iter().any(|d| !access.documents.contains(d)) {
            access.documents = documents_of_token(&self.shared, &access.hash)?;
        }
        Ok(documents
            .iter()
            .filter(|d| access.documents.contains(d))
            .copied()
            .collect())
    }

    /// Whether this peer's token opens `document` (always, without tokens). Looks the token
    /// up again when the cached answer is no, and when `refresh` (the plan changed), so
    /// grants and revocations take effect at once.
    fn may_sync(&mut self, document: DocumentId, refresh: bool) -> Result<bool, SyncError> {
        let Some(access) = self.access.as_mut() else {
            return Ok(true);
        };
        if !refresh && access.documents.contains(&document) {
            return Ok(true);
        }
        access.documents = documents_of_token(&self.shared, &access.hash)?;
        Ok(access.documents.contains(&document))
    }

    /// Sends the next sync message for a document to this peer, if there is one.
    fn push(&mut self, document: DocumentId) -> Result<(), SyncError> {
        let Some(data) = self
            .shared
            .store
            .generate_sync_message(document, &self.conversation)?
        else {
            return Ok(());
        };
        self.send_reply(document, data)
    }

    /// Sends the store's sync message `data` about `document`, audited as a read when it
    /// carries changes.
    fn send_reply(&mut self, document: DocumentId, data: Vec<u8>) -> Result<(), SyncError> {
        let envelope = SyncEnvelope::read(&data)?;
        {
            if envelope.carries_changes {
                self.who
                    .accessed(self.shared.store.as_ref(), document, AuditKind::Read)?;
            }
            self.out.push(Message::Sync(DocumentMessage {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
                data,
            }));
        }
        Ok(())
    }

    pub(super) fn push_all(&mut self) -> Result<(), SyncError> {
        let documents: Vec<DocumentId> = self.documents.iter().copied().collect();
        for document in documents {
            if !self.may_sync(document, true)? {
                return Err(SyncError::Unauthorized("the device was revoked"));
            }
            if self.shared.store.has_document(document)? {
                self.push(document)?;
            }
        }
        Ok(())
    }

    /// Passes another connection's news on to this peer.
    pub(super) fn relay(&mut self, event: RelayEvent) -> Result<(), SyncError> {
        match event {
            RelayEvent::Changed { document, origin } => {
                if origin != self.id && self.documents.contains(&document) {
                    if !self.may_sync(document, true)? {
                        return Err(SyncError::Unauthorized("the device was revoked"));
                    }
                    self.push(document)?;
                }
            }
            RelayEvent::Ephemeral { message, origin } => {
                if let Message::Ephemeral {
                    sender_id,
                    count,
                    session_id,
                    document_id,
                    data,
                    ..
                } = message
                {
                    if origin != self.id && self.documents.contains(&document_id) {
                        self.out.push(Message::Ephemeral {
                            sender_id,
                            target_id: self.peer.id.clone(),
                            count,
                            session_id,
                            document_id,
                            data,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// The answer to a peer's `join`: who joined (and the key its sync state is kept under) and
/// the `peer` message, with discovery — the plans that enroll it: with tokens, those its token
/// opens (`opened`); without, those the store says enroll its device. Blocks on the store.
///
/// Errors: anything but `join` ([`SyncError::UnexpectedMessage`]), a protocol version this
/// relay does not speak, and store errors.
pub(super) fn answer_join(
    shared: &Shared,
    opened: Option<&HashSet<DocumentId>>,
    message: Message,
) -> Result<(JoinedPeer, Message), SyncError> {
    let Message::Join {
        sender_id,
        peer_metadata,
        supported_protocol_versions,
    } = message
    else {
        return Err(SyncError::UnexpectedMessage(
            message.message_type().to_string(),
        ));
    };
    let version = select_protocol_version(supported_protocol_versions.as_deref())?;
    let metadata = peer_metadata.unwrap_or_default();
    let heads_digest = shared.options.heads_digest && metadata.heads_digest;
    let refused_notices = metadata.refused_notices;
    // Keep sync state per storage for peers that keep theirs; per connection otherwise.
    let (key, ephemeral) = match metadata.storage_id {
        Some(storage_id) if !metadata.is_ephemeral => (storage_id, false),
        _ => (format!("ephemeral:{sender_id}"), true),
    };
    let enrolled_documents = if let Some(opened) = opened {
        let mut documents: Vec<DocumentId> = opened.iter().copied().collect();
        documents.sort_by_key(|d| d.as_uuid());
        documents
    } else if ephemeral {
        Vec::new()
    } else {
        shared.store.enrolled_documents(&key)?
    };
    let answer = Message::Peer {
        sender_id: shared.peer_id.clone(),
        target_id: sender_id.clone(),
        peer_metadata: Some(PeerMetadata {
            storage_id: Some(shared.storage_id.clone()),
            is_ephemeral: false,
            enrolled_documents,
            heads_digest: shared.options.heads_digest,
            // The device needs no answer to its offer: notices simply come, or not.
            refused_notices: false,
        }),
        selected_protocol_version: version.to_string(),
    };
    let peer = JoinedPeer {
        id: sender_id,
        key,
        ephemeral,
        heads_digest,
        refused_notices,
    };
    Ok((peer, answer))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
