//! A joined peer's session: what it may sync, its sync messages applied and answered, refusals
//! told, heads digests compared, and changes of other peers pushed to it.

use super::connection::JoinedPeer;
use super::*;

/// One joined peer: the documents it syncs with the relay.
pub(super) struct PeerSession {
    pub(super) id: u64,
    pub(super) peer: JoinedPeer,
    pub(super) exchange: Exchange,
    pub(super) shared: Arc<Shared>,
    /// Documents this peer asked for or sent; changes to them are pushed to it.
    pub(super) documents: HashSet<DocumentId>,
    /// What the peer's token opens; None when tokens are not required.
    pub(super) access: Option<Access>,
    /// The peer's heads digest was answered (once per connection).
    pub(super) digests_compared: bool,
    /// Who the peer is, for the audit trail.
    pub(super) who: Who,
}

impl PeerSession {
    /// Acts on one message; `Ok(false)` ends the connection quietly.
    pub(super) async fn handle<S>(
        &mut self,
        conn: &mut Connection<S>,
        message: Message,
    ) -> Result<bool, SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match message {
            Message::Request(message) | Message::Sync(message) => {
                let started = std::time::Instant::now();
                self.receive(conn, message).await?;
                let elapsed = started.elapsed();
                self.shared
                    .options
                    .metrics
                    .with(|m| m.sync_round_trip(elapsed));
                Ok(true)
            }
            Message::Ephemeral {
                ref sender_id,
                document_id,
                ..
            } => {
                if *sender_id == self.peer.id && self.documents.contains(&document_id) {
                    let _ = self.shared.events.send(RelayEvent::Ephemeral {
                        message,
                        origin: self.id,
                    });
                }
                Ok(true)
            }
            Message::HeadsDigests {
                sender_id, digests, ..
            } => {
                self.compare_heads(conn, &sender_id, &digests).await?;
                Ok(true)
            }
            Message::DocUnavailable { .. } => Ok(true),
            Message::Leave { .. } => Ok(false),
            Message::Error { message, .. } => {
                info!(connection = self.id, %message, "peer reported an error");
                Ok(false)
            }
            Message::Join { .. }
            | Message::Peer { .. }
            | Message::HeadsDiffer { .. }
            | Message::Refused { .. } => Err(SyncError::UnexpectedMessage(
                message.message_type().to_string(),
            )),
            Message::Unknown { message_type, .. } => {
                debug!(connection = self.id, %message_type, "ignored unknown message");
                Ok(true)
            }
        }
    }

    async fn receive<S>(
        &mut self,
        conn: &mut Connection<S>,
        message: DocumentMessage,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if message.sender_id != self.peer.id {
            return Err(SyncError::UnexpectedMessage(
                "message from another sender id".into(),
            ));
        }
        let document = message.document_id;
        // Refuse undecodable sync data before the store sees it.
        let envelope = SyncEnvelope::read(&message.data)?;
        let mut enrolling = false;
        if !self.may_sync(document, false).await? {
            // A token that does not open a plan gets the same answer, after the same work,
            // whether or not this relay holds it: only a push under open enrollment looks
            // further (a plan that exists cannot be created again).
            if !self.shared.options.open_enrollment {
                return Err(SyncError::Unauthorized(
                    "this token does not open that plan",
                ));
            }
            if envelope.heads.is_empty() {
                // Open enrollment: nothing to tell and nothing to remember.
                return conn
                    .send(&Message::DocUnavailable {
                        sender_id: self.shared.peer_id.clone(),
                        target_id: self.peer.id.clone(),
                        document_id: document,
                    })
                    .await;
            }
            if self.exchange.has_document(document).await? {
                return Err(SyncError::Unauthorized(
                    "this token does not open that plan",
                ));
            }
            enrolling = true;
        }
        if !self.documents.contains(&document)
            && self.documents.len() >= self.shared.options.max_documents_per_connection
        {
            return Err(SyncError::Limit(format!(
                "at most {} documents per connection",
                self.shared.options.max_documents_per_connection
            )));
        }
        if enrolling {
            // A new plan pushed under open enrollment: the sync exchange runs until the plan
            // is stored, and it is stored only if it lists this token; until then nothing is
            // relayed.
            let refused = self.receive_from_peer(document, message.data, true).await?;
            self.tell_refused(conn, document, refused).await?;
            if self.exchange.has_document(document).await? {
                let store = Arc::clone(&self.shared.store);
                self.who
                    .accessed(&store, document, AuditKind::Write)
                    .await?;
                if !self.may_sync(document, true).await? {
                    return Err(SyncError::Unauthorized(
                        "the pushed plan does not list this token",
                    ));
                }
                self.documents.insert(document);
                let _ = self.shared.events.send(RelayEvent::Changed {
                    document,
                    origin: self.id,
                });
            }
            return self.push(conn, document).await;
        }
        self.documents.insert(document);
        if envelope.heads.is_empty() && !self.exchange.has_document(document).await? {
            // Neither side has it. The peer stays subscribed: if the plan arrives later it is
            // pushed, as automerge-repo peers expect.
            return conn
                .send(&Message::DocUnavailable {
                    sender_id: self.shared.peer_id.clone(),
                    target_id: self.peer.id.clone(),
                    document_id: document,
                })
                .await;
        }
        let refused = self
            .receive_from_peer(document, message.data, false)
            .await?;
        self.tell_refused(conn, document, refused).await?;
        if envelope.carries_changes {
            let store = Arc::clone(&self.shared.store);
            self.who
                .accessed(&store, document, AuditKind::Write)
                .await?;
            let _ = self.shared.events.send(RelayEvent::Changed {
                document,
                origin: self.id,
            });
        }
        self.push(conn, document).await
    }

    /// Applies the peer's message; with tokens, the plan must stay bound to them
    /// ([`TokenVoucher`]) — and, for a new plan pushed under open enrollment (`enrolling`),
    /// list this peer's token — or nothing of the message is stored.
    async fn receive_from_peer(
        &self,
        document: DocumentId,
        data: Vec<u8>,
        enrolling: bool,
    ) -> Result<Vec<ChangeRefusal>, SyncError> {
        match &self.access {
            Some(access) => {
                let voucher = TokenVoucher {
                    token_hash: access.hash.clone(),
                    must_be_listed: enrolling,
                };
                self.exchange.receive_vouched(document, data, voucher).await
            }
            None => self.exchange.receive(document, data).await,
        }
    }

    /// Tells the peer which changes of its last message about `document` the rules refused
    /// (`alliance-refused`, see `docs/sync.md`), before the sync reply, so that the device sets
    /// them aside before it could count the document as settled. Only peers that offered the
    /// extension in `join` hear of it: to others (automerge-repo clients) a refusal stays silent.
    async fn tell_refused<S>(
        &mut self,
        conn: &mut Connection<S>,
        document: DocumentId,
        refused: Vec<ChangeRefusal>,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if refused.is_empty() {
            return Ok(());
        }
        let rules: Vec<String> = refused.iter().map(|r| r.rule.clone()).collect();
        for rule in &rules {
            self.shared.options.metrics.with(|m| m.refused(rule));
        }
        self.who
            .changes_refused(&self.shared.store, document, rules)
            .await;
        info!(
            connection = self.id,
            %document,
            refused = refused.len(),
            told = self.peer.refused_notices,
            "refused changes from a peer"
        );
        if !self.peer.refused_notices {
            return Ok(());
        }
        for refused in refused.chunks(MAX_REFUSALS_PER_NOTICE) {
            conn.send(&Message::Refused {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
                refused: refused.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// The heads-digest extension: answers which of the listed documents differ from this
    /// store. A document counts as equal only when the token opens it, this store holds it and
    /// the digests match; equal ones are subscribed to (pushed on change) like synced ones,
    /// every other one is listed, so the device syncs it the usual way (and meets today's
    /// refusal when the token does not open it). Nothing about a document the token does not
    /// open is looked up.
    async fn compare_heads<S>(
        &mut self,
        conn: &mut Connection<S>,
        sender_id: &PeerId,
        digests: &HeadsDigests,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if !self.peer.heads_digest || self.digests_compared {
            return Err(SyncError::UnexpectedMessage(HEADS_DIGESTS_TYPE.into()));
        }
        if *sender_id != self.peer.id {
            return Err(SyncError::UnexpectedMessage(
                "message from another sender id".into(),
            ));
        }
        self.digests_compared = true;
        let max = self.shared.options.max_documents_per_connection;
        let room = max.saturating_sub(self.documents.len());
        if digests.len() > room {
            return Err(SyncError::Limit(format!(
                "at most {max} documents per connection"
            )));
        }
        let entries = digests.entries(room)?;
        let listed: Vec<DocumentId> = entries.iter().map(|(document, _)| *document).collect();
        let opened = self.opened(&listed).await?;
        let ours: HashMap<DocumentId, HeadsDigest> = self
            .exchange
            .heads_digests(opened)
            .await?
            .into_iter()
            .filter_map(|(document, digest)| Some((document, digest?)))
            .collect();
        let mut differ = Vec::new();
        for (document, digest) in entries {
            if ours.get(&document) == Some(&digest) {
                self.documents.insert(document);
            } else {
                differ.push(document);
            }
        }
        debug!(
            connection = self.id,
            listed = listed.len(),
            differ = differ.len(),
            "heads digests compared"
        );
        conn.send(&Message::HeadsDiffer {
            sender_id: self.shared.peer_id.clone(),
            target_id: self.peer.id.clone(),
            documents: differ,
        })
        .await
    }

    /// Those of `documents` this peer's token opens (all, without tokens). The token is looked
    /// up again, once, when some are not in the cached answer.
    async fn opened(&mut self, documents: &[DocumentId]) -> Result<Vec<DocumentId>, SyncError> {
        let Some(access) = self.access.as_mut() else {
            return Ok(documents.to_vec());
        };
        if documents.iter().any(|d| !access.documents.contains(d)) {
            access.documents = documents_of_token(&self.shared, &access.hash).await?;
        }
        Ok(documents
            .iter()
            .filter(|d| access.documents.contains(d))
            .copied()
            .collect())
    }

    /// Whether this peer's token opens `document` (always, without tokens). Looks the token
    /// up again when the cached answer is no, and when `refresh` (the plan changed), so
    /// grants and revocations take effect at once.
    async fn may_sync(&mut self, document: DocumentId, refresh: bool) -> Result<bool, SyncError> {
        let Some(access) = self.access.as_mut() else {
            return Ok(true);
        };
        if !refresh && access.documents.contains(&document) {
            return Ok(true);
        }
        access.documents = documents_of_token(&self.shared, &access.hash).await?;
        Ok(access.documents.contains(&document))
    }

    /// Sends the next sync message for a document to this peer, if there is one.
    async fn push<S>(
        &mut self,
        conn: &mut Connection<S>,
        document: DocumentId,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        if let Some((data, envelope)) = self.exchange.generate(document).await? {
            if envelope.carries_changes {
                let store = Arc::clone(&self.shared.store);
                self.who.accessed(&store, document, AuditKind::Read).await?;
            }
            conn.send(&Message::Sync(DocumentMessage {
                sender_id: self.shared.peer_id.clone(),
                target_id: self.peer.id.clone(),
                document_id: document,
                data,
            }))
            .await?;
        }
        Ok(())
    }

    pub(super) async fn push_all<S>(&mut self, conn: &mut Connection<S>) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let documents: Vec<DocumentId> = self.documents.iter().copied().collect();
        for document in documents {
            if !self.may_sync(document, true).await? {
                return Err(SyncError::Unauthorized("the device was revoked"));
            }
            if self.exchange.has_document(document).await? {
                self.push(conn, document).await?;
            }
        }
        Ok(())
    }

    /// Passes another connection's news on to this peer.
    pub(super) async fn relay<S>(
        &mut self,
        conn: &mut Connection<S>,
        event: RelayEvent,
    ) -> Result<(), SyncError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match event {
            RelayEvent::Changed { document, origin } => {
                if origin != self.id && self.documents.contains(&document) {
                    if !self.may_sync(document, true).await? {
                        return Err(SyncError::Unauthorized("the device was revoked"));
                    }
                    self.push(conn, document).await?;
                }
            }
            RelayEvent::Ephemeral { message, origin } => {
                if let Message::Ephemeral {
                    sender_id,
                    count,
                    session_id,
                    document_id,
                    data,
                    ..
                } = message
                {
                    if origin != self.id && self.documents.contains(&document_id) {
                        conn.send(&Message::Ephemeral {
                            sender_id,
                            target_id: self.peer.id.clone(),
                            count,
                            session_id,
                            document_id,
                            data,
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }
}
