//! `alliance relay` and `alliance sync --server`: the network side of the shell.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use alliance_core::sync::{
    sync_once_blocking, watch_blocking, OwnChangesRefused, SyncObserver, SyncOptions, SyncProgress,
    SyncSummary,
};
use alliance_core::{Alliance, Error, PlanId, Result};
use tracing_subscriber::EnvFilter;

/// Logs to stderr: warnings by default (a relay's reasons for closing a connection),
/// `RUST_LOG` for more or less. Automerge's own log lines are off by default: every error they
/// describe reaches the user once, as Alliance's typed error.
pub(crate) fn log_to_stderr() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,automerge=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Syncs every plan of `store` with the server once, or keeps syncing (`watch`). Returns how
/// many of this device's own changes the server refused (each named on stderr).
pub fn sync(
    store: Alliance,
    url: &str,
    watch: bool,
    token: Option<String>,
    ca_cert: Option<&Path>,
) -> Result<usize> {
    log_to_stderr();
    let store = Arc::new(store);
    let options = SyncOptions {
        token,
        extra_root_certificate: ca_cert.map(read_pem).transpose()?,
        ..SyncOptions::default()
    };
    if watch {
        watch_blocking(store, url, options, Arc::new(WatchPrinter))?;
        Ok(0)
    } else {
        let summary = sync_once_blocking(store, url, &options)?;
        println!("{}", summary_line(&summary));
        summary.refused.iter().for_each(print_refused);
        Ok(summary.refused.iter().map(|r| r.changes.len()).sum())
    }
}

/// Watch mode's output: a line per change of progress on stdout, a line per refused own change
/// on stderr (syncing goes on).
struct WatchPrinter;

impl SyncObserver for WatchPrinter {
    fn progress(&self, progress: &SyncProgress) {
        println!("{}", progress_line(progress));
        let _ = std::io::stdout().flush();
    }

    fn own_changes_refused(&self, refused: &OwnChangesRefused) {
        print_refused(refused);
    }
}

fn print_refused(refused: &OwnChangesRefused) {
    let plan = PlanId::from(refused.document.as_uuid()).to_string();
    for change in &refused.changes {
        crate::print::own_change_refused(
            "this device's change",
            &plan,
            &change.rule,
            &change.change_hash,
        );
    }
}

/// Reads a PEM file named on the command line.
fn read_pem(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| Error::InvalidInput {
        field: "PEM file",
        reason: format!("{}: {error}", path.display()),
    })
}

fn summary_line(summary: &SyncSummary) -> String {
    let traffic = &summary.traffic;
    let mut line = format!(
        "synced {}/{} plan(s), {} updated, {} bytes sent, {} bytes received",
        summary.documents_synced,
        summary.documents_total,
        summary.documents_updated.len(),
        traffic.bytes_sent,
        traffic.bytes_received
    );
    if !summary.documents_unavailable.is_empty() {
        line.push_str(&format!(
            ", {} not on the server",
            summary.documents_unavailable.len()
        ));
    }
    line
}

fn progress_line(progress: &SyncProgress) -> String {
    let state = if progress.connected {
        "connected"
    } else {
        "disconnected"
    };
    let mut line = format!(
        "{state}: {}/{} plan(s) synced",
        progress.plans_synced, progress.plans_total
    );
    if let Some(error) = &progress.last_error {
        line.push_str(&format!(" (last error: {error})"));
    }
    line
}
