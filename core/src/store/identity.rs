//! This device's identity row.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::model::Identity;

fn from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

pub fn load_identity(conn: &Connection) -> Result<Option<Identity>> {
    let row = conn
        .query_row(
            "SELECT member_id, device_id, name, role FROM identity WHERE id = 1",
            [],
            from_row,
        )
        .optional()?;
    let Some((member_id, device_id, name, role)) = row else {
        return Ok(None);
    };
    Ok(Some(Identity {
        member_id: member_id.parse()?,
        device_id: device_id.parse()?,
        name,
        role: role.parse()?,
    }))
}

pub fn save_identity(conn: &Connection, identity: &Identity, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO identity (id, member_id, device_id, name, role, created_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![
            identity.member_id.to_string(),
            identity.device_id.to_string(),
            identity.name,
            identity.role.as_str(),
            now
        ],
    )?;
    Ok(())
}
