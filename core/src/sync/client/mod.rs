//! The device side of sync: connect to a relay (or any automerge-repo server), sync every plan
//! this store holds or wants, keep syncing while connected, reconnect with backoff.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::connection::{websocket_config, Connection, Traffic};
use super::doc_id::DocumentId;
use super::error::SyncError;
use super::exchange::Exchange;
use super::heads::{DocumentProgress, HeadsDigest, SyncEnvelope};
use super::protocol::{
    check_selected_version, ChangeRefusal, DocumentMessage, HeadsDigests, Message, PeerId,
    PeerMetadata, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_V1,
};
use super::store::SyncStore;
use super::tls::client_connector;
use super::token::{redact, url_with_token};

mod options;
mod watch_mode;

pub use options::{OwnChangesRefused, SyncObserver, SyncOptions, SyncProgress, SyncSummary};
pub use watch_mode::{spawn_watch, SyncHandle};
/// Checks a server URL: `ws://` (or `wss://` when TLS is built in).
fn check_server_url(url: &str) -> Result<(), SyncError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(())
    } else {
        Err(SyncError::Transport(
            "server URL must start with ws:// or wss://".into(),
        ))
    }
}

fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4();
    format!("{:016x}", bytes.as_u128() as u64)
}

/// Most sync messages a session sends without hearing anything back from the server. A device
/// opening a session pushes one message per plan; sending thousands at once while reading
/// nothing fills both sides' socket buffers once the server's answers pile up, and then the
/// device and a server that answers as it reads each wait for the other to read, for ever.
pub(crate) const PUSH_WINDOW: usize = 32;

/// How long a session with plans still to push waits for an answer before pushing the next
/// window anyway (a server may have nothing to say about some plans).
const PUSH_QUIET: Duration = Duration::from_millis(500);

/// One open conversation with a server.
struct Session<S> {
    conn: Connection<S>,
    exchange: Exchange,
    me: PeerId,
    remote: PeerId,
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
    /// Plans waiting for their first push of the session (see [`PUSH_WINDOW`]).
    queued: VecDeque<DocumentId>,
    /// Plans pushed from `queued` that the server has not said anything about yet: at most
    /// `push_window` while `queued` is drained.
    opening: BTreeSet<DocumentId>,
    /// [`SyncOptions::push_window`].
    push_window: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Sends `join`, waits for `peer`, and picks the key sync state is kept under.
    async fn handshake(
        mut conn: Connection<S>,
        store: Arc<dyn SyncStore>,
        storage_id: String,
        options: &SyncOptions,
    ) -> Result<Self, SyncError> {
        let me = PeerId::new(format!("alliance-device-{}", random_suffix()));
        conn.send(&Message::Join {
            sender_id: me.clone(),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(storage_id),
                is_ephemeral: false,
                enrolled_documents: Vec::new(),
                heads_digest: options.heads_digest,
                refused_notices: true,
            }),
            supported_protocol_versions: Some(vec![PROTOCOL_V1.to_string()]),
        })
        .await?;
        let deadline = Instant::now() + options.handshake_timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, conn.recv())
                .await
                .map_err(|_| SyncError::Timeout("the server's `peer` message"))?
                .ok_or(SyncError::Closed)??;
            match message {
                Message::Peer {
                    sender_id,
                    peer_metadata,
                    selected_protocol_version,
                    ..
                } => {
                    check_selected_version(&selected_protocol_version)?;
                    let metadata = peer_metadata.unwrap_or_default();
                    let heads_digest = options.heads_digest && metadata.heads_digest;
                    // Sync state is worth keeping only with a peer that keeps its own.
                    let (key, ephemeral_server) = match metadata.storage_id {
                        Some(storage_id) if !metadata.is_ephemeral => (storage_id, false),
                        _ => (sender_id.to_string(), true),
                    };
                    debug!(server = %sender_id, "sync session open");
                    return Ok(Self {
                        conn,
                        exchange: Exchange::new(store, &key),
                        me,
                        remote: sender_id,
                        documents: BTreeMap::new(),
                        updated: BTreeSet::new(),
                        enrolled: metadata.enrolled_documents,
                        ephemeral_server,
                        heads_digest,
                        refused: Vec::new(),
                        refused_reported: 0,
                        queued: VecDeque::new(),
                        opening: BTreeSet::new(),
                        push_window: options.push_window.max(1),
                    });
                }
                Message::Error { message, .. } => return Err(SyncError::Remote(message)),
                Message::Unknown { message_type, .. } => {
                    debug!(%message_type, "ignored before handshake")
                }
                other => {
                    return Err(SyncError::UnexpectedMessage(
                        other.message_type().to_string(),
                    ))
                }
            }
        }
    }

    /// Starts syncing every document the store holds or wants, the plans the server says
    /// enroll this device, and `options.also_request`. With a server that speaks the
    /// heads-digest extension, documents whose heads it reports equal are settled at once.
    async fn start(&mut self, options: &SyncOptions) -> Result<(), SyncError> {
        let mut documents = self.exchange.documents().await?;
        for document in self.enrolled.iter().chain(&options.also_request) {
            if !documents.contains(document) {
                documents.push(*document);
            }
        }
        let matched = if self.heads_digest {
            self.compare_heads(&documents, options.handshake_timeout)
                .await?
        } else {
            BTreeSet::new()
        };
        for document in documents {
            let progress = self.documents.entry(document).or_default();
            if matched.contains(&document) {
                progress.matched = true;
            } else {
                self.queued.push_back(document);
            }
        }
        self.push_queued().await
    }

    /// Pushes queued plans while fewer than `push_window` messages wait for an answer.
    async fn push_queued(&mut self) -> Result<(), SyncError> {
        while self.opening.len() < self.push_window {
            let Some(document) = self.queued.pop_front() else {
                break;
            };
            if self.push(document).await? {
                self.opening.insert(document);
            }
        }
        Ok(())
    }

    /// The next message from the server, by `deadline`. While plans wait to be pushed, a
    /// server quiet for [`PUSH_QUIET`] returns `Ok(None)`: the caller pushes the next window
    /// of them (the server may have nothing to say about some plans). Cancel-safe.
    async fn next_message(&mut self, deadline: Instant) -> Result<Option<Message>, SyncError> {
        let wait = if self.queued.is_empty() {
            deadline
        } else {
            deadline.min(Instant::now() + PUSH_QUIET)
        };
        match tokio::time::timeout_at(wait, self.conn.recv()).await {
            Ok(Some(message)) => {
                if let Ok(message) = &message {
                    if let Some(document) = message.document_id() {
                        self.opening.remove(&document);
                    }
                }
                message.map(Some)
            }
            Ok(None) => Err(SyncError::Closed),
            Err(_) if wait < deadline => {
                self.opening.clear();
                Ok(None)
            }
            Err(_) => Err(SyncError::Timeout("every plan to be in sync")),
        }
    }

    /// The heads-digest extension: sends one frame with a digest of the heads of every
    /// document held here, waits for the server's list of those that differ, and returns the
    /// others (equal on both sides). Documents without a digest are not sent (synced as usual).
    async fn compare_heads(
        &mut self,
        documents: &[DocumentId],
        timeout: Duration,
    ) -> Result<BTreeSet<DocumentId>, SyncError> {
        let entries: Vec<(DocumentId, HeadsDigest)> = self
            .exchange
            .heads_digests(documents.to_vec())
            .await?
            .into_iter()
            .filter_map(|(document, digest)| Some((document, digest?)))
            .collect();
        if entries.is_empty() {
            return Ok(BTreeSet::new());
        }
        self.conn
            .send(&Message::HeadsDigests {
                sender_id: self.me.clone(),
                target_id: self.remote.clone(),
                digests: HeadsDigests::new(&entries),
            })
            .await?;
        let deadline = Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.conn.recv())
                .await
                .map_err(|_| SyncError::Timeout("the server's answer to the heads digest"))?
                .ok_or(SyncError::Closed)??;
            if let Message::HeadsDiffer {
                documents: differ, ..
            } = message
            {
                let differ: BTreeSet<DocumentId> = differ.into_iter().collect();
                debug!(
                    sent = entries.len(),
                    differ = differ.len(),
                    "heads digests compared"
                );
                return Ok(entries
                    .into_iter()
                    .map(|(document, _)| document)
                    .filter(|document| !differ.contains(document))
                    .collect());
            }
            self.handle(message).await?;
        }
    }

    /// Sends the next sync message for a document, if there is one.
    /// Returns whether a message was sent.
    async fn push(&mut self, document: DocumentId) -> Result<bool, SyncError> {
        let progress = self.documents.entry(document).or_default();
        let Some((data, envelope)) = self.exchange.generate(document).await? else {
            return Ok(false);
        };
        progress.sent(&envelope);
        let message = DocumentMessage {
            sender_id: self.me.clone(),
            target_id: self.remote.clone(),
            document_id: document,
            data,
        };
        // Like automerge-repo: a peer with nothing of the document asks for it.
        let message = if envelope.heads.is_empty() {
            Message::Request(message)
        } else {
            Message::Sync(message)
        };
        self.conn.send(&message).await?;
        Ok(true)
    }

    /// Acts on one message from the server.
    async fn handle(&mut self, message: Message) -> Result<(), SyncError> {
        match message {
            Message::Sync(message) | Message::Request(message) => {
                let document = message.document_id;
                let envelope = SyncEnvelope::read(&message.data)?;
                let ours = self.documents.contains_key(&document)
                    || self.exchange.has_document(document).await?;
                if !ours {
                    // A server offering documents nobody here asked for: decline.
                    debug!(%document, "declined an unrequested document");
                    return self
                        .conn
                        .send(&Message::DocUnavailable {
                            sender_id: self.me.clone(),
                            target_id: self.remote.clone(),
                            document_id: document,
                        })
                        .await;
                }
                self.exchange.receive(document, message.data).await?;
                self.documents
                    .entry(document)
                    .or_default()
                    .received(&envelope);
                if envelope.carries_changes {
                    self.updated.insert(document);
                }
                self.push(document).await.map(drop)
            }
            Message::DocUnavailable { document_id, .. } => {
                if let Some(progress) = self.documents.get_mut(&document_id) {
                    progress.unavailable = true;
                }
                Ok(())
            }
            Message::Refused {
                document_id,
                refused,
                ..
            } => self.refused(document_id, refused).await,
            Message::Error { message, .. } => Err(SyncError::Remote(message)),
            Message::Leave { .. } => Err(SyncError::Closed),
            Message::Ephemeral { .. }
            | Message::Join { .. }
            | Message::Peer { .. }
            | Message::HeadsDigests { .. }
            | Message::HeadsDiffer { .. }
            | Message::Unknown { .. } => {
                debug!(message_type = message.message_type(), "ignored");
                Ok(())
            }
        }
    }

    /// The server refused changes of our last message about `document`: the store sets its own
    /// aside (replaying later ones), and the document is offered again as it now stands. A
    /// notice about a document not synced in this session is ignored.
    async fn refused(
        &mut self,
        document: DocumentId,
        refused: Vec<ChangeRefusal>,
    ) -> Result<(), SyncError> {
        if !self.documents.contains_key(&document) {
            debug!(%document, "ignored a refused notice about a document not synced");
            return Ok(());
        }
        let changes = self.exchange.own_changes_refused(document, refused).await?;
        if changes.is_empty() {
            return Ok(());
        }
        info!(%document, changes = changes.len(), "the server refused own changes; set aside");
        self.refused.push(OwnChangesRefused { document, changes });
        self.push(document).await.map(drop)
    }

    /// Refusals not yet handed to a watch-mode observer.
    fn unreported_refusals(&mut self) -> Vec<OwnChangesRefused> {
        let new = self.refused[self.refused_reported..].to_vec();
        self.refused_reported = self.refused.len();
        new
    }

    fn all_settled(&self) -> bool {
        self.documents.values().all(DocumentProgress::is_settled)
    }

    fn progress(&self, last_error: Option<String>) -> SyncProgress {
        SyncProgress {
            connected: true,
            plans_total: self.documents.len(),
            plans_synced: self
                .documents
                .values()
                .filter(|p| p.is_settled() && !p.unavailable)
                .count(),
            last_error,
        }
    }

    fn summary(&self) -> SyncSummary {
        SyncSummary {
            documents_total: self.documents.len(),
            documents_synced: self
                .documents
                .values()
                .filter(|p| p.is_settled() && !p.unavailable)
                .count(),
            documents_updated: self.updated.iter().copied().collect(),
            documents_unavailable: self
                .documents
                .iter()
                .filter(|(_, p)| p.unavailable)
                .map(|(id, _)| *id)
                .collect(),
            traffic: self.conn.traffic(),
            refused: self.refused.clone(),
        }
    }

    /// Closes the socket and forgets the in-memory sync session (and, with a server that
    /// keeps nothing, the persisted sync state too).
    async fn finish(&mut self) {
        self.conn.close(None).await;
        if self.ephemeral_server {
            self.exchange.forget().await;
        } else {
            self.exchange.end().await;
        }
    }
}

async fn connect(
    store: &Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
) -> Result<Session<impl AsyncRead + AsyncWrite + Unpin>, SyncError> {
    check_server_url(url)?;
    let storage_id = {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.storage_id())
            .await
            .map_err(|_| SyncError::Transport("store task failed".into()))??
    };
    let deadline = Instant::now() + options.handshake_timeout;
    let config = websocket_config(options.max_frame_bytes);
    let token = options.token.as_deref();
    let target = match token {
        Some(token) => url_with_token(url, token),
        None => url.to_string(),
    };
    let connector = if url.starts_with("wss://") {
        Some(client_connector(options.extra_root_certificate.as_deref())?)
    } else {
        None
    };
    let (socket, _) = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::connect_async_tls_with_config(target, Some(config), true, connector),
    )
    .await
    .map_err(|_| SyncError::Timeout("the connection to the server"))?
    .map_err(|error| match SyncError::from(error) {
        // tungstenite may quote the URL, query and token included.
        SyncError::Transport(reason) => SyncError::Transport(redact(&reason, token)),
        other => other,
    })?;
    let conn = Connection::new(socket, options.max_frame_bytes);
    Session::handshake(conn, Arc::clone(store), storage_id, options).await
}

/// Syncs every document with the server until both sides have the same heads for each (or
/// the server cannot have it), then closes and returns what happened. For `alliance sync`.
pub async fn sync_once(
    store: Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
) -> Result<SyncSummary, SyncError> {
    let mut session = connect(&store, url, options).await?;
    let result = settle(&mut session, options).await;
    session.finish().await;
    result.map(|()| session.summary())
}

async fn settle<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    let deadline = Instant::now() + options.settle_timeout;
    // A server that reads nothing while this device sends cannot hold the session past the
    // deadline either.
    tokio::time::timeout_at(deadline, session.start(options))
        .await
        .map_err(|_| SyncError::Timeout("every plan to be in sync"))??;
    while !session.all_settled() || !session.queued.is_empty() {
        if let Some(message) = session.next_message(deadline).await? {
            session.handle(message).await?;
        }
        session.push_queued().await?;
    }
    Ok(())
}

/// [`sync_once`] for callers without a tokio runtime (the CLI): runs on a private one.
pub fn sync_once_blocking(
    store: Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
) -> Result<SyncSummary, SyncError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| SyncError::Transport(format!("cannot start the runtime: {error}")))?;
    runtime.block_on(sync_once(store, url, options))
}
