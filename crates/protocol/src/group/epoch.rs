//! The state of one epoch: our sender chain, every other member's chain, origin MACs,
//! the per-sender hash chains, acknowledgements and confirmation counts.
//!
//! Pure bookkeeping and cryptography: no member addresses or nicknames live here, only
//! roster positions; `group/mod.rs` maps positions to people.

use std::collections::{BTreeMap, VecDeque};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use subtle::ConstantTimeEq;

use super::wire::{Ack, EpochTag, GroupBody, GroupMessage, RosterEntry, MAC_BYTES};
use crate::content;
use crate::kdf::{self, label, HmacKey, Secret32};
use crate::ratchet::{Chain, MessageKey};
use crate::wire::DecodeError;
use crate::Timestamp;

/// The most message keys one group message may make us skip in a sender's chain.
pub const GROUP_MAX_SKIP: u32 = 2_000;

/// The most acknowledgement claims about messages we have not seen yet, per epoch.
const MAX_PENDING_CLAIMS: usize = 8_192;

/// Why a group message was not accepted. The epoch state is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupReceiveError {
    /// The message's sender position is not in the roster, or is our own.
    #[error("sender position {0} is not another member of the epoch")]
    BadSender(u16),
    /// The number of origin MACs does not match the roster.
    #[error("message carries {got} origin MACs, the roster needs {expected}")]
    MacCount {
        /// MACs present.
        got: usize,
        /// MACs expected.
        expected: usize,
    },
    /// We do not hold the sender's keys for this epoch yet (the message is kept for later).
    #[error("no keys yet from sender position {0} for this epoch")]
    NoKeyYet(u16),
    /// Our origin MAC does not verify: the message was not made by the claimed sender
    /// (a forgery by another member or an injection).
    #[error("origin MAC from sender position {0} does not verify")]
    BadMac(u16),
    /// The message key was already used or deleted (a duplicate or replay).
    #[error("message {index} from sender position {sender} was already received")]
    Duplicate {
        /// Sender position.
        sender: u16,
        /// Index.
        index: u32,
    },
    /// The message would make us skip too many keys.
    #[error("message would skip {skip} keys, above the limit of {max}")]
    TooFarAhead {
        /// Keys it would skip.
        skip: u32,
        /// The limit.
        max: u32,
    },
    /// The MAC verified but the ciphertext did not decrypt: the sender misbehaved.
    #[error("message from sender position {0} failed decryption after a valid MAC")]
    AuthenticationFailed(u16),
    /// It decrypted but the body is malformed.
    #[error("group message body is malformed: {0}")]
    Body(#[from] DecodeError),
}

/// What the epoch learned that the room must report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Two different hashes for one message: `reported_by` holds `theirs`, we hold ours.
    Equivocation {
        sender: u16,
        index: u32,
        reported_by: u16,
    },
    /// A message's `prev_hash` does not match the hash of the message before it.
    ChainBroken { sender: u16, index: u32 },
    /// A member acknowledged one of *our* messages with a hash we never sent.
    BadAckOfOurs { index: u32, reported_by: u16 },
    /// Our message `index` is now confirmed by `confirmed` of the other members.
    Confirmed { index: u32, confirmed: usize },
}

struct Received {
    hash: [u8; 32],
    prev: [u8; 32],
}

/// Keys of one sender's skipped messages. Its chain only moves forward, so keys come in
/// increasing index order and the smallest index is the oldest: a deque sorted by index,
/// oldest first. Adding and evicting a key is O(1), finding one a binary search. A used
/// key leaves a hole, dropped when it reaches the front or when holes outnumber keys.
#[derive(Default)]
struct SkippedKeys {
    entries: VecDeque<(u32, Option<MessageKey>)>,
    live: usize,
}

impl SkippedKeys {
    fn len(&self) -> usize {
        self.live
    }

    fn get(&self, index: u32) -> Option<&MessageKey> {
        let at = self.entries.binary_search_by_key(&index, |e| e.0).ok()?;
        self.entries.get(at)?.1.as_ref()
    }

    fn remove(&mut self, index: u32) {
        if let Ok(at) = self.entries.binary_search_by_key(&index, |e| e.0) {
            if let Some(e) = self.entries.get_mut(at) {
                if e.1.take().is_some() {
                    self.live -= 1;
                }
            }
        }
        while self.entries.front().is_some_and(|e| e.1.is_none()) {
            self.entries.pop_front();
        }
        if self.entries.len() > 2 * self.live + 64 {
            self.entries.retain(|e| e.1.is_some());
        }
    }

    /// Adds `keys` (in increasing order, above every index held), oldest out first past
    /// `max`: the held keys, then the oldest new ones, which are then never stored.
    /// Returns the entries examined by the evictions.
    fn add(&mut self, keys: Vec<(u32, MessageKey)>, max: usize) -> u64 {
        let mut examined = 0;
        let mut excess = (self.live + keys.len()).saturating_sub(max);
        while excess > 0 {
            let Some((_, key)) = self.entries.pop_front() else {
                break;
            };
            examined += 1;
            if key.is_some() {
                self.live -= 1;
                excess -= 1;
            }
        }
        for (i, k) in keys.into_iter().skip(excess) {
            self.entries.push_back((i, Some(k)));
            self.live += 1;
        }
        examined
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.live = 0;
    }
}

/// Another member's chain as we hold it.
pub(crate) struct Peer {
    chain: Option<Chain>,
    mac_from: Option<HmacKey>,
    pub(crate) nickname_hash: Option<[u8; 32]>,
    skipped: SkippedKeys,
    received: BTreeMap<u32, Received>,
    /// How many messages from index 0 we hold without a gap.
    pub(crate) contiguous: u32,
    /// One past the highest index known to exist (from later messages or others' acks).
    pub(crate) expected: u32,
    pub(crate) gap_since: Option<Timestamp>,
    pub(crate) gap_reported: bool,
    /// How many of this member's messages we have acknowledged so far.
    acked_sent: u32,
    /// Claims by others about this member's messages we do not hold yet:
    /// index -> (reporter, hash).
    claims: BTreeMap<u32, Vec<(u16, [u8; 32])>>,
    /// Entries examined by evictions (tests check it grows by one per eviction).
    #[cfg(test)]
    examined: u64,
}

impl Peer {
    fn new() -> Self {
        Self {
            chain: None,
            mac_from: None,
            nickname_hash: None,
            skipped: SkippedKeys::default(),
            received: BTreeMap::new(),
            contiguous: 0,
            expected: 0,
            gap_since: None,
            gap_reported: false,
            acked_sent: 0,
            claims: BTreeMap::new(),
            #[cfg(test)]
            examined: 0,
        }
    }

    pub(crate) fn has_keys(&self) -> bool {
        self.chain.is_some()
    }
}

/// One message we sent.
pub(crate) struct Sent {
    pub(crate) hash: [u8; 32],
    pub(crate) at: Timestamp,
    pub(crate) is_text: bool,
    pub(crate) flagged: bool,
}

/// One epoch.
pub(crate) struct Epoch {
    pub(crate) counter: u64,
    pub(crate) tag: EpochTag,
    pub(crate) roster: Vec<RosterEntry>,
    pub(crate) me: u16,
    pub(crate) started: Timestamp,
    my_chain: Chain,
    my_last_hash: [u8; 32],
    pub(crate) sent: Vec<Sent>,
    /// Our chain key as handed to others; deleted once the `EpochKey`s are made
    /// ([`Epoch::keys_handed_out`]), so a later theft cannot read our earlier messages.
    my_chain_key: Secret32,
    #[cfg(test)]
    initial_chain_key: [u8; 32],
    /// Our MAC keys to each member, by roster position (ours is `None`).
    mac_to: Vec<Option<(Secret32, HmacKey)>>,
    pub(crate) peers: Vec<Option<Peer>>,
    /// For each member: how many of our messages it has acknowledged.
    pub(crate) acked_by: Vec<u32>,
    pending_claims: usize,
    pub(crate) total_messages: u32,
    pub(crate) attested: bool,
    pub(crate) attest_deadline: Timestamp,
    pub(crate) attest_reported: bool,
    pub(crate) ready_reported: bool,
    pub(crate) last_send: Timestamp,
    pub(crate) first_unacked: Option<Timestamp>,
    pub(crate) retire_at: Option<Timestamp>,
}

/// The epoch tag: `H(room, counter, [address, identity key] for each member)` cut to 16.
pub(crate) fn epoch_tag(room: &str, counter: u64, roster: &[RosterEntry]) -> EpochTag {
    let mut parts: Vec<Vec<u8>> = vec![room.as_bytes().to_vec(), counter.to_be_bytes().to_vec()];
    for e in roster {
        parts.push(e.address.as_bytes().to_vec());
        parts.push(e.identity_key.to_vec());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let full = kdf::hash(label::EPOCH_TAG, &refs);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(full.get(..16).unwrap_or(&[0u8; 16]));
    tag
}

/// The hash a message is known by (chains, acknowledgements, MACs).
pub(crate) fn message_hash(msg: &GroupMessage) -> [u8; 32] {
    // `H(label, [header || len32(ciphertext) || ciphertext])`, streamed: no copy.
    let header = msg.header_bytes();
    let len = u32::try_from(msg.ciphertext.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    kdf::hash_concat(label::GROUP_MESSAGE, &[&header, &len, &msg.ciphertext])
}

fn truncated(mac: [u8; 32]) -> [u8; MAC_BYTES] {
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(mac.get(..MAC_BYTES).unwrap_or(&[0u8; MAC_BYTES]));
    out
}

fn aes(key: &MessageKey) -> (Aes256Gcm, [u8; 12]) {
    let okm = key.expand();
    let (k, n) = okm.split_at(32);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(n.get(..12).unwrap_or(&[0u8; 12]));
    (
        Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(k)),
        nonce,
    )
}

impl Epoch {
    /// A new epoch with our fresh keys. `chain_key` and `mac_keys` (one per roster
    /// position, ours ignored) come from the caller's RNG.
    pub(crate) fn new(
        counter: u64,
        tag: EpochTag,
        roster: Vec<RosterEntry>,
        me: u16,
        chain_key: Secret32,
        mac_keys: Vec<Secret32>,
        now: Timestamp,
    ) -> Self {
        let n = roster.len();
        let mac_to = mac_keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                if i == usize::from(me) {
                    None
                } else {
                    let h = HmacKey::new(k.as_bytes());
                    Some((k, h))
                }
            })
            .collect();
        let peers = (0..n)
            .map(|i| {
                if i == usize::from(me) {
                    None
                } else {
                    Some(Peer::new())
                }
            })
            .collect();
        let attested = n == 1;
        Self {
            counter,
            tag,
            roster,
            me,
            started: now,
            my_chain: Chain {
                key: chain_key.duplicate(),
                index: 0,
            },
            my_last_hash: [0u8; 32],
            sent: Vec::new(),
            #[cfg(test)]
            initial_chain_key: *chain_key.as_bytes(),
            my_chain_key: chain_key,
            mac_to,
            peers,
            acked_by: vec![0; n],
            pending_claims: 0,
            total_messages: 0,
            attested,
            attest_deadline: now,
            attest_reported: false,
            ready_reported: false,
            last_send: now,
            first_unacked: None,
            retire_at: None,
        }
    }

    pub(crate) fn others(&self) -> usize {
        self.roster.len().saturating_sub(1)
    }

    /// Our chain key (to send to others) and our MAC key for `position`.
    pub(crate) fn keys_for(&self, position: usize) -> Option<(Secret32, Secret32)> {
        let (mac, _) = self.mac_to.get(position)?.as_ref()?;
        Some((self.my_chain_key.duplicate(), mac.duplicate()))
    }

    /// Deletes what only the `EpochKey`s needed: our initial chain key and the raw MAC keys.
    pub(crate) fn keys_handed_out(&mut self) {
        self.my_chain_key = Secret32([0u8; 32]);
        for (raw, _) in self.mac_to.iter_mut().flatten() {
            *raw = Secret32([0u8; 32]);
        }
    }

    /// Stores a member's keys from its `EpochKey`. Returns false if already held.
    pub(crate) fn set_peer_keys(
        &mut self,
        position: usize,
        chain_key: &Secret32,
        mac_key: &Secret32,
        nickname_hash: [u8; 32],
    ) -> bool {
        let Some(Some(peer)) = self.peers.get_mut(position) else {
            return false;
        };
        if peer.chain.is_some() {
            return false;
        }
        peer.chain = Some(Chain {
            key: chain_key.duplicate(),
            index: 0,
        });
        peer.mac_from = Some(HmacKey::new(mac_key.as_bytes()));
        peer.nickname_hash = Some(nickname_hash);
        self.attested = self.peers.iter().flatten().all(Peer::has_keys);
        true
    }

    /// Positions of members whose keys we still lack.
    pub(crate) fn missing_keys(&self) -> Vec<usize> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().filter(|p| !p.has_keys()).map(|_| i))
            .collect()
    }

    /// Acknowledgements we owe: the latest contiguous message of every sender that
    /// advanced since our last send (or, with `all`, of every sender, ours included).
    pub(crate) fn acks(&mut self, all: bool) -> Vec<Ack> {
        let mut out = Vec::new();
        for (i, peer) in self.peers.iter_mut().enumerate() {
            let Some(peer) = peer else {
                if all && !self.sent.is_empty() {
                    let index = u32::try_from(self.sent.len() - 1).unwrap_or(u32::MAX);
                    out.push(Ack {
                        sender: self.me,
                        index,
                        hash: self.my_last_hash,
                    });
                }
                continue;
            };
            if peer.contiguous == 0 || (!all && peer.contiguous <= peer.acked_sent) {
                continue;
            }
            let index = peer.contiguous - 1;
            if let Some(r) = peer.received.get(&index) {
                out.push(Ack {
                    sender: u16::try_from(i).unwrap_or(u16::MAX),
                    index,
                    hash: r.hash,
                });
                peer.acked_sent = peer.contiguous;
            }
        }
        self.first_unacked = None;
        out
    }

    /// Encrypts a body as our next message and adds the origin MACs.
    pub(crate) fn seal(&mut self, body: &GroupBody, now: Timestamp) -> GroupMessage {
        let padded = zeroize::Zeroizing::new(content::pad(body.encode()));
        let index = self.my_chain.index;
        let key = self.my_chain.step();
        let mut msg = GroupMessage {
            epoch: self.tag,
            sender: self.me,
            index,
            prev_hash: self.my_last_hash,
            ciphertext: Vec::new(),
            macs: Vec::new(),
        };
        let (cipher, nonce) = aes(&key);
        let aad = msg.header_bytes();
        msg.ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &padded,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let hash = message_hash(&msg);
        msg.macs = self
            .mac_to
            .iter()
            .flatten()
            .map(|(_, h)| truncated(h.mac32(&hash)))
            .collect();
        self.my_last_hash = hash;
        self.sent.push(Sent {
            hash,
            at: now,
            is_text: matches!(body.kind, super::wire::BodyKind::Text(_)),
            flagged: false,
        });
        self.total_messages = self.total_messages.saturating_add(1);
        self.last_send = now;
        msg
    }

    /// Verifies the origin MAC, decrypts, and records the message in the sender's hash
    /// chain. Returns the body, its hash, and what was learned.
    pub(crate) fn open(
        &mut self,
        msg: &GroupMessage,
        now: Timestamp,
    ) -> Result<(GroupBody, [u8; 32], Vec<Finding>), GroupReceiveError> {
        let sender = usize::from(msg.sender);
        if msg.sender == self.me {
            return Err(GroupReceiveError::BadSender(msg.sender));
        }
        let others = self.others();
        let Some(Some(peer)) = self.peers.get_mut(sender) else {
            return Err(GroupReceiveError::BadSender(msg.sender));
        };
        if msg.macs.len() != others {
            return Err(GroupReceiveError::MacCount {
                got: msg.macs.len(),
                expected: others,
            });
        }
        let (Some(chain), Some(mac_from)) = (peer.chain.as_ref(), peer.mac_from.as_ref()) else {
            return Err(GroupReceiveError::NoKeyYet(msg.sender));
        };
        let hash = message_hash(msg);
        let me = usize::from(self.me);
        let slot = if me > sender { me - 1 } else { me };
        let expected_mac = truncated(mac_from.mac32(&hash));
        let ok = msg
            .macs
            .get(slot)
            .is_some_and(|m| bool::from(m.ct_eq(&expected_mac)));
        if !ok {
            return Err(GroupReceiveError::BadMac(msg.sender));
        }
        // Find the message key without changing state.
        let mut staged: Option<Chain> = None;
        let mut new_skipped = Vec::new();
        let key = if msg.index < chain.index {
            match peer.skipped.get(msg.index) {
                Some(_) => None,
                None => {
                    return Err(GroupReceiveError::Duplicate {
                        sender: msg.sender,
                        index: msg.index,
                    })
                }
            }
        } else {
            let skip = msg.index - chain.index;
            if skip > GROUP_MAX_SKIP {
                return Err(GroupReceiveError::TooFarAhead {
                    skip,
                    max: GROUP_MAX_SKIP,
                });
            }
            let mut c = chain.duplicate();
            while c.index < msg.index {
                let i = c.index;
                new_skipped.push((i, c.step()));
            }
            let k = c.step();
            staged = Some(c);
            Some(k)
        };
        let aad = msg.header_bytes();
        let plaintext = {
            let k = match &key {
                Some(k) => k,
                None => peer
                    .skipped
                    .get(msg.index)
                    .ok_or(GroupReceiveError::Duplicate {
                        sender: msg.sender,
                        index: msg.index,
                    })?,
            };
            let (cipher, nonce) = aes(k);
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &msg.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| GroupReceiveError::AuthenticationFailed(msg.sender))?
        };
        let plaintext = zeroize::Zeroizing::new(plaintext);
        let body = GroupBody::decode(content::unpad(&plaintext)?)?;
        // Commit.
        match staged {
            Some(c) => {
                peer.chain = Some(c);
                let _examined = peer.skipped.add(new_skipped, GROUP_MAX_SKIP as usize);
                #[cfg(test)]
                {
                    peer.examined += _examined;
                }
            }
            None => {
                peer.skipped.remove(msg.index);
            }
        }
        let mut findings = Vec::new();
        self.record(
            msg.sender,
            msg.index,
            hash,
            msg.prev_hash,
            now,
            &mut findings,
        );
        self.total_messages = self.total_messages.saturating_add(1);
        // Only texts (and a leave) call for a prompt acknowledgement; heartbeats are
        // acknowledged by whatever we send next, so two idle members fall quiet.
        if !matches!(body.kind, super::wire::BodyKind::Heartbeat) && self.first_unacked.is_none() {
            self.first_unacked = Some(now);
        }
        Ok((body, hash, findings))
    }

    fn record(
        &mut self,
        sender: u16,
        index: u32,
        hash: [u8; 32],
        prev: [u8; 32],
        now: Timestamp,
        findings: &mut Vec<Finding>,
    ) {
        let Some(Some(peer)) = self.peers.get_mut(usize::from(sender)) else {
            return;
        };
        // The hash chain: our predecessor's hash must be what this message names, and our
        // successor (if it came first) must name us.
        let prev_ok = match index.checked_sub(1) {
            None => prev == [0u8; 32],
            Some(p) => peer.received.get(&p).is_none_or(|r| r.hash == prev),
        };
        if !prev_ok {
            findings.push(Finding::ChainBroken { sender, index });
        }
        if let Some(next) = peer.received.get(&(index.saturating_add(1))) {
            if next.prev != hash {
                findings.push(Finding::ChainBroken {
                    sender,
                    index: index.saturating_add(1),
                });
            }
        }
        peer.received.insert(index, Received { hash, prev });
        while peer.received.contains_key(&peer.contiguous) {
            peer.contiguous += 1;
        }
        peer.expected = peer.expected.max(index.saturating_add(1));
        if let Some(claims) = peer.claims.remove(&index) {
            self.pending_claims = self.pending_claims.saturating_sub(claims.len());
            for (reporter, claimed) in claims {
                if claimed != hash {
                    findings.push(Finding::Equivocation {
                        sender,
                        index,
                        reported_by: reporter,
                    });
                }
            }
        }
        // A claim about a later message also vouches for this one through the chain;
        // it is checked when that later message arrives.
        update_gap(peer, now);
    }

    /// Processes acknowledgements made by `reporter` (from a group message or from an
    /// `EpochKey`'s view of this epoch).
    pub(crate) fn take_acks(
        &mut self,
        reporter: u16,
        acks: &[Ack],
        now: Timestamp,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        if usize::from(reporter) >= self.roster.len() || reporter == self.me {
            return findings;
        }
        for ack in acks {
            if ack.sender == self.me {
                let ours = self.sent.get(ack.index as usize).map(|s| s.hash);
                if ours != Some(ack.hash) {
                    findings.push(Finding::BadAckOfOurs {
                        index: ack.index,
                        reported_by: reporter,
                    });
                    continue;
                }
                let before = self
                    .acked_by
                    .get(usize::from(reporter))
                    .copied()
                    .unwrap_or(0);
                let after = ack.index.saturating_add(1);
                if after > before {
                    if let Some(slot) = self.acked_by.get_mut(usize::from(reporter)) {
                        *slot = after;
                    }
                    for index in before..after {
                        if self.sent.get(index as usize).is_some_and(|s| s.is_text) {
                            let confirmed = self.confirmations(index);
                            findings.push(Finding::Confirmed { index, confirmed });
                        }
                    }
                }
                continue;
            }
            // A member's statement about its own chain (in an `EpochKey`) is checked like
            // any other claim.
            let pending = self.pending_claims;
            let Some(Some(peer)) = self.peers.get_mut(usize::from(ack.sender)) else {
                continue;
            };
            match peer.received.get(&ack.index) {
                Some(r) => {
                    if r.hash != ack.hash {
                        findings.push(Finding::Equivocation {
                            sender: ack.sender,
                            index: ack.index,
                            reported_by: reporter,
                        });
                    }
                }
                None => {
                    if pending < MAX_PENDING_CLAIMS {
                        peer.claims
                            .entry(ack.index)
                            .or_default()
                            .push((reporter, ack.hash));
                        self.pending_claims += 1;
                    }
                    peer.expected = peer.expected.max(ack.index.saturating_add(1));
                    update_gap(peer, now);
                }
            }
        }
        findings
    }

    /// How many other members have acknowledged our message `index`.
    pub(crate) fn confirmations(&self, index: u32) -> usize {
        self.acked_by
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != usize::from(self.me) && **n > index)
            .count()
    }

    /// Roster positions that have not acknowledged our message `index`.
    pub(crate) fn unconfirmed_by(&self, index: u32) -> Vec<usize> {
        self.acked_by
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != usize::from(self.me) && **n <= index)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether any received message is not yet acknowledged by us.
    pub(crate) fn owes_acks(&self) -> bool {
        self.peers
            .iter()
            .flatten()
            .any(|p| p.contiguous > p.acked_sent)
    }

    /// Skipped message keys held, all senders.
    pub(crate) fn skipped_keys(&self) -> usize {
        self.peers.iter().flatten().map(|p| p.skipped.len()).sum()
    }

    /// Forgets every key (forward secrecy once the epoch is over).
    pub(crate) fn forget_keys(&mut self) {
        for p in self.peers.iter_mut().flatten() {
            p.chain = None;
            p.mac_from = None;
            p.skipped.clear();
        }
        self.mac_to.clear();
        self.my_chain = Chain {
            key: Secret32([0u8; 32]),
            index: self.my_chain.index,
        };
        self.my_chain_key = Secret32([0u8; 32]);
    }

    /// What an insider can do with another member's chain key: a message in its name,
    /// with origin MACs it has to guess.
    #[cfg(test)]
    pub(crate) fn forge_as(
        &self,
        sender: u16,
        text: &str,
        rng: &mut impl rand_core::RngCore,
    ) -> GroupMessage {
        let peer = self.peers[usize::from(sender)].as_ref().unwrap();
        let mut chain = peer.chain.as_ref().unwrap().duplicate();
        let index = chain.index;
        let key = chain.step();
        let prev = index
            .checked_sub(1)
            .and_then(|i| peer.received.get(&i))
            .map_or([0u8; 32], |r| r.hash);
        let mut msg = GroupMessage {
            epoch: self.tag,
            sender,
            index,
            prev_hash: prev,
            ciphertext: Vec::new(),
            macs: Vec::new(),
        };
        let body = GroupBody {
            acks: vec![],
            kind: super::wire::BodyKind::Text(text.into()),
        };
        let (cipher, nonce) = aes(&key);
        let aad = msg.header_bytes();
        msg.ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &content::pad(body.encode()),
                    aad: &aad,
                },
            )
            .unwrap();
        msg.macs = (0..self.others())
            .map(|_| {
                let mut m = [0u8; MAC_BYTES];
                rng.fill_bytes(&mut m);
                m
            })
            .collect();
        msg
    }

    #[cfg(test)]
    pub(crate) fn my_chain_key_bytes(&self) -> [u8; 32] {
        self.initial_chain_key
    }
}

fn update_gap(peer: &mut Peer, now: Timestamp) {
    if peer.expected > peer.contiguous {
        if peer.gap_since.is_none() {
            peer.gap_since = Some(now);
            peer.gap_reported = false;
        }
    } else {
        peer.gap_since = None;
        peer.gap_reported = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::wire::BodyKind;

    fn entry(address: &str) -> RosterEntry {
        RosterEntry {
            address: address.into(),
            identity_key: [0; 32],
            nickname_hash: [0; 32],
        }
    }

    /// A sender (position 0) and a receiver (position 1) holding the sender's keys.
    fn pair() -> (Epoch, Epoch) {
        let roster = vec![entry("a"), entry("b")];
        let secret = |b: u8| Secret32([b; 32]);
        let t = Timestamp(0);
        let sender = Epoch::new(
            1,
            [1; 16],
            roster.clone(),
            0,
            secret(1),
            vec![secret(2), secret(3)],
            t,
        );
        let mut receiver = Epoch::new(
            1,
            [1; 16],
            roster,
            1,
            secret(4),
            vec![secret(5), secret(6)],
            t,
        );
        let (chain, mac) = sender.keys_for(1).unwrap();
        assert!(receiver.set_peer_keys(0, &chain, &mac, [0; 32]));
        (sender, receiver)
    }

    fn heartbeat(e: &mut Epoch) -> GroupMessage {
        e.seal(
            &GroupBody {
                acks: vec![],
                kind: BodyKind::Heartbeat,
            },
            Timestamp(0),
        )
    }

    /// Row 2 of issue 14: once the store is full, each message that skips s keys evicts s
    /// keys, oldest first, examining O(1) entries per eviction (before: the whole store
    /// for each, about s x 2,000). The same code serves an old epoch after a rekey.
    #[test]
    fn skipped_key_eviction_is_oldest_first_at_constant_cost_per_key() {
        let (mut sender, mut receiver) = pair();
        let rounds = 11u32;
        for round in 0..rounds {
            let mut last = None;
            for _ in 0..=GROUP_MAX_SKIP {
                last = Some(heartbeat(&mut sender));
            }
            receiver.open(&last.unwrap(), Timestamp(0)).unwrap();
            let peer = receiver.peers[0].as_ref().unwrap();
            assert_eq!(peer.skipped.len(), GROUP_MAX_SKIP as usize, "round {round}");
            // The oldest were evicted: what is left is the last message's skipped keys.
            let first_kept = round * (GROUP_MAX_SKIP + 1);
            assert!(peer.skipped.get(first_kept).is_some());
            assert!(first_kept == 0 || peer.skipped.get(first_kept - 1).is_none());
        }
        let examined = receiver.peers[0].as_ref().unwrap().examined;
        let evictions = u64::from(GROUP_MAX_SKIP) * u64::from(rounds - 1);
        assert!(
            examined <= 2 * evictions,
            "{examined} entries examined for {evictions} evictions"
        );
        // Skipped messages that come late decrypt once each, in any order; the holes
        // they leave are dropped.
        let late: Vec<GroupMessage> = (0..=GROUP_MAX_SKIP)
            .map(|_| heartbeat(&mut sender))
            .collect();
        let (last, rest) = late.split_last().unwrap();
        receiver.open(last, Timestamp(0)).unwrap();
        for (n, m) in rest.iter().enumerate().filter(|(n, _)| n % 3 != 1) {
            receiver.open(m, Timestamp(0)).unwrap();
            assert!(
                matches!(
                    receiver.open(m, Timestamp(0)),
                    Err(GroupReceiveError::Duplicate { .. })
                ),
                "message {n} twice"
            );
        }
        let peer = receiver.peers[0].as_ref().unwrap();
        assert_eq!(peer.skipped.len(), rest.iter().skip(1).step_by(3).count());
        assert!(peer.skipped.entries.len() <= 2 * peer.skipped.len() + 64);
        for m in rest.iter().skip(1).step_by(3) {
            receiver.open(m, Timestamp(0)).unwrap();
        }
        let peer = receiver.peers[0].as_ref().unwrap();
        assert_eq!((peer.skipped.len(), peer.skipped.entries.len()), (0, 0));
    }
}
