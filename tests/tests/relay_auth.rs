//! Relay authentication and limits: devices present a token issued by their counselor; the
//! relay serves only the plans it opens, refuses unauthenticated, revoked and wrong-plan
//! devices, and enforces its per-connection and per-token limits.
//!
//! The access checks run on the simulated network (`alliance_core::sync::relay::sim`): the
//! relay's and the devices' real sessions, no socket. What needs the WebSocket drivers stays on
//! loopback sockets (at the end): token redaction in transport errors, the idle timer, TLS.

mod sync_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use alliance_core::sync::relay::sim::SimRelay;
use alliance_core::sync::{
    sync_once_blocking, BackgroundRelay, DocumentId, Message, PeerId, PeerMetadata, RelayOptions,
    SyncOptions, PROTOCOL_V1,
};
use alliance_core::{Alliance, PlanId, Role};
use sync_support::{options, plan_for, Clinic, Phone};

fn auth_relay(open_enrollment: bool) -> (SimRelay, Arc<Alliance>) {
    auth_relay_with(RelayOptions {
        require_token: true,
        open_enrollment,
        ..RelayOptions::default()
    })
}

fn auth_relay_with(options: RelayOptions) -> (SimRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open_in_memory().expect("relay store"));
    let relay = SimRelay::new(store.clone(), options).expect("relay");
    (relay, store)
}

/// A relay on a loopback socket, for what needs the drivers.
fn socket_relay_with(options: RelayOptions) -> (BackgroundRelay, Arc<Alliance>) {
    let store = Arc::new(Alliance::open_in_memory().expect("relay store"));
    let relay = BackgroundRelay::start("127.0.0.1:0", store.clone(), options).expect("relay");
    (relay, store)
}

fn with_token(token: Option<&str>, wanted: &[PlanId]) -> SyncOptions {
    SyncOptions {
        token: token.map(str::to_string),
        handshake_timeout: Duration::from_secs(20),
        ..options(wanted)
    }
}

fn sync(
    phone: &Phone,
    relay: &SimRelay,
    token: Option<&str>,
    wanted: &[PlanId],
) -> Result<(), String> {
    relay
        .sync_once(phone.store.clone(), &with_token(token, wanted))
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// `sync` over a WebSocket.
fn socket_sync(phone: &Phone, url: &str, token: Option<&str>) -> Result<(), String> {
    sync_once_blocking(phone.store.clone(), url, &with_token(token, &[]))
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// A counselor's plan with the client's phone, tokens issued to both, pushed to the relay.
fn clinic(relay: &SimRelay) -> Clinic {
    let clinic = Clinic::new();
    sync(&clinic.counselor, relay, Some(&clinic.counselor_token), &[]).expect("first push");
    clinic
}

#[test]
fn a_device_with_its_token_gets_its_plan_and_only_hashes_are_stored() {
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay);
    assert_eq!(relay_store.plan_ids().unwrap(), vec![c.plan]);
    sync(&c.client, &relay, Some(&c.client_token), &[]).expect("client sync");
    assert_eq!(c.client.store.plan_ids().unwrap(), vec![c.plan]);
    // Plans keep the SHA-256 only: the token itself is nowhere in the relay's copy.
    let bytes = relay_store.saved_document(c.plan).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&c.client_token));
    assert!(!text.contains(&c.counselor_token));
    let opened = relay_store
        .plans_of_token(&alliance_core::sync::token_hash(&c.client_token))
        .unwrap();
    assert_eq!(opened, vec![(c.plan, c.client.me.device_id)]);

    // The client's edit reaches the counselor through the relay.
    c.client.store.propose_goal(c.plan, "Walk daily").unwrap();
    sync(&c.client, &relay, Some(&c.client_token), &[]).unwrap();
    sync(&c.counselor, &relay, Some(&c.counselor_token), &[]).unwrap();
    assert_eq!(c.counselor.store.plan(c.plan).unwrap().goals.len(), 2);
}

#[test]
fn unauthenticated_devices_are_refused_and_write_nothing() {
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay);
    let before = relay_store.plan(c.plan).unwrap();
    c.client.store.propose_goal(c.plan, "unused").ok();

    let stranger = Phone::new("Lee", Role::Counselor);
    let own = plan_for(&stranger, &Phone::new("Kim", Role::Client), "Other");
    // No token, a malformed one, a well-formed unknown one.
    let unknown = alliance_core::sync::generate_token();
    for token in [None, Some("nope"), Some(unknown.as_str())] {
        let error = sync(&stranger, &relay, token, &[c.plan]).unwrap_err();
        assert!(error.contains("not authorized"), "{error}");
    }
    // Even a counselor's real plan is not accepted from a token it does not list.
    assert!(stranger.store.plan_ids().unwrap() == vec![own]);
    assert_eq!(relay_store.plan_ids().unwrap(), vec![c.plan]);
    assert_eq!(relay_store.plan(c.plan).unwrap(), before);
    assert_eq!(relay.connections_refused(), 3);
}

#[test]
fn a_device_asking_for_a_plan_its_token_does_not_open_is_refused() {
    let (relay, relay_store) = auth_relay(true);
    let first = clinic(&relay);
    let second = clinic(&relay);
    assert_eq!(relay_store.plan_ids().unwrap().len(), 2);
    // The second client's token asks for the first plan by id: under open enrollment it hears
    // what it would hear of a plan the relay does not hold (`doc-unavailable`), and gets
    // nothing (without open enrollment: `tests/tests/hostile.rs`, one answer either way).
    sync(
        &second.client,
        &relay,
        Some(&second.client_token),
        &[first.plan],
    )
    .unwrap();
    assert!(!second
        .client
        .store
        .plan_ids()
        .unwrap()
        .contains(&first.plan));
    // With its own token it only ever gets its own plan.
    sync(&second.client, &relay, Some(&second.client_token), &[]).unwrap();
    assert_eq!(second.client.store.plan_ids().unwrap(), vec![second.plan]);
}

#[test]
fn a_new_plan_is_refused_when_enrollment_is_closed() {
    let (relay, relay_store) = auth_relay(false);
    let counselor = Phone::new("Dana", Role::Counselor);
    let plan = plan_for(&counselor, &Phone::new("Sam", Role::Client), "Plan");
    let token = counselor
        .store
        .issue_device_token(plan, counselor.me.device_id, None)
        .unwrap();
    let error = sync(&counselor, &relay, Some(&token), &[]).unwrap_err();
    assert!(error.contains("unknown or revoked token"), "{error}");
    assert!(relay_store.plan_ids().unwrap().is_empty());
}

#[test]
fn a_revoked_device_is_refused() {
    let (relay, relay_store) = auth_relay(true);
    let c = clinic(&relay);
    sync(&c.client, &relay, Some(&c.client_token), &[]).expect("enrolled client");
    assert_eq!(c.client.store.plan_ids().unwrap(), vec![c.plan]);

    c.counselor
        .store
        .revoke_device(c.plan, c.client.me.device_id)
        .unwrap();
    sync(&c.counselor, &relay, Some(&c.counselor_token), &[]).unwrap();
    c.client
        .store
        .propose_goal(c.plan, "after revocation")
        .unwrap();
    // Open enrollment lets the token connect, but it opens no plan any more.
    let error = sync(&c.client, &relay, Some(&c.client_token), &[]).unwrap_err();
    assert!(error.contains("not authorized"), "{error}");
    assert_eq!(relay_store.plan(c.plan).unwrap().goals.len(), 1);
    // A client issues no tokens, so it cannot let itself back in.
    assert!(c
        .client
        .store
        .issue_device_token(c.plan, c.client.me.device_id, None)
        .is_err());
}

#[test]
fn documents_per_connection_are_limited() {
    let (relay, _) = auth_relay_with(RelayOptions {
        require_token: true,
        open_enrollment: true,
        max_documents_per_connection: 1,
        ..RelayOptions::default()
    });
    let c = clinic(&relay);
    let second = plan_for(&c.counselor, &Phone::new("Kim", Role::Client), "Second");
    c.counselor
        .store
        .issue_device_token(second, c.counselor.me.device_id, Some(&c.counselor_token))
        .unwrap();
    let error = sync(&c.counselor, &relay, Some(&c.counselor_token), &[]).unwrap_err();
    assert!(
        error.contains("at most 1 documents per connection"),
        "{error}"
    );
}

#[test]
fn connections_per_token_are_limited() {
    let (relay, _) = auth_relay_with(RelayOptions {
        require_token: true,
        open_enrollment: true,
        max_connections_per_token: 1,
        ..RelayOptions::default()
    });
    let c = clinic(&relay);
    // A connection that presented the token and holds its one slot (no `join` yet).
    let held = relay.connect(Some(&c.client_token));
    assert!(held.is_open());
    let error = sync(&c.client, &relay, Some(&c.client_token), &[]).unwrap_err();
    assert!(error.contains("connections per token"), "{error}");
    // The slot comes back when the connection goes.
    held.close();
    sync(&c.client, &relay, Some(&c.client_token), &[]).expect("a slot is free again");
}

#[test]
fn a_connected_device_is_cut_off_when_its_revocation_arrives() {
    let (relay, _) = auth_relay(true);
    let c = clinic(&relay);
    // The phone's connection stays open, as in watch mode.
    let mut watching = relay
        .open(
            c.client.store.clone(),
            &with_token(Some(&c.client_token), &[]),
        )
        .unwrap();
    watching.settle().expect("the watching phone settles");
    assert_eq!(watching.summary().documents_synced, 1);
    c.counselor
        .store
        .revoke_device(c.plan, c.client.me.device_id)
        .unwrap();
    c.counselor
        .store
        .propose_goal(c.plan, "after revocation")
        .unwrap();
    sync(&c.counselor, &relay, Some(&c.counselor_token), &[]).unwrap();
    // The relay's news of the change makes it look the token up again, and cut the phone off.
    let error = watching.settle().unwrap_err().to_string();
    assert!(error.contains("not authorized"), "{error}");
    assert!(!watching.is_open());
    // The counselor's later edit never reached the revoked phone.
    assert_eq!(c.client.store.plan(c.plan).unwrap().goals.len(), 1);
}

// ---- On loopback sockets: what the drivers do ----

#[test]
fn errors_never_quote_the_token() {
    let phone = Phone::new("Dana", Role::Counselor);
    let token = alliance_core::sync::generate_token();
    // Nothing listens on this port (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = socket_sync(&phone, &format!("ws://127.0.0.1:{port}"), Some(&token)).unwrap_err();
    assert!(!error.contains(&token), "{error}");
}

/// Opens a WebSocket by hand (no `join` yet) and returns the socket.
fn raw_websocket(addr: std::net::SocketAddr, token: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "GET /?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).unwrap();
        seen.push(byte[0]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101"));
    socket
}

/// Writes one masked binary frame (payload under 126 bytes).
fn send_frame(socket: &mut TcpStream, payload: &[u8]) {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x82, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    socket.write_all(&frame).unwrap();
}

#[test]
fn idle_connections_are_closed() {
    let (relay, _) = socket_relay_with(RelayOptions {
        require_token: true,
        open_enrollment: true,
        idle_timeout: Duration::from_millis(200),
        ..RelayOptions::default()
    });
    let c = Clinic::new();
    socket_sync(&c.counselor, &relay.url(), Some(&c.counselor_token)).expect("first push");
    let refused_before = relay.connections_refused();
    let mut socket = raw_websocket(relay.local_addr(), &c.client_token);
    let join = Message::Join {
        sender_id: PeerId::new("idle"),
        peer_metadata: Some(PeerMetadata::default()),
        supported_protocol_versions: Some(vec![PROTOCOL_V1.to_string()]),
    };
    send_frame(&mut socket, &join.encode());
    // The relay answers `peer`, then, after the idle timeout, an error and a close.
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("idle for"), "{text}");
    assert_eq!(relay.connections_refused(), refused_before + 1);
    let _ = DocumentId::from_uuid(c.plan.as_uuid());
}

/// A self-signed certificate for 127.0.0.1, made now: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

#[test]
fn devices_sync_over_wss_with_a_certificate_they_trust() {
    let (cert, key) = self_signed();
    let (relay, relay_store) = socket_relay_with(RelayOptions {
        require_token: true,
        open_enrollment: true,
        tls: Some(alliance_core::sync::TlsIdentity {
            cert_chain_pem: cert.clone().into_bytes(),
            private_key_pem: key.into_bytes(),
        }),
        ..RelayOptions::default()
    });
    let url = relay.url();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let counselor = Phone::new("Dana", Role::Counselor);
    let client = Phone::new("Sam", Role::Client);
    let plan = plan_for(&counselor, &client, "Plan over TLS");
    let token = counselor
        .store
        .issue_device_token(plan, counselor.me.device_id, None)
        .unwrap();
    let trusting = SyncOptions {
        extra_root_certificate: Some(cert.into_bytes()),
        ..with_token(Some(&token), &[])
    };
    sync_once_blocking(counselor.store.clone(), &url, &trusting).expect("wss sync");
    assert_eq!(relay_store.plan_ids().unwrap(), vec![plan]);

    // A device that does not trust the certificate gets no session, and says why.
    let error = sync_once_blocking(
        counselor.store.clone(),
        &url,
        &with_token(Some(&token), &[]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(!error.contains(&token), "{error}");
    // Plain ws:// to a TLS relay fails too.
    let plain = url.replacen("wss://", "ws://", 1);
    assert!(sync_once_blocking(counselor.store.clone(), &plain, &trusting).is_err());
}

#[test]
fn a_relay_refuses_an_unusable_certificate() {
    let store = Arc::new(Alliance::open_in_memory().unwrap());
    let options = RelayOptions {
        tls: Some(alliance_core::sync::TlsIdentity {
            cert_chain_pem: b"not a certificate".to_vec(),
            private_key_pem: b"not a key".to_vec(),
        }),
        ..RelayOptions::default()
    };
    let error = BackgroundRelay::start("127.0.0.1:0", store, options)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("TLS"), "{error}");
    assert!(!error.contains("not a key"), "{error}");
}
