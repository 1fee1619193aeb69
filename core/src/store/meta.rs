//! Facts about the store itself (`store_meta`): its stable random id.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

/// The store's random id, made by migration 003 when the store was created (or upgraded).
pub fn load_store_id(conn: &Connection) -> Result<String> {
    conn.query_row(
        "SELECT value FROM store_meta WHERE key = 'store_id'",
        [],
        |row| row.get(0),
    )
    .optional()?
    .ok_or_else(|| Error::Malformed("the store has no store id".into()))
}
