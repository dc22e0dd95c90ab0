//! Our client transport against Prosody 0.12 (Debian's package) started with
//! `deploy/prosody/prosody.cfg.lua` and our two modules: in-band registration + SCRAM,
//! a room with group and private payloads, a plaintext `<body>` refused with
//! `policy-violation` and delivered to nobody (`mod_cryptocat_plaintext`), and the
//! `X-CRYPTOCAT-KEY` login checked by `cryptocat-keycheck` (`mod_cryptocat_key`), over TCP
//! with the TLS exporter and over loopback WebSocket.
//!
//! Skipped with a notice when `prosody` is not installed, unless
//! `CRYPTOCAT_REQUIRE_INTEROP=1` (set by `scripts/test`), where that is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::keyauth;
use cryptocat_xmpp::session::{self, Credentials, NS_SASL};
use cryptocat_xmpp::transport::connect_tcp;
use cryptocat_xmpp::xml::ParserLimits;
use cryptocat_xmpp::{
    Backoff, Client, ClientHandle, Config, ElementStream, Event, Events, ServerUrl, TrustConfig,
};
use minidom::Element;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rustls_pki_types::CertificateDer;

use crate::{group_payload, NOW};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A Prosody process in a temporary directory; killed on drop.
struct Prosody {
    child: Child,
    dir: PathBuf,
    c2s: u16,
    http: u16,
    cert: CertificateDer<'static>,
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|p| p.join("prosody").is_file()));
    if !found {
        let required = std::env::var_os("CRYPTOCAT_REQUIRE_INTEROP").is_some_and(|v| v == "1");
        assert!(
            !required,
            "prosody is not installed but CRYPTOCAT_REQUIRE_INTEROP=1"
        );
        eprintln!("SKIPPED: prosody is not installed (apt-get install prosody)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prosody")
}

fn start_prosody(tag: &str) -> Prosody {
    let dir = std::env::temp_dir().join(format!("cryptocat-prosody-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "conference.localhost".to_owned(),
    ])
    .unwrap();
    std::fs::write(dir.join("localhost.crt"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.join("localhost.key"),
        certified.key_pair.serialize_pem(),
    )
    .unwrap();
    let (c2s, http) = (free_port(), free_port());
    let modules = deploy_dir().canonicalize().unwrap();
    let config = std::fs::read_to_string(modules.join("prosody.cfg.lua"))
        .unwrap()
        .replace("@DIR@", dir.to_str().unwrap())
        .replace("@MODULES@", modules.to_str().unwrap())
        .replace("@C2S_PORT@", &c2s.to_string())
        .replace("@HTTP_PORT@", &http.to_string())
        .replace("@KEYCHECK@", env!("CARGO_BIN_EXE_cryptocat-keycheck"));
    let config_path = dir.join("prosody.cfg.lua");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new("prosody")
        .arg("--config")
        .arg(&config_path)
        .arg("-F")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prosody = Prosody {
        child,
        dir,
        c2s,
        http,
        cert: certified.cert.der().clone(),
    };
    // Ready when both listeners accept.
    let deadline = Instant::now() + TIMEOUT;
    for port in [c2s, http] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prosody did not start; log:\n{}",
                log(&prosody.dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    prosody
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prosody.log")).unwrap_or_default()
}

fn config(p: &Prosody, websocket: bool) -> Config {
    let url = if websocket {
        format!("ws://127.0.0.1:{}/xmpp-websocket", p.http)
    } else {
        format!("xmpp://127.0.0.1:{}", p.c2s)
    };
    config_for(p, &url)
}

fn config_for(p: &Prosody, url: &str) -> Config {
    let mut c = Config::new(ServerUrl::parse(url).unwrap()).with_domain("localhost");
    c.trust = TrustConfig::only(p.cert.clone());
    c.connect_timeout = Duration::from_secs(5);
    c.reconnect = Some(Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: Some(3),
    });
    c
}

struct Peer {
    handle: ClientHandle,
    events: Events,
    jid: String,
}

async fn online(config: Config) -> Peer {
    let (handle, mut events) = Client::connect(config).await.unwrap();
    let jid = match next(&mut events).await {
        Event::Connected { jid } => jid,
        other => panic!("expected Connected, got {other:?}"),
    };
    Peer {
        handle,
        events,
        jid,
    }
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("event channel closed")
}

async fn wait_for<T>(events: &mut Events, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    loop {
        let ev = next(events).await;
        if let Some(t) = pick(&ev) {
            return t;
        }
    }
}

async fn join(peer: &mut Peer, room: &str, nick: &str) -> Vec<String> {
    peer.handle.join(room, nick).unwrap();
    wait_for(&mut peer.events, |e| match e {
        Event::Joined { occupants, .. } => Some(occupants.clone()),
        Event::JoinFailed { condition, .. } => panic!("join failed: {condition}"),
        _ => None,
    })
    .await
}

/// Nothing but occupant changes for `dur`: no payload, no dropped plaintext.
async fn no_message(events: &mut Events, dur: Duration) {
    let end = tokio::time::Instant::now() + dur;
    while let Ok(Some(ev)) = tokio::time::timeout_at(end, events.recv()).await {
        assert!(
            matches!(
                ev,
                Event::OccupantJoined { .. } | Event::OccupantLeft { .. } | Event::Accepted { .. }
            ),
            "unexpected event: {ev:?}"
        );
    }
}

/// A raw stream, registered and logged in with SCRAM, bound.
async fn raw_client(p: &Prosody) -> Box<dyn ElementStream> {
    let tls = TrustConfig::only(p.cert.clone()).client_config().unwrap();
    let mut s: Box<dyn ElementStream> = Box::new(
        connect_tcp(
            "127.0.0.1",
            p.c2s,
            "localhost",
            tls,
            ParserLimits::default(),
            TIMEOUT,
        )
        .await
        .unwrap(),
    );
    session::establish(s.as_mut(), &Credentials::random(), true)
        .await
        .unwrap();
    s
}

/// The next element named `name` (skipping presences and the like).
async fn next_named(s: &mut dyn ElementStream, name: &str) -> Element {
    loop {
        let el = tokio::time::timeout(TIMEOUT, s.next())
            .await
            .expect("timed out")
            .unwrap();
        if el.name() == name {
            return el;
        }
    }
}

fn policy_violation(el: &Element) -> bool {
    el.attr("type") == Some("error") && session::stanza_error_condition(el) == "policy-violation"
}

#[tokio::test]
async fn prosody_registration_room_payloads_and_plaintext_refused() {
    if !installed() {
        return;
    }
    let p = start_prosody("room");
    let mut alice = online(config(&p, false)).await;
    let mut bob = online(config(&p, true)).await; // over WebSocket
    assert!(alice.jid.starts_with(|c: char| c.is_ascii_hexdigit()));
    assert!(join(&mut alice, "room", "a").await.is_empty());
    assert_eq!(join(&mut bob, "room", "b").await, ["a"]);
    wait_for(&mut alice.events, |e| {
        matches!(e, Event::OccupantJoined { nick, .. } if nick == "b").then_some(())
    })
    .await;

    // Group payload: Bob receives it, Alice gets the echo.
    let bytes = STANDARD.decode(group_payload(5)).unwrap();
    alice.handle.send_groupchat("room", &bytes).unwrap();
    for peer in [&mut bob, &mut alice] {
        let got = wait_for(&mut peer.events, |e| match e {
            Event::GroupPayload {
                from_nick, bytes, ..
            } => Some((from_nick.clone(), bytes.clone())),
            _ => None,
        })
        .await;
        assert_eq!(got, ("a".to_owned(), bytes.clone()));
    }
    // Private payload through the room.
    bob.handle
        .send_private("room", "a", b"private bytes")
        .unwrap();
    let got = wait_for(&mut alice.events, |e| match e {
        Event::PrivatePayload {
            from_nick, bytes, ..
        } => Some((from_nick.clone(), bytes.clone())),
        _ => None,
    })
    .await;
    assert_eq!(got, ("b".to_owned(), b"private bytes".to_vec()));

    // A raw client joins and sends plaintext: refused, nobody gets it.
    let mut eve = raw_client(&p).await;
    eve.send(
        "<presence to='room@conference.localhost/e'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
            .to_owned(),
    )
    .await
    .unwrap();
    loop {
        let el = next_named(eve.as_mut(), "presence").await;
        if el.attr("from") == Some("room@conference.localhost/e") {
            break;
        }
    }
    let sends = [
        "<message type='groupchat' to='room@conference.localhost' id='p1'><body>hello in clear</body></message>",
        "<message type='chat' to='room@conference.localhost/a' id='p2'><body>psst</body></message>",
        // A payload plus a body is refused too, and so are two payloads or bad base64.
        "<message type='groupchat' to='room@conference.localhost' id='p3'><payload xmlns='urn:xmpp:cryptocat:1'>AAAA</payload><body>x</body></message>",
        "<message type='groupchat' to='room@conference.localhost' id='p4'><payload xmlns='urn:xmpp:cryptocat:1'>AAAA</payload><payload xmlns='urn:xmpp:cryptocat:1'>AAAA</payload></message>",
        "<message type='groupchat' to='room@conference.localhost' id='p5'><payload xmlns='urn:xmpp:cryptocat:1'>not base64!</payload></message>",
    ];
    for (i, xml) in sends.iter().enumerate() {
        eve.send((*xml).to_owned()).await.unwrap();
        let id = format!("p{}", i + 1);
        let reply = loop {
            let m = next_named(eve.as_mut(), "message").await;
            if m.attr("id") == Some(id.as_str()) {
                break m;
            }
            // The room's subject after the join: no body, no payload.
            assert!(m.get_child("body", "jabber:client").is_none(), "{m:?}");
        };
        assert!(policy_violation(&reply), "{reply:?}");
    }
    no_message(&mut alice.events, Duration::from_millis(300)).await;
    no_message(&mut bob.events, Duration::from_millis(10)).await;
    // And a well-formed payload from the raw client does go through.
    eve.send(format!(
        "<message type='groupchat' to='room@conference.localhost' id='ok'><payload xmlns='urn:xmpp:cryptocat:1'>{}</payload></message>",
        group_payload(6)
    ))
    .await
    .unwrap();
    let from = wait_for(&mut alice.events, |e| match e {
        Event::GroupPayload { from_nick, .. } => Some(from_nick.clone()),
        _ => None,
    })
    .await;
    assert_eq!(from, "e");
    assert!(
        !log(&p.dir).contains("hello in clear"),
        "prosody logged the plaintext"
    );
}

async fn key_login(p: &Prosody, websocket: bool, seed: u64) {
    let id = Arc::new(Identity::generate(
        &mut ChaCha20Rng::seed_from_u64(seed),
        NOW,
    ));
    let mut c = config(p, websocket);
    c.identity = Some(Arc::clone(&id));
    let mut peer = online(c).await;
    let local = keyauth::localpart(&id.verifying_key());
    assert!(
        peer.jid.starts_with(&format!("{local}@localhost/")),
        "{}",
        peer.jid
    );
    assert!(join(&mut peer, &format!("keys{seed}"), "k")
        .await
        .is_empty());
}

#[tokio::test]
async fn prosody_key_challenge_login() {
    if !installed() {
        return;
    }
    let p = start_prosody("key");
    // TCP: the challenge asks for the TLS exporter, and the client's matches Prosody's.
    key_login(&p, false, 1).await;
    // Loopback WebSocket: no TLS at Prosody's end, binding none.
    key_login(&p, true, 2).await;

    // Refusals: a flipped signature bit and a replayed signature.
    let id = Identity::generate(&mut ChaCha20Rng::seed_from_u64(3), NOW);
    let tls = TrustConfig::only(p.cert.clone()).client_config().unwrap();
    let mut signatures = Vec::new();
    for attempt in 0..3 {
        let mut s = connect_tcp(
            "127.0.0.1",
            p.c2s,
            "localhost",
            Arc::clone(&tls),
            ParserLimits::default(),
            TIMEOUT,
        )
        .await
        .unwrap();
        let features = s.open().await.unwrap();
        assert!(session::offers_key_challenge(&features));
        s.send(format!(
            "<auth xmlns='{NS_SASL}' mechanism='X-CRYPTOCAT-KEY'>{}</auth>",
            STANDARD.encode(keyauth::ClientFirst::new(&id).encode())
        ))
        .await
        .unwrap();
        let ch = s.next().await.unwrap();
        let ch = keyauth::Challenge::decode(&STANDARD.decode(ch.text().trim()).unwrap()).unwrap();
        assert_eq!(ch.binding, keyauth::BindingType::TlsExporter);
        assert_eq!(ch.domain, "localhost");
        let cb = keyauth::ChannelBinding::TlsExporter(s.channel_binding().unwrap());
        let mut sig = keyauth::respond(&id, "localhost", &ch, &cb)
            .unwrap()
            .to_vec();
        match attempt {
            0 => signatures.push(sig.clone()),
            1 => sig[7] ^= 1,
            _ => sig = signatures[0].clone(), // replayed on a new connection
        }
        s.send(format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            STANDARD.encode(&sig)
        ))
        .await
        .unwrap();
        let outcome = s.next().await.unwrap();
        if attempt == 0 {
            assert!(outcome.is("success", NS_SASL), "{outcome:?}");
        } else {
            assert!(outcome.is("failure", NS_SASL), "{outcome:?}");
            assert!(outcome.get_child("not-authorized", NS_SASL).is_some());
        }
    }

    // Registration of a key-shaped name is refused.
    let tls = TrustConfig::only(p.cert.clone()).client_config().unwrap();
    let mut s = connect_tcp(
        "127.0.0.1",
        p.c2s,
        "localhost",
        tls,
        ParserLimits::default(),
        TIMEOUT,
    )
    .await
    .unwrap();
    let features = s.open().await.unwrap();
    let err = session::register(
        &mut s,
        &features,
        &Credentials::new(keyauth::localpart(&id.verifying_key()), "password"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, session::SessionError::Registration { .. }),
        "{err:?}"
    );
}

/// Our BOSH connector against Prosody's mod_bosh: registration and SCRAM over BOSH (the
/// key module does not offer the challenge on BOSH), a room shared with a TCP client,
/// payloads both ways, and a clean leave seen by the other.
#[tokio::test]
async fn prosody_over_bosh() {
    if !installed() {
        return;
    }
    let p = start_prosody("bosh");
    let bosh = format!("http://127.0.0.1:{}/http-bind", p.http);
    let mut alice = online(config_for(&p, &bosh)).await;
    let mut bob = online(config(&p, false)).await;
    assert!(join(&mut alice, "boshroom", "a").await.is_empty());
    assert_eq!(join(&mut bob, "boshroom", "b").await, ["a"]);
    wait_for(&mut alice.events, |e| {
        matches!(e, Event::OccupantJoined { nick, .. } if nick == "b").then_some(())
    })
    .await;
    relay_one(&mut alice, "a", &mut bob, 7).await;
    relay_one(&mut bob, "b", &mut alice, 8).await;
    alice.handle.leave("boshroom").unwrap();
    wait_for(&mut bob.events, |e| {
        matches!(e, Event::OccupantLeft { nick, .. } if nick == "a").then_some(())
    })
    .await;
}

/// A group payload from `from` (occupant `nick`) reaches `to`.
async fn relay_one(from: &mut Peer, nick: &str, to: &mut Peer, seed: u8) {
    let bytes = STANDARD.decode(group_payload(seed)).unwrap();
    from.handle.send_groupchat("boshroom", &bytes).unwrap();
    let got = wait_for(&mut to.events, |e| match e {
        Event::GroupPayload {
            from_nick, bytes, ..
        } if from_nick == nick => Some(bytes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, bytes);
}
