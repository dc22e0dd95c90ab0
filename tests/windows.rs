//! Windows and Linux together: `cryptocat.exe` (x86_64-pc-windows-gnu, under Wine) chats
//! with the Linux `cryptocat` through the Linux relay over TCP, WebSocket and BOSH (each
//! with TLS and the relay's pin), and `cryptocat-server.exe` under Wine serves Linux
//! clients over all three. Everything is read from the clients' JSON streams.
//!
//! Needs Wine, mingw-w64 and the Windows build
//! (`cargo build --target x86_64-pc-windows-gnu -p cryptocat-cli -p cryptocat-server`);
//! skipped with a notice without them unless `CRYPTOCAT_REQUIRE_INTEROP=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;
use std::time::Duration;

use cryptocat_tests::relay::Relay;
use cryptocat_tests::{binary, wine, JsonChild};
use serde_json::Value;

/// Text that must come through unchanged between the two systems' consoles and pipes.
const GROUP_TEXT: &str = "héllo ✓ from a window 🐈 \"quoted\" & <tagged>";

/// Where a client goes.
struct Server {
    url: String,
    pin: String,
}

impl Server {
    fn of(relay: &Relay, transport: &str) -> Self {
        assert!(relay.https, "the cases run over TLS");
        let url = match transport {
            "tcp" => format!("xmpp://127.0.0.1:{}", relay.c2s_port),
            "wss" => format!("wss://127.0.0.1:{}/xmpp-websocket", relay.http_port),
            "bosh" => format!("https://127.0.0.1:{}/http-bind", relay.http_port),
            other => panic!("no transport {other}"),
        };
        Self {
            url,
            pin: relay.pin.to_string(),
        }
    }
}

/// `cryptocat join --json` with `command` (the Linux or the Windows program).
fn join(mut command: Command, server: &Server, room: &str, nick: &str, label: &str) -> JsonChild {
    command.args(["join", "--server", &server.url, "--domain", "localhost"]);
    command.args([
        "--pin",
        &server.pin,
        "--room",
        room,
        "--nick",
        nick,
        "--json",
    ]);
    JsonChild::start(&mut command, label)
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == kind
}

/// Two members chat: group messages both ways (decrypted and confirmed), a private message
/// each way (seen by its recipient only), fingerprints that agree, then `b` leaves and
/// both exit 0. `a` has joined.
fn chat(a: &mut JsonChild, b: &mut JsonChild, a_nick: &str, b_nick: &str) {
    let a_joined = a.wait("joined", is("joined"));
    let b_joined = b.wait("joined", is("joined"));
    for c in [&mut *a, &mut *b] {
        c.wait("two members", |v| {
            v["type"] == "rekeyed" && v["members"] == 2
        });
    }
    // Each sees the other's fingerprint as the other reports it.
    let b_seen = a.wait("b", |v| v["type"] == "member_joined" && v["nick"] == b_nick);
    assert_eq!(b_seen["fingerprint"], b_joined["fingerprint"]);
    let a_seen = b.wait("a", |v| v["type"] == "member_joined" && v["nick"] == a_nick);
    assert_eq!(a_seen["fingerprint"], a_joined["fingerprint"]);

    a.line(GROUP_TEXT);
    let m = b.wait("a's message", |v| {
        v["type"] == "message" && v["nick"] == a_nick
    });
    assert_eq!(m["text"], GROUP_TEXT);
    assert_eq!(m["private"], false);
    a.wait("confirmed", |v| {
        v["type"] == "confirmation" && v["confirmed"] == 1 && v["of"] == 1
    });
    b.line("and back from the other side");
    let m = a.wait("b's message", |v| {
        v["type"] == "message" && v["nick"] == b_nick
    });
    assert_eq!(m["text"], "and back from the other side");
    b.wait("confirmed", |v| {
        v["type"] == "confirmation" && v["confirmed"] == 1 && v["of"] == 1
    });

    a.line(&format!("/msg {b_nick} psst from {a_nick}"));
    let p = b.wait("a's private message", |v| {
        v["type"] == "message" && v["private"] == true
    });
    assert_eq!(p["text"], format!("psst from {a_nick}"));
    assert_eq!(p["nick"], a_nick);
    b.line(&format!("/msg {a_nick} psst from {b_nick}"));
    let p = a.wait("b's private message", |v| {
        v["type"] == "message" && v["private"] == true
    });
    assert_eq!(p["text"], format!("psst from {b_nick}"));

    b.line("/leave");
    a.wait("b leaving", |v| {
        v["type"] == "member_left" && v["nick"] == b_nick
    });
    for c in [&mut *b, &mut *a] {
        let status = c.finish();
        assert!(status.success(), "exit status {status}: {:?}", c.seen());
        c.wait("left", is("left"));
    }
    // Each private message reached its recipient only.
    for (c, nick) in [(&*a, a_nick), (&*b, b_nick)] {
        assert!(
            !c.seen()
                .iter()
                .any(|v| v["type"] == "message" && v["text"] == format!("psst from {nick}")),
            "{nick}'s private message came back to them"
        );
    }
}

/// `cryptocat.exe` under Wine and the Linux `cryptocat` in one room on the Linux relay.
fn windows_client_with_linux_client(transport: &str) {
    if !wine::ready(&["cryptocat"]) {
        return;
    }
    let relay = Relay::start(&format!("wine-cli-{transport}"), true);
    let server = Server::of(&relay, transport);
    let room = format!("wine-{transport}");
    let mut alice = join(
        wine::command("cryptocat"),
        &server,
        &room,
        "alice",
        &format!("alice (cryptocat.exe, {transport})"),
    );
    // The first Windows program of a run may be making the Wine prefix.
    let joined = alice.wait_within("joined", wine::FIRST_START, is("joined"));
    assert_eq!(joined["server_key"], server.pin.as_str());
    let mut bob = join(
        Command::new(binary("cryptocat")),
        &server,
        &room,
        "bob",
        &format!("bob (Linux, {transport})"),
    );
    chat(&mut alice, &mut bob, "alice", "bob");
}

#[test]
fn windows_cli_chats_with_linux_cli_over_tcp() {
    windows_client_with_linux_client("tcp");
}

#[test]
fn windows_cli_chats_with_linux_cli_over_websocket() {
    windows_client_with_linux_client("wss");
}

#[test]
fn windows_cli_chats_with_linux_cli_over_bosh() {
    windows_client_with_linux_client("bosh");
}

/// `cryptocat-server.exe` under Wine: two Linux clients on different transports in one
/// room (TCP and WebSocket), two more over BOSH in another; then ctrl-c (SIGINT, which
/// Wine hands to the console's control handler) shuts it down with status 0.
#[test]
fn windows_relay_serves_linux_clients() {
    if !wine::ready(&["cryptocat-server"]) {
        return;
    }
    let mut relay = Relay::start_windows("wine-relay", true);
    let cli = binary("cryptocat");
    let start = |transport: &str, room: &str, nick: &str| {
        join(
            Command::new(&cli),
            &Server::of(&relay, transport),
            room,
            nick,
            &format!("{nick} (Linux, {transport}, cryptocat-server.exe)"),
        )
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut alice = start("tcp", "mixed", "alice");
            let mut bob = start("wss", "mixed", "bob");
            chat(&mut alice, &mut bob, "alice", "bob");
        });
        s.spawn(|| {
            let mut carol = start("bosh", "bosh", "carol");
            let mut dave = start("bosh", "bosh", "dave");
            chat(&mut carol, &mut dave, "carol", "dave");
        });
    });
    let status = relay
        .interrupt(Duration::from_secs(20))
        .expect("cryptocat-server.exe did not stop on ctrl-c");
    assert!(status.success(), "cryptocat-server.exe: {status}");
}
