//! The identity of one Cryptocat session.
//!
//! An [`Identity`] is an ed25519 key (what the server binds the XMPP account to, and what
//! fingerprints show) from whose 32-byte seed two ristretto255 secrets are derived: the
//! long-term DAKE key `h` and the forging key `f` used by the ring signatures of
//! [`crate::dake`]. By default an identity is made fresh for every session;
//! [`Identity::seal`] gives an encrypted form the app may keep in the OS keyring.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::fingerprint::Fingerprint;
use crate::kdf::{self, label};
use crate::profile::ClientProfile;
use crate::wire::{Reader, Writer};
use crate::{InstanceTag, Timestamp};

/// How long a freshly made profile stays valid: one week, longer than any session.
pub const PROFILE_LIFETIME_MS: u64 = 7 * 24 * 60 * 60 * 1000;

const SEAL_VERSION: u8 = 1;
const SEALED_BYTES: usize = 1 + 12 + 32 + 16;

/// A secret scalar that zeroizes on drop.
pub(crate) struct SecretScalar(pub(crate) Scalar);

impl Drop for SecretScalar {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The session identity: ed25519 identity key, DAKE key, forging key and the current
/// signed profile. Not `Clone`; its `Debug` prints the fingerprint only.
pub struct Identity {
    signing: SigningKey,
    pub(crate) dake_secret: SecretScalar,
    forging_secret: SecretScalar,
    profile: ClientProfile,
}

/// Why a sealed identity could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The sealed bytes have the wrong length.
    #[error("sealed identity is {0} bytes, expected {SEALED_BYTES}")]
    WrongLength(usize),
    /// The sealed form names a format version this build does not read.
    #[error("sealed identity has unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The wrapping key is wrong or the bytes were altered.
    #[error("sealed identity does not decrypt under this key (wrong key or altered data)")]
    WrongKeyOrTampered,
}

impl Identity {
    /// Makes a fresh identity (the default for every session) with a new instance tag and
    /// a profile valid for [`PROFILE_LIFETIME_MS`] from `now`.
    pub fn generate(rng: &mut impl CryptoRngCore, now: Timestamp) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed, InstanceTag::random(rng), now)
    }

    pub(crate) fn from_seed(seed: &[u8; 32], instance_tag: InstanceTag, now: Timestamp) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let dake_secret = SecretScalar(kdf::hash_to_scalar(label::DAKE_KEY, &[seed]));
        let forging_secret = SecretScalar(kdf::hash_to_scalar(label::FORGING_KEY, &[seed]));
        let dake_public = &dake_secret.0 * RISTRETTO_BASEPOINT_TABLE;
        let forging_public = &forging_secret.0 * RISTRETTO_BASEPOINT_TABLE;
        let expires = now.plus_millis(PROFILE_LIFETIME_MS);
        let identity_key = signing.verifying_key();
        let msg = ClientProfile::signed_bytes(
            instance_tag,
            &identity_key,
            &dake_public,
            &forging_public,
            expires,
        );
        let signature = signing.sign(&msg);
        let profile = ClientProfile {
            instance_tag,
            identity_key,
            dake_key: dake_public,
            forging_key: forging_public,
            expires,
            signature,
        };
        Self {
            signing,
            dake_secret,
            forging_secret,
            profile,
        }
    }

    /// The ed25519 public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The fingerprint people compare.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.signing.verifying_key())
    }

    /// This client's instance tag.
    pub fn instance_tag(&self) -> InstanceTag {
        self.profile.instance_tag
    }

    /// The signed profile sent in the key exchange.
    pub fn profile(&self) -> &ClientProfile {
        &self.profile
    }

    /// The secret of the forging key `F`. Honest parties never use it; it exists so that
    /// deniability can be demonstrated ([`crate::dake::forge_transcript`]).
    ///
    /// Dangerous: whoever holds it can complete handshakes *towards this identity* while
    /// posing as anyone, with session keys of their choosing. Never publish it for an
    /// identity that will be used again (a sealed identity keeps its forging key).
    pub fn export_forging_secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.forging_secret.0.to_bytes())
    }

    /// The identity's 32-byte seed, from which every key of the identity derives: for the
    /// desktop app's opt-in "remember my identity", which keeps it in the OS keyring (an
    /// encrypted store of its own, so no wrapping key is needed as with [`Identity::seal`]).
    ///
    /// Whoever holds it *is* this identity: keep it only in such a store, drop it at once
    /// (it zeroizes on drop), never log or serialize it elsewhere.
    pub fn export_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The identity of an [`Identity::export_seed`] seed, with a new instance tag and a
    /// profile valid for [`PROFILE_LIFETIME_MS`] from `now` (as [`Identity::unseal`]).
    pub fn from_exported_seed(
        rng: &mut impl CryptoRngCore,
        seed: &Zeroizing<[u8; 32]>,
        now: Timestamp,
    ) -> Self {
        Self::from_seed(seed, InstanceTag::random(rng), now)
    }

    /// Signs `message` under a domain label. Used for the server key challenge; never for
    /// message content (that would make conversations undeniable).
    ///
    /// The signed bytes are `bytes16("cryptocat/v1/external") || bytes16(domain) ||
    /// message`, so no choice of `domain` can produce a profile signature (whose first
    /// field is the profile label).
    pub fn sign_with_label(&self, domain: &[u8], message: &[u8]) -> Signature {
        self.signing.sign(&external_signed_bytes(domain, message))
    }

    /// Encrypts the identity's seed under a 32-byte wrapping key (AES-256-GCM, random
    /// nonce), for storage in the OS keyring. The instance tag and profile are not kept:
    /// [`Identity::unseal`] makes new ones.
    pub fn seal(&self, rng: &mut impl CryptoRngCore, wrap_key: &[u8; 32]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(wrap_key.into());
        let seed = Zeroizing::new(self.signing.to_bytes());
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: seed.as_slice(),
                    aad: label::IDENTITY_SEAL,
                },
            )
            .unwrap_or_default();
        let mut w = Writer::new();
        w.u8(SEAL_VERSION).raw(&nonce).raw(&ct);
        w.into_vec()
    }

    /// Opens a sealed identity, with a new instance tag and profile.
    pub fn unseal(
        rng: &mut impl CryptoRngCore,
        wrap_key: &[u8; 32],
        sealed: &[u8],
        now: Timestamp,
    ) -> Result<Self, IdentityError> {
        if sealed.len() != SEALED_BYTES {
            return Err(IdentityError::WrongLength(sealed.len()));
        }
        let mut r = Reader::new(sealed);
        let version = r
            .u8("version")
            .map_err(|_| IdentityError::WrongLength(sealed.len()))?;
        if version != SEAL_VERSION {
            return Err(IdentityError::UnsupportedVersion(version));
        }
        let nonce = r
            .array::<12>("nonce")
            .map_err(|_| IdentityError::WrongLength(sealed.len()))?;
        let ct = r.take(r.remaining(), "ciphertext").unwrap_or_default();
        let cipher = Aes256Gcm::new(wrap_key.into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: ct,
                        aad: label::IDENTITY_SEAL,
                    },
                )
                .map_err(|_| IdentityError::WrongKeyOrTampered)?,
        );
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            plain
                .as_slice()
                .try_into()
                .map_err(|_| IdentityError::WrongKeyOrTampered)?,
        );
        Ok(Self::from_seed(&seed, InstanceTag::random(rng), now))
    }
}

/// The bytes [`Identity::sign_with_label`] signs: `bytes16("cryptocat/v1/external") ||
/// bytes16(domain) || message`. Verifiers ([`crate::keyauth`]) rebuild them with this.
pub(crate) fn external_signed_bytes(domain: &[u8], message: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes16(label::EXTERNAL_SIG).bytes16(domain).raw(message);
    w.into_vec()
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .field(
                "instance_tag",
                &format_args!("{:#x}", self.profile.instance_tag.0),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn seal_round_trip_keeps_the_key() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng, Timestamp(1_000));
        let key = [9u8; 32];
        let sealed = id.seal(&mut rng, &key);
        let back = Identity::unseal(&mut rng, &key, &sealed, Timestamp(2_000)).unwrap();
        assert_eq!(back.verifying_key(), id.verifying_key());
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert!(back.profile().validate(Timestamp(2_000)).is_ok());
    }

    #[test]
    fn exported_seed_gives_the_same_identity() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng, Timestamp(1_000));
        let seed = id.export_seed();
        let back = Identity::from_exported_seed(&mut rng, &seed, Timestamp(2_000));
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert_eq!(back.dake_secret.0, id.dake_secret.0);
        assert_ne!(back.instance_tag(), id.instance_tag());
        assert!(back.profile().validate(Timestamp(2_000)).is_ok());
        let other = Identity::generate(&mut rng, Timestamp(1_000));
        assert_ne!(*other.export_seed(), *seed);
    }

    #[test]
    fn seal_rejects_wrong_key_and_tampering() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng, Timestamp(0));
        let sealed = id.seal(&mut rng, &[1u8; 32]);
        assert_eq!(
            Identity::unseal(&mut rng, &[2u8; 32], &sealed, Timestamp(0)).err(),
            Some(IdentityError::WrongKeyOrTampered)
        );
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert_eq!(
            Identity::unseal(&mut rng, &[1u8; 32], &bad, Timestamp(0)).err(),
            Some(IdentityError::WrongKeyOrTampered)
        );
        assert_eq!(
            Identity::unseal(&mut rng, &[1u8; 32], &sealed[1..], Timestamp(0)).err(),
            Some(IdentityError::WrongLength(sealed.len() - 1))
        );
        let mut v2 = sealed;
        v2[0] = 2;
        assert_eq!(
            Identity::unseal(&mut rng, &[1u8; 32], &v2, Timestamp(0)).err(),
            Some(IdentityError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn profile_validates_and_detects_tampering_and_expiry() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng, Timestamp(1_000));
        let p = id.profile().clone();
        assert!(p.validate(Timestamp(1_000)).is_ok());
        let decoded = ClientProfile::from_bytes(&p.to_bytes()).unwrap();
        assert_eq!(decoded, p);
        let later = Timestamp(1_000 + PROFILE_LIFETIME_MS + 1);
        assert!(matches!(
            p.validate(later),
            Err(crate::profile::ProfileError::Expired { .. })
        ));
        let mut forged = p.clone();
        forged.expires = Timestamp(u64::MAX);
        assert_eq!(
            forged.validate(Timestamp(0)),
            Err(crate::profile::ProfileError::BadSignature)
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng, Timestamp(0));
        let text = format!("{id:?}");
        let seed_hex: String = id
            .signing
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let h_hex: String = id
            .dake_secret
            .0
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.to_lowercase().contains(&seed_hex[..16]), "{text}");
        assert!(!text.to_lowercase().contains(&h_hex[..16]), "{text}");
        assert!(text.contains("fingerprint"));
    }

    #[test]
    fn labelled_signatures_cannot_pose_as_profile_signatures() {
        let mut rng = rng();
        let id = Identity::generate(&mut rng, Timestamp(0));
        let p = id.profile();
        let signed = ClientProfile::signed_bytes(
            p.instance_tag,
            &p.identity_key,
            &p.dake_key,
            &p.forging_key,
            p.expires,
        );
        // Whatever the caller passes as domain, the signature is over other bytes.
        let body = signed.get(2 + label::PROFILE_SIG.len()..).unwrap().to_vec();
        let sig = id.sign_with_label(label::PROFILE_SIG, &body);
        assert!(id.verifying_key().verify_strict(&signed, &sig).is_err());
    }

    #[test]
    fn different_seeds_give_different_keys() {
        let mut rng = rng();
        let a = Identity::generate(&mut rng, Timestamp(0));
        let b = Identity::generate(&mut rng, Timestamp(0));
        assert_ne!(a.verifying_key(), b.verifying_key());
        assert_ne!(a.profile().dake_key, b.profile().dake_key);
    }
}
