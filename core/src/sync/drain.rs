//! Draining a relay before it stops (SIGTERM, see `docs/operations.md`): it stops accepting,
//! each connection finishes the exchange under way and is closed with a going-away frame once
//! it has been quiet a moment, and whatever is still open when the grace period ends is closed.
//! Every change a relay acknowledged is already committed: draining loses nothing stored.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long a connection must have sent nothing, while draining, to count as between
/// exchanges.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

/// When draining began, its grace period's end; None while serving.
pub(crate) type DrainSignal = watch::Receiver<Option<Instant>>;

/// Resolves once draining has begun.
pub(crate) async fn started(drain: &mut DrainSignal) -> Instant {
    loop {
        if let Some(deadline) = *drain.borrow_and_update() {
            return deadline;
        }
        if drain.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves once the relay drains and a connection that last heard from its peer at
/// `last_heard` has been quiet for [`QUIET`], or the grace period ended.
pub(crate) async fn settled(drain: &mut DrainSignal, last_heard: Instant) {
    let deadline = started(drain).await;
    let quiet = (last_heard + QUIET).max(Instant::now());
    tokio::time::sleep_until(quiet.min(deadline)).await;
}
