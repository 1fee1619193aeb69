//! One WebSocket carrying protocol messages: binary frames in and out, size limits, counters.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

use super::error::SyncError;
use super::protocol::Message;

/// Frames and bytes that crossed one connection (or a whole sync run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Traffic {
    /// Adds another connection's counts to these.
    pub fn add(&mut self, other: &Traffic) {
        self.frames_sent += other.frames_sent;
        self.frames_received += other.frames_received;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
    }
}

/// The WebSocket settings for a frame limit: tungstenite refuses larger frames while reading,
/// before buffering them whole. Buffers start small (sync messages mostly are) and grow as a
/// frame needs: a relay holding a thousand idle connections keeps little per connection.
pub fn websocket_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
}

/// A WebSocket that speaks [`Message`]s.
pub struct Connection<S> {
    socket: WebSocketStream<S>,
    max_frame_bytes: usize,
    traffic: Traffic,
    /// When the last frame of any kind (pings and pongs included) arrived.
    last_heard: tokio::time::Instant,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(socket: WebSocketStream<S>, max_frame_bytes: usize) -> Self {
        Self {
            socket,
            max_frame_bytes,
            traffic: Traffic::default(),
            last_heard: tokio::time::Instant::now(),
        }
    }

    /// When the peer last sent a frame of any kind: a keepalive `Ping` or `Pong` counts, so a
    /// quiet but live peer is told from a dead one.
    pub fn last_heard(&self) -> tokio::time::Instant {
        self.last_heard
    }

    /// Sends a WebSocket `Ping` (answered by the peer's WebSocket layer with a `Pong`).
    pub async fn ping(&mut self) -> Result<(), SyncError> {
        self.socket.send(Frame::Ping(Vec::new().into())).await?;
        Ok(())
    }

    /// What crossed this connection so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Sends one message as one binary frame.
    pub async fn send(&mut self, message: &Message) -> Result<(), SyncError> {
        let bytes = message.encode();
        self.traffic.frames_sent += 1;
        self.traffic.bytes_sent += bytes.len() as u64;
        self.socket.send(Frame::binary(bytes)).await?;
        Ok(())
    }

    /// The next message; `None` once the peer closed. Pings are answered by tungstenite.
    /// Cancel-safe: dropping the future loses no frame.
    pub async fn recv(&mut self) -> Option<Result<Message, SyncError>> {
        loop {
            let frame = match self.socket.next().await? {
                Ok(frame) => frame,
                Err(error) => return Some(Err(error.into())),
            };
            self.last_heard = tokio::time::Instant::now();
            match frame {
                Frame::Binary(bytes) => {
                    self.traffic.frames_received += 1;
                    self.traffic.bytes_received += bytes.len() as u64;
                    return Some(Message::decode_with_limit(&bytes, self.max_frame_bytes));
                }
                Frame::Text(_) => {
                    self.traffic.frames_received += 1;
                    return Some(Err(SyncError::MalformedFrame(
                        "text frame (the protocol uses binary frames)".into(),
                    )));
                }
                Frame::Close(_) => return None,
                Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_) => {}
            }
        }
    }

    /// Closes the connection, telling the peer why. Errors are ignored: the peer may be gone.
    pub async fn close(&mut self, reason: Option<&str>) {
        let frame = reason.map(|reason| CloseFrame {
            code: CloseCode::Policy,
            // Close reasons are limited to 123 bytes.
            reason: truncate(reason, 120).to_string().into(),
        });
        let _ = self.socket.close(frame).await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Closes the connection with a going-away frame: the server is shutting down, and the
    /// peer may reconnect later or elsewhere. Errors are ignored.
    pub async fn close_going_away(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "the relay is shutting down".into(),
        };
        let _ = self.socket.close(Some(frame)).await;
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abcdef", 4), "abcd");
    }

    #[test]
    fn adds_traffic() {
        let mut total = Traffic::default();
        let one = Traffic {
            frames_sent: 1,
            frames_received: 2,
            bytes_sent: 3,
            bytes_received: 4,
        };
        total.add(&one);
        total.add(&one);
        assert_eq!(total.frames_received, 4);
        assert_eq!(total.bytes_received, 8);
    }
}
