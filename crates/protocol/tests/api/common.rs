//! Shared set-up: identities, contexts and a completed handshake.

use cryptocat_protocol::dake::{self, DakeContext};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::session::Session;
use cryptocat_protocol::Timestamp;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const NOW: Timestamp = Timestamp(1_764_000_000_000);

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn ctx(room: &str) -> DakeContext {
    DakeContext {
        room: room.into(),
        initiator: format!("{room}/alice-occupant"),
        responder: format!("{room}/bob-occupant"),
    }
}

pub struct Pair {
    pub alice: Identity,
    pub bob: Identity,
    /// Alice initiated.
    pub a: Session,
    pub b: Session,
}

/// Runs a full handshake with Alice as initiator.
pub fn handshake(rng: &mut ChaCha20Rng) -> Pair {
    let alice = Identity::generate(rng, NOW);
    let bob = Identity::generate(rng, NOW);
    let (wait_r, m1) = dake::initiate(rng, &alice, ctx("room@conference.localhost"), None).unwrap();
    let (wait_i, m2) =
        dake::respond(rng, &bob, ctx("room@conference.localhost"), &m1, NOW).unwrap();
    let (a, m3) = wait_r.handle_auth_r(rng, &alice, &m2, NOW).unwrap();
    let b = wait_i.handle_auth_i(&bob, &m3).unwrap();
    Pair { alice, bob, a, b }
}
