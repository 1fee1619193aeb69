//! The relay's operations hooks on loopback: draining closes connections with a going-away
//! frame and stops accepting, and a drained relay answers no one.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::memory_store::MemoryStore;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_tells_joined_peers_the_relay_is_going_away_and_stops_accepting() {
    let store = Arc::new(MemoryStore::new("relay"));
    let relay = Relay::bind("127.0.0.1:0", store, RelayOptions::default())
        .await
        .unwrap();
    let url = relay.url();
    let addr = relay.local_addr();
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let join = Message::Join {
        sender_id: "device".into(),
        peer_metadata: None,
        supported_protocol_versions: Some(vec!["1".into()]),
    };
    socket.send(Frame::binary(join.encode())).await.unwrap();
    let peer = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap();
    assert!(matches!(peer, Some(Ok(Frame::Binary(_)))), "{peer:?}");

    // A long grace: the quiet peer is closed as soon as it has been quiet, not at its end.
    let draining = tokio::spawn(relay.drain(Duration::from_secs(600)));
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Frame::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    drop(socket);
    tokio::time::timeout(Duration::from_secs(10), draining)
        .await
        .expect("the drain ends once its connections closed")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
