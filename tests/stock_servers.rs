//! The servers people already run: stock Prosody and stock ejabberd at their defaults
//! (except what docs/deploy.md tells an operator to change), and our relay, each over
//! TCP with STARTTLS, WebSocket and BOSH (plain on loopback, and with TLS), three
//! `cryptocat join` clients per case. Prints one table for the three servers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use cryptocat_tests::binary;
use cryptocat_tests::ejabberd::Ejabberd;
use cryptocat_tests::prosody::Prosody;
use cryptocat_tests::relay::Relay;
use cryptocat_tests::stock::{failures, print_table, three_clients, Row, Target};

/// BOSH runs this many times per server: flakiness was the bug there.
const BOSH_RUNS: usize = 3;

fn runs(transport: &str) -> usize {
    if transport.starts_with("bosh") {
        BOSH_RUNS
    } else {
        1
    }
}

fn run_rows(targets: Vec<Target>, accounts: impl Fn() -> Option<usize>) -> Vec<Row> {
    let cli = binary("cryptocat");
    let mut rows = Vec::new();
    for target in targets {
        let results = (0..runs(target.transport))
            .map(|i| {
                let server: String = target
                    .server
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                let room = format!("stock-{server}-{}-{i}", target.transport);
                three_clients(&cli, &target, &room)
            })
            .collect();
        rows.push(Row {
            server: target.server,
            transport: target.transport,
            runs: results,
            accounts_left: accounts(),
        });
    }
    rows
}

fn relay_rows() -> Vec<Row> {
    let plain = Relay::start("stock-plain", false);
    let tls = Relay::start("stock-tls", true);
    let target = |transport, url: String, pin| Target {
        server: "cryptocat-server",
        transport,
        url,
        domain: Some("localhost".into()),
        pin,
        ours: true,
    };
    let targets = vec![
        target(
            "tcp",
            format!("xmpp://127.0.0.1:{}", plain.c2s_port),
            Some(plain.pin),
        ),
        target(
            "ws",
            format!("ws://127.0.0.1:{}/xmpp-websocket", plain.http_port),
            None,
        ),
        target(
            "wss",
            format!("wss://127.0.0.1:{}/xmpp-websocket", tls.http_port),
            Some(tls.pin),
        ),
        target(
            "bosh",
            format!("http://127.0.0.1:{}/http-bind", plain.http_port),
            None,
        ),
        target(
            "bosh-tls",
            format!("https://127.0.0.1:{}/http-bind", tls.http_port),
            Some(tls.pin),
        ),
    ];
    run_rows(targets, || None)
}

fn prosody_rows(prosody: &Prosody) -> Vec<Row> {
    let target = |transport, url: String, pin| Target {
        server: "prosody 0.12",
        transport,
        url,
        domain: Some("localhost".into()),
        pin,
        ours: false,
    };
    let targets = vec![
        target(
            "tcp",
            format!("xmpp://127.0.0.1:{}", prosody.c2s_port),
            Some(prosody.pin),
        ),
        target(
            "ws",
            format!("ws://127.0.0.1:{}/xmpp-websocket", prosody.http_port),
            None,
        ),
        target(
            "wss",
            format!("wss://127.0.0.1:{}/xmpp-websocket", prosody.https_port),
            Some(prosody.pin),
        ),
        target(
            "bosh",
            format!("http://127.0.0.1:{}/http-bind", prosody.http_port),
            None,
        ),
        target(
            "bosh-tls",
            format!("https://127.0.0.1:{}/http-bind", prosody.https_port),
            Some(prosody.pin),
        ),
    ];
    run_rows(targets, || Some(prosody.accounts().len()))
}

fn ejabberd_rows(ejabberd: &Ejabberd) -> Vec<Row> {
    let target = |transport, url: String, pin| Target {
        server: "ejabberd 23.01",
        transport,
        url,
        domain: Some("localhost".into()),
        pin,
        ours: false,
    };
    let targets = vec![
        target("tcp", ejabberd.xmpp_url(), Some(ejabberd.pin)),
        target("ws", ejabberd.ws_url(), None),
        target("wss", ejabberd.wss_url(), Some(ejabberd.pin)),
        target("bosh", ejabberd.bosh_url(), None),
        target("bosh-tls", ejabberd.bosh_tls_url(), Some(ejabberd.pin)),
    ];
    run_rows(targets, || Some(ejabberd.registered_users().len()))
}

#[test]
fn three_clients_on_each_server_over_each_transport() {
    let relay = std::thread::spawn(relay_rows);
    let prosody = std::thread::spawn(|| {
        Prosody::start("stock").map(|p| {
            let rows = prosody_rows(&p);
            if rows.iter().any(|r| r.runs.iter().any(Result::is_err)) {
                eprintln!("prosody log:\n{}", p.log());
            }
            rows
        })
    });
    let ejabberd = std::thread::spawn(|| {
        Ejabberd::start("stock").map(|e| {
            let rows = ejabberd_rows(&e);
            if rows.iter().any(|r| r.runs.iter().any(Result::is_err)) {
                eprintln!("ejabberd log:\n{}", e.log_tail(80));
            }
            rows
        })
    });
    let mut rows = relay.join().unwrap();
    rows.extend(prosody.join().unwrap().unwrap_or_default());
    rows.extend(ejabberd.join().unwrap().unwrap_or_default());
    print_table(&rows);
    let failed = failures(&rows);
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    for r in &rows {
        assert_eq!(
            r.accounts_left.unwrap_or(0),
            0,
            "{} {} left accounts",
            r.server,
            r.transport
        );
    }
}
