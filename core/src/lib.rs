//! Alliance core: goal plans that a counselor and a client write together, stored as
//! Automerge documents in SQLite, checked by role rules, synced with any automerge-repo peer.
//!
//! Start with [`Alliance`]: open a store, `init` an identity, create or receive plans, edit
//! them, and exchange sync messages with peers.

mod alliance;
pub mod audit;
pub mod authorship;
pub mod budgets;
pub mod clinical_time;
mod clock;
mod error;
pub mod export;
pub mod in_person;
pub mod local_sync;
pub mod model;
mod own_refusals;
pub mod plan;
pub mod progress;
pub mod review;
pub mod rules;
pub mod store;
pub mod sync;
pub mod sync_error;
mod sync_peer;
pub mod token;

pub use alliance::{
    Alliance, CopiedIdentity, FileWatch, HeldCount, ListedDevice, NewDevice, NewPlan, PlanObserver,
    ReadFrom, SyncReceipt, COPIED,
};
pub use error::{Error, Result};
pub use model::*;
pub use store::StoreKey;
pub use sync_peer::SyncPeer;
