//! The store this command works on: its file (`--db`) and how it is opened — encrypted with the
//! key in `--key-file`, or unencrypted when no key file is given.

use std::path::{Path, PathBuf};

use alliance_core::{Alliance, Error, Result, StoreKey};

/// A store file and the key that opens it (none: an unencrypted store).
pub struct StoreFile {
    path: PathBuf,
    key: Option<StoreKey>,
}

impl StoreFile {
    /// The store at `path`, with the key read from `key_file` when one is given.
    pub fn new(path: &Path, key_file: Option<&Path>) -> Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            key: key_file.map(read_key_file).transpose()?,
        })
    }

    /// Another store file opened with the same key (`sync --with`).
    pub fn sibling(&self, path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            key: self.key.clone(),
        }
    }

    /// The key that opens the store (none: plaintext).
    pub fn key(&self) -> Option<&StoreKey> {
        self.key.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Opens the store, creating it when missing.
    pub fn open(&self) -> Result<Alliance> {
        match &self.key {
            Some(key) => Alliance::open_encrypted(&self.path, key),
            None => Alliance::open(&self.path),
        }
    }
}

/// Reads a key file: exactly 32 raw bytes. Errors name the file and the length found, never
/// the bytes.
pub fn read_key_file(path: &Path) -> Result<StoreKey> {
    let mut bytes = std::fs::read(path).map_err(|error| Error::InvalidInput {
        field: "key file",
        reason: format!("cannot read {}: {error}", path.display()),
    })?;
    let key = StoreKey::from_slice(&bytes).map_err(|_| Error::InvalidInput {
        field: "key file",
        reason: format!(
            "{} must hold exactly 32 raw bytes, it holds {}",
            path.display(),
            bytes.len()
        ),
    });
    bytes.fill(0);
    key
}
