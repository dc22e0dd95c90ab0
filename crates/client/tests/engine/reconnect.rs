//! Cut connections and a restarted relay: every message sent meanwhile arrives once.
//! And what a server or a network observer sees.

use std::time::Duration;

use cryptocat_client::{ConnectionState, EngineEvent, ServerUrl};

use crate::proxy::Proxy;
use crate::{engine_config, start_relay, start_relay_at, start_relay_with, url, Person, Via};

fn count(p: &Person, nick: &str, text: &str) -> usize {
    p.received()
        .iter()
        .filter(|(n, t)| n == nick && t == text)
        .count()
}

async fn reconnected(p: &mut Person) {
    p.wait_for("reconnecting", |e| {
        matches!(
            e,
            EngineEvent::Connection(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    let n = p.log.len();
    p.wait_for("connected again", move |e| {
        matches!(e, EngineEvent::Connection(ConnectionState::Connected))
    })
    .await;
    // Only count the Connected after the Reconnecting.
    assert!(p.log.len() >= n);
}

#[tokio::test]
async fn a_cut_connection_reconnects_and_loses_nothing() {
    let relay = start_relay("cut").await;
    let proxy = Proxy::start(relay.c2s_addr).await;
    let via_proxy = ServerUrl::parse(&format!("xmpp://{}", proxy.addr)).unwrap();
    let mut a = Person::join(engine_config(&relay, via_proxy, "cut", "alice")).await;
    let mut b = Person::join(engine_config(&relay, url(&relay, Via::Tcp), "cut", "bob")).await;
    a.wait_members(2).await;
    b.wait_members(2).await;
    let id = a.say("one").await;
    b.hear("alice", "one").await;
    a.confirmed(&id, 1).await;

    // The network fails under alice, who keeps typing; bob too. The relay keeps alice's
    // session (XEP-0198) and she resumes it: nobody saw her leave.
    proxy.cut();
    a.handle.send("two, typed during the cut").unwrap();
    a.handle.send("three, typed during the cut").unwrap();
    b.say("bob during the cut").await;
    reconnected(&mut a).await;
    b.hear("alice", "two, typed during the cut").await;
    b.hear("alice", "three, typed during the cut").await;
    a.hear("bob", "bob during the cut").await;
    b.say("welcome back").await;
    a.hear("bob", "welcome back").await;
    a.drain_for(Duration::from_millis(500)).await;
    b.drain_for(Duration::from_millis(500)).await;
    for text in [
        "one",
        "two, typed during the cut",
        "three, typed during the cut",
    ] {
        assert_eq!(count(&b, "alice", text), 1, "{text}: {:?}", b.received());
    }
    assert_eq!(count(&a, "bob", "welcome back"), 1);
    assert_eq!(count(&a, "bob", "bob during the cut"), 1);
    assert_eq!(a.handle.pending().await.unwrap(), 0);
    assert!(
        !b.log
            .iter()
            .any(|e| matches!(e, EngineEvent::MemberLeft { .. })),
        "the session was resumed: bob never saw alice leave"
    );
    assert!(a.warnings().is_empty(), "{:?}", a.warnings());
    assert!(b.warnings().is_empty(), "{:?}", b.warnings());
}

#[tokio::test]
async fn a_restarted_relay_brings_everyone_back_and_loses_nothing() {
    let relay = start_relay("restart-1").await;
    let proxy = Proxy::start(relay.http_addr.unwrap()).await;
    let ws = ServerUrl::parse(&format!("ws://{}/xmpp-websocket", proxy.addr)).unwrap();
    let mut a = Person::join(engine_config(&relay, ws.clone(), "restart", "alice")).await;
    let mut b = Person::join(engine_config(&relay, ws.clone(), "restart", "bob")).await;
    a.wait_members(2).await;
    b.wait_members(2).await;
    a.say("before").await;
    b.hear("alice", "before").await;

    // The relay restarts (all state gone); both keep typing meanwhile.
    relay.stop();
    drop(relay);
    let relay2 = start_relay_at("127.0.0.1:0".parse().unwrap(), None, "restart-2").await;
    proxy.set_upstream(relay2.http_addr.unwrap());
    proxy.cut();
    a.handle.send("alice during the restart").unwrap();
    b.handle.send("bob during the restart").unwrap();
    reconnected(&mut a).await;
    reconnected(&mut b).await;
    a.hear("bob", "bob during the restart").await;
    b.hear("alice", "alice during the restart").await;
    a.say("after").await;
    b.hear("alice", "after").await;
    a.drain_for(Duration::from_millis(500)).await;
    b.drain_for(Duration::from_millis(500)).await;
    for text in ["before", "alice during the restart", "after"] {
        assert_eq!(count(&b, "alice", text), 1, "{text}: {:?}", b.received());
    }
    assert_eq!(count(&a, "bob", "bob during the restart"), 1);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_wire_carries_no_nickname_and_no_text() {
    let relay = start_relay("privacy").await;
    let proxy = Proxy::start(relay.http_addr.unwrap()).await;
    let bosh = ServerUrl::parse(&format!("http://{}/http-bind", proxy.addr)).unwrap();
    let nicks = ["Zaphod-Nick-91", "Trillian-Nick-42", "Marvin-Nick-77"];
    let mut people = Vec::new();
    for nick in nicks {
        people.push(Person::join(engine_config(&relay, bosh.clone(), "privacy", nick)).await);
    }
    for p in &mut people {
        p.wait_members(3).await;
    }
    let texts = ["secret-text-alpha", "secret-text-beta", "secret-text-gamma"];
    for (i, p) in people.iter_mut().enumerate() {
        p.say(texts[i]).await;
    }
    for (i, p) in people.iter_mut().enumerate() {
        for (j, text) in texts.iter().enumerate() {
            if i != j {
                p.hear(nicks[j], text).await;
            }
        }
    }
    people[0]
        .handle
        .send_private(nicks[1], "secret-private-delta")
        .await
        .unwrap();
    people[1]
        .wait_for("the private message", |e| {
            matches!(e, EngineEvent::Message { text, private: true, .. } if text == "secret-private-delta")
        })
        .await;
    let wire = proxy.captured();
    assert!(wire.len() > 10_000, "captured only {} bytes", wire.len());
    // The capture is readable XML (plain HTTP BOSH on loopback): the room is there...
    assert!(contains(&wire, b"privacy@conference.localhost"));
    // ...but no nickname and no text, in any case.
    let lower = wire.to_ascii_lowercase();
    for secret in nicks
        .iter()
        .chain(texts.iter())
        .chain(["secret-private-delta"].iter())
    {
        assert!(
            !contains(&lower, secret.to_ascii_lowercase().as_bytes()),
            "{secret} on the wire"
        );
    }
}

fn private_count(p: &Person, nick: &str, text: &str) -> usize {
    p.private_received()
        .iter()
        .filter(|(n, t)| n == nick && t == text)
        .count()
}

/// A short confirmation timeout, so that a false `unconfirmed` shows within the test.
fn quick_confirmations(
    mut config: cryptocat_client::EngineConfig,
) -> cryptocat_client::EngineConfig {
    config.room_config.confirm_timeout_ms = 3_000;
    config
}

#[tokio::test]
async fn a_full_rejoin_keeps_the_private_outbox_and_reports_no_false_unconfirmed() {
    // No resumption: every cut is a full re-join (everyone sees alice leave and come back,
    // every pairwise session restarts).
    let relay = start_relay_with(
        "127.0.0.1:0".parse().unwrap(),
        None,
        "rejoin-private",
        |limits| limits.sm_resume_secs = 0,
    )
    .await;
    let proxy = Proxy::start(relay.c2s_addr).await;
    let via_proxy = ServerUrl::parse(&format!("xmpp://{}", proxy.addr)).unwrap();
    let mut a = Person::join(quick_confirmations(engine_config(
        &relay, via_proxy, "rejoin", "alice",
    )))
    .await;
    let mut b = Person::join(quick_confirmations(engine_config(
        &relay,
        url(&relay, Via::Tcp),
        "rejoin",
        "bob",
    )))
    .await;
    a.wait_members(2).await;
    b.wait_members(2).await;
    let id = a.say("g1").await;
    b.hear("alice", "g1").await;
    a.confirmed(&id, 1).await;
    a.handle.send_private("bob", "p1").await.unwrap();
    b.wait_for(
        "p1",
        |e| matches!(e, EngineEvent::Message { text, private: true, .. } if text == "p1"),
    )
    .await;

    // Alice stops hearing the server: her next text reaches bob, but bob's
    // acknowledgement never reaches her before the connection breaks.
    proxy.swallow_downstream(true);
    let delivered = a
        .handle
        .send("g-delivered, its acknowledgement lost")
        .unwrap();
    b.hear("alice", "g-delivered, its acknowledgement lost")
        .await;
    b.drain_for(Duration::from_millis(300)).await;
    // Then the network silently loses what alice sends too (the server never
    // acknowledges it), and the connection breaks.
    proxy.swallow(true);
    a.handle
        .send_private("bob", "p2, never acknowledged")
        .await
        .unwrap();
    a.handle.send("g2, never acknowledged").unwrap();
    a.drain_for(Duration::from_millis(300)).await;
    proxy.cut();
    proxy.swallow(false);
    a.wait_for("reconnecting", |e| {
        matches!(
            e,
            EngineEvent::Connection(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    // Typed while the connection is down.
    a.handle
        .send_private("bob", "p3, typed offline")
        .await
        .unwrap();
    a.handle.send("g3, typed offline").unwrap();

    for text in ["p2, never acknowledged", "p3, typed offline"] {
        let t = text.to_owned();
        b.wait_for(
            text,
            move |e| matches!(e, EngineEvent::Message { text, private: true, .. } if *text == t),
        )
        .await;
    }
    b.hear("alice", "g2, never acknowledged").await;
    b.hear("alice", "g3, typed offline").await;
    assert!(
        b.log
            .iter()
            .any(|e| matches!(e, EngineEvent::MemberLeft { .. })),
        "a full re-join: bob saw alice leave"
    );
    // Past the confirmation timeout.
    a.drain_for(Duration::from_secs(5)).await;
    b.drain_for(Duration::from_millis(500)).await;
    for text in ["p1", "p2, never acknowledged", "p3, typed offline"] {
        assert_eq!(
            private_count(&b, "alice", text),
            1,
            "{text}: {:?}",
            b.private_received()
        );
    }
    for text in [
        "g1",
        "g-delivered, its acknowledgement lost",
        "g2, never acknowledged",
        "g3, typed offline",
    ] {
        assert_eq!(count(&b, "alice", text), 1, "{text}: {:?}", b.received());
    }
    assert_eq!(a.handle.pending().await.unwrap(), 0);
    assert!(
        !a.warnings().iter().any(|w| w == "unconfirmed"),
        "every message reached bob: {:?}",
        a.log
    );
    let _ = delivered;
}

/// "Retry now": with a long back-off the engine waits, and `retry_now` makes it try at
/// once (and it is back in the room).
#[tokio::test]
async fn retry_now_skips_the_wait() {
    let relay = start_relay("retry").await;
    let proxy = Proxy::start(relay.c2s_addr).await;
    let via_proxy = ServerUrl::parse(&format!("xmpp://{}", proxy.addr)).unwrap();
    let mut config = engine_config(&relay, via_proxy, "retry", "alice");
    config.reconnect = Some(cryptocat_client::Backoff {
        initial: Duration::from_secs(120),
        max: Duration::from_secs(120),
        max_attempts: None,
    });
    let mut a = Person::join(config).await;
    let mut b = Person::join(engine_config(&relay, url(&relay, Via::Tcp), "retry", "bob")).await;
    a.wait_members(2).await;
    b.wait_members(2).await;
    // While connected, asking changes nothing.
    a.handle.retry_now().unwrap();

    proxy.cut();
    let waiting = a
        .wait_for("reconnecting", |e| {
            matches!(
                e,
                EngineEvent::Connection(ConnectionState::Reconnecting { .. })
            )
        })
        .await;
    let EngineEvent::Connection(ConnectionState::Reconnecting { attempt, delay }) = waiting else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!(delay >= Duration::from_secs(120), "{delay:?}");
    // Without asking, nothing happens for a while.
    a.drain_for(Duration::from_secs(2)).await;
    assert!(
        !a.log
            .iter()
            .skip_while(|e| !matches!(
                e,
                EngineEvent::Connection(ConnectionState::Reconnecting { .. })
            ))
            .any(|e| matches!(e, EngineEvent::Connection(ConnectionState::Connected))),
        "reconnected before the delay without being asked"
    );
    let asked = std::time::Instant::now();
    a.handle.retry_now().unwrap();
    a.log.clear();
    a.wait_for("connected again", |e| {
        matches!(e, EngineEvent::Connection(ConnectionState::Connected))
    })
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "{:?}",
        asked.elapsed()
    );
    b.say("after the retry").await;
    a.hear("bob", "after the retry").await;
}
