//! The `group` suite: our group protocol at N members against vodozemac's Megolm, plus a
//! Cryptocat-2-style reference (one encryption and MAC per recipient), in one process.
//!
//! | op | ours | `vodozemac-megolm` | `cryptocat2-reference` |
//! | --- | --- | --- | --- |
//! | `send` | `Room::send_text` of 1 KiB in an attested epoch of N members (padding, AES-256-GCM, message hash, N-1 origin MACs, encoding) | `GroupSession::encrypt` of 1 KiB (AES-CBC, HMAC, ed25519 signature) | AES-256-GCM of 1 KiB under a separate key for each of the N-1 recipients |
//! | `receive` | `Room::handle_group` of such a message (decode, MAC check, decryption, hash chain, acks) | `InboundGroupSession::decrypt` (signature check, HMAC, AES-CBC) | one AES-256-GCM decryption |
//! | `join` | a newcomer joins a settled room of N: every member's CPU (DAKEs, epoch keys, attestation) until all have the new epoch, divided by N | Matrix-style: the newcomer makes Olm sessions with the N members, each sends it its Megolm session key over Olm, and it sends its own to all; total CPU divided by N | (none) |
//!
//! Rooms are driven in memory (no network); rekeying by message count and time is off so
//! that `send`/`receive` measure the steady state, and `join` measures the rekey.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{bail, ensure, Context, Result};
use cryptocat_protocol::group::{occupant_name, Destination, Room, RoomConfig, RoomEvent};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::Timestamp;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use vodozemac::megolm::{GroupSession, InboundGroupSession, SessionConfig as MegolmConfig};
use vodozemac::olm::{Account, OlmMessage, SessionConfig as OlmConfig};

use crate::measure::{compare, MeasureArgs, Plan, Report, Row};

/// Suite name in the output.
pub const SUITE: &str = "group";
/// The main peer.
pub const PEER: &str = "vodozemac-megolm";
/// The second reference line.
pub const REFERENCE: &str = "cryptocat2-reference";

pub(crate) const NOW: Timestamp = Timestamp(1_764_000_000_000);
pub(crate) const ROOM: &str = "bench@conference.localhost";

/// Options of `group`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Members in the room (repeatable: one report per value).
    #[arg(long = "members", default_values_t = [2usize, 10, 50, 200],
          value_parser = clap::value_parser!(usize))]
    pub members: Vec<usize>,
    /// Skip the `join` op (its set-up is the slow part at large N).
    #[arg(long)]
    pub no_join: bool,
    /// Seed of our CSPRNG.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The 1 KiB text every op sends.
fn text() -> String {
    "x".repeat(1024)
}

/// Runs the suite and prints its reports.
pub fn run(args: &Args) -> Result<()> {
    for &n in &args.members {
        ensure!(
            (2..=256).contains(&n),
            "--members must be between 2 and 256, got {n}"
        );
    }
    for &n in &args.members {
        for report in measure(args, n)? {
            report.print(args.measure.json)?;
        }
    }
    Ok(())
}

/// Runs the suite for `n` members: one report per peer.
pub fn measure(args: &Args, n: usize) -> Result<Vec<Report>> {
    let plan = args.measure.plan();
    eprintln!("{SUITE}: setting up a room of {n}");
    let mut room = Sim::settled(n, args.seed)?;
    eprintln!("{SUITE}: N={n}: send");
    let send = compare(
        plan,
        &mut |k| room.time_sends(k),
        &mut megolm_send_runner()?,
    )?;
    eprintln!("{SUITE}: N={n}: receive");
    let receive = compare(
        plan,
        &mut |k| room.time_receives(k),
        &mut megolm_receive_runner()?,
    )?;
    let mut rows = vec![
        Row {
            op: "send".into(),
            ours: send.0.clone(),
            peer: send.1,
        },
        Row {
            op: "receive".into(),
            ours: receive.0.clone(),
            peer: receive.1,
        },
    ];
    eprintln!("{SUITE}: N={n}: reference");
    let reference_send = compare(
        plan,
        &mut |k| room.time_sends(k),
        &mut reference_send_runner(n),
    )?;
    let reference_receive = compare(
        plan,
        &mut |k| room.time_receives(k),
        &mut reference_receive_runner(),
    )?;
    let reference = vec![
        Row {
            op: "send".into(),
            ours: reference_send.0,
            peer: reference_send.1,
        },
        Row {
            op: "receive".into(),
            ours: reference_receive.0,
            peer: reference_receive.1,
        },
    ];
    if !args.no_join {
        eprintln!("{SUITE}: N={n}: join");
        let join_plan = Plan {
            batches: plan.batches,
            min_batch: Duration::from_millis(1),
        };
        let mut peer = MatrixJoin::new(n)?;
        let join = compare(join_plan, &mut |k| room.time_joins(k), &mut |k| {
            peer.time_joins(k)
        })?;
        rows.push(Row {
            op: "join".into(),
            ours: join.0,
            peer: join.1,
        });
    }
    Ok(vec![
        Report {
            suite: SUITE.into(),
            peer: PEER.into(),
            members: Some(n),
            rows,
        },
        Report {
            suite: SUITE.into(),
            peer: REFERENCE.into(),
            members: Some(n),
            rows: reference,
        },
    ])
}

/// A room of rooms, driven in memory.
pub(crate) struct Sim {
    pub(crate) parties: Vec<(Room, ChaCha20Rng)>,
    next_seed: u64,
}

pub(crate) fn config() -> RoomConfig {
    RoomConfig {
        rekey_after_messages: u32::MAX,
        rekey_after_ms: u64::MAX / 4,
        ..RoomConfig::default()
    }
}

impl Sim {
    pub(crate) fn party(seed: u64, nick: &str) -> Result<(Room, ChaCha20Rng)> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let id = Identity::generate(&mut rng, NOW);
        let addr = format!("{ROOM}/{}", occupant_name(&id.verifying_key()));
        let room = Room::new(id, config(), ROOM, &addr, nick, NOW, &mut rng)?;
        Ok((room, rng))
    }

    pub(crate) fn settled(n: usize, seed: u64) -> Result<Self> {
        let mut sim = Sim {
            parties: Vec::new(),
            next_seed: seed.wrapping_mul(1_000_003),
        };
        for i in 0..n {
            let p = Self::party(sim.seed(), &format!("member{i}"))?;
            sim.present(p);
        }
        sim.settle(None);
        ensure!(sim.attested(), "room of {n} did not settle");
        Ok(sim)
    }

    fn seed(&mut self) -> u64 {
        self.next_seed = self.next_seed.wrapping_add(1);
        self.next_seed
    }

    fn present(&mut self, mut newcomer: (Room, ChaCha20Rng)) {
        let addr = newcomer.0.address().to_owned();
        for (room, rng) in &mut self.parties {
            room.member_present(NOW, rng, &addr);
            let other = room.address().to_owned();
            newcomer.0.member_present(NOW, &mut newcomer.1, &other);
        }
        self.parties.push(newcomer);
    }

    fn attested(&self) -> bool {
        let first = self.parties.first().and_then(|(r, _)| r.epoch());
        first.is_some_and(|(_, ready)| ready)
            && self.parties.iter().all(|(r, _)| r.epoch() == first)
    }

    /// Delivers everything until quiet; with `clock`, adds the time spent inside rooms.
    fn settle(&mut self, mut clock: Option<&mut Duration>) {
        for _ in 0..10_000 {
            let mut out = Vec::new();
            for (i, (room, _)) in self.parties.iter_mut().enumerate() {
                let t0 = Instant::now();
                while let Some(t) = room.poll_transmit() {
                    out.push((i, t));
                }
                while room.poll_event().is_some() {}
                if let Some(c) = clock.as_deref_mut() {
                    *c += t0.elapsed();
                }
            }
            if out.is_empty() {
                return;
            }
            let addresses: Vec<String> = self
                .parties
                .iter()
                .map(|(r, _)| r.address().to_owned())
                .collect();
            for (from, t) in out {
                let from_addr = addresses.get(from).cloned().unwrap_or_default();
                for (j, (room, rng)) in self.parties.iter_mut().enumerate() {
                    if j == from {
                        continue;
                    }
                    let t0 = Instant::now();
                    match &t.to {
                        Destination::Room => {
                            let _ = room.handle_group(NOW, rng, &from_addr, &t.payload);
                        }
                        Destination::Member(a) if addresses.get(j) == Some(a) => {
                            let _ = room.handle_private(NOW, rng, &from_addr, &t.payload);
                        }
                        Destination::Member(_) => {}
                    }
                    if let Some(c) = clock.as_deref_mut() {
                        *c += t0.elapsed();
                    }
                }
            }
        }
    }

    /// `k` sends by member 0; only `send_text` and draining its output are timed.
    fn time_sends(&mut self, k: u64) -> Result<Duration> {
        let text = text();
        let (room, _) = self.parties.first_mut().context("empty room")?;
        let t0 = Instant::now();
        for _ in 0..k {
            room.send_text(NOW, &text)?;
            while let Some(t) = room.poll_transmit() {
                black_box(t);
            }
            while room.poll_event().is_some() {}
        }
        Ok(t0.elapsed())
    }

    /// `k` messages from member 1 received by member 0; only member 0's work is timed
    /// (member 0 is the sender of `time_sends`, whose messages nobody receives).
    fn time_receives(&mut self, k: u64) -> Result<Duration> {
        let text = text();
        let from = self
            .parties
            .get(1)
            .map(|(r, _)| r.address().to_owned())
            .context("room of one")?;
        let mut payloads = Vec::with_capacity(usize::try_from(k)?);
        {
            let (room, _) = self.parties.get_mut(1).context("room of one")?;
            for _ in 0..k {
                room.send_text(NOW, &text)?;
                while let Some(t) = room.poll_transmit() {
                    payloads.push(t.payload);
                }
                while room.poll_event().is_some() {}
            }
        }
        let (room, rng) = self.parties.first_mut().context("empty room")?;
        let mut shown = 0u64;
        let t0 = Instant::now();
        for p in &payloads {
            room.handle_group(NOW, rng, &from, p)?;
            while let Some(e) = room.poll_event() {
                if matches!(e, RoomEvent::Message { .. }) {
                    shown += 1;
                }
            }
        }
        let took = t0.elapsed();
        while room.poll_transmit().is_some() {}
        ensure!(shown == k, "received {shown} of {k} messages");
        Ok(took)
    }

    /// `k` joins of a newcomer into the room of N (it leaves again, untimed, after each);
    /// returns the total CPU of everyone divided by N.
    fn time_joins(&mut self, k: u64) -> Result<Duration> {
        let n = u32::try_from(self.parties.len())?;
        let mut total = Duration::ZERO;
        for _ in 0..k {
            let seed = self.seed();
            let t0 = Instant::now();
            let newcomer = Self::party(seed, "newcomer")?;
            total += t0.elapsed();
            // Presence is the server's doing; the rooms' reaction to it is timed.
            let addr = newcomer.0.address().to_owned();
            let mut newcomer = newcomer;
            let t0 = Instant::now();
            for (room, rng) in &mut self.parties {
                room.member_present(NOW, rng, &addr);
                let other = room.address().to_owned();
                newcomer.0.member_present(NOW, &mut newcomer.1, &other);
            }
            total += t0.elapsed();
            self.parties.push(newcomer);
            self.settle(Some(&mut total));
            if !self.attested() {
                bail!("the join did not settle");
            }
            let gone = self.parties.pop().context("newcomer")?;
            let addr = gone.0.address().to_owned();
            for (room, rng) in &mut self.parties {
                room.member_absent(NOW, rng, &addr);
            }
            self.settle(None);
        }
        Ok(total / n)
    }
}

fn megolm_send_runner() -> Result<impl FnMut(u64) -> Result<Duration>> {
    let mut session = GroupSession::new(MegolmConfig::version_1());
    let text = text();
    Ok(move |k| {
        let t0 = Instant::now();
        for _ in 0..k {
            black_box(session.encrypt(&text));
        }
        Ok(t0.elapsed())
    })
}

fn megolm_receive_runner() -> Result<impl FnMut(u64) -> Result<Duration>> {
    let mut outbound = GroupSession::new(MegolmConfig::version_1());
    let mut inbound = InboundGroupSession::new(&outbound.session_key(), MegolmConfig::version_1());
    let text = text();
    Ok(move |k| {
        let messages: Vec<_> = (0..k).map(|_| outbound.encrypt(&text)).collect();
        let t0 = Instant::now();
        for m in &messages {
            let d = inbound
                .decrypt(m)
                .map_err(|e| anyhow::anyhow!("megolm: {e}"))?;
            black_box(d);
        }
        Ok(t0.elapsed())
    })
}

fn reference_send_runner(n: usize) -> impl FnMut(u64) -> Result<Duration> {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let keys: Vec<Aes256Gcm> = (1..n)
        .map(|_| {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            Aes256Gcm::new(&k.into())
        })
        .collect();
    let text = text();
    move |k| {
        let t0 = Instant::now();
        for i in 0..k {
            for key in &keys {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&i.to_be_bytes());
                let ct = key
                    .encrypt(Nonce::from_slice(&nonce), text.as_bytes())
                    .map_err(|_| anyhow::anyhow!("aes"))?;
                black_box(ct);
            }
        }
        Ok(t0.elapsed())
    }
}

fn reference_receive_runner() -> impl FnMut(u64) -> Result<Duration> {
    let key = Aes256Gcm::new(&[9u8; 32].into());
    let text = text();
    move |k| {
        let cts: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&i.to_be_bytes());
                key.encrypt(Nonce::from_slice(&nonce), text.as_bytes())
                    .unwrap_or_default()
            })
            .collect();
        let t0 = Instant::now();
        for (i, ct) in cts.iter().enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let pt = key
                .decrypt(Nonce::from_slice(&nonce), ct.as_slice())
                .map_err(|_| anyhow::anyhow!("aes"))?;
            black_box(pt);
        }
        Ok(t0.elapsed())
    }
}

/// The Matrix way of joining: Olm sessions with the newcomer and Megolm keys sent over them.
struct MatrixJoin {
    members: Vec<(Account, GroupSession)>,
}

impl MatrixJoin {
    fn new(n: usize) -> Result<Self> {
        let members = (0..n)
            .map(|_| (Account::new(), GroupSession::new(MegolmConfig::version_1())))
            .collect();
        Ok(Self { members })
    }

    fn time_joins(&mut self, k: u64) -> Result<Duration> {
        let n = u32::try_from(self.members.len())?;
        let olm = OlmConfig::version_1();
        let mut total = Duration::ZERO;
        for _ in 0..k {
            // One-time keys are published before anyone joins: not timed.
            let mut otks = Vec::new();
            for (account, _) in &mut self.members {
                let created = account.generate_one_time_keys(1).created;
                account.mark_keys_as_published();
                otks.push(*created.first().context("no one-time key")?);
            }
            let t0 = Instant::now();
            let newcomer = Account::new();
            let mut own = GroupSession::new(MegolmConfig::version_1());
            let mut inbound = Vec::new();
            for ((account, session), otk) in self.members.iter_mut().zip(otks) {
                // Newcomer -> member: a pre-key message carrying the newcomer's room key.
                let mut out =
                    newcomer.create_outbound_session(olm, account.curve25519_key(), otk)?;
                let key = own.session_key();
                let OlmMessage::PreKey(pre) = out.encrypt(key.to_base64())? else {
                    bail!("pre-key expected")
                };
                let created =
                    account.create_inbound_session(olm, newcomer.curve25519_key(), &pre)?;
                let their = vodozemac::megolm::SessionKey::from_base64(std::str::from_utf8(
                    &created.plaintext,
                )?)?;
                black_box(InboundGroupSession::new(&their, MegolmConfig::version_1()));
                // Member -> newcomer: its current room key over the new session.
                let mut back = created.session;
                let reply = back.encrypt(session.session_key().to_base64())?;
                let plain = out.decrypt(&reply)?;
                let key = vodozemac::megolm::SessionKey::from_base64(std::str::from_utf8(&plain)?)?;
                inbound.push(InboundGroupSession::new(&key, MegolmConfig::version_1()));
            }
            total += t0.elapsed();
            black_box(inbound);
            black_box(&mut own);
        }
        Ok(total / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op runs and every line has the contract's keys, with `members`.
    #[test]
    fn smoke_run_prints_both_peers_with_members() {
        let args = Args {
            measure: MeasureArgs {
                json: true,
                batches: 1,
                batch_ms: 1,
            },
            members: vec![3],
            no_join: false,
            seed: 3,
        };
        let reports = measure(&args, 3).unwrap();
        assert_eq!(reports.len(), 2);
        let mut ops = Vec::new();
        for report in &reports {
            for line in report.json_lines().unwrap() {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                for key in [
                    "suite", "op", "ours_ns", "peer", "peer_ns", "ratio", "members",
                ] {
                    assert!(v.get(key).is_some(), "{key} missing in {line}");
                }
                assert_eq!(v["suite"], "group");
                assert_eq!(v["members"], 3);
                assert!(v["ours_ns"].as_u64().unwrap() > 0);
                ops.push((
                    v["peer"].as_str().unwrap().to_owned(),
                    v["op"].as_str().unwrap().to_owned(),
                ));
            }
        }
        for op in ["send", "receive", "join"] {
            assert!(
                ops.contains(&(PEER.into(), op.into())),
                "{op} vs megolm missing: {ops:?}"
            );
        }
        for op in ["send", "receive"] {
            assert!(
                ops.contains(&(REFERENCE.into(), op.into())),
                "{op} vs reference missing"
            );
        }
    }
}
