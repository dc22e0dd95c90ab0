//! Against the real relay.

use std::time::{Duration, Instant};

use cryptocat_protocol::dake::{self, DakeContext};
use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::message::Message;
use cryptocat_protocol::Timestamp;
use cryptocat_xmpp::{
    CertificateReason, Client, ClientError, ConnectError, DisconnectReason, Event, Pin, Refusal,
    SessionError, TlsFailure, TransportError, TrustConfig,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::{config, config_for, expect_silence, joined, next, online, start_relay, wait_for};

const NOW: Timestamp = Timestamp(1_764_000_000_000);

fn group_message(seed: u8) -> Vec<u8> {
    GroupMessage {
        epoch: [seed; 16],
        sender: 1,
        index: 7,
        prev_hash: [seed; 32],
        ciphertext: vec![seed; 64],
        macs: vec![[seed; 16], [seed.wrapping_add(1); 16]],
    }
    .encode()
}

/// The first message of a real DAKEZ handshake (an Identity message).
fn pairwise_message() -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let alice = Identity::generate(&mut rng, NOW);
    let ctx = DakeContext {
        room: "room@conference.localhost".into(),
        initiator: "room@conference.localhost/a".into(),
        responder: "room@conference.localhost/b".into(),
    };
    let (_wait, m1) = dake::initiate(&mut rng, &alice, ctx, None).unwrap();
    Message::Identity(m1).encode()
}

#[tokio::test]
async fn two_clients_register_join_and_exchange_group_and_private_payloads() {
    let server = start_relay().await;
    let mut alice = online(config(&server)).await;
    let mut bob = online(config(&server)).await;
    // Random accounts: 16 bytes of hex as the localpart.
    let local = alice.jid.split('@').next().unwrap();
    assert_eq!(local.len(), 32);
    assert!(local.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(alice.jid.contains("@localhost/"));
    assert_ne!(alice.jid, bob.jid);

    assert!(joined(&mut alice, "room", "a").await.is_empty());
    assert_eq!(joined(&mut bob, "room", "b").await, ["a"]);
    let ev = next(&mut alice.events).await;
    assert_eq!(
        ev,
        Event::OccupantJoined {
            room: "room".into(),
            nick: "b".into()
        }
    );

    // Group payload: Bob gets it, Alice gets the echo.
    let bytes = group_message(5);
    let id = alice.handle.send_groupchat("room", &bytes).unwrap();
    for peer in [&mut bob, &mut alice] {
        let ev = next(&mut peer.events).await;
        assert_eq!(
            ev,
            Event::GroupPayload {
                room: "room".into(),
                from_nick: "a".into(),
                bytes: bytes.clone()
            }
        );
    }
    assert!(!id.0.is_empty());

    // Private payload: only Bob.
    let private = pairwise_message();
    alice.handle.send_private("room", "b", &private).unwrap();
    let ev = next(&mut bob.events).await;
    assert_eq!(
        ev,
        Event::PrivatePayload {
            room: "room".into(),
            from_nick: "a".into(),
            bytes: private.clone()
        }
    );
    expect_silence(&mut alice.events, Duration::from_millis(200)).await;

    // Bob leaves: he sees Left, Alice sees him go.
    bob.handle.leave("room").unwrap();
    assert_eq!(
        next(&mut bob.events).await,
        Event::Left {
            room: "room".into()
        }
    );
    assert_eq!(
        next(&mut alice.events).await,
        Event::OccupantLeft {
            room: "room".into(),
            nick: "b".into()
        }
    );
    assert!(matches!(
        bob.handle.send_groupchat("room", &[]),
        Err(ClientError::PayloadSize(0))
    ));

    bob.handle.disconnect().unwrap();
    assert_eq!(
        next(&mut bob.events).await,
        Event::Disconnected {
            reason: DisconnectReason::Requested,
            will_reconnect: false
        }
    );
    assert!(bob.events.recv().await.is_none(), "the task ended");
    assert_eq!(bob.handle.join("room", "b"), Err(ClientError::Closed));
}

#[tokio::test]
async fn second_occupant_with_the_same_nick_is_refused() {
    let server = start_relay().await;
    let mut alice = online(config(&server)).await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "room", "same").await;
    bob.handle.join("room", "same").unwrap();
    let ev = next(&mut bob.events).await;
    assert_eq!(
        ev,
        Event::JoinFailed {
            room: "room".into(),
            condition: "conflict".into()
        }
    );
}

#[tokio::test]
async fn malformed_payload_gets_policy_violation() {
    let server = start_relay().await;
    let mut alice = online(config(&server)).await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "room", "a").await;
    joined(&mut bob, "room", "b").await;
    next(&mut alice.events).await; // Bob's arrival

    let id = alice
        .handle
        .send_groupchat("room", b"not a group message")
        .unwrap();
    let ev = next(&mut alice.events).await;
    assert_eq!(
        ev,
        Event::StanzaError {
            id: Some(id),
            condition: "policy-violation".into()
        }
    );
    // A pairwise message is not a group message either.
    alice
        .handle
        .send_groupchat("room", &pairwise_message())
        .unwrap();
    assert!(matches!(
        next(&mut alice.events).await,
        Event::StanzaError { condition, .. } if condition == "policy-violation"
    ));
    expect_silence(&mut bob.events, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn given_credentials_log_in_and_wrong_ones_are_refused() {
    let server = start_relay().await;
    // Register with the session layer directly, then log in with the account.
    let mut cfg = config(&server);
    let creds = cryptocat_xmpp::Credentials::random();
    let mut transport = cryptocat_xmpp::transport::connect_tcp(
        "127.0.0.1",
        server.c2s_addr.port(),
        "localhost",
        cfg.trust.client_config().unwrap(),
        Default::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    cryptocat_xmpp::session::establish(&mut transport, &creds, true)
        .await
        .unwrap();
    cfg.credentials = Some(creds.clone());
    let peer = online(cfg.clone()).await;
    assert!(peer
        .jid
        .starts_with(&format!("{}@localhost/", creds.username)));
    assert_eq!(format!("{creds:?}"), "Credentials(..)");
    drop(peer);
    let mut wrong = cfg;
    wrong.credentials = Some(cryptocat_xmpp::Credentials::new(
        creds.username.clone(),
        "wrong password",
    ));
    let err = Client::connect(wrong).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ConnectError::Session(SessionError::Auth(cryptocat_xmpp::AuthError::Refused { condition }))
                if condition == "not-authorized"
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains(&creds.username), "{text}");
    assert!(!text.contains("wrong password"), "{text}");
}

#[tokio::test]
async fn unreachable_server_fails_quickly_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let started = Instant::now();
    let err = Client::connect(config_for(addr, TrustConfig::system()))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        err,
        ConnectError::Session(SessionError::Transport(TransportError::Connect(
            std::io::ErrorKind::ConnectionRefused
        )))
    );
    assert_eq!(
        err.to_string(),
        "cannot connect to the server: connection refused"
    );
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let server = start_relay().await;
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let trust = TrustConfig::only(other.cert.der().clone());
    let err = Client::connect(config_for(server.c2s_addr, trust))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConnectError::Session(SessionError::Transport(TransportError::Tls(
            TlsFailure::Certificate(Refusal {
                reason: CertificateReason::UnknownIssuer,
                seen: Some(Pin::of_certificate(&server.tls.certificate).unwrap()),
            })
        )))
    );
    assert!(err.to_string().contains("its key is sha256/"), "{err}");
    // The right certificate from a PEM file (as --ca-cert gives it) works.
    let mut trust = TrustConfig::default();
    trust.add_pem_file(&server.tls.certificate_path).unwrap();
    online(config_for(server.c2s_addr, trust)).await;
}

#[tokio::test]
async fn invalid_room_and_nick_are_refused_locally() {
    let server = start_relay().await;
    let alice = online(config(&server)).await;
    assert_eq!(alice.handle.join("a@b", "n"), Err(ClientError::InvalidRoom));
    assert_eq!(alice.handle.join("", "n"), Err(ClientError::InvalidRoom));
    assert_eq!(alice.handle.join("room", ""), Err(ClientError::InvalidNick));
    assert_eq!(
        alice.handle.send_private("room", " x", b"abc"),
        Err(ClientError::InvalidNick)
    );
    // Room names are case-insensitive: events use the lower-case form.
    let mut alice = alice;
    joined(&mut alice, "MixedCase", "n").await;
    assert!(server.room_exists("mixedcase"));
}

#[tokio::test]
async fn occupant_leaving_by_disconnecting_is_reported() {
    let server = start_relay().await;
    let mut alice = online(config(&server)).await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "room", "a").await;
    joined(&mut bob, "room", "b").await;
    next(&mut alice.events).await;
    bob.handle.disconnect().unwrap();
    let ev = wait_for(&mut alice.events, |e| match e {
        Event::OccupantLeft { nick, .. } => Some(nick.clone()),
        _ => None,
    })
    .await;
    assert_eq!(ev, "b");
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_and_errors_carry_no_user_data() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = start_relay().await;
    let mut alice = online(config(&server)).await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "secretroom", "secretnick").await;
    joined(&mut bob, "secretroom", "othernick").await;
    let bytes = group_message(3);
    alice.handle.send_groupchat("secretroom", &bytes).unwrap();
    wait_for(&mut bob.events, |e| {
        matches!(e, Event::GroupPayload { .. }).then_some(())
    })
    .await;
    let id = alice
        .handle
        .send_groupchat("secretroom", b"secretgarbage")
        .unwrap();
    wait_for(&mut alice.events, |e| match e {
        Event::StanzaError { id: i, .. } if i.as_ref() == Some(&id) => Some(()),
        _ => None,
    })
    .await;
    bob.handle.disconnect().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("connected and bound"),
        "the capture works: {text}"
    );
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
    let alice_local = alice.jid.split('@').next().unwrap().to_owned();
    for secret in [
        "secretroom",
        "secretnick",
        "othernick",
        "c2VjcmV0Z2FyYmFnZQ", // base64 of "secretgarbage"
        &b64[..16],
        &alice_local,
    ] {
        assert!(!text.contains(secret), "{secret} in logs:\n{text}");
    }
}
