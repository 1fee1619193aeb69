//! Network sync as the shells see it: progress records and the callback that reports them.

use alliance_core::sync as core_sync;

/// What a shell shows about sync with the server.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// A session with the server is open.
    pub connected: bool,
    /// Plans this device syncs.
    pub plans_total: u32,
    /// Plans the server has confirmed it holds as they are here.
    pub plans_synced: u32,
    /// The last failure, kept until a session succeeds. Names no person and no goal.
    pub last_error: Option<String>,
}

impl From<&core_sync::SyncProgress> for SyncProgress {
    fn from(progress: &core_sync::SyncProgress) -> Self {
        Self {
            connected: progress.connected,
            plans_total: u32::try_from(progress.plans_total).unwrap_or(u32::MAX),
            plans_synced: u32::try_from(progress.plans_synced).unwrap_or(u32::MAX),
            last_error: progress.last_error.clone(),
        }
    }
}

/// Implemented by the shell: told each time sync progress changes. Called on a background
/// thread; return quickly.
#[uniffi::export(callback_interface)]
pub trait SyncObserver: Send + Sync {
    fn sync_progress(&self, progress: SyncProgress);
}

/// Hands the engine's progress to the shell's observer.
pub(crate) struct Forward(pub(crate) Box<dyn SyncObserver>);

impl core_sync::SyncObserver for Forward {
    fn progress(&self, progress: &core_sync::SyncProgress) {
        self.0.sync_progress(progress.into());
    }
}
