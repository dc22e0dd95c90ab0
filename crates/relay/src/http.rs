//! The HTTP listener: a small page at `/`, XMPP over WebSocket (RFC 7395) at
//! `/xmpp-websocket` and BOSH (XEP-0124 with XEP-0206) at `/http-bind`, on hyper 1.
//!
//! Both transports drive the same [`C2s`] machine as TCP, started with
//! [`C2s::with_framing`]: TLS is the HTTP layer's business, so STARTTLS is never offered.
//!
//! Security rule for the channel (decided per request, see [`client_of`]):
//! - HTTPS: secure.
//! - Plain HTTP from a loopback address or from an address in `trusted_proxies`: secure
//!   (a local client, or a reverse proxy that terminated TLS), unless the request carries
//!   `X-Forwarded-Proto: http` (or `ws`): the proxy says the client came in the clear.
//!   From these peers the last `X-Forwarded-For` address is the client address used for
//!   the per-address limits.
//! - Plain HTTP from any other address: not secure. The stream is served but refuses
//!   registration and authentication (`<encryption-required/>`, then a `policy-violation`
//!   stream error).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::address::AddressKey;
use crate::framing::{classify_ws_frame, standalone, synthetic_header, WsFrame};
use crate::http_conn::{HttpConn, Slot};
use crate::hub::lock;
use crate::outbox::Outbox;
use crate::retained::Counters;
use crate::server::{find_session, open_session, park, Attachment, SessionGuard, Shared};
use crate::stream::{C2s, Framing, OsEntropy, Output};
use crate::xml::{escape, ParserLimits, StreamParser, XmlEvent, NS_STREAM};

/// BOSH namespace.
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206 namespace.
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// BOSH `hold`: at most one request is kept waiting.
pub const BOSH_HOLD: u64 = 1;
/// BOSH `requests`: at most two requests in flight, and the rid window.
pub const BOSH_REQUESTS: u64 = 2;
/// BOSH `polling`: the shortest interval (seconds) between empty requests.
pub const BOSH_POLLING_SECS: u64 = 2;

type Body = Full<Bytes>;

/// Accepts HTTP connections until the task is aborted.
pub(crate) async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let tls = shared
        .config
        .http_is_tls()
        .then(|| shared.tls.acceptor.clone());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Counted from accept, per address and in total; refused at once past the limits.
        let slot = match Slot::admit(&shared, peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                tracing::debug!(%refused, "http connection refused");
                if tls.is_none() {
                    // Best effort, never waiting: the connection is closed right after.
                    let _ = tcp.try_write(REFUSED_RESPONSE);
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let alive = shared.alive();
        tokio::spawn(async move {
            // Shutdown waits for this connection (closed at once when idle).
            let _alive = alive;
            let io = HttpConn::new(tcp, slot, shared.config.limits.write_timeout());
            let limit = shared.config.limits.tls_handshake_timeout();
            match tls {
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(limit, acceptor.accept(io)).await {
                        // Channel binding for X-CRYPTOCAT-KEY over WebSocket (one TLS
                        // connection per stream; BOSH requests may use several: none).
                        let exporter = crate::tls::exporter(stream.get_ref().1);
                        serve(TokioIo::new(stream), peer, true, exporter, shared).await;
                    }
                }
                None => serve(TokioIo::new(io), peer, false, None, shared).await,
            }
        });
    }
}

/// What a plain-HTTP connection refused at accept is sent before it is closed.
const REFUSED_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

async fn serve<I>(
    io: I,
    peer: SocketAddr,
    https: bool,
    exporter: Option<[u8; 32]>,
    shared: Arc<Shared>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = &shared.config.limits;
    let head_timeout = Duration::from_secs(limits.http_head_timeout_secs.max(1));
    let request_timeout = Duration::from_secs(limits.http_request_timeout_secs.max(1));
    // When the connection began waiting for its current request: its start, then the end
    // of each response. The whole request (head and body) must arrive within
    // `request_timeout` of it; hyper bounds the head alone with `head_timeout`.
    let waiting_since = Arc::new(Mutex::new(tokio::time::Instant::now()));
    let shared_stopping = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let waiting_since = Arc::clone(&waiting_since);
        async move {
            let deadline = *lock(&waiting_since) + request_timeout;
            let response = route(req, peer.ip(), https, exporter, deadline, shared).await;
            *lock(&waiting_since) = tokio::time::Instant::now();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let stopping = shared_stopping.stopping();
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopping => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// The client address and whether the channel counts as secure (module documentation).
/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4 peers) are read as
/// IPv4, for the loopback and proxy checks as for the per-address limits.
pub fn client_of(
    peer: IpAddr,
    https: bool,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> (IpAddr, bool) {
    let peer = peer.to_canonical();
    let proxied = peer.is_loopback() || trusted_proxies.iter().any(|p| p.to_canonical() == peer);
    if !proxied {
        return (peer, https);
    }
    let client = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .map_or(peer, |a| a.to_canonical());
    let clear = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| {
            let p = p.trim();
            p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("ws")
        });
    (client, https || !clear)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn route(
    req: Request<Incoming>,
    peer: IpAddr,
    https: bool,
    exporter: Option<[u8; 32]>,
    deadline: tokio::time::Instant,
    shared: Arc<Shared>,
) -> Response<Body> {
    let (ip, secure) = client_of(peer, https, req.headers(), &shared.config.trusted_proxies);
    match req.uri().path() {
        "/" => text(
            StatusCode::OK,
            "Cryptocat relay. BOSH at /http-bind, WebSocket (subprotocol xmpp) at /xmpp-websocket.\n",
        ),
        "/xmpp-websocket" => websocket_upgrade(req, ip, secure, exporter, shared),
        "/http-bind" | "/http-bind/" => match *req.method() {
            Method::POST => bosh_request(req, ip, secure, deadline, shared).await,
            Method::OPTIONS => with_cors(text(StatusCode::OK, "")),
            Method::GET => text(
                StatusCode::OK,
                "Cryptocat relay BOSH endpoint: POST XEP-0124 bodies here.\n",
            ),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn with_cors(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    r
}

// ---------------------------------------------------------------------------------------
// WebSocket (RFC 7395)

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn websocket_upgrade(
    mut req: Request<Incoming>,
    ip: IpAddr,
    secure: bool,
    exporter: Option<[u8; 32]>,
    shared: Arc<Shared>,
) -> Response<Body> {
    let headers = req.headers();
    let is_upgrade = req.method() == Method::GET
        && header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| is_upgrade)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "XMPP over WebSocket (RFC 7395): a WebSocket upgrade with subprotocol xmpp is required\n",
        );
    };
    if !header_has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, "xmpp") {
        return text(
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol xmpp is required\n",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let limits = &shared.config.limits;
        let config = WebSocketConfig::default()
            .max_message_size(Some(limits.max_stanza_bytes.saturating_add(1024)))
            .max_frame_size(Some(limits.max_stanza_bytes.saturating_add(1024)));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        websocket(ws, ip, secure, exporter, shared).await;
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("xmpp"),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Sends one stanza: `false` when it failed, took longer than `write_timeout_secs`, or
/// the session's outbox overflowed meanwhile (the client is not reading).
async fn ws_send(ws: &mut Ws, xml: &str, limit: Duration, outbox: &Outbox) -> bool {
    tokio::select! {
        r = tokio::time::timeout(limit, ws.send(Message::text(standalone(xml)))) => {
            matches!(r, Ok(Ok(())))
        }
        () = outbox.ended() => false,
    }
}

async fn websocket(
    mut ws: Ws,
    ip: IpAddr,
    secure: bool,
    exporter: Option<[u8; 32]>,
    shared: Arc<Shared>,
) {
    let admitted = lock(&shared.hub).admit(ip, Instant::now());
    let id = match admitted {
        Ok(id) => id,
        Err(refused) => {
            tracing::info!(%refused, "websocket refused");
            let open = format!(
                "<open xmlns='{}' from='{}' id='refused' version='1.0'/>",
                crate::stream::NS_FRAMING,
                escape(&shared.config.domain)
            );
            let err = crate::xml::stream_error_element("policy-violation", &refused.to_string());
            // A client that does not read gets no more than the write deadline.
            let _ = tokio::time::timeout(shared.config.limits.write_timeout(), async {
                let _ = ws.send(Message::text(open)).await;
                let _ = ws.send(Message::text(err)).await;
                let _ = ws.close(None).await;
            })
            .await;
            return;
        }
    };
    let (mut rx, mut guard, c2s) = open_session(&shared, id, ip, Instant::now());
    let mut c2s = c2s.with_framing(Framing::WebSocket, secure);
    if let Some(exporter) = exporter {
        c2s.set_channel_binding(exporter);
    }
    tracing::debug!(session = id.0, secure, "websocket connected");
    let mut attachment = Attachment::new();
    // XEP-0198 as on TCP: a `<resume/>` takes a detached session over (its guard, which
    // keeps its admission and rooms, and its outbox); a broken connection parks ours.
    while let Some((previd, h, user)) =
        ws_drive(&mut ws, &mut c2s, &rx, &shared, &mut attachment).await
    {
        match find_session(&shared, &previd, &user).await {
            Some(p) => {
                c2s.resumed(p.guard.id, p.state, h);
                rx = p.rx;
                guard = p.guard;
            }
            None => c2s.resume_failed(),
        }
    }
    attachment.release(&shared);
    // A session whose outbox overflowed ends: its client was not reading.
    if let Some(state) = c2s.detach().filter(|_| !rx.overflowed()) {
        park(&shared, state, rx, guard);
    }
}

/// Drives one WebSocket stream until it ends (`None`) or asks to resume a detached
/// session (`Some((previd, h, user))`, looked up by the caller).
async fn ws_drive(
    ws: &mut Ws,
    c2s: &mut C2s,
    rx: &Outbox,
    shared: &Shared,
    attachment: &mut Attachment,
) -> Option<(String, u32, String)> {
    let id = c2s.id();
    let write_timeout = shared.config.limits.write_timeout();
    let mut stopping = std::pin::pin!(shared.stopping());
    let mut stopped = false;
    loop {
        attachment.sync(c2s, shared);
        // After a failed write nothing more is written, but deliveries to others from
        // stanzas already handled still go out (see `server::flush`).
        let mut broken = false;
        while let Some(out) = c2s.poll_output() {
            match out {
                Output::Deliver(d) => shared.dispatch(d),
                _ if broken => {}
                Output::Send(xml) => {
                    if !ws_send(ws, &xml, write_timeout, rx).await {
                        tracing::debug!(session = id.0, "websocket write failed");
                        broken = true;
                    }
                }
                Output::Pause(d) => tokio::time::sleep(d).await,
                Output::StartTls => {}
                Output::Resume { previd, h, user } => return Some((previd, h, user)),
                Output::Close => {
                    let _ = tokio::time::timeout(write_timeout, ws.close(None)).await;
                    return None;
                }
            }
        }
        if broken {
            return None;
        }
        let takeover = Arc::clone(&attachment.takeover);
        let timeout = c2s.read_timeout(Instant::now());
        tokio::select! {
            msg = tokio::time::timeout(timeout, ws.next()) => match msg {
                Err(_) => c2s.handle_timeout(),
                Ok(None | Some(Err(_))) => return None,
                Ok(Some(Ok(msg))) => {
                    let now = Instant::now();
                    match msg {
                        Message::Text(t) => match classify_ws_frame(t.as_str()) {
                            WsFrame::Open { to, version } => {
                                let header = synthetic_header(to.as_deref(), version.as_deref());
                                c2s.handle_bytes(now, header.as_bytes(), &shared.hub);
                            }
                            WsFrame::Close => {
                                c2s.handle_bytes(now, b"</stream:stream>", &shared.hub);
                            }
                            WsFrame::Element => {
                                c2s.handle_bytes(now, t.as_bytes(), &shared.hub);
                            }
                            WsFrame::Invalid => {
                                c2s.fail("bad-format", "one XMPP element per WebSocket message");
                            }
                        },
                        Message::Binary(_) => {
                            c2s.fail("bad-format", "binary WebSocket messages are not XMPP");
                        }
                        // A close frame without `<close/>` is a broken stream: a
                        // stream-managed session is kept for resumption.
                        Message::Close(_) => return None,
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
            },
            next = rx.recv() => match next {
                // Counted and kept under stream management, written by the loop.
                Some(xml) => c2s.outgoing(xml),
                None => {
                    tracing::info!(session = id.0, "outbox full: client not reading; dropped");
                    return None;
                }
            },
            // A resumption on another connection takes this session over.
            () = takeover.notified() => return None,
            () = &mut stopping, if !stopped => {
                stopped = true;
                if c2s.is_closed() {
                    let _ = tokio::time::timeout(write_timeout, ws.close(None)).await;
                    return None;
                }
                // Written by the loop: the stream error, <close/>, then the close frame.
                c2s.fail("system-shutdown", "the server is shutting down");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// BOSH (XEP-0124, XEP-0206)

/// The registry of BOSH sessions, with the caps.
#[derive(Debug, Default)]
pub struct Bosh {
    sessions: Mutex<BoshSessions>,
}

#[derive(Debug, Default)]
struct BoshSessions {
    by_sid: HashMap<String, Arc<BoshSession>>,
    per_ip: HashMap<AddressKey, usize>,
}

impl Bosh {
    /// Open sessions.
    pub fn count(&self) -> usize {
        lock(&self.sessions).by_sid.len()
    }

    fn get(&self, sid: &str) -> Option<Arc<BoshSession>> {
        lock(&self.sessions).by_sid.get(sid).cloned()
    }

    fn remove(&self, sid: &str, ip: IpAddr) {
        let mut s = lock(&self.sessions);
        if s.by_sid.remove(sid).is_some() {
            let key = AddressKey::of(ip);
            if let Some(n) = s.per_ip.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.per_ip.remove(&key);
                }
            }
        }
    }
}

struct BoshSession {
    sid: String,
    ip: IpAddr,
    wait: Duration,
    /// 1, or 0 when the client asked for no holding (every request answered at once).
    hold: u64,
    state: Mutex<BoshState>,
    notify: Notify,
}

impl std::fmt::Debug for BoshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoshSession").finish_non_exhaustive()
    }
}

struct BoshState {
    c2s: C2s,
    /// The rid expected next.
    next_rid: u64,
    /// Elements waiting for a response to carry them.
    pending: Pending,
    /// Recent responses by rid, replayed for a repeated rid.
    replies: VecDeque<(u64, String)>,
    /// Requests currently held, oldest first: (rid, token). A resent rid takes the
    /// place (and a new token) of the request still held under it.
    held: VecDeque<(u64, u64)>,
    /// The next request token.
    next_token: u64,
    /// Requests waiting for an earlier rid to arrive (at most one).
    waiting_turn: usize,
    /// Set when the session ended: the terminate condition (empty: normal end).
    terminated: Option<&'static str>,
    last_activity: Instant,
    last_input: Instant,
    tokens: f64,
    last_request: Instant,
}

/// Elements waiting for a response to carry them, their bytes counted as outbox bytes.
struct Pending {
    items: Vec<String>,
    bytes: usize,
    counters: Arc<Counters>,
}

impl Pending {
    fn new(counters: &Arc<Counters>) -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
            counters: Arc::clone(counters),
        }
    }

    fn push(&mut self, element: String) {
        self.bytes = self.bytes.saturating_add(element.len());
        Counters::add(&self.counters.outbox_bytes, element.len());
        self.items.push(element);
    }

    /// Adds a stanza routed to the session if it stays within the outbox limits.
    fn push_within(&mut self, element: String, limits: &crate::config::Limits) -> bool {
        if self.items.len() >= limits.outbox_stanzas.max(1)
            || self.bytes.saturating_add(element.len()) > limits.outbox_bytes
        {
            return false;
        }
        self.push(element);
        true
    }

    fn take(&mut self) -> Vec<String> {
        Counters::sub(&self.counters.outbox_bytes, self.bytes);
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, String> {
        self.items.iter()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        Counters::sub(&self.counters.outbox_bytes, self.bytes);
    }
}

fn body_open(extra: &str) -> String {
    format!("<body xmlns='{NS_HTTPBIND}' xmlns:stream='{NS_STREAM}'{extra}>")
}

fn render(elements: &[String], terminated: Option<&'static str>) -> String {
    let extra = match terminated {
        None => String::new(),
        Some("") => " type='terminate'".to_owned(),
        Some(c) => format!(" type='terminate' condition='{c}'"),
    };
    let mut s = body_open(&extra);
    for e in elements {
        s.push_str(e);
    }
    s.push_str("</body>");
    s
}

fn bosh_response(body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    with_cors(r)
}

fn terminate(condition: &'static str) -> Response<Body> {
    bosh_response(render(&[], Some(condition)))
}

/// One parsed BOSH request body.
#[derive(Debug)]
pub struct BoshBody {
    /// The `<body/>` element, without its children.
    pub root: minidom::Element,
    /// The child stanzas, serialized again, in order: what is fed to the session's stream.
    pub payload: Vec<u8>,
}

/// Parses a BOSH request body (XEP-0124): one `<body/>` in the httpbind namespace, complete,
/// within the stanza size and depth limits (each child counts as a stanza). `None` for
/// anything else (answered with `bad-request`). Public for the fuzz target.
///
/// The children are serialized again and fed to the session's stream parser, so two more
/// refusals keep that second reading identical to the first (both found by the fuzz
/// target `relay_bosh_body`): a child in no namespace (`xmlns=''`), which the serializer
/// would write without a declaration and the stream would then read as `jabber:client`;
/// and a child whose serialized form exceeds the stanza size limit (escaping can make it
/// longer than it was in the body), which the stream would refuse after the body was
/// accepted.
pub fn parse_bosh_body(bytes: &[u8], limits: &crate::config::Limits) -> Option<BoshBody> {
    let mut parser = StreamParser::new(ParserLimits {
        max_stanza_bytes: limits.max_stanza_bytes,
        max_depth: limits.max_depth,
    });
    let events = parser.feed(bytes).ok()?;
    let mut root = None;
    let mut payload = Vec::new();
    let mut closed = false;
    for e in events {
        match e {
            XmlEvent::StreamOpen(h) => root = h.root,
            XmlEvent::Stanza(el) => {
                if el.ns().is_empty() {
                    return None;
                }
                let before = payload.len();
                el.write_to(&mut payload).ok()?;
                if payload.len().saturating_sub(before) > limits.max_stanza_bytes {
                    return None;
                }
            }
            XmlEvent::StreamClose => closed = true,
        }
    }
    let root = root.filter(|r| r.is("body", NS_HTTPBIND))?;
    closed.then_some(BoshBody { root, payload })
}

/// Request body bytes read so far, counted in [`Counters::http_body_bytes`] until dropped.
struct BodyBytes<'a> {
    counters: &'a Counters,
    n: usize,
}

impl BodyBytes<'_> {
    fn add(&mut self, n: usize) {
        self.n = self.n.saturating_add(n);
        Counters::add(&self.counters.http_body_bytes, n);
    }
}

impl Drop for BodyBytes<'_> {
    fn drop(&mut self) {
        Counters::sub(&self.counters.http_body_bytes, self.n);
    }
}

/// Reads a whole request body of at most `max` bytes; `Err` when it is larger or the
/// connection failed.
async fn read_body(mut body: Incoming, max: usize, counters: &Counters) -> Result<Vec<u8>, ()> {
    let mut held = BodyBytes { counters, n: 0 };
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ())?.into_data() else {
            continue; // trailers
        };
        if out.len().saturating_add(data.len()) > max {
            return Err(());
        }
        out.extend_from_slice(&data);
        held.add(data.len());
    }
    Ok(out)
}

/// Reads a BOSH request body and handles it; the body must be complete by `deadline`
/// (the whole request's, see `serve`).
async fn bosh_request(
    req: Request<Incoming>,
    ip: IpAddr,
    secure: bool,
    deadline: tokio::time::Instant,
    shared: Arc<Shared>,
) -> Response<Body> {
    let max = shared.config.limits.bosh_max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return with_cors(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
    }
    let read = read_body(req.into_body(), max, &shared.counters);
    let bytes = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(())) => return with_cors(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n")),
        Err(_) => {
            tracing::debug!("bosh request too slow; connection closed");
            let mut r = with_cors(text(StatusCode::REQUEST_TIMEOUT, "request too slow\n"));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let Some(body) = parse_bosh_body(&bytes, &shared.config.limits) else {
        return terminate("bad-request");
    };
    let Some(rid) = body.root.attr("rid").and_then(|r| r.parse::<u64>().ok()) else {
        return terminate("bad-request");
    };
    match body.root.attr("sid") {
        None => create_session(&body, rid, ip, secure, &shared),
        Some(sid) => match shared.bosh.get(sid) {
            None => terminate("item-not-found"),
            Some(session) => continue_session(session, body, rid, &shared).await,
        },
    }
}

fn random_hex(n: usize) -> String {
    use rand_core::RngCore as _;
    let mut b = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn create_session(
    body: &BoshBody,
    rid: u64,
    ip: IpAddr,
    secure: bool,
    shared: &Arc<Shared>,
) -> Response<Body> {
    let limits = &shared.config.limits;
    let to = body.root.attr("to");
    if to != Some(shared.config.domain.as_str()) {
        return terminate("host-unknown");
    }
    let wait = body
        .root
        .attr("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(limits.bosh_max_wait_secs)
        .clamp(1, limits.bosh_max_wait_secs.max(1));
    let hold = body
        .root
        .attr("hold")
        .and_then(|h| h.parse::<u64>().ok())
        .unwrap_or(BOSH_HOLD)
        .min(BOSH_HOLD);
    let version = body
        .root
        .attr_ns(NS_XBOSH, "version")
        .map(str::to_owned)
        .unwrap_or_else(|| "1.0".to_owned());
    let sid = random_hex(16);
    let now = Instant::now();
    // Caps first, then the per-address connection limit shared with TCP and WebSocket.
    {
        let mut s = lock(&shared.bosh.sessions);
        let from_ip = s.per_ip.get(&AddressKey::of(ip)).copied().unwrap_or(0);
        if s.by_sid.len() >= limits.bosh_sessions || from_ip >= limits.bosh_sessions_per_ip {
            tracing::info!("bosh session refused: cap reached");
            return terminate("policy-violation");
        }
        let id = match lock(&shared.hub).admit(ip, now) {
            Ok(id) => id,
            Err(refused) => {
                tracing::info!(%refused, "bosh session refused");
                return terminate("policy-violation");
            }
        };
        let mut c2s = C2s::new(
            id,
            ip,
            &shared.config.domain,
            limits.clone(),
            shared.secret,
            Box::new(OsEntropy),
            now,
        )
        .with_framing(Framing::Bosh, secure);
        c2s.handle_bytes(
            now,
            synthetic_header(to, Some(&version)).as_bytes(),
            &shared.hub,
        );
        let session = Arc::new(BoshSession {
            sid: sid.clone(),
            ip,
            wait: Duration::from_secs(wait),
            hold,
            state: Mutex::new(BoshState {
                c2s,
                next_rid: rid.saturating_add(1),
                pending: Pending::new(&shared.counters),
                replies: VecDeque::new(),
                held: VecDeque::new(),
                next_token: 0,
                waiting_turn: 0,
                terminated: None,
                last_activity: now,
                last_input: now,
                tokens: f64::from(limits.bosh_request_burst.max(1)),
                last_request: now,
            }),
            notify: Notify::new(),
        });
        s.by_sid.insert(sid.clone(), Arc::clone(&session));
        *s.per_ip.entry(AddressKey::of(ip)).or_insert(0) += 1;
        let rx = Outbox::new(limits, Arc::clone(&shared.counters));
        lock(&shared.outboxes).insert(id, Arc::clone(&rx));
        let guard = SessionGuard::new(shared, ip, id);
        tokio::spawn(session_task(Arc::clone(&session), rx, guard));
        // The features (or a stream error) go in the creation response.
        let mut st = lock(&session.state);
        let _pause = drain(&mut st, shared);
        let elements = st.pending.take();
        let terminated = st.terminated;
        drop(st);
        tracing::debug!(session = id.0, secure, "bosh session created");
        let extra = format!(
            " sid='{sid}' wait='{wait}' hold='{hold}' requests='{BOSH_REQUESTS}' \
             inactivity='{}' polling='{BOSH_POLLING_SECS}' maxpause='0' ver='1.11' \
             from='{}' authid='{sid}' secure='{secure}' xmpp:version='1.0' \
             xmlns:xmpp='{NS_XBOSH}'{}",
            limits.bosh_inactivity_secs,
            escape(&shared.config.domain),
            match terminated {
                Some(c) if !c.is_empty() => format!(" type='terminate' condition='{c}'"),
                Some(_) => " type='terminate'".to_owned(),
                None => String::new(),
            }
        );
        let mut out = body_open(&extra);
        for e in &elements {
            out.push_str(e);
        }
        out.push_str("</body>");
        let mut st = lock(&session.state);
        st.replies.push_back((rid, out.clone()));
        drop(st);
        bosh_response(out)
    }
}

/// Moves the machine's output into the session; returns the total pause asked for.
fn drain(st: &mut BoshState, shared: &Shared) -> Duration {
    let mut pause = Duration::ZERO;
    while let Some(out) = st.c2s.poll_output() {
        match out {
            Output::Send(xml) => st.pending.push(standalone(&xml)),
            Output::Pause(d) => pause = pause.saturating_add(d),
            Output::Deliver(d) => shared.dispatch(d),
            // Resumption is offered on TCP and WebSocket only.
            Output::StartTls | Output::Resume { .. } => {}
            Output::Close => {
                let errored = st.pending.iter().any(|e| e.starts_with("<stream:error"));
                st.terminated = Some(if errored { "remote-stream-error" } else { "" });
            }
        }
    }
    pause
}

enum Step {
    Reply(String),
    Terminate(&'static str),
    Process,
    WaitTurn,
    /// A resent rid whose first request is still held: this one holds in its place.
    TakeOver(u64),
}

async fn continue_session(
    session: Arc<BoshSession>,
    body: BoshBody,
    rid: u64,
    shared: &Arc<Shared>,
) -> Response<Body> {
    let limits = &shared.config.limits;
    // Wait (bounded) for this rid's turn if earlier requests are still on their way.
    let deadline = tokio::time::Instant::now() + session.wait;
    loop {
        let notified = session.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        let step = {
            let mut st = lock(&session.state);
            let now = Instant::now();
            st.last_activity = now;
            if let Some(c) = st.terminated {
                Step::Terminate(if c.is_empty() { "item-not-found" } else { c })
            } else if rid < st.next_rid {
                let token = st.next_token;
                let next_rid = st.next_rid;
                match st.replies.iter().find(|(r, _)| *r == rid) {
                    Some((_, reply)) => Step::Reply(reply.clone()),
                    None => match st.held.iter_mut().find(|(r, _)| *r == rid) {
                        // The client resent a request it lost (its connection broke while
                        // the request was held): the first one is answered empty and this
                        // one is held instead, so nothing is written to a dead connection.
                        Some(entry) => {
                            entry.1 = token;
                            st.next_token = token.wrapping_add(1);
                            Step::TakeOver(token)
                        }
                        None if rid.saturating_add(BOSH_REQUESTS) >= next_rid => {
                            Step::Reply(render(&[], None))
                        }
                        None => Step::Terminate("item-not-found"),
                    },
                }
            } else if rid >= st.next_rid.saturating_add(BOSH_REQUESTS) {
                Step::Terminate("item-not-found")
            } else if rid > st.next_rid {
                if st.waiting_turn >= 1 {
                    // More simultaneous requests than `requests` allows.
                    Step::Terminate("policy-violation")
                } else {
                    st.waiting_turn += 1;
                    Step::WaitTurn
                }
            } else {
                // Request rate.
                let elapsed = now.saturating_duration_since(st.last_request).as_secs_f64();
                st.last_request = now;
                let rate = f64::from(limits.bosh_requests_per_second.max(1));
                let burst = f64::from(limits.bosh_request_burst.max(1));
                st.tokens = (st.tokens + elapsed * rate).min(burst) - 1.0;
                if st.tokens < 0.0 {
                    Step::Terminate("policy-violation")
                } else {
                    Step::Process
                }
            }
        };
        match step {
            Step::Reply(r) => return bosh_response(r),
            Step::Terminate(c) => {
                end_session(&session, c, shared);
                return terminate(c);
            }
            Step::Process => break,
            Step::TakeOver(token) => {
                session.notify.notify_waiters();
                return hold(&session, rid, token, Duration::ZERO, shared).await;
            }
            Step::WaitTurn => {
                // Counted down however this future ends (the client may hang up).
                let turn = Waiting {
                    session: &session,
                    rid: None,
                };
                let woke = tokio::time::timeout_at(deadline, notified).await;
                drop(turn);
                if woke.is_err() {
                    end_session(&session, "item-not-found", shared);
                    return terminate("item-not-found");
                }
            }
        }
    }
    // Process the request (rid == next_rid).
    let pause = {
        let mut st = lock(&session.state);
        st.next_rid = rid.saturating_add(1);
        let now = Instant::now();
        if body.root.attr("type") == Some("terminate") {
            st.c2s.handle_bytes(now, &body.payload, &shared.hub);
            let _ = drain(&mut st, shared);
            st.terminated = Some("");
        } else {
            if body.root.attr_ns(NS_XBOSH, "restart") == Some("true") {
                let to = body.root.attr("to").map(str::to_owned);
                let header = synthetic_header(to.as_deref(), Some("1.0"));
                st.c2s.handle_bytes(now, header.as_bytes(), &shared.hub);
            }
            if !body.payload.is_empty() {
                st.last_input = now;
                st.c2s.handle_bytes(now, &body.payload, &shared.hub);
            }
        }
        let pause = drain(&mut st, shared);
        let token = st.next_token;
        st.next_token = token.wrapping_add(1);
        st.held.push_back((rid, token));
        (pause, token)
    };
    let (pause, token) = pause;
    session.notify.notify_waiters();
    hold(&session, rid, token, pause, shared).await
}

/// Holds request `(rid, token)` until there is something to say, a newer request needs its
/// slot, a resent request takes its place, or `wait` runs out.
async fn hold(
    session: &Arc<BoshSession>,
    rid: u64,
    token: u64,
    pause: Duration,
    shared: &Arc<Shared>,
) -> Response<Body> {
    // Released however this future ends (the client may hang up while it is held).
    let _held = Waiting {
        session,
        rid: Some((rid, token)),
    };
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    let deadline = tokio::time::Instant::now() + session.wait;
    let reply = loop {
        let notified = session.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = lock(&session.state);
            // XEP-0124 §14.1: responses go out in rid order, so only the oldest held
            // request carries data; a newer one releases it (hold) and waits its turn.
            if !st.held.contains(&(rid, token)) {
                // A resent request took this one's place: answer empty, store nothing.
                drop(st);
                return bosh_response(render(&[], None));
            }
            let oldest = st.held.front() == Some(&(rid, token));
            let must_release = st.held.len() as u64 > session.hold && oldest;
            let has_data = oldest && !st.pending.is_empty();
            if has_data
                || st.terminated.is_some()
                || must_release
                || tokio::time::Instant::now() >= deadline
            {
                let elements = if oldest || st.terminated.is_some() {
                    st.pending.take()
                } else {
                    Vec::new()
                };
                let reply = render(&elements, st.terminated);
                st.held.retain(|r| *r != (rid, token));
                st.last_activity = Instant::now();
                st.replies.push_back((rid, reply.clone()));
                while st.replies.len() as u64 > BOSH_REQUESTS {
                    st.replies.pop_front();
                }
                let ended = st.terminated.is_some();
                drop(st);
                if ended {
                    shared.bosh.remove(&session.sid, session.ip);
                }
                break reply;
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    };
    session.notify.notify_waiters();
    bosh_response(reply)
}

/// A request waiting for its turn (`rid: None`) or held (`rid: Some((rid, token))`);
/// undone on drop.
struct Waiting<'a> {
    session: &'a BoshSession,
    rid: Option<(u64, u64)>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.session.state);
        match self.rid {
            None => st.waiting_turn = st.waiting_turn.saturating_sub(1),
            Some(entry) => {
                if st.held.contains(&entry) {
                    st.held.retain(|r| *r != entry);
                    st.last_activity = Instant::now();
                }
            }
        }
    }
}

fn end_session(session: &BoshSession, condition: &'static str, shared: &Shared) {
    {
        let mut st = lock(&session.state);
        if st.terminated.is_none() {
            st.terminated = Some(condition);
        }
    }
    shared.bosh.remove(&session.sid, session.ip);
    session.notify.notify_waiters();
}

/// Per-session task: carries stanzas from other sessions into the pending queue, and ends
/// the session after inactivity. Owns the hub registration through `guard`.
async fn session_task(session: Arc<BoshSession>, rx: Arc<Outbox>, guard: SessionGuard) {
    let shared = Arc::clone(&guard.shared);
    let limits = &shared.config.limits;
    let inactivity = Duration::from_secs(limits.bosh_inactivity_secs);
    let mut stopping = pin!(shared.stopping());
    let mut stopped = false;
    loop {
        let notified = session.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        let sleep_for = {
            let mut st = lock(&session.state);
            if st.terminated.is_some() {
                break;
            }
            let now = Instant::now();
            if st.held.is_empty() && now.saturating_duration_since(st.last_activity) >= inactivity {
                tracing::debug!(session = guard.id.0, "bosh session inactive");
                st.terminated = Some("");
                break;
            }
            let idle = st.c2s.idle_timeout();
            let negotiation_left = st.c2s.read_timeout(now);
            if now.saturating_duration_since(st.last_input) >= idle || negotiation_left.is_zero() {
                st.c2s.handle_timeout();
                let _ = drain(&mut st, &shared);
                drop(st);
                session.notify.notify_waiters();
                continue;
            }
            let a = inactivity.saturating_sub(now.saturating_duration_since(st.last_activity));
            let b = idle
                .saturating_sub(now.saturating_duration_since(st.last_input))
                .min(negotiation_left);
            a.min(b).max(Duration::from_millis(50))
        };
        tokio::select! {
            next = rx.recv() => {
                let mut st = lock(&session.state);
                // What waits for a response counts against the session's outbox limits:
                // a client that stops polling is ended, and what it held freed.
                let kept = next.is_some_and(|xml| st.pending.push_within(standalone(&xml), limits));
                if !kept {
                    tracing::info!(session = guard.id.0, "bosh outbox full: client not polling; ended");
                    drop(st.pending.take());
                    st.terminated = Some("policy-violation");
                    drop(st);
                    session.notify.notify_waiters();
                    break;
                }
                drop(st);
                session.notify.notify_waiters();
            }
            () = &mut notified => {}
            () = tokio::time::sleep(sleep_for) => {}
            () = &mut stopping, if !stopped => {
                // The held request (if any) answers with the stream error in a terminate
                // body; the next turn of the loop ends the session.
                stopped = true;
                let mut st = lock(&session.state);
                if st.c2s.is_closed() {
                    st.terminated.get_or_insert("");
                } else {
                    st.c2s.fail("system-shutdown", "the server is shutting down");
                    let _ = drain(&mut st, &shared);
                }
                drop(st);
                session.notify.notify_waiters();
            }
        }
    }
    shared.bosh.remove(&session.sid, session.ip);
    session.notify.notify_waiters();
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_security_rule() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let far: IpAddr = "203.0.113.5".parse().unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let none = HeaderMap::new();
        assert_eq!(client_of(lo, false, &none, &[]), (lo, true));
        assert_eq!(client_of(far, false, &none, &[]), (far, false));
        assert_eq!(client_of(far, true, &none, &[]), (far, true));
        let mut fwd = HeaderMap::new();
        fwd.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.5"),
        );
        fwd.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        // A trusted proxy names the client; an untrusted peer's headers are ignored.
        assert_eq!(client_of(proxy, false, &fwd, &[proxy]), (far, true));
        assert_eq!(client_of(far, false, &fwd, &[proxy]), (far, false));
        assert_eq!(client_of(lo, false, &fwd, &[]), (far, true));
        fwd.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert_eq!(client_of(proxy, false, &fwd, &[proxy]), (far, false));
        assert_eq!(client_of(lo, false, &fwd, &[]), (far, false));
        // IPv4-mapped peers (a dual-stack listener) are their IPv4 selves: loopback and
        // listed proxies are recognised, and forwarded mapped addresses read as IPv4.
        let mapped = |v4: IpAddr| match v4 {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            v6 => v6,
        };
        assert_eq!(client_of(mapped(lo), false, &none, &[]), (lo, true));
        assert_eq!(client_of(mapped(far), false, &none, &[]), (far, false));
        let mut fwd = HeaderMap::new();
        fwd.insert(
            "x-forwarded-for",
            HeaderValue::from_static("::ffff:203.0.113.5"),
        );
        assert_eq!(client_of(mapped(proxy), false, &fwd, &[proxy]), (far, true));
    }

    #[test]
    fn bosh_bodies_are_parsed_with_limits() {
        let limits = crate::config::Limits::default();
        let b = parse_bosh_body(
            b"<body xmlns='http://jabber.org/protocol/httpbind' rid='5' sid='s'>\
              <iq xmlns='jabber:client' type='get' id='1'/></body>",
            &limits,
        )
        .unwrap();
        assert_eq!(b.root.attr("rid"), Some("5"));
        assert!(String::from_utf8(b.payload).unwrap().starts_with("<iq"));
        assert!(parse_bosh_body(
            b"<body xmlns='http://jabber.org/protocol/httpbind'>",
            &limits
        )
        .is_none());
        assert!(parse_bosh_body(b"<bogus xmlns='x'/>", &limits).is_none());
        let deep = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>{}{}</body>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(parse_bosh_body(deep.as_bytes(), &limits).is_none());
    }

    #[test]
    fn bosh_children_read_the_same_in_the_session_stream() {
        // Regressions from the fuzz target relay_bosh_body.
        let limits = crate::config::Limits {
            max_stanza_bytes: 100,
            ..crate::config::Limits::default()
        };
        // No namespace: written again as `<message/>`, it would become jabber:client.
        assert!(parse_bosh_body(
            b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'><message xmlns=''/></body>",
            &limits
        )
        .is_none());
        // 80 bytes in the body, 200 once `>` is escaped: over the limit the stream applies.
        let grows = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'><iq xmlns='jabber:client'>{}</iq></body>",
            ">".repeat(50)
        );
        assert!(parse_bosh_body(grows.as_bytes(), &limits).is_none());
        let fits = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'><iq xmlns='jabber:client'>{}</iq></body>",
            ">".repeat(10)
        );
        assert!(parse_bosh_body(fits.as_bytes(), &limits).is_some());
    }
}
