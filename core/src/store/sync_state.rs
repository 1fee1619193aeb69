//! Persisted Automerge sync state per (document, peer).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

pub fn load_sync_state(conn: &Connection, doc_id: &str, peer: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT state FROM sync_state WHERE doc_id = ?1 AND peer_id = ?2",
            params![doc_id, peer],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn save_sync_state(conn: &Connection, doc_id: &str, peer: &str, state: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO sync_state (doc_id, peer_id, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (doc_id, peer_id) DO UPDATE SET state = excluded.state",
        params![doc_id, peer, state],
    )?;
    Ok(())
}

/// Forgets every document's sync state with `peer` (an ephemeral peer that left).
pub fn delete_sync_states(conn: &Connection, peer: &str) -> Result<usize> {
    Ok(conn.execute("DELETE FROM sync_state WHERE peer_id = ?1", [peer])?)
}

/// Forgets every peer's sync state for one document: after this device took changes out of
/// it, what those states believe shared may name changes that are gone.
pub fn delete_plan_sync_states(conn: &Connection, doc_id: &str) -> Result<usize> {
    Ok(conn.execute("DELETE FROM sync_state WHERE doc_id = ?1", [doc_id])?)
}
