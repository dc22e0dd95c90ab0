//! The seed corpus: valid messages of every type, near-misses of each, and
//! `session_receive` scripts that walk through every operation.
//!
//! Included next to `checks.rs` by `crates/protocol/tests/fuzz_corpus.rs`, which checks
//! these seeds on every run and writes them to `fuzz/corpus/<target>/seed-<name>` when run
//! with `--ignored write_seed_corpus`. Everything comes from the fixed fixture of
//! `checks.rs`, so the genuine messages here are the ones the checks expect.

use cryptocat_protocol::message::{DataMessage, IdentityMessage, Message};
use cryptocat_protocol::profile::ClientProfile;
use cryptocat_protocol::wire;
use cryptocat_protocol::InstanceTag;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::checks::{self, op};

/// One seed: target, file name (without the `seed-` prefix) and bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    let messages = wire_messages();
    for (name, bytes) in &messages {
        out.push(("decode_message", name.clone(), bytes.clone()));
        out.push(("dake_receive", name.clone(), bytes.clone()));
        out.push((
            "decode_base64",
            name.clone(),
            wire::encode_base64(bytes).into_bytes(),
        ));
    }
    for (name, text) in base64_texts(&messages) {
        out.push(("decode_base64", name, text.into_bytes()));
    }
    let room = checks::room_fixture();
    for (k, (_, private, payload, _)) in room.genuine.iter().enumerate() {
        if !private {
            out.push((
                "decode_group_message",
                format!("genuine-{k}"),
                payload.clone(),
            ));
        }
    }
    let all_genuine: Vec<u8> = (0..room.genuine.len())
        .flat_map(|k| [b'G', u8::try_from(k).unwrap_or(u8::MAX)])
        .collect();
    out.push((
        "room_receive",
        "all-genuine-in-order".into(),
        all_genuine.clone(),
    ));
    let mut twice = all_genuine.clone();
    twice.extend_from_slice(&all_genuine);
    out.push(("room_receive", "all-genuine-twice".into(), twice));
    let reversed: Vec<u8> = (0..room.genuine.len())
        .rev()
        .flat_map(|k| [b'G', u8::try_from(k).unwrap_or(u8::MAX)])
        .collect();
    out.push(("room_receive", "all-genuine-reversed".into(), reversed));
    let mut flipped: Vec<u8> = (0..room.genuine.len())
        .flat_map(|k| [b'M', u8::try_from(k).unwrap_or(u8::MAX), 7, 3])
        .collect();
    flipped.extend_from_slice(&[b'T', 30, b'T', 60]);
    out.push(("room_receive", "flipped-then-timers".into(), flipped));
    out.push((
        "room_receive",
        "junk-group".into(),
        b"g\x00\x00\x08\x01\x20abcdef".to_vec(),
    ));
    for (name, bytes) in profiles() {
        out.push(("decode_profile", name, bytes));
    }
    for (name, bytes) in contents() {
        out.push(("decode_content", name, bytes));
    }
    for (name, bytes) in scripts() {
        out.push(("session_receive", name, bytes));
    }
    for (name, bytes) in keyauth_messages() {
        out.push(("keyauth_decode", name, bytes));
    }
    for (name, bytes) in file_offers() {
        out.push(("file_offer", name, bytes));
    }
    for (name, bytes) in file_bodies() {
        out.push(("file_stream", name, bytes));
    }
    out
}

/// File offers: a typical one, one at every limit, and near-misses.
fn file_offers() -> Vec<(String, Vec<u8>)> {
    use cryptocat_protocol::file::offer::{
        FileOffer, MAX_NAME_BYTES, MAX_TYPE_BYTES, MAX_URL_BYTES,
    };
    use cryptocat_protocol::file::stream::{FileKey, MAX_FILE_BYTES};
    let offer = |url: String, size: u64, media_type: String, name: String| FileOffer {
        url,
        key: FileKey::from_bytes([7; 32]),
        sha256: [1; 32],
        size,
        media_type,
        name,
    };
    let typical = offer(
        "https://files.example.org/u/3f2a9c".into(),
        123_456,
        "image/png".into(),
        "photo.png".into(),
    )
    .to_bytes()
    .map(|b| b.to_vec())
    .unwrap_or_default();
    let limits = offer(
        format!("https://{}", "u".repeat(MAX_URL_BYTES - 8)),
        MAX_FILE_BYTES,
        format!("a/{}", "b".repeat(MAX_TYPE_BYTES - 2)),
        "é".repeat(MAX_NAME_BYTES / 2),
    )
    .to_bytes()
    .map(|b| b.to_vec())
    .unwrap_or_default();
    let mut slash = typical.clone();
    if let Some(last) = slash.last_mut() {
        *last = b'/';
    }
    let mut short = typical.clone();
    short.pop();
    vec![
        ("typical".into(), typical),
        ("limits".into(), limits),
        ("name-with-slash".into(), slash),
        ("short".into(), short),
    ]
}

/// File bodies under `checks::FILE_KEY`, each after its announced size and hash: genuine
/// ones at chunk edges, and a truncated, an extended and a tampered one.
fn file_bodies() -> Vec<(String, Vec<u8>)> {
    use cryptocat_protocol::file::stream::{encrypt_all, FileKey, CHUNK_BYTES};
    let key = FileKey::from_bytes(checks::FILE_KEY);
    let framed = |len: usize| {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251).to_le_bytes()[0]).collect();
        let (body, hash) = encrypt_all(&key, &plain).unwrap_or_default();
        let mut v = u32::try_from(len).unwrap_or(0).to_be_bytes().to_vec();
        v.extend_from_slice(&hash);
        v.extend_from_slice(&body);
        v
    };
    let mut out: Vec<(String, Vec<u8>)> = [0, 1, 100, CHUNK_BYTES, CHUNK_BYTES + 1]
        .into_iter()
        .map(|len| (format!("genuine-{len}"), framed(len)))
        .collect();
    let base = framed(CHUNK_BYTES + 1);
    let mut truncated = base.clone();
    truncated.truncate(base.len() - 20);
    let mut extended = base.clone();
    extended.push(0);
    let mut tampered = base.clone();
    if let Some(b) = tampered.get_mut(100) {
        *b ^= 1;
    }
    out.push(("truncated".into(), truncated));
    out.push(("extended".into(), extended));
    out.push(("tampered".into(), tampered));
    out
}

/// The key challenge's messages (from `test-vectors/key-challenge.json`), each after its
/// selector byte, and near-misses.
fn keyauth_messages() -> Vec<(String, Vec<u8>)> {
    use cryptocat_protocol::keyauth::{BindingType, Challenge};
    let challenge = Challenge {
        nonce: core::array::from_fn(|i| u8::try_from(i).unwrap_or(0)),
        binding: BindingType::None,
        domain: "example.org".to_owned(),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(0x6b65_7962);
    let identity = cryptocat_protocol::identity::Identity::generate(&mut rng, checks::NOW);
    let first = cryptocat_protocol::keyauth::ClientFirst::new(&identity).encode();
    let with = |selector: u8, bytes: &[u8]| {
        let mut v = vec![selector];
        v.extend_from_slice(bytes);
        v
    };
    let mut short_first = first.clone();
    short_first.pop();
    vec![
        ("client-first".into(), with(0, &first)),
        ("client-first-short".into(), with(0, &short_first)),
        ("challenge".into(), with(1, &challenge.encode())),
        ("client-final-zeros".into(), with(2, &[0; 64])),
    ]
}

/// Data messages as `session_receive` sends them: the same sessions and the same rng, so
/// a script that sends the same things first produces these exact messages.
fn session_messages() -> Vec<(String, DataMessage)> {
    let checks::Handshake {
        mut alice, mut bob, ..
    } = checks::handshake();
    let mut rng = ChaCha20Rng::seed_from_u64(checks::SESSION_SEED);
    let mut out = Vec::new();
    let first = alice.send_text(&mut rng, "hello").expect("send");
    out.push(("data-text".to_owned(), first.clone()));
    bob.handle_data(&mut rng, &first).expect("genuine");
    let reply = bob.send_text(&mut rng, "").expect("send");
    out.push(("data-empty-text-reply".to_owned(), reply));
    let smp = alice
        .start_verification(&mut rng, Some("Colour?"), "blue")
        .expect("start");
    out.push(("data-smp1".to_owned(), smp));
    let abort = alice.abort_verification(&mut rng).expect("abort");
    out.push(("data-smp-abort".to_owned(), abort));
    let long = alice.send_text(&mut rng, &"x".repeat(2000)).expect("send");
    out.push(("data-text-2000".to_owned(), long));
    out
}

/// Encoded messages: the handshake, data messages, and invalid variants.
fn wire_messages() -> Vec<(String, Vec<u8>)> {
    let f = checks::fixture();
    let checks::Handshake {
        identity: m1,
        auth_r: m2,
        auth_i: m3,
        ..
    } = checks::handshake();
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("identity".into(), Message::Identity(m1.clone()).encode()),
        ("auth-r".into(), Message::AuthR(m2.clone()).encode()),
        ("auth-i".into(), Message::AuthI(m3.clone()).encode()),
    ];
    for (name, msg) in session_messages() {
        out.push((name, Message::Data(msg).encode()));
    }
    let identity = |profile: &ClientProfile| {
        Message::Identity(IdentityMessage {
            profile: profile.clone(),
            ..m1.clone()
        })
        .encode()
    };
    out.push((
        "identity-expired-profile".into(),
        identity(f.carol.profile()),
    ));
    out.push((
        "identity-reflected-profile".into(),
        identity(f.bob.profile()),
    ));
    let mut to_bob = m1.clone();
    to_bob.receiver = f.bob.instance_tag();
    out.push((
        "identity-addressed".into(),
        Message::Identity(to_bob).encode(),
    ));
    let mut other_sender = m2.clone();
    other_sender.sender = InstanceTag(0x1234_5678);
    out.push((
        "auth-r-other-sender".into(),
        Message::AuthR(other_sender).encode(),
    ));
    let mut wrong_receiver = m3.clone();
    wrong_receiver.receiver = InstanceTag(0x100);
    out.push((
        "auth-i-wrong-receiver".into(),
        Message::AuthI(wrong_receiver).encode(),
    ));

    let genuine = Message::Identity(m1).encode();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = genuine.clone();
        edit(&mut bytes);
        bytes
    };
    out.push(("bad-version".into(), with(&|b| b[0] = 2)));
    out.push(("bad-type".into(), with(&|b| b[1] = 5)));
    out.push((
        "reserved-sender".into(),
        with(&|b| b[2..6].copy_from_slice(&[0, 0, 0, 0xff])),
    ));
    out.push(("truncated".into(), with(&|b| b.truncate(b.len() - 1))));
    out.push(("trailing-byte".into(), with(&|b| b.push(0))));
    out.push((
        "identity-point-y".into(),
        with(&|b| {
            let n = b.len();
            b[n - 32..].fill(0);
        }),
    ));
    out.push((
        "non-canonical-point-y".into(),
        with(&|b| {
            let n = b.len();
            b[n - 32..].fill(0xff);
        }),
    ));
    // A data message that declares a ciphertext longer than the limit.
    let mut huge = Message::Data(session_messages().remove(0).1).encode();
    huge.truncate(10 + 32 + 8);
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    out.push(("data-ciphertext-too-long".into(), huge));
    out.push(("empty".into(), Vec::new()));
    out
}

/// Base64 texts that are not the plain encoding of a seed message.
fn base64_texts(messages: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let identity = messages
        .first()
        .map(|(_, b)| wire::encode_base64(b))
        .unwrap_or_default();
    let data = messages
        .get(3)
        .map(|(_, b)| wire::encode_base64(b))
        .unwrap_or_default();
    vec![
        ("whitespace".into(), format!(" \n{identity}\t ")),
        (
            "inner-whitespace".into(),
            format!("{} {}", &data[..8], &data[8..]),
        ),
        ("no-padding".into(), data.trim_end_matches('=').to_owned()),
        (
            "url-safe-alphabet".into(),
            data.replace('+', "-").replace('/', "_"),
        ),
        ("not-base64".into(), "not base64!".into()),
        ("non-ascii".into(), "AAAA\u{00e9}".into()),
    ]
}

/// Profile encodings: the fixture's, and variants.
fn profiles() -> Vec<(String, Vec<u8>)> {
    let f = checks::fixture();
    let alice = f.alice.profile().to_bytes();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = alice.clone();
        edit(&mut bytes);
        bytes
    };
    vec![
        ("alice".into(), alice.clone()),
        ("bob".into(), f.bob.profile().to_bytes()),
        ("carol-expired".into(), f.carol.profile().to_bytes()),
        (
            "reserved-tag".into(),
            with(&|b| b[..4].copy_from_slice(&[0, 0, 0, 1])),
        ),
        ("later-expiry".into(), with(&|b| b[100..108].fill(0xff))),
        // y = 1 written as p + 1: a non-canonical encoding of the identity point.
        (
            "non-canonical-identity-key".into(),
            with(&|b| {
                b[4..36].fill(0xff);
                b[4] = 0xee;
                b[35] = 0x7f;
            }),
        ),
        (
            "small-order-identity-key".into(),
            with(&|b| {
                b[4..36].fill(0);
                b[4] = 1;
            }),
        ),
        ("zero-signature".into(), with(&|b| b[108..].fill(0))),
        ("short".into(), with(&|b| b.truncate(b.len() - 1))),
        ("long".into(), with(&|b| b.push(0))),
    ]
}

/// `content || 0x80 || zeros` to the next power of two, at least 64 bytes (as a session
/// pads).
fn pad(mut content: Vec<u8>) -> Vec<u8> {
    let size = (content.len() + 1).next_power_of_two().max(64);
    content.push(0x80);
    content.resize(size, 0);
    content
}

/// Encoded SMP fields: `P` a point `G * (i + 2)`, `S` a scalar `i + 1`.
fn smp_fields(tag: u8, head: &[u8], fields: &str) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(head);
    for (i, kind) in (0u64..).zip(fields.chars()) {
        if kind == 'P' {
            let p = RistrettoPoint::mul_base(&Scalar::from(i + 2));
            out.extend_from_slice(p.compress().as_bytes());
        } else {
            out.extend_from_slice(Scalar::from(i + 1).as_bytes());
        }
    }
    out
}

/// Padded content: every kind, and near-misses.
fn contents() -> Vec<(String, Vec<u8>)> {
    let text = |t: &str| {
        let mut c = vec![0x01];
        c.extend_from_slice(&u32::try_from(t.len()).expect("short").to_be_bytes());
        c.extend_from_slice(t.as_bytes());
        c
    };
    let mut question = vec![1, 0, 9];
    question.extend_from_slice(b"Question?");
    let mut group_profile = vec![0x21, 0, 4];
    group_profile.extend_from_slice(b"room");
    group_profile.extend_from_slice(&[0, 5]);
    group_profile.extend_from_slice(b"alice");
    let mut epoch_key = vec![0x22];
    epoch_key.extend_from_slice(&7u64.to_be_bytes());
    epoch_key.extend_from_slice(&[0, 1, 0, 6]);
    epoch_key.extend_from_slice(b"room/a");
    epoch_key.extend_from_slice(checks::fixture().alice.verifying_key().as_bytes());
    epoch_key.extend_from_slice(&[3; 32 * 3]);
    epoch_key.push(1);
    epoch_key.extend_from_slice(&[4; 16]);
    epoch_key.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 9]);
    epoch_key.extend_from_slice(&[5; 32]);
    let mut epoch_key_first = epoch_key.clone();
    epoch_key_first.truncate(epoch_key.len() - 16 - 2 - 38 - 1);
    epoch_key_first.push(0);
    let mut unpadded = pad(text("no marker"));
    unpadded.retain(|&b| b != 0x80);
    vec![
        ("text".into(), pad(text("hello"))),
        ("text-empty".into(), pad(text(""))),
        (
            "text-invalid-utf8".into(),
            pad(vec![1, 0, 0, 0, 2, 0xc3, 0x28]),
        ),
        ("smp1".into(), pad(smp_fields(0x11, &[0], "PSSPSS"))),
        (
            "smp1-question".into(),
            pad(smp_fields(0x11, &question, "PSSPSS")),
        ),
        ("smp2".into(), pad(smp_fields(0x12, &[], "PSSPSSPPSSS"))),
        ("smp3".into(), pad(smp_fields(0x13, &[], "PPSSSPSS"))),
        ("smp4".into(), pad(smp_fields(0x14, &[], "PSS"))),
        ("smp-abort".into(), pad(vec![0x15])),
        ("group-profile".into(), pad(group_profile)),
        ("epoch-key".into(), pad(epoch_key)),
        ("epoch-key-first".into(), pad(epoch_key_first)),
        ("unknown-tag".into(), pad(vec![0x30])),
        ("trailing-byte".into(), pad(vec![0x15, 0])),
        ("no-marker".into(), unpadded),
        ("all-zero".into(), vec![0; 64]),
        ("empty".into(), Vec::new()),
    ]
}

/// Builds a `session_receive` input.
#[derive(Default)]
struct Script(Vec<u8>);

const A: u8 = 0;
const B: u8 = 1;

impl Script {
    fn op(mut self, code: u8, dir: u8) -> Self {
        self.0.push(code << 1 | dir);
        self
    }
    fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_be_bytes())
    }
    fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_be_bytes())
    }
    fn blob(self, b: &[u8]) -> Self {
        self.u16(u16::try_from(b.len()).expect("short blob"))
            .bytes(b)
    }
    fn text(self, dir: u8, text: &str) -> Self {
        self.op(op::SEND_TEXT, dir).blob(text.as_bytes())
    }
    fn deliver(self, dir: u8, i: u8) -> Self {
        self.op(op::DELIVER, dir).byte(i)
    }
    fn all(self) -> Self {
        self.op(op::DELIVER_ALL, A)
    }
    /// A point as `G * s`, with `s` from one repeated byte.
    fn point(self, s: u8) -> Self {
        self.byte(2).bytes(&[s; 32])
    }
    fn scalar(self, s: u8) -> Self {
        self.byte(2).bytes(&[s; 32])
    }
}

/// `session_receive` scripts.
fn scripts() -> Vec<(String, Vec<u8>)> {
    let first = session_messages().remove(0).1;
    let first_wire = Message::Data(first).encode();
    let scripts: Vec<(&str, Script)> = vec![
        ("text", Script::default().text(A, "hello").deliver(A, 0)),
        (
            "text-via-wire",
            Script::default()
                .text(A, "hello")
                .op(op::DELIVER_WIRE, A)
                .blob(&first_wire),
        ),
        (
            "out-of-order-and-replay",
            Script::default()
                .text(A, "m0")
                .text(A, "m1")
                .text(A, "m2")
                .deliver(A, 2)
                .deliver(A, 0)
                .deliver(A, 1)
                .deliver(A, 1),
        ),
        (
            "ratchet-steps",
            Script::default()
                .text(A, "a0")
                .text(A, "a1")
                .deliver(A, 0)
                .text(B, "b0")
                .deliver(B, 0)
                .text(A, "a2")
                .text(B, "b1")
                .deliver(A, 2)
                .deliver(A, 1)
                .all(),
        ),
        (
            "long-texts",
            Script::default()
                .op(op::SEND_LONG_TEXT, A)
                .byte(0)
                .op(op::SEND_LONG_TEXT, A)
                .byte(1)
                .op(op::SEND_LONG_TEXT, B)
                .byte(2)
                .all(),
        ),
        (
            "smp-same-answer",
            Script::default()
                .op(op::START, A)
                .byte(1)
                .blob(b"Favourite animal?")
                .blob(b"Blue whale")
                .all()
                .op(op::ANSWER, B)
                .blob(b"blue  WHALE!")
                .all(),
        ),
        (
            "smp-different-answer",
            Script::default()
                .op(op::START, B)
                .byte(0)
                .blob(b"red")
                .all()
                .op(op::ANSWER, A)
                .blob(b"green")
                .op(op::FLUSH, A)
                .deliver(A, 0)
                .op(op::FLUSH, B)
                .all(),
        ),
        (
            "smp-abort-and-restart",
            Script::default()
                .op(op::START, A)
                .byte(2)
                .blob(b"x")
                .op(op::ABORT, A)
                .op(op::START, A)
                .byte(3)
                .blob(b"y")
                .op(op::START, B)
                .byte(1)
                .blob(b"q")
                .blob(b"z")
                .all(),
        ),
        (
            "smp-malicious-steps",
            Script::default()
                .op(op::SEND_SMP, A)
                .byte(0)
                .byte(1)
                .blob(b"q?")
                .point(3)
                .scalar(4)
                .scalar(5)
                .point(6)
                .scalar(7)
                .scalar(8)
                .op(op::SEND_SMP, A)
                .byte(1)
                .point(1)
                .scalar(1)
                .scalar(1)
                .point(2)
                .scalar(2)
                .scalar(2)
                .point(3)
                .point(4)
                .scalar(3)
                .scalar(3)
                .scalar(3)
                .op(op::SEND_SMP, A)
                .byte(2)
                .point(1)
                .point(2)
                .scalar(1)
                .scalar(1)
                .scalar(1)
                .point(3)
                .scalar(1)
                .scalar(1)
                .op(op::SEND_SMP, A)
                .byte(3)
                .point(9)
                .scalar(9)
                .scalar(9)
                .op(op::SEND_SMP, A)
                .byte(4)
                .all(),
        ),
        (
            "smp-malformed",
            Script::default()
                .op(op::SEND_SMP, B)
                .byte(0)
                .byte(0)
                .bytes(&[0; 6])
                .op(op::SEND_SMP, B)
                .byte(0)
                .byte(3)
                .point(1)
                .scalar(1)
                .scalar(1)
                .point(1)
                .scalar(1)
                .scalar(1)
                .op(op::SEND_SMP, B)
                .byte(3)
                .byte(0)
                .byte(0)
                .byte(0)
                .all(),
        ),
        (
            "mutations",
            Script::default()
                .text(A, "target")
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(0)
                .u16(20)
                .byte(1)
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(1)
                .u16(1)
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(2)
                .byte(0)
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(3)
                .byte(0)
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(4)
                .byte(0)
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(5)
                .byte(0)
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(6)
                .blob(b"x")
                .text(A, "other")
                .op(op::DELIVER_MUTATED, A)
                .byte(0)
                .byte(7)
                .byte(2)
                .all(),
        ),
        (
            "forgeries",
            Script::default()
                .text(A, "x")
                .op(op::DELIVER_FORGED, A)
                .byte(0)
                .byte(0)
                .byte(1)
                .byte(0)
                .byte(0)
                .byte(0)
                .byte(0)
                .blob(&[0; 32])
                .op(op::DELIVER_FORGED, A)
                .byte(0)
                .byte(0)
                .byte(0)
                .byte(2)
                .u32(30_000)
                .byte(0)
                .byte(5)
                .blob(&[1; 40])
                .op(op::DELIVER_FORGED, A)
                .byte(0)
                .byte(0)
                .byte(2)
                .bytes(&[7; 32])
                .byte(1)
                .u16(3)
                .byte(1)
                .u16(100)
                .blob(&[2; 16])
                .op(op::DELIVER_FORGED, B)
                .byte(2)
                .u32(0x100)
                .byte(2)
                .u32(0x100)
                .byte(4)
                .byte(0)
                .byte(0)
                .byte(0)
                .byte(0)
                .blob(b"")
                .deliver(A, 0),
        ),
        (
            "wire-garbage",
            Script::default()
                .op(op::DELIVER_WIRE, B)
                .blob(b"\x01\x04garbage"),
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, s)| (name.to_owned(), s.0))
        .collect()
}
