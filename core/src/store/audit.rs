//! The audit trail's table: appends that extend the hash chain, filtered listing, and a walk of
//! the chain that finds removed and altered rows (see migration 009_audit and `crate::audit`).

use rusqlite::{params, Connection, OptionalExtension, Row};
use sha2::{Digest, Sha256};

use crate::audit::{AuditEntry, AuditFilter, AuditKind, AuditVerification, NewAuditEntry};
use crate::error::{Error, Result};

/// The previous hash of the first row.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `store_meta` key of the chain's head, `SEQ:HASH`.
const HEAD_KEY: &str = "audit_head";

/// The fields a row's hash covers, in a fixed order.
struct Link<'a> {
    seq: i64,
    at: i64,
    kind: &'a str,
    outcome: &'a str,
    device_id: Option<&'a str>,
    member_id: Option<&'a str>,
    plan_id: Option<&'a str>,
    remote: Option<&'a str>,
    detail: Option<&'a str>,
    prev_hash: &'a str,
}

impl Link<'_> {
    /// Hex SHA-256 of the fields as one JSON array (unambiguous: every string is quoted).
    fn hash(&self) -> String {
        let fields = serde_json::json!([
            self.seq,
            self.at,
            self.kind,
            self.outcome,
            self.device_id,
            self.member_id,
            self.plan_id,
            self.remote,
            self.detail,
            self.prev_hash
        ]);
        hex::encode(Sha256::digest(fields.to_string().as_bytes()))
    }
}

/// The device and member a token hash belongs to (in `plan`, when given).
fn holder_of(
    conn: &Connection,
    token_hash: &str,
    plan: Option<&str>,
) -> Result<Option<(String, Option<String>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT device_id, member_id FROM plan_devices
             WHERE token_hash = ?1 AND (?2 IS NULL OR plan_id = ?2)
             ORDER BY member_id IS NULL, plan_id LIMIT 1",
        )?
        .query_row(params![token_hash, plan], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?)
}

fn member_of(conn: &Connection, device: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT member_id FROM plan_devices
             WHERE device_id = ?1 AND member_id IS NOT NULL LIMIT 1",
        )?
        .query_row([device], |row| row.get(0))
        .optional()?)
}

/// Appends `entry` at time `at` (UTC ms) as the next link of the chain; returns its number.
/// Run it inside the transaction of the write it records, or alone (its own statement).
pub fn append_audit(conn: &Connection, entry: &NewAuditEntry, at: i64) -> Result<i64> {
    let mut device = entry.device_id.clone();
    let mut member = entry.member_id.clone();
    if let (None, Some(hash)) = (&device, &entry.token_hash) {
        if let Some((found, found_member)) = holder_of(conn, hash, entry.plan_id.as_deref())? {
            device = Some(found);
            member = member.or(found_member);
        }
    }
    if let (Some(device), None) = (&device, &member) {
        member = member_of(conn, device)?;
    }
    let (last_seq, prev_hash) = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?
        .unwrap_or((0, GENESIS.to_string()));
    let seq = last_seq + 1;
    let link = Link {
        seq,
        at,
        kind: entry.kind.as_str(),
        outcome: &entry.outcome,
        device_id: device.as_deref(),
        member_id: member.as_deref(),
        plan_id: entry.plan_id.as_deref(),
        remote: entry.remote.as_deref(),
        detail: entry.detail.as_deref(),
        prev_hash: &prev_hash,
    };
    let hash = link.hash();
    conn.prepare_cached(
        "INSERT INTO audit_log
            (seq, at, kind, outcome, device_id, member_id, plan_id, remote, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        seq,
        at,
        link.kind,
        link.outcome,
        link.device_id,
        link.member_id,
        link.plan_id,
        link.remote,
        link.detail,
        prev_hash,
        hash
    ])?;
    conn.prepare_cached(
        "INSERT INTO store_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![HEAD_KEY, format!("{seq}:{hash}")])?;
    Ok(seq)
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<(AuditEntry, String, String)> {
    let kind: String = row.get(2)?;
    Ok((
        AuditEntry {
            seq: row.get(0)?,
            at: row.get(1)?,
            kind: AuditKind::parse(&kind).unwrap_or(AuditKind::Admin),
            outcome: row.get(3)?,
            device_id: row.get(4)?,
            member_id: row.get(5)?,
            plan_id: row.get(6)?,
            remote: row.get(7)?,
            detail: row.get(8)?,
            hash: row.get(10)?,
        },
        kind,
        row.get(9)?,
    ))
}

const COLUMNS: &str =
    "seq, at, kind, outcome, device_id, member_id, plan_id, remote, detail, prev_hash, hash";

/// Entries matching `filter`, oldest first.
pub fn list_audit(conn: &Connection, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE (?1 IS NULL OR plan_id = ?1) AND (?2 IS NULL OR device_id = ?2)
           AND (?3 IS NULL OR at >= ?3)
         ORDER BY seq"
    ))?;
    let rows = statement.query_map(
        params![filter.plan_id, filter.device_id, filter.since],
        entry_from_row,
    )?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.0);
    }
    Ok(out)
}

/// Walks the whole chain: every row must follow the one before it (numbers without gaps, the
/// previous hash matching), hash to what it holds, and the last one must be the recorded head.
pub fn verify_audit(conn: &Connection) -> Result<AuditVerification> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
    let rows = statement.query_map([], entry_from_row)?;
    let mut report = AuditVerification::default();
    let mut expected_seq = 1;
    let mut expected_prev = GENESIS.to_string();
    for row in rows {
        let (entry, kind, prev_hash) = row?;
        report.entries += 1;
        if entry.seq != expected_seq {
            report.problems.push(format!(
                "entries {expected_seq} to {} are missing",
                entry.seq - 1
            ));
        }
        if prev_hash != expected_prev {
            report.problems.push(format!(
                "entry {} does not follow the entry before it (one was removed or altered)",
                entry.seq
            ));
        }
        let link = Link {
            seq: entry.seq,
            at: entry.at,
            kind: &kind,
            outcome: &entry.outcome,
            device_id: entry.device_id.as_deref(),
            member_id: entry.member_id.as_deref(),
            plan_id: entry.plan_id.as_deref(),
            remote: entry.remote.as_deref(),
            detail: entry.detail.as_deref(),
            prev_hash: &prev_hash,
        };
        if link.hash() != entry.hash {
            report.problems.push(format!(
                "entry {} was altered after it was written",
                entry.seq
            ));
        }
        expected_seq = entry.seq + 1;
        expected_prev = entry.hash.clone();
        report.head = Some(entry.hash);
    }
    let head: Option<String> = conn
        .query_row(
            "SELECT value FROM store_meta WHERE key = ?1",
            [HEAD_KEY],
            |row| row.get(0),
        )
        .optional()?;
    let found = report
        .head
        .as_ref()
        .map(|hash| format!("{}:{hash}", expected_seq - 1));
    if head != found {
        let recorded = head.as_deref().unwrap_or("none");
        let recorded_seq = recorded.split(':').next().unwrap_or(recorded);
        report.problems.push(format!(
            "the chain ends at entry {} but the recorded head is entry {recorded_seq} \
             (entries at the end were removed or altered)",
            expected_seq - 1
        ));
    }
    Ok(report)
}

/// Refuses a kind name the trail does not know (for filters typed by people).
pub fn parse_kind(name: &str) -> Result<AuditKind> {
    AuditKind::parse(name).ok_or_else(|| Error::invalid("audit kind", format!("unknown: {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;

    fn conn() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn
    }

    fn entry(kind: AuditKind, plan: &str) -> NewAuditEntry {
        NewAuditEntry {
            plan_id: Some(plan.to_string()),
            remote: Some("127.0.0.1:5000".into()),
            ..NewAuditEntry::new(kind, "ok")
        }
    }

    fn filled() -> Connection {
        let conn = conn();
        for (i, kind) in AuditKind::ALL.into_iter().enumerate() {
            append_audit(&conn, &entry(kind, &format!("plan-{i}")), 1_000 + i as i64).unwrap();
        }
        conn
    }

    fn unprotect(conn: &Connection) {
        conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_filters_select() {
        let conn = filled();
        let report = verify_audit(&conn).unwrap();
        assert_eq!(report.entries, 8);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let all = list_audit(&conn, &AuditFilter::default()).unwrap();
        assert_eq!(all.len(), 8);
        assert_eq!(report.head.as_deref(), Some(all[7].hash.as_str()));
        let one = AuditFilter {
            plan_id: Some("plan-3".into()),
            ..AuditFilter::default()
        };
        assert_eq!(list_audit(&conn, &one).unwrap()[0].kind, AuditKind::Refusal);
        let since = AuditFilter {
            since: Some(1_006),
            ..AuditFilter::default()
        };
        assert_eq!(list_audit(&conn, &since).unwrap().len(), 2);
    }

    #[test]
    fn the_table_refuses_updates_and_deletes() {
        let conn = filled();
        assert!(conn
            .execute("UPDATE audit_log SET outcome = 'denied' WHERE seq = 2", [])
            .is_err());
        assert!(conn
            .execute("DELETE FROM audit_log WHERE seq = 2", [])
            .is_err());
        assert!(verify_audit(&conn).unwrap().problems.is_empty());
    }

    #[test]
    fn a_deleted_row_is_found() {
        for seq in [1, 4, 8] {
            let conn = filled();
            unprotect(&conn);
            conn.execute("DELETE FROM audit_log WHERE seq = ?1", [seq])
                .unwrap();
            let report = verify_audit(&conn).unwrap();
            assert!(!report.problems.is_empty(), "deleting {seq} went unseen");
        }
    }

    #[test]
    fn an_edited_row_is_found() {
        for column in ["outcome", "device_id", "remote", "at"] {
            let conn = filled();
            unprotect(&conn);
            conn.execute(
                &format!("UPDATE audit_log SET {column} = '1' WHERE seq = 5"),
                [],
            )
            .unwrap();
            let report = verify_audit(&conn).unwrap();
            assert!(
                report.problems.iter().any(|p| p.contains("entry 5")),
                "editing {column}: {:?}",
                report.problems
            );
        }
    }

    #[test]
    fn a_token_hash_finds_the_device_and_member_and_is_not_stored() {
        let conn = conn();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO plans (plan_id, title, review_on, client_name, goal_count, updated_at)
                 VALUES ('p1', 't', NULL, 'c', 0, 0);
             INSERT INTO plan_devices (plan_id, device_id, token_hash, revoked, member_id)
                 VALUES ('p1', 'dev-1', 'feedface', 0, 'mem-1');",
        )
        .unwrap();
        let entry = NewAuditEntry {
            token_hash: Some("feedface".into()),
            ..NewAuditEntry::new(AuditKind::Auth, "ok")
        };
        append_audit(&conn, &entry, 5).unwrap();
        let stored = &list_audit(&conn, &AuditFilter::default()).unwrap()[0];
        assert_eq!(stored.device_id.as_deref(), Some("dev-1"));
        assert_eq!(stored.member_id.as_deref(), Some("mem-1"));
        let dump: String = conn
            .query_row(
                "SELECT group_concat(kind || outcome || coalesce(device_id, '') ||
                    coalesce(member_id, '') || coalesce(detail, ''), ',') FROM audit_log",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(!dump.contains("feedface"), "{dump}");
    }
}
