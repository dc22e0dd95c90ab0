//! Key derivation, MACs and hashing to scalars, each with its own domain label.
//!
//! Every derivation in the protocol goes through this module so that the labels in
//! `docs/protocol.md` can be checked against one place.

use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
#[cfg(test)]
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain labels. Each is unique; `docs/protocol.md` lists them.
pub(crate) mod label {
    pub(crate) const PROFILE_SIG: &[u8] = b"cryptocat/v1/profile";
    pub(crate) const DAKE_KEY: &[u8] = b"cryptocat/v1/dake-key";
    pub(crate) const FORGING_KEY: &[u8] = b"cryptocat/v1/forging-key";
    pub(crate) const RING_SIG: &[u8] = b"cryptocat/v1/ring-signature";
    pub(crate) const DAKE_T: &[u8] = b"cryptocat/v1/dake-transcript";
    pub(crate) const SESSION_ID: &[u8] = b"cryptocat/v1/session-id";
    pub(crate) const ROOT_KEY: &[u8] = b"cryptocat/v1/root-key";
    pub(crate) const RATCHET_ROOT: &[u8] = b"cryptocat/v1/ratchet-root";
    pub(crate) const MESSAGE_KEY: &[u8] = b"cryptocat/v1/message-key";
    pub(crate) const IDENTITY_SEAL: &[u8] = b"cryptocat/v1/identity-seal";
    pub(crate) const EXTERNAL_SIG: &[u8] = b"cryptocat/v1/external";
    pub(crate) const KEY_LOCALPART: &[u8] = b"cryptocat/v1/xmpp-localpart";
    pub(crate) const EPOCH_TAG: &[u8] = b"cryptocat/v1/group/epoch";
    pub(crate) const GROUP_MESSAGE: &[u8] = b"cryptocat/v1/group/message";
    pub(crate) const NICKNAME: &[u8] = b"cryptocat/v1/group/nickname";
    pub(crate) const OCCUPANT: &[u8] = b"cryptocat/v1/group/occupant";
    pub(crate) const HANDSHAKE_DIGEST: &[u8] = b"cryptocat/v1/group/handshake-digest";
}

/// 32 secret bytes that zeroize on drop. Not `Clone`, `Copy` or `Debug`-printable.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret32(pub(crate) [u8; 32]);

impl Secret32 {
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An explicit copy, for the places that must stage a state change before committing it.
    pub(crate) fn duplicate(&self) -> Self {
        Self(self.0)
    }
}

impl core::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

/// HMAC-SHA256 with the key schedule done once, for a key that MACs many 32-byte inputs
/// (the group protocol's per-recipient origin MACs). Two SHA-256 compressions per MAC
/// instead of four, and the precomputed states zeroize on drop (the `hmac` crate's cached
/// state does not).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

impl HmacKey {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        // One pad buffer, turned from ipad into opad in place: half the bytes to zeroize
        // (this runs twice per chain step).
        let mut pad = [0x36u8; 64];
        for (p, k) in pad.iter_mut().zip(key.iter()) {
            *p ^= k;
        }
        let mut inner = SHA256_IV;
        sha2::compress256(&mut inner, &[pad.into()]);
        for p in pad.iter_mut() {
            *p ^= 0x36 ^ 0x5c;
        }
        let mut outer = SHA256_IV;
        sha2::compress256(&mut outer, &[pad.into()]);
        pad.zeroize();
        Self { inner, outer }
    }

    /// HMAC-SHA256(key, msg) for a 32-byte `msg`.
    pub(crate) fn mac32(&self, msg: &[u8; 32]) -> [u8; 32] {
        // Inner: one block = msg || 0x80 || zeros || bit length of (64 + 32) bytes.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(msg);
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        self.finish(block)
    }

    /// HMAC-SHA256(key, [byte]) for a one-byte message (the chain step).
    pub(crate) fn mac_byte(&self, byte: u8) -> [u8; 32] {
        let mut block = [0u8; 64];
        block[0] = byte;
        block[1] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 1) * 8).to_be_bytes());
        self.finish(block)
    }

    /// HMAC-SHA256(key, parts concatenated) for a short message (at most 119 bytes: two
    /// blocks with the padding). Longer messages go through [`hmac`].
    pub(crate) fn mac_short(&self, parts: &[&[u8]]) -> Option<[u8; 32]> {
        let mut buf = [0u8; 128];
        let mut len = 0usize;
        for p in parts {
            buf.get_mut(len..len + p.len())?.copy_from_slice(p);
            len += p.len();
        }
        if len > 128 - 9 {
            return None;
        }
        *buf.get_mut(len)? = 0x80;
        let blocks = if len + 9 <= 64 { 1 } else { 2 };
        let end = blocks * 64;
        buf.get_mut(end - 8..end)?
            .copy_from_slice(&(((64 + len) as u64) * 8).to_be_bytes());
        let mut state = self.inner;
        for chunk in buf.get(..end)?.chunks_exact(64) {
            let mut block = [0u8; 64];
            block.copy_from_slice(chunk);
            sha2::compress256(&mut state, &[block.into()]);
        }
        buf.zeroize();
        let mut inner_digest = [0u8; 32];
        for (chunk, word) in inner_digest.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&inner_digest);
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        let mut state = self.outer;
        sha2::compress256(&mut state, &[block.into()]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Some(out)
    }

    fn finish(&self, mut block: [u8; 64]) -> [u8; 32] {
        let mut state = self.inner;
        sha2::compress256(&mut state, &[block.into()]);
        let mut inner_digest = [0u8; 32];
        for (chunk, word) in inner_digest.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        // Outer: one block = inner digest || 0x80 || zeros || bit length of (64 + 32).
        block = [0u8; 64];
        block[..32].copy_from_slice(&inner_digest);
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        let mut state = self.outer;
        sha2::compress256(&mut state, &[block.into()]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// 32 fresh secret bytes, every bit straight from `rng` (the group protocol's chain and
/// MAC keys). Cryptocat's 2013 bug drew group keys from decimal digits; tests check that
/// every bit here varies.
pub(crate) fn fresh_secret(rng: &mut impl rand_core::CryptoRngCore) -> Secret32 {
    let mut k = [0u8; 32];
    rng.fill_bytes(&mut k);
    Secret32(k)
}

/// `HKDF-SHA256(salt = empty, ikm, info)` to 44 bytes, with the extract key schedule done
/// once per process (an empty salt is the all-zero HMAC key). Same bytes as [`hkdf`]
/// (a test checks); used for every message key, where it is a third of the cost.
pub(crate) fn hkdf44_unsalted(ikm: &[u8; 32], info: &[u8]) -> zeroize::Zeroizing<[u8; 44]> {
    static ZERO_KEY: std::sync::OnceLock<HmacKey> = std::sync::OnceLock::new();
    let mut out = zeroize::Zeroizing::new([0u8; 44]);
    let extract = ZERO_KEY.get_or_init(|| HmacKey::new(&[0u8; 32]));
    let prk = zeroize::Zeroizing::new(extract.mac32(ikm));
    let expand = HmacKey::new(&prk);
    let t1 = expand.mac_short(&[info, &[1]]);
    let t2 = t1.and_then(|t1| expand.mac_short(&[&t1, info, &[2]]));
    match (t1, t2) {
        (Some(t1), Some(t2)) => {
            let (head, tail) = out.split_at_mut(32);
            head.copy_from_slice(&t1);
            tail.copy_from_slice(t2.get(..12).unwrap_or(&[0u8; 12]));
        }
        // `info` too long for the short path: the general one.
        _ => hkdf(&[], ikm, info, out.as_mut()),
    }
    out
}

/// HKDF-SHA256 filling `out`. The output lengths used here (at most 255 * 32) never fail.
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    // `expand` fails only for outputs above 8160 bytes; every caller asks for at most 96.
    if hk.expand(info, out).is_err() {
        out.zeroize();
    }
}

/// HMAC-SHA256 of `data` under a 32-byte key (the reference the fast paths are tested
/// against).
#[cfg(test)]
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 over length-prefixed parts under a domain label.
pub(crate) fn hash(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    absorb(&mut h, label, parts);
    h.finalize().into()
}

/// `hash(label, [a || b || …])` without building the concatenation: one length prefix
/// for the whole, then the pieces.
pub(crate) fn hash_concat(label: &[u8], pieces: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((label.len() as u64).to_be_bytes());
    h.update(label);
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    h.update((total as u64).to_be_bytes());
    for p in pieces {
        h.update(p);
    }
    h.finalize().into()
}

/// A scalar from SHA-512 over length-prefixed parts under a domain label.
pub(crate) fn hash_to_scalar(label: &[u8], parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    absorb(&mut h, label, parts);
    Scalar::from_hash(h)
}

fn absorb<D: Digest>(h: &mut D, label: &[u8], parts: &[&[u8]]) {
    h.update((label.len() as u64).to_be_bytes());
    h.update(label);
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_parts_are_length_prefixed() {
        // "ab" + "c" must differ from "a" + "bc".
        assert_ne!(hash(b"l", &[b"ab", b"c"]), hash(b"l", &[b"a", b"bc"]));
        assert_ne!(hash(b"l1", &[b"x"]), hash(b"l2", &[b"x"]));
    }

    #[test]
    fn precomputed_hmac_matches_the_hmac_crate() {
        for seed in 0u8..20 {
            let key = [seed.wrapping_mul(31); 32];
            let msg = [seed.wrapping_add(7); 32];
            assert_eq!(HmacKey::new(&key).mac32(&msg), hmac(&key, &[&msg]));
            assert_eq!(HmacKey::new(&key).mac_byte(seed), hmac(&key, &[&[seed]]));
        }
    }

    #[test]
    fn fast_message_key_expansion_matches_hkdf() {
        for seed in 0u8..30 {
            let ikm = [seed; 32];
            let mut want = [0u8; 44];
            hkdf(&[], &ikm, label::MESSAGE_KEY, &mut want);
            assert_eq!(*hkdf44_unsalted(&ikm, label::MESSAGE_KEY), want);
            let long_info = vec![seed; 90];
            hkdf(&[], &ikm, &long_info, &mut want);
            assert_eq!(*hkdf44_unsalted(&ikm, &long_info), want);
        }
        let key = HmacKey::new(&[3u8; 32]);
        for len in 0..=119usize {
            let msg = vec![7u8; len];
            assert_eq!(
                key.mac_short(&[&msg]),
                Some(hmac(&[3u8; 32], &[&msg])),
                "len {len}"
            );
        }
        assert_eq!(key.mac_short(&[&[0u8; 120]]), None);
    }

    #[test]
    fn streamed_hash_equals_hash_of_the_concatenation() {
        let whole = [b"abc".as_slice(), b"defgh", b""].concat();
        assert_eq!(
            hash_concat(b"l", &[b"abc", b"defgh", b""]),
            hash(b"l", &[&whole])
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret32([0x41; 32]);
        let text = format!("{s:?}");
        assert!(!text.contains("65") && !text.contains("41"), "{text}");
    }
}
