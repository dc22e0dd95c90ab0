//! A scripted server for what the relay never sends: a plain `<body>` message (the relay
//! refuses them, so only a non-Cryptocat server would relay one) and a forged SCRAM
//! signature. It uses the relay's TLS identity and SCRAM server code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_relay::scram;
use cryptocat_relay::Running;
use cryptocat_xmpp::xml::{ParserLimits, StreamParser, XmlEvent};
use cryptocat_xmpp::{
    AuthError, Client, ConnectError, Credentials, Event, SessionError, TlsFailure, TransportError,
    TrustConfig,
};
use minidom::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{config_for, next, start_relay};

const HEADER: &str = "<?xml version='1.0'?><stream:stream from='localhost' id='s1' \
     version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

struct Conn<S> {
    io: S,
    parser: StreamParser,
    queue: std::collections::VecDeque<Element>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Conn {
            io,
            parser: StreamParser::new(ParserLimits::default()),
            queue: Default::default(),
        }
    }
    async fn send(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }
    /// Waits for a stream header (fresh parser).
    async fn header(&mut self) {
        self.parser = StreamParser::new(ParserLimits::default());
        self.queue.clear();
        let mut opened = false;
        while !opened {
            let mut buf = [0u8; 4096];
            let n = self.io.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed");
            for ev in self.parser.feed(&buf[..n]).unwrap() {
                match ev {
                    XmlEvent::StreamOpen(_) => opened = true,
                    XmlEvent::Stanza(e) => self.queue.push_back(e),
                    XmlEvent::StreamClose => panic!("closed"),
                }
            }
        }
    }
    async fn next(&mut self) -> Element {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return e;
            }
            let mut buf = [0u8; 4096];
            let n = self.io.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed");
            for ev in self.parser.feed(&buf[..n]).unwrap() {
                if let XmlEvent::Stanza(e) = ev {
                    self.queue.push_back(e);
                }
            }
        }
    }
}

/// Serves one client: STARTTLS, SCRAM for `password` (with the signature flipped when
/// `forge`), bind, then sends `after_bind` and waits for the client to go.
async fn serve_one(
    relay: &Running,
    listener: TcpListener,
    password: &str,
    forge: bool,
    after_bind: Vec<String>,
) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut c = Conn::new(tcp);
    c.header().await;
    c.send(HEADER).await;
    c.send("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").await;
    assert!(c.next().await.name() == "starttls");
    c.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    // A client that refuses the certificate ends here.
    let Ok(tls) = relay.tls.acceptor.accept(c.io).await else {
        return;
    };
    let mut c = Conn::new(tls);
    c.header().await;
    c.send(HEADER).await;
    c.send("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>").await;
    let auth = c.next().await;
    let first = STANDARD.decode(auth.text()).unwrap();
    let creds = scram::Credentials::derive(password, vec![7; 16], 4096);
    let (waiting, server_first) = scram::server_first(
        &first,
        |u| Some(u.to_owned()),
        |_| Some(creds),
        &[9; 32],
        "servernonce",
    )
    .unwrap();
    c.send(&format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        STANDARD.encode(server_first)
    ))
    .await;
    let response = c.next().await;
    let (_, server_final) = waiting
        .finish(&STANDARD.decode(response.text()).unwrap())
        .unwrap();
    let server_final = if forge {
        let sig = STANDARD
            .decode(server_final.strip_prefix("v=").unwrap())
            .unwrap();
        let flipped: Vec<u8> = sig.iter().map(|b| b ^ 1).collect();
        format!("v={}", STANDARD.encode(flipped))
    } else {
        server_final
    };
    c.send(&format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
        STANDARD.encode(server_final)
    ))
    .await;
    if forge {
        return;
    }
    c.header().await;
    c.send(HEADER).await;
    c.send("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
        .await;
    let bind = c.next().await;
    c.send(&format!(
        "<iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u@localhost/r</jid></bind></iq>",
        bind.attr("id").unwrap()
    ))
    .await;
    // Answer service discovery with nothing (a server without a listed room service),
    // wait for the join presence, then answer as a room would and send the script.
    let presence = loop {
        let el = c.next().await;
        if el.name() == "iq" {
            c.send(&format!(
                "<iq type='result' id='{}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
                el.attr("id").unwrap()
            ))
            .await;
            continue;
        }
        break el;
    };
    assert_eq!(presence.name(), "presence");
    c.send("<presence from='room@conference.localhost/a' to='u@localhost/r'><x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/><status code='110'/></x></presence>").await;
    for xml in after_bind {
        c.send(&xml).await;
    }
    // Keep the connection until the client leaves.
    let mut buf = [0u8; 1024];
    while matches!(c.io.read(&mut buf).await, Ok(n) if n > 0) {}
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
