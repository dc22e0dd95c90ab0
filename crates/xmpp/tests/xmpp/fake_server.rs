//! A scripted server for what the relay never sends: a plain `<body>` message (the relay
//! refuses them, so only a non-Cryptocat server would relay one) and a forged SCRAM
//! signature, thousands of made-up occupants (`cryptocat_relay::scripted`, with the relay's
//! TLS identity and SCRAM server code).

use cryptocat_relay::scripted::{self, Script};
use cryptocat_relay::Running;
use cryptocat_xmpp::{
    AuthError, Client, ConnectError, Credentials, Event, SessionError, TlsFailure, TransportError,
    TrustConfig,
};
use tokio::net::TcpListener;

use crate::{config_for, next, start_relay};

/// Serves one client with [`scripted::serve_one`]: SCRAM for `password` (the signature
/// flipped when `forge`), then `after_join`.
async fn serve_one(
    relay: &Running,
    listener: TcpListener,
    password: &str,
    forge: bool,
    after_join: Vec<String>,
) {
    scripted::serve_one(
        &relay.tls.acceptor,
        listener,
        Script::fixed(password, forge, after_join),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn plain_body_is_dropped_and_reported() {
    let relay = start_relay().await;
    let cert = relay.tls.certificate.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = vec![
        "<message type='groupchat' from='room@conference.localhost/eve' id='x'><body>hello in clear</body></message>".to_owned(),
        "<message type='chat' from='room@conference.localhost/eve' id='y'><body>psst</body></message>".to_owned(),
        "<message type='groupchat' from='room@conference.localhost/eve' id='z'><payload xmlns='urn:xmpp:cryptocat:1'>!!not base64!!</payload></message>".to_owned(),
        "<message type='groupchat' from='room@conference.localhost/eve' id='w'><payload xmlns='urn:xmpp:cryptocat:1'>AQID</payload></message>".to_owned(),
    ];
    let server = tokio::spawn(async move {
        serve_one(&relay, listener, "pw", false, script).await;
    });
    let mut cfg = config_for(addr, TrustConfig::only(cert));
    cfg.credentials = Some(Credentials::new("u", "pw"));
    cfg.reconnect = None;
    let (handle, mut events) = Client::connect(cfg).await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connected { .. }));
    handle.join("room", "a").unwrap();
    assert!(matches!(next(&mut events).await, Event::Joined { .. }));
    for _ in 0..2 {
        assert_eq!(
            next(&mut events).await,
            Event::PlaintextDropped {
                from: "room@conference.localhost/eve".into()
            }
        );
    }
    assert_eq!(
        next(&mut events).await,
        Event::InvalidPayload {
            from: "room@conference.localhost/eve".into()
        }
    );
    // A well-formed payload still comes through (the transport does not judge content).
    assert_eq!(
        next(&mut events).await,
        Event::GroupPayload {
            room: "room".into(),
            from_nick: "eve".into(),
            bytes: vec![1, 2, 3]
        }
    );
    handle.disconnect().unwrap();
    server.await.unwrap();
}

/// A server that reports thousands of made-up occupants: the client keeps at most
/// MAX_OCCUPANTS of them (issue 14, row 10), and goes on working.
#[tokio::test]
async fn made_up_occupants_are_bounded() {
    use cryptocat_xmpp::client::MAX_OCCUPANTS;
    let relay = start_relay().await;
    let cert = relay.tls.certificate.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flood = 4 * MAX_OCCUPANTS;
    let mut script: Vec<String> = (0..flood)
        .map(|i| {
            format!(
                "<presence from='room@conference.localhost/o{i}-{}'><x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/></x></presence>",
                "x".repeat(200)
            )
        })
        .collect();
    script.push("<message type='groupchat' from='room@conference.localhost/eve' id='w'><payload xmlns='urn:xmpp:cryptocat:1'>AQID</payload></message>".to_owned());
    let server = tokio::spawn(async move {
        serve_one(&relay, listener, "pw", false, script).await;
    });
    let mut cfg = config_for(addr, TrustConfig::only(cert));
    cfg.credentials = Some(Credentials::new("u", "pw"));
    cfg.reconnect = None;
    let (handle, mut events) = Client::connect(cfg).await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connected { .. }));
    handle.join("room", "a").unwrap();
    assert!(matches!(next(&mut events).await, Event::Joined { .. }));
    let mut joined = 0usize;
    loop {
        match next(&mut events).await {
            Event::OccupantJoined { .. } => joined += 1,
            Event::GroupPayload { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(joined, MAX_OCCUPANTS, "{flood} presences sent");
    handle.disconnect().unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn forged_server_signature_is_refused() {
    let relay = start_relay().await;
    let cert = relay.tls.certificate.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        serve_one(&relay, listener, "pw", true, Vec::new()).await;
    });
    let mut cfg = config_for(addr, TrustConfig::only(cert));
    cfg.credentials = Some(Credentials::new("u", "pw"));
    let err = Client::connect(cfg).await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::Session(SessionError::Auth(AuthError::BadServerSignature))
    );
    server.await.unwrap();
}

#[tokio::test]
async fn certificate_for_another_name_is_refused() {
    let relay = start_relay().await;
    let cert = relay.tls.certificate.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        serve_one(&relay, listener, "pw", false, Vec::new()).await;
    });
    // The certificate is for localhost; we expect example.org.
    let mut cfg = config_for(addr, TrustConfig::only(cert.clone())).with_domain("example.org");
    cfg.credentials = Some(Credentials::new("u", "pw"));
    let err = Client::connect(cfg).await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::Session(SessionError::Transport(TransportError::Tls(
            TlsFailure::Certificate(cryptocat_xmpp::Refusal {
                reason: cryptocat_xmpp::CertificateReason::NameMismatch,
                seen: cryptocat_xmpp::Pin::of_certificate(&cert).ok(),
            })
        )))
    );
    server.await.unwrap();
}
