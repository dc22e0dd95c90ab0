//! The relay rows of the `attack` suite (issue 14 rows 6 to 9): what one client can make
//! the relay keep, against an honest message relayed in the same run.
//!
//! Each op starts two relays in this process with default limits (only the stanza rate is
//! raised, as in the `relay` suite, so that neither the honest sender nor the flood is
//! throttled): one attacked, one quiet, each with an honest pair of TCP clients in a room.
//! The attack fills what it can; `ns_per_message` is then an honest group message's round
//! trip on the attacked relay (sent, echoed to the sender and received by the other
//! member) while the attack holds what it got, and `peer_ns` the same on the quiet relay,
//! in alternating batches; their `ratio` is the slowdown the attack causes.
//!
//! | op | the attack | `retained_bytes` |
//! | --- | --- | --- |
//! | `raw_connections` | 4 addresses x 1,000 connections to the HTTPS listener that never start the TLS handshake | growth of this process's resident memory (the relay's tasks and TLS state; the attacker's sockets are kernel memory) |
//! | `slow_bosh_body` | 4 addresses x 64 BOSH requests declaring 260 KiB that send 200 KiB and stall | body bytes held ([`Retained::http_body_bytes`]) |
//! | `stalled_reader_outbox` | a room member that stops reading while the other member sends 400 largest group messages (175 KB each) | outbox bytes at their peak ([`Retained::outbox_bytes`]) |
//! | `ipv6_per_address` | 500 BOSH sessions through a proxy, each from another address of one IPv6 /64 | growth of this process's resident memory |
//!
//! `retained_connections`: what the relay holds because of the attack, from its own
//! counters: HTTP connections (`raw_connections`, `slow_bosh_body`), sessions
//! (`stalled_reader_outbox`: the stalled member's), BOSH sessions (`ipv6_per_address`).
//! `retained_after_timers_bytes` and `retained_connections_after_timers`: the same once the
//! relay's deadlines could run (15 s after the fill for `raw_connections`, 35 s for
//! `slow_bosh_body`, 2 s for `stalled_reader_outbox`).

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use cryptocat_protocol::group::wire::{GroupMessage, MAX_GROUP_CIPHERTEXT};
use cryptocat_relay::{Config, Retained, Running, Server};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::Runtime;

use crate::attack::{Finding, Op};
use crate::measure::{compare, Estimate, Plan};
use crate::relay::{
    account_on, http_post, join, payload_b64, proc_status_kb, raise_fd_limit, tls_connector, Conn,
    DOMAIN, NS_HTTPBIND, NS_PAYLOAD,
};

const ROOM: &str = "bench";

/// How much each relay op does; [`Sizes::FULL`] for the bench, smaller ones for tests.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Source addresses of `raw_connections`.
    pub raw_addresses: u8,
    /// Connections per address in `raw_connections`.
    pub raw_per_address: usize,
    /// How long after the fill `raw_connections` counts again.
    pub raw_wait: Duration,
    /// Source addresses of `slow_bosh_body`.
    pub slow_addresses: u8,
    /// Stalled requests per address in `slow_bosh_body`.
    pub slow_per_address: usize,
    /// Body bytes each stalled request sends before it stalls.
    pub slow_sent: usize,
    /// How long after the fill `slow_bosh_body` counts again.
    pub slow_wait: Duration,
    /// Largest group messages sent in `stalled_reader_outbox`.
    pub flood_messages: u32,
    /// How long after the flood `stalled_reader_outbox` counts again.
    pub flood_wait: Duration,
    /// Session creations of `ipv6_per_address`.
    pub v6_sessions: u16,
}

impl Sizes {
    /// The bench's sizes.
    pub const FULL: Sizes = Sizes {
        raw_addresses: 4,
        raw_per_address: 1_000,
        raw_wait: Duration::from_secs(15),
        slow_addresses: 4,
        slow_per_address: 64,
        slow_sent: 200 * 1024,
        slow_wait: Duration::from_secs(35),
        flood_messages: 400,
        flood_wait: Duration::from_secs(2),
        v6_sessions: 500,
    };
}

/// Declared length of `slow_bosh_body`'s requests (the default `bosh_max_body_bytes`).
const SLOW_DECLARED: usize = 256 * 1024 + 4096;

/// Measures one relay op.
pub fn measure(op: Op, plan: Plan, sizes: &Sizes) -> Result<Finding> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match op {
        Op::RawConnections => raw_connections(&rt, plan, sizes),
        Op::SlowBoshBody => slow_bosh_body(&rt, plan, sizes),
        Op::StalledReaderOutbox => stalled_reader_outbox(&rt, plan, sizes),
        Op::Ipv6PerAddress => ipv6_per_address(&rt, plan, sizes),
        _ => bail!("{} is not a relay op", op.name()),
    }
}

// ---- fixtures --------------------------------------------------------------------------

async fn start(http_tls: bool, tag: &str) -> Result<Running> {
    let mut config = Config::new(DOMAIN, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http_tls = Some(http_tls);
    config.state_dir = Some(std::env::temp_dir().join(format!(
        "cryptocat-bench-attack-{}-{tag}",
        std::process::id()
    )));
    // As in the relay suite: the honest sender and the flood must not be throttled.
    config.limits.stanzas_per_second = 1_000_000;
    config.limits.stanza_burst = 1_000_000;
    Ok(Server::bind(config).await?.spawn())
}

/// An honest pair in the room, alice sending.
struct Pair {
    alice: Conn,
    bob: Conn,
    seq: u32,
}

fn groupchat(b64: &str) -> String {
    format!(
        "<message type='groupchat' to='{ROOM}@conference.{DOMAIN}'>\
         <payload xmlns='{NS_PAYLOAD}'>{b64}</payload></message>"
    )
}

/// Reads up to the next message carrying a payload.
async fn until_payload(c: &mut Conn) -> Result<()> {
    loop {
        let e = c.next().await?;
        if e.name() == "message" && e.get_child("payload", NS_PAYLOAD).is_some() {
            return Ok(());
        }
    }
}

async fn member(relay: &Running, tcp: TcpStream, user: &str, nick: &str) -> Result<Conn> {
    let tls = tls_connector(relay.tls.certificate.clone())?;
    let mut c = account_on(tcp, &tls, user)
        .await
        .with_context(|| format!("logging {user} in"))?;
    join(&mut c, ROOM, nick).await?;
    Ok(c)
}

impl Pair {
    async fn open(relay: &Running) -> Result<Pair> {
        let alice = member(
            relay,
            TcpStream::connect(relay.c2s_addr).await?,
            "alice",
            "a",
        )
        .await?;
        let bob = member(relay, TcpStream::connect(relay.c2s_addr).await?, "bob", "b").await?;
        Ok(Pair { alice, bob, seq: 0 })
    }

    /// Sends `b64` as a group message and waits for its echo and its arrival at bob.
    async fn round_trip(&mut self, b64: &str) -> Result<()> {
        self.alice.send(&groupchat(b64)).await?;
        until_payload(&mut self.alice).await?;
        until_payload(&mut self.bob).await
    }

    /// `k` round trips of 1 KiB messages.
    async fn round_trips(&mut self, k: u64) -> Result<Duration> {
        let t0 = Instant::now();
        for _ in 0..k {
            self.seq = self.seq.wrapping_add(1);
            let b64 = payload_b64(self.seq, 2);
            self.round_trip(&b64).await?;
        }
        Ok(t0.elapsed())
    }
}

/// The attacked relay and the quiet one, each with its honest pair.
struct Relays {
    attacked: Running,
    /// Kept running for `quiet_pair`.
    _quiet: Running,
    pair: Pair,
    quiet_pair: Pair,
}

impl Relays {
    async fn start(http_tls: bool) -> Result<Relays> {
        let attacked = start(http_tls, "attacked").await?;
        let quiet = start(http_tls, "quiet").await?;
        let pair = Pair::open(&attacked).await?;
        let quiet_pair = Pair::open(&quiet).await?;
        Ok(Relays {
            attacked,
            _quiet: quiet,
            pair,
            quiet_pair,
        })
    }

    /// Honest round trips on the attacked relay against the quiet one.
    fn honest(&mut self, rt: &Runtime, plan: Plan) -> Result<(Estimate, Estimate)> {
        let pair = RefCell::new(&mut self.pair);
        let quiet = RefCell::new(&mut self.quiet_pair);
        compare(
            plan,
            &mut |k| rt.block_on(pair.borrow_mut().round_trips(k)),
            &mut |k| rt.block_on(quiet.borrow_mut().round_trips(k)),
        )
    }

    fn retained(&self) -> Retained {
        self.attacked.retained()
    }
}

/// Sleeps on the runtime (the relays keep running).
fn pause(rt: &Runtime, d: Duration) {
    rt.block_on(async { tokio::time::sleep(d).await });
}

fn rss_bytes() -> Result<usize> {
    let kb = proc_status_kb(std::process::id(), "VmRSS")?;
    Ok(usize::try_from(kb.saturating_mul(1024))?)
}

/// Waits until `count` stops changing (five samples 100 ms apart), at most 20 s.
async fn settle(mut count: impl FnMut() -> usize) -> usize {
    let mut last = count();
    let mut same = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now == last {
            same += 1;
            if same >= 5 {
                break;
            }
        } else {
            same = 0;
            last = now;
        }
    }
    last
}

async fn connect_from(to: SocketAddr, from: IpAddr) -> Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    Ok(socket.connect(to).await?)
}

fn loopback(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, c, d))
}

fn finding(op: Op, retained_bytes: usize, honest: (Estimate, Estimate)) -> Finding {
    Finding {
        op,
        retained_bytes,
        retained_after_timers_bytes: None,
        reply_bytes_per_message: None,
        retained_connections: None,
        retained_connections_after_timers: None,
        attack: honest.0,
        honest: honest.1,
    }
}

// ---- the attacks -----------------------------------------------------------------------

/// Row 6: raw connections that never send a byte, against the HTTPS listener.
fn raw_connections(rt: &Runtime, plan: Plan, sizes: &Sizes) -> Result<Finding> {
    raise_fd_limit(30_000);
    let mut relays = rt.block_on(Relays::start(true))?;
    let http = relays.attacked.http_addr.context("no HTTP listener")?;
    let before = relays.retained();
    let rss0 = rss_bytes()?;
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for a in 1..=sizes.raw_addresses {
            for _ in 0..sizes.raw_per_address {
                // A refused connection may be closed before or after connect returns.
                if let Ok(tcp) = connect_from(http, loopback(1, a)).await {
                    held.push(tcp);
                }
            }
        }
        settle(|| relays.attacked.retained().http_connections).await;
        held
    });
    let filled = Instant::now();
    let connections = relays
        .retained()
        .http_connections
        .saturating_sub(before.http_connections);
    let grown = rss_bytes()?.saturating_sub(rss0);
    let honest = relays.honest(rt, plan)?;
    pause(rt, sizes.raw_wait.saturating_sub(filled.elapsed()));
    let later = relays
        .retained()
        .http_connections
        .saturating_sub(before.http_connections);
    drop(held);
    let mut f = finding(Op::RawConnections, grown, honest);
    f.retained_connections = Some(connections);
    f.retained_connections_after_timers = Some(later);
    Ok(f)
}

/// Row 7: BOSH requests whose bodies stop short of their declared length.
fn slow_bosh_body(rt: &Runtime, plan: Plan, sizes: &Sizes) -> Result<Finding> {
    raise_fd_limit(30_000);
    let mut relays = rt.block_on(Relays::start(false))?;
    let http = relays.attacked.http_addr.context("no HTTP listener")?;
    let before = relays.retained();
    let head = format!(
        "POST /http-bind HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: {SLOW_DECLARED}\r\n\r\n<body xmlns='{NS_HTTPBIND}' rid='1' to='{DOMAIN}'>"
    );
    let mut request = head.into_bytes();
    request.resize(request.len().saturating_add(sizes.slow_sent), b' ');
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for a in 1..=sizes.slow_addresses {
            for _ in 0..sizes.slow_per_address {
                let Ok(mut tcp) = connect_from(http, loopback(2, a)).await else {
                    continue;
                };
                if tcp.write_all(&request).await.is_ok() {
                    held.push(tcp);
                }
            }
        }
        settle(|| relays.attacked.retained().http_body_bytes).await;
        held
    });
    let filled = Instant::now();
    let now = relays.retained();
    let bytes = now.http_body_bytes.saturating_sub(before.http_body_bytes);
    let connections = now.http_connections.saturating_sub(before.http_connections);
    let honest = relays.honest(rt, plan)?;
    pause(rt, sizes.slow_wait.saturating_sub(filled.elapsed()));
    let later = relays.retained();
    drop(held);
    let mut f = finding(Op::SlowBoshBody, bytes, honest);
    f.retained_after_timers_bytes =
        Some(later.http_body_bytes.saturating_sub(before.http_body_bytes));
    f.retained_connections = Some(connections);
    f.retained_connections_after_timers = Some(
        later
            .http_connections
            .saturating_sub(before.http_connections),
    );
    Ok(f)
}

/// Row 8: a room member that stops reading while the room is busy.
fn stalled_reader_outbox(rt: &Runtime, plan: Plan, sizes: &Sizes) -> Result<Finding> {
    let mut relays = rt.block_on(Relays::start(false))?;
    let before = relays.retained();
    let stalled = rt.block_on(async {
        // A small receive buffer, so that the relay's writes block early.
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let tcp = socket.connect(relays.attacked.c2s_addr).await?;
        member(&relays.attacked, tcp, "stalled", "s").await
    })?;
    let big = GroupMessage {
        epoch: [7; 16],
        sender: 0,
        index: 1,
        prev_hash: [9; 32],
        ciphertext: vec![0x5a; MAX_GROUP_CIPHERTEXT],
        macs: vec![[3; 16]; 2],
    }
    .to_base64();
    let mut peak = 0usize;
    rt.block_on(async {
        for _ in 0..sizes.flood_messages {
            relays.pair.round_trip(&big).await?;
            peak = peak.max(relays.attacked.retained().outbox_bytes);
        }
        anyhow::Ok(())
    })?;
    let filled = Instant::now();
    let held = relays.retained().sessions.saturating_sub(before.sessions);
    pause(rt, sizes.flood_wait.saturating_sub(filled.elapsed()));
    let later = relays.retained();
    let honest = relays.honest(rt, plan)?;
    drop(stalled);
    let mut f = finding(
        Op::StalledReaderOutbox,
        peak.saturating_sub(before.outbox_bytes),
        honest,
    );
    f.retained_after_timers_bytes = Some(later.outbox_bytes.saturating_sub(before.outbox_bytes));
    f.retained_connections = Some(held);
    f.retained_connections_after_timers = Some(later.sessions.saturating_sub(before.sessions));
    Ok(f)
}

/// Row 9: BOSH sessions from one IPv6 /64, one address each, through a (loopback) proxy.
fn ipv6_per_address(rt: &Runtime, plan: Plan, sizes: &Sizes) -> Result<Finding> {
    let mut relays = rt.block_on(Relays::start(false))?;
    let http = relays.attacked.http_addr.context("no HTTP listener")?;
    let before = relays.retained();
    let rss0 = rss_bytes()?;
    let create = format!(
        "<body xmlns='{NS_HTTPBIND}' rid='1000' to='{DOMAIN}' wait='60' hold='1' ver='1.6' \
         xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
    );
    rt.block_on(async {
        let mut tcp = TcpStream::connect(http).await?;
        for i in 1..=sizes.v6_sessions {
            let client = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
            http_post(&mut tcp, &create, client).await?;
        }
        anyhow::Ok(())
    })?;
    let sessions = relays
        .retained()
        .bosh_sessions
        .saturating_sub(before.bosh_sessions);
    let grown = rss_bytes()?.saturating_sub(rss0);
    let honest = relays.honest(rt, plan)?;
    let mut f = finding(Op::Ipv6PerAddress, grown, honest);
    f.retained_connections = Some(sessions);
    Ok(f)
}
