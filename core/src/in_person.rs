//! In-person sync: a sans-IO session between two devices over any byte transport (Bluetooth,
//! Nearby, Multipeer, a socket, an in-memory pipe). Frames in, frames out; the shell moves
//! the bytes. The frames are automerge-repo protocol messages (`sync/protocol/`), the
//! session the same on both sides (`docs/sync.md`, "In person").
//!
//! Each side sends `join` naming its device ([`InPersonSession::start`]). On the other's
//! `join`, each offers every plan it holds that enrolls the other device — so a newly enrolled
//! phone finds its plans (discovery) — and from then on answers each `sync` message with its
//! own until neither has anything to send. Changes the role rules refuse go back as a refused
//! notice, and the sender sets them aside as it would after a relay's. Sync state is kept per
//! peer device in the store, so a session after a dropped connection sends only what is new.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use crate::alliance::Alliance;
use crate::error::{Error, Result};
use crate::local_sync::OwnChangeRefused;
use crate::model::{DeviceId, Identity, PlanId};
use crate::own_refusals;
use crate::sync::protocol::{
    ChangeRefusal, DocumentMessage, Message, PeerId, PeerMetadata, DEFAULT_MAX_FRAME_BYTES,
};
use crate::sync::DocumentId;

/// The protocol version an in-person session speaks.
const PROTOCOL_VERSION: &str = "1";

/// One device's side of an in-person sync with one other device. `S` holds the store: an
/// `Arc<Alliance>` for a shell's session, `&Alliance` for an in-process loop
/// ([`crate::local_sync::sync_stores`]).
pub struct InPersonSession<S: Deref<Target = Alliance> = Arc<Alliance>> {
    store: S,
    me: Identity,
    /// The other device, once its `join` arrived.
    peer: Option<DeviceId>,
    /// Per plan in this session: whether this side's last turn had nothing to send.
    plans: BTreeMap<PlanId, bool>,
    /// This device's own changes the other device refused, now set aside here.
    refused: Vec<OwnChangeRefused>,
    /// Frames sent and their bytes.
    sent: (usize, usize),
    /// Automerge sync messages sent and their bytes.
    sync_sent: (usize, usize),
    ended: bool,
}

/// What an in-person session has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InPersonReport {
    /// Plans synced with the other device.
    pub plans: Vec<PlanId>,
    /// Frames this side sent, and their bytes.
    pub frames_sent: usize,
    pub bytes_sent: usize,
    /// Automerge sync messages among those frames, and their bytes.
    pub sync_messages_sent: usize,
    pub sync_bytes_sent: usize,
    /// This device's own changes the other device's rules refused (set aside here).
    pub refused: Vec<OwnChangeRefused>,
}

impl<S: Deref<Target = Alliance>> InPersonSession<S> {
    /// A session of this store's device.
    ///
    /// Errors: [`Error::NotInitialized`] for a store that is not a device yet.
    pub fn new(store: S) -> Result<Self> {
        let me = store.identity().ok_or(Error::NotInitialized)?;
        Ok(Self {
            store,
            me,
            peer: None,
            plans: BTreeMap::new(),
            refused: Vec::new(),
            sent: (0, 0),
            sync_sent: (0, 0),
            ended: false,
        })
    }

    /// The first frame to send: `join`, naming this device.
    pub fn start(&mut self) -> Vec<Vec<u8>> {
        let join = Message::Join {
            sender_id: self.my_peer_id(),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(self.me.device_id.to_string()),
                refused_notices: true,
                ..PeerMetadata::default()
            }),
            supported_protocol_versions: Some(vec![PROTOCOL_VERSION.to_owned()]),
        };
        self.frames(vec![join])
    }

    /// Takes one frame from the other device and returns the frames to send back (often
    /// none).
    ///
    /// Errors: [`Error::SyncMessage`] for a frame that does not decode, a `join` that names no
    /// device or this one, a second device, or an error the other side sent; store errors as
    /// they come. Nothing stored is changed by a frame that fails.
    pub fn receive(&mut self, frame: &[u8]) -> Result<Vec<Vec<u8>>> {
        let message = Message::decode_with_limit(frame, DEFAULT_MAX_FRAME_BYTES)
            .map_err(|e| Error::SyncMessage(e.to_string()))?;
        let mut out = Vec::new();
        match message {
            Message::Join { sender_id, .. } => {
                let device = DeviceId::parse(sender_id.as_str())
                    .map_err(|_| Error::SyncMessage("the other side is not a device".into()))?;
                if device == self.me.device_id {
                    return Err(Error::SyncMessage(
                        "the other side is this same device".into(),
                    ));
                }
                if self.peer.is_some_and(|known| known != device) {
                    return Err(Error::SyncMessage(
                        "a session syncs with one other device".into(),
                    ));
                }
                self.peer = Some(device);
                for plan in self.store.plan_ids()? {
                    if self.store.plan(plan)?.device(device).is_some() {
                        self.plans.insert(plan, false);
                        self.turn(plan, &mut out)?;
                    }
                }
            }
            Message::Sync(doc) | Message::Request(doc) => {
                let device = self.peer_device()?;
                let plan = PlanId::from(doc.document_id.as_uuid());
                let held = self.store.has_plan(plan)?;
                if held && self.store.plan(plan)?.device(device).is_none() {
                    // Not theirs to read or write: say so and keep nothing of it.
                    out.push(Message::DocUnavailable {
                        sender_id: self.my_peer_id(),
                        target_id: PeerId::new(device.to_string()),
                        document_id: doc.document_id,
                    });
                } else {
                    let receipt =
                        self.store
                            .receive_sync_message(plan, device.to_string(), &doc.data)?;
                    self.plans.insert(plan, false);
                    if !receipt.refused.is_empty() {
                        out.push(Message::Refused {
                            sender_id: self.my_peer_id(),
                            target_id: PeerId::new(device.to_string()),
                            document_id: doc.document_id,
                            refused: receipt
                                .refused
                                .into_iter()
                                .map(|r| ChangeRefusal {
                                    change_hash: r.change_hash,
                                    rule: r.rule,
                                })
                                .collect(),
                        });
                    }
                    self.turn(plan, &mut out)?;
                }
            }
            Message::Refused {
                document_id,
                refused,
                ..
            } => {
                self.peer_device()?;
                let plan = PlanId::from(document_id.as_uuid());
                let pairs: Vec<(String, String)> = refused
                    .into_iter()
                    .map(|r| (r.change_hash, r.rule))
                    .collect();
                for (change_hash, rule) in own_refusals::set_aside(&self.store, plan, &pairs)? {
                    self.refused.push(OwnChangeRefused {
                        plan,
                        device: self.me.device_id,
                        change_hash,
                        rule,
                    });
                }
                // Own changes replayed as new ones still go over.
                self.turn(plan, &mut out)?;
            }
            Message::DocUnavailable { document_id, .. } => {
                self.plans.insert(PlanId::from(document_id.as_uuid()), true);
            }
            Message::Leave { .. } => self.end(),
            Message::Error { message, .. } => {
                return Err(Error::SyncMessage(format!(
                    "the other device stopped the session: {message}"
                )))
            }
            Message::Peer { .. }
            | Message::Ephemeral { .. }
            | Message::HeadsDigests { .. }
            | Message::HeadsDiffer { .. }
            | Message::Unknown { .. } => {}
        }
        Ok(self.frames(out))
    }

    /// Frames this side has to send without being asked: its turn on every plan of the
    /// session. A shell calls it when the link has been quiet for a while, or after a local
    /// edit made during the session; none means this side is settled.
    ///
    /// Errors: store errors as they come; [`Error::SyncMessage`] before the other device
    /// joined.
    pub fn poll(&mut self) -> Result<Vec<Vec<u8>>> {
        self.peer_device()?;
        let mut out = Vec::new();
        let plans: Vec<PlanId> = self.plans.keys().copied().collect();
        for plan in plans {
            self.turn(plan, &mut out)?;
        }
        Ok(self.frames(out))
    }

    /// Whether this side has nothing more to send: the other device joined and this side's
    /// last turn on every plan of the session was quiet ([`InPersonSession::poll`] asks
    /// again). Both sides settled means both stores hold the same plans, changed alike (bar
    /// changes one side refused).
    pub fn is_settled(&self) -> bool {
        self.peer.is_some() && self.plans.values().all(|quiet| *quiet)
    }

    /// The other device, once it joined.
    pub fn peer(&self) -> Option<DeviceId> {
        self.peer
    }

    /// What the session has done so far.
    pub fn report(&self) -> InPersonReport {
        InPersonReport {
            plans: self.plans.keys().copied().collect(),
            frames_sent: self.sent.0,
            bytes_sent: self.sent.1,
            sync_messages_sent: self.sync_sent.0,
            sync_bytes_sent: self.sync_sent.1,
            refused: self.refused.clone(),
        }
    }

    /// Ends the session: forgets its in-memory sync state (what is persisted stays, so the
    /// next session with this device sends only news), then compacts up to 64 plans the
    /// session left due (`Alliance::compact_due`). Also done on drop.
    pub fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            if let Some(peer) = self.peer {
                self.store.end_sync_session(peer.to_string());
            }
            // What the session appended is compacted now, off the sync path (docs/design.md,
            // Compaction); a failure leaves the plans as stored.
            if let Err(error) = self
                .store
                .compact_due(crate::alliance::COMPACT_AFTER_SESSION)
            {
                tracing::warn!(%error, "compaction after an in-person session failed");
            }
        }
    }

    /// This side's turn on `plan`: its next sync message, if it has one.
    fn turn(&mut self, plan: PlanId, out: &mut Vec<Message>) -> Result<()> {
        let device = self.peer_device()?;
        match self.store.generate_sync_message(plan, device.to_string())? {
            Some(data) => {
                self.plans.insert(plan, false);
                self.sync_sent.0 += 1;
                self.sync_sent.1 += data.len();
                out.push(Message::Sync(DocumentMessage {
                    sender_id: self.my_peer_id(),
                    target_id: PeerId::new(device.to_string()),
                    document_id: DocumentId::from_uuid(plan.as_uuid()),
                    data,
                }));
            }
            None => {
                self.plans.insert(plan, true);
            }
        }
        Ok(())
    }

    fn peer_device(&self) -> Result<DeviceId> {
        self.peer
            .ok_or_else(|| Error::SyncMessage("the other device has not joined yet".into()))
    }

    fn my_peer_id(&self) -> PeerId {
        PeerId::new(self.me.device_id.to_string())
    }

    fn frames(&mut self, messages: Vec<Message>) -> Vec<Vec<u8>> {
        let frames: Vec<Vec<u8>> = messages.iter().map(Message::encode).collect();
        self.sent.0 += frames.len();
        self.sent.1 += frames.iter().map(Vec::len).sum::<usize>();
        frames
    }
}

impl<S: Deref<Target = Alliance>> Drop for InPersonSession<S> {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests;
