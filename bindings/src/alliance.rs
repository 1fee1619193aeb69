//! The `Alliance` object the shells hold: one device's store of plans, opened at a path the
//! shell gives. Each method converts its arguments, calls the core off the caller's thread and
//! maps the error.

use std::sync::Arc;

use alliance_core as core;
use alliance_core::sync::{spawn_alliance_watch, SyncHandle, SyncOptions};
use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime};

use crate::error::ApiError;
use crate::inputs::{
    parse, GasEdit, GoalEdit, NewCheckIn, NewDevice, NewIntervention, NewObjective, NewPlan,
};
use crate::observer::{PlanObserver, PlanSubscription};
use crate::records::{HistoryEntry, Identity, LocalSyncReport, Plan, PlanSummary, Role};
use crate::sync::{Forward, SyncObserver, SyncProgress};
use crate::tokens::checked_token;

/// One device's store of plans. Every method may be called from any thread; the core
/// serializes writes. After `close_store()` every call fails with `ApiError::Closed`.
#[derive(uniffi::Object)]
pub struct Alliance {
    open: Mutex<Option<OpenStore>>,
}

/// What an open store owns: the core, the threads its calls and its sync run on, and the sync
/// with a server while it runs.
struct OpenStore {
    store: Arc<core::Alliance>,
    runtime: Runtime,
    sync: Option<SyncHandle>,
}

impl Alliance {
    fn new(store: core::Alliance, runtime: Runtime) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(Some(OpenStore {
                store: Arc::new(store),
                runtime,
                sync: None,
            })),
        })
    }

    /// The core and a handle on its threads, or `Closed`.
    pub(crate) fn store(&self) -> Result<(Arc<core::Alliance>, Handle), ApiError> {
        let open = self.open.lock();
        let open = open.as_ref().ok_or(ApiError::Closed)?;
        Ok((Arc::clone(&open.store), open.runtime.handle().clone()))
    }

    /// Runs `work` on the store's blocking threads, so no caller's thread waits on SQLite.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&core::Alliance) -> Result<T, ApiError> + Send + 'static,
    {
        let (store, runtime) = self.store()?;
        await_blocking(runtime, move || work(&store)).await
    }
}

/// Builds the threads a store's calls run on. Blocking threads are not capped low: an observer
/// that calls back into the store from its notification must always find one.
fn new_runtime() -> Result<Runtime, ApiError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("alliance-store")
        .enable_all()
        .build()
        .map_err(|error| ApiError::Storage {
            reason: format!("cannot start the store's threads: {error}"),
        })
}

/// A store key from the bytes a shell passed; the shell's copy is zeroed here.
fn store_key(mut bytes: Vec<u8>) -> Result<core::StoreKey, ApiError> {
    let key = core::StoreKey::from_slice(&bytes);
    bytes.fill(0);
    Ok(key?)
}

async fn await_blocking<T, F>(runtime: Handle, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match runtime.spawn_blocking(work).await {
        Ok(result) => result,
        // The store was closed before the work started.
        Err(error) if error.is_cancelled() => Err(ApiError::Closed),
        Err(_) => Err(ApiError::Storage {
            reason: "the store failed unexpectedly".into(),
        }),
    }
}

#[uniffi::export]
impl Alliance {
    /// Opens (or creates) the store at `path`, a file the shell chose, encrypted at rest with
    /// `key`: the 32 bytes the shell keeps in the platform keystore. `key = null` opens the
    /// store unencrypted — an explicit choice for tests and previews, never a default: a store
    /// of real plans is always opened with a key. A key that does not open the store is
    /// `WrongKey`, and the file is left as it was.
    #[uniffi::constructor]
    pub async fn open(path: String, key: Option<Vec<u8>>) -> Result<Arc<Self>, ApiError> {
        let key = key.map(store_key).transpose()?;
        let runtime = new_runtime()?;
        let store = await_blocking(runtime.handle().clone(), move || {
            let path = std::path::Path::new(&path);
            match &key {
                Some(key) => core::Alliance::open_encrypted(path, key),
                None => core::Alliance::open(path),
            }
            .map_err(ApiError::from)
        })
        .await;
        match store {
            Ok(store) => Ok(Self::new(store, runtime)),
            Err(error) => {
                runtime.shutdown_background();
                Err(error)
            }
        }
    }

    /// A store that lives in memory only (previews, tests).
    #[uniffi::constructor]
    pub fn open_in_memory() -> Result<Arc<Self>, ApiError> {
        let runtime = new_runtime()?;
        match core::Alliance::open_in_memory() {
            Ok(store) => Ok(Self::new(store, runtime)),
            Err(error) => {
                runtime.shutdown_background();
                Err(error.into())
            }
        }
    }

    /// Re-encrypts the store under `new_key` (32 bytes); the next `open` needs the new key.
    /// A store opened without a key cannot be rekeyed (`InvalidInput`), nor one another
    /// `Alliance` or process has open too (`StoreInUse`; nothing changed).
    pub async fn rekey(&self, new_key: Vec<u8>) -> Result<(), ApiError> {
        let new_key = store_key(new_key)?;
        self.run(move |store| Ok(store.rekey(&new_key)?)).await
    }

    /// Closes the store: sync stops, calls already running finish, every later call fails
    /// with `Closed`.
    pub fn close_store(&self) {
        if let Some(open) = self.open.lock().take() {
            drop(open.sync);
            open.runtime.shutdown_background();
        }
    }

    /// Whether `close_store` was called.
    pub fn is_closed(&self) -> bool {
        self.open.lock().is_none()
    }

    /// This device's identity, or none before `init_identity`.
    pub async fn identity(&self) -> Result<Option<Identity>, ApiError> {
        self.run(|store| Ok(store.identity().map(Into::into))).await
    }

    /// Makes this store a device of a person: a new person, or a new device of `member_id`.
    pub async fn init_identity(
        &self,
        name: String,
        role: Role,
        member_id: Option<String>,
    ) -> Result<Identity, ApiError> {
        let member = member_id.as_deref().map(parse).transpose()?;
        self.run(move |store| Ok(store.init(&name, role.into(), member)?.into()))
            .await
    }

    /// Starts a plan with this counselor and a client. Returns its id.
    pub async fn create_plan(&self, new: NewPlan) -> Result<String, ApiError> {
        let new = core::NewPlan::try_from(new)?;
        self.run(move |store| Ok(store.create_plan(&new)?.to_string()))
            .await
    }

    /// Every plan stored here, without opening them.
    pub async fn list_plans(&self) -> Result<Vec<PlanSummary>, ApiError> {
        self.run(|store| Ok(store.list_plans()?.into_iter().map(Into::into).collect()))
            .await
    }

    /// Plans due for review within `within_days` of today on this device's calendar (0: due
    /// today or overdue), then plans with no review date; overdue and soonest first.
    pub async fn plans_due_for_review(
        &self,
        within_days: u32,
    ) -> Result<Vec<PlanSummary>, ApiError> {
        self.run(move |store| {
            Ok(store
                .plans_due_for_review(within_days)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// The plan now.
    pub async fn plan(&self, plan_id: String) -> Result<Plan, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.plan(plan)?.into())).await
    }

    /// Every change of the plan: when, by whom, what.
    pub async fn history(&self, plan_id: String) -> Result<Vec<HistoryEntry>, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.history(plan)?.into_iter().map(Into::into).collect()))
            .await
    }

    /// Renames the plan (counselor).
    pub async fn set_title(&self, plan_id: String, title: String) -> Result<(), ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.set_title(plan, &title)?))
            .await
    }

    /// Sets the next review date, "YYYY-MM-DD" (counselor).
    pub async fn set_review_on(&self, plan_id: String, date: String) -> Result<(), ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.set_review_on(plan, &date)?))
            .await
    }

    /// Enrolls a device in the plan (a counselor: anyone's; a client: their own).
    pub async fn enroll_device(&self, plan_id: String, device: NewDevice) -> Result<(), ApiError> {
        let plan = parse(&plan_id)?;
        let device = core::NewDevice::try_from(device)?;
        self.run(move |store| Ok(store.enroll_device(plan, &device)?))
            .await
    }

    /// Proposes a goal in the proposer's own words. Returns its id.
    pub async fn propose_goal(&self, plan_id: String, words: String) -> Result<String, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.propose_goal(plan, &words)?.to_string()))
            .await
    }

    /// Changes a goal's words, clinical statement, life area or status.
    pub async fn edit_goal(
        &self,
        plan_id: String,
        goal_id: String,
        edit: GoalEdit,
    ) -> Result<(), ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        let edit = core::GoalEdit::from(edit);
        self.run(move |store| Ok(store.edit_goal(plan, goal, &edit)?))
            .await
    }

    /// Adds a SMART objective to a goal (counselor). Returns its id.
    pub async fn add_objective(
        &self,
        plan_id: String,
        goal_id: String,
        objective: NewObjective,
    ) -> Result<String, ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        let objective = core::NewObjective::from(objective);
        self.run(move |store| Ok(store.add_objective(plan, goal, &objective)?.to_string()))
            .await
    }

    /// Adds an intervention to a goal (counselor). Returns its id.
    pub async fn add_intervention(
        &self,
        plan_id: String,
        goal_id: String,
        intervention: NewIntervention,
    ) -> Result<String, ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        let intervention = core::NewIntervention::try_from(intervention)?;
        self.run(move |store| {
            Ok(store
                .add_intervention(plan, goal, &intervention)?
                .to_string())
        })
        .await
    }

    /// Describes a GAS level (both roles) or sets the weight or baseline (counselor).
    pub async fn set_gas(
        &self,
        plan_id: String,
        goal_id: String,
        edit: GasEdit,
    ) -> Result<(), ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        let edit = core::GasEdit::try_from(edit)?;
        self.run(move |store| Ok(store.set_gas(plan, goal, &edit)?))
            .await
    }

    /// Records this member's agreement to the goal's current content.
    pub async fn agree(&self, plan_id: String, goal_id: String) -> Result<(), ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        self.run(move |store| Ok(store.agree(plan, goal)?)).await
    }

    /// Records a check-in by this member (or a correction of one of theirs). Returns its id.
    pub async fn check_in(
        &self,
        plan_id: String,
        goal_id: String,
        check_in: NewCheckIn,
    ) -> Result<String, ApiError> {
        let (plan, goal) = (parse(&plan_id)?, parse(&goal_id)?);
        let check_in = core::NewCheckIn::try_from(check_in)?;
        self.run(move |store| Ok(store.check_in(plan, goal, &check_in)?.to_string()))
            .await
    }

    /// Tells `observer` of every change to any plan here until the subscription is cancelled.
    pub fn observe(
        &self,
        observer: Box<dyn PlanObserver>,
    ) -> Result<Arc<PlanSubscription>, ApiError> {
        let (store, _) = self.store()?;
        Ok(Arc::new(PlanSubscription::register(&store, observer)))
    }

    // ---- sync ----

    /// Keeps every plan here in sync with the server at `server_url` (`ws://` or `wss://`)
    /// until `stop_sync` or `close_store`: local edits go out as they are made, remote ones come
    /// in and are announced to plan observers; lost connections are retried with backoff.
    /// `token` is this device's relay token (from `issue_device_token`), for relays that
    /// require one; it goes to the server only and is blanked from every error message.
    /// A malformed token is `InvalidInput`. `observer` hears each change of progress.
    /// Replaces a sync already running.
    pub fn start_sync(
        &self,
        server_url: String,
        token: Option<String>,
        observer: Box<dyn SyncObserver>,
    ) -> Result<(), ApiError> {
        let token = token.map(checked_token).transpose()?;
        let mut open = self.open.lock();
        let open = open.as_mut().ok_or(ApiError::Closed)?;
        drop(open.sync.take());
        let _runtime = open.runtime.enter();
        let forward = Forward {
            observer,
            device: open
                .store
                .identity()
                .map(|me| me.device_id.to_string())
                .unwrap_or_default(),
        };
        open.sync = Some(spawn_alliance_watch(
            Arc::clone(&open.store),
            &server_url,
            SyncOptions {
                token,
                ..SyncOptions::default()
            },
            Arc::new(forward),
        ));
        Ok(())
    }

    /// Stops syncing with the server and waits until the connection is closed.
    pub async fn stop_sync(&self) -> Result<(), ApiError> {
        let sync = self
            .open
            .lock()
            .as_mut()
            .ok_or(ApiError::Closed)?
            .sync
            .take();
        if let Some(sync) = sync {
            sync.stop().await;
        }
        Ok(())
    }

    /// The latest sync progress, or none when no sync runs.
    pub fn sync_progress(&self) -> Result<Option<SyncProgress>, ApiError> {
        let open = self.open.lock();
        let open = open.as_ref().ok_or(ApiError::Closed)?;
        Ok(open.sync.as_ref().map(|sync| (&sync.progress()).into()))
    }

    /// Syncs every plan this store shares with `other`, an Alliance in the same process.
    pub async fn sync_with(&self, other: Arc<Alliance>) -> Result<LocalSyncReport, ApiError> {
        let (theirs, _) = other.store()?;
        self.run(move |ours| Ok(core::local_sync::sync_stores(ours, &theirs)?.into()))
            .await
    }

    /// Compacts up to `max_plans` plans whose stored changes outgrew half their snapshot (each saved
    /// whole as its new snapshot), and returns how many it compacted. Edits and syncs only
    /// append; a shell calls this after a sync it carried itself (`sync_with`, messages over
    /// Bluetooth) or when the app goes idle. `start_sync` compacts on its own.
    pub async fn compact_due(&self, max_plans: u32) -> Result<u32, ApiError> {
        let max_plans = usize::try_from(max_plans).unwrap_or(usize::MAX);
        self.run(move |store| {
            let compacted = store.compact_due(max_plans)?;
            Ok(u32::try_from(compacted).unwrap_or(u32::MAX))
        })
        .await
    }

    /// The next sync message for `peer` about a plan, or none when the peer is up to date.
    /// For shells that carry messages themselves (Bluetooth, local network).
    pub async fn generate_sync_message(
        &self,
        plan_id: String,
        peer: String,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| Ok(store.generate_sync_message(plan, &peer)?))
            .await
    }

    /// Applies a sync message from `peer`; creates the plan here when it is new.
    pub async fn receive_sync_message(
        &self,
        plan_id: String,
        peer: String,
        message: Vec<u8>,
    ) -> Result<(), ApiError> {
        let plan = parse(&plan_id)?;
        self.run(move |store| {
            store.receive_sync_message(plan, &peer, &message)?;
            Ok(())
        })
        .await
    }

    /// Forgets the in-memory sync sessions with `peer`; call when its connection ends.
    pub async fn end_sync_session(&self, peer: String) -> Result<(), ApiError> {
        self.run(move |store| {
            store.end_sync_session(&peer);
            Ok(())
        })
        .await
    }
}

impl Drop for Alliance {
    fn drop(&mut self) {
        // Never block a thread that may be async while dropping the runtime.
        if let Some(open) = self.open.get_mut().take() {
            open.runtime.shutdown_background();
        }
    }
}
