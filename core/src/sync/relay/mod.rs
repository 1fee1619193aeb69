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
    // The store judges each plan's messages in that plan's lane and commits behind one lock
    // (docs/design.md, "Per-plan lanes"): a few blocking threads keep the cores busy, and
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

/// The plans a token opens, from the store (blocks: call it off the reactor).
fn documents_of_token(shared: &Shared, hash: &str) -> Result<HashSet<DocumentId>, SyncError> {
    Ok(shared.store.documents_of_token(hash)?.into_iter().collect())
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
mod connection;
mod peer_session;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod sim;

use connection::serve;
