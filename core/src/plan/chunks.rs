//! Automerge's storage chunks as they are joined in sync messages and stored chunks: split at
//! their headers and read as changes.

use automerge::Change;

use crate::error::{Error, Result};

/// Where a storage chunk's type byte sits (after magic and checksum), and the types.
pub const TYPE_AT: usize = 8;
pub const DOCUMENT: u8 = 0;
pub const CHANGE: u8 = 1;
pub const COMPRESSED_CHANGE: u8 = 2;
pub const BUNDLE: u8 = 3;

/// Splits joined storage chunks at their headers: magic (4 bytes), checksum (4), type (1),
/// body length (LEB128), body.
pub fn split(mut bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let malformed = || Error::SyncMessage("malformed change chunk".into());
    let mut chunks = Vec::new();
    while !bytes.is_empty() {
        let mut header = bytes.get(9..).ok_or_else(malformed)?;
        let before = header.len();
        let body = leb128::read::unsigned(&mut header).map_err(|_| malformed())?;
        let end = usize::try_from(body)
            .ok()
            .and_then(|body| (9 + before - header.len()).checked_add(body))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(malformed)?;
        chunks.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(chunks)
}

/// The changes in joined change chunks (what `save_after` writes: each change's raw bytes back
/// to back), in the order they are stored.
pub fn changes(bytes: &[u8]) -> Result<Vec<Change>> {
    split(bytes)?
        .into_iter()
        .map(|chunk| {
            Change::from_bytes(chunk.to_vec()).map_err(|e| Error::Malformed(e.to_string()))
        })
        .collect()
}
