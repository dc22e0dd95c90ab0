//! The group protocol of a room: mpOTR-style, on top of the pairwise sessions of part 1.
//!
//! A [`Room`] is a sans-IO state machine. The caller feeds it what the transport saw
//! (occupants appearing and leaving, private and room-wide payloads, the passing of time)
//! and drains what it wants sent ([`Room::poll_transmit`]) and what happened
//! ([`Room::poll_event`]).
//!
//! How it works, in short (`docs/protocol.md` has the details):
//! - Every pair of members runs the DAKEZ handshake of part 1 over private messages; the
//!   first content on each session is a [`wire::GroupProfile`] with the nickname, so the
//!   server never sees nicknames. Occupant names are derived from identity keys
//!   ([`occupant_name`]), so the server cannot swap keys under a name.
//! - An *epoch* is a roster (addresses and identity keys) and a counter. On every join and
//!   leave, and after [`RoomConfig::rekey_after_messages`] messages or
//!   [`RoomConfig::rekey_after_ms`], each member enters a new epoch: it draws a fresh
//!   sender chain key and one origin-MAC key per member, and sends each member an
//!   [`wire::EpochKey`] over their pairwise session. That message is also its attestation:
//!   it lists the roster with the nickname hash of every member as the sender knows it,
//!   and the sender's view of the previous epoch (one acknowledgement per sender). The
//!   epoch is usable when every member's keys arrived; a differing nickname or key raises
//!   an alarm naming the member; a member that never answers is reported and dropped.
//! - A group message is encrypted once (AES-256-GCM under the sender's chain, one key per
//!   message) and carries one 16-byte HMAC per recipient under the pairwise MAC keys:
//!   deniable origin authentication, no signature. Each message names the hash of the
//!   sender's previous one, and acknowledgements `(sender, index, hash)` ride inside
//!   messages and idle heartbeats. So every member learns how far each of its messages is
//!   confirmed, and any two members holding different messages at one index find out
//!   within one heartbeat.

pub(crate) mod epoch;
mod pending;
pub mod wire;

use std::collections::{BTreeMap, VecDeque};

use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRngCore;

use self::epoch::{epoch_tag, Epoch, Finding};
pub use self::epoch::{GroupReceiveError, GROUP_MAX_SKIP};
use self::pending::PerOccupant;
pub use self::pending::{
    MAX_BUFFERED, MAX_BUFFERED_BYTES, MAX_BUFFERED_PER_SENDER, MAX_EARLY, MAX_EARLY_BYTES,
};
use self::wire::{
    Ack, BodyKind, EpochKey, EpochTag, GroupBody, GroupMessage, GroupProfile, RosterEntry,
    MAX_ADDRESS_BYTES, MAX_MEMBERS, MAX_NICKNAME_BYTES,
};
use crate::content::{Content, MAX_TEXT_BYTES};
use crate::dake::{self, AwaitingAuthI, AwaitingAuthR, DakeContext, DakeError};
use crate::fingerprint::Fingerprint;
use crate::identity::Identity;
use crate::kdf::{self, label, Secret32};
use crate::message::Message;
use crate::session::{ReceiveError, Session, SessionEvent, VerifyError};
use crate::smp::SmpEvent;
use crate::wire::DecodeError;
use crate::Timestamp;

/// Timers and policies of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// An idle member that owes acknowledgements sends a heartbeat this long after the
    /// first unacknowledged message arrived.
    pub heartbeat_ms: u64,
    /// A message of ours not confirmed by everyone this long after sending is flagged; a
    /// gap in someone's chain this old is reported.
    pub confirm_timeout_ms: u64,
    /// A member whose epoch keys have not arrived this long after we entered the epoch is
    /// reported and left out of the next epoch.
    pub attest_timeout_ms: u64,
    /// A handshake not finished this long after the member appeared is abandoned.
    pub handshake_timeout_ms: u64,
    /// How long the keys of a finished epoch are kept for messages still in flight.
    pub old_epoch_grace_ms: u64,
    /// A new epoch after this many messages in the current one.
    pub rekey_after_messages: u32,
    /// A new epoch after this long.
    pub rekey_after_ms: u64,
    /// Require every member's occupant name to be [`occupant_name`] of its identity key.
    pub require_bound_names: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 2_000,
            confirm_timeout_ms: 15_000,
            attest_timeout_ms: 20_000,
            handshake_timeout_ms: 20_000,
            old_epoch_grace_ms: 30_000,
            rekey_after_messages: 100,
            rekey_after_ms: 10 * 60 * 1000,
            require_bound_names: true,
        }
    }
}

/// The occupant name (MUC nickname as the server sees it) bound to an identity key: 26
/// lowercase base32 characters of `SHA-256("…/occupant", key)`. Never the person's
/// nickname.
pub fn occupant_name(key: &VerifyingKey) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let hash = kdf::hash(label::OCCUPANT, &[key.as_bytes()]);
    let mut out = String::with_capacity(26);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in hash.iter().take(16) {
        acc = (acc << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let idx = ((acc >> bits) & 31) as usize;
            out.push(char::from(*ALPHABET.get(idx).unwrap_or(&b'a')));
        }
    }
    if bits > 0 {
        let idx = ((acc << (5 - bits)) & 31) as usize;
        out.push(char::from(*ALPHABET.get(idx).unwrap_or(&b'a')));
    }
    out
}

fn nickname_hash(nickname: &str) -> [u8; 32] {
    kdf::hash(label::NICKNAME, &[nickname.as_bytes()])
}

/// Where a payload goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Broadcast to the room (an XMPP groupchat message).
    Room,
    /// A private message to one occupant.
    Member(String),
}

/// A payload to send. The bytes are ciphertext or public handshake data.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub to: Destination,
    /// What: an encoded [`Message`] (private) or [`GroupMessage`] (room).
    pub payload: Vec<u8>,
}

impl core::fmt::Debug for Transmit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let to = match self.to {
            Destination::Room => "room",
            Destination::Member(_) => "member",
        };
        f.debug_struct("Transmit")
            .field("to", &to)
            .field("bytes", &self.payload.len())
            .finish()
    }
}

/// Names one group message: its epoch, its sender's roster position, its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Epoch tag.
    pub epoch: EpochTag,
    /// Sender's position in the epoch roster.
    pub sender: u16,
    /// Index in the sender's chain.
    pub index: u32,
}

impl core::fmt::Display for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.epoch.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{}-{}", self.sender, self.index)
    }
}

/// Something the people in the room should be told about: every variant means the server
/// or a member misbehaved, or a member stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// `reported_by` knows `member` under another nickname than we do: `member` told
    /// different people different names (or `reported_by` lies about it).
    NicknameMismatch {
        /// The member whose nickname differs.
        member: String,
        /// Who reported the other nickname.
        reported_by: String,
    },
    /// `reported_by` sees another identity key for `member`: the server is showing
    /// different keys to different people.
    RosterSplit {
        /// The member with two keys.
        member: String,
        /// Who sees the other key.
        reported_by: String,
    },
    /// `reported_by` holds a different message from `sender` at `index` than we do: the
    /// sender equivocated (or `reported_by` lies about it).
    Equivocation {
        /// The sender.
        sender: String,
        /// The index.
        index: u32,
        /// Who holds the other message.
        reported_by: String,
    },
    /// A member acknowledged a message of ours with a hash we never sent.
    FalseAcknowledgement {
        /// Who.
        reported_by: String,
    },
    /// A message's link to the sender's previous message does not match.
    ChainBroken {
        /// The sender.
        sender: String,
        /// The index whose link is wrong.
        index: u32,
    },
    /// A message claiming to come from `claimed_sender` failed its origin MAC: a forgery
    /// by another member or an injection.
    ForgedOrigin {
        /// Who it claimed to be from.
        claimed_sender: String,
    },
    /// These members never sent their keys for the epoch; they are left out of the next.
    AttestationTimeout {
        /// Who is missing.
        missing: Vec<String>,
    },
    /// `reported_by` sees `member` in the room, but the server does not show it to us (or
    /// shows it to us under no key): the server presents different rosters.
    HiddenMember {
        /// The member we do not see.
        member: String,
        /// Who sees it.
        reported_by: String,
    },
    /// A message from `sender` passed its origin MAC (only the sender could make it) but
    /// did not decrypt or parse: the sender's client is broken or hostile.
    Garbled {
        /// The sender.
        sender: String,
    },
    /// A handshake with this member did not finish in time; it is left out.
    HandshakeTimeout {
        /// Who.
        member: String,
    },
    /// Our message was not confirmed by everyone in time (withheld by the server?).
    Unconfirmed {
        /// The message.
        id: MessageId,
        /// Who has not confirmed it.
        missing: Vec<String>,
    },
    /// Someone's message is known to exist (others acknowledged it or later ones arrived)
    /// but never reached us (withheld?).
    Missing {
        /// The sender.
        sender: String,
        /// The first index we lack.
        index: u32,
    },
    /// The member's identity key changed since we last had a session.
    KeyChanged {
        /// Who.
        member: String,
    },
    /// Two members use the same nickname.
    NicknameTaken {
        /// The nickname.
        nickname: String,
        /// Their addresses.
        members: Vec<String>,
    },
    /// The member's occupant name is not derived from its key; it is left out.
    UnboundOccupantName {
        /// Who.
        member: String,
    },
    /// The member's session was made for another room; it is left out.
    RoomMismatch {
        /// Who.
        member: String,
    },
}

/// What happened in the room. Events carry user data (nicknames, texts, addresses): show
/// them, never log them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A member completed its handshake and told us its nickname.
    MemberJoined {
        /// Occupant address.
        address: String,
        /// Nickname.
        nickname: String,
        /// Identity fingerprint.
        fingerprint: Fingerprint,
    },
    /// A member left.
    MemberLeft {
        /// Occupant address.
        address: String,
        /// Nickname, if it was known.
        nickname: Option<String>,
    },
    /// A new epoch is attested by everyone and usable.
    EpochReady {
        /// Epoch counter.
        counter: u64,
        /// Members including us.
        members: usize,
    },
    /// One of our queued texts went out under this id.
    Sent {
        /// The id returned by [`Room::send_text`].
        local_id: u64,
        /// The message id.
        id: MessageId,
    },
    /// A group message.
    Message {
        /// Its id.
        id: MessageId,
        /// Sender address.
        from: String,
        /// Sender nickname.
        nickname: String,
        /// The text.
        text: String,
    },
    /// A private (one-to-one) message.
    PrivateMessage {
        /// Sender address.
        from: String,
        /// Sender nickname.
        nickname: String,
        /// The text.
        text: String,
    },
    /// Confirmation progress of one of our messages.
    Confirmation {
        /// The message.
        id: MessageId,
        /// How many other members confirmed it.
        confirmed: usize,
        /// Of how many.
        of: usize,
    },
    /// Question-and-answer verification with a member.
    Verification {
        /// The member.
        member: String,
        /// What happened.
        event: SmpEvent,
    },
    /// Something is wrong.
    Alarm(Alarm),
}

/// A call the room refused (API misuse or local limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The nickname is empty, too long, or has control characters.
    #[error("nickname must be 1 to {MAX_NICKNAME_BYTES} bytes without control characters")]
    BadNickname,
    /// The room name or address is empty or too long.
    #[error("room name or address must be 1 to {MAX_ADDRESS_BYTES} bytes")]
    BadAddress,
    /// Our own occupant address is not bound to our key.
    #[error("our occupant name must be derived from our identity key")]
    UnboundOwnAddress,
    /// The text is too long.
    #[error("message text is {len} bytes, above the limit of {max}")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No established session with that member.
    #[error("no established session with that member")]
    NoSession,
    /// We already left.
    #[error("already left the room")]
    Left,
    /// Verification could not start or continue.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Why an incoming payload was dropped. None of these carry user data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncomingError {
    /// Not a valid message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// From an occupant we do not know (or ourselves).
    #[error("payload from an unknown occupant")]
    UnknownSender,
    /// A group message sent privately (a pairwise message sent to the room fails to
    /// decode as a group message instead).
    #[error("payload arrived on the wrong channel")]
    WrongChannel,
    /// A handshake message that does not fit the handshake state.
    #[error("unexpected handshake message")]
    UnexpectedHandshake,
    /// The handshake failed.
    #[error(transparent)]
    Dake(#[from] DakeError),
    /// A pairwise data message was refused.
    #[error(transparent)]
    Pairwise(#[from] ReceiveError),
    /// A group message was refused.
    #[error(transparent)]
    Group(#[from] GroupReceiveError),
    /// The group message's sender position does not match the occupant it came from.
    #[error("group message sender does not match its origin")]
    SenderMismatch,
    /// An epoch message that is malformed or does not list us and its sender correctly.
    #[error("invalid epoch key message")]
    BadEpochKey,
    /// A pairwise content that makes no sense here (e.g. a profile for another room).
    #[error("unexpected content on a pairwise session")]
    UnexpectedContent,
    /// A pairwise data message from a member with no session, while we wait for no Auth-I
    /// from it: nothing could ever decrypt it, so it is not kept.
    #[error("data message from a member with no session and no handshake waiting for it")]
    NoSession,
    /// An Identity message not answered: we answered another from the same member less
    /// than a quarter of the handshake timeout ago (an honest initiator restarts no faster
    /// than every half timeout).
    #[error("handshake restarted too soon after the last one; ignored")]
    HandshakeThrottled,
}

enum Handshake {
    Idle,
    Initiated(Box<AwaitingAuthR>),
    Responded(Box<AwaitingAuthI>),
}

/// Why a present member is left out of our view of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exclusion {
    /// Not left out.
    No,
    /// Its handshake timed out; we try again at `retry_at`.
    Retrying,
    /// It never sent its epoch keys; it is back once it sends any.
    UntilHeard,
    /// Its name is not bound to its key, or its session is for another room.
    Permanent,
}

struct Member {
    present: bool,
    excluded: Exclusion,
    retry_at: Option<Timestamp>,
    retry_backoff_ms: u64,
    timeout_reported: bool,
    /// Hashes of the Identity messages we answered while this member was present, the
    /// newest last (at most [`ANSWERED_REMEMBERED`]): a replay of any is ignored.
    answered: VecDeque<[u8; 32]>,
    /// When we last answered an Identity from this member.
    answered_at: Option<Timestamp>,
    /// When `proposal` arrived, and whether its unknown members were reported.
    proposal_at: Timestamp,
    hidden_reported: bool,
    since: Timestamp,
    handshake: Handshake,
    initiated_fallback: bool,
    session: Option<Session>,
    identity_key: Option<VerifyingKey>,
    nickname: Option<String>,
    announced: bool,
    proposal: Option<EpochKey>,
}

impl Member {
    fn new(now: Timestamp) -> Self {
        Self {
            present: true,
            excluded: Exclusion::No,
            retry_at: None,
            retry_backoff_ms: 0,
            timeout_reported: false,
            answered: VecDeque::new(),
            answered_at: None,
            proposal_at: now,
            hidden_reported: false,
            since: now,
            handshake: Handshake::Idle,
            initiated_fallback: false,
            session: None,
            identity_key: None,
            nickname: None,
            announced: false,
            proposal: None,
        }
    }

    fn ready(&self) -> bool {
        self.present
            && self.excluded == Exclusion::No
            && self.session.is_some()
            && self.nickname.is_some()
    }

    fn pending(&self) -> bool {
        self.present && self.excluded == Exclusion::No && !self.ready()
    }
}

/// Longest wait between two handshake retries with an unresponsive member.
const MAX_RETRY_BACKOFF_MS: u64 = 10 * 60 * 1000;
/// How far a proposed epoch counter may run ahead of the highest we know.
const MAX_COUNTER_JUMP: u64 = 1 << 20;
/// Most remembered nicknames of members who left (for messages still in flight).
const MAX_FORMER: usize = 256;
/// Identity digests remembered per member, so that replays are not answered.
const ANSWERED_REMEMBERED: usize = 16;
/// Most old epochs kept for messages in flight.
const MAX_OLD_EPOCHS: usize = 4;

/// A room, from one member's point of view.
pub struct Room {
    config: RoomConfig,
    identity: std::sync::Arc<Identity>,
    room: String,
    me: String,
    nickname: String,
    members: BTreeMap<String, Member>,
    /// Nicknames of members who left, for their messages still in flight.
    former: VecDeque<(String, String)>,
    current: Option<Epoch>,
    old: Vec<Epoch>,
    max_counter: u64,
    outbox: VecDeque<Transmit>,
    events: VecDeque<RoomEvent>,
    queued: VecDeque<(u64, String)>,
    next_local_id: u64,
    /// Pairwise data messages that overtook a member's Auth-I.
    early: PerOccupant<Vec<u8>>,
    /// Group messages held back while their epoch or keys are on the way.
    buffered: PerOccupant<GroupMessage>,
    left: bool,
    /// The last time timers were run: deadlines at or before it are not reported again
    /// (their conditions are re-checked whenever timers run next).
    timers_ran: Timestamp,
}

impl core::fmt::Debug for Room {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Room")
            .field("members", &self.members.len())
            .field("epoch", &self.current.as_ref().map(|e| e.counter))
            .finish_non_exhaustive()
    }
}

/// What a room holds because of what others sent: the figures an attacker controls.
/// For diagnostics, tests and the attack benchmark; sizes are payload bytes plus the
/// size of each entry's own struct (allocator overhead not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retained {
    /// Pairwise data messages kept for members whose handshake has not finished.
    pub early_bytes: usize,
    /// Group messages kept for an epoch we do not hold, or for keys not yet arrived.
    pub buffered_bytes: usize,
    /// Group message keys kept for skipped messages, in every epoch held.
    pub group_skipped_keys: usize,
    /// Pairwise message keys kept for skipped messages, in every session.
    pub pairwise_skipped_keys: usize,
}

/// Bytes one stored skipped key takes, as counted by [`Retained::total_bytes`]: the key,
/// its index and, for pairwise keys, the ratchet key it belongs to.
const SKIPPED_KEY_BYTES: usize = 32 + 4 + 32;

impl Retained {
    /// Everything above in bytes.
    pub fn total_bytes(&self) -> usize {
        self.early_bytes
            .saturating_add(self.buffered_bytes)
            .saturating_add(
                self.group_skipped_keys
                    .saturating_add(self.pairwise_skipped_keys)
                    .saturating_mul(SKIPPED_KEY_BYTES),
            )
    }
}

/// Public facts about a member, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Occupant address.
    pub address: String,
    /// Nickname, once known.
    pub nickname: Option<String>,
    /// Identity fingerprint, once the handshake finished.
    pub fingerprint: Option<Fingerprint>,
    /// In the current epoch's roster.
    pub in_epoch: bool,
}

fn valid_nickname(nick: &str) -> bool {
    !nick.trim().is_empty()
        && nick.len() <= MAX_NICKNAME_BYTES
        && !nick.chars().any(char::is_control)
}

impl Room {
    /// Joins a room as `our_address` (the occupant JID the server gave us) with a
    /// nickname. With the default config `our_address` must end in
    /// `/` + [`occupant_name`] of our key.
    pub fn new(
        identity: impl Into<std::sync::Arc<Identity>>,
        config: RoomConfig,
        room: &str,
        our_address: &str,
        nickname: &str,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, RoomError> {
        // Shared with the transport's key-challenge login when the caller passes an Arc.
        let identity: std::sync::Arc<Identity> = identity.into();
        if !valid_nickname(nickname) {
            return Err(RoomError::BadNickname);
        }
        for s in [room, our_address] {
            if s.is_empty() || s.len() > MAX_ADDRESS_BYTES {
                return Err(RoomError::BadAddress);
            }
        }
        if config.require_bound_names
            && our_address != format!("{room}/{}", occupant_name(&identity.verifying_key()))
        {
            return Err(RoomError::UnboundOwnAddress);
        }
        let mut room = Self {
            config,
            identity,
            room: room.to_owned(),
            me: our_address.to_owned(),
            nickname: nickname.to_owned(),
            members: BTreeMap::new(),
            former: VecDeque::new(),
            current: None,
            old: Vec::new(),
            max_counter: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            queued: VecDeque::new(),
            next_local_id: 1,
            early: PerOccupant::new(pending::EARLY),
            buffered: PerOccupant::new(pending::BUFFERED),
            left: false,
            timers_ran: Timestamp(0),
        };
        room.reconsider(now, rng);
        Ok(room)
    }

    /// Our identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Our occupant address.
    pub fn address(&self) -> &str {
        &self.me
    }

    /// Our nickname.
    pub fn nickname(&self) -> &str {
        &self.nickname
    }

    /// The current epoch counter and whether it is attested.
    pub fn epoch(&self) -> Option<(u64, bool)> {
        self.current.as_ref().map(|e| (e.counter, e.attested))
    }

    /// The members we know of (not us).
    pub fn members(&self) -> Vec<MemberInfo> {
        let roster: Vec<&str> = self
            .current
            .as_ref()
            .map(|e| e.roster.iter().map(|r| r.address.as_str()).collect())
            .unwrap_or_default();
        self.members
            .iter()
            .filter(|(_, m)| m.present)
            .map(|(a, m)| MemberInfo {
                address: a.clone(),
                nickname: m.nickname.clone(),
                fingerprint: m.identity_key.as_ref().map(Fingerprint::of),
                in_epoch: roster.contains(&a.as_str()),
            })
            .collect()
    }

    /// What the room holds on others' behalf (see [`Retained`]).
    pub fn retained(&self) -> Retained {
        let early_bytes = self.early.bytes();
        let buffered_bytes = self.buffered.bytes();
        let group_skipped_keys = self
            .current
            .iter()
            .chain(self.old.iter())
            .map(Epoch::skipped_keys)
            .sum();
        let pairwise_skipped_keys = self
            .members
            .values()
            .filter_map(|m| m.session.as_ref())
            .map(Session::stored_skipped_keys)
            .sum();
        Retained {
            early_bytes,
            buffered_bytes,
            group_skipped_keys,
            pairwise_skipped_keys,
        }
    }

    /// The pairwise safety number with a member.
    pub fn safety_number(&self, member: &str) -> Option<crate::fingerprint::SafetyNumber> {
        let key = self.members.get(member)?.identity_key?;
        Some(crate::fingerprint::SafetyNumber::new(
            &self.identity.verifying_key(),
            &key,
        ))
    }

    /// The next payload to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    fn alarm(&mut self, alarm: Alarm) {
        self.events.push_back(RoomEvent::Alarm(alarm));
    }

    fn send_private(&mut self, to: &str, message: &Message) {
        self.outbox.push_back(Transmit {
            to: Destination::Member(to.to_owned()),
            payload: message.encode(),
        });
    }

    fn ctx(&self, initiator: &str, responder: &str) -> DakeContext {
        DakeContext {
            room: self.room.clone(),
            initiator: initiator.to_owned(),
            responder: responder.to_owned(),
        }
    }

    // ---- presence -------------------------------------------------------------------

    /// An occupant is in the room (from the server's presence).
    pub fn member_present(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore, address: &str) {
        if address == self.me
            || self.left
            || address.is_empty()
            || address.len() > MAX_ADDRESS_BYTES
        {
            return;
        }
        if self.members.get(address).is_some_and(|m| m.present) {
            return;
        }
        if self.members.len() + 1 >= MAX_MEMBERS {
            return;
        }
        self.members.insert(address.to_owned(), Member::new(now));
        if self.me.as_str() < address {
            self.initiate(rng, address);
        }
        self.reconsider(now, rng);
    }

    fn initiate(&mut self, rng: &mut impl CryptoRngCore, address: &str) {
        let ctx = self.ctx(&self.me, address);
        if let Ok((state, msg)) = dake::initiate(rng, &self.identity, ctx, None) {
            if let Some(m) = self.members.get_mut(address) {
                m.handshake = Handshake::Initiated(Box::new(state));
            }
            self.send_private(address, &Message::Identity(msg));
        }
    }

    /// An occupant left the room.
    pub fn member_absent(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore, address: &str) {
        self.early.forget(address);
        if let Some(m) = self.members.remove(address) {
            if let Some(nick) = &m.nickname {
                if self.former.len() >= MAX_FORMER {
                    self.former.pop_front(); // the oldest departure
                }
                self.former.push_back((address.to_owned(), nick.clone()));
            }
            if m.announced {
                self.events.push_back(RoomEvent::MemberLeft {
                    address: address.to_owned(),
                    nickname: m.nickname,
                });
            }
        }
        self.reconsider(now, rng);
    }

    // ---- private payloads -----------------------------------------------------------

    /// A private payload from `from` (an encoded [`Message`]).
    pub fn handle_private(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        payload: &[u8],
    ) -> Result<(), IncomingError> {
        if self.left || !self.members.get(from).is_some_and(|m| m.present) {
            return Err(IncomingError::UnknownSender);
        }
        if payload.get(1) == Some(&wire::GROUP_MESSAGE_TYPE) {
            return Err(IncomingError::WrongChannel);
        }
        let msg = Message::decode(payload)?;
        match msg {
            Message::Identity(m) => {
                let digest = kdf::hash(label::HANDSHAKE_DIGEST, &[payload]);
                let we_lead = self.me.as_str() < from;
                let member = self.members.get(from).ok_or(IncomingError::UnknownSender)?;
                if member.answered.contains(&digest) {
                    return Ok(()); // A duplicate or replay of what we already answered.
                }
                if we_lead && matches!(member.handshake, Handshake::Initiated(_)) {
                    // Both started: the smaller address keeps its handshake.
                    return Err(IncomingError::UnexpectedHandshake);
                }
                // One answer per handshake attempt: an honest initiator restarts at half the
                // handshake timeout at the soonest, so a quarter leaves room for delays.
                let interval = self.config.handshake_timeout_ms / 4;
                if member
                    .answered_at
                    .is_some_and(|t| now < t.plus_millis(interval))
                {
                    return Err(IncomingError::HandshakeThrottled);
                }
                let ctx = self.ctx(from, &self.me);
                let (state, reply) = dake::respond(rng, &self.identity, ctx, &m, now)?;
                if let Some(member) = self.members.get_mut(from) {
                    member.handshake = Handshake::Responded(Box::new(state));
                    if member.answered.len() >= ANSWERED_REMEMBERED {
                        member.answered.pop_front();
                    }
                    member.answered.push_back(digest);
                    member.answered_at = Some(now);
                }
                // Data kept for an earlier attempt can never be read now.
                self.early.forget(from);
                self.send_private(from, &Message::AuthR(reply));
                Ok(())
            }
            Message::AuthR(m) => {
                let member = self
                    .members
                    .get_mut(from)
                    .ok_or(IncomingError::UnknownSender)?;
                if !matches!(member.handshake, Handshake::Initiated(_)) {
                    return Err(IncomingError::UnexpectedHandshake);
                }
                let Handshake::Initiated(state) =
                    std::mem::replace(&mut member.handshake, Handshake::Idle)
                else {
                    return Err(IncomingError::UnexpectedHandshake);
                };
                match state.try_handle_auth_r(rng, &self.identity, &m, now) {
                    Ok((session, reply)) => {
                        self.send_private(from, &Message::AuthI(reply));
                        self.install_session(now, rng, from, session);
                        Ok(())
                    }
                    Err(rejected) => {
                        let (state, e) = *rejected;
                        if let Some(member) = self.members.get_mut(from) {
                            member.handshake = Handshake::Initiated(Box::new(state));
                        }
                        Err(e.into())
                    }
                }
            }
            Message::AuthI(m) => {
                let member = self
                    .members
                    .get_mut(from)
                    .ok_or(IncomingError::UnknownSender)?;
                if !matches!(member.handshake, Handshake::Responded(_)) {
                    return Err(IncomingError::UnexpectedHandshake);
                }
                let Handshake::Responded(state) =
                    std::mem::replace(&mut member.handshake, Handshake::Idle)
                else {
                    return Err(IncomingError::UnexpectedHandshake);
                };
                match state.try_handle_auth_i(&self.identity, &m) {
                    Ok(session) => {
                        self.install_session(now, rng, from, session);
                        Ok(())
                    }
                    Err(rejected) => {
                        let (state, e) = *rejected;
                        if let Some(member) = self.members.get_mut(from) {
                            member.handshake = Handshake::Responded(Box::new(state));
                        }
                        Err(e.into())
                    }
                }
            }
            Message::Data(m) => {
                let member = self
                    .members
                    .get_mut(from)
                    .ok_or(IncomingError::UnknownSender)?;
                let Some(session) = member.session.as_mut() else {
                    // It may have overtaken the Auth-I we wait for: keep it until then.
                    let waiting =
                        member.pending() && matches!(member.handshake, Handshake::Responded(_));
                    if !waiting {
                        return Err(IncomingError::NoSession);
                    }
                    self.early.push(from, payload.to_vec(), now);
                    return Ok(());
                };
                let event = session.handle_data(rng, &m)?;
                let mut replies = Vec::new();
                while let Some(r) = session.poll_transmit() {
                    replies.push(r);
                }
                for r in replies {
                    self.send_private(from, &Message::Data(r));
                }
                match event {
                    None => Ok(()),
                    Some(SessionEvent::Text(text)) => {
                        let nickname = self.members.get(from).and_then(|m| m.nickname.clone());
                        let Some(nickname) = nickname else {
                            return Err(IncomingError::UnexpectedContent);
                        };
                        self.events.push_back(RoomEvent::PrivateMessage {
                            from: from.to_owned(),
                            nickname,
                            text,
                        });
                        Ok(())
                    }
                    Some(SessionEvent::Smp(event)) => {
                        self.events.push_back(RoomEvent::Verification {
                            member: from.to_owned(),
                            event,
                        });
                        Ok(())
                    }
                    Some(SessionEvent::Group(Content::GroupProfile(p))) => {
                        self.handle_profile(now, rng, from, p)
                    }
                    Some(SessionEvent::Group(Content::EpochKey(k))) => {
                        self.handle_epoch_key(now, rng, from, k)
                    }
                    Some(SessionEvent::Group(_)) => Err(IncomingError::UnexpectedContent),
                }
            }
        }
    }

    fn install_session(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        session: Session,
    ) {
        let key = *session.their_profile().identity_key();
        let bound = !self.config.require_bound_names
            || from == format!("{}/{}", self.room, occupant_name(&key));
        let Some(member) = self.members.get_mut(from) else {
            return;
        };
        let changed = member.identity_key.is_some_and(|old| old != key);
        member.identity_key = Some(key);
        if !bound {
            member.excluded = Exclusion::Permanent;
            self.alarm(Alarm::UnboundOccupantName {
                member: from.to_owned(),
            });
            self.reconsider(now, rng);
            return;
        }
        member.session = Some(session);
        if member.excluded == Exclusion::Retrying {
            member.excluded = Exclusion::No;
            member.retry_at = None;
        }
        member.retry_backoff_ms = 0;
        member.timeout_reported = false;
        if changed {
            member.nickname = None;
            member.announced = false;
            self.alarm(Alarm::KeyChanged {
                member: from.to_owned(),
            });
        }
        let profile = Content::GroupProfile(GroupProfile {
            room: self.room.clone(),
            nickname: self.nickname.clone(),
        });
        let sent = self
            .members
            .get_mut(from)
            .and_then(|m| m.session.as_mut())
            .and_then(|s| s.encrypt(rng, &profile).ok());
        if let Some(msg) = sent {
            self.send_private(from, &Message::Data(msg));
        }
        for payload in self.early.take(from) {
            let _ = self.handle_private(now, rng, from, &payload);
        }
        self.reconsider(now, rng);
    }

    fn handle_profile(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        profile: GroupProfile,
    ) -> Result<(), IncomingError> {
        let room_ok = profile.room == self.room;
        let nick_ok = valid_nickname(&profile.nickname);
        let member = self
            .members
            .get_mut(from)
            .ok_or(IncomingError::UnknownSender)?;
        if !room_ok {
            member.excluded = Exclusion::Permanent;
            self.alarm(Alarm::RoomMismatch {
                member: from.to_owned(),
            });
            self.reconsider(now, rng);
            return Err(IncomingError::UnexpectedContent);
        }
        if !nick_ok {
            return Err(IncomingError::UnexpectedContent);
        }
        if member.nickname.is_some() {
            return Err(IncomingError::UnexpectedContent);
        }
        member.nickname = Some(profile.nickname.clone());
        let fingerprint = member.identity_key.as_ref().map(Fingerprint::of);
        if let Some(fingerprint) = fingerprint {
            member.announced = true;
            self.events.push_back(RoomEvent::MemberJoined {
                address: from.to_owned(),
                nickname: profile.nickname.clone(),
                fingerprint,
            });
        }
        let mut same: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.present && m.nickname.as_deref() == Some(profile.nickname.as_str()))
            .map(|(a, _)| a.clone())
            .collect();
        if profile.nickname == self.nickname {
            same.push(self.me.clone());
        }
        if same.len() > 1 {
            same.sort();
            self.alarm(Alarm::NicknameTaken {
                nickname: profile.nickname,
                members: same,
            });
        }
        self.reconsider(now, rng);
        Ok(())
    }

    // ---- epochs ---------------------------------------------------------------------

    fn view(&self) -> Vec<RosterEntry> {
        let mut roster = vec![RosterEntry {
            address: self.me.clone(),
            identity_key: self.identity.verifying_key().to_bytes(),
            nickname_hash: nickname_hash(&self.nickname),
        }];
        for (address, m) in &self.members {
            if let (true, Some(key), Some(nick)) = (m.ready(), m.identity_key, m.nickname.as_ref())
            {
                roster.push(RosterEntry {
                    address: address.clone(),
                    identity_key: key.to_bytes(),
                    nickname_hash: nickname_hash(nick),
                });
            }
        }
        roster.sort_by(|a, b| a.address.cmp(&b.address));
        roster
    }

    fn same_members(a: &[RosterEntry], b: &[RosterEntry]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.address == y.address && x.identity_key == y.identity_key)
    }

    fn stable(&self) -> bool {
        !self.members.values().any(Member::pending)
    }

    /// Enters the epoch that matches our view of the room, if it changed.
    fn reconsider(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        self.reconsider_epoch(now, rng);
        // A settled room may have texts waiting (e.g. after a handshake gave up).
        self.flush_queued(now);
    }

    fn reconsider_epoch(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        if self.left || !self.stable() {
            return;
        }
        let view = self.view();
        if let Some(cur) = &self.current {
            if Self::same_members(&cur.roster, &view) {
                return;
            }
        }
        let current_counter = self.current.as_ref().map_or(0, |e| e.counter);
        // Adopt the highest proposal that matches our view, else propose our own.
        let adopt = self
            .members
            .values()
            .filter_map(|m| m.proposal.as_ref())
            .filter(|p| p.counter > current_counter && Self::same_members(&p.roster, &view))
            .map(|p| p.counter)
            .max();
        let counter = adopt.unwrap_or(self.max_counter.saturating_add(1));
        self.enter_epoch(now, rng, counter, view);
    }

    fn enter_epoch(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        counter: u64,
        roster: Vec<RosterEntry>,
    ) {
        let tag = epoch_tag(&self.room, counter, &roster);
        if self.current.as_ref().is_some_and(|e| e.tag == tag) {
            return;
        }
        let Some(me) = roster.iter().position(|e| e.address == self.me) else {
            return;
        };
        let Ok(me) = u16::try_from(me) else { return };
        let chain_key = kdf::fresh_secret(rng);
        let mac_keys: Vec<Secret32> = (0..roster.len()).map(|_| kdf::fresh_secret(rng)).collect();
        // Our view of the epoch we leave, for those who shared it.
        let mut previous: Option<(EpochTag, Vec<Ack>, Vec<String>)> = None;
        if let Some(mut old) = self.current.take() {
            let acks = old.acks(true);
            let members = old.roster.iter().map(|e| e.address.clone()).collect();
            previous = Some((old.tag, acks, members));
            old.retire_at = Some(now.plus_millis(self.config.old_epoch_grace_ms));
            self.old.push(old);
            while self.old.len() > MAX_OLD_EPOCHS {
                let mut dropped = self.old.remove(0);
                dropped.forget_keys();
            }
        }
        self.max_counter = self.max_counter.max(counter);
        let mut epoch = Epoch::new(counter, tag, roster.clone(), me, chain_key, mac_keys, now);
        epoch.attest_deadline = now.plus_millis(self.config.attest_timeout_ms);
        for (pos, entry) in roster.iter().enumerate() {
            if entry.address == self.me {
                continue;
            }
            let Some((chain_key, mac_key)) = epoch.keys_for(pos) else {
                continue;
            };
            let prev = previous
                .as_ref()
                .filter(|(_, _, members)| members.contains(&entry.address))
                .map(|(t, a, _)| (*t, a.clone()));
            let content = Content::EpochKey(EpochKey {
                counter,
                roster: roster.clone(),
                chain_key,
                mac_key,
                previous: prev,
            });
            let sent = self
                .members
                .get_mut(&entry.address)
                .and_then(|m| m.session.as_mut())
                .and_then(|s| s.encrypt(rng, &content).ok());
            if let Some(msg) = sent {
                self.send_private(&entry.address, &Message::Data(msg));
            }
        }
        epoch.keys_handed_out();
        self.current = Some(epoch);
        // Keys that arrived before we entered.
        let early: Vec<(String, EpochKey)> = self
            .members
            .iter_mut()
            .filter_map(|(a, m)| {
                let matches = m
                    .proposal
                    .as_ref()
                    .is_some_and(|p| epoch_tag(&self.room, p.counter, &p.roster) == tag);
                if matches {
                    m.proposal.take().map(|p| (a.clone(), p))
                } else {
                    None
                }
            })
            .collect();
        for (from, key) in early {
            self.apply_epoch_key(now, rng, &from, &key);
        }
        if self.current.as_ref().is_some_and(|e| e.attested) {
            self.on_attested(now, rng);
        }
    }

    fn handle_epoch_key(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        key: EpochKey,
    ) -> Result<(), IncomingError> {
        let sender_key = self
            .members
            .get(from)
            .and_then(|m| m.identity_key)
            .ok_or(IncomingError::UnknownSender)?;
        let sorted = key
            .roster
            .windows(2)
            .all(|w| w.first().map(|e| &e.address) < w.get(1).map(|e| &e.address));
        let lists_sender = key
            .roster
            .iter()
            .any(|e| e.address == from && e.identity_key == sender_key.to_bytes());
        let me_entry = key.roster.iter().find(|e| e.address == self.me);
        if key.roster.len() < 2
            || key.roster.len() > MAX_MEMBERS
            || !sorted
            || !lists_sender
            || me_entry.is_none()
        {
            return Err(IncomingError::BadEpochKey);
        }
        if me_entry.is_some_and(|e| e.identity_key != self.identity.verifying_key().to_bytes()) {
            self.alarm(Alarm::RosterSplit {
                member: self.me.clone(),
                reported_by: from.to_owned(),
            });
            return Err(IncomingError::BadEpochKey);
        }
        if key.counter > self.max_counter.saturating_add(MAX_COUNTER_JUMP) {
            // No honest member runs this far ahead; it would also let an insider exhaust the
            // counter and freeze rekeying.
            return Err(IncomingError::BadEpochKey);
        }
        self.max_counter = self.max_counter.max(key.counter);
        let mut readmitted = false;
        if let Some(m) = self.members.get_mut(from) {
            if m.excluded == Exclusion::UntilHeard {
                m.excluded = Exclusion::No;
                readmitted = true;
            }
        }
        if readmitted {
            self.reconsider(now, rng);
        }
        // Its view of the previous epoch, checked against ours.
        if let Some((prev_tag, acks)) = &key.previous {
            self.take_acks_in(now, prev_tag, from, acks);
        }
        let tag = epoch_tag(&self.room, key.counter, &key.roster);
        if self.current.as_ref().is_some_and(|e| e.tag == tag) {
            // It agrees with us: whatever it proposed before is moot.
            if let Some(m) = self.members.get_mut(from) {
                m.proposal = None;
            }
            self.apply_epoch_key(now, rng, from, &key);
            if self.current.as_ref().is_some_and(|e| e.attested) {
                self.on_attested(now, rng);
            }
            return Ok(());
        }
        if self.old.iter().any(|e| e.tag == tag) {
            return Ok(());
        }
        let unexcluded = self
            .current
            .as_ref()
            .is_some_and(|e| !e.roster.iter().any(|r| r.address == from));
        // Another key for a member we know: the server shows different keys to different
        // people.
        let mut splits = Vec::new();
        for e in &key.roster {
            if let Some(m) = self.members.get(&e.address) {
                if m.identity_key
                    .is_some_and(|k| k.to_bytes() != e.identity_key)
                {
                    splits.push(e.address.clone());
                }
            }
        }
        for member in splits {
            self.alarm(Alarm::RosterSplit {
                member,
                reported_by: from.to_owned(),
            });
        }
        let current_counter = self.current.as_ref().map_or(0, |e| e.counter);
        let adopt = key.counter > current_counter
            && self.stable()
            && Self::same_members(&key.roster, &self.view());
        if let Some(m) = self.members.get_mut(from) {
            if m.proposal.as_ref().is_none_or(|p| p.counter <= key.counter) {
                m.proposal = Some(key.clone());
                m.proposal_at = now;
                m.hidden_reported = false;
            }
        }
        if adopt {
            self.enter_epoch(now, rng, key.counter, self.view());
        } else if unexcluded {
            self.reconsider(now, rng);
        }
        Ok(())
    }

    fn apply_epoch_key(
        &mut self,
        now: Timestamp,
        _rng: &mut impl CryptoRngCore,
        from: &str,
        key: &EpochKey,
    ) {
        let Some(epoch) = self.current.as_mut() else {
            return;
        };
        let Some(pos) = epoch.roster.iter().position(|e| e.address == from) else {
            return;
        };
        let their_hash = key
            .roster
            .get(pos)
            .map(|e| e.nickname_hash)
            .unwrap_or_default();
        if !epoch.set_peer_keys(pos, &key.chain_key, &key.mac_key, their_hash) {
            return; // Already held: a duplicate, already checked.
        }
        let mut mismatches = Vec::new();
        for (mine, theirs) in epoch.roster.iter().zip(&key.roster) {
            if mine.nickname_hash != theirs.nickname_hash {
                mismatches.push(mine.address.clone());
            }
        }
        let _ = now;
        for member in mismatches {
            self.alarm(Alarm::NicknameMismatch {
                member,
                reported_by: from.to_owned(),
            });
        }
    }

    fn on_attested(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        let Some(epoch) = self.current.as_ref() else {
            return;
        };
        let (counter, members) = (epoch.counter, epoch.roster.len());
        if epoch.ready_reported {
            return;
        }
        if let Some(e) = self.current.as_mut() {
            e.ready_reported = true;
        }
        self.events
            .push_back(RoomEvent::EpochReady { counter, members });
        self.flush_queued(now);
        self.retry_buffered(now, rng);
    }

    // ---- group messages -------------------------------------------------------------

    /// Sends a text to the room. Returns a local id; [`RoomEvent::Sent`] gives its
    /// message id once it is out (at once if the epoch is ready, else when it is).
    pub fn send_text(&mut self, now: Timestamp, text: &str) -> Result<u64, RoomError> {
        if self.left {
            return Err(RoomError::Left);
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(RoomError::TextTooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        let local_id = self.next_local_id;
        self.next_local_id += 1;
        self.queued.push_back((local_id, text.to_owned()));
        self.flush_queued(now);
        Ok(local_id)
    }

    /// Sends queued texts once the room is settled: the epoch attested and no handshake
    /// with a present member still under way (so a text typed after someone appeared
    /// reaches them too).
    fn flush_queued(&mut self, now: Timestamp) {
        let ready = self.stable() && self.current.as_ref().is_some_and(|e| e.attested);
        if !ready {
            return;
        }
        while let Some((local_id, text)) = self.queued.pop_front() {
            self.send_now(now, local_id, text);
        }
    }

    fn send_now(&mut self, now: Timestamp, local_id: u64, text: String) {
        let Some(epoch) = self.current.as_mut() else {
            return;
        };
        let acks = epoch.acks(false);
        let msg = epoch.seal(
            &GroupBody {
                acks,
                kind: BodyKind::Text(text),
            },
            now,
        );
        let id = MessageId {
            epoch: msg.epoch,
            sender: msg.sender,
            index: msg.index,
        };
        let of = epoch.others();
        if of > 0 {
            self.outbox.push_back(Transmit {
                to: Destination::Room,
                payload: msg.encode(),
            });
        }
        self.events.push_back(RoomEvent::Sent { local_id, id });
        self.events.push_back(RoomEvent::Confirmation {
            id,
            confirmed: 0,
            of,
        });
    }

    fn send_body(&mut self, now: Timestamp, kind: BodyKind, all_acks: bool) {
        let Some(epoch) = self.current.as_mut() else {
            return;
        };
        let acks = epoch.acks(all_acks);
        let msg = epoch.seal(&GroupBody { acks, kind }, now);
        self.outbox.push_back(Transmit {
            to: Destination::Room,
            payload: msg.encode(),
        });
    }

    /// A group payload from `from` (an encoded [`GroupMessage`]).
    pub fn handle_group(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        payload: &[u8],
    ) -> Result<(), IncomingError> {
        if self.left {
            return Err(IncomingError::UnknownSender);
        }
        if from == self.me {
            return Ok(()); // The server's echo of our own message.
        }
        let msg = GroupMessage::decode(payload)?;
        self.receive_group(now, rng, from, msg, now)
    }

    /// Receives a group message that arrived at `arrived` (earlier than `now` when it comes
    /// out of the buffer).
    fn receive_group(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        msg: GroupMessage,
        arrived: Timestamp,
    ) -> Result<(), IncomingError> {
        let epoch = if self.current.as_ref().is_some_and(|e| e.tag == msg.epoch) {
            self.current.as_mut()
        } else {
            self.old.iter_mut().find(|e| e.tag == msg.epoch)
        };
        let Some(epoch) = epoch else {
            // Only from someone present: a server inventing senders cannot fill the buffer.
            if self.members.contains_key(from) {
                self.buffered.push(from, msg, arrived);
            }
            return Ok(());
        };
        let is_current = epoch.retire_at.is_none();
        if epoch
            .roster
            .get(usize::from(msg.sender))
            .map(|e| e.address.as_str())
            != Some(from)
        {
            return Err(IncomingError::SenderMismatch);
        }
        let epoch_tag = epoch.tag;
        let (body, _hash, mut findings) = match epoch.open(&msg, now) {
            Ok(v) => v,
            Err(GroupReceiveError::NoKeyYet(_)) => {
                self.buffered.push(from, msg, arrived);
                return Ok(());
            }
            Err(GroupReceiveError::BadMac(_)) => {
                self.alarm(Alarm::ForgedOrigin {
                    claimed_sender: from.to_owned(),
                });
                return Err(GroupReceiveError::BadMac(msg.sender).into());
            }
            Err(e @ (GroupReceiveError::AuthenticationFailed(_) | GroupReceiveError::Body(_))) => {
                self.alarm(Alarm::Garbled {
                    sender: from.to_owned(),
                });
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        findings.extend(epoch.take_acks(msg.sender, &body.acks, now));
        let total = epoch.total_messages;
        let of = epoch.others();
        if !findings.is_empty() {
            // Names are needed only to report something: not on the common path.
            let roster: Vec<String> = epoch.roster.iter().map(|e| e.address.clone()).collect();
            self.report(&roster, epoch_tag, of, findings);
        }
        match body.kind {
            BodyKind::Text(text) => {
                let nickname = self
                    .members
                    .get(from)
                    .and_then(|m| m.nickname.clone())
                    .or_else(|| {
                        self.former
                            .iter()
                            .rev()
                            .find(|(a, _)| a == from)
                            .map(|(_, n)| n.clone())
                    })
                    .unwrap_or_default();
                self.events.push_back(RoomEvent::Message {
                    id: MessageId {
                        epoch: msg.epoch,
                        sender: msg.sender,
                        index: msg.index,
                    },
                    from: from.to_owned(),
                    nickname,
                    text,
                });
            }
            BodyKind::Heartbeat | BodyKind::Leave => {}
        }
        if is_current && total >= self.config.rekey_after_messages {
            self.rekey(now, rng);
        }
        Ok(())
    }

    fn report(&mut self, roster: &[String], tag: EpochTag, of: usize, findings: Vec<Finding>) {
        let name = |i: u16| roster.get(usize::from(i)).cloned().unwrap_or_default();
        let me = roster
            .iter()
            .position(|a| *a == self.me)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        for f in findings {
            let event = match f {
                Finding::Equivocation {
                    sender,
                    index,
                    reported_by,
                } => RoomEvent::Alarm(Alarm::Equivocation {
                    sender: name(sender),
                    index,
                    reported_by: name(reported_by),
                }),
                Finding::ChainBroken { sender, index } => RoomEvent::Alarm(Alarm::ChainBroken {
                    sender: name(sender),
                    index,
                }),
                Finding::BadAckOfOurs { reported_by, .. } => {
                    RoomEvent::Alarm(Alarm::FalseAcknowledgement {
                        reported_by: name(reported_by),
                    })
                }
                Finding::Confirmed { index, confirmed } => RoomEvent::Confirmation {
                    id: MessageId {
                        epoch: tag,
                        sender: me,
                        index,
                    },
                    confirmed,
                    of,
                },
            };
            self.events.push_back(event);
        }
    }

    fn take_acks_in(&mut self, now: Timestamp, tag: &EpochTag, from: &str, acks: &[Ack]) {
        let epoch = if self.current.as_ref().is_some_and(|e| e.tag == *tag) {
            self.current.as_mut()
        } else {
            self.old.iter_mut().find(|e| e.tag == *tag)
        };
        let Some(epoch) = epoch else { return };
        let roster: Vec<String> = epoch.roster.iter().map(|e| e.address.clone()).collect();
        let Some(reporter) = roster
            .iter()
            .position(|a| a == from)
            .and_then(|p| u16::try_from(p).ok())
        else {
            return;
        };
        let findings = epoch.take_acks(reporter, acks, now);
        let (t, of) = (epoch.tag, epoch.others());
        self.report(&roster, t, of, findings);
    }

    /// Retries buffered group messages whose epoch we now hold; drops those that arrived
    /// `old_epoch_grace_ms` or longer ago (their keys did not come in time).
    fn retry_buffered(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        let lifetime = self.config.old_epoch_grace_ms;
        for (from, msg, at) in self.buffered.take_all() {
            if now >= at.plus_millis(lifetime) {
                continue;
            }
            let known = self.current.as_ref().is_some_and(|e| e.tag == msg.epoch)
                || self.old.iter().any(|e| e.tag == msg.epoch);
            if known {
                // Buffered again, with its arrival time, if the keys are still missing.
                let _ = self.receive_group(now, rng, &from, msg, at);
            } else {
                self.buffered.push(&from, msg, at);
            }
        }
    }

    fn rekey(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        if !self.stable() || !self.current.as_ref().is_some_and(|e| e.attested) {
            return;
        }
        let view = self.view();
        let counter = self.max_counter.saturating_add(1);
        self.enter_epoch(now, rng, counter, view);
    }

    // ---- private chat and verification ----------------------------------------------

    /// Sends a private (one-to-one) message to a member.
    pub fn send_private_text(
        &mut self,
        rng: &mut impl CryptoRngCore,
        to: &str,
        text: &str,
    ) -> Result<(), RoomError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(RoomError::TextTooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        let session = self
            .members
            .get_mut(to)
            .and_then(|m| m.session.as_mut())
            .ok_or(RoomError::NoSession)?;
        let msg = session
            .send_text(rng, text)
            .map_err(|e| RoomError::Verify(VerifyError::Encrypt(e)))?;
        self.send_private(to, &Message::Data(msg));
        Ok(())
    }

    /// Asks a member a secret question.
    pub fn start_verification(
        &mut self,
        rng: &mut impl CryptoRngCore,
        member: &str,
        question: Option<&str>,
        answer: &str,
    ) -> Result<(), RoomError> {
        let session = self
            .members
            .get_mut(member)
            .and_then(|m| m.session.as_mut())
            .ok_or(RoomError::NoSession)?;
        let msg = session.start_verification(rng, question, answer)?;
        self.send_private(member, &Message::Data(msg));
        Ok(())
    }

    /// Answers a member's secret question.
    pub fn answer_verification(
        &mut self,
        rng: &mut impl CryptoRngCore,
        member: &str,
        answer: &str,
    ) -> Result<(), RoomError> {
        let session = self
            .members
            .get_mut(member)
            .and_then(|m| m.session.as_mut())
            .ok_or(RoomError::NoSession)?;
        let msg = session.answer_verification(rng, answer)?;
        self.send_private(member, &Message::Data(msg));
        Ok(())
    }

    /// Leaves: sends our final view of the transcript (acknowledgements of every sender)
    /// and deletes every key.
    pub fn leave(&mut self, now: Timestamp) -> Result<(), RoomError> {
        if self.left {
            return Err(RoomError::Left);
        }
        if self
            .current
            .as_ref()
            .is_some_and(|e| e.attested && e.others() > 0)
        {
            self.send_body(now, BodyKind::Leave, true);
        }
        self.left = true;
        if let Some(mut e) = self.current.take() {
            e.forget_keys();
        }
        for mut e in self.old.drain(..) {
            e.forget_keys();
        }
        self.members.clear();
        self.queued.clear();
        self.early.clear();
        self.buffered.clear();
        Ok(())
    }

    // ---- time -----------------------------------------------------------------------

    /// When [`Room::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut next: Option<Timestamp> = None;
        let floor = self.timers_ran;
        let mut consider = |t: Timestamp| {
            if t > floor {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.left {
            return None;
        }
        for m in self.members.values() {
            if let (Exclusion::Retrying, Some(t)) = (m.excluded, m.retry_at) {
                consider(t);
            }
            if m.proposal.is_some() && !m.hidden_reported {
                consider(m.proposal_at.plus_millis(self.config.attest_timeout_ms));
            }
            if m.pending() {
                if !m.initiated_fallback {
                    consider(m.since.plus_millis(self.config.handshake_timeout_ms / 2));
                }
                consider(m.since.plus_millis(self.config.handshake_timeout_ms));
            }
        }
        if let Some(e) = &self.current {
            if !e.attested && !e.attest_reported {
                consider(e.attest_deadline);
            }
            if e.attested {
                consider(e.started.plus_millis(self.config.rekey_after_ms));
            }
        }
        for e in self.current.iter().chain(self.old.iter()) {
            for s in e.sent.iter().filter(|s| s.is_text && !s.flagged) {
                consider(s.at.plus_millis(self.config.confirm_timeout_ms));
            }
            for p in e.peers.iter().flatten() {
                if let (Some(t), false) = (p.gap_since, p.gap_reported) {
                    consider(t.plus_millis(self.config.confirm_timeout_ms));
                }
            }
            if let (Some(t), true) = (e.first_unacked, e.attested) {
                consider(t.plus_millis(self.config.heartbeat_ms));
            }
            if let Some(t) = e.retire_at {
                consider(t);
            }
        }
        if let Some(t) = self.buffered.oldest() {
            consider(t.plus_millis(self.config.old_epoch_grace_ms));
        }
        next
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        if self.left {
            return;
        }
        self.timers_ran = self.timers_ran.max(now);
        // Handshakes: the other side should have started; start ourselves half-way, give
        // up at the deadline.
        let mut fallback = Vec::new();
        let mut expired = Vec::new();
        for (a, m) in &self.members {
            if !m.pending() {
                continue;
            }
            let age = now.0.saturating_sub(m.since.0);
            if age >= self.config.handshake_timeout_ms {
                expired.push(a.clone());
            } else if age >= self.config.handshake_timeout_ms / 2
                && !m.initiated_fallback
                && self.me.as_str() < a.as_str()
            {
                // Something of ours or theirs was lost: the side that leads starts over.
                fallback.push(a.clone());
            }
        }
        for a in fallback {
            if let Some(m) = self.members.get_mut(&a) {
                m.initiated_fallback = true;
                m.handshake = Handshake::Idle;
            }
            self.initiate(rng, &a);
        }
        for a in expired {
            // The Auth-I its early data waited for is not coming.
            self.early.forget(&a);
            let mut report = false;
            if let Some(m) = self.members.get_mut(&a) {
                m.excluded = Exclusion::Retrying;
                m.retry_backoff_ms = m
                    .retry_backoff_ms
                    .clamp(self.config.handshake_timeout_ms, MAX_RETRY_BACKOFF_MS);
                m.retry_at = Some(now.plus_millis(m.retry_backoff_ms));
                report = !m.timeout_reported;
                m.timeout_reported = true;
            }
            if report {
                self.alarm(Alarm::HandshakeTimeout { member: a });
            }
        }
        // Retry handshakes with members left out after a timeout.
        let retry: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.present
                    && m.excluded == Exclusion::Retrying
                    && m.retry_at.is_some_and(|t| now >= t)
            })
            .map(|(a, _)| a.clone())
            .collect();
        for a in retry {
            self.early.forget(&a);
            if let Some(m) = self.members.get_mut(&a) {
                m.handshake = Handshake::Idle;
                m.since = now;
                m.retry_backoff_ms = (m.retry_backoff_ms * 2).min(MAX_RETRY_BACKOFF_MS);
                m.retry_at = Some(now.plus_millis(m.retry_backoff_ms));
            }
            if self.me < a {
                self.initiate(rng, &a);
            }
        }
        // Attestation.
        let mut missing_members = Vec::new();
        if let Some(e) = self.current.as_mut() {
            if !e.attested && !e.attest_reported && now >= e.attest_deadline {
                e.attest_reported = true;
                missing_members = e
                    .missing_keys()
                    .iter()
                    .filter_map(|&i| e.roster.get(i).map(|r| r.address.clone()))
                    .collect();
            }
        }
        if !missing_members.is_empty() {
            for a in &missing_members {
                if let Some(m) = self.members.get_mut(a) {
                    m.excluded = Exclusion::UntilHeard;
                }
            }
            self.alarm(Alarm::AttestationTimeout {
                missing: missing_members,
            });
        }
        // Heartbeats, in the current epoch and in old ones still in their grace period (a
        // text that arrived there after we moved on is acknowledged there).
        let heartbeat_ms = self.config.heartbeat_ms;
        for e in self.current.iter_mut().chain(self.old.iter_mut()) {
            let clock_ran_out = e
                .first_unacked
                .is_some_and(|t| now >= t.plus_millis(heartbeat_ms));
            if clock_ran_out && !e.owes_acks() {
                // Started by a message that left a gap: nothing to acknowledge yet. The
                // next message in order starts a fresh clock.
                e.first_unacked = None;
            }
            let due = e.attested && e.owes_acks() && clock_ran_out;
            if due && e.others() > 0 {
                let acks = e.acks(false);
                let msg = e.seal(
                    &GroupBody {
                        acks,
                        kind: BodyKind::Heartbeat,
                    },
                    now,
                );
                self.outbox.push_back(Transmit {
                    to: Destination::Room,
                    payload: msg.encode(),
                });
            }
        }
        // Members someone else sees but the server does not show us.
        let hidden_after = self.config.attest_timeout_ms;
        let mut hidden = Vec::new();
        let present: Vec<String> = self.members.keys().cloned().collect();
        for (from, m) in self.members.iter_mut() {
            let Some(p) = &m.proposal else { continue };
            // Its latest proposal, still standing after the attestation timeout.
            if m.hidden_reported || now < m.proposal_at.plus_millis(hidden_after) {
                continue;
            }
            for e in &p.roster {
                let known = e.address == self.me || present.contains(&e.address);
                if !known {
                    hidden.push(Alarm::HiddenMember {
                        member: e.address.clone(),
                        reported_by: from.clone(),
                    });
                }
            }
            m.hidden_reported = true;
        }
        for a in hidden {
            self.alarm(a);
        }
        // Confirmations and gaps.
        let confirm = self.config.confirm_timeout_ms;
        let mut alarms = Vec::new();
        for e in self.current.iter_mut().chain(self.old.iter_mut()) {
            let roster: Vec<String> = e.roster.iter().map(|r| r.address.clone()).collect();
            let flagged: Vec<u32> = e
                .sent
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_text && !s.flagged && now >= s.at.plus_millis(confirm))
                .filter_map(|(i, _)| u32::try_from(i).ok())
                .collect();
            for index in flagged {
                if let Some(s) = e.sent.get_mut(index as usize) {
                    s.flagged = true;
                }
                let missing: Vec<String> = e
                    .unconfirmed_by(index)
                    .iter()
                    .filter_map(|&i| roster.get(i).cloned())
                    .collect();
                if !missing.is_empty() {
                    alarms.push(Alarm::Unconfirmed {
                        id: MessageId {
                            epoch: e.tag,
                            sender: e.me,
                            index,
                        },
                        missing,
                    });
                }
            }
            for (i, p) in e.peers.iter_mut().enumerate() {
                let Some(p) = p else { continue };
                if let (Some(t), false) = (p.gap_since, p.gap_reported) {
                    if now >= t.plus_millis(confirm) && p.expected > p.contiguous {
                        p.gap_reported = true;
                        alarms.push(Alarm::Missing {
                            sender: roster.get(i).cloned().unwrap_or_default(),
                            index: p.contiguous,
                        });
                    }
                }
            }
        }
        for a in alarms {
            self.alarm(a);
        }
        // Old epochs: delete their keys.
        let mut i = 0;
        while i < self.old.len() {
            if self
                .old
                .get(i)
                .and_then(|e| e.retire_at)
                .is_some_and(|t| now >= t)
            {
                let mut e = self.old.remove(i);
                e.forget_keys();
            } else {
                i += 1;
            }
        }
        self.retry_buffered(now, rng);
        // Periodic rekey, and any change of view (exclusions above).
        let due = self.current.as_ref().is_some_and(|e| {
            e.attested && now >= e.started.plus_millis(self.config.rekey_after_ms)
        });
        if due {
            self.rekey(now, rng);
        } else {
            self.reconsider(now, rng);
        }
    }

    #[cfg(test)]
    pub(crate) fn current_chain_key(&self) -> Option<[u8; 32]> {
        self.current.as_ref().map(|e| e.my_chain_key_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    const NOW: Timestamp = Timestamp(1_000_000);

    struct Party {
        room: Room,
        rng: ChaCha20Rng,
        events: Vec<RoomEvent>,
    }

    fn party(seed: u64, nick: &str) -> Party {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let id = Identity::generate(&mut rng, NOW);
        let addr = format!("r@c/{}", occupant_name(&id.verifying_key()));
        let room = Room::new(id, RoomConfig::default(), "r@c", &addr, nick, NOW, &mut rng).unwrap();
        Party {
            room,
            rng,
            events: Vec::new(),
        }
    }

    /// Delivers everything until quiet (no faults, no timers).
    fn settle(parties: &mut [Party]) {
        for _ in 0..100 {
            let mut out = Vec::new();
            for (i, p) in parties.iter_mut().enumerate() {
                while let Some(t) = p.room.poll_transmit() {
                    out.push((i, t));
                }
                while let Some(e) = p.room.poll_event() {
                    p.events.push(e);
                }
            }
            if out.is_empty() {
                return;
            }
            for (from, t) in out {
                let from_addr = parties[from].room.address().to_owned();
                for (j, p) in parties.iter_mut().enumerate() {
                    if j == from {
                        continue;
                    }
                    match &t.to {
                        Destination::Room => {
                            let _ = p.room.handle_group(NOW, &mut p.rng, &from_addr, &t.payload);
                        }
                        Destination::Member(a) if a == p.room.address() => {
                            let _ = p
                                .room
                                .handle_private(NOW, &mut p.rng, &from_addr, &t.payload);
                        }
                        Destination::Member(_) => {}
                    }
                }
            }
        }
    }

    fn room_of_three() -> Vec<Party> {
        let mut ps = vec![party(1, "alice"), party(2, "bob"), party(3, "mallory")];
        let addrs: Vec<String> = ps.iter().map(|p| p.room.address().to_owned()).collect();
        for p in ps.iter_mut() {
            for a in &addrs {
                p.room.member_present(NOW, &mut p.rng, a);
            }
        }
        settle(&mut ps);
        ps
    }

    /// An insider holds every member's chain key, but not the pairwise MAC keys between
    /// two others: a message it forges in Alice's name is refused by Bob and named.
    #[test]
    fn insider_cannot_forge_another_members_origin() {
        let mut ps = room_of_three();
        assert!(ps.iter().all(|p| p.room.epoch().is_some_and(|e| e.1)));
        let alice = ps[0].room.address().to_owned();
        let epoch = ps[2].room.current.as_ref().unwrap();
        let alice_pos = epoch
            .roster
            .iter()
            .position(|e| e.address == alice)
            .map(|p| u16::try_from(p).unwrap())
            .unwrap();
        let forged = epoch.forge_as(
            alice_pos,
            "send the money to mallory",
            &mut ps[2].rng.clone(),
        );
        let bob = &mut ps[1];
        let result = bob
            .room
            .handle_group(NOW, &mut bob.rng, &alice, &forged.encode());
        assert_eq!(
            result,
            Err(IncomingError::Group(GroupReceiveError::BadMac(alice_pos)))
        );
        while let Some(e) = bob.room.poll_event() {
            bob.events.push(e);
        }
        assert!(bob.events.iter().any(|e| matches!(e, RoomEvent::Alarm(Alarm::ForgedOrigin { claimed_sender }) if *claimed_sender == alice)));
        assert!(!bob
            .events
            .iter()
            .any(|e| matches!(e, RoomEvent::Message { text, .. } if text.contains("money"))));
        // The same forgery with the right MAC would have been accepted: the check is what
        // stops it (Alice's real messages go through).
        let now = NOW;
        ps[0].room.send_text(now, "real").unwrap();
        settle(&mut ps);
        assert!(ps[1]
            .events
            .iter()
            .any(|e| matches!(e, RoomEvent::Message { text, .. } if text == "real")));
    }

    /// Records every byte an RNG hands out.
    struct Recording {
        inner: ChaCha20Rng,
        log: Vec<u8>,
    }

    impl RngCore for Recording {
        fn next_u32(&mut self) -> u32 {
            let v = self.inner.next_u32();
            self.log.extend_from_slice(&v.to_le_bytes());
            v
        }
        fn next_u64(&mut self) -> u64 {
            let v = self.inner.next_u64();
            self.log.extend_from_slice(&v.to_le_bytes());
            v
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            self.inner.fill_bytes(dest);
            self.log.extend_from_slice(dest);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for Recording {}

    #[test]
    fn every_key_bit_comes_from_the_rng() {
        let mut rng = Recording {
            inner: ChaCha20Rng::seed_from_u64(9),
            log: Vec::new(),
        };
        let id = Identity::generate(&mut rng, NOW);
        // The identity key is the ed25519 key of 32 bytes the RNG produced.
        let seed_window = rng.log.windows(32).any(|w| {
            let w: [u8; 32] = w.try_into().unwrap();
            ed25519_dalek::SigningKey::from_bytes(&w).verifying_key() == id.verifying_key()
        });
        assert!(seed_window, "identity key not made from RNG output");
        let addr = format!("r@c/{}", occupant_name(&id.verifying_key()));
        let room = Room::new(id, RoomConfig::default(), "r@c", &addr, "n", NOW, &mut rng).unwrap();
        let chain_key = room.current_chain_key().unwrap();
        assert!(
            rng.log.windows(32).any(|w| w == chain_key),
            "chain key not RNG output"
        );
        // And a different RNG stream gives a different key.
        let mut other = Recording {
            inner: ChaCha20Rng::seed_from_u64(10),
            log: Vec::new(),
        };
        let id2 = Identity::generate(&mut other, NOW);
        assert_ne!(id2.fingerprint(), room.identity().fingerprint());
    }

    #[test]
    fn a_hundred_thousand_keys_are_distinct_and_every_bit_varies() {
        let mut rng = rand_core::OsRng;
        let mut seen = std::collections::HashSet::with_capacity(100_000);
        let mut ones = [0u32; 256];
        for _ in 0..100_000 {
            let k = kdf::fresh_secret(&mut rng);
            for (bit, count) in ones.iter_mut().enumerate() {
                if k.as_bytes()[bit / 8] >> (bit % 8) & 1 == 1 {
                    *count += 1;
                }
            }
            assert!(seen.insert(*k.as_bytes()), "duplicate key");
        }
        // Each bit is set in about half the keys (a digit-string key would fail this).
        for (bit, &count) in ones.iter().enumerate() {
            assert!(
                (48_000..52_000).contains(&count),
                "bit {bit} set {count} times in 100,000"
            );
        }
    }
}
