//! The checks behind the fuzz targets, shared with the corpus replay test.
//!
//! Each `pub fn <target>(data: &[u8])` is the whole body of `fuzz_targets/<target>.rs` and is
//! also what `crates/protocol/tests/fuzz_corpus.rs` runs on every file of
//! `fuzz/corpus/<target>/`, on stable Rust. A check must not panic on any input except
//! through one of its `assert!`s, each of which states a property of the protocol crate.
//! This file uses only the public API of `cryptocat-protocol`, `curve25519-dalek`,
//! `rand_chacha` and `rand_core` (dependencies of both the fuzz crate and the protocol
//! crate's tests), and is included with `#[path = ...] mod checks;`.
//!
//! Everything random comes from fixed seeds, so one input always runs the same way.

// Each fuzz target uses one check; the replay test uses all of them.
#![allow(dead_code)]

use std::sync::OnceLock;

use cryptocat_protocol::content::{Content, MAX_PADDED_BYTES, MAX_TEXT_BYTES};
use cryptocat_protocol::dake::{self, AwaitingAuthR, DakeContext};
use cryptocat_protocol::identity::{Identity, PROFILE_LIFETIME_MS};
use cryptocat_protocol::message::{
    AuthIMessage, AuthRMessage, DataMessage, IdentityMessage, Message,
};
use cryptocat_protocol::profile::{ClientProfile, ProfileError, PROFILE_BYTES};
use cryptocat_protocol::session::{ReceiveError, Session, SessionEvent};
use cryptocat_protocol::smp::{normalize_answer, SmpEvent, SmpMessage, MAX_QUESTION_BYTES};
use cryptocat_protocol::wire;
use cryptocat_protocol::{InstanceTag, Timestamp};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity as _, IsIdentity};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A check: runs one input and panics if a property fails.
pub type Check = fn(&[u8]);

/// Every target, by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("decode_message", decode_message),
    ("decode_base64", decode_base64),
    ("decode_profile", decode_profile),
    ("decode_content", decode_content),
    ("session_receive", session_receive),
    ("dake_receive", dake_receive),
    ("decode_group_message", decode_group_message),
    ("room_receive", room_receive),
    ("keyauth_decode", keyauth_decode),
    ("file_offer", file_offer),
    ("file_stream", file_stream),
];

// ---------------------------------------------------------------------------------------
// Fixture: fixed identities and a fixed handshake.

/// The clock of every check.
pub const NOW: Timestamp = Timestamp(1_764_000_000_000);

const IDENTITY_SEED: u64 = 0xc0ff_ee00;
const ALICE_DAKE_SEED: u64 = 0xa11c_e000;
const BOB_DAKE_SEED: u64 = 0x0b0b_0000;
/// The seed of the rng that `session_receive` hands to both sessions.
pub const SESSION_SEED: u64 = 0x5e55_1000;

/// Alice (initiator), Bob (responder) and Carol (whose profile expired before [`NOW`]).
pub struct Fixture {
    pub alice: Identity,
    pub bob: Identity,
    pub carol: Identity,
}

/// The identities, made once per process from a fixed seed.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(IDENTITY_SEED);
        let alice = Identity::generate(&mut rng, NOW);
        let bob = Identity::generate(&mut rng, NOW);
        let carol = Identity::generate(&mut rng, Timestamp(NOW.0 - 2 * PROFILE_LIFETIME_MS));
        Fixture { alice, bob, carol }
    })
}

/// What both sides bind into the handshake.
pub fn dake_context() -> DakeContext {
    DakeContext {
        room: "room@conference.localhost".into(),
        initiator: "room@conference.localhost/alice".into(),
        responder: "room@conference.localhost/bob".into(),
    }
}

/// Alice's and Bob's handshake randomness (separate, so each side's draws do not depend
/// on what the other side did).
fn dake_rngs() -> (ChaCha20Rng, ChaCha20Rng) {
    (
        ChaCha20Rng::seed_from_u64(ALICE_DAKE_SEED),
        ChaCha20Rng::seed_from_u64(BOB_DAKE_SEED),
    )
}

/// The fixed handshake: its three messages and the two sessions it ends in.
pub struct Handshake {
    pub identity: IdentityMessage,
    pub auth_r: AuthRMessage,
    pub auth_i: AuthIMessage,
    pub alice: Session,
    pub bob: Session,
}

/// Runs the handshake between the fixture's Alice and Bob, identically on every call.
pub fn handshake() -> Handshake {
    let f = fixture();
    let (mut ra, mut rb) = dake_rngs();
    let (wait_r, identity) =
        dake::initiate(&mut ra, &f.alice, dake_context(), None).expect("honest initiate");
    let (wait_i, auth_r) =
        dake::respond(&mut rb, &f.bob, dake_context(), &identity, NOW).expect("honest respond");
    let (alice, auth_i) = wait_r
        .handle_auth_r(&mut ra, &f.alice, &auth_r, NOW)
        .expect("honest Auth-R");
    let bob = wait_i
        .handle_auth_i(&f.bob, &auth_i)
        .expect("honest Auth-I");
    Handshake {
        identity,
        auth_r,
        auth_i,
        alice,
        bob,
    }
}

/// The first 10 bytes of every message: version, type, sender and receiver tags.
const PREFIX_BYTES: usize = 10;

// ---------------------------------------------------------------------------------------
// decode_message

/// `Message::decode` on raw bytes. Properties of an accepted message: its encoding is
/// exactly the input (the encoding is canonical), it decodes back to itself, its base64
/// form round-trips, no proper prefix and no extension of it decodes, and an embedded
/// profile that validates belongs to a fixture identity.
pub fn decode_message(data: &[u8]) {
    let msg = match Message::decode(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let bytes = msg.encode();
    assert_eq!(
        bytes, data,
        "an accepted message does not re-encode to its input"
    );
    assert_eq!(
        Message::decode(&bytes).as_ref(),
        Ok(&msg),
        "decode(encode(m)) != m"
    );
    assert_eq!(Message::from_base64(&msg.to_base64()).as_ref(), Ok(&msg));
    let (sender, _) = msg.tags();
    assert!(sender.is_valid(), "accepted a reserved sender tag");
    let _ = format!("{msg:?}");

    // Prefix-free and no trailing bytes: the message is delimited by its own fields.
    for cut in [
        data.len() - 1,
        data.len() / 2,
        PREFIX_BYTES.min(data.len() - 1),
    ] {
        let prefix = data.get(..cut).unwrap_or_default();
        assert!(
            Message::decode(prefix).is_err(),
            "a {cut}-byte prefix also decodes"
        );
    }
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(
        Message::decode(&longer).is_err(),
        "a trailing byte is accepted"
    );

    match &msg {
        Message::Identity(m) => profile_properties(&m.profile),
        Message::AuthR(m) => profile_properties(&m.profile),
        Message::AuthI(_) | Message::Data(_) => {}
    }
}

// ---------------------------------------------------------------------------------------
// decode_base64

/// `Message::from_base64` on text (invalid UTF-8 is replaced, so every input is text).
/// It must agree with `wire::decode_base64` + `Message::decode`; an accepted text is the
/// canonical base64 of the message up to surrounding whitespace.
pub fn decode_base64(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let result = Message::from_base64(&text);
    let via_bytes = wire::decode_base64(&text).and_then(|bytes| Message::decode(&bytes));
    assert_eq!(
        result, via_bytes,
        "from_base64 disagrees with decode_base64 + decode"
    );
    match result {
        Ok(msg) => {
            let canonical = msg.to_base64();
            assert_eq!(canonical, text.trim(), "accepted non-canonical base64");
            assert_eq!(Message::from_base64(&canonical), Ok(msg));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------
// decode_profile

/// `ClientProfile::from_bytes` on raw bytes, then validation. An accepted profile is
/// exactly [`PROFILE_BYTES`] long, re-encodes to its input and decodes back to itself.
pub fn decode_profile(data: &[u8]) {
    let profile = match ClientProfile::from_bytes(data) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(data.len(), PROFILE_BYTES);
    assert_eq!(
        profile.to_bytes(),
        data,
        "an accepted profile does not re-encode to its input"
    );
    assert_eq!(
        ClientProfile::from_bytes(&profile.to_bytes()).as_ref(),
        Ok(&profile)
    );
    let _ = format!("{profile:?}");
    let _ = profile.fingerprint();
    let _ = profile.validate(Timestamp(0));
    profile_properties(&profile);
}

/// The profile signature offset in [`ClientProfile::to_bytes`]: tag, three keys, expiry.
const PROFILE_SIGNATURE_OFFSET: usize = 4 + 32 + 32 + 32 + 8;

/// The order of the ristretto255 group (`ℓ`), little-endian.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Properties of a decoded profile, whatever message it came in.
///
/// Nobody but the fixture holds a signing key that made a profile in the corpus, so a
/// profile that validates must carry a fixture identity key: anything else is a forgery
/// (for example under a weak key). A validated profile stays valid until its expiry and is
/// expired one millisecond later, and the same signature with `s + ℓ` (a non-canonical
/// scalar, the classic ed25519 malleability) must not validate.
fn profile_properties(profile: &ClientProfile) {
    if profile.validate(NOW).is_err() {
        return;
    }
    let f = fixture();
    let known = [&f.alice, &f.bob, &f.carol]
        .iter()
        .any(|id| id.verifying_key() == *profile.identity_key());
    assert!(
        known,
        "a profile under a key no fixture identity holds validates: a forgery, or the corpus \
         holds profiles of an older fixture (regenerate the seed corpus)"
    );
    assert!(profile.instance_tag().is_valid());
    assert_eq!(profile.validate(profile.expires()), Ok(()));
    if let Some(later) = profile.expires().0.checked_add(1) {
        assert!(matches!(
            profile.validate(Timestamp(later)),
            Err(ProfileError::Expired { .. })
        ));
    }
    let mut bytes = profile.to_bytes();
    let s = bytes
        .get_mut(PROFILE_SIGNATURE_OFFSET + 32..)
        .unwrap_or_default();
    let mut carry = 0u16;
    for (byte, l) in s.iter_mut().zip(GROUP_ORDER) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    // `s < ℓ < 2^253`, so `s + ℓ` fits in 32 bytes and `carry` is 0 here.
    if let Ok(mauled) = ClientProfile::from_bytes(&bytes) {
        assert_eq!(
            mauled.validate(NOW),
            Err(ProfileError::BadSignature),
            "a non-canonical signature scalar validates"
        );
    }
}

// ---------------------------------------------------------------------------------------
// decode_content

/// `Content::from_padded_bytes` on raw bytes: what a peer can make a session decrypt (only
/// an authenticated peer, but a buggy or malicious one). An accepted input is at most
/// [`MAX_PADDED_BYTES`] long and still decodes the same with one more byte of padding; the
/// content, sent again through a session, arrives unchanged (`decode(encode(c)) == c`) in a
/// ciphertext whose length is one of the padding buckets.
pub fn decode_content(data: &[u8]) {
    let content = match Content::from_padded_bytes(data) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(data.len() <= MAX_PADDED_BYTES);
    let _ = format!("{content:?}");
    if data.len() < MAX_PADDED_BYTES {
        let mut longer = data.to_vec();
        longer.push(0);
        assert_eq!(Content::from_padded_bytes(&longer).as_ref(), Ok(&content));
    }
    let Handshake {
        mut alice, mut bob, ..
    } = handshake();
    let mut rng = ChaCha20Rng::seed_from_u64(SESSION_SEED);
    let msg = match alice.encrypt(&mut rng, &content) {
        Ok(msg) => msg,
        Err(e) => panic!("decoded content does not encode again: {e}"),
    };
    let padded = msg.ciphertext.len().saturating_sub(16);
    assert!(
        is_bucket(padded),
        "padded content of {padded} bytes is not a bucket size"
    );
    assert_eq!(
        bob.decrypt_content(&msg),
        Ok(content),
        "decode(encode(c)) != c"
    );
}

/// The padded sizes: powers of two from 64 bytes to 16 KiB, then multiples of 16 KiB up to
/// [`MAX_PADDED_BYTES`].
/// A Padmé size (written independently of the crate): at least 64, and a multiple of
/// `2^(E - S)` where `E = floor(log2 len)` and `S = floor(log2 E) + 1`.
fn is_bucket(len: usize) -> bool {
    if !(64..=MAX_PADDED_BYTES).contains(&len) {
        return false;
    }
    let e = len.ilog2();
    let s = e.ilog2() + 1;
    len % (1usize << (e - s)) == 0
}

// ---------------------------------------------------------------------------------------
// dake_receive

/// A decoded handshake message fed to the handshake state that expects it (fresh states
/// from the fixed handshake). An Identity message may be accepted only with Alice's
/// profile and a sender tag equal to the profile's; Auth-R and Auth-I only if they are the
/// genuine messages, byte for byte (the ring signatures cover everything else, and the
/// sender tags must match the profile's or the handshake's).
pub fn dake_receive(data: &[u8]) {
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let f = fixture();
    let (mut ra, mut rb) = dake_rngs();
    let (wait_r, m1) =
        dake::initiate(&mut ra, &f.alice, dake_context(), None).expect("honest initiate");
    match msg {
        Message::Identity(m) => {
            if let Ok((state, reply)) = dake::respond(&mut rb, &f.bob, dake_context(), &m, NOW) {
                assert_eq!(
                    m.profile.identity_key(),
                    &f.alice.verifying_key(),
                    "forged profile"
                );
                assert!(m.profile.validate(NOW).is_ok());
                assert_eq!(m.sender, m.profile.instance_tag(), "unbound sender tag");
                assert!(m.receiver == f.bob.instance_tag() || m.receiver == InstanceTag(0));
                assert_eq!(state.claimed_peer(), &m.profile);
                assert_eq!(reply.receiver, m.sender);
            }
        }
        Message::AuthR(m) => {
            let (_, genuine) =
                dake::respond(&mut rb, &f.bob, dake_context(), &m1, NOW).expect("honest respond");
            if let Ok((session, reply)) = wait_r.handle_auth_r(&mut ra, &f.alice, &m, NOW) {
                assert_eq!(m, genuine, "forged Auth-R");
                assert_eq!(session.their_profile(), &genuine.profile);
                assert_eq!(reply.receiver, m.sender);
            }
        }
        Message::AuthI(m) => {
            let (wait_i, m2) =
                dake::respond(&mut rb, &f.bob, dake_context(), &m1, NOW).expect("honest respond");
            let genuine = genuine_auth_i(wait_r, &mut ra, &m2);
            if let Ok(session) = wait_i.handle_auth_i(&f.bob, &m) {
                assert_eq!(m, genuine, "forged Auth-I");
                assert_eq!(session.their_profile(), f.alice.profile());
            }
        }
        Message::Data(_) => {}
    }
}

fn genuine_auth_i(wait_r: AwaitingAuthR, ra: &mut ChaCha20Rng, m2: &AuthRMessage) -> AuthIMessage {
    let (_, m3) = wait_r
        .handle_auth_r(ra, &fixture().alice, m2, NOW)
        .expect("honest Auth-R");
    m3
}

// ---------------------------------------------------------------------------------------
// session_receive

/// Reads fuzz input as a stream of values; past the end it yields zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn array32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (o, b) in out.iter_mut().zip(self.bytes(32)) {
            *o = *b;
        }
        out
    }

    /// A `u16` length, then that many bytes.
    pub fn blob(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16());
        self.bytes(len)
    }

    /// A blob as text (invalid UTF-8 replaced).
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.blob()).into_owned()
    }
}

/// The operations of a `session_receive` input: one byte `op << 1 | direction` (direction
/// 0 is Alice → Bob), then the operation's arguments.
pub mod op {
    /// `text`: the sender sends a text message.
    pub const SEND_TEXT: u8 = 0;
    /// `byte`: the sender sends a text of `MAX_TEXT_BYTES - 1 + byte % 4` bytes.
    pub const SEND_LONG_TEXT: u8 = 1;
    /// `smp message`: the sender encrypts an arbitrary SMP message (a malicious peer).
    pub const SEND_SMP: u8 = 2;
    /// `question, answer`: the sender starts a verification.
    pub const START: u8 = 3;
    /// `answer`: the sender answers a question.
    pub const ANSWER: u8 = 4;
    /// The sender aborts a verification.
    pub const ABORT: u8 = 5;
    /// The sender's queued SMP replies are sent.
    pub const FLUSH: u8 = 6;
    /// `byte`: message `byte % n` sent in this direction is delivered (again, maybe).
    pub const DELIVER: u8 = 7;
    /// Every queued reply is sent and every undelivered message delivered, both ways,
    /// until nothing is left.
    pub const DELIVER_ALL: u8 = 8;
    /// `byte, mutation`: a sent message is altered, then delivered.
    pub const DELIVER_MUTATED: u8 = 9;
    /// `tags, header, blob`: a message built from fuzz bytes is delivered.
    pub const DELIVER_FORGED: u8 = 10;
    /// `blob`: wire bytes; if they decode as a data message, it is delivered.
    pub const DELIVER_WIRE: u8 = 11;
    /// How many operations there are.
    pub const COUNT: u8 = 12;
}

/// At most this many operations run per input.
pub const MAX_OPS: usize = 64;

/// x25519 public keys whose DH output is all zeros (or that are non-canonical forms of
/// them), as in libsodium's blocklist.
const LOW_ORDER_X25519: [[u8; 32]; 7] = [
    [0; 32],
    le_small(1),
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    near_p(0xec),
    near_p(0xed),
    near_p(0xee),
];

const fn le_small(v: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[0] = v;
    out
}

/// `0x7fff...ff<low>` little-endian: `p - 1`, `p` and `p + 1` for `low` `0xec`, `0xed`,
/// `0xee` (`p = 2^255 - 19`).
const fn near_p(low: u8) -> [u8; 32] {
    let mut out = [0xffu8; 32];
    out[0] = low;
    out[31] = 0x7f;
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    AliceToBob,
    BobToAlice,
}

/// What the receiver should make of a genuine message.
#[derive(Debug, Clone)]
enum Expect {
    /// This text.
    Text(String),
    /// An SMP step (made by the session, or by the test and decodable).
    Smp,
    /// Malformed content error: an SMP message the decoder refuses.
    MalformedSmp,
}

struct Sent {
    msg: DataMessage,
    expect: Expect,
    delivered: bool,
}

struct Sim {
    alice: Session,
    bob: Session,
    alice_answers: Vec<String>,
    bob_answers: Vec<String>,
    to_bob: Vec<Sent>,
    to_alice: Vec<Sent>,
    rng: ChaCha20Rng,
    summary: Summary,
}

/// Alice and Bob after the fixed handshake, driven by fuzz input.
///
/// Properties: a message is accepted exactly when it is a genuine message not delivered
/// before (forged, altered and replayed messages are rejected), and a rejected message
/// leaves the receiver's skipped-key store unchanged; a genuine text arrives as the same
/// text; genuine content the decoder must refuse (an SMP message with an identity point or
/// an over-long question) is refused as malformed content; sending a text succeeds
/// exactly when it fits [`MAX_TEXT_BYTES`]; verification succeeds only if the two sides
/// used equal answers.
pub fn session_receive(data: &[u8]) {
    let _ = run_session(data);
}

/// What happened in a `session_receive` run (for tests of the seeds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages accepted (genuine, first delivery).
    pub accepted: usize,
    /// Messages rejected (forged, altered or replayed).
    pub rejected: usize,
    /// Genuine messages refused as malformed content.
    pub malformed: usize,
    /// SMP questions received.
    pub questions: usize,
    /// SMP runs that succeeded, counted on each side.
    pub succeeded: usize,
    /// SMP runs that failed, counted on each side.
    pub failed: usize,
    /// SMP runs aborted, counted where reported.
    pub aborted: usize,
}

/// Runs a `session_receive` input and says what happened.
pub fn run_session(data: &[u8]) -> Summary {
    let Handshake { alice, bob, .. } = handshake();
    let mut sim = Sim {
        alice,
        bob,
        alice_answers: Vec::new(),
        bob_answers: Vec::new(),
        to_bob: Vec::new(),
        to_alice: Vec::new(),
        rng: ChaCha20Rng::seed_from_u64(SESSION_SEED),
        summary: Summary::default(),
    };
    let mut input = Input::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        sim.step(&mut input);
    }
    sim.summary
}

impl Sim {
    /// `(sender, receiver, messages sender → receiver, rng)`.
    fn parts(
        &mut self,
        dir: Dir,
    ) -> (&mut Session, &mut Session, &mut Vec<Sent>, &mut ChaCha20Rng) {
        match dir {
            Dir::AliceToBob => (
                &mut self.alice,
                &mut self.bob,
                &mut self.to_bob,
                &mut self.rng,
            ),
            Dir::BobToAlice => (
                &mut self.bob,
                &mut self.alice,
                &mut self.to_alice,
                &mut self.rng,
            ),
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let b = input.byte();
        let dir = if b & 1 == 0 {
            Dir::AliceToBob
        } else {
            Dir::BobToAlice
        };
        match (b >> 1) % op::COUNT {
            op::SEND_TEXT => {
                let text = input.text();
                self.send_text(dir, text);
            }
            op::SEND_LONG_TEXT => {
                let len = MAX_TEXT_BYTES - 1 + usize::from(input.byte() % 4);
                self.send_text(dir, "a".repeat(len));
            }
            op::SEND_SMP => {
                let smp = smp_message(input);
                let expect = if smp_decodable(&smp) {
                    Expect::Smp
                } else {
                    Expect::MalformedSmp
                };
                let content = Content::Smp(smp);
                let (tx, _, sent, rng) = self.parts(dir);
                let msg = tx
                    .encrypt(rng, &content)
                    .expect("SMP content always encrypts");
                sent.push(Sent {
                    msg,
                    expect,
                    delivered: false,
                });
            }
            op::START => {
                let question = question(input);
                let answer = input.text();
                let (tx, _, sent, rng) = self.parts(dir);
                if let Ok(msg) = tx.start_verification(rng, question.as_deref(), &answer) {
                    sent.push(Sent {
                        msg,
                        expect: Expect::Smp,
                        delivered: false,
                    });
                    self.answers(dir).push(normalize_answer(&answer));
                }
            }
            op::ANSWER => {
                let answer = input.text();
                let (tx, _, sent, rng) = self.parts(dir);
                if let Ok(msg) = tx.answer_verification(rng, &answer) {
                    sent.push(Sent {
                        msg,
                        expect: Expect::Smp,
                        delivered: false,
                    });
                    self.answers(dir).push(normalize_answer(&answer));
                }
            }
            op::ABORT => {
                let (tx, _, sent, rng) = self.parts(dir);
                let msg = tx.abort_verification(rng).expect("abort always encrypts");
                sent.push(Sent {
                    msg,
                    expect: Expect::Smp,
                    delivered: false,
                });
            }
            op::FLUSH => self.flush(dir),
            op::DELIVER => {
                let pick = input.byte();
                if let Some(msg) = self.pick(dir, pick) {
                    self.deliver(dir, msg);
                }
            }
            op::DELIVER_ALL => self.deliver_all(),
            op::DELIVER_MUTATED => {
                let pick = input.byte();
                if let Some(msg) = self.pick(dir, pick) {
                    if let Some(mutated) = self.mutate(msg, input) {
                        self.deliver(dir, mutated);
                    }
                }
            }
            op::DELIVER_FORGED => {
                let msg = self.forge(dir, input);
                self.deliver(dir, msg);
            }
            _ => {
                if let Ok(Message::Data(msg)) = Message::decode(input.blob()) {
                    self.deliver(dir, msg);
                }
            }
        }
    }

    fn answers(&mut self, dir: Dir) -> &mut Vec<String> {
        match dir {
            Dir::AliceToBob => &mut self.alice_answers,
            Dir::BobToAlice => &mut self.bob_answers,
        }
    }

    fn send_text(&mut self, dir: Dir, text: String) {
        let (tx, _, sent, rng) = self.parts(dir);
        let result = tx.send_text(rng, &text);
        assert_eq!(
            result.is_ok(),
            text.len() <= MAX_TEXT_BYTES,
            "text of {} bytes",
            text.len()
        );
        if let Ok(msg) = result {
            sent.push(Sent {
                msg,
                expect: Expect::Text(text),
                delivered: false,
            });
        }
    }

    fn flush(&mut self, dir: Dir) {
        let (tx, _, sent, _) = self.parts(dir);
        while let Some(msg) = tx.poll_transmit() {
            sent.push(Sent {
                msg,
                expect: Expect::Smp,
                delivered: false,
            });
        }
    }

    fn pick(&mut self, dir: Dir, pick: u8) -> Option<DataMessage> {
        let (_, _, sent, _) = self.parts(dir);
        if sent.is_empty() {
            return None;
        }
        sent.get(usize::from(pick) % sent.len())
            .map(|s| s.msg.clone())
    }

    fn deliver_all(&mut self) {
        for _ in 0..8 {
            let mut delivered_any = false;
            for dir in [Dir::AliceToBob, Dir::BobToAlice] {
                self.flush(dir);
                let (_, _, sent, _) = self.parts(dir);
                let pending: Vec<DataMessage> = sent
                    .iter()
                    .filter(|s| !s.delivered)
                    .map(|s| s.msg.clone())
                    .collect();
                for msg in pending {
                    delivered_any = true;
                    self.deliver(dir, msg);
                }
            }
            if !delivered_any {
                break;
            }
        }
    }

    /// Delivers `msg` (genuine or not) to the receiver of `dir` and checks the outcome.
    fn deliver(&mut self, dir: Dir, msg: DataMessage) {
        let (_, rx, sent, rng) = self.parts(dir);
        let skipped_before = rx.stored_skipped_keys();
        // `Some(expect)` for a genuine message delivered for the first time.
        let genuine = sent
            .iter_mut()
            .find(|s| !s.delivered && s.msg == msg)
            .map(|s| {
                s.delivered = true;
                s.expect.clone()
            });
        let result = rx.handle_data(rng, &msg);
        let Some(expect) = genuine else {
            assert!(
                result.is_err(),
                "a forged or replayed message was accepted: {result:?}"
            );
            assert_eq!(
                rx.stored_skipped_keys(),
                skipped_before,
                "a rejected message changed the receiver's state"
            );
            self.summary.rejected += 1;
            return;
        };
        match expect {
            Expect::Text(text) => {
                assert_eq!(result, Ok(Some(SessionEvent::Text(text))));
            }
            Expect::MalformedSmp => {
                assert!(
                    matches!(result, Err(ReceiveError::Content(_))),
                    "malformed SMP content was not refused: {result:?}"
                );
                self.summary.malformed += 1;
                return;
            }
            Expect::Smp => match result {
                Ok(None) => {}
                Ok(Some(SessionEvent::Smp(SmpEvent::QuestionReceived { .. }))) => {
                    self.summary.questions += 1;
                }
                Ok(Some(SessionEvent::Smp(SmpEvent::Failed))) => self.summary.failed += 1,
                Ok(Some(SessionEvent::Smp(SmpEvent::Aborted { .. }))) => {
                    self.summary.aborted += 1;
                }
                Ok(Some(SessionEvent::Smp(SmpEvent::Succeeded))) => {
                    let shared = self
                        .alice_answers
                        .iter()
                        .any(|a| self.bob_answers.contains(a));
                    assert!(shared, "verification succeeded without a shared answer");
                    self.summary.succeeded += 1;
                }
                other => panic!("a genuine SMP message gave {other:?}"),
            },
        }
        self.summary.accepted += 1;
    }

    /// A sent message, altered.
    fn mutate(&mut self, mut msg: DataMessage, input: &mut Input<'_>) -> Option<DataMessage> {
        match input.byte() % 8 {
            0 => {
                let mut bytes = Message::Data(msg).encode();
                let pos = usize::from(input.u16()) % bytes.len().max(1);
                let mask = input.byte().max(1);
                if let Some(b) = bytes.get_mut(pos) {
                    *b ^= mask;
                }
                match Message::decode(&bytes) {
                    Ok(Message::Data(d)) => msg = d,
                    _ => return None,
                }
            }
            1 => {
                let cut = usize::from(input.u16()).max(1);
                msg.ciphertext
                    .truncate(msg.ciphertext.len().saturating_sub(cut));
            }
            2 => msg.header.index = perturb(msg.header.index, input),
            3 => {
                msg.header.previous_chain_length = perturb(msg.header.previous_chain_length, input)
            }
            4 => msg.header.ratchet_key = self.ratchet_key(input),
            5 => match input.byte() % 3 {
                0 => core::mem::swap(&mut msg.sender, &mut msg.receiver),
                1 => msg.sender = InstanceTag(input.u32()),
                _ => msg.receiver = InstanceTag(input.u32()),
            },
            6 => {
                let extra = input.blob();
                msg.ciphertext
                    .extend_from_slice(if extra.is_empty() { &[0] } else { extra });
            }
            _ => {
                // Another message's ciphertext under this header.
                let pick = input.byte();
                let dir = if pick & 1 == 0 {
                    Dir::AliceToBob
                } else {
                    Dir::BobToAlice
                };
                msg.ciphertext = self.pick(dir, pick >> 1)?.ciphertext;
            }
        }
        Some(msg)
    }

    /// A data message made from fuzz bytes.
    fn forge(&mut self, dir: Dir, input: &mut Input<'_>) -> DataMessage {
        let (tx, rx, sent, _) = self.parts(dir);
        let (right_sender, right_receiver) = (
            rx.their_profile().instance_tag(),
            tx.their_profile().instance_tag(),
        );
        let last_index = sent.last().map_or(0, |s| s.msg.header.index);
        let sender = match input.byte() % 3 {
            0 => right_sender,
            1 => right_receiver,
            _ => InstanceTag(input.u32()),
        };
        let receiver = match input.byte() % 3 {
            0 => right_receiver,
            1 => right_sender,
            _ => InstanceTag(input.u32()),
        };
        let ratchet_key = self.ratchet_key(input);
        let previous_chain_length = counter(input, last_index);
        let index = counter(input, last_index);
        DataMessage {
            sender,
            receiver,
            header: cryptocat_protocol::message::DataHeader {
                ratchet_key,
                previous_chain_length,
                index,
            },
            ciphertext: input.blob().to_vec(),
        }
    }

    /// A ratchet key: low-order, one that was used, or raw bytes.
    fn ratchet_key(&mut self, input: &mut Input<'_>) -> [u8; 32] {
        let pick = input.byte();
        match pick % 3 {
            0 => {
                let i = usize::from(pick >> 2) % LOW_ORDER_X25519.len();
                LOW_ORDER_X25519.get(i).copied().unwrap_or_default()
            }
            1 => {
                let dir = if pick & 4 == 0 {
                    Dir::AliceToBob
                } else {
                    Dir::BobToAlice
                };
                self.pick(dir, pick >> 3)
                    .map(|m| m.header.ratchet_key)
                    .unwrap_or_default()
            }
            _ => input.array32(),
        }
    }
}

fn perturb(v: u32, input: &mut Input<'_>) -> u32 {
    match input.byte() % 4 {
        0 => v.wrapping_add(1),
        1 => v.wrapping_sub(1),
        2 => v.wrapping_add(u32::from(input.u16())),
        _ => input.u32(),
    }
}

/// A chain counter near `base`, small, or raw.
fn counter(input: &mut Input<'_>, base: u32) -> u32 {
    match input.byte() % 3 {
        0 => base.wrapping_add(u32::from(input.byte())),
        1 => u32::from(input.u16()),
        _ => input.u32(),
    }
}

fn question(input: &mut Input<'_>) -> Option<String> {
    match input.byte() % 4 {
        0 => None,
        1 => Some(input.text()),
        2 => Some("?".repeat(MAX_QUESTION_BYTES)),
        _ => Some("?".repeat(MAX_QUESTION_BYTES + 1)),
    }
}

fn point(input: &mut Input<'_>) -> RistrettoPoint {
    match input.byte() % 4 {
        0 => RistrettoPoint::identity(),
        1 => RISTRETTO_BASEPOINT_POINT,
        2 => RistrettoPoint::mul_base(&Scalar::from_bytes_mod_order(input.array32())),
        _ => CompressedRistretto(input.array32())
            .decompress()
            .unwrap_or(RISTRETTO_BASEPOINT_POINT),
    }
}

fn scalar(input: &mut Input<'_>) -> Scalar {
    match input.byte() % 3 {
        0 => Scalar::ZERO,
        1 => Scalar::ONE,
        _ => Scalar::from_bytes_mod_order(input.array32()),
    }
}

/// An arbitrary SMP message (what a malicious peer can send).
pub fn smp_message(input: &mut Input<'_>) -> SmpMessage {
    match input.byte() % 5 {
        0 => SmpMessage::One {
            question: question(input),
            g2a: point(input),
            c2: scalar(input),
            d2: scalar(input),
            g3a: point(input),
            c3: scalar(input),
            d3: scalar(input),
        },
        1 => SmpMessage::Two {
            g2b: point(input),
            c2: scalar(input),
            d2: scalar(input),
            g3b: point(input),
            c3: scalar(input),
            d3: scalar(input),
            pb: point(input),
            qb: point(input),
            cp: scalar(input),
            d5: scalar(input),
            d6: scalar(input),
        },
        2 => SmpMessage::Three {
            pa: point(input),
            qa: point(input),
            cp: scalar(input),
            d5: scalar(input),
            d6: scalar(input),
            ra: point(input),
            cr: scalar(input),
            d7: scalar(input),
        },
        3 => SmpMessage::Four {
            rb: point(input),
            cr: scalar(input),
            d7: scalar(input),
        },
        _ => SmpMessage::Abort,
    }
}

/// Whether the content decoder accepts this SMP message once encoded: it refuses identity
/// points and questions over [`MAX_QUESTION_BYTES`].
fn smp_decodable(msg: &SmpMessage) -> bool {
    let ok = |points: &[&RistrettoPoint]| points.iter().all(|p| !p.is_identity());
    match msg {
        SmpMessage::One {
            question, g2a, g3a, ..
        } => {
            question
                .as_ref()
                .is_none_or(|q| q.len() <= MAX_QUESTION_BYTES)
                && ok(&[g2a, g3a])
        }
        SmpMessage::Two {
            g2b, g3b, pb, qb, ..
        } => ok(&[g2b, g3b, pb, qb]),
        SmpMessage::Three { pa, qa, ra, .. } => ok(&[pa, qa, ra]),
        SmpMessage::Four { rb, .. } => ok(&[rb]),
        SmpMessage::Abort => true,
    }
}

// ---------------------------------------------------------------------------------------
// Group protocol.

use cryptocat_protocol::group::wire::{GroupMessage, MAX_MEMBERS};
use cryptocat_protocol::group::{occupant_name, Destination, Room, RoomConfig, RoomEvent};

/// `GroupMessage::decode`: canonical encoding, base64 round trip, limits.
pub fn decode_group_message(data: &[u8]) {
    let Ok(m) = GroupMessage::decode(data) else {
        return;
    };
    assert!(m.macs.len() < MAX_MEMBERS, "more MACs than members");
    assert_eq!(m.encode(), data, "accepted group message is not canonical");
    assert_eq!(GroupMessage::from_base64(&m.to_base64()).as_ref(), Ok(&m));
    if let Some((_, shorter)) = data.split_last() {
        assert!(
            GroupMessage::decode(shorter).is_err(),
            "a prefix also decodes"
        );
    }
}

/// The room the `room_receive` check delivers to: Alice, Bob and Carol, settled, with
/// genuine traffic captured for the script to replay.
pub struct RoomFixture {
    /// Bob's room (the one under test).
    pub bob: Room,
    /// Bob's RNG.
    pub rng: ChaCha20Rng,
    /// Addresses: Alice, Bob, Carol.
    pub addresses: [String; 3],
    /// Genuine payloads to Bob: (from index, private?, bytes, text if a group text).
    pub genuine: Vec<(usize, bool, Vec<u8>, Option<String>)>,
}

const ROOM_JID: &str = "fuzz@conference.test";

/// Builds the fixture: three rooms settle, then Alice and Carol send two texts each and a
/// private message to Bob; everything for Bob after the settling is kept, not delivered.
pub fn room_fixture() -> RoomFixture {
    let mut parties: Vec<(Room, ChaCha20Rng)> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, nick)| {
            let mut rng = ChaCha20Rng::seed_from_u64(0x900d_0000 + i as u64);
            let id = Identity::generate(&mut rng, NOW);
            let addr = format!("{ROOM_JID}/{}", occupant_name(&id.verifying_key()));
            let room = Room::new(
                id,
                RoomConfig::default(),
                ROOM_JID,
                &addr,
                nick,
                NOW,
                &mut rng,
            )
            .expect("fixture room");
            (room, rng)
        })
        .collect();
    let addresses: Vec<String> = parties
        .iter()
        .map(|(r, _)| r.address().to_owned())
        .collect();
    for (room, rng) in parties.iter_mut() {
        for a in &addresses {
            room.member_present(NOW, rng, a);
        }
    }
    let mut captured = Vec::new();
    let settle = |parties: &mut Vec<(Room, ChaCha20Rng)>, capture: bool, captured: &mut Vec<_>| {
        for _ in 0..64 {
            let mut out = Vec::new();
            for (i, (room, _)) in parties.iter_mut().enumerate() {
                while let Some(t) = room.poll_transmit() {
                    out.push((i, t));
                }
                while room.poll_event().is_some() {}
            }
            if out.is_empty() {
                return;
            }
            for (from, t) in out {
                let from_addr = addresses[from].clone();
                for (j, (room, rng)) in parties.iter_mut().enumerate() {
                    let private = match &t.to {
                        Destination::Room => false,
                        Destination::Member(a) if *a == addresses[j] => true,
                        Destination::Member(_) => continue,
                    };
                    if j == from {
                        continue;
                    }
                    if capture && j == 1 {
                        captured.push((from, private, t.payload.clone(), None));
                        continue;
                    }
                    let _ = if private {
                        room.handle_private(NOW, rng, &from_addr, &t.payload)
                    } else {
                        room.handle_group(NOW, rng, &from_addr, &t.payload)
                    };
                }
            }
        }
    };
    settle(&mut parties, false, &mut captured);
    for (i, text) in [
        (0usize, "alice one"),
        (2, "carol one"),
        (0, "alice two"),
        (2, "carol two"),
    ] {
        parties[i].0.send_text(NOW, text).expect("fixture text");
        let before = captured.len();
        settle(&mut parties, true, &mut captured);
        if let Some(c) = captured.get_mut(before) {
            c.3 = Some(text.to_owned());
        }
    }
    {
        let (room, rng) = &mut parties[0];
        room.send_private_text(rng, &addresses[1], "alice private")
            .expect("fixture private");
    }
    settle(&mut parties, true, &mut captured);
    let mut parties = parties.into_iter();
    let _alice = parties.next();
    let (bob, rng) = parties.next().expect("bob");
    RoomFixture {
        bob,
        rng,
        addresses: [
            addresses[0].clone(),
            addresses[1].clone(),
            addresses[2].clone(),
        ],
        genuine: captured,
    }
}

/// Whether `mutated` is, for Bob, the same group message as `genuine`: same signed part and
/// the same origin MAC in Bob's slot (MACs for others are not Bob's business).
fn same_for_bob(genuine: &[u8], mutated: &[u8], addresses: &[String; 3]) -> bool {
    let (Ok(g), Ok(m)) = (GroupMessage::decode(genuine), GroupMessage::decode(mutated)) else {
        return false;
    };
    let mut sorted: Vec<&String> = addresses.iter().collect();
    sorted.sort();
    let Some(bob) = sorted.iter().position(|a| **a == addresses[1]) else {
        return false;
    };
    let sender = usize::from(g.sender);
    let slot = if bob > sender { bob - 1 } else { bob };
    g.epoch == m.epoch
        && g.sender == m.sender
        && g.index == m.index
        && g.prev_hash == m.prev_hash
        && g.ciphertext == m.ciphertext
        && g.macs.len() == m.macs.len()
        && g.macs.get(slot) == m.macs.get(slot)
}

/// Delivers a script of payloads to Bob's settled room. Each step: one op byte, then
/// data. Op `g`/`p`: a group/private payload built from fuzz bytes (u16 length), from the
/// sender chosen by the next byte; `G`: genuine payload k, unmodified; `M`: genuine
/// payload k with one byte flipped; `T`: run timers 1 to 255 seconds ahead.
/// Properties: nothing panics; a group text is shown only for a genuine payload delivered
/// unmodified, with its genuine text, at most once; no private text appears unless the
/// genuine private payload was delivered.
pub fn room_receive(data: &[u8]) {
    let _ = run_room(data);
}

/// Runs a `room_receive` script; returns the group texts shown and the private texts.
pub fn run_room(data: &[u8]) -> (Vec<String>, usize) {
    let mut f = room_fixture();
    let mut private_shown = 0;
    let mut input = data;
    let mut now = NOW;
    let mut delivered_genuine = vec![0usize; f.genuine.len()];
    let mut shown: Vec<String> = Vec::new();
    let mut steps = 0;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        steps += 1;
        if steps > MAX_OPS {
            break;
        }
        let pick = |input: &mut &[u8]| -> usize {
            let (b, rest) = input.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
            *input = rest;
            usize::from(b)
        };
        match op {
            b'g' | b'p' => {
                let from = pick(&mut input) % 4;
                let hi = pick(&mut input);
                let lo = pick(&mut input);
                let len = ((hi << 8) | lo).min(input.len());
                let (payload, rest) = input.split_at(len);
                input = rest;
                let addr = if from < 3 {
                    f.addresses[from].clone()
                } else {
                    format!("{ROOM_JID}/stranger")
                };
                let _ = if op == b'g' {
                    f.bob.handle_group(now, &mut f.rng, &addr, payload)
                } else {
                    f.bob.handle_private(now, &mut f.rng, &addr, payload)
                };
            }
            b'G' | b'M' => {
                if f.genuine.is_empty() {
                    continue;
                }
                let k = pick(&mut input) % f.genuine.len();
                let (from, private, payload, _) = &f.genuine[k];
                let mut payload = payload.clone();
                if op == b'M' && !payload.is_empty() {
                    let at = pick(&mut input) % payload.len();
                    payload[at] ^= 1 << (pick(&mut input) % 8);
                    // A flip in another recipient's MAC leaves Bob's copy genuine.
                    if !*private && same_for_bob(&f.genuine[k].2, &payload, &f.addresses) {
                        delivered_genuine[k] += 1;
                    }
                } else {
                    delivered_genuine[k] += 1;
                }
                let addr = f.addresses[*from].clone();
                let _ = if *private {
                    f.bob.handle_private(now, &mut f.rng, &addr, &payload)
                } else {
                    f.bob.handle_group(now, &mut f.rng, &addr, &payload)
                };
            }
            b'T' => {
                let secs = 1 + pick(&mut input) as u64;
                now = now.plus_millis(secs * 1000);
                f.bob.handle_timeout(now, &mut f.rng);
            }
            _ => {}
        }
        while f.bob.poll_transmit().is_some() {}
        while let Some(e) = f.bob.poll_event() {
            match e {
                RoomEvent::Message { text, .. } => {
                    let genuine = f.genuine.iter().enumerate().any(|(k, g)| {
                        g.3.as_deref() == Some(text.as_str()) && delivered_genuine[k] > 0
                    });
                    assert!(
                        genuine,
                        "a group text that was never genuinely delivered was shown"
                    );
                    assert!(!shown.contains(&text), "a group text was shown twice");
                    shown.push(text);
                }
                RoomEvent::PrivateMessage { text, .. } => {
                    assert_eq!(text, "alice private", "a private text that was never sent");
                    private_shown += 1;
                }
                _ => {}
            }
        }
    }
    (shown, private_shown)
}

// ---------------------------------------------------------------------------------------
// keyauth_decode: the X-CRYPTOCAT-KEY messages a server reads (client-first, client-final)
// and a client reads (the challenge).

/// The first byte picks the message: 0 client-first, 1 challenge, 2 client-final (for a
/// fixed identity, challenge and binding). Accepted client-first and challenge bytes
/// re-encode to exactly the input; a client-final verifies only if it is the genuine
/// signature, byte for byte (ed25519 `verify_strict`: no malleability).
pub fn keyauth_decode(data: &[u8]) {
    use cryptocat_protocol::keyauth::{self, BindingType, Challenge, ChannelBinding, ClientFirst};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(first) = ClientFirst::decode(rest) {
                assert_eq!(first.encode(), rest);
                assert!(keyauth::is_key_localpart(&keyauth::localpart(&first.key)));
            }
        }
        1 => {
            if let Ok(challenge) = Challenge::decode(rest) {
                assert_eq!(challenge.encode(), rest);
                assert!(!challenge.domain.is_empty());
            }
        }
        _ => {
            static FIXTURE: OnceLock<(Identity, [u8; 64])> = OnceLock::new();
            let challenge = Challenge {
                nonce: [7; 32],
                binding: BindingType::TlsExporter,
                domain: "example.org".to_owned(),
            };
            let binding = ChannelBinding::TlsExporter([0xa5; 32]);
            let (identity, genuine) = FIXTURE.get_or_init(|| {
                let mut rng = ChaCha20Rng::seed_from_u64(0x6b65_7961);
                let identity = Identity::generate(&mut rng, NOW);
                let sig = keyauth::respond(&identity, "example.org", &challenge, &binding)
                    .expect("the fixture's own challenge");
                (identity, sig)
            });
            let first = ClientFirst::new(identity);
            let verified =
                keyauth::verify(&challenge.domain, &challenge.nonce, &first, &binding, rest);
            if verified.is_ok() {
                assert_eq!(rest, genuine.as_slice(), "a forged client-final verified");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// file_offer: the file offer a recipient decodes from a decrypted message

/// Decodes a file offer. An accepted offer is within its limits and re-encodes to exactly
/// the input (canonical); its body size is the one its size implies.
pub fn file_offer(data: &[u8]) {
    use cryptocat_protocol::file::offer::{FileOffer, MAX_OFFER_BYTES};
    use cryptocat_protocol::file::stream::{body_len, MAX_FILE_BYTES};
    let offer = match FileOffer::from_bytes(data) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(data.len() <= MAX_OFFER_BYTES);
    assert!(offer.size <= MAX_FILE_BYTES);
    assert_eq!(offer.body_size(), body_len(offer.size));
    assert!(offer.validate().is_ok());
    assert!(!offer.name.contains(['/', '\\']) && !offer.name.chars().any(char::is_control));
    let again = offer.to_bytes().expect("an accepted offer encodes");
    assert_eq!(again.as_slice(), data, "offer encoding is not canonical");
    let debug = format!("{offer:?}");
    assert!(offer.name.len() < 4 || !debug.contains(&offer.name));
}

// ---------------------------------------------------------------------------------------
// file_stream: a downloaded file body, decrypted under a fixed key

/// The key of every `file_stream` input.
pub const FILE_KEY: [u8; 32] = [0x42; 32];

/// Input: announced size (u32, big-endian), announced SHA-256 (32 bytes), then the body.
/// Decrypting never panics; a body is accepted only if it is exactly the encryption of a
/// plaintext of the announced size and hash under the key (so nothing else is), and
/// feeding it in pieces gives the same result as at once.
pub fn file_stream(data: &[u8]) {
    use cryptocat_protocol::file::stream::{encrypt_all, FileDecryptor, FileKey};
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some((hash, body)) = rest.split_first_chunk::<32>() else {
        return;
    };
    let len = u64::from(u32::from_be_bytes(*len));
    let key = FileKey::from_bytes(FILE_KEY);
    let run = |piece: usize| {
        let mut dec = FileDecryptor::new(&key, len, *hash)?;
        let mut out = Vec::new();
        for part in body.chunks(piece.max(1)) {
            dec.update(part, &mut out)?;
        }
        dec.finish().map(|()| out)
    };
    let whole = run(body.len());
    assert_eq!(run(997), whole, "pieces and whole disagree");
    if let Ok(plain) = whole {
        assert_eq!(plain.len() as u64, len);
        let (again, again_hash) = encrypt_all(&key, &plain).expect("a decrypted file encrypts");
        assert_eq!(&again_hash, hash);
        assert_eq!(
            again, body,
            "an accepted body is not the encryption of its plaintext"
        );
    }
}
