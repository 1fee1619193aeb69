//! Numbered SQL migrations, versioned by `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Every migration, in order; migration `i` takes the schema from version `i` to `i + 1`.
/// A shipped migration is never edited: add a new file instead.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_init.sql"),
    include_str!("migrations/002_refusals.sql"),
    include_str!("migrations/003_store_meta.sql"),
    include_str!("migrations/004_plan_devices.sql"),
    include_str!("migrations/005_device_tokens.sql"),
    include_str!("migrations/006_document_heads.sql"),
    include_str!("migrations/007_set_aside_changes.sql"),
    include_str!("migrations/008_plan_read_models.sql"),
    include_str!("migrations/009_audit.sql"),
    include_str!("migrations/010_authorship.sql"),
    include_str!("migrations/011_unsigned_changes.sql"),
    include_str!("migrations/012_document_snapshots.sql"),
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Brings the database up to [`VERSION`] in one transaction; refuses a newer database.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, VERSION)
}

/// Applies migrations up to `target` (tests use it to build old databases).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let found = user_version(conn)?;
    if found > VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    if found >= target {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target as usize) {
        if (index as i64) >= found {
            tx.execute_batch(sql)?;
        }
    }
    tx.pragma_update(None, "user_version", target)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(conn: &Connection) -> Vec<(String, String)> {
        let mut statement = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migrating_from_every_version_matches_a_fresh_database() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        for start in 0..VERSION {
            let mut old = Connection::open_in_memory().unwrap();
            migrate_to(&mut old, start).unwrap();
            assert_eq!(user_version(&old).unwrap(), start);
            migrate(&mut old).unwrap();
            assert_eq!(user_version(&old).unwrap(), VERSION);
            assert_eq!(schema_of(&old), schema_of(&fresh));
        }
    }

    /// Migration 012 moves every snapshot into its own row: what a document reads as, its
    /// sizes and its heads are the same before and after, and the next write appends to it.
    #[test]
    fn moving_snapshots_apart_keeps_every_document_as_it_was() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 11).unwrap();
        for (doc, snapshot, chunk) in [
            ("a", vec![1u8; 30_000], vec![2u8; 40]),
            ("b", vec![3; 9], vec![]),
        ] {
            conn.execute(
                "INSERT INTO documents (doc_id, snapshot, snapshot_heads, heads, chunk_bytes, updated_at)
                 VALUES (?1, ?2, x'aa', x'bb', ?3, 7)",
                rusqlite::params![doc, snapshot, chunk.len() as i64],
            )
            .unwrap();
            if !chunk.is_empty() {
                conn.execute(
                    "INSERT INTO chunks (doc_id, seq, bytes) VALUES (?1, 1, ?2)",
                    rusqlite::params![doc, chunk],
                )
                .unwrap();
            }
        }
        migrate(&mut conn).unwrap();
        let a = crate::store::documents::load_document(&conn, "a")
            .unwrap()
            .unwrap();
        assert_eq!(a.bytes, [vec![1u8; 30_000], vec![2u8; 40]].concat());
        assert_eq!((a.snapshot_len, a.chunk_bytes), (30_000, 40));
        let sizes = crate::store::documents::document_sizes(&conn, "b")
            .unwrap()
            .unwrap();
        assert_eq!(
            (sizes.snapshot_len, sizes.chunk_bytes, sizes.chunk_count),
            (9, 0, 0)
        );
        let heads =
            crate::store::documents::document_heads(&conn, &["a".into(), "b".into()]).unwrap();
        assert!(
            heads.iter().all(|(_, h)| h.as_deref() == Some(&[0xbb][..])),
            "{heads:?}"
        );
        crate::store::documents::append_chunk(&conn, "b", &[4, 4], &[0xcc], 8, &[]).unwrap();
        let b = crate::store::documents::load_document(&conn, "b")
            .unwrap()
            .unwrap();
        assert_eq!(b.bytes, vec![3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4]);
    }

    #[test]
    fn a_newer_database_is_refused_and_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, Error::SchemaTooNew { found, .. } if found == VERSION + 1));
        assert_eq!(user_version(&conn).unwrap(), VERSION + 1);
        assert!(schema_of(&conn).is_empty());
    }
}
