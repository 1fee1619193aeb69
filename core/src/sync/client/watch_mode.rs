//! Watch mode: a device that stays connected, pushes each local change as it is stored and
//! reconnects with backoff when the connection drops.

use super::*;
use tokio::sync::watch;

/// A running watch-mode sync (see [`spawn_watch`]). Dropping it stops syncing.
pub struct SyncHandle {
    changes: mpsc::UnboundedSender<DocumentId>,
    stop: watch::Sender<bool>,
    progress: Arc<Mutex<SyncProgress>>,
    task: Option<JoinHandle<()>>,
    /// Undoes what was hooked into the store for this handle (e.g. a change observer).
    on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl SyncHandle {
    /// Tells the engine a document changed locally, so it is pushed right away.
    pub fn local_change(&self, document: DocumentId) {
        let _ = self.changes.send(document);
    }

    /// A sender the store's change observer can keep (see [`SyncHandle::local_change`]).
    pub fn change_sender(&self) -> mpsc::UnboundedSender<DocumentId> {
        self.changes.clone()
    }

    /// The latest progress.
    pub fn progress(&self) -> SyncProgress {
        self.progress.lock().clone()
    }

    /// Runs `undo` when syncing stops (used to unhook store observers).
    pub(crate) fn set_on_stop(&mut self, undo: Box<dyn FnOnce() + Send>) {
        self.on_stop = Some(undo);
    }

    /// Stops syncing and waits until the connection is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(undo) = self.on_stop.take() {
            undo();
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(undo) = self.on_stop.take() {
            undo();
        }
    }
}

/// Keeps syncing with the server until stopped: pushes local changes as they are announced,
/// takes in remote ones, reconnects with exponential backoff. Must run inside a tokio runtime.
pub fn spawn_watch(
    store: Arc<dyn SyncStore>,
    url: &str,
    options: SyncOptions,
    observer: Arc<dyn SyncObserver>,
) -> SyncHandle {
    let (changes, change_rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let progress = Arc::new(Mutex::new(SyncProgress::default()));
    let reporter = Reporter {
        observer,
        latest: Arc::clone(&progress),
    };
    let task = tokio::spawn(watch_loop(
        store,
        url.to_string(),
        options,
        reporter,
        change_rx,
        stop_rx,
    ));
    SyncHandle {
        changes,
        stop,
        progress,
        task: Some(task),
        on_stop: None,
    }
}

struct Reporter {
    observer: Arc<dyn SyncObserver>,
    latest: Arc<Mutex<SyncProgress>>,
}

impl Reporter {
    fn report(&self, progress: SyncProgress) {
        {
            let mut latest = self.latest.lock();
            if *latest == progress {
                return;
            }
            *latest = progress.clone();
        }
        self.observer.progress(&progress);
    }

    fn latest(&self) -> SyncProgress {
        self.latest.lock().clone()
    }

    fn refused(&self, refusals: Vec<OwnChangesRefused>) {
        for refused in &refusals {
            self.observer.own_changes_refused(refused);
        }
    }
}

/// How long a watch session hears nothing and makes no local change before the burst counts
/// as over and what it left due is compacted.
const BURST_QUIET: Duration = Duration::from_secs(1);

enum SessionEnd {
    Stopped,
    Failed(SyncError),
}

async fn watch_loop(
    store: Arc<dyn SyncStore>,
    url: String,
    options: SyncOptions,
    reporter: Reporter,
    mut changes: mpsc::UnboundedReceiver<DocumentId>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = options.backoff_initial;
    loop {
        if *stop.borrow() {
            return;
        }
        let (end, was_connected) =
            watch_session(&store, &url, &options, &reporter, &mut changes, &mut stop).await;
        let error = match end {
            SessionEnd::Stopped => {
                let latest = reporter.latest();
                reporter.report(SyncProgress {
                    connected: false,
                    ..latest
                });
                return;
            }
            SessionEnd::Failed(error) => error,
        };
        if was_connected {
            delay = options.backoff_initial;
        }
        warn!(%error, retry_in_ms = delay.as_millis() as u64, "sync session ended");
        let latest = reporter.latest();
        reporter.report(SyncProgress {
            connected: false,
            last_error: Some(error.to_string()),
            ..latest
        });
        // Up to a quarter more, so many devices do not reconnect in lockstep.
        let jitter = delay.mul_f64((uuid::Uuid::new_v4().as_u128() % 256) as f64 / 1024.0);
        tokio::select! {
            _ = tokio::time::sleep(delay + jitter) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(options.backoff_max);
    }
}

/// One connection in watch mode; returns how it ended and whether the handshake succeeded.
async fn watch_session(
    store: &Arc<dyn SyncStore>,
    url: &str,
    options: &SyncOptions,
    reporter: &Reporter,
    changes: &mut mpsc::UnboundedReceiver<DocumentId>,
    stop: &mut watch::Receiver<bool>,
) -> (SessionEnd, bool) {
    // Everything stored so far is synced from scratch on connect, so what was announced before
    // is covered. Announcements from here on are kept: an edit stored after the heads were
    // compared in the handshake is pushed only through its announcement.
    while changes.try_recv().is_ok() {}
    let mut driven = tokio::select! {
        driven = connect(store, url, options) => match driven {
            Ok(driven) => driven,
            Err(error) => return (SessionEnd::Failed(error), false),
        },
        _ = stop.changed() => return (SessionEnd::Stopped, false),
    };
    if let Some(server) = driven.session().remote() {
        info!(%server, "connected");
    }
    let mut last_error = reporter.latest().last_error;
    let keepalive = options.keepalive.filter(|every| !every.is_zero());
    let mut pings = keepalive.map(|every| tokio::time::interval_at(Instant::now() + every, every));
    // When the server's burst of messages is over: the plans it brought are compacted then.
    let mut burst_over: Option<Instant> = None;
    let end = async {
        loop {
            reporter.refused(driven.session().unreported_refusals());
            if driven.session().all_settled() {
                last_error = None;
            }
            reporter.report(driven.session().progress(last_error.clone()));
            let next_ping = async {
                match pings.as_mut() {
                    Some(pings) => pings.tick().await,
                    None => std::future::pending().await,
                }
            };
            // A watch session never times out waiting: its keepalive notices a dead server.
            let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
            tokio::select! {
                message = driven.next_message(far) => {
                    match message? {
                        Some(message) => {
                            burst_over = Some(Instant::now() + BURST_QUIET);
                            driven.receive_ready(message).await?
                        }
                        None => driven.step(ClientSession::quiet).await?,
                    }
                }
                _ = tokio::time::sleep_until(burst_over.unwrap_or(far)), if burst_over.is_some() => {
                    burst_over = None;
                    driven.step(|s| {
                        s.compact();
                        Ok(Vec::new())
                    })
                    .await?;
                }
                Some(document) = changes.recv() => {
                    burst_over = Some(Instant::now() + BURST_QUIET);
                    driven.step(move |s| s.local_change(document)).await?;
                }
                _ = next_ping => {
                    let every = keepalive.unwrap_or_default();
                    if driven.conn.last_heard().elapsed() > every * 2 {
                        return Err(SyncError::Timeout("the server to answer a keepalive ping"));
                    }
                    driven.conn.ping().await?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    // Notices handled just before the session failed are reported all the same.
    reporter.refused(driven.session().unreported_refusals());
    driven.finish().await;
    match end {
        Ok(()) => (SessionEnd::Stopped, true),
        Err(error) => (SessionEnd::Failed(error), true),
    }
}
