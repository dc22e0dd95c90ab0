//! # cryptocat-protocol
//!
//! The cryptographic protocols of Cryptocat, sans-IO: this crate does no networking, reads
//! no clock, draws no randomness of its own, spawns nothing and logs nothing. Time comes in
//! as a [`Timestamp`] argument and randomness as `rng: &mut impl CryptoRngCore`, so every
//! run is reproducible in tests.
//!
//! - [`identity`]: the per-session ed25519 identity and its signed [`profile::ClientProfile`].
//! - [`fingerprint`]: readable key fingerprints and pairwise safety numbers.
//! - [`dake`]: the deniable authenticated key exchange (OTRv4's DAKEZ on ristretto255).
//! - [`ratchet`]: the double ratchet that carries one-to-one messages.
//! - [`smp`]: the socialist millionaires' protocol for question-and-answer verification.
//! - [`session`]: an established one-to-one session (ratchet + SMP) behind one API.
//! - [`message`]: the versioned wire format of everything above.
//! - [`group`]: the mpOTR-style group protocol of a room, on top of pairwise sessions.
//! - [`file`]: encrypted file sharing: the chunked file encryption and the file offer.
//! - [`keyauth`]: the `X-CRYPTOCAT-KEY` SASL mechanism (the server's key challenge).
//!
//! `docs/protocol.md` at the repository root specifies the wire format and state machines.

#![forbid(unsafe_code)]

pub mod content;
pub mod dake;
pub mod file;
pub mod fingerprint;
pub mod group;
pub mod identity;
pub(crate) mod kdf;
pub mod keyauth;
pub mod message;
pub mod profile;
pub mod ratchet;
pub(crate) mod ring_sig;
pub mod session;
pub mod smp;
pub mod wire;

pub use rand_core::{CryptoRng, CryptoRngCore, RngCore};

/// Wall-clock time in milliseconds since the Unix epoch, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `ms` milliseconds, saturating.
    pub fn plus_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// A client instance tag: tells apart several clients behind one identity (as in OTR).
/// Values below `0x100` are reserved; `0` means "not yet known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceTag(pub u32);

impl InstanceTag {
    /// The smallest valid tag.
    pub const MIN: u32 = 0x100;

    /// Draws a fresh valid tag.
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        loop {
            let v = rng.next_u32();
            if v >= Self::MIN {
                return Self(v);
            }
        }
    }

    /// True for tags a client may use as its own.
    pub fn is_valid(self) -> bool {
        self.0 >= Self::MIN
    }
}
