//! One connection to the relay from its WebSocket upgrade to its end: the token, the `join`,
//! then the joined peer's session driven until it leaves, misbehaves, or the relay stops.

use super::peer_session::{answer_join, PeerSession};
use super::*;
use crate::SyncPeer;

enum Ending {
    /// The peer left or the relay stopped.
    Done,
    /// The peer misbehaved: it is told why and disconnected.
    Refused(SyncError),
    /// The relay drains: the peer is told it is going away.
    GoingAway,
}

pub(super) async fn serve<S>(
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
    let conversation = SyncPeer::conversation(&peer.key);
    let mut session = Some(PeerSession::new(
        id,
        peer.clone(),
        Arc::clone(&shared),
        access,
        who,
    ));
    info!(connection = id, peer = %peer.id, "peer joined");
    let mut events = shared.events.subscribe();
    let idle = shared.options.idle_timeout;
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    let mut draining = shared.drain.clone();
    let mut reported = Traffic::default();
    // When this peer's burst of messages is over: its plans are compacted then.
    let mut burst_over: Option<tokio::time::Instant> = None;
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
                    burst_over = Some(tokio::time::Instant::now() + BURST_QUIET);
                    let (messages, ended) = ready_behind(&mut conn, message);
                    let going_on =
                        step(&mut conn, &mut session, move |s| s.handle_all(messages)).await;
                    match (going_on, ended) {
                        // The peer closed, or its connection failed, behind those messages.
                        (Ok(true), Some(None)) => Ok(false),
                        (Ok(true), Some(Some(error))) => Err(error),
                        (going_on, _) => going_on,
                    }
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
                Ok(event) => step(&mut conn, &mut session, move |s| s.relay(event))
                    .await
                    .map(|()| true),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(connection = id, missed, "caught up after lagging");
                    step(&mut conn, &mut session, PeerSession::push_all)
                        .await
                        .map(|()| true)
                }
                Err(broadcast::error::RecvError::Closed) => Ok(false),
            },
            _ = tokio::time::sleep_until(burst_over.unwrap_or(idle_deadline)),
                if burst_over.is_some() => {
                burst_over = None;
                // Off this connection's loop: its next message does not wait for it.
                tokio::spawn(compact_after_burst(Arc::clone(&shared)));
                Ok(true)
            }
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
            let lost;
            let who = match &session {
                Some(session) => &session.who,
                None => {
                    lost = Who::new(remote, None);
                    &lost
                }
            };
            refuse(&mut conn, &shared, Some(&peer.id), who, &error).await
        }
    }
    let traffic = conn.traffic();
    shared.options.metrics.traffic_since(traffic, reported);
    shared.options.metrics.with(|m| m.device_left());
    let store = Arc::clone(&shared.store);
    let ephemeral = peer.ephemeral;
    let ended = tokio::task::spawn_blocking(move || {
        end_conversation(store.as_ref(), &conversation, ephemeral)
    })
    .await;
    if let Ok(Err(error)) = ended {
        warn!(%error, "could not forget an ephemeral peer's sync state");
    }
    log_end(id, &peer.id, &traffic);
    if burst_over.is_some() {
        compact_after_burst(shared).await;
    }
}

/// Most messages already received that one step acts on together (see [`ready_behind`]).
const READY_AT_ONCE: usize = 16;

/// `first` and the messages already received behind it, up to [`READY_AT_ONCE`], for one step
/// ([`PeerSession::handle_all`] works on different plans' messages side by side); and how the
/// connection ended, when that came behind them (None inside: closed; else the error).
fn ready_behind<S>(
    conn: &mut Connection<S>,
    first: Message,
) -> (Vec<Message>, Option<Option<SyncError>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::FutureExt;
    let mut messages = vec![first];
    while messages.len() < READY_AT_ONCE {
        // `recv` keeps a frame it has not returned: asking without waiting loses nothing.
        match conn.recv().now_or_never() {
            Some(Some(Ok(message))) => messages.push(message),
            Some(Some(Err(error))) => return (messages, Some(Some(error))),
            Some(None) => return (messages, Some(None)),
            None => break,
        }
    }
    (messages, None)
}

/// How long a peer sends nothing before its burst of messages counts as over.
const BURST_QUIET: Duration = Duration::from_millis(250);
/// Most plans compacted after one burst (`SyncStore::compact_due`): the rest wait for the next.
pub(super) const COMPACT_PER_BURST: usize = 32;

/// Compacts what a burst of messages left due, on the blocking pool, off the sync path
/// (`docs/design.md`, "Compaction"). A failure is logged: the plans stay as they are stored.
async fn compact_after_burst(shared: Arc<Shared>) {
    let store = Arc::clone(&shared.store);
    let compacted = tokio::task::spawn_blocking(move || store.compact_due(COMPACT_PER_BURST)).await;
    match compacted {
        Ok(Ok(0)) => {}
        Ok(Ok(plans)) => debug!(plans, "compacted after a burst"),
        Ok(Err(error)) => warn!(%error, "compaction after a burst failed"),
        Err(_) => warn!("compaction after a burst stopped"),
    }
}

/// Runs one step of the peer's session on the blocking pool (its store is SQLite), then sends
/// what the step gathered, even when it failed (a refused notice goes out before the error).
async fn step<S, T: Send + 'static>(
    conn: &mut Connection<S>,
    session: &mut Option<PeerSession>,
    work: impl FnOnce(&mut PeerSession) -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut taken = session.take().ok_or(SyncError::Closed)?;
    let (taken, result, out) = tokio::task::spawn_blocking(move || {
        let result = work(&mut taken);
        let out = std::mem::take(&mut taken.out);
        (taken, result, out)
    })
    .await
    .map_err(|_| SyncError::Transport("store task failed".into()))?;
    *session = Some(taken);
    for message in out {
        conn.send(&message).await?;
    }
    result
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
    let told = refusal(shared, peer, error);
    who.refused(&shared.store, error).await;
    let remote = who.remote();
    warn!(%remote, peer = ?peer.map(PeerId::as_str), %error, "closing connection");
    if let Some(told) = told {
        let _ = conn.send(&told).await;
    }
    conn.close(Some(&error.to_string())).await;
}

/// Counts a refusal in the relay's counters and metrics, and gives the `error` message that
/// tells the peer why it is disconnected (none for a connection that is gone already).
pub(super) fn refusal(
    shared: &Shared,
    peer: Option<&PeerId>,
    error: &SyncError,
) -> Option<Message> {
    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
    shared.options.metrics.with(|m| m.refused(rule_of(error)));
    if matches!(error, SyncError::Closed | SyncError::Transport(_)) {
        return None;
    }
    Some(Message::Error {
        sender_id: Some(shared.peer_id.clone()),
        target_id: peer.cloned(),
        message: error.to_string(),
    })
}

/// Ends a peer's conversation in the store once its connection is gone: an ephemeral peer's
/// sync state is deleted, a peer that keeps storage keeps its persisted part. Blocks.
pub(super) fn end_conversation(
    store: &dyn SyncStore,
    conversation: &SyncPeer,
    ephemeral: bool,
) -> Result<(), SyncError> {
    if ephemeral {
        store.forget_peer(conversation)
    } else {
        store.end_sync_session(conversation);
        Ok(())
    }
}

/// Who joined, and the key their sync state is kept under.
#[derive(Clone)]
pub(super) struct JoinedPeer {
    pub(super) id: PeerId,
    pub(super) key: String,
    /// The peer keeps nothing between sessions: its sync state is dropped when it leaves.
    pub(super) ephemeral: bool,
    /// The peer speaks the heads-digest extension (it said so in `join`).
    pub(super) heads_digest: bool,
    /// The peer understands refused notices (it said so in `join`).
    pub(super) refused_notices: bool,
}

/// Checks the presented token when tokens are required (see [`authenticate_blocking`]).
async fn authenticate(
    shared: &Arc<Shared>,
    presented: Option<&str>,
) -> Result<Option<Access>, SyncError> {
    let shared = Arc::clone(shared);
    let presented = presented.map(str::to_string);
    tokio::task::spawn_blocking(move || authenticate_blocking(&shared, presented.as_deref()))
        .await
        .map_err(|_| SyncError::Transport("store task failed".into()))?
}

/// Checks the presented token when tokens are required: None when they are not. Takes one of
/// the token's connection slots. Blocks on the store.
///
/// Errors: no token, a malformed one, one that opens no plan (unless enrollment is open)
/// ([`SyncError::Unauthorized`]), too many connections with it ([`SyncError::Limit`]).
pub(super) fn authenticate_blocking(
    shared: &Arc<Shared>,
    presented: Option<&str>,
) -> Result<Option<Access>, SyncError> {
    if !shared.options.require_token {
        return Ok(None);
    }
    let token = presented.ok_or(SyncError::Unauthorized("no token presented"))?;
    check_token(token)?;
    let hash = token_hash(token);
    let documents = documents_of_token(shared, &hash)?;
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

/// Waits for `join` and answers `peer` (see [`answer_join`]).
async fn join<S>(
    conn: &mut Connection<S>,
    shared: &Arc<Shared>,
    access: Option<&Access>,
) -> Result<JoinedPeer, SyncError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let message = tokio::time::timeout(shared.options.handshake_timeout, conn.recv())
        .await
        .map_err(|_| SyncError::Timeout("the peer's `join` message"))?
        .ok_or(SyncError::Closed)??;
    let opened = access.map(|access| access.documents.clone());
    let shared = Arc::clone(shared);
    let (peer, answer) =
        tokio::task::spawn_blocking(move || answer_join(&shared, opened.as_ref(), message))
            .await
            .map_err(|_| SyncError::Transport("store task failed".into()))??;
    conn.send(&answer).await?;
    Ok(peer)
}
