//! SQLite storage: migrations, documents (snapshot + incremental chunks), the plan catalog,
//! this device's identity and sync state. All SQL of the core lives under this module.

mod audit;
mod backup;
mod compaction;
mod copied;
mod documents;
mod encryption;
mod file_lock;
mod identity;
mod integrity;
mod meta;
mod plan_devices;
mod read_models;
mod refusals;
pub mod schema;
mod set_aside;
mod signatures;
mod sync_state;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use documents::{DocumentSizes, StoredDocument};
pub use encryption::{StoreKey, STORE_KEY_LEN};

use crate::error::Result;

/// How long a statement waits for another connection's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One SQLite database in WAL mode with one writer connection.
pub struct Store {
    conn: Connection,
    /// How many transactions and savepoints are open on `conn` (0: none).
    depth: u32,
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
        conn.busy_timeout(BUSY_TIMEOUT)?;
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

    /// Writes a consistent copy of this store to `out` (which must not exist) while other
    /// connections and processes go on writing; encrypted under this store's key.
    pub fn backup_to(&mut self, out: &Path) -> Result<()> {
        if self.depth > 0 {
            return Err(crate::error::Error::Malformed(
                "a transaction is already open on this store".into(),
            ));
        }
        backup::backup_into(&self.conn, out)
    }

    /// Checks that `file` opens with `key` and is sound (see [`restore`]); returns its schema
    /// version.
    pub fn check_backup(file: &Path, key: Option<&StoreKey>) -> Result<i64> {
        backup::check_backup(file, key)
    }

    /// The schema version of the file (`PRAGMA user_version`), read now.
    pub fn schema_version(&mut self) -> Result<i64> {
        schema::user_version(&self.conn)
    }

    fn setup(mut conn: Connection, encrypted: bool) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers never block the writer; NORMAL sync is durable across app crashes.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // One plan per statement, whatever is bound: otherwise SQLite re-prepares a cached
        // statement on every new bound value wherever it compares a parameter with a constant
        // (`coalesce(max(seq), 0) + 1 … WHERE doc_id = ?1` did, on every edit: a parse and plan
        // each time).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn,
            encrypted,
            depth: 0,
            lock: None,
        })
    }

    /// Runs `f` in one read transaction, or inside the transaction already open on this
    /// connection (see [`Store::begin_locked`]).
    pub fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.depth > 0 {
            return f(&self.conn);
        }
        self.run_in("BEGIN DEFERRED", "COMMIT", "ROLLBACK", |conn| f(conn))
    }

    /// Runs `f` in one write transaction: everything it writes lands, or nothing does. Inside
    /// a transaction already open on this connection it runs as a savepoint of it, and lands
    /// when that transaction commits.
    pub fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.depth > 0 {
            let rollback = "ROLLBACK TO nested; RELEASE nested";
            return self.run_in("SAVEPOINT nested", "RELEASE nested", rollback, |conn| {
                f(conn)
            });
        }
        self.run_in("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", |conn| f(conn))
    }

    /// [`Store::write`], but inside a transaction already open on this connection `f` runs
    /// in it directly, without a savepoint: what `f` wrote before an error stays until that
    /// transaction rolls back, so the caller must end it with a rollback on any error `f`
    /// returns (as `Alliance`'s local edits do: their error ends the write).
    pub fn write_in_place<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.depth > 0 {
            return f(&self.conn);
        }
        self.write(f)
    }

    /// [`Store::write`], but only if SQLite's write lock is free now: when another connection
    /// or process holds it, returns `Ok(None)` at once instead of waiting for it. For writes
    /// that may be skipped (a read model kept by a read), so a read never waits for a writer.
    pub fn write_if_free<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.depth > 0 {
            return self.write(f).map(Some);
        }
        self.conn.busy_timeout(Duration::ZERO)?;
        let began = self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([]);
        if let Err(error) = self.conn.busy_timeout(BUSY_TIMEOUT) {
            // Never leave a transaction open behind an error.
            if began.is_ok() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(error.into());
        }
        match began {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        }
        self.depth += 1;
        let out = f(&self.conn);
        self.depth -= 1;
        self.finish(out, "COMMIT", "ROLLBACK").map(Some)
    }

    /// Takes SQLite's write lock until [`Store::end_locked`] (`BEGIN IMMEDIATE`): no other
    /// connection or process commits in between, so what is read meanwhile is what the file
    /// holds when it is written. [`Store::read`] and [`Store::write`] calls meanwhile join
    /// this transaction (writes as savepoints).
    pub fn begin_locked(&mut self) -> Result<()> {
        if self.depth > 0 {
            return Err(crate::error::Error::Malformed(
                "a transaction is already open on this store".into(),
            ));
        }
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        self.depth = 1;
        Ok(())
    }

    /// Rolls back whatever transaction a panic left open on this connection (a write that
    /// never reached [`Store::end_locked`]), so the next one can begin.
    pub fn abandon(&mut self) {
        self.depth = 0;
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Ends what [`Store::begin_locked`] began: commits when `commit`, rolls back otherwise.
    pub fn end_locked(&mut self, commit: bool) -> Result<()> {
        if self.depth != 1 {
            return Ok(());
        }
        self.depth = 0;
        if commit {
            self.finish(Ok(()), "COMMIT", "ROLLBACK")
        } else {
            self.conn.execute_batch("ROLLBACK")?;
            Ok(())
        }
    }

    fn run_in<T>(
        &mut self,
        begin: &str,
        commit: &str,
        rollback: &str,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.conn.prepare_cached(begin)?.execute([])?;
        self.depth += 1;
        let out = f(&self.conn);
        self.depth -= 1;
        self.finish(out, commit, rollback)
    }

    fn finish<T>(&mut self, out: Result<T>, commit: &str, rollback: &str) -> Result<T> {
        let committed = match out {
            Ok(out) => self
                .conn
                .prepare_cached(commit)
                .and_then(|mut statement| statement.execute([]))
                .map(|_| out)
                .map_err(Into::into),
            Err(error) => Err(error),
        };
        if committed.is_err() {
            // The transaction may already be gone (SQLite rolls back on some errors).
            let _ = self.conn.execute_batch(rollback);
        }
        committed
    }

    /// SQLite's `PRAGMA data_version`: it changes when another connection (this process's or
    /// another's) commits to the file, and never for this connection's own commits.
    pub fn data_version(&mut self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?)
    }
}

pub use audit::{append_audit, list_audit, parse_kind, verify_audit};
pub use backup::restore;
pub use compaction::documents_due_for_compaction;
pub use copied::{mark_replayed, plans_waiting, retire_identity, retired_devices, waiting_changes};
pub use documents::{
    all_document_heads, append_chunk, document_heads, document_sizes, fill_document_heads,
    has_document, has_plan_summary, insert_document, last_chunk_seq, list_plans, load_document,
    load_document_parts, plan_ids, replace_snapshot, upsert_plan_summary,
};
pub use identity::{load_identity, save_identity};
pub use meta::load_store_id;
pub use plan_devices::{
    plans_of_device, plans_of_token, set_plan_devices, token_hashes_of_plan, token_listed_elsewhere,
};
pub use read_models::{load_read_model, save_read_model};
pub use refusals::{list_refusals, record_refusal};
pub use set_aside::{list_set_aside, record_set_aside};
pub use signatures::{
    has_unsigned, load_device_key, load_signatures, load_unsigned, save_device_key,
    save_signatures, save_signed, save_unsigned,
};
pub use sync_state::{
    delete_plan_sync_states, delete_sync_states, load_sync_state, save_sync_state,
};
