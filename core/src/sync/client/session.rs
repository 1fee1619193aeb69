//! The device side of a conversation with a relay as a state machine (sans-IO): messages in,
//! messages to send out. It never touches a socket or a clock; the WebSocket driver
//! (`client/mod.rs`, `client/watch_mode.rs`) moves the frames, keeps the timers and runs each
//! step on the blocking pool, since the store it calls is SQLite. See `docs/sync.md`.
//!
//! A conversation goes through three phases: `join` sent, waiting for the server's `peer`;
//! with a server that speaks the heads-digest extension, one digest frame sent, waiting for
//! the list of documents that differ; then syncing, where every plan this store holds or
//! wants is pushed at most [`PUSH_WINDOW`](super::PUSH_WINDOW) at a time and each server
//! message is answered.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tracing::{debug, info};

use super::{OwnChangesRefused, SyncOptions, SyncProgress, SyncSummary};
use crate::sync::connection::Traffic;
use crate::sync::doc_id::DocumentId;
use crate::sync::error::SyncError;
use crate::sync::heads::{DocumentProgress, HeadsDigest, SyncEnvelope};
use crate::sync::parallel::per_plan;
use crate::sync::protocol::{
    check_selected_version, ChangeRefusal, DocumentMessage, HeadsDigests, Message, PeerId,
    PeerMetadata, PROTOCOL_V1,
};
use crate::sync::store::SyncStore;
use crate::SyncPeer;

/// Where a conversation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// `join` sent; the server's `peer` not yet here.
    Joining,
    /// The heads digests of `compared` sent; the server's answer not yet here. `all` is every
    /// document of the session (those without a digest are pushed whatever the answer).
    ComparingHeads {
        all: Vec<DocumentId>,
        compared: Vec<DocumentId>,
    },
    Syncing,
}

/// A sync message about a document of the session, waiting for the store.
struct Received {
    document: DocumentId,
    data: Vec<u8>,
    envelope: SyncEnvelope,
}

/// One device's conversation with one server.
pub(crate) struct ClientSession {
    store: Arc<dyn SyncStore>,
    me: PeerId,
    /// Whether this side offers the heads-digest extension, and plans to ask for on top of
    /// those held (see [`SyncOptions`]).
    offers_heads_digest: bool,
    also_request: Vec<DocumentId>,
    phase: Phase,
    /// The server, once its `peer` arrived, and the conversation sync state is kept under.
    remote: Option<PeerId>,
    peer: SyncPeer,
    documents: BTreeMap<DocumentId, DocumentProgress>,
    updated: BTreeSet<DocumentId>,
    /// Plans the server says enroll this device (discovery): asked for like held ones.
    enrolled: Vec<DocumentId>,
    /// The server keeps no storage: sync state with it is dropped when the session ends.
    ephemeral_server: bool,
    /// The server speaks the heads-digest extension too (see `docs/sync.md`).
    heads_digest: bool,
    /// Own changes the server refused in this session (its `alliance-refused` notices).
    refused: Vec<OwnChangesRefused>,
    /// How many of `refused` were handed to a watch-mode observer.
    refused_reported: usize,
    /// Plans waiting for their first push of the session.
    queued: VecDeque<DocumentId>,
    /// Plans pushed from `queued` that the server has not said anything about yet: at most
    /// `push_window` while `queued` is drained.
    opening: BTreeSet<DocumentId>,
    push_window: usize,
}

impl ClientSession {
    /// A conversation of `store` (whose storage id is `storage_id`), and the `join` frame
    /// that opens it.
    pub(crate) fn new(
        store: Arc<dyn SyncStore>,
        storage_id: String,
        options: &SyncOptions,
    ) -> (Self, Message) {
        let me = PeerId::new(format!("alliance-device-{}", super::random_suffix()));
        let join = Message::Join {
            sender_id: me.clone(),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(storage_id),
                is_ephemeral: false,
                enrolled_documents: Vec::new(),
                heads_digest: options.heads_digest,
                refused_notices: true,
            }),
            supported_protocol_versions: Some(vec![PROTOCOL_V1.to_string()]),
        };
        let session = Self {
            store,
            peer: SyncPeer::conversation(me.as_str()),
            me,
            offers_heads_digest: options.heads_digest,
            also_request: options.also_request.clone(),
            phase: Phase::Joining,
            remote: None,
            documents: BTreeMap::new(),
            updated: BTreeSet::new(),
            enrolled: Vec::new(),
            ephemeral_server: true,
            heads_digest: false,
            refused: Vec::new(),
            refused_reported: 0,
            queued: VecDeque::new(),
            opening: BTreeSet::new(),
            push_window: options.push_window.max(1),
        };
        (session, join)
    }

    /// Acts on one message from the server; returns the messages to send, in order.
    ///
    /// Errors: the server's `error` ([`SyncError::Remote`]), `leave` ([`SyncError::Closed`]),
    /// a protocol version or message this side does not speak, a malformed sync message, and
    /// store errors.
    pub(crate) fn receive(&mut self, message: Message) -> Result<Vec<Message>, SyncError> {
        match &self.phase {
            Phase::Joining => self.joined(message),
            Phase::ComparingHeads { .. } => match message {
                Message::HeadsDiffer { documents, .. } => self.compared(documents),
                other => self.handle(other),
            },
            Phase::Syncing => {
                if let Some(document) = message.document_id() {
                    self.opening.remove(&document);
                }
                let mut out = self.handle(message)?;
                out.extend(self.push_queued()?);
                Ok(out)
            }
        }
    }

    /// [`ClientSession::receive`] for messages that arrived together, in order. While
    /// syncing, the store's work on a run of sync messages about different plans (judging and
    /// storing what came, making the reply) runs side by side ([`per_plan`]), one plan per
    /// thread at a time and each plan's messages in order: the store judges each plan in
    /// its own lane, without its lock (`docs/design.md`, "Plans in parallel"). The session's
    /// own bookkeeping stays in message order, so the outcome is the one-by-one outcome.
    ///
    /// Errors: as [`ClientSession::receive`], the first in message order.
    pub(crate) fn receive_all(
        &mut self,
        messages: Vec<Message>,
    ) -> Result<Vec<Message>, SyncError> {
        let mut out = Vec::new();
        let mut run: Vec<Received> = Vec::new();
        for message in messages {
            if self.phase != Phase::Syncing {
                out.extend(self.finish_run(std::mem::take(&mut run))?);
                out.extend(self.receive(message)?);
                continue;
            }
            match message {
                Message::Sync(message) | Message::Request(message) => {
                    self.opening.remove(&message.document_id);
                    match self.accept(message)? {
                        Ok(received) => run.push(received),
                        Err(declined) => out.push(declined),
                    }
                }
                other => {
                    out.extend(self.finish_run(std::mem::take(&mut run))?);
                    out.extend(self.receive(other)?);
                }
            }
        }
        out.extend(self.finish_run(run)?);
        if self.phase == Phase::Syncing {
            out.extend(self.push_queued()?);
        }
        Ok(out)
    }

    /// A sync message about a document of this session, read and ready for the store; or,
    /// for a document nobody here asked for, the message declining it.
    fn accept(&mut self, message: DocumentMessage) -> Result<Result<Received, Message>, SyncError> {
        let document = message.document_id;
        let envelope = SyncEnvelope::read(&message.data)?;
        let ours = self.documents.contains_key(&document) || self.store.has_document(document)?;
        if !ours {
            // A server offering documents nobody here asked for: decline.
            debug!(%document, "declined an unrequested document");
            return Ok(Err(Message::DocUnavailable {
                sender_id: self.me.clone(),
                target_id: self.remote_id()?,
                document_id: document,
            }));
        }
        Ok(Ok(Received {
            document,
            data: message.data,
            envelope,
        }))
    }

    /// The store's work on `run` (in parallel across plans), then each message's bookkeeping
    /// and reply in order.
    fn finish_run(&mut self, run: Vec<Received>) -> Result<Vec<Message>, SyncError> {
        if run.is_empty() {
            return Ok(Vec::new());
        }
        let (store, peer) = (&self.store, &self.peer);
        let replies = per_plan(
            &run,
            |received| received.document,
            |received| {
                store.receive_sync_message(received.document, peer, &received.data)?;
                store.generate_sync_message(received.document, peer)
            },
        );
        let mut out = Vec::new();
        for (received, reply) in run.into_iter().zip(replies) {
            let reply = reply?;
            let document = received.document;
            self.documents
                .entry(document)
                .or_default()
                .received(&received.envelope);
            if received.envelope.carries_changes {
                self.updated.insert(document);
            }
            if let Some(data) = reply {
                out.push(self.sent(document, data)?);
            }
        }
        Ok(out)
    }

    /// A document changed in the store: its next sync message, if it has one.
    pub(crate) fn local_change(&mut self, document: DocumentId) -> Result<Vec<Message>, SyncError> {
        if self.phase != Phase::Syncing {
            // The session's start covers it.
            return Ok(Vec::new());
        }
        Ok(self.push(document)?.into_iter().collect())
    }

    /// The server said nothing for a while with plans still to push: it may have nothing to
    /// say about some of them, so the next window goes out anyway.
    pub(crate) fn quiet(&mut self) -> Result<Vec<Message>, SyncError> {
        self.opening.clear();
        self.push_queued()
    }

    /// Whether the server's `peer` (and, with the heads digest, its answer) arrived.
    pub(crate) fn is_syncing(&self) -> bool {
        self.phase == Phase::Syncing
    }

    /// What the driver waits for now, for its timeout errors.
    pub(crate) fn awaiting(&self) -> &'static str {
        match self.phase {
            Phase::Joining => "the server's `peer` message",
            Phase::ComparingHeads { .. } => "the server's answer to the heads digest",
            Phase::Syncing => "every plan to be in sync",
        }
    }

    /// Plans wait for their first push of the session.
    pub(crate) fn waits_to_push(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Every document of the session is in sync (or cannot be had).
    pub(crate) fn all_settled(&self) -> bool {
        self.documents.values().all(DocumentProgress::is_settled)
    }

    /// The server, once it answered.
    pub(crate) fn remote(&self) -> Option<&PeerId> {
        self.remote.as_ref()
    }

    /// Refusals not yet handed to a watch-mode observer.
    pub(crate) fn unreported_refusals(&mut self) -> Vec<OwnChangesRefused> {
        let new = self.refused[self.refused_reported..].to_vec();
        self.refused_reported = self.refused.len();
        new
    }

    pub(crate) fn progress(&self, last_error: Option<String>) -> SyncProgress {
        SyncProgress {
            connected: true,
            plans_total: self.documents.len(),
            plans_synced: self.synced(),
            last_error,
        }
    }

    pub(crate) fn summary(&self, traffic: Traffic) -> SyncSummary {
        SyncSummary {
            documents_total: self.documents.len(),
            documents_synced: self.synced(),
            documents_updated: self.updated.iter().copied().collect(),
            documents_unavailable: self
                .documents
                .iter()
                .filter(|(_, p)| p.unavailable)
                .map(|(id, _)| *id)
                .collect(),
            traffic,
            refused: self.refused.clone(),
        }
    }

    /// Ends the conversation in the store: the in-memory sync state is dropped, and with a
    /// server that keeps nothing, the persisted one too. Then compacts what the session left
    /// due (see [`ClientSession::compact`]).
    pub(crate) fn end(&self) {
        if self.ephemeral_server {
            if let Err(error) = self.store.forget_peer(&self.peer) {
                tracing::warn!(%error, "could not forget an ephemeral peer's sync state");
            }
        } else {
            self.store.end_sync_session(&self.peer);
        }
        self.compact();
    }

    /// Compacts up to [`crate::alliance::COMPACT_AFTER_SESSION`] plans whose chunks outgrew half their snapshot,
    /// off the sync path (`docs/design.md`, "Compaction"): after a session, or when a watch
    /// session's burst of messages is over. A failure is logged; the plans stay as stored.
    pub(crate) fn compact(&self) {
        match self
            .store
            .compact_due(crate::alliance::COMPACT_AFTER_SESSION)
        {
            Ok(0) => {}
            Ok(plans) => tracing::debug!(plans, "compacted after a sync"),
            Err(error) => tracing::warn!(%error, "compaction after a sync failed"),
        }
    }

    fn synced(&self) -> usize {
        self.documents
            .values()
            .filter(|p| p.is_settled() && !p.unavailable)
            .count()
    }

    /// Before the server's `peer`: only it, an error, or unknown messages may come.
    fn joined(&mut self, message: Message) -> Result<Vec<Message>, SyncError> {
        match message {
            Message::Peer {
                sender_id,
                peer_metadata,
                selected_protocol_version,
                ..
            } => {
                check_selected_version(&selected_protocol_version)?;
                let metadata = peer_metadata.unwrap_or_default();
                self.heads_digest = self.offers_heads_digest && metadata.heads_digest;
                // Sync state is worth keeping only with a peer that keeps its own.
                let (key, ephemeral_server) = match metadata.storage_id {
                    Some(storage_id) if !metadata.is_ephemeral => (storage_id, false),
                    _ => (sender_id.to_string(), true),
                };
                debug!(server = %sender_id, "sync session open");
                self.peer = SyncPeer::conversation(&key);
                self.ephemeral_server = ephemeral_server;
                self.enrolled = metadata.enrolled_documents;
                self.remote = Some(sender_id);
                self.start()
            }
            Message::Error { message, .. } => Err(SyncError::Remote(message)),
            Message::Unknown { message_type, .. } => {
                debug!(%message_type, "ignored before handshake");
                Ok(Vec::new())
            }
            other => Err(SyncError::UnexpectedMessage(
                other.message_type().to_string(),
            )),
        }
    }

    /// Starts syncing every document the store holds or wants, the plans the server says
    /// enroll this device, and the ones asked for. With a server that speaks the
    /// heads-digest extension, the digests go first (see [`ClientSession::compared`]).
    fn start(&mut self) -> Result<Vec<Message>, SyncError> {
        let mut documents = self.store.document_ids()?;
        for wanted in self.store.wanted_document_ids()? {
            if !documents.contains(&wanted) {
                documents.push(wanted);
            }
        }
        for document in self.enrolled.iter().chain(&self.also_request) {
            if !documents.contains(document) {
                documents.push(*document);
            }
        }
        let entries: Vec<(DocumentId, HeadsDigest)> = if self.heads_digest {
            self.store
                .heads_digests(&documents)?
                .into_iter()
                .filter_map(|(document, digest)| Some((document, digest?)))
                .collect()
        } else {
            Vec::new()
        };
        if entries.is_empty() {
            return self.sync_all(documents, &BTreeSet::new());
        }
        let remote = self.remote_id()?;
        self.phase = Phase::ComparingHeads {
            all: documents,
            compared: entries.iter().map(|(document, _)| *document).collect(),
        };
        Ok(vec![Message::HeadsDigests {
            sender_id: self.me.clone(),
            target_id: remote,
            digests: HeadsDigests::new(&entries),
        }])
    }

    /// The server's list of documents whose heads differ: the other compared ones are in sync
    /// already, everything else is pushed.
    fn compared(&mut self, differ: Vec<DocumentId>) -> Result<Vec<Message>, SyncError> {
        let Phase::ComparingHeads { all, compared } =
            std::mem::replace(&mut self.phase, Phase::Syncing)
        else {
            return Ok(Vec::new());
        };
        let differ: BTreeSet<DocumentId> = differ.into_iter().collect();
        debug!(
            sent = compared.len(),
            differ = differ.len(),
            "heads digests compared"
        );
        let matched: BTreeSet<DocumentId> = compared
            .into_iter()
            .filter(|document| !differ.contains(document))
            .collect();
        self.sync_all(all, &matched)
    }

    fn sync_all(
        &mut self,
        documents: Vec<DocumentId>,
        matched: &BTreeSet<DocumentId>,
    ) -> Result<Vec<Message>, SyncError> {
        self.phase = Phase::Syncing;
        for document in documents {
            let progress = self.documents.entry(document).or_default();
            if matched.contains(&document) {
                progress.matched = true;
            } else {
                self.queued.push_back(document);
            }
        }
        self.push_queued()
    }

    /// Pushes queued plans while fewer than `push_window` messages wait for an answer.
    fn push_queued(&mut self) -> Result<Vec<Message>, SyncError> {
        let mut out = Vec::new();
        while self.opening.len() < self.push_window {
            let Some(document) = self.queued.pop_front() else {
                break;
            };
            if let Some(message) = self.push(document)? {
                self.opening.insert(document);
                out.push(message);
            }
        }
        Ok(out)
    }

    fn remote_id(&self) -> Result<PeerId, SyncError> {
        self.remote
            .clone()
            .ok_or_else(|| SyncError::UnexpectedMessage("a message before `peer`".into()))
    }

    /// The next sync message for a document, if there is one.
    fn push(&mut self, document: DocumentId) -> Result<Option<Message>, SyncError> {
        self.remote_id()?;
        let Some(data) = self.store.generate_sync_message(document, &self.peer)? else {
            self.documents.entry(document).or_default();
            return Ok(None);
        };
        self.sent(document, data).map(Some)
    }

    /// The sync message the store made for a document (`data`), noted as sent.
    fn sent(&mut self, document: DocumentId, data: Vec<u8>) -> Result<Message, SyncError> {
        let remote = self.remote_id()?;
        let progress = self.documents.entry(document).or_default();
        let envelope = SyncEnvelope::read(&data)?;
        progress.sent(&envelope);
        let message = DocumentMessage {
            sender_id: self.me.clone(),
            target_id: remote,
            document_id: document,
            data,
        };
        // Like automerge-repo: a peer with nothing of the document asks for it.
        Ok(if envelope.heads.is_empty() {
            Message::Request(message)
        } else {
            Message::Sync(message)
        })
    }

    /// Acts on one message from the server once the session is open.
    fn handle(&mut self, message: Message) -> Result<Vec<Message>, SyncError> {
        match message {
            Message::Sync(message) | Message::Request(message) => match self.accept(message)? {
                Ok(received) => self.finish_run(vec![received]),
                Err(declined) => Ok(vec![declined]),
            },
            Message::DocUnavailable { document_id, .. } => {
                if let Some(progress) = self.documents.get_mut(&document_id) {
                    progress.unavailable = true;
                }
                Ok(Vec::new())
            }
            Message::Refused {
                document_id,
                refused,
                ..
            } => self.refused(document_id, refused),
            Message::Error { message, .. } => Err(SyncError::Remote(message)),
            Message::Leave { .. } => Err(SyncError::Closed),
            Message::Ephemeral { .. }
            | Message::Join { .. }
            | Message::Peer { .. }
            | Message::HeadsDigests { .. }
            | Message::HeadsDiffer { .. }
            | Message::Unknown { .. } => {
                debug!(message_type = message.message_type(), "ignored");
                Ok(Vec::new())
            }
        }
    }

    /// The server refused changes of our last message about `document`: the store sets its own
    /// aside (replaying later ones), and the document is offered again as it now stands. A
    /// notice about a document not synced in this session is ignored.
    fn refused(
        &mut self,
        document: DocumentId,
        refused: Vec<ChangeRefusal>,
    ) -> Result<Vec<Message>, SyncError> {
        if !self.documents.contains_key(&document) {
            debug!(%document, "ignored a refused notice about a document not synced");
            return Ok(Vec::new());
        }
        let changes = self.store.own_changes_refused(document, &refused)?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        info!(%document, changes = changes.len(), "the server refused own changes; set aside");
        self.refused.push(OwnChangesRefused { document, changes });
        Ok(self.push(document)?.into_iter().collect())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
