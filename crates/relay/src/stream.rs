//! One client-to-server XML stream (RFC 6120) as a sans-IO state machine.
//!
//! The shell feeds it bytes with [`C2s::handle_bytes`] and drains [`Output`]s with
//! [`C2s::poll_output`]: bytes to write, "switch to TLS now", "pause before going on",
//! stanzas for other sessions, "close". Time comes in as an argument. The same machine can
//! later sit behind BOSH or WebSocket framing: they deliver the same XML.
//!
//! Negotiation, in order: stream header, STARTTLS (required: anything else first is a
//! `policy-violation` stream error), stream restart, in-band registration (XEP-0077)
//! and/or SASL SCRAM-SHA-256, stream restart, resource binding (or, on TCP and WebSocket, XEP-0198
//! `<resume/>` of a detached session: [`Output::Resume`], answered by the shell). Then
//! stanzas are routed through the [`Hub`], counted and kept until acknowledged once the
//! client enabled stream management.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jid::FullJid;
use minidom::Element;

use cryptocat_protocol::keyauth::{self as key, ChannelBinding, KeyAuthError};

use crate::config::Limits;
use crate::hub::{
    lock, normalize_username, Delivery, ErrorReply, Hub, RegisterError, SessionId, NS_DISCO_INFO,
    NS_DISCO_ITEMS,
};
use crate::keyauth::{self, AwaitingSignature};
use crate::scram::{self, AwaitingFinal, Credentials, ScramError};
use crate::stanza::{IqKind, IqStanza, Stanza, StanzaError};
use crate::xml::{self, Out, ParserLimits, StreamParser, XmlError, XmlEvent};

/// STARTTLS namespace.
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL namespace.
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding namespace.
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Legacy session namespace.
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// In-band registration.
pub const NS_REGISTER: &str = "jabber:iq:register";
/// In-band registration stream feature.
pub const NS_REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// XEP-0199.
pub const NS_PING: &str = "urn:xmpp:ping";
/// Roster (answered empty: there are no rosters).
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// XEP-0198 stream management.
pub const NS_SM: &str = "urn:xmpp:sm:3";
/// Stanza error namespace (XEP-0198 `<failed/>` conditions).
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// The server asks for an acknowledgement after this many stanzas.
pub const SM_REQUEST_EVERY: u32 = 8;

/// Something for the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Send(String),
    /// Everything before this has been written: start the TLS handshake now.
    StartTls,
    /// Wait this long before writing what follows and before reading more.
    Pause(Duration),
    /// Hand these stanzas to other sessions.
    Deliver(Vec<Delivery>),
    /// Close the connection after writing what came before.
    Close,
    /// XEP-0198: the authenticated client asks to resume the detached session `previd`,
    /// having handled `h` stanzas of it. The shell looks it up and answers with
    /// [`C2s::resumed`] or [`C2s::resume_failed`].
    Resume {
        /// The resumption id the client names.
        previd: String,
        /// The client's handled count.
        h: u32,
        /// The authenticated account (the session must belong to it).
        user: String,
    },
}

/// XEP-0198 state of one stream-managed session.
struct Sm {
    /// Resumption id (`None`: acknowledgements only, no resumption).
    id: Option<String>,
    /// Stanzas received from the client and handled.
    inbound: u32,
    /// Stanzas sent to the client (its `h` counts up to this).
    sent: u32,
    /// The client's last acknowledged count.
    acked: u32,
    /// Stanzas sent and not yet acknowledged, oldest first.
    unacked: VecDeque<String>,
    /// Their bytes (bounded by `outbox_bytes`).
    unacked_bytes: usize,
}

impl Sm {
    fn push(&mut self, xml: String) {
        self.unacked_bytes = self.unacked_bytes.saturating_add(xml.len());
        self.unacked.push_back(xml);
    }

    /// Forgets the oldest `newly` stanzas (acknowledged); at most all of them.
    fn acknowledged(&mut self, newly: usize) {
        for xml in self.unacked.drain(..newly.min(self.unacked.len())) {
            self.unacked_bytes = self.unacked_bytes.saturating_sub(xml.len());
        }
    }
}

/// A stream-managed session whose connection broke, as the shell keeps it for
/// resumption (XEP-0198). Its outbox and room memberships live on in the shell and hub.
pub struct Detached {
    /// The resumption id.
    pub id: String,
    /// The account it belongs to (only that account may resume it).
    pub user: String,
    jid: FullJid,
    sm: Sm,
}

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detached")
            .field("unacked", &self.sm.unacked.len())
            .finish_non_exhaustive()
    }
}

/// How the stream's XML is framed on the wire, which decides how stream headers, the
/// stream end and stream errors are written. Stanzas are written the same way for all;
/// the WebSocket and BOSH shells make each one standalone ([`crate::framing::standalone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6120 over TCP: `<stream:stream>` headers, STARTTLS.
    Tcp,
    /// RFC 7395: `<open/>` and `<close/>` in the framing namespace.
    WebSocket,
    /// XEP-0124/0206: headers live in the `<body/>` wrapper, written by the BOSH shell.
    Bosh,
}

/// The RFC 7395 framing namespace.
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Randomness the machine needs (nonces, stream ids, resources), injected so tests can
/// fix it.
pub trait Entropy: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's generator.
#[derive(Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        use rand_core::RngCore as _;
        rand_core::OsRng.fill_bytes(buf);
    }
}

enum Auth {
    None,
    Scram(Box<AwaitingFinal>),
    Key(Box<AwaitingSignature>),
    Authenticated(String),
    Bound(FullJid),
}

/// Token bucket for the per-connection stanza rate.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    /// Takes one token; returns how long to wait if the budget is spent.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / self.rate))
        }
    }
}

/// The state machine of one client connection.
pub struct C2s {
    id: SessionId,
    peer: IpAddr,
    domain: String,
    limits: Limits,
    secret: [u8; 32],
    entropy: Box<dyn Entropy>,
    parser: StreamParser,
    header_seen: bool,
    tls: bool,
    framing: Framing,
    auth: Auth,
    /// Authenticated with `X-CRYPTOCAT-KEY` (the localpart is derived from the key).
    key_bound: bool,
    /// This stream's channel binding (the TLS exporter where this process holds the TLS).
    binding: ChannelBinding,
    auth_failures: u32,
    bucket: Bucket,
    out: VecDeque<Output>,
    /// Waiting for the TLS handshake: no more plaintext input is processed.
    awaiting_tls: bool,
    /// The rest of the current read belongs to a stream that was just replaced.
    discard_rest: bool,
    closed: bool,
    /// XEP-0198, once enabled.
    sm: Option<Sm>,
    /// When the connection was admitted: negotiation must end by this plus
    /// `negotiation_timeout`, however slowly the client trickles bytes.
    started: Instant,
}

impl std::fmt::Debug for C2s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C2s")
            .field("id", &self.id)
            .field("tls", &self.tls)
            .field("bound", &matches!(self.auth, Auth::Bound(_)))
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn parser_limits(limits: &Limits) -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: limits.max_stanza_bytes,
        max_depth: limits.max_depth,
    }
}

impl C2s {
    /// A new connection, already admitted by [`Hub::connect`].
    pub fn new(
        id: SessionId,
        peer: IpAddr,
        domain: &str,
        limits: Limits,
        secret: [u8; 32],
        entropy: Box<dyn Entropy>,
        now: Instant,
    ) -> Self {
        let bucket = Bucket {
            tokens: f64::from(limits.stanza_burst),
            rate: f64::from(limits.stanzas_per_second.max(1)),
            burst: f64::from(limits.stanza_burst.max(1)),
            last: now,
        };
        Self {
            id,
            peer,
            domain: domain.to_owned(),
            parser: StreamParser::new(parser_limits(&limits)),
            limits,
            secret,
            entropy,
            header_seen: false,
            tls: false,
            framing: Framing::Tcp,
            auth: Auth::None,
            key_bound: false,
            binding: ChannelBinding::None,
            auth_failures: 0,
            bucket,
            out: VecDeque::new(),
            awaiting_tls: false,
            discard_rest: false,
            closed: false,
            sm: None,
            started: now,
        }
    }

    /// Puts the machine behind WebSocket or BOSH framing. There TLS belongs to the HTTP
    /// layer: STARTTLS is never offered, and `secure` says whether the channel counts as
    /// confidential (HTTPS, loopback, or a trusted TLS-terminating proxy). On an insecure
    /// channel no authentication or registration is accepted: `<auth>` gets
    /// `<encryption-required/>` and every element a `policy-violation` stream error.
    #[must_use]
    pub fn with_framing(mut self, framing: Framing, secure: bool) -> Self {
        self.framing = framing;
        self.tls = secure;
        self
    }

    /// Sets the RFC 9266 `tls-exporter` value of the TLS connection this stream runs on,
    /// which `X-CRYPTOCAT-KEY` signatures must then cover. Unset (BOSH, plain HTTP behind a
    /// proxy) the mechanism binds domain and nonce only.
    pub fn set_channel_binding(&mut self, exporter: [u8; key::EXPORTER_BYTES]) {
        self.binding = ChannelBinding::TlsExporter(exporter);
    }

    /// Whether the stream authenticated with `X-CRYPTOCAT-KEY`.
    pub fn is_key_bound(&self) -> bool {
        self.key_bound
    }

    /// The framing of this stream.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// This connection's session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Whether the stream is bound (authenticated with a resource).
    pub fn is_bound(&self) -> bool {
        matches!(self.auth, Auth::Bound(_))
    }

    /// Whether the machine has asked for the connection to close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// How long the connection may stay silent.
    pub fn idle_timeout(&self) -> Duration {
        if self.is_bound() {
            self.limits.idle_timeout()
        } else {
            self.limits.negotiation_timeout()
        }
    }

    /// How long the shell may wait for the next read before calling
    /// [`Self::handle_timeout`]: the idle timeout once bound; before that, what is left of
    /// the negotiation deadline counted from admission, so a client that trickles a byte
    /// now and then (a slowloris) cannot hold an unauthenticated connection open.
    pub fn read_timeout(&self, now: Instant) -> Duration {
        if self.is_bound() {
            self.limits.idle_timeout()
        } else {
            self.limits
                .negotiation_timeout()
                .saturating_sub(now.saturating_duration_since(self.started))
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn send(&mut self, xml: impl Into<String>) {
        let xml = xml.into();
        if let Some(sm) = &mut self.sm {
            if is_stanza(&xml) {
                sm.sent = sm.sent.wrapping_add(1);
                sm.push(xml.clone());
                let over = sm.unacked.len() > self.limits.sm_max_unacked
                    || sm.unacked_bytes > self.limits.outbox_bytes;
                let ask = sm.sent % SM_REQUEST_EVERY == 0;
                self.out.push_back(Output::Send(xml));
                if over {
                    self.fail("resource-constraint", "too many unacknowledged stanzas");
                } else if ask {
                    self.out
                        .push_back(Output::Send(Out::ns("r", NS_SM).to_xml()));
                }
                return;
            }
        }
        self.out.push_back(Output::Send(xml));
    }

    /// A stanza another session routed to this one (from the shell's outbox): written,
    /// and counted under stream management.
    pub fn outgoing(&mut self, xml: String) {
        if !self.closed {
            self.send(xml);
        }
    }

    /// The connection broke: if stream management with resumption is on and the stream
    /// ended neither cleanly nor with a stream error, the session's state for a later
    /// resumption. `None`: the session ends now.
    pub fn detach(&mut self) -> Option<Detached> {
        if self.closed || self.limits.sm_resume_secs == 0 {
            return None;
        }
        let Auth::Bound(jid) = &self.auth else {
            return None;
        };
        let sm = self.sm.take()?;
        let id = sm.id.clone()?;
        self.closed = true;
        Some(Detached {
            id,
            user: jid
                .node()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            jid: jid.clone(),
            sm,
        })
    }

    /// The resumption id and account of this stream, once stream management with
    /// resumption is enabled on a bound stream (the shell registers it so that a
    /// `<resume/>` arriving before it noticed the connection broke can take it over).
    pub fn resumable(&self) -> Option<(&str, &str)> {
        let Auth::Bound(jid) = &self.auth else {
            return None;
        };
        let id = self.sm.as_ref()?.id.as_deref()?;
        Some((id, jid.node().map(|n| n.as_str()).unwrap_or_default()))
    }

    /// The shell found the detached session for [`Output::Resume`]: this stream takes it
    /// over (its session id, bound JID and counters), answers `<resumed/>` and resends
    /// what the client had not acknowledged.
    pub fn resumed(&mut self, id: SessionId, detached: Detached, h: u32) {
        let Detached {
            id: previd,
            jid,
            mut sm,
            ..
        } = detached;
        let newly = h.wrapping_sub(sm.acked) as usize;
        if newly > sm.unacked.len() {
            self.auth = Auth::Bound(jid);
            self.id = id;
            return self.fail("undefined-condition", "acknowledged more than was sent");
        }
        sm.acknowledged(newly);
        sm.acked = h;
        tracing::info!(session = id.0, resent = sm.unacked.len(), "stream resumed");
        self.id = id;
        self.auth = Auth::Bound(jid);
        self.out.push_back(Output::Send(
            Out::ns("resumed", NS_SM)
                .attr("h", sm.inbound.to_string())
                .attr("previd", previd)
                .to_xml(),
        ));
        for xml in &sm.unacked {
            self.out.push_back(Output::Send(xml.clone()));
        }
        if !sm.unacked.is_empty() {
            self.out
                .push_back(Output::Send(Out::ns("r", NS_SM).to_xml()));
        }
        self.sm = Some(sm);
    }

    /// The shell has no detached session for [`Output::Resume`] (unknown, expired, or
    /// another account's): `<failed/>`; the client may bind a new resource.
    pub fn resume_failed(&mut self) {
        self.out.push_back(Output::Send(
            Out::ns("failed", NS_SM)
                .child(Out::ns("item-not-found", NS_STANZAS))
                .to_xml(),
        ));
    }

    /// XEP-0198 elements of a bound stream; `true` when `el` was one.
    fn stream_management(&mut self, el: &Element) -> bool {
        if el.ns() != NS_SM {
            return false;
        }
        match el.name() {
            "enable" => {
                if self.sm.is_some() || self.framing == Framing::Bosh {
                    self.send(
                        Out::ns("failed", NS_SM)
                            .child(Out::ns("unexpected-request", NS_STANZAS))
                            .to_xml(),
                    );
                    return true;
                }
                let resume = matches!(el.attr("resume"), Some("true" | "1"))
                    && self.limits.sm_resume_secs > 0;
                let mut enabled = Out::ns("enabled", NS_SM);
                let id = if resume {
                    let mut b = [0u8; 16];
                    self.entropy.fill(&mut b);
                    let id = hex::encode(b);
                    enabled = enabled
                        .attr("id", id.clone())
                        .attr("resume", "true")
                        .attr("max", self.limits.sm_resume_secs.to_string());
                    Some(id)
                } else {
                    None
                };
                self.send(enabled.to_xml());
                self.sm = Some(Sm {
                    id,
                    inbound: 0,
                    sent: 0,
                    acked: 0,
                    unacked: VecDeque::new(),
                    unacked_bytes: 0,
                });
            }
            "r" => {
                if let Some(sm) = &self.sm {
                    let a = Out::ns("a", NS_SM).attr("h", sm.inbound.to_string());
                    self.send(a.to_xml());
                }
            }
            "a" => {
                let Some(sm) = &mut self.sm else { return true };
                let Some(h) = el.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
                    self.fail("bad-format", "an acknowledgement needs h");
                    return true;
                };
                let newly = h.wrapping_sub(sm.acked) as usize;
                if newly > sm.unacked.len() {
                    self.fail("undefined-condition", "acknowledged more than was sent");
                    return true;
                }
                sm.acknowledged(newly);
                sm.acked = h;
            }
            _ => self.fail(
                "unsupported-stanza-type",
                "unknown stream management element",
            ),
        }
        true
    }

    /// Ends the stream with a stream error (RFC 6120 section 4.9).
    pub fn fail(&mut self, condition: &'static str, text: &str) {
        if self.closed {
            return;
        }
        if !self.header_seen {
            self.send_header();
        }
        tracing::debug!(session = self.id.0, condition, "stream error");
        match self.framing {
            Framing::Tcp => self.send(xml::stream_error(condition, text)),
            Framing::WebSocket => {
                self.send(xml::stream_error_element(condition, text));
                self.send(Out::ns("close", NS_FRAMING).to_xml());
            }
            Framing::Bosh => self.send(xml::stream_error_element(condition, text)),
        }
        self.out.push_back(Output::Close);
        self.closed = true;
    }

    /// The read timed out.
    pub fn handle_timeout(&mut self) {
        self.fail("connection-timeout", "idle for too long");
    }

    /// The TLS handshake completed: the client restarts the stream.
    pub fn tls_established(&mut self) {
        self.tls = true;
        self.awaiting_tls = false;
        self.restart();
    }

    fn restart(&mut self) {
        self.parser = StreamParser::new(parser_limits(&self.limits));
        self.header_seen = false;
        self.discard_rest = true;
    }

    fn send_header(&mut self) {
        let id = self.random_id();
        match self.framing {
            Framing::Tcp => self.send(xml::stream_header(&self.domain, &id)),
            Framing::WebSocket => self.send(
                Out::ns("open", NS_FRAMING)
                    .attr("id", id)
                    .attr("from", self.domain.clone())
                    .attr("version", "1.0")
                    .attr("xml:lang", "en")
                    .to_xml(),
            ),
            Framing::Bosh => {}
        }
    }

    fn random_id(&mut self) -> String {
        let mut b = [0u8; 12];
        self.entropy.fill(&mut b);
        hex::encode(b)
    }

    /// Feeds bytes read from the client.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8], hub: &Mutex<Hub>) {
        if self.closed || self.awaiting_tls {
            return;
        }
        self.discard_rest = false;
        let events = match self.parser.feed(bytes) {
            Ok(events) => events,
            Err(e) => {
                let (condition, text) = match e {
                    XmlError::StanzaTooLarge { .. } => ("policy-violation", "stanza too large"),
                    XmlError::TooDeep { .. } => ("policy-violation", "elements nested too deeply"),
                    XmlError::NotWellFormed => ("not-well-formed", "XML not well-formed"),
                    XmlError::TextAtTopLevel => ("bad-format", "text outside of stanzas"),
                };
                // Stanzas completed in the same read as the error are dropped with it.
                self.fail(condition, text);
                return;
            }
        };
        for event in events {
            if self.closed || self.awaiting_tls || self.discard_rest {
                break;
            }
            match event {
                XmlEvent::StreamOpen(header) => self.stream_open(header),
                XmlEvent::StreamClose => {
                    match self.framing {
                        Framing::Tcp => self.send("</stream:stream>"),
                        Framing::WebSocket => self.send(Out::ns("close", NS_FRAMING).to_xml()),
                        Framing::Bosh => {}
                    }
                    self.out.push_back(Output::Close);
                    self.closed = true;
                }
                XmlEvent::Stanza(el) => {
                    if let Some(wait) = self.bucket.take(now) {
                        self.out.push_back(Output::Pause(wait));
                    }
                    self.element(now, &el, hub);
                }
            }
        }
    }

    fn stream_open(&mut self, header: xml::StreamHeader) {
        self.header_seen = true;
        self.send_header();
        if !header.is_stream {
            return self.fail("invalid-namespace", "expected a stream header");
        }
        if header.to.as_deref() != Some(self.domain.as_str()) {
            return self.fail("host-unknown", "this server does not serve that domain");
        }
        if header.version.as_deref() != Some("1.0") {
            return self.fail("unsupported-version", "version 1.0 is required");
        }
        let features = match &self.auth {
            _ if !self.tls && self.framing != Framing::Tcp => Out::new("stream:features"),
            _ if !self.tls => Out::new("stream:features")
                .child(Out::ns("starttls", NS_TLS).child(Out::new("required"))),
            Auth::None | Auth::Scram(_) | Auth::Key(_) => Out::new("stream:features")
                .child(
                    Out::ns("mechanisms", NS_SASL)
                        .child(Out::new("mechanism").text(key::MECHANISM))
                        .child(Out::new("mechanism").text("SCRAM-SHA-256")),
                )
                .child(Out::ns("register", NS_REGISTER_FEATURE)),
            Auth::Authenticated(_) | Auth::Bound(_) => {
                let f = Out::new("stream:features")
                    .child(Out::ns("bind", NS_BIND))
                    .child(Out::ns("session", NS_SESSION).child(Out::new("optional")));
                // Resumption needs a connection that can break and come back: TCP or
                // WebSocket. (A BOSH session already survives broken HTTP connections.)
                if self.framing != Framing::Bosh {
                    f.child(Out::ns("sm", NS_SM))
                } else {
                    f
                }
            }
        };
        self.send(features.to_xml());
    }

    fn element(&mut self, now: Instant, el: &Element, hub: &Mutex<Hub>) {
        if !self.tls && self.framing != Framing::Tcp {
            if el.is("auth", NS_SASL) {
                self.send(
                    Out::ns("failure", NS_SASL)
                        .child(Out::new("encryption-required"))
                        .to_xml(),
                );
            }
            return self.fail(
                "policy-violation",
                "this HTTP channel is not secure: use HTTPS",
            );
        }
        if !self.tls {
            if el.is("starttls", NS_TLS) {
                self.send(Out::ns("proceed", NS_TLS).to_xml());
                self.out.push_back(Output::StartTls);
                // Nothing the client sent after <starttls/> in the clear may be used.
                self.awaiting_tls = true;
                return;
            }
            if el.is("auth", NS_SASL) {
                self.send(
                    Out::ns("failure", NS_SASL)
                        .child(Out::new("encryption-required"))
                        .to_xml(),
                );
            }
            return self.fail("policy-violation", "STARTTLS is required first");
        }
        match &self.auth {
            Auth::None | Auth::Scram(_) | Auth::Key(_) => self.unauthenticated(now, el, hub),
            Auth::Authenticated(_) => self.binding(el, hub),
            Auth::Bound(_) => self.bound(el, hub),
        }
    }

    fn sasl_failure(&mut self, now: Instant, condition: &'static str, hub: &Mutex<Hub>) {
        self.auth = Auth::None;
        self.auth_failures += 1;
        let delay = lock(hub).auth_failed(self.peer, now);
        tracing::info!(session = self.id.0, "authentication failed");
        self.out.push_back(Output::Pause(delay));
        self.send(
            Out::ns("failure", NS_SASL)
                .child(Out::new(condition))
                .to_xml(),
        );
        if self.auth_failures >= self.limits.auth_failures_per_connection {
            self.fail("policy-violation", "too many authentication failures");
        }
    }

    fn unauthenticated(&mut self, now: Instant, el: &Element, hub: &Mutex<Hub>) {
        if el.is("auth", NS_SASL) {
            let mechanism = el.attr("mechanism");
            if mechanism != Some("SCRAM-SHA-256") && mechanism != Some(key::MECHANISM) {
                return self.sasl_failure(now, "invalid-mechanism", hub);
            }
            let Ok(data) = decode_sasl(&el.text()) else {
                return self.sasl_failure(now, "incorrect-encoding", hub);
            };
            if mechanism == Some(key::MECHANISM) {
                let binding = self.binding;
                return match keyauth::start(&data, &self.domain, binding, self.entropy.as_mut()) {
                    Ok((state, challenge)) => {
                        self.auth = Auth::Key(Box::new(state));
                        self.send(
                            Out::ns("challenge", NS_SASL)
                                .text(STANDARD.encode(challenge))
                                .to_xml(),
                        );
                    }
                    Err(_) => self.sasl_failure(now, "malformed-request", hub),
                };
            }
            let mut nonce = [0u8; 18];
            self.entropy.fill(&mut nonce);
            let nonce = STANDARD.encode(nonce);
            let domain = self.domain.clone();
            let result = scram::server_first(
                &data,
                |u| normalize_username(&domain, u),
                |u| lock(hub).credentials(u),
                &self.secret,
                &nonce,
            );
            match result {
                Ok((state, first)) => {
                    self.auth = Auth::Scram(Box::new(state));
                    self.send(
                        Out::ns("challenge", NS_SASL)
                            .text(STANDARD.encode(first))
                            .to_xml(),
                    );
                }
                Err(ScramError::Malformed) => self.sasl_failure(now, "malformed-request", hub),
                Err(_) => self.sasl_failure(now, "not-authorized", hub),
            }
            return;
        }
        if el.is("response", NS_SASL) {
            let state = match std::mem::replace(&mut self.auth, Auth::None) {
                Auth::Scram(state) => state,
                Auth::Key(state) => return self.key_response(now, *state, &el.text(), hub),
                _ => return self.sasl_failure(now, "malformed-request", hub),
            };
            let Ok(data) = decode_sasl(&el.text()) else {
                return self.sasl_failure(now, "incorrect-encoding", hub);
            };
            match state.finish(&data) {
                Ok((user, last)) => {
                    tracing::info!(session = self.id.0, "authenticated");
                    self.send(
                        Out::ns("success", NS_SASL)
                            .text(STANDARD.encode(last))
                            .to_xml(),
                    );
                    self.auth = Auth::Authenticated(user);
                    self.restart(); // the rest of this read belongs to the old stream
                }
                Err(ScramError::Malformed) => self.sasl_failure(now, "malformed-request", hub),
                Err(_) => self.sasl_failure(now, "not-authorized", hub),
            }
            return;
        }
        if el.is("abort", NS_SASL) {
            self.auth = Auth::None;
            self.send(
                Out::ns("failure", NS_SASL)
                    .child(Out::new("aborted"))
                    .to_xml(),
            );
            return;
        }
        match Stanza::parse(el) {
            Ok(Stanza::Iq(iq))
                if iq
                    .child
                    .as_ref()
                    .is_some_and(|c| c.is("query", NS_REGISTER)) =>
            {
                self.register(now, &iq, hub)
            }
            Ok(Stanza::Iq(iq)) if matches!(iq.kind, IqKind::Get | IqKind::Set) => {
                self.send(self.iq_error(&iq, "auth", "not-authorized"))
            }
            _ => self.fail("not-authorized", "authenticate first"),
        }
    }

    /// client-final of `X-CRYPTOCAT-KEY`: the state (and its nonce) is gone whatever the
    /// outcome. Success carries the bound localpart.
    fn key_response(
        &mut self,
        now: Instant,
        state: AwaitingSignature,
        text: &str,
        hub: &Mutex<Hub>,
    ) {
        let Ok(data) = decode_sasl(text) else {
            return self.sasl_failure(now, "incorrect-encoding", hub);
        };
        match state.finish(&self.domain, &data) {
            Ok(user) => {
                tracing::info!(session = self.id.0, "authenticated with a key");
                self.send(
                    Out::ns("success", NS_SASL)
                        .text(STANDARD.encode(user.as_bytes()))
                        .to_xml(),
                );
                self.auth = Auth::Authenticated(user);
                self.key_bound = true;
                self.restart();
            }
            Err(KeyAuthError::Malformed(_)) => self.sasl_failure(now, "malformed-request", hub),
            Err(_) => self.sasl_failure(now, "not-authorized", hub),
        }
    }

    fn iq_error(&self, iq: &IqStanza, kind: &'static str, condition: &'static str) -> String {
        ErrorReply {
            stanza: "iq",
            from: &self.domain,
            to: &self.peer_jid(),
            id: Some(&iq.id),
            kind,
            condition,
            text: None,
        }
        .to_xml()
    }

    fn peer_jid(&self) -> String {
        match &self.auth {
            Auth::Bound(j) => j.to_string(),
            _ => String::new(),
        }
    }

    fn iq_result(&self, iq: &IqStanza, child: Option<Out>) -> String {
        let mut el = Out::new("iq")
            .attr("type", "result")
            .attr("id", iq.id.as_str())
            .attr(
                "from",
                iq.to
                    .as_ref()
                    .map_or(self.domain.clone(), |t| t.to_string()),
            );
        if let Auth::Bound(j) = &self.auth {
            el = el.attr("to", j.as_str());
        }
        if let Some(c) = child {
            el = el.child(c);
        }
        el.to_xml()
    }

    fn register(&mut self, now: Instant, iq: &IqStanza, hub: &Mutex<Hub>) {
        let Some(query) = &iq.child else { return };
        match iq.kind {
            IqKind::Get => {
                let form = Out::ns("query", NS_REGISTER)
                    .child(Out::new("instructions").text("Choose a username and password."))
                    .child(Out::new("username"))
                    .child(Out::new("password"));
                self.send(self.iq_result(iq, Some(form)));
            }
            IqKind::Set => {
                let field = |name: &str| query.get_child(name, NS_REGISTER).map(Element::text);
                let result = match (field("username"), field("password")) {
                    (Some(u), Some(p)) => self.try_register(now, &u, &p, hub),
                    _ => Err(RegisterError::NotAcceptable),
                };
                let reply = match result {
                    Ok(()) => {
                        tracing::info!(session = self.id.0, "account registered");
                        self.iq_result(iq, None)
                    }
                    Err(RegisterError::Conflict) => self.iq_error(iq, "cancel", "conflict"),
                    Err(RegisterError::RateLimited) => {
                        tracing::info!(session = self.id.0, "registration rate limited");
                        self.iq_error(iq, "wait", "resource-constraint")
                    }
                    Err(RegisterError::NotAcceptable) => {
                        self.iq_error(iq, "modify", "not-acceptable")
                    }
                };
                self.send(reply);
            }
            IqKind::Result | IqKind::Error => {}
        }
    }

    fn try_register(
        &mut self,
        now: Instant,
        username: &str,
        password: &str,
        hub: &Mutex<Hub>,
    ) -> Result<(), RegisterError> {
        let username = normalize_username(&self.domain, username)
            .filter(|u| !key::is_key_localpart(u)) // that namespace belongs to keys
            .ok_or(RegisterError::NotAcceptable)?;
        if password.is_empty() || password.len() > 1024 {
            return Err(RegisterError::NotAcceptable);
        }
        {
            let mut h = lock(hub);
            if !h.username_free(&username) {
                return Err(RegisterError::Conflict);
            }
            if !h.admit_registration(self.peer, now) {
                return Err(RegisterError::RateLimited);
            }
        }
        let mut salt = vec![0u8; 16];
        self.entropy.fill(&mut salt);
        // PBKDF2 runs outside the lock.
        let credentials = Credentials::derive(password, salt, scram::ITERATIONS);
        lock(hub).add_account(username, credentials)
    }

    fn binding(&mut self, el: &Element, hub: &Mutex<Hub>) {
        if el.is("resume", NS_SM) && self.framing != Framing::Bosh {
            let Auth::Authenticated(user) = &self.auth else {
                return;
            };
            let h = el.attr("h").and_then(|h| h.parse::<u32>().ok());
            let previd = el.attr("previd").filter(|p| p.len() <= 64);
            match (previd, h) {
                (Some(previd), Some(h)) => self.out.push_back(Output::Resume {
                    previd: previd.to_owned(),
                    h,
                    user: user.clone(),
                }),
                _ => self.resume_failed(),
            }
            return;
        }
        if el.ns() == NS_SM {
            // <enable/> before binding, or anything else.
            self.send(
                Out::ns("failed", NS_SM)
                    .child(Out::ns("unexpected-request", NS_STANZAS))
                    .to_xml(),
            );
            return;
        }
        let Ok(Stanza::Iq(iq)) = Stanza::parse(el) else {
            return self.fail("not-authorized", "bind a resource first");
        };
        let Some(bind) = iq.child.as_ref().filter(|c| c.is("bind", NS_BIND)) else {
            if matches!(iq.kind, IqKind::Get | IqKind::Set) {
                self.send(self.iq_error(&iq, "auth", "not-authorized"));
            }
            return;
        };
        let Auth::Authenticated(user) = &self.auth else {
            return;
        };
        let user = user.clone();
        let requested = bind
            .get_child("resource", NS_BIND)
            .map(Element::text)
            .filter(|r| !r.is_empty());
        let fresh = self.random_id();
        let bound = lock(hub).bind(self.id, &user, requested.as_deref(), &fresh, self.key_bound);
        match bound {
            Some(jid) => {
                tracing::info!(session = self.id.0, "resource bound");
                let reply = Out::new("iq")
                    .attr("type", "result")
                    .attr("id", iq.id.as_str())
                    .child(Out::ns("bind", NS_BIND).child(Out::new("jid").text(jid.as_str())))
                    .to_xml();
                self.auth = Auth::Bound(jid);
                self.send(reply);
            }
            None => self.send(self.iq_error(&iq, "cancel", "conflict")),
        }
    }

    fn bound(&mut self, el: &Element, hub: &Mutex<Hub>) {
        if self.stream_management(el) {
            return;
        }
        if let Some(sm) = &mut self.sm {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
        let stanza = match Stanza::parse(el) {
            Ok(s) => s,
            Err(StanzaError::UnsupportedType) => {
                return self.fail("unsupported-stanza-type", "only message, presence and iq")
            }
            Err(StanzaError::JidMalformed { name, id } | StanzaError::BadRequest { name, id }) => {
                let condition = if name == "iq" && id.is_none() {
                    "bad-request"
                } else {
                    "jid-malformed"
                };
                let reply = ErrorReply {
                    stanza: name,
                    from: &self.domain,
                    to: &self.peer_jid(),
                    id: id.as_deref(),
                    kind: "modify",
                    condition,
                    text: None,
                }
                .to_xml();
                return self.send(reply);
            }
        };
        let deliveries = match &stanza {
            Stanza::Message(m) => lock(hub).message(self.id, m),
            Stanza::Presence(p) => lock(hub).presence(self.id, p),
            Stanza::Iq(iq) => {
                self.iq(iq, hub);
                Vec::new()
            }
        };
        self.deliver(deliveries);
    }

    /// Deliveries to this session go out directly, in order; the rest to the shell.
    fn deliver(&mut self, deliveries: Vec<Delivery>) {
        let mut others = Vec::new();
        for d in deliveries {
            if d.to == self.id {
                if !others.is_empty() {
                    self.out
                        .push_back(Output::Deliver(std::mem::take(&mut others)));
                }
                self.send(d.xml);
            } else {
                others.push(d);
            }
        }
        if !others.is_empty() {
            self.out.push_back(Output::Deliver(others));
        }
    }

    fn iq(&mut self, iq: &IqStanza, hub: &Mutex<Hub>) {
        let Auth::Bound(me) = &self.auth else { return };
        let me = me.clone();
        let to_server = match &iq.to {
            None => true,
            Some(to) => {
                to.as_str() == self.domain
                    || (to.node().is_some()
                        && to.resource().is_none()
                        && to.to_bare() == me.to_bare())
            }
        };
        if !to_server {
            let reply = lock(hub).muc_iq(&me, iq);
            match reply {
                Some(r) if r.is_empty() => {}
                Some(r) => self.send(r),
                None if matches!(iq.kind, IqKind::Get | IqKind::Set) => {
                    // iq between users is not relayed: content goes only in messages.
                    let to = iq.to.as_ref().map(|t| t.to_string()).unwrap_or_default();
                    let reply = ErrorReply {
                        stanza: "iq",
                        from: &to,
                        to: me.as_str(),
                        id: Some(&iq.id),
                        kind: "cancel",
                        condition: "service-unavailable",
                        text: None,
                    }
                    .to_xml();
                    self.send(reply);
                }
                None => {}
            }
            return;
        }
        if matches!(iq.kind, IqKind::Result | IqKind::Error) {
            return;
        }
        let ns = iq.child.as_ref().map(|c| c.ns()).unwrap_or_default();
        let name = iq
            .child
            .as_ref()
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        let reply = match (iq.kind, name.as_str(), ns.as_str()) {
            (IqKind::Get, "ping", NS_PING) | (IqKind::Set, "session", NS_SESSION) => {
                self.iq_result(iq, None)
            }
            (IqKind::Get, "query", NS_DISCO_INFO) => {
                let mut q = Out::ns("query", NS_DISCO_INFO).child(
                    Out::new("identity")
                        .attr("category", "server")
                        .attr("type", "im")
                        .attr("name", "Cryptocat relay"),
                );
                for f in [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_REGISTER] {
                    q = q.child(Out::new("feature").attr("var", f));
                }
                self.iq_result(iq, Some(q))
            }
            (IqKind::Get, "query", NS_DISCO_ITEMS) => {
                let muc = format!("conference.{}", self.domain);
                let q = Out::ns("query", NS_DISCO_ITEMS)
                    .child(Out::new("item").attr("jid", muc).attr("name", "Rooms"));
                self.iq_result(iq, Some(q))
            }
            (IqKind::Get, "query", NS_ROSTER) => {
                self.iq_result(iq, Some(Out::ns("query", NS_ROSTER)))
            }
            _ => self.iq_error(iq, "cancel", "service-unavailable"),
        };
        self.send(reply);
    }
}

/// Whether serialized XML is a stanza (counted by stream management).
fn is_stanza(xml: &str) -> bool {
    ["<message", "<presence", "<iq"].iter().any(|name| {
        xml.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '>', '/']))
    })
}

/// Decodes SASL data (`=` is the empty response).
fn decode_sasl(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let t = text.trim();
    if t == "=" || t.is_empty() {
        return Ok(Vec::new());
    }
    STANDARD.decode(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u8);
    impl Entropy for Fixed {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    const HEADER: &str = "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams'>";

    fn machine(limits: Limits) -> (C2s, Mutex<Hub>, Instant) {
        let now = Instant::now();
        let hub = Mutex::new(Hub::new("localhost", limits.clone()));
        let id = hub
            .lock()
            .unwrap()
            .connect("127.0.0.1".parse().unwrap(), now)
            .unwrap();
        let m = C2s::new(
            id,
            "127.0.0.1".parse().unwrap(),
            "localhost",
            limits,
            [1; 32],
            Box::new(Fixed(0)),
            now,
        );
        (m, hub, now)
    }

    #[test]
    fn negotiation_deadline_counts_from_admission_not_from_the_last_read() {
        let limits = Limits {
            negotiation_timeout_secs: 10,
            ..Limits::default()
        };
        let (mut m, hub, now) = machine(limits);
        assert_eq!(m.read_timeout(now), Duration::from_secs(10));
        // A slowloris: a byte of the header every few seconds.
        m.handle_bytes(now + Duration::from_secs(4), b"<str", &hub);
        assert_eq!(
            m.read_timeout(now + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        m.handle_bytes(now + Duration::from_secs(9), b"eam", &hub);
        assert_eq!(
            m.read_timeout(now + Duration::from_secs(9)),
            Duration::from_secs(1)
        );
        assert_eq!(
            m.read_timeout(now + Duration::from_secs(11)),
            Duration::ZERO
        );
        m.handle_timeout();
        let text = sent(&drain(&mut m));
        assert!(text.contains("<connection-timeout"), "{text}");
    }

    fn drain(m: &mut C2s) -> Vec<Output> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    fn sent(outputs: &[Output]) -> String {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn bytes_after_starttls_are_discarded_and_features_change_after_tls() {
        let (mut m, hub, now) = machine(Limits::default());
        m.handle_bytes(now, HEADER.as_bytes(), &hub);
        let out = drain(&mut m);
        assert!(
            sent(&out).contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>")
        );
        assert!(!sent(&out).contains("mechanisms"));
        // A plaintext registration injected after <starttls/> in the same read is dropped.
        m.handle_bytes(
            now,
            b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='set' id='r'>\
              <query xmlns='jabber:iq:register'><username>eve</username>\
              <password>x</password></query></iq>",
            &hub,
        );
        let out = drain(&mut m);
        assert_eq!(
            out,
            vec![
                Output::Send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".into()),
                Output::StartTls
            ]
        );
        m.handle_bytes(now, b"<presence/>", &hub);
        assert!(
            drain(&mut m).is_empty(),
            "nothing is read while waiting for TLS"
        );
        m.tls_established();
        m.handle_bytes(now, HEADER.as_bytes(), &hub);
        let text = sent(&drain(&mut m));
        assert!(text.contains("<mechanism>SCRAM-SHA-256</mechanism>"));
        assert!(text.contains("iq-register"));
        assert!(!text.contains("starttls"));
        assert!(hub.lock().unwrap().username_free("eve"));
    }

    #[test]
    fn stanza_rate_applies_back_pressure() {
        let limits = Limits {
            stanzas_per_second: 2,
            stanza_burst: 3,
            ..Limits::default()
        };
        let (mut m, hub, now) = machine(limits);
        m.tls_established();
        m.handle_bytes(now, HEADER.as_bytes(), &hub);
        drain(&mut m);
        let get = "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>".repeat(5);
        m.handle_bytes(now, get.as_bytes(), &hub);
        let pauses: Vec<Duration> = drain(&mut m)
            .into_iter()
            .filter_map(|o| match o {
                Output::Pause(d) => Some(d),
                _ => None,
            })
            .collect();
        // Three within the burst, then 0.5 s and 1 s of debt at 2 stanzas per second.
        assert_eq!(pauses.len(), 2, "{pauses:?}");
        assert!(pauses[0] >= Duration::from_millis(499) && pauses[0] <= Duration::from_millis(501));
        assert!(
            pauses[1] >= Duration::from_millis(999) && pauses[1] <= Duration::from_millis(1001)
        );
    }

    #[test]
    fn framed_streams_skip_starttls_only_on_a_secure_channel() {
        let open = "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'>";
        // Secure (HTTPS, loopback or trusted proxy): SASL and registration straight away.
        let (m, hub, now) = machine(Limits::default());
        let mut m = m.with_framing(Framing::WebSocket, true);
        m.handle_bytes(now, open.as_bytes(), &hub);
        let text = sent(&drain(&mut m));
        assert!(text.starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"));
        assert!(text.contains("SCRAM-SHA-256") && !text.contains("starttls"));
        // Not secure (plain HTTP from elsewhere): no mechanisms, auth refused, stream ended.
        let (m, hub, now) = machine(Limits::default());
        let mut m = m.with_framing(Framing::Bosh, false);
        m.handle_bytes(now, open.as_bytes(), &hub);
        let text = sent(&drain(&mut m));
        assert_eq!(text, "<stream:features/>");
        m.handle_bytes(
            now,
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hLHI9eA==</auth>",
            &hub,
        );
        let out = drain(&mut m);
        let text = sent(&out);
        assert!(text.contains("<encryption-required/>"), "{text}");
        assert!(text.contains("<policy-violation"), "{text}");
        assert!(
            text.contains("xmlns:stream="),
            "standalone stream error: {text}"
        );
        assert_eq!(out.last(), Some(&Output::Close));
        let (m, hub, now) = machine(Limits::default());
        let mut m = m.with_framing(Framing::WebSocket, false);
        m.handle_bytes(now, open.as_bytes(), &hub);
        drain(&mut m);
        m.handle_bytes(
            now,
            b"<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>u</username>\
              <password>p</password></query></iq>",
            &hub,
        );
        let text = sent(&drain(&mut m));
        assert!(text.contains("<policy-violation"), "{text}");
        assert!(text.ends_with("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"));
        assert!(hub.lock().unwrap().username_free("u"));
    }

    #[test]
    fn wrong_host_and_stanzas_before_auth_are_stream_errors() {
        let (mut m, hub, now) = machine(Limits::default());
        m.handle_bytes(
            now,
            HEADER.replace("localhost", "elsewhere").as_bytes(),
            &hub,
        );
        let out = drain(&mut m);
        assert!(sent(&out).contains("<host-unknown"));
        assert_eq!(out.last(), Some(&Output::Close));

        let (mut m, hub, now) = machine(Limits::default());
        m.tls_established();
        m.handle_bytes(now, HEADER.as_bytes(), &hub);
        drain(&mut m);
        m.handle_bytes(now, b"<message to='x@localhost' type='chat'/>", &hub);
        let out = drain(&mut m);
        assert!(sent(&out).contains("<not-authorized"));
        assert_eq!(out.last(), Some(&Output::Close));
        assert!(m.is_closed());
    }
}
