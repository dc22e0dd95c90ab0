//! Issue 14, rows 6 to 9: each attack on the relay replayed, with the bound it must meet
//! asserted on the relay's own counts ([`Running::retained`]) or on what the attacker
//! sees (refusals, closed connections). Deadlines are configured short and only outcomes
//! are asserted, never durations.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use minidom::Element;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::client::{connect_tcp_from, payload_text, Client};
use crate::{groupchat, payload, start_with};
use cryptocat_relay::{Config, Limits, Running, Server};

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

/// Waits until `pred` holds, polling for up to 20 s (a liveness bound, not a timing
/// assertion: the outcome is what is checked).
pub(crate) async fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    for _ in 0..400 {
        if pred() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// One HTTP/1.1 request on a kept-alive connection; returns (status, body).
async fn request(tcp: &mut TcpStream, head: &str, body: &str) -> (u16, String) {
    let req = format!("{head}Content-Length: {}\r\n\r\n{body}", body.len());
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if rest.len() >= len {
                let status = head[9..12].parse().unwrap();
                return (status, rest[..len].to_owned());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("no HTTP response")
            .unwrap();
        assert!(n > 0, "connection closed: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Creates a BOSH session through a (loopback) proxy for `client`; the session id, or the
/// terminate condition.
async fn bosh_session_for(tcp: &mut TcpStream, client: IpAddr) -> Result<String, String> {
    let head = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
         X-Forwarded-For: {client}\r\n"
    );
    let body = format!(
        "<body xmlns='{NS_HTTPBIND}' rid='100' to='localhost' wait='5' hold='1' ver='1.6' \
         xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
    );
    let (status, text) = request(tcp, &head, &body).await;
    assert_eq!(status, 200, "{text}");
    let el: Element = text.parse().unwrap();
    match el.attr("sid") {
        Some(sid) => Ok(sid.to_owned()),
        None => Err(el.attr("condition").unwrap_or_default().to_owned()),
    }
}

fn in_64(prefix: u16, host: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, prefix, host, 0, 0, host))
}

fn http(server: &Running) -> SocketAddr {
    server.http_addr.unwrap()
}

/// Row 9: a host with a /64 gets one address's budget, not one per address.
#[tokio::test]
async fn ipv6_addresses_of_one_64_share_one_budget() {
    let server = start_with(Limits {
        bosh_sessions_per_ip: 4,
        connections_per_ip: 6,
        ..Limits::default()
    })
    .await;
    let mut proxy = TcpStream::connect(http(&server)).await.unwrap();
    // Four addresses of one /64: the BOSH budget of one address.
    for host in 1..=4 {
        bosh_session_for(&mut proxy, in_64(1, host)).await.unwrap();
    }
    for host in 5..=8 {
        assert_eq!(
            bosh_session_for(&mut proxy, in_64(1, host)).await,
            Err("policy-violation".to_owned()),
            "a 5th session from the /64"
        );
    }
    assert_eq!(server.retained().bosh_sessions, 4);
    // Another /64 has its own budget.
    bosh_session_for(&mut proxy, in_64(2, 1)).await.unwrap();
    // The connection budget (shared with WebSocket and TCP) is per /64 too: 4 of its 6
    // are BOSH sessions, so two WebSocket streams fit and a third is refused.
    let _a = websocket_as(&server, in_64(1, 20)).await.unwrap();
    let _b = websocket_as(&server, in_64(1, 21)).await.unwrap();
    assert_eq!(
        websocket_as(&server, in_64(1, 22)).await.err().as_deref(),
        Some("policy-violation")
    );
    assert_eq!(server.retained().sessions, 4 + 1 + 2);
}

/// Row 9: an IPv4-mapped IPv6 client address is its IPv4 address.
#[tokio::test]
async fn ipv4_mapped_addresses_count_as_ipv4() {
    let server = start_with(Limits {
        bosh_sessions_per_ip: 2,
        ..Limits::default()
    })
    .await;
    let mut proxy = TcpStream::connect(http(&server)).await.unwrap();
    let v4: IpAddr = "198.51.100.7".parse().unwrap();
    let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
    bosh_session_for(&mut proxy, v4).await.unwrap();
    bosh_session_for(&mut proxy, mapped).await.unwrap();
    assert_eq!(
        bosh_session_for(&mut proxy, v4).await,
        Err("policy-violation".to_owned())
    );
    assert_eq!(
        bosh_session_for(&mut proxy, mapped).await,
        Err("policy-violation".to_owned())
    );
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket XMPP stream through a (loopback) proxy for `client`: the stream once
/// its features came, or the stream error's condition.
async fn websocket_as(server: &Running, client: IpAddr) -> Result<Ws, String> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{}/xmpp-websocket", http(server));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    req.headers_mut()
        .insert("X-Forwarded-For", client.to_string().parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame");
        let Some(Ok(Message::Text(t))) = m else {
            panic!("closed without a stream error: {frames:?}");
        };
        let el: Element = t.as_str().parse().unwrap();
        if el.name() == "features" {
            return Ok(ws);
        }
        if el.name() == "error" {
            return Err(el
                .children()
                .find(|c| c.name() != "text")
                .map(|c| c.name().to_owned())
                .unwrap_or_default());
        }
        frames.push(t.as_str().to_owned());
    }
}

async fn start_https(limits: Limits) -> Running {
    let mut config = Config::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http_tls = Some(true);
    config.state_dir = Some(
        std::env::temp_dir().join(format!("cryptocat-relay-test-{}-https", std::process::id())),
    );
    config.limits = limits;
    Server::bind(config).await.unwrap().spawn()
}

/// Reads until the relay closes the connection; what it sent. Panics if it stays open.
async fn closed_by_relay(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the relay kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the relay still holds the connection open (nothing to read, no EOF) now.
async fn still_open(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf))
        .await
        .is_err()
}

/// Row 6: raw connections to the plain HTTP listener are counted per address and in
/// total from accept, and refused at once past either limit; a WebSocket keeps its place.
#[tokio::test]
async fn http_connections_are_refused_past_the_per_address_and_total_limits() {
    let server = start_with(Limits {
        http_connections_per_ip: 3,
        http_connections: 5,
        ..Limits::default()
    })
    .await;
    let a = "127.0.6.1".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_tcp_from(http(&server), a).await);
    }
    eventually("3 counted", || server.retained().http_connections == 3).await;
    // The 4th from the address: a 503 and closed, never counted.
    let mut fourth = connect_tcp_from(http(&server), a).await;
    let said = closed_by_relay(&mut fourth).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");
    // Another address has its own budget, up to the listener's total.
    let b = "127.0.6.2".parse().unwrap();
    held.push(connect_tcp_from(http(&server), b).await);
    held.push(connect_tcp_from(http(&server), b).await);
    eventually("5 counted", || server.retained().http_connections == 5).await;
    let mut over = connect_tcp_from(http(&server), "127.0.6.3".parse().unwrap()).await;
    assert!(closed_by_relay(&mut over).await.starts_with("HTTP/1.1 503"));
    assert_eq!(server.retained().http_connections, 5);
    for c in &mut held {
        assert!(still_open(c).await, "an admitted connection was closed");
    }
    // A place is given back when its connection ends.
    held.clear();
    eventually("all released", || server.retained().http_connections == 0).await;

    // WebSocket streams keep their place after the upgrade: three from 127.0.0.1, then
    // the fourth is refused before any HTTP is read.
    let mut ws = Vec::new();
    for _ in 0..3 {
        let (c, _) = crate::web::WsClient::connect(&server).await;
        ws.push(c);
    }
    assert_eq!(server.retained().http_connections, 3);
    let url = format!("ws://{}/xmpp-websocket", http(&server));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    assert_eq!(server.retained().sessions, 3);
}

/// Row 6: HTTPS connections are counted before their TLS handshake, refused past the
/// limit (closed, nothing sent), and a handshake that never comes ends at its deadline.
#[tokio::test]
async fn tls_handshakes_are_counted_and_have_a_deadline() {
    let server = start_https(Limits {
        http_connections_per_ip: 2,
        tls_handshake_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let a = "127.0.7.1".parse().unwrap();
    let mut idle = vec![
        connect_tcp_from(http(&server), a).await,
        connect_tcp_from(http(&server), a).await,
    ];
    eventually("2 counted", || server.retained().http_connections == 2).await;
    let mut third = connect_tcp_from(http(&server), a).await;
    assert_eq!(
        closed_by_relay(&mut third).await,
        "",
        "refused without a byte"
    );
    assert_eq!(server.retained().http_connections, 2);
    // Neither ever sends a ClientHello: both are closed at the handshake deadline.
    for c in &mut idle {
        closed_by_relay(c).await;
    }
    eventually("released", || server.retained().http_connections == 0).await;
}

/// Row 6: a request head that never ends is cut at the head deadline.
#[tokio::test]
async fn a_request_head_has_a_deadline() {
    let server = start_with(Limits {
        http_head_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let mut tcp = TcpStream::connect(http(&server)).await.unwrap();
    tcp.write_all(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nX-Slow: a")
        .await
        .unwrap();
    closed_by_relay(&mut tcp).await;
    eventually("released", || server.retained().http_connections == 0).await;
}

/// Row 9: the hub's total cap applies to TCP streams from any address.
#[tokio::test]
async fn tcp_streams_are_refused_past_the_total() {
    let server = start_with(Limits {
        connections: 2,
        ..Limits::default()
    })
    .await;
    let mut a = Client::connect_from(&server, "127.0.8.1".parse().unwrap()).await;
    a.open_stream().await;
    let mut b = Client::connect_from(&server, "127.0.8.2".parse().unwrap()).await;
    b.open_stream().await;
    let mut c = Client::connect_from(&server, "127.0.8.3".parse().unwrap()).await;
    assert_eq!(c.expect_stream_error().await, "policy-violation");
    assert_eq!(server.retained().sessions, 2);
}

/// Row 7: a BOSH body that comes too slowly is cut off at the whole request's deadline,
/// however steadily its bytes trickle, and the bytes it had sent are freed.
#[tokio::test]
async fn a_slow_bosh_body_is_cut_off_and_its_bytes_freed() {
    let server = start_with(Limits {
        http_request_timeout_secs: 2,
        ..Limits::default()
    })
    .await;
    let head = "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
                Content-Length: 100000\r\n\r\n";
    // One sends 50,000 bytes at once and stalls; one trickles a byte every 100 ms, so no
    // single read ever waits long.
    let mut stalled = TcpStream::connect(http(&server)).await.unwrap();
    let mut first = head.as_bytes().to_vec();
    first.resize(first.len() + 50_000, b' ');
    stalled.write_all(&first).await.unwrap();
    eventually("the body bytes are counted", || {
        server.retained().http_body_bytes >= 50_000
    })
    .await;
    let trickling = TcpStream::connect(http(&server)).await.unwrap();
    let (mut rd, mut wr) = trickling.into_split();
    let trickle = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..200 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let said = closed_by_relay(&mut stalled).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said:?}");
    // The trickler is closed too (its last unread byte may turn the close into a reset,
    // which can swallow the 408, so only its start is checked when it arrived).
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut got)).await;
    assert!(ended.is_ok(), "the trickling request was never cut off");
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"));
    trickle.abort();
    eventually("bytes and connections freed", || {
        let r = server.retained();
        r.http_body_bytes == 0 && r.http_connections == 0
    })
    .await;
}

/// A group message of about `kib` KiB of base64.
fn big_payload(seed: u8, kib: usize) -> String {
    cryptocat_protocol::group::wire::GroupMessage {
        epoch: [seed; 16],
        sender: 1,
        index: u32::from(seed),
        prev_hash: [seed; 32],
        ciphertext: vec![seed; kib * 768],
        macs: vec![[seed; 16]; 2],
    }
    .to_base64()
}

/// Alice sends one message to the room; she and Bob each read up to it.
async fn round(alice: &mut Client, bob: &mut Client, room: &str, b64: &str) {
    alice.send(&groupchat(room, &payload(b64))).await;
    for c in [alice, bob] {
        loop {
            let m = c.next().await;
            if payload_text(&m).as_deref() == Some(b64) {
                break;
            }
        }
    }
}

fn flood_limits() -> Limits {
    Limits {
        stanzas_per_second: 100_000,
        stanza_burst: 100_000,
        outbox_bytes: 1024 * 1024,
        ..Limits::default()
    }
}

/// Row 8: a WebSocket client that stops reading is dropped once its outbox is full, what
/// it held is freed, and the honest pair in its room keeps chatting.
#[tokio::test]
async fn a_stalled_websocket_client_is_dropped_once_its_outbox_is_full() {
    let server = start_with(flood_limits()).await;
    let mut alice = Client::account(&server, "alice").await;
    let mut bob = Client::account(&server, "bob").await;
    alice.join("busy", "a").await;
    bob.join("busy", "b").await;
    // The staller: a tiny receive buffer, so that the relay's writes block early.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(http(&server)).await.unwrap();
    let (mut staller, _) = crate::web::WsClient::connect_over(tcp, &server).await;
    crate::web::account(&mut staller, "staller").await;
    crate::web::join(&mut staller, "busy", "s").await;
    assert_eq!(server.retained().sessions, 3);
    // It reads nothing more. 87 KB messages: the 1 MiB outbox holds about 12 of them
    // beyond what the sockets buffer.
    let mut sent = 0u8;
    while server.retained().sessions == 3 {
        assert!(sent < 200, "the staller was never dropped");
        round(&mut alice, &mut bob, "busy", &big_payload(sent, 64)).await;
        sent += 1;
    }
    eventually("the staller's outbox is freed", || {
        server.retained().outbox_bytes == 0
    })
    .await;
    // Its connection is closed: after what the sockets held, the stream ends.
    let mut frames = 0;
    while staller.frame().await.is_some() {
        frames += 1;
        assert!(frames < 1000);
    }
    // The pair goes on.
    for seed in 0..5 {
        round(&mut alice, &mut bob, "busy", &big_payload(seed, 1)).await;
    }
    assert_eq!(server.retained().sessions, 2);
}

/// Row 8: a BOSH client that stops polling is ended once its queue is full (not after
/// `bosh_inactivity_secs`), and what it held is freed.
#[tokio::test]
async fn a_bosh_client_that_stops_polling_is_ended_once_its_queue_is_full() {
    let server = start_with(flood_limits()).await;
    let mut alice = Client::account(&server, "alice").await;
    let mut bob = Client::account(&server, "bob").await;
    alice.join("busy", "a").await;
    bob.join("busy", "b").await;
    let (mut idle, _) = crate::web::BoshClient::connect(&server).await;
    crate::web::Xmpp::next(&mut idle).await; // the features
    crate::web::account(&mut idle, "idler").await;
    crate::web::join(&mut idle, "busy", "i").await;
    assert_eq!(server.retained().bosh_sessions, 1);
    let mut sent = 0u8;
    while server.retained().bosh_sessions == 1 {
        assert!(sent < 30, "the idle BOSH session was never ended");
        round(&mut alice, &mut bob, "busy", &big_payload(sent, 64)).await;
        sent += 1;
    }
    eventually("its queue is freed", || server.retained().outbox_bytes == 0).await;
    assert_eq!(server.retained().sessions, 2);
    round(&mut alice, &mut bob, "busy", &big_payload(1, 1)).await;
}

/// Row 8: a TCP client that stops reading while its outbox still has room is dropped at
/// the write deadline (not after the 10-minute idle timeout), and its session ends.
#[tokio::test]
async fn a_tcp_client_that_stops_reading_is_dropped_at_the_write_deadline() {
    let server = start_with(Limits {
        write_timeout_secs: 1,
        outbox_bytes: 64 * 1024 * 1024,
        ..flood_limits()
    })
    .await;
    let mut alice = Client::account(&server, "alice").await;
    let mut bob = Client::account(&server, "bob").await;
    alice.join("busy", "a").await;
    bob.join("busy", "b").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut staller = Client::account_on(Client::connect_socket(&server, socket).await, "st").await;
    staller.join("busy", "s").await;
    // Enough to fill the sockets' buffers (the relay's may grow to 4 MB), far from
    // filling the outbox.
    for seed in 0..150 {
        if server.retained().sessions == 2 {
            break;
        }
        round(&mut alice, &mut bob, "busy", &big_payload(seed, 64)).await;
    }
    eventually("the staller is dropped", || server.retained().sessions == 2).await;
    eventually("its outbox is freed", || {
        server.retained().outbox_bytes == 0
    })
    .await;
    round(&mut alice, &mut bob, "busy", &big_payload(1, 1)).await;
}

/// Row 8: a held BOSH response that its client does not read is dropped at the write
/// deadline, with the connection it held.
#[tokio::test]
async fn an_unread_bosh_response_is_dropped_at_the_write_deadline() {
    let server = start_with(Limits {
        write_timeout_secs: 1,
        outbox_bytes: 64 * 1024 * 1024,
        http_head_timeout_secs: 600,
        http_request_timeout_secs: 600,
        ..flood_limits()
    })
    .await;
    let mut alice = Client::account(&server, "alice").await;
    let mut bob = Client::account(&server, "bob").await;
    alice.join("busy", "a").await;
    bob.join("busy", "b").await;
    let (mut reader, _) = crate::web::BoshClient::connect(&server).await;
    crate::web::Xmpp::next(&mut reader).await; // the features
    crate::web::account(&mut reader, "reader").await;
    crate::web::join(&mut reader, "busy", "r").await;
    // About 5 MB waits for the BOSH client, more than the sockets can buffer.
    for seed in 0..60 {
        round(&mut alice, &mut bob, "busy", &big_payload(seed, 64)).await;
    }
    eventually("the BOSH requests are done", || {
        server.retained().http_connections == 0
    })
    .await;
    // One request takes it all as its response, and is never read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut poll = socket.connect(http(&server)).await.unwrap();
    let body = format!(
        "<body xmlns='{NS_HTTPBIND}' rid='{}' sid='{}'/>",
        reader.rid + 1,
        reader.sid
    );
    poll.write_all(
        format!(
            "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    eventually("the response took what waited", || {
        server.retained().outbox_bytes == 0
    })
    .await;
    eventually("the unread connection is dropped", || {
        server.retained().http_connections == 0
    })
    .await;
    drop(poll);
}
