//! A hostile member in a 10-member room (issue 14's soak test). Nine honest `cryptocat
//! join --json` members settle in a room on our relay; then a tenth occupant, this test's
//! own XMPP client, sends for 60 s (`CRYPTOCAT_SOAK_SECS`), at the relay's stanza rate,
//! what a member of a room can send the others without a session: Identity messages
//! replayed from a pool (each asks for an Auth-R), largest pairwise data messages before any
//! session (early data), forged data messages with fresh ratchet keys far ahead, and largest
//! group messages for epochs nobody knows. Meanwhile two of the honest members chat.
//!
//! Asserted: every honest message reaches each of the other eight honest members once, and
//! each is confirmed by all eight, none reported unconfirmed; each honest member's resident
//! memory grows by at most 32 MiB over the attack (the 16 MiB of attacker-kept data
//! per room, plus what parsing 175 KB stanzas at that rate costs in buffers). Before issue
//! 14's fixes, the group messages for unknown epochs alone (a quarter of the flood, about
//! 20 a second) were kept up to 1,024 of 135 KB each: over 90 MB after 30 s. Printed: what
//! the attacker sent, what the honest members received, warnings by code, and each
//! member's memory before, at its sampled peak, its high-water mark and after.
//!
//! The relay drops the attacker now and then (it does not read the room's echo of its own
//! flood as fast as it comes, so its outbox fills); it comes back with a new key, as a
//! persistent attacker would.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryptocat_protocol::dake::{self, DakeContext};
use cryptocat_protocol::group::wire::{GroupMessage, MAC_BYTES, MAX_GROUP_CIPHERTEXT, MAX_MEMBERS};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::message::{DataHeader, DataMessage, Message, MAX_CIPHERTEXT_BYTES};
use cryptocat_protocol::ratchet::MAX_SKIP;
use cryptocat_protocol::{InstanceTag, Timestamp};
use cryptocat_tests::relay::Relay;
use cryptocat_tests::{binary, status_kb, JsonChild};
use cryptocat_xmpp::client::MAX_PAYLOAD_BYTES;
use cryptocat_xmpp::{Client, ClientError, Config, Event, ServerUrl, TrustConfig};
use rand_core::{OsRng, RngCore};

/// Honest members (the attacker makes ten).
const HONEST: usize = 9;
const ROOM: &str = "soak";
/// The relay's sustained stanza rate per connection (`Limits::stanzas_per_second`).
const STANZAS_PER_SECOND: u64 = 100;
/// Captured Identity messages replayed in turn.
const IDENTITY_POOL: usize = 64;
/// Resident memory an honest member may gain over the attack.
const GROWTH_BOUND_KB: u64 = 32 * 1024;

fn soak_secs() -> u64 {
    std::env::var("CRYPTOCAT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// What the attacker did.
#[derive(Default)]
struct Sent {
    /// Sessions the relay ended (a send found the client gone).
    dropped: AtomicU64,
    stanzas: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
}

#[test]
fn a_hostile_member_costs_the_others_a_bounded_amount_and_loses_them_nothing() {
    let secs = soak_secs();
    let relay = Relay::start("soak", false);
    let url = format!("xmpp://127.0.0.1:{}", relay.c2s_port);
    let pin = relay.pin.to_string();
    let cli = binary("cryptocat");

    // Nine honest members, settled: each saw the room's keys attested by all nine.
    let mut members: Vec<JsonChild> = (0..HONEST)
        .map(|i| {
            let nick = format!("honest{i}");
            let mut c = JsonChild::start(
                Command::new(&cli).args([
                    "join",
                    "--server",
                    &url,
                    "--domain",
                    "localhost",
                    "--pin",
                    &pin,
                    "--room",
                    ROOM,
                    "--nick",
                    &nick,
                    "--json",
                ]),
                &nick,
            );
            c.wait_type("joined");
            c
        })
        .collect();
    for m in &mut members {
        m.wait_within("the room settled", Duration::from_secs(120), |v| {
            v["type"] == "rekeyed" && v["members"] == HONEST
        });
    }
    let baseline: Vec<u64> = members.iter().map(|m| rss_kb(m.pid())).collect();

    // The attacker joins and floods until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Sent::default());
    let attacker = {
        let (url, pin, stop, sent) = (url.clone(), relay.pin, stop.clone(), sent.clone());
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(attack(&url, pin, &stop, &sent))
        })
    };

    // Two honest members chat, one message a second each in turn, while the memory of
    // every member is sampled.
    let start = Instant::now();
    let mut texts: Vec<(usize, String)> = Vec::new();
    let mut peak = baseline.clone();
    let mut round = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        let from = round % 2;
        let text = format!("honest message {round} from {from}");
        members[from].line(&text);
        texts.push((from, text));
        round += 1;
        let tick = Instant::now();
        while tick.elapsed() < Duration::from_secs(1) {
            for (i, m) in members.iter_mut().enumerate() {
                m.poll();
                peak[i] = peak[i].max(rss_kb(m.pid()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let attacker_result = attacker.join();

    // Every honest message reached the eight others once, and was confirmed by all eight.
    let mut delivered = 0usize;
    for (i, m) in members.iter_mut().enumerate() {
        for (from, text) in texts.iter().filter(|(from, _)| *from != i) {
            m.wait_within(
                &format!("{text:?} from honest{from}"),
                Duration::from_secs(60),
                |v| v["type"] == "message" && v["text"] == text.as_str(),
            );
            let copies = m
                .seen()
                .iter()
                .filter(|v| v["type"] == "message" && v["text"] == text.as_str())
                .count();
            assert_eq!(copies, 1, "honest{i} got {text:?} {copies} times");
            delivered += 1;
        }
    }
    let mut confirmed = 0usize;
    for (i, m) in members.iter_mut().enumerate().take(2) {
        // Every text it was given went out (`sent`), however late its last lines are read.
        let mine = texts.iter().filter(|(from, _)| *from == i).count();
        let sent_count = |m: &JsonChild| m.seen().iter().filter(|v| v["type"] == "sent").count();
        let deadline = Instant::now() + Duration::from_secs(60);
        while sent_count(m) < mine && Instant::now() < deadline {
            m.poll();
            std::thread::sleep(Duration::from_millis(100));
        }
        let ids: Vec<String> = m
            .seen()
            .iter()
            .filter(|v| v["type"] == "sent")
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(ids.len(), mine, "honest{i} sent {mine} messages");
        for id in ids {
            let done = m.wait_within(
                &format!("the confirmation of {id} by all"),
                Duration::from_secs(60),
                |v| {
                    v["type"] == "confirmation"
                        && v["id"] == id.as_str()
                        && v["confirmed"] == v["of"]
                },
            );
            assert_eq!(done["of"], HONEST - 1, "{done}");
            confirmed += 1;
        }
        let unconfirmed = m
            .seen()
            .iter()
            .filter(|v| v["type"] == "warning" && v["code"] == "unconfirmed")
            .count();
        assert_eq!(unconfirmed, 0, "honest{i}: messages reported unconfirmed");
    }

    // Memory: what the attack made each member keep, at its peak.
    let after: Vec<u64> = members.iter().map(|m| rss_kb(m.pid())).collect();
    let hwm: Vec<u64> = members
        .iter()
        .map(|m| status_kb(m.pid(), "VmHWM").unwrap_or(0))
        .collect();
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    for m in &members {
        for v in m.seen().iter().filter(|v| v["type"] == "warning") {
            *warnings
                .entry(v["code"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
    }
    let stats = match attacker_result {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => panic!("the attacker failed: {e}"),
        Err(_) => panic!("the attacker panicked"),
    };
    eprintln!(
        "hostile member, {secs} s: the attacker sent {} stanzas ({} MB, {} refused by its own \
         client) in {} sessions ({} ended by the relay); {} honest messages sent, {delivered} deliveries, \
         {confirmed} confirmed by all {}; warnings {warnings:?}",
        sent.stanzas.load(Ordering::SeqCst),
        sent.bytes.load(Ordering::SeqCst) / 1_000_000,
        sent.refused.load(Ordering::SeqCst),
        stats,
        sent.dropped.load(Ordering::SeqCst),
        texts.len(),
        HONEST - 1,
    );
    for i in 0..HONEST {
        eprintln!(
            "  honest{i}: resident {} kB before, {} kB at the sampled peak (+{} kB), {} kB \
             after; high-water mark {} kB",
            baseline[i],
            peak[i],
            peak[i].saturating_sub(baseline[i]),
            after[i],
            hwm[i]
        );
    }
    assert!(
        sent.stanzas.load(Ordering::SeqCst) > STANZAS_PER_SECOND * secs / 2,
        "the attacker sent too little to mean anything"
    );
    for i in 0..HONEST {
        let growth = peak[i].max(hwm[i]).saturating_sub(baseline[i]);
        assert!(
            growth <= GROWTH_BOUND_KB,
            "honest{i} grew by {growth} kB under attack (bound {GROWTH_BOUND_KB} kB)"
        );
    }
}

/// The largest length up to `max` whose message, as `make` builds it, fits in a payload.
fn fit(max: usize, mut make: impl FnMut(usize) -> Vec<u8>) -> usize {
    let over = make(max).len().saturating_sub(MAX_PAYLOAD_BYTES);
    max.saturating_sub(over)
}

/// Resident memory of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS").unwrap_or(0)
}

/// The attacker: joins the room and floods it until `stop`; when the relay drops it (it
/// does not read the room's echo of its flood as fast as it comes, so its outbox fills),
/// it connects again with a new key and goes on, as a persistent attacker would. Returns
/// how many sessions it took.
async fn attack(
    url: &str,
    pin: cryptocat_xmpp::Pin,
    stop: &AtomicBool,
    sent: &Sent,
) -> Result<usize, String> {
    let mut sessions = 0usize;
    while !stop.load(Ordering::SeqCst) {
        sessions += 1;
        attack_session(url, pin, &format!("0hostile{sessions}"), stop, sent).await?;
    }
    Ok(sessions)
}

/// One session of the attacker, as occupant `me` (it sorts before the honest occupants'
/// names, so they answer its Identity messages and wait for it): sends at the relay's
/// stanza rate until `stop` or until the connection ends.
async fn attack_session(
    url: &str,
    pin: cryptocat_xmpp::Pin,
    me: &str,
    stop: &AtomicBool,
    sent: &Sent,
) -> Result<(), String> {
    let mut rng = OsRng;
    let identity = Arc::new(Identity::generate(&mut rng, now()));
    let server: ServerUrl = url.parse().map_err(|e| format!("{e}"))?;
    let mut config = Config::new(server).with_domain("localhost");
    config.trust = TrustConfig::pinned(vec![pin]);
    config.identity = Some(identity.clone());
    config.reconnect = None;
    let (handle, mut events) = Client::connect(config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let room_jid = format!("{ROOM}@{}", handle.muc_domain());
    handle.join(ROOM, me).map_err(|e| format!("join: {e}"))?;
    let occupants: Vec<String> = loop {
        match events.recv().await {
            Some(Event::Joined { occupants, .. }) => break occupants,
            Some(Event::JoinFailed { condition, .. }) => return Err(format!("join: {condition}")),
            Some(_) => {}
            None => return Err("the connection ended before joining".into()),
        }
    };
    if occupants.len() < HONEST {
        return Err(format!("{} occupants, not {HONEST}", occupants.len()));
    }
    // What arrives (the room's echo of the flood, the members' answers) is read and dropped.
    let reader = tokio::spawn(async move { while events.recv().await.is_some() {} });

    let me_address = format!("{room_jid}/{me}");
    let mut pools: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for nick in occupants.iter().filter(|n| !n.starts_with("0hostile")) {
        let mut pool = Vec::new();
        for _ in 0..IDENTITY_POOL {
            let ctx = DakeContext {
                room: room_jid.clone(),
                initiator: me_address.clone(),
                responder: format!("{room_jid}/{nick}"),
            };
            let (_, msg) =
                dake::initiate(&mut rng, &identity, ctx, None).map_err(|e| format!("{e}"))?;
            pool.push(Message::Identity(msg).encode());
        }
        pools.push((nick.clone(), pool));
    }
    let early = |tag: u32, index: u32, len: usize, rng: &mut OsRng| {
        let mut ratchet_key = [0u8; 32];
        rng.fill_bytes(&mut ratchet_key);
        Message::Data(DataMessage {
            sender: InstanceTag(tag),
            receiver: InstanceTag(tag),
            header: DataHeader {
                ratchet_key,
                previous_chain_length: 0,
                index,
            },
            ciphertext: vec![0x5a; len],
        })
        .encode()
    };
    let unknown_epoch = |len: usize, rng: &mut OsRng| {
        let mut epoch = [0u8; 16];
        rng.fill_bytes(&mut epoch);
        GroupMessage {
            epoch,
            sender: 0,
            index: 0,
            prev_hash: [0; 32],
            ciphertext: vec![0x33; len],
            macs: vec![[0; MAC_BYTES]; MAX_MEMBERS - 1],
        }
        .encode()
    };

    // The largest of each that the transport sends (the protocol's message limit).
    let early_len = fit(MAX_CIPHERTEXT_BYTES, |len| early(0x1000, 0, len, &mut rng));
    let group_len = fit(MAX_GROUP_CIPHERTEXT, |len| unknown_epoch(len, &mut rng));

    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / STANZAS_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0usize;
    let send = |private_to: Option<&str>, payload: &[u8]| {
        let r = match private_to {
            Some(nick) => handle.send_private(ROOM, nick, payload).map(|_| ()),
            None => handle.send_groupchat(ROOM, payload).map(|_| ()),
        };
        match r {
            Ok(()) => {
                sent.stanzas.fetch_add(1, Ordering::Relaxed);
                sent.bytes.fetch_add(
                    u64::try_from(payload.len()).unwrap_or(0) * 4 / 3,
                    Ordering::Relaxed,
                );
                true
            }
            Err(ClientError::Closed) => {
                sent.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) => {
                if sent.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("the attacker's client refused a payload: {e}");
                }
                true
            }
        }
    };
    'flood: while !stop.load(Ordering::SeqCst) {
        for (nick, pool) in &pools {
            for step in 0..4 {
                if stop.load(Ordering::SeqCst) {
                    break 'flood;
                }
                tick.tick().await;
                let open = match step {
                    // An Identity message from the pool (each one asks for an Auth-R).
                    0 => {
                        let identity = pool.get(n % IDENTITY_POOL).cloned().unwrap_or_default();
                        send(Some(nick), &identity)
                    }
                    // Early data: a largest data message before any session.
                    1 => send(Some(nick), &early(0x1000, 0, early_len, &mut rng)),
                    // A forged data message with a fresh ratchet key, as far ahead as allowed.
                    2 => send(Some(nick), &early(0x1000, MAX_SKIP, 64, &mut rng)),
                    // A largest group message for an epoch nobody knows.
                    _ => send(None, &unknown_epoch(group_len, &mut rng)),
                };
                if !open {
                    break 'flood;
                }
            }
        }
        n += 1;
    }
    let _ = handle.disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
    Ok(())
}
