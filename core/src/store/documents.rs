//! Documents as a snapshot plus incremental chunks, and the plan catalog.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};
use crate::model::{PlanId, PlanSummary};

/// A document's bytes as stored: the snapshot followed by every chunk, loadable in one go.
pub struct StoredDocument {
    pub bytes: Vec<u8>,
    pub snapshot_len: usize,
    pub chunk_bytes: usize,
}

/// Sizes that decide compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentSizes {
    pub snapshot_len: usize,
    pub chunk_bytes: usize,
    pub chunk_count: usize,
}

/// A byte count read from the store, as `usize`: a negative count reads as 0, and one too large
/// for this platform (a damaged row; `usize` is 32 bits on armeabi-v7a) saturates instead of
/// wrapping.
fn stored_len(count: i64) -> usize {
    usize::try_from(count.max(0)).unwrap_or(usize::MAX)
}

pub fn load_document(conn: &Connection, doc_id: &str) -> Result<Option<StoredDocument>> {
    let row: Option<(Vec<u8>, i64)> = conn
        .query_row(
            "SELECT s.snapshot, d.chunk_bytes
             FROM documents d JOIN document_snapshots s ON s.doc_id = d.doc_id
             WHERE d.doc_id = ?1",
            [doc_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((mut bytes, chunk_bytes)) = row else {
        return Ok(None);
    };
    let snapshot_len = bytes.len();
    // Only a hint: a damaged count must not abort the process (nor wrap on a 32-bit phone).
    let _ = bytes.try_reserve(stored_len(chunk_bytes));
    let mut statement =
        conn.prepare_cached("SELECT bytes FROM chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let mut rows = statement.query([doc_id])?;
    while let Some(row) = rows.next()? {
        let chunk = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        bytes.extend_from_slice(chunk);
    }
    Ok(Some(StoredDocument {
        bytes,
        snapshot_len,
        chunk_bytes: stored_len(chunk_bytes),
    }))
}

/// A document's snapshot, and its chunks in order.
pub type DocumentParts = (Vec<u8>, Vec<Vec<u8>>);

/// A document's snapshot and its chunks, each as stored (for reading a document whose joined
/// bytes do not load, chunk by chunk).
pub fn load_document_parts(conn: &Connection, doc_id: &str) -> Result<Option<DocumentParts>> {
    let snapshot: Option<Vec<u8>> = conn
        .query_row(
            "SELECT snapshot FROM document_snapshots WHERE doc_id = ?1",
            [doc_id],
            |row| row.get(0),
        )
        .optional()?;
    let Some(snapshot) = snapshot else {
        return Ok(None);
    };
    let mut statement =
        conn.prepare_cached("SELECT bytes FROM chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let chunks = statement
        .query_map([doc_id], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<Vec<u8>>>>()?;
    Ok(Some((snapshot, chunks)))
}

pub fn document_sizes(conn: &Connection, doc_id: &str) -> Result<Option<DocumentSizes>> {
    Ok(conn
        .query_row(
            "SELECT (SELECT length(snapshot) FROM document_snapshots WHERE doc_id = ?1),
                    chunk_bytes, (SELECT count(*) FROM chunks WHERE doc_id = ?1)
             FROM documents WHERE doc_id = ?1",
            [doc_id],
            |row| {
                Ok(DocumentSizes {
                    snapshot_len: stored_len(row.get::<_, i64>(0)?),
                    chunk_bytes: stored_len(row.get::<_, i64>(1)?),
                    chunk_count: stored_len(row.get::<_, i64>(2)?),
                })
            },
        )
        .optional()?)
}

pub fn insert_document(
    conn: &Connection,
    doc_id: &str,
    snapshot: &[u8],
    heads: &[u8],
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO documents (doc_id, heads, chunk_bytes, updated_at) VALUES (?1, ?2, 0, ?3)",
    )?
    .execute(params![doc_id, heads, now])?;
    conn.prepare_cached(
        "INSERT INTO document_snapshots (doc_id, snapshot, snapshot_heads) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![doc_id, snapshot, heads])?;
    Ok(())
}

/// Appends one incremental chunk (numbered after the document's last one) and records the
/// document's heads after it; `unsigned`: this device's changes in it that wait for their
/// signature. Errors: [`Error::NotFound`] when no document `doc_id` is stored.
pub fn append_chunk(
    conn: &Connection,
    doc_id: &str,
    bytes: &[u8],
    heads: &[u8],
    now: i64,
    unsigned: &[automerge::ChangeHash],
) -> Result<()> {
    let updated = conn
        .prepare_cached(
            "UPDATE documents SET chunk_bytes = chunk_bytes + ?2, updated_at = ?3, heads = ?4
             WHERE doc_id = ?1",
        )?
        .execute(params![doc_id, bytes.len() as i64, now, heads])?;
    if updated == 0 {
        return Err(Error::not_found("document", doc_id));
    }
    let unsigned = (!unsigned.is_empty())
        .then(|| unsigned.iter().flat_map(|hash| hash.0).collect::<Vec<u8>>());
    conn.prepare_cached(
        "INSERT INTO chunks (doc_id, seq, bytes, unsigned)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM chunks WHERE doc_id = ?1), ?2, ?3)",
    )?
    .execute(params![doc_id, bytes, unsigned])?;
    Ok(())
}

/// Compaction: a new snapshot replaces the old one and the chunks it merged, those up to
/// `merged_up_to` (a chunk `seq`); a chunk written after them (none, while the caller holds
/// the write lock) would stay. `now`: the time of the write that changed the document (UTC
/// milliseconds), which the catalog lists; None for compaction alone, which changes nothing a
/// user sees and keeps the time of the last write.
pub fn replace_snapshot(
    conn: &Connection,
    doc_id: &str,
    snapshot: &[u8],
    heads: &[u8],
    now: Option<i64>,
    merged_up_to: i64,
) -> Result<()> {
    // The changes of merged chunks that wait for their signature keep waiting, listed apart.
    conn.prepare_cached(
        "WITH RECURSIVE waiting (rest, hash) AS (
             SELECT unsigned, NULL FROM chunks
             WHERE doc_id = ?1 AND seq <= ?2 AND unsigned IS NOT NULL
             UNION ALL
             SELECT substr(rest, 33), substr(rest, 1, 32) FROM waiting WHERE length(rest) >= 32
         )
         INSERT OR IGNORE INTO unsigned_changes (doc_id, change_hash)
         SELECT ?1, hash FROM waiting WHERE hash IS NOT NULL",
    )?
    .execute(params![doc_id, merged_up_to])?;
    conn.prepare_cached("DELETE FROM chunks WHERE doc_id = ?1 AND seq <= ?2")?
        .execute(params![doc_id, merged_up_to])?;
    conn.prepare_cached(
        "UPDATE document_snapshots SET snapshot = ?2, snapshot_heads = ?3 WHERE doc_id = ?1",
    )?
    .execute(params![doc_id, snapshot, heads])?;
    let updated = conn
        .prepare_cached(
            "UPDATE documents SET heads = ?2, updated_at = coalesce(?3, updated_at),
            chunk_bytes = (SELECT coalesce(sum(length(bytes)), 0) FROM chunks WHERE doc_id = ?1)
         WHERE doc_id = ?1",
        )?
        .execute(params![doc_id, heads, now])?;
    if updated == 0 {
        return Err(Error::not_found("document", doc_id));
    }
    Ok(())
}

/// The highest chunk `seq` of a document (0 when it has none).
pub fn last_chunk_seq(conn: &Connection, doc_id: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM chunks WHERE doc_id = ?1")?
        .query_row([doc_id], |row| row.get(0))?)
}

/// Every stored document's recorded heads (see [`document_heads`]), keyed by document id:
/// what a store compares to notice that another connection wrote.
pub fn all_document_heads(conn: &Connection) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let mut statement = conn.prepare_cached("SELECT doc_id, heads FROM documents")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

pub fn upsert_plan_summary(conn: &Connection, summary: &PlanSummary) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO plans (plan_id, title, review_on, client_name, goal_count, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (plan_id) DO UPDATE SET title = excluded.title,
            review_on = excluded.review_on, client_name = excluded.client_name,
            goal_count = excluded.goal_count, updated_at = excluded.updated_at",
    )?
    .execute(params![
        summary.plan_id.to_string(),
        summary.title,
        summary.review_on,
        summary.client_name,
        summary.goal_count,
        summary.updated_at
    ])?;
    Ok(())
}

/// Whether a plan has its catalog row. Its update time needs no write of its own: the catalog
/// lists the time of the document's last write (see [`list_plans`]).
pub fn has_plan_summary(conn: &Connection, plan: PlanId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM plans WHERE plan_id = ?1")?
        .query_row([plan.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<(String, PlanSummaryRow)> {
    Ok((
        row.get(0)?,
        PlanSummaryRow {
            title: row.get(1)?,
            review_on: row.get(2)?,
            client_name: row.get(3)?,
            goal_count: row.get(4)?,
            updated_at: row.get(5)?,
        },
    ))
}

struct PlanSummaryRow {
    title: String,
    review_on: Option<String>,
    client_name: Option<String>,
    goal_count: u32,
    updated_at: i64,
}

pub fn list_plans(conn: &Connection) -> Result<Vec<PlanSummary>> {
    let mut statement = conn.prepare_cached(
        "SELECT p.plan_id, p.title, p.review_on, p.client_name, p.goal_count,
                coalesce(d.updated_at, p.updated_at)
         FROM plans p LEFT JOIN documents d ON d.doc_id = p.plan_id
         ORDER BY p.title COLLATE NOCASE, p.plan_id",
    )?;
    let rows = statement.query_map([], summary_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (plan_id, row) = row?;
        out.push(PlanSummary {
            plan_id: PlanId::parse(&plan_id)?,
            title: row.title,
            review_on: row.review_on,
            client_name: row.client_name,
            goal_count: row.goal_count,
            updated_at: row.updated_at,
        });
    }
    Ok(out)
}

pub fn plan_ids(conn: &Connection) -> Result<Vec<PlanId>> {
    let mut statement = conn.prepare_cached("SELECT plan_id FROM plans ORDER BY plan_id")?;
    let ids = statement.query_map([], |row| row.get::<_, String>(0))?;
    let mut out = Vec::new();
    for id in ids {
        out.push(PlanId::parse(&id?)?);
    }
    Ok(out)
}

/// The recorded heads of these documents (32-byte hashes back to back), in one query per 500
/// ids: None for a document stored before migration 006 and not written since; documents not
/// stored here are left out.
pub fn document_heads(
    conn: &Connection,
    doc_ids: &[String],
) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let mut out = Vec::with_capacity(doc_ids.len());
    for batch in doc_ids.chunks(500) {
        let placeholders = vec!["?"; batch.len()].join(",");
        let mut statement = conn.prepare_cached(&format!(
            "SELECT doc_id, heads FROM documents WHERE doc_id IN ({placeholders})"
        ))?;
        let rows = statement.query_map(rusqlite::params_from_iter(batch), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<Vec<u8>>>(1)?))
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

/// Records the heads of a document stored before migration 006, once it has been read.
pub fn fill_document_heads(conn: &Connection, doc_id: &str, heads: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE documents SET heads = ?2 WHERE doc_id = ?1 AND heads IS NULL",
        params![doc_id, heads],
    )?;
    Ok(())
}

pub fn has_document(conn: &Connection, doc_id: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM documents WHERE doc_id = ?1",
            [doc_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
