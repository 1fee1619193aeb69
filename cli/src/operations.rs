//! `alliance relay` as a service (settings, admin listener, signals, logs), its audit trail
//! (`alliance relay audit`), and `alliance backup` / `alliance restore`. See
//! `docs/operations.md`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use alliance_core::audit::{AuditEntry, AuditFilter, AuditKind, NewAuditEntry};
use alliance_core::sync::{MetricsSink, Relay, SyncStore, TlsIdentity};
use alliance_core::{Alliance, DeviceId, Error, PlanId, Result};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::admin::{self, Admin};
use crate::args::{RelayAction, RelayArgs};
use crate::metrics::Metrics;
use crate::relay_config::{LogFormat, RelayConfig};
use crate::store_file::StoreFile;

/// Threads the relay's runtime runs store calls on (the store serialises its work).
const BLOCKING_THREADS: usize = 8;

/// `alliance relay …`: serves, or lists or verifies the audit trail.
pub fn relay(args: RelayArgs, db: &StoreFile, db_is_default: bool) -> Result<()> {
    match args.action {
        Some(RelayAction::Key { config, store }) => {
            let config = config
                .map(|path| RelayConfig::load(Some(&path)))
                .transpose()?;
            if let Some(url) = store.or_else(|| config.as_ref().and_then(|c| c.store.clone())) {
                let store = alliance_relay_pg::PgStore::open(&url).map_err(|error| {
                    Error::InvalidInput {
                        field: "store",
                        reason: error.to_string(),
                    }
                })?;
                println!("{}", store.relay_public_key());
                return Ok(());
            }
            let store_file = match config {
                Some(config) => relay_store(&config, db, db_is_default)?,
                None => db.sibling(db.path()),
            };
            // Made before the relay first serves, if need be: the store it will open.
            let store = store_file.open()?;
            println!("{}", store.relay_public_key()?);
            Ok(())
        }
        Some(RelayAction::Audit {
            config,
            plan,
            device,
            since,
            json,
            verify,
        }) => {
            let store_file = match config {
                Some(path) => relay_store(&RelayConfig::load(Some(&path))?, db, db_is_default)?,
                None => db.sibling(db.path()),
            };
            let store = crate::commands::open_existing(&store_file)?;
            if verify {
                return verify_trail(&store);
            }
            let filter = AuditFilter {
                plan_id: plan
                    .map(|p| PlanId::parse(&p).map(|p| p.to_string()))
                    .transpose()?,
                device_id: device
                    .map(|d| DeviceId::parse(&d).map(|d| d.to_string()))
                    .transpose()?,
                since: since.as_deref().map(parse_since).transpose()?,
            };
            let entries = store.audit_entries(&filter)?;
            admin_action(&store, "audit_listed");
            print_entries(&entries, json)
        }
        None => {
            let config = settings(&args)?;
            if args.check_config {
                println!("configuration ok");
                return Ok(());
            }
            let store_file = relay_store(&config, db, db_is_default)?;
            serve(config, &store_file)
        }
    }
}

/// The relay's store: the settings' `db` and `key_file` stand in for the global flags left at
/// their defaults.
fn relay_store(config: &RelayConfig, db: &StoreFile, db_is_default: bool) -> Result<StoreFile> {
    Ok(match (&config.db, &config.key_file, db_is_default) {
        (Some(path), Some(key), true) => StoreFile::new(path, Some(key))?,
        (Some(path), None, true) => db.sibling(path),
        _ => db.sibling(db.path()),
    })
}

/// Defaults, then `--config`, then the environment, then flags.
fn settings(args: &RelayArgs) -> Result<RelayConfig> {
    let mut config = RelayConfig::load(args.config.as_deref())?;
    let flags = [
        ("store", args.store.clone()),
        ("listen", args.listen.clone()),
        ("admin", args.admin.clone()),
        ("log_format", args.log_format.clone()),
        ("drain_grace_secs", args.drain_grace_secs.clone()),
        ("no_auth", args.no_auth.then(|| "true".to_string())),
        (
            "open_enrollment",
            args.open_enrollment.then(|| "true".to_string()),
        ),
        ("tls_cert", path_text(args.tls_cert.as_deref())),
        ("tls_key", path_text(args.tls_key.as_deref())),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            config.apply_flag(key, value)?;
        }
    }
    config.check()?;
    Ok(config)
}

fn path_text(path: Option<&Path>) -> Option<String> {
    path.map(|p| p.display().to_string())
}

/// Logs to stderr as text or one JSON object per line: warnings by default, `RUST_LOG` for
/// more or less (automerge's own lines off).
fn init_logs(format: LogFormat) {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,automerge=off"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn read_tls(config: &RelayConfig) -> Result<Option<TlsIdentity>> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsIdentity {
            cert_chain_pem: read_file(cert, "TLS certificate")?,
            private_key_pem: read_file(key, "TLS key")?,
        })),
        _ => Ok(None),
    }
}

fn read_file(path: &Path, field: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| Error::InvalidInput {
        field,
        reason: format!("{}: {error}", path.display()),
    })
}

/// Who runs this command, for admin entries: `local:USER` (the login name from the
/// environment; a service manager sets it for the service's user).
fn operator() -> String {
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    format!("local:{}", user.as_deref().unwrap_or("unknown"))
}

/// Appends an admin action to the trail, logging a failure (the action itself went ahead).
fn admin_action(store: &dyn SyncStore, action: &str) {
    let entry = NewAuditEntry {
        detail: Some(action.to_string()),
        remote: Some(operator()),
        ..NewAuditEntry::new(AuditKind::Admin, "ok")
    };
    if let Err(error) = store.record_audit(&entry) {
        warn!(%error, action, "could not append to the audit trail");
    }
}

/// Serves until SIGTERM or SIGINT, then drains; SIGHUP reloads the TLS certificate.
fn serve(config: RelayConfig, db: &StoreFile) -> Result<()> {
    init_logs(config.log_format);
    let tls = read_tls(&config)?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    // The SQLite file, or a PostgreSQL database several relays share.
    let (store, sqlite): (Arc<dyn SyncStore>, Option<Arc<Alliance>>) = match &config.store {
        Some(url) => (
            alliance_relay_pg::PgStore::open_shared(url).map_err(|error| Error::InvalidInput {
                field: "store",
                reason: error.to_string(),
            })?,
            None,
        ),
        None => {
            let sqlite = Arc::new(db.open()?);
            (sqlite.clone(), Some(sqlite))
        }
    };
    let metrics = config.admin.map(|_| Arc::new(Metrics::new()));
    let mut options = config.options();
    options.tls = tls;
    if let Some(metrics) = &metrics {
        options.metrics = MetricsSink::new(metrics.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    runtime.block_on(async {
        // Signals are caught from here on: none is lost between bind and the loop.
        let mut terminate = signal(SignalKind::terminate()).map_err(Error::Io)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Io)?;
        let mut hangup = signal(SignalKind::hangup()).map_err(Error::Io)?;
        let relay = Relay::bind(&config.listen, store.clone(), options).await?;
        println!("relay listening on {scheme}://{}", relay.local_addr());
        if let (Some(addr), Some(metrics), Some(sqlite)) = (config.admin, metrics, sqlite) {
            let admin = Arc::new(Admin {
                metrics,
                store: sqlite,
            });
            let bound = admin::serve(addr, admin).await?;
            println!("admin listening on http://{bound}");
        }
        let _ = std::io::stdout().flush();
        // A store call blocks (PostgreSQL's waits on its own runtime): off this one's reactor.
        tokio::task::block_in_place(|| admin_action(store.as_ref(), "relay_started"));
        let signal = loop {
            tokio::select! {
                _ = terminate.recv() => break "SIGTERM",
                _ = interrupt.recv() => break "SIGINT",
                _ = hangup.recv() => tokio::task::block_in_place(|| {
                    reload_tls(&relay, &config, store.as_ref())
                }),
            }
        };
        info!(
            signal,
            grace_secs = config.drain_grace.as_secs(),
            "draining"
        );
        // A second SIGTERM or SIGINT stops at once, without waiting out the grace period.
        let drained = tokio::select! {
            _ = relay.drain(config.drain_grace) => true,
            _ = terminate.recv() => false,
            _ = interrupt.recv() => false,
        };
        if !drained {
            warn!("stopped before the drain finished");
        }
        let action = if drained {
            "relay_stopped"
        } else {
            "relay_stopped_early"
        };
        tokio::task::block_in_place(|| admin_action(store.as_ref(), action));
        info!("relay stopped");
        Ok(())
    })
}

/// Reads the certificate and key files again and puts them in place; a pair that does not
/// load is refused and the old one stays.
fn reload_tls(relay: &Relay, config: &RelayConfig, store: &dyn SyncStore) {
    let outcome = read_tls(config).and_then(|identity| match identity {
        Some(identity) => relay.reload_tls(&identity).map_err(Error::from),
        None => Err(Error::InvalidInput {
            field: "TLS",
            reason: "this relay serves ws:// without TLS: nothing to reload".into(),
        }),
    });
    match outcome {
        Ok(()) => {
            info!("TLS certificate reloaded");
            admin_action(store, "tls_reloaded");
        }
        Err(error) => {
            warn!(%error, "TLS certificate not reloaded; the old one stays");
            admin_action(store, "tls_reload_failed");
        }
    }
}

/// `--since`: YYYY-MM-DD (midnight UTC) or an RFC 3339 time; UTC milliseconds.
fn parse_since(text: &str) -> Result<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = day.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc().timestamp_millis());
        }
    }
    Err(Error::InvalidInput {
        field: "--since",
        reason: format!("{text:?} is neither YYYY-MM-DD nor an RFC 3339 time"),
    })
}

fn print_entries(entries: &[AuditEntry], json: bool) -> Result<()> {
    if json {
        let text = serde_json::to_string_pretty(entries).map_err(std::io::Error::other)?;
        println!("{text}");
        return Ok(());
    }
    for entry in entries {
        let at = chrono::DateTime::from_timestamp_millis(entry.at)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| entry.at.to_string());
        let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
        println!(
            "{:>6} {at} {:<14} {:<7} device={} member={} plan={} remote={} {}",
            entry.seq,
            entry.kind.as_str(),
            entry.outcome,
            dash(&entry.device_id),
            dash(&entry.member_id),
            dash(&entry.plan_id),
            dash(&entry.remote),
            dash(&entry.detail),
        );
    }
    Ok(())
}

fn verify_trail(store: &Alliance) -> Result<()> {
    let report = store.verify_audit()?;
    if report.problems.is_empty() {
        println!(
            "ok: {} entries, head {}",
            report.entries,
            report.head.as_deref().unwrap_or("(empty)")
        );
        admin_action(store, "audit_verified");
        return Ok(());
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    Err(Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "the audit trail is broken: {} problem(s) in {} entries",
            report.problems.len(),
            report.entries
        ),
    )))
}

/// `alliance backup --out FILE`.
pub fn backup(db: &StoreFile, out: &Path) -> Result<()> {
    let store = crate::commands::open_existing(db)?;
    store.backup_to(out)?;
    println!("backup written to {}", out.display());
    Ok(())
}

/// `alliance restore --from FILE`.
pub fn restore(db: &StoreFile, from: &Path) -> Result<()> {
    alliance_core::store::restore(db.path(), from, db.key())?;
    let store = db.open()?;
    admin_action(&store, "restored");
    println!("restored {} from {}", db.path().display(), from.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_day_or_a_time() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1_000);
        assert!(parse_since("yesterday").is_err());
    }
}
