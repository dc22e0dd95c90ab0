//! The `cryptocat` binary against the real relay (in-process on loopback): two terminals
//! chat with `--json`, and bad arguments or an unreachable server fail clearly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use cryptocat_relay::{Config, Running, Server};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cryptocat");
const TIMEOUT: Duration = Duration::from_secs(20);

async fn relay(tag: &str) -> Running {
    let mut config = Config::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.state_dir =
        Some(std::env::temp_dir().join(format!("cryptocat-cli-test-{}-{tag}", std::process::id())));
    Server::bind(config).await.unwrap().spawn()
}

struct Terminal {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl Terminal {
    fn start(args: &[&str]) -> Terminal {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Terminal {
            child,
            stdin,
            stdout,
            seen: Vec::new(),
        }
    }

    async fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Reads JSON lines until one matches; every line must be a JSON object with a type.
    async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {:#?}", self.seen))
                .unwrap()
                .unwrap_or_else(|| panic!("output ended waiting for {what}; saw {:#?}", self.seen));
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["type"].is_string(), "no type: {line}");
            self.seen.push(v.clone());
            if pred(&v) {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn two_terminals_chat_with_json_lines() {
    let relay = relay("chat").await;
    let tcp = format!("xmpp://{}", relay.c2s_addr);
    let ws = format!("ws://{}/xmpp-websocket", relay.http_addr.unwrap());
    let ca = relay.tls.certificate_path.to_str().unwrap().to_owned();
    let mut alice = Terminal::start(&[
        "join",
        "--server",
        &tcp,
        "--domain",
        "localhost",
        "--room",
        "Lobby",
        "--nick",
        "alice",
        "--json",
        "--ca-cert",
        &ca,
    ]);
    let joined = alice.expect("joined", |v| v["type"] == "joined").await;
    assert_eq!(joined["room"], "lobby");
    assert_eq!(joined["nick"], "alice");
    let alice_fp = joined["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(alice_fp.len(), 44);

    let mut bob = Terminal::start(&[
        "join",
        "--server",
        &ws,
        "--domain",
        "localhost",
        "--room",
        "lobby",
        "--nick",
        "bob",
        "--json",
    ]);
    let bob_fp = bob.expect("joined", |v| v["type"] == "joined").await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = bob
        .expect("alice", |v| {
            v["type"] == "member_joined" && v["nick"] == "alice"
        })
        .await;
    assert_eq!(seen["fingerprint"], alice_fp.as_str());
    let seen = alice
        .expect("bob", |v| {
            v["type"] == "member_joined" && v["nick"] == "bob"
        })
        .await;
    assert_eq!(seen["fingerprint"], bob_fp.as_str());
    for t in [&mut alice, &mut bob] {
        t.expect("epoch of 2", |v| {
            v["type"] == "rekeyed" && v["members"] == 2
        })
        .await;
    }

    // Group message, its id, and its confirmation by 1 of 1.
    alice.type_line("hello <b>bob</b> \"quoted\"").await;
    let sent = alice.expect("sent", |v| v["type"] == "sent").await;
    let id = sent["id"].as_str().unwrap().to_owned();
    let msg = bob.expect("message", |v| v["type"] == "message").await;
    assert_eq!(msg["nick"], "alice");
    assert_eq!(msg["text"], "hello <b>bob</b> \"quoted\"");
    assert_eq!(msg["private"], false);
    assert_eq!(msg["id"], id.as_str());
    alice
        .expect("confirmation", |v| {
            v["type"] == "confirmation"
                && v["id"] == id.as_str()
                && v["confirmed"] == 1
                && v["of"] == 1
        })
        .await;

    // Private message, /who, /fingerprint, /verify, the secret question.
    bob.type_line("/msg alice just us").await;
    let msg = alice
        .expect("private", |v| {
            v["type"] == "message" && v["private"] == true
        })
        .await;
    assert_eq!(
        (msg["nick"].as_str(), msg["text"].as_str()),
        (Some("bob"), Some("just us"))
    );
    alice.type_line("/who").await;
    let who = alice.expect("members", |v| v["type"] == "members").await;
    assert_eq!(who["members"][0]["nick"], "bob");
    assert_eq!(who["members"][0]["fingerprint"], bob_fp.as_str());
    bob.type_line("/fingerprint alice").await;
    let fp = bob
        .expect("fingerprint", |v| v["type"] == "fingerprint")
        .await;
    assert_eq!(fp["fingerprint"], alice_fp.as_str());
    alice.type_line("/verify bob").await;
    alice
        .expect("verified", |v| {
            v["type"] == "verification" && v["nick"] == "bob" && v["verified"] == true
        })
        .await;
    alice.type_line("/ask bob Favourite colour? Blue").await;
    let q = bob.expect("question", |v| v["type"] == "question").await;
    assert_eq!(q["question"], "Favourite colour?");
    bob.type_line("/answer alice blue").await;
    for t in [&mut alice, &mut bob] {
        t.expect("smp result", |v| {
            v["type"] == "verification" && v["verified"] == true && v["manual"] == false
        })
        .await;
    }

    // A bad command is an error line, and the client carries on.
    bob.type_line("/msg").await;
    let err = bob.expect("error", |v| v["type"] == "error").await;
    assert_eq!(err["code"], "bad_command");
    bob.type_line("/msg nobody hi").await;
    let err = bob.expect("error", |v| v["type"] == "error").await;
    assert_eq!(err["code"], "unknown_nickname");

    // Leaving: the other side is told, and the process exits 0.
    bob.type_line("/leave").await;
    bob.expect("left", |v| v["type"] == "left").await;
    alice
        .expect("bob left", |v| {
            v["type"] == "member_left" && v["nick"] == "bob"
        })
        .await;
    let status = tokio::time::timeout(TIMEOUT, bob.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");

    // End of input leaves too.
    alice.stdin = None;
    alice.expect("left", |v| v["type"] == "left").await;
    let status = tokio::time::timeout(TIMEOUT, alice.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        TIMEOUT,
        Command::new(BIN).args(args).stdin(Stdio::null()).output(),
    )
    .await
    .unwrap()
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_arguments_and_unreachable_servers_fail_clearly() {
    let (code, _, err) = run(&["join", "--room", "r", "--nick", "n"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--server"), "{err}");
    let (code, _, err) = run(&[
        "join",
        "--server",
        "gopher://x",
        "--room",
        "r",
        "--nick",
        "n",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("bad --server"), "{err}");
    let (code, _, err) = run(&[
        "join",
        "--server",
        "xmpp://127.0.0.1:9",
        "--room",
        "a b",
        "--nick",
        "n",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("bad --room"), "{err}");
    let (code, _, err) = run(&[
        "join",
        "--server",
        "xmpp://127.0.0.1:9",
        "--room",
        "r",
        "--nick",
        "n",
        "--ca-cert",
        "/nonexistent.pem",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("bad --ca-cert"), "{err}");
    // Nothing listens on port 9: a clear error, as a JSON line with --json.
    let (code, out, _) = run(&[
        "join",
        "--server",
        "xmpp://127.0.0.1:9",
        "--room",
        "r",
        "--nick",
        "n",
        "--json",
    ])
    .await;
    assert_eq!(code, 1);
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["code"], "unreachable");
    let (code, out, _) = run(&[
        "join",
        "--server",
        "xmpp://127.0.0.1:9",
        "--room",
        "r",
        "--nick",
        "n",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(out.contains("could not connect"), "{out}");
}
