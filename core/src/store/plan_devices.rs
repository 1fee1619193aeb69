//! Which devices each plan enrolls, so a relay finds a joining device's plans without
//! loading documents.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::audit::{AuditKind, NewAuditEntry};

use crate::error::Result;
use crate::model::{DeviceId, PlanId};
use crate::plan::DeviceAccess;

/// Replaces the devices recorded for `plan` (the plan must be in the catalog). A token that
/// is new to a device, and a revocation, are appended to the audit trail as the store learns of
/// them (by the device itself, or not).
pub fn set_plan_devices(conn: &Connection, plan: PlanId, devices: &[DeviceAccess]) -> Result<()> {
    let plan = plan.to_string();
    let before = recorded(conn, &plan)?;
    conn.prepare_cached("DELETE FROM plan_devices WHERE plan_id = ?1")?
        .execute([&plan])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO plan_devices (plan_id, device_id, token_hash, revoked, member_id) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for device in devices {
        insert.execute(params![
            plan,
            device.device_id.to_string(),
            device.token_hash,
            device.revoked,
            device.member_id.map(|m| m.to_string())
        ])?;
    }
    let now = crate::clock::now_ms();
    for device in devices {
        let id = device.device_id.to_string();
        let (old_hash, old_revoked) = before.get(&id).cloned().unwrap_or((None, false));
        let mut learned = Vec::new();
        if device.token_hash.is_some() && device.token_hash != old_hash {
            learned.push(AuditKind::TokenIssued);
        }
        if device.revoked && !old_revoked {
            learned.push(AuditKind::TokenRevoked);
        }
        for kind in learned {
            let entry = NewAuditEntry {
                device_id: Some(id.clone()),
                member_id: device.member_id.map(|m| m.to_string()),
                plan_id: Some(plan.clone()),
                ..NewAuditEntry::new(kind, "learned")
            };
            super::audit::append_audit(conn, &entry, now)?;
        }
    }
    Ok(())
}

/// Each device recorded for `plan`: its token hash and whether it is revoked.
fn recorded(conn: &Connection, plan: &str) -> Result<HashMap<String, (Option<String>, bool)>> {
    let mut statement = conn.prepare_cached(
        "SELECT device_id, token_hash, revoked FROM plan_devices WHERE plan_id = ?1",
    )?;
    let rows = statement.query_map([plan], |row| {
        Ok((row.get::<_, String>(0)?, (row.get(1)?, row.get(2)?)))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The plans that enroll `device`, sorted.
pub fn plans_of_device(conn: &Connection, device: DeviceId) -> Result<Vec<PlanId>> {
    let mut statement = conn
        .prepare_cached("SELECT plan_id FROM plan_devices WHERE device_id = ?1 ORDER BY plan_id")?;
    let ids = statement.query_map([device.to_string()], |row| row.get::<_, String>(0))?;
    let mut out = Vec::new();
    for id in ids {
        out.push(PlanId::parse(&id?)?);
    }
    Ok(out)
}

/// The device a token hash belongs to and the plans it opens: rows whose `token_hash`
/// matches and that are not revoked, sorted by plan. Empty when the token opens nothing.
pub fn plans_of_token(conn: &Connection, token_hash: &str) -> Result<Vec<(PlanId, DeviceId)>> {
    let mut statement = conn.prepare_cached(
        "SELECT plan_id, device_id FROM plan_devices \
         WHERE token_hash = ?1 AND revoked = 0 ORDER BY plan_id",
    )?;
    let rows = statement.query_map([token_hash], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (plan, device) = row?;
        out.push((PlanId::parse(&plan)?, DeviceId::parse(&device)?));
    }
    Ok(out)
}

/// The token hashes `plan` lists (revoked or not), as last indexed.
pub fn token_hashes_of_plan(conn: &Connection, plan: PlanId) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT token_hash FROM plan_devices WHERE plan_id = ?1 AND token_hash IS NOT NULL",
    )?;
    let rows = statement.query_map([plan.to_string()], |row| row.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether a plan other than `plan` lists `token_hash` (revoked or not): the relay has seen it.
pub fn token_listed_elsewhere(conn: &Connection, token_hash: &str, plan: PlanId) -> Result<bool> {
    let mut statement = conn.prepare_cached(
        "SELECT 1 FROM plan_devices WHERE token_hash = ?1 AND plan_id <> ?2 LIMIT 1",
    )?;
    Ok(statement.exists(params![token_hash, plan.to_string()])?)
}
