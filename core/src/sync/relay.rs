//! The relay: an always-on peer over its own store. Devices (and automerge-repo clients) join,
//! ask for plans, and every change one sends reaches every other peer syncing that plan.
//!
//! A peer that sends garbage gets an `error` frame and is disconnected; nothing it sent is
//! stored and other connections carry on.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::audit::Who;
use super::connection::{websocket_config, Connection, Traffic};
use super::doc_id::DocumentId;
use super::drain::{self, DrainSignal};
use super::error::SyncError;
use super::exchange::Exchange;
use super::heads::{HeadsDigest, SyncEnvelope};
use super::metrics::{rule_of, MetricsSink};
use super::protocol::{
    select_protocol_version, ChangeRefusal, DocumentMessage, HeadsDigests, Message, PeerId,
    PeerMetadata, DEFAULT_MAX_FRAME_BYTES, HEADS_DIGESTS_TYPE, MAX_REFUSALS_PER_NOTICE,
};
use super::store::{SyncStore, TokenVoucher};
use super::tls::{reloadable_server_config, CertificateSlot, TlsIdentity};
use super::token::{check_token, token_from_query, token_hash};
use crate::audit::AuditKind;

/// Threads a relay's runtime runs store calls on.
const RELAY_BLOCKING_THREADS: usize = 8;

/// Limits of the relay.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// Largest frame accepted from a peer.
    pub max_frame_bytes: usize,
    /// The WebSocket upgrade plus the peer's `join`.
    pub handshake_timeout: Duration,
    /// Devices must present a token (`?token=` on the WebSocket URL) and see only the plans
    /// it opens. Off by default in the library (in-process tests, loopback demos);
    /// `alliance relay` turns it on unless given `--no-auth`.
    pub require_token: bool,
    /// With tokens required: a token that opens nothing yet may push a plan this relay does
    /// not hold, provided the plan then lists that token's hash (how a counselor's new plan
    /// reaches the relay). See `docs/sync.md`, Authentication.
    pub open_enrollment: bool,
    /// Most documents one connection may sync.
    pub max_documents_per_connection: usize,
    /// Most connections open at once with the same token.
    pub max_connections_per_token: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Serve `wss://` with this certificate and key; plain `ws://` when None.
    pub tls: Option<TlsIdentity>,
    /// Offer the heads-digest extension in `peer` (see `docs/sync.md`). On by default.
    pub heads_digest: bool,
    /// Where the relay reports its measurements (`alliance relay --admin`); nowhere by default.
    pub metrics: MetricsSink,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(10),
            require_token: false,
            open_enrollment: false,
            max_documents_per_connection: 4096,
            max_connections_per_token: 8,
            idle_timeout: Duration::from_secs(600),
            tls: None,
            heads_digest: true,
            metrics: MetricsSink::default(),
        }
    }
}

/// What the relay tells its connections about each other.
#[derive(Clone, Debug)]
enum RelayEvent {
    /// A peer's message brought changes to a document.
    Changed { document: DocumentId, origin: u64 },
    /// A peer gossiped an ephemeral message about a document.
    Ephemeral { message: Message, origin: u64 },
}

/// Counts a relay keeps about itself.
#[derive(Debug, Default)]
struct RelayCounters {
    connections: AtomicU64,
    refused: AtomicU64,
}

/// A running relay. Dropping it stops accepting and closes every connection.
pub struct Relay {
    local_addr: SocketAddr,
    tls: bool,
    stop: watch::Sender<bool>,
    drain: watch::Sender<Option<tokio::time::Instant>>,
    certificate: Option<CertificateSlot>,
    counters: Arc<RelayCounters>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// Binds `listen` (e.g. `127.0.0.1:0`) and starts serving `store`.
    pub async fn bind(
        listen: &str,
        store: Arc<dyn SyncStore>,
        options: RelayOptions,
    ) -> Result<Self, SyncError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|error| SyncError::Transport(format!("cannot listen on {listen}: {error}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| SyncError::Transport(error.to_string()))?;
        let storage_id = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || store.storage_id())
                .await
                .map_err(|_| SyncError::Transport("store task failed".into()))??
        };
        let (tls, certificate) = match &options.tls {
            Some(identity) => {
                let (config, slot) = reloadable_server_config(identity)?;
                (Some(tokio_rustls::TlsAcceptor::from(config)), Some(slot))
            }
            None => (None, None),
        };
        let (stop, stop_rx) = watch::channel(false);
        let (drain, drain_rx) = watch::channel(None);
        let counters = Arc::new(RelayCounters::default());
        let shared = Arc::new(Shared {
            store,
            options,
            storage_id,
            peer_id: PeerId::new(format!("alliance-relay-{}", local_addr.port())),
            events: broadcast::channel(1024).0,
            counters: Arc::clone(&counters),
            per_token: Mutex::new(HashMap::new()),
            drain: drain_rx,
        });
        if let Some(mut outside) = shared.store.outside_changes() {
            // Changes another instance stored (`SyncStore::outside_changes`): origin 0 is no
            // connection of this relay, so every subscribed peer hears of them.
            let events = shared.events.clone();
            tokio::spawn(async move {
                while let Some(document) = outside.recv().await {
                    let _ = events.send(RelayEvent::Changed {
                        document,
                        origin: 0,
                    });
                }
            });
        }
        let secure = tls.is_some();
        info!(%local_addr, "relay listening");
        let task = tokio::spawn(accept_loop(listener, tls, shared, stop_rx));
        Ok(Self {
            local_addr,
            tls: secure,
            stop,
            drain,
            certificate,
            counters,
            task: Some(task),
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://` (or `wss://`) URL of the relay.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// Connections closed for bad input so far.
    pub fn connections_refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection, and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Drains (see `drain.rs`): stops accepting, lets every connection finish its exchange
    /// and closes it with a going-away frame, and closes what is still open after `grace`.
    /// Returns once every connection is closed.
    pub async fn drain(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let _ = self.drain.send(Some(deadline));
        if let Some(mut task) = self.task.take() {
            let slack = Duration::from_secs(1);
            if tokio::time::timeout_at(deadline + slack, &mut task)
                .await
                .is_err()
            {
                let _ = self.stop.send(true);
                if tokio::time::timeout(slack, &mut task).await.is_err() {
                    task.abort();
                }
            }
        }
    }

    /// Replaces the TLS certificate and key: later handshakes present the new ones, open
    /// connections keep theirs. Refused (the old ones stay) when the pair does not fit, or
    /// when this relay serves plain `ws://`.
    pub fn reload_tls(&self, identity: &TlsIdentity) -> Result<(), SyncError> {
        match &self.certificate {
            Some(slot) => slot.replace(identity),
            None => Err(SyncError::Tls("this relay serves ws:// without TLS".into())),
        }
    }

    /// Serves until the task is cancelled (Ctrl-C in the CLI).
    pub async fn run(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Runs a relay on `listen` until the process ends; `ready` is told the bound address.
/// For `alliance relay --listen ADDR --db FILE`.
pub fn run_relay_blocking(
    listen: &str,
    store: Arc<dyn SyncStore>,
    options: RelayOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), SyncError> {
    // The store serialises its work behind one lock: a few blocking threads suffice, and
    // tokio's default (512, each with its own stack) would cost memory under load.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(RELAY_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(|error| SyncError::Transport(format!("cannot start the runtime: {error}")))?;
    runtime.block_on(async {
        let relay = Relay::bind(listen, store, options).await?;
        ready(relay.local_addr());
        relay.run().await;
        Ok(())
    })
}

/// A relay on its own threads, for callers without a tokio runtime (the CLI demo, tests).
pub struct BackgroundRelay {
    relay: Option<Relay>,
    runtime: Option<tokio::runtime::Runtime>,
    local_addr: SocketAddr,
    url: String,
}

impl BackgroundRelay {
    /// Binds `listen` and serves `store` until stopped or dropped.
    pub fn start(
        listen: &str,
        store: Arc<dyn SyncStore>,
        options: RelayOptions,
    ) -> Result<Self, SyncError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(RELAY_BLOCKING_THREADS)
            .thread_name("alliance-relay")
            .enable_all()
            .build()
            .map_err(|error| SyncError::Transport(format!("cannot start the runtime: {error}")))?;
        let relay = runtime.block_on(Relay::bind(listen, store, options))?;
        Ok(Self {
            local_addr: relay.local_addr(),
            url: relay.url(),
            relay: Some(relay),
            runtime: Some(runtime),
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://` (or `wss://`) URL of the relay.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Connections closed for bad input so far.
    pub fn connections_refused(&self) -> u64 {
        self.relay.as_ref().map_or(0, Relay::connections_refused)
    }

    /// Closes every connection and stops the relay's threads.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let (Some(relay), Some(runtime)) = (self.relay.take(), self.runtime.as_ref()) {
            runtime.block_on(relay.shutdown());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for BackgroundRelay {
    fn drop(&mut self) {
        self.stop_now();
    }
}

struct Shared {
    store: Arc<dyn SyncStore>,
    options: RelayOptions,
    storage_id: String,
    peer_id: PeerId,
    events: broadcast::Sender<RelayEvent>,
    counters: Arc<RelayCounters>,
    /// Open connections per token hash.
    per_token: Mutex<HashMap<String, usize>>,
    /// Set when the relay drains (see `drain.rs`).
    drain: DrainSignal,
}

/// Holds one of a token's connection slots; gives it back when dropped.
struct TokenSlot {
    shared: Arc<Shared>,
    hash: String,
}

impl TokenSlot {
    fn take(shared: &Arc<Shared>, hash: &str) -> Result<Self, SyncError> {
        let mut open = shared.per_token.lock();
        let count = open.entry(hash.to_string()).or_insert(0);
        if *count >= shared.options.max_connections_per_token {
            return Err(SyncError::Limit(format!(
                "at most {} connections per token",
                shared.options.max_connections_per_token
            )));
        }
        *count += 1;
        Ok(Self {
            shared: Arc::clone(shared),
            hash: hash.to_string(),
        })
    }
}

impl Drop for TokenSlot {
    fn drop(&mut self) {
        let mut open = self.shared.per_token.lock();
        if let Some(count) = open.get_mut(&self.hash) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.hash);
            }
        }
    }
}

/// What an authenticated connection may sync.
struct Access {
    hash: String,
    /// Documents the token opened when last looked up.
    documents: HashSet<DocumentId>,
    _slot: TokenSlot,
}

async fn documents_of_token(shared: &Shared, hash: &str) -> Result<HashSet<DocumentId>, SyncError> {
    let store = Arc::clone(&shared.store);
    let hash = hash.to_string();
    let documents = tokio::task::spawn_blocking(move || store.documents_of_token(&hash))
        .await
        .map_err(|_| SyncError::Transport("store task failed".into()))??;
    Ok(documents.into_iter().collect())
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut draining = shared.drain.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let id = shared.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    let shared = Arc::clone(&shared);
                    let stop = stop.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let _open = shared.options.metrics.open_connection();
                        match tls {
                            None => serve(stream, remote, id, shared, stop).await,
                            Some(tls) => {
                                let limit = shared.options.handshake_timeout;
                                match tokio::time::timeout(limit, tls.accept(stream)).await {
                                    Ok(Ok(stream)) => serve(stream, remote, id, shared, stop).await,
                                    Ok(Err(error)) => debug!(%remote, %error, "TLS handshake failed"),
                                    Err(_) => debug!(%remote, "TLS handshake timed out"),
                                }
                            }
                        }
                    });
                }
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
            _ = drain::started(&mut draining) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Why a connection ended.
enum Ending {
    /// The peer left or the relay stopped.
    Done,
    /// The peer misbehaved: it is told why and disconnected.
    Refused(SyncError),
    /// The relay drains: the peer is told it is going away.
    GoingAway,
}

async fn serve<S>(
    stream: S,
    remote: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let config = websocket_config(shared.options.max_frame_bytes);
    // The token arrives in the request target; it is kept out of every log line.
    let mut presented: Option<String> = None;
    // tungstenite's callback signature fixes its (large) error type.
    #[allow(clippy::result_large_err)]
    let capture = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                   response| {
        presented = request
            .uri()
            .path_and_query()
            .and_then(|target| token_from_query(target.as_str()))
            .map(str::to_string);
        Ok(response)
    };
    let handshake = tokio::time::timeout(
        shared.options.handshake_timeout,
        tokio_tungstenite::accept_hdr_async_with_config(stream, capture, Some(config)),
    );
    let socket = match handshake.await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            debug!(%remote, %error, "websocket upgrade failed");
            return;
        }
        Err(_) => {
            debug!(%remote, "websocket upgrade timed out");
            return;
        }
    };
    let mut conn = Connection::new(socket, shared.options.max_frame_bytes);
    let mut who = Who::new(remote, presented.as_deref());
    let access = authenticate(&shared, presented.as_deref()).await;
    who.authenticated(&shared.store, access.as_ref().err())
        .await;
    let access = match access {
        Ok(access) => access,
        Err(error) => {
            // Nothing is read from this peer: it is told why and closed.
            refuse(&mut conn, &shared, None, &who, &error).await;
            return;
        }
    };
    let peer = match join(&mut conn, &shared, access.as_ref()).await {
        Ok(peer) => peer,
        Err(error) => {
            refuse(&mut conn, &shared, None, &who, &error).await;
            return;
        }
    };
    who.joined(&peer.key);
    shared.options.metrics.with(|m| m.device_joined());
    let mut session = PeerSession {
        id,
        peer: peer.clone(),
        exchange: Exchange::new(Arc::clone(&shared.store), &peer.key)
            .with_metrics(shared.options.metrics.clone()),
        shared: Arc::clone(&shared),
        documents: HashSet::new(),
        access,
        digests_compared: false,
        who,
    };
    info!(connection = id, peer = %peer.id, "peer joined");
    let mut events = shared.events.subscribe();
    let idle = shared.options.idle_timeout;
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let mut draining = shared.drain.clone();
    let mut reported = Traffic::default();
    let ending = loop {
        reported = shared
            .options
            .metrics
            .traffic_since(conn.traffic(), reported);
        let last_heard = conn.last_heard();
        let step = tokio::select! {
            message = conn.recv() => match message {
                None => Ok(false),
                Some(Err(error)) => Err(error),
                Some(Ok(message)) => {
                    idle_deadline = tokio::time::Instant::now() + idle;
                    session.handle(&mut conn, message).await
                }
            },
            _ = tokio::time::sleep_until(idle_deadline) => {
                // Keepalive pings count: only a peer that sent nothing at all is idle.
                let heard_until = conn.last_heard() + idle;
                if heard_until > tokio::time::Instant::now() {
                    idle_deadline = heard_until;
                    Ok(true)
                } else {
                    Err(SyncError::Limit(format!("idle for {} s", idle.as_secs())))
                }
            }
            event = events.recv() => match event {
                Ok(event) => session.relay(&mut conn, event).await.map(|()| true),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(connection = id, missed, "caught up after lagging");
                    session.push_all(&mut conn).await.map(|()| true)
                }
                Err(broadcast::error::RecvError::Closed) => Ok(false),
            },
            _ = stop.changed() => Ok(false),
            _ = drain::settled(&mut draining, last_heard) => break Ending::GoingAway,
        };
        match step {
            Ok(true) => {}
            Ok(false) => break Ending::Done,
            Err(SyncError::Closed) => break Ending::Done,
            // A phone losing signal drops the socket without a close frame: not misbehaviour.
            Err(SyncError::Transport(reason)) => {
                info!(connection = id, %reason, "connection lost");
                break Ending::Done;
            }
            Err(error) => break Ending::Refused(error),
        }
    };
    match ending {
        Ending::Done => conn.close(None).await,
        Ending::GoingAway => conn.close_going_away().await,
        Ending::Refused(error) => {
            refuse(&mut conn, &shared, Some(&peer.id), &session.who, &error).await
        }
    }
    let traffic = conn.traffic();
    shared.options.metrics.traffic_since(traffic, reported);
    shared.options.metrics.with(|m| m.device_left());
    if peer.ephemeral {
        session.exchange.forget().await;
    } else {
        session.exchange.end().await;
    }
    log_end(id, &peer.id, &traffic);
}

fn log_end(id: u64, peer: &PeerId, traffic: &Traffic) {
    info!(
        connection = id,
        %peer,
        frames_in = traffic.frames_received,
        frames_out = traffic.frames_sent,
        "peer left"
    );
}

/// Tells a misbehaving peer why it is disconnected, and logs it.
async fn refuse<S>(
    conn: &mut Connection<S>,
    shared: &Shared,
    peer: Option<&PeerId>,
    who: &Who,
    error: &SyncError,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
    shared.options.metrics.with(|m| m.refused(rule_of(error)));
    who.refused(&shared.store, error).await;
    let remote = who.remote();
    warn!(%remote, peer = ?peer.map(PeerId::as_str), %error, "closing connection");
    if !matches!(error, SyncError::Closed | SyncError::Transport(_)) {
        let _ = conn
            .send(&Message::Error {
                sender_id: Some(shared.peer_id.clone()),
                target_id: peer.cloned(),
                message: error.to_string(),
            })
            .await;
    }
    conn.close(Some(&error.to_string())).await;
}

/// Who joined, and the key their sync state is kept under.
#[derive(Clone)]
struct JoinedPeer {
    id: PeerId,
    key: String,
    /// The peer keeps nothing between sessions: its sync state is dropped when it leaves.
    ephemeral: bool,
    /// The peer speaks the heads-digest extension (it said so in `join`).
    heads_digest: bool,
    /// The peer understands refused notices (it said so in `join`).
    refused_notices: bool,
}

/// Checks the presented token when tokens are required: None when they are not.
async fn authenticate(
    shared: &Arc<Shared>,
    presented: Option<&str>,
) -> Result<Option<Access>, SyncError> {
    if !shared.options.require_token {
        return Ok(None);
    }
    let token = presented.ok_or(SyncError::Unauthorized("no token presented"))?;
    check_token(token)?;
    let hash = token_hash(token);
    let documents = documents_of_token(shared, &hash).await?;
    if documents.is_empty() && !shared.options.open_enrollment {
        return Err(SyncError::Unauthorized("unknown or revoked token"));
    }
    let slot = TokenSlot::take(shared, &hash)?;
    Ok(Some(Access {
        hash,
        documents,
        _slot: slot,
    }))
}

/// Waits for `join`, checks the protocol version, answers `peer`.
async fn join<S>(
    conn: &mut Connection<S>,
    shared: &Shared,
    access: Option<&Access>,
) -> Result<JoinedPeer, SyncError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let message = tokio::time::timeout(shared.options.handshake_timeout, conn.recv())
        .await
        .map_err(|_| SyncError::Timeout("the peer's `join` message"))?
        .ok_or(SyncError::Closed)??;
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
    // Discovery: a device learns which plans enroll it from the answer to its `join`.
    let enrolled_documents = if let Some(access) = access {
        // With tokens, the plans the token opens are the ones offered.
        let mut documents: Vec<DocumentId> = access.documents.iter().copied().collect();
        documents.sort_by_key(|d| d.as_uuid());
        documents
    } else if ephemeral {
        Vec::new()
    } else {
        let store = Arc::clone(&shared.store);
        let storage_id = key.clone();
        tokio::task::spawn_blocking(move || store.enrolled_documents(&storage_id))
            .await
            .map_err(|_| SyncError::Transport("store task failed".into()))??
    };
    conn.send(&Message::Peer {
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
    })
    .await?;
    Ok(JoinedPeer {
        id: sender_id,
        key,
        ephemeral,
        heads_digest,
        refused_notices,
    })
}

/// One joined peer: the documents it syncs with the relay.
struct PeerSession {
    id: u64,
    peer: JoinedPeer,
    exchange: Exchange,
    shared: Arc<Shared>,
    /// Documents this peer asked for or sent; changes to them are pushed to it.
    documents: HashSet<DocumentId>,
    /// What the peer's token opens; None when tokens are not required.
    access: Option<Access>,
    /// The peer's heads digest was answered (once per connection).
    digests_compared: bool,
    /// Who the peer is, for the audit trail.
    who: Who,
}

impl PeerSession {
    /// Acts on one message; `Ok(false)` ends the connection quietly.
    async fn handle<S>(
        &mut self,
        conn: &mut Connection<S>,
        message: Message,
    ) -> Result<bool, SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match message {
            Message::Request(message) | Message::Sync(message) => {
                let started = std::time::Instant::now();
                self.receive(conn, message).await?;
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
                self.compare_heads(conn, &sender_id, &digests).await?;
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

    async fn receive<S>(
        &mut self,
        conn: &mut Connection<S>,
        message: DocumentMessage,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if message.sender_id != self.peer.id {
            return Err(SyncError::UnexpectedMessage(
                "message from another sender id".into(),
            ));
        }
        let document = message.document_id;
        // Refuse undecodable sync data before the store sees it.
        let envelope = SyncEnvelope::read(&message.data)?;
        let mut enrolling = false;
        if !self.may_sync(document, false).await? {
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
                return conn
                    .send(&Message::DocUnavailable {
                        sender_id: self.shared.peer_id.clone(),
                        target_id: self.peer.id.clone(),
                        document_id: document,
                    })
                    .await;
            }
            if self.exchange.has_document(document).await? {
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
            // A new plan pushed under open enrollment: the sync exchange runs until the plan
            // is stored, and it is stored only if it lists this token; until then nothing is
            // relayed.
            let refused = self.receive_from_peer(document, message.data, true).await?;
            self.tell_refused(conn, document, refused).await?;
            if self.exchange.has_document(document).await? {
                let store = Arc::clone(&self.shared.store);
                self.who
                    .accessed(&store, document, AuditKind::Write)
                    .await?;
                if !self.may_sync(document, true).await? {
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
            return self.push(conn, document).await;
        }
        self.documents.insert(document);
        if envelope.heads.is_empty() && !self.exchange.has_document(document).await? {
            // Neither side has it. The peer stays subscribed: if the plan arrives later it is
            // pushed, as automerge-repo peers expect.
            return conn
                .send(&Message::DocUnavailable {
                    sender_id: self.shared.peer_id.clone(),
                    target_id: self.peer.id.clone(),
                    document_id: document,
                })
                .await;
        }
        let refused = self
            .receive_from_peer(document, message.data, false)
            .await?;
        self.tell_refused(conn, document, refused).await?;
        if envelope.carries_changes {
            let store = Arc::clone(&self.shared.store);
            self.who
                .accessed(&store, document, AuditKind::Write)
                .await?;
            let _ = self.shared.events.send(RelayEvent::Changed {
                document,
                origin: self.id,
            });
        }
        self.push(conn, document).await
    }

    /// Applies the peer's message; with tokens, the plan must stay bound to them
    /// ([`TokenVoucher`]) — and, for a new plan pushed under open enrollment (`enrolling`),
    /// list this peer's token — or nothing of the message is stored.
    async fn receive_from_peer(
        &self,
        document: DocumentId,
        data: Vec<u8>,
        enrolling: bool,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        match &self.access {
            Some(access) => {
                let voucher = TokenVoucher {
                    token_hash: access.hash.clone(),
                    must_be_listed: enrolling,
                };
                self.exchange.receive_vouched(document, data, voucher).await
            }
            None => self.exchange.receive(document, data).await,
        }
    }

    /// Tells the peer which changes of its last message about `document` the rules refused
    /// (`alliance-refused`, see `docs/sync.md`), before the sync reply, so that the device sets
    /// them aside before it could count the document as settled. Only peers that offered the
    /// extension in `join` hear of it: to others (automerge-repo clients) a refusal stays silent.
    async fn tell_refused<S>(
        &mut self,
        conn: &mut Connection<S>,
        document: DocumentId,
        refused: Vec<ChangeRefusal>,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if refused.is_empty() {
            return Ok(());
        }
        let rules: Vec<String> = refused.iter().map(|r| r.rule.clone()).collect();
        for rule in &rules {
            self.shared.options.metrics.with(|m| m.refused(rule));
        }
        self.who
            .changes_refused(&self.shared.store, document, rules)
            .await;
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
            conn.send(&Message::Refused {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
                refused: refused.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// The heads-digest extension: answers which of the listed documents differ from this
    /// store. A document counts as equal only when the token opens it, this store holds it and
    /// the digests match; equal ones are subscribed to (pushed on change) like synced ones,
    /// every other one is listed, so the device syncs it the usual way (and meets today's
    /// refusal when the token does not open it). Nothing about a document the token does not
    /// open is looked up.
    async fn compare_heads<S>(
        &mut self,
        conn: &mut Connection<S>,
        sender_id: &PeerId,
        digests: &HeadsDigests,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
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
        let opened = self.opened(&listed).await?;
        let ours: HashMap<DocumentId, HeadsDigest> = self
            .exchange
            .heads_digests(opened)
            .await?
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
        conn.send(&Message::HeadsDiffer {
            sender_id: self.shared.peer_id.clone(),
            target_id: self.peer.id.clone(),
            documents: differ,
        })
        .await
    }

    /// Those of `documents` this peer's token opens (all, without tokens). The token is looked
    /// up again, once, when some are not in the cached answer.
    async fn opened(&mut self, documents: &[DocumentId]) -> Result<Vec<DocumentId>, SyncError> {
        let Some(access) = self.access.as_mut() else {
            return Ok(documents.to_vec());
        };
        if documents.iter().any(|d| !access.documents.contains(d)) {
            access.documents = documents_of_token(&self.shared, &access.hash).await?;
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
    async fn may_sync(&mut self, document: DocumentId, refresh: bool) -> Result<bool, SyncError> {
        let Some(access) = self.access.as_mut() else {
            return Ok(true);
        };
        if !refresh && access.documents.contains(&document) {
            return Ok(true);
        }
        access.documents = documents_of_token(&self.shared, &access.hash).await?;
        Ok(access.documents.contains(&document))
    }

    /// Sends the next sync message for a document to this peer, if there is one.
    async fn push<S>(
        &mut self,
        conn: &mut Connection<S>,
        document: DocumentId,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if let Some((data, envelope)) = self.exchange.generate(document).await? {
            if envelope.carries_changes {
                let store = Arc::clone(&self.shared.store);
                self.who.accessed(&store, document, AuditKind::Read).await?;
            }
            conn.send(&Message::Sync(DocumentMessage {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
                data,
            }))
            .await?;
        }
        Ok(())
    }

    async fn push_all<S>(&mut self, conn: &mut Connection<S>) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let documents: Vec<DocumentId> = self.documents.iter().copied().collect();
        for document in documents {
            if !self.may_sync(document, true).await? {
                return Err(SyncError::Unauthorized("the device was revoked"));
            }
            if self.exchange.has_document(document).await? {
                self.push(conn, document).await?;
            }
        }
        Ok(())
    }

    /// Passes another connection's news on to this peer.
    async fn relay<S>(
        &mut self,
        conn: &mut Connection<S>,
        event: RelayEvent,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match event {
            RelayEvent::Changed { document, origin } => {
                if origin != self.id && self.documents.contains(&document) {
                    if !self.may_sync(document, true).await? {
                        return Err(SyncError::Unauthorized("the device was revoked"));
                    }
                    self.push(conn, document).await?;
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
                        conn.send(&Message::Ephemeral {
                            sender_id,
                            target_id: self.peer.id.clone(),
                            count,
                            session_id,
                            document_id,
                            data,
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }
}
