//! Sync over the network: the automerge-repo WebSocket protocol v1, devices and the relay.
//!
//! - [`protocol`]: the CBOR messages; [`doc_id`]: document ids and `automerge:` URLs.
//! - [`store::SyncStore`]: what the network layer needs from a store (sync messages in/out).
//! - [`client`]: a device syncing with a server, once or in watch mode.
//! - [`relay`]: the always-on peer a clinic runs (feature `relay`: not in the phone library).

mod alliance_store;
#[cfg(feature = "relay")]
mod audit;
pub mod client;
pub mod connection;
pub mod doc_id;
#[cfg(feature = "relay")]
mod drain;
pub use crate::sync_error as error;
pub mod heads;
#[cfg(feature = "relay")]
pub mod metrics;
mod parallel;
pub mod protocol;
#[cfg(feature = "relay")]
pub mod relay;
pub mod store;
pub mod tls;
pub use crate::token;

#[cfg(test)]
mod memory_store;
#[cfg(all(test, feature = "relay"))]
mod ops_tests;
#[cfg(all(test, feature = "relay"))]
mod sim_tests;
#[cfg(all(test, feature = "relay"))]
mod tests;

#[cfg(feature = "relay")]
pub use alliance_store::vouched_error;
pub use alliance_store::{receipt_refusals, spawn_alliance_watch, watch_blocking};
pub use client::{
    spawn_watch, sync_once, sync_once_blocking, OwnChangesRefused, SyncHandle, SyncObserver,
    SyncOptions, SyncProgress, SyncSummary,
};
pub use connection::Traffic;
pub use doc_id::{parse_plan_url, plan_url, DocumentId};
pub use error::SyncError;
pub use heads::{heads_digest, HeadsDigest};
#[cfg(feature = "relay")]
pub use metrics::{rule_of, MetricsSink, RelayMetrics};
pub use protocol::{
    ChangeRefusal, DocumentMessage, HeadsDigests, Message, PeerId, PeerMetadata, PROTOCOL_V1,
};
#[cfg(feature = "relay")]
pub use relay::{run_relay_blocking, BackgroundRelay, Relay, RelayOptions};
pub use store::{SyncStore, TokenVoucher};
#[cfg(feature = "relay")]
pub use tls::TlsIdentity;
pub use token::{generate_token, token_hash};
