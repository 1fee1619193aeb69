//! Whether the database file is sound: SQLite's integrity check, and for an encrypted store
//! SQLCipher's check of every page's authentication code.

use rusqlite::Connection;

use crate::error::Result;

/// The problems found; empty when the file is sound. The messages name pages and tables,
/// never stored content.
pub(crate) fn check(conn: &Connection, encrypted: bool) -> Result<Vec<String>> {
    let mut problems = rows(conn, "PRAGMA integrity_check")?;
    if problems.len() == 1 && problems[0] == "ok" {
        problems.clear();
    }
    if encrypted {
        // Lists nothing when every page authenticates.
        problems.extend(rows(conn, "PRAGMA cipher_integrity_check")?);
    }
    Ok(problems)
}

fn rows(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
