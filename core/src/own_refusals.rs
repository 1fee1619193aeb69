//! A peer refused some of this device's own changes: set them aside (see
//! [`Alliance::own_changes_refused`]) and say which ones the user should hear of. Shared by
//! sync through a relay (its refused notice) and in-process sync (the receiving store's receipt).

use std::collections::HashSet;

use crate::alliance::Alliance;
use crate::error::Result;
use crate::model::PlanId;
use crate::rules::remote::BUILDS_ON_REFUSED;

/// Hands `refused` (change hash in hex, rule) to `store` and returns, as (hash, rule), what is
/// now out of the plan on this device: each of its own changes refused for a rule of its own,
/// and each later own change that could not be replayed (rule [`BUILDS_ON_REFUSED`]). Later
/// changes replayed as new ones are not reported: they still arrive. Hashes that are not this
/// device's changes in the plan, or were set aside before, give nothing.
pub(crate) fn set_aside(
    store: &Alliance,
    plan: PlanId,
    refused: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let set_aside = store.own_changes_refused(plan, refused)?;
    let mut reported = Vec::new();
    let mut seen = HashSet::new();
    for (hash, rule) in refused {
        if rule == BUILDS_ON_REFUSED || !seen.insert(hash.as_str()) {
            continue;
        }
        if set_aside.iter().any(|s| s.change_hash == *hash) {
            reported.push((hash.clone(), rule.clone()));
        }
    }
    for change in &set_aside {
        if change.replayed_as.is_none() && !seen.contains(change.change_hash.as_str()) {
            reported.push((change.change_hash.clone(), BUILDS_ON_REFUSED.to_owned()));
        }
    }
    Ok(reported)
}
