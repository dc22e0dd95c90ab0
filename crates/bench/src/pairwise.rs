//! The `pairwise` suite: our one-to-one protocol against vodozemac's Olm, in one process.
//!
//! Both sides work on in-memory message structs (our `DataMessage`, Olm's `OlmMessage`):
//! neither side's wire encoding or base64 is included, and both return owned plaintext on
//! decryption (ours a `String` inside `SessionEvent::Text`, Olm a `Vec<u8>`).
//!
//! | op | ours | peer (vodozemac Olm, `SessionConfig::version_1`) |
//! | --- | --- | --- |
//! | `handshake` | DAKEZ only: `initiate` + `respond` + `handle_auth_r` + `handle_auth_i` with identities made beforehand (includes both profile-signature checks and the four ring-signature operations) | `create_outbound_session` from a one-time key + `encrypt` of the first (pre-key) message + `create_inbound_session` (which decrypts that message and removes the one-time key); accounts and one-time keys made beforehand, the one-time-key signature check a Matrix client does is not included |
//! | `encrypt_same_chain` | `Session::send_text` of a 100-byte text on one sending chain | `Session::encrypt` of the same 100 bytes on one chain |
//! | `decrypt_same_chain` | `Session::handle_data` of those, in order | `Session::decrypt`, in order |
//! | `encrypt_dh_step` | `send_text` when a DH ratchet step is due (ping-pong: every message starts a new chain) | `encrypt`, likewise |
//! | `decrypt_dh_step` | `handle_data` of a message carrying a new ratchet key | `decrypt`, likewise |
//!
//! Ours draws randomness from a seeded `ChaCha20Rng`; vodozemac draws from its own
//! thread-local CSPRNG (it takes no RNG argument). Ciphertexts to decrypt are made outside
//! the timed region; in the ping-pong ops each encryption and decryption is timed on its
//! own and only the op being measured is counted.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cryptocat_protocol::dake::{self, DakeContext};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::message::DataMessage;
use cryptocat_protocol::session::{Session, SessionEvent};
use cryptocat_protocol::Timestamp;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use vodozemac::olm::{Account, OlmMessage, Session as OlmSession, SessionConfig};
use vodozemac::Curve25519PublicKey;

use crate::measure::{compare, MeasureArgs, Plan, Report, Row};

/// Suite name in the output.
pub const SUITE: &str = "pairwise";
/// Peer name in the output.
pub const PEER: &str = "vodozemac-olm";

/// The message every op sends: 100 bytes of text.
pub const TEXT: &str = concat!(
    "Meet me at the usual place at half past seven; ",
    "bring the blue notebook and the spare keys, not mine."
);
const _: () = assert!(TEXT.len() == 100);

const NOW: Timestamp = Timestamp(1_764_000_000_000);

/// Operations of this suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Op {
    /// Full key agreement between two parties with keys made beforehand.
    Handshake,
    /// Encrypt on one chain (no DH step).
    EncryptSameChain,
    /// Decrypt on one chain, in order.
    DecryptSameChain,
    /// Encrypt when every message starts a new DH ratchet step.
    EncryptDhStep,
    /// Decrypt when every message carries a new ratchet key.
    DecryptDhStep,
}

impl Op {
    /// Every op, in output order.
    pub const ALL: [Op; 5] = [
        Op::Handshake,
        Op::EncryptSameChain,
        Op::DecryptSameChain,
        Op::EncryptDhStep,
        Op::DecryptDhStep,
    ];

    /// The name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Handshake => "handshake",
            Op::EncryptSameChain => "encrypt_same_chain",
            Op::DecryptSameChain => "decrypt_same_chain",
            Op::EncryptDhStep => "encrypt_dh_step",
            Op::DecryptDhStep => "decrypt_dh_step",
        }
    }
}

/// Options of `pairwise`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Measure only this operation (repeatable); all by default.
    #[arg(long = "op", value_enum)]
    pub ops: Vec<Op>,
    /// Seed of our CSPRNG.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the suite and prints its report.
pub fn run(args: &Args) -> Result<()> {
    let report = measure(args)?;
    report.print(args.measure.json)
}

/// Runs the suite.
pub fn measure(args: &Args) -> Result<Report> {
    let plan = args.measure.plan();
    let ops: Vec<Op> = if args.ops.is_empty() {
        Op::ALL.to_vec()
    } else {
        Op::ALL
            .into_iter()
            .filter(|op| args.ops.contains(op))
            .collect()
    };
    let mut rows = Vec::with_capacity(ops.len());
    for op in ops {
        eprintln!("{SUITE}: measuring {}", op.name());
        let row = measure_op(op, plan, args.seed).with_context(|| op.name())?;
        eprintln!(
            "{SUITE}: {}: {} ops per batch ours, {} peer",
            op.name(),
            row.ours.iters,
            row.peer.iters
        );
        rows.push(row);
    }
    Ok(Report {
        suite: SUITE.into(),
        peer: PEER.into(),
        members: None,
        rows,
    })
}

fn measure_op(op: Op, plan: Plan, seed: u64) -> Result<Row> {
    let (o, p) = match op {
        Op::Handshake => {
            let mut o = ours::handshake_runner(seed)?;
            let mut p = peer::handshake_runner();
            compare(plan, &mut o, &mut p)?
        }
        Op::EncryptSameChain => {
            let mut o = ours::encrypt_same_chain_runner(seed)?;
            let mut p = peer::encrypt_same_chain_runner()?;
            compare(plan, &mut o, &mut p)?
        }
        Op::DecryptSameChain => {
            let mut o = ours::decrypt_same_chain_runner(seed)?;
            let mut p = peer::decrypt_same_chain_runner()?;
            compare(plan, &mut o, &mut p)?
        }
        Op::EncryptDhStep | Op::DecryptDhStep => {
            let side = if op == Op::EncryptDhStep {
                Timed::Encrypt
            } else {
                Timed::Decrypt
            };
            let mut o = ours::ping_pong_runner(seed, side)?;
            let mut p = peer::ping_pong_runner(side)?;
            compare(plan, &mut o, &mut p)?
        }
    };
    Ok(Row {
        op: op.name().into(),
        ours: o,
        peer: p,
    })
}

/// Which half of a ping-pong exchange is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timed {
    Encrypt,
    Decrypt,
}

fn capacity(n: u64) -> Result<usize> {
    Ok(usize::try_from(n)?)
}

/// Our protocol.
mod ours {
    use super::*;

    fn ctx() -> DakeContext {
        DakeContext {
            room: "room@conference.localhost".into(),
            initiator: "room@conference.localhost/alice-occupant".into(),
            responder: "room@conference.localhost/bob-occupant".into(),
        }
    }

    fn handshake(
        rng: &mut ChaCha20Rng,
        alice: &Identity,
        bob: &Identity,
    ) -> Result<(Session, Session)> {
        let (wait_r, m1) = dake::initiate(rng, alice, ctx(), None)?;
        let (wait_i, m2) = dake::respond(rng, bob, ctx(), &m1, NOW)?;
        let (a, m3) = wait_r.handle_auth_r(rng, alice, &m2, NOW)?;
        let b = wait_i.handle_auth_i(bob, &m3)?;
        Ok((a, b))
    }

    fn expect_text(event: Option<SessionEvent>) -> Result<()> {
        match event {
            Some(SessionEvent::Text(t)) if t == TEXT => Ok(()),
            other => bail!("ours decrypted to {other:?}"),
        }
    }

    /// Two sessions after a handshake and one round trip, so both have sent and received
    /// and Alice's next message starts a new DH ratchet step.
    pub(super) struct Pair {
        pub(super) rng: ChaCha20Rng,
        pub(super) a: Session,
        pub(super) b: Session,
    }

    pub(super) fn established(seed: u64) -> Result<Pair> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let alice = Identity::generate(&mut rng, NOW);
        let bob = Identity::generate(&mut rng, NOW);
        let (mut a, mut b) = handshake(&mut rng, &alice, &bob)?;
        let m = a.send_text(&mut rng, TEXT)?;
        expect_text(b.handle_data(&mut rng, &m)?)?;
        let r = b.send_text(&mut rng, TEXT)?;
        expect_text(a.handle_data(&mut rng, &r)?)?;
        Ok(Pair { rng, a, b })
    }

    /// Alice has opened a chain and Bob has received its first message: from here on,
    /// Alice's messages stay on that chain.
    fn on_one_chain(seed: u64) -> Result<Pair> {
        let mut p = established(seed)?;
        let m = p.a.send_text(&mut p.rng, TEXT)?;
        ensure!(
            m.header.index == 0,
            "expected the first message of a new chain"
        );
        expect_text(p.b.handle_data(&mut p.rng, &m)?)?;
        Ok(p)
    }

    fn check_same_chain(msgs: &[DataMessage], next_index: &mut u32) -> Result<()> {
        for m in msgs {
            ensure!(
                m.header.index == *next_index,
                "ours left the chain (index {})",
                m.header.index
            );
            *next_index = next_index.wrapping_add(1);
        }
        Ok(())
    }

    pub(super) fn handshake_runner(seed: u64) -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let alice = Identity::generate(&mut rng, NOW);
        let bob = Identity::generate(&mut rng, NOW);
        Ok(move |n: u64| {
            let contexts: Vec<(DakeContext, DakeContext)> =
                (0..n).map(|_| (ctx(), ctx())).collect();
            let mut done = Vec::with_capacity(capacity(n)?);
            let start = Instant::now();
            for (ctx_i, ctx_r) in contexts {
                let (wait_r, m1) = dake::initiate(&mut rng, &alice, ctx_i, None)?;
                let (wait_i, m2) = dake::respond(&mut rng, &bob, ctx_r, &m1, NOW)?;
                let (a, m3) = wait_r.handle_auth_r(&mut rng, &alice, &m2, NOW)?;
                let b = wait_i.handle_auth_i(&bob, &m3)?;
                done.push((a, b));
            }
            let took = start.elapsed();
            for (a, b) in &done {
                ensure!(a.session_id() == b.session_id(), "ours: session ids differ");
            }
            drop(black_box(done));
            Ok(took)
        })
    }

    pub(super) fn encrypt_same_chain_runner(
        seed: u64,
    ) -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut p = on_one_chain(seed)?;
        let mut next_index = 1u32;
        Ok(move |n: u64| {
            let mut out = Vec::with_capacity(capacity(n)?);
            let start = Instant::now();
            for _ in 0..n {
                out.push(p.a.send_text(&mut p.rng, TEXT)?);
            }
            let took = start.elapsed();
            check_same_chain(&out, &mut next_index)?;
            drop(black_box(out));
            Ok(took)
        })
    }

    pub(super) fn decrypt_same_chain_runner(
        seed: u64,
    ) -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut p = on_one_chain(seed)?;
        let mut next_index = 1u32;
        Ok(move |n: u64| {
            let msgs = (0..n)
                .map(|_| p.a.send_text(&mut p.rng, TEXT))
                .collect::<Result<Vec<_>, _>>()?;
            check_same_chain(&msgs, &mut next_index)?;
            let mut out = Vec::with_capacity(msgs.len());
            let start = Instant::now();
            for m in &msgs {
                out.push(p.b.handle_data(&mut p.rng, m)?);
            }
            let took = start.elapsed();
            for event in out {
                expect_text(event)?;
            }
            Ok(took)
        })
    }

    pub(super) fn ping_pong_runner(
        seed: u64,
        timed: Timed,
    ) -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut p = established(seed)?;
        let mut alice_sends = true;
        Ok(move |n: u64| {
            let mut took = Duration::ZERO;
            for _ in 0..n {
                let (sender, receiver) = if alice_sends {
                    (&mut p.a, &mut p.b)
                } else {
                    (&mut p.b, &mut p.a)
                };
                let start = Instant::now();
                let m = sender.send_text(&mut p.rng, TEXT)?;
                let enc = start.elapsed();
                ensure!(m.header.index == 0, "ours: message without a DH step");
                let start = Instant::now();
                let event = receiver.handle_data(&mut p.rng, &m)?;
                let dec = start.elapsed();
                expect_text(event)?;
                took += match timed {
                    Timed::Encrypt => enc,
                    Timed::Decrypt => dec,
                };
                alice_sends = !alice_sends;
            }
            Ok(took)
        })
    }
}

/// vodozemac's Olm.
mod peer {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig::version_1()
    }

    /// Most one-time keys made and used per chunk (an account keeps at most 5000).
    const OTK_CHUNK: u64 = 1000;

    fn expect_text(plaintext: &[u8]) -> Result<()> {
        ensure!(
            plaintext == TEXT.as_bytes(),
            "olm decrypted to something else"
        );
        Ok(())
    }

    fn normal(msg: &OlmMessage) -> Result<&vodozemac::olm::Message> {
        match msg {
            OlmMessage::Normal(m) => Ok(m),
            OlmMessage::PreKey(_) => bail!("olm: expected a normal message"),
        }
    }

    pub(super) struct Pair {
        pub(super) a: OlmSession,
        pub(super) b: OlmSession,
    }

    /// Two sessions after session creation and one round trip (Alice's pre-key message,
    /// Bob's reply), so both send normal messages and Alice's next one starts a DH step.
    pub(super) fn established() -> Result<Pair> {
        let alice = Account::new();
        let mut bob = Account::new();
        let otk = first_key(&bob.generate_one_time_keys(1).created)?;
        bob.mark_keys_as_published();
        let mut a = alice.create_outbound_session(config(), bob.curve25519_key(), otk)?;
        let OlmMessage::PreKey(pre) = a.encrypt(TEXT)? else {
            bail!("olm: expected a pre-key message");
        };
        let created = bob.create_inbound_session(config(), alice.curve25519_key(), &pre)?;
        expect_text(&created.plaintext)?;
        let mut b = created.session;
        let reply = b.encrypt(TEXT)?;
        expect_text(&a.decrypt(&reply)?)?;
        Ok(Pair { a, b })
    }

    fn first_key(keys: &[Curve25519PublicKey]) -> Result<Curve25519PublicKey> {
        keys.first().copied().context("olm: no one-time key made")
    }

    fn on_one_chain() -> Result<Pair> {
        let mut p = established()?;
        let m = p.a.encrypt(TEXT)?;
        ensure!(
            normal(&m)?.chain_index() == 0,
            "expected the first message of a new chain"
        );
        expect_text(&p.b.decrypt(&m)?)?;
        Ok(p)
    }

    fn check_same_chain(msgs: &[OlmMessage], next_index: &mut u64) -> Result<()> {
        for m in msgs {
            let index = normal(m)?.chain_index();
            ensure!(index == *next_index, "olm left the chain (index {index})");
            *next_index += 1;
        }
        Ok(())
    }

    pub(super) fn handshake_runner() -> impl FnMut(u64) -> Result<Duration> {
        let alice = Account::new();
        let mut bob = Account::new();
        let alice_key = alice.curve25519_key();
        let bob_key = bob.curve25519_key();
        move |n: u64| {
            let mut took = Duration::ZERO;
            let mut left = n;
            while left > 0 {
                let chunk = left.min(OTK_CHUNK);
                left -= chunk;
                let keys = bob.generate_one_time_keys(capacity(chunk)?).created;
                bob.mark_keys_as_published();
                let mut done = Vec::with_capacity(keys.len());
                let start = Instant::now();
                for otk in keys {
                    let mut a = alice.create_outbound_session(config(), bob_key, otk)?;
                    let OlmMessage::PreKey(pre) = a.encrypt(TEXT)? else {
                        bail!("olm: expected a pre-key message");
                    };
                    let created = bob.create_inbound_session(config(), alice_key, &pre)?;
                    done.push((a, created));
                }
                took += start.elapsed();
                for (a, created) in &done {
                    expect_text(&created.plaintext)?;
                    ensure!(
                        a.session_id() == created.session.session_id(),
                        "olm: ids differ"
                    );
                }
                drop(black_box(done));
            }
            Ok(took)
        }
    }

    pub(super) fn encrypt_same_chain_runner() -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut p = on_one_chain()?;
        let mut next_index = 1u64;
        Ok(move |n: u64| {
            let mut out = Vec::with_capacity(capacity(n)?);
            let start = Instant::now();
            for _ in 0..n {
                out.push(p.a.encrypt(TEXT)?);
            }
            let took = start.elapsed();
            check_same_chain(&out, &mut next_index)?;
            drop(black_box(out));
            Ok(took)
        })
    }

    pub(super) fn decrypt_same_chain_runner() -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut p = on_one_chain()?;
        let mut next_index = 1u64;
        Ok(move |n: u64| {
            let msgs = (0..n)
                .map(|_| p.a.encrypt(TEXT))
                .collect::<Result<Vec<_>, _>>()?;
            check_same_chain(&msgs, &mut next_index)?;
            let mut out = Vec::with_capacity(msgs.len());
            let start = Instant::now();
            for m in &msgs {
                out.push(p.b.decrypt(m)?);
            }
            let took = start.elapsed();
            for plaintext in &out {
                expect_text(plaintext)?;
            }
            Ok(took)
        })
    }

    pub(super) fn ping_pong_runner(timed: Timed) -> Result<impl FnMut(u64) -> Result<Duration>> {
        let mut p = established()?;
        let mut alice_sends = true;
        Ok(move |n: u64| {
            let mut took = Duration::ZERO;
            for _ in 0..n {
                let (sender, receiver) = if alice_sends {
                    (&mut p.a, &mut p.b)
                } else {
                    (&mut p.b, &mut p.a)
                };
                let start = Instant::now();
                let m = sender.encrypt(TEXT)?;
                let enc = start.elapsed();
                ensure!(
                    normal(&m)?.chain_index() == 0,
                    "olm: message without a DH step"
                );
                let start = Instant::now();
                let plaintext = receiver.decrypt(&m)?;
                let dec = start.elapsed();
                expect_text(&plaintext)?;
                took += match timed {
                    Timed::Encrypt => enc,
                    Timed::Decrypt => dec,
                };
                alice_sends = !alice_sends;
            }
            Ok(took)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_runs_and_reports() {
        let args = Args {
            measure: MeasureArgs {
                json: true,
                batches: 1,
                batch_ms: 1,
            },
            ops: Vec::new(),
            seed: 3,
        };
        let report = measure(&args).unwrap();
        let ops: Vec<&str> = report.rows.iter().map(|r| r.op.as_str()).collect();
        assert_eq!(ops, Op::ALL.map(Op::name));
        for line in report.json_lines().unwrap() {
            assert!(line.starts_with(r#"{"suite":"pairwise","op":""#), "{line}");
            assert!(line.contains(r#","peer":"vodozemac-olm","#), "{line}");
        }
    }
}
