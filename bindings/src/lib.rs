//! alliance-ffi: the uniffi bindings of alliance-core that the Android and iOS shells call.
//!
//! Thin by design: each exported method converts its arguments, calls the core and maps the
//! error. [`Alliance`] is the object a shell holds; [`records`] are what it reads, [`inputs`]
//! what it gives, [`progress`] how a plan is going; exports and relay tokens are methods of
//! [`Alliance`] in their own files; [`ApiError`] is the one error; [`PlanObserver`] tells it a
//! plan changed and [`SyncObserver`] how sync with a server is going, and which of this
//! device's changes it refused ([`RefusedChange`]).
//! Kotlin and Swift are generated from the built library by the `uniffi-bindgen` binary.

mod alliance;
mod copied;
mod enrollment;
mod error;
mod export;
mod in_person;
pub mod inputs;
mod observer;
pub mod progress;
pub mod records;
mod sync;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod tokens;

pub use alliance::Alliance;
pub use copied::CopiedIdentity;
pub use error::ApiError;
pub use in_person::InPersonSession;
pub use inputs::{
    GasEdit, GoalEdit, NewCheckIn, NewDevice, NewIntervention, NewMember, NewObjective, NewPlan,
};
pub use observer::{PlanObserver, PlanSubscription};
pub use progress::{CheckInDays, GasPoint, GoalProgress, PlanProgress, TScorePoint, Trend};
pub use records::*;
pub use sync::{RefusedChange, SyncObserver, SyncProgress};

uniffi::setup_scaffolding!();
