//! The double ratchet (Signal's design) that carries one-to-one messages.
//!
//! x25519 DH ratchet; HKDF-SHA256 root step; HMAC-SHA256 chain step; one AES-256-GCM key
//! and nonce per message, derived with HKDF and used once. Skipped message keys are kept in
//! a bounded store ([`MAX_STORED_SKIPPED`]) and a single message may skip at most
//! [`MAX_SKIP`] keys. Receiving is transactional: the state changes only after the message
//! authenticated, so a forged or corrupted message leaves the session as it was.

use std::collections::{HashMap, VecDeque};

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::kdf::{self, label, Secret32};
use crate::message::DataHeader;

/// The most message keys one incoming message may make us skip.
pub const MAX_SKIP: u32 = 25_000;

/// The most skipped message keys kept; past it, the oldest are deleted.
pub const MAX_STORED_SKIPPED: usize = 2_000;

/// How many previous receiving ratchet keys are remembered to name replays precisely.
const RECENT_KEYS: usize = 16;

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

/// Skipped message keys, oldest first.
#[derive(Default)]
struct SkippedKeys {
    keys: HashMap<([u8; 32], u32), MessageKey>,
    order: VecDeque<([u8; 32], u32)>,
}

impl SkippedKeys {
    fn insert(&mut self, id: ([u8; 32], u32), key: MessageKey) {
        if self.keys.insert(id, key).is_none() {
            self.order.push_back(id);
        }
        while self.keys.len() > MAX_STORED_SKIPPED {
            match self.order.pop_front() {
                Some(old) => {
                    self.keys.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, id: &([u8; 32], u32)) {
        if self.keys.remove(id).is_some() {
            self.order.retain(|k| k != id);
        }
    }
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
    /// if `open` succeeded.
    pub(crate) fn receive<T>(
        &mut self,
        header: &DataHeader,
        open: impl FnOnce(&MessageKey) -> Option<T>,
    ) -> Result<T, RatchetError> {
        let id = (header.ratchet_key, header.index);
        if let Some(key) = self.skipped.keys.get(&id) {
            let out = open(key).ok_or(RatchetError::AuthenticationFailed)?;
            self.skipped.remove(&id);
            return Ok(out);
        }
        if header.ratchet_key == self.their_public.to_bytes() {
            let chain = self.recv.as_ref().ok_or(RatchetError::NoReceivingChain)?;
            if header.index < chain.index {
                return Err(RatchetError::Duplicate {
                    index: header.index,
                });
            }
            let skip = u64::from(header.index - chain.index);
            if skip > u64::from(MAX_SKIP) {
                return Err(RatchetError::TooFarAhead {
                    skip,
                    max: MAX_SKIP,
                });
            }
            let mut staged = chain.duplicate();
            let mut skipped = Vec::new();
            while staged.index < header.index {
                let i = staged.index;
                skipped.push((i, staged.step()));
            }
            let key = staged.step();
            let out = open(&key).ok_or(RatchetError::AuthenticationFailed)?;
            self.recv = Some(staged);
            for (i, k) in skipped {
                self.skipped.insert((header.ratchet_key, i), k);
            }
            return Ok(out);
        }
        if self.recent_their_keys.contains(&header.ratchet_key) {
            return Err(RatchetError::Duplicate {
                index: header.index,
            });
        }
        // A new ratchet key from the peer: finish the current chain up to
        // `previous_chain_length`, then a DH step.
        let mut skipped = Vec::new();
        let mut old_skip = 0u64;
        if let Some(chain) = &self.recv {
            old_skip = u64::from(header.previous_chain_length.saturating_sub(chain.index));
            let total = old_skip + u64::from(header.index);
            if total > u64::from(MAX_SKIP) {
                return Err(RatchetError::TooFarAhead {
                    skip: total,
                    max: MAX_SKIP,
                });
            }
            let mut staged = chain.duplicate();
            let old_key = self.their_public.to_bytes();
            while staged.index < header.previous_chain_length {
                let i = staged.index;
                skipped.push(((old_key, i), staged.step()));
            }
        }
        if old_skip + u64::from(header.index) > u64::from(MAX_SKIP) {
            return Err(RatchetError::TooFarAhead {
                skip: old_skip + u64::from(header.index),
                max: MAX_SKIP,
            });
        }
        let their_new = PublicKey::from(header.ratchet_key);
        let shared = dh(&self.our_secret, &their_new)?;
        let (root, chain_key) = root_step(&self.root, &shared);
        let mut staged = Chain {
            key: chain_key,
            index: 0,
        };
        while staged.index < header.index {
            let i = staged.index;
            skipped.push(((header.ratchet_key, i), staged.step()));
        }
        let key = staged.step();
        let out = open(&key).ok_or(RatchetError::AuthenticationFailed)?;
        // Commit.
        self.recent_their_keys
            .push_back(self.their_public.to_bytes());
        if self.recent_their_keys.len() > RECENT_KEYS {
            self.recent_their_keys.pop_front();
        }
        self.their_public = their_new;
        self.root = root;
        self.recv = Some(staged);
        self.send_step_pending = true;
        for (id, k) in skipped {
            self.skipped.insert(id, k);
        }
        Ok(out)
    }

    /// Number of skipped keys currently stored.
    pub(crate) fn stored_skipped(&self) -> usize {
        self.skipped.keys.len()
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
                    .map(|(k, v)| (*k, MessageKey(v.0.duplicate())))
                    .collect(),
                order: self.skipped.order.clone(),
            },
            recent_their_keys: self.recent_their_keys.clone(),
        }
    }
}

impl core::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ratchet")
            .field("send_index", &self.send.as_ref().map(|c| c.index))
            .field("recv_index", &self.recv.as_ref().map(|c| c.index))
            .field("stored_skipped", &self.skipped.keys.len())
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

    fn hex_32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
