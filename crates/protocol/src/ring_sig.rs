//! The 3-key ring signature of OTRv4 ("Ring Signature Authentication"), on ristretto255.
//!
//! A signature by the holder of one of three secret keys, that does not reveal which one.
//! DAKEZ uses it so that a transcript proves only "one of these three keys signed", and
//! anyone holding one of them (for example the peer's forging key, or the peer's own
//! ephemeral key) could have made it: that is where deniability comes from.
//!
//! Signing runs the same operations whatever the position of the real key in the ring, and
//! selects between real and simulated values with `subtle`, as OTRv4 asks.

// Indexing below is into `[_; 3]` arrays with loop indices `0..3` fixed at compile time;
// nothing a peer sends decides an index.
#![allow(clippy::indexing_slicing)]

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use rand_core::CryptoRngCore;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use crate::kdf::{self, label};
use crate::wire::{DecodeError, Reader, Writer};

/// Encoded size: six scalars.
#[cfg(test)]
pub(crate) const RING_SIG_BYTES: usize = 6 * 32;

/// `(c1, r1, c2, r2, c3, r3)`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RingSignature {
    c: [Scalar; 3],
    r: [Scalar; 3],
}

impl core::fmt::Debug for RingSignature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RingSignature(..)")
    }
}

/// The signer's key is not in the ring (a caller bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signing key is not a member of the ring")]
pub(crate) struct NotInRing;

fn challenge(ring: &[RistrettoPoint; 3], t: &[RistrettoPoint; 3], msg: &[u8]) -> Scalar {
    let enc: Vec<[u8; 32]> = ring
        .iter()
        .chain(t.iter())
        .map(|p| p.compress().to_bytes())
        .collect();
    let mut parts: Vec<&[u8]> = enc.iter().map(|b| b.as_slice()).collect();
    parts.push(msg);
    kdf::hash_to_scalar(label::RING_SIG, &parts)
}

impl RingSignature {
    /// Signs `msg` with `secret`, whose public key must be one of `ring`.
    pub(crate) fn sign(
        rng: &mut impl CryptoRngCore,
        secret: &Scalar,
        ring: &[RistrettoPoint; 3],
        msg: &[u8],
    ) -> Result<Self, NotInRing> {
        let public = (secret * RISTRETTO_BASEPOINT_TABLE).compress();
        let is_me: [Choice; 3] = [
            ring[0].compress().ct_eq(&public),
            ring[1].compress().ct_eq(&public),
            ring[2].compress().ct_eq(&public),
        ];
        let found = is_me[0] | is_me[1] | is_me[2];
        if !bool::from(found) {
            return Err(NotInRing);
        }
        let mut t_secret = [
            Scalar::random(rng),
            Scalar::random(rng),
            Scalar::random(rng),
        ];
        let mut c = [
            Scalar::random(rng),
            Scalar::random(rng),
            Scalar::random(rng),
        ];
        let mut r = [
            Scalar::random(rng),
            Scalar::random(rng),
            Scalar::random(rng),
        ];
        let mut t = [RistrettoPoint::default(); 3];
        for j in 0..3 {
            let real = &t_secret[j] * RISTRETTO_BASEPOINT_TABLE;
            let simulated = &r[j] * RISTRETTO_BASEPOINT_TABLE + c[j] * ring[j];
            t[j] = RistrettoPoint::conditional_select(&simulated, &real, is_me[j]);
        }
        let total = challenge(ring, &t, msg);
        let mut others = Scalar::ZERO;
        for j in 0..3 {
            others += Scalar::conditional_select(&c[j], &Scalar::ZERO, is_me[j]);
        }
        let c_me = total - others;
        for j in 0..3 {
            let r_me = t_secret[j] - c_me * secret;
            c[j] = Scalar::conditional_select(&c[j], &c_me, is_me[j]);
            r[j] = Scalar::conditional_select(&r[j], &r_me, is_me[j]);
        }
        t_secret.zeroize();
        Ok(Self { c, r })
    }

    /// Verifies the signature over `msg` for `ring`.
    pub(crate) fn verify(&self, ring: &[RistrettoPoint; 3], msg: &[u8]) -> bool {
        let mut t = [RistrettoPoint::default(); 3];
        for j in 0..3 {
            // T_j = r_j * G + c_j * A_j (public values: variable time is fine).
            t[j] = RistrettoPoint::vartime_multiscalar_mul(
                [self.r[j], self.c[j]],
                [
                    curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT,
                    ring[j],
                ],
            );
        }
        let total = challenge(ring, &t, msg);
        let sum = self.c[0] + self.c[1] + self.c[2];
        bool::from(total.ct_eq(&sum))
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        for j in 0..3 {
            w.scalar(&self.c[j]).scalar(&self.r[j]);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let c1 = r.scalar("sigma.c1")?;
        let r1 = r.scalar("sigma.r1")?;
        let c2 = r.scalar("sigma.c2")?;
        let r2 = r.scalar("sigma.r2")?;
        let c3 = r.scalar("sigma.c3")?;
        let r3 = r.scalar("sigma.r3")?;
        Ok(Self {
            c: [c1, c2, c3],
            r: [r1, r2, r3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn keypair(rng: &mut ChaCha20Rng) -> (Scalar, RistrettoPoint) {
        let s = Scalar::random(rng);
        (s, &s * RISTRETTO_BASEPOINT_TABLE)
    }

    #[test]
    fn any_member_can_sign_and_all_verify() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let keys: Vec<_> = (0..3).map(|_| keypair(&mut rng)).collect();
        let ring = [keys[0].1, keys[1].1, keys[2].1];
        for (secret, _) in &keys {
            let sig = RingSignature::sign(&mut rng, secret, &ring, b"msg").unwrap();
            assert!(sig.verify(&ring, b"msg"));
            assert!(!sig.verify(&ring, b"other"));
            let swapped = [ring[1], ring[0], ring[2]];
            assert!(!sig.verify(&swapped, b"msg"));
        }
    }

    #[test]
    fn outsider_cannot_sign() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let keys: Vec<_> = (0..4).map(|_| keypair(&mut rng)).collect();
        let ring = [keys[0].1, keys[1].1, keys[2].1];
        assert_eq!(
            RingSignature::sign(&mut rng, &keys[3].0, &ring, b"m"),
            Err(NotInRing)
        );
    }

    #[test]
    fn encoding_round_trips_and_tampering_fails() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let keys: Vec<_> = (0..3).map(|_| keypair(&mut rng)).collect();
        let ring = [keys[0].1, keys[1].1, keys[2].1];
        let sig = RingSignature::sign(&mut rng, &keys[1].0, &ring, b"m").unwrap();
        let mut w = Writer::new();
        sig.encode(&mut w);
        let mut bytes = w.into_vec();
        assert_eq!(bytes.len(), RING_SIG_BYTES);
        let back = RingSignature::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(back, sig);
        bytes[40] ^= 1;
        if let Ok(bad) = RingSignature::decode(&mut Reader::new(&bytes)) {
            assert!(!bad.verify(&ring, b"m"));
        }
    }
}
