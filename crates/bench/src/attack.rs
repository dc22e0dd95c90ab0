//! The `attack` suite: what a hostile member, or the server, can make one member of a room
//! pay, against an honest message measured in the same run (issue 14). One row per
//! finding; the relay's rows (6 to 9) are in [`crate::attack_relay`], the hostile
//! server's (10) in [`crate::attack_server`].
//!
//! Ops are named as in the output (`--op early_data`).
//!
//! | op | the attack on the target | honest message (`peer_ns`) |
//! | --- | --- | --- |
//! | `early_data` | `--occupants` hostile occupants each get an Identity answered, then send largest data messages (131 KB) before any session exists | a 1 KiB private text on an established session |
//! | `skipped_key_eviction` | an insider's group messages, each skipping `GROUP_MAX_SKIP` keys of its chain once the skipped-key store is full | a 1 KiB group text, in order |
//! | `forged_pairwise` | a forged data message on the current receiving chain, as far ahead as `MAX_SKIP` allows, replayed | a 1 KiB private text |
//! | `forged_pairwise_new_key` | forged data messages, each with a fresh ratchet key and index `MAX_SKIP` | a 1 KiB private text |
//! | `unknown_epoch_buffer` | hostile occupants send largest group messages (135 KB) for epochs nobody knows | a 1 KiB group text, in order |
//! | `identity_replay` | one occupant's 64 captured Identity messages, replayed in turn | a 1 KiB private text |
//! | `raw_connections`, `slow_bosh_body`, `stalled_reader_outbox`, `ipv6_per_address` | see [`crate::attack_relay`]: `ns_per_message` is an honest round trip on the attacked relay | the same round trip on a quiet relay |
//! | `made_up_occupants` | see [`crate::attack_server`]: a server reports 2,048 occupants that do not exist, then more; per presence | a 1 KiB room message through the same connection |
//!
//! Figures: `retained_bytes` is what the attack made the target hold
//! ([`Room::retained`], payload bytes) once the attack filled what it can;
//! `retained_after_timers_bytes` the same after the target's timers ran, as
//! [`Room::poll_timeout`] asks, until 60 s later; `ns_per_message` the target's CPU per
//! attack message from then on, measured as in every suite (calibrated batches alternating
//! with the honest side, median); `reply_bytes_per_message` what the target sent back per
//! attack message. Rooms are driven in memory, rekeying off (as in `group`).

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cryptocat_protocol::dake::{self, DakeContext};
use cryptocat_protocol::group::wire::{GroupMessage, MAC_BYTES, MAX_GROUP_CIPHERTEXT, MAX_MEMBERS};
use cryptocat_protocol::group::{Room, GROUP_MAX_SKIP};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::message::{kind, DataHeader, DataMessage, Message, MAX_CIPHERTEXT_BYTES};
use cryptocat_protocol::ratchet::MAX_SKIP;
use cryptocat_protocol::{InstanceTag, Timestamp};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use crate::group::{Sim, NOW, ROOM};
use crate::measure::{compare, ratio, Estimate, MeasureArgs, Plan};

/// Suite name in the output.
pub const SUITE: &str = "attack";

/// Largest data messages each hostile occupant sends in the fill phase of `early_data`.
const EARLY_PER_OCCUPANT: usize = 40;
/// Group messages for unknown epochs sent in the fill phase of `unknown_epoch_buffer`.
const UNKNOWN_EPOCH_MESSAGES: usize = 2_048;
/// Distinct captured Identity messages replayed by `identity_replay`.
const IDENTITY_POOL: usize = 64;
/// How far the target's timers are run after the fill.
const TIMERS_MS: u64 = 60_000;

/// One finding of the issue, measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Op {
    /// Data messages kept for occupants with no session.
    EarlyData,
    /// Evicting skipped group message keys.
    SkippedKeyEviction,
    /// A forged pairwise message far ahead on the current chain, replayed.
    ForgedPairwise,
    /// Forged pairwise messages with fresh ratchet keys.
    ForgedPairwiseNewKey,
    /// Group messages for unknown epochs.
    UnknownEpochBuffer,
    /// Captured Identity messages replayed.
    IdentityReplay,
    /// Relay: raw connections to the HTTP listener that send nothing (row 6).
    RawConnections,
    /// Relay: BOSH request bodies that stop short (row 7).
    SlowBoshBody,
    /// Relay: a room member that stops reading (row 8).
    StalledReaderOutbox,
    /// Relay: sessions from many addresses of one IPv6 /64 (row 9).
    Ipv6PerAddress,
    /// Server: occupants that do not exist, reported to a client (row 10).
    MadeUpOccupants,
}

impl Op {
    /// Every op, in the order of the issue.
    pub const ALL: [Op; 11] = [
        Op::EarlyData,
        Op::SkippedKeyEviction,
        Op::ForgedPairwise,
        Op::ForgedPairwiseNewKey,
        Op::UnknownEpochBuffer,
        Op::IdentityReplay,
        Op::RawConnections,
        Op::SlowBoshBody,
        Op::StalledReaderOutbox,
        Op::Ipv6PerAddress,
        Op::MadeUpOccupants,
    ];

    /// Whether the op attacks the relay (measured by [`crate::attack_relay`]).
    pub fn is_relay(self) -> bool {
        matches!(
            self,
            Op::RawConnections | Op::SlowBoshBody | Op::StalledReaderOutbox | Op::Ipv6PerAddress
        )
    }

    /// The stable name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Op::EarlyData => "early_data",
            Op::SkippedKeyEviction => "skipped_key_eviction",
            Op::ForgedPairwise => "forged_pairwise",
            Op::ForgedPairwiseNewKey => "forged_pairwise_new_key",
            Op::UnknownEpochBuffer => "unknown_epoch_buffer",
            Op::IdentityReplay => "identity_replay",
            Op::RawConnections => "raw_connections",
            Op::SlowBoshBody => "slow_bosh_body",
            Op::StalledReaderOutbox => "stalled_reader_outbox",
            Op::Ipv6PerAddress => "ipv6_per_address",
            Op::MadeUpOccupants => "made_up_occupants",
        }
    }
}

/// Options of `attack`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Only these ops (repeatable); every op by default.
    #[arg(long = "op", value_enum)]
    pub ops: Vec<Op>,
    /// Hostile occupants in the memory attacks (a room tracks at most 255 others; one is
    /// the honest peer).
    #[arg(long, default_value_t = 254, value_parser = clap::value_parser!(u16).range(1..=254))]
    pub occupants: u16,
    /// Seed of our CSPRNG.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One measured finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The op.
    pub op: Op,
    /// What the attack made the target hold, in bytes.
    pub retained_bytes: usize,
    /// The same after the target's timers ran (for the memory attacks).
    pub retained_after_timers_bytes: Option<usize>,
    /// What the target sent back per attack message, in bytes (when it answers).
    pub reply_bytes_per_message: Option<u64>,
    /// Connections or sessions the relay holds because of the attack (relay ops).
    pub retained_connections: Option<usize>,
    /// The same once the relay's deadlines could run.
    pub retained_connections_after_timers: Option<usize>,
    /// The target's time per attack message.
    pub attack: Estimate,
    /// The target's time per honest message.
    pub honest: Estimate,
}

/// One JSON line, keys in this order.
#[derive(Debug, Serialize)]
struct Line<'a> {
    suite: &'a str,
    op: &'a str,
    retained_bytes: u64,
    ns_per_message: u64,
    peer_ns: u64,
    ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retained_after_timers_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_bytes_per_message: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retained_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retained_connections_after_timers: Option<u64>,
}

#[allow(clippy::cast_possible_truncation)] // positive, far below 2^53
fn round_ns(ns: f64) -> u64 {
    ns.round().max(0.0) as u64
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Finding {
    fn line(&self) -> Result<String> {
        let ns = round_ns(self.attack.median_ns());
        let peer_ns = round_ns(self.honest.median_ns());
        Ok(serde_json::to_string(&Line {
            suite: SUITE,
            op: self.op.name(),
            retained_bytes: to_u64(self.retained_bytes),
            ns_per_message: ns,
            peer_ns,
            ratio: ratio(ns, peer_ns),
            retained_after_timers_bytes: self.retained_after_timers_bytes.map(to_u64),
            reply_bytes_per_message: self.reply_bytes_per_message,
            retained_connections: self.retained_connections.map(to_u64),
            retained_connections_after_timers: self.retained_connections_after_timers.map(to_u64),
        })?)
    }
}

/// A readable table of findings.
pub fn table(findings: &[Finding]) -> String {
    let mut out = String::from(
        "suite attack: the target's cost per attack message, against an honest message\n",
    );
    out.push_str(&format!(
        "{:<24} {:>13} {:>13} {:>12} {:>7} {:>10} {:>7} {:>9} {:>8} {:>13}\n",
        "op",
        "retained B",
        "after timers",
        "ns/msg",
        "±",
        "honest ns",
        "±",
        "ratio",
        "reply B",
        "conns (after)"
    ));
    for f in findings {
        let ns = round_ns(f.attack.median_ns());
        let peer_ns = round_ns(f.honest.median_ns());
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        out.push_str(&format!(
            "{:<24} {:>13} {:>13} {:>12} {:>6.1}% {:>10} {:>6.1}% {:>9.3} {:>8} {:>13}\n",
            f.op.name(),
            f.retained_bytes,
            opt(f.retained_after_timers_bytes.map(to_u64)),
            ns,
            f.attack.spread() * 100.0,
            peer_ns,
            f.honest.spread() * 100.0,
            ratio(ns, peer_ns),
            opt(f.reply_bytes_per_message),
            match (f.retained_connections, f.retained_connections_after_timers) {
                (Some(n), Some(m)) => format!("{n} ({m})"),
                (Some(n), None) => n.to_string(),
                _ => "-".to_owned(),
            },
        ));
    }
    out.push_str(
        "(retained: what the target holds once the attack filled what it can; after timers: \
         once its timers ran to 60 s later; median of the timed batches; relay ops: ns/msg is \
         an honest round trip on the attacked relay, honest ns on a quiet one)\n",
    );
    out
}

/// Runs the suite and prints its findings.
pub fn run(args: &Args) -> Result<()> {
    let ops: Vec<Op> = if args.ops.is_empty() {
        Op::ALL.to_vec()
    } else {
        args.ops.clone()
    };
    let mut findings = Vec::new();
    for op in ops {
        eprintln!("{SUITE}: {}", op.name());
        let f = measure(args, op)?;
        if args.measure.json {
            println!("{}", f.line()?);
        }
        findings.push(f);
    }
    if !args.measure.json {
        print!("{}", table(&findings));
    }
    Ok(())
}

/// Measures one op.
pub fn measure(args: &Args, op: Op) -> Result<Finding> {
    let plan = args.measure.plan();
    if op.is_relay() {
        return crate::attack_relay::measure(op, plan, &crate::attack_relay::Sizes::FULL);
    }
    match op {
        Op::EarlyData => early_data(args, plan),
        Op::SkippedKeyEviction => skipped_key_eviction(args, plan),
        Op::ForgedPairwise => forged_pairwise(args, plan, false),
        Op::ForgedPairwiseNewKey => forged_pairwise(args, plan, true),
        Op::UnknownEpochBuffer => unknown_epoch_buffer(args, plan),
        Op::IdentityReplay => identity_replay(args, plan),
        Op::MadeUpOccupants => crate::attack_server::measure(op, plan),
        Op::RawConnections | Op::SlowBoshBody | Op::StalledReaderOutbox | Op::Ipv6PerAddress => {
            bail!("{} is a relay op", op.name())
        }
    }
}

// ---- fixtures --------------------------------------------------------------------------

/// The target is party 0 of the sim, the honest peer party 1.
fn target(sim: &mut Sim) -> Result<&mut (Room, ChaCha20Rng)> {
    sim.parties.first_mut().context("empty room")
}

fn address(sim: &Sim, i: usize) -> Result<String> {
    sim.parties
        .get(i)
        .map(|(r, _)| r.address().to_owned())
        .context("no such party")
}

fn drain(room: &mut Room) {
    while room.poll_transmit().is_some() {}
    while room.poll_event().is_some() {}
}

/// Hostile occupant addresses: they sort before every bound occupant name (`0` comes
/// before the base32 alphabet), so the target answers their Identity messages.
fn hostile_addresses(n: u16) -> Vec<String> {
    (0..n).map(|i| format!("{ROOM}/0hostile{i:03}")).collect()
}

/// Runs the room's timers as a client would: at each deadline `poll_timeout` gives, until
/// `until`.
fn run_timers(room: &mut Room, rng: &mut ChaCha20Rng, until: Timestamp) {
    for _ in 0..100_000 {
        let Some(t) = room.poll_timeout() else { break };
        if t > until {
            break;
        }
        room.handle_timeout(t, rng);
        drain(room);
    }
}

fn text() -> String {
    "x".repeat(1024)
}

/// `k` private texts from the honest peer (party 1) to the target (party 0); only the
/// target's work is timed. Returns the time and the last message sent.
fn honest_private(sim: &mut Sim, k: u64) -> Result<(Duration, Option<DataMessage>)> {
    let text = text();
    let to = address(sim, 0)?;
    let from = address(sim, 1)?;
    let mut payloads = Vec::new();
    {
        let (peer, rng) = sim.parties.get_mut(1).context("room of one")?;
        for _ in 0..k {
            peer.send_private_text(rng, &to, &text)?;
            while let Some(t) = peer.poll_transmit() {
                payloads.push(t.payload);
            }
        }
    }
    let (room, rng) = target(sim)?;
    let t0 = Instant::now();
    for p in &payloads {
        room.handle_private(NOW, rng, &from, p)?;
        while room.poll_event().is_some() {}
    }
    let took = t0.elapsed();
    drain(room);
    let last = match payloads.last().map(|p| Message::decode(p)) {
        Some(Ok(Message::Data(m))) => Some(m),
        _ => None,
    };
    Ok((took, last))
}

/// `k` group texts from the honest peer to the target, in order; only the target's work
/// is timed.
fn honest_group(sim: &mut Sim, k: u64) -> Result<Duration> {
    let text = text();
    let from = address(sim, 1)?;
    let mut payloads = Vec::new();
    {
        let (peer, _) = sim.parties.get_mut(1).context("room of one")?;
        for _ in 0..k {
            peer.send_text(NOW, &text)?;
            while let Some(t) = peer.poll_transmit() {
                payloads.push(t.payload);
            }
            while peer.poll_event().is_some() {}
        }
    }
    let (room, rng) = target(sim)?;
    let t0 = Instant::now();
    for p in &payloads {
        room.handle_group(NOW, rng, &from, p)?;
        while room.poll_event().is_some() {}
    }
    let took = t0.elapsed();
    drain(room);
    Ok(took)
}

/// Times `k` payloads from the given occupants (cycled from `next`) into the target.
fn time_payloads(
    room: &mut Room,
    rng: &mut ChaCha20Rng,
    private: bool,
    from_and_payload: &[(String, Vec<u8>)],
    next: &mut usize,
    k: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..k {
        let Some((from, p)) = from_and_payload.get(*next % from_and_payload.len().max(1)) else {
            break;
        };
        *next += 1;
        let t0 = Instant::now();
        let r = if private {
            room.handle_private(NOW, rng, from, p)
        } else {
            room.handle_group(NOW, rng, from, p)
        };
        total += t0.elapsed();
        black_box(r.ok());
        drain(room);
    }
    total
}

// ---- the attacks -----------------------------------------------------------------------

fn early_data(args: &Args, plan: Plan) -> Result<Finding> {
    let mut sim = Sim::settled(2, args.seed)?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0xea71);
    let attacker = Identity::generate(&mut rng, NOW);
    let target_addr = address(&sim, 0)?;
    let occupants = hostile_addresses(args.occupants);
    let mut flood = Vec::new();
    {
        let (room, trng) = target(&mut sim)?;
        for (i, a) in occupants.iter().enumerate() {
            room.member_present(NOW, trng, a);
            // Its best move: have its Identity answered, so the target waits for Auth-I.
            let ctx = DakeContext {
                room: ROOM.into(),
                initiator: a.clone(),
                responder: target_addr.clone(),
            };
            let (_, msg) = dake::initiate(&mut rng, &attacker, ctx, None)?;
            room.handle_private(NOW, trng, a, &Message::Identity(msg).encode())?;
            drain(room);
            let tag = InstanceTag(0x1000 + u32::try_from(i)?);
            let data = Message::Data(DataMessage {
                sender: tag,
                receiver: tag,
                header: DataHeader {
                    ratchet_key: [7; 32],
                    previous_chain_length: 0,
                    index: 0,
                },
                ciphertext: vec![0x5a; MAX_CIPHERTEXT_BYTES],
            });
            flood.push((a.clone(), data.encode()));
        }
    }
    let (room, trng) = target(&mut sim)?;
    let before = room.retained().total_bytes();
    let mut next = 0;
    let per_round = to_u64(flood.len());
    for _ in 0..EARLY_PER_OCCUPANT {
        time_payloads(room, trng, true, &flood, &mut next, per_round);
    }
    let retained = room.retained().total_bytes().saturating_sub(before);
    let sim = RefCell::new(sim);
    let (attack, honest) = compare(
        plan,
        &mut |k| {
            let mut sim = sim.borrow_mut();
            let (room, trng) = target(&mut sim)?;
            Ok(time_payloads(room, trng, true, &flood, &mut next, k))
        },
        &mut |k| Ok(honest_private(&mut sim.borrow_mut(), k)?.0),
    )?;
    let mut sim = sim.into_inner();
    let (room, trng) = target(&mut sim)?;
    run_timers(room, trng, NOW.plus_millis(TIMERS_MS));
    let later = room.retained().total_bytes().saturating_sub(before);
    Ok(Finding {
        op: Op::EarlyData,
        retained_bytes: retained,
        retained_after_timers_bytes: Some(later),
        reply_bytes_per_message: None,
        retained_connections: None,
        retained_connections_after_timers: None,
        attack,
        honest,
    })
}

/// The insider (party 2) sends `GROUP_MAX_SKIP + 1` messages; the last is returned (only
/// it reaches the target).
fn insider_skipping(sim: &mut Sim) -> Result<Vec<u8>> {
    let (room, _) = sim.parties.get_mut(2).context("no insider")?;
    let mut last = None;
    for _ in 0..=GROUP_MAX_SKIP {
        room.send_text(NOW, "x")?;
        while let Some(t) = room.poll_transmit() {
            last = Some(t.payload);
        }
        while room.poll_event().is_some() {}
    }
    last.context("the insider sent nothing")
}

fn skipped_key_eviction(args: &Args, plan: Plan) -> Result<Finding> {
    let mut sim = Sim::settled(3, args.seed)?;
    let insider = address(&sim, 2)?;
    let first = insider_skipping(&mut sim)?;
    let before = target(&mut sim)?.0.retained().total_bytes();
    {
        let (room, rng) = target(&mut sim)?;
        room.handle_group(NOW, rng, &insider, &first)?;
        drain(room);
    }
    let retained = target(&mut sim)?
        .0
        .retained()
        .total_bytes()
        .saturating_sub(before);
    let sim = RefCell::new(sim);
    let (attack, honest) = compare(
        plan,
        &mut |k| {
            let mut sim = sim.borrow_mut();
            let mut total = Duration::ZERO;
            for _ in 0..k {
                let p = insider_skipping(&mut sim)?;
                let (room, rng) = target(&mut sim)?;
                let t0 = Instant::now();
                let r = room.handle_group(NOW, rng, &insider, &p);
                total += t0.elapsed();
                r?;
                drain(room);
            }
            Ok(total)
        },
        &mut |k| honest_group(&mut sim.borrow_mut(), k),
    )?;
    Ok(Finding {
        op: Op::SkippedKeyEviction,
        retained_bytes: retained,
        retained_after_timers_bytes: None,
        reply_bytes_per_message: None,
        retained_connections: None,
        retained_connections_after_timers: None,
        attack,
        honest,
    })
}

fn forged_pairwise(args: &Args, plan: Plan, new_key: bool) -> Result<Finding> {
    let mut sim = Sim::settled(2, args.seed)?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0xf0e6);
    let peer = address(&sim, 1)?;
    let (_, last) = honest_private(&mut sim, 1)?;
    let last = RefCell::new(last.context("no honest message")?);
    let before = target(&mut sim)?.0.retained().total_bytes();
    let sim = RefCell::new(sim);
    let forge = |rng: &mut ChaCha20Rng| -> Vec<u8> {
        let mut m = last.borrow().clone();
        let next = m.header.index.saturating_add(1);
        if new_key {
            let secret = x25519_dalek::StaticSecret::random_from_rng(&mut *rng);
            m.header = DataHeader {
                ratchet_key: x25519_dalek::PublicKey::from(&secret).to_bytes(),
                previous_chain_length: next,
                index: MAX_SKIP,
            };
        } else {
            m.header.index = next.saturating_add(MAX_SKIP);
        }
        let mut ct = vec![0u8; 64];
        rng.fill_bytes(&mut ct);
        m.ciphertext = ct;
        Message::Data(m).encode()
    };
    let (attack, honest) = compare(
        plan,
        &mut |k| {
            // One forgery replayed (same chain), or a fresh one per message (new key).
            let mut forged = vec![forge(&mut rng)];
            if new_key {
                forged = (0..k).map(|_| forge(&mut rng)).collect();
            }
            let mut sim = sim.borrow_mut();
            let (room, trng) = target(&mut sim)?;
            let t0 = Instant::now();
            for i in 0..k {
                let p = forged
                    .get(usize::try_from(i)?)
                    .or(forged.first())
                    .context("no forgery")?;
                if room.handle_private(NOW, trng, &peer, p).is_ok() {
                    bail!("a forged message was accepted");
                }
            }
            let took = t0.elapsed();
            drain(room);
            Ok(took)
        },
        &mut |k| {
            let (took, sent) = honest_private(&mut sim.borrow_mut(), k)?;
            if let Some(m) = sent {
                *last.borrow_mut() = m;
            }
            Ok(took)
        },
    )?;
    let mut sim = sim.into_inner();
    let retained = target(&mut sim)?
        .0
        .retained()
        .total_bytes()
        .saturating_sub(before);
    Ok(Finding {
        op: if new_key {
            Op::ForgedPairwiseNewKey
        } else {
            Op::ForgedPairwise
        },
        retained_bytes: retained,
        retained_after_timers_bytes: None,
        reply_bytes_per_message: None,
        retained_connections: None,
        retained_connections_after_timers: None,
        attack,
        honest,
    })
}

fn unknown_epoch_buffer(args: &Args, plan: Plan) -> Result<Finding> {
    let mut sim = Sim::settled(2, args.seed)?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0xb0ff);
    let occupants = hostile_addresses(args.occupants);
    let mut flood = Vec::new();
    {
        let (room, trng) = target(&mut sim)?;
        for a in &occupants {
            room.member_present(NOW, trng, a);
            let mut epoch = [0u8; 16];
            rng.fill_bytes(&mut epoch);
            let msg = GroupMessage {
                epoch,
                sender: 0,
                index: 0,
                prev_hash: [0; 32],
                ciphertext: vec![0x33; MAX_GROUP_CIPHERTEXT],
                macs: vec![[0; MAC_BYTES]; MAX_MEMBERS - 1],
            };
            flood.push((a.clone(), msg.encode()));
        }
        drain(room);
    }
    let (room, trng) = target(&mut sim)?;
    let before = room.retained().total_bytes();
    let mut next = 0;
    time_payloads(
        room,
        trng,
        false,
        &flood,
        &mut next,
        to_u64(UNKNOWN_EPOCH_MESSAGES),
    );
    let retained = room.retained().total_bytes().saturating_sub(before);
    let sim = RefCell::new(sim);
    let (attack, honest) = compare(
        plan,
        &mut |k| {
            let mut sim = sim.borrow_mut();
            let (room, trng) = target(&mut sim)?;
            Ok(time_payloads(room, trng, false, &flood, &mut next, k))
        },
        &mut |k| honest_group(&mut sim.borrow_mut(), k),
    )?;
    let mut sim = sim.into_inner();
    let (room, trng) = target(&mut sim)?;
    run_timers(room, trng, NOW.plus_millis(TIMERS_MS));
    let later = room.retained().total_bytes().saturating_sub(before);
    Ok(Finding {
        op: Op::UnknownEpochBuffer,
        retained_bytes: retained,
        retained_after_timers_bytes: Some(later),
        reply_bytes_per_message: None,
        retained_connections: None,
        retained_connections_after_timers: None,
        attack,
        honest,
    })
}

fn identity_replay(args: &Args, plan: Plan) -> Result<Finding> {
    let mut sim = Sim::settled(2, args.seed)?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0x1de7);
    let attacker = Identity::generate(&mut rng, NOW);
    let target_addr = address(&sim, 0)?;
    let hostile = hostile_addresses(1)
        .into_iter()
        .next()
        .context("no address")?;
    let mut pool = Vec::new();
    for _ in 0..IDENTITY_POOL {
        let ctx = DakeContext {
            room: ROOM.into(),
            initiator: hostile.clone(),
            responder: target_addr.clone(),
        };
        let (_, msg) = dake::initiate(&mut rng, &attacker, ctx, None)?;
        pool.push((hostile.clone(), Message::Identity(msg).encode()));
    }
    let (room, trng) = target(&mut sim)?;
    room.member_present(NOW, trng, &hostile);
    drain(room);
    let before = room.retained().total_bytes();
    // Fill: the pool twice, counting the Auth-R bytes the target sends back.
    let mut reply_bytes = 0usize;
    for (from, p) in pool.iter().chain(pool.iter()) {
        let _ = room.handle_private(NOW, trng, from, p);
        while let Some(t) = room.poll_transmit() {
            if t.payload.get(1) == Some(&kind::AUTH_R) {
                reply_bytes += t.payload.len();
            }
        }
        while room.poll_event().is_some() {}
    }
    let retained = room.retained().total_bytes().saturating_sub(before);
    let mut next = 0;
    let sim = RefCell::new(sim);
    let (attack, honest) = compare(
        plan,
        &mut |k| {
            let mut sim = sim.borrow_mut();
            let (room, trng) = target(&mut sim)?;
            Ok(time_payloads(room, trng, true, &pool, &mut next, k))
        },
        &mut |k| Ok(honest_private(&mut sim.borrow_mut(), k)?.0),
    )?;
    Ok(Finding {
        op: Op::IdentityReplay,
        retained_bytes: retained,
        retained_after_timers_bytes: None,
        reply_bytes_per_message: Some(to_u64(reply_bytes) / to_u64(2 * IDENTITY_POOL)),
        retained_connections: None,
        retained_connections_after_timers: None,
        attack,
        honest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op runs and prints a line with the contract's keys.
    #[test]
    fn smoke_run_prints_every_op() {
        let args = Args {
            measure: MeasureArgs {
                json: true,
                batches: 1,
                batch_ms: 1,
            },
            ops: Vec::new(),
            occupants: 3,
            seed: 5,
        };
        let small = crate::attack_relay::Sizes {
            raw_addresses: 1,
            raw_per_address: 3,
            raw_wait: Duration::ZERO,
            slow_addresses: 1,
            slow_per_address: 2,
            slow_sent: 1024,
            slow_wait: Duration::ZERO,
            flood_messages: 3,
            flood_wait: Duration::ZERO,
            v6_sessions: 3,
        };
        for op in Op::ALL {
            let f = if op.is_relay() {
                crate::attack_relay::measure(op, args.measure.plan(), &small).unwrap()
            } else {
                measure(&args, op).unwrap()
            };
            let line = f.line().unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            for key in [
                "suite",
                "op",
                "retained_bytes",
                "ns_per_message",
                "peer_ns",
                "ratio",
            ] {
                assert!(v.get(key).is_some(), "{key} missing in {line}");
            }
            assert_eq!(v["suite"], "attack");
            assert_eq!(v["op"], op.name());
            assert!(v["ns_per_message"].as_u64().unwrap() > 0, "{line}");
            assert!(v["peer_ns"].as_u64().unwrap() > 0, "{line}");
            assert!(table(&[f]).contains(op.name()));
        }
    }
}
