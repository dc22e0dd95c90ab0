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
    fn secret_debug_is_redacted() {
        let s = Secret32([0x41; 32]);
        let text = format!("{s:?}");
        assert!(!text.contains("65") && !text.contains("41"), "{text}");
    }
}
