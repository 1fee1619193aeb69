//! Which devices each plan enrolls, so a relay finds a joining device's plans without
//! loading documents.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::model::{DeviceId, PlanId};
use crate::plan::DeviceAccess;

/// Replaces the devices recorded for `plan` (the plan must be in the catalog).
pub fn set_plan_devices(conn: &Connection, plan: PlanId, devices: &[DeviceAccess]) -> Result<()> {
    let plan = plan.to_string();
    conn.prepare_cached("DELETE FROM plan_devices WHERE plan_id = ?1")?
        .execute([&plan])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO plan_devices (plan_id, device_id, token_hash, revoked) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for device in devices {
        insert.execute(params![
            plan,
            device.device_id.to_string(),
            device.token_hash,
            device.revoked
        ])?;
    }
    Ok(())
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
