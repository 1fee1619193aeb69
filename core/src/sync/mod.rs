//! Sync over the network: the automerge-repo WebSocket protocol v1, devices and the relay.

pub mod doc_id;
pub mod error;
pub mod protocol;

pub use doc_id::{parse_plan_url, plan_url, DocumentId};
pub use error::SyncError;
pub use protocol::{DocumentMessage, Message, PeerId, PeerMetadata, PROTOCOL_V1};
