//! This device's signing key, the change signatures kept beside each plan's document
//! (migration 010; `crate::authorship`), and this device's changes waiting for their
//! signature (migration 011).

use rusqlite::{params, Connection, OptionalExtension};

use crate::authorship::{carrier::Record, DeviceKey, Signature};
use crate::error::Result;

/// This device's signing key, if it has one.
pub fn load_device_key(conn: &Connection) -> Result<Option<DeviceKey>> {
    let secret: Option<Vec<u8>> = conn
        .query_row("SELECT secret FROM device_key WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()?;
    let secret = secret.map(zeroize::Zeroizing::new);
    secret.map(|s| DeviceKey::from_bytes(&s)).transpose()
}

/// Stores this device's signing key; a key already stored is kept (the first one wins).
pub fn save_device_key(conn: &Connection, key: &DeviceKey, now: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO device_key (id, secret, created_at) VALUES (1, ?1, ?2)",
        params![key.to_bytes().as_slice(), now],
    )?;
    Ok(())
}

/// Records signatures of a plan's changes (ones already recorded are kept).
pub fn save_signatures(conn: &Connection, doc_id: &str, signatures: &[Record]) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT OR IGNORE INTO change_signatures (doc_id, change_hash, signature)
         VALUES (?1, ?2, ?3)",
    )?;
    for (hash, signature) in signatures {
        statement.execute(params![doc_id, &hash.0[..], &signature.0[..]])?;
    }
    Ok(())
}

/// Records this device's new changes of a plan as waiting for their signature (ones already
/// waiting or signed are kept as they are).
pub fn save_unsigned(
    conn: &Connection,
    doc_id: &str,
    hashes: &[automerge::ChangeHash],
) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT OR IGNORE INTO unsigned_changes (doc_id, change_hash) VALUES (?1, ?2)",
    )?;
    for hash in hashes {
        statement.execute(params![doc_id, &hash.0[..]])?;
    }
    Ok(())
}

/// This device's changes waiting for their signature: of one plan, or of every plan when
/// `doc_id` is None; as (document id, change hash).
pub fn load_unsigned(
    conn: &Connection,
    doc_id: Option<&str>,
) -> Result<Vec<(String, automerge::ChangeHash)>> {
    let mut statement = conn.prepare_cached(
        "SELECT doc_id, change_hash FROM unsigned_changes WHERE ?1 IS NULL OR doc_id = ?1",
    )?;
    let rows = statement.query_map(params![doc_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (doc, hash) = row?;
        // A row is written only from a change hash; one of another length is not a change.
        if let Ok(hash) = automerge::ChangeHash::try_from(hash.as_slice()) {
            out.push((doc, hash));
        }
    }
    Ok(out)
}

/// Records the signatures of waiting changes of a plan and takes them off the waiting list.
pub fn save_signed(conn: &Connection, doc_id: &str, signatures: &[Record]) -> Result<()> {
    save_signatures(conn, doc_id, signatures)?;
    let mut statement =
        conn.prepare_cached("DELETE FROM unsigned_changes WHERE doc_id = ?1 AND change_hash = ?2")?;
    for (hash, _) in signatures {
        statement.execute(params![doc_id, &hash.0[..]])?;
    }
    Ok(())
}

/// The recorded signatures of these changes of a plan (those it has), or of all its changes
/// when `hashes` is None.
pub fn load_signatures(
    conn: &Connection,
    doc_id: &str,
    hashes: Option<&[automerge::ChangeHash]>,
) -> Result<Vec<Record>> {
    let decode = |hash: Vec<u8>, signature: Vec<u8>| -> Option<Record> {
        Some((
            automerge::ChangeHash::try_from(hash.as_slice()).ok()?,
            Signature::from_slice(&signature)?,
        ))
    };
    let mut out = Vec::new();
    match hashes {
        None => {
            let mut statement = conn.prepare_cached(
                "SELECT change_hash, signature FROM change_signatures WHERE doc_id = ?1",
            )?;
            let rows =
                statement.query_map(params![doc_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            for row in rows {
                let (hash, signature) = row?;
                out.extend(decode(hash, signature));
            }
        }
        Some(hashes) => {
            let mut statement = conn.prepare_cached(
                "SELECT signature FROM change_signatures WHERE doc_id = ?1 AND change_hash = ?2",
            )?;
            for hash in hashes {
                let signature: Option<Vec<u8>> = statement
                    .query_row(params![doc_id, &hash.0[..]], |row| row.get(0))
                    .optional()?;
                if let Some(signature) = signature.and_then(|s| Signature::from_slice(&s)) {
                    out.push((*hash, signature));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;
    use automerge::ChangeHash;

    #[test]
    fn keys_and_signatures_round_trip() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        assert!(load_device_key(&conn).unwrap().is_none());
        let key = DeviceKey::generate().unwrap();
        save_device_key(&conn, &key, 1).unwrap();
        save_device_key(&conn, &DeviceKey::generate().unwrap(), 2).unwrap();
        let loaded = load_device_key(&conn).unwrap().unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let one = (ChangeHash([1; 32]), key.sign(&ChangeHash([1; 32])));
        let two = (ChangeHash([2; 32]), key.sign(&ChangeHash([2; 32])));
        save_signatures(&conn, "plan", &[one, two]).unwrap();
        save_signatures(&conn, "plan", &[one]).unwrap();
        assert_eq!(
            load_signatures(&conn, "plan", Some(&[two.0, ChangeHash([3; 32])])).unwrap(),
            vec![two]
        );
        assert_eq!(load_signatures(&conn, "plan", None).unwrap().len(), 2);
        assert!(load_signatures(&conn, "other", None).unwrap().is_empty());
    }
}
