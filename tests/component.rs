//! Our room service as an XEP-0114 component of the servers people already run: a
//! test-owned stock ejabberd 23.01 (an `ejabberd_service` listener, its own MUC off) and a
//! test-owned stock Prosody 0.12 (`Component "conference.localhost"` with
//! `component_secret`), each with `cryptocat-server component` attached for
//! `conference.localhost`. On each:
//! - three `cryptocat join` clients chat in a room of the component, group and private,
//!   over TCP, WebSocket and BOSH (one table, as `stock_servers.rs` prints);
//! - a raw client (our transport's pieces, raw stanzas) finds the component by service
//!   discovery as a room service that refuses plaintext and checks keys; its join without
//!   a key proof is refused, with one it is in; its plaintext `<body>` gets
//!   `policy-violation` and reaches nobody, while a payload passes;
//! - the clients do the room key proof by themselves, so they report no missing server
//!   guarantee (SCRAM logins on these servers, but the key proven to the room);
//! - Prosody only: a component with a wrong secret is refused (the log says so, without
//!   the secret) and keeps trying; the host server goes away and comes back, and the
//!   component attaches again by itself and three clients chat again;
//! - a member whose process is killed is seen leaving by the others within a few seconds
//!   (Prosody tells the room; ejabberd does not, and the component's occupant pings,
//!   every 2 s here, find the session gone);
//! - SIGTERM: the component tells the occupants the service goes away and exits 0;
//! - the component's debug log carries no JID, room or occupant name, pin or secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use cryptocat_link::Pin;
use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::Timestamp;
use cryptocat_tests::component::{random_secret, Component, RawClient, COMPONENT_DOMAIN};
use cryptocat_tests::ejabberd::Ejabberd;
use cryptocat_tests::prosody::Prosody;
use cryptocat_tests::stock::{failures, print_table, three_clients, Row, Target};
use cryptocat_tests::{binary, JsonChild};
use cryptocat_xmpp::room_key::NS_ROOM_KEY;

const NS_PAYLOAD: &str = "urn:xmpp:cryptocat:1";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const WAIT: Duration = Duration::from_secs(15);

/// One row per transport; `accounts` counts the host's accounts: each row says how many
/// its clients left behind (they remove the accounts they registered when they leave).
fn rows(
    server: &'static str,
    targets: Vec<(&'static str, String, Option<Pin>)>,
    accounts: impl Fn() -> usize,
) -> Vec<Row> {
    let cli = binary("cryptocat");
    targets
        .into_iter()
        .map(|(transport, url, pin)| {
            let target = Target {
                server,
                transport,
                url,
                domain: Some("localhost".into()),
                pin,
                // Logins on these servers are SCRAM, but the room service checks every
                // joiner's key and refuses plaintext: no missing guarantee to report.
                ours: true,
            };
            let tag: String = server.chars().filter(char::is_ascii_alphanumeric).collect();
            let room = format!("component-{tag}-{transport}");
            let before = accounts();
            let runs = vec![three_clients(&cli, &target, &room)];
            Row {
                server,
                transport,
                runs,
                accounts_left: Some(accounts().saturating_sub(before)),
            }
        })
        .collect()
}

fn payload() -> String {
    GroupMessage {
        epoch: [1; 16],
        sender: 0,
        index: 0,
        prev_hash: [0; 32],
        ciphertext: vec![9; 48],
        macs: vec![[3; 16]],
    }
    .to_base64()
}

fn identity() -> Identity {
    Identity::generate(&mut rand_core::OsRng, Timestamp(1_764_000_000_000))
}

/// A join without the key proof is refused (`not-allowed`), and nobody is told of it.
async fn join_unproven_is_refused(c: &mut RawClient, room: &str) {
    c.send(&format!(
        "<presence id='u1' to='{room}@{COMPONENT_DOMAIN}/someone'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let refused = c
        .wait(WAIT, |el| {
            el.name() == "presence" && el.attr("id") == Some("u1")
        })
        .await
        .expect("an answer to the unproven join");
    assert_eq!(refused.attr("type"), Some("error"), "{refused:?}");
    let error = refused.get_child("error", "jabber:client").unwrap();
    assert!(
        error.get_child("not-allowed", NS_STANZAS).is_some(),
        "{refused:?}"
    );
}

/// The raw-client checks: discovery, plaintext refused and reaching nobody, payload relayed.
async fn plaintext_is_refused(port: u16, pin: Pin) {
    let mut alice = RawClient::connect(port, pin).await;
    let mut bob = RawClient::connect(port, pin).await;
    // Service discovery: the host lists the component, which says it refuses plaintext.
    alice
        .send(&format!(
            "<iq type='get' id='d1' to='{COMPONENT_DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await;
    let info = alice
        .wait(WAIT, |el| el.name() == "iq" && el.attr("id") == Some("d1"))
        .await
        .expect("disco#info answer");
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("a disco#info result");
    for feature in [NS_PAYLOAD, NS_ROOM_KEY] {
        assert!(
            query
                .children()
                .any(|f| f.name() == "feature" && f.attr("var") == Some(feature)),
            "the room service does not offer {feature}: {info:?}"
        );
    }
    join_unproven_is_refused(&mut alice, "plain").await;
    let a = alice.join_proven("plain", &identity()).await;
    bob.join_proven("plain", &identity()).await;
    let room = format!("plain@{COMPONENT_DOMAIN}");
    alice
        .send(&format!(
            "<message type='groupchat' id='p1' to='{room}'><body>plaintext must reach nobody</body></message>"
        ))
        .await;
    let refused = alice
        .wait(WAIT, |el| {
            el.name() == "message"
                && el.attr("type") == Some("error")
                && el.attr("id") == Some("p1")
        })
        .await
        .expect("an error for the plaintext");
    let error = refused.get_child("error", "jabber:client").unwrap();
    assert!(
        error.get_child("policy-violation", NS_STANZAS).is_some(),
        "{refused:?}"
    );
    // A payload sent after it reaches bob; the plaintext, handled first, did not.
    alice
        .send(&format!(
            "<message type='groupchat' id='g1' to='{room}'><payload xmlns='{NS_PAYLOAD}'>{}</payload></message>",
            payload()
        ))
        .await;
    let mut bodies = 0;
    let got = bob
        .wait(WAIT, |el| {
            if el.name() == "message" && el.get_child("body", "jabber:client").is_some() {
                bodies += 1;
            }
            el.name() == "message" && el.attr("id") == Some("g1")
        })
        .await;
    let got = got.expect("the payload reached bob");
    assert_eq!(bodies, 0, "a plaintext body reached bob");
    assert_eq!(got.attr("from"), Some(format!("{room}/{a}").as_str()));
    assert_eq!(
        got.get_child("payload", NS_PAYLOAD).map(|p| p.text()),
        Some(payload())
    );
    assert!(
        got.get_child("body", "jabber:client").is_none(),
        "relayed with a body"
    );
}

/// A member whose process is killed sends no leave: its host server ends its directed
/// presence to the room, the component removes it, and the other member sees it leave.
/// Returns how long that took.
fn killed_member_is_seen_leaving(url: &str, pin: Pin, room: &str) -> Duration {
    let cli = binary("cryptocat");
    let start = |nick: &str| {
        let mut command = std::process::Command::new(&cli);
        command
            .args(["join", "--server", url, "--domain", "localhost"])
            .args([
                "--pin",
                &pin.to_string(),
                "--room",
                room,
                "--nick",
                nick,
                "--json",
            ]);
        JsonChild::start(&mut command, &format!("{nick}@{room}"))
    };
    let mut alice = start("alice");
    alice.wait_type("joined");
    let mut bob = start("bob");
    for c in [&mut alice, &mut bob] {
        c.wait("two members", |v| {
            v["type"] == "rekeyed" && v["members"] == 2
        });
    }
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &bob.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    alice.wait_within("bob gone", Duration::from_secs(20), |v| {
        v["type"] == "member_left" && v["nick"] == "bob"
    });
    let took = killed.elapsed();
    alice.line("/leave");
    assert!(alice.finish().success());
    took
}

fn raw_checks(port: u16, pin: Pin) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(plaintext_is_refused(port, pin));
}

/// The component's log carries no user data: no JID, room name, occupant name or secret.
fn assert_log_clean(log: &str, secret: &str) {
    assert!(
        !log.is_empty(),
        "the component logged nothing at debug level"
    );
    for needle in [
        secret,
        "@localhost",
        "localhost/",
        "component-",
        "plain",
        "sha256/",
    ] {
        assert!(
            !log.contains(needle),
            "the component's log contains {needle:?}:\n{log}"
        );
    }
}

fn ejabberd_rows() -> Vec<Row> {
    let secret = random_secret();
    let Some(ejabberd) = Ejabberd::start_with_component("component", &secret) else {
        return Vec::new();
    };
    let component = Component::start("ejabberd", ejabberd.component_port.unwrap(), &secret);
    raw_checks(ejabberd.c2s_port, ejabberd.pin);
    let gone = killed_member_is_seen_leaving(&ejabberd.xmpp_url(), ejabberd.pin, "killed-ej");
    eprintln!(
        "ejabberd: a killed member seen leaving after {} ms",
        gone.as_millis()
    );
    let rows = rows(
        "ejabberd 23.01 + component",
        vec![
            ("tcp", ejabberd.xmpp_url(), Some(ejabberd.pin)),
            ("ws", ejabberd.ws_url(), None),
            ("bosh", ejabberd.bosh_url(), None),
        ],
        || ejabberd.registered_users().len(),
    );
    let log = component.stderr_text();
    for line in log.lines().filter(|l| l.contains("an occupant")) {
        eprintln!("ejabberd: component: {line}");
    }
    if rows.iter().any(|r| r.runs.iter().any(Result::is_err)) {
        eprintln!("ejabberd log:\n{}", ejabberd.log_tail(80));
        eprintln!("component log:\n{log}");
    }
    assert_log_clean(&log, &secret);
    rows
}

fn prosody_targets(prosody: &Prosody) -> Vec<(&'static str, String, Option<Pin>)> {
    vec![
        (
            "tcp",
            format!("xmpp://127.0.0.1:{}", prosody.c2s_port),
            Some(prosody.pin),
        ),
        (
            "ws",
            format!("ws://127.0.0.1:{}/xmpp-websocket", prosody.http_port),
            None,
        ),
        (
            "bosh",
            format!("http://127.0.0.1:{}/http-bind", prosody.http_port),
            None,
        ),
    ]
}

fn prosody_rows() -> Vec<Row> {
    let secret = random_secret();
    let Some(mut prosody) = Prosody::start_with_component("component", &secret) else {
        return Vec::new();
    };
    // A wrong secret: refused by the host, said so in the log (without the secret), and
    // the component keeps trying instead of attaching or exiting.
    let wrong = random_secret();
    let mut refused = Component::spawn("prosody-wrong", prosody.component_port.unwrap(), &wrong);
    let (said, log) = refused.wait_log("refused the component's secret", Duration::from_secs(15));
    assert!(said, "no refusal in the log:\n{log}");
    assert!(!log.contains(&wrong) && !log.contains(&secret), "{log}");
    assert!(!refused.wait_attached(Duration::from_millis(1500)));
    assert!(refused.running());
    drop(refused);
    let mut component = Component::start("prosody", prosody.component_port.unwrap(), &secret);
    raw_checks(prosody.c2s_port, prosody.pin);
    let url = format!("xmpp://127.0.0.1:{}", prosody.c2s_port);
    let gone = killed_member_is_seen_leaving(&url, prosody.pin, "killed-pr");
    eprintln!(
        "prosody: a killed member seen leaving after {} ms",
        gone.as_millis()
    );
    let mut all = rows(
        "prosody 0.12 + component",
        prosody_targets(&prosody),
        || prosody.accounts().len(),
    );
    // The host goes away and comes back: the component attaches again by itself.
    let restarted = Instant::now();
    prosody.restart();
    assert!(
        component.wait_attached(Duration::from_secs(40)),
        "the component did not attach again; its log:\n{}",
        component.stderr_text()
    );
    eprintln!(
        "component attached again {} ms after the host's restart began",
        restarted.elapsed().as_millis()
    );
    assert!(component.running());
    let tcp = prosody_targets(&prosody).into_iter().take(1).collect();
    let mut again = rows("prosody 0.12 + component, restarted", tcp, || {
        prosody.accounts().len()
    });
    all.append(&mut again);
    // SIGTERM: the occupants are told the service goes away (332), and it exits 0.
    let url = format!("xmpp://127.0.0.1:{}", prosody.c2s_port);
    let mut member = {
        let mut command = std::process::Command::new(binary("cryptocat"));
        command
            .args(["join", "--server", &url, "--domain", "localhost"])
            .args(["--pin", &prosody.pin.to_string(), "--room", "closing"])
            .args(["--nick", "alice", "--json"]);
        JsonChild::start(&mut command, "alice@closing")
    };
    member.wait_type("joined");
    let status = component.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the component did not exit 0 on SIGTERM: {status:?}"
    );
    member.wait_within("told the room is gone", Duration::from_secs(10), |v| {
        v["type"] == "error" && v["code"] == "offline"
    });
    // The CLI ends as it does when a connection is lost for good (status 1).
    let status = member.finish();
    assert_eq!(status.code(), Some(1), "{:?}", member.seen());
    let log = component.stderr_text();
    if all.iter().any(|r| r.runs.iter().any(Result::is_err)) {
        eprintln!("prosody log:\n{}", prosody.log());
        eprintln!("component log:\n{log}");
    }
    assert_log_clean(&log, &secret);
    all
}

#[test]
fn the_room_service_as_a_component_of_ejabberd_and_prosody() {
    let ejabberd = std::thread::spawn(ejabberd_rows);
    let prosody = std::thread::spawn(prosody_rows);
    let mut rows = ejabberd.join().unwrap();
    rows.extend(prosody.join().unwrap());
    print_table(&rows);
    let failed = failures(&rows);
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    for r in &rows {
        assert_eq!(
            r.accounts_left,
            Some(0),
            "{} {} left accounts",
            r.server,
            r.transport
        );
    }
}
