//! What a relay tells an operator's metrics about itself: connections, devices, traffic,
//! refusals and latencies. `alliance relay --admin` serves them in the Prometheus text format
//! (see `docs/operations.md`, Monitoring); the relay itself keeps none.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::connection::Traffic;

/// Receives a relay's measurements as they happen. Every method must be cheap and must not
/// block: it is called on the relay's async threads. Each has a no-op default.
pub trait RelayMetrics: Send + Sync + 'static {
    /// A TCP connection was accepted.
    fn connection_opened(&self) {}
    /// A connection accepted earlier ended (however it ended).
    fn connection_closed(&self) {}
    /// A device joined (after its token, when required, was accepted).
    fn device_joined(&self) {}
    /// A device that joined left.
    fn device_left(&self) {}
    /// Frames and bytes that crossed a connection since it last reported.
    fn traffic(&self, delta: &Traffic) {
        let _ = delta;
    }
    /// A connection was refused, or closed, for breaking `rule` (see [`rule_of`]), or the role
    /// rules refused a change (`rule` is then the role rule's name).
    fn refused(&self, rule: &str) {
        let _ = rule;
    }
    /// A device's sync message was answered: from its arrival to the reply being sent.
    fn sync_round_trip(&self, elapsed: Duration) {
        let _ = elapsed;
    }
    /// A device's sync message was applied to the store (one transaction).
    fn store_write(&self, elapsed: Duration) {
        let _ = elapsed;
    }
}

/// The measurements a relay reports to (none by default).
#[derive(Clone, Default)]
pub struct MetricsSink(Option<Arc<dyn RelayMetrics>>);

impl MetricsSink {
    pub fn new(metrics: Arc<dyn RelayMetrics>) -> Self {
        Self(Some(metrics))
    }

    /// Calls `f` on the receiver, if there is one.
    pub(crate) fn with(&self, f: impl FnOnce(&dyn RelayMetrics)) {
        if let Some(metrics) = &self.0 {
            f(metrics.as_ref());
        }
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn open_connection(&self) -> OpenGuard {
        self.with(|m| m.connection_opened());
        OpenGuard(self.clone())
    }

    /// Reports the traffic of a connection since `reported`; returns the new total.
    pub(crate) fn traffic_since(&self, now: Traffic, reported: Traffic) -> Traffic {
        let delta = Traffic {
            frames_sent: now.frames_sent - reported.frames_sent,
            frames_received: now.frames_received - reported.frames_received,
            bytes_sent: now.bytes_sent - reported.bytes_sent,
            bytes_received: now.bytes_received - reported.bytes_received,
        };
        if delta != Traffic::default() {
            self.with(|m| m.traffic(&delta));
        }
        now
    }
}

impl fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "MetricsSink(on)"
        } else {
            "MetricsSink(off)"
        })
    }
}

/// Reports a connection closed when dropped.
pub(crate) struct OpenGuard(MetricsSink);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.with(|m| m.connection_closed());
    }
}

/// The name of the rule a refused connection broke: a fixed word per kind of error, used as a
/// metrics label and in the audit trail (never the error's text, which may quote the peer).
pub fn rule_of(error: &super::SyncError) -> &'static str {
    use super::SyncError as E;
    match error {
        E::FrameTooLarge { .. } => "frame_too_large",
        E::MalformedFrame(_)
        | E::MissingField { .. }
        | E::InvalidField { .. }
        | E::InvalidDocumentId(_)
        | E::InvalidUrl(_)
        | E::InvalidSyncData(_) => "malformed",
        E::UnsupportedProtocolVersion { .. } => "protocol_version",
        E::UnexpectedMessage(_) => "unexpected_message",
        E::Remote(_) => "peer_error",
        E::Transport(_) | E::Closed => "transport",
        E::Timeout(_) => "timeout",
        E::Unauthorized(_) => "unauthorized",
        E::Tls(_) => "tls",
        E::Limit(_) => "limit",
        E::Store(_) => "store",
    }
}
