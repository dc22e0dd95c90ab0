//! End to end through the real relay on loopback: latency from send to display between
//! two engines over each transport, and the time for the Nth member to join a room until
//! it can send. The peer, measured in the same run on the same relay, is the bare
//! transport (`cryptocat-xmpp` clients moving payloads of the same size with no
//! encryption, and a bare MUC join): the ratio is what the protocol costs on top of XMPP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use cryptocat_client::{Engine, EngineConfig, EngineEvent, EngineEvents, EngineHandle};
use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_relay::{Config as RelayConfig, Limits, Running, Server};
use cryptocat_xmpp::{Client, ClientHandle, Config, Event, Events, ServerUrl, TrustConfig};
use tokio::sync::watch;

use crate::measure::{ratio, JsonLine};

/// `cryptocat-bench e2e`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Messages timed per transport (one at a time: latency, not throughput).
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Room size for the join measurement (the time for the last member to join).
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    /// Transports to measure.
    #[arg(long, value_delimiter = ',', default_value = "tcp,websocket,bosh")]
    pub transports: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(30);
const TEXT_BYTES: usize = 100;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

struct Line {
    op: String,
    ours_ns: u64,
    peer: &'static str,
    peer_ns: u64,
    members: Option<usize>,
}

async fn run_async(args: &Args) -> anyhow::Result<()> {
    let relay = start_relay().await?;
    let mut lines = Vec::new();
    for transport in &args.transports {
        let url = url(&relay, transport)?;
        let ours = engine_latency(&relay, &url, args.messages, transport)
            .await
            .with_context(|| format!("engine latency over {transport}"))?;
        let peer = bare_latency(&relay, &url, args.messages, transport)
            .await
            .with_context(|| format!("bare latency over {transport}"))?;
        for (name, q) in [("p50", 0.50), ("p99", 0.99)] {
            lines.push(Line {
                op: format!("latency_{name}_{transport}"),
                ours_ns: quantile(&ours, q),
                peer: "bare-xmpp",
                peer_ns: quantile(&peer, q),
                members: Some(2),
            });
        }
    }
    if args.members >= 2 {
        let url = url(&relay, "tcp")?;
        let (ours, peer) = join_nth(&relay, &url, args.members).await?;
        lines.push(Line {
            op: "join_last_member_until_it_can_send".into(),
            ours_ns: ours,
            peer: "bare-xmpp-join",
            peer_ns: peer,
            members: Some(args.members),
        });
    }
    print(&lines, args.json)
}

#[allow(clippy::print_stdout)]
fn print(lines: &[Line], json: bool) -> anyhow::Result<()> {
    if !json {
        println!("suite e2e: ours = cryptocat-client engine, through the cryptocat-server relay on loopback");
        println!(
            "{:<38} {:>12} {:<15} {:>12} {:>7} {:>8}",
            "op", "ours ms", "peer", "peer ms", "ratio", "members"
        );
    }
    for l in lines {
        if json {
            let line = JsonLine {
                suite: "e2e",
                op: &l.op,
                ours_ns: l.ours_ns,
                peer: l.peer,
                peer_ns: l.peer_ns,
                ratio: ratio(l.ours_ns, l.peer_ns),
                members: l.members,
            };
            println!("{}", serde_json::to_string(&line)?);
        } else {
            println!(
                "{:<38} {:>12.3} {:<15} {:>12.3} {:>7.3} {:>8}",
                l.op,
                l.ours_ns as f64 / 1e6,
                l.peer,
                l.peer_ns as f64 / 1e6,
                ratio(l.ours_ns, l.peer_ns),
                l.members.map(|m| m.to_string()).unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn quantile(samples: &[Duration], q: f64) -> u64 {
    let mut ns: Vec<u64> = samples
        .iter()
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .collect();
    ns.sort_unstable();
    if ns.is_empty() {
        return 0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let idx = ((ns.len() - 1) as f64 * q).round() as usize;
    ns.get(idx).copied().unwrap_or(0)
}

async fn start_relay() -> anyhow::Result<Running> {
    let mut config = RelayConfig::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.state_dir =
        Some(std::env::temp_dir().join(format!("cryptocat-bench-e2e-{}", std::process::id())));
    config.limits = Limits {
        // Many clients from one loopback address, registering quickly.
        connections_per_ip: 10_000,
        http_connections_per_ip: 10_000,
        registrations_per_ip: 100_000,
        ..Limits::default()
    };
    Ok(Server::bind(config).await?.spawn())
}

fn url(relay: &Running, transport: &str) -> anyhow::Result<ServerUrl> {
    let text = match transport {
        "tcp" => format!("xmpp://{}", relay.c2s_addr),
        "websocket" | "ws" => format!(
            "ws://{}/xmpp-websocket",
            relay.http_addr.context("no HTTP listener")?
        ),
        "bosh" => format!(
            "http://{}/http-bind",
            relay.http_addr.context("no HTTP listener")?
        ),
        other => bail!("unknown transport {other:?} (tcp, websocket, bosh)"),
    };
    Ok(ServerUrl::parse(&text)?)
}

fn engine_config(relay: &Running, url: &ServerUrl, room: &str, nick: &str) -> EngineConfig {
    let mut config = EngineConfig::new(url.clone(), room, nick);
    config.domain = Some("localhost".into());
    config.trust = TrustConfig::only(relay.tls.certificate.clone());
    config.join_timeout = TIMEOUT;
    config
}

/// Waits for an event matching `pred`.
async fn until(
    events: &mut EngineEvents,
    pred: impl Fn(&EngineEvent) -> bool,
) -> anyhow::Result<EngineEvent> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if pred(&e) => return Ok(e),
            Ok(Some(_)) => {}
            Ok(None) => bail!("engine stopped"),
            Err(_) => bail!("timed out"),
        }
    }
}

fn text(i: usize) -> String {
    let mut t = format!("message {i} ");
    while t.len() < TEXT_BYTES {
        t.push('x');
    }
    t
}

async fn engine_latency(
    relay: &Running,
    url: &ServerUrl,
    n: usize,
    transport: &str,
) -> anyhow::Result<Vec<Duration>> {
    let room = format!("latency-{transport}");
    let (a, mut a_events) = Engine::start(engine_config(relay, url, &room, "alice")).await?;
    let (b, mut b_events) = Engine::start(engine_config(relay, url, &room, "bob")).await?;
    for events in [&mut a_events, &mut b_events] {
        until(events, |e| {
            matches!(e, EngineEvent::Rekeyed { members: 2, .. })
        })
        .await
        .context("waiting for the room of two")?;
    }
    // Alice's events are drained in the background (confirmations).
    let drain = tokio::spawn(async move { while a_events.recv().await.is_some() {} });
    let warmup = 20;
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let t = text(i);
        let start = Instant::now();
        a.send(&t)?;
        until(
            &mut b_events,
            |e| matches!(e, EngineEvent::Message { text, .. } if *text == t),
        )
        .await
        .with_context(|| format!("waiting for message {i}"))?;
        if i >= warmup {
            samples.push(start.elapsed());
        }
    }
    leave(&a).await;
    leave(&b).await;
    drain.abort();
    Ok(samples)
}

async fn leave(h: &EngineHandle) {
    let _ = tokio::time::timeout(Duration::from_secs(5), h.leave()).await;
}

fn bare_config(relay: &Running, url: &ServerUrl) -> Config {
    let mut config = Config::new(url.clone()).with_domain("localhost");
    config.trust = TrustConfig::only(relay.tls.certificate.clone());
    config.connect_timeout = TIMEOUT;
    config
}

async fn bare_join(
    relay: &Running,
    url: &ServerUrl,
    room: &str,
    nick: &str,
) -> anyhow::Result<(ClientHandle, Events)> {
    let (h, mut events) = Client::connect(bare_config(relay, url)).await?;
    h.join(room, nick)?;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Joined { .. })) => return Ok((h, events)),
            Ok(Some(Event::JoinFailed { condition, .. })) => bail!("join failed: {condition}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("client stopped"),
            Err(_) => bail!("timed out joining"),
        }
    }
}

async fn bare_latency(
    relay: &Running,
    url: &ServerUrl,
    n: usize,
    transport: &str,
) -> anyhow::Result<Vec<Duration>> {
    let room = format!("bare-{transport}");
    let (a, _a_events) = bare_join(relay, url, &room, "a").await?;
    let (_b, mut b_events) = bare_join(relay, url, &room, "b").await?;
    let warmup = 20;
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        // A well-formed envelope (the relay checks it) about the size of ours for a
        // 100-byte text to one member; the index tells the messages apart.
        let payload = GroupMessage {
            epoch: [7; 16],
            sender: 0,
            index: u32::try_from(i).unwrap_or(u32::MAX),
            prev_hash: [9; 32],
            ciphertext: vec![0x5a; 176],
            macs: vec![[1; 16]],
        }
        .encode();
        let start = Instant::now();
        a.send_groupchat(&room, &payload)?;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, b_events.recv()).await {
                Ok(Some(Event::GroupPayload { bytes, .. })) if bytes == payload => break,
                Ok(Some(_)) => {}
                Ok(None) => bail!("client stopped"),
                Err(_) => bail!("timed out"),
            }
        }
        if i >= warmup {
            samples.push(start.elapsed());
        }
    }
    Ok(samples)
}

/// Builds a room of `n - 1` engines, then times the `n`th from start until it can send
/// (the epoch with all `n` members is attested). The peer: a bare client connecting and
/// joining a room of `n - 1` bare occupants.
async fn join_nth(relay: &Running, url: &ServerUrl, n: usize) -> anyhow::Result<(u64, u64)> {
    let room = "join-bench";
    let mut handles = Vec::new();
    let mut epochs = Vec::new();
    for i in 0..n - 1 {
        let (h, mut events) =
            Engine::start(engine_config(relay, url, room, &format!("m{i}"))).await?;
        let (tx, rx) = watch::channel(0usize);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let EngineEvent::Rekeyed { members, .. } = e {
                    let _ = tx.send(members);
                }
            }
        });
        handles.push(h);
        epochs.push(rx);
        // Everyone settles before the next one comes in.
        for rx in &mut epochs {
            let want = i + 1;
            tokio::time::timeout(TIMEOUT, rx.wait_for(|m| *m == want))
                .await
                .map_err(|_| anyhow!("member {i}: room of {want} did not settle"))??;
        }
    }
    let start = Instant::now();
    let (last, mut events) = Engine::start(engine_config(relay, url, room, "last")).await?;
    until(
        &mut events,
        |e| matches!(e, EngineEvent::Rekeyed { members, .. } if *members == n),
    )
    .await?;
    let ours = start.elapsed();
    leave(&last).await;
    for h in &handles {
        leave(h).await;
    }

    let bare_room = "join-bench-bare";
    let mut bare = Vec::new();
    for i in 0..n - 1 {
        bare.push(bare_join(relay, url, bare_room, &format!("m{i}")).await?);
    }
    let start = Instant::now();
    let _last = bare_join(relay, url, bare_room, "last").await?;
    let peer = start.elapsed();
    Ok((
        u64::try_from(ours.as_nanos()).unwrap_or(u64::MAX),
        u64::try_from(peer.as_nanos()).unwrap_or(u64::MAX),
    ))
}
