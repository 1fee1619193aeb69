//! A copied identity (`docs/design.md`, "A copied identity"): the device ids this store left to
//! another copy of itself (`store_meta` rows `retired_device:<id>`), and its own changes kept
//! in `set_aside_changes` until they are replayed under its new identity.

use rusqlite::{params, Connection};

use crate::authorship::DeviceKey;
use crate::error::Result;
use crate::model::{DeviceId, Identity, PlanId};

/// `store_meta` key prefix of a device id this store used before it found a copy using it.
const RETIRED: &str = "retired_device:";

/// Gives this store `new` (a new device id of the same member) and `key` in place of the
/// identity and key it had, and records `old` as retired at `now` (UTC milliseconds).
pub fn retire_identity(
    conn: &Connection,
    old: DeviceId,
    new: &Identity,
    key: &DeviceKey,
    now: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE identity SET device_id = ?1 WHERE id = 1",
        [new.device_id.to_string()],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO device_key (id, secret, created_at) VALUES (1, ?1, ?2)",
        params![key.to_bytes().as_slice(), now],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO store_meta (key, value) VALUES (?1, ?2)",
        params![format!("{RETIRED}{old}"), now.to_string()],
    )?;
    Ok(())
}

/// The device ids this store retired, each with when (UTC milliseconds), oldest first.
pub fn retired_devices(conn: &Connection) -> Result<Vec<(DeviceId, i64)>> {
    let mut statement = conn.prepare_cached(
        "SELECT substr(key, ?2), value FROM store_meta WHERE key LIKE ?1 ORDER BY value, key",
    )?;
    let rows = statement.query_map(
        params![format!("{RETIRED}%"), RETIRED.len() as i64 + 1],
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (device, at) = row?;
        // A row this code did not write is skipped, not an error: it names no device.
        if let (Ok(device), Ok(at)) = (device.parse(), at.parse()) {
            out.push((device, at));
        }
    }
    Ok(out)
}

/// The bytes of `plan`'s set-aside changes recorded with `reason` and not replayed yet, in
/// the order they were recorded.
pub fn waiting_changes(conn: &Connection, plan: PlanId, reason: &str) -> Result<Vec<Vec<u8>>> {
    let mut statement = conn.prepare_cached(
        "SELECT bytes FROM set_aside_changes
         WHERE doc_id = ?1 AND reason = ?2 AND replayed_as IS NULL ORDER BY rowid",
    )?;
    let rows = statement.query_map(params![plan.to_string(), reason], |row| row.get(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

/// Plans with set-aside changes recorded with `reason` and not replayed yet.
pub fn plans_waiting(conn: &Connection, reason: &str) -> Result<Vec<PlanId>> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT doc_id FROM set_aside_changes
         WHERE reason = ?1 AND replayed_as IS NULL ORDER BY doc_id",
    )?;
    let rows = statement.query_map([reason], |row| row.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(plan) = row?.parse() {
            out.push(plan);
        }
    }
    Ok(out)
}

/// Records that the set-aside change `change_hash` of `plan` was replayed as `replayed_as`.
pub fn mark_replayed(
    conn: &Connection,
    plan: PlanId,
    change_hash: &str,
    replayed_as: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE set_aside_changes SET replayed_as = ?3 WHERE doc_id = ?1 AND change_hash = ?2",
        params![plan.to_string(), change_hash, replayed_as],
    )?;
    Ok(())
}
