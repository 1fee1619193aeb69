//! Online backups and restores of a store file. A backup is one consistent copy taken while the
//! store serves (`VACUUM INTO`, in one read transaction: writers go on meanwhile), encrypted
//! with the store's own key. A restore puts a checked copy in place of a store nobody has open.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{encryption, file_lock, integrity, schema, StoreKey};
use crate::error::{Error, Result};

/// Writes a consistent copy of the database on `conn` to `out`, which must not exist. The copy
/// is encrypted under the same key as the store (SQLCipher copies with the main database's
/// key), or plaintext for a plaintext store.
pub(crate) fn backup_into(conn: &Connection, out: &Path) -> Result<()> {
    if out.exists() {
        return Err(Error::invalid(
            "backup file",
            format!("{} already exists", out.display()),
        ));
    }
    let target = out
        .to_str()
        .ok_or_else(|| Error::invalid("backup file", "the path is not valid UTF-8".to_string()))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(())
}

/// Opens `file` read-only with `key` (none: plaintext), checks it and returns its schema
/// version: a backup that is damaged, under another key, or newer than this build is refused.
pub(crate) fn check_backup(file: &Path, key: Option<&StoreKey>) -> Result<i64> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    encryption::unlock(&conn, key)?;
    let problems = integrity::check(&conn, key.is_some())?;
    if !problems.is_empty() {
        return Err(Error::Malformed(format!(
            "the backup is damaged: {}",
            problems.join("; ")
        )));
    }
    let version = schema::user_version(&conn)?;
    if version > schema::VERSION {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: schema::VERSION,
        });
    }
    Ok(version)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces the store at `target` with the backup `from` (checked first with `key`). Refused
/// with [`Error::StoreInUse`] while any connection or process has `target` open: stop the relay
/// (or app) first. The copy lands whole or not at all (written beside, then renamed); the
/// next open migrates it when it is older than this build.
pub fn restore(target: &Path, from: &Path, key: Option<&StoreKey>) -> Result<()> {
    check_backup(from, key)?;
    let lock = file_lock::FileLock::shared(target)?;
    lock.exclusively(|| {
        let partial = sibling(target, ".restoring");
        std::fs::copy(from, &partial).map_err(|error| io("copy the backup", error))?;
        std::fs::File::open(&partial)
            .and_then(|file| file.sync_all())
            .map_err(|error| io("flush the copy", error))?;
        for stale in ["-wal", "-shm"] {
            match std::fs::remove_file(sibling(target, stale)) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io("remove the old write-ahead log", error)),
            }
        }
        std::fs::rename(&partial, target).map_err(|error| io("put the copy in place", error))
    })
}

fn io(what: &str, error: std::io::Error) -> Error {
    Error::invalid("restore", format!("cannot {what}: {error}"))
}
