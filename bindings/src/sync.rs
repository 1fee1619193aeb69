//! Network sync as the shells see it: progress records and the callback that reports them.

use alliance_core as core;
use alliance_core::sync as core_sync;

/// What a shell shows about sync with the server.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// A session with the server is open.
    pub connected: bool,
    /// Plans this device syncs.
    pub plans_total: i32,
    /// Plans the server has confirmed it holds as they are here.
    pub plans_synced: i32,
    /// The last failure, kept until a session succeeds. Names no person and no goal.
    pub last_error: Option<String>,
}

impl From<&core_sync::SyncProgress> for SyncProgress {
    fn from(progress: &core_sync::SyncProgress) -> Self {
        Self {
            connected: progress.connected,
            plans_total: i32::try_from(progress.plans_total).unwrap_or(i32::MAX),
            plans_synced: i32::try_from(progress.plans_synced).unwrap_or(i32::MAX),
            last_error: progress.last_error.clone(),
        }
    }
}

/// One of this device's own changes that a peer refused (the relay, or a store synced with in
/// process): now out of the plan here and kept aside; later changes built on it were replayed
/// and still go out. Show it: the member's edit did not count.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RefusedChange {
    pub plan_id: String,
    /// The device whose change it was (this device, for a refusal from the server).
    pub device_id: String,
    /// The change's hash (hex), to tell refusals apart.
    pub change_hash: String,
    /// The rule it broke, in words without personal data (e.g. "only a counselor writes a
    /// goal's status"; "builds on a refused change" for a later change that could not be
    /// replayed without it).
    pub rule: String,
}

impl RefusedChange {
    /// The changes of one refused notice to `device`, each naming its plan.
    fn from_notice(refused: &core_sync::OwnChangesRefused, device: &str) -> Vec<Self> {
        let plan_id = core::PlanId::from(refused.document.as_uuid()).to_string();
        refused
            .changes
            .iter()
            .map(|change| Self {
                plan_id: plan_id.clone(),
                device_id: device.to_owned(),
                change_hash: change.change_hash.clone(),
                rule: change.rule.clone(),
            })
            .collect()
    }
}

impl From<core::local_sync::OwnChangeRefused> for RefusedChange {
    fn from(refused: core::local_sync::OwnChangeRefused) -> Self {
        Self {
            plan_id: refused.plan.to_string(),
            device_id: refused.device.to_string(),
            change_hash: refused.change_hash,
            rule: refused.rule,
        }
    }
}

/// Implemented by the shell: told each time sync progress changes, and when the server refused
/// some of this device's own changes. Called on a background thread; return quickly.
#[uniffi::export(callback_interface)]
pub trait SyncObserver: Send + Sync {
    fn sync_progress(&self, progress: SyncProgress);

    /// The server refused these own changes of one plan; sync goes on. Told once per refusal.
    fn changes_refused(&self, changes: Vec<RefusedChange>);
}

/// Hands the engine's progress and refusals to the shell's observer.
pub(crate) struct Forward {
    pub(crate) observer: Box<dyn SyncObserver>,
    /// This device's id (empty before `init_identity`: it then has no own changes).
    pub(crate) device: String,
}

impl core_sync::SyncObserver for Forward {
    fn progress(&self, progress: &core_sync::SyncProgress) {
        self.observer.sync_progress(progress.into());
    }

    fn own_changes_refused(&self, refused: &core_sync::OwnChangesRefused) {
        self.observer
            .changes_refused(RefusedChange::from_notice(refused, &self.device));
    }
}
