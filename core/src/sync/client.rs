//! The device side of sync: connect to a relay (or any automerge-repo server), sync every plan
//! this store holds or wants, keep syncing while connected, reconnect with backoff.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
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

/// Limits and timings of the device side. Its `Debug` output never shows the token.
#[derive(Clone)]
pub struct SyncOptions {
    /// Largest frame accepted from the server.
    pub max_frame_bytes: usize,
    /// Connecting plus the `join`/`peer` exchange.
    pub handshake_timeout: Duration,
    /// `sync_once` gives up when documents are not settled by then.
    pub settle_timeout: Duration,
    /// First wait before reconnecting in watch mode; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Documents to ask the server for besides those the store holds or wants (e.g. a plan
    /// opened by its `automerge:` URL).
    pub also_request: Vec<DocumentId>,
    /// The relay token of this device, sent as the `token` query parameter of the WebSocket
    /// URL. Never logged: error messages have it blanked.
    pub token: Option<String>,
    /// A PEM certificate to trust for `wss://` besides the built-in roots (a clinic's own CA,
    /// or a test's self-signed certificate).
    pub extra_root_certificate: Option<Vec<u8>>,
    /// Offer the heads-digest extension in `join` (see `docs/sync.md`): with an Alliance
    /// relay, plans that did not change cost no per-plan message. On by default.
    pub heads_digest: bool,
    /// Watch mode pings the server this often when nothing else goes by, and gives the
    /// connection up (then reconnects) when it has heard nothing for two of these: a phone's
    /// connection silently dropped by a network is noticed, and a relay's idle timeout does
    /// not close a live device. None: no pings.
    pub keepalive: Option<Duration>,
    /// Most sync messages a session sends without hearing back from the server while it opens
    /// its plans (see [`PUSH_WINDOW`], the default). At least 1.
    pub push_window: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(10),
            settle_timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            also_request: Vec::new(),
            token: None,
            extra_root_certificate: None,
            heads_digest: true,
            keepalive: Some(Duration::from_secs(30)),
            push_window: PUSH_WINDOW,
        }
    }
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("settle_timeout", &self.settle_timeout)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("also_request", &self.also_request)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "extra_root_certificate",
                &self.extra_root_certificate.as_ref().map(Vec::len),
            )
            .field("heads_digest", &self.heads_digest)
            .field("keepalive", &self.keepalive)
            .field("push_window", &self.push_window)
            .finish()
    }
}

/// What a shell shows about sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// A session with the server is open.
    pub connected: bool,
    /// Documents (plans) this device syncs.
    pub plans_total: usize,
    /// Documents whose heads the server has confirmed.
    pub plans_synced: usize,
    /// The last failure, kept until a session succeeds.
    pub last_error: Option<String>,
}

/// This device's own changes of one document that the server refused (its rules, which may
/// differ from this build's, or a role that changed meanwhile), now set aside here: kept out of
/// the plan, listed by the store (`Alliance::set_aside_changes`). Later own changes built on
/// them were replayed and still reach the server; those that could not be are listed too, with
/// the rule "builds on a refused change".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnChangesRefused {
    pub document: DocumentId,
    /// Each change's hash (hex) and the rule it broke, in words without personal data.
    pub changes: Vec<ChangeRefusal>,
}

/// Told whenever [`SyncProgress`] changes, and when the server refused this device's changes.
pub trait SyncObserver: Send + Sync {
    fn progress(&self, progress: &SyncProgress);

    /// The server refused some of this device's own changes, now set aside (see
    /// [`OwnChangesRefused`]). Sync goes on. Ignored unless overridden.
    fn own_changes_refused(&self, refused: &OwnChangesRefused) {
        let _ = refused;
    }
}

impl<F: Fn(&SyncProgress) + Send + Sync> SyncObserver for F {
    fn progress(&self, progress: &SyncProgress) {
        self(progress)
    }
}

/// What one `sync_once` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Documents synced in this session.
    pub documents_total: usize,
    /// Documents now identical on both sides.
    pub documents_synced: usize,
    /// Documents that arrived with changes from the server.
    pub documents_updated: Vec<DocumentId>,
    /// Documents the server does not have and could not get (e.g. wanted plans not yet shared).
    pub documents_unavailable: Vec<DocumentId>,
    /// Frames and bytes exchanged, the handshake included.
    pub traffic: Traffic,
    /// This device's own changes the server refused in this session, now set aside here.
    pub refused: Vec<OwnChangesRefused>,
}

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

/// A running watch-mode sync (see [`spawn_watch`]). Dropping it stops syncing.
pub struct SyncHandle {
    changes: mpsc::UnboundedSender<DocumentId>,
    stop: watch::Sender<bool>,
    progress: Arc<Mutex<SyncProgress>>,
    task: Option<JoinHandle<()>>,
    /// Undoes what was hooked into the store for this handle (e.g. a change observer).
    on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl SyncHandle {
    /// Tells the engine a document changed locally, so it is pushed right away.
    pub fn local_change(&self, document: DocumentId) {
        let _ = self.changes.send(document);
    }

    /// A sender the store's change observer can keep (see [`SyncHandle::local_change`]).
    pub fn change_sender(&self) -> mpsc::UnboundedSender<DocumentId> {
        self.changes.clone()
    }

    /// The latest progress.
    pub fn progress(&self) -> SyncProgress {
        self.progress.lock().clone()
    }

    /// Runs `undo` when syncing stops (used to unhook store observers).
    pub(crate) fn set_on_stop(&mut self, undo: Box<dyn FnOnce() + Send>) {
        self.on_stop = Some(undo);
    }

    /// Stops syncing and waits until the connection is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(undo) = self.on_stop.take() {
            undo();
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(undo) = self.on_stop.take() {
            undo();
        }
    }
}

/// Keeps syncing with the server until stopped: pushes local changes as they are announced,
/// takes in remote ones, reconnects with exponential backoff. Must run inside a tokio runtime.
pub fn spawn_watch(
    store: Arc<dyn SyncStore>,
    url: &str,
    options: SyncOptions,
    observer: Arc<dyn SyncObserver>,
) -> SyncHandle {
    let (changes, change_rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let progress = Arc::new(Mutex::new(SyncProgress::default()));
    let reporter = Reporter {
        observer,
        latest: Arc::clone(&progress),
    };
    let task = tokio::spawn(watch_loop(
        store,
        url.to_string(),
        options,
        reporter,
        change_rx,
        stop_rx,
    ));
    SyncHandle {
        changes,
        stop,
        progress,
        task: Some(task),
        on_stop: None,
    }
}

struct Reporter {
    observer: Arc<dyn SyncObserver>,
    latest: Arc<Mutex<SyncProgress>>,
}

impl Reporter {
    fn report(&self, progress: SyncProgress) {
        {
            let mut latest = self.latest.lock();
            if *latest == progress {
                return;
            }
            *latest = progress.clone();
        }
        self.observer.progress(&progress);
    }

    fn latest(&self) -> SyncProgress {
        self.latest.lock().clone()
    }

    fn refused(&self, refusals: Vec<OwnChangesRefused>) {
        for refused in &refusals {
            self.observer.own_changes_refused(refused);
        }
    }
}

enum SessionEnd {
    Stopped,
    Failed(SyncError),
}

async fn watch_loop(
    store: Arc<dyn SyncStore>,
    url: String,
    options: SyncOptions,
    reporter: Reporter,
    mut changes: mpsc::UnboundedReceiver<DocumentId>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = options.backoff_initial;
    loop {
        if *stop.borrow() {
            return;
        }
        let (end, was_connected) =
            watch_session(&store, &url, &options, &reporter, &mut changes, &mut stop).await;
        let error = match end {
            SessionEnd::Stopped => {
                let latest = reporter.latest();
                reporter.report(SyncProgress {
                    connected: false,
                    ..latest
                });
                return;
            }
            SessionEnd::Failed(error) => error,
        };
        if was_connected {
            delay = options.backoff_initial;
        }
        warn!(%error, retry_in_ms = delay.as_millis() as u64, "sync session ended");
        let latest = reporter.latest();
        reporter.report(SyncProgress {
            connected: false,
            last_error: Some(error.to_string()),
            ..latest
        });
        // Up to a quarter more, so many devices do not reconnect in lockstep.
        let jitter = delay.mul_f64((uuid::Uuid::new_v4().as_u128() % 256) as f64 / 1024.0);
        tokio::select! {
            _ = tokio::time::sleep(delay + jitter) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(options.backoff_max);
    }
}

/// One connection in watch mode; returns how it ended and whether the handshake succeeded.
async fn watch_session(
    store: &Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
    reporter: &Reporter,
    changes: &mut mpsc::UnboundedReceiver<DocumentId>,
    stop: &mut watch::Receiver<bool>,
) -> (SessionEnd, bool) {
    let mut session = tokio::select! {
        session = connect(store, url, options) => match session {
            Ok(session) => session,
            Err(error) => return (SessionEnd::Failed(error), false),
        },
        _ = stop.changed() => return (SessionEnd::Stopped, false),
    };
    info!(server = %session.remote, "connected");
    // Everything is synced from scratch on connect: queued notifications are stale.
    while changes.try_recv().is_ok() {}
    let mut last_error = reporter.latest().last_error;
    let keepalive = options.keepalive.filter(|every| !every.is_zero());
    let mut pings = keepalive.map(|every| tokio::time::interval_at(Instant::now() + every, every));
    let end = async {
        session.start(options).await?;
        loop {
            reporter.refused(session.unreported_refusals());
            if session.all_settled() {
                last_error = None;
            }
            reporter.report(session.progress(last_error.clone()));
            let next_ping = async {
                match pings.as_mut() {
                    Some(pings) => pings.tick().await,
                    None => std::future::pending().await,
                }
            };
            // A watch session never times out waiting: its keepalive notices a dead server.
            let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
            tokio::select! {
                message = session.next_message(far) => {
                    if let Some(message) = message? {
                        session.handle(message).await?;
                    }
                    session.push_queued().await?;
                }
                Some(document) = changes.recv() => {
                    session.push(document).await?;
                }
                _ = next_ping => {
                    let every = keepalive.unwrap_or_default();
                    if session.conn.last_heard().elapsed() > every * 2 {
                        return Err(SyncError::Timeout("the server to answer a keepalive ping"));
                    }
                    session.conn.ping().await?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    // Notices handled just before the session failed are reported all the same.
    reporter.refused(session.unreported_refusals());
    session.finish().await;
    match end {
        Ok(()) => (SessionEnd::Stopped, true),
        Err(error) => (SessionEnd::Failed(error), true),
    }
}
