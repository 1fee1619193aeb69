//! A simulated network for tests (the `test-support` feature): the relay's peer sessions and
//! devices' client sessions joined by in-memory frame queues, with no socket, no runtime and no
//! clock.
//!
//! Every frame is encoded and decoded as on the wire (CBOR, each side's frame limit). The relay
//! end does what `connection.rs` does over a WebSocket: it checks the token and takes one of its
//! connection slots, answers `join`, runs each message through the peer's session, refuses a
//! misbehaving peer with an `error` frame and closes, passes each connection's news to the
//! others through the relay's event channel, and ends the conversation in the store when the
//! connection goes. The device end is a `ClientSession` driven as `client/mod.rs` drives it.
//! Only the transport and the timers are left out: WebSocket framing, TLS, handshake, settle,
//! idle and keepalive timers, reconnects — the socket tests listed in `docs/sync.md` keep those.
//!
//! - [`SimRelay::sync_once`]: one device's `sync_once` against the relay.
//! - [`SimRelay::open`]: a device's connection held open (what watch mode keeps), moved a step
//!   at a time or settled, with [`SimDevice::local_change`] for its edits; [`settle`] runs several.
//! - [`SimRelay::connect`]: a raw connection where the test speaks for the peer, frame by frame.
//! - [`Faults`]: frames of different plans passing each other, a link that drops.

use std::collections::VecDeque;

use super::connection::{authenticate_blocking, end_conversation, refusal, COMPACT_PER_BURST};
use super::peer_session::{answer_join, PeerSession};
use super::*;
use crate::sync::client::session::ClientSession;
use crate::sync::client::{SyncOptions, SyncSummary};

/// Most steps a network may take before it counts as never settling.
const MAX_STEPS: usize = 1_000_000;

/// A relay with no listener: the state `Relay::bind` builds, over `store`, with `options`.
pub struct SimRelay {
    shared: Arc<Shared>,
}

impl SimRelay {
    /// A relay serving `store`. Errors: the store cannot tell its storage id.
    pub fn new(store: Arc<dyn SyncStore>, options: RelayOptions) -> Result<Self, SyncError> {
        let storage_id = store.storage_id()?;
        let (_, drain) = watch::channel(None);
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                options,
                storage_id,
                peer_id: PeerId::new("alliance-relay-sim"),
                events: broadcast::channel(1024).0,
                counters: Arc::new(RelayCounters::default()),
                per_token: Mutex::new(HashMap::new()),
                drain,
            }),
        })
    }

    /// Connections opened so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.counters.connections.load(Ordering::Relaxed)
    }

    /// Connections closed for bad input so far.
    pub fn connections_refused(&self) -> u64 {
        self.shared.counters.refused.load(Ordering::Relaxed)
    }

    /// A connection presenting `token` (as `?token=` on the URL), before its `join`: the test
    /// speaks for the peer. A refused token is told at once (an `error` frame, then closed).
    pub fn connect(&self, token: Option<&str>) -> SimConnection {
        let id = self
            .shared
            .counters
            .connections
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let remote = SocketAddr::from(([192, 0, 2, 1], (id % 60_000) as u16 + 1024));
        let who = Who::new(remote, token);
        let access = authenticate_blocking(&self.shared, token);
        let entry = who.authentication(access.as_ref().err());
        if let Err(error) = self.shared.store.record_audit(&entry) {
            warn!(%error, "could not append to the audit trail");
        }
        let mut connection = SimConnection {
            shared: Arc::clone(&self.shared),
            id,
            end: End::Closed,
            events: None,
            out: VecDeque::new(),
        };
        match access {
            Ok(access) => connection.end = End::Authenticated { access, who },
            Err(error) => connection.refuse(None, &who, &error),
        }
        connection
    }

    /// A device's connection of `store` with `options` (its token included), `join` in flight.
    ///
    /// Errors: the store cannot tell its storage id.
    pub fn open(
        &self,
        store: Arc<dyn SyncStore>,
        options: &SyncOptions,
    ) -> Result<SimDevice, SyncError> {
        self.open_with(store, options, Faults::none())
    }

    /// [`SimRelay::open`] over a link with `faults`.
    pub fn open_with(
        &self,
        store: Arc<dyn SyncStore>,
        options: &SyncOptions,
        faults: Faults,
    ) -> Result<SimDevice, SyncError> {
        let storage_id = store.storage_id()?;
        let (session, join) = ClientSession::new(store, storage_id, options);
        let mut device = SimDevice {
            session,
            relay: self.connect(options.token.as_deref()),
            to_relay: VecDeque::new(),
            to_device: Vec::new(),
            traffic: Traffic::default(),
            max_frame_bytes: options.max_frame_bytes,
            faults,
        };
        device.send(&join);
        Ok(device)
    }

    /// Syncs `store` once, as `sync::sync_once` does over a WebSocket: until every plan is
    /// settled, then the connection closes. Errors as `sync_once`'s, the relay's refusals as
    /// [`SyncError::Remote`]; a relay that closes without a word is [`SyncError::Closed`], and
    /// one that leaves the device waiting is [`SyncError::Timeout`] (no time passes).
    pub fn sync_once(
        &self,
        store: Arc<dyn SyncStore>,
        options: &SyncOptions,
    ) -> Result<SyncSummary, SyncError> {
        self.sync_once_with(store, options, Faults::none())
    }

    /// [`SimRelay::sync_once`] over a link with `faults`; a dropped link is
    /// [`SyncError::Transport`].
    pub fn sync_once_with(
        &self,
        store: Arc<dyn SyncStore>,
        options: &SyncOptions,
        faults: Faults,
    ) -> Result<SyncSummary, SyncError> {
        let mut device = self.open_with(store, options, faults)?;
        let result = device.run_until_settled();
        let summary = device.summary();
        device.close();
        result.map(|()| summary)
    }
}

/// What can go wrong on a simulated link.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Seed of the choice among frames waiting for the device (None: in order).
    reorder: Option<u64>,
    /// The link drops once this many frames moved.
    drop_after: Option<usize>,
    /// Each side takes every frame waiting for it in one step, as the drivers do with the
    /// frames already received (`receive_all`, `handle_all`).
    batching: bool,
    moved: usize,
}

impl Faults {
    /// A link that keeps order and never drops.
    pub fn none() -> Self {
        Self::default()
    }

    /// Frames to the device about different plans pass each other, chosen by `seed`; one
    /// plan's frames, and frames about no plan, keep their order (as on any stream transport).
    pub fn reordering(seed: u64) -> Self {
        Self {
            reorder: Some(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            ..Self::default()
        }
    }

    /// Every frame waiting for a side arrives together (in the order `pick` gives).
    pub fn batching(mut self) -> Self {
        self.batching = true;
        self
    }

    /// The link drops after `frames` frames moved (either way); what was in flight is lost.
    pub fn dropping_after(mut self, frames: usize) -> Self {
        self.drop_after = Some(frames);
        self
    }

    /// Counts one frame moving; false when the link is down.
    fn carry(&mut self) -> bool {
        if self.drop_after.is_some_and(|limit| self.moved >= limit) {
            return false;
        }
        self.moved += 1;
        true
    }

    /// The index of the next frame to deliver among `waiting` (not empty).
    fn pick(&mut self, waiting: &[SimFrame]) -> usize {
        let Some(state) = self.reorder.as_mut() else {
            return 0;
        };
        let mut free = Vec::new();
        for (at, frame) in waiting.iter().enumerate() {
            let Some(document) = frame.document else {
                // Nothing passes a frame about no plan, and it passes nothing.
                if at == 0 {
                    free.push(at);
                }
                break;
            };
            if waiting[..at].iter().all(|f| f.document != Some(document)) {
                free.push(at);
            }
        }
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        free[(*state % free.len() as u64) as usize]
    }
}

/// One frame in flight: its bytes, and the plan it is about (for [`Faults`]).
#[derive(Debug, Clone)]
struct SimFrame {
    document: Option<DocumentId>,
    bytes: Vec<u8>,
}

impl SimFrame {
    fn of(message: &Message) -> Self {
        Self {
            document: message.document_id(),
            bytes: message.encode(),
        }
    }
}

/// Where the relay's end of a connection stands.
enum End {
    /// The token checked (or none required), `join` not yet read.
    Authenticated { access: Option<Access>, who: Who },
    /// The peer joined: its session runs.
    Joined { session: PeerSession },
    /// Closed by either side.
    Closed,
}

/// The relay's end of one connection. Dropping it is the peer going away.
pub struct SimConnection {
    shared: Arc<Shared>,
    id: u64,
    end: End,
    /// The relay's news, subscribed once the peer joined.
    events: Option<broadcast::Receiver<RelayEvent>>,
    /// Frames the relay sent that the peer has not read.
    out: VecDeque<SimFrame>,
}

impl SimConnection {
    /// Whether the relay still serves this connection.
    pub fn is_open(&self) -> bool {
        !matches!(self.end, End::Closed)
    }

    /// The peer sends `message`.
    pub fn send(&mut self, message: &Message) {
        self.send_frame(&message.encode());
    }

    /// The peer's frames that arrive together, handled in one step once joined (each frame
    /// alone before that, or when one does not decode).
    pub fn send_frames(&mut self, frames: Vec<Vec<u8>>) {
        let joined = matches!(self.end, End::Joined { .. });
        let limit = self.shared.options.max_frame_bytes;
        let decoded: Option<Vec<Message>> = frames
            .iter()
            .map(|bytes| Message::decode_with_limit(bytes, limit).ok())
            .collect();
        match decoded {
            Some(messages) if joined && messages.len() > 1 => {
                let outcome = self.step(|session| session.handle_all(messages));
                if let Ok(false) = outcome {
                    self.finish();
                }
            }
            _ => {
                for bytes in frames {
                    self.send_frame(&bytes);
                }
            }
        }
    }

    /// The peer sends one binary frame of any bytes; ignored once the connection is closed.
    pub fn send_frame(&mut self, bytes: &[u8]) {
        if !self.is_open() {
            return;
        }
        let message = match Message::decode_with_limit(bytes, self.shared.options.max_frame_bytes) {
            Ok(message) => message,
            Err(error) => return self.fail(&error),
        };
        match std::mem::replace(&mut self.end, End::Closed) {
            End::Authenticated { access, mut who } => {
                let opened = access.as_ref().map(|access| access.documents.clone());
                match answer_join(&self.shared, opened.as_ref(), message) {
                    Ok((peer, answer)) => {
                        who.joined(&peer.key);
                        self.events = Some(self.shared.events.subscribe());
                        self.out.push_back(SimFrame::of(&answer));
                        let session =
                            PeerSession::new(self.id, peer, Arc::clone(&self.shared), access, who);
                        self.end = End::Joined { session };
                    }
                    Err(error) => self.refuse(None, &who, &error),
                }
            }
            End::Joined { session } => {
                self.end = End::Joined { session };
                let outcome = self.step(|session| session.handle(message));
                if let Ok(false) = outcome {
                    self.finish();
                }
            }
            End::Closed => {}
        }
    }

    /// Passes the relay's news from other connections on to this peer; false when there was
    /// none.
    pub fn pump(&mut self) -> bool {
        let mut moved = false;
        while self.is_open() {
            let Some(event) = self.events.as_mut().map(broadcast::Receiver::try_recv) else {
                break;
            };
            moved |=
                event.is_ok() || matches!(event, Err(broadcast::error::TryRecvError::Lagged(_)));
            match event {
                Ok(event) => {
                    let _ = self.step(move |session| session.relay(event));
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    let _ = self.step(PeerSession::push_all);
                }
                Err(_) => break,
            }
        }
        moved
    }

    /// Every message the relay sent the peer since the last call, news passed on first.
    pub fn take(&mut self) -> Vec<Message> {
        self.pump();
        self.out
            .drain(..)
            .filter_map(|frame| Message::decode(&frame.bytes).ok())
            .collect()
    }

    /// The peer goes away.
    pub fn close(self) {}

    /// Runs one step of the joined peer's session, keeps what it sends (also when the step
    /// failed), and closes the connection on an error as the driver does.
    fn step<T>(
        &mut self,
        work: impl FnOnce(&mut PeerSession) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        let End::Joined { session } = &mut self.end else {
            return Err(SyncError::Closed);
        };
        let result = work(session);
        let sent = std::mem::take(&mut session.out);
        self.out.extend(sent.iter().map(SimFrame::of));
        match &result {
            Ok(_) => {}
            // A peer that is gone is not refused.
            Err(SyncError::Closed | SyncError::Transport(_)) => self.finish(),
            Err(error) => self.fail(error),
        }
        result
    }

    /// Ends the connection for `error`: the peer is told why (an `error` frame) and closed.
    fn fail(&mut self, error: &SyncError) {
        match std::mem::replace(&mut self.end, End::Closed) {
            End::Authenticated { who, .. } => self.refuse(None, &who, error),
            End::Joined { session } => {
                let peer = session.peer.id.clone();
                self.refuse(Some(&peer), &session.who, error);
                self.end_conversation(&session);
            }
            End::Closed => {}
        }
    }

    /// Tells the peer why it is disconnected, as `connection.rs` does, and closes.
    fn refuse(&mut self, peer: Option<&PeerId>, who: &Who, error: &SyncError) {
        if let Some(told) = refusal(&self.shared, peer, error) {
            self.out.push_back(SimFrame::of(&told));
        }
        if let Err(error) = self.shared.store.record_audit(&who.refusal(error)) {
            warn!(%error, "could not append to the audit trail");
        }
        self.end = End::Closed;
    }

    /// Closes quietly (the peer left, or the relay ended the session without blame).
    fn finish(&mut self) {
        if let End::Joined { session } = std::mem::replace(&mut self.end, End::Closed) {
            self.end_conversation(&session);
        }
    }

    fn end_conversation(&self, session: &PeerSession) {
        let ended = end_conversation(
            self.shared.store.as_ref(),
            &session.conversation,
            session.peer.ephemeral,
        );
        if let Err(error) = ended {
            warn!(%error, "could not forget an ephemeral peer's sync state");
        }
        // As `connection.rs` does once a connection's burst is over.
        if let Err(error) = self.shared.store.compact_due(COMPACT_PER_BURST) {
            warn!(%error, "compaction after a burst failed");
        }
    }
}

impl Drop for SimConnection {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A device connected to a [`SimRelay`]: its client session, the relay's end, and the frames
/// in flight each way.
pub struct SimDevice {
    session: ClientSession,
    relay: SimConnection,
    to_relay: VecDeque<SimFrame>,
    to_device: Vec<SimFrame>,
    traffic: Traffic,
    max_frame_bytes: usize,
    faults: Faults,
}

impl SimDevice {
    /// Moves one frame (to the relay first), passes on one batch of the relay's news, or lets
    /// the device push its next window when nothing else moves; false when nothing did.
    ///
    /// Errors: as `sync_once`'s (the relay's refusal is [`SyncError::Remote`]); a dropped link
    /// is [`SyncError::Transport`].
    pub fn step(&mut self) -> Result<bool, SyncError> {
        // What the relay said on its own (a refused token, before `join`).
        self.collect();
        if !self.to_relay.is_empty() {
            // One frame, or (batching) every waiting frame at once.
            let mut frames = Vec::new();
            while let Some(frame) = self.to_relay.pop_front() {
                if !self.faults.carry() {
                    return Err(self.drop_link());
                }
                frames.push(frame.bytes);
                if !self.faults.batching {
                    break;
                }
            }
            self.relay.send_frames(frames);
            self.collect();
            return Ok(true);
        }
        if self.relay.pump() {
            self.collect();
            return Ok(true);
        }
        if !self.to_device.is_empty() {
            let mut messages = Vec::new();
            while !self.to_device.is_empty() {
                if !self.faults.carry() {
                    return Err(self.drop_link());
                }
                let at = self.faults.pick(&self.to_device);
                let frame = self.to_device.remove(at);
                self.traffic.frames_received += 1;
                self.traffic.bytes_received += frame.bytes.len() as u64;
                messages.push(Message::decode_with_limit(
                    &frame.bytes,
                    self.max_frame_bytes,
                )?);
                if !self.faults.batching {
                    break;
                }
            }
            let out = if self.faults.batching {
                self.session.receive_all(messages)?
            } else {
                self.session.receive(messages.remove(0))?
            };
            for message in out {
                self.send(&message);
            }
            return Ok(true);
        }
        if self.relay.is_open() && self.session.is_syncing() && self.session.waits_to_push() {
            for message in self.session.quiet()? {
                self.send(&message);
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Steps until nothing moves, then checks every plan of the session is settled.
    ///
    /// Errors: as [`SimDevice::step`]'s; a relay that closed ([`SyncError::Closed`]) or left
    /// plans unsettled ([`SyncError::Timeout`]).
    pub fn settle(&mut self) -> Result<(), SyncError> {
        for _ in 0..MAX_STEPS {
            if !self.step()? {
                return self.settled();
            }
        }
        Err(SyncError::Timeout("the simulated network to settle"))
    }

    /// A plan changed in the device's store (watch mode's local change): its next message.
    pub fn local_change(&mut self, document: DocumentId) -> Result<(), SyncError> {
        for message in self.session.local_change(document)? {
            self.send(&message);
        }
        Ok(())
    }

    /// Whether the relay still serves this connection.
    pub fn is_open(&self) -> bool {
        self.relay.is_open()
    }

    /// What the session did so far, with the frames and bytes it moved.
    pub fn summary(&self) -> SyncSummary {
        self.session.summary(self.traffic)
    }

    /// Closes the connection: the relay reads what was sent before the close, as over a
    /// stream, and both ends end the conversation in their stores.
    pub fn close(mut self) {
        while let Some(frame) = self.to_relay.pop_front() {
            self.relay.send_frame(&frame.bytes);
        }
        self.relay.finish();
        self.session.end();
    }

    /// Steps as `sync_once`'s driver waits: until the session is syncing, every plan settled
    /// and none waiting for its first push.
    fn run_until_settled(&mut self) -> Result<(), SyncError> {
        for _ in 0..MAX_STEPS {
            if self.session.is_syncing()
                && self.session.all_settled()
                && !self.session.waits_to_push()
            {
                return Ok(());
            }
            if !self.step()? {
                return self.settled();
            }
        }
        Err(SyncError::Timeout("the simulated network to settle"))
    }

    /// Ok when the session is settled; otherwise why it waits.
    fn settled(&self) -> Result<(), SyncError> {
        if self.session.is_syncing() && self.session.all_settled() {
            Ok(())
        } else if !self.relay.is_open() {
            Err(SyncError::Closed)
        } else {
            Err(SyncError::Timeout(self.session.awaiting()))
        }
    }

    fn send(&mut self, message: &Message) {
        let frame = SimFrame::of(message);
        self.traffic.frames_sent += 1;
        self.traffic.bytes_sent += frame.bytes.len() as u64;
        if self.relay.is_open() {
            self.to_relay.push_back(frame);
        }
    }

    /// Moves what the relay sent into the device's queue.
    fn collect(&mut self) {
        self.to_device.extend(self.relay.out.drain(..));
    }

    /// The link goes down: frames in flight are lost and the relay sees the peer gone.
    fn drop_link(&mut self) -> SyncError {
        self.to_relay.clear();
        self.to_device.clear();
        self.relay.finish();
        SyncError::Transport("the simulated link dropped".into())
    }
}

/// Steps every device in turn until none moves, then checks each is settled.
///
/// Errors: the first device's error, as [`SimDevice::settle`]'s.
pub fn settle(devices: &mut [SimDevice]) -> Result<(), SyncError> {
    for _ in 0..MAX_STEPS {
        let mut moved = false;
        for device in devices.iter_mut() {
            moved |= device.step()?;
        }
        if !moved {
            return devices.iter().try_for_each(SimDevice::settled);
        }
    }
    Err(SyncError::Timeout("the simulated network to settle"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(document: Option<DocumentId>) -> SimFrame {
        SimFrame {
            document,
            bytes: Vec::new(),
        }
    }

    #[test]
    fn reordering_keeps_each_plans_frames_and_frames_about_no_plan_in_order() {
        let (a, b) = (
            DocumentId::from_uuid(uuid::Uuid::new_v4()),
            DocumentId::from_uuid(uuid::Uuid::new_v4()),
        );
        let waiting = [
            frame(Some(a)),
            frame(Some(a)),
            frame(Some(b)),
            frame(None),
            frame(Some(b)),
        ];
        let mut picked = HashSet::new();
        for seed in 0..64 {
            let mut faults = Faults::reordering(seed);
            for _ in 0..8 {
                picked.insert(faults.pick(&waiting));
            }
        }
        // The first of `a` and the first of `b`, never a later one or one past the plan-less frame.
        assert_eq!(picked, HashSet::from([0, 2]));
        assert_eq!(Faults::none().pick(&waiting), 0);
        assert_eq!(
            Faults::reordering(7).pick(&[frame(None), frame(Some(a))]),
            0
        );
    }
}
