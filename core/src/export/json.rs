//! The Alliance plan file: a plan with its whole history as JSON. It carries the plan as read
//! (for people and other tools), the history, and the plan's Automerge document with every
//! change, from which an import rebuilds the plan exactly.

use automerge::{Automerge, Change};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{instant, PART2_NOTICE};
use crate::error::{Error, Result};
use crate::model::{HistoryEntry, Plan, PlanId};
use crate::plan::{history, read};

/// What the `format` field of a plan file says.
pub const FORMAT: &str = "alliance-plan";
/// The version of the plan file this build writes and reads.
pub const VERSION: u32 = 1;

/// A plan file as written.
#[derive(Serialize)]
struct PlanFileOut<'a> {
    format: &'static str,
    version: u32,
    exported_at: String,
    notice: &'static str,
    plan: &'a Plan,
    history: &'a [HistoryEntry],
    /// The Automerge document (`save()` bytes), hex.
    document: String,
    /// Each change's signature by its author's key (`crate::authorship::carrier` records),
    /// hex: an import lets in a change of a device with a recorded key only with it.
    signatures: String,
}

/// A plan file as read: the plan stays JSON, to be compared with what the document rebuilds.
#[derive(Deserialize)]
struct PlanFileIn {
    format: String,
    version: u32,
    plan: Value,
    history: Vec<HistoryEntry>,
    document: String,
    /// Absent in files written before signed changes.
    #[serde(default)]
    signatures: String,
}

/// A checked plan file: the plan's id and the changes that make it.
pub struct DecodedPlan {
    pub plan_id: PlanId,
    pub changes: Vec<Change>,
    /// The signatures the file carries, by change hash.
    pub signatures: crate::rules::remote::Signatures,
}

/// Writes a plan file. `history` lists the document's changes; changes refused from peers are
/// left out (they are this store's records, not part of the plan).
pub fn encode(
    plan: &Plan,
    history: &[HistoryEntry],
    document: &[u8],
    signatures: &[crate::authorship::carrier::Record],
    exported_at: i64,
) -> Result<String> {
    let history: Vec<HistoryEntry> = history.iter().filter(|e| !e.refused).cloned().collect();
    let file = PlanFileOut {
        format: FORMAT,
        version: VERSION,
        exported_at: instant(exported_at)?,
        notice: PART2_NOTICE,
        plan,
        history: &history,
        document: hex::encode(document),
        signatures: hex::encode(crate::authorship::carrier::encode_records(signatures)),
    };
    serde_json::to_string_pretty(&file)
        .map_err(|e| Error::Malformed(format!("cannot write the plan file: {e}")))
}

fn invalid(reason: &str) -> Error {
    Error::invalid("plan file", reason)
}

/// Refuses a document whose chunks claim more operations than a plan may hold
/// ([`crate::budgets`]), read from their headers before Automerge decodes any of them.
fn check_expansion(bytes: &[u8]) -> Result<()> {
    use crate::plan::expansion::{outline, Outline};
    let budgets = crate::budgets::Budgets::default();
    let mut total: u64 = 0;
    for chunk in
        crate::plan::chunks::split(bytes).map_err(|_| invalid("the document cannot be loaded"))?
    {
        let operations = match outline(chunk, budgets.operations_per_document)
            .map_err(|_| invalid("the document cannot be loaded"))?
        {
            Outline::Change(change) if change.operations > budgets.operations_per_change => {
                return Err(invalid("a change holds more operations than a change may"));
            }
            Outline::Change(change) => change.operations,
            Outline::Many { operations } => operations,
        };
        total = total.saturating_add(operations);
        if total > budgets.operations_per_document {
            return Err(invalid(
                "the document holds more operations than a plan may",
            ));
        }
    }
    Ok(())
}

/// Reads a plan file and checks that its document rebuilds the plan and the history it states.
/// The changes are not judged here: the store judges them as it imports them.
pub fn decode(text: &str) -> Result<DecodedPlan> {
    let file: PlanFileIn =
        serde_json::from_str(text).map_err(|_| invalid("not an Alliance plan file"))?;
    if file.format != FORMAT {
        return Err(invalid("not an Alliance plan file"));
    }
    if file.version != VERSION {
        return Err(invalid("written by another version of Alliance"));
    }
    let bytes =
        hex::decode(file.document.trim()).map_err(|_| invalid("the document is not hex"))?;
    check_expansion(&bytes)?;
    // Automerge panics on some malformed documents (an operation counter past 32 bits): read
    // as a document that cannot be loaded. Loading touches nothing shared.
    let doc = std::panic::catch_unwind(|| Automerge::load(&bytes))
        .ok()
        .and_then(|loaded| loaded.ok())
        .ok_or_else(|| invalid("the document cannot be loaded"))?;
    let plan = read::read_plan(&doc).map_err(|_| invalid("the document holds no plan"))?;
    // The plan as the document rebuilds it must be the plan the file states (compared as
    // JSON written and read the same way, so numbers compare exactly).
    let rebuilt = serde_json::to_string(&plan)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .ok_or_else(|| invalid("the plan cannot be written"))?;
    if rebuilt != file.plan {
        return Err(invalid("the document does not match the plan it states"));
    }
    // Compared by hash: the order of a history is the order a document loads its changes in.
    let by_hash = |mut entries: Vec<HistoryEntry>| {
        entries.sort_by(|a, b| a.hash.cmp(&b.hash));
        entries
    };
    if by_hash(history::history(&doc)) != by_hash(file.history) {
        return Err(invalid("the document does not match the history it states"));
    }
    let changes = doc.get_changes(&[]);
    let records = hex::decode(file.signatures.trim())
        .ok()
        .and_then(|bytes| crate::authorship::carrier::decode_records(&bytes).ok())
        .ok_or_else(|| invalid("the signatures are damaged"))?;
    Ok(DecodedPlan {
        plan_id: plan.plan_id,
        changes,
        signatures: records.into_iter().collect(),
    })
}
