//! The callback through which a shell is told a plan changed, and the subscription that ends it.

use std::sync::{Arc, Weak};

use alliance_core as core;
use parking_lot::Mutex;

/// Implemented by the shell: told the id of a plan after each change to it, a local edit or a
/// merged remote change. Called on a background thread; re-read the plan elsewhere, quickly.
#[uniffi::export(callback_interface)]
pub trait PlanObserver: Send + Sync {
    fn plan_changed(&self, plan_id: String);
}

/// Hands the core's notifications to the shell's observer.
struct Forward(Box<dyn PlanObserver>);

impl core::PlanObserver for Forward {
    fn plan_changed(&self, plan: core::PlanId) {
        self.0.plan_changed(plan.to_string());
    }
}

/// A registered [`PlanObserver`]. `cancel()` (or dropping it) stops the notifications.
#[derive(uniffi::Object)]
pub struct PlanSubscription {
    store: Weak<core::Alliance>,
    observer: Mutex<Option<Arc<dyn core::PlanObserver>>>,
    /// Looks for writes by other processes (the app's extensions, a background sync) so the
    /// observer hears of them too; stopped with the subscription.
    file_watch: Mutex<Option<core::FileWatch>>,
}

/// How often a subscription looks for other processes' writes to the store.
const OUTSIDE_CHANGES_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

impl PlanSubscription {
    pub(crate) fn register(store: &Arc<core::Alliance>, observer: Box<dyn PlanObserver>) -> Self {
        let observer: Arc<dyn core::PlanObserver> = Arc::new(Forward(observer));
        store.add_observer(Arc::clone(&observer));
        Self {
            store: Arc::downgrade(store),
            observer: Mutex::new(Some(observer)),
            file_watch: Mutex::new(store.watch_file(OUTSIDE_CHANGES_INTERVAL).ok()),
        }
    }
}

#[uniffi::export]
impl PlanSubscription {
    /// Stops notifications to this observer; calling it again does nothing.
    pub fn cancel(&self) {
        self.file_watch.lock().take();
        let observer = self.observer.lock().take();
        if let (Some(observer), Some(store)) = (observer, self.store.upgrade()) {
            store.remove_observer(&observer);
        }
    }
}

impl Drop for PlanSubscription {
    fn drop(&mut self) {
        self.cancel();
    }
}
