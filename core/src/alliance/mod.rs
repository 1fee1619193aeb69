//! `Alliance`: one device's store of goal plans — the API every shell (CLI, Kotlin, Swift) uses.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transaction;
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};
use parking_lot::Mutex;

use crate::budgets::Budgets;
use crate::clock;
use crate::error::{Error, Result};
use crate::model::{
    validate, CheckInId, DeviceId, GasEdit, GoalEdit, GoalId, HistoryEntry, Identity,
    InterventionId, MemberId, NewCheckIn, NewIntervention, NewObjective, ObjectiveId, Plan, PlanId,
    PlanSummary, RefusedChange, Role, SetAsideChange,
};
use crate::plan::{read_model, rebase, write, PlanDoc};
use crate::rules::{self, remote, Edit};
use crate::store::{self, DocumentSizes, Store, StoreKey};
use crate::sync_peer::SyncPeer;

/// Told when a plan changed, by a local edit or a merged remote change.
pub trait PlanObserver: Send + Sync {
    fn plan_changed(&self, plan: PlanId);
}

impl<F: Fn(PlanId) + Send + Sync> PlanObserver for F {
    fn plan_changed(&self, plan: PlanId) {
        self(plan)
    }
}

/// A running [`Alliance::watch_file`]: dropping it stops the watch within one interval.
pub struct FileWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a counselor gives to start a plan.
#[derive(Clone, Debug, Default)]
pub struct NewPlan {
    pub title: String,
    pub client_name: String,
    /// The client's member id when they already use Alliance; a new one otherwise.
    pub client_member: Option<MemberId>,
    /// The client's device to enroll right away (its code exchanged in person).
    pub client_device: Option<DeviceId>,
}

/// A device to enroll in a plan.
#[derive(Clone, Debug)]
pub struct NewDevice {
    pub device: DeviceId,
    pub member: MemberId,
    /// Name and role, needed when the member is not in the plan yet.
    pub new_member: Option<(String, Role)>,
    pub label: String,
}

/// One device's store of plans. Cheap to share (`Arc<Alliance>`): every method takes `&self`
/// and serializes on one internal lock, so calls from many threads never interleave writes.
pub struct Alliance {
    inner: Mutex<Inner>,
    observers: Mutex<Vec<Arc<dyn PlanObserver>>>,
}

struct Inner {
    store: Store,
    identity: Option<Identity>,
    docs: HashMap<PlanId, OpenDoc>,
    /// In-memory sync state per plan and conversation (see [`SyncPeer`]).
    sessions: HashMap<(PlanId, SyncPeer), sync::State>,
    /// Hashes of changes refused per plan, loaded on first use.
    refused: HashMap<PlanId, HashSet<ChangeHash>>,
    /// Changes received before their dependencies, per plan: judged once those arrive.
    held: HeldChanges,
    /// What peers' changes may cost this store.
    budgets: Budgets,
    /// The devices last written to `plan_devices` per plan, so unchanged sets are not rewritten.
    indexed_devices: HashMap<PlanId, Vec<crate::plan::DeviceAccess>>,
    /// `PRAGMA data_version` when this connection last compared what it keeps in memory with
    /// the file; None forces the comparison (after a rollback).
    seen_version: Option<i64>,
    /// Every stored document's heads column as this connection last saw or wrote it.
    known_heads: HashMap<String, Option<Vec<u8>>>,
    /// Plans written in the open transaction: forgotten from memory if it rolls back.
    written: HashSet<PlanId>,
    /// Check after every document write that the heads column is the heads of what is stored
    /// (`ALLIANCE_VERIFY_WRITES=1`; tests and diagnostics).
    verify_writes: bool,
    /// This device's signing key (none on a relay): see [`signing`].
    key: Option<crate::authorship::DeviceKey>,
    /// Signatures that came with changes still held for a dependency, per plan.
    in_flight: HashMap<PlanId, remote::Signatures>,
    /// Changes the write under way took from a peer: never signed as this device's own.
    received: HashSet<ChangeHash>,
}

/// What a write does to the plan's catalog row (`plans` table) and device index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Catalog {
    /// Recompute them from the document.
    Refresh,
    /// Only the update time changes.
    Touch,
}

struct OpenDoc {
    doc: PlanDoc,
    /// Heads already written to SQLite.
    saved_heads: Vec<ChangeHash>,
    /// Whether SQLite has a row for it (a document being received may not yet).
    stored: bool,
    /// Changes were taken out of the document (see [`crate::plan::rebase`]): the next write
    /// replaces the stored document instead of appending to it.
    rewrite: bool,
    /// Own changes set aside while loading (see [`rebase::load_forked`]), recorded by the
    /// write that rewrites the document.
    pending_set_aside: Vec<(SetAsideChange, Vec<u8>)>,
    /// The plan last read from the document, with the heads it was read at (see
    /// [`Inner::read_plan`]).
    model: Option<(Vec<ChangeHash>, Plan)>,
    /// The heads of the read model SQLite holds for this plan, as far as this connection knows.
    kept_model_heads: Option<Vec<ChangeHash>>,
}

impl OpenDoc {
    fn new(doc: PlanDoc, stored: bool) -> Self {
        let saved_heads = if stored { doc.heads() } else { Vec::new() };
        Self {
            doc,
            saved_heads,
            stored,
            rewrite: false,
            pending_set_aside: Vec::new(),
            model: None,
            kept_model_heads: None,
        }
    }

    /// The plan as read from the document now, read again only when the heads moved.
    fn model(&mut self) -> Result<Plan> {
        let heads = self.doc.heads();
        match &mut self.model {
            Some((read_at, plan)) if *read_at == heads => {
                read_model::settle(plan);
                Ok(plan.clone())
            }
            _ => {
                let plan = self.doc.read()?;
                self.model = Some((heads, plan.clone()));
                Ok(plan)
            }
        }
    }
}

fn heads_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// Heads written by [`heads_bytes`]; None when the bytes are not whole hashes.
fn parse_heads(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes
        .chunks_exact(32)
        .map(|hash| ChangeHash::try_from(hash).ok())
        .collect()
}

/// Fails when the heads column of `doc_id` is not `heads`, or the document stored is not at
/// `heads`: the invariant every write keeps (`ALLIANCE_VERIFY_WRITES`).
fn verify_stored_heads(
    tx: &rusqlite::Connection,
    doc_id: &str,
    heads: &[ChangeHash],
) -> Result<()> {
    let column = store::document_heads(tx, &[doc_id.to_owned()])?
        .into_iter()
        .next()
        .and_then(|(_, heads)| heads);
    let stored = store::load_document(tx, doc_id)?
        .ok_or_else(|| Error::Malformed("write check: the document is not stored".into()))?;
    let mut loaded = Automerge::load(&stored.bytes)?.get_heads();
    loaded.sort();
    let mut expected = heads.to_vec();
    expected.sort();
    if column.as_deref() != Some(heads_bytes(&expected).as_slice()) {
        return Err(Error::Malformed(
            "write check: the heads column differs from the heads written".into(),
        ));
    }
    if loaded != expected {
        return Err(Error::Malformed(
            "write check: the stored document is not at the heads written".into(),
        ));
    }
    Ok(())
}

impl Inner {
    /// Drops documents opened for a sync that never stored them, unless a conversation
    /// still uses them.
    fn drop_unstored_docs(&mut self) {
        let in_use: HashSet<PlanId> = self.sessions.keys().map(|(plan, _)| *plan).collect();
        self.docs
            .retain(|plan, open| open.stored || in_use.contains(plan));
    }

    /// Notices what other connections and processes wrote since this one last looked, and
    /// forgets every in-memory copy it made stale: documents reload from the file on next use.
    /// Returns the plans whose stored document changed. Costs one `PRAGMA data_version` when
    /// nobody else wrote; otherwise one read of every document's heads column.
    fn catch_up(&mut self) -> Result<Vec<PlanId>> {
        let version = self.store.data_version()?;
        if self.seen_version == Some(version) {
            return Ok(Vec::new());
        }
        let rows: HashMap<String, Option<Vec<u8>>> = self
            .store
            .read(store::all_document_heads)?
            .into_iter()
            .collect();
        let mut changed: Vec<PlanId> = rows
            .iter()
            .filter(|(id, heads)| self.known_heads.get(*id) != Some(heads))
            .filter_map(|(id, _)| PlanId::parse(id).ok())
            .collect();
        changed.extend(
            self.known_heads
                .keys()
                .filter(|id| !rows.contains_key(*id))
                .filter_map(|id| PlanId::parse(id).ok()),
        );
        for plan in &changed {
            self.docs.remove(plan);
            self.refused.remove(plan);
            self.indexed_devices.remove(plan);
        }
        self.known_heads = rows;
        if self.identity.is_none() {
            self.identity = self.store.read(store::load_identity)?;
        }
        self.seen_version = Some(version);
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// After a rolled-back transaction: forgets what memory holds of the plans it wrote, and
    /// compares with the file again on next use.
    fn forget_written(&mut self) {
        for plan in std::mem::take(&mut self.written) {
            self.docs.remove(&plan);
            self.sessions.retain(|(p, _), _| *p != plan);
            self.indexed_devices.remove(&plan);
            self.refused.remove(&plan);
        }
        self.seen_version = None;
    }

    /// See [`Alliance::plan_heads`].
    fn plan_heads(&mut self, plans: &[PlanId]) -> Result<Vec<(PlanId, Option<Vec<ChangeHash>>)>> {
        let inner = self;
        let ids: Vec<String> = plans.iter().map(PlanId::to_string).collect();
        let mut recorded: HashMap<String, Option<Vec<u8>>> = inner
            .store
            .read(|tx| store::document_heads(tx, &ids))?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(plans.len());
        for (plan, id) in plans.iter().zip(&ids) {
            let heads = match recorded.remove(id) {
                None => None,
                Some(Some(bytes)) => parse_heads(&bytes),
                Some(None) => {
                    let heads = inner.open(*plan)?.saved_heads.clone();
                    let bytes = heads_bytes(&heads);
                    inner
                        .store
                        .write(|tx| store::fill_document_heads(tx, id, &bytes))?;
                    inner.known_heads.insert(id.clone(), Some(bytes));
                    Some(heads)
                }
            };
            out.push((*plan, heads));
        }
        Ok(out)
    }

    fn actor(&self) -> ActorId {
        match &self.identity {
            Some(identity) => identity.device_id.actor(),
            None => ActorId::random(),
        }
    }

    fn identity(&self) -> Result<Identity> {
        self.identity.clone().ok_or(Error::NotInitialized)
    }

    /// Hashes of the plan's refused changes.
    fn refused_hashes(&mut self, plan: PlanId) -> Result<HashSet<ChangeHash>> {
        if !self.refused.contains_key(&plan) {
            let records = self.store.read(|tx| store::list_refusals(tx, Some(plan)))?;
            let hashes = records
                .iter()
                .filter_map(|(_, r)| r.change_hash.parse().ok())
                .collect();
            self.refused.insert(plan, hashes);
        }
        Ok(self.refused.get(&plan).cloned().unwrap_or_default())
    }

    /// The plan's document, loaded from SQLite on first use.
    fn open(&mut self, plan: PlanId) -> Result<&mut OpenDoc> {
        if !self.docs.contains_key(&plan) {
            let stored = self
                .store
                .read(|tx| store::load_document(tx, &plan.to_string()))?
                .ok_or_else(|| Error::not_found("plan", plan))?;
            let open = match PlanDoc::load(&stored.bytes, self.actor()) {
                Ok(doc) => OpenDoc::new(doc, true),
                Err(error) => self.open_forked(plan).map_err(|_| error)?,
            };
            self.docs.insert(plan, open);
        }
        self.docs
            .get_mut(&plan)
            .ok_or_else(|| Error::not_found("plan", plan))
    }

    /// A stored document that does not load whole because two writers forked one actor's
    /// history (stores written before every write took the write lock): loaded chunk by
    /// chunk with the second side replayed, and rewritten by the next write.
    fn open_forked(&mut self, plan: PlanId) -> Result<OpenDoc> {
        let (snapshot, chunks) = self
            .store
            .read(|tx| store::load_document_parts(tx, &plan.to_string()))?
            .ok_or_else(|| Error::not_found("plan", plan))?;
        let (doc, replayed) = rebase::load_forked(&snapshot, &chunks)?;
        let mut open = OpenDoc::new(PlanDoc::from_automerge(doc, self.actor()), true);
        open.rewrite = true;
        let now = clock::now_ms();
        open.pending_set_aside = replayed
            .into_iter()
            .map(|(change, copy)| {
                let record = SetAsideChange {
                    change_hash: change.hash().to_string(),
                    reason: FORKED.to_owned(),
                    replayed_as: copy.map(|h| h.to_string()),
                    recorded_at: now,
                };
                (record, change.raw_bytes().to_vec())
            })
            .collect();
        tracing::warn!(%plan, "a stored plan held a forked history; its second side was replayed");
        Ok(open)
    }

    /// The plan's document, or an empty one when this store does not have it yet.
    fn open_or_empty(&mut self, plan: PlanId) -> Result<&mut OpenDoc> {
        let known = self.docs.contains_key(&plan)
            || self
                .store
                .read(|tx| store::has_document(tx, &plan.to_string()))?;
        if known {
            return self.open(plan);
        }
        let doc = PlanDoc::empty(self.actor());
        Ok(self
            .docs
            .entry(plan)
            .or_insert_with(|| OpenDoc::new(doc, false)))
    }

    /// The plan as model types, and where it was read from: the document in memory, the read
    /// model SQLite keeps (no document load), or the document loaded from SQLite. A document
    /// read that SQLite holds no current model for keeps one, in a transaction of its own that
    /// stores it only while the document still has the heads it was read at, and only when no
    /// other writer holds the lock (a read never waits for a writer).
    fn read_plan(&mut self, plan: PlanId) -> Result<(Plan, ReadFrom)> {
        let doc_id = plan.to_string();
        let from = if self.docs.contains_key(&plan) {
            ReadFrom::Memory
        } else {
            let kept = self
                .store
                .read(|tx| store::load_read_model(tx, &doc_id, read_model::FORMAT))?;
            if let Some(model) = kept.as_deref().and_then(read_model::decode) {
                return Ok((model, ReadFrom::ReadModel));
            }
            ReadFrom::Document
        };
        let open = self.open(plan)?;
        let model = open.model()?;
        let saved = open.stored && !open.rewrite && open.doc.heads() == open.saved_heads;
        if saved && open.kept_model_heads.as_ref() != Some(&open.saved_heads) {
            let heads = open.saved_heads.clone();
            if let Some(bytes) = read_model::encode(&model) {
                let kept = self.store.write_if_free(|tx| {
                    store::save_read_model(
                        tx,
                        &doc_id,
                        &heads_bytes(&heads),
                        read_model::FORMAT,
                        &bytes,
                    )
                });
                match kept {
                    Ok(Some(true)) => {
                        if let Some(open) = self.docs.get_mut(&plan) {
                            open.kept_model_heads = Some(heads);
                        }
                    }
                    // Another writer holds the lock, or moved the document on: not kept.
                    Ok(Some(false) | None) => {}
                    // A model not kept costs the next cold read a document load, nothing more.
                    Err(error) => tracing::debug!(%plan, %error, "read model not kept"),
                }
            }
        }
        Ok((model, from))
    }

    /// Stores a document that SQLite does not hold yet (a new or imported plan).
    fn store_new(&mut self, plan: PlanId, doc: PlanDoc) -> Result<bool> {
        self.docs.insert(plan, OpenDoc::new(doc, false));
        self.persist(plan, |_| Ok(()))
    }

    /// Writes what changed in the document since it was last saved, in one SQLite
    /// transaction with `extra`. When SQLite fails the in-memory copy is dropped, so memory
    /// never runs ahead of the file.
    fn persist(
        &mut self,
        plan: PlanId,
        extra: impl FnOnce(&rusqlite::Connection) -> Result<()>,
    ) -> Result<bool> {
        self.persist_with(plan, Catalog::Refresh, extra)
    }

    /// [`Inner::persist`], told whether the change may touch what the catalog lists.
    ///
    /// Callers hold SQLite's write lock and caught up with the file first (see
    /// [`Alliance::writing`]), so the document in memory is the stored one plus what this
    /// call writes: compaction merges exactly the chunks stored, and the heads column is the
    /// heads of what is stored, in the same transaction.
    fn persist_with(
        &mut self,
        plan: PlanId,
        catalog: Catalog,
        extra: impl FnOnce(&rusqlite::Connection) -> Result<()>,
    ) -> Result<bool> {
        let now = clock::now_ms();
        let Some(open) = self.docs.get(&plan) else {
            return Err(Error::not_found("plan", plan));
        };
        let heads = open.doc.heads();
        let changed = heads != open.saved_heads || open.rewrite;
        let doc_id = plan.to_string();
        let is_plan = open.doc.is_plan();
        let refresh = catalog == Catalog::Refresh || open.rewrite;
        let devices = if is_plan && changed && refresh {
            Some(open.doc.device_access()).filter(|d| self.indexed_devices.get(&plan) != Some(d))
        } else {
            None
        };
        let verify = self.verify_writes;
        let own_signatures = if changed {
            self.sign_own(open)
        } else {
            Vec::new()
        };
        let result = self.store.write(|tx| {
            store::save_signatures(tx, &doc_id, &own_signatures)?;
            if changed {
                if open.stored {
                    // A document that lost changes (see `rewrite`) is replaced whole; otherwise
                    // the new changes are appended, and compacted once the chunks outgrow the
                    // snapshot.
                    let compact = open.rewrite || {
                        let bytes = open.doc.save_after(&open.saved_heads);
                        let head_bytes = heads_bytes(&heads);
                        let sizes = store::append_chunk(tx, &doc_id, &bytes, &head_bytes, now)?;
                        sizes.chunk_bytes > sizes.snapshot_len
                    };
                    if compact {
                        let merged = store::last_chunk_seq(tx, &doc_id)?;
                        let snapshot = open.doc.save();
                        let head_bytes = heads_bytes(&heads);
                        store::replace_snapshot(tx, &doc_id, &snapshot, &head_bytes, now, merged)?;
                    }
                } else {
                    store::insert_document(
                        tx,
                        &doc_id,
                        &open.doc.save(),
                        &heads_bytes(&heads),
                        now,
                    )?;
                }
                // A goal's own edit (words, a check-in…) changes no catalog field: only the
                // time is updated, unless the plan has no catalog row yet.
                let touched = is_plan && !refresh && store::touch_plan_summary(tx, plan, now)?;
                if is_plan && !touched {
                    let summary = open.doc.summary()?;
                    store::upsert_plan_summary(
                        tx,
                        &PlanSummary {
                            plan_id: summary.plan_id,
                            title: summary.title,
                            review_on: summary.review_on,
                            client_name: summary.client_name,
                            goal_count: summary.goal_count,
                            updated_at: now,
                        },
                    )?;
                    if let Some(devices) = &devices {
                        store::set_plan_devices(tx, plan, devices)?;
                    }
                }
            }
            for (record, bytes) in &open.pending_set_aside {
                store::record_set_aside(tx, plan, record, bytes)?;
            }
            extra(tx)?;
            if verify && changed {
                verify_stored_heads(tx, &doc_id, &heads)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                if changed {
                    self.known_heads.insert(doc_id, Some(heads_bytes(&heads)));
                    self.written.insert(plan);
                }
                if let Some(open) = self.docs.get_mut(&plan) {
                    open.saved_heads = heads;
                    open.stored |= changed;
                    open.rewrite = false;
                    open.pending_set_aside.clear();
                }
                if let Some(devices) = devices {
                    self.indexed_devices.insert(plan, devices);
                }
                Ok(changed)
            }
            Err(error) => {
                self.docs.remove(&plan);
                self.sessions.retain(|(p, _), _| *p != plan);
                Err(error)
            }
        }
    }
}

impl Alliance {
    /// Opens (or creates) the store at `path` **unencrypted**: for tests, the demo and the CLI
    /// run without `--key-file`. A shell opens its store with [`Alliance::open_encrypted`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::with_store(Store::open(path)?)
    }

    /// Opens (or creates) the store at `path`, encrypted at rest with `key` (SQLCipher), a key
    /// the shell keeps in the platform keystore. A key that does not open the file is
    /// [`Error::WrongKey`] and the file is left unchanged.
    pub fn open_encrypted(path: &Path, key: &StoreKey) -> Result<Self> {
        Self::with_store(Store::open_encrypted(path, key)?)
    }

    /// A store that lives in memory only.
    pub fn open_in_memory() -> Result<Self> {
        Self::with_store(Store::open_in_memory()?)
    }

    fn with_store(mut store: Store) -> Result<Self> {
        let identity = store.read(store::load_identity)?;
        let key = signing::load_or_make_key(&mut store, identity.is_some())?;
        let seen_version = Some(store.data_version()?);
        let known_heads = store.read(store::all_document_heads)?.into_iter().collect();
        let verify_writes = std::env::var_os("ALLIANCE_VERIFY_WRITES").is_some_and(|v| v == "1");
        Ok(Self {
            inner: Mutex::new(Inner {
                store,
                identity,
                docs: HashMap::new(),
                sessions: HashMap::new(),
                refused: HashMap::new(),
                held: HeldChanges::default(),
                budgets: Budgets::default(),
                indexed_devices: HashMap::new(),
                seen_version,
                known_heads,
                written: HashSet::new(),
                verify_writes,
                key,
                in_flight: HashMap::new(),
                received: HashSet::new(),
            }),
            observers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on what this store keeps in memory, after catching up with what other
    /// connections and processes wrote (their plans' observers are told).
    fn reading<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        let (out, outside) = {
            let mut inner = self.inner.lock();
            let outside = inner.catch_up()?;
            (f(&mut inner), outside)
        };
        for plan in outside {
            self.notify(plan);
        }
        out
    }

    /// Runs `f` as one SQLite transaction holding the write lock, after catching up with what
    /// other connections and processes wrote: every write acts on the document as the file
    /// holds it, so two processes never build different changes on one actor's same seq, and
    /// compaction never drops another's chunk. Everything `f` writes lands, or nothing does
    /// (and memory forgets what it wrote).
    fn writing<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        let (out, outside) = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            inner.store.begin_locked()?;
            inner.written.clear();
            let result = inner
                .catch_up()
                .and_then(|outside| f(inner).map(|out| (out, outside)));
            let result = match result {
                Ok(done) => inner.store.end_locked(true).map(|()| done),
                Err(error) => {
                    let _ = inner.store.end_locked(false);
                    Err(error)
                }
            };
            match result {
                Ok((out, outside)) => {
                    inner.written.clear();
                    (Ok(out), outside)
                }
                Err(error) => {
                    inner.forget_written();
                    (Err(error), Vec::new())
                }
            }
        };
        for plan in outside {
            self.notify(plan);
        }
        out
    }

    /// Tells observers of plans that another connection or process changed since this one
    /// last looked (an app's widget or share extension, a background sync, the CLI), and
    /// returns them. Every other call notices such writes too; an app that shows a plan and
    /// makes no call calls this on a timer, or lets [`Alliance::watch_file`] do it.
    pub fn check_outside_changes(&self) -> Result<Vec<PlanId>> {
        let outside = self.inner.lock().catch_up()?;
        for plan in &outside {
            self.notify(*plan);
        }
        Ok(outside)
    }

    /// Starts a thread that calls [`Alliance::check_outside_changes`] every `interval`, so
    /// observers hear of other processes' writes within `interval` even when this process
    /// makes no call. A check costs one `PRAGMA data_version` when nothing changed. The thread
    /// ends when the returned [`FileWatch`] is dropped or every `Arc` of the store is.
    pub fn watch_file(
        self: &Arc<Self>,
        interval: std::time::Duration,
    ) -> std::io::Result<FileWatch> {
        let weak = Arc::downgrade(self);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("alliance-file-watch".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Some(alliance) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = alliance.check_outside_changes() {
                    tracing::debug!(%error, "checking the store for outside changes failed");
                }
            })?;
        Ok(FileWatch { stop })
    }

    /// Registers an observer told of every plan change.
    pub fn add_observer(&self, observer: Arc<dyn PlanObserver>) {
        self.observers.lock().push(observer);
    }

    /// Unregisters an observer given to [`Alliance::add_observer`] (the same `Arc`); it is not
    /// told of changes made after this returns. Unknown observers are ignored.
    pub fn remove_observer(&self, observer: &Arc<dyn PlanObserver>) {
        let target = Arc::as_ptr(observer).cast::<()>();
        self.observers
            .lock()
            .retain(|known| Arc::as_ptr(known).cast::<()>() != target);
    }

    fn notify(&self, plan: PlanId) {
        let observers = self.observers.lock().clone();
        for observer in observers {
            observer.plan_changed(plan);
        }
    }

    /// This device's identity, if `init` ran.
    pub fn identity(&self) -> Option<Identity> {
        self.inner.lock().identity.clone()
    }

    /// The stable random id of this store, made when it was created. A store without identity
    /// (a relay) announces it to peers; devices announce their device id instead.
    pub fn store_id(&self) -> Result<String> {
        self.inner.lock().store.read(store::load_store_id)
    }

    /// Plans stored here that enroll `device` (a relay uses it to offer a joining device its
    /// plans).
    pub fn plans_of_device(&self, device: DeviceId) -> Result<Vec<PlanId>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::plans_of_device(tx, device))
    }

    /// Makes this store a device of a person: a new person, or a new device of `member`.
    pub fn init(&self, name: &str, role: Role, member: Option<MemberId>) -> Result<Identity> {
        validate::label("name", name)?;
        let mut inner = self.inner.lock();
        if inner.identity.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        let identity = Identity {
            member_id: member.unwrap_or_default(),
            device_id: DeviceId::new(),
            name: name.trim().to_owned(),
            role,
        };
        let now = clock::now_ms();
        let key = crate::authorship::DeviceKey::generate()?;
        inner.store.write(|tx| {
            store::save_identity(tx, &identity, now)?;
            store::save_device_key(tx, &key, now)
        })?;
        inner.key = inner.store.read(store::load_device_key)?;
        inner.identity = Some(identity.clone());
        Ok(identity)
    }

    /// Starts a plan with this counselor and a client. Returns its id.
    pub fn create_plan(&self, new: &NewPlan) -> Result<PlanId> {
        self.create_plan_with_key(new, None)
    }

    /// [`Alliance::create_plan`], recording `client_key` as the public key of
    /// `new.client_device` (from its enrollment code, see [`Alliance::enrollment`]). This
    /// device's own public key is always recorded.
    pub fn create_plan_with_key(
        &self,
        new: &NewPlan,
        client_key: Option<crate::authorship::PublicKey>,
    ) -> Result<PlanId> {
        validate::label("title", &new.title)?;
        validate::label("client name", &new.client_name)?;
        let plan = PlanId::new();
        self.writing(|inner| {
            let me = inner.identity()?;
            if me.role != rules::table::CREATES_PLANS {
                return Err(Error::not_allowed("only a counselor creates plans"));
            }
            let client = new.client_member.unwrap_or_default();
            if client == me.member_id {
                return Err(Error::invalid("client member", "is this counselor"));
            }
            if new.client_device == Some(me.device_id) {
                return Err(Error::invalid("client device", "is this device"));
            }
            let now = clock::now_ms();
            let my_key = inner.key.as_ref().map(|key| key.public_key());
            let mut doc = PlanDoc::empty(me.device_id.actor());
            doc.change("created the plan", now, |tx| {
                write::init_plan(tx, plan, new.title.trim(), now)?;
                write::put_member(tx, me.member_id, &me.name, Role::Counselor, now)?;
                write::put_device(tx, me.device_id, me.member_id, "creator", now)?;
                if let Some(key) = &my_key {
                    write::set_device_public_key(tx, me.device_id, key)?;
                }
                write::put_member(tx, client, new.client_name.trim(), Role::Client, now)?;
                if let Some(device) = new.client_device {
                    write::put_device(tx, device, client, "client device", now)?;
                    if let Some(key) = &client_key {
                        write::set_device_public_key(tx, device, key)?;
                    }
                }
                Ok(())
            })?;
            inner.store_new(plan, doc)
        })?;
        self.notify(plan);
        Ok(plan)
    }

    /// Every plan in the catalog, without loading any document.
    pub fn list_plans(&self) -> Result<Vec<PlanSummary>> {
        self.inner.lock().store.read(store::list_plans)
    }

    /// Ids of every plan stored here.
    pub fn plan_ids(&self) -> Result<Vec<PlanId>> {
        self.inner.lock().store.read(store::plan_ids)
    }

    /// The current heads of these plans as recorded beside their documents, without loading
    /// them; None for a plan not stored here. A document stored before migration 006 is
    /// loaded once and its heads recorded.
    pub fn plan_heads(&self, plans: &[PlanId]) -> Result<Vec<(PlanId, Option<Vec<ChangeHash>>)>> {
        self.reading(|inner| inner.plan_heads(plans))
    }

    /// Whether this store holds the plan's document.
    pub fn has_plan(&self, plan: PlanId) -> Result<bool> {
        self.reading(|inner| {
            if inner.docs.get(&plan).is_some_and(|open| open.stored) {
                return Ok(true);
            }
            inner
                .store
                .read(|tx| store::has_document(tx, &plan.to_string()))
        })
    }

    /// The plan as model types. Reads the plan's read model from SQLite when it is current,
    /// so opening a plan to read it loads no document (docs/design.md, Read model).
    pub fn plan(&self, plan: PlanId) -> Result<Plan> {
        self.reading(|inner| inner.read_plan(plan).map(|(plan, _)| plan))
    }

    /// [`Alliance::plan`], and where the plan was read from: for tests and diagnostics.
    #[doc(hidden)]
    #[cfg(any(test, feature = "test-support"))]
    pub fn plan_traced(&self, plan: PlanId) -> Result<(Plan, ReadFrom)> {
        self.reading(|inner| inner.read_plan(plan))
    }

    /// The plan's read model as SQLite holds it now, if it is current (None when it is missing
    /// or was read from other heads); never reads the document nor keeps a model. For tests
    /// that compare it with [`Alliance::plan_from_document`].
    #[doc(hidden)]
    #[cfg(any(test, feature = "test-support"))]
    pub fn kept_read_model(&self, plan: PlanId) -> Result<Option<Plan>> {
        self.reading(|inner| {
            let bytes = inner
                .store
                .read(|tx| store::load_read_model(tx, &plan.to_string(), read_model::FORMAT))?;
            Ok(bytes.and_then(|b| read_model::decode(&b)))
        })
    }

    /// The plan read from its document as SQLite holds it, past every cache: for tests.
    #[doc(hidden)]
    #[cfg(any(test, feature = "test-support"))]
    pub fn plan_from_document(&self, plan: PlanId) -> Result<Plan> {
        self.reading(|inner| {
            let stored = inner
                .store
                .read(|tx| store::load_document(tx, &plan.to_string()))?
                .ok_or_else(|| Error::not_found("plan", plan))?;
            PlanDoc::load(&stored.bytes, inner.actor())?.read()
        })
    }
    /// Every change of the plan with its author and description.
    /// Refused changes from peers come last, marked `refused`.
    pub fn history(&self, plan: PlanId) -> Result<Vec<HistoryEntry>> {
        self.reading(|inner| Self::history_of(inner, plan))
    }

    fn history_of(inner: &mut Inner, plan: PlanId) -> Result<Vec<HistoryEntry>> {
        let open = inner.open(plan)?;
        let mut entries = open.doc.history();
        let model = open.doc.read().ok();
        let refusals = inner
            .store
            .read(|tx| store::list_refusals(tx, Some(plan)))?;
        entries.extend(refusals.into_iter().map(|(_, r)| {
            let member = r.member_id.and_then(|m| model.as_ref()?.member(m).cloned());
            HistoryEntry {
                hash: r.change_hash,
                at: r.change_at,
                device_id: r.device_id,
                member_id: r.member_id,
                author: member
                    .map(|m| m.name)
                    .unwrap_or_else(|| "unknown device".to_owned()),
                description: format!("refused: {}", r.rule),
                refused: true,
            }
        }));
        Ok(entries)
    }

    /// Runs one local edit: reads the plan, lets `edit` check the rules and write operations
    /// in one Automerge change, then stores it in one SQLite transaction. If `edit` fails,
    /// nothing is written anywhere. The model `edit` sees holds the plan's members and devices
    /// but no goal (see [`Alliance::edit_in_goal`]): reading a whole plan on every edit would
    /// cost more than the edit.
    fn edit<T>(
        &self,
        plan: PlanId,
        description: &str,
        edit: impl FnOnce(&Plan, &Identity, &mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.edit_scoped(plan, (None, false), Catalog::Refresh, description, edit)
    }

    /// [`Alliance::edit`] of one goal: the model holds that goal too, with its check-ins when
    /// `checkins` is set.
    fn edit_in_goal<T>(
        &self,
        (plan, goal, checkins): (PlanId, GoalId, bool),
        description: &str,
        edit: impl FnOnce(&Plan, &Identity, &mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.edit_scoped(
            plan,
            (Some(goal), checkins),
            Catalog::Touch,
            description,
            edit,
        )
    }

    /// The edit of [`Alliance::edit`], reading `goal` (with its check-ins when `checkins`) for
    /// the rules, and told what the change may do to the plan's catalog row.
    fn edit_scoped<T>(
        &self,
        plan: PlanId,
        (goal, checkins): (Option<GoalId>, bool),
        catalog: Catalog,
        description: &str,
        edit: impl FnOnce(&Plan, &Identity, &mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let out = self.writing(|inner| {
            let me = inner.identity()?;
            let open = inner.open(plan)?;
            let model = open.doc.read_for_edit(goal, checkins)?;
            match model.device(me.device_id) {
                Some(device) if device.revoked_at.is_some() => {
                    return Err(Error::not_allowed("this device was revoked from the plan"))
                }
                Some(device) if device.member_id == me.member_id => {}
                _ => {
                    return Err(Error::not_allowed(
                        "only devices enrolled in a plan write to it",
                    ))
                }
            }
            let now = clock::now_ms();
            let mut out = None;
            let change = open.doc.change(description, now, |tx| {
                out = Some(edit(&model, &me, tx)?);
                Ok(())
            })?;
            if change.is_some() {
                inner.persist_with(plan, catalog, |_| Ok(()))?;
            }
            Ok((out, change.is_some()))
        })?;
        let (out, changed) = out;
        if changed {
            self.notify(plan);
        }
        out.ok_or_else(|| Error::Malformed("the edit produced no result".into()))
    }

    /// Renames the plan (counselor).
    pub fn set_title(&self, plan: PlanId, title: &str) -> Result<()> {
        validate::label("title", title)?;
        self.edit(plan, "renamed the plan", |model, me, tx| {
            rules::check(model, me.member_id, Edit::Title)?;
            write::set_title(tx, title.trim())
        })
    }

    /// Sets the date of the plan's next review (counselor).
    pub fn set_review_on(&self, plan: PlanId, date: &str) -> Result<()> {
        validate::date("review date", date)?;
        self.edit(plan, "set the review date", |model, me, tx| {
            rules::check(model, me.member_id, Edit::ReviewOn)?;
            write::set_review_on(tx, date)
        })
    }

    /// Enrolls a device in the plan (a counselor: any member's; a client: their own).
    pub fn enroll_device(&self, plan: PlanId, new: &NewDevice) -> Result<()> {
        self.enroll_device_keyed(plan, new, None)
    }

    /// [`Alliance::enroll_device`], recording `key` as the device's public key in the same
    /// change (see [`Alliance::enroll_with_key`]).
    fn enroll_device_keyed(
        &self,
        plan: PlanId,
        new: &NewDevice,
        key: Option<crate::authorship::PublicKey>,
    ) -> Result<()> {
        validate::label("device label", &new.label)?;
        if let Some((name, _)) = &new.new_member {
            validate::label("name", name)?;
        }
        self.edit(plan, "enrolled a device", |model, me, tx| {
            let now = clock::now_ms();
            if let Some(existing) = model.device(new.device) {
                if existing.member_id != new.member {
                    return Err(Error::invalid(
                        "device id",
                        "already enrolled for another member",
                    ));
                }
            }
            if model.member(new.member).is_none() {
                let (name, role) = new.new_member.as_ref().ok_or_else(|| {
                    Error::invalid("member", "not in this plan: give a name and role")
                })?;
                rules::check(model, me.member_id, Edit::Member)?;
                write::put_member(tx, new.member, name.trim(), *role, now)?;
            }
            rules::check(
                model,
                me.member_id,
                Edit::EnrollDevice { member: new.member },
            )?;
            match model.device(new.device) {
                None => write::put_device(tx, new.device, new.member, new.label.trim(), now)?,
                Some(device) if key.is_some() => signing::may_record_key(device, me)?,
                Some(_) => {}
            }
            if let Some(key) = &key {
                write::set_device_public_key(tx, new.device, key)?;
            }
            Ok(())
        })
    }

    /// Issues a relay token for an enrolled device (counselor): stores only its SHA-256 in the
    /// plan (`devices.<id>.token_hash`) and returns the token, to be handed to the device in
    /// person. `reuse` stores the hash of a token the device already holds (one token for all
    /// of a device's plans); otherwise a fresh one is made. Issuing again replaces the hash, so
    /// the old token stops opening this plan.
    pub fn issue_device_token(
        &self,
        plan: PlanId,
        device: DeviceId,
        reuse: Option<&str>,
    ) -> Result<String> {
        let token = match reuse {
            Some(token) => {
                crate::token::check_token(token)?;
                token.to_ascii_lowercase()
            }
            None => crate::token::generate_token(),
        };
        let hash = crate::token::token_hash(&token);
        self.edit(plan, "issued a relay token", |model, me, tx| {
            rules::check(model, me.member_id, Edit::IssueToken)?;
            if model.device(device).is_none() {
                return Err(Error::not_found("device", device));
            }
            write::set_device_token_hash(tx, device, &hash)
        })?;
        Ok(token)
    }

    /// Revokes an enrolled device (counselor): relays refuse its token for this plan from the
    /// moment they receive the change.
    pub fn revoke_device(&self, plan: PlanId, device: DeviceId) -> Result<()> {
        self.edit(plan, "revoked a device", |model, me, tx| {
            rules::check(model, me.member_id, Edit::Revoke)?;
            if model.device(device).is_none() {
                return Err(Error::not_found("device", device));
            }
            write::revoke_device(tx, device, clock::now_ms())
        })
    }

    /// The plans a relay token opens here, with the device it was issued to (a relay's
    /// access check).
    pub fn plans_of_token(&self, token_hash: &str) -> Result<Vec<(PlanId, DeviceId)>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::plans_of_token(tx, token_hash))
    }

    /// Proposes a goal in the proposer's words. Returns its id.
    pub fn propose_goal(&self, plan: PlanId, words: &str) -> Result<GoalId> {
        validate::words("client words", words)?;
        let goal = GoalId::new();
        self.edit(plan, "proposed a goal", |model, me, tx| {
            rules::check(model, me.member_id, Edit::ProposeGoal)?;
            let now = clock::now_ms();
            write::add_goal(tx, goal, me.member_id, words, &format!("{now:015}"), now)?;
            Ok(goal)
        })
    }

    /// Changes a goal's words, clinical statement, life area or status.
    pub fn edit_goal(&self, plan: PlanId, goal: GoalId, edit: &GoalEdit) -> Result<()> {
        validate::goal_edit(edit)?;
        let description = describe_goal_edit(edit);
        self.edit_in_goal((plan, goal, false), &description, |model, me, tx| {
            let current = model.goal(goal)?;
            rules::check(
                model,
                me.member_id,
                Edit::EditGoal {
                    goal: current,
                    edit,
                },
            )?;
            if let Some(status) = edit.status {
                if !current.status.can_become(status) {
                    return Err(Error::invalid(
                        "status",
                        format!("a goal does not go from {} to {status}", current.status),
                    ));
                }
            }
            write::edit_goal(tx, goal, edit)
        })
    }

    /// Adds a SMART objective to a goal (counselor). Returns its id.
    pub fn add_objective(
        &self,
        plan: PlanId,
        goal: GoalId,
        objective: &NewObjective,
    ) -> Result<ObjectiveId> {
        validate::objective(objective)?;
        let id = ObjectiveId::new();
        let scope = (plan, goal, false);
        self.edit_in_goal(scope, "added an objective", |model, me, tx| {
            model.goal(goal)?;
            rules::check(model, me.member_id, Edit::Objective)?;
            write::add_objective(tx, goal, id, objective)?;
            Ok(id)
        })
    }

    /// Adds an intervention to a goal (counselor). Returns its id.
    pub fn add_intervention(
        &self,
        plan: PlanId,
        goal: GoalId,
        intervention: &NewIntervention,
    ) -> Result<InterventionId> {
        validate::intervention(intervention)?;
        let id = InterventionId::new();
        let scope = (plan, goal, false);
        self.edit_in_goal(scope, "added an intervention", |model, me, tx| {
            model.goal(goal)?;
            if let Some(owner) = intervention.owner {
                if model.member(owner).is_none() {
                    return Err(Error::not_found("member", owner));
                }
            }
            rules::check(model, me.member_id, Edit::Intervention)?;
            write::add_intervention(tx, goal, id, intervention)?;
            Ok(id)
        })
    }

    /// Describes a GAS level (both roles) or sets the weight or baseline (counselor).
    pub fn set_gas(&self, plan: PlanId, goal: GoalId, edit: &GasEdit) -> Result<()> {
        validate::gas_edit(edit)?;
        let description = match edit {
            GasEdit::Level { .. } => "described a GAS level",
            GasEdit::Weight(_) => "set a GAS weight",
            GasEdit::Baseline(_) => "set a GAS baseline",
        };
        self.edit_in_goal((plan, goal, false), description, |model, me, tx| {
            model.goal(goal)?;
            rules::check(model, me.member_id, Edit::Gas(edit))?;
            write::set_gas(tx, goal, edit)
        })
    }

    /// Records this member's agreement to the goal's current content.
    pub fn agree(&self, plan: PlanId, goal: GoalId) -> Result<()> {
        self.edit_in_goal((plan, goal, false), "agreed to a goal", |model, me, tx| {
            let current = model.goal(goal)?;
            rules::check(
                model,
                me.member_id,
                Edit::Agree {
                    member: me.member_id,
                },
            )?;
            let already = current
                .agreement
                .agreements
                .iter()
                .any(|a| a.member_id == me.member_id && a.content_hash == current.content_hash);
            if !already {
                write::agree(
                    tx,
                    goal,
                    me.member_id,
                    &current.content_hash,
                    clock::now_ms(),
                )?;
            }
            Ok(())
        })
    }

    /// Records a check-in by this member (or a correction of one of theirs). Returns its id.
    pub fn check_in(&self, plan: PlanId, goal: GoalId, checkin: &NewCheckIn) -> Result<CheckInId> {
        validate::checkin(checkin)?;
        let id = CheckInId::new();
        let description = if checkin.corrects.is_some() {
            "corrected a check-in"
        } else {
            "checked in"
        };
        // Only a correction reads the goal and its check-ins (to find the one it corrects); a
        // new check-in of a goal that does not exist fails when it is written.
        let scope = (checkin.corrects.map(|_| goal), checkin.corrects.is_some());
        // A check-in changes no catalog field (title, members, devices, goal count).
        self.edit_scoped(plan, scope, Catalog::Touch, description, |model, me, tx| {
            let corrects = match checkin.corrects {
                Some(original) => Some(
                    model
                        .goal(goal)?
                        .checkins
                        .iter()
                        .find(|c| c.checkin_id == original)
                        .ok_or_else(|| Error::not_found("check-in", original))?,
                ),
                None => None,
            };
            rules::check(
                model,
                me.member_id,
                Edit::CheckIn {
                    by: me.member_id,
                    corrects,
                },
            )?;
            let now = clock::now_ms();
            let tz_offset_min = checkin
                .tz_offset_min
                .unwrap_or_else(clock::local_offset_min);
            let local_date = match (&checkin.local_date, corrects) {
                (Some(day), _) => day.clone(),
                (None, Some(original)) => original.local_date.clone(),
                (None, None) => clock::local_date(now, tz_offset_min),
            };
            write::add_checkin(
                tx,
                goal,
                &write::CheckInEntry {
                    id,
                    by: me.member_id,
                    at: now,
                    local_date: &local_date,
                    tz_offset_min,
                    gas_level: checkin.gas_level,
                    value: checkin.value,
                    mood: checkin.mood,
                    craving: checkin.craving,
                    note: &checkin.note,
                    corrects: checkin.corrects,
                },
            )?;
            Ok(id)
        })
    }

    /// Snapshot and chunk sizes of a plan's stored document.
    pub fn document_sizes(&self, plan: PlanId) -> Result<DocumentSizes> {
        self.inner
            .lock()
            .store
            .read(|tx| store::document_sizes(tx, &plan.to_string()))?
            .ok_or_else(|| Error::not_found("plan", plan))
    }

    /// The bytes of `save()` of a plan's document (what compaction stores as its snapshot).
    pub fn saved_document(&self, plan: PlanId) -> Result<Vec<u8>> {
        self.reading(|inner| Ok(inner.open(plan)?.doc.save()))
    }

    /// Stores a plan that arrives outside sync (an imported file) from all its changes. This
    /// store must not hold the plan yet. Every change is judged by its author's role exactly
    /// as a change from a peer is (see [`rules::remote`]); unless every one is accepted and
    /// none is missing a dependency, nothing is stored.
    pub(crate) fn import_changes(
        &self,
        plan: PlanId,
        changes: Vec<Change>,
        signatures: &remote::Signatures,
    ) -> Result<()> {
        self.writing(|inner| {
            let stored = inner.docs.get(&plan).is_some_and(|open| open.stored)
                || inner
                    .store
                    .read(|tx| store::has_document(tx, &plan.to_string()))?;
            if stored {
                return Err(Error::invalid(
                    "plan",
                    "this store already holds it: sync instead of importing",
                ));
            }
            let mut doc = PlanDoc::empty(inner.actor());
            let judgement =
                remote::judge(doc.automerge(), plan, changes, &HashSet::new(), signatures);
            if let Some(refusal) = judgement.refused.first() {
                return Err(Error::not_allowed(format!(
                    "an imported change was refused: {}",
                    refusal.rule
                )));
            }
            if !judgement.held.is_empty() || judgement.accepted.is_empty() {
                return Err(Error::Malformed(
                    "the imported plan misses some of its changes".into(),
                ));
            }
            doc.automerge_mut()
                .apply_changes(judgement.accepted.iter().cloned())?;
            if !doc.is_plan() {
                return Err(Error::Malformed(
                    "the imported document holds no plan".into(),
                ));
            }
            inner.sessions.retain(|(p, _), _| *p != plan);
            inner.held.forget_plan(plan);
            let kept: Vec<crate::authorship::carrier::Record> = judgement
                .accepted
                .iter()
                .filter_map(|c| Some((c.hash(), *signatures.get(&c.hash())?)))
                .collect();
            inner.received = judgement.accepted.iter().map(Change::hash).collect();
            inner.docs.insert(plan, OpenDoc::new(doc, false));
            let doc_id = plan.to_string();
            let stored = inner.persist(plan, |tx| store::save_signatures(tx, &doc_id, &kept));
            inner.received.clear();
            stored
        })?;
        self.notify(plan);
        Ok(())
    }

    // ---- transport-agnostic sync: bytes in, bytes out ----

    /// The next Automerge sync message for `peer` about `plan`, or None when the peer has
    /// everything we know of. Works for a plan not stored here yet (asks the peer for it).
    pub fn generate_sync_message(
        &self,
        plan: PlanId,
        peer: impl Into<SyncPeer>,
    ) -> Result<Option<Vec<u8>>> {
        let peer = peer.into();
        self.reading(|inner| Self::generate_for(inner, plan, peer))
    }

    fn generate_for(inner: &mut Inner, plan: PlanId, peer: SyncPeer) -> Result<Option<Vec<u8>>> {
        let state = load_session(inner, plan, &peer)?;
        // Held changes wait outside Automerge, which therefore never asks for what they
        // lack (a peer's Bloom filter false positive can skip a change while sending its
        // successors): ask for it here, or the peers resend the successors forever.
        let held_deps = inner.held.missing_deps(plan);
        let open = inner.open_or_empty(plan)?;
        let mut state = state;
        let mut message = open.doc.automerge().generate_sync_message(&mut state);
        if let Some(message) = message.as_mut() {
            let doc = open.doc.automerge();
            for dep in held_deps {
                if automerge::ReadDoc::get_change_by_hash(doc, &dep).is_none()
                    && !message.need.contains(&dep)
                {
                    message.need.push(dep);
                }
            }
            message.need.sort();
        }
        inner.sessions.insert((plan, peer), state);
        message
            .map(|message| inner.sign_outgoing(plan, message))
            .transpose()
    }

    /// Applies a sync message from `peer` in one SQLite transaction (document, sync state and
    /// refusal records together). Every change in it is first judged by its author's role
    /// (see [`rules::remote`]); refused changes, and anything built on them, are not applied.
    /// Creates the plan here when it is new.
    pub fn receive_sync_message(
        &self,
        plan: PlanId,
        peer: impl Into<SyncPeer>,
        message: &[u8],
    ) -> Result<SyncReceipt> {
        self.receive_checked(plan, peer.into(), message, None)
    }

    /// [`Alliance::receive_sync_message`] of a message a relay's device pushed with its
    /// token: kept only when the plan stays bound to its tokens as `voucher` says (see
    /// [`crate::token::TokenVoucher`]); otherwise nothing is stored and the error is
    /// [`Error::NotAllowed`].
    pub fn receive_vouched(
        &self,
        plan: PlanId,
        peer: impl Into<SyncPeer>,
        message: &[u8],
        voucher: &crate::token::TokenVoucher,
    ) -> Result<SyncReceipt> {
        self.receive_checked(plan, peer.into(), message, Some(voucher))
    }

    fn receive_checked(
        &self,
        plan: PlanId,
        peer: SyncPeer,
        message: &[u8],
        voucher: Option<&crate::token::TokenVoucher>,
    ) -> Result<SyncReceipt> {
        let (signatures, message) = crate::authorship::carrier::split(message)?;
        let message =
            sync::Message::decode(message).map_err(|e| Error::SyncMessage(e.to_string()))?;
        // Read and bounded before the store lock is taken: one peer's large message does not
        // stall the others (`docs/design.md`, Hostile input).
        let budgets = self.budgets();
        let screened = incoming::screen(&message, &budgets)?;
        let (receipt, changed) = self.writing(|inner| {
            let listed_before = match voucher {
                Some(_) => vouch::listed(inner, plan),
                None => Vec::new(),
            };
            let received = Self::receive_in(inner, plan, &peer, message, (screened, signatures))
                .and_then(|received| match voucher {
                    Some(voucher) => {
                        vouch::check(inner, plan, &listed_before, voucher).map(|()| received)
                    }
                    None => Ok(received),
                });
            if received.is_err() {
                inner.docs.remove(&plan);
                inner.sessions.remove(&(plan, peer.clone()));
            }
            received
        })?;
        if changed {
            self.notify(plan);
        }
        Ok(receipt)
    }

    /// [`Alliance::receive_sync_message`] inside its transaction; returns what it refused or
    /// set aside, and whether the stored document changed.
    fn receive_in(
        inner: &mut Inner,
        plan: PlanId,
        peer: &SyncPeer,
        mut message: sync::Message,
        (screened, signatures): (incoming::Screened, Vec<crate::authorship::carrier::Record>),
    ) -> Result<(SyncReceipt, bool)> {
        let mut kept_signatures = inner.in_flight.remove(&plan).unwrap_or_default();
        let mut state = load_session(inner, plan, peer)?;
        let mut known_refused = inner.refused_hashes(plan)?;
        let budgets = inner.budgets;
        let own_actor = inner.identity.as_ref().map(|me| me.device_id.actor());
        // Changes that arrived before their dependencies get another chance now.
        let mut earlier = if message.changes.is_empty() {
            None
        } else {
            Some(inner.held.take(plan))
        };
        let mut still_held = Vec::new();
        let mut received: HashSet<ChangeHash> = HashSet::new();
        let open = inner.open_or_empty(plan)?;
        let mut refused: Vec<remote::Refusal> = Vec::new();
        // Own changes taken out of the document because the peer holds others with the same
        // seq: replayed once the peer's are in.
        let mut forked: Vec<Change> = Vec::new();
        // The judge's working copy already holds every accepted change: adopted in place
        // of the document instead of applying them a second time.
        let mut adopted = false;
        let mut before_heads = open.doc.heads();
        if !message.changes.is_empty() {
            let (mut incoming, oversized) =
                screened.changes_in(open.doc.automerge(), own_actor.as_ref(), &budgets)?;
            // Changes refused before they were decoded: recorded like any refusal, and
            // everything built on them is refused with them.
            for change in oversized {
                if known_refused.insert(change.hash) {
                    refused.push(remote::refusal_of(
                        open.doc.automerge(),
                        change.hash,
                        &change.actor,
                        change.timestamp,
                        crate::budgets::TOO_MANY_OPERATIONS,
                    ));
                }
            }
            if let Some(earlier) = earlier.as_mut() {
                incoming.extend(earlier.changes());
            }
            signing::keep_incoming(&mut kept_signatures, signatures, &incoming);
            if let Some(actor) = &own_actor {
                // A forgery under this device's actor is no sign of another copy: it is left
                // to the judge, which refuses it (SECURITY.md §6).
                let genuine = signing::genuinely_own(open.doc.automerge(), actor, &kept_signatures);
                let own: Vec<Change> = incoming
                    .iter()
                    .filter(|c| c.actor_id() == actor && genuine(c))
                    .cloned()
                    .collect();
                if let Some(drop) = own_fork(open.doc.automerge(), &own, actor) {
                    let (base, left_out) = rebase::without(open.doc.automerge(), &drop)?;
                    *open.doc.automerge_mut() = base.with_actor(actor.clone());
                    open.rewrite = true;
                    forked = left_out;
                    before_heads = open.doc.heads();
                    // What this conversation believed shared may name changes taken out.
                    state = sync::State::new();
                }
            }
            let judgement = remote::judge_within(
                open.doc.automerge(),
                plan,
                incoming,
                &known_refused,
                &budgets,
                &kept_signatures,
            );
            received.extend(judgement.accepted.iter().map(Change::hash));
            still_held = judgement.held;
            refused.extend(judgement.refused);
            match judgement.applied {
                Some(mut applied) if !judgement.accepted.is_empty() => {
                    applied.set_actor(open.doc.automerge().get_actor().clone());
                    *open.doc.automerge_mut() = applied;
                    adopted = true;
                }
                _ => {}
            }
            message.changes = Vec::<Vec<u8>>::new().into();
        }
        let last_sent_heads = state.last_sent_heads.clone();
        let shared_before = state.shared_heads.clone();
        open.doc
            .automerge_mut()
            .receive_sync_message(&mut state, message)?;
        if adopted {
            // What receiving the changes would have done to the sync state (as
            // `receive_sync_message` does it): unless the peer's heads are all known here
            // (then they are the shared heads, as set above), the shared heads advance by
            // the changes just applied, plus the peer's heads known here; and, the message
            // having carried changes, what we last sent is not taken as acknowledged.
            let doc = open.doc.automerge();
            let theirs = state.their_heads.clone().unwrap_or_default();
            let known: Vec<ChangeHash> = theirs
                .iter()
                .filter(|h| doc.get_change_by_hash(h).is_some())
                .copied()
                .collect();
            if known.len() != theirs.len() {
                let after: HashSet<ChangeHash> = doc.get_heads().into_iter().collect();
                let before: HashSet<ChangeHash> = before_heads.into_iter().collect();
                let mut shared: Vec<ChangeHash> = after
                    .iter()
                    .filter(|h| !before.contains(h))
                    .chain(shared_before.iter().filter(|h| after.contains(h)))
                    .chain(known.iter())
                    .copied()
                    .collect();
                shared.sort();
                shared.dedup();
                state.shared_heads = shared;
            }
            state.last_sent_heads = last_sent_heads;
        }
        // The peer holds changes we refused: count them as settled so that neither side
        // keeps asking for or offering them in this session.
        let all_refused: HashSet<ChangeHash> = known_refused
            .iter()
            .copied()
            .chain(refused.iter().map(|r| r.hash))
            .collect();
        if state
            .their_heads
            .as_ref()
            .is_some_and(|heads| heads.iter().any(|h| all_refused.contains(h)))
        {
            state.their_heads = Some(open.doc.heads());
        }
        let now = clock::now_ms();
        let set_aside = if forked.is_empty() {
            Vec::new()
        } else {
            replay_own(open, own_actor.as_ref(), &forked, FORKED, now)?
        };
        let has_content = !open.doc.heads().is_empty();
        // Signatures of the changes let in are stored beside them; those of held changes wait.
        let accepted_signatures: Vec<crate::authorship::carrier::Record> = received
            .iter()
            .filter_map(|hash| Some((*hash, *kept_signatures.get(hash)?)))
            .collect();
        let held_hashes: HashSet<ChangeHash> = still_held.iter().map(Change::hash).collect();
        kept_signatures.retain(|hash, _| held_hashes.contains(hash));
        if !kept_signatures.is_empty() {
            inner.in_flight.insert(plan, kept_signatures);
        }
        if let Some(earlier) = earlier {
            let budgets = inner.budgets;
            inner.held.hold(plan, peer, earlier, still_held, &budgets)?;
        }
        let encoded = state.encode();
        inner.sessions.insert((plan, peer.clone()), state);
        let records: Vec<RefusedChange> = refused
            .iter()
            .map(|r| RefusedChange {
                change_hash: r.hash.to_string(),
                peer: peer.key.clone(),
                device_id: r.actor.to_hex_string(),
                member_id: r.member,
                rule: r.rule.clone(),
                change_at: r.at,
                recorded_at: now,
            })
            .collect();
        let doc_id = plan.to_string();
        let write_records = |tx: &rusqlite::Connection| -> Result<()> {
            store::save_signatures(tx, &doc_id, &accepted_signatures)?;
            for record in &records {
                store::record_refusal(tx, plan, record)?;
            }
            for (record, bytes) in &set_aside {
                store::record_set_aside(tx, plan, record, bytes)?;
            }
            if !set_aside.is_empty() {
                // Other conversations' states may name the changes taken out.
                store::delete_plan_sync_states(tx, &doc_id)?;
            }
            Ok(())
        };
        let changed = if has_content {
            inner.received = received;
            let persisted = inner.persist(plan, |tx| {
                write_records(tx)?;
                store::save_sync_state(tx, &doc_id, &peer.key, &encoded)
            });
            inner.received.clear();
            persisted?
        } else {
            inner.store.write(write_records)?;
            false
        };
        if !set_aside.is_empty() {
            inner
                .sessions
                .retain(|(p, who), _| *p != plan || who == peer);
        }
        if let Some(set) = inner.refused.get_mut(&plan) {
            set.extend(refused.iter().map(|r| r.hash));
        }
        let receipt = SyncReceipt {
            refused: records,
            set_aside: set_aside.into_iter().map(|(record, _)| record).collect(),
        };
        Ok((receipt, changed))
    }

    /// A peer refused some of this device's own changes of `plan` (`refusals`: change hash in
    /// hex, rule), as a relay tells a device in its `refused` notice. Each refused change is
    /// taken out of the plan here too, kept with its bytes (see [`Alliance::set_aside_changes`]),
    /// and every later own change built on it is replayed as a new change that does not
    /// depend on it, so later edits are not lost behind it. Hashes that are not this device's
    /// changes in the plan, and refusals that only say "builds on a refused change", are
    /// ignored. Returns what was set aside; observers hear of the plan when it changed.
    pub fn own_changes_refused(
        &self,
        plan: PlanId,
        refusals: &[(String, String)],
    ) -> Result<Vec<SetAsideChange>> {
        let set_aside = self.writing(|inner| {
            let Some(me) = inner.identity.clone() else {
                return Ok(Vec::new());
            };
            let actor = me.device_id.actor();
            let open = inner.open(plan)?;
            let rules: HashMap<ChangeHash, &str> = refusals
                .iter()
                .filter(|(_, rule)| rule != remote::BUILDS_ON_REFUSED)
                .filter_map(|(hash, rule)| Some((hash.parse().ok()?, rule.as_str())))
                .filter(|(hash, _)| {
                    open.doc
                        .automerge()
                        .get_change_by_hash(hash)
                        .is_some_and(|c| c.actor_id() == &actor)
                })
                .collect();
            if rules.is_empty() {
                return Ok(Vec::new());
            }
            let roots: HashSet<ChangeHash> = rules.keys().copied().collect();
            let (base, left_out) = rebase::without(open.doc.automerge(), &roots)?;
            *open.doc.automerge_mut() = base.with_actor(actor.clone());
            open.rewrite = true;
            let later: Vec<Change> = left_out
                .iter()
                .filter(|c| !roots.contains(&c.hash()))
                .cloned()
                .collect();
            let now = clock::now_ms();
            let mut set_aside = replay_own(open, Some(&actor), &later, BUILT_ON_REFUSED, now)?;
            for change in left_out.iter().filter(|c| roots.contains(&c.hash())) {
                let rule = rules.get(&change.hash()).copied().unwrap_or_default();
                let record = SetAsideChange {
                    change_hash: change.hash().to_string(),
                    reason: format!("refused by a peer: {rule}"),
                    replayed_as: None,
                    recorded_at: now,
                };
                set_aside.push((record, change.raw_bytes().to_vec()));
            }
            let doc_id = plan.to_string();
            inner.persist(plan, |tx| {
                for (record, bytes) in &set_aside {
                    store::record_set_aside(tx, plan, record, bytes)?;
                }
                store::delete_plan_sync_states(tx, &doc_id)?;
                Ok(())
            })?;
            inner.sessions.retain(|(p, _), _| *p != plan);
            Ok(set_aside.into_iter().map(|(record, _)| record).collect())
        })?;
        if !set_aside.is_empty() {
            self.notify(plan);
        }
        Ok(set_aside)
    }

    /// This device's own changes it took out of `plan` (a forked history, or changes a peer
    /// refused), oldest first, with the change that replays each where there is one.
    pub fn set_aside_changes(&self, plan: PlanId) -> Result<Vec<SetAsideChange>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::list_set_aside(tx, plan))
    }

    /// Changes from peers that the role rules refused, for one plan or all (`None`).
    pub fn refused_changes(&self, plan: Option<PlanId>) -> Result<Vec<(PlanId, RefusedChange)>> {
        self.inner
            .lock()
            .store
            .read(|tx| store::list_refusals(tx, plan))
    }

    /// Forgets the in-memory sync sessions of this conversation with `peer` (call on
    /// disconnect); the next conversation starts from the persisted state, so only news is
    /// sent. Other conversations with the same peer are left alone.
    pub fn end_sync_session(&self, peer: impl Into<SyncPeer>) {
        let peer = peer.into();
        let mut inner = self.inner.lock();
        inner.sessions.retain(|(_, p), _| *p != peer);
        inner.held.drop_conversation(&peer);
        inner.drop_unstored_docs();
    }

    /// Changes peers sent that still wait for a dependency they did not send, over all plans
    /// and conversations (bounded by [`Budgets`]; dropped when their conversation ends).
    pub fn held_changes(&self) -> HeldCount {
        self.inner.lock().held.total()
    }

    /// Sets what peers' changes may cost this store (the defaults suit devices and relays).
    pub fn set_budgets(&self, budgets: Budgets) {
        self.inner.lock().budgets = budgets;
    }

    /// What peers' changes may cost this store.
    pub fn budgets(&self) -> Budgets {
        self.inner.lock().budgets
    }

    /// Re-encrypts this store under `new_key` in one transaction; the next open needs the new
    /// key. A store opened without a key cannot be rekeyed.
    pub fn rekey(&self, new_key: &StoreKey) -> Result<()> {
        self.inner.lock().store.rekey(new_key)
    }

    /// Problems SQLite finds in the store's file (its integrity check, and for an encrypted
    /// store every page's authentication code); empty when the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.inner.lock().store.integrity_check()
    }

    /// Ends the sessions with `peer` and deletes its persisted sync state too: for ephemeral
    /// peers (they keep nothing, so there is nothing to resume), called when they disconnect.
    pub fn forget_sync_peer(&self, peer: impl Into<SyncPeer>) -> Result<()> {
        let peer = peer.into();
        let mut inner = self.inner.lock();
        inner.sessions.retain(|(_, p), _| p.key != peer.key);
        inner.held.drop_key(&peer.key);
        inner.drop_unstored_docs();
        inner
            .store
            .write(|tx| store::delete_sync_states(tx, &peer.key))?;
        Ok(())
    }
}

/// Why own changes are set aside (recorded in `set_aside_changes`).
const FORKED: &str = "another copy of this device's store wrote the same change numbers";
const BUILT_ON_REFUSED: &str = "built on a change a peer refused";

/// Where [`Alliance::plan_traced`] read a plan from.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// The document this store already had in memory.
    Memory,
    /// The read model SQLite keeps: no document was loaded.
    ReadModel,
    /// The document, loaded from SQLite.
    Document,
}

/// What one sync message did besides merging (see [`Alliance::receive_sync_message`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SyncReceipt {
    /// The peer's changes that the role rules refused in this message (also recorded, see
    /// [`Alliance::refused_changes`]): what a relay tells the peer in a `refused` notice.
    pub refused: Vec<RefusedChange>,
    /// This device's own changes taken out and replayed because the peer holds other changes
    /// with their actor and seq: a restored or copied store was used (see `docs/design.md`).
    pub set_aside: Vec<SetAsideChange>,
}

/// The own changes to take out of `doc` when `incoming` holds changes of this device's
/// `actor` that it does not have, with a seq it has already used: another copy of this store
/// (a restored backup, a copied device) wrote them. None when there is no such fork: own
/// changes past the last seq here are simply this device's history coming back.
fn own_fork(doc: &Automerge, incoming: &[Change], actor: &ActorId) -> Option<HashSet<ChangeHash>> {
    let theirs: Vec<u64> = incoming
        .iter()
        .filter(|c| c.actor_id() == actor && doc.get_change_by_hash(&c.hash()).is_none())
        .map(Change::seq)
        .collect();
    if theirs.is_empty() {
        return None;
    }
    let last = rebase::last_seq(doc, actor);
    let from = theirs.into_iter().filter(|seq| *seq <= last).min()?;
    Some(
        doc.get_changes(&[])
            .iter()
            .filter(|c| c.actor_id() == actor && c.seq() >= from)
            .map(Change::hash)
            .collect(),
    )
}

/// Replays the own changes among `left_out` (taken out of `open`'s document) as new changes
/// and returns a record, with the original bytes, for every change in `left_out`.
fn replay_own(
    open: &mut OpenDoc,
    actor: Option<&ActorId>,
    left_out: &[Change],
    reason: &str,
    now: i64,
) -> Result<Vec<(SetAsideChange, Vec<u8>)>> {
    let own: Vec<Change> = left_out
        .iter()
        .filter(|c| Some(c.actor_id()) == actor)
        .cloned()
        .collect();
    let done = rebase::replay(open.doc.automerge_mut(), &own)?;
    open.rewrite = true;
    let replayed: HashMap<ChangeHash, ChangeHash> = done.replayed.into_iter().collect();
    Ok(left_out
        .iter()
        .map(|change| {
            let record = SetAsideChange {
                change_hash: change.hash().to_string(),
                reason: reason.to_owned(),
                replayed_as: replayed.get(&change.hash()).map(ToString::to_string),
                recorded_at: now,
            };
            (record, change.raw_bytes().to_vec())
        })
        .collect())
}

fn load_session(inner: &mut Inner, plan: PlanId, peer: &SyncPeer) -> Result<sync::State> {
    if let Some(state) = inner.sessions.remove(&(plan, peer.clone())) {
        return Ok(state);
    }
    let stored = inner
        .store
        .read(|tx| store::load_sync_state(tx, &plan.to_string(), &peer.key))?;
    Ok(match stored {
        Some(bytes) => sync::State::decode(&bytes).unwrap_or_else(|_| sync::State::new()),
        None => sync::State::new(),
    })
}

fn describe_goal_edit(edit: &GoalEdit) -> String {
    let mut fields = Vec::new();
    if edit.client_words.is_some() {
        fields.push("client words".to_owned());
    }
    if edit.clinical_statement.is_some() {
        fields.push("clinical statement".to_owned());
    }
    if edit.life_area.is_some() {
        fields.push("life area".to_owned());
    }
    if let Some(status) = edit.status {
        fields.push(format!("status → {status}"));
    }
    format!("edited a goal: {}", fields.join(", "))
}

mod audit;
mod held;
mod incoming;
mod mirror;
mod operations;
mod signing;
mod vouch;
use held::HeldChanges;
pub use held::HeldCount;
pub use mirror::ListedDevice;

#[cfg(any(test, feature = "test-support"))]
mod unchecked;

#[cfg(test)]
mod read_model_tests;
#[cfg(test)]
mod tests;
