//! The read model's encoding: a plan as read from its document, kept in SQLite so that
//! opening a plan to read it needs no Automerge load (docs/design.md, Read model).
//!
//! A stored model is used only while the document heads it was read from are the document's
//! heads, and while its [`FORMAT`] is the running code's. The format is a hash of the sources
//! that decide what a plan reads to, so a release that changes how plans are read never uses
//! a model an older release wrote: it reads the document again and keeps the new model.

use crate::clinical_time;
use crate::clock;
use crate::model::Plan;

/// FNV-1a (64-bit) over `parts` in order; the offset basis and prime are FNV's published
/// constants (Fowler, Noll, Vo: "FNV Hash", IETF draft-eastlake-fnv).
const fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut p = 0;
    while p < parts.len() {
        let bytes = parts[p].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        p += 1;
    }
    hash
}

/// The read model format of this build: changes whenever the model types, the plan schema or
/// the reading code change (their sources are hashed at compile time).
pub const FORMAT: i64 = fnv1a(&[
    include_str!("read.rs"),
    include_str!("schema.rs"),
    include_str!("hash.rs"),
    include_str!("../model/mod.rs"),
    include_str!("../model/ids.rs"),
    include_str!("../model/gas.rs"),
]) as i64;

/// The bytes kept for `plan` (JSON of the model); None if it does not encode, which the
/// model's types never make happen (then nothing is kept and reads go to the document).
pub fn encode(plan: &Plan) -> Option<Vec<u8>> {
    serde_json::to_vec(plan).ok()
}

/// The plan kept as `bytes`, settled with this device's clock now (see [`settle`]); None when
/// the bytes do not decode (the caller reads the document instead).
pub fn decode(bytes: &[u8]) -> Option<Plan> {
    let mut plan: Plan = serde_json::from_slice(bytes).ok()?;
    settle(&mut plan);
    Some(plan)
}

/// Derives what depends on the reader's clock (future-dated check-ins, latest GAS levels, the
/// T-score, the client's today) anew. [`clinical_time::settle`] overwrites every field it
/// derives, so a model kept yesterday reads as one read from its document today.
pub fn settle(plan: &mut Plan) {
    clinical_time::settle(plan, clock::now_ms(), clock::local_offset_min);
}
