//! LISTEN/NOTIFY between relay instances: each write notifies `instance plan changed heads`
//! at commit (`changed`: the write's number from `relay_change_seq`); each instance listens on
//! a connection of its own and hands other instances' plans to its relay, which pushes them
//! to its peers. A listener that lost its connection reconnects after a second and then hands
//! on every plan written since the last notification it heard (with a margin: numbers are
//! taken before commit, so commits may arrive out of order), so nothing written meanwhile is
//! missed.

use std::time::Duration;

use alliance_core::sync::DocumentId;
use alliance_core::PlanId;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::CHANNEL;

/// PostgreSQL's limit on a payload is 8000 bytes: heads past it are left out (the plan id is
/// what a listener needs; it reads the heads from the database).
const MAX_PAYLOAD: usize = 7900;

/// Writes numbered this far below the last one heard are handed on again after a reconnect.
const RECONNECT_MARGIN: i64 = 1000;

/// The notification of a write: `instance plan changed heads`.
pub fn payload(instance: &str, plan: PlanId, changed: i64, heads: &str) -> String {
    let mut text = format!("{instance} {plan} {changed} {heads}");
    if text.len() > MAX_PAYLOAD {
        text = format!("{instance} {plan} {changed} ");
    }
    text
}

/// A notification: the writing instance, the plan, the write's number.
fn parse(payload: &str) -> Option<(&str, PlanId, i64)> {
    let mut parts = payload.split(' ');
    let origin = parts.next()?;
    let plan = PlanId::parse(parts.next()?).ok()?;
    let changed = parts.next()?.parse().ok()?;
    Some((origin, plan, changed))
}

fn document(plan: PlanId) -> DocumentId {
    DocumentId::from_uuid(plan.as_uuid())
}

/// The number of the last write so far (0 for none).
async fn last_write(pool: &Pool) -> Option<i64> {
    let client = pool.get().await.ok()?;
    let row = client
        .query_one("SELECT coalesce(max(changed), 0) FROM documents", &[])
        .await
        .ok()?;
    Some(row.get(0))
}

/// The plans written after `since` (every instance's), and the highest write number.
async fn written_since(pool: &Pool, since: i64) -> Option<(Vec<PlanId>, i64)> {
    let client = pool.get().await.ok()?;
    let rows = client
        .query(
            "SELECT plan, changed FROM documents WHERE changed > $1",
            &[&since],
        )
        .await
        .ok()?;
    let mut last = since;
    let mut plans = Vec::with_capacity(rows.len());
    for row in rows {
        if let Ok(plan) = PlanId::parse(row.get(0)) {
            plans.push(plan);
        }
        last = last.max(row.get(1));
    }
    Some((plans, last))
}

/// Listens until `out` is dropped, reconnecting after a second when the connection fails.
pub async fn listen(
    config: tokio_postgres::Config,
    pool: Pool,
    instance: String,
    out: mpsc::UnboundedSender<DocumentId>,
) {
    // The highest write number heard of; None until the first LISTEN.
    let mut heard_upto: Option<i64> = None;
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
                        // Listening from here on: what was written while not listening is
                        // read instead.
                        match heard_upto {
                            None => heard_upto = last_write(&pool).await,
                            Some(upto) => {
                                let since = upto.saturating_sub(RECONNECT_MARGIN);
                                if let Some((plans, last)) = written_since(&pool, since).await {
                                    for plan in plans {
                                        let _ = out.send(document(plan));
                                    }
                                    heard_upto = Some(upto.max(last));
                                }
                            }
                        }
                        while let Some(text) = notifications.recv().await {
                            let Some((origin, plan, changed)) = parse(&text) else {
                                continue;
                            };
                            heard_upto = Some(heard_upto.unwrap_or(0).max(changed));
                            if origin != instance && out.send(document(plan)).is_err() {
                                break;
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
