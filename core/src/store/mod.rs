//! SQLite storage: migrations, documents (snapshot + incremental chunks), the plan catalog,
//! this device's identity and sync state. All SQL of the core lives under this module.

mod documents;
mod encryption;
mod file_lock;
mod identity;
mod integrity;
mod meta;
mod plan_devices;
mod refusals;
pub mod schema;
mod sync_state;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use documents::{DocumentSizes, StoredDocument};
pub use encryption::{StoreKey, STORE_KEY_LEN};

use crate::error::Result;

/// One SQLite database in WAL mode with one writer connection.
pub struct Store {
    conn: Connection,
    /// Whether the file is encrypted with a [`StoreKey`] (SQLCipher).
    encrypted: bool,
    /// The shared lock on the file's sidecar, held while this store is open (none in memory).
    lock: Option<file_lock::FileLock>,
}

impl Store {
    /// Opens (or creates) the database at `path`, **unencrypted**, and migrates it: for tests,
    /// the demo and the CLI without a key file. Shells use [`Store::open_encrypted`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_file(path, None)
    }

    /// Opens (or creates) the database at `path`, encrypted with `key` (SQLCipher 4), and
    /// migrates it. A key that does not open an existing file is [`Error::WrongKey`] and the
    /// file is left byte for byte as it was.
    ///
    /// [`Error::WrongKey`]: crate::Error::WrongKey
    pub fn open_encrypted(path: &Path, key: &StoreKey) -> Result<Self> {
        Self::open_file(path, Some(key))
    }

    fn open_file(path: &Path, key: Option<&StoreKey>) -> Result<Self> {
        // Before the connection, so a rekey never runs while it exists.
        let lock = file_lock::FileLock::shared(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // The key goes first: nothing may read (or write) the file before it is applied.
        encryption::unlock(&conn, key)?;
        let mut store = Self::setup(conn, key.is_some())?;
        store.lock = Some(lock);
        Ok(store)
    }

    /// A private in-memory database (tests, the demo's scratch work).
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?, false)
    }

    /// Whether the file is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Re-encrypts the store under `new_key` in one transaction. Only an encrypted store can
    /// change its key (a plaintext store is refused, unchanged). While any other connection or
    /// process has the file open it is refused, unchanged, with [`Error::StoreInUse`]: that
    /// connection would go on reading pages under the old key.
    ///
    /// [`Error::StoreInUse`]: crate::Error::StoreInUse
    pub fn rekey(&mut self, new_key: &StoreKey) -> Result<()> {
        if !self.encrypted {
            return Err(crate::error::Error::invalid(
                "store key",
                "this store is not encrypted, so it has no key to change",
            ));
        }
        let Some(lock) = &self.lock else {
            return encryption::rekey(&self.conn, new_key);
        };
        lock.exclusively(|| encryption::rekey(&self.conn, new_key))
    }

    /// The problems SQLite finds in the file (`PRAGMA integrity_check`, and for an encrypted
    /// store SQLCipher's check of every page's authentication code); empty when it is sound.
    pub fn integrity_check(&mut self) -> Result<Vec<String>> {
        integrity::check(&self.conn, self.encrypted)
    }

    fn setup(mut conn: Connection, encrypted: bool) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers never block the writer; NORMAL sync is durable across app crashes.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn,
            encrypted,
            lock: None,
        })
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
    append_chunk, document_heads, document_sizes, fill_document_heads, has_document,
    insert_document, list_plans, load_document, plan_ids, replace_snapshot, touch_plan_summary,
    upsert_plan_summary,
};
pub use identity::{load_identity, save_identity};
pub use meta::load_store_id;
pub use plan_devices::{plans_of_device, plans_of_token, set_plan_devices};
pub use refusals::{list_refusals, record_refusal};
pub use sync_state::{delete_sync_states, load_sync_state, save_sync_state};
