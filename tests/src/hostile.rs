//! Hostile inputs, built by hand as an attacker would: change bombs (a few bytes of
//! run-length encoded columns claiming millions of operations), chains of changes built on
//! one never sent, and a [`SyncStore`] that slips them into its sync messages — so the real
//! sync client attacks a relay, or the real relay (a fake one) attacks a device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alliance_core::sync::{DocumentId, HeadsDigest, SyncError, SyncStore};
use alliance_core::{Alliance, PlanId, SyncPeer};
use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ReadDoc, ROOT};
use sha2::{Digest, Sha256};

fn uleb(out: &mut Vec<u8>, value: u64) {
    leb128::write::unsigned(out, value).expect("write to a Vec");
}

fn sleb(out: &mut Vec<u8>, value: i64) {
    leb128::write::signed(out, value).expect("write to a Vec");
}

/// A change chunk by `actor` (its `seq`, first op number `start_op`, built on `deps`) whose
/// columns say, in about 40 bytes, "put null at root key `k`, `operations` times": what
/// Automerge decodes into that many operations (and allocates for) before any rule runs.
pub fn change_bomb(
    actor: &ActorId,
    seq: u64,
    start_op: u64,
    deps: &[ChangeHash],
    operations: u64,
) -> Vec<u8> {
    let count = i64::try_from(operations).expect("operations fit i64");
    // (column spec, data): key string, insert, action, value metadata, pred group — each one
    // run of `operations` equal values.
    let mut columns: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut key = Vec::new();
    sleb(&mut key, count);
    uleb(&mut key, 1);
    key.push(b'k');
    columns.push(((1 << 4) | 5, key));
    let mut insert = Vec::new();
    uleb(&mut insert, operations);
    columns.push(((3 << 4) | 4, insert));
    for (spec, value) in [((4 << 4) | 2, 1u64), ((5 << 4) | 6, 0), (7 << 4, 0)] {
        let mut data = Vec::new();
        sleb(&mut data, count);
        uleb(&mut data, value);
        columns.push((spec, data));
    }
    let mut body = Vec::new();
    uleb(&mut body, deps.len() as u64);
    for dep in deps {
        body.extend_from_slice(&dep.0);
    }
    let actor = actor.to_bytes();
    uleb(&mut body, actor.len() as u64);
    body.extend_from_slice(actor);
    uleb(&mut body, seq);
    uleb(&mut body, start_op);
    sleb(&mut body, 1_795_000_000_000);
    uleb(&mut body, 0);
    uleb(&mut body, 0);
    uleb(&mut body, columns.len() as u64);
    for (spec, data) in &columns {
        uleb(&mut body, *spec);
        uleb(&mut body, data.len() as u64);
    }
    for (_, data) in &columns {
        body.extend_from_slice(data);
    }
    chunk(1, &body)
}

/// A storage chunk: magic, checksum (the first 4 bytes of SHA-256 over type, length and
/// body), type, length, body.
fn chunk(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut hashed = vec![kind];
    uleb(&mut hashed, body.len() as u64);
    hashed.extend_from_slice(body);
    let hash = Sha256::digest(&hashed);
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend_from_slice(&hash[..4]);
    out.extend_from_slice(&hashed);
    out
}

/// The last op number and seq `actor` used in `doc`.
pub fn next_numbers(doc: &Automerge, actor: &ActorId) -> (u64, u64) {
    let changes = doc.get_changes(&[]);
    let seq = changes.iter().filter(|c| c.actor_id() == actor).count() as u64 + 1;
    let max_op = changes.iter().map(|c| c.max_op()).max().unwrap_or(0);
    (seq, max_op + 1)
}

/// `length` changes by `actor` on the plan `saved` (a saved document), each built on the one
/// before, the first on a change that is not among them: raw change chunks, every one of
/// them waiting for a dependency its sender never sends. `salt` makes chains distinct.
pub fn held_chain(saved: &[u8], actor: &ActorId, length: usize, salt: i64) -> Vec<Vec<u8>> {
    let mut doc = Automerge::load(saved).expect("plan document");
    doc.set_actor(actor.clone());
    let put = |doc: &mut Automerge, i: usize| {
        let mut tx = doc.transaction();
        let scratch = match tx.get(ROOT, "goals").expect("goals") {
            Some((_, goals)) => goals,
            None => tx.put_object(ROOT, "goals", ObjType::Map).expect("map"),
        };
        tx.put(&scratch, "x", salt * 1_000_000 + i as i64)
            .expect("put");
        tx.commit();
    };
    put(&mut doc, 0);
    let withheld = doc.get_heads();
    for i in 1..=length {
        put(&mut doc, i);
    }
    doc.get_changes(&withheld)
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

/// A sync message about a plan that carries `chunks` as its changes, shaped like `honest`
/// (a real message for the same plan).
pub fn message_with(honest: &[u8], chunks: Vec<Vec<u8>>) -> Vec<u8> {
    let (_, honest) =
        alliance_core::authorship::carrier::split_raw(honest).expect("honest message");
    let mut message = sync::Message::decode(honest).expect("honest message");
    message.changes = chunks.into();
    message.encode()
}

/// A store that speaks for `inner` honestly, except that the next message it generates for a
/// document carries the chunks queued for it ([`HostileStore::queue`]). Behind the sync client
/// it attacks a relay; behind a relay (a fake one) it attacks the devices that sync with it.
pub struct HostileStore {
    pub inner: Arc<Alliance>,
    queued: Mutex<HashMap<DocumentId, Vec<Vec<Vec<u8>>>>>,
}

impl HostileStore {
    pub fn new(inner: Arc<Alliance>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            queued: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `chunks` with the next message about `plan` (one message per call).
    pub fn queue(&self, plan: PlanId, chunks: Vec<Vec<u8>>) {
        self.queued
            .lock()
            .expect("lock")
            .entry(DocumentId::from_uuid(plan.as_uuid()))
            .or_default()
            .push(chunks);
    }

    /// Messages still queued.
    pub fn pending(&self) -> usize {
        self.queued
            .lock()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum()
    }
}

fn plan(document: DocumentId) -> PlanId {
    PlanId::from(document.as_uuid())
}

impl SyncStore for HostileStore {
    fn storage_id(&self) -> Result<String, SyncError> {
        self.inner.storage_id()
    }

    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        self.inner.document_ids()
    }

    fn enrolled_documents(&self, storage_id: &str) -> Result<Vec<DocumentId>, SyncError> {
        self.inner.enrolled_documents(storage_id)
    }

    fn documents_of_token(&self, token_hash: &str) -> Result<Vec<DocumentId>, SyncError> {
        self.inner.documents_of_token(token_hash)
    }

    fn heads_digests(
        &self,
        documents: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Option<HeadsDigest>)>, SyncError> {
        Ok(documents.iter().map(|d| (*d, None)).collect())
    }

    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        // A document with chunks queued is claimed as held, so a relay over this store serves it.
        let queued = self
            .queued
            .lock()
            .expect("lock")
            .get(&document)
            .is_some_and(|list| !list.is_empty());
        Ok(queued || self.inner.has_document(document)?)
    }

    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let next = {
            let mut queued = self.queued.lock().expect("lock");
            match queued.get_mut(&document) {
                Some(list) if !list.is_empty() => Some(list.remove(0)),
                _ => None,
            }
        };
        let Some(chunks) = next else {
            return SyncStore::generate_sync_message(self.inner.as_ref(), document, peer);
        };
        // A fresh conversation always has something to say: its shape is borrowed.
        let shape = self
            .inner
            .generate_sync_message(plan(document), SyncPeer::conversation("hostile-shape"))
            .map_err(SyncError::store)?
            .ok_or(SyncError::Closed)?;
        Ok(Some(message_with(&shape, chunks)))
    }

    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<alliance_core::sync::ChangeRefusal>, SyncError> {
        SyncStore::receive_sync_message(self.inner.as_ref(), document, peer, message)
    }

    fn end_sync_session(&self, peer: &SyncPeer) {
        SyncStore::end_sync_session(self.inner.as_ref(), peer)
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Starts measuring the peak anew (Linux: resets VmHWM to the current resident size).
/// Returns the resident size it starts from.
pub fn reset_peak_memory() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    peak_memory()
}
