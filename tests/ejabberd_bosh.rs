//! BOSH against stock ejabberd, several times in a row, plain (`http://…/bosh`) and with
//! TLS (`https://…/bosh`, trusted by its key pin): three `cryptocat join --json` clients
//! in a room, group messages decrypted and confirmed by both others, a private message
//! seen by its recipient only, and a `/leave` seen by the others within 2 s. Flakiness was
//! the bug here (issue 13: ejabberd parked a request that overtook the one before it, and
//! a leave was cut off by the CLI's exit), so every run must pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cryptocat_link::Pin;
use cryptocat_tests::ejabberd::{Ejabberd, DOMAIN};
use cryptocat_tests::{binary, JsonChild};

/// Runs per transport.
const RUNS: usize = 3;
/// How long a leave may take to reach the others (issue 13).
const LEAVE_WITHIN: Duration = Duration::from_secs(2);

fn client(cli: &Path, url: &str, pin: Option<Pin>, room: &str, nick: &str) -> JsonChild {
    let mut command = Command::new(cli);
    command
        .args(["join", "--server", url, "--domain", DOMAIN, "--room", room])
        .args(["--nick", nick, "--json"]);
    if let Some(pin) = pin {
        command.args(["--pin", &pin.to_string()]);
    }
    JsonChild::start(&mut command, &format!("{nick} ({url})"))
}

fn three_clients(cli: &Path, url: &str, pin: Option<Pin>, room: &str) {
    let mut people: Vec<JsonChild> = Vec::new();
    for nick in ["alice", "bob", "carol"] {
        let mut c = client(cli, url, pin, room, nick);
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
    bob.line("/msg carol only for carol");
    let p = carol.wait("bob's private message", |v| {
        v["type"] == "message" && v["private"] == true
    });
    assert_eq!(p["text"], "only for carol");
    assert_eq!(p["nick"], "bob");

    carol.line("/leave");
    for c in [&mut *alice, &mut *bob] {
        c.wait_within("carol leaving", LEAVE_WITHIN, |v| {
            v["type"] == "member_left" && v["nick"] == "carol"
        });
    }
    for c in [&mut *carol, &mut *bob, &mut *alice] {
        let status = c.finish();
        assert!(status.success(), "exit status {status}: {:?}", c.seen());
    }
    for c in [&*alice, &*bob] {
        assert!(
            !c.seen().iter().any(|v| v["text"] == "only for carol"),
            "the private message reached someone else"
        );
    }
}

#[test]
fn three_clients_over_bosh_on_stock_ejabberd_every_time() {
    let Some(server) = Ejabberd::start("bosh") else {
        return;
    };
    let cli = binary("cryptocat");
    let cases = [
        ("http", server.bosh_url(), None),
        ("https", server.bosh_tls_url(), Some(server.pin)),
    ];
    let mut failures = Vec::new();
    let mut total = 0;
    for run in 0..RUNS {
        for (name, url, pin) in &cases {
            total += 1;
            let room = format!("bosh-{name}-{run}");
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                three_clients(&cli, url, *pin, &room)
            }));
            if let Err(e) = result {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!(
                    "{name} run {run}: {}",
                    why.lines().next().unwrap_or("")
                ));
            }
        }
    }
    eprintln!(
        "ejabberd BOSH: {}/{total} runs passed",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed runs:\n{}\nejabberd log (end):\n{}",
        failures.join("\n"),
        server.log_tail(40)
    );
}
