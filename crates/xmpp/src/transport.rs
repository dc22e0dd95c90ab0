//! "An XML element stream over some framing": the [`ElementStream`] trait every connector
//! implements, and the TCP + STARTTLS connector.
//!
//! The session layer ([`crate::session`]) and the client task ([`crate::client`]) only see
//! an [`ElementStream`]: open (or restart) the XMPP stream and get the features, send a
//! serialized top-level element, receive the next top-level element. TCP frames that as
//! one long XML document (RFC 6120); WebSocket (RFC 7395) frames each element in its own
//! message with `<open/>`/`<close/>`; BOSH (XEP-0206) wraps elements in `<body/>` HTTP
//! requests. Those two connectors live in [`crate::websocket`] and [`crate::bosh`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::xml::{escape, ParserLimits, StreamParser, XmlError, XmlEvent};

/// A boxed, sendable future (keeps [`ElementStream`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The TLS namespace.
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// The stream error namespace.
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// How long [`ElementStream::close`] on TCP (and WebSocket) waits for the server's
/// closing tag.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// An XMPP element stream over some framing, already protected by TLS.
pub trait ElementStream: Send + std::fmt::Debug {
    /// Opens the XMPP stream (first time, or restart after SASL) and returns the
    /// `<stream:features/>` element.
    fn open(&mut self) -> BoxFuture<'_, Result<Element, TransportError>>;
    /// Sends one serialized top-level element.
    fn send(&mut self, xml: String) -> BoxFuture<'_, Result<(), TransportError>>;
    /// The next top-level element. Cancel-safe: dropping the future loses nothing.
    /// A `<stream:error/>` becomes [`TransportError::StreamError`], the end of the
    /// stream [`TransportError::Closed`].
    fn next(&mut self) -> BoxFuture<'_, Result<Element, TransportError>>;
    /// Closes the stream politely (best effort).
    fn close(&mut self) -> BoxFuture<'_, ()>;
    /// The RFC 9266 `tls-exporter` channel binding of the TLS connection this stream runs
    /// on, when it runs on exactly one (TCP after STARTTLS, `wss://`); `None` otherwise
    /// (plain `ws://`, BOSH over several HTTP connections).
    fn channel_binding(&self) -> Option<[u8; 32]> {
        None
    }
}

/// The `tls-exporter` value of a client TLS connection (label `EXPORTER-Channel-Binding`,
/// no context, 32 bytes).
pub(crate) fn exporter(conn: &rustls::ClientConnection) -> Option<[u8; 32]> {
    let mut out = [0u8; cryptocat_protocol::keyauth::EXPORTER_BYTES];
    conn.export_keying_material(&mut out, cryptocat_protocol::keyauth::EXPORTER_LABEL, None)
        .ok()?;
    Some(out)
}

/// Why a TLS handshake failed. No names; a refused certificate says why and which key it
/// held (a public pin).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The server's certificate was refused (by the pins or the certificate authorities).
    #[error("{0}")]
    Certificate(crate::tls::Refusal),
    /// The host or domain cannot be a TLS server name.
    #[error("the server's name cannot be used for TLS")]
    InvalidName,
    /// The handshake failed for another reason.
    #[error("TLS handshake failed")]
    Handshake,
}

/// Why the element stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// TCP connection refused or unreachable.
    #[error("cannot connect to the server: {0}")]
    Connect(std::io::ErrorKind),
    /// The host name did not resolve.
    #[error("the server's host name did not resolve")]
    Resolve,
    /// The TLS handshake failed.
    #[error("{0}")]
    Tls(TlsFailure),
    /// The server does not offer STARTTLS (we never continue without TLS).
    #[error("the server does not offer STARTTLS")]
    StartTlsUnavailable,
    /// Reading or writing failed.
    #[error("connection error: {0}")]
    Io(std::io::ErrorKind),
    /// The server sent bad XML or broke a limit.
    #[error("the server sent bad XML: {0}")]
    Xml(XmlError),
    /// The server closed the stream with a stream error.
    #[error("the server closed the stream: {condition}")]
    StreamError {
        /// The RFC 6120 condition (`policy-violation`, `conflict`, ...).
        condition: String,
    },
    /// The stream ended.
    #[error("the connection was closed")]
    Closed,
    /// The server broke the protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(&'static str),
    /// The BOSH session failed (XEP-0124).
    #[error("{0}")]
    Bosh(crate::bosh::BoshError),
}

/// Builds the stream header for `domain`.
fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
        escape(domain)
    )
}

pub(crate) fn stream_error_condition(el: &Element) -> String {
    el.children()
        .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned())
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// TCP + STARTTLS (RFC 6120). After [`connect_tcp`] returns, TLS is established and the
/// next [`ElementStream::open`] opens the stream inside it.
pub struct TcpTransport {
    io: Io,
    domain: String,
    limits: ParserLimits,
    parser: StreamParser,
    queue: VecDeque<XmlEvent>,
    buf: Vec<u8>,
    ended: bool,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("tls", &matches!(self.io, Io::Tls(_)))
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn tls_failure(e: &std::io::Error) -> TransportError {
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return TransportError::Tls(TlsFailure::Handshake);
    };
    TransportError::Tls(match crate::tls::refusal_of(err) {
        Some(refusal) => TlsFailure::Certificate(refusal),
        None => TlsFailure::Handshake,
    })
}

/// Connects over TCP to `host:port`, negotiates STARTTLS for `domain` (the certificate
/// must be valid for `domain`) with `tls`, and returns the protected transport. Bounded by
/// `timeout` as a whole.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    domain: &str,
    tls: Arc<rustls::ClientConfig>,
    limits: ParserLimits,
    timeout: Duration,
) -> Result<TcpTransport, TransportError> {
    tokio::time::timeout(timeout, connect_tcp_inner(host, port, domain, tls, limits))
        .await
        .map_err(|_| TransportError::Connect(std::io::ErrorKind::TimedOut))?
}

/// Resolves `host` and connects to the first address that answers.
pub(crate) async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, TransportError> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| TransportError::Resolve)?
        .collect();
    let mut last = TransportError::Resolve;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = TransportError::Connect(e.kind()),
        }
    }
    Err(last)
}

async fn connect_tcp_inner(
    host: &str,
    port: u16,
    domain: &str,
    tls: Arc<rustls::ClientConfig>,
    limits: ParserLimits,
) -> Result<TcpTransport, TransportError> {
    let tcp = tcp_connect(host, port).await?;
    let mut t = TcpTransport {
        io: Io::Plain(tcp),
        domain: domain.to_owned(),
        limits,
        parser: StreamParser::new(limits),
        queue: VecDeque::new(),
        buf: vec![0u8; 16 * 1024],
        ended: false,
    };
    let features = t.open_inner().await?;
    if features.get_child("starttls", NS_TLS).is_none() {
        return Err(TransportError::StartTlsUnavailable);
    }
    t.write(format!("<starttls xmlns='{NS_TLS}'/>")).await?;
    let reply = t.next_inner().await?;
    if !reply.is("proceed", NS_TLS) {
        return Err(TransportError::StartTlsUnavailable);
    }
    // Anything the server sent after <proceed/> in clear is discarded with the parser.
    let Io::Plain(tcp) = std::mem::replace(&mut t.io, Io::Gone) else {
        return Err(TransportError::Protocol("TLS already established"));
    };
    let name = rustls_pki_types::ServerName::try_from(domain.to_owned())
        .map_err(|_| TransportError::Tls(TlsFailure::InvalidName))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_failure(&e))?;
    t.io = Io::Tls(Box::new(stream));
    Ok(t)
}

impl TcpTransport {
    async fn write(&mut self, xml: String) -> Result<(), TransportError> {
        let r = match &mut self.io {
            Io::Plain(s) => s.write_all(xml.as_bytes()).await,
            Io::Tls(s) => match s.write_all(xml.as_bytes()).await {
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
            Io::Gone => return Err(TransportError::Closed),
        };
        r.map_err(|e| TransportError::Io(e.kind()))
    }

    async fn open_inner(&mut self) -> Result<Element, TransportError> {
        self.parser = StreamParser::new(self.limits);
        self.queue.clear();
        self.ended = false;
        let header = stream_header(&self.domain);
        self.write(header).await?;
        let features = self.next_inner().await?;
        if !features.is("features", crate::xml::NS_STREAM) {
            return Err(TransportError::Protocol("expected stream features"));
        }
        Ok(features)
    }

    async fn next_inner(&mut self) -> Result<Element, TransportError> {
        loop {
            match self.queue.pop_front() {
                Some(XmlEvent::StreamOpen(_)) => continue,
                Some(XmlEvent::StreamClose) => {
                    self.ended = true;
                    return Err(TransportError::Closed);
                }
                Some(XmlEvent::Stanza(el)) => {
                    if el.is("error", crate::xml::NS_STREAM) {
                        self.ended = true;
                        return Err(TransportError::StreamError {
                            condition: stream_error_condition(&el),
                        });
                    }
                    return Ok(el);
                }
                None => {}
            }
            if self.ended {
                return Err(TransportError::Closed);
            }
            let n = match &mut self.io {
                Io::Plain(s) => s.read(&mut self.buf).await,
                Io::Tls(s) => s.read(&mut self.buf).await,
                Io::Gone => Ok(0),
            }
            .map_err(|e| TransportError::Io(e.kind()))?;
            if n == 0 {
                self.ended = true;
                return Err(TransportError::Closed);
            }
            let events = self
                .parser
                .feed(self.buf.get(..n).unwrap_or_default())
                .map_err(TransportError::Xml)?;
            self.queue.extend(events);
        }
    }
}

impl ElementStream for TcpTransport {
    fn channel_binding(&self) -> Option<[u8; 32]> {
        match &self.io {
            Io::Tls(stream) => exporter(stream.get_ref().1),
            Io::Plain(_) | Io::Gone => None,
        }
    }

    fn open(&mut self) -> BoxFuture<'_, Result<Element, TransportError>> {
        Box::pin(self.open_inner())
    }

    fn send(&mut self, xml: String) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(self.write(xml))
    }

    fn next(&mut self) -> BoxFuture<'_, Result<Element, TransportError>> {
        Box::pin(self.next_inner())
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let closed = self.write("</stream:stream>".to_owned()).await;
            if closed.is_ok() && !self.ended {
                // RFC 6120 section 4.4: wait (briefly) for the server's closing tag,
                // reading what it still sends. Dropping the socket with data unread makes
                // the kernel reset the connection, and the server may then fail before it
                // has handled the last stanzas we sent.
                let drain = async { while self.next_inner().await.is_ok() {} };
                let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
            }
            if let Io::Tls(s) = &mut self.io {
                let _ = tokio::time::timeout(Duration::from_millis(500), s.shutdown()).await;
            }
            self.io = Io::Gone;
        })
    }
}
