//! LISTEN/NOTIFY between relay instances: each write notifies `instance plan heads` at
//! commit; each instance listens on a connection of its own and hands other instances'
//! plans to its relay, which pushes them to its peers.

use std::time::Duration;

use alliance_core::sync::DocumentId;
use alliance_core::PlanId;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::CHANNEL;

/// PostgreSQL's limit on a payload is 8000 bytes: heads past it are left out (the plan id is
/// what a listener needs; it reads the heads from the database).
const MAX_PAYLOAD: usize = 7900;

/// The notification of a write: `instance plan heads`.
pub fn payload(instance: &str, plan: PlanId, heads: &str) -> String {
    let mut text = format!("{instance} {plan} {heads}");
    if text.len() > MAX_PAYLOAD {
        text = format!("{instance} {plan} ");
    }
    text
}

/// The plan of a notification from another instance than `instance`.
pub fn parse(payload: &str, instance: &str) -> Option<DocumentId> {
    let mut parts = payload.split(' ');
    let origin = parts.next()?;
    let plan = PlanId::parse(parts.next()?).ok()?;
    (origin != instance).then(|| DocumentId::from_uuid(plan.as_uuid()))
}

/// Listens until `out` is dropped, reconnecting after a second when the connection fails.
pub async fn listen(
    config: tokio_postgres::Config,
    instance: String,
    out: mpsc::UnboundedSender<DocumentId>,
) {
    while !out.is_closed() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (heard, mut notifications) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(note) = message {
                            if heard.send(note.payload().to_owned()).is_err() {
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        while let Some(text) = notifications.recv().await {
                            if let Some(document) = parse(&text, &instance) {
                                if out.send(document).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot LISTEN for other instances"),
                }
                driver.abort();
                drop(client);
            }
            Err(error) => tracing::warn!(%error, "cannot reach PostgreSQL to listen"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
