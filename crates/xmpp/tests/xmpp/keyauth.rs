//! `X-CRYPTOCAT-KEY` against the real relay: over TCP + STARTTLS (with the TLS exporter
//! as channel binding), over plain loopback WebSocket (no binding) and over HTTPS
//! WebSocket (binding); refusals of a bad signature, a replayed signature, a signature for
//! another domain or another channel; and `require_key_bound`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::keyauth::{self, BindingType, Challenge, ChannelBinding, ClientFirst};
use cryptocat_protocol::Timestamp;
use cryptocat_relay::{Config as RelayConfig, Limits, Running, Server};
use cryptocat_xmpp::session::{self, NS_SASL};
use cryptocat_xmpp::transport::connect_tcp;
use cryptocat_xmpp::websocket::connect_websocket;
use cryptocat_xmpp::xml::ParserLimits;
use cryptocat_xmpp::{Credentials, ElementStream, Event, ServerUrl, SessionError, TrustConfig};
use minidom::Element;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::{config, joined, next, online, wait_for};

const NOW: Timestamp = Timestamp(1_764_000_000_000);

fn identity(seed: u64) -> Arc<Identity> {
    Arc::new(Identity::generate(
        &mut ChaCha20Rng::seed_from_u64(seed),
        NOW,
    ))
}

async fn relay(tag: &str, require_key_bound: bool, https: bool) -> Running {
    let mut config = RelayConfig::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http_tls = Some(https);
    config.require_key_bound = require_key_bound;
    config.state_dir =
        Some(std::env::temp_dir().join(format!("cryptocat-xmpp-key-{}-{tag}", std::process::id())));
    config.limits = Limits {
        auth_failure_delay_ms: 10,
        ..Limits::default()
    };
    Server::bind(config).await.unwrap().spawn()
}

fn trust(server: &Running) -> Arc<rustls::ClientConfig> {
    TrustConfig::only(server.tls.certificate.clone())
        .client_config()
        .unwrap()
}

async fn tcp(server: &Running) -> Box<dyn ElementStream> {
    Box::new(
        connect_tcp(
            "127.0.0.1",
            server.c2s_addr.port(),
            "localhost",
            trust(server),
            ParserLimits::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap(),
    )
}

async fn websocket(server: &Running) -> Box<dyn ElementStream> {
    let addr = server.http_addr.unwrap();
    let scheme = if server.http_tls { "wss" } else { "ws" };
    let url = ServerUrl::parse(&format!(
        "{scheme}://localhost:{}/xmpp-websocket",
        addr.port()
    ))
    .unwrap();
    Box::new(
        connect_websocket(
            &url,
            "localhost",
            trust(server),
            ParserLimits::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap(),
    )
}

/// Sends client-first and returns the parsed challenge.
async fn challenge(stream: &mut dyn ElementStream, id: &Identity) -> Challenge {
    let features = stream.open().await.unwrap();
    assert!(session::offers_key_challenge(&features));
    stream
        .send(format!(
            "<auth xmlns='{NS_SASL}' mechanism='X-CRYPTOCAT-KEY'>{}</auth>",
            STANDARD.encode(ClientFirst::new(id).encode())
        ))
        .await
        .unwrap();
    let el = stream.next().await.unwrap();
    assert!(el.is("challenge", NS_SASL), "{el:?}");
    Challenge::decode(&STANDARD.decode(el.text().trim()).unwrap()).unwrap()
}

/// Sends client-final and returns `<success/>` or `<failure/>`.
async fn answer(stream: &mut dyn ElementStream, signature: &[u8]) -> Element {
    stream
        .send(format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            STANDARD.encode(signature)
        ))
        .await
        .unwrap();
    stream.next().await.unwrap()
}

fn binding_of(stream: &dyn ElementStream) -> ChannelBinding {
    stream
        .channel_binding()
        .map_or(ChannelBinding::None, ChannelBinding::TlsExporter)
}

fn refused(el: &Element) {
    assert!(el.is("failure", NS_SASL), "{el:?}");
    assert!(el.get_child("not-authorized", NS_SASL).is_some(), "{el:?}");
}

/// The whole refusal matrix on one transport: a good login, then a bad signature, a
/// replayed signature, another domain and another channel binding.
async fn refusals(server: &Running, web: bool) {
    let open = || async {
        if web {
            websocket(server).await
        } else {
            tcp(server).await
        }
    };
    let id = identity(1);
    let want = if server.http_tls || !web {
        BindingType::TlsExporter
    } else {
        BindingType::None
    };

    // Success: the success data is the key's localpart, and bind gives that JID.
    let mut s = open().await;
    let ch = challenge(s.as_mut(), &id).await;
    assert_eq!(ch.binding, want);
    assert_eq!(ch.domain, "localhost");
    let cb = binding_of(s.as_ref());
    assert_eq!(cb.kind(), want, "the client sees the same channel");
    let good = keyauth::respond(&id, "localhost", &ch, &cb).unwrap();
    let ok = answer(s.as_mut(), &good).await;
    assert!(ok.is("success", NS_SASL), "{ok:?}");
    let local = keyauth::localpart(&id.verifying_key());
    assert_eq!(STANDARD.decode(ok.text().trim()).unwrap(), local.as_bytes());
    let jid = session::bind(s.as_mut()).await.unwrap();
    assert!(jid.starts_with(&format!("{local}@localhost/")), "{jid}");

    // A flipped bit.
    let mut s = open().await;
    let ch = challenge(s.as_mut(), &id).await;
    let mut bad = keyauth::respond(&id, "localhost", &ch, &binding_of(s.as_ref())).unwrap();
    bad[3] ^= 0x10;
    refused(&answer(s.as_mut(), &bad).await);
    // The exchange is over: a second response without a new <auth/> is out of order.
    let again = answer(s.as_mut(), &good).await;
    assert!(again.is("failure", NS_SASL), "{again:?}");

    // The signature of the first, successful exchange, replayed on a new connection
    // (new nonce; and over TLS, a new exporter).
    let mut s = open().await;
    let ch2 = challenge(s.as_mut(), &id).await;
    assert_ne!(ch2.nonce, ch.nonce, "nonces are fresh");
    refused(&answer(s.as_mut(), &good).await);

    // Signed for another domain (a server relaying another server's challenge).
    let mut s = open().await;
    let ch = challenge(s.as_mut(), &id).await;
    let elsewhere = Challenge {
        domain: "example.org".into(),
        ..ch.clone()
    };
    assert!(keyauth::respond(&id, "localhost", &elsewhere, &binding_of(s.as_ref())).is_err());
    let sig = keyauth::respond(&id, "example.org", &elsewhere, &binding_of(s.as_ref())).unwrap();
    refused(&answer(s.as_mut(), &sig).await);

    // Signed with another channel's binding (a man in the middle terminating TLS).
    if want == BindingType::TlsExporter {
        let mut s = open().await;
        let ch = challenge(s.as_mut(), &id).await;
        let sig =
            keyauth::respond(&id, "localhost", &ch, &ChannelBinding::TlsExporter([0; 32])).unwrap();
        refused(&answer(s.as_mut(), &sig).await);
    }

    // A signature by another key for the claimed key.
    let mut s = open().await;
    let ch = challenge(s.as_mut(), &id).await;
    let sig = keyauth::respond(&identity(2), "localhost", &ch, &binding_of(s.as_ref())).unwrap();
    refused(&answer(s.as_mut(), &sig).await);
}

#[tokio::test]
async fn key_challenge_over_tcp_with_tls_exporter() {
    let server = relay("tcp", false, false).await;
    refusals(&server, false).await;
}

#[tokio::test]
async fn key_challenge_over_loopback_websocket_without_binding() {
    let server = relay("ws", false, false).await;
    refusals(&server, true).await;
}

#[tokio::test]
async fn key_challenge_over_https_websocket_with_tls_exporter() {
    let server = relay("wss", false, true).await;
    refusals(&server, true).await;
}

#[tokio::test]
async fn client_logs_in_with_its_key_and_shares_a_room_with_a_scram_account() {
    let server = relay("client", false, false).await;
    let id = identity(3);
    let mut c = config(&server);
    c.identity = Some(Arc::clone(&id));
    let mut keyed = online(c).await;
    let local = keyauth::localpart(&id.verifying_key());
    assert!(
        keyed.jid.starts_with(&format!("{local}@localhost/")),
        "{}",
        keyed.jid
    );
    // Same key again (a second device or a reconnection): the same account.
    let mut c = config(&server);
    c.identity = Some(Arc::clone(&id));
    let twin = online(c).await;
    assert!(twin.jid.starts_with(&format!("{local}@localhost/")));
    // Rooms accept both kinds of account by default.
    let mut scram = online(config(&server)).await;
    assert!(!scram.jid.starts_with(&local));
    assert!(joined(&mut keyed, "mixed", "k").await.is_empty());
    assert_eq!(joined(&mut scram, "mixed", "s").await, ["k"]);
    // Registration cannot claim a key-shaped name.
    let mut s = tcp(&server).await;
    let features = s.open().await.unwrap();
    let err = session::register(
        s.as_mut(),
        &features,
        &Credentials::new(keyauth::localpart(&identity(9).verifying_key()), "pw"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        SessionError::Registration {
            condition: "not-acceptable".into()
        }
    );
}

#[tokio::test]
async fn require_key_bound_refuses_room_joins_of_scram_accounts() {
    let server = relay("require", true, false).await;
    let mut scram = online(config(&server)).await;
    scram.handle.join("room", "s").unwrap();
    let condition = wait_for(&mut scram.events, |e| match e {
        Event::JoinFailed { condition, .. } => Some(condition.clone()),
        Event::Joined { .. } => panic!("a SCRAM account joined"),
        _ => None,
    })
    .await;
    assert_eq!(condition, "not-allowed");
    assert!(!server.room_exists("room"));

    let mut c = config(&server);
    c.identity = Some(identity(4));
    let mut keyed = online(c).await;
    assert!(joined(&mut keyed, "room", "k").await.is_empty());
    // Over WebSocket too.
    let addr = server.http_addr.unwrap();
    let mut c = crate::config(&server);
    c.server = ServerUrl::parse(&format!("ws://127.0.0.1:{}/xmpp-websocket", addr.port())).unwrap();
    c.identity = Some(identity(5));
    let mut ws = online(c).await;
    assert_eq!(joined(&mut ws, "room", "w").await, ["k"]);
    let ev = next(&mut keyed.events).await;
    assert!(matches!(ev, Event::OccupantJoined { .. }), "{ev:?}");
}

#[tokio::test]
async fn client_refuses_a_challenge_for_another_domain() {
    // The client's domain is "localhost"; a relay serving "example.org" on the same
    // certificate would name its own domain in the challenge. Simulate by asking the
    // relay with a mismatched expected domain: the client aborts before signing.
    let server = relay("domain", false, false).await;
    let id = identity(6);
    let mut s = tcp(&server).await;
    let features = s.open().await.unwrap();
    let err = session::login_key(
        s.as_mut(),
        &features,
        session::KeyLogin {
            identity: &id,
            domain: "example.org",
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Auth(cryptocat_xmpp::AuthError::KeyChallenge(
                keyauth::KeyAuthError::WrongDomain
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn key_logins_leave_no_key_localpart_or_signature_in_logs() {
    let logs = crate::relay::LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = relay("logs", false, false).await;
    let id = identity(7);
    let mut c = config(&server);
    c.identity = Some(Arc::clone(&id));
    let peer = online(c).await;
    // And a refused attempt.
    let mut s = tcp(&server).await;
    let ch = challenge(s.as_mut(), &id).await;
    let mut sig = keyauth::respond(&id, "localhost", &ch, &binding_of(s.as_ref())).unwrap();
    sig[0] ^= 1;
    refused(&answer(s.as_mut(), &sig).await);
    peer.handle.disconnect().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("authenticated with a key") && text.contains("authentication failed"),
        "the capture works: {text}"
    );
    let key = id.verifying_key();
    let local = keyauth::localpart(&key);
    for secret in [
        local.as_str(),
        &hex::encode(key.as_bytes())[..16],
        &STANDARD.encode(ClientFirst::new(&id).encode())[..16],
        &STANDARD.encode(sig)[..16],
        &hex::encode(ch.nonce)[..16],
        &STANDARD.encode(ch.nonce)[..16],
    ] {
        assert!(!text.contains(secret), "{secret} in logs:\n{text}");
    }
}
