//! The content hash that agreements are bound to.

use sha2::{Digest, Sha256};

use crate::model::{GasScale, Objective};

/// Hash of what counselor and client agree to: the client's words, the clinical statement,
/// the objectives (by id) and the GAS level descriptions. Status, check-ins and weights are
/// not part of it: they change without changing what was agreed.
pub fn content_hash(
    client_words: &str,
    clinical_statement: &str,
    objectives: &[Objective],
    gas: &GasScale,
) -> String {
    let mut objectives: Vec<_> = objectives
        .iter()
        .map(|o| {
            serde_json::json!([
                o.objective_id.to_string(),
                o.text,
                o.measure,
                o.target,
                o.unit,
                o.due_on
            ])
        })
        .collect();
    objectives.sort_by_key(|o| o[0].as_str().map(str::to_owned));
    let canonical = serde_json::json!({
        "client_words": client_words,
        "clinical_statement": clinical_statement,
        "objectives": objectives,
        "gas_levels": gas.levels,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    hex::encode(&digest[..16])
}
