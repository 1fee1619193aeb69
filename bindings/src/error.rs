//! `ApiError`: the one error the shells see, with only the cases a UI acts on.
//!
//! Every core error is converted in one place, [`From<alliance_core::Error>`]. Messages come from
//! the core's, which name fields, rules and ids, never goal text or names: they may end up in
//! crash logs.

use alliance_core::Error as CoreError;

/// What went wrong, as a shell acts on it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    /// The member's role may not make this change (or the store already has an identity).
    #[error("not allowed: {reason}")]
    NotAllowed { reason: String },
    /// No plan, goal, member or check-in with that id here.
    #[error("not found: {reason}")]
    NotFound { reason: String },
    /// Input that fails validation: a malformed id, empty words, a GAS level outside -2..2.
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// This store has no identity yet: `init` first.
    #[error("this store has no identity yet")]
    NotInitialized,
    /// The store was closed; open it again.
    #[error("the store is closed")]
    Closed,
    /// The key does not open this store (a wrong key, no key for an encrypted store, a key for
    /// an unencrypted one). Nothing was changed: open it again with the right key.
    #[error("this store cannot be opened with the key given")]
    WrongKey,
    /// The store is open in another connection or process, so it cannot be rekeyed now;
    /// nothing changed. Close the other one and try again.
    #[error("the store is open elsewhere: close it and try again")]
    StoreInUse,
    /// Another copy of this store (a restored backup, a copied phone) uses this device's
    /// former identity: the store took a new one, which a counselor enrolls from
    /// `enrollment_code`; until then it cannot write to the plan, and its own edits wait
    /// (see `Alliance::copied_identity`). Nothing was written.
    #[error("copied identity: {reason}")]
    CopiedIdentity {
        reason: String,
        enrollment_code: String,
    },
    /// The database could not be read or written, or its data is damaged or too new.
    #[error("storage error: {reason}")]
    Storage { reason: String },
    /// Syncing failed; local work is kept and goes out on the next session.
    #[error("sync error: {reason}")]
    Sync { reason: String },
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let reason = error.to_string();
        match error {
            CoreError::NotAllowed { .. } | CoreError::AlreadyInitialized => {
                ApiError::NotAllowed { reason }
            }
            CoreError::InvalidInput { .. } => ApiError::InvalidInput { reason },
            CoreError::NotFound { .. } => ApiError::NotFound { reason },
            CoreError::NotInitialized => ApiError::NotInitialized,
            CoreError::CopiedIdentity { enrollment } => ApiError::CopiedIdentity {
                reason,
                enrollment_code: enrollment,
            },
            CoreError::WrongKey => ApiError::WrongKey,
            CoreError::StoreInUse => ApiError::StoreInUse,
            CoreError::SchemaTooNew { .. }
            | CoreError::Malformed(_)
            | CoreError::Storage(_)
            | CoreError::Document(_)
            | CoreError::Io(_) => ApiError::Storage { reason },
            CoreError::SyncMessage(_) | CoreError::Sync(_) | CoreError::Limit(_) => {
                ApiError::Sync { reason }
            }
        }
    }
}

impl ApiError {
    /// A value out of the range the FFI carries (e.g. a GAS level of 300).
    pub(crate) fn out_of_range(field: &str) -> Self {
        ApiError::InvalidInput {
            reason: format!("{field} is out of range"),
        }
    }
}
