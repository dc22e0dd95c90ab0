//! One case of the stock-server suite: three `cryptocat join --json` clients in one room
//! on one server over one transport. Group messages decrypted and confirmed by all, a
//! private message seen only by its recipient, a `/leave` seen by the others within 2 s,
//! and every client leaving cleanly. The caller checks what the server kept.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cryptocat_link::Pin;

use crate::JsonChild;

/// How long a leave may take to reach the others.
pub const LEAVE_WITHIN: Duration = Duration::from_secs(2);

/// Where the clients go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's name in the table.
    pub server: &'static str,
    /// The transport's name in the table (`tcp`, `ws`, `wss`, `bosh`, `bosh-tls`).
    pub transport: &'static str,
    /// `--server`.
    pub url: String,
    /// `--domain`, when the URL's host is not the XMPP domain.
    pub domain: Option<String>,
    /// `--pin`: the server's key.
    pub pin: Option<Pin>,
    /// Whether the server is one of ours (no `server_guarantees` warning expected).
    pub ours: bool,
}

/// What one case measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The time from the first client's start to the last client's exit.
    pub total: Duration,
    /// The time from `/leave` to the others seeing the leaver go (the slower of the two).
    pub leave: Duration,
}

/// Runs the case in room `room`; `Err` with what went wrong.
pub fn three_clients(cli: &Path, target: &Target, room: &str) -> Result<Outcome, String> {
    let cli = cli.to_owned();
    let target = target.clone();
    let room = room.to_owned();
    std::panic::catch_unwind(AssertUnwindSafe(move || run(&cli, &target, &room))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned())
    })
}

fn client(cli: &PathBuf, target: &Target, room: &str, nick: &str) -> JsonChild {
    let mut command = Command::new(cli);
    command.args([
        "join",
        "--server",
        &target.url,
        "--room",
        room,
        "--nick",
        nick,
        "--json",
    ]);
    if let Some(domain) = &target.domain {
        command.args(["--domain", domain]);
    }
    if let Some(pin) = &target.pin {
        command.args(["--pin", &pin.to_string()]);
    }
    let label = format!("{nick}@{}/{}", target.server, target.transport);
    JsonChild::start(&mut command, &label)
}

fn run(cli: &PathBuf, target: &Target, room: &str) -> Outcome {
    let started = Instant::now();
    let mut people: Vec<JsonChild> = Vec::new();
    for nick in ["alice", "bob", "carol"] {
        let mut c = client(cli, target, room, nick);
        c.wait_type("joined");
        people.push(c);
    }
    for c in &mut people {
        c.wait("three members", |v| {
            v["type"] == "rekeyed" && v["members"] == 3
        });
    }
    let [alice, bob, carol] = &mut people[..] else {
        unreachable!()
    };
    for c in [&mut *alice, &mut *bob, &mut *carol] {
        let warned = c
            .seen()
            .iter()
            .any(|v| v["type"] == "warning" && v["code"] == "server_guarantees");
        assert_eq!(
            warned,
            !target.ours,
            "server_guarantees warning: {:?}",
            c.seen()
        );
    }

    alice.line("hello from alice");
    for c in [&mut *bob, &mut *carol] {
        let m = c.wait("alice's message", |v| {
            v["type"] == "message" && v["text"] == "hello from alice"
        });
        assert_eq!(m["nick"], "alice");
        assert_eq!(m["private"], false);
    }
    alice.wait("confirmed by both", |v| {
        v["type"] == "confirmation" && v["confirmed"] == 2 && v["of"] == 2
    });
    bob.line("and from bob");
    for c in [&mut *alice, &mut *carol] {
        c.wait("bob's message", |v| {
            v["type"] == "message" && v["text"] == "and from bob"
        });
    }
    bob.wait("confirmed by both", |v| {
        v["type"] == "confirmation" && v["confirmed"] == 2 && v["of"] == 2
    });
    bob.line("/msg carol only for carol");
    let p = carol.wait("bob's private message", |v| {
        v["type"] == "message" && v["private"] == true
    });
    assert_eq!(p["text"], "only for carol");
    assert_eq!(p["nick"], "bob");

    let leave_sent = Instant::now();
    carol.line("/leave");
    let mut leave = Duration::ZERO;
    for c in [&mut *alice, &mut *bob] {
        c.wait("carol leaving", |v| {
            v["type"] == "member_left" && v["nick"] == "carol"
        });
        leave = leave.max(leave_sent.elapsed());
    }
    assert!(
        leave <= LEAVE_WITHIN,
        "carol's leave took {leave:?} to reach the others"
    );
    // Carol has left; the end of their input makes the others leave.
    for c in [&mut *carol, &mut *bob, &mut *alice] {
        let status = c.finish();
        assert!(status.success(), "exit status {status}: {:?}", c.seen());
    }
    // The private message reached carol only.
    for c in [&*alice, &*bob] {
        assert!(
            !c.seen().iter().any(|v| v["text"] == "only for carol"),
            "the private message reached someone else"
        );
    }
    Outcome {
        total: started.elapsed(),
        leave,
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    /// Server.
    pub server: &'static str,
    /// Transport.
    pub transport: &'static str,
    /// The result of each run.
    pub runs: Vec<Result<Outcome, String>>,
    /// What the server kept afterwards (accounts), `None` when not checked.
    pub accounts_left: Option<usize>,
}

/// Every failed run of `rows`, as `server transport: why`.
pub fn failures(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            r.runs
                .iter()
                .filter_map(|o| o.as_ref().err())
                .map(move |e| format!("{} {}: {e}", r.server, r.transport))
        })
        .collect()
}

/// Prints the table the issue asks for, one line per server and transport.
pub fn print_table(rows: &[Row]) {
    println!("| server | transport | runs ok | slowest run | slowest leave | accounts left |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        let ok = row.runs.iter().filter(|r| r.is_ok()).count();
        let slowest = row
            .runs
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|o| o.total)
            .max()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or_else(|| "-".into());
        let leave = row
            .runs
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|o| o.leave)
            .max()
            .map(|d| format!("{} ms", d.as_millis()))
            .unwrap_or_else(|| "-".into());
        let accounts = row
            .accounts_left
            .map(|n| n.to_string())
            .unwrap_or_else(|| "n/a (key login)".into());
        println!(
            "| {} | {} | {ok}/{} | {slowest} | {leave} | {accounts} |",
            row.server,
            row.transport,
            row.runs.len()
        );
        for e in row.runs.iter().filter_map(|r| r.as_ref().err()) {
            println!(
                "|   | failed: {} | | | | |",
                e.lines().next().unwrap_or_default()
            );
        }
    }
}
