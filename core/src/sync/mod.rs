//! Sync over the network: the automerge-repo WebSocket protocol v1, devices and the relay.
//!
//! - [`protocol`]: the CBOR messages; [`doc_id`]: document ids and `automerge:` URLs.
//! - [`store::SyncStore`]: what the network layer needs from a store (sync messages in/out).
//! - [`client`]: a device syncing with a server, once or in watch mode.
//! - [`relay`]: the always-on peer a clinic runs.

mod alliance_store;
mod audit;
pub mod client;
pub mod connection;
pub mod doc_id;
mod drain;
pub use crate::sync_error as error;
pub mod heads;
pub mod metrics;
pub mod protocol;
pub mod relay;
pub mod store;
pub mod tls;
pub use crate::token;

#[cfg(test)]
mod memory_store;
#[cfg(test)]
mod ops_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use alliance_store::{receipt_refusals, spawn_alliance_watch, vouched_error, watch_blocking};
pub use client::{
    spawn_watch, sync_once, sync_once_blocking, OwnChangesRefused, SyncHandle, SyncObserver,
    SyncOptions, SyncProgress, SyncSummary,
};
pub use connection::Traffic;
pub use doc_id::{parse_plan_url, plan_url, DocumentId};
pub use error::SyncError;
pub use heads::{heads_digest, HeadsDigest};
pub use metrics::{rule_of, MetricsSink, RelayMetrics};
pub use protocol::{
    ChangeRefusal, DocumentMessage, HeadsDigests, Message, PeerId, PeerMetadata, PROTOCOL_V1,
};
pub use relay::{run_relay_blocking, BackgroundRelay, Relay, RelayOptions};
pub use store::{SyncStore, TokenVoucher};
pub use tls::TlsIdentity;
pub use token::{generate_token, token_hash};
