//! XMPP over BOSH (XEP-0124/0206) against the relay's `/http-bind`, in the same room as a
//! TCP client; HTTPS with the relay's self-signed certificate; recovery from cut HTTP
//! connections and from a relay restart.

use std::net::SocketAddr;
use std::time::Duration;

use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_xmpp::{
    BoshError, Client, Config, ConnectError, DisconnectReason, Event, ServerUrl, SessionError,
    TlsFailure, TransportError, TrustConfig,
};

use crate::proxy::Proxy;
use crate::{config, config_for, expect_silence, joined, next, online, start_relay_http, wait_for};

fn group_message(seed: u8) -> Vec<u8> {
    GroupMessage {
        epoch: [seed; 16],
        sender: 0,
        index: u32::from(seed),
        prev_hash: [seed; 32],
        ciphertext: vec![seed; 48],
        macs: vec![[seed; 16]],
    }
    .encode()
}

/// A real pairwise message (the first DAKEZ message), which the relay accepts as `chat`.
fn pairwise_message() -> Vec<u8> {
    use cryptocat_protocol::dake::{self, DakeContext};
    use rand_core::SeedableRng as _;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let id = cryptocat_protocol::identity::Identity::generate(
        &mut rng,
        cryptocat_protocol::Timestamp(1_764_000_000_000),
    );
    let ctx = DakeContext {
        room: "room@conference.localhost".into(),
        initiator: "room@conference.localhost/t".into(),
        responder: "room@conference.localhost/h".into(),
    };
    let (_wait, m1) = dake::initiate(&mut rng, &id, ctx, None).unwrap();
    cryptocat_protocol::message::Message::Identity(m1).encode()
}

/// A client configuration for the BOSH endpoint at `url` (reconnection as in `config_for`).
fn bosh_config(url: &str, trust: TrustConfig) -> Config {
    let mut c = config_for(SocketAddr::from(([127, 0, 0, 1], 1)), trust);
    c.server = ServerUrl::parse(url).unwrap();
    c
}

fn http_url(addr: SocketAddr) -> String {
    format!("http://{addr}/http-bind")
}

async fn payload_from(peer: &mut crate::Peer, private: bool) -> (String, Vec<u8>) {
    wait_for(&mut peer.events, |e| match e {
        Event::GroupPayload {
            from_nick, bytes, ..
        } if !private => Some((from_nick.clone(), bytes.clone())),
        Event::PrivatePayload {
            from_nick, bytes, ..
        } if private => Some((from_nick.clone(), bytes.clone())),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn bosh_client_registers_joins_and_exchanges_payloads_with_a_tcp_client() {
    let server = start_relay_http("bosh-main", false).await;
    let url = http_url(server.http_addr.unwrap());
    // http:// has no TLS of its own (loopback): an empty trust store is fine.
    let mut hana = online(bosh_config(&url, TrustConfig::default())).await;
    let mut tom = online(config(&server)).await;
    assert!(hana.jid.contains("@localhost/"));
    assert_eq!(server.bosh_session_count(), 1);

    assert!(joined(&mut hana, "room", "h").await.is_empty());
    assert_eq!(joined(&mut tom, "room", "t").await, ["h"]);
    assert_eq!(
        next(&mut hana.events).await,
        Event::OccupantJoined {
            room: "room".into(),
            nick: "t".into()
        }
    );
    // Group payloads both ways; the sender gets the echo.
    let bytes = group_message(1);
    hana.handle.send_groupchat("room", &bytes).unwrap();
    assert_eq!(
        payload_from(&mut tom, false).await,
        ("h".into(), bytes.clone())
    );
    assert_eq!(payload_from(&mut hana, false).await, ("h".into(), bytes));
    let bytes = group_message(2);
    tom.handle.send_groupchat("room", &bytes).unwrap();
    assert_eq!(payload_from(&mut hana, false).await, ("t".into(), bytes));
    // Private payloads both ways.
    let private = pairwise_message();
    tom.handle.send_private("room", "h", &private).unwrap();
    assert_eq!(
        payload_from(&mut hana, true).await,
        ("t".into(), private.clone())
    );
    hana.handle.send_private("room", "t", &private).unwrap();
    assert_eq!(payload_from(&mut tom, true).await, ("h".into(), private));
    // The plaintext policy reaches a BOSH client too.
    hana.handle.send_groupchat("room", b"junk").unwrap();
    assert!(matches!(
        wait_for(&mut hana.events, |e| matches!(e, Event::StanzaError { .. }).then(|| e.clone())).await,
        Event::StanzaError { condition, .. } if condition == "policy-violation"
    ));
    expect_silence(&mut tom.events, Duration::from_millis(200)).await;

    // A burst larger than the relay's request burst (40) is batched and paced, not
    // refused as overactivity; order is kept both ways.
    let burst: Vec<Vec<u8>> = (10..90).map(group_message).collect();
    for b in &burst {
        hana.handle.send_groupchat("room", b).unwrap();
        tom.handle.send_groupchat("room", b).unwrap();
    }
    let mut from_hana = Vec::new();
    let mut from_tom = Vec::new();
    while from_hana.len() < burst.len() || from_tom.len() < burst.len() {
        match next(&mut hana.events).await {
            Event::GroupPayload {
                from_nick, bytes, ..
            } => {
                if from_nick == "h" {
                    from_hana.push(bytes);
                } else {
                    from_tom.push(bytes);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(from_hana, burst, "our own echoes, in order");
    assert_eq!(from_tom, burst, "the TCP client's payloads, in order");

    hana.handle.leave("room").unwrap();
    assert_eq!(
        next(&mut hana.events).await,
        Event::Left {
            room: "room".into()
        }
    );
    // Disconnecting terminates the BOSH session on the relay.
    hana.handle.disconnect().unwrap();
    assert_eq!(
        next(&mut hana.events).await,
        Event::Disconnected {
            reason: DisconnectReason::Requested,
            will_reconnect: false
        }
    );
    for _ in 0..50 {
        if server.bosh_session_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.bosh_session_count(), 0);
}

#[tokio::test]
async fn https_bosh_with_the_relays_self_signed_certificate() {
    let server = start_relay_http("bosh-https", true).await;
    assert!(server.http_tls);
    let url = format!(
        "https://localhost:{}/http-bind",
        server.http_addr.unwrap().port()
    );
    // Untrusted: refused with a typed TLS error before any session exists.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let err = Client::connect(bosh_config(
        &url,
        TrustConfig::only(other.cert.der().clone()),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ConnectError::Session(SessionError::Transport(TransportError::Tls(
            TlsFailure::Certificate(cryptocat_xmpp::Refusal {
                reason: cryptocat_xmpp::CertificateReason::UnknownIssuer,
                seen: cryptocat_xmpp::Pin::of_certificate(&server.tls.certificate).ok(),
            })
        )))
    );
    assert_eq!(server.bosh_session_count(), 0);
    // Trusted from the PEM file, as `--ca-cert` gives it.
    let mut trust = TrustConfig::default();
    trust.add_pem_file(&server.tls.certificate_path).unwrap();
    let mut hana = online(bosh_config(&url, trust)).await;
    let mut tom = online(config(&server)).await;
    joined(&mut hana, "room", "h").await;
    joined(&mut tom, "room", "t").await;
    let bytes = group_message(3);
    tom.handle.send_groupchat("room", &bytes).unwrap();
    assert_eq!(payload_from(&mut hana, false).await, ("t".into(), bytes));
}

#[tokio::test]
async fn wrong_endpoint_is_a_typed_http_error() {
    let server = start_relay_http("bosh-404", false).await;
    let url = format!("http://{}/elsewhere/http-bind", server.http_addr.unwrap());
    let err = Client::connect(bosh_config(&url, TrustConfig::default()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConnectError::Session(SessionError::Transport(TransportError::Bosh(
            BoshError::Http(404)
        )))
    );
    assert_eq!(err.to_string(), "the BOSH endpoint answered HTTP 404");
}

#[tokio::test]
async fn cut_http_connections_are_resent_without_losing_the_session() {
    let server = start_relay_http("bosh-cut", false).await;
    let proxy = Proxy::start(server.http_addr.unwrap()).await;
    let mut hana = online(bosh_config(&http_url(proxy.addr), TrustConfig::default())).await;
    let mut tom = online(config(&server)).await;
    joined(&mut hana, "room", "h").await;
    joined(&mut tom, "room", "t").await;
    next(&mut hana.events).await; // Tom's arrival
    for round in 0..3u8 {
        // Every HTTP connection (the held poll included) is cut; the requests are resent
        // with the same rid and the session goes on: no Disconnected, no re-join.
        proxy.cut();
        let bytes = group_message(100 + round);
        tom.handle.send_groupchat("room", &bytes).unwrap();
        assert_eq!(payload_from(&mut hana, false).await, ("t".into(), bytes));
        let bytes = group_message(110 + round);
        hana.handle.send_groupchat("room", &bytes).unwrap();
        assert_eq!(
            next(&mut hana.events).await,
            Event::GroupPayload {
                room: "room".into(),
                from_nick: "h".into(),
                bytes: bytes.clone()
            }
        );
        // Tom skips the echo of his own payload.
        let got = wait_for(&mut tom.events, |e| match e {
            Event::GroupPayload {
                from_nick, bytes, ..
            } if from_nick == "h" => Some(bytes.clone()),
            _ => None,
        })
        .await;
        assert_eq!(got, bytes);
    }
    expect_silence(&mut hana.events, Duration::from_millis(200)).await;
    assert_eq!(server.bosh_session_count(), 1);
}

#[tokio::test]
async fn relay_restart_ends_the_bosh_session_and_the_client_starts_over() {
    let first = start_relay_http("bosh-first", false).await;
    let proxy = Proxy::start(first.http_addr.unwrap()).await;
    let second = start_relay_http("bosh-second", false).await;
    let mut hana = online(bosh_config(&http_url(proxy.addr), TrustConfig::default())).await;
    joined(&mut hana, "room", "h").await;

    *proxy.upstream.lock().unwrap() = second.http_addr.unwrap();
    first.stop();
    proxy.cut();
    drop(first);
    // The resent poll reaches a relay that does not know the session.
    let reason = wait_for(&mut hana.events, |e| match e {
        Event::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        DisconnectReason::ConnectionLost(TransportError::Bosh(BoshError::Terminated(
            "item-not-found"
        )))
    );
    let jid = wait_for(&mut hana.events, |e| match e {
        Event::Connected { jid } => Some(jid.clone()),
        _ => None,
    })
    .await;
    assert_ne!(
        jid.split('@').next(),
        hana.jid.split('@').next(),
        "new account"
    );
    let occupants = wait_for(&mut hana.events, |e| match e {
        Event::Joined { room, occupants } if room == "room" => Some(occupants.clone()),
        _ => None,
    })
    .await;
    assert!(occupants.is_empty());
    assert!(second.room_exists("room"));
    // And payloads flow on the new relay.
    let mut tom = online(config(&second)).await;
    joined(&mut tom, "room", "t").await;
    let bytes = group_message(7);
    tom.handle.send_groupchat("room", &bytes).unwrap();
    assert_eq!(payload_from(&mut hana, false).await, ("t".into(), bytes));
}

#[tokio::test]
async fn without_pacing_the_relay_ends_the_session_as_overactive() {
    // The default request pacing is what keeps the burst test above alive: with it turned
    // off, the relay's request-rate limit ends the session, and the client reports the
    // terminate condition as a typed error.
    let server = start_relay_http("bosh-rate", false).await;
    let mut cfg = bosh_config(&http_url(server.http_addr.unwrap()), TrustConfig::default());
    cfg.bosh.requests_per_second = 10_000;
    cfg.bosh.request_burst = 10_000;
    cfg.reconnect = None;
    let mut hana = online(cfg).await;
    joined(&mut hana, "room", "h").await;
    for seed in 0..120u8 {
        if hana
            .handle
            .send_groupchat("room", &group_message(seed))
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let reason = wait_for(&mut hana.events, |e| match e {
        Event::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        DisconnectReason::ConnectionLost(TransportError::Bosh(BoshError::Terminated(
            "policy-violation"
        )))
    );
}

#[tokio::test]
async fn bosh_and_resumption_logs_carry_no_user_data() {
    let logs = crate::relay::LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = start_relay_http("bosh-logs", false).await;
    let mut hana = online(bosh_config(
        &http_url(server.http_addr.unwrap()),
        TrustConfig::default(),
    ))
    .await;
    // Tom over TCP through a proxy, with stream management, resumed after a cut.
    let proxy = Proxy::start(server.c2s_addr).await;
    let mut tom = online(config_for(
        proxy.addr,
        TrustConfig::only(server.tls.certificate.clone()),
    ))
    .await;
    joined(&mut hana, "secretroom", "secretnick").await;
    joined(&mut tom, "secretroom", "othernick").await;
    proxy.cut();
    wait_for(&mut tom.events, |e| {
        matches!(e, Event::Resumed { .. }).then_some(())
    })
    .await;
    let bytes = group_message(4);
    hana.handle.send_groupchat("secretroom", &bytes).unwrap();
    assert_eq!(payload_from(&mut tom, false).await.1, bytes);
    hana.handle.disconnect().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // Which lines appear depends on tracing's per-callsite interest cache, shared with
    // the tests running in parallel on other threads; relay session lines always do.
    assert!(text.contains("session="), "the capture works: {text}");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
    let locals: Vec<String> = [&hana.jid, &tom.jid]
        .iter()
        .map(|j| j.split('@').next().unwrap().to_owned())
        .collect();
    for secret in [
        "secretroom",
        "secretnick",
        "othernick",
        &b64[..16],
        &locals[0],
        &locals[1],
    ] {
        assert!(!text.contains(secret), "{secret} in logs");
    }
}
