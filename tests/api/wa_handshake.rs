//! The real connector against a loopback WhatsApp responder, without internet: the daemon runs
//! with `whatsapp.connector = "real"` and `ws_url` pointing at a WebSocket server in this test
//! that speaks the server side of WhatsApp's Noise XX handshake (the way whatsapp-rust's own
//! `tests/handshake_integration.rs` builds its responder: a test certificate chain from
//! `wacore-noise`'s `test-util`, accepted because the tests enable
//! `danger-skip-cert-chain-verify`), then sends the `pair-device` IQ a real server sends to an
//! unpaired companion. The client turns it into QR codes, and the QR reaches the device actor
//! (`awaiting_qr`, `qr.svg`) through exactly the path the simulator's QR takes.
//!
//! The same test then drops the connection: the device is reconnected by our supervisor
//! (whatsapp-rust's own reconnect loop is off), and a logout leaves no `wa_` row of the device.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use wafleet::whatsapp::real::store::count_device_rows;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::handshake::NoiseHandshake;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PrivateKey};
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::NodeBuilder;

use crate::helpers::{spawn_app_with, wait_until, Backend, TestApp};

/// What the responder saw.
#[derive(Default)]
struct Seen {
    /// WebSocket connections accepted.
    connections: AtomicUsize,
    /// Handshakes completed (ClientFinish decrypted with the derived keys).
    handshakes: AtomicUsize,
    /// Encrypted frames received from clients after their handshake (e.g. the pair ack).
    frames_after_handshake: AtomicUsize,
    /// One command channel per accepted connection, in order.
    controls: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Command>>>,
}

/// What the test tells one connection to do.
#[derive(Debug, Clone, Copy)]
enum Command {
    /// Close the WebSocket (a network drop).
    Drop,
    /// Send `<stream:error code="401"/>`: WhatsApp unlinked this device (remote logout).
    Unlink,
}

impl Seen {
    /// Sends `command` to the `n`th accepted connection (0-based).
    fn tell(&self, n: usize, command: Command) {
        self.controls.lock().unwrap()[n].send(command).unwrap();
    }
}

/// A fresh X25519 key pair (from rand 0.9 bytes; the library's own generator wants rand 0.10).
fn key_pair() -> KeyPair {
    let private = PrivateKey::deserialize(&rand::random::<[u8; 32]>()).unwrap();
    KeyPair::try_from(private).unwrap()
}

/// Splits whole frames (3-byte big-endian length + body) off the front of `buf`.
fn take_frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    loop {
        if buf.len() < 3 {
            break;
        }
        let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
        if buf.len() < 3 + len {
            break;
        }
        frames.push(buf[3..3 + len].to_vec());
        buf.drain(..3 + len);
    }
    frames
}

/// Serves one client: Noise XX as the server, then `pair-device`, then reads until dropped.
async fn serve(stream: tokio::net::TcpStream, seen: Arc<Seen>) {
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let server_static = key_pair();
    let server_static_pub: [u8; 32] = server_static
        .public_key
        .public_key_bytes()
        .try_into()
        .unwrap();
    let cert_chain =
        whatsapp_rust::wacore::noise::test_util::build_cert_chain_bytes(&server_static_pub);
    let (control_tx, mut control_rx) = tokio::sync::mpsc::unbounded_channel();
    seen.controls.lock().unwrap().push(control_tx);

    let mut buf = Vec::new();
    let mut header_seen = false;
    let mut noise: Option<(NoiseHandshake, KeyPair)> = None;
    let mut read_cipher = None;
    let mut read_counter = 0u32;
    let mut write_cipher: Option<whatsapp_rust::wacore::noise::NoiseCipher> = None;
    let mut write_counter = 0u32;
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            command = control_rx.recv() => {
                match command {
                    Some(Command::Unlink) => {
                        let node = NodeBuilder::new("stream:error").attr("code", "401").build();
                        let plain = whatsapp_rust::wacore_binary::marshal::marshal(&node).unwrap();
                        let cipher = write_cipher.as_ref().unwrap();
                        let sealed = cipher.encrypt_with_counter(write_counter, &plain).unwrap();
                        write_counter += 1;
                        let framed =
                            whatsapp_rust::wacore::framing::encode_frame(&sealed, None).unwrap();
                        ws.send(Message::Binary(framed.into())).await.unwrap();
                        continue;
                    }
                    Some(Command::Drop) | None => {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
        };
        let Some(Ok(message)) = message else { return };
        let Message::Binary(data) = message else {
            continue;
        };
        buf.extend_from_slice(&data);
        if !header_seen && buf.len() >= WA_CONN_HEADER.len() {
            assert!(
                buf.starts_with(&WA_CONN_HEADER),
                "the client opens with WA's header"
            );
            buf.drain(..WA_CONN_HEADER.len());
            header_seen = true;
        }
        for frame in take_frames(&mut buf) {
            if let Some(cipher) = &read_cipher {
                let cipher: &whatsapp_rust::wacore::noise::NoiseCipher = cipher;
                let mut body = frame.clone();
                cipher
                    .decrypt_in_place_with_counter(read_counter, &mut body)
                    .unwrap();
                read_counter += 1;
                seen.frames_after_handshake.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let hello = wa::HandshakeMessage::decode_from_slice(&frame).unwrap();
            match noise.take() {
                None => {
                    // ClientHello → ServerHello (e, ee, s, es, cert chain).
                    let client_eph: [u8; 32] = hello
                        .client_hello
                        .into_option()
                        .unwrap()
                        .ephemeral
                        .unwrap()
                        .try_into()
                        .unwrap();
                    let mut hs = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER).unwrap();
                    hs.authenticate(&client_eph);
                    let server_eph = key_pair();
                    let server_eph_pub: [u8; 32] =
                        server_eph.public_key.public_key_bytes().try_into().unwrap();
                    hs.authenticate(&server_eph_pub);
                    hs.mix_shared_secret(server_eph.private_key.serialize(), &client_eph)
                        .unwrap();
                    let encrypted_static = hs.encrypt(&server_static_pub).unwrap();
                    hs.mix_shared_secret(server_static.private_key.serialize(), &client_eph)
                        .unwrap();
                    let encrypted_payload = hs.encrypt(&cert_chain).unwrap();
                    let server_hello = wa::HandshakeMessage {
                        server_hello: whatsapp_rust::buffa::MessageField::some(
                            wa::handshake_message::ServerHello {
                                ephemeral: Some(server_eph_pub.to_vec()),
                                r#static: Some(encrypted_static),
                                payload: Some(encrypted_payload),
                                ..Default::default()
                            },
                        ),
                        ..Default::default()
                    };
                    let framed = whatsapp_rust::wacore::framing::encode_frame(
                        &server_hello.encode_to_vec(),
                        None,
                    )
                    .unwrap();
                    ws.send(Message::Binary(framed.into())).await.unwrap();
                    noise = Some((hs, server_eph));
                }
                Some((mut hs, server_eph)) => {
                    // ClientFinish (s, se, payload) → transport keys.
                    let finish = hello.client_finish.into_option().unwrap();
                    let client_static = hs.decrypt(&finish.r#static.unwrap()).unwrap();
                    hs.mix_shared_secret(server_eph.private_key.serialize(), &client_static)
                        .unwrap();
                    let _client_payload = hs.decrypt(&finish.payload.unwrap()).unwrap();
                    // The client writes with the first key, reads with the second.
                    let (client_write, client_read) = hs.finish().unwrap();
                    seen.handshakes.fetch_add(1, Ordering::SeqCst);
                    let pair_device = NodeBuilder::new("iq")
                        .attr("from", "s.whatsapp.net")
                        .attr("type", "set")
                        .attr("id", "pair-1")
                        .attr("xmlns", "md")
                        .children([NodeBuilder::new("pair-device")
                            .children([NodeBuilder::new("ref")
                                .bytes(b"2@loopback-ref-1".to_vec())
                                .build()])
                            .build()])
                        .build();
                    let plain =
                        whatsapp_rust::wacore_binary::marshal::marshal(&pair_device).unwrap();
                    let sealed = client_read
                        .encrypt_with_counter(write_counter, &plain)
                        .unwrap();
                    write_counter += 1;
                    let framed =
                        whatsapp_rust::wacore::framing::encode_frame(&sealed, None).unwrap();
                    ws.send(Message::Binary(framed.into())).await.unwrap();
                    read_cipher = Some(client_write);
                    write_cipher = Some(client_read);
                }
            }
        }
    }
}

/// Starts the responder on a loopback port; returns its `ws://` URL and what it sees.
async fn responder() -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let server_seen = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            server_seen.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, server_seen.clone()));
        }
    });
    (url, seen)
}

async fn device(app: &TestApp, admin: &crate::helpers::UserClient, id: i64) -> Value {
    let _ = app;
    admin
        .get(&format!("/api/v1/devices/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// Runs on SQLite and, with `DATABASE_URL`, on PostgreSQL.
mod real_connector_reaches_qr_over_a_loopback_handshake {
    use crate::helpers::Backend;

    #[actix_web::test]
    async fn sqlite() {
        super::loopback_handshake(Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        if std::env::var_os("DATABASE_URL").is_none() {
            eprintln!("skipped loopback handshake on postgres: DATABASE_URL is not set");
            return;
        }
        super::loopback_handshake(Backend::Postgres).await;
    }
}

async fn loopback_handshake(backend: Backend) {
    let (url, seen) = responder().await;
    let app = spawn_app_with(
        backend,
        &[
            ("WAFLEET__WHATSAPP__CONNECTOR", "real"),
            ("WAFLEET__WHATSAPP__WS_URL", url.as_str()),
            // Pinned: the connector must not fetch anything from the internet.
            ("WAFLEET__WHATSAPP__VERSION", "2.3000.1042742319"),
            ("WAFLEET__FLEET__BACKOFF_BASE_MS", "200"),
        ],
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let created = admin
        .post("/api/v1/devices", &json!({"name": "Real 1"}))
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();

    // Handshake, pair-device, QR: through the device actor to the API.
    let live = wait_until(
        "the real client's QR reaches the device",
        Duration::from_secs(30),
        || async {
            let live = device(&app, &admin, id).await;
            (live["status"] == "awaiting_qr").then_some(live)
        },
    )
    .await;
    let qr = live["live"]["qr"].as_str().unwrap();
    assert!(qr.starts_with("2@loopback-ref-1,"), "QR payload: {qr:.40}");
    let parts: Vec<&str> = qr.split(',').collect();
    assert_eq!(
        parts.len(),
        5,
        "ref, noise key, identity key, ADV secret, client type"
    );
    // Three 32-byte keys, base64: the device's own, created in our store.
    assert!(parts[1..4].iter().all(|key| key.len() == 44));
    let svg = admin.get(&format!("/api/v1/devices/{id}/qr.svg")).await;
    assert_eq!(svg.status(), 200);
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 1);
    wait_until(
        "the client acknowledges the pair-device IQ",
        Duration::from_secs(10),
        || async { (seen.frames_after_handshake.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    // The device record (fresh keys) is in our database, keyed by the device.
    assert!(count_device_rows(&app.db, id).await.unwrap() >= 1);

    // The server drops the connection: our supervisor reconnects (once, after its backoff);
    // whatsapp-rust's own reconnect loop stays off.
    seen.tell(0, Command::Drop);
    wait_until(
        "a new connection from our supervisor",
        Duration::from_secs(30),
        || async { (seen.handshakes.load(Ordering::SeqCst) >= 2).then_some(()) },
    )
    .await;
    wait_until(
        "the device shows a QR again",
        Duration::from_secs(30),
        || async { (device(&app, &admin, id).await["status"] == "awaiting_qr").then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        2,
        "exactly one reconnect: ours"
    );

    // A second device, to show that one device's wipe leaves the other's rows alone.
    let other = admin
        .post("/api/v1/devices", &json!({"name": "Real 2"}))
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    wait_until(
        "the second device's QR",
        Duration::from_secs(30),
        || async { (device(&app, &admin, other).await["status"] == "awaiting_qr").then_some(()) },
    )
    .await;
    let other_rows = count_device_rows(&app.db, other).await.unwrap();
    assert!(other_rows >= 1);

    // WhatsApp unlinks the first device (stream error 401): logged out, its rows wiped, and
    // nobody reconnects it.
    seen.tell(1, Command::Unlink);
    wait_until(
        "the remote logout reaches the device",
        Duration::from_secs(30),
        || async { (device(&app, &admin, id).await["status"] == "logged_out").then_some(()) },
    )
    .await;
    wait_until(
        "the session store is wiped",
        Duration::from_secs(15),
        || async { (count_device_rows(&app.db, id).await.unwrap() == 0).then_some(()) },
    )
    .await;
    assert_eq!(count_device_rows(&app.db, other).await.unwrap(), other_rows);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        3,
        "no reconnect after a logout"
    );

    // The user logs the second device out: no `wa_` row of it is left either.
    let out = admin
        .post(&format!("/api/v1/devices/{other}/logout"), &json!({}))
        .await;
    assert_eq!(out.status(), 200);
    wait_until(
        "the second store is wiped",
        Duration::from_secs(15),
        || async { (count_device_rows(&app.db, other).await.unwrap() == 0).then_some(()) },
    )
    .await;
    assert_eq!(device(&app, &admin, other).await["status"], "logged_out");
}
