//! The core's one error type. Messages name fields and rules, never personal data.

use thiserror::Error;

/// Result alias used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the core.
#[derive(Debug, Error)]
pub enum Error {
    /// A role rule refused the write; nothing was written.
    #[error("not allowed: {rule}")]
    NotAllowed { rule: String },
    /// Input that fails validation; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// A plan, goal, check-in or member that does not exist here.
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    /// This store has no identity yet (`init` first).
    #[error("this store has no identity yet: run `alliance init` first")]
    NotInitialized,
    /// This store already has an identity.
    #[error("this store already has an identity")]
    AlreadyInitialized,
    /// The database was written by a newer version of Alliance.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The key does not open this store: a wrong key, no key for an encrypted store, a key for
    /// an unencrypted one, or a file that is not a store at all. The file was not touched.
    #[error(
        "this store cannot be opened with the key given (wrong key, or not an Alliance store)"
    )]
    WrongKey,
    /// The store is open in another connection or process (a running relay, a second app
    /// process), so it cannot be rekeyed now; nothing was changed.
    #[error(
        "the store is open in another process or connection: close it (stop a relay or sync using it) and try again"
    )]
    StoreInUse,
    /// Another copy of this store (a restored backup, a copied phone) writes under this
    /// device's former identity, so this store took a new device id and key
    /// (`docs/design.md`, "A copied identity"). It writes to the plan again once it is enrolled
    /// from `enrollment`, its new enrollment code; its own edits wait and are replayed then.
    /// Nothing was written.
    #[error(
        "another copy of this store uses this device's identity: enroll this device again from its new enrollment code"
    )]
    CopiedIdentity { enrollment: String },
    /// A stored or received plan document does not have the expected shape.
    #[error("malformed plan document: {0}")]
    Malformed(String),
    /// SQLite failed.
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// Automerge failed (e.g. a corrupt document or sync message).
    #[error("document error: {0}")]
    Document(#[from] automerge::AutomergeError),
    /// A sync message could not be decoded.
    #[error("sync message error: {0}")]
    SyncMessage(String),
    /// The network sync layer failed.
    #[error("sync error: {0}")]
    Sync(#[from] crate::sync_error::SyncError),
    /// A peer's input would pass one of the store's budgets (`crate::budgets`); nothing of
    /// it was stored.
    #[error("limit: {0}")]
    Limit(String),
    /// Filesystem I/O.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn not_allowed(rule: impl Into<String>) -> Self {
        Error::NotAllowed { rule: rule.into() }
    }
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}
