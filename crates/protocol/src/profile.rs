//! The client profile: the public half of an [`crate::identity::Identity`], signed by its
//! ed25519 key.
//!
//! As in OTRv4, the profile binds the long-term DAKE key `H` and the forging key `F`
//! (both ristretto255) to the identity key that the server bound to the XMPP account. It is
//! public and carries no deniability cost: it says "this key exists", not "this key spoke".

use curve25519_dalek::ristretto::RistrettoPoint;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::fingerprint::Fingerprint;
use crate::kdf::label;
use crate::wire::{DecodeError, Reader, Writer};
use crate::{InstanceTag, Timestamp};

/// Encoded size of a profile in bytes.
pub const PROFILE_BYTES: usize = 4 + 32 + 32 + 32 + 8 + 64;

/// A signed client profile.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientProfile {
    pub(crate) instance_tag: InstanceTag,
    pub(crate) identity_key: VerifyingKey,
    pub(crate) dake_key: RistrettoPoint,
    pub(crate) forging_key: RistrettoPoint,
    pub(crate) expires: Timestamp,
    pub(crate) signature: Signature,
}

/// Why a received profile is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The ed25519 signature does not verify under the profile's identity key.
    #[error("profile signature does not verify")]
    BadSignature,
    /// The profile's expiry is in the past.
    #[error("profile expired at {expired_ms} ms, now is {now_ms} ms")]
    Expired {
        /// When it expired.
        expired_ms: u64,
        /// The time it was checked at.
        now_ms: u64,
    },
    /// The instance tag is in the reserved range.
    #[error("profile instance tag {0:#x} is reserved")]
    ReservedInstanceTag(u32),
    /// The identity key is a weak (small-order) point.
    #[error("profile identity key is a weak key")]
    WeakIdentityKey,
}

impl ClientProfile {
    pub(crate) fn signed_bytes(
        instance_tag: InstanceTag,
        identity_key: &VerifyingKey,
        dake_key: &RistrettoPoint,
        forging_key: &RistrettoPoint,
        expires: Timestamp,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes16(label::PROFILE_SIG)
            .u32(instance_tag.0)
            .raw(identity_key.as_bytes())
            .point(dake_key)
            .point(forging_key)
            .u64(expires.0);
        w.into_vec()
    }

    /// The instance tag of the client that made this profile.
    pub fn instance_tag(&self) -> InstanceTag {
        self.instance_tag
    }

    /// The ed25519 identity key (the key the server binds the account to).
    pub fn identity_key(&self) -> &VerifyingKey {
        &self.identity_key
    }

    /// The fingerprint of the identity key.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.identity_key)
    }

    /// When the profile stops being valid.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    /// Checks the signature, the expiry and the instance tag.
    pub fn validate(&self, now: Timestamp) -> Result<(), ProfileError> {
        if !self.instance_tag.is_valid() {
            return Err(ProfileError::ReservedInstanceTag(self.instance_tag.0));
        }
        if self.identity_key.is_weak() {
            return Err(ProfileError::WeakIdentityKey);
        }
        if self.expires < now {
            return Err(ProfileError::Expired {
                expired_ms: self.expires.0,
                now_ms: now.0,
            });
        }
        let msg = Self::signed_bytes(
            self.instance_tag,
            &self.identity_key,
            &self.dake_key,
            &self.forging_key,
            self.expires,
        );
        self.identity_key
            .verify_strict(&msg, &self.signature)
            .map_err(|_| ProfileError::BadSignature)
    }

    /// The canonical encoding (also what the DAKE transcript hashes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_vec()
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u32(self.instance_tag.0)
            .raw(self.identity_key.as_bytes())
            .point(&self.dake_key)
            .point(&self.forging_key)
            .u64(self.expires.0)
            .raw(&self.signature.to_bytes());
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let instance_tag = InstanceTag(r.u32("profile.instance_tag")?);
        let key_bytes = r.array::<32>("profile.identity_key")?;
        let identity_key =
            VerifyingKey::from_bytes(&key_bytes).map_err(|_| DecodeError::Invalid {
                field: "profile.identity_key",
                what: "ed25519 public key",
            })?;
        let dake_key = r.point("profile.dake_key")?;
        let forging_key = r.point("profile.forging_key")?;
        let expires = Timestamp(r.u64("profile.expires")?);
        let signature = Signature::from_bytes(&r.array::<64>("profile.signature")?);
        Ok(Self {
            instance_tag,
            identity_key,
            dake_key,
            forging_key,
            expires,
            signature,
        })
    }

    /// Decodes a profile on its own (exactly [`PROFILE_BYTES`] bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let p = Self::decode(&mut r)?;
        r.finish()?;
        Ok(p)
    }
}

impl core::fmt::Debug for ClientProfile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientProfile")
            .field("instance_tag", &format_args!("{:#x}", self.instance_tag.0))
            .field("fingerprint", &self.fingerprint())
            .field("expires", &self.expires.0)
            .finish_non_exhaustive()
    }
}
