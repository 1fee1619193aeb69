//! The audit trail of this store (see `crate::audit`): appends, listing and verification.

use super::{store, Alliance, Result};
use crate::audit::{AuditEntry, AuditFilter, AuditVerification, NewAuditEntry};

impl Alliance {
    /// Appends `entry` to the audit trail in its own transaction; returns its number.
    pub fn record_audit(&self, entry: &NewAuditEntry) -> Result<i64> {
        let now = crate::clock::now_ms();
        self.inner
            .lock()
            .store
            .write(|tx| store::append_audit(tx, entry, now))
    }

    /// Entries matching `filter`, oldest first.
    pub fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::list_audit(tx, filter))
    }

    /// Walks the whole chain; [`AuditVerification::problems`] lists each break found.
    pub fn verify_audit(&self) -> Result<AuditVerification> {
        self.inner.lock().store.read(store::verify_audit)
    }
}
