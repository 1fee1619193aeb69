//! Building blocks of a per-member plan index document — an alternative design for discovery,
//! not wired in: devices find their plans through the relay's `peer` answer instead (see
//! `docs/sync.md`, Discovery, for the choice).
//!
//! The index is an ordinary Automerge document, synced like a plan, whose id every device of
//! the member derives from the member id alone:
//!
//! ```text
//! root { schema: 1, kind: "member-index", "plan:<plan_id>": <added_at ms>, … }
//! ```
//!
//! Each plan is its own root key holding a scalar, so two counselors enrolling the member at
//! the same time (even both creating the index) never clash; entries are only ever added.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ScalarValue, ROOT};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::doc_id::DocumentId;
use super::error::SyncError;

/// Domain separation for index ids: no plan id can collide with an index id by construction.
const INDEX_ID_DOMAIN: &[u8] = b"alliance/member-index/v1";

/// The document id of a member's plan index.
pub fn member_index_id(member: Uuid) -> DocumentId {
    let digest = Sha256::new()
        .chain_update(INDEX_ID_DOMAIN)
        .chain_update(member.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    DocumentId::from_bytes(bytes)
}

fn invalid(reason: &str) -> SyncError {
    SyncError::InvalidSyncData(format!("member index: {reason}"))
}

const PLAN_KEY_PREFIX: &str = "plan:";

/// Records that the index's member is enrolled in `plan` (idempotent).
pub fn add_plan(index: &mut AutoCommit, plan: Uuid, at_ms: i64) -> Result<(), SyncError> {
    let fail = |error: automerge::AutomergeError| invalid(&error.to_string());
    if index.get(ROOT, "kind").map_err(fail)?.is_none() {
        index.put(ROOT, "schema", 1_i64).map_err(fail)?;
        index.put(ROOT, "kind", "member-index").map_err(fail)?;
    }
    let key = format!("{PLAN_KEY_PREFIX}{}", plan.hyphenated());
    if index.get(ROOT, key.as_str()).map_err(fail)?.is_none() {
        index
            .put(ROOT, key.as_str(), ScalarValue::Int(at_ms))
            .map_err(fail)?;
    }
    Ok(())
}

/// The plans an index lists, sorted; malformed keys are skipped.
pub fn plans(index: &impl ReadDoc) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = index
        .keys(ROOT)
        .filter_map(|key| {
            key.strip_prefix(PLAN_KEY_PREFIX)
                .and_then(|id| Uuid::parse_str(id).ok())
        })
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ids_are_stable_and_distinct_per_member() {
        let member = Uuid::parse_str("6f1c1c84-0f5e-4b8e-9d7a-2c3b4a5d6e7f").unwrap();
        assert_eq!(member_index_id(member), member_index_id(member));
        assert_ne!(member_index_id(member), member_index_id(Uuid::new_v4()));
        assert_ne!(member_index_id(member), DocumentId::from_uuid(member));
    }

    #[test]
    fn concurrent_enrollments_merge_even_when_both_create_the_index() {
        let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut one = AutoCommit::new();
        let mut two = AutoCommit::new();
        add_plan(&mut one, first, 1).unwrap();
        add_plan(&mut two, second, 2).unwrap();
        add_plan(&mut two, first, 3).unwrap();
        one.merge(&mut two).unwrap();
        add_plan(&mut one, third, 4).unwrap();
        let mut expected = vec![first, second, third];
        expected.sort();
        assert_eq!(plans(&one), expected);
        assert!(plans(&AutoCommit::new()).is_empty());
    }
}
