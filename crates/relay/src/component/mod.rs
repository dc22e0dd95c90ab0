//! The room service as an XEP-0114 component: the same [`Rooms`] as the relay's, attached
//! to another server (Prosody, ejabberd) through its component port instead of to our
//! own client sessions.
//!
//! [`Component`] is the sans-IO core: [`Component::start`] opens a stream (the component
//! namespace `jabber:component:accept`), [`Component::handle_bytes`] reads what the host
//! server sends (its stream header, the `<handshake/>`, then stanzas from any user of the
//! host or of servers federated with it), [`Component::poll_output`] hands out what to
//! write. [`connection`] is the tokio shell: connects, reconnects with back-off, writes
//! with deadlines. [`secret`] reads the shared secret.
//!
//! The handshake (XEP-0114 §3): the host answers our header with a stream id; we send
//! `<handshake>` with the lowercase hex SHA-1 of the id followed by the secret; the host
//! answers `<handshake/>`, or a stream error (`not-authorized`: wrong secret; `conflict`:
//! another component holds the domain).
//!
//! Occupants are keyed by the full JID the host server stamped on their stanzas. The
//! policy is the relay's: a message reaches the room only as one Cryptocat payload; a
//! relayed message is rebuilt from it. What the host can make the component keep: the
//! rooms ([`crate::rooms::RoomLimits`]: members in total `connections`, rooms per member
//! `rooms_per_session`, occupants per room), stanzas parsed but not yet handled (at most
//! one read's worth), and output not yet written (handling pauses once `outbox_bytes`
//! are waiting, so the shell writes before more is read). Nothing is logged about who or
//! what.

pub mod connection;
pub mod proof;
pub mod secret;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use jid::{FullJid, Jid};
use minidom::Element;
use sha1::{Digest as _, Sha1};

use crate::config::Limits;
use crate::rooms::{message_error, Joiner, RoomLimits, Rooms, Routed, NS_MUC};
use crate::stanza::{
    IqKind, MessageKind, PresenceKind, PresenceStanza, Stanza, NS_COMPONENT, NS_STANZAS,
};
use crate::stream::{Entropy, OsEntropy};
use crate::xml::{escape, Out, ParserLimits, StreamParser, XmlError, XmlEvent, NS_STREAM};
use proof::{Outcome, Proofs, NS_ROOM_KEY};

pub use secret::{read_secret_file, Secret, SecretError};

/// Longest stream id accepted from the host server.
const MAX_STREAM_ID: usize = 1024;

/// Why the component's stream to the host server ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The host's bytes are not a well-formed, limited XML stream.
    #[error("the host server sent malformed XML: {0}")]
    Xml(#[from] XmlError),
    /// The stream header is not a component stream header with an id.
    #[error("the host server's stream header is not a component stream with an id")]
    BadHeader,
    /// The host refused the handshake with a stream error (the RFC 6120 condition:
    /// `not-authorized` for a wrong secret, `conflict` when the domain is taken).
    #[error("the host server refused the component: {0}")]
    Refused(&'static str),
    /// The host ended the stream or sent a stream error once attached.
    #[error("the host server closed the stream ({0})")]
    Closed(&'static str),
    /// Something other than `<handshake/>` came before the handshake ended.
    #[error("the host server sent a stanza before the handshake ended")]
    Unexpected,
}

/// Where the stream to the host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No stream (before [`Component::start`], or after the connection was lost).
    Down,
    /// Our header sent; waiting for the host's.
    Opening,
    /// Our `<handshake>` sent; waiting for the host's answer.
    Handshaking,
    /// Attached: stanzas flow.
    Attached,
}

/// What the component holds, in counts (no names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ComponentRetained {
    /// Members (full JIDs) in at least one room.
    pub members: usize,
    /// Occupants over all rooms.
    pub occupants: usize,
    /// Rooms.
    pub rooms: usize,
    /// Stanzas read and not yet handled.
    pub pending_stanzas: usize,
    /// Output bytes not yet taken by the shell.
    pub output_bytes: usize,
    /// Room key proofs challenged and not yet answered.
    pub pending_proofs: usize,
    /// Occupant pings not yet answered.
    pub pending_pings: usize,
}

/// The sans-IO room service on a component stream.
pub struct Component {
    domain: String,
    secret: Secret,
    limits: Limits,
    rooms: Rooms<FullJid>,
    proofs: Proofs,
    /// Where the room key proofs' nonces come from.
    entropy: Box<dyn Entropy>,
    /// The time of the last read (what the pending stanzas are handled at).
    now: Instant,
    /// When the occupants are pinged next (attached, pings on).
    next_ping: Option<Instant>,
    /// Outstanding pings: id to the member pinged and the rounds it has gone unanswered.
    pings: HashMap<String, (FullJid, u8)>,
    ping_seq: u64,
    parser: StreamParser,
    phase: Phase,
    /// Stanzas read and not yet handled (handling pauses while output waits).
    pending: VecDeque<Element>,
    out: VecDeque<String>,
    out_bytes: usize,
    /// Told to the occupants of a lost attachment once attached again (status 332).
    after_handshake: Vec<String>,
}

/// The refusal of a joiner who did not prove its key.
const KEY_REFUSAL: &str = "this room service requires proof of the identity key \
     (urn:xmpp:cryptocat:room-key:1)";

impl Component {
    /// The room service for `domain` (e.g. `conference.example.org`).
    pub fn new(domain: &str, secret: Secret, limits: Limits) -> Self {
        let parser = StreamParser::new(parser_limits(&limits));
        Self {
            domain: domain.to_ascii_lowercase(),
            secret,
            rooms: Rooms::new(&domain.to_ascii_lowercase(), RoomLimits::of(&limits))
                .with_require_key_bound(true, KEY_REFUSAL)
                .with_features(&[NS_ROOM_KEY]),
            proofs: Proofs::new(
                limits.rooms_per_session,
                limits.connections,
                limits.negotiation_timeout(),
            ),
            entropy: Box::new(OsEntropy),
            now: Instant::now(),
            next_ping: None,
            pings: HashMap::new(),
            ping_seq: 0,
            limits,
            parser,
            phase: Phase::Down,
            pending: VecDeque::new(),
            out: VecDeque::new(),
            out_bytes: 0,
            after_handshake: Vec::new(),
        }
    }

    /// Draws the nonces of room key proofs from `entropy` instead of the operating system
    /// (tests and fuzzing, which need known challenges).
    #[must_use]
    pub fn with_entropy(mut self, entropy: Box<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// The service's domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Where the stream is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The counts of what is held.
    pub fn retained(&self) -> ComponentRetained {
        ComponentRetained {
            members: self.rooms.member_count(),
            occupants: self.rooms.occupant_count(),
            rooms: self.rooms.room_count(),
            pending_stanzas: self.pending.len(),
            output_bytes: self.out_bytes,
            pending_proofs: self.proofs.pending(),
            pending_pings: self.pings.len(),
        }
    }

    /// Starts a stream on a new connection: returns our stream header.
    pub fn start(&mut self) -> String {
        self.parser = StreamParser::new(parser_limits(&self.limits));
        self.phase = Phase::Opening;
        self.pending.clear();
        self.out.clear();
        self.out_bytes = 0;
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' \
             xmlns:stream='{NS_STREAM}' to='{}'>",
            escape(&self.domain)
        )
    }

    /// The connection was lost: the rooms are emptied (who is present may have changed
    /// while nobody could tell us), and their occupants will be told so (unavailable,
    /// status 332) right after the next handshake.
    pub fn connection_lost(&mut self) {
        self.phase = Phase::Down;
        self.pending.clear();
        self.out.clear();
        self.out_bytes = 0;
        let told = self.rooms.shut_down();
        self.after_handshake.extend(told.into_iter().map(|r| r.xml));
        self.proofs.clear();
        self.pings.clear();
        self.next_ping = None;
    }

    /// Ends the attachment on purpose (shutdown): every occupant is told the service is
    /// going away (332), then the stream is closed. Returns the bytes to write.
    pub fn close(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self.out.drain(..).collect();
        out.extend(self.rooms.shut_down().into_iter().map(|r| r.xml));
        out.push("</stream:stream>".to_owned());
        self.out_bytes = 0;
        self.pending.clear();
        self.phase = Phase::Down;
        out
    }

    /// Frees what has expired (room key proofs not answered in time) and pings the
    /// occupants when it is time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.proofs.expire(now);
        if self.next_ping.is_some_and(|at| at <= now) {
            self.ping_round(now);
        }
    }

    /// When [`Self::handle_timeout`] wants to run next (`None`: only on reads).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_ping
    }

    /// A ping round: a member whose ping went unanswered for two rounds is gone; every
    /// member without an outstanding ping gets one.
    fn ping_round(&mut self, now: Instant) {
        let interval = Duration::from_secs(self.limits.occupant_ping_secs);
        self.next_ping = Some(now + interval);
        let mut gone = Vec::new();
        let members: std::collections::HashSet<FullJid> = self.rooms.members().cloned().collect();
        self.pings.retain(|_, (jid, rounds)| {
            if !members.contains(jid) {
                return false; // left meanwhile
            }
            *rounds = rounds.saturating_add(1);
            if *rounds >= 2 {
                gone.push(jid.clone());
                return false;
            }
            true
        });
        for jid in gone {
            tracing::debug!("an occupant did not answer its pings");
            let routed = self.rooms.remove_member(&jid);
            self.push_routed(routed);
        }
        let pinged: std::collections::HashSet<&FullJid> =
            self.pings.values().map(|(jid, _)| jid).collect();
        let due: Vec<FullJid> = self
            .rooms
            .members()
            .filter(|m| !pinged.contains(m))
            .cloned()
            .collect();
        for jid in due {
            self.ping_seq = self.ping_seq.wrapping_add(1);
            let id = format!("ping-{}", self.ping_seq);
            // From one of its rooms, not from the bare domain: a host that spreads the
            // domain over several component connections by the destination's bare JID
            // (ejabberd's `domain_balancing`) routes the answer back to this instance,
            // the one serving that room; an answer to the domain could reach another.
            let from = self.rooms.a_room_of(&jid).map_or_else(
                || self.domain.clone(),
                |room| self.rooms.room_jid(room, None),
            );
            let xml = Out::new("iq")
                .attr("type", "get")
                .attr("from", from.as_str())
                .attr("to", jid.as_str())
                .attr("id", id.as_str())
                .child(Out::ns("ping", NS_PING))
                .to_xml();
            self.push(xml);
            self.pings.insert(id, (jid, 0));
        }
    }

    /// An answer to one of our pings: an error means the member's session is gone.
    /// Returns whether it was one.
    fn ping_answer(&mut self, from: &Jid, id: &str, kind: IqKind) -> bool {
        let Some((jid, _)) = self.pings.get(id) else {
            return false;
        };
        if jid.as_str() != from.as_str() {
            return false; // not from whom we pinged
        }
        let Some((jid, _)) = self.pings.remove(id) else {
            return false;
        };
        if kind == IqKind::Error {
            tracing::debug!("an occupant's session is gone");
            let routed = self.rooms.remove_member(&jid);
            self.push_routed(routed);
        }
        true
    }

    /// Reads bytes from the host server, received at `now`.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> Result<(), LinkError> {
        self.handle_timeout(now);
        for event in self.parser.feed(bytes)? {
            match event {
                XmlEvent::StreamOpen(header) => self.header(&header)?,
                XmlEvent::StreamClose => return Err(LinkError::Closed("end of stream")),
                XmlEvent::Stanza(el) => self.element(el)?,
            }
        }
        self.process();
        Ok(())
    }

    /// The next thing to write, if any. Handles waiting stanzas as output drains.
    pub fn poll_output(&mut self) -> Option<String> {
        if self.out.is_empty() {
            self.process();
        }
        let next = self.out.pop_front()?;
        self.out_bytes = self.out_bytes.saturating_sub(next.len());
        Some(next)
    }

    fn header(&mut self, header: &crate::xml::StreamHeader) -> Result<(), LinkError> {
        if self.phase != Phase::Opening || !header.is_stream {
            return Err(LinkError::BadHeader);
        }
        let id = header
            .root
            .as_ref()
            .and_then(|r| r.attr("id"))
            .filter(|id| !id.is_empty() && id.len() <= MAX_STREAM_ID)
            .ok_or(LinkError::BadHeader)?;
        let mut hash = Sha1::new();
        hash.update(id.as_bytes());
        hash.update(self.secret.bytes());
        let digest = hex::encode(hash.finalize());
        self.push(format!("<handshake>{digest}</handshake>"));
        self.phase = Phase::Handshaking;
        Ok(())
    }

    fn element(&mut self, el: Element) -> Result<(), LinkError> {
        if el.is("error", NS_STREAM) {
            let condition = stream_error_condition(&el);
            return Err(match self.phase {
                Phase::Attached => LinkError::Closed(condition),
                _ => LinkError::Refused(condition),
            });
        }
        match self.phase {
            Phase::Attached => {
                if self.pending.len() >= MAX_PENDING {
                    // One read holds at most this many; more means a flood in one read.
                    return Err(LinkError::Closed("too many stanzas in one read"));
                }
                self.pending.push_back(el);
                Ok(())
            }
            Phase::Handshaking if el.name() == "handshake" && el.ns() == NS_COMPONENT => {
                self.phase = Phase::Attached;
                self.next_ping = (self.limits.occupant_ping_secs > 0)
                    .then(|| self.now + Duration::from_secs(self.limits.occupant_ping_secs));
                tracing::info!("component attached to its host server");
                for xml in std::mem::take(&mut self.after_handshake) {
                    self.push(xml);
                }
                Ok(())
            }
            _ => Err(LinkError::Unexpected),
        }
    }

    fn push(&mut self, xml: String) {
        self.out_bytes = self.out_bytes.saturating_add(xml.len());
        self.out.push_back(xml);
    }

    fn push_routed(&mut self, routed: Vec<Routed<FullJid>>) {
        for r in routed {
            self.push(r.xml);
        }
    }

    /// Handles waiting stanzas until output reaches `outbox_bytes`.
    fn process(&mut self) {
        while self.phase == Phase::Attached && self.out_bytes < self.limits.outbox_bytes {
            let Some(el) = self.pending.pop_front() else {
                return;
            };
            self.stanza(&el);
        }
    }

    fn stanza(&mut self, el: &Element) {
        // The host stamps `from`; a stanza without a usable one cannot be answered.
        let Some(from) = el.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let Ok(stanza) = Stanza::parse_in(el, NS_COMPONENT) else {
            return; // malformed `to`, iq without id: the host checks these for its users.
        };
        match stanza {
            Stanza::Iq(iq) => {
                if matches!(iq.kind, IqKind::Result | IqKind::Error)
                    && self.ping_answer(&from, &iq.id, iq.kind)
                {
                    return;
                }
                if let Some(reply) = self.rooms.iq(from.as_str(), &iq) {
                    if !reply.is_empty() {
                        self.push(reply);
                    }
                }
            }
            Stanza::Presence(p) => {
                let Ok(from) = from.try_into_full() else {
                    return; // only users' sessions are occupants.
                };
                if p.kind == PresenceKind::Error {
                    // Our presence could not reach it: it is gone from that room.
                    if let Some(room) = self.room_of(p.to.as_ref()) {
                        let routed = self.rooms.drop_occupant(&from, &room);
                        self.push_routed(routed);
                    }
                    return;
                }
                let key_bound = match self.join_proof(&from, &p, el) {
                    Some(proven) => proven,
                    None => return, // answered: challenged or refused
                };
                let joiner = Joiner {
                    key: &from,
                    jid: &from,
                    key_bound,
                };
                let routed = self.rooms.presence(joiner, &p);
                self.push_routed(routed);
            }
            Stanza::Message(m) => {
                let Ok(from) = from.try_into_full() else {
                    return;
                };
                if m.kind == MessageKind::Error {
                    // A bounce: what we relayed could not reach it.
                    if let Some(room) = self.room_of(m.to.as_ref()) {
                        let routed = self.rooms.drop_occupant(&from, &room);
                        self.push_routed(routed);
                    }
                    return; // never answer or relay an error
                }
                let payload = match &m.payload {
                    Ok(p) => p,
                    Err(v) => {
                        tracing::debug!(reason = %v, "message refused by policy");
                        self.push(message_error(
                            &m,
                            &from,
                            "modify",
                            "policy-violation",
                            &v.to_string(),
                        ));
                        return;
                    }
                };
                let Some((room, nick)) = m.to.as_ref().and_then(|to| self.rooms.target(to)) else {
                    return; // the host routes only our domain here
                };
                let routed = self.rooms.message(&from, &from, &m, payload, room, nick);
                self.push_routed(routed);
            }
        }
    }

    /// The room key proof of a join: `Some(proven)` to go on with the join, `None` when it
    /// was answered here (a challenge, or a refusal). Not a join (an occupant's presence
    /// update, a leave): `Some(false)`, and the rooms need no proof for it.
    fn join_proof(&mut self, from: &FullJid, p: &PresenceStanza, el: &Element) -> Option<bool> {
        if p.kind != PresenceKind::Available {
            return Some(false);
        }
        let Some((Some(room), Some(nick))) = p.to.as_ref().and_then(|to| self.rooms.target(to))
        else {
            return Some(false);
        };
        if self.rooms.is_occupant(from, room) {
            return Some(false);
        }
        let room_jid = self.rooms.room_jid(room, None);
        let mut nonce = [0u8; 32];
        self.entropy.fill(&mut nonce);
        let outcome = self.proofs.join(self.now, nonce, from, &room_jid, nick, el);
        let error = |kind: &str, condition: &'static str, text: &str| {
            Out::new("presence")
                .attr("from", self.rooms.room_jid(room, Some(nick)))
                .attr("to", from.as_str())
                .attr("type", "error")
                .attr_opt("id", p.id.as_deref())
                .child(Out::ns("x", NS_MUC))
                .child(
                    Out::new("error")
                        .attr("type", kind)
                        .child(Out::ns(condition, NS_STANZAS))
                        .child(Out::ns("text", NS_STANZAS).text(text)),
                )
        };
        let reply = match outcome {
            Outcome::Unproven => return Some(false),
            Outcome::Proven => return Some(true),
            Outcome::Challenge(b64) => error("auth", "not-authorized", "prove the identity key")
                .child(Out::ns("challenge", NS_ROOM_KEY).text(b64)),
            Outcome::Refused(kind, condition, text) => error(kind, condition, text),
        };
        self.push(reply.to_xml());
        None
    }

    fn room_of(&self, to: Option<&Jid>) -> Option<String> {
        let (room, _) = self.rooms.target(to?)?;
        room.map(str::to_owned)
    }
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("phase", &self.phase)
            .field("retained", &self.retained())
            .finish_non_exhaustive()
    }
}

/// XEP-0199.
const NS_PING: &str = "urn:xmpp:ping";

/// Most stanzas parsed from one read and not yet handled (a read is at most
/// [`connection::READ_BUFFER`] bytes; the smallest stanza is a few bytes).
pub const MAX_PENDING: usize = 8192;

fn parser_limits(limits: &Limits) -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: limits.max_stanza_bytes,
        max_depth: limits.max_depth,
    }
}

/// The defined condition of a stream error, as one of RFC 6120's names (never the
/// host's text).
fn stream_error_condition(el: &Element) -> &'static str {
    const CONDITIONS: &[&str] = &[
        "bad-format",
        "bad-namespace-prefix",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "improper-addressing",
        "internal-server-error",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-authorized",
        "not-well-formed",
        "policy-violation",
        "remote-connection-failed",
        "reset",
        "resource-constraint",
        "restricted-xml",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        "unsupported-encoding",
        "unsupported-feature",
        "unsupported-stanza-type",
        "unsupported-version",
    ];
    el.children()
        .find_map(|c| CONDITIONS.iter().find(|n| **n == c.name()).copied())
        .unwrap_or("undefined-condition")
}

#[cfg(test)]
mod tests;
