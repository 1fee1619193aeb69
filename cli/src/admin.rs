//! The relay's admin listener (`--admin ADDR`, off by default): a minimal HTTP/1.0 server that
//! answers `GET /metrics` (Prometheus text), `GET /healthz` (the process is up) and
//! `GET /readyz` (the store answers and every migration ran), and nothing else. Keep it on
//! loopback or a private network: it has no authentication (see `docs/operations.md`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alliance_core::sync::SyncStore;
use alliance_core::{Alliance, Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::metrics::Metrics;

/// Largest request head read; longer requests are refused.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin listener serves from.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub store: Arc<Alliance>,
}

/// Binds `addr` and serves until the runtime stops; returns the bound address.
pub async fn serve(addr: SocketAddr, admin: Arc<Admin>) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| Error::InvalidInput {
            field: "admin address",
            reason: format!("cannot listen on {addr}: {error}"),
        })?;
    let bound = listener.local_addr().map_err(Error::Io)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let admin = Arc::clone(&admin);
                    tokio::spawn(async move {
                        if let Err(error) = answer(stream, &admin).await {
                            debug!(%error, "admin request failed");
                        }
                    });
                }
                Err(error) => {
                    debug!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(bound)
}

/// Reads one request head; None when it is too long, malformed or too slow.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 || head.len() + n > MAX_REQUEST_BYTES {
                return None;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        Some(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read).await.ok()??;
    String::from_utf8(head).ok()
}

async fn answer(mut stream: TcpStream, admin: &Admin) -> std::io::Result<()> {
    let (status, content_type, body) = match read_head(&mut stream).await {
        None => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        Some(head) => route(&head, admin).await,
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn route(head: &str, admin: &Admin) -> (&'static str, &'static str, String) {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => {
            let store = Arc::clone(&admin.store);
            match tokio::task::spawn_blocking(move || store.ready()).await {
                Ok(Ok(())) => ("200 OK", TEXT, "ready\n".into()),
                Ok(Err(error)) => ("503 Service Unavailable", TEXT, format!("{error}\n")),
                Err(_) => (
                    "503 Service Unavailable",
                    TEXT,
                    "store task failed\n".into(),
                ),
            }
        }
        "/metrics" => {
            let store = Arc::clone(&admin.store);
            let plans = tokio::task::spawn_blocking(move || store.document_ids().ok())
                .await
                .ok()
                .flatten()
                .map(|plans| plans.len());
            ("200 OK", OPENMETRICS, admin.metrics.render(plans))
        }
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}
