//! Two computers (two network namespaces joined by a veth pair): one hosts a room with the
//! desktop app's embedded relay on the local network (`cryptocat host --local-network`, the
//! same `cryptocat_relay::embedded` code path), the other joins through the invite link
//! alone, with no file copied. Then a relay with another key at the same address: the link's
//! pin refuses it, and a capture on the veth shows that nothing of ours followed the TLS
//! handshake.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cryptocat_link::{Invite, Pin};
use cryptocat_tests::netns::Pair;
use cryptocat_tests::pcap::{conversation, tls_records};
use cryptocat_tests::{binary, tools_present, JsonChild, Killed, TempDir};

#[test]
fn a_friend_on_another_computer_joins_through_the_link_and_a_wrong_server_is_refused() {
    if !tools_present(&["ip", "tcpdump"]) {
        return;
    }
    let Some(net) = Pair::new("invite") else {
        return;
    };
    let cli = binary("cryptocat");
    let server_bin = binary("cryptocat-server");
    let state = TempDir::new("two-computers");

    // Computer A hosts, on its local network.
    let mut alice = JsonChild::start(
        net.a
            .command(&cli)
            .args(["host", "--room", "lobby", "--nick", "alice", "--json"])
            .arg("--local-network")
            .arg("--state-dir")
            .arg(state.join("host")),
        "alice (host)",
    );
    let invite = alice.wait_type("invite");
    let links = invite["links"].as_array().unwrap();
    let link_of = |way: &str| {
        links
            .iter()
            .find(|l| l["way"] == way)
            .and_then(|l| l["link"].as_str())
            .unwrap_or_else(|| panic!("no {way} link in {invite}"))
            .to_owned()
    };
    let lan_link = link_of("local_network");
    let parsed = Invite::parse(&lan_link).unwrap();
    assert_eq!(parsed.room, "lobby");
    // The link names A's address on the veth (nothing else exists in A but loopback), and
    // the relay's key.
    assert_eq!(parsed.access.servers.len(), 1, "{lan_link}");
    let server = &parsed.access.servers[0];
    assert_eq!(server.host, net.a.ip.to_string(), "{lan_link}");
    assert!(server.is_tls());
    assert_eq!(parsed.access.pins.len(), 1);
    let pin = parsed.access.pins[0];
    assert!(!lan_link.contains("nick"), "a link never names a nickname");
    alice.wait_type("joined");

    // Computer B joins with the link alone.
    let mut bob = JsonChild::start(
        net.b
            .command(&cli)
            .args(["join", &lan_link, "--nick", "bob", "--json"]),
        "bob",
    );
    let joined = bob.wait_type("joined");
    assert_eq!(joined["room"], "lobby");
    assert_eq!(joined["server_key"], pin.to_string());
    bob.wait("alice", |v| {
        v["type"] == "member_joined" && v["nick"] == "alice"
    });
    alice.wait("bob", |v| {
        v["type"] == "member_joined" && v["nick"] == "bob"
    });
    alice.wait("two members", |v| {
        v["type"] == "rekeyed" && v["members"] == 2
    });
    bob.wait("two members", |v| {
        v["type"] == "rekeyed" && v["members"] == 2
    });

    alice.line("hello from computer A");
    let got = bob.wait("alice's message", |v| v["type"] == "message");
    assert_eq!(got["text"], "hello from computer A");
    assert_eq!(got["nick"], "alice");
    assert_eq!(got["private"], false);
    let id = got["id"].clone();
    alice.wait("confirmation", |v| {
        v["type"] == "confirmation" && v["id"] == id && v["confirmed"] == 1
    });
    bob.line("/msg alice just for you");
    let private = alice.wait("bob's private message", |v| {
        v["type"] == "message" && v["private"] == true
    });
    assert_eq!(private["text"], "just for you");
    assert_eq!(private["nick"], "bob");
    bob.line("and to the room");
    alice.wait("bob's group message", |v| {
        v["type"] == "message" && v["text"] == "and to the room" && v["private"] == false
    });

    bob.line("/leave");
    assert!(bob.finish().success(), "{:#?}", bob.seen());
    alice.wait("bob left", |v| {
        v["type"] == "member_left" && v["nick"] == "bob"
    });
    alice.line("/leave");
    assert!(alice.finish().success(), "{:#?}", alice.seen());

    // Another relay (another key) at the very address the link names.
    let mut impostor = Killed(
        net.a
            .command(&server_bin)
            .args(["--domain", "localhost", "--c2s"])
            .arg(format!("{}:{}", net.a.ip, server.port))
            .arg("--state-dir")
            .arg(state.join("impostor"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let banner = cryptocat_tests::lines_of(impostor.0.stdout.take().unwrap());
    let mut impostor_pin = None;
    // The banner's invite-link prefix carries the relay's pin.
    while let Ok(line) = banner.recv_timeout(Duration::from_secs(10)) {
        if let Some(at) = line.find("cryptocat://join?") {
            let prefix = line[at..].trim();
            impostor_pin = Invite::parse(&format!("{prefix}x"))
                .ok()
                .and_then(|i| i.access.pins.first().copied());
            break;
        }
    }
    assert!(
        impostor_pin.is_some(),
        "the impostor's banner has no invite link prefix"
    );

    // Watch the wire from B's side.
    let capture_file = state.join("wrong-server.pcap");
    let mut tcpdump = Killed(
        net.b
            .command(std::path::Path::new("tcpdump"))
            .args([
                "-i",
                &net.b.device,
                "--immediate-mode",
                "-U",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&capture_file)
            .args(["tcp", "port", &server.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let tcpdump_err = cryptocat_tests::lines_of(tcpdump.0.stderr.take().unwrap());
    let line = tcpdump_err.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.contains("listening"), "tcpdump: {line}");

    let mut refused = JsonChild::start(
        net.b
            .command(&cli)
            .args(["join", &lan_link, "--nick", "bob", "--json"]),
        "bob (wrong server)",
    );
    let error = refused.wait_type("error");
    let status = refused.finish();
    assert_eq!(status.code(), Some(1), "{error}");
    assert_eq!(error["code"], "unreachable", "{error}");
    assert_eq!(error["reason"], "wrong_server", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("not the one the invite names"),
        "{message}"
    );
    let seen: Pin = error["seen_key"].as_str().unwrap().parse().unwrap();
    assert_ne!(seen, pin);
    if let Some(p) = impostor_pin {
        assert_eq!(seen, p, "the error names the key the impostor showed");
    }
    assert!(
        !refused.seen().iter().any(|v| v["type"] == "joined"),
        "{:#?}",
        refused.seen()
    );

    // Let tcpdump write the last packets (immediate mode), then stop it.
    std::thread::sleep(Duration::from_millis(1000));
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tcpdump.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(tcpdump);
    drop(impostor);
    let capture = std::fs::read(&capture_file).unwrap();
    check_nothing_after_the_handshake(&capture, (net.a.ip, server.port));
}

/// The client sent, in clear, only the stream header and `<starttls/>`; after its TLS
/// ClientHello, nothing but what ends a refused handshake (an alert, at most a
/// change-cipher-spec): no application data, so no SASL, registration or key.
fn check_nothing_after_the_handshake(capture: &[u8], server: (std::net::Ipv4Addr, u16)) {
    let conv = conversation(capture, server);
    assert!(conv.connections >= 1, "the capture holds no connection");
    let hello = conv
        .client
        .windows(2)
        .position(|w| w == [0x16, 0x03])
        .expect("no TLS ClientHello from the client");
    let clear = String::from_utf8_lossy(&conv.client[..hello]);
    assert!(clear.contains("<stream:stream"), "{clear}");
    assert!(clear.contains("<starttls"), "{clear}");
    for word in ["<auth", "<iq", "<presence", "<message", "<response"] {
        assert!(!clear.contains(word), "sent in clear: {clear}");
    }
    let records = tls_records(&conv.client[hello..]);
    assert_eq!(records.first().map(|r| r.kind), Some(22), "{records:?}");
    let after: Vec<_> = records.iter().skip(1).collect();
    for r in &after {
        // TLS 1.3 encrypts the alert under the handshake keys: it travels as an
        // application-data record of 2 + 1 + 16 bytes. Anything longer would be data.
        let ends_handshake = r.kind == 21 || r.kind == 20 || (r.kind == 23 && r.len <= 19);
        assert!(
            ends_handshake,
            "the client sent more than an alert after the handshake: {after:?}"
        );
    }
    let bytes: usize = after.iter().map(|r| 5 + r.len).sum();
    assert!(
        bytes <= 64,
        "{bytes} bytes after the ClientHello: {after:?}"
    );
    eprintln!(
        "capture: {} bytes in clear before TLS, a {}-byte ClientHello, then {:?}",
        hello,
        records[0].len + 5,
        after
    );
}
