//! Robustness: a legitimate pair keeps chatting in a room while other tasks throw at the
//! relay malformed XML, oversized and too-deep stanzas, slowloris connections (a stanza and
//! a stream header trickled a byte at a time), garbage on the HTTP listener (not HTTP,
//! bad BOSH bodies, bad WebSocket upgrades and frames, a trickled request head) and 1,000
//! concurrent TCP connections.
//!
//! Asserted: every payload of the pair arrives intact, in order and exactly once at both
//! ends; every attacker gets the stream error, stanza error, HTTP status or BOSH condition
//! it should, or is disconnected; the relay still serves a new account afterwards. The
//! pair's round-trip times before and during the attack are printed, not asserted (speed
//! goals live in the benchmark).
//!
//! Addresses: the pair connects from 127.0.0.1, attackers from other loopback addresses
//! (Linux routes all of 127.0.0.0/8 to `lo`). The 1,000 connections come from 20 addresses,
//! 50 each, so the relay's default `connections_per_ip` (64) stays in force and is itself
//! tested: one more address opens 64 connections and its 65th to 67th are refused.
//! `negotiation_timeout_secs` is lowered to 6 so that idle and slowloris connections are
//! cut within the test's time (that deadline counts from admission, not from the last
//! byte: a trickle does not extend it).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_relay::{Limits, Running};
use futures::{SinkExt as _, StreamExt as _};
use minidom::Element;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::client::{connect_tcp_from, error_condition, payload_text, Client};
use crate::{groupchat, payload, start_with};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
                      xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const NEGOTIATION_SECS: u64 = 6;
const ROUND_GAP: Duration = Duration::from_millis(20);
const BASELINE_ROUNDS: usize = 100;
const BULK_ADDRESSES: u8 = 20;
const BULK_PER_ADDRESS: usize = 50;
const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

fn addr(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, c, d))
}

/// The 1,000 connections and the server's side of them need more descriptors than the
/// usual soft limit of 1,024 (unix; Windows has no such limit on sockets).
#[cfg(not(unix))]
fn raise_fd_limit() {}

/// The 1,000 connections and the server's side of them need more descriptors than the
/// usual soft limit of 1,024.
#[cfg(unix)]
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let want = 8192u64;
    if lim.current.is_some_and(|c| c < want) {
        lim.current = Some(lim.maximum.map_or(want, |m| m.min(want)));
        setrlimit(Resource::Nofile, lim).expect("raising RLIMIT_NOFILE");
    }
}

/// A 1 KiB group message numbered `seq` (in its index and its bytes).
fn numbered_payload(seq: u32) -> String {
    let b = seq.to_le_bytes();
    GroupMessage {
        epoch: [b[0]; 16],
        sender: (seq % 2) as u16,
        index: seq,
        prev_hash: [b[1]; 32],
        ciphertext: (0..860u32).map(|i| (i ^ seq).to_le_bytes()[0]).collect(),
        macs: vec![[b[0]; 16], [b[1]; 16]],
    }
    .to_base64()
}

/// Reads the next element and checks that it is exactly the groupchat `seq` from `nick`.
async fn expect_groupchat(c: &mut Client, seq: u32, nick: &str) {
    let m = c.next().await;
    assert_eq!(m.name(), "message", "{m:?}");
    assert_eq!(m.attr("type"), Some("groupchat"), "{m:?}");
    assert_eq!(
        m.attr("from"),
        Some(format!("calm@conference.localhost/{nick}").as_str())
    );
    assert_eq!(m.attr("id"), Some(format!("m{seq}").as_str()));
    let text = payload_text(&m).expect("a payload");
    assert_eq!(text, numbered_payload(seq), "payload {seq} altered");
    let decoded = GroupMessage::from_base64(&text).unwrap();
    assert_eq!(decoded.index, seq);
}

fn send_numbered(seq: u32) -> String {
    groupchat("calm", &payload(&numbered_payload(seq))).replace("id='g1'", &format!("id='m{seq}'"))
}

/// One round: Alice sends 2k, Bob reads it (after the echo of his own 2k-1), answers 2k+1,
/// Alice reads her echo and Bob's answer. Returns the round-trip time at Alice.
async fn round(alice: &mut Client, bob: &mut Client, k: u32) -> Duration {
    let start = Instant::now();
    alice.send(&send_numbered(2 * k)).await;
    if k > 0 {
        expect_groupchat(bob, 2 * k - 1, "b").await;
    }
    expect_groupchat(bob, 2 * k, "a").await;
    bob.send(&send_numbered(2 * k + 1)).await;
    expect_groupchat(alice, 2 * k, "a").await;
    expect_groupchat(alice, 2 * k + 1, "b").await;
    start.elapsed()
}

/// The `pct`-th percentile (0 to 100) of sorted values, nearest rank.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    let i = (sorted.len() * pct).div_ceil(100).max(1) - 1;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, rtts: &mut [Duration]) {
    rtts.sort();
    eprintln!(
        "legit pair round trip {label}: {} rounds, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        rtts.len(),
        percentile(rtts, 50).as_secs_f64() * 1e3,
        percentile(rtts, 99).as_secs_f64() * 1e3,
        rtts.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// Connects from `from`, optionally does STARTTLS, sends `attack` and expects the stream
/// to end with stream error `want`.
async fn malformed(server: &Running, from: IpAddr, tls: bool, attack: Vec<u8>, want: &str) {
    let mut c = Client::connect_from(server, from).await;
    if tls {
        c.starttls().await;
        c.reset_parser();
    }
    c.send_bytes(&attack).await;
    let got = c.expect_stream_error().await;
    assert_eq!(got, want, "attack {:?}", String::from_utf8_lossy(&attack));
}

async fn malformed_xml_attacks(server: Arc<Running>) {
    let deep = format!("{HEADER}{}", "<a>".repeat(40));
    let big = format!(
        "{HEADER}<iq type='get' id='x'><query>{}</query></iq>",
        "A".repeat(300 * 1024)
    );
    let mut cases: Vec<(bool, Vec<u8>, &str)> = vec![
        (false, b"<<<not xml at all>>>".to_vec(), "not-well-formed"),
        (
            false,
            format!("{HEADER}<message><a></b></message>").into_bytes(),
            "not-well-formed",
        ),
        (
            false,
            [HEADER.as_bytes(), b"<iq type='get' id='\xff\xfe'/>"].concat(),
            "not-well-formed",
        ),
        (
            false,
            b"<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]>"
                .to_vec(),
            "not-well-formed",
        ),
        (
            false,
            format!("{HEADER}<foo:bar/>").into_bytes(),
            "not-well-formed",
        ),
        (
            false,
            format!("{HEADER}hello there<iq/>").into_bytes(),
            "bad-format",
        ),
        (
            false,
            HEADER.replace("to='localhost'", "to='elsewhere.example'").into_bytes(),
            "host-unknown",
        ),
        (
            false,
            HEADER
                .replace("http://etherx.jabber.org/streams", "urn:bogus")
                .into_bytes(),
            "invalid-namespace",
        ),
        (
            false,
            format!("{HEADER}<message to='calm@conference.localhost' type='groupchat'><body>hi</body></message>")
                .into_bytes(),
            "policy-violation",
        ),
        (false, deep.clone().into_bytes(), "policy-violation"),
        (false, big.clone().into_bytes(), "policy-violation"),
        // Inside TLS, before authentication.
        (true, b"<<<".to_vec(), "not-well-formed"),
        (true, deep.into_bytes(), "policy-violation"),
        (true, big.into_bytes(), "policy-violation"),
        (
            true,
            format!("{HEADER}<message to='calm@conference.localhost'/>").into_bytes(),
            "not-authorized",
        ),
    ];
    // Three waves of every case, each from its own address, all at once.
    let mut tasks = Vec::new();
    let mut n = 0u8;
    for _ in 0..3 {
        for (tls, attack, want) in cases.iter().cloned() {
            n += 1;
            let server = Arc::clone(&server);
            tasks.push(tokio::spawn(async move {
                malformed(&server, addr(2, n), tls, attack, want).await;
            }));
        }
    }
    cases.clear();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Bound accounts (in another room) that misbehave: a plaintext body gets a stanza error
/// and the stream goes on; then an oversized stanza and malformed XML end their streams.
async fn authenticated_attacks(server: Arc<Running>) {
    let mut tasks = Vec::new();
    for i in 0..6u8 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect_from(&server, addr(3, i + 1)).await;
            c.starttls().await;
            c.open_stream().await;
            let user = format!("mallory{i}");
            let reg = c.register(&user, "pw-mallory").await;
            assert_eq!(reg.attr("type"), Some("result"), "{reg:?}");
            c.login(&user, "pw-mallory").await.unwrap();
            c.bind().await;
            let joined = c.join("den", &format!("m{i}")).await;
            assert_ne!(joined.last().unwrap().attr("type"), Some("error"));
            // Plaintext: refused with a stanza error, the stream survives.
            c.send(&groupchat("den", "<body>plain words</body>")).await;
            loop {
                let e = c.next().await;
                if e.name() == "message" && e.attr("type") == Some("error") {
                    assert_eq!(error_condition(&e).1, "policy-violation");
                    break;
                }
                // Presences of the other attackers joining `den`.
                assert_eq!(e.name(), "presence", "{e:?}");
            }
            // Posting into the pair's room without being in it.
            c.send(&groupchat("calm", &payload(&numbered_payload(999))))
                .await;
            loop {
                let e = c.next().await;
                if e.name() == "message" {
                    assert_eq!(error_condition(&e).1, "not-acceptable");
                    break;
                }
            }
            match i % 3 {
                0 => {
                    c.send(&groupchat("den", &payload(&"A".repeat(300 * 1024))))
                        .await;
                    assert_eq!(c.expect_stream_error().await, "policy-violation");
                }
                1 => {
                    c.send("<message><a></b>").await;
                    assert_eq!(c.expect_stream_error().await, "not-well-formed");
                }
                _ => {
                    c.send(&"<x>".repeat(40)).await;
                    assert_eq!(c.expect_stream_error().await, "policy-violation");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Writes `bytes` a few at a time with `gap` between, while reading whatever the server
/// sends; returns what it sent and how long after connecting the server closed.
async fn trickle(tcp: TcpStream, bytes: Vec<u8>, step: usize, gap: Duration) -> (String, Duration) {
    let start = Instant::now();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        for chunk in bytes.chunks(step) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
        // Then stay silent with the connection open.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        read.is_ok(),
        "the server never closed a trickling connection"
    );
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

async fn slowloris_attacks(server: Arc<Running>) {
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let tcp = connect_tcp_from(server.c2s_addr, addr(4, i + 1)).await;
            let attack = if i % 2 == 0 {
                // A stanza that never ends, a byte every 200 ms.
                format!(
                    "{HEADER}<message to='calm@conference.localhost' type='groupchat'><payload xmlns='urn:xmpp:cryptocat:1'>{}",
                    "A".repeat(1000)
                )
            } else {
                // A stream header that never ends: attributes, one after another.
                format!("<stream:stream to='localhost' {}", "a='b' ".repeat(500))
            };
            let step = if i % 2 == 0 { 1 } else { 2 };
            let (got, after) = trickle(tcp, attack.into_bytes(), step, Duration::from_millis(200)).await;
            assert!(
                got.contains("<connection-timeout"),
                "slowloris {i} ended without connection-timeout: {got}"
            );
            // The deadline counts from admission, however many bytes trickled in.
            assert!(
                after < Duration::from_secs(NEGOTIATION_SECS + 3),
                "slowloris {i} held its connection for {after:?}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// One raw HTTP/1.1 exchange: (status, body), read as far as `Content-Length` says, or
/// None if the server closed without a response.
async fn http_raw(server: &Running, from: IpAddr, request: Vec<u8>) -> Option<(u16, String)> {
    let mut tcp = connect_tcp_from(server.http_addr.unwrap(), from).await;
    let _ = tcp.write_all(&request).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let response = async {
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
                    return Some((status, body.to_owned()));
                }
            }
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), response)
        .await
        .expect("the HTTP listener neither answered nor closed")
}

fn bosh_post(body: &str) -> Vec<u8> {
    format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ws_get(extra: &str) -> Vec<u8> {
    format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn terminate_condition(body: &str) -> String {
    let el: Element = body
        .parse()
        .unwrap_or_else(|e| panic!("not a BOSH body ({e}): {body}"));
    assert!(el.is("body", NS_HTTPBIND), "{body}");
    assert_eq!(el.attr("type"), Some("terminate"), "{body}");
    el.attr("condition").unwrap_or_default().to_owned()
}

async fn http_attacks(server: Arc<Running>) {
    let from = addr(5, 1);
    let body =
        |attrs: &str, inner: &str| format!("<body xmlns='{NS_HTTPBIND}' {attrs}>{inner}</body>");
    // Not HTTP at all: hyper answers 400 or hangs up.
    let r = http_raw(
        &server,
        from,
        b"\x16\x03\x01 GARBAGE \x00\xff\r\n\r\n".to_vec(),
    )
    .await;
    assert!(matches!(r, None | Some((400, _))), "{r:?}");
    // BOSH bodies: each is answered with its terminal condition.
    let bosh_cases = [
        ("not xml at all <<<".to_owned(), "bad-request"),
        (body("to='localhost'", ""), "bad-request"), // no rid
        (body("rid='x1' to='localhost'", ""), "bad-request"),
        ("<html><body>hi</body></html>".to_owned(), "bad-request"),
        (
            format!("<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'>"),
            "bad-request",
        ),
        (
            format!(
                "<!DOCTYPE body [<!ENTITY a 'aaaa'>]><body xmlns='{NS_HTTPBIND}' rid='1'>&a;</body>"
            ),
            "bad-request",
        ),
        (
            body("rid='1' to='localhost'", &"<a>".repeat(40)),
            "bad-request",
        ),
        (body("rid='7' sid='feedface'", ""), "item-not-found"),
        (
            body(
                "rid='7' to='elsewhere.example' wait='5' hold='1' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'",
                "",
            ),
            "host-unknown",
        ),
    ];
    for (b, want) in bosh_cases {
        let (status, text) = http_raw(&server, from, bosh_post(&b)).await.unwrap();
        assert_eq!(status, 200, "{b}: {text}");
        assert_eq!(terminate_condition(&text), want, "{b}");
    }
    // A declared body larger than the limit: 413 before reading it.
    let huge = b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                 Content-Length: 999999999\r\n\r\n<body";
    assert_eq!(
        http_raw(&server, from, huge.to_vec()).await.map(|r| r.0),
        Some(413)
    );
    // WebSocket upgrades that are not acceptable: 400, no upgrade.
    for extra in [
        "Sec-WebSocket-Version: 13\r\n", // no subprotocol
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: xmpp\r\n", // old version
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, mqtt\r\n", // wrong one
    ] {
        let r = http_raw(&server, from, ws_get(extra)).await;
        assert_eq!(r.map(|r| r.0), Some(400), "{extra}");
    }
    let no_key = b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";
    assert_eq!(
        http_raw(&server, from, no_key.to_vec()).await.map(|r| r.0),
        Some(400)
    );
    // Good upgrades, bad frames: a binary frame, then malformed XML in a text frame.
    for (frame, want) in [
        (WsMessage::binary(vec![0u8, 1, 2, 3]), "bad-format"),
        (WsMessage::text("<<<"), "not-well-formed"),
        (
            WsMessage::text(
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'>",
            ),
            "bad-format",
        ),
    ] {
        let url = format!("ws://{}/xmpp-websocket", server.http_addr.unwrap());
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws.send(frame).await.unwrap();
        let mut texts = String::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            match m {
                WsMessage::Text(t) => texts.push_str(t.as_str()),
                WsMessage::Close(_) => break,
                _ => {}
            }
        }
        assert!(texts.contains(&format!("<{want}")), "{want}: {texts}");
        assert!(texts.contains("<close"), "{texts}");
    }
    // A request head trickled a byte every 300 ms: hyper's 10 s head timeout ends it.
    let tcp = connect_tcp_from(server.http_addr.unwrap(), addr(5, 2)).await;
    let head = b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec();
    let (_, after) = trickle(tcp, head, 1, Duration::from_millis(300)).await;
    assert!(
        after < Duration::from_secs(13),
        "slow HTTP head held {after:?}"
    );
}

/// Opens `per_address` connections from each of `addresses`, each sending a stream header
/// and reading the features; returns them.
async fn open_many(
    server: &Arc<Running>,
    addresses: Vec<IpAddr>,
    per_address: usize,
) -> Vec<Client> {
    let mut tasks = Vec::new();
    for ip in addresses {
        for _ in 0..per_address {
            let server = Arc::clone(server);
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect_from(&server, ip).await;
                let f = c.open_stream().await;
                assert!(f.get_child("starttls", crate::client::NS_TLS).is_some());
                c
            }));
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn many_connections(server: Arc<Running>) {
    let started = Instant::now();
    let addresses: Vec<IpAddr> = (1..=BULK_ADDRESSES).map(|d| addr(6, d)).collect();
    let mut bulk = open_many(&server, addresses, BULK_PER_ADDRESS).await;
    assert_eq!(bulk.len(), 1000);
    eprintln!(
        "1,000 connections open and answered in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    // One address at its limit: 64 admitted, the next ones refused.
    let full = addr(7, 1);
    bulk.extend(open_many(&server, vec![full], Limits::default().connections_per_ip).await);
    for _ in 0..3 {
        let mut c = Client::connect_from(&server, full).await;
        assert_eq!(c.expect_stream_error().await, "policy-violation");
    }
    // They all stay silent until the negotiation deadline ends them.
    let mut tasks = Vec::new();
    for mut c in bulk {
        tasks.push(tokio::spawn(async move {
            assert_eq!(c.expect_stream_error().await, "connection-timeout");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatting_pair_is_undisturbed_by_abuse_and_every_attacker_is_answered() {
    raise_fd_limit();
    let server = Arc::new(
        start_with(Limits {
            negotiation_timeout_secs: NEGOTIATION_SECS,
            auth_failure_delay_ms: 10,
            ..Limits::default()
        })
        .await,
    );
    let mut alice = Client::account(&server, "alice").await;
    let mut bob = Client::account(&server, "bob").await;
    alice.join("calm", "a").await;
    bob.join("calm", "b").await;
    let p = alice.next().await;
    assert_eq!(p.attr("from"), Some("calm@conference.localhost/b"));

    // Before: the pair alone.
    let mut before = Vec::new();
    let mut k = 0u32;
    for _ in 0..BASELINE_ROUNDS {
        before.push(round(&mut alice, &mut bob, k).await);
        k += 1;
        tokio::time::sleep(ROUND_GAP).await;
    }

    // During: the pair goes on while the attacks run.
    let stop = Arc::new(AtomicBool::new(false));
    let pair = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut during = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                during.push(round(&mut alice, &mut bob, k).await);
                k += 1;
                tokio::time::sleep(ROUND_GAP).await;
            }
            (alice, bob, during, k)
        })
    };
    let attack_start = Instant::now();
    let attacks = vec![
        tokio::spawn(malformed_xml_attacks(Arc::clone(&server))),
        tokio::spawn(authenticated_attacks(Arc::clone(&server))),
        tokio::spawn(slowloris_attacks(Arc::clone(&server))),
        tokio::spawn(http_attacks(Arc::clone(&server))),
        tokio::spawn(many_connections(Arc::clone(&server))),
    ];
    let mut failures = Vec::new();
    for (name, t) in ["malformed", "authenticated", "slowloris", "http", "many"]
        .into_iter()
        .zip(attacks)
    {
        if let Err(e) = t.await {
            failures.push(format!("{name}: {e}"));
        }
        eprintln!(
            "attack {name} done after {:.1} s",
            attack_start.elapsed().as_secs_f64()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (mut alice, mut bob, mut during, k) = pair.await.expect("the chatting pair failed");
    assert!(failures.is_empty(), "attack checks failed: {failures:?}");
    eprintln!(
        "attacks done in {:.1} s",
        attack_start.elapsed().as_secs_f64()
    );
    assert!(
        during.len() >= 50,
        "only {} rounds during the attack",
        during.len()
    );

    // Exactly once: the last echo to Bob, then nothing more on either side.
    expect_groupchat(&mut bob, 2 * k - 1, "b").await;
    alice.expect_silence(Duration::from_millis(200)).await;
    bob.expect_silence(Duration::from_millis(10)).await;

    report("before the attack", &mut before);
    report("during the attack", &mut during);

    // The relay is still up and serves a newcomer in the same room.
    let mut carol = Client::account(&server, "carol").await;
    carol.join("calm", "c").await;
    for c in [&mut alice, &mut bob] {
        let p = c.next().await;
        assert_eq!(p.attr("from"), Some("calm@conference.localhost/c"));
    }
}
