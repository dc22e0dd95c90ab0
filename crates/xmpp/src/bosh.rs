//! XMPP over BOSH (XEP-0124 with XEP-0206): `http://` and `https://…/http-bind`.
//!
//! One driver task per session owns the HTTP connections (hyper 1's HTTP/1.1 client on our
//! own TCP or rustls connections, so the same [`crate::TrustConfig`] applies), the `rid`
//! counter and the `sid`. The [`BoshTransport`] handed to the session layer only talks to
//! it through channels, so [`ElementStream::next`] is cancel-safe.
//!
//! - Session creation carries `ver='1.11'`, `wait`, `hold='1'`, a random initial `rid`,
//!   `to` and `xmpp:version='1.0'`; the response's `sid`, `wait`, `hold`, `requests`,
//!   `polling` and `inactivity` are read (bounded) and used.
//! - Long polling: one request is always outstanding for the server to answer when it
//!   has something; outgoing elements go on a second request, batched up to
//!   [`BoshConfig::max_request_bytes`], never more than `requests` at once (the
//!   `terminate` request is the one extra XEP-0124 allows). Responses are processed in
//!   `rid` order, whatever order they arrive in. A token bucket
//!   ([`BoshConfig::requests_per_second`], [`BoshConfig::request_burst`]) keeps the request
//!   rate below what a connection manager would call overactivity; outgoing elements queue
//!   and batch meanwhile.
//! - Requests are numbered when they are written, and written one at a time: the next
//!   one starts only once the one before is on the wire (flushed to its connection,
//!   [`Counted`]) and, while that one is unanswered, [`BoshConfig::request_gap`] later, so
//!   that a connection manager reading several HTTP connections gets each rid once and in
//!   order. (ejabberd 23.01 parks a request that overtook the one before it and, when that
//!   one is then held, never processes it; with requests only ordered on the wire, not
//!   spaced, its login failed in 12 runs of 12 here.) After a response with elements, an
//!   empty poll waits the same gap, so that the answer to them goes on the poll itself.
//! - [`ElementStream::open`] creates the session the first time and sends
//!   `xmpp:restart='true'` after that (after SASL success); the response carries the
//!   new features.
//! - Recoverable failures (a network error, a timeout, HTTP 5xx) resend the same body with
//!   the same `rid` (XEP-0124 §14: the connection manager answers a repeated `rid` with the
//!   same response) up to [`BoshConfig::retries`] times. A `type='terminate'` body from the
//!   server, HTTP 4xx (404: unknown session) or a TLS failure end the stream with a typed
//!   [`TransportError`]. Every request attempt is bounded by `wait` plus
//!   [`BoshConfig::timeout_margin`].
//! - Responses are bounded in bytes ([`BoshConfig::max_body_bytes`]) and in elements
//!   ([`BoshConfig::max_elements`]), and parsed with the shared limited parser
//!   ([`crate::xml::StreamParser`], the stanza size and depth limits of
//!   [`ParserLimits`]); see [`parse_body`].
//! - [`ElementStream::close`] sends `type='terminate'` once, with whatever is still queued,
//!   after every request numbered before it is on the wire (a connection manager answers
//!   the terminate only once it has every earlier rid), and waits for its answer (at most
//!   2 s): the leave presence it carries is then handled.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use minidom::Element;
use rand_core::{OsRng, RngCore as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::transport::{
    stream_error_condition, tcp_connect, tls_failure, BoxFuture, ElementStream, TlsFailure,
    TransportError,
};
use crate::url::{ServerUrl, Transport};
use crate::xml::{escape, ParserLimits, StreamParser, XmlEvent, NS_STREAM};

/// The BOSH namespace (XEP-0124).
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// The XMPP-over-BOSH namespace (XEP-0206).
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// The XEP-0124 version we speak.
pub const BOSH_VERSION: &str = "1.11";

/// XEP-0124 terminal binding conditions; anything else a server names is reported as
/// `undefined-condition` (the attribute is the server's text, not ours to echo).
const CONDITIONS: [&str; 13] = [
    "bad-request",
    "host-gone",
    "host-unknown",
    "improper-addressing",
    "internal-server-error",
    "item-not-found",
    "other-request",
    "policy-violation",
    "remote-connection-failed",
    "remote-stream-error",
    "see-other-uri",
    "system-shutdown",
    "undefined-condition",
];

/// Why a BOSH session failed. No JIDs, payloads or server-chosen text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoshError {
    /// The connection manager ended the session (`type='terminate'`) with this XEP-0124
    /// condition (`item-not-found`: it does not know the session, e.g. after a restart).
    #[error("the server ended the BOSH session: {0}")]
    Terminated(&'static str),
    /// The endpoint answered with an HTTP error status that is not recoverable (4xx; 404
    /// is XEP-0124's legacy "unknown session"), or a 5xx that persisted through the
    /// retries.
    #[error("the BOSH endpoint answered HTTP {0}")]
    Http(u16),
    /// A response body was larger than [`BoshConfig::max_body_bytes`].
    #[error("a BOSH response was larger than {0} bytes")]
    BodyTooLarge(usize),
    /// A response body held more than [`BoshConfig::max_elements`] elements.
    #[error("a BOSH response held more than {0} elements")]
    TooManyElements(usize),
    /// A response was not a `<body/>` in the BOSH namespace.
    #[error("the BOSH response is not a <body/> element")]
    NotABody,
    /// The session creation response lacks or garbles a required attribute.
    #[error("the BOSH session creation response is unusable: {0}")]
    BadSession(&'static str),
    /// A request got no answer within `wait` plus the margin, through every retry.
    #[error("the BOSH request timed out")]
    Timeout,
    /// More outgoing bytes are queued than [`BoshConfig::max_queued_bytes`].
    #[error("too much outgoing data is queued on the BOSH session")]
    QueueFull,
}

impl From<BoshError> for TransportError {
    fn from(e: BoshError) -> Self {
        TransportError::Bosh(e)
    }
}

/// BOSH settings. The defaults suit a connection manager such as our relay (which allows
/// 10 requests per second with a burst of 40) and Prosody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshConfig {
    /// The longest time (seconds) the server may hold a request (`wait`); the server may
    /// lower it.
    pub wait_secs: u64,
    /// Added to `wait` to bound every request attempt.
    pub timeout_margin: Duration,
    /// Resends of a request after a recoverable failure.
    pub retries: u32,
    /// Delay before the first resend (doubled for each further one).
    pub retry_delay: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
    /// Most elements accepted in one response body.
    pub max_elements: usize,
    /// Largest request body we build from queued elements (one larger element is sent
    /// alone).
    pub max_request_bytes: usize,
    /// Most outgoing bytes queued before [`ElementStream::send`] fails.
    pub max_queued_bytes: usize,
    /// Sustained request rate.
    pub requests_per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub request_burst: u32,
    /// Least time between writing a request and writing the next one while the first
    /// is unanswered, so that a connection manager reading several HTTP connections
    /// takes them in rid order; also how long an empty poll waits after a response with
    /// elements, so that the answer to them goes on the poll itself.
    pub request_gap: Duration,
}

impl Default for BoshConfig {
    fn default() -> Self {
        Self {
            wait_secs: 30,
            timeout_margin: Duration::from_secs(10),
            retries: 3,
            retry_delay: Duration::from_millis(200),
            max_body_bytes: 4 << 20,
            max_elements: 4096,
            max_request_bytes: 256 << 10,
            max_queued_bytes: 8 << 20,
            requests_per_second: 8,
            request_burst: 20,
            request_gap: Duration::from_millis(20),
        }
    }
}

/// A parsed BOSH `<body/>`: the root (attributes only) and its child elements.
#[derive(Debug)]
pub struct BoshBody {
    /// The `<body/>` element without children.
    pub root: Element,
    /// The child elements, in order.
    pub children: Vec<Element>,
}

/// Parses one BOSH response body with the shared limited parser: at most
/// `max_elements` children, each within `limits` (stanza size and depth); the root must be
/// `<body xmlns='http://jabber.org/protocol/httpbind'>` and must be closed. (The byte size
/// is bounded before this, while reading.)
pub fn parse_body(
    bytes: &[u8],
    limits: ParserLimits,
    max_elements: usize,
) -> Result<BoshBody, TransportError> {
    let mut parser = StreamParser::new(limits);
    let events = parser.feed(bytes).map_err(TransportError::Xml)?;
    let mut root = None;
    let mut children = Vec::new();
    let mut closed = false;
    for event in events {
        match event {
            XmlEvent::StreamOpen(h) => root = h.root,
            XmlEvent::Stanza(el) => {
                if children.len() >= max_elements {
                    return Err(BoshError::TooManyElements(max_elements).into());
                }
                children.push(el);
            }
            XmlEvent::StreamClose => closed = true,
        }
    }
    let root = root
        .filter(|r| r.is("body", NS_HTTPBIND))
        .ok_or(BoshError::NotABody)?;
    if !closed {
        return Err(BoshError::NotABody.into());
    }
    Ok(BoshBody { root, children })
}

/// The named XEP-0124 condition of a terminate body.
fn condition_of(root: &Element) -> &'static str {
    let c = root.attr("condition").unwrap_or("undefined-condition");
    CONDITIONS
        .iter()
        .find(|k| **k == c)
        .copied()
        .unwrap_or("undefined-condition")
}

/// The byte stream under HTTP (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Sender = SendRequest<Full<Bytes>>;

/// The byte stream under HTTP, counting the bytes written and publishing the count at
/// each completed flush: how a request learns that it is on the wire (hyper writes a
/// request's head and body, then flushes).
struct Counted {
    io: Box<dyn Io>,
    written: u64,
    flushed: watch::Sender<u64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            this.written = this.written.saturating_add(*n as u64);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &result {
            this.written = this.written.saturating_add(*n as u64);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = result {
            this.flushed.send_replace(this.written);
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One HTTP/1.1 connection: the request sender and the count of bytes flushed on it.
struct Conn {
    sender: Sender,
    flushed: watch::Receiver<u64>,
}

/// Fires `on_wire` (once): the request it stands for was written and flushed.
fn signal_on_wire(on_wire: &mut Option<oneshot::Sender<()>>) {
    if let Some(tx) = on_wire.take() {
        let _ = tx.send(());
    }
}

/// How one HTTP attempt failed.
enum Failure {
    /// Worth resending with the same rid.
    Retry(TransportError),
    /// Ends the session.
    Fatal(TransportError),
}

/// The HTTP side: where to post, and idle keep-alive connections.
#[derive(Clone)]
struct Http {
    host: String,
    port: u16,
    secure: bool,
    authority: String,
    path: String,
    tls: Arc<rustls::ClientConfig>,
    idle: Arc<Mutex<Vec<Conn>>>,
    max_body: usize,
}

/// Idle connections kept for reuse (one per concurrent request is enough).
const MAX_IDLE: usize = 3;

impl Http {
    async fn dial(&self) -> Result<Conn, Failure> {
        let tcp = tcp_connect(&self.host, self.port)
            .await
            .map_err(|e| match e {
                TransportError::Resolve => Failure::Fatal(e),
                e => Failure::Retry(e),
            })?;
        let io: Box<dyn Io> = if self.secure {
            let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                .map_err(|_| Failure::Fatal(TransportError::Tls(TlsFailure::InvalidName)))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| match e.kind() {
                    // A reset during the handshake is the network's, not the certificate's.
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                        if e.get_ref().is_none() =>
                    {
                        Failure::Retry(TransportError::Io(e.kind()))
                    }
                    _ => Failure::Fatal(tls_failure(&e)),
                })?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let (flushed_tx, flushed) = watch::channel(0u64);
        let io = Counted {
            io,
            written: 0,
            flushed: flushed_tx,
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|_| Failure::Retry(TransportError::Io(std::io::ErrorKind::ConnectionReset)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender, flushed })
    }

    async fn connection(&self) -> Result<Conn, Failure> {
        loop {
            let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
            match reused {
                Some(c) if c.sender.is_ready() => return Ok(c),
                Some(_) => continue,
                None => return self.dial().await,
            }
        }
    }

    fn keep(&self, conn: Conn) {
        if let Ok(mut v) = self.idle.lock() {
            if v.len() < MAX_IDLE {
                v.push(conn);
            }
        }
    }

    /// One POST, bounded by `timeout`; `on_wire` fires once the request is written.
    async fn post(
        &self,
        body: Bytes,
        timeout: Duration,
        on_wire: &mut Option<oneshot::Sender<()>>,
    ) -> Result<Bytes, Failure> {
        match tokio::time::timeout(timeout, self.post_inner(body, on_wire)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Retry(BoshError::Timeout.into())),
        }
    }

    async fn post_inner(
        &self,
        body: Bytes,
        on_wire: &mut Option<oneshot::Sender<()>>,
    ) -> Result<Bytes, Failure> {
        let mut conn = self.connection().await?;
        let io_err = |_| Failure::Retry(TransportError::Io(std::io::ErrorKind::ConnectionReset));
        conn.sender.ready().await.map_err(io_err)?;
        // The request is on the wire once this many more bytes are flushed: at least its
        // request line and its body (hyper writes the head and the body, then flushes).
        let request_line = "POST  HTTP/1.1\r\n".len().saturating_add(self.path.len());
        let on_wire_at = conn
            .flushed
            .borrow_and_update()
            .saturating_add(request_line.saturating_add(body.len()) as u64);
        let request = Request::post(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(Full::new(body))
            .map_err(|_| Failure::Fatal(TransportError::Protocol("invalid BOSH request")))?;
        let response = conn.sender.send_request(request);
        tokio::pin!(response);
        let mut flushed = conn.flushed.clone();
        let response = tokio::select! {
            biased;
            r = &mut response => r,
            written = async { flushed.wait_for(|n| *n >= on_wire_at).await.is_ok() },
                if on_wire.is_some() =>
            {
                if written {
                    signal_on_wire(on_wire);
                }
                response.await
            }
        };
        // An answer means the request went out, whatever the count says.
        signal_on_wire(on_wire);
        let response = response.map_err(io_err)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Failure::Retry(BoshError::Http(status.as_u16()).into()));
        }
        if status != StatusCode::OK {
            return Err(Failure::Fatal(BoshError::Http(status.as_u16()).into()));
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(Failure::Fatal(
                BoshError::BodyTooLarge(self.max_body).into(),
            ));
        }
        let bytes = match Limited::new(response.into_body(), self.max_body)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Failure::Fatal(
                    BoshError::BodyTooLarge(self.max_body).into(),
                ))
            }
            Err(_) => {
                return Err(Failure::Retry(TransportError::Io(
                    std::io::ErrorKind::ConnectionReset,
                )))
            }
        };
        self.keep(conn);
        Ok(bytes)
    }

    /// Posts `body`, resending it (same body, same rid) after recoverable failures;
    /// `on_wire` fires when the first attempt that gets written is on the wire (or is
    /// dropped unfired when none is).
    async fn post_with_retries(
        self,
        body: Bytes,
        timeout: Duration,
        retries: u32,
        first_delay: Duration,
        mut on_wire: Option<oneshot::Sender<()>>,
    ) -> Result<Bytes, TransportError> {
        let mut delay = first_delay;
        let mut attempt = 0u32;
        loop {
            match self.post(body.clone(), timeout, &mut on_wire).await {
                Ok(b) => return Ok(b),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    if attempt >= retries {
                        return Err(e);
                    }
                    attempt = attempt.saturating_add(1);
                    tracing::debug!(attempt, "bosh request failed; resending");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }
}

/// What the transport asks of the driver.
enum Cmd {
    /// Create the session (first `open`).
    Create,
    /// Queue one element.
    Send(String),
    /// Restart the stream (later `open`s).
    Restart,
    /// Terminate, then report.
    Close(oneshot::Sender<()>),
}

/// A queued request item.
enum Out {
    Xml(String),
    Restart,
}

/// The parameters the server chose.
#[derive(Debug, Clone, Copy)]
struct Params {
    wait: Duration,
    hold: u64,
    requests: usize,
    polling: Duration,
}

/// A token bucket on requests.
#[derive(Debug)]
struct Rate {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Rate {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            last: Instant::now(),
            rate: f64::from(rate.max(1)),
            burst,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// When a token is available (now or later).
    fn available_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

type Pending = Pin<Box<dyn Future<Output = (u64, Result<Bytes, TransportError>)> + Send>>;

/// How long [`ElementStream::close`] waits for the answer to its `terminate`.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// The same when the transport was dropped without `close`.
const DROP_LIMIT: Duration = Duration::from_secs(1);

/// A close in progress: the terminate goes out once every earlier request is on the
/// wire, then its answer is awaited until `deadline`.
struct Closing {
    done: Option<oneshot::Sender<()>>,
    deadline: Instant,
    /// The terminate's rid, once sent.
    terminate: Option<u64>,
}

/// The request most recently written, while it is unanswered.
#[derive(Debug, Clone, Copy)]
struct Written {
    rid: u64,
    at: Instant,
}

struct Driver {
    http: Http,
    config: BoshConfig,
    limits: ParserLimits,
    domain: String,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    incoming: mpsc::Sender<Result<Element, TransportError>>,
    queued_bytes: Arc<AtomicUsize>,
    sid: Option<String>,
    params: Params,
    /// The rid the next request gets, when it is written.
    next_rid: u64,
    next_to_process: u64,
    out: VecDeque<Out>,
    /// Every request started and not yet answered (the one being written included).
    in_flight: FuturesUnordered<Pending>,
    completed: BTreeMap<u64, Result<Bytes, TransportError>>,
    rate: Rate,
    /// The request being written: its rid and the signal that it is on the wire. No
    /// other request starts meanwhile.
    writing: Option<(u64, oneshot::Receiver<()>)>,
    /// The last request written, until it is answered (spacing by `request_gap`).
    last_written: Option<Written>,
    /// When the last response with elements was handed on (an empty poll waits up to
    /// `request_gap` after it, for the answer to ride on the poll).
    last_delivery: Option<Instant>,
    /// When the last empty poll was sent (for `hold='0'` servers, spaced by `polling`).
    last_empty_poll: Option<Instant>,
    closing: Option<Closing>,
    ended: bool,
}

impl Driver {
    fn timeout(&self) -> Duration {
        self.params.wait.saturating_add(self.config.timeout_margin)
    }

    fn body_attrs(&self, rid: u64) -> String {
        format!(
            "<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{}'",
            escape(self.sid.as_deref().unwrap_or_default())
        )
    }

    async fn run(mut self) {
        if let Err(e) = self.run_inner().await {
            tracing::debug!(error = %e, "bosh session ended");
            let _ = self.incoming.send(Err(e)).await;
        }
        if let Some(done) = self.closing.take().and_then(|c| c.done) {
            let _ = done.send(());
        }
    }

    async fn run_inner(&mut self) -> Result<(), TransportError> {
        loop {
            if let Some(closing) = &self.closing {
                let answered = closing
                    .terminate
                    .is_some_and(|rid| self.completed.contains_key(&rid));
                if answered || Instant::now() >= closing.deadline {
                    tracing::debug!(answered, "bosh session terminated");
                    return Ok(());
                }
            } else {
                while let Some(result) = self.completed.remove(&self.next_to_process) {
                    self.next_to_process = self.next_to_process.saturating_add(1);
                    let body = parse_body(&result?, self.limits, self.config.max_elements)?;
                    self.deliver(body).await?;
                }
            }
            if self.ended {
                return Ok(());
            }
            let now = Instant::now();
            let wake = match self.next_request(now) {
                Some(at) if at <= now => {
                    self.rate.take();
                    self.start_request(now);
                    continue;
                }
                Some(at) => Some(at),
                None => None,
            };
            let wake = match (wake, self.closing.as_ref().map(|c| c.deadline)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                cmd = self.cmds.recv(), if self.closing.is_none() => match cmd {
                    None => {
                        // The transport was dropped without close(): end the session on
                        // the server too, best effort.
                        self.close(None, DROP_LIMIT);
                    }
                    Some(Cmd::Create) => self.create().await?,
                    Some(Cmd::Send(xml)) => self.out.push_back(Out::Xml(xml)),
                    Some(Cmd::Restart) => self.out.push_back(Out::Restart),
                    Some(Cmd::Close(done)) => self.close(Some(done), CLOSE_LIMIT),
                },
                () = on_wire(&mut self.writing) => {
                    if let Some((rid, _)) = self.writing.take() {
                        tracing::trace!(rid, "bosh request on the wire");
                        let answered =
                            rid < self.next_to_process || self.completed.contains_key(&rid);
                        if !answered {
                            self.last_written = Some(Written { rid, at: Instant::now() });
                        }
                    }
                }
                Some((rid, result)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    tracing::trace!(rid, ok = result.is_ok(), "bosh response");
                    if self.last_written.is_some_and(|w| w.rid == rid) {
                        self.last_written = None;
                    }
                    self.completed.insert(rid, result);
                }
                () = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
            }
        }
    }

    /// Starts closing: the terminate goes out as soon as the requests before it allow.
    fn close(&mut self, done: Option<oneshot::Sender<()>>, limit: Duration) {
        if self.sid.is_none() {
            // Nothing on the server to end.
            if let Some(done) = done {
                let _ = done.send(());
            }
            self.ended = true;
            return;
        }
        self.closing = Some(Closing {
            done,
            deadline: Instant::now() + limit,
            terminate: None,
        });
    }

    /// When the next request may start (now or later), or `None` when none is wanted.
    /// A request starts only after the one before it is on the wire, and, while that one
    /// is unanswered, `request_gap` after it: a connection manager reading several HTTP
    /// connections then gets them in rid order. (ejabberd 23.01 parks a request that
    /// overtook the one before it, and never processes it if that one is then held.)
    fn next_request(&mut self, now: Instant) -> Option<Instant> {
        self.sid.as_ref()?;
        if self.writing.is_some() {
            return None;
        }
        let earliest = match self.closing.as_ref() {
            Some(closing) if closing.terminate.is_some() => return None,
            // The terminate: at most one more than `requests` (XEP-0124 section 11).
            Some(_) => now,
            None => match self.wanted_request(now)? {
                Wanted::Data => now,
                Wanted::EmptyPoll(at) => at,
            },
        };
        let gap = self
            .last_written
            .map_or(now, |w| w.at + self.config.request_gap);
        Some(self.rate.available_at(now).max(earliest).max(gap))
    }

    /// Whether a request should go out (rate and spacing permitting).
    fn wanted_request(&self, now: Instant) -> Option<Wanted> {
        let in_flight = self.in_flight.len();
        if !self.out.is_empty() && in_flight < self.params.requests {
            return Some(Wanted::Data);
        }
        if in_flight == 0 {
            // Something just arrived: the answer usually follows at once, and then goes
            // on the poll itself instead of racing it on a second connection.
            let answer = self
                .last_delivery
                .map_or(now, |t| t + self.config.request_gap);
            // A server that holds nothing answers at once: space empty polls by `polling`.
            let polling = match (self.params.hold, self.last_empty_poll) {
                (0, Some(t)) => t + self.params.polling,
                _ => now,
            };
            return Some(Wanted::EmptyPoll(answer.max(polling)));
        }
        None
    }

    /// Numbers and starts the next request: the terminate when closing, else queued
    /// elements (or a restart, or an empty poll).
    fn start_request(&mut self, now: Instant) {
        let rid = self.next_rid;
        self.next_rid = self.next_rid.saturating_add(1);
        let mut body = self.body_attrs(rid);
        if let Some(closing) = self.closing.as_mut() {
            closing.terminate = Some(rid);
            body.push_str(" type='terminate'>");
            for item in self.out.drain(..) {
                if let Out::Xml(xml) = item {
                    body.push_str(&crate::websocket::qualify(&xml));
                }
            }
            body.push_str("</body>");
            tracing::trace!(rid, "bosh terminate");
        } else if matches!(self.out.front(), Some(Out::Restart)) {
            self.out.pop_front();
            body.push_str(&format!(
                " to='{}' xml:lang='en' xmpp:restart='true' xmlns:xmpp='{NS_XBOSH}'/>",
                escape(&self.domain)
            ));
        } else {
            body.push('>');
            let mut taken = 0usize;
            let mut empty = true;
            while let Some(Out::Xml(xml)) = self.out.front() {
                if !empty && taken.saturating_add(xml.len()) > self.config.max_request_bytes {
                    break;
                }
                taken = taken.saturating_add(xml.len());
                body.push_str(&crate::websocket::qualify(xml));
                empty = false;
                self.out.pop_front();
            }
            self.queued_bytes.fetch_sub(
                taken.min(self.queued_bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            if empty {
                self.last_empty_poll = Some(now);
            }
            body.push_str("</body>");
        }
        tracing::trace!(rid, "bosh request");
        let (on_wire, written) = oneshot::channel();
        self.writing = Some((rid, written));
        let http = self.http.clone();
        let (timeout, retries, delay) =
            (self.timeout(), self.config.retries, self.config.retry_delay);
        self.in_flight.push(Box::pin(async move {
            let result = http
                .post_with_retries(Bytes::from(body), timeout, retries, delay, Some(on_wire))
                .await;
            (rid, result)
        }));
    }

    /// Hands a response's elements to the transport in order; a terminate body ends the
    /// stream after its elements.
    async fn deliver(&mut self, body: BoshBody) -> Result<(), TransportError> {
        if !body.children.is_empty() {
            self.last_delivery = Some(Instant::now());
        }
        for el in body.children {
            if el.is("error", NS_STREAM) {
                return Err(TransportError::StreamError {
                    condition: stream_error_condition(&el),
                });
            }
            if self.incoming.send(Ok(el)).await.is_err() {
                // Nobody reads any more.
                self.ended = true;
                return Ok(());
            }
        }
        if body.root.attr("type") == Some("terminate") {
            return Err(match body.root.attr("condition") {
                None => TransportError::Closed,
                Some(_) => BoshError::Terminated(condition_of(&body.root)).into(),
            });
        }
        Ok(())
    }

    async fn create(&mut self) -> Result<(), TransportError> {
        if self.sid.is_some() {
            return Err(TransportError::Protocol("BOSH session already created"));
        }
        let rid = self.next_rid;
        self.next_rid = self.next_rid.saturating_add(1);
        self.next_to_process = self.next_rid;
        let body = format!(
            "<body xmlns='{NS_HTTPBIND}' content='text/xml; charset=utf-8' hold='1' rid='{rid}' \
             to='{}' ver='{BOSH_VERSION}' wait='{}' xml:lang='en' xmpp:version='1.0' \
             xmlns:xmpp='{NS_XBOSH}'/>",
            escape(&self.domain),
            self.config.wait_secs
        );
        // Not resent: a lost creation response would leave an orphan session.
        let timeout =
            Duration::from_secs(self.config.wait_secs).saturating_add(self.config.timeout_margin);
        let bytes = self
            .http
            .clone()
            .post_with_retries(Bytes::from(body), timeout, 0, Duration::ZERO, None)
            .await?;
        let body = parse_body(&bytes, self.limits, self.config.max_elements)?;
        let root = &body.root;
        if root.attr("type") == Some("terminate") {
            return self.deliver(body).await;
        }
        let sid = root
            .attr("sid")
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 128
                    && s.bytes().all(|b| b.is_ascii_graphic() && b != b'\'')
            })
            .ok_or(BoshError::BadSession("no usable sid"))?;
        let number = |name: &str| root.attr(name).and_then(|v| v.parse::<u64>().ok());
        let wait = number("wait").ok_or(BoshError::BadSession("no usable wait"))?;
        if wait > self.config.wait_secs.max(1) {
            return Err(BoshError::BadSession("wait longer than requested").into());
        }
        let hold = number("hold").unwrap_or(1).min(1);
        // `requests` defaults to hold + 1; we never use more than two.
        let requests = number("requests").unwrap_or(hold + 1).clamp(1, 2);
        let polling = number("polling").unwrap_or(2).min(60);
        self.params = Params {
            wait: Duration::from_secs(wait),
            hold,
            requests: usize::try_from(requests).unwrap_or(1),
            polling: Duration::from_secs(polling),
        };
        self.sid = Some(sid.to_owned());
        tracing::debug!(wait, hold, requests, "bosh session created");
        self.deliver(body).await
    }
}

/// Resolves when the request being written is on the wire (or failed before it got
/// there); never when none is.
async fn on_wire(writing: &mut Option<(u64, oneshot::Receiver<()>)>) {
    match writing {
        Some((_, rx)) => {
            let _ = rx.await;
        }
        None => std::future::pending().await,
    }
}

enum Wanted {
    Data,
    EmptyPoll(Instant),
}

/// A BOSH session seen as an [`ElementStream`].
pub struct BoshTransport {
    cmds: mpsc::UnboundedSender<Cmd>,
    incoming: mpsc::Receiver<Result<Element, TransportError>>,
    queued_bytes: Arc<AtomicUsize>,
    max_queued: usize,
    created: bool,
    failed: Option<TransportError>,
}

impl std::fmt::Debug for BoshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoshTransport")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Connects to an `http://` or `https://` BOSH endpoint: checks that the server answers
/// (TCP, and TLS against the URL's host for `https`), and starts the session's driver.
/// The session itself is created by the first [`ElementStream::open`].
pub async fn connect_bosh(
    url: &ServerUrl,
    domain: &str,
    tls: Arc<rustls::ClientConfig>,
    limits: ParserLimits,
    config: BoshConfig,
    timeout: Duration,
) -> Result<BoshTransport, TransportError> {
    let Transport::Bosh { secure } = url.transport else {
        return Err(TransportError::Protocol("not a BOSH address"));
    };
    let default_port = if secure { 443 } else { 80 };
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let authority = if url.port == default_port {
        host
    } else {
        format!("{host}:{}", url.port)
    };
    let http = Http {
        host: url.host.clone(),
        port: url.port,
        secure,
        authority,
        path: url.path.clone(),
        tls,
        idle: Arc::new(Mutex::new(Vec::new())),
        max_body: config.max_body_bytes,
    };
    // Reach the server now, so that an unreachable server or an untrusted certificate is
    // reported as for the other transports; the connection is kept for the first request.
    let first = tokio::time::timeout(timeout, http.dial())
        .await
        .map_err(|_| TransportError::Connect(std::io::ErrorKind::TimedOut))?
        .map_err(|f| match f {
            Failure::Retry(e) | Failure::Fatal(e) => e,
        })?;
    http.keep(first);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::channel(256);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    // A random initial rid, far from 2^53 so it never wraps (XEP-0124 §7).
    let first_rid = (OsRng.next_u64() % (1u64 << 44)).saturating_add(1);
    let max_queued = config.max_queued_bytes;
    let driver = Driver {
        http,
        rate: Rate::new(config.requests_per_second, config.request_burst),
        params: Params {
            wait: Duration::from_secs(config.wait_secs),
            hold: 1,
            requests: 2,
            polling: Duration::from_secs(2),
        },
        config,
        limits,
        domain: domain.to_owned(),
        cmds: cmd_rx,
        incoming: in_tx,
        queued_bytes: Arc::clone(&queued_bytes),
        sid: None,
        next_rid: first_rid,
        next_to_process: first_rid,
        out: VecDeque::new(),
        in_flight: FuturesUnordered::new(),
        completed: BTreeMap::new(),
        writing: None,
        last_written: None,
        last_delivery: None,
        last_empty_poll: None,
        closing: None,
        ended: false,
    };
    tokio::spawn(driver.run());
    Ok(BoshTransport {
        cmds: cmd_tx,
        incoming: in_rx,
        queued_bytes,
        max_queued,
        created: false,
        failed: None,
    })
}

impl BoshTransport {
    fn command(&self, cmd: Cmd) -> Result<(), TransportError> {
        self.cmds.send(cmd).map_err(|_| TransportError::Closed)
    }

    async fn next_inner(&mut self) -> Result<Element, TransportError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.incoming.recv().await {
            Some(Ok(el)) => Ok(el),
            Some(Err(e)) => {
                self.failed = Some(e.clone());
                Err(e)
            }
            None => Err(TransportError::Closed),
        }
    }

    async fn open_inner(&mut self) -> Result<Element, TransportError> {
        if self.created {
            self.command(Cmd::Restart)?;
        } else {
            self.created = true;
            self.command(Cmd::Create)?;
        }
        let features = self.next_inner().await?;
        if !features.is("features", NS_STREAM) {
            return Err(TransportError::Protocol("expected stream features"));
        }
        Ok(features)
    }

    fn send_inner(&self, xml: String) -> Result<(), TransportError> {
        let len = xml.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > self.max_queued {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(BoshError::QueueFull.into());
        }
        self.command(Cmd::Send(xml))
    }
}

impl ElementStream for BoshTransport {
    fn open(&mut self) -> BoxFuture<'_, Result<Element, TransportError>> {
        Box::pin(self.open_inner())
    }

    fn send(&mut self, xml: String) -> BoxFuture<'_, Result<(), TransportError>> {
        let result = self.send_inner(xml);
        Box::pin(async move { result })
    }

    fn next(&mut self) -> BoxFuture<'_, Result<Element, TransportError>> {
        Box::pin(self.next_inner())
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if self.command(Cmd::Close(tx)).is_ok() {
                let _ = tokio::time::timeout(CLOSE_LIMIT + Duration::from_secs(1), rx).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParserLimits = ParserLimits {
        max_stanza_bytes: 1024,
        max_depth: 8,
    };

    #[test]
    fn bodies_parse_with_children_in_order() {
        let b = parse_body(
            b"<body xmlns='http://jabber.org/protocol/httpbind' \
              xmlns:stream='http://etherx.jabber.org/streams' sid='s' wait='5'>\
              <stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\
              <message xmlns='jabber:client' id='1'/></body>",
            LIMITS,
            10,
        )
        .unwrap();
        assert_eq!(b.root.attr("sid"), Some("s"));
        assert!(b.root.children().next().is_none());
        assert_eq!(b.children.len(), 2);
        assert!(b.children[0].is("features", NS_STREAM));
        assert!(b.children[1].is("message", "jabber:client"));
    }

    #[test]
    fn bad_bodies_are_refused_with_typed_errors() {
        let err = |bytes: &[u8], max| parse_body(bytes, LIMITS, max).unwrap_err();
        assert_eq!(
            err(b"<body xmlns='x'/>", 4),
            TransportError::Bosh(BoshError::NotABody)
        );
        assert_eq!(
            err(b"<body xmlns='http://jabber.org/protocol/httpbind'>", 4),
            TransportError::Bosh(BoshError::NotABody)
        );
        assert_eq!(
            err(
                b"<body xmlns='http://jabber.org/protocol/httpbind'><a/><b/><c/></body>",
                2
            ),
            TransportError::Bosh(BoshError::TooManyElements(2))
        );
        let big = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind'><a>{}</a></body>",
            "x".repeat(2000)
        );
        assert!(matches!(
            err(big.as_bytes(), 4),
            TransportError::Xml(crate::xml::XmlError::StanzaTooLarge { .. })
        ));
        let deep = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind'>{}{}</body>",
            "<a>".repeat(20),
            "</a>".repeat(20)
        );
        assert!(matches!(
            err(deep.as_bytes(), 4),
            TransportError::Xml(crate::xml::XmlError::TooDeep { .. })
        ));
        assert!(matches!(
            err(b"<!DOCTYPE x><body/>", 4),
            TransportError::Xml(_)
        ));
    }

    #[test]
    fn terminate_conditions_are_named_from_the_list_only() {
        let root = |c: &str| {
            parse_body(
                format!(
                    "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' \
                     condition='{c}'/>"
                )
                .as_bytes(),
                LIMITS,
                1,
            )
            .unwrap()
            .root
        };
        assert_eq!(condition_of(&root("item-not-found")), "item-not-found");
        assert_eq!(
            condition_of(&root("someone@example.org")),
            "undefined-condition"
        );
    }

    #[test]
    fn the_rate_limit_spaces_requests() {
        let mut rate = Rate::new(4, 2);
        let now = Instant::now();
        assert!(rate.available_at(now) <= now);
        rate.take();
        assert!(rate.available_at(now) <= now);
        rate.take();
        let next = rate.available_at(now);
        assert!(next > now && next <= now + Duration::from_millis(260));
    }
}
