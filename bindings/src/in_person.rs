//! In-person sync for the shells: a session they feed with the frames Bluetooth, Nearby or
//! Multipeer brings, and whose answers they send back (`docs/sync.md`, "In person").

use std::sync::Arc;

use alliance_core as core;
use parking_lot::Mutex;

use crate::alliance::Alliance;
use crate::error::ApiError;
use crate::records::InPersonReport;

/// This device's side of an in-person sync with one other device, over a transport the shell
/// owns. Send what `start()` returns, then hand every frame that arrives to `receive()` and send
/// what it returns. When the link has been quiet for a moment, `poll()` says whether this side
/// has more; `isSettled()` is true once it has nothing. A dropped link loses nothing: a new
/// session with the same device later sends only what is new.
#[derive(uniffi::Object)]
pub struct InPersonSession {
    store: Arc<Alliance>,
    session: Arc<Mutex<core::in_person::InPersonSession>>,
}

impl InPersonSession {
    /// Runs `work` on the session off the caller's thread (it reads and writes the store).
    async fn with_session<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut core::in_person::InPersonSession) -> Result<T, ApiError> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        self.store.run(move |_| work(&mut session.lock())).await
    }
}

#[uniffi::export]
impl InPersonSession {
    /// A session of `store`'s device. Throws `NotInitialized` for a store with no identity and
    /// `Closed` for a closed one.
    #[uniffi::constructor]
    pub fn new(store: Arc<Alliance>) -> Result<Arc<Self>, ApiError> {
        let (core_store, _) = store.store()?;
        let session = core::in_person::InPersonSession::new(core_store)?;
        Ok(Arc::new(Self {
            store,
            session: Arc::new(Mutex::new(session)),
        }))
    }

    /// The first frames to send (a `join` naming this device).
    pub fn start(&self) -> Vec<Vec<u8>> {
        self.session.lock().start()
    }

    /// Takes one frame from the other device; returns the frames to send back (often none).
    /// Throws `Sync` for a frame that is not a sync frame, comes from a second device or
    /// before the other device joined; nothing stored changes then.
    pub async fn receive(&self, frame: Vec<u8>) -> Result<Vec<Vec<u8>>, ApiError> {
        self.with_session(move |session| Ok(session.receive(&frame)?))
            .await
    }

    /// Frames this side has to send without being asked (after a quiet moment on the link, or
    /// a local edit during the session); none once it is settled.
    pub async fn poll(&self) -> Result<Vec<Vec<u8>>, ApiError> {
        self.with_session(|session| Ok(session.poll()?)).await
    }

    /// Whether this side has nothing more to send.
    pub fn is_settled(&self) -> bool {
        self.session.lock().is_settled()
    }

    /// What the session has done so far: plans synced, frames sent, own changes refused.
    pub fn report(&self) -> InPersonReport {
        self.session.lock().report().into()
    }

    /// Ends the session (also when the shell drops it).
    pub fn end(&self) {
        self.session.lock().end();
    }
}
