//! P1: a durable local edit through the public API against its floor — the same operations in
//! a bare Automerge transaction on a copy of the document, `save_after`, and a bare
//! rusqlite insert of those bytes in its own transaction: the cost of this stack with nothing
//! of ours — and, as a report, against a bare insert of the same change bytes alone. Same file
//! system and pragmas (WAL, NORMAL). Also samples P6 (stored bytes of the plan vs `save()`)
//! after every edit.

use std::path::Path;
use std::time::{Duration, Instant};

use alliance_core::plan::write::{self, CheckInEntry};
use alliance_core::{CheckInId, GoalId, MemberId, PlanId};
use automerge::{ActorId, Automerge, ChangeHash};
use rusqlite::{params, Connection, TransactionBehavior};

use crate::fixture::{daily_checkin, statement_edit, Device, Result};

/// Edits per round; rounds alternate between the API and the bare insert.
const ROUND: usize = 50;
const ROUNDS: usize = 4;
const WARM_UP: usize = 20;

pub struct LocalEdits {
    pub api: Vec<Duration>,
    pub bare: Vec<Duration>,
    /// The floor: the same edit in a bare Automerge transaction + `save_after` + a bare
    /// insert of the bytes.
    pub floor: Vec<Duration>,
    /// (snapshot + chunks) / save() after every edit.
    pub stored_over_saved: Vec<f64>,
}

/// A bare SQLite file with the store's pragmas and its chunk table.
struct Bare {
    conn: Connection,
    seq: i64,
}

impl Bare {
    fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS chunks (
                doc_id TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL,
                PRIMARY KEY (doc_id, seq))",
        )?;
        Ok(Self { conn, seq: 0 })
    }

    fn insert(&mut self, doc_id: &str, bytes: &[u8]) -> Result<Duration> {
        self.seq += 1;
        let started = Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)")?
            .execute(params![doc_id, self.seq, bytes])?;
        tx.commit()?;
        Ok(started.elapsed())
    }
}

fn heads(device: &Device, plan: PlanId) -> Result<(Automerge, Vec<ChangeHash>)> {
    let doc = Automerge::load(&device.store.saved_document(plan)?)?;
    let heads = doc.get_heads();
    Ok((doc, heads))
}

/// The floor of one edit: the operations the API writes for edit `n` (through the same
/// `plan::write` functions), in a bare Automerge transaction, `save_after`, and a bare
/// insert of the bytes in its own SQLite transaction. Timed whole.
fn floor_edit(
    doc: &mut Automerge,
    bare: &mut Bare,
    (doc_id, goal, by): (&str, GoalId, MemberId),
    n: usize,
) -> Result<Duration> {
    let checkin = daily_checkin(n % 365);
    let local_date = checkin.local_date.clone().unwrap_or_default();
    let started = Instant::now();
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    if n.is_multiple_of(2) {
        let entry = CheckInEntry {
            id: CheckInId::new(),
            by,
            at: 1_700_000_000_000 + n as i64,
            local_date: &local_date,
            tz_offset_min: checkin.tz_offset_min.unwrap_or(0),
            gas_level: checkin.gas_level,
            value: checkin.value,
            mood: checkin.mood,
            craving: checkin.craving,
            note: &checkin.note,
            corrects: None,
        };
        write::add_checkin(&mut tx, goal, &entry)?;
    } else {
        write::edit_goal(&mut tx, goal, &statement_edit(n))?;
    }
    tx.commit();
    let bytes = doc.save_after(&before);
    bare.insert(doc_id, &bytes)?;
    Ok(started.elapsed())
}

/// One local edit: check-ins and clinical-statement edits, alternately.
fn edit(device: &Device, plan: PlanId, goal: GoalId, n: usize) -> Result<()> {
    if n.is_multiple_of(2) {
        device.store.check_in(plan, goal, &daily_checkin(n % 365))?;
    } else {
        device.store.edit_goal(plan, goal, &statement_edit(n))?;
    }
    Ok(())
}

/// Measures edits of `plan` on `device`, the bare baseline in `bare_path`.
pub fn measure(
    device: &Device,
    plan: PlanId,
    goal: GoalId,
    bare_path: &Path,
    sample_sizes: bool,
) -> Result<LocalEdits> {
    let mut bare = Bare::open(bare_path)?;
    let mut floor_store = Bare::open(&bare_path.with_extension("floor.db"))?;
    let doc_id = plan.to_string();
    let mut out = LocalEdits {
        api: Vec::new(),
        bare: Vec::new(),
        floor: Vec::new(),
        stored_over_saved: Vec::new(),
    };
    // The floor edits a copy of the document under an actor of its own.
    let (mut floor_doc, _) = heads(device, plan)?;
    floor_doc.set_actor(ActorId::random());
    let by = device.me.member_id;
    for n in 0..WARM_UP {
        edit(device, plan, goal, n)?;
        bare.insert(&doc_id, &[0u8; 200])?;
        floor_edit(&mut floor_doc, &mut floor_store, (&doc_id, goal, by), n)?;
    }
    let mut n = WARM_UP;
    for _ in 0..ROUNDS {
        for k in 0..ROUND {
            let floor = floor_edit(&mut floor_doc, &mut floor_store, (&doc_id, goal, by), n + k)?;
            out.floor.push(floor);
        }
        let (_, before) = heads(device, plan)?;
        for _ in 0..ROUND {
            let started = Instant::now();
            edit(device, plan, goal, n)?;
            out.api.push(started.elapsed());
            n += 1;
        }
        let (doc, _) = heads(device, plan)?;
        let changes = doc.get_changes(&before);
        if changes.len() != ROUND {
            return Err(format!("expected {ROUND} new changes, found {}", changes.len()).into());
        }
        for change in changes {
            out.bare.push(bare.insert(&doc_id, change.raw_bytes())?);
        }
    }
    // P6 over as many edits again, apart from the timed ones: a whole `save()` between two
    // timed edits left them a cold cache (the year plan's P1 read 1.55× its floor instead of
    // 1.16–1.19× when P6 was measured in the same loop).
    if sample_sizes {
        for _ in 0..ROUNDS * ROUND {
            edit(device, plan, goal, n)?;
            n += 1;
            let sizes = device.store.document_sizes(plan)?;
            let saved = device.store.saved_document(plan)?.len();
            out.stored_over_saved
                .push((sizes.snapshot_len + sizes.chunk_bytes) as f64 / saved as f64);
        }
    }
    Ok(out)
}

/// Makes `times` edits to the first plan of the device stored at `path`: a target for
/// profilers.
pub fn child(path: &Path, times: &str) -> Result<()> {
    if !path.exists() {
        let device = Device::at(path, "Dana", alliance_core::Role::Counselor)?;
        let client = Device::in_memory("Sam", alliance_core::Role::Client)?;
        let plan = device.plan_with(&client, "Sleep and mornings")?;
        device.store.propose_goal(plan, "Sleep through the night")?;
    }
    let device = Device::reopen(path)?;
    let (plan, goal) = first_goal(&device)?;
    for n in 0..times.parse::<usize>()? {
        edit(&device, plan, goal, n)?;
    }
    Ok(())
}

/// The first plan stored on `device` and its first goal.
fn first_goal(device: &Device) -> Result<(PlanId, GoalId)> {
    let plan = *device.store.plan_ids()?.first().ok_or("no plan")?;
    let goal = device
        .store
        .plan(plan)?
        .goals
        .first()
        .ok_or("no goal")?
        .goal_id;
    Ok((plan, goal))
}

/// Makes `times` floor edits (see [`floor_edit`]) of the first plan of the device stored at
/// `path`, on a copy of its document, into a bare store beside it: the floor's target for
/// profilers, to set against [`child`].
pub fn floor_child(path: &Path, times: &str) -> Result<()> {
    let device = Device::reopen(path)?;
    let (plan, goal) = first_goal(&device)?;
    let (mut doc, _) = heads(&device, plan)?;
    doc.set_actor(ActorId::random());
    let mut bare = Bare::open(&path.with_extension("floor.db"))?;
    let doc_id = plan.to_string();
    let by = device.me.member_id;
    for n in 0..times.parse::<usize>()? {
        floor_edit(&mut doc, &mut bare, (&doc_id, goal, by), n)?;
    }
    Ok(())
}
