//! What a device's sync is told (limits and timings) and tells back (progress, summaries,
//! refused own changes), shared by one-shot and watch-mode sync.

use std::time::Duration;

use super::*;

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
