//! XMPP over WebSocket (RFC 7395, tokio-tungstenite client) and over BOSH (XEP-0124/0206,
//! a small client on hyper's HTTP/1 client written here), against the same relay as the
//! TCP clients.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use minidom::Element;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{error_condition, payload_text, Client, NS_SASL, TIMEOUT};
use crate::{group_payload, groupchat, payload, start, start_with};
use cryptocat_relay::framing::standalone;
use cryptocat_relay::{Limits, Running};

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_STREAM: &str = "http://etherx.jabber.org/streams";

/// What every transport's test client offers.
#[allow(async_fn_in_trait)]
pub trait Xmpp {
    async fn send(&mut self, xml: &str);
    async fn next(&mut self) -> Element;
    /// Restarts the stream and returns the features.
    async fn restart(&mut self) -> Element;
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub async fn register<C: Xmpp>(c: &mut C, user: &str, password: &str) -> Element {
    c.send(&format!(
        "<iq type='set' id='reg1' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
         <username>{user}</username><password>{password}</password></query></iq>"
    ))
    .await;
    c.next().await
}

/// SCRAM-SHA-256 (RFC 5802) client; Err(condition) on failure.
pub async fn login<C: Xmpp>(c: &mut C, user: &str, password: &str) -> Result<(), String> {
    let cnonce = "rOprNGfwEbeRWgbNEkqO";
    let first_bare = format!("n={user},r={cnonce}");
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
        STANDARD.encode(format!("n,,{first_bare}"))
    ))
    .await;
    let challenge = c.next().await;
    if challenge.name() == "failure" {
        return Err(crate::client::failure_condition(&challenge));
    }
    assert!(challenge.is("challenge", NS_SASL), "{challenge:?}");
    let server_first = String::from_utf8(STANDARD.decode(challenge.text()).unwrap()).unwrap();
    let (mut nonce, mut salt, mut iters) = ("", Vec::new(), 0u32);
    for part in server_first.split(',') {
        if let Some(v) = part.strip_prefix("r=") {
            nonce = v;
        } else if let Some(v) = part.strip_prefix("s=") {
            salt = STANDARD.decode(v).unwrap();
        } else if let Some(v) = part.strip_prefix("i=") {
            iters = v.parse().unwrap();
        }
    }
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
    c.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        STANDARD.encode(format!("{without_proof},p={}", STANDARD.encode(proof)))
    ))
    .await;
    let outcome = c.next().await;
    if outcome.name() == "failure" {
        return Err(crate::client::failure_condition(&outcome));
    }
    assert!(outcome.is("success", NS_SASL), "{outcome:?}");
    let server_key = hmac(&salted, b"Server Key");
    let expected = format!(
        "v={}",
        STANDARD.encode(hmac(&server_key, auth_message.as_bytes()))
    );
    assert_eq!(
        String::from_utf8(STANDARD.decode(outcome.text()).unwrap()).unwrap(),
        expected
    );
    Ok(())
}

pub async fn bind<C: Xmpp>(c: &mut C) -> String {
    let features = c.restart().await;
    assert!(
        features.get_child("bind", NS_BIND).is_some(),
        "{features:?}"
    );
    c.send(
        "<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>web</resource></bind></iq>",
    )
    .await;
    let reply = c.next().await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    reply
        .get_child("bind", NS_BIND)
        .and_then(|b| b.get_child("jid", NS_BIND))
        .unwrap()
        .text()
}

pub async fn account<C: Xmpp>(c: &mut C, user: &str) -> String {
    let reg = register(c, user, &format!("pw-{user}")).await;
    assert_eq!(reg.attr("type"), Some("result"), "{reg:?}");
    login(c, user, &format!("pw-{user}")).await.unwrap();
    bind(c).await
}

pub async fn join<C: Xmpp>(c: &mut C, room: &str, nick: &str) -> Vec<Element> {
    c.send(&format!(
        "<presence xmlns='jabber:client' to='{room}@conference.localhost/{nick}'>\
         <x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let e = c.next().await;
        let done = e.name() == "message" && e.get_child("subject", "jabber:client").is_some();
        let error = e.attr("type") == Some("error");
        got.push(e);
        if done || error {
            return got;
        }
    }
}

// ---------------------------------------------------------------------------------------

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects with subprotocol `xmpp` and opens the stream; returns the features.
    pub async fn connect(server: &Running) -> (WsClient, Element) {
        let url = format!("ws://{}/xmpp-websocket", server.http_addr.unwrap());
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").unwrap(),
            "xmpp"
        );
        let mut c = WsClient { ws };
        let f = c.restart().await;
        (c, f)
    }

    /// The same over a TCP connection the caller made (its socket options chosen).
    pub async fn connect_over(tcp: TcpStream, server: &Running) -> (WsClient, Element) {
        let url = format!("ws://{}/xmpp-websocket", server.http_addr.unwrap());
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
        let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
        let mut c = WsClient { ws };
        let f = c.restart().await;
        (c, f)
    }

    /// The next frame as text, or None when the connection closed.
    pub async fn frame(&mut self) -> Option<String> {
        loop {
            let m = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match m {
                Some(Ok(WsMessage::Text(t))) => return Some(t.as_str().to_owned()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl Xmpp for WsClient {
    async fn send(&mut self, xml: &str) {
        // Each frame is a standalone element (RFC 7395).
        let _ = self.ws.send(WsMessage::text(standalone(xml))).await;
    }

    async fn next(&mut self) -> Element {
        let t = self.frame().await.expect("connection closed");
        t.parse::<Element>()
            .unwrap_or_else(|e| panic!("frame is not one element ({e}): {t}"))
    }

    async fn restart(&mut self) -> Element {
        self.send(&format!(
            "<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
        ))
        .await;
        let open = self.next().await;
        assert!(open.is("open", NS_FRAMING), "{open:?}");
        assert_eq!(open.attr("from"), Some("localhost"));
        let f = self.next().await;
        assert!(f.is("features", NS_STREAM), "{f:?}");
        f
    }
}

// ---------------------------------------------------------------------------------------

/// One HTTP/1.1 POST on a fresh connection; returns (status, body).
pub async fn post(addr: SocketAddr, body: String) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("/http-bind")
        .header("Host", "localhost")
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(90), sender.send_request(req))
        .await
        .expect("BOSH request timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

pub struct BoshClient {
    pub addr: SocketAddr,
    pub sid: String,
    pub rid: u64,
    queue: VecDeque<Element>,
    pub terminated: Option<String>,
}

fn parse_body(text: &str) -> Element {
    let body: Element = text
        .parse()
        .unwrap_or_else(|e| panic!("bad BOSH body ({e}): {text}"));
    assert!(body.is("body", NS_HTTPBIND), "{text}");
    body
}

impl BoshClient {
    /// Creates a session (wait 2 s); returns the client and the creation response.
    pub async fn connect(server: &Running) -> (BoshClient, Element) {
        Self::connect_addr(server.http_addr.unwrap(), 2).await
    }

    pub async fn connect_addr(addr: SocketAddr, wait: u64) -> (BoshClient, Element) {
        let rid = 1_000_000;
        let (status, text) = post(
            addr,
            format!(
                "<body xmlns='{NS_HTTPBIND}' rid='{rid}' to='localhost' wait='{wait}' hold='1' \
                 ver='1.6' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
            ),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let body = parse_body(&text);
        let sid = body.attr("sid").unwrap_or_default().to_owned();
        let mut c = BoshClient {
            addr,
            sid,
            rid,
            queue: VecDeque::new(),
            terminated: None,
        };
        c.absorb(&body);
        (c, body)
    }

    fn absorb(&mut self, body: &Element) {
        if body.attr("type") == Some("terminate") {
            self.terminated = Some(body.attr("condition").unwrap_or_default().to_owned());
        }
        self.queue.extend(body.children().cloned());
    }

    /// Sends a body with the next rid, these attributes and children; returns the
    /// response's (status, text) without absorbing it.
    pub async fn raw(&mut self, rid: u64, attrs: &str, children: &str) -> (u16, String) {
        post(
            self.addr,
            format!(
                "<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{}' {attrs}>{children}</body>",
                self.sid
            ),
        )
        .await
    }

    /// Sends with the next rid and absorbs the response.
    pub async fn request(&mut self, attrs: &str, children: &str) -> Element {
        self.rid += 1;
        let (status, text) = self.raw(self.rid, attrs, children).await;
        assert_eq!(status, 200, "{text}");
        let body = parse_body(&text);
        self.absorb(&body);
        body
    }
}

impl Xmpp for BoshClient {
    async fn send(&mut self, xml: &str) {
        // Stanzas in a BOSH body must name jabber:client themselves (XEP-0206).
        self.request("", &standalone(xml)).await;
    }

    async fn next(&mut self) -> Element {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(e) = self.queue.pop_front() {
                return e;
            }
            assert!(self.terminated.is_none(), "session terminated");
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            self.request("", "").await;
        }
    }

    async fn restart(&mut self) -> Element {
        let to = "to='localhost' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'";
        self.request(to, "").await;
        let f = self.next().await;
        assert!(f.is("features", NS_STREAM), "{f:?}");
        f
    }
}

// ---------------------------------------------------------------------------------------

/// A TCP account in `room` (nick `t`), already joined.
async fn tcp_in_room(server: &Running, room: &str) -> Client {
    let mut t = Client::account(server, "tcpuser").await;
    t.join(room, "t").await;
    t
}

#[tokio::test]
async fn websocket_client_registers_logs_in_and_chats_with_tcp_client() {
    let server = start().await;
    let mut tcp = tcp_in_room(&server, "web").await;
    let (mut ws, features) = WsClient::connect(&server).await;
    assert!(
        features
            .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_none(),
        "no STARTTLS over WebSocket"
    );
    assert!(features.get_child("mechanisms", NS_SASL).is_some());
    let jid = account(&mut ws, "wsuser").await;
    assert!(jid.starts_with("wsuser@localhost/"));
    let got = join(&mut ws, "web", "w").await;
    assert_eq!(got.len(), 3, "{got:?}");
    let arrival = tcp.next().await;
    assert_eq!(arrival.attr("from"), Some("web@conference.localhost/w"));

    let b64 = group_payload(9);
    tcp.send(&groupchat("web", &payload(&b64))).await;
    let m = ws.next().await;
    assert_eq!(m.attr("from"), Some("web@conference.localhost/t"));
    assert_eq!(payload_text(&m).as_deref(), Some(b64.as_str()));
    tcp.next().await; // echo

    let b64 = group_payload(10);
    ws.send(&groupchat("web", &payload(&b64))).await;
    let m = tcp.next().await;
    assert_eq!(m.attr("from"), Some("web@conference.localhost/w"));
    assert_eq!(payload_text(&m).as_deref(), Some(b64.as_str()));
    let echo = ws.next().await;
    assert_eq!(payload_text(&echo).as_deref(), Some(b64.as_str()));

    ws.send(&format!("<close xmlns='{NS_FRAMING}'/>")).await;
    let close = ws.next().await;
    assert!(close.is("close", NS_FRAMING), "{close:?}");
    let gone = tcp.next().await;
    assert_eq!(gone.attr("type"), Some("unavailable"));
}

#[tokio::test]
async fn websocket_requires_the_xmpp_subprotocol_and_one_element_per_frame() {
    let server = start().await;
    let url = format!("ws://{}/xmpp-websocket", server.http_addr.unwrap());
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 400),
        e => panic!("unexpected {e:?}"),
    }
    // A TCP-style stream header in a frame is refused with a stream error.
    let (mut ws, _) = WsClient::connect(&server).await;
    ws.send("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>")
        .await;
    let e = ws.next().await;
    assert!(e.is("error", NS_STREAM), "{e:?}");
    assert!(e
        .get_child("bad-format", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());
    let close = ws.next().await;
    assert!(close.is("close", NS_FRAMING));
    assert!(ws.frame().await.is_none());
}

#[tokio::test]
async fn bosh_client_restarts_after_auth_and_long_polls_a_groupchat() {
    let server = start().await;
    let mut tcp = tcp_in_room(&server, "bosh").await;
    let (mut bosh, created) = BoshClient::connect(&server).await;
    assert_eq!(created.attr("hold"), Some("1"));
    assert_eq!(created.attr("requests"), Some("2"));
    assert_eq!(created.attr("wait"), Some("2"));
    assert_eq!(created.attr("inactivity"), Some("60"));
    assert_eq!(created.attr("polling"), Some("2"));
    assert_eq!(created.attr("secure"), Some("true"));
    let features = bosh.next().await;
    assert!(
        features.get_child("mechanisms", NS_SASL).is_some(),
        "{features:?}"
    );
    let jid = account(&mut bosh, "boshuser").await;
    assert!(jid.starts_with("boshuser@localhost/"));
    join(&mut bosh, "bosh", "b").await;
    tcp.next().await; // arrival

    // A held empty request is answered by the TCP client's groupchat.
    let b64 = group_payload(11);
    let addr = bosh.addr;
    let sid = bosh.sid.clone();
    let rid = bosh.rid + 1;
    let poll = tokio::spawn(async move {
        post(
            addr,
            format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{sid}'/>"),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the empty request is held");
    tcp.send(&groupchat("bosh", &payload(&b64))).await;
    let (status, text) = tokio::time::timeout(Duration::from_secs(1), poll)
        .await
        .expect("delivered before wait ran out")
        .unwrap();
    assert_eq!(status, 200);
    let body = parse_body(&text);
    let m = body.children().next().expect("the groupchat");
    assert_eq!(m.attr("from"), Some("bosh@conference.localhost/t"));
    assert_eq!(payload_text(m).as_deref(), Some(b64.as_str()));
    bosh.rid = rid;
    tcp.next().await; // echo of its own message

    // And BOSH to TCP.
    let b64 = group_payload(12);
    let sent = bosh
        .request("", &standalone(&groupchat("bosh", &payload(&b64))))
        .await;
    assert_eq!(sent.attr("type"), None, "{sent:?}");
    let m = tcp.next().await;
    assert_eq!(payload_text(&m).as_deref(), Some(b64.as_str()), "{m:?}");

    // Terminate: the TCP client sees the BOSH occupant leave.
    let body = bosh.request("type='terminate'", "").await;
    assert_eq!(body.attr("type"), Some("terminate"));
    let gone = tcp.next().await;
    assert_eq!(gone.attr("type"), Some("unavailable"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.bosh_session_count(), 0);
}

async fn plaintext_refused<C: Xmpp>(c: &mut C, room: &str) {
    c.send(&format!(
        "<message xmlns='jabber:client' type='groupchat' id='p1' to='{room}@conference.localhost'>\
         <body>hello in the clear</body></message>"
    ))
    .await;
    let e = c.next().await;
    assert_eq!(error_condition(&e).1, "policy-violation", "{e:?}");
}

#[tokio::test]
async fn plaintext_body_gets_policy_violation_over_websocket_and_bosh() {
    let server = start().await;
    let mut tcp = tcp_in_room(&server, "plain").await;
    let (mut ws, _) = WsClient::connect(&server).await;
    account(&mut ws, "wsplain").await;
    join(&mut ws, "plain", "w").await;
    tcp.next().await;
    let (mut bosh, _) = BoshClient::connect(&server).await;
    bosh.next().await; // features
    account(&mut bosh, "boshplain").await;
    join(&mut bosh, "plain", "b").await;
    tcp.next().await;
    ws.next().await;
    plaintext_refused(&mut ws, "plain").await;
    plaintext_refused(&mut bosh, "plain").await;
    tcp.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn bosh_rid_replay_window_bad_sid_and_terminate() {
    let server = start().await;
    let (mut bosh, _) = BoshClient::connect(&server).await;
    bosh.next().await; // features
    let reg = register(&mut bosh, "ridder", "pw").await;
    assert_eq!(reg.attr("type"), Some("result"));
    // Replaying the last rid returns the same response.
    let rid = bosh.rid;
    let (_, again) = bosh
        .raw(
            rid,
            "",
            "<iq type='set' id='ignored' xmlns='jabber:client'/>",
        )
        .await;
    assert!(again.contains("id='reg1'"), "{again}");
    assert!(!again.contains("ignored"));
    // A bad sid.
    let (status, text) = post(
        bosh.addr,
        format!("<body xmlns='{NS_HTTPBIND}' rid='1' sid='nosuchsession'/>"),
    )
    .await;
    assert_eq!(status, 200);
    let b = parse_body(&text);
    assert_eq!(b.attr("type"), Some("terminate"));
    assert_eq!(b.attr("condition"), Some("item-not-found"));
    // Malformed: no rid.
    let (_, text) = post(bosh.addr, format!("<body xmlns='{NS_HTTPBIND}'/>")).await;
    assert_eq!(parse_body(&text).attr("condition"), Some("bad-request"));
    // A rid far ahead of the window ends the session.
    let (_, text) = bosh.raw(bosh.rid + 10, "", "").await;
    let b = parse_body(&text);
    assert_eq!(b.attr("condition"), Some("item-not-found"), "{text}");
    let (_, text) = bosh.raw(bosh.rid + 1, "", "").await;
    assert_eq!(parse_body(&text).attr("type"), Some("terminate"));
    assert_eq!(server.bosh_session_count(), 0);

    // Terminate by the client.
    let (mut bosh, _) = BoshClient::connect(&server).await;
    assert_eq!(server.bosh_session_count(), 1);
    let b = bosh.request("type='terminate'", "").await;
    assert_eq!(b.attr("type"), Some("terminate"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.bosh_session_count(), 0);
}

#[tokio::test]
async fn bosh_session_caps_and_inactivity_timeout() {
    let server = start_with(Limits {
        bosh_sessions: 3,
        bosh_sessions_per_ip: 2,
        bosh_inactivity_secs: 1,
        ..Limits::default()
    })
    .await;
    let (_a, _) = BoshClient::connect(&server).await;
    let (_b, _) = BoshClient::connect(&server).await;
    let (c, created) = BoshClient::connect(&server).await;
    assert_eq!(created.attr("type"), Some("terminate"), "per-address cap");
    assert_eq!(created.attr("condition"), Some("policy-violation"));
    assert!(c.sid.is_empty());
    assert_eq!(server.bosh_session_count(), 2);
    // Nobody sends anything: after the inactivity period both sessions are gone.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(server.bosh_session_count(), 0);
    let (mut d, created) = BoshClient::connect(&server).await;
    assert_eq!(created.attr("type"), None, "slots are free again");
    let (_, text) = d.raw(d.rid + 1, "", "").await;
    assert_eq!(parse_body(&text).attr("type"), None);
}

#[tokio::test]
async fn bosh_total_session_cap() {
    let server = start_with(Limits {
        bosh_sessions: 1,
        ..Limits::default()
    })
    .await;
    let (_a, _) = BoshClient::connect(&server).await;
    let (_b, created) = BoshClient::connect(&server).await;
    assert_eq!(created.attr("condition"), Some("policy-violation"));
}

#[tokio::test]
async fn bosh_oversized_body_is_refused() {
    let server = start_with(Limits {
        bosh_max_body_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let (mut bosh, _) = BoshClient::connect(&server).await;
    let big = format!(
        "<iq type='get' id='x' xmlns='jabber:client'><query xmlns='jabber:iq:register'>{}</query></iq>",
        "a".repeat(5000)
    );
    let (status, _) = bosh.raw(bosh.rid + 1, "", &big).await;
    assert_eq!(status, 413);
    // The session goes on: the oversized request was not processed.
    let b = bosh.request("", "").await;
    assert_eq!(b.attr("type"), None);
}

#[tokio::test]
async fn one_room_mixes_tcp_websocket_and_bosh() {
    let server = start().await;
    let mut tcp = tcp_in_room(&server, "mixed").await;
    let (mut ws, _) = WsClient::connect(&server).await;
    account(&mut ws, "mixws").await;
    join(&mut ws, "mixed", "w").await;
    tcp.next().await;
    let (mut bosh, _) = BoshClient::connect(&server).await;
    bosh.next().await;
    account(&mut bosh, "mixbosh").await;
    let got = join(&mut bosh, "mixed", "b").await;
    assert_eq!(got.len(), 4, "t, w, self, subject: {got:?}");
    tcp.next().await;
    ws.next().await;

    let from_ws = group_payload(21);
    ws.send(&groupchat("mixed", &payload(&from_ws))).await;
    let from_bosh = group_payload(22);
    bosh.send(&groupchat("mixed", &payload(&from_bosh))).await;
    let from_tcp = group_payload(23);
    tcp.send(&groupchat("mixed", &payload(&from_tcp))).await;
    let mut seen_tcp = Vec::new();
    let mut seen_ws = Vec::new();
    let mut seen_bosh = Vec::new();
    for _ in 0..3 {
        seen_tcp.push(payload_text(&tcp.next().await).unwrap());
        seen_ws.push(payload_text(&ws.next().await).unwrap());
        seen_bosh.push(payload_text(&Xmpp::next(&mut bosh).await).unwrap());
    }
    for seen in [&mut seen_tcp, &mut seen_ws, &mut seen_bosh] {
        seen.sort();
        let mut want = vec![from_ws.clone(), from_bosh.clone(), from_tcp.clone()];
        want.sort();
        assert_eq!(*seen, want);
    }
}

/// TLS to the relay's HTTP listener, trusting its generated certificate.
async fn tls_to(server: &Running) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.tls.certificate.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(server.http_addr.unwrap()).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("HTTPS with the generated certificate")
}

#[tokio::test]
async fn https_listener_serves_bosh_and_websocket_with_the_generated_certificate() {
    let mut config =
        cryptocat_relay::Config::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http_tls = Some(true);
    config.state_dir =
        Some(std::env::temp_dir().join(format!("cryptocat-relay-test-{}", std::process::id())));
    let server = cryptocat_relay::Server::bind(config).await.unwrap().spawn();
    assert!(server.http_tls);

    // BOSH over HTTPS.
    let tls = tls_to(&server).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("/http-bind")
        .header("Host", "localhost")
        .body(Full::new(Bytes::from(format!(
            "<body xmlns='{NS_HTTPBIND}' rid='7' to='localhost' wait='5' hold='1' \
             xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
        ))))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let body = parse_body(std::str::from_utf8(&text).unwrap());
    assert_eq!(body.attr("secure"), Some("true"));
    assert!(body.children().next().unwrap().is("features", NS_STREAM));

    // WebSocket over TLS (wss).
    let tls = tls_to(&server).await;
    let mut req = format!(
        "wss://localhost:{}/xmpp-websocket",
        server.http_addr.unwrap().port()
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    ws.send(WsMessage::text(format!(
        "<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
    )))
    .await
    .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        if let Some(Ok(WsMessage::Text(t))) = ws.next().await {
            frames.push(t.as_str().to_owned());
        }
    }
    assert!(frames[0].starts_with("<open "), "{frames:?}");
    assert!(frames[1].contains("SCRAM-SHA-256"), "{frames:?}");

    // Plain HTTP to the HTTPS listener gets nothing useful.
    let mut tcp = TcpStream::connect(server.http_addr.unwrap()).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn bosh_too_many_simultaneous_requests_and_hung_up_held_requests() {
    let server = start_with(Limits {
        bosh_inactivity_secs: 1,
        ..Limits::default()
    })
    .await;
    // Two requests waiting for a missing rid: more than requests='2' allows.
    let (bosh, _) = BoshClient::connect_addr(server.http_addr.unwrap(), 5).await;
    let ahead = bosh.rid + 2;
    let (addr, sid) = (bosh.addr, bosh.sid.clone());
    let body = format!("<body xmlns='{NS_HTTPBIND}' rid='{ahead}' sid='{sid}'/>");
    let first = tokio::spawn(post(addr, body.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, text) = post(addr, body).await;
    assert_eq!(
        parse_body(&text).attr("condition"),
        Some("policy-violation")
    );
    let (_, text) = first.await.unwrap();
    assert_eq!(parse_body(&text).attr("type"), Some("terminate"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.bosh_session_count(), 0);

    // A client that hangs up on its held request does not keep the session alive.
    let (bosh, _) = BoshClient::connect_addr(server.http_addr.unwrap(), 5).await;
    let body = format!(
        "<body xmlns='{NS_HTTPBIND}' rid='{}' sid='{}'/>",
        bosh.rid + 1,
        bosh.sid
    );
    let held = tokio::spawn(post(bosh.addr, body));
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.abort();
    assert_eq!(server.bosh_session_count(), 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(server.bosh_session_count(), 0);
}

#[tokio::test]
async fn bosh_hold_zero_answers_every_request_at_once() {
    let server = start().await;
    let (status, text) = post(
        server.http_addr.unwrap(),
        format!(
            "<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost' wait='30' hold='0' \
             xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
        ),
    )
    .await;
    assert_eq!(status, 200);
    let body = parse_body(&text);
    assert_eq!(body.attr("hold"), Some("0"));
    assert_eq!(body.attr("wait"), Some("30"));
    let sid = body.attr("sid").unwrap();
    let started = std::time::Instant::now();
    let (_, text) = post(
        server.http_addr.unwrap(),
        format!("<body xmlns='{NS_HTTPBIND}' rid='2' sid='{sid}'/>"),
    )
    .await;
    assert_eq!(parse_body(&text).attr("type"), None);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn bosh_answers_held_requests_in_rid_order() {
    // XEP-0124 §14.1: the reply to a request sent while an older one is held goes on the
    // older one; the newer is held in its place.
    let server = start().await;
    let (mut bosh, _) = BoshClient::connect(&server).await;
    bosh.next().await; // features
    account(&mut bosh, "orderuser").await;
    let (addr, sid) = (bosh.addr, bosh.sid.clone());
    let (older, newer) = (bosh.rid + 1, bosh.rid + 2);
    let held = tokio::spawn(post(
        addr,
        format!("<body xmlns='{NS_HTTPBIND}' rid='{older}' sid='{sid}'/>"),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the empty request is held");
    let ping = standalone(
        "<iq type='get' id='order-ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let second = tokio::spawn(post(
        addr,
        format!("<body xmlns='{NS_HTTPBIND}' rid='{newer}' sid='{sid}'>{ping}</body>"),
    ));
    let (status, text) = tokio::time::timeout(Duration::from_secs(1), held)
        .await
        .expect("the older request is released")
        .unwrap();
    assert_eq!(status, 200);
    let body = parse_body(&text);
    let reply = body
        .children()
        .next()
        .expect("the ping result on the older request");
    assert_eq!(reply.attr("id"), Some("order-ping"));
    assert_eq!(reply.attr("type"), Some("result"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the newer request is held in its place"
    );
    let (_, text) = second.await.unwrap();
    assert_eq!(parse_body(&text).children().count(), 0);
}

#[tokio::test]
async fn bosh_resent_held_rid_takes_the_place_of_the_first() {
    // A client whose connection broke while its request was held resends the same rid on
    // a new connection: the first request is answered empty and the resent one is held in
    // its place, so what comes next is not written to the dead connection.
    let server = start().await;
    let (mut bosh, _) = BoshClient::connect(&server).await;
    bosh.next().await; // features
    account(&mut bosh, "resentuser").await;
    let (addr, sid) = (bosh.addr, bosh.sid.clone());
    let (rid, next) = (bosh.rid + 1, bosh.rid + 2);
    let poll = format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{sid}'/>");
    let first = tokio::spawn(post(addr, poll.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "held");
    let resent = tokio::spawn(post(addr, poll));
    let (status, text) = tokio::time::timeout(Duration::from_secs(1), first)
        .await
        .expect("the first request is let go")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(parse_body(&text).children().count(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!resent.is_finished(), "the resent request is held instead");
    let ping = standalone(
        "<iq type='get' id='resent-ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let _newer = tokio::spawn(post(
        addr,
        format!("<body xmlns='{NS_HTTPBIND}' rid='{next}' sid='{sid}'>{ping}</body>"),
    ));
    let (_, text) = tokio::time::timeout(Duration::from_secs(1), resent)
        .await
        .expect("released by the newer request")
        .unwrap();
    let body = parse_body(&text);
    let reply = body.children().next().expect("the ping result");
    assert_eq!(reply.attr("id"), Some("resent-ping"));
}

/// `X-CRYPTOCAT-KEY` over BOSH: offered, binding `none` (a BOSH session may use several
/// HTTP connections), success binds the key's localpart; a bad signature is refused.
#[tokio::test]
async fn key_challenge_over_bosh() {
    use cryptocat_protocol::identity::Identity;
    use cryptocat_protocol::keyauth::{self, BindingType, Challenge, ChannelBinding, ClientFirst};
    use rand_core::SeedableRng as _;

    let server = start().await;
    let id = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(11), crate::NOW);
    for tamper in [true, false] {
        let (mut c, _body) = BoshClient::connect(&server).await;
        let features = c.next().await;
        let offered: Vec<String> = features
            .get_child("mechanisms", NS_SASL)
            .unwrap()
            .children()
            .map(Element::text)
            .collect();
        assert_eq!(offered, ["X-CRYPTOCAT-KEY", "SCRAM-SHA-256"]);
        c.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='X-CRYPTOCAT-KEY'>{}</auth>",
            STANDARD.encode(ClientFirst::new(&id).encode())
        ))
        .await;
        let el = c.next().await;
        let ch = Challenge::decode(&STANDARD.decode(el.text()).unwrap()).unwrap();
        assert_eq!(ch.binding, BindingType::None);
        let mut sig = keyauth::respond(&id, "localhost", &ch, &ChannelBinding::None).unwrap();
        if tamper {
            sig[63] ^= 0x40;
        }
        c.send(&format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            STANDARD.encode(sig)
        ))
        .await;
        let outcome = c.next().await;
        if tamper {
            assert_eq!(crate::client::failure_condition(&outcome), "not-authorized");
            continue;
        }
        assert!(outcome.is("success", NS_SASL), "{outcome:?}");
        let jid = bind(&mut c).await;
        let local = keyauth::localpart(&id.verifying_key());
        assert!(jid.starts_with(&format!("{local}@localhost/")), "{jid}");
    }
}
