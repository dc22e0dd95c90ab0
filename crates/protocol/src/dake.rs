//! The deniable authenticated key exchange: OTRv4's DAKEZ on ristretto255.
//!
//! ```text
//! Initiator I                                    Responder R
//!   Identity { profile_I, Y }        ───────►
//!                                    ◄───────   Auth-R { profile_R, X, ratchet_R,
//!                                                        σ_R = RSig(h_R, {F_I, H_R, Y}, t_R) }
//!   Auth-I { ratchet_I,              ───────►
//!            σ_I = RSig(h_I, {H_I, F_R, X}, t_I) }
//! ```
//!
//! `th = H(phi, profile_I, profile_R, Y, X, ratchet_R)` where `phi` binds the protocol
//! version, the room and both server-bound addresses; the profiles carry the identity keys
//! and instance tags. `t_R = 0x00 || th`, `t_I = 0x01 || th || ratchet_I`. The shared
//! secret is `x·Y = y·X`; the root key and session id are HKDF outputs salted with `th`.
//!
//! The handshake is a typestate: [`initiate`] gives an [`AwaitingAuthR`], which
//! [`AwaitingAuthR::handle_auth_r`] consumes; [`respond`] gives an [`AwaitingAuthI`], which
//! [`AwaitingAuthI::handle_auth_i`] consumes. Each ends in an established
//! [`Session`]. A state cannot be used twice.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::identity::{Identity, SecretScalar};
use crate::kdf::{self, label, Secret32};
use crate::message::{AuthIMessage, AuthRMessage, IdentityMessage};
use crate::profile::{ClientProfile, ProfileError};
use crate::ratchet::{Ratchet, RatchetError};
use crate::ring_sig::RingSignature;
use crate::session::{Role, Session, SessionKeys};
use crate::wire::{Writer, PROTOCOL_VERSION};
use crate::{InstanceTag, Timestamp};

/// Largest room name or address bound into the handshake, in bytes.
pub const MAX_BINDING_BYTES: usize = 1024;

/// What both parties bind into the handshake: the room and the two server-bound
/// addresses (for a room, the occupant JIDs, whose names the server derived from keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DakeContext {
    /// The room (MUC JID) or, for a direct chat, an agreed empty string.
    pub room: String,
    /// The address of the party that sends the Identity message.
    pub initiator: String,
    /// The address of the party that answers with Auth-R.
    pub responder: String,
}

impl DakeContext {
    fn phi(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(PROTOCOL_VERSION)
            .bytes16(self.room.as_bytes())
            .bytes16(self.initiator.as_bytes())
            .bytes16(self.responder.as_bytes());
        w.into_vec()
    }

    fn check(&self) -> Result<(), DakeError> {
        for field in [&self.room, &self.initiator, &self.responder] {
            if field.len() > MAX_BINDING_BYTES {
                return Err(DakeError::BindingTooLong {
                    len: field.len(),
                    max: MAX_BINDING_BYTES,
                });
            }
        }
        Ok(())
    }
}

/// Why a handshake step failed. The `try_` methods hand the state back with the error (so
/// a forged or stray message cannot abort a handshake); the others consume it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DakeError {
    /// The peer's profile is not acceptable.
    #[error("peer profile rejected: {0}")]
    Profile(#[from] ProfileError),
    /// The ring signature does not verify: the peer does not hold the keys it claims, or
    /// the message belongs to another room, session or peer.
    #[error("handshake signature does not verify (wrong peer, room or session)")]
    BadSignature,
    /// The message is addressed to another instance of this client.
    #[error("handshake message is for instance {got:#x}, this instance is {ours:#x}")]
    WrongInstance {
        /// The receiver tag in the message.
        got: u32,
        /// Our tag.
        ours: u32,
    },
    /// The Diffie-Hellman result would not depend on both parties.
    #[error("non-contributory key exchange rejected")]
    NonContributory,
    /// A room name or address exceeds [`MAX_BINDING_BYTES`].
    #[error("room name or address is {len} bytes, above the limit of {max}")]
    BindingTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer presented our own identity key (a reflection).
    #[error("peer presented our own identity key")]
    Reflection,
}

impl From<RatchetError> for DakeError {
    fn from(_: RatchetError) -> Self {
        DakeError::NonContributory
    }
}

fn transcript(
    ctx: &DakeContext,
    profile_i: &ClientProfile,
    profile_r: &ClientProfile,
    y: &RistrettoPoint,
    x: &RistrettoPoint,
    ratchet_r: &[u8; 32],
) -> [u8; 32] {
    kdf::hash(
        label::DAKE_T,
        &[
            &ctx.phi(),
            &profile_i.to_bytes(),
            &profile_r.to_bytes(),
            y.compress().as_bytes(),
            x.compress().as_bytes(),
            ratchet_r,
        ],
    )
}

fn t_r(th: &[u8; 32]) -> Vec<u8> {
    let mut v = vec![0x00];
    v.extend_from_slice(th);
    v
}

fn t_i(th: &[u8; 32], ratchet_i: &[u8; 32]) -> Vec<u8> {
    let mut v = vec![0x01];
    v.extend_from_slice(th);
    v.extend_from_slice(ratchet_i);
    v
}

fn shared_keys(
    secret: &Scalar,
    their_point: &RistrettoPoint,
    th: &[u8; 32],
) -> Result<(Secret32, [u8; 32]), DakeError> {
    let k = secret * their_point;
    if k.is_identity() {
        return Err(DakeError::NonContributory);
    }
    let k = Zeroizing::new(k.compress().to_bytes());
    let mut root = [0u8; 32];
    let mut ssid = [0u8; 32];
    kdf::hkdf(th, k.as_ref(), label::ROOT_KEY, &mut root);
    kdf::hkdf(th, k.as_ref(), label::SESSION_ID, &mut ssid);
    Ok((Secret32(root), ssid))
}

fn check_receiver(got: InstanceTag, ours: InstanceTag, allow_zero: bool) -> Result<(), DakeError> {
    if got == ours || (allow_zero && got.0 == 0) {
        Ok(())
    } else {
        Err(DakeError::WrongInstance {
            got: got.0,
            ours: ours.0,
        })
    }
}

/// The initiator after sending the Identity message.
pub struct AwaitingAuthR {
    ctx: DakeContext,
    y: SecretScalar,
    y_pub: RistrettoPoint,
    peer_tag: Option<InstanceTag>,
}

impl core::fmt::Debug for AwaitingAuthR {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AwaitingAuthR").finish_non_exhaustive()
    }
}

/// Starts a handshake: returns the state to keep and the Identity message to send.
pub fn initiate(
    rng: &mut impl CryptoRngCore,
    identity: &Identity,
    ctx: DakeContext,
    peer_tag: Option<InstanceTag>,
) -> Result<(AwaitingAuthR, IdentityMessage), DakeError> {
    ctx.check()?;
    let y = SecretScalar(Scalar::random(rng));
    let y_pub = &y.0 * RISTRETTO_BASEPOINT_TABLE;
    let msg = IdentityMessage {
        sender: identity.instance_tag(),
        receiver: peer_tag.unwrap_or(InstanceTag(0)),
        profile: identity.profile().clone(),
        y: y_pub,
    };
    Ok((
        AwaitingAuthR {
            ctx,
            y,
            y_pub,
            peer_tag,
        },
        msg,
    ))
}

impl AwaitingAuthR {
    /// Verifies Auth-R and answers with Auth-I. The session is ready to send at once.
    pub fn handle_auth_r(
        self,
        rng: &mut impl CryptoRngCore,
        identity: &Identity,
        msg: &AuthRMessage,
        now: Timestamp,
    ) -> Result<(Session, AuthIMessage), DakeError> {
        self.try_handle_auth_r(rng, identity, msg, now)
            .map_err(|b| b.1)
    }

    /// As [`AwaitingAuthR::handle_auth_r`], but a message that fails verification hands
    /// the state back, so a forged or duplicated Auth-R cannot abort the handshake.
    pub fn try_handle_auth_r(
        self,
        rng: &mut impl CryptoRngCore,
        identity: &Identity,
        msg: &AuthRMessage,
        now: Timestamp,
    ) -> Result<(Session, AuthIMessage), Box<(Self, DakeError)>> {
        let th = match self.verify_auth_r(identity, msg, now) {
            Ok(th) => th,
            Err(e) => return Err(Box::new((self, e))),
        };
        let (root, session_id) = match shared_keys(&self.y.0, &msg.x, &th) {
            Ok(v) => v,
            Err(e) => return Err(Box::new((self, e))),
        };
        let ours = identity.profile();
        let ratchet_secret = StaticSecret::random_from_rng(&mut *rng);
        let ratchet_public = PublicKey::from(&ratchet_secret).to_bytes();
        let ring_i = [ours.dake_key, msg.profile.forging_key, msg.x];
        let sigma = match RingSignature::sign(
            rng,
            &identity.dake_secret.0,
            &ring_i,
            &t_i(&th, &ratchet_public),
        ) {
            Ok(s) => s,
            Err(_) => return Err(Box::new((self, DakeError::BadSignature))),
        };
        let ratchet =
            match Ratchet::new_sender(root, ratchet_secret, PublicKey::from(msg.ratchet_key)) {
                Ok(r) => r,
                Err(e) => return Err(Box::new((self, e.into()))),
            };
        let session = Session::new(SessionKeys {
            role: Role::Initiator,
            ratchet,
            session_id,
            our_tag: identity.instance_tag(),
            our_fingerprint: identity.fingerprint(),
            their_profile: msg.profile.clone(),
        });
        let reply = AuthIMessage {
            sender: identity.instance_tag(),
            receiver: msg.sender,
            ratchet_key: ratchet_public,
            sigma,
        };
        Ok((session, reply))
    }

    fn verify_auth_r(
        &self,
        identity: &Identity,
        msg: &AuthRMessage,
        now: Timestamp,
    ) -> Result<[u8; 32], DakeError> {
        check_receiver(msg.receiver, identity.instance_tag(), false)?;
        if msg.sender != msg.profile.instance_tag {
            return Err(DakeError::WrongInstance {
                got: msg.sender.0,
                ours: msg.profile.instance_tag.0,
            });
        }
        if self.peer_tag.is_some_and(|t| t != msg.sender) {
            return Err(DakeError::WrongInstance {
                got: msg.sender.0,
                ours: identity.instance_tag().0,
            });
        }
        msg.profile.validate(now)?;
        if msg.profile.identity_key == identity.verifying_key() {
            return Err(DakeError::Reflection);
        }
        let ours = identity.profile();
        let th = transcript(
            &self.ctx,
            ours,
            &msg.profile,
            &self.y_pub,
            &msg.x,
            &msg.ratchet_key,
        );
        let ring_r = [ours.forging_key, msg.profile.dake_key, self.y_pub];
        if !msg.sigma.verify(&ring_r, &t_r(&th)) {
            return Err(DakeError::BadSignature);
        }
        Ok(th)
    }
}

/// The responder after sending Auth-R.
pub struct AwaitingAuthI {
    th: [u8; 32],
    root: Secret32,
    session_id: [u8; 32],
    x_pub: RistrettoPoint,
    ratchet_secret: StaticSecret,
    their_profile: ClientProfile,
    their_tag: InstanceTag,
}

impl core::fmt::Debug for AwaitingAuthI {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AwaitingAuthI")
            .field("peer", &self.their_profile.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Answers an Identity message with Auth-R.
pub fn respond(
    rng: &mut impl CryptoRngCore,
    identity: &Identity,
    ctx: DakeContext,
    msg: &IdentityMessage,
    now: Timestamp,
) -> Result<(AwaitingAuthI, AuthRMessage), DakeError> {
    ctx.check()?;
    check_receiver(msg.receiver, identity.instance_tag(), true)?;
    if msg.sender != msg.profile.instance_tag {
        return Err(DakeError::WrongInstance {
            got: msg.sender.0,
            ours: msg.profile.instance_tag.0,
        });
    }
    msg.profile.validate(now)?;
    if msg.profile.identity_key == identity.verifying_key() {
        return Err(DakeError::Reflection);
    }
    let x = SecretScalar(Scalar::random(rng));
    let x_pub = &x.0 * RISTRETTO_BASEPOINT_TABLE;
    let ratchet_secret = StaticSecret::random_from_rng(&mut *rng);
    let ratchet_public = PublicKey::from(&ratchet_secret).to_bytes();
    let ours = identity.profile();
    let th = transcript(&ctx, &msg.profile, ours, &msg.y, &x_pub, &ratchet_public);
    let (root, session_id) = shared_keys(&x.0, &msg.y, &th)?;
    let ring_r = [msg.profile.forging_key, ours.dake_key, msg.y];
    let sigma = RingSignature::sign(rng, &identity.dake_secret.0, &ring_r, &t_r(&th))
        .map_err(|_| DakeError::BadSignature)?;
    let reply = AuthRMessage {
        sender: identity.instance_tag(),
        receiver: msg.sender,
        profile: ours.clone(),
        x: x_pub,
        ratchet_key: ratchet_public,
        sigma,
    };
    let state = AwaitingAuthI {
        th,
        root,
        session_id,
        x_pub,
        ratchet_secret,
        their_profile: msg.profile.clone(),
        their_tag: msg.sender,
    };
    Ok((state, reply))
}

impl AwaitingAuthI {
    /// Verifies Auth-I. The session can send at once.
    pub fn handle_auth_i(
        self,
        identity: &Identity,
        msg: &AuthIMessage,
    ) -> Result<Session, DakeError> {
        self.try_handle_auth_i(identity, msg).map_err(|b| b.1)
    }

    /// As [`AwaitingAuthI::handle_auth_i`], but a message that fails verification hands
    /// the state back.
    pub fn try_handle_auth_i(
        self,
        identity: &Identity,
        msg: &AuthIMessage,
    ) -> Result<Session, Box<(Self, DakeError)>> {
        if let Err(e) = check_receiver(msg.receiver, identity.instance_tag(), false) {
            return Err(Box::new((self, e)));
        }
        if msg.sender != self.their_tag {
            let ours = self.their_tag.0;
            return Err(Box::new((
                self,
                DakeError::WrongInstance {
                    got: msg.sender.0,
                    ours,
                },
            )));
        }
        let ring_i = [
            self.their_profile.dake_key,
            identity.profile().forging_key,
            self.x_pub,
        ];
        if !msg.sigma.verify(&ring_i, &t_i(&self.th, &msg.ratchet_key)) {
            return Err(Box::new((self, DakeError::BadSignature)));
        }
        let ratchet_public = PublicKey::from(msg.ratchet_key);
        // The contributory check happens before the state is consumed.
        // The same DH as every later ratchet step (so a twist point is refused here too,
        // not only at the first send).
        let shared = match crate::ratchet::dh(&self.ratchet_secret, &ratchet_public) {
            Ok(s) => s,
            Err(_) => return Err(Box::new((self, DakeError::NonContributory))),
        };
        let ratchet =
            Ratchet::receiver_from_shared(&self.root, self.ratchet_secret, ratchet_public, &shared);
        Ok(Session::new(SessionKeys {
            role: Role::Responder,
            ratchet,
            session_id: self.session_id,
            our_tag: identity.instance_tag(),
            our_fingerprint: identity.fingerprint(),
            their_profile: self.their_profile,
        }))
    }

    /// The profile the initiator presented (not yet authenticated).
    pub fn claimed_peer(&self) -> &ClientProfile {
        &self.their_profile
    }
}

/// Forges a complete DAKEZ transcript between `initiator_profile` and `responder_profile`
/// from public keys plus one forging secret, as OTRv4 describes. It exists to *test*
/// deniability (anyone holding the responder's forging key can produce Auth-R and Auth-I
/// messages that verify), and is kept public so a reviewer can run it.
pub fn forge_transcript(
    rng: &mut impl CryptoRngCore,
    ctx: &DakeContext,
    initiator_profile: &ClientProfile,
    responder_profile: &ClientProfile,
    responder_forging_secret: &[u8; 32],
) -> Option<(IdentityMessage, AuthRMessage, AuthIMessage)> {
    let f_r = Option::<Scalar>::from(Scalar::from_canonical_bytes(*responder_forging_secret))?;
    // The forger plays both ephemerals: it knows y and x.
    let y = Scalar::random(rng);
    let y_pub = &y * RISTRETTO_BASEPOINT_TABLE;
    let x = Scalar::random(rng);
    let x_pub = &x * RISTRETTO_BASEPOINT_TABLE;
    let mut ratchet_r = [0u8; 32];
    rng.fill_bytes(&mut ratchet_r);
    let mut ratchet_i = [0u8; 32];
    rng.fill_bytes(&mut ratchet_i);
    let th = transcript(
        ctx,
        initiator_profile,
        responder_profile,
        &y_pub,
        &x_pub,
        &ratchet_r,
    );
    // Auth-R ring {F_I, H_R, Y}: the forger knows y.
    let ring_r = [
        initiator_profile.forging_key,
        responder_profile.dake_key,
        y_pub,
    ];
    let sigma_r = RingSignature::sign(rng, &y, &ring_r, &t_r(&th)).ok()?;
    // Auth-I ring {H_I, F_R, X}: the forger knows f_R (or x).
    let ring_i = [
        initiator_profile.dake_key,
        responder_profile.forging_key,
        x_pub,
    ];
    let sigma_i = RingSignature::sign(rng, &f_r, &ring_i, &t_i(&th, &ratchet_i)).ok()?;
    Some((
        IdentityMessage {
            sender: initiator_profile.instance_tag,
            receiver: InstanceTag(0),
            profile: initiator_profile.clone(),
            y: y_pub,
        },
        AuthRMessage {
            sender: responder_profile.instance_tag,
            receiver: initiator_profile.instance_tag,
            profile: responder_profile.clone(),
            x: x_pub,
            ratchet_key: ratchet_r,
            sigma: sigma_r,
        },
        AuthIMessage {
            sender: initiator_profile.instance_tag,
            receiver: responder_profile.instance_tag,
            ratchet_key: ratchet_i,
            sigma: sigma_i,
        },
    ))
}

/// Verifies a recorded transcript the way a third party (a judge) would: do both ring
/// signatures verify for these profiles and this context? A forged transcript passes too;
/// that is the point.
pub fn transcript_verifies(
    ctx: &DakeContext,
    identity: &IdentityMessage,
    auth_r: &AuthRMessage,
    auth_i: &AuthIMessage,
) -> bool {
    let th = transcript(
        ctx,
        &identity.profile,
        &auth_r.profile,
        &identity.y,
        &auth_r.x,
        &auth_r.ratchet_key,
    );
    let ring_r = [
        identity.profile.forging_key,
        auth_r.profile.dake_key,
        identity.y,
    ];
    let ring_i = [
        identity.profile.dake_key,
        auth_r.profile.forging_key,
        auth_r.x,
    ];
    auth_r.sigma.verify(&ring_r, &t_r(&th))
        && auth_i.sigma.verify(&ring_i, &t_i(&th, &auth_i.ratchet_key))
}
