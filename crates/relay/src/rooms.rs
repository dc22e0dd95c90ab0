//! The room (MUC) service, sans-IO: rooms and their occupants, joins and leaves, the
//! presence broadcast, groupchat and private routing, and the service's discovery answers.
//!
//! One implementation, two attachments. The relay's own sessions drive it through
//! [`crate::hub::Hub`] (occupants keyed by [`SessionId`]); an XEP-0114 component behind
//! another server drives it through [`crate::component`] (occupants keyed by the full JID
//! the host server vouches for). `K`, the [`OccupantKey`], is what a [`Routed`] stanza is
//! addressed to; the stanza's `to` attribute is always the occupant's real full JID.
//!
//! Invariants: nothing about message content is kept; a relayed message is rebuilt from
//! its checked payload; rooms exist only while they have occupants and keep no history;
//! occupants' real JIDs are never shown to other occupants (semi-anonymous rooms). What
//! network input can make it keep is bounded: occupants per room, rooms per member, and
//! members in total ([`RoomLimits`]); a member is forgotten with its last room.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;

use jid::{FullJid, Jid};

use crate::hub::SessionId;
use crate::stanza::{
    IqKind, IqStanza, MessageKind, MessageStanza, PresenceKind, PresenceStanza, NS_PAYLOAD,
    NS_STANZAS,
};
use crate::xml::Out;

/// MUC namespace.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// MUC user namespace.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// MUC owner namespace.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// Service discovery.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service discovery items.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

/// What the room service addresses its stanzas to.
pub trait OccupantKey: Clone + Eq + Ord + Hash + Debug {
    /// A number the logs may carry (the relay's session number); never a JID.
    fn log_number(&self) -> u64;
}

impl OccupantKey for SessionId {
    fn log_number(&self) -> u64 {
        self.0
    }
}

/// An occupant behind a host server: its full JID, as the host server stamped it.
impl OccupantKey for FullJid {
    fn log_number(&self) -> u64 {
        0
    }
}

/// A stanza for one occupant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<K> {
    /// Recipient.
    pub to: K,
    /// The stanza.
    pub xml: String,
}

/// What the room service lets network input make it keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// Rooms one member (session, or full JID behind a host server) may be in at once.
    pub rooms_per_member: usize,
    /// Occupants in one room.
    pub occupants_per_room: usize,
    /// Members in rooms at once, in total.
    pub members: usize,
}

impl RoomLimits {
    /// The relay's limits: `rooms_per_session`, `occupants_per_room`, and one member per
    /// admitted connection (`connections`).
    pub fn of(limits: &crate::config::Limits) -> Self {
        Self {
            rooms_per_member: limits.rooms_per_session,
            occupants_per_room: limits.occupants_per_room,
            members: limits.connections,
        }
    }
}

/// Who asks to join: the key to address, the real JID, and whether it proved its key.
#[derive(Debug, Clone, Copy)]
pub struct Joiner<'a, K> {
    /// Delivery key.
    pub key: &'a K,
    /// Real full JID (never shown to other occupants).
    pub jid: &'a FullJid,
    /// Whether the member proved that it holds its identity key.
    pub key_bound: bool,
}

/// How an occupant leaves a room, which decides what its presences say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// Its connection ended: the others are told.
    Quietly,
    /// It asked to: the others are told, and it gets its own unavailable (110).
    Asked,
    /// The service removed it because its session is gone (XEP-0045 status 333): the
    /// others are told with 333, and so is it (110, 333), should its session come back.
    Removed,
}

#[derive(Debug)]
struct Occupant<K> {
    key: K,
    jid: FullJid,
    owner: bool,
}

#[derive(Debug)]
struct Room<K> {
    /// Nickname to occupant.
    occupants: BTreeMap<String, Occupant<K>>,
}

impl<K> Default for Room<K> {
    fn default() -> Self {
        Self {
            occupants: BTreeMap::new(),
        }
    }
}

/// A stanza error reply: who it is from, and its condition.
pub(crate) struct ErrorReply<'a> {
    pub(crate) stanza: &'static str,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) id: Option<&'a str>,
    pub(crate) kind: &'static str,
    pub(crate) condition: &'static str,
    pub(crate) text: Option<&'a str>,
}

impl ErrorReply<'_> {
    pub(crate) fn to_xml(&self) -> String {
        let mut err = Out::new("error")
            .attr("type", self.kind)
            .child(Out::ns(self.condition, NS_STANZAS));
        if let Some(t) = self.text {
            err = err.child(Out::ns("text", NS_STANZAS).text(t));
        }
        let mut el = Out::new(self.stanza)
            .attr("type", "error")
            .attr("from", self.from)
            .attr("to", self.to)
            .attr_opt("id", self.id)
            .child(err);
        if self.stanza == "presence" {
            el = el.child(Out::ns("x", NS_MUC));
        }
        el.to_xml()
    }
}

/// The error reply to a message from `from` (its `from` is what the message was sent to).
pub(crate) fn message_error(
    m: &MessageStanza,
    from: &FullJid,
    kind: &'static str,
    condition: &'static str,
    text: &str,
) -> String {
    let to_text =
        m.to.as_ref()
            .map_or_else(|| from.to_bare().to_string(), |j| j.to_string());
    ErrorReply {
        stanza: "message",
        from: &to_text,
        to: from.as_str(),
        id: m.id.as_deref(),
        kind,
        condition,
        text: Some(text),
    }
    .to_xml()
}

/// A relayed message, rebuilt from its checked payload.
pub(crate) fn relayed(
    m: &MessageStanza,
    payload: &str,
    from: &str,
    to: &str,
    kind: &'static str,
    muc: bool,
) -> String {
    let mut msg = Out::new("message")
        .attr("from", from)
        .attr("to", to)
        .attr("type", kind)
        .attr_opt("id", m.id.as_deref())
        .child(Out::ns("payload", NS_PAYLOAD).text(payload));
    if muc {
        msg = msg.child(Out::ns("x", NS_MUC_USER));
    }
    msg.to_xml()
}

/// The room service of one MUC domain.
#[derive(Debug)]
pub struct Rooms<K> {
    muc_domain: String,
    limits: RoomLimits,
    require_key_bound: bool,
    /// The `<text>` of the refusal of a joiner that did not prove its key.
    key_refusal: &'static str,
    /// Features the service adds to its disco#info.
    features: &'static [&'static str],
    rooms: HashMap<String, Room<K>>,
    /// Each member's rooms: room localpart to nickname.
    members: HashMap<K, BTreeMap<String, String>>,
}

impl<K: OccupantKey> Rooms<K> {
    /// An empty service at `muc_domain`.
    pub fn new(muc_domain: &str, limits: RoomLimits) -> Self {
        Self {
            muc_domain: muc_domain.to_owned(),
            limits,
            require_key_bound: false,
            key_refusal: "this server requires key-bound identities: log in with X-CRYPTOCAT-KEY",
            features: &[],
            rooms: HashMap::new(),
            members: HashMap::new(),
        }
    }

    /// Makes joins of members that did not prove their key fail with `not-allowed` and
    /// `text`.
    #[must_use]
    pub fn with_require_key_bound(mut self, require: bool, text: &'static str) -> Self {
        self.require_key_bound = require;
        self.key_refusal = text;
        self
    }

    /// Adds features to the service's disco#info (the component's room key proof).
    #[must_use]
    pub fn with_features(mut self, features: &'static [&'static str]) -> Self {
        self.features = features;
        self
    }

    /// Sets whether joins need a proven key (the refusal text is kept).
    pub fn set_require_key_bound(&mut self, require: bool) {
        self.require_key_bound = require;
    }

    /// The service's domain.
    pub fn muc_domain(&self) -> &str {
        &self.muc_domain
    }

    /// Number of rooms that exist (no names).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether a room exists.
    pub fn room_exists(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Members in at least one room (no names).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The members (in at least one room).
    pub fn members(&self) -> impl Iterator<Item = &K> {
        self.members.keys()
    }

    /// One of the rooms `key` is in (the first by name), if any.
    pub fn a_room_of(&self, key: &K) -> Option<&str> {
        self.members
            .get(key)
            .and_then(|m| m.keys().next())
            .map(String::as_str)
    }

    /// Occupants of all rooms together (no names).
    pub fn occupant_count(&self) -> usize {
        self.rooms.values().map(|r| r.occupants.len()).sum()
    }

    /// Whether `key` is in `room`.
    pub fn is_occupant(&self, key: &K, room: &str) -> bool {
        self.members.get(key).is_some_and(|m| m.contains_key(room))
    }

    /// The JID of `room` (bare) or of an occupant.
    pub fn room_jid(&self, room: &str, nick: Option<&str>) -> String {
        match nick {
            Some(n) => format!("{room}@{}/{n}", self.muc_domain),
            None => format!("{room}@{}", self.muc_domain),
        }
    }

    /// Splits a JID addressed to the service into room and nickname; `None` when it is
    /// not addressed to the service.
    pub fn target<'a>(&self, to: &'a Jid) -> Option<(Option<&'a str>, Option<&'a str>)> {
        if to.domain().as_str() != self.muc_domain {
            return None;
        }
        Some((
            to.node().map(|n| n.as_str()),
            to.resource().map(|r| r.as_str()),
        ))
    }

    /// Handles a presence addressed to the service (anything else is ignored).
    pub fn presence(&mut self, who: Joiner<'_, K>, p: &PresenceStanza) -> Vec<Routed<K>> {
        let mut out = Vec::new();
        let Some(to) = &p.to else {
            return out; // broadcast presence: there are no rosters.
        };
        let Some((Some(room), nick)) = self.target(to) else {
            return out; // not a room of ours.
        };
        match p.kind {
            PresenceKind::Available => match nick {
                Some(nick) => self.join(who, room, nick, p.id.as_deref(), &mut out),
                None => out.push(Routed {
                    to: who.key.clone(),
                    xml: ErrorReply {
                        stanza: "presence",
                        from: &self.room_jid(room, None),
                        to: who.jid.as_str(),
                        id: p.id.as_deref(),
                        kind: "modify",
                        condition: "jid-malformed",
                        text: Some("a nickname is required"),
                    }
                    .to_xml(),
                }),
            },
            PresenceKind::Unavailable => {
                if self.forget_membership(who.key, room) {
                    self.leave_room(who.key, room, Leaving::Asked, &mut out);
                }
            }
            PresenceKind::Error | PresenceKind::Other => {}
        }
        out
    }

    /// Removes `room` from `key`'s memberships (and the member with its last room);
    /// whether it was there.
    fn forget_membership(&mut self, key: &K, room: &str) -> bool {
        let Some(member) = self.members.get_mut(key) else {
            return false;
        };
        let was = member.remove(room).is_some();
        if member.is_empty() {
            self.members.remove(key);
        }
        was
    }

    /// A member went away (its connection ended, or the host server said it is gone):
    /// it leaves every room. Returns the presences to send.
    pub fn leave_all(&mut self, key: &K) -> Vec<Routed<K>> {
        let mut out = Vec::new();
        if let Some(member) = self.members.remove(key) {
            for room in member.keys() {
                self.leave_room(key, room, Leaving::Quietly, &mut out);
            }
        }
        out
    }

    /// A member's session is gone (it no longer answers, or its server says so): it is
    /// removed from every room with status 333, told to the others and to itself.
    pub fn remove_member(&mut self, key: &K) -> Vec<Routed<K>> {
        let mut out = Vec::new();
        if let Some(member) = self.members.remove(key) {
            for room in member.keys() {
                self.leave_room(key, room, Leaving::Removed, &mut out);
            }
        }
        out
    }

    /// Delivery to an occupant failed (its host server bounced a stanza to `room`): it
    /// is removed from that room, and the others are told it left.
    pub fn drop_occupant(&mut self, key: &K, room: &str) -> Vec<Routed<K>> {
        let mut out = Vec::new();
        if self.forget_membership(key, room) {
            self.leave_room(key, room, Leaving::Removed, &mut out);
        }
        out
    }

    /// Empties the service, telling every occupant it was removed because the service
    /// is going away (status 332): the component's host connection was lost, so what it
    /// knew of who is present may be stale.
    pub fn shut_down(&mut self) -> Vec<Routed<K>> {
        let mut out = Vec::new();
        for (room, state) in std::mem::take(&mut self.rooms) {
            for (nick, occ) in &state.occupants {
                out.push(Routed {
                    to: occ.key.clone(),
                    xml: self.occupant_presence(
                        &room,
                        nick,
                        &occ.jid,
                        occ.owner,
                        &["110", "332"],
                        true,
                    ),
                });
            }
        }
        self.members.clear();
        out
    }

    fn occupant_presence(
        &self,
        room: &str,
        nick: &str,
        to: &FullJid,
        owner: bool,
        statuses: &[&'static str],
        unavailable: bool,
    ) -> String {
        let (affiliation, role) = match (unavailable, owner) {
            (true, true) => ("owner", "none"),
            (true, false) => ("none", "none"),
            (false, true) => ("owner", "moderator"),
            (false, false) => ("none", "participant"),
        };
        let mut x = Out::ns("x", NS_MUC_USER).child(
            Out::new("item")
                .attr("affiliation", affiliation)
                .attr("role", role),
        );
        for code in statuses {
            x = x.child(Out::new("status").attr("code", *code));
        }
        let mut p = Out::new("presence")
            .attr("from", self.room_jid(room, Some(nick)))
            .attr("to", to.as_str());
        if unavailable {
            p = p.attr("type", "unavailable");
        }
        p.child(x).to_xml()
    }

    fn join(
        &mut self,
        who: Joiner<'_, K>,
        room: &str,
        nick: &str,
        stanza_id: Option<&str>,
        out: &mut Vec<Routed<K>>,
    ) {
        let refuse = |rooms: &Self, out: &mut Vec<Routed<K>>, kind, condition, text| {
            out.push(Routed {
                to: who.key.clone(),
                xml: ErrorReply {
                    stanza: "presence",
                    from: &rooms.room_jid(room, Some(nick)),
                    to: who.jid.as_str(),
                    id: stanza_id,
                    kind,
                    condition,
                    text: Some(text),
                }
                .to_xml(),
            });
        };
        let member = self.members.get(who.key);
        if let Some(current) = member.and_then(|m| m.get(room)) {
            if current != nick {
                refuse(
                    self,
                    out,
                    "modify",
                    "not-acceptable",
                    "nickname changes are not supported",
                );
            }
            return; // presence update in a room: nothing to tell.
        }
        if self.require_key_bound && !who.key_bound {
            refuse(self, out, "cancel", "not-allowed", self.key_refusal);
            return;
        }
        let room_count = member.map_or(0, BTreeMap::len);
        if room_count >= self.limits.rooms_per_member {
            refuse(self, out, "wait", "resource-constraint", "too many rooms");
            return;
        }
        if member.is_none() && self.members.len() >= self.limits.members {
            refuse(
                self,
                out,
                "wait",
                "resource-constraint",
                "too many occupants",
            );
            return;
        }
        let created = !self.rooms.contains_key(room);
        if let Some(r) = self.rooms.get(room) {
            if r.occupants.contains_key(nick) {
                refuse(self, out, "cancel", "conflict", "nickname in use");
                return;
            }
            if r.occupants.len() >= self.limits.occupants_per_room {
                refuse(self, out, "wait", "service-unavailable", "room is full");
                return;
            }
        }
        let mut room_state = self.rooms.remove(room).unwrap_or_default();
        // Existing occupants to the newcomer, then the newcomer to them.
        for (other_nick, occ) in &room_state.occupants {
            out.push(Routed {
                to: who.key.clone(),
                xml: self.occupant_presence(room, other_nick, who.jid, occ.owner, &[], false),
            });
            out.push(Routed {
                to: occ.key.clone(),
                xml: self.occupant_presence(room, nick, &occ.jid, created, &[], false),
            });
        }
        let statuses: &[&'static str] = if created { &["110", "201"] } else { &["110"] };
        out.push(Routed {
            to: who.key.clone(),
            xml: self.occupant_presence(room, nick, who.jid, created, statuses, false),
        });
        // No history; an empty subject ends the join as XEP-0045 clients expect.
        out.push(Routed {
            to: who.key.clone(),
            xml: Out::new("message")
                .attr("from", self.room_jid(room, None))
                .attr("to", who.jid.as_str())
                .attr("type", "groupchat")
                .child(Out::new("subject"))
                .to_xml(),
        });
        room_state.occupants.insert(
            nick.to_owned(),
            Occupant {
                key: who.key.clone(),
                jid: who.jid.clone(),
                owner: created,
            },
        );
        self.rooms.insert(room.to_owned(), room_state);
        self.members
            .entry(who.key.clone())
            .or_default()
            .insert(room.to_owned(), nick.to_owned());
        tracing::debug!(session = who.key.log_number(), created, "joined a room");
    }

    fn leave_room(&mut self, key: &K, room: &str, how: Leaving, out: &mut Vec<Routed<K>>) {
        let Some(mut state) = self.rooms.remove(room) else {
            return;
        };
        let Some(nick) = state
            .occupants
            .iter()
            .find(|(_, o)| &o.key == key)
            .map(|(n, _)| n.clone())
        else {
            self.rooms.insert(room.to_owned(), state);
            return;
        };
        let Some(gone) = state.occupants.remove(&nick) else {
            self.rooms.insert(room.to_owned(), state);
            return;
        };
        let (others, own): (&[&'static str], &[&'static str]) = match how {
            Leaving::Removed => (&["333"], &["110", "333"]),
            Leaving::Quietly | Leaving::Asked => (&[], &["110"]),
        };
        for occ in state.occupants.values() {
            out.push(Routed {
                to: occ.key.clone(),
                xml: self.occupant_presence(room, &nick, &occ.jid, gone.owner, others, true),
            });
        }
        if how != Leaving::Quietly {
            out.push(Routed {
                to: key.clone(),
                xml: self.occupant_presence(room, &nick, &gone.jid, gone.owner, own, true),
            });
        }
        if state.occupants.is_empty() {
            tracing::debug!(session = key.log_number(), "room vanished");
        } else {
            self.rooms.insert(room.to_owned(), state);
        }
    }

    /// Routes a message addressed to the service (`to`, from [`Self::target`]) whose
    /// payload passed the policy: groupchat to a room, chat to an occupant, from an
    /// occupant of that room.
    pub fn message(
        &self,
        key: &K,
        from: &FullJid,
        m: &MessageStanza,
        payload: &str,
        room: Option<&str>,
        nick: Option<&str>,
    ) -> Vec<Routed<K>> {
        let mut out = Vec::new();
        let error = |kind, condition, text: &str| Routed {
            to: key.clone(),
            xml: message_error(m, from, kind, condition, text),
        };
        let Some(room) = room else {
            out.push(error("cancel", "service-unavailable", "not a room"));
            return out;
        };
        let sender_nick = self.members.get(key).and_then(|s| s.get(room));
        let (Some(sender_nick), Some(state)) = (sender_nick, self.rooms.get(room)) else {
            out.push(error(
                "cancel",
                "not-acceptable",
                "not an occupant of this room",
            ));
            return out;
        };
        let sender_room_jid = self.room_jid(room, Some(sender_nick));
        match (m.kind, nick) {
            (MessageKind::Groupchat, None) => {
                for occ in state.occupants.values() {
                    out.push(Routed {
                        to: occ.key.clone(),
                        xml: relayed(
                            m,
                            payload,
                            &sender_room_jid,
                            occ.jid.as_str(),
                            "groupchat",
                            false,
                        ),
                    });
                }
            }
            (MessageKind::Chat, Some(nick)) => match state.occupants.get(nick) {
                Some(occ) => out.push(Routed {
                    to: occ.key.clone(),
                    xml: relayed(m, payload, &sender_room_jid, occ.jid.as_str(), "chat", true),
                }),
                None => out.push(error("cancel", "item-not-found", "no such occupant")),
            },
            _ => out.push(error(
                "modify",
                "bad-request",
                "groupchat goes to the room, chat to an occupant",
            )),
        }
        out
    }

    /// Answers an iq addressed to the service or a room: `None` when it is addressed
    /// elsewhere, `Some("")` for a result or error (never answered).
    pub fn iq(&self, from: &str, iq: &IqStanza) -> Option<String> {
        let to = iq.to.as_ref()?;
        let (room, nick) = self.target(to)?;
        if matches!(iq.kind, IqKind::Result | IqKind::Error) {
            return Some(String::new());
        }
        let child = iq.child.as_ref();
        let ns = child.map(|c| c.ns()).unwrap_or_default();
        let result = |query: Option<Out>| {
            let mut iq_out = Out::new("iq")
                .attr("type", "result")
                .attr("from", to.as_str())
                .attr("to", from)
                .attr("id", iq.id.as_str());
            if let Some(q) = query {
                iq_out = iq_out.child(q);
            }
            iq_out.to_xml()
        };
        let error = |kind, condition| {
            ErrorReply {
                stanza: "iq",
                from: to.as_str(),
                to: from,
                id: Some(&iq.id),
                kind,
                condition,
                text: None,
            }
            .to_xml()
        };
        let reply = match (room, nick, iq.kind, ns.as_str()) {
            (None, None, IqKind::Get, NS_DISCO_INFO) => {
                let mut q = Out::ns("query", NS_DISCO_INFO)
                    .child(
                        Out::new("identity")
                            .attr("category", "conference")
                            .attr("type", "text")
                            .attr("name", "Cryptocat rooms"),
                    )
                    .child(Out::new("feature").attr("var", NS_DISCO_INFO))
                    .child(Out::new("feature").attr("var", NS_MUC))
                    // Rooms here relay only Cryptocat payloads (plaintext is refused).
                    .child(Out::new("feature").attr("var", NS_PAYLOAD));
                for f in self.features {
                    q = q.child(Out::new("feature").attr("var", *f));
                }
                result(Some(q))
            }
            (None, None, IqKind::Get, NS_DISCO_ITEMS) => {
                result(Some(Out::ns("query", NS_DISCO_ITEMS)))
            }
            (Some(room), None, IqKind::Get, NS_DISCO_INFO) if self.rooms.contains_key(room) => {
                let mut q = Out::ns("query", NS_DISCO_INFO).child(
                    Out::new("identity")
                        .attr("category", "conference")
                        .attr("type", "text"),
                );
                for f in [
                    NS_MUC,
                    "muc_temporary",
                    "muc_open",
                    "muc_semianonymous",
                    "muc_unmoderated",
                ] {
                    q = q.child(Out::new("feature").attr("var", f));
                }
                result(Some(q))
            }
            (Some(room), None, IqKind::Get, NS_DISCO_INFO | NS_DISCO_ITEMS)
                if !self.rooms.contains_key(room) =>
            {
                error("cancel", "item-not-found")
            }
            (Some(_), None, IqKind::Get, NS_DISCO_ITEMS) => {
                result(Some(Out::ns("query", NS_DISCO_ITEMS)))
            }
            // Accept the instant-room request of clients that configure new rooms.
            (Some(room), None, IqKind::Set, NS_MUC_OWNER) if self.rooms.contains_key(room) => {
                result(None)
            }
            _ => error("cancel", "service-unavailable"),
        };
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUC: &str = "conference.example.org";

    fn jid(s: &str) -> FullJid {
        FullJid::new(s).unwrap()
    }

    fn join(room: &str, nick: &str) -> PresenceStanza {
        PresenceStanza {
            to: Some(Jid::new(&format!("{room}@{MUC}/{nick}")).unwrap()),
            id: None,
            kind: PresenceKind::Available,
        }
    }

    fn leave(room: &str, nick: &str) -> PresenceStanza {
        PresenceStanza {
            kind: PresenceKind::Unavailable,
            ..join(room, nick)
        }
    }

    fn joiner(key: &FullJid) -> Joiner<'_, FullJid> {
        Joiner {
            key,
            jid: key,
            key_bound: false,
        }
    }

    fn limits() -> RoomLimits {
        RoomLimits {
            rooms_per_member: 2,
            occupants_per_room: 3,
            members: 3,
        }
    }

    #[test]
    fn occupants_behind_a_host_server_join_chat_and_leave() {
        let mut rooms: Rooms<FullJid> = Rooms::new(MUC, limits());
        let (a, b) = (jid("a@example.org/x"), jid("b@remote.example/y"));
        let out = rooms.presence(joiner(&a), &join("r", "n1"));
        assert_eq!(out.len(), 2, "self-presence (110, 201) and the subject");
        assert!(out[0].xml.contains("code='201'") && out[0].to == a);
        let out = rooms.presence(joiner(&b), &join("r", "n2"));
        // a learns of b under its room JID only.
        let to_a: Vec<&Routed<FullJid>> = out.iter().filter(|r| r.to == a).collect();
        assert_eq!(to_a.len(), 1);
        assert!(to_a[0].xml.contains(&format!("from='r@{MUC}/n2'")));
        assert!(!to_a[0].xml.contains("remote.example"), "{}", to_a[0].xml);

        let m = MessageStanza {
            to: Some(Jid::new(&format!("r@{MUC}")).unwrap()),
            id: Some("m1".into()),
            kind: MessageKind::Groupchat,
            payload: Ok("AAAA".into()),
        };
        let (room, nick) = rooms.target(m.to.as_ref().unwrap()).unwrap();
        let out = rooms.message(&a, &a, &m, "AAAA", room, nick);
        assert_eq!(out.len(), 2, "to both occupants, sender included");
        assert!(out
            .iter()
            .all(|r| r.xml.contains(&format!("from='r@{MUC}/n1'"))));
        // A stranger is not an occupant.
        let c = jid("c@example.org/z");
        let out = rooms.message(&c, &c, &m, "AAAA", room, nick);
        assert!(out[0].xml.contains("not-acceptable"));
        // Private: to one occupant, through its nickname.
        let p = MessageStanza {
            to: Some(Jid::new(&format!("r@{MUC}/n1")).unwrap()),
            kind: MessageKind::Chat,
            ..m.clone()
        };
        let (room, nick) = rooms.target(p.to.as_ref().unwrap()).unwrap();
        let out = rooms.message(&b, &b, &p, "AAAA", room, nick);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, a);
        assert!(out[0].xml.contains(&format!("from='r@{MUC}/n2'")));

        let out = rooms.presence(joiner(&b), &leave("r", "n2"));
        assert_eq!(out.len(), 2, "to a, and b's own unavailable presence");
        assert_eq!(rooms.member_count(), 1);
        let out = rooms.leave_all(&a);
        assert!(out.is_empty(), "nobody left to tell");
        assert_eq!((rooms.room_count(), rooms.member_count()), (0, 0));
    }

    /// What joins can make the service keep: members in total, rooms per member,
    /// occupants per room; each counted, refused past its limit, freed on leaving.
    #[test]
    fn members_rooms_and_occupants_are_bounded_and_freed() {
        let mut rooms: Rooms<FullJid> = Rooms::new(MUC, limits());
        let people: Vec<FullJid> = (0..5)
            .map(|i| jid(&format!("u{i}@example.org/r")))
            .collect();
        for (i, p) in people.iter().enumerate().take(3) {
            let out = rooms.presence(joiner(p), &join("one", &format!("n{i}")));
            assert!(!out.iter().any(|r| r.xml.contains("type='error'")));
        }
        // The room is full (3), and so is the service (3 members).
        let out = rooms.presence(joiner(&people[3]), &join("one", "n3"));
        assert!(out[0].xml.contains("too many occupants"), "{}", out[0].xml);
        let out = rooms.presence(joiner(&people[0]), &join("two", "n0"));
        assert!(!out[0].xml.contains("type='error'"));
        let out = rooms.presence(joiner(&people[0]), &join("three", "n0"));
        assert!(out[0].xml.contains("too many rooms"), "{}", out[0].xml);
        assert_eq!(
            (
                rooms.member_count(),
                rooms.occupant_count(),
                rooms.room_count()
            ),
            (3, 4, 2)
        );
        // A full room refuses a member it would otherwise take.
        rooms.leave_all(&people[2]);
        let out = rooms.presence(joiner(&people[2]), &join("one", "n2"));
        assert!(!out[0].xml.contains("type='error'"));
        let out = rooms.presence(joiner(&people[1]), &join("one", "again"));
        assert!(out[0].xml.contains("nickname changes"));
        for p in &people {
            rooms.leave_all(p);
        }
        assert_eq!(
            (
                rooms.member_count(),
                rooms.occupant_count(),
                rooms.room_count()
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_required_key_proof_refuses_joiners_without_one() {
        let mut rooms: Rooms<FullJid> =
            Rooms::new(MUC, limits()).with_require_key_bound(true, "prove your key");
        let a = jid("a@example.org/x");
        let out = rooms.presence(joiner(&a), &join("r", "n"));
        assert!(out[0].xml.contains("not-allowed") && out[0].xml.contains("prove your key"));
        assert_eq!(rooms.member_count(), 0);
        let proven = Joiner {
            key_bound: true,
            ..joiner(&a)
        };
        let out = rooms.presence(proven, &join("r", "n"));
        assert!(!out[0].xml.contains("type='error'"));
    }

    #[test]
    fn shutting_down_tells_every_occupant_and_forgets_everything() {
        let mut rooms: Rooms<FullJid> = Rooms::new(MUC, limits());
        let (a, b) = (jid("a@example.org/x"), jid("b@example.org/y"));
        rooms.presence(joiner(&a), &join("r", "n1"));
        rooms.presence(joiner(&b), &join("r", "n2"));
        rooms.presence(joiner(&b), &join("s", "n2"));
        let out = rooms.shut_down();
        assert_eq!(out.len(), 3);
        assert!(out
            .iter()
            .all(|r| r.xml.contains("code='332'") && r.xml.contains("type='unavailable'")));
        assert_eq!((rooms.member_count(), rooms.room_count()), (0, 0));
    }
}
