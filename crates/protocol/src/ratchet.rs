//! The double ratchet (Signal's design) that carries one-to-one messages.
//!
//! x25519 DH ratchet; HKDF-SHA256 root step; HMAC-SHA256 chain step; one AES-256-GCM key
//! and nonce per message, derived with HKDF and used once. Skipped message keys are kept in
//! a bounded store ([`MAX_STORED_SKIPPED`]) and a single message may skip at most
//! [`MAX_SKIP`] keys. Receiving is transactional: the keys change only after the message
//! authenticated, so a forged or corrupted message leaves the session as it was.
//!
//! The header is authenticated only by the AES-GCM tag, so a forged header can make us
//! walk a chain before the tag is checked. That walk is bounded per message
//! ([`MAX_SKIP`]) and not repeatable: chain states passed on the way are kept every
//! `STRIDE` (32) indices (`Lookahead`, a cache of values the chain key already
//! determines), and the result of the DH step for the last new peer key tried is kept
//! (`NextChain`), so a replayed or neighbouring forgery costs at most 32 chain steps and no
//! DH.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::kdf::{self, label, Secret32};
use crate::message::DataHeader;

/// The most message keys one incoming message may make us skip: no more than the store
/// keeps, since keys derived past that would be evicted as soon as they are stored. It
/// also bounds the chain steps a forged header can cost before its tag is checked (about
/// 0.8 ms at 0.4 µs a step).
pub const MAX_SKIP: u32 = 2_000;

/// The most skipped message keys kept; past it, the oldest are deleted.
pub const MAX_STORED_SKIPPED: usize = 2_000;

/// How many previous receiving ratchet keys are remembered to name replays precisely.
const RECENT_KEYS: usize = 16;

/// Chain states are kept every `STRIDE` indices ahead of a receiving chain: a message key
/// in a stretch already walked costs at most this many steps to find again.
pub(crate) const STRIDE: u32 = 32;

/// Why an incoming data message was not decrypted. The session is unchanged after any of
/// these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatchetError {
    /// The message key was already used (a duplicate or replay) or was deleted.
    #[error("message {index} was already received or its key was deleted (replay or duplicate)")]
    Duplicate {
        /// Index of the message in its chain.
        index: u32,
    },
    /// The message would make us skip more keys than allowed.
    #[error("message would skip {skip} message keys, above the limit of {max}")]
    TooFarAhead {
        /// Keys it would skip.
        skip: u64,
        /// The limit.
        max: u32,
    },
    /// AES-GCM rejected the ciphertext or header (tampered, truncated or not for us).
    #[error("message failed authentication (altered, corrupted or not for this session)")]
    AuthenticationFailed,
    /// The peer's ratchet key gave an all-zero DH output (a low-order point).
    #[error("peer ratchet key is a low-order point (non-contributory DH)")]
    NonContributory,
    /// A message arrived on a chain we have no key for (a peer bug or an attack).
    #[error("no receiving chain for this message")]
    NoReceivingChain,
}

pub(crate) struct Chain {
    pub(crate) key: Secret32,
    pub(crate) index: u32,
}

impl Chain {
    /// Returns the current message key and advances: `mk = HMAC(ck, 0x01)`,
    /// `ck' = HMAC(ck, 0x02)`.
    pub(crate) fn step(&mut self) -> MessageKey {
        // One HMAC key schedule for both outputs.
        let hmac = kdf::HmacKey::new(self.key.as_bytes());
        let mk = MessageKey(Secret32(hmac.mac_byte(0x01)));
        self.key = Secret32(hmac.mac_byte(0x02));
        self.index = self.index.wrapping_add(1);
        mk
    }

    pub(crate) fn duplicate(&self) -> Self {
        Self {
            key: self.key.duplicate(),
            index: self.index,
        }
    }
}

/// One message key. Used once, then dropped (and zeroized).
pub(crate) struct MessageKey(Secret32);

impl MessageKey {
    /// The AES-256-GCM key and nonce: `HKDF(ikm = mk, info = "…/message-key")`, 44 bytes.
    pub(crate) fn expand(&self) -> Zeroizing<[u8; 44]> {
        kdf::hkdf44_unsalted(self.0.as_bytes(), label::MESSAGE_KEY)
    }
}

/// Root step: `(root', chain) = HKDF(salt = root, ikm = dh, info = "…/ratchet-root")`.
fn root_step(root: &Secret32, dh: &[u8; 32]) -> (Secret32, Secret32) {
    let mut out = Zeroizing::new([0u8; 64]);
    kdf::hkdf(root.as_bytes(), dh, label::RATCHET_ROOT, out.as_mut());
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(out.get(..32).unwrap_or(&[0u8; 32]));
    b.copy_from_slice(out.get(32..).unwrap_or(&[0u8; 32]));
    (Secret32(a), Secret32(b))
}

pub(crate) fn dh(
    ours: &StaticSecret,
    theirs: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, RatchetError> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return dh_edwards(ours, theirs);
    }
    dh_ladder(ours, theirs)
}

/// X25519 with x25519-dalek's Montgomery ladder.
fn dh_ladder(ours: &StaticSecret, theirs: &PublicKey) -> Result<Zeroizing<[u8; 32]>, RatchetError> {
    let shared = ours.diffie_hellman(theirs);
    if !shared.was_contributory() {
        return Err(RatchetError::NonContributory);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// X25519 computed in Edwards form, where curve25519-dalek's AVX2 backend makes the
/// constant-time variable-base multiplication about a quarter faster than the ladder. The
/// same output for every point on the curve (tests compare); a point on the twist, which
/// no honest peer sends, is refused instead of being multiplied.
#[cfg(target_arch = "x86_64")]
fn dh_edwards(
    ours: &StaticSecret,
    theirs: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, RatchetError> {
    use curve25519_dalek::montgomery::MontgomeryPoint;
    use subtle::ConstantTimeEq;
    let point = MontgomeryPoint(theirs.to_bytes())
        .to_edwards(0)
        .ok_or(RatchetError::NonContributory)?;
    let scalar = Zeroizing::new(ours.to_bytes());
    let shared = Zeroizing::new(point.mul_clamped(*scalar).to_montgomery().to_bytes());
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(RatchetError::NonContributory);
    }
    Ok(shared)
}

/// Skipped message keys by `(ratchet key, index)`, evicted oldest first; insertion,
/// eviction and removal are O(log n).
#[derive(Default)]
struct SkippedKeys {
    keys: HashMap<([u8; 32], u32), (u64, MessageKey)>,
    /// Insertion number -> id, oldest first.
    order: BTreeMap<u64, ([u8; 32], u32)>,
    next: u64,
}

impl SkippedKeys {
    fn get(&self, id: &([u8; 32], u32)) -> Option<&MessageKey> {
        self.keys.get(id).map(|(_, k)| k)
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Stores a key (one already present is kept in place), then evicts the oldest past
    /// [`MAX_STORED_SKIPPED`].
    fn insert(&mut self, id: ([u8; 32], u32), key: MessageKey) {
        if self.keys.contains_key(&id) {
            return;
        }
        self.keys.insert(id, (self.next, key));
        self.order.insert(self.next, id);
        self.next += 1;
        while self.keys.len() > MAX_STORED_SKIPPED {
            match self.order.pop_first() {
                Some((_, old)) => {
                    self.keys.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, id: &([u8; 32], u32)) {
        if let Some((n, _)) = self.keys.remove(id) {
            self.order.remove(&n);
        }
    }
}

/// Chain states every [`STRIDE`] indices ahead of a chain's base state: derived values
/// only (each follows from the base key), kept so that no stretch of a chain is walked
/// twice for messages that fail to authenticate.
#[derive(Default)]
struct Lookahead {
    /// States at increasing indices, each a multiple of `STRIDE`; every multiple between
    /// the base and the last one is present.
    points: Vec<Chain>,
}

impl Lookahead {
    /// The message key at `index` of the chain whose current state is `base`
    /// (`base.index <= index`), walked from the nearest known state; states passed beyond
    /// the furthest known one are recorded.
    fn key_at(&mut self, base: &Chain, index: u32, work: &mut ReceiveWork) -> MessageKey {
        let from = self
            .points
            .iter()
            .rev()
            .find(|c| c.index <= index && c.index >= base.index);
        let mut c = from.unwrap_or(base).duplicate();
        let furthest = self.points.last().map_or(base.index, |p| p.index);
        while c.index < index {
            c.step();
            work.steps += 1;
            if c.index % STRIDE == 0 && c.index > furthest {
                self.points.push(c.duplicate());
            }
        }
        work.steps += 1;
        c.step()
    }

    /// The chain moved to `index`: states below it are forgotten.
    fn advance(&mut self, index: u32) {
        self.points.retain(|c| c.index >= index);
    }
}

/// The outcome of the DH step for a new peer ratchet key, kept for the last key tried (a
/// forged one included) until our root key or ratchet secret changes.
struct NextChain {
    their: [u8; 32],
    root: Secret32,
    chain: Chain,
    ahead: Lookahead,
}

/// Work done on the receive path, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReceiveWork {
    /// Chain steps (each one HMAC key schedule and two MACs).
    pub(crate) steps: u64,
    /// DH computations for new peer ratchet keys.
    pub(crate) dh: u64,
}

/// The message keys of a copy of `chain` from its index up to `end` (exclusive), and the
/// chain at `end`.
fn derive_until(
    chain: &Chain,
    end: u32,
    work: &mut ReceiveWork,
) -> (Vec<(u32, MessageKey)>, Chain) {
    let mut c = chain.duplicate();
    let mut keys = Vec::new();
    while c.index < end {
        let i = c.index;
        keys.push((i, c.step()));
        work.steps += 1;
    }
    (keys, c)
}

/// `derive_until(index)`, then the key at `index` and the chain past it.
fn walk_to(
    chain: &Chain,
    index: u32,
    work: &mut ReceiveWork,
) -> (Vec<(u32, MessageKey)>, MessageKey, Chain) {
    let (skipped, mut c) = derive_until(chain, index, work);
    let key = c.step();
    work.steps += 1;
    (skipped, key, c)
}

/// Ratchet state of one session.
pub(crate) struct Ratchet {
    root: Secret32,
    our_secret: StaticSecret,
    our_public: PublicKey,
    their_public: PublicKey,
    send: Option<Chain>,
    recv: Option<Chain>,
    previous_send_len: u32,
    send_step_pending: bool,
    skipped: SkippedKeys,
    recent_their_keys: VecDeque<[u8; 32]>,
    /// States ahead of `recv` (a cache).
    ahead: Lookahead,
    /// The DH step for the last new peer key tried (a cache).
    next: Option<NextChain>,
    work: ReceiveWork,
}

impl Ratchet {
    /// The party that sends first: it already knows the peer's ratchet key.
    pub(crate) fn new_sender(
        root: Secret32,
        our_secret: StaticSecret,
        their_public: PublicKey,
    ) -> Result<Self, RatchetError> {
        let shared = dh(&our_secret, &their_public)?;
        let (root, chain) = root_step(&root, &shared);
        Ok(Self {
            root,
            our_public: PublicKey::from(&our_secret),
            our_secret,
            their_public,
            send: Some(Chain {
                key: chain,
                index: 0,
            }),
            recv: None,
            previous_send_len: 0,
            send_step_pending: false,
            skipped: SkippedKeys::default(),
            recent_their_keys: VecDeque::new(),
            ahead: Lookahead::default(),
            next: None,
            work: ReceiveWork::default(),
        })
    }

    /// The other party: it receives the sender's first ratchet key (in DAKE message 3) and
    /// makes its own sending chain on its first send.
    /// The party that receives first: it got the sender's first ratchet key (in DAKE
    /// message 3) and the (already checked contributory) DH output with it; it makes its
    /// own sending chain on its first send.
    pub(crate) fn receiver_from_shared(
        root: &Secret32,
        our_secret: StaticSecret,
        their_public: PublicKey,
        shared: &[u8; 32],
    ) -> Self {
        let (root, chain) = root_step(root, shared);
        Self {
            root,
            our_public: PublicKey::from(&our_secret),
            our_secret,
            their_public,
            send: None,
            recv: Some(Chain {
                key: chain,
                index: 0,
            }),
            previous_send_len: 0,
            send_step_pending: true,
            skipped: SkippedKeys::default(),
            recent_their_keys: VecDeque::new(),
            ahead: Lookahead::default(),
            next: None,
            work: ReceiveWork::default(),
        }
    }

    /// The header and key for the next outgoing message, doing a DH ratchet step first if
    /// a new peer key arrived since our last send.
    pub(crate) fn next_sending_key(
        &mut self,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(DataHeader, MessageKey), RatchetError> {
        if self.send_step_pending || self.send.is_none() {
            let secret = StaticSecret::random_from_rng(&mut *rng);
            let shared = dh(&secret, &self.their_public)?;
            let (root, chain) = root_step(&self.root, &shared);
            self.previous_send_len = self.send.as_ref().map_or(0, |c| c.index);
            self.our_public = PublicKey::from(&secret);
            self.our_secret = secret;
            self.root = root;
            self.send = Some(Chain {
                key: chain,
                index: 0,
            });
            self.send_step_pending = false;
            // A new peer key would now meet another root and secret.
            self.next = None;
        }
        let chain = self.send.as_mut().ok_or(RatchetError::NoReceivingChain)?;
        let header = DataHeader {
            ratchet_key: self.our_public.to_bytes(),
            previous_chain_length: self.previous_send_len,
            index: chain.index,
        };
        Ok((header, chain.step()))
    }

    /// Finds the key for `header`, runs `open` with it, and commits the state change only
    /// if `open` succeeded. A failure changes no key: only the caches of derived chain
    /// states ([`Lookahead`], [`NextChain`]) may have grown.
    pub(crate) fn receive<T>(
        &mut self,
        header: &DataHeader,
        open: impl FnOnce(&MessageKey) -> Option<T>,
    ) -> Result<T, RatchetError> {
        let id = (header.ratchet_key, header.index);
        if let Some(key) = self.skipped.get(&id) {
            let out = open(key).ok_or(RatchetError::AuthenticationFailed)?;
            self.skipped.remove(&id);
            return Ok(out);
        }
        if header.ratchet_key == self.their_public.to_bytes() {
            return self.receive_current(header, open);
        }
        if self.recent_their_keys.contains(&header.ratchet_key) {
            return Err(RatchetError::Duplicate {
                index: header.index,
            });
        }
        self.receive_new_key(header, open)
    }

    /// A message on the current receiving chain.
    fn receive_current<T>(
        &mut self,
        header: &DataHeader,
        open: impl FnOnce(&MessageKey) -> Option<T>,
    ) -> Result<T, RatchetError> {
        let chain = self.recv.as_ref().ok_or(RatchetError::NoReceivingChain)?;
        if header.index < chain.index {
            return Err(RatchetError::Duplicate {
                index: header.index,
            });
        }
        let skip = header.index - chain.index;
        if skip > MAX_SKIP {
            return Err(RatchetError::TooFarAhead {
                skip: u64::from(skip),
                max: MAX_SKIP,
            });
        }
        // Near: walk from the chain itself (the walk is the commit's). Far: find the key
        // through the lookahead, and walk for the skipped keys only once it authenticated.
        let near = (skip <= STRIDE).then(|| walk_to(chain, header.index, &mut self.work));
        let out = match &near {
            Some((_, key, _)) => open(key),
            None => open(&self.ahead.key_at(chain, header.index, &mut self.work)),
        }
        .ok_or(RatchetError::AuthenticationFailed)?;
        let (skipped, _, staged) = match near {
            Some(w) => w,
            None => walk_to(chain, header.index, &mut self.work),
        };
        // Commit.
        self.recv = Some(staged);
        self.ahead.advance(header.index.saturating_add(1));
        for (i, k) in skipped {
            self.skipped.insert((header.ratchet_key, i), k);
        }
        Ok(out)
    }

    /// A message under a new peer ratchet key: finish the current chain up to
    /// `previous_chain_length`, then a DH step.
    fn receive_new_key<T>(
        &mut self,
        header: &DataHeader,
        open: impl FnOnce(&MessageKey) -> Option<T>,
    ) -> Result<T, RatchetError> {
        let old_skip = self.recv.as_ref().map_or(0, |c| {
            u64::from(header.previous_chain_length.saturating_sub(c.index))
        });
        let total = old_skip + u64::from(header.index);
        if total > u64::from(MAX_SKIP) {
            return Err(RatchetError::TooFarAhead {
                skip: total,
                max: MAX_SKIP,
            });
        }
        if self
            .next
            .as_ref()
            .is_none_or(|n| n.their != header.ratchet_key)
        {
            let shared = dh(&self.our_secret, &PublicKey::from(header.ratchet_key))?;
            self.work.dh += 1;
            let (root, chain_key) = root_step(&self.root, &shared);
            self.next = Some(NextChain {
                their: header.ratchet_key,
                root,
                chain: Chain {
                    key: chain_key,
                    index: 0,
                },
                ahead: Lookahead::default(),
            });
        }
        let next = self.next.as_mut().ok_or(RatchetError::NoReceivingChain)?;
        let near =
            (header.index <= STRIDE).then(|| walk_to(&next.chain, header.index, &mut self.work));
        let out = match &near {
            Some((_, key, _)) => open(key),
            None => open(&next.ahead.key_at(&next.chain, header.index, &mut self.work)),
        }
        .ok_or(RatchetError::AuthenticationFailed)?;
        // Commit: the old chain's remaining keys, then the new chain's skipped ones.
        let Some(mut next) = self.next.take() else {
            return Err(RatchetError::NoReceivingChain);
        };
        let (new_skipped, _, staged) = match near {
            Some(w) => w,
            None => walk_to(&next.chain, header.index, &mut self.work),
        };
        let old_key = self.their_public.to_bytes();
        let old_skipped = match &self.recv {
            Some(chain) => derive_until(chain, header.previous_chain_length, &mut self.work).0,
            None => Vec::new(),
        };
        self.recent_their_keys.push_back(old_key);
        if self.recent_their_keys.len() > RECENT_KEYS {
            self.recent_their_keys.pop_front();
        }
        self.their_public = PublicKey::from(header.ratchet_key);
        self.root = std::mem::replace(&mut next.root, Secret32([0u8; 32]));
        self.recv = Some(staged);
        self.ahead = std::mem::take(&mut next.ahead);
        self.ahead.advance(header.index.saturating_add(1));
        self.send_step_pending = true;
        for (i, k) in old_skipped {
            self.skipped.insert((old_key, i), k);
        }
        for (i, k) in new_skipped {
            self.skipped.insert((header.ratchet_key, i), k);
        }
        Ok(out)
    }

    /// Work done on the receive path so far.
    #[cfg(test)]
    pub(crate) fn receive_work(&self) -> ReceiveWork {
        self.work
    }

    /// Number of skipped keys currently stored.
    pub(crate) fn stored_skipped(&self) -> usize {
        self.skipped.len()
    }

    #[cfg(test)]
    pub(crate) fn root_bytes(&self) -> [u8; 32] {
        *self.root.as_bytes()
    }

    /// An explicit copy of the whole state, for tests that model a stolen device.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Self {
        Self {
            root: self.root.duplicate(),
            our_secret: StaticSecret::from(self.our_secret.to_bytes()),
            our_public: self.our_public,
            their_public: self.their_public,
            send: self.send.as_ref().map(Chain::duplicate),
            recv: self.recv.as_ref().map(Chain::duplicate),
            previous_send_len: self.previous_send_len,
            send_step_pending: self.send_step_pending,
            skipped: SkippedKeys {
                keys: self
                    .skipped
                    .keys
                    .iter()
                    .map(|(k, (n, v))| (*k, (*n, MessageKey(v.0.duplicate()))))
                    .collect(),
                order: self.skipped.order.clone(),
                next: self.skipped.next,
            },
            recent_their_keys: self.recent_their_keys.clone(),
            ahead: Lookahead::default(),
            next: None,
            work: self.work,
        }
    }
}

impl core::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ratchet")
            .field("send_index", &self.send.as_ref().map(|c| c.index))
            .field("recv_index", &self.recv.as_ref().map(|c| c.index))
            .field("stored_skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn both_dh_paths_agree_and_refuse_low_order_points() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for _ in 0..2_000 {
            let a = StaticSecret::random_from_rng(&mut rng);
            let b = StaticSecret::random_from_rng(&mut rng);
            let b_pub = PublicKey::from(&b);
            let fast = dh(&a, &b_pub).unwrap();
            let ladder = dh_ladder(&a, &b_pub).unwrap();
            assert_eq!(*fast, *ladder);
            assert_eq!(*fast, *dh_ladder(&b, &PublicKey::from(&a)).unwrap());
        }
        // Low-order points (zero, one, and an order-8 point).
        let a = StaticSecret::random_from_rng(&mut rng);
        let mut order8 = [0u8; 32];
        order8.copy_from_slice(&hex_32(
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        ));
        for low in [
            [0u8; 32],
            {
                let mut one = [0u8; 32];
                one[0] = 1;
                one
            },
            order8,
        ] {
            assert_eq!(
                dh(&a, &PublicKey::from(low)).err(),
                Some(RatchetError::NonContributory)
            );
            assert_eq!(
                dh_ladder(&a, &PublicKey::from(low)).err(),
                Some(RatchetError::NonContributory)
            );
        }
    }

    /// Alice (sends first) and Bob, as the handshake leaves them.
    fn ratchet_pair(seed: u64) -> (Ratchet, Ratchet, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let root = Secret32([9; 32]);
        let a = StaticSecret::random_from_rng(&mut rng);
        let b = StaticSecret::random_from_rng(&mut rng);
        let (a_pub, b_pub) = (PublicKey::from(&a), PublicKey::from(&b));
        let shared = dh(&b, &a_pub).unwrap();
        let alice = Ratchet::new_sender(root.duplicate(), a, b_pub).unwrap();
        let bob = Ratchet::receiver_from_shared(&root, b, a_pub, &shared);
        (alice, bob, rng)
    }

    fn send(r: &mut Ratchet, rng: &mut ChaCha20Rng) -> (DataHeader, [u8; 32]) {
        let (h, k) = r.next_sending_key(rng).unwrap();
        (h, *k.0.as_bytes())
    }

    /// Receives a genuine message: `open` accepts exactly its key.
    fn accept(r: &mut Ratchet, (h, key): &(DataHeader, [u8; 32])) -> Result<(), RatchetError> {
        r.receive(h, |k| (k.0.as_bytes() == key).then_some(()))
    }

    /// A forgery: no key opens it.
    fn forged(r: &mut Ratchet, h: &DataHeader) -> u64 {
        let before = r.receive_work().steps;
        assert_eq!(
            r.receive(h, |_| None::<()>),
            Err(RatchetError::AuthenticationFailed)
        );
        r.receive_work().steps - before
    }

    /// Row 3 of issue 14, current chain: a forged header as far ahead as allowed costs at
    /// most `MAX_STORED_SKIPPED + 1` chain steps once, and a replay of it (or another
    /// forgery in the stretch already walked) at most `STRIDE + 1`. (Before: 25,001 steps
    /// per forgery, every time.) Genuine messages still decrypt, each exactly once.
    #[test]
    fn forged_header_far_ahead_costs_bounded_work_once() {
        let (mut alice, mut bob, mut rng) = ratchet_pair(11);
        let first = send(&mut alice, &mut rng);
        accept(&mut bob, &first).unwrap();
        let mut far = first.0;
        far.index = first.0.index + 1 + MAX_SKIP;
        let once = forged(&mut bob, &far);
        assert!(once <= MAX_STORED_SKIPPED as u64 + 1, "{once} steps");
        let mut replays = 0;
        for i in 0..100 {
            replays += forged(&mut bob, &far);
            let mut near = far;
            near.index = far.index - 1 - 7 * i;
            replays += forged(&mut bob, &near);
        }
        assert!(
            replays <= 200 * (u64::from(STRIDE) + 1),
            "{replays} steps for 200 forgeries in a walked stretch"
        );
        // Genuine messages, far ahead first (found through the lookahead), then the rest in
        // reverse: each decrypts once, a second delivery is refused.
        let genuine: Vec<_> = (0..500).map(|_| send(&mut alice, &mut rng)).collect();
        for m in genuine.iter().rev() {
            accept(&mut bob, m).unwrap();
            assert!(accept(&mut bob, m).is_err());
        }
    }

    /// Row 3, new peer key: each forgery with a fresh key costs one DH and at most
    /// `MAX_STORED_SKIPPED + 1` steps; a replay costs no DH and at most `STRIDE + 1`.
    #[test]
    fn forged_new_key_costs_bounded_work_and_replays_nothing_new() {
        let (mut alice, mut bob, mut rng) = ratchet_pair(12);
        let first = send(&mut alice, &mut rng);
        accept(&mut bob, &first).unwrap();
        let fresh = |rng: &mut ChaCha20Rng| DataHeader {
            ratchet_key: PublicKey::from(&StaticSecret::random_from_rng(rng)).to_bytes(),
            previous_chain_length: 1,
            index: MAX_SKIP,
        };
        for _ in 0..3 {
            let h = fresh(&mut rng);
            let dh_before = bob.receive_work().dh;
            assert!(forged(&mut bob, &h) <= MAX_STORED_SKIPPED as u64 + 1);
            let mut replays = 0;
            for _ in 0..100 {
                replays += forged(&mut bob, &h);
            }
            assert!(replays <= 100 * (u64::from(STRIDE) + 1), "{replays} steps");
            assert_eq!(bob.receive_work().dh - dh_before, 1, "DH steps for one key");
        }
        // The session still works both ways, across a DH step with a gap on the new chain.
        let back = send(&mut bob, &mut rng);
        accept(&mut alice, &back).unwrap();
        let next: Vec<_> = (0..100).map(|_| send(&mut alice, &mut rng)).collect();
        for m in next.iter().rev() {
            accept(&mut bob, m).unwrap();
        }
        assert_eq!(bob.stored_skipped(), 0);
    }

    fn hex_32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
