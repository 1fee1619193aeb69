//! This device's signing key, the change signatures kept beside each plan's document
//! (migration 010; `crate::authorship`), and this device's changes waiting for their
//! signature (migrations 011 and 012).

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
/// `doc_id` is None; as (document id, change hash). They are listed in `unsigned_changes` and
/// in the `unsigned` column of the chunks local edits appended (migration 012).
pub fn load_unsigned(
    conn: &Connection,
    doc_id: Option<&str>,
) -> Result<Vec<(String, automerge::ChangeHash)>> {
    let mut out = Vec::new();
    let mut listed = conn.prepare_cached(
        "SELECT doc_id, change_hash FROM unsigned_changes WHERE ?1 IS NULL OR doc_id = ?1",
    )?;
    let rows = listed.query_map(params![doc_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (doc, hash) = row?;
        // A row is written only from a change hash; one of another length is not a change.
        if let Ok(hash) = automerge::ChangeHash::try_from(hash.as_slice()) {
            out.push((doc, hash));
        }
    }
    let mut in_chunks = conn.prepare_cached(
        "SELECT doc_id, unsigned FROM chunks
         WHERE unsigned IS NOT NULL AND (?1 IS NULL OR doc_id = ?1)",
    )?;
    let rows = in_chunks.query_map(params![doc_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (doc, hashes) = row?;
        for hash in hashes.chunks_exact(32) {
            if let Ok(hash) = automerge::ChangeHash::try_from(hash) {
                out.push((doc.clone(), hash));
            }
        }
    }
    Ok(out)
}

/// Whether anything of this device waits for its signature in the plan `doc_id`.
pub fn has_unsigned(conn: &Connection, doc_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM unsigned_changes WHERE doc_id = ?1)
                 OR EXISTS (SELECT 1 FROM chunks WHERE doc_id = ?1 AND unsigned IS NOT NULL)",
        )?
        .query_row([doc_id], |row| row.get(0))?)
}

/// Records the signatures of a plan's waiting changes and empties its waiting list. The
/// caller read that list ([`load_unsigned`]) in the same write transaction, so nothing was
/// added to it meanwhile.
pub fn save_signed(conn: &Connection, doc_id: &str, signatures: &[Record]) -> Result<()> {
    save_signatures(conn, doc_id, signatures)?;
    conn.prepare_cached("DELETE FROM unsigned_changes WHERE doc_id = ?1")?
        .execute([doc_id])?;
    conn.prepare_cached(
        "UPDATE chunks SET unsigned = NULL WHERE doc_id = ?1 AND unsigned IS NOT NULL",
    )?
    .execute([doc_id])?;
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

    /// What waits for its signature in an appended chunk keeps waiting when compaction merges
    /// that chunk (listed apart then), is found per plan and for every plan, and is cleared
    /// by recording the signatures; a received chunk lists nothing.
    #[test]
    fn waiting_changes_survive_compaction_and_clear_when_signed() {
        use crate::store::documents::{append_chunk, insert_document, replace_snapshot};
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let (one, two, three) = (
            ChangeHash([1; 32]),
            ChangeHash([2; 32]),
            ChangeHash([3; 32]),
        );
        for doc in ["plan", "other"] {
            insert_document(&conn, doc, &[0], &[0], 1).unwrap();
        }
        append_chunk(&conn, "plan", &[1], &[1], 2, &[one, two]).unwrap();
        append_chunk(&conn, "plan", &[2], &[2], 3, &[]).unwrap();
        append_chunk(&conn, "plan", &[3], &[3], 4, &[three]).unwrap();
        save_unsigned(&conn, "other", &[three]).unwrap();
        let waiting = |doc| {
            let mut hashes: Vec<_> = load_unsigned(&conn, doc)
                .unwrap()
                .into_iter()
                .map(|(doc, hash)| (doc, hash.0[0]))
                .collect();
            hashes.sort();
            hashes
        };
        let plan = |n: u8| ("plan".to_string(), n);
        assert_eq!(waiting(Some("plan")), vec![plan(1), plan(2), plan(3)]);
        // Compaction merges the first two chunks; their waiting change moves apart.
        replace_snapshot(&conn, "plan", &[9], &[2], Some(5), 2).unwrap();
        assert_eq!(waiting(Some("plan")), vec![plan(1), plan(2), plan(3)]);
        assert_eq!(waiting(None).len(), 4);
        assert!(has_unsigned(&conn, "plan").unwrap());
        let key = DeviceKey::generate().unwrap();
        let signed: Vec<Record> = [one, two, three].map(|h| (h, key.sign(&h))).to_vec();
        save_signed(&conn, "plan", &signed).unwrap();
        assert!(waiting(Some("plan")).is_empty());
        assert!(!has_unsigned(&conn, "plan").unwrap());
        assert_eq!(load_signatures(&conn, "plan", None).unwrap().len(), 3);
        // Another plan's waiting change is its own.
        assert_eq!(waiting(None), vec![("other".to_string(), 3)]);
    }
}
