//! The audit trail's entries: who reached which plan, when, from where, and how it went (see
//! `SECURITY.md`, Audit trail, and `docs/operations.md`). The store appends them in one
//! hash chain; [`crate::Alliance::verify_audit`] walks it.
//!
//! An entry holds ids, times, a remote address and an outcome: never a token, a token hash or
//! plan content.

use serde::Serialize;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A connection presented its credentials: `outcome` is `ok` or `denied`.
    Auth,
    /// The relay sent a device changes of a plan (once per plan and connection).
    Read,
    /// A device's changes to a plan were stored (once per plan and connection).
    Write,
    /// A connection was closed for breaking a rule (`detail` names the rule).
    Refusal,
    /// The role rules refused changes a device sent (`detail` names the rules).
    ChangeRefused,
    /// The store learned that a device of a plan holds a (new) relay token.
    TokenIssued,
    /// The store learned that a device of a plan was revoked.
    TokenRevoked,
    /// An operator acted on the relay (`detail` names the action).
    Admin,
}

impl AuditKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [AuditKind; 8] = [
        AuditKind::Auth,
        AuditKind::Read,
        AuditKind::Write,
        AuditKind::Refusal,
        AuditKind::ChangeRefused,
        AuditKind::TokenIssued,
        AuditKind::TokenRevoked,
        AuditKind::Admin,
    ];

    /// The name stored and printed (`auth`, `read`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Auth => "auth",
            AuditKind::Read => "read",
            AuditKind::Write => "write",
            AuditKind::Refusal => "refusal",
            AuditKind::ChangeRefused => "change_refused",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::Admin => "admin",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// An entry to append. The store adds the time, the number and the hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub kind: AuditKind,
    /// `ok`, `denied`, `refused`, `stored`, … (short, fixed words).
    pub outcome: String,
    pub device_id: Option<String>,
    pub member_id: Option<String>,
    pub plan_id: Option<String>,
    /// The peer's address, `IP:port`.
    pub remote: Option<String>,
    /// A rule or action name; never content.
    pub detail: Option<String>,
    /// Used only to find the device and member the token belongs to (when they are not
    /// given); never stored.
    pub token_hash: Option<String>,
}

impl NewAuditEntry {
    /// An entry of `kind` with `outcome` and nothing else yet.
    pub fn new(kind: AuditKind, outcome: &str) -> Self {
        Self {
            kind,
            outcome: outcome.to_string(),
            device_id: None,
            member_id: None,
            plan_id: None,
            remote: None,
            detail: None,
            token_hash: None,
        }
    }
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// 1, 2, 3… in the order appended.
    pub seq: i64,
    /// When it was appended, UTC milliseconds.
    pub at: i64,
    pub kind: AuditKind,
    pub outcome: String,
    pub device_id: Option<String>,
    pub member_id: Option<String>,
    pub plan_id: Option<String>,
    pub remote: Option<String>,
    pub detail: Option<String>,
    /// This entry's link of the chain (hex SHA-256).
    pub hash: String,
}

/// Which entries to list (all when every field is None).
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub plan_id: Option<String>,
    pub device_id: Option<String>,
    /// Only entries at or after this time, UTC milliseconds.
    pub since: Option<i64>,
}

/// What a walk of the chain found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Rows walked.
    pub entries: u64,
    /// The last row's hash: kept outside the relay (a log, a ticket), it proves later that
    /// no row up to it was changed.
    pub head: Option<String>,
    /// Each break found (a missing, altered or reordered row); empty when the chain holds.
    pub problems: Vec<String>,
}
