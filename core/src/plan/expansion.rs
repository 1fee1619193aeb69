//! What a storage chunk expands to, read from its header and column lengths before Automerge
//! decodes it. A change of a few hundred bytes can claim millions of operations through
//! run-length encoded columns; Automerge would decode them all (and allocate for each) before
//! any rule could look. Here the operations are counted by summing the runs of the action
//! column — work in proportion to the bytes, not to what they claim (`docs/design.md`,
//! Hostile input).

use std::io::Read;

use automerge::{ActorId, ChangeHash};
use sha2::{Digest, Sha256};

use super::chunks;
use crate::error::{Error, Result};

/// A whole-document chunk's type byte.
pub const DOCUMENT: u8 = 0;
/// Most columns a chunk section may declare (Automerge writes about a dozen).
const MAX_COLUMNS: u64 = 64;
/// The action column (id 4, integer type) in a chunk's operation columns.
const ACTION_COLUMN: u32 = (4 << 4) | 2;
/// The bit of a column spec that says its data is DEFLATE-compressed.
const DEFLATE_BIT: u32 = 0b1000;
/// Most bytes a compressed chunk or column is inflated to while it is inspected.
const MAX_INFLATED: u64 = 64 << 20;

/// A change chunk as its header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOutline {
    pub hash: ChangeHash,
    pub actor: ActorId,
    pub timestamp: i64,
    /// Operations its columns claim; `cap + 1` stands for "more than `cap`".
    pub operations: u64,
}

/// What one chunk of a sync message or saved document expands to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outline {
    /// One change (plain or compressed chunk).
    Change(ChangeOutline),
    /// A whole document or a bundle of changes: the operations it claims in all.
    Many { operations: u64 },
}

fn malformed() -> Error {
    Error::SyncMessage("malformed change chunk".into())
}

/// Reads `chunk` (one storage chunk with its header) far enough to tell how many operations
/// it claims, counting at most `cap + 1`. Malformed headers are errors.
pub fn outline(chunk: &[u8], cap: u64) -> Result<Outline> {
    let kind = *chunk.get(chunks::TYPE_AT).ok_or_else(malformed)?;
    let mut cursor = Cursor(chunk.get(chunks::TYPE_AT + 1..).ok_or_else(malformed)?);
    let length = cursor.uleb()?;
    let body = cursor.take(usize::try_from(length).map_err(|_| malformed())?)?;
    match kind {
        chunks::CHANGE => Ok(Outline::Change(change_outline(body, cap)?)),
        chunks::COMPRESSED_CHANGE => {
            let body = inflate(body)?;
            Ok(Outline::Change(change_outline(&body, cap)?))
        }
        DOCUMENT => Ok(Outline::Many {
            operations: document_operations(body, cap)?,
        }),
        chunks::BUNDLE => Ok(Outline::Many {
            operations: bundle_operations(body, cap)?,
        }),
        _ => Err(malformed()),
    }
}

/// The hash Automerge gives a change: SHA-256 over its type byte, body length and body.
fn change_hash(body: &[u8]) -> ChangeHash {
    let mut hasher = Sha256::new();
    hasher.update([chunks::CHANGE]);
    let mut length = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = leb128::write::unsigned(&mut length, body.len() as u64);
    hasher.update(&length);
    hasher.update(body);
    ChangeHash(hasher.finalize().into())
}

fn change_outline(body: &[u8], cap: u64) -> Result<ChangeOutline> {
    let mut c = Cursor(body);
    let deps = c.uleb()?;
    c.skip_n(deps, 32)?;
    let actor = ActorId::from(c.prefixed()?);
    let _seq = c.uleb()?;
    let _start_op = c.uleb()?;
    let timestamp = c.sleb()?;
    c.prefixed()?;
    let others = c.uleb()?;
    for _ in 0..others {
        c.prefixed()?;
    }
    let columns = c.columns()?;
    let operations = operations_in(&columns, c.0, cap)?;
    Ok(ChangeOutline {
        hash: change_hash(body),
        actor,
        timestamp,
        operations,
    })
}

fn document_operations(body: &[u8], cap: u64) -> Result<u64> {
    let mut c = Cursor(body);
    let actors = c.uleb()?;
    for _ in 0..actors {
        c.prefixed()?;
    }
    let heads = c.uleb()?;
    c.skip_n(heads, 32)?;
    let change_columns = c.columns()?;
    let op_columns = c.columns()?;
    let change_data: u64 = change_columns.iter().map(|(_, len)| *len).sum();
    c.take(usize::try_from(change_data).map_err(|_| malformed())?)?;
    operations_in(&op_columns, c.0, cap)
}

fn bundle_operations(body: &[u8], cap: u64) -> Result<u64> {
    let mut c = Cursor(body);
    let deps = c.uleb()?;
    c.skip_n(deps, 32)?;
    let actors = c.uleb()?;
    for _ in 0..actors {
        c.prefixed()?;
    }
    let change_columns = c.columns()?;
    let change_data: u64 = change_columns.iter().map(|(_, len)| *len).sum();
    c.take(usize::try_from(change_data).map_err(|_| malformed())?)?;
    let op_columns = c.columns()?;
    operations_in(&op_columns, c.0, cap)
}

/// Rows of the action column among `columns` (spec, length) laid out back to back in `data`:
/// one per operation.
fn operations_in(columns: &[(u32, u64)], data: &[u8], cap: u64) -> Result<u64> {
    let mut offset: u64 = 0;
    for (spec, len) in columns {
        let start = usize::try_from(offset).map_err(|_| malformed())?;
        let end = usize::try_from(offset.saturating_add(*len)).map_err(|_| malformed())?;
        offset = offset.saturating_add(*len);
        if spec & !DEFLATE_BIT != ACTION_COLUMN {
            continue;
        }
        let column = data.get(start..end).ok_or_else(malformed)?;
        return if spec & DEFLATE_BIT != 0 {
            rle_rows(&inflate(column)?, cap)
        } else {
            rle_rows(column, cap)
        };
    }
    Ok(0)
}

/// Rows of an RLE column of unsigned integers: runs of one repeated value (positive count,
/// then the value), literal runs (negative count, then that many values) and null runs (0,
/// then the count). Stops once past `cap`.
fn rle_rows(column: &[u8], cap: u64) -> Result<u64> {
    let mut c = Cursor(column);
    let mut rows: u64 = 0;
    while !c.0.is_empty() && rows <= cap {
        let count = c.sleb()?;
        if count > 0 {
            rows = rows.saturating_add(count.unsigned_abs());
            c.uleb()?;
        } else if count < 0 {
            let literals = count.unsigned_abs();
            rows = rows.saturating_add(literals);
            for _ in 0..literals.min(cap.saturating_add(1)) {
                c.uleb()?;
            }
        } else {
            rows = rows.saturating_add(c.uleb()?);
        }
    }
    Ok(rows.min(cap.saturating_add(1)))
}

/// Inflates DEFLATE data, refusing more than [`MAX_INFLATED`] bytes.
fn inflate(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|_| malformed())?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(Error::Limit(format!(
            "a compressed chunk inflates past {MAX_INFLATED} bytes"
        )));
    }
    Ok(out)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn uleb(&mut self) -> Result<u64> {
        leb128::read::unsigned(&mut self.0).map_err(|_| malformed())
    }

    fn sleb(&mut self) -> Result<i64> {
        leb128::read::signed(&mut self.0).map_err(|_| malformed())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(malformed());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn skip_n(&mut self, count: u64, size: usize) -> Result<()> {
        let total = usize::try_from(count)
            .ok()
            .and_then(|count| count.checked_mul(size))
            .ok_or_else(malformed)?;
        self.take(total).map(|_| ())
    }

    fn prefixed(&mut self) -> Result<&'a [u8]> {
        let len = self.uleb()?;
        self.take(usize::try_from(len).map_err(|_| malformed())?)
    }

    /// A column section's metadata: how many, then (spec, length) pairs.
    fn columns(&mut self) -> Result<Vec<(u32, u64)>> {
        let count = self.uleb()?;
        if count > MAX_COLUMNS {
            return Err(malformed());
        }
        (0..count)
            .map(|_| {
                let spec = u32::try_from(self.uleb()?).map_err(|_| malformed())?;
                Ok((spec, self.uleb()?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ROOT};

    #[test]
    fn counts_what_automerge_decodes() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "text", ObjType::Text).unwrap();
        tx.splice_text(&text, 0, 0, &"x".repeat(300)).unwrap();
        tx.put(ROOT, "a", 1).unwrap();
        tx.put(ROOT, "b", "two").unwrap();
        tx.commit();
        let change = doc.get_last_local_change().unwrap().clone();
        let Outline::Change(read) = outline_of(change.raw_bytes(), 1_000_000) else {
            panic!("not a change");
        };
        assert_eq!(read.operations, change.len() as u64);
        assert_eq!(read.hash, change.hash());
        assert_eq!(&read.actor, change.actor_id());
        assert_eq!(read.timestamp, change.timestamp());
        // Counting stops past the cap.
        let Outline::Change(capped) = outline_of(change.raw_bytes(), 10) else {
            panic!("not a change");
        };
        assert_eq!(capped.operations, 11);
        // A whole document (compressed columns) counts every operation.
        let saved = doc.save();
        for chunk in chunks::split(&saved).unwrap() {
            assert_eq!(
                outline(chunk, 1_000_000).unwrap(),
                Outline::Many {
                    operations: change.len() as u64
                }
            );
        }
    }

    fn outline_of(bytes: &[u8], cap: u64) -> Outline {
        outline(bytes, cap).unwrap()
    }

    #[test]
    fn refuses_truncated_and_garbage_headers() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "a", 1).unwrap();
        tx.commit();
        let bytes = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
        for end in 0..bytes.len() {
            assert!(outline(&bytes[..end], 10).is_err(), "accepted {end} bytes");
        }
        let mut wrong = bytes.clone();
        wrong[chunks::TYPE_AT] = 9;
        assert!(outline(&wrong, 10).is_err());
    }
}
