//! How a plan is stored: the documents a store holds open, catching up with other processes,
//! and every write of a document (one SQLite transaction with its catalog row, heads, read
//! model and compaction policy).

use super::*;

impl Inner {
    /// Drops documents opened for a sync that never stored them, unless a conversation
    /// still uses them.
    pub(super) fn drop_unstored_docs(&mut self) {
        let in_use: HashSet<PlanId> = self.sessions.keys().map(|(plan, _)| *plan).collect();
        self.docs
            .retain(|plan, open| open.stored || in_use.contains(plan));
    }

    /// Notices what other connections and processes wrote since this one last looked, and
    /// forgets every in-memory copy it made stale: documents reload from the file on next use.
    /// Returns the plans whose stored document changed. Costs one `PRAGMA data_version` when
    /// nobody else wrote; otherwise one read of every document's heads column.
    pub(super) fn catch_up(&mut self) -> Result<Vec<PlanId>> {
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
        // Another connection wrote: it may have compacted a document without moving its heads.
        for open in self.docs.values_mut() {
            open.stored_sizes = None;
        }
        for plan in &changed {
            self.docs.remove(plan);
            self.refused.remove(plan);
            self.indexed_devices.remove(plan);
        }
        self.known_heads = rows;
        self.reload_identity()?;
        self.seen_version = Some(version);
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// After a panic inside a write: rolls back the transaction it left open and forgets
    /// every in-memory copy (any of them may hold what the panic interrupted); documents and
    /// sync states reload from the file on next use.
    fn after_panic(&mut self) {
        self.store.abandon();
        self.docs.clear();
        self.sessions.clear();
        self.refused.clear();
        self.indexed_devices.clear();
        self.written.clear();
        self.received.clear();
        self.received_bytes.clear();
        self.seen_version = None;
    }

    /// After a rolled-back transaction: forgets what memory holds of the plans it wrote, and
    /// compares with the file again on next use.
    pub(super) fn forget_written(&mut self) {
        for plan in std::mem::take(&mut self.written) {
            self.docs.remove(&plan);
            self.sessions.retain(|(p, _), _| *p != plan);
            self.indexed_devices.remove(&plan);
            self.refused.remove(&plan);
        }
        self.seen_version = None;
    }

    /// See [`Alliance::plan_heads`].
    pub(super) fn plan_heads(
        &mut self,
        plans: &[PlanId],
    ) -> Result<Vec<(PlanId, Option<Vec<ChangeHash>>)>> {
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

    pub(super) fn actor(&self) -> ActorId {
        match &self.identity {
            Some(identity) => identity.device_id.actor(),
            None => ActorId::random(),
        }
    }

    pub(super) fn identity(&self) -> Result<Identity> {
        self.identity.clone().ok_or(Error::NotInitialized)
    }

    /// Hashes of the plan's refused changes.
    pub(super) fn refused_hashes(&mut self, plan: PlanId) -> Result<HashSet<ChangeHash>> {
        if !self.refused.contains_key(&plan) {
            let records = self.store.read(|tx| store::list_refusals(tx, Some(plan)))?;
            let hashes = records
                .iter()
                .filter(|(_, r)| !crate::authorship::lacks_proof(&r.rule))
                .filter_map(|(_, r)| r.change_hash.parse().ok())
                .collect();
            self.refused.insert(plan, hashes);
        }
        Ok(self.refused.get(&plan).cloned().unwrap_or_default())
    }

    /// The plan's document, loaded from SQLite on first use.
    pub(super) fn open(&mut self, plan: PlanId) -> Result<&mut OpenDoc> {
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
    pub(super) fn open_forked(&mut self, plan: PlanId) -> Result<OpenDoc> {
        let (snapshot, chunks) = self
            .store
            .read(|tx| store::load_document_parts(tx, &plan.to_string()))?
            .ok_or_else(|| Error::not_found("plan", plan))?;
        let (doc, replayed) = rebase::load_forked(&snapshot, &chunks)?;
        let mut open = OpenDoc::new(PlanDoc::from_automerge(doc, self.actor()), true);
        // The replays are new changes of this device; every other own change was stored.
        open.mark_rewrite();
        let copies: HashSet<ChangeHash> = replayed.iter().filter_map(|(_, copy)| *copy).collect();
        if let Some(stored) = open.stored_own.as_mut() {
            stored.retain(|hash| !copies.contains(hash));
        }
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
    pub(super) fn open_or_empty(&mut self, plan: PlanId) -> Result<&mut OpenDoc> {
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
    pub(super) fn read_plan(&mut self, plan: PlanId) -> Result<(Plan, ReadFrom)> {
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
    pub(super) fn store_new(&mut self, plan: PlanId, doc: PlanDoc) -> Result<bool> {
        self.docs.insert(plan, OpenDoc::new(doc, false));
        self.persist(plan, |_| Ok(()))
    }

    /// [`Inner::persist`] of a write whose new changes `received` (in dependency order) came
    /// from elsewhere (a peer, an import, a relay's mirror): none of them is listed as this
    /// device's own, waiting for its signature, even under its actor. When they are all the
    /// write appends, their bytes are stored as they came: `save_after` would build each change
    /// again from the document's operations (about 70 k instructions a change).
    pub(super) fn persist_received(
        &mut self,
        plan: PlanId,
        received: &[Change],
        extra: impl FnOnce(&rusqlite::Connection) -> Result<()>,
    ) -> Result<bool> {
        self.received = received.iter().map(Change::hash).collect();
        for change in received {
            self.received_bytes.extend_from_slice(change.raw_bytes());
        }
        let persisted = self.persist(plan, extra);
        self.received.clear();
        self.received_bytes.clear();
        persisted
    }

    /// The bytes a write appends for `open`: the received changes' own bytes when they are
    /// exactly the changes after the saved heads, else `save_after`.
    fn appended(&self, open: &OpenDoc) -> Vec<u8> {
        if !self.received.is_empty() {
            let new = open.doc.automerge().get_changes_meta(&open.saved_heads);
            if new.len() == self.received.len()
                && new.iter().all(|meta| self.received.contains(&meta.hash))
            {
                return self.received_bytes.clone();
            }
        }
        open.doc.save_after(&open.saved_heads)
    }

    /// Writes what changed in the document since it was last saved, in one SQLite
    /// transaction with `extra`. When SQLite fails the in-memory copy is dropped, so memory
    /// never runs ahead of the file.
    pub(super) fn persist(
        &mut self,
        plan: PlanId,
        extra: impl FnOnce(&rusqlite::Connection) -> Result<()>,
    ) -> Result<bool> {
        self.persist_with(plan, Catalog::Refresh, extra)
    }

    /// [`Inner::persist`], told whether the change may touch what the catalog lists.
    pub(super) fn persist_with(
        &mut self,
        plan: PlanId,
        catalog: Catalog,
        extra: impl FnOnce(&rusqlite::Connection) -> Result<()>,
    ) -> Result<bool> {
        self.persist_in(plan, (catalog, false), extra)
    }

    /// Stores a local edit of a plan (see `Alliance::edit_scoped`): [`Inner::persist_with`]
    /// written straight into the transaction [`Alliance::writing`] opened, without a savepoint
    /// of its own. On an error the caller returns it, and the whole transaction rolls back.
    pub(super) fn persist_edit(&mut self, plan: PlanId, catalog: Catalog) -> Result<bool> {
        self.persist_in(plan, (catalog, true), |_| Ok(()))
    }

    /// [`Inner::persist_with`]; `edit`: a local edit of a plan, stored without a savepoint (see
    /// [`Inner::persist_edit`]).
    ///
    /// Callers hold SQLite's write lock and caught up with the file first (see
    /// [`Alliance::writing`]), so the document in memory is the stored one plus what this
    /// call writes: compaction merges exactly the chunks stored, and the heads column is the
    /// heads of what is stored, in the same transaction.
    fn persist_in(
        &mut self,
        plan: PlanId,
        (catalog, edit): (Catalog, bool),
        extra: impl FnOnce(&rusqlite::Connection) -> Result<()>,
    ) -> Result<bool> {
        let now = clock::now_ms();
        let Some(open) = self.docs.get(&plan) else {
            return Err(Error::not_found("plan", plan));
        };
        let heads = open.doc.heads();
        let changed = heads != open.saved_heads || open.rewrite;
        let doc_id = plan.to_string();
        // A local edit ran on a plan (its rules read the plan's id) and no edit removes it.
        let is_plan = edit || open.doc.is_plan();
        let refresh = catalog == Catalog::Refresh || open.rewrite;
        let devices = if is_plan && changed && refresh {
            Some(open.doc.device_access()).filter(|d| self.indexed_devices.get(&plan) != Some(d))
        } else {
            None
        };
        let verify = self.verify_writes;
        let own_unsigned = if changed {
            self.own_unsigned(open)
        } else {
            Vec::new()
        };
        let appended = (changed && open.stored && !open.rewrite).then(|| self.appended(open));
        let write = |tx: &rusqlite::Connection| {
            // Where this write lists its own changes as waiting for their signature: in the
            // chunk it appends, or apart when the document is written whole.
            let mut listed_in_chunk = false;
            // The stored sizes after this write, when known without reading them.
            let mut sizes_after = open.stored_sizes;
            if changed {
                if open.stored {
                    // A document that lost changes (see `rewrite`) is replaced whole; otherwise
                    // the new changes are appended. Chunks that outgrew half the snapshot are left
                    // to `Alliance::compact_due`, and compacted here only past its hard cap
                    // (see `compaction::Policy`). The sizes that decide it are read once per
                    // document and then kept in memory (see `OpenDoc::stored_sizes`).
                    let compact = open.rewrite || {
                        let bytes = appended.as_deref().unwrap_or_default();
                        let head_bytes = heads_bytes(&heads);
                        let before = match open.stored_sizes {
                            Some(sizes) => sizes,
                            None => store::document_sizes(tx, &doc_id)?
                                .ok_or_else(|| Error::not_found("plan", plan))?,
                        };
                        store::append_chunk(tx, &doc_id, bytes, &head_bytes, now, &own_unsigned)?;
                        listed_in_chunk = true;
                        let sizes = DocumentSizes {
                            chunk_bytes: before.chunk_bytes.saturating_add(bytes.len()),
                            chunk_count: before.chunk_count.saturating_add(1),
                            ..before
                        };
                        sizes_after = Some(sizes);
                        compaction::Policy::of(&sizes) == compaction::Policy::Inline
                    };
                    if compact {
                        let merged = store::last_chunk_seq(tx, &doc_id)?;
                        let snapshot = open.doc.save();
                        let head_bytes = heads_bytes(&heads);
                        store::replace_snapshot(
                            tx,
                            &doc_id,
                            &snapshot,
                            &head_bytes,
                            Some(now),
                            merged,
                        )?;
                        // Read again by the next write.
                        sizes_after = None;
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
                // A goal's own edit (words, a check-in…) changes no catalog field, and the
                // catalog's time is the document's: nothing to write, unless the plan has no
                // catalog row yet.
                let listed = is_plan && !refresh && store::has_plan_summary(tx, plan)?;
                if is_plan && !listed {
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
            if !listed_in_chunk {
                store::save_unsigned(tx, &doc_id, &own_unsigned)?;
            }
            for (record, bytes) in &open.pending_set_aside {
                store::record_set_aside(tx, plan, record, bytes)?;
            }
            extra(tx)?;
            if verify && changed {
                verify_stored_heads(tx, &doc_id, &heads)?;
            }
            Ok(sizes_after)
        };
        let result = if edit {
            self.store.write_in_place(write)
        } else {
            self.store.write(write)
        };
        match result {
            Ok(sizes_after) => {
                if changed {
                    self.known_heads.insert(doc_id, Some(heads_bytes(&heads)));
                    self.written.insert(plan);
                }
                if let Some(open) = self.docs.get_mut(&plan) {
                    open.saved_heads = heads;
                    open.stored |= changed;
                    open.rewrite = false;
                    open.stored_own = None;
                    open.pending_set_aside.clear();
                    open.stored_sizes = sizes_after;
                }
                if let Some(devices) = devices {
                    self.indexed_devices.insert(plan, devices);
                }
                if sizes_after
                    .is_some_and(|s| compaction::Policy::of(&s) == compaction::Policy::Due)
                {
                    self.due.note(plan);
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

/// Guards a write transaction (see `Alliance::writing`): dropped while still armed — a panic
/// unwinding through the write — it rolls the transaction back and forgets what memory holds.
pub(super) struct Unwinding<'a> {
    inner: &'a mut Inner,
    armed: bool,
}

impl<'a> Unwinding<'a> {
    pub(super) fn armed(inner: &'a mut Inner) -> Self {
        Self { inner, armed: true }
    }

    pub(super) fn inner(&mut self) -> &mut Inner {
        self.inner
    }

    /// The write ended (committed or rolled back): nothing to undo.
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.after_panic();
        }
    }
}
