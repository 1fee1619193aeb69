//! Which devices each plan enrolls, so a relay finds a joining device's plans without
//! loading documents.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::model::{DeviceId, PlanId};

/// Replaces the devices recorded for `plan` (the plan must be in the catalog).
pub fn set_plan_devices(conn: &Connection, plan: PlanId, devices: &[DeviceId]) -> Result<()> {
    let plan = plan.to_string();
    conn.prepare_cached("DELETE FROM plan_devices WHERE plan_id = ?1")?
        .execute([&plan])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO plan_devices (plan_id, device_id) VALUES (?1, ?2)",
    )?;
    for device in devices {
        insert.execute(params![plan, device.to_string()])?;
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
