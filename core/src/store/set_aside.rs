//! Own changes a device took out of a plan and replayed (see `migrations/007`).

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::model::{PlanId, SetAsideChange};

/// Keeps a set-aside change with its bytes; recording the same change twice keeps the first.
pub fn record_set_aside(
    conn: &Connection,
    plan: PlanId,
    record: &SetAsideChange,
    bytes: &[u8],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO set_aside_changes
            (doc_id, change_hash, bytes, reason, replayed_as, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        plan.to_string(),
        record.change_hash,
        bytes,
        record.reason,
        record.replayed_as,
        record.recorded_at
    ])?;
    Ok(())
}

/// The set-aside changes of one plan, oldest first.
pub fn list_set_aside(conn: &Connection, plan: PlanId) -> Result<Vec<SetAsideChange>> {
    let mut statement = conn.prepare_cached(
        "SELECT change_hash, reason, replayed_as, recorded_at FROM set_aside_changes
         WHERE doc_id = ?1 ORDER BY recorded_at, change_hash",
    )?;
    let rows = statement.query_map([plan.to_string()], |row| {
        Ok(SetAsideChange {
            change_hash: row.get(0)?,
            reason: row.get(1)?,
            replayed_as: row.get(2)?,
            recorded_at: row.get(3)?,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}
