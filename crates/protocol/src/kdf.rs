//! Key derivation, MACs and hashing to scalars, each with its own domain label.
//!
//! Every derivation in the protocol goes through this module so that the labels in
//! `docs/protocol.md` can be checked against one place.

use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
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
    pub(crate) const EPOCH_TAG: &[u8] = b"cryptocat/v1/group/epoch";
    pub(crate) const GROUP_MESSAGE: &[u8] = b"cryptocat/v1/group/message";
    pub(crate) const NICKNAME: &[u8] = b"cryptocat/v1/group/nickname";
    pub(crate) const OCCUPANT: &[u8] = b"cryptocat/v1/group/occupant";
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
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key.iter()) {
            *i ^= k;
            *o ^= k;
        }
        let mut inner = SHA256_IV;
        let mut outer = SHA256_IV;
        sha2::compress256(&mut inner, &[ipad.into()]);
        sha2::compress256(&mut outer, &[opad.into()]);
        ipad.zeroize();
        opad.zeroize();
        Self { inner, outer }
    }

    /// HMAC-SHA256(key, msg) for a 32-byte `msg`.
    pub(crate) fn mac32(&self, msg: &[u8; 32]) -> [u8; 32] {
        // Inner: one block = msg || 0x80 || zeros || bit length of (64 + 32) bytes.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(msg);
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        let mut state = self.inner;
        sha2::compress256(&mut state, &[block.into()]);
        let mut inner_digest = [0u8; 32];
        for (chunk, word) in inner_digest.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        // Outer: one block = inner digest || 0x80 || zeros || bit length.
        block[..32].copy_from_slice(&inner_digest);
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

/// HKDF-SHA256 filling `out`. The output lengths used here (at most 255 * 32) never fail.
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    // `expand` fails only for outputs above 8160 bytes; every caller asks for at most 96.
    if hk.expand(info, out).is_err() {
        out.zeroize();
    }
}

/// HMAC-SHA256 of `data` under a 32-byte key.
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
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret32([0x41; 32]);
        let text = format!("{s:?}");
        assert!(!text.contains("65") && !text.contains("41"), "{text}");
    }
}
