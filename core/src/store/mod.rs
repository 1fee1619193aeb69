//! SQLite storage: migrations, documents (snapshot + incremental chunks), the plan catalog,
//! this device's identity and sync state. All SQL of the core lives under this module.

mod documents;
mod identity;
mod meta;
mod plan_devices;
mod refusals;
pub mod schema;
mod sync_state;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use documents::{DocumentSizes, StoredDocument};

use crate::error::Result;

/// One SQLite database in WAL mode with one writer connection.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or creates) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Self::setup(conn)
    }

    /// A private in-memory database (tests, the demo's scratch work).
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers never block the writer; NORMAL sync is durable across app crashes.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// Runs `f` in one read transaction.
    pub fn read<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.finish()?;
        Ok(out)
    }

    /// Runs `f` in one write transaction: everything it writes lands, or nothing does.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

pub use documents::{
    append_chunk, document_sizes, has_document, insert_document, list_plans, load_document,
    plan_ids, replace_snapshot, upsert_plan_summary,
};
pub use identity::{load_identity, save_identity};
pub use meta::load_store_id;
pub use plan_devices::{plans_of_device, set_plan_devices};
pub use refusals::{list_refusals, record_refusal};
pub use sync_state::{delete_sync_states, load_sync_state, save_sync_state};
