//! P2: opening a plan with a year of check-ins from SQLite and reading it into the model,
//! against a bare `Automerge::load` of the bytes stored for it. Each API sample opens a fresh
//! store, so nothing is cached from the sample before.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use alliance_core::{Alliance, PlanId};
use automerge::Automerge;
use rusqlite::{Connection, OpenFlags};

use crate::fixture::Result;

const SAMPLES: usize = 41;
const WARM_UP: usize = 3;

pub struct OpenPlan {
    pub api: Vec<Duration>,
    pub bare: Vec<Duration>,
    /// Bytes stored for the plan (snapshot and chunks), what the bare load reads.
    pub stored_bytes: usize,
    /// Bare loads of `save()` of the same document (one compact chunk), for scale.
    pub bare_saved: Vec<Duration>,
    pub saved_bytes: usize,
}

/// The plan's stored bytes as the store keeps them: snapshot followed by chunks.
fn stored_bytes(path: &Path, plan: PlanId) -> Result<Vec<u8>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let doc_id = plan.to_string();
    let mut bytes: Vec<u8> = conn.query_row(
        "SELECT snapshot FROM document_snapshots WHERE doc_id = ?1",
        [&doc_id],
        |row| row.get(0),
    )?;
    let mut statement = conn.prepare("SELECT bytes FROM chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let mut rows = statement.query([&doc_id])?;
    while let Some(row) = rows.next()? {
        bytes.extend_from_slice(row.get_ref(0)?.as_blob()?);
    }
    Ok(bytes)
}

pub fn measure(path: &Path, plan: PlanId) -> Result<OpenPlan> {
    let bytes = stored_bytes(path, plan)?;
    let saved = Alliance::open(path)?.saved_document(plan)?;
    let mut out = OpenPlan {
        api: Vec::new(),
        bare: Vec::new(),
        stored_bytes: bytes.len(),
        bare_saved: Vec::new(),
        saved_bytes: saved.len(),
    };
    for sample in 0..WARM_UP + SAMPLES {
        let store = Alliance::open(path)?;
        let started = Instant::now();
        let model = store.plan(plan)?;
        let api = started.elapsed();
        black_box(model);
        drop(store);

        let started = Instant::now();
        let doc = Automerge::load(black_box(&bytes))?;
        let bare = started.elapsed();
        black_box(doc);

        let started = Instant::now();
        let doc = Automerge::load(black_box(&saved))?;
        let bare_saved = started.elapsed();
        black_box(doc);
        if sample >= WARM_UP {
            out.api.push(api);
            out.bare.push(bare);
            out.bare_saved.push(bare_saved);
        }
    }
    Ok(out)
}

/// Opens and reads the plan `times` times, each in a fresh store: a target for profilers.
pub fn child(path: &Path, plan: &str, times: &str) -> Result<()> {
    let plan = PlanId::parse(plan)?;
    for _ in 0..times.parse::<usize>()? {
        let store = Alliance::open(path)?;
        black_box(store.plan(plan)?);
    }
    Ok(())
}
