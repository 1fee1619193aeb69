//! The device side of sync: connect to a relay (or any automerge-repo server), sync every plan
//! this store holds or wants, keep syncing while connected, reconnect with backoff.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::connection::{websocket_config, Connection, Traffic};
use super::doc_id::DocumentId;
use super::error::SyncError;
use super::protocol::{ChangeRefusal, Message, DEFAULT_MAX_FRAME_BYTES};
use super::store::SyncStore;
use super::tls::client_connector;
use super::token::{redact, url_with_token};

mod options;
pub(crate) mod session;
mod watch_mode;

use session::ClientSession;

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

/// Most messages already received that one step acts on together
/// (see `Driven::receive_ready`).
const READY_AT_ONCE: usize = 16;

/// How long a session with plans still to push waits for an answer before pushing the next
/// window anyway (a server may have nothing to say about some plans).
const PUSH_QUIET: Duration = Duration::from_millis(500);

/// A [`ClientSession`] over a WebSocket: moves its frames, keeps its timers, and runs each of
/// its steps on the blocking pool (its store is SQLite).
struct Driven<S> {
    conn: Connection<S>,
    /// Locked by one step at a time, on the blocking pool, and briefly by the driver to read
    /// its state between steps.
    session: Arc<Mutex<ClientSession>>,
    /// How the connection ended, when that was met gathering messages already received
    /// (see `Driven::receive_ready`).
    ended: Option<SyncError>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driven<S> {
    /// Runs one step of the session off the reactor and sends what it returns.
    async fn step(
        &mut self,
        work: impl FnOnce(&mut ClientSession) -> Result<Vec<Message>, SyncError> + Send + 'static,
    ) -> Result<(), SyncError> {
        let session = Arc::clone(&self.session);
        let out = tokio::task::spawn_blocking(move || work(&mut session.lock()))
            .await
            .map_err(|_| SyncError::Transport("store task failed".into()))??;
        for message in out {
            self.conn.send(&message).await?;
        }
        Ok(())
    }

    fn session(&self) -> parking_lot::MutexGuard<'_, ClientSession> {
        self.session.lock()
    }

    /// The next message from the server, by `deadline`. While plans wait to be pushed, a
    /// server quiet for [`PUSH_QUIET`] returns `Ok(None)`: the caller tells the session
    /// ([`ClientSession::quiet`]). Cancel-safe.
    async fn next_message(&mut self, deadline: Instant) -> Result<Option<Message>, SyncError> {
        if let Some(ended) = self.ended.take() {
            return Err(ended);
        }
        let wait = if self.session().waits_to_push() {
            deadline.min(Instant::now() + PUSH_QUIET)
        } else {
            deadline
        };
        match tokio::time::timeout_at(wait, self.conn.recv()).await {
            Ok(Some(message)) => message.map(Some),
            Ok(None) => Err(SyncError::Closed),
            Err(_) if wait < deadline => Ok(None),
            Err(_) => Err(SyncError::Timeout(self.session().awaiting())),
        }
    }

    /// Waits for one message by `deadline` and acts on it (or on the quiet).
    async fn turn(&mut self, deadline: Instant) -> Result<(), SyncError> {
        match self.next_message(deadline).await? {
            Some(message) => self.receive_ready(message).await,
            None => self.step(ClientSession::quiet).await,
        }
    }

    /// Acts on `first` and on the messages already here behind it (up to [`READY_AT_ONCE`]),
    /// in one step: the session works on different plans' messages in parallel
    /// ([`ClientSession::receive_all`]). A transport error or close met while gathering them
    /// is kept for the next wait for a message (`ended`).
    async fn receive_ready(&mut self, first: Message) -> Result<(), SyncError> {
        use futures_util::FutureExt;
        let mut messages = vec![first];
        let mut ended = None;
        while messages.len() < READY_AT_ONCE {
            // `recv` keeps a frame it has not returned: asking without waiting loses nothing.
            match self.conn.recv().now_or_never() {
                Some(Some(Ok(message))) => messages.push(message),
                Some(Some(Err(error))) => {
                    ended = Some(error);
                    break;
                }
                Some(None) => {
                    ended = Some(SyncError::Closed);
                    break;
                }
                None => break,
            }
        }
        self.step(move |session| session.receive_all(messages))
            .await?;
        // Met by the next wait for a message: a session that is done by now never waits.
        self.ended = ended;
        Ok(())
    }

    /// Closes the socket and ends the conversation in the store.
    async fn finish(&mut self) {
        self.conn.close(None).await;
        let session = Arc::clone(&self.session);
        let _ = tokio::task::spawn_blocking(move || session.lock().end()).await;
    }
}

async fn connect(
    store: &Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
) -> Result<Driven<impl AsyncRead + AsyncWrite + Unpin>, SyncError> {
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
    let (session, join) = ClientSession::new(Arc::clone(store), storage_id, options);
    let mut driven = Driven {
        conn,
        session: Arc::new(Mutex::new(session)),
        ended: None,
    };
    driven.conn.send(&join).await?;
    // The server's `peer`, then (with the heads digest) its answer to the digests.
    let deadline = Instant::now() + options.handshake_timeout;
    while !driven.session().is_syncing() {
        let awaiting = driven.session().awaiting();
        let message = tokio::time::timeout_at(deadline, driven.conn.recv())
            .await
            .map_err(|_| SyncError::Timeout(awaiting))?
            .ok_or(SyncError::Closed)??;
        driven.step(move |session| session.receive(message)).await?;
    }
    Ok(driven)
}

/// Syncs every document with the server until both sides have the same heads for each (or
/// the server cannot have it), then closes and returns what happened. For `alliance sync`.
pub async fn sync_once(
    store: Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
) -> Result<SyncSummary, SyncError> {
    let mut driven = connect(&store, url, options).await?;
    let result = settle(&mut driven, options).await;
    let summary = driven.session().summary(driven.conn.traffic());
    driven.finish().await;
    result.map(|()| summary)
}

async fn settle<S: AsyncRead + AsyncWrite + Unpin>(
    driven: &mut Driven<S>,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    let deadline = Instant::now() + options.settle_timeout;
    while !driven.session().all_settled() || driven.session().waits_to_push() {
        driven.turn(deadline).await?;
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
