//! Records of refused changes: when, from which peer, by which device, under which rule.

use rusqlite::{params, Connection, Row};

use crate::error::Result;
use crate::model::{MemberId, PlanId, RefusedChange};

pub fn record_refusal(conn: &Connection, plan: PlanId, refusal: &RefusedChange) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO refusals
            (doc_id, change_hash, peer_id, device_id, member_id, rule, change_at, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        plan.to_string(),
        refusal.change_hash,
        refusal.peer,
        refusal.device_id,
        refusal.member_id.map(|m| m.to_string()),
        refusal.rule,
        refusal.change_at,
        refusal.recorded_at
    ])?;
    Ok(())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<(String, RefusedChange)> {
    let member: Option<String> = row.get(4)?;
    Ok((
        row.get(0)?,
        RefusedChange {
            change_hash: row.get(1)?,
            peer: row.get(2)?,
            device_id: row.get(3)?,
            member_id: member.and_then(|m| MemberId::parse(&m).ok()),
            rule: row.get(5)?,
            change_at: row.get(6)?,
            recorded_at: row.get(7)?,
        },
    ))
}

/// Refusals of one plan, or of every plan, oldest first.
pub fn list_refusals(
    conn: &Connection,
    plan: Option<PlanId>,
) -> Result<Vec<(PlanId, RefusedChange)>> {
    let mut statement = conn.prepare_cached(
        "SELECT doc_id, change_hash, peer_id, device_id, member_id, rule, change_at, recorded_at
         FROM refusals WHERE ?1 IS NULL OR doc_id = ?1 ORDER BY recorded_at, change_hash",
    )?;
    let rows = statement.query_map([plan.map(|p| p.to_string())], from_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (doc, refusal) = row?;
        out.push((PlanId::parse(&doc)?, refusal));
    }
    Ok(out)
}
