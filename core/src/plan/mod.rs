//! The Automerge schema of a plan: read it into model types, write it by operations.

pub mod chunks;
pub mod expansion;
mod fields;
mod hash;
pub mod history;
pub mod read;
pub mod read_model;
pub mod rebase;
pub mod schema;
pub mod write;

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash};

pub use hash::content_hash;
pub use read::Summary;

/// What a relay needs to know of an enrolled device to let it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAccess {
    pub device_id: DeviceId,
    /// Hex SHA-256 of the device's relay token, once one was issued.
    pub token_hash: Option<String>,
    /// A counselor revoked the device.
    pub revoked: bool,
    /// The member the device belongs to.
    pub member_id: Option<crate::model::MemberId>,
}

use crate::error::Result;
use crate::model::{DeviceId, GoalId, HistoryEntry, Plan};

/// Snapshots up to this many bytes undeflated are stored as they are: zlib sets up its window
/// and tables for each column it deflates (about 0.9 M instructions), which costs more than
/// the few KB it saves on a small plan, and such a plan is saved whole at every compaction.
/// A year plan (about 50 KB undeflated, 21 KB deflated) is still deflated (BENCHMARKS.md, P5
/// and P6).
pub const DEFLATE_FROM: usize = 16 * 1024;

/// One plan's Automerge document.
#[derive(Debug, Clone)]
pub struct PlanDoc {
    doc: Automerge,
}

impl PlanDoc {
    /// An empty document (a plan about to arrive by sync, or about to be created).
    pub fn empty(actor: ActorId) -> Self {
        Self {
            doc: Automerge::new().with_actor(actor),
        }
    }

    /// Loads saved bytes (a snapshot followed by any incremental chunks).
    pub fn load(bytes: &[u8], actor: ActorId) -> Result<Self> {
        let doc = Automerge::load(bytes)?.with_actor(actor);
        Ok(Self { doc })
    }

    /// Wraps a document read some other way (see [`rebase::load_forked`]).
    pub fn from_automerge(doc: Automerge, actor: ActorId) -> Self {
        Self {
            doc: doc.with_actor(actor),
        }
    }

    pub fn automerge(&self) -> &Automerge {
        &self.doc
    }

    pub fn automerge_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// Whether the document holds a plan yet.
    pub fn is_plan(&self) -> bool {
        read::is_plan(&self.doc)
    }

    /// The whole plan as model types.
    pub fn read(&self) -> Result<Plan> {
        read::read_plan(&self.doc)
    }

    /// What the role rules need to judge a local edit: members, devices and at most one goal
    /// (see [`read::read_plan_for_edit`]).
    pub fn read_for_edit(&self, goal: Option<GoalId>, with_checkins: bool) -> Result<Plan> {
        read::read_plan_for_edit(&self.doc, goal, with_checkins)
    }

    /// The status of `goal`, None when the plan has no such goal (see
    /// [`read::read_goal_status`]).
    pub fn goal_status(&self, goal: GoalId) -> Option<crate::model::GoalStatus> {
        read::read_goal_status(&self.doc, goal)
    }

    /// The catalog facts, without reading goals.
    pub fn summary(&self) -> Result<Summary> {
        read::read_summary(&self.doc)
    }

    /// The devices the plan enrolls (its `devices` keys), sorted.
    pub fn device_ids(&self) -> Vec<DeviceId> {
        let mut ids: Vec<DeviceId> = read::read_devices(&self.doc)
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        ids.sort();
        ids
    }

    /// Enrolled devices with their token hashes and revocation, sorted by device id (what a
    /// relay indexes to authenticate devices).
    pub fn device_access(&self) -> Vec<DeviceAccess> {
        read::read_device_access(&self.doc)
    }

    pub fn history(&self) -> Vec<HistoryEntry> {
        history::history(&self.doc)
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Runs `edit` as one Automerge change with a description and time. Nothing is applied if
    /// `edit` fails. Returns None when the edit made no operation.
    pub fn change<F>(&mut self, description: &str, now: i64, edit: F) -> Result<Option<ChangeHash>>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<()>,
    {
        let options = CommitOptions::default()
            .with_message(description.to_owned())
            .with_time(now);
        match self.doc.transact_with(|_| options, edit) {
            Ok(success) => Ok(success.hash),
            Err(failure) => Err(failure.error),
        }
    }

    /// Changes made after `heads`, encoded as incremental bytes.
    pub fn save_after(&self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// A compact snapshot of the whole document: deflated only when its columns, undeflated,
    /// take more than [`DEFLATE_FROM`] bytes (`docs/design.md`, "Compaction").
    pub fn save(&self) -> Vec<u8> {
        let plain = self.doc.save_with_options(automerge::SaveOptions {
            deflate: false,
            retain_orphans: true,
        });
        if plain.len() <= DEFLATE_FROM {
            plain
        } else {
            self.doc.save()
        }
    }

    /// Every change in the document.
    pub fn changes(&self) -> Vec<Change> {
        self.doc.get_changes(&[])
    }
}
