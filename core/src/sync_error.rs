//! The sync layer's error type: protocol, document-id, transport and store failures.
//!
//! Messages name fields and limits, never document contents, so they are safe in crash logs.

use thiserror::Error;

/// Everything that can go wrong while speaking the automerge-repo protocol.
#[derive(Debug, Error)]
pub enum SyncError {
    /// A frame is larger than the configured limit; it was not decoded.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { size: usize, limit: usize },
    /// A frame is not one well-formed CBOR map.
    #[error("malformed frame: {0}")]
    MalformedFrame(String),
    /// A known message type lacks a field it needs.
    #[error("`{message_type}` message lacks field `{field}`")]
    MissingField {
        message_type: String,
        field: &'static str,
    },
    /// A field is present but has the wrong CBOR type or an impossible value.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    /// The peer offers no protocol version this build speaks.
    #[error("no common protocol version (peer offers {offered:?}, this build speaks \"1\")")]
    UnsupportedProtocolVersion { offered: Vec<String> },
    /// A document id is not bs58check of 16 bytes.
    #[error("invalid document id: {0}")]
    InvalidDocumentId(&'static str),
    /// A string is not an `automerge:<document id>` URL.
    #[error("invalid automerge URL: {0}")]
    InvalidUrl(&'static str),
    /// The `data` of a sync or request message is not an Automerge sync message.
    #[error("invalid sync data: {0}")]
    InvalidSyncData(String),
    /// The peer sent a message that makes no sense at this point of the conversation.
    #[error("unexpected `{0}` message")]
    UnexpectedMessage(String),
    /// The peer sent an `error` message.
    #[error("peer reported an error: {0}")]
    Remote(String),
    /// The WebSocket connection failed.
    #[error("connection error: {0}")]
    Transport(String),
    /// The connection closed before the work was done.
    #[error("connection closed")]
    Closed,
    /// A step took longer than its deadline.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The peer presented no token, an unknown or revoked one, or asked for a plan its token
    /// does not open.
    #[error("not authorized: {0}")]
    Unauthorized(&'static str),
    /// TLS settings are unusable (certificate, key, root), named without their contents.
    #[error("TLS: {0}")]
    Tls(String),
    /// A relay limit was reached.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The local store failed or refused what a peer sent.
    #[error("store error: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SyncError {
    /// Wraps any store-side error.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        SyncError::Store(Box::new(error))
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for SyncError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::error::CapacityError;
        use tokio_tungstenite::tungstenite::Error as WsError;
        match error {
            WsError::ConnectionClosed | WsError::AlreadyClosed => SyncError::Closed,
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                SyncError::FrameTooLarge {
                    size,
                    limit: max_size,
                }
            }
            other => SyncError::Transport(other.to_string()),
        }
    }
}
