//! What an operator asks of a store: an online backup (see `crate::store::restore` for putting
//! one back) and whether it is ready to serve.

use std::path::Path;

use super::{store, Alliance, Result};
use crate::audit::{AuditKind, NewAuditEntry};

impl Alliance {
    /// Writes a consistent copy of the store to `out` (which must not exist), encrypted under
    /// the store's key, while this and other processes go on writing: it holds every write
    /// committed before it began. Recorded in the audit trail as an admin action first (the
    /// copy holds its own entry): no copy is taken that the trail does not show.
    pub fn backup_to(&self, out: &Path) -> Result<()> {
        let mut inner = self.inner.lock();
        let now = crate::clock::now_ms();
        let entry = NewAuditEntry {
            detail: Some("backup".into()),
            ..NewAuditEntry::new(AuditKind::Admin, "ok")
        };
        inner
            .store
            .write(|tx| store::append_audit(tx, &entry, now))?;
        inner.store.backup_to(out)
    }

    /// Whether the store answers and its schema is this build's (every migration ran): the
    /// relay's `/readyz`. The error says what is wrong.
    pub fn ready(&self) -> Result<()> {
        let found = self.inner.lock().store.schema_version()?;
        if found == store::schema::VERSION {
            Ok(())
        } else {
            Err(crate::error::Error::invalid(
                "store schema",
                format!(
                    "version {found}, this build needs {}",
                    store::schema::VERSION
                ),
            ))
        }
    }
}
