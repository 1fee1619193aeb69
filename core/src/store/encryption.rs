//! Encryption at rest: the store key, applied to SQLCipher before anything else is read, and
//! changed in place by a rekey. A key never appears in a message, a log line or an error.

use std::fmt;

use rusqlite::{Connection, ErrorCode};

use crate::error::{Error, Result};

/// How many bytes a store key has (SQLCipher's raw 256-bit key).
pub const STORE_KEY_LEN: usize = 32;

/// The 32-byte key of an encrypted store. The shells keep it in the platform keystore
/// (Android Keystore, iOS Keychain) and hand it to the core on every open; the core never
/// stores, derives or prints it. `Debug` shows no bytes, and the bytes are zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey([u8; STORE_KEY_LEN]);

impl StoreKey {
    pub fn new(bytes: [u8; STORE_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key from bytes of any length: exactly 32 are required. The error names the length
    /// found, never the bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; STORE_KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::invalid(
                "store key",
                format!("must be {STORE_KEY_LEN} bytes, found {} bytes", bytes.len()),
            )
        })?;
        Ok(Self(bytes))
    }

    /// The statement that applies this key (`name` is `key` or `rekey`): SQLCipher's raw key
    /// form, `x'…'`, so no passphrase derivation runs.
    fn statement(&self, name: &str) -> Secret {
        Secret(format!(
            "PRAGMA {name} = \"x'{}'\";",
            hex::encode_upper(self.0)
        ))
    }
}

impl From<[u8; STORE_KEY_LEN]> for StoreKey {
    fn from(bytes: [u8; STORE_KEY_LEN]) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(…)")
    }
}

impl Drop for StoreKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// A statement holding a key in hex: zeroed when dropped, never formatted.
struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// An SQLite error reduced to its code: the text of a failed key statement could quote it.
fn redacted(error: rusqlite::Error) -> Error {
    let code = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => rusqlite::ffi::SQLITE_ERROR,
    };
    Error::Storage(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        None,
    ))
}

/// Whether an error means "these bytes are not a database under this key".
fn is_not_a_database(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _) if failure.code == ErrorCode::NotADatabase
    )
}

/// Applies `key` (or none, for a plaintext store) to a connection that has run no statement
/// yet, then proves it opens the file by reading the schema. A key that does not fit — or no
/// key for an encrypted file, or a key for a plaintext one — is [`Error::WrongKey`], and
/// nothing has been written to the file.
pub(crate) fn unlock(conn: &Connection, key: Option<&StoreKey>) -> Result<()> {
    if let Some(key) = key {
        let statement = key.statement("key");
        conn.execute_batch(&statement.0).map_err(redacted)?;
    }
    // SQLCipher otherwise logs every page that fails to decrypt to stderr (logcat on Android);
    // a wrong key is reported once, as `WrongKey`. Reads nothing from the file.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    let verified = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    });
    match verified {
        Ok(_) => Ok(()),
        Err(error) if is_not_a_database(&error) => Err(Error::WrongKey),
        Err(error) => Err(error.into()),
    }
}

/// Re-encrypts every page of an encrypted store under `new_key`, in one transaction: after a
/// crash the store opens with the old key or the new one, never neither. The WAL is
/// checkpointed before and after, so no frame under the old key outlives the change.
pub(crate) fn rekey(conn: &Connection, new_key: &StoreKey) -> Result<()> {
    checkpoint(conn)?;
    let statement = new_key.statement("rekey");
    conn.execute_batch(&statement.0).map_err(redacted)?;
    checkpoint(conn)
}

/// Moves every WAL frame into the main file and empties the WAL.
pub(crate) fn checkpoint(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_shows_its_bytes() {
        let key = StoreKey::new([0xAB; STORE_KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn a_key_has_exactly_32_bytes() {
        assert!(StoreKey::from_slice(&[7; 32]).is_ok());
        for len in [0, 16, 31, 33, 64] {
            let err = StoreKey::from_slice(&vec![7; len]).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
            assert!(!err.to_string().contains("07"));
        }
    }
}
