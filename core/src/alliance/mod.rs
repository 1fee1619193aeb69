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

/// One device's store of plans. Cheap to share (`Arc<Alliance>`): every method takes `&self`.
/// Writes serialize on the store lock, so calls from many threads never interleave them; a
/// sync step or an edit of one plan also holds that plan's lane, and judges and makes sync
/// messages without the store lock, so one plan's sync does not wait behind another's
/// (`docs/design.md`, "Per-plan lanes").
pub struct Alliance {
    inner: Mutex<Inner>,
    lanes: lanes::Lanes,
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
    /// Changes a conversation sent without their proof (signature or voucher), refused for
    /// it: not kept against the change (it may come again with its proof), but settled for
    /// the rest of that conversation, so that neither side asks for it again.
    unproven: HashMap<(PlanId, SyncPeer), HashSet<ChangeHash>>,
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
    /// Those changes' bytes, joined in dependency order: stored as they came when they are
    /// all the write appends (see [`Inner::persist_received`]).
    received_bytes: Vec<u8>,
    /// Plans due for compaction (see [`Alliance::compact_due`]).
    due: compaction::Due,
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
    /// This device's changes the stored document held when changes were first taken out of
    /// it (see [`OpenDoc::mark_rewrite`]): the rewrite lists none of them as waiting for its
    /// signature. None when not known (every own change not received is then listed).
    stored_own: Option<HashSet<ChangeHash>>,
    /// Own changes set aside while loading (see [`rebase::load_forked`]), recorded by the
    /// write that rewrites the document.
    pending_set_aside: Vec<(SetAsideChange, Vec<u8>)>,
    /// The plan last read from the document, with the heads it was read at (see
    /// [`Inner::read_plan`]).
    model: Option<(Vec<ChangeHash>, Plan)>,
    /// The heads of the read model SQLite holds for this plan, as far as this connection knows.
    kept_model_heads: Option<Vec<ChangeHash>>,
    /// What local edits' role rules read, kept across edits (see [`edits::EditView`]).
    edit_view: Option<edits::EditView>,
    /// The stored sizes that decide compaction, as this connection last wrote or read them
    /// (see [`Inner::persist_with`]); None when not known.
    stored_sizes: Option<DocumentSizes>,
}

impl OpenDoc {
    fn new(doc: PlanDoc, stored: bool) -> Self {
        let saved_heads = if stored { doc.heads() } else { Vec::new() };
        Self {
            doc,
            saved_heads,
            stored,
            rewrite: false,
            stored_own: None,
            pending_set_aside: Vec::new(),
            model: None,
            kept_model_heads: None,
            edit_view: None,
            stored_sizes: None,
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
                unproven: HashMap::new(),
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
                received_bytes: Vec::new(),
                due: compaction::Due::default(),
            }),
            lanes: lanes::Lanes::default(),
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
            guard.store.begin_locked()?;
            guard.written.clear();
            // A panic inside `f` (Automerge on a crafted change) must not leave the write
            // transaction open: every later write would fail, and other processes would wait.
            let mut unwinding = storage::Unwinding::armed(&mut guard);
            let inner = unwinding.inner();
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
            let ended = match result {
                Ok((out, outside)) => {
                    inner.written.clear();
                    (Ok(out), outside)
                }
                Err(error) => {
                    inner.forget_written();
                    (Err(error), Vec::new())
                }
            };
            unwinding.disarm();
            ended
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
    /// Another copy of this store wrote under this device's identity: this store took a new
    /// device id and key, and its own edits wait until it is enrolled again (see
    /// [`Alliance::copied_identity`]).
    pub copied_identity: bool,
}

mod audit;
mod compaction;
pub(crate) use compaction::COMPACT_AFTER_SESSION;
mod copied;
mod edits;
mod held;
mod incoming;
mod lanes;
mod mirror;
mod operations;
mod receiving;
mod relay_voucher;
mod set_aside;
mod signing;
mod storage;
mod syncing;
mod vouch;
pub use copied::{CopiedIdentity, COPIED};
use held::HeldChanges;
pub use held::HeldCount;
pub use mirror::ListedDevice;

#[cfg(any(test, feature = "test-support"))]
mod unchecked;

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod edit_view_tests;
#[cfg(test)]
mod lanes_tests;
#[cfg(test)]
mod read_model_tests;
#[cfg(test)]
mod tests;
