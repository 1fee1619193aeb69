//! `alliance relay` and `alliance sync --server`: the network side of the shell.

use std::io::Write;
use std::sync::Arc;

use alliance_core::sync::{
    run_relay_blocking, sync_once_blocking, watch_blocking, RelayOptions, SyncOptions,
    SyncProgress, SyncSummary,
};
use alliance_core::{Alliance, Result};
use tracing_subscriber::EnvFilter;

use crate::store_file::StoreFile;

/// Logs to stderr: warnings by default (a relay's reasons for closing a connection),
/// `RUST_LOG` for more or less.
fn log_to_stderr() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Serves the store at `db` (created when missing) on `listen` until the process ends.
pub fn relay(db: &StoreFile, listen: &str) -> Result<()> {
    log_to_stderr();
    let store = Arc::new(db.open()?);
    run_relay_blocking(listen, store, RelayOptions::default(), |addr| {
        println!("relay listening on ws://{addr}");
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}

/// Syncs every plan of `store` with the server once, or keeps syncing (`watch`).
pub fn sync(store: Alliance, url: &str, watch: bool) -> Result<()> {
    log_to_stderr();
    let store = Arc::new(store);
    if watch {
        let observer = Arc::new(|progress: &SyncProgress| {
            println!("{}", progress_line(progress));
            let _ = std::io::stdout().flush();
        });
        watch_blocking(store, url, SyncOptions::default(), observer)?;
    } else {
        let summary = sync_once_blocking(store, url, &SyncOptions::default())?;
        println!("{}", summary_line(&summary));
    }
    Ok(())
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
