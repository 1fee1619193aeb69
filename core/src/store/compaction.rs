//! Which stored documents are due for compaction: those whose chunks outgrew half their
//! snapshot (`docs/design.md`, "Compaction").

use rusqlite::Connection;

use crate::error::Result;

/// Ids of up to `limit` documents whose chunks hold more than half as many bytes as their
/// snapshot, the most outgrown first. Reads the small `documents` rows and the snapshots'
/// lengths (`length()` of a blob reads its record header, not the blob).
pub fn documents_due_for_compaction(conn: &Connection, limit: usize) -> Result<Vec<String>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(
        "SELECT d.doc_id FROM documents d JOIN document_snapshots s ON s.doc_id = d.doc_id
         WHERE d.chunk_bytes * 2 > length(s.snapshot)
         ORDER BY d.chunk_bytes * 2 - length(s.snapshot) DESC, d.doc_id
         LIMIT ?1",
    )?;
    let rows = statement.query_map([limit], |row| row.get(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}
