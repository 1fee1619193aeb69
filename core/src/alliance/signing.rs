//! Signed changes in the store (SECURITY.md §6, `crate::authorship`): this device's key made
//! with its identity (or on first open of an older store), every change it makes listed as
//! unsigned in the transaction that stores it and signed before it first leaves the store,
//! signatures put beside outgoing sync messages and taken from incoming ones for the judge.

use std::collections::HashMap;

use automerge::sync;
use automerge::{ActorId, Automerge, Change, ChangeHash};

use super::{Inner, OpenDoc};
use crate::authorship::carrier::{self, Carried, Record};
use crate::authorship::{DeviceKey, Enrollment, PublicKey};
use crate::clock;
use crate::error::{Error, Result};
use crate::model::PlanId;
use crate::rules::remote::Signatures;
use crate::store::{self, Store};

/// This store's signing key: the stored one, or — for a store with an identity made before
/// signed changes — a new one stored now (SECURITY.md §6, Migration). A store without an
/// identity (a relay) has none.
pub(super) fn load_or_make_key(store: &mut Store, has_identity: bool) -> Result<Option<DeviceKey>> {
    if let Some(key) = store.read(store::load_device_key)? {
        return Ok(Some(key));
    }
    if !has_identity {
        return Ok(None);
    }
    let key = DeviceKey::generate()?;
    store.write(|tx| store::save_device_key(tx, &key, clock::now_ms()))?;
    // Another process may have stored its key first: the stored one is this device's.
    store.read(store::load_device_key)
}

impl OpenDoc {
    /// Marks the stored document as about to lose changes (the next write replaces it whole,
    /// see `rewrite`), remembering first which changes of its own actor it holds: they are
    /// stored already — listed as waiting if this device made them and did not sign them yet,
    /// or received from a peer — so the rewrite lists none of them again. Without it a
    /// rewrite would list every own-actor change, and a change a peer sent under this
    /// device's actor while the plan recorded no key for it would be signed with this
    /// device's key. Call it before the document changes.
    pub(super) fn mark_rewrite(&mut self) {
        if self.stored && !self.rewrite && self.stored_own.is_none() {
            let doc = self.doc.automerge();
            let actor = doc.get_actor();
            self.stored_own = Some(
                doc.get_changes_meta(&[])
                    .iter()
                    .filter(|meta| *meta.actor == *actor)
                    .map(|meta| meta.hash)
                    .collect(),
            );
        }
        self.rewrite = true;
    }
}

impl Inner {
    /// This device's enrollment payload (device id and public key).
    pub(super) fn enrollment(&self) -> Result<Enrollment> {
        let me = self.identity()?;
        let key = self.key.as_ref().ok_or(Error::NotInitialized)?;
        Ok(Enrollment {
            device: me.device_id,
            public_key: key.public_key(),
        })
    }

    /// This device's own changes in `open` that are not stored yet (everything of its own when
    /// the document is rewritten or new): what the write of `open` records as waiting for its
    /// signature, which [`Inner::sign_waiting`] makes before the change leaves the store.
    /// Changes that came from a peer (`self.received`) are never listed here, even under this
    /// device's actor: they are not this process's to vouch for.
    pub(super) fn own_unsigned(&self, open: &OpenDoc) -> Vec<ChangeHash> {
        let (Some(_), Some(me)) = (&self.key, &self.identity) else {
            return Vec::new();
        };
        let actor = me.device_id.actor();
        let since: &[ChangeHash] = if open.stored && !open.rewrite {
            &open.saved_heads
        } else {
            &[]
        };
        open.doc
            .automerge()
            .get_changes_meta(since)
            .iter()
            .filter(|meta| *meta.actor == actor && !self.received.contains(&meta.hash))
            .filter(|meta| {
                !open
                    .stored_own
                    .as_ref()
                    .is_some_and(|stored| stored.contains(&meta.hash))
            })
            .map(|meta| meta.hash)
            .collect()
    }

    /// Signs this device's changes that wait for their signature — of the plan `doc_id`, or of
    /// every plan when None — with its key, and records the signatures in one transaction
    /// (SECURITY.md §6, "Signed changes"). Called before anything reads signatures to send or
    /// export them, and before the device leaves its key. With nothing waiting it costs one
    /// read; a store without a key (a relay) has nothing waiting.
    pub(super) fn sign_waiting(&mut self, doc_id: Option<&str>) -> Result<()> {
        if self.key.is_none() {
            return Ok(());
        }
        // The common case, nothing waiting, without the write lock.
        if let Some(doc_id) = doc_id {
            if !self.store.read(|tx| store::has_unsigned(tx, doc_id))? {
                return Ok(());
            }
        }
        // Read, signed and cleared in one write transaction: no other connection adds to the
        // list between the read and the clearing.
        self.store.write(|tx| {
            // The key the store holds now, not the one in memory: another connection may have
            // left this identity, and written under the new one, since this one caught up.
            let Some(key) = store::load_device_key(tx)? else {
                return Ok(());
            };
            let mut by_plan: HashMap<String, Vec<Record>> = HashMap::new();
            for (doc, hash) in store::load_unsigned(tx, doc_id)? {
                let records = by_plan.entry(doc).or_default();
                if !records.iter().any(|(signed, _)| *signed == hash) {
                    records.push((hash, key.sign(&hash)));
                }
            }
            by_plan
                .iter()
                .try_for_each(|(doc, records)| store::save_signed(tx, doc, records))
        })
    }

    /// `message` (about `plan`) encoded, with the recorded signatures of the changes it carries
    /// beside it (see [`carrier`]).
    pub(super) fn sign_outgoing(
        &mut self,
        plan: PlanId,
        message: sync::Message,
    ) -> Result<Vec<u8>> {
        let doc_id = plan.to_string();
        let carried = carrier::carried(&message);
        if !matches!(&carried, Carried::Changes(hashes) if hashes.is_empty()) {
            self.sign_waiting(Some(&doc_id))?;
        }
        let records = match carried {
            Carried::Changes(hashes) if hashes.is_empty() => Vec::new(),
            Carried::Changes(hashes) => self
                .store
                .read(|tx| store::load_signatures(tx, &doc_id, Some(&hashes)))?,
            Carried::Everything => self
                .store
                .read(|tx| store::load_signatures(tx, &doc_id, None))?,
        };
        Ok(carrier::wrap(message.encode(), &records))
    }
}

/// Whether `me` may record a public key for `device`, already enrolled: only while it has
/// none, and only a counselor (the role rules let a client write only the devices it enrolls
/// in the same change).
pub(super) fn may_record_key(
    device: &crate::model::Device,
    me: &crate::model::Identity,
) -> Result<()> {
    if device.public_key.is_some() {
        return Err(Error::invalid(
            "enrollment code",
            "this device is enrolled with another key",
        ));
    }
    if me.role != crate::model::Role::Counselor {
        return Err(Error::not_allowed(
            "only a counselor records the key of a device already enrolled",
        ));
    }
    Ok(())
}

/// The signatures that came with `incoming` (records naming other changes are dropped, so a
/// peer cannot fill memory with them), added to those kept for `plan`'s held changes. When a
/// change comes again with another record (a second peer, or a tampering one), the record
/// that proves it in `doc` as it stands is kept, and the first one when neither or both do.
pub(super) fn keep_incoming(
    kept: &mut Signatures,
    records: Vec<Record>,
    incoming: &[Change],
    doc: &Automerge,
) {
    if records.is_empty() {
        return;
    }
    let wanted: HashMap<ChangeHash, &Change> = incoming.iter().map(|c| (c.hash(), c)).collect();
    for (hash, signature) in records {
        let Some(change) = wanted.get(&hash) else {
            continue;
        };
        match kept.get(&hash) {
            None => {
                kept.insert(hash, signature);
            }
            Some(first) if *first == signature => {}
            Some(first) => {
                if !crate::rules::remote::proves(doc, change, *first)
                    && crate::rules::remote::proves(doc, change, signature)
                {
                    kept.insert(hash, signature);
                }
            }
        }
    }
}

/// Whether an incoming change under this device's own actor is this device's (another copy
/// of its store made it, signed with the same key) rather than a forgery: when the plan
/// records this device's key, only with a valid signature by it; otherwise (an older plan)
/// as before, by its actor.
pub(super) fn genuinely_own<'a>(
    doc: &Automerge,
    own: &ActorId,
    signatures: &'a Signatures,
) -> impl Fn(&Change) -> bool + 'a {
    let recorded: Option<PublicKey> = crate::model::DeviceId::from_actor(own).and_then(|device| {
        let plan = crate::plan::read::read_plan_for_edit(doc, None, false).ok()?;
        PublicKey::parse(plan.device(device)?.public_key.as_deref()?).ok()
    });
    move |change: &Change| match &recorded {
        None => true,
        Some(key) => signatures
            .get(&change.hash())
            .is_some_and(|signature| key.verifies(&change.hash(), signature)),
    }
}

impl super::Alliance {
    /// This device's enrollment payload: its device id and public key as one string
    /// ([`Enrollment`]'s `Display`), the code a counselor scans to enroll it.
    /// [`Error::NotInitialized`] before `init`.
    pub fn enrollment(&self) -> Result<Enrollment> {
        self.inner.lock().enrollment()
    }

    /// Enrolls the device an enrollment code names and records its public key (a counselor:
    /// any member's device; a client: their own). A device already enrolled without a key
    /// (enrolled by id, or before signed changes) gets its key recorded now; one already
    /// enrolled with another key is refused ([`Error::InvalidInput`]).
    pub fn enroll_with_key(
        &self,
        plan: PlanId,
        new: &super::NewDevice,
        key: PublicKey,
    ) -> Result<()> {
        let recorded = self
            .plan(plan)?
            .device(new.device)
            .and_then(|d| d.public_key.clone());
        if recorded == Some(key.to_string()) {
            return Ok(());
        }
        self.enroll_device_keyed(plan, new, Some(key))
    }

    /// The recorded signatures of a plan's changes (for its JSON export).
    pub(crate) fn change_signatures(&self, plan: PlanId) -> Result<Vec<Record>> {
        let doc_id = plan.to_string();
        let mut inner = self.inner.lock();
        inner.sign_waiting(Some(&doc_id))?;
        inner
            .store
            .read(|tx| store::load_signatures(tx, &doc_id, None))
    }

    /// This device's signature over `change`, as it would sign a change of its own: for tests
    /// that build raw changes under this device's actor (the tamper corpus).
    #[doc(hidden)]
    #[cfg(any(test, feature = "test-support"))]
    pub fn sign_for_tests(&self, change: &ChangeHash) -> Option<crate::authorship::Signature> {
        self.inner.lock().key.as_ref().map(|key| key.sign(change))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Role;
    use crate::store::{self, schema};
    use crate::Alliance;

    /// A key recorded through the API is one every peer accepts: a client enrolling its own
    /// new device records its key in the same change; a client cannot record the key of a
    /// device already enrolled (locally refused, as the peers' rules would); a counselor can,
    /// once.
    #[test]
    fn recorded_keys_are_accepted_by_peers_and_written_once() {
        use crate::local_sync::sync_stores;
        use crate::{Error, NewDevice, NewPlan};
        let counselor = Alliance::open_in_memory().unwrap();
        let client = Alliance::open_in_memory().unwrap();
        let tablet = Alliance::open_in_memory().unwrap();
        counselor.init("Dana", Role::Counselor, None).unwrap();
        let sam = client.init("Sam", Role::Client, None).unwrap();
        let tab = tablet
            .init("Sam", Role::Client, Some(sam.member_id))
            .unwrap();
        let plan = counselor
            .create_plan(&NewPlan {
                title: "Plan".into(),
                client_name: "Sam".into(),
                client_member: Some(sam.member_id),
                client_device: Some(sam.device_id),
            })
            .unwrap();
        sync_stores(&counselor, &client).unwrap();
        let own = NewDevice {
            device: sam.device_id,
            member: sam.member_id,
            new_member: None,
            label: "phone".into(),
        };
        let key = client.enrollment().unwrap().public_key;
        assert!(matches!(
            client.enroll_with_key(plan, &own, key),
            Err(Error::NotAllowed { .. })
        ));
        let new_tablet = NewDevice {
            device: tab.device_id,
            ..own.clone()
        };
        client
            .enroll_with_key(plan, &new_tablet, tablet.enrollment().unwrap().public_key)
            .unwrap();
        counselor.enroll_with_key(plan, &own, key).unwrap();
        let report = sync_stores(&counselor, &client).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        assert!(counselor.refused_changes(None).unwrap().is_empty());
        let devices = client.plan(plan).unwrap().devices;
        assert!(
            devices.iter().all(|d| d.public_key.is_some()),
            "{devices:?}"
        );
        // Written once: another key for the phone is refused.
        let other = tablet.enrollment().unwrap().public_key;
        assert!(matches!(
            counselor.enroll_with_key(plan, &own, other),
            Err(Error::InvalidInput { .. })
        ));
    }

    /// A store made before signed changes (schema 9, an identity, no key) gets a key on its
    /// first open, and keeps that key afterwards.
    #[test]
    fn a_store_from_before_signed_changes_gets_a_key_on_open_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        // A store at schema 9, before signed changes: an identity and no key table.
        let identity = crate::model::Identity {
            member_id: crate::model::MemberId::new(),
            device_id: crate::model::DeviceId::new(),
            name: "Dana".into(),
            role: Role::Counselor,
        };
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            schema::migrate_to(&mut conn, 9).unwrap();
            store::save_identity(&conn, &identity, 1).unwrap();
        }
        let reopened = Alliance::open(&path).unwrap();
        assert_eq!(
            schema::user_version(&rusqlite::Connection::open(&path).unwrap()).unwrap(),
            schema::VERSION
        );
        let first = reopened.enrollment().unwrap();
        assert_eq!(first.device, identity.device_id);
        drop(reopened);
        let again = Alliance::open(&path).unwrap().enrollment().unwrap();
        assert_eq!(again, first);
        // A store without identity (a relay) makes no key.
        let relay = Alliance::open(&dir.path().join("relay.db")).unwrap();
        assert!(relay.enrollment().is_err());
    }

    /// A counselor and a client sharing a plan that records the counselor's key, synced once;
    /// the counselor on a file (so a second connection can open it).
    fn keyed_pair(path: &std::path::Path) -> (Alliance, Alliance, crate::PlanId) {
        let world = crate::alliance::tests::world_with(Alliance::open(path).unwrap());
        (world.counselor, world.client, world.plan)
    }

    /// The signatures `alliance`'s store records for these changes of `plan`.
    fn recorded(
        alliance: &Alliance,
        plan: crate::PlanId,
        hashes: &[automerge::ChangeHash],
    ) -> Vec<crate::authorship::carrier::Record> {
        let doc_id = plan.to_string();
        alliance
            .inner
            .lock()
            .store
            .read(|tx| store::load_signatures(tx, &doc_id, Some(hashes)))
            .unwrap()
    }

    /// A plan of `alliance`'s with no client enrolled yet.
    fn plan_without_client(alliance: &Alliance, title: &str) -> crate::PlanId {
        alliance
            .create_plan(&crate::NewPlan {
                title: title.into(),
                client_name: "Lee".into(),
                client_member: None,
                client_device: None,
            })
            .unwrap()
    }

    /// What waits for its signature on `alliance`'s store for `plan`, and the signatures
    /// recorded for those changes.
    fn waiting_and_signed(
        alliance: &Alliance,
        plan: crate::PlanId,
    ) -> (
        Vec<automerge::ChangeHash>,
        Vec<crate::authorship::carrier::Record>,
    ) {
        let doc_id = plan.to_string();
        alliance
            .inner
            .lock()
            .store
            .read(|tx| {
                let waiting: Vec<_> = store::load_unsigned(tx, Some(&doc_id))?
                    .into_iter()
                    .map(|(_, hash)| hash)
                    .collect();
                let signed = store::load_signatures(tx, &doc_id, Some(&waiting))?;
                Ok((waiting, signed))
            })
            .unwrap()
    }

    /// A local edit stores its change as waiting for its signature, without signing it (the
    /// edit path does no Ed25519); the first sync signs it, the peer — which requires the
    /// counselor's signature — accepts it, and nothing waits afterwards.
    #[test]
    fn an_edit_is_signed_when_it_first_leaves_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (counselor, client, plan) = keyed_pair(&dir.path().join("counselor.db"));
        counselor.set_title(plan, "Sleep and work").unwrap();
        let (waiting, signed) = waiting_and_signed(&counselor, plan);
        assert_eq!(waiting.len(), 1, "the edit's change waits");
        assert!(signed.is_empty(), "and is not signed yet");
        let report = crate::local_sync::sync_stores(&counselor, &client).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        assert_eq!(client.plan(plan).unwrap().title, "Sleep and work");
        let key = counselor.enrollment().unwrap().public_key;
        let (still, _) = waiting_and_signed(&counselor, plan);
        assert!(still.is_empty(), "{still:?}");
        let records = recorded(&counselor, plan, &waiting);
        assert_eq!(records.len(), 1);
        assert!(key.verifies(&records[0].0, &records[0].1));
    }

    /// Another connection on the same file (the app's widget, the CLI) sends what this one
    /// left waiting, signed with the store's key; the export signs what waits too.
    #[test]
    fn another_connection_signs_what_waits_and_so_does_the_export() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counselor.db");
        let (counselor, client, plan) = keyed_pair(&path);
        counselor.set_title(plan, "Sleep and work").unwrap();
        let widget = Alliance::open(&path).unwrap();
        let report = crate::local_sync::sync_stores(&widget, &client).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        assert_eq!(client.plan(plan).unwrap().title, "Sleep and work");
        assert!(waiting_and_signed(&counselor, plan).0.is_empty());

        counselor
            .set_title(plan, "Sleep, work and friends")
            .unwrap();
        let (waiting, _) = waiting_and_signed(&counselor, plan);
        assert_eq!(waiting.len(), 1);
        let exported = widget.change_signatures(plan).unwrap();
        let key = counselor.enrollment().unwrap().public_key;
        let record = exported.iter().find(|(hash, _)| *hash == waiting[0]);
        assert!(matches!(record, Some((hash, sig)) if key.verifies(hash, sig)));
        assert!(waiting_and_signed(&counselor, plan).0.is_empty());
    }

    /// A device that leaves its identity to another copy first signs what waits with the key
    /// it leaves: the change was made under that identity, and no other key can sign it.
    #[test]
    fn leaving_an_identity_signs_what_waits_with_the_key_left() {
        let dir = tempfile::tempdir().unwrap();
        let (counselor, client, plan) = keyed_pair(&dir.path().join("counselor.db"));
        counselor.set_title(plan, "Sleep and work").unwrap();
        let old_key = counselor.enrollment().unwrap().public_key;
        let (waiting, _) = waiting_and_signed(&counselor, plan);
        assert_eq!(waiting.len(), 1);
        counselor
            .inner
            .lock()
            .retire_identity(crate::clock::now_ms())
            .unwrap();
        assert_ne!(counselor.enrollment().unwrap().public_key, old_key);
        let records = recorded(&counselor, plan, &waiting);
        assert_eq!(records.len(), 1, "signed before the key was left");
        assert!(old_key.verifies(&records[0].0, &records[0].1));
        // That is the key every peer's copy of the plan records for the device it left.
        let recorded = client.plan(plan).unwrap().devices;
        assert!(
            recorded
                .iter()
                .any(|d| d.public_key.as_deref() == Some(old_key.to_string().as_str())),
            "{recorded:?}"
        );
    }

    /// Relays sync messages between `from` and `to` about `plan` until both are done, dropping
    /// the signature records of what `from` sends (a tampered app forwarding bare changes).
    fn relay_without_records(from: &Alliance, to: &Alliance, plan: crate::PlanId) {
        for _ in 0..20 {
            let out = from.generate_sync_message(plan, "to").unwrap();
            if let Some(bytes) = &out {
                let (_, bare) = crate::authorship::carrier::split(bytes).unwrap();
                to.receive_sync_message(plan, "from", bare).unwrap();
            }
            let back = to.generate_sync_message(plan, "from").unwrap();
            if let Some(bytes) = &back {
                from.receive_sync_message(plan, "to", bytes).unwrap();
            }
            if out.is_none() && back.is_none() {
                return;
            }
        }
        panic!("the stores never finished syncing");
    }

    /// A sync message whose signing fails (the store cannot write: a full disk, a lock held
    /// too long) is not taken as sent: the conversation sends its changes again once signing
    /// works, and the peer gets the edit without starting over.
    #[test]
    fn a_message_whose_signing_failed_is_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counselor.db");
        let (counselor, client, plan) = keyed_pair(&path);
        counselor.set_title(plan, "Sleep and work").unwrap();
        let side = rusqlite::Connection::open(&path).unwrap();
        side.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON change_signatures
             BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;",
        )
        .unwrap();
        let mut failed = false;
        for _ in 0..10 {
            if let Some(message) = client.generate_sync_message(plan, "counselor").unwrap() {
                counselor
                    .receive_sync_message(plan, "client", &message)
                    .unwrap();
            }
            match counselor.generate_sync_message(plan, "client") {
                Ok(Some(message)) => {
                    client
                        .receive_sync_message(plan, "counselor", &message)
                        .unwrap();
                }
                Ok(None) => {}
                Err(_) => {
                    failed = true;
                    side.execute_batch("DROP TRIGGER refuse").unwrap();
                }
            }
        }
        assert!(failed, "signing never failed");
        assert!(client.refused_changes(None).unwrap().is_empty());
        assert_eq!(client.plan(plan).unwrap().title, "Sleep and work");
    }

    /// Another store at `path` writing under `identity`'s device id, with a key of its own.
    fn forger_of(identity: &crate::model::Identity, path: &std::path::Path) -> Alliance {
        let mut conn = rusqlite::Connection::open(path).unwrap();
        schema::migrate(&mut conn).unwrap();
        store::save_identity(&conn, identity, 1).unwrap();
        drop(conn);
        Alliance::open(path).unwrap()
    }

    /// Changes adopted as a relay's mirror adopts them are not this device's to sign, even
    /// under its own actor.
    #[test]
    fn an_adopted_change_under_the_own_actor_does_not_wait_for_a_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (counselor, client, plan) = keyed_pair(&dir.path().join("counselor.db"));
        let forger = forger_of(&client.identity().unwrap(), &dir.path().join("forger.db"));
        crate::local_sync::sync_stores(&counselor, &forger).unwrap();
        let before = client.plan_heads(&[plan]).unwrap().remove(0).1.unwrap();
        forger.propose_goal(plan, "Forged goal").unwrap();
        let changes = forger.changes_after(plan, &before).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(client.adopt_changes(plan, &changes, &[]).unwrap());
        assert!(
            waiting_and_signed(&client, plan).0.is_empty(),
            "an adopted change waits for this device's signature"
        );
    }

    /// A change under this device's actor that it did not make — it came from a peer, without
    /// a signature, while the plan records no key for this device — is never signed with this
    /// device's key, not even when the plan is rewritten (a peer refused another own change).
    #[test]
    fn a_received_change_under_the_own_actor_is_never_signed_by_this_device() {
        let dir = tempfile::tempdir().unwrap();
        let (counselor, client, plan) = keyed_pair(&dir.path().join("counselor.db"));
        let sam = client.identity().unwrap();
        // The plan enrolled the client's device by id: it records no key for it.
        assert!(client
            .plan(plan)
            .unwrap()
            .device(sam.device_id)
            .and_then(|d| d.public_key.clone())
            .is_none());
        let forger = forger_of(&sam, &dir.path().join("forger.db"));
        crate::local_sync::sync_stores(&counselor, &forger).unwrap();
        forger.propose_goal(plan, "Forged goal").unwrap();
        let forged: Vec<_> = forger.plan_heads(&[plan]).unwrap().remove(0).1.unwrap();
        relay_without_records(&forger, &client, plan);
        assert!(client
            .plan(plan)
            .unwrap()
            .goals
            .iter()
            .any(|g| g.client_words == "Forged goal"));
        assert!(waiting_and_signed(&client, plan).0.is_empty());
        // The client's own edit, which a peer then refuses: the plan is rewritten without it.
        client.propose_goal(plan, "Own goal").unwrap();
        let (own, _) = waiting_and_signed(&client, plan);
        assert_eq!(own.len(), 1);
        let set_aside = client
            .own_changes_refused(plan, &[(own[0].to_string(), "role".to_string())])
            .unwrap();
        assert_eq!(set_aside.len(), 1);
        let (waiting, _) = waiting_and_signed(&client, plan);
        assert!(
            !waiting.contains(&forged[0]),
            "the forged change waits for this device's signature"
        );
        let key = client.enrollment().unwrap().public_key;
        let signed = client.change_signatures(plan).unwrap();
        assert!(
            !signed
                .iter()
                .any(|(hash, sig)| *hash == forged[0] && key.verifies(hash, sig)),
            "the forged change was signed with this device's key"
        );
    }

    /// Another connection on the same file left the identity (a copied store) and then wrote
    /// under the new one between this connection's catching up and its signing (the window
    /// between `catch_up` and the write lock in `sign_outgoing`): what waits is signed with
    /// the key the store holds, never with the key this connection still has in memory.
    #[test]
    fn what_waits_is_signed_with_the_stored_key_not_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counselor.db");
        let (counselor, _client, _plan) = keyed_pair(&path);
        let widget = Alliance::open(&path).unwrap();
        let stale = widget.enrollment().unwrap().public_key;
        counselor
            .inner
            .lock()
            .retire_identity(crate::clock::now_ms())
            .unwrap();
        let fresh = counselor.enrollment().unwrap().public_key;
        assert_ne!(fresh, stale);
        let plan = plan_without_client(&counselor, "Second plan");
        counselor.set_title(plan, "Second plan, renamed").unwrap();
        let (waiting, _) = waiting_and_signed(&counselor, plan);
        assert!(!waiting.is_empty());
        // The widget signs without having caught up since.
        widget
            .inner
            .lock()
            .sign_waiting(Some(&plan.to_string()))
            .unwrap();
        let records = counselor.change_signatures(plan).unwrap();
        for hash in &waiting {
            let record = records.iter().find(|(signed, _)| signed == hash);
            assert!(
                matches!(record, Some((h, sig)) if fresh.verifies(h, sig)),
                "a change made under the new identity was signed with the key it left"
            );
        }
    }

    /// A store written at schema 11 — snapshots inside `documents`, chunks with a rowid, an
    /// edit waiting in `unsigned_changes` — opens at the current schema, lists and reads every
    /// plan as before, edits, and its first sync signs both waiting edits, which the client
    /// (requiring the counselor's signature) accepts.
    #[test]
    fn a_store_at_schema_11_with_a_waiting_edit_opens_edits_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let now_path = dir.path().join("now.db");
        let (counselor, client, plan) = keyed_pair(&now_path);
        for n in 0..5 {
            counselor.set_title(plan, &format!("Waiting {n}")).unwrap();
        }
        let other = plan_without_client(&counselor, "Other");
        let listed = counselor.list_plans().unwrap();
        let plans = [plan, other].map(|p| counselor.plan(p).unwrap());
        let (waiting, _) = waiting_and_signed(&counselor, plan);
        assert_eq!(waiting.len(), 5);
        drop(counselor);
        // The same rows in schema 11's layout.
        let old_path = dir.path().join("old.db");
        {
            let now = rusqlite::Connection::open(&now_path).unwrap();
            let unsigned = store::load_unsigned(&now, None).unwrap();
            let mut conn = rusqlite::Connection::open(&old_path).unwrap();
            schema::migrate_to(&mut conn, 11).unwrap();
            conn.execute("ATTACH DATABASE ?1 AS cur", [now_path.to_str().unwrap()])
                .unwrap();
            let tables: Vec<String> = conn
                .prepare(
                    "SELECT name FROM cur.sqlite_master WHERE type = 'table'
                     AND name NOT IN ('documents', 'chunks', 'document_snapshots')
                     AND name NOT LIKE 'sqlite_%'",
                )
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            conn.execute_batch(
                "INSERT INTO main.documents
                     (doc_id, snapshot, snapshot_heads, heads, chunk_bytes, updated_at)
                 SELECT d.doc_id, s.snapshot, s.snapshot_heads, d.heads, d.chunk_bytes,
                        d.updated_at
                 FROM cur.documents d JOIN cur.document_snapshots s USING (doc_id);
                 INSERT INTO main.chunks (doc_id, seq, bytes)
                 SELECT doc_id, seq, bytes FROM cur.chunks;",
            )
            .unwrap();
            for table in tables {
                conn.execute_batch(&format!(
                    "INSERT OR REPLACE INTO main.{table} SELECT * FROM cur.{table}"
                ))
                .unwrap();
            }
            for (doc, hash) in &unsigned {
                store::save_unsigned(&conn, doc, &[*hash]).unwrap();
            }
            assert_eq!(schema::user_version(&conn).unwrap(), 11);
        }
        // The same store encrypted (SQLCipher), as shells keep it.
        let key = crate::StoreKey::new([7; 32]);
        let encrypted_path = dir.path().join("encrypted.db");
        {
            let conn = rusqlite::Connection::open(&encrypted_path).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA key = \"x'{}'\";",
                hex::encode_upper([7u8; 32])
            ))
            .unwrap();
            conn.execute(
                "ATTACH DATABASE ?1 AS plain KEY ''",
                [old_path.to_str().unwrap()],
            )
            .unwrap();
            conn.query_row("SELECT sqlcipher_export('main', 'plain')", [], |_| Ok(()))
                .unwrap();
            conn.execute_batch("PRAGMA main.user_version = 11;")
                .unwrap();
        }
        let encrypted = Alliance::open_encrypted(&encrypted_path, &key).unwrap();
        assert_eq!(encrypted.list_plans().unwrap(), listed);
        assert_eq!([plan, other].map(|p| encrypted.plan(p).unwrap()), plans);
        encrypted.set_title(plan, "After the upgrade").unwrap();
        let (waiting, _) = waiting_and_signed(&encrypted, plan);
        assert_eq!(waiting.len(), 6);
        let public = encrypted.enrollment().unwrap().public_key;
        let exported = encrypted.change_signatures(plan).unwrap();
        for hash in &waiting {
            assert!(exported
                .iter()
                .any(|(h, sig)| h == hash && public.verifies(h, sig)));
        }
        assert!(encrypted.integrity_check().unwrap().is_empty());
        drop(encrypted);

        let upgraded = Alliance::open(&old_path).unwrap();
        assert_eq!(upgraded.list_plans().unwrap(), listed);
        assert_eq!([plan, other].map(|p| upgraded.plan(p).unwrap()), plans);
        assert_eq!(waiting_and_signed(&upgraded, plan).0.len(), 5);
        upgraded.set_title(plan, "After the upgrade").unwrap();
        assert_eq!(waiting_and_signed(&upgraded, plan).0.len(), 6);
        let report = crate::local_sync::sync_stores(&upgraded, &client).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        assert!(client.refused_changes(None).unwrap().is_empty());
        assert_eq!(client.plan(plan).unwrap().title, "After the upgrade");
        assert!(waiting_and_signed(&upgraded, plan).0.is_empty());
        drop(upgraded);
        let again = Alliance::open(&old_path).unwrap();
        assert_eq!(again.plan(plan).unwrap().title, "After the upgrade");
    }
}
