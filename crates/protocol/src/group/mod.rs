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
mod event;
mod pending;
mod private;
mod timers;
mod view;
pub mod wire;

use std::collections::{BTreeMap, VecDeque};

use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRngCore;

use self::epoch::{Epoch, Finding};
pub use self::epoch::{GroupReceiveError, GROUP_MAX_SKIP};
pub use self::event::{
    Alarm, Destination, IncomingError, MessageId, RoomError, RoomEvent, Transmit,
};
use self::pending::PerOccupant;
pub use self::pending::{
    Retained, MAX_BUFFERED, MAX_BUFFERED_BYTES, MAX_BUFFERED_PER_SENDER, MAX_EARLY, MAX_EARLY_BYTES,
};
use self::wire::{
    Ack, BodyKind, EpochKey, EpochTag, GroupBody, GroupMessage, MAX_ADDRESS_BYTES,
    MAX_NICKNAME_BYTES,
};
use crate::content::MAX_TEXT_BYTES;
use crate::dake::{AwaitingAuthI, AwaitingAuthR, DakeContext};
use crate::fingerprint::Fingerprint;
use crate::identity::Identity;
use crate::kdf::{self, label};
use crate::message::Message;
use crate::session::{Session, VerifyError};
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
