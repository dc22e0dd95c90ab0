//! A small raw-XML XMPP client over TCP + STARTTLS (tokio-rustls) with a SCRAM-SHA-256
//! client written from RFC 5802, independent of the server's code except for the XML
//! tokenizer used to split the server's stream into elements.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_relay::xml::{ParserLimits, StreamParser, XmlEvent};
use cryptocat_relay::Running;
use hmac::{Hmac, Mac};
use minidom::Element;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_PAYLOAD: &str = "urn:xmpp:cryptocat:1";
pub const TIMEOUT: Duration = Duration::from_secs(10);

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// What the server sent.
#[derive(Debug)]
pub enum Event {
    Element(Element),
    /// `</stream:stream>` or EOF.
    Closed,
}

pub struct Client {
    conn: Conn,
    parser: StreamParser,
    queue: VecDeque<XmlEvent>,
    cert: CertificateDer<'static>,
    pub jid: String,
    eof: bool,
}

fn limits() -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: 1 << 24,
        max_depth: 64,
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

impl Client {
    /// Connects over plain TCP (nothing sent yet).
    pub async fn connect(server: &Running) -> Client {
        Self::connect_addr(server.c2s_addr, server.tls.certificate.clone()).await
    }

    pub async fn connect_addr(addr: SocketAddr, cert: CertificateDer<'static>) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Client {
            conn: Conn::Plain(tcp),
            parser: StreamParser::new(limits()),
            queue: VecDeque::new(),
            cert,
            jid: String::new(),
            eof: false,
        }
    }

    /// Connects through a socket the caller set up (its buffer sizes chosen).
    pub async fn connect_socket(server: &Running, socket: tokio::net::TcpSocket) -> Client {
        let tcp = socket.connect(server.c2s_addr).await.unwrap();
        Client {
            conn: Conn::Plain(tcp),
            parser: StreamParser::new(limits()),
            queue: VecDeque::new(),
            cert: server.tls.certificate.clone(),
            jid: String::new(),
            eof: false,
        }
    }

    /// Connects from a chosen local address (any of 127.0.0.0/8 works on Linux), so that
    /// tests can play many clients without sharing one address's connection budget.
    pub async fn connect_from(server: &Running, local: std::net::IpAddr) -> Client {
        let tcp = connect_tcp_from(server.c2s_addr, local).await;
        Client {
            conn: Conn::Plain(tcp),
            parser: StreamParser::new(limits()),
            queue: VecDeque::new(),
            cert: server.tls.certificate.clone(),
            jid: String::new(),
            eof: false,
        }
    }

    pub async fn send(&mut self, xml: &str) {
        self.send_bytes(xml.as_bytes()).await;
    }

    /// Sends raw bytes (which need not be UTF-8).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let r = match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => {
                let r = s.write_all(bytes).await;
                if r.is_ok() {
                    s.flush().await
                } else {
                    r
                }
            }
            Conn::Gone => panic!("connection gone"),
        };
        // The server may already have closed (that is what some tests check).
        let _ = r;
    }

    /// Drops the connection with a TCP reset (`SO_LINGER` 0), whatever is unread: the
    /// server's next write or read fails.
    pub fn reset(&mut self) {
        let tcp = match &self.conn {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
            Conn::Gone => return,
        };
        tcp.set_zero_linger().unwrap();
        self.conn = Conn::Gone;
    }

    async fn read_more(&mut self) -> bool {
        let mut buf = vec![0u8; 65536];
        let n = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut buf).await.unwrap_or(0),
            Conn::Tls(s) => s.read(&mut buf).await.unwrap_or(0),
            Conn::Gone => 0,
        };
        if n == 0 {
            self.eof = true;
            return false;
        }
        let events = match self.parser.feed(&buf[..n]) {
            Ok(e) => e,
            Err(e) => panic!(
                "server sent bad XML ({e}): {}",
                String::from_utf8_lossy(&buf[..n])
            ),
        };
        self.queue.extend(events);
        true
    }

    /// The next event, skipping stream headers.
    pub async fn next_event(&mut self) -> Event {
        let fut = async {
            loop {
                match self.queue.pop_front() {
                    Some(XmlEvent::Stanza(e)) => return Event::Element(e),
                    Some(XmlEvent::StreamClose) => return Event::Closed,
                    Some(XmlEvent::StreamOpen(_)) => continue,
                    None => {
                        if self.eof || !self.read_more().await {
                            return Event::Closed;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .expect("timed out waiting for the server")
    }

    /// The next element; panics if the stream ended.
    pub async fn next(&mut self) -> Element {
        match self.next_event().await {
            Event::Element(e) => e,
            Event::Closed => panic!("stream closed while waiting for an element"),
        }
    }

    /// Asserts nothing arrives within `dur`.
    pub async fn expect_silence(&mut self, dur: Duration) {
        if let Some(ev) = self.queue.pop_front() {
            panic!("unexpected: {ev:?}");
        }
        if let Ok(true) = tokio::time::timeout(dur, self.read_more()).await {
            panic!("unexpected data: {:?}", self.queue);
        }
    }

    /// Waits for the stream to end; returns the stream error condition if any.
    pub async fn expect_stream_error(&mut self) -> String {
        loop {
            match self.next_event().await {
                Event::Element(e) if e.name() == "error" => {
                    let cond = e
                        .children()
                        .find(|c| c.ns() == NS_STREAMS && c.name() != "text")
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default();
                    assert!(matches!(self.next_event().await, Event::Closed));
                    return cond;
                }
                Event::Element(_) => continue,
                Event::Closed => panic!("closed without a stream error"),
            }
        }
    }

    /// Expects a new stream from the server (after STARTTLS) without sending a header.
    pub fn reset_parser(&mut self) {
        self.parser = StreamParser::new(limits());
        self.queue.clear();
    }

    /// Sends a stream header and returns the features.
    pub async fn open_stream(&mut self) -> Element {
        self.parser = StreamParser::new(limits());
        self.queue.clear();
        self.send(
            "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        )
        .await;
        let f = self.next().await;
        assert_eq!(f.name(), "features", "{f:?}");
        f
    }

    pub async fn starttls(&mut self) {
        let features = self.open_stream().await;
        let st = features
            .get_child("starttls", NS_TLS)
            .expect("starttls offered");
        assert!(st.get_child("required", NS_TLS).is_some());
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let proceed = self.next().await;
        assert!(proceed.is("proceed", NS_TLS), "{proceed:?}");
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            panic!("already TLS");
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake with the generated certificate");
        self.conn = Conn::Tls(Box::new(tls));
    }

    /// XEP-0077 registration; returns the iq reply.
    pub async fn register(&mut self, user: &str, password: &str) -> Element {
        self.send(&format!(
            "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>\
             <username>{user}</username><password>{password}</password></query></iq>"
        ))
        .await;
        self.next().await
    }

    /// SCRAM-SHA-256; Ok on success (server signature verified), Err(condition) on failure.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        let cnonce = "fyko+d2lbbFgONRv9qkxdawL";
        let first_bare = format!("n={user},r={cnonce}");
        self.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
            STANDARD.encode(format!("n,,{first_bare}"))
        ))
        .await;
        let challenge = self.next().await;
        if challenge.name() == "failure" {
            return Err(failure_condition(&challenge));
        }
        assert!(challenge.is("challenge", NS_SASL), "{challenge:?}");
        let server_first = String::from_utf8(STANDARD.decode(challenge.text()).unwrap()).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iters = 0u32;
        for part in server_first.split(',') {
            if let Some(v) = part.strip_prefix("r=") {
                nonce = v;
            } else if let Some(v) = part.strip_prefix("s=") {
                salt = STANDARD.decode(v).unwrap();
            } else if let Some(v) = part.strip_prefix("i=") {
                iters = v.parse().unwrap();
            }
        }
        assert!(nonce.starts_with(cnonce));
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iters, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.send(&format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            STANDARD.encode(format!("{without_proof},p={}", STANDARD.encode(proof)))
        ))
        .await;
        let outcome = self.next().await;
        if outcome.name() == "failure" {
            return Err(failure_condition(&outcome));
        }
        assert!(outcome.is("success", NS_SASL), "{outcome:?}");
        let server_key = hmac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            STANDARD.encode(hmac(&server_key, auth_message.as_bytes()))
        );
        assert_eq!(
            String::from_utf8(STANDARD.decode(outcome.text()).unwrap()).unwrap(),
            expected,
            "server signature"
        );
        Ok(())
    }

    pub async fn bind(&mut self) -> String {
        let features = self.open_stream().await;
        assert!(features
            .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .is_some());
        self.send(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>test</resource></bind></iq>",
        )
        .await;
        let reply = self.next().await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
        let jid = reply
            .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .and_then(|b| b.get_child("jid", "urn:ietf:params:xml:ns:xmpp-bind"))
            .unwrap()
            .text();
        self.send(
            "<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        )
        .await;
        let r = self.next().await;
        assert_eq!(r.attr("type"), Some("result"));
        self.jid = jid.clone();
        jid
    }

    /// Connect, STARTTLS, register, log in, bind.
    pub async fn account(server: &Running, user: &str) -> Client {
        Self::account_on(Client::connect(server).await, user).await
    }

    /// [`Self::account`] on a connected client.
    pub async fn account_on(mut c: Client, user: &str) -> Client {
        c.starttls().await;
        c.open_stream().await;
        let reg = c.register(user, &format!("pw-{user}")).await;
        assert_eq!(reg.attr("type"), Some("result"), "{reg:?}");
        c.login(user, &format!("pw-{user}")).await.unwrap();
        c.bind().await;
        c
    }

    /// Joins a room and returns every stanza received up to and including the subject.
    pub async fn join(&mut self, room: &str, nick: &str) -> Vec<Element> {
        self.send(&format!(
            "<presence to='{room}@conference.localhost/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
        let mut got = Vec::new();
        loop {
            let e = self.next().await;
            let done = e.name() == "message" && e.get_child("subject", "jabber:client").is_some();
            let error = e.attr("type") == Some("error");
            got.push(e);
            if done || error {
                return got;
            }
        }
    }
}

/// A TCP connection to `addr` from the local address `local`.
pub async fn connect_tcp_from(addr: SocketAddr, local: std::net::IpAddr) -> TcpStream {
    let socket = match local {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let _ = tcp.set_nodelay(true);
    tcp
}

pub fn failure_condition(failure: &Element) -> String {
    failure
        .children()
        .next()
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

/// The stanza error condition of an error reply.
pub fn error_condition(el: &Element) -> (String, String) {
    assert_eq!(el.attr("type"), Some("error"), "{el:?}");
    let err = el.get_child("error", "jabber:client").expect("error child");
    let cond = err
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    (err.attr("type").unwrap_or_default().to_owned(), cond)
}

/// MUC status codes in a presence.
pub fn statuses(p: &Element) -> Vec<String> {
    p.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.attr("code").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn payload_text(m: &Element) -> Option<String> {
    m.get_child("payload", NS_PAYLOAD).map(Element::text)
}
