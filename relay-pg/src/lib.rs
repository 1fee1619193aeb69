//! The Alliance relay's store on PostgreSQL: any number of `alliance relay` processes share one
//! database, and none keeps anything that matters in memory (`docs/operations.md`).
//!
//! The database holds what a SQLite relay keeps: each plan's document (a snapshot and the
//! changes stored since, compacted), its heads, the devices it lists with their token hashes
//! (`plan_devices`), sync state per peer, refusals and the audit trail. Each instance mirrors
//! the plans it serves into a working copy, an [`Alliance`] in a temporary file encrypted
//! with a key that lives only in this process, which judges what peers push by the role
//! rules exactly as a SQLite relay does; what it accepts is written to the database before
//! the peer hears back.
//!
//! Concurrency: every write to a plan runs in one PostgreSQL transaction holding a
//! transaction-scoped advisory lock on that plan (`pg_advisory_xact_lock`), and first brings
//! the working copy up to what the database holds, so two instances receiving changes to one
//! plan apply them one after the other, each on top of the other's, and neither is lost.
//! Each write ends with `pg_notify` (plan id, write number and new heads, delivered at
//! commit); every instance LISTENs and pushes the plan to its own peers
//! ([`SyncStore::outside_changes`]), catching up after a lost connection (see `listen.rs`).

mod listen;
mod relay_key;
mod schema;
pub mod testing;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alliance_core::sync::{heads_digest, receipt_refusals, vouched_error};
use alliance_core::sync::{ChangeRefusal, DocumentId, HeadsDigest, SyncError};
use alliance_core::sync::{SyncStore, TokenVoucher};
use alliance_core::{Alliance, PlanId, StoreKey, SyncPeer, SyncReceipt};
use automerge::{Automerge, ChangeHash};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

/// The channel every instance LISTENs on; payload: `instance plan number heads` (`listen.rs`).
pub const CHANNEL: &str = "alliance_relay";
/// Changes stored after a plan's snapshot before the next write folds them into it.
const COMPACT_AFTER: i64 = 256;
/// Connections each instance keeps to the database at most.
const POOL_SIZE: usize = 16;

/// What can go wrong opening or using the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// PostgreSQL refused or failed a statement.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The database's schema is newer than this build knows.
    #[error("the database's relay schema is version {found}; this build knows up to {supported}")]
    SchemaTooNew { found: i32, supported: i32 },
    /// The working copy refused or failed.
    #[error(transparent)]
    Core(#[from] alliance_core::Error),
    /// The push was judged on a copy that missed another instance's write of a plan listing
    /// one of the tokens it lists: nothing of it was stored, and its next attempt is judged
    /// on what is stored.
    #[error("another relay instance changed a plan this push depends on: try again")]
    Stale,
    /// A stored value does not read back (a damaged row).
    #[error("a stored value is damaged: {0}")]
    Damaged(String),
    /// Starting the store's threads or its temporary files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<deadpool_postgres::PoolError> for PgStoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Pool(error.to_string())
    }
}

type Result<T, E = PgStoreError> = std::result::Result<T, E>;

fn store_error(error: PgStoreError) -> SyncError {
    match error {
        PgStoreError::Core(error) => vouched_error(error),
        other => SyncError::store(other),
    }
}

/// The relay's store on PostgreSQL. Cheap to share (`Arc`); every method blocks the calling
/// thread (the relay calls them off its reactor, as it does SQLite's).
pub struct PgStore {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The working copy; replaced by a fresh one when it may hold what the database refused.
    work: RwLock<Working>,
    dir: tempfile::TempDir,
    storage_id: String,
    /// The database's relay key (`relay_key.rs`): every working copy vouches with it.
    relay_key: alliance_core::authorship::DeviceKey,
    /// This process's name in notifications, so it skips its own.
    instance: String,
    mirror: Mutex<Mirror>,
    outside: Mutex<Option<mpsc::UnboundedReceiver<DocumentId>>>,
}

/// The working copy and its generation (which replacement it is).
#[derive(Clone)]
struct Working {
    alliance: Arc<Alliance>,
    generation: u64,
}

/// What the working copy holds of the database: a cache, rebuilt from the database at will.
#[derive(Default)]
struct Mirror {
    /// The generation of the working copy this describes.
    generation: u64,
    /// Per plan, the last stored change number the working copy holds.
    loaded: HashMap<PlanId, i64>,
    /// The highest `documents.changed` caught up with for every plan.
    changed_upto: i64,
    /// Sync states already taken from the database, per plan and peer key.
    seeded: HashSet<(PlanId, String)>,
}

/// A plan's row, as a write finds it under the plan's lock.
struct Stored {
    snapshot_seq: i64,
    last_seq: i64,
    heads: Vec<ChangeHash>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`, any libpq-style connection string),
    /// brings the schema up to date (numbered migrations, one transaction, safe when several
    /// instances start at once) and starts listening for other instances' writes.
    ///
    /// Errors: [`PgStoreError::Url`], [`PgStoreError::Postgres`] when the server is not
    /// reachable or refuses, [`PgStoreError::SchemaTooNew`].
    pub fn open(url: &str) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error: tokio_postgres::Error| PgStoreError::Url(error.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("alliance-postgres")
            .enable_all()
            .build()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|error| PgStoreError::Pool(error.to_string()))?;
        let (storage_id, relay_key) = runtime.block_on(async {
            let mut client = pool.get().await?;
            schema::migrate(&mut client).await?;
            let storage_id = schema::storage_id(&client).await?;
            Ok::<_, PgStoreError>((storage_id, relay_key::load_or_make(&client).await?))
        })?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(listen::listen(
            config,
            pool.clone(),
            instance.clone(),
            sender,
        ));
        let dir = tempfile::tempdir()?;
        let work = RwLock::new(Working {
            alliance: Arc::new(working_copy(dir.path(), 0, &relay_key)?),
            generation: 0,
        });
        Ok(Self {
            runtime: Some(runtime),
            pool,
            work,
            dir,
            storage_id,
            relay_key,
            instance,
            mirror: Mutex::new(Mirror::default()),
            outside: Mutex::new(Some(receiver)),
        })
    }

    fn work(&self) -> Working {
        self.work.read().clone()
    }

    /// Replaces the working copy with an empty one, rebuilt from the database as plans are
    /// used: after a push was judged on a copy that missed another instance's write, so that
    /// nothing of it stays behind in the copy.
    fn reset_working_copy(&self) -> Result<Working> {
        let mut work = self.work.write();
        let generation = work.generation + 1;
        *work = Working {
            alliance: Arc::new(working_copy(self.dir.path(), generation, &self.relay_key)?),
            generation,
        };
        *self.mirror.lock() = Mirror {
            generation,
            ..Mirror::default()
        };
        Ok(work.clone())
    }

    /// The relay's public key, the one counselors pin (`alliance plan set --relay-key`): the
    /// same for every instance over this database.
    pub fn relay_public_key(&self) -> alliance_core::authorship::PublicKey {
        self.relay_key.public_key()
    }

    /// [`PgStore::open`] as the `Arc<dyn SyncStore>` a relay serves.
    pub fn open_shared(url: &str) -> Result<Arc<dyn SyncStore>> {
        Ok(Arc::new(Self::open(url)?))
    }

    fn block<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match &self.runtime {
            Some(runtime) => runtime.block_on(work),
            None => Err(PgStoreError::Pool("the store is closed".into())),
        }
    }

    /// Brings the working copy's `plan` up to what the database holds, as `client` sees it.
    /// Returns the plan's row, None when the database does not hold the plan.
    async fn catch_up(
        &self,
        client: &impl GenericClient,
        work: &Working,
        plan: PlanId,
    ) -> Result<Option<Stored>> {
        let id = plan.to_string();
        let Some(row) = client
            .query_opt(
                "SELECT snapshot_seq, last_seq, heads FROM documents WHERE plan = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let stored = Stored {
            snapshot_seq: row.get(0),
            last_seq: row.get(1),
            heads: parse_heads(row.get(2))?,
        };
        let loaded = {
            let mirror = self.mirror.lock();
            if mirror.generation != work.generation {
                // Replaced meanwhile: the caller's copy is no longer consulted.
                return Ok(Some(stored));
            }
            mirror.loaded.get(&plan).copied()
        };
        if loaded.is_some_and(|seq| seq >= stored.last_seq) {
            return Ok(Some(stored));
        }
        let mut changes = Vec::new();
        let after = match loaded {
            Some(seq) if seq >= stored.snapshot_seq => seq,
            _ => {
                // The changes the working copy lacks were folded into the snapshot.
                let snapshot: Option<Vec<u8>> = client
                    .query_one("SELECT snapshot FROM documents WHERE plan = $1", &[&id])
                    .await?
                    .get(0);
                if let Some(bytes) = snapshot {
                    let doc = Automerge::load(&bytes)
                        .map_err(|error| PgStoreError::Damaged(error.to_string()))?;
                    changes.extend(doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()));
                }
                stored.snapshot_seq
            }
        };
        let rows = client
            .query(
                "SELECT seq, change FROM chunks WHERE plan = $1 AND seq > $2 AND seq <= $3 \
                 ORDER BY seq",
                &[&id, &after, &stored.last_seq],
            )
            .await?;
        changes.extend(rows.iter().map(|row| row.get::<_, Vec<u8>>(1)));
        if !changes.is_empty() {
            let signatures = signatures_of(client, plan, &changes).await?;
            work.alliance.adopt_changes(plan, &changes, &signatures)?;
        }
        let mut mirror = self.mirror.lock();
        if mirror.generation == work.generation {
            let seq = mirror.loaded.entry(plan).or_insert(stored.last_seq);
            *seq = (*seq).max(stored.last_seq);
        }
        Ok(Some(stored))
    }

    /// [`PgStore::catch_up`] outside a write: one consistent read (a compaction between two
    /// statements would otherwise hide changes).
    async fn catch_up_reading(&self, work: &Working, plan: PlanId) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        self.catch_up(&tx, work, plan).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Catches up every plan another instance wrote since this one last looked: the token
    /// rules ([`TokenVoucher`]) look at every plan that lists a token.
    async fn catch_up_changed(&self, client: &impl GenericClient, work: &Working) -> Result<()> {
        let upto = self.mirror.lock().changed_upto;
        let rows = client
            .query(
                "SELECT plan, changed FROM documents WHERE changed > $1 ORDER BY changed",
                &[&upto],
            )
            .await?;
        for row in rows {
            let plan = parse_plan(row.get(0))?;
            self.catch_up(client, work, plan).await?;
            let changed: i64 = row.get(1);
            let mut mirror = self.mirror.lock();
            if mirror.generation == work.generation {
                mirror.changed_upto = mirror.changed_upto.max(changed);
            }
        }
        Ok(())
    }

    /// Gives the working copy the sync state another instance kept for this peer, the first
    /// time this instance meets the peer about `plan`.
    async fn seed_sync_state(
        &self,
        client: &impl GenericClient,
        work: &Working,
        plan: PlanId,
        peer: &SyncPeer,
    ) -> Result<()> {
        let key = (plan, peer.key.clone());
        if self.mirror.lock().seeded.contains(&key) {
            return Ok(());
        }
        let row = client
            .query_opt(
                "SELECT state FROM sync_states WHERE plan = $1 AND peer = $2",
                &[&plan.to_string(), &peer.key],
            )
            .await?;
        if let Some(row) = row {
            work.alliance
                .seed_sync_state(plan, &peer.key, &row.get::<_, Vec<u8>>(0))?;
        }
        let mut mirror = self.mirror.lock();
        if mirror.generation == work.generation {
            mirror.seeded.insert(key);
        }
        Ok(())
    }

    fn receive(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
        voucher: Option<&TokenVoucher>,
    ) -> Result<Vec<ChangeRefusal>> {
        let plan = plan_of(document);
        self.block(async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(plan)])
                .await?;
            // Taken under the plan's lock: a replacement made by a write to this plan that
            // failed is seen here.
            let work = self.work();
            if voucher.is_some() {
                self.catch_up_changed(&tx, &work).await?;
            }
            let stored = self.catch_up(&tx, &work, plan).await?;
            self.seed_sync_state(&tx, &work, plan, peer).await?;
            let tokens_before = listed_tokens(&work.alliance, plan)?;
            let receipt = match voucher {
                Some(voucher) => {
                    work.alliance
                        .receive_vouched(plan, peer.clone(), message, voucher)
                }
                None => work
                    .alliance
                    .receive_sync_message(plan, peer.clone(), message),
            }?;
            if voucher.is_some() {
                self.check_new_tokens(&tx, &work, plan, &tokens_before)
                    .await?;
            }
            let written = self.write_changes(&tx, &work, plan, stored).await?;
            self.write_records(&tx, &work, plan, peer, &receipt).await?;
            tx.commit().await?;
            if let Some(last_seq) = written {
                let mut mirror = self.mirror.lock();
                if mirror.generation == work.generation {
                    let seq = mirror.loaded.entry(plan).or_insert(last_seq);
                    *seq = (*seq).max(last_seq);
                }
            }
            Ok(receipt_refusals(receipt))
        })
    }

    /// The token rules judged a push on this instance's copy of the other plans; another
    /// instance may have stored a plan listing one of the tokens the push newly lists after
    /// this copy last caught up. Each such token is locked (so two instances do not both list
    /// it at once) and looked up in the database: when a plan listing it is newer there than
    /// here, the judgement does not stand — the working copy, which holds the pushed changes,
    /// is replaced by a fresh one that holds those plans, and the push fails
    /// ([`PgStoreError::Stale`]); the device's next attempt is judged on what is stored.
    async fn check_new_tokens(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        work: &Working,
        plan: PlanId,
        before: &HashSet<String>,
    ) -> Result<()> {
        let mut new: Vec<String> = listed_tokens(&work.alliance, plan)?
            .difference(before)
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        new.sort();
        for token in &new {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&format!("token {token}")],
            )
            .await?;
        }
        let rows = tx
            .query(
                "SELECT DISTINCT d.plan, doc.last_seq FROM plan_devices d \
                 JOIN documents doc ON doc.plan = d.plan \
                 WHERE d.token_hash = ANY($1) AND d.plan <> $2",
                &[&new, &plan.to_string()],
            )
            .await?;
        let mut stale = Vec::new();
        {
            let mirror = self.mirror.lock();
            for row in &rows {
                let other = parse_plan(row.get(0))?;
                let last_seq: i64 = row.get(1);
                let known = mirror.generation == work.generation
                    && mirror
                        .loaded
                        .get(&other)
                        .is_some_and(|seq| *seq >= last_seq);
                if !known {
                    stale.push(other);
                }
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let fresh = self.reset_working_copy()?;
        for other in stale {
            self.catch_up(tx, &fresh, other).await?;
        }
        Err(PgStoreError::Stale)
    }
    /// Writes the changes of `plan` that the working copy holds and the database does not
    /// (`stored`: the plan's row, read under the lock), with its heads, its device index and a
    /// notification; compacts its chunks into the snapshot when they grow. Returns the new
    /// last change number, None when nothing was written.
    async fn write_changes(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        work: &Working,
        plan: PlanId,
        stored: Option<Stored>,
    ) -> Result<Option<i64>> {
        let alliance = &work.alliance;
        if !alliance.has_plan(plan)? {
            return Ok(None);
        }
        let known = stored.as_ref().map(|s| s.heads.clone()).unwrap_or_default();
        let new = alliance.changes_after(plan, &known)?;
        if new.is_empty() {
            return Ok(None);
        }
        let id = plan.to_string();
        let (snapshot_seq, first) = stored
            .as_ref()
            .map_or((0, 1), |s| (s.snapshot_seq, s.last_seq + 1));
        let last_seq = first + new.len() as i64 - 1;
        let heads = alliance
            .plan_heads(&[plan])?
            .into_iter()
            .next()
            .and_then(|(_, heads)| heads)
            .unwrap_or_default();
        let heads_text = heads_text(&heads);
        let now = now_ms();
        let sql = if stored.is_some() {
            "UPDATE documents SET last_seq = $2, heads = $3, \
             changed = nextval('relay_change_seq'), updated_at = $4 WHERE plan = $1 \
             RETURNING changed"
        } else {
            "INSERT INTO documents (plan, last_seq, heads, changed, updated_at) \
             VALUES ($1, $2, $3, nextval('relay_change_seq'), $4) RETURNING changed"
        };
        let changed: i64 = tx
            .query_one(sql, &[&id, &last_seq, &heads_text, &now])
            .await?
            .get(0);
        let hashes = change_hashes(&new)?;
        let signed = alliance.signatures_of(plan, &hashes)?;
        let signed_hashes: Vec<String> = signed.iter().map(|(hash, _)| hash.to_string()).collect();
        let signatures: Vec<Vec<u8>> = signed.into_iter().map(|(_, bytes)| bytes).collect();
        tx.execute(
            "INSERT INTO change_signatures (plan, change_hash, signature) \
             SELECT $1, h, s FROM unnest($2::text[], $3::bytea[]) AS t(h, s) \
             ON CONFLICT DO NOTHING",
            &[&id, &signed_hashes, &signatures],
        )
        .await?;
        let seqs: Vec<i64> = (first..=last_seq).collect();
        tx.execute(
            "INSERT INTO chunks (plan, seq, change) \
             SELECT $1, s, c FROM unnest($2::bigint[], $3::bytea[]) AS t(s, c)",
            &[&id, &seqs, &new],
        )
        .await?;
        if last_seq - snapshot_seq > COMPACT_AFTER {
            // Under the plan's lock the working copy is exactly what the database holds.
            let snapshot = alliance.saved_document(plan)?;
            tx.execute(
                "UPDATE documents SET snapshot = $2, snapshot_seq = $3 WHERE plan = $1",
                &[&id, &snapshot, &last_seq],
            )
            .await?;
            tx.execute(
                "DELETE FROM chunks WHERE plan = $1 AND seq <= $2",
                &[&id, &last_seq],
            )
            .await?;
        }
        let devices = alliance.listed_devices(plan)?;
        tx.execute("DELETE FROM plan_devices WHERE plan = $1", &[&id])
            .await?;
        for device in devices {
            tx.execute(
                "INSERT INTO plan_devices (plan, device_id, token_hash, revoked, member_id) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &id,
                    &device.device_id.to_string(),
                    &device.token_hash,
                    &device.revoked,
                    &device.member_id,
                ],
            )
            .await?;
        }
        let payload = listen::payload(&self.instance, plan, changed, &heads_text);
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await?;
        Ok(Some(last_seq))
    }

    /// The refusals of a receipt and the peer's sync state, in the write's transaction.
    async fn write_records(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        work: &Working,
        plan: PlanId,
        peer: &SyncPeer,
        receipt: &SyncReceipt,
    ) -> Result<()> {
        let id = plan.to_string();
        for refused in &receipt.refused {
            tx.execute(
                "INSERT INTO refusals (plan, change_hash, peer, device_id, member_id, rule, \
                 change_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &id,
                    &refused.change_hash,
                    &refused.peer,
                    &refused.device_id,
                    &refused.member_id.map(|m| m.to_string()),
                    &refused.rule,
                    &refused.change_at,
                    &refused.recorded_at,
                ],
            )
            .await?;
        }
        if let Some(state) = work.alliance.stored_sync_state(plan, &peer.key)? {
            tx.execute(
                "INSERT INTO sync_states (plan, peer, state) VALUES ($1, $2, $3) \
                 ON CONFLICT (plan, peer) DO UPDATE SET state = excluded.state",
                &[&id, &peer.key, &state],
            )
            .await?;
        }
        Ok(())
    }

    async fn plans_where(&self, sql: &str, value: &str) -> Result<Vec<DocumentId>> {
        let client = self.pool.get().await?;
        let rows = client.query(sql, &[&value]).await?;
        rows.iter()
            .map(|row| parse_plan(row.get(0)).map(document_of))
            .collect()
    }

    /// Refusals recorded for `plan` (change hash, rule), oldest first.
    pub fn refusals_of(&self, plan: PlanId) -> Result<Vec<(String, String)>> {
        self.block(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT change_hash, rule FROM refusals WHERE plan = $1 ORDER BY id",
                    &[&plan.to_string()],
                )
                .await?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    /// The number of audit entries of `kind` (`read`, `write`, …).
    pub fn audit_count(&self, kind: &str) -> Result<i64> {
        self.block(async {
            let client = self.pool.get().await?;
            let row = client
                .query_one("SELECT count(*) FROM audit WHERE kind = $1", &[&kind])
                .await?;
            Ok(row.get(0))
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // May be dropped inside another runtime (a relay's): never block there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SyncStore for PgStore {
    fn storage_id(&self) -> Result<String, SyncError> {
        Ok(self.storage_id.clone())
    }

    fn document_ids(&self) -> Result<Vec<DocumentId>, SyncError> {
        self.block(async {
            let client = self.pool.get().await?;
            let rows = client
                .query("SELECT plan FROM documents ORDER BY plan", &[])
                .await?;
            rows.iter()
                .map(|row| parse_plan(row.get(0)).map(document_of))
                .collect()
        })
        .map_err(store_error)
    }

    fn enrolled_documents(&self, storage_id: &str) -> Result<Vec<DocumentId>, SyncError> {
        self.block(self.plans_where(
            "SELECT DISTINCT plan FROM plan_devices WHERE device_id = $1 ORDER BY plan",
            storage_id,
        ))
        .map_err(store_error)
    }

    fn documents_of_token(&self, token_hash: &str) -> Result<Vec<DocumentId>, SyncError> {
        self.block(self.plans_where(
            "SELECT DISTINCT plan FROM plan_devices WHERE token_hash = $1 AND NOT revoked \
             ORDER BY plan",
            token_hash,
        ))
        .map_err(store_error)
    }

    fn heads_digests(
        &self,
        documents: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Option<HeadsDigest>)>, SyncError> {
        let ids: Vec<String> = documents.iter().map(|d| plan_of(*d).to_string()).collect();
        let found: HashMap<String, String> = self
            .block(async {
                let client = self.pool.get().await?;
                let rows = client
                    .query(
                        "SELECT plan, heads FROM documents WHERE plan = ANY($1)",
                        &[&ids],
                    )
                    .await?;
                Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
            })
            .map_err(store_error)?;
        documents
            .iter()
            .zip(&ids)
            .map(|(document, id)| {
                let digest = match found.get(id) {
                    Some(heads) => Some(heads_digest(&parse_heads(heads).map_err(store_error)?)),
                    None => None,
                };
                Ok((*document, digest))
            })
            .collect()
    }

    fn has_document(&self, document: DocumentId) -> Result<bool, SyncError> {
        let id = plan_of(document).to_string();
        self.block(async {
            let client = self.pool.get().await?;
            Ok(client
                .query_opt("SELECT 1 FROM documents WHERE plan = $1", &[&id])
                .await?
                .is_some())
        })
        .map_err(store_error)
    }

    fn generate_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let plan = plan_of(document);
        let work = self.work();
        self.block(async {
            self.catch_up_reading(&work, plan).await?;
            let client = self.pool.get().await?;
            self.seed_sync_state(&client, &work, plan, peer).await
        })
        .map_err(store_error)?;
        work.alliance
            .generate_sync_message(plan, peer.clone())
            .map_err(SyncError::store)
    }

    fn receive_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        self.receive(document, peer, message, None)
            .map_err(store_error)
    }

    fn receive_vouched_sync_message(
        &self,
        document: DocumentId,
        peer: &SyncPeer,
        message: &[u8],
        voucher: &TokenVoucher,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        self.receive(document, peer, message, Some(voucher))
            .map_err(store_error)
    }

    fn record_audit(&self, entry: &alliance_core::audit::NewAuditEntry) -> Result<(), SyncError> {
        self.block(async {
            let client = self.pool.get().await?;
            let (mut device, mut member) = (entry.device_id.clone(), entry.member_id.clone());
            if let (None, Some(hash)) = (&device, &entry.token_hash) {
                if let Some(row) = client
                    .query_opt(
                        "SELECT device_id, member_id FROM plan_devices WHERE token_hash = $1 \
                         LIMIT 1",
                        &[hash],
                    )
                    .await?
                {
                    device = row.get(0);
                    member = member.or(row.get(1));
                }
            }
            client
                .execute(
                    "INSERT INTO audit (at, kind, outcome, device_id, member_id, plan, remote, \
                     detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &now_ms(),
                        &entry.kind.as_str(),
                        &entry.outcome,
                        &device,
                        &member,
                        &entry.plan_id,
                        &entry.remote,
                        &entry.detail,
                    ],
                )
                .await?;
            Ok(())
        })
        .map_err(store_error)
    }

    fn outside_changes(&self) -> Option<mpsc::UnboundedReceiver<DocumentId>> {
        self.outside.lock().take()
    }

    fn end_sync_session(&self, peer: &SyncPeer) {
        self.work().alliance.end_sync_session(peer.clone());
    }

    fn forget_peer(&self, peer: &SyncPeer) -> Result<(), SyncError> {
        self.work()
            .alliance
            .forget_sync_peer(peer.clone())
            .map_err(SyncError::store)?;
        self.mirror
            .lock()
            .seeded
            .retain(|(_, key)| *key != peer.key);
        self.block(async {
            let client = self.pool.get().await?;
            client
                .execute("DELETE FROM sync_states WHERE peer = $1", &[&peer.key])
                .await?;
            Ok(())
        })
        .map_err(store_error)
    }
}

/// The hashes of raw changes. Errors: [`PgStoreError::Damaged`].
fn change_hashes(changes: &[Vec<u8>]) -> Result<Vec<ChangeHash>> {
    changes
        .iter()
        .map(|bytes| {
            automerge::Change::from_bytes(bytes.clone())
                .map(|change| change.hash())
                .map_err(|error| PgStoreError::Damaged(format!("a stored change: {error}")))
        })
        .collect()
}

/// The stored signatures of these raw changes of `plan`.
async fn signatures_of(
    client: &impl GenericClient,
    plan: PlanId,
    changes: &[Vec<u8>],
) -> Result<Vec<(ChangeHash, Vec<u8>)>> {
    let hashes: Vec<String> = change_hashes(changes)?
        .iter()
        .map(ChangeHash::to_string)
        .collect();
    let rows = client
        .query(
            "SELECT change_hash, signature FROM change_signatures \
             WHERE plan = $1 AND change_hash = ANY($2)",
            &[&plan.to_string(), &hashes],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let hash: &str = row.get(0);
            let hash = hash
                .parse()
                .map_err(|_| PgStoreError::Damaged(format!("a signed change hash {hash:?}")))?;
            Ok((hash, row.get(1)))
        })
        .collect()
}

/// A new working copy in `dir`: an encrypted store whose key lives only in this process, which
/// vouches with the database's `relay_key`.
fn working_copy(
    dir: &std::path::Path,
    generation: u64,
    relay_key: &alliance_core::authorship::DeviceKey,
) -> Result<Alliance> {
    let mut key = [0u8; alliance_core::store::STORE_KEY_LEN];
    for part in key.chunks_mut(16) {
        let random = uuid::Uuid::new_v4();
        part.copy_from_slice(&random.as_bytes()[..part.len()]);
    }
    let path = dir.join(format!("mirror-{generation}.db"));
    let work = Alliance::open_encrypted(&path, &StoreKey::new(key))?;
    work.adopt_relay_key(relay_key)?;
    Ok(work)
}

/// The token hashes `plan` lists in `work` (none when it does not hold the plan).
fn listed_tokens(work: &Alliance, plan: PlanId) -> Result<HashSet<String>> {
    if !work.has_plan(plan)? {
        return Ok(HashSet::new());
    }
    Ok(work
        .listed_devices(plan)?
        .into_iter()
        .filter_map(|device| device.token_hash)
        .collect())
}

fn plan_of(document: DocumentId) -> PlanId {
    PlanId::from(document.as_uuid())
}

fn document_of(plan: PlanId) -> DocumentId {
    DocumentId::from_uuid(plan.as_uuid())
}

fn parse_plan(text: &str) -> Result<PlanId> {
    PlanId::parse(text).map_err(|_| PgStoreError::Damaged(format!("plan id {text:?}")))
}

/// The advisory lock of a plan: the first 8 bytes of its UUID.
fn lock_key(plan: PlanId) -> i64 {
    let bytes = plan.as_uuid().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    i64::from_be_bytes(first)
}

fn heads_text(heads: &[ChangeHash]) -> String {
    let mut sorted: Vec<String> = heads.iter().map(ChangeHash::to_string).collect();
    sorted.sort();
    sorted.join(",")
}

fn parse_heads(text: &str) -> Result<Vec<ChangeHash>> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse()
                .map_err(|_| PgStoreError::Damaged(format!("a head {part:?}")))
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
