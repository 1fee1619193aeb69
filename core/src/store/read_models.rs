//! Plans' read models: the model a plan reads to, kept beside its document and keyed by the
//! document heads it was read from (docs/design.md, Read model).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// The stored read model of `doc_id` (its bytes), when it was read from the document heads
/// the store holds now (`documents.heads`) by code of the same `format`; None otherwise.
pub fn load_read_model(conn: &Connection, doc_id: &str, format: i64) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT m.model FROM plan_read_models m JOIN documents d ON d.doc_id = m.doc_id
             WHERE m.doc_id = ?1 AND m.format = ?2 AND m.heads = d.heads",
            params![doc_id, format],
            |row| row.get(0),
        )
        .optional()?)
}

/// Keeps `model`, read from the document at `heads` (the documents.heads encoding), as the read
/// model of `doc_id`, only while the store still holds the document at those heads: a writer
/// that moved the document on in between wins, and nothing stale is ever kept. Returns whether
/// it was kept.
pub fn save_read_model(
    conn: &Connection,
    doc_id: &str,
    heads: &[u8],
    format: i64,
    model: &[u8],
) -> Result<bool> {
    let kept = conn
        .prepare_cached(
            "INSERT INTO plan_read_models (doc_id, heads, format, model)
             SELECT doc_id, heads, ?3, ?4 FROM documents WHERE doc_id = ?1 AND heads = ?2
             ON CONFLICT (doc_id) DO UPDATE
                SET heads = excluded.heads, format = excluded.format, model = excluded.model",
        )?
        .execute(params![doc_id, heads, format, model])?;
    Ok(kept > 0)
}
