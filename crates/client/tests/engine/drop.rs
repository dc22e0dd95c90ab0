//! A network drop in the middle of a conversation, on each transport: two members
//! exchange numbered group and private messages while alice's connection is cut (every
//! TCP connection through the proxy dies at once, as when a network goes away). Counted at
//! the end: nothing lost, nothing shown twice, and no re-join (TCP and WebSocket resume
//! the session, XEP-0198; a BOSH session outlives its HTTP connections).

use std::collections::HashMap;
use std::time::Duration;

use cryptocat_client::{ConnectionState, EngineEvent, ServerUrl};

use crate::proxy::Proxy;
use crate::{engine_config, start_relay, url, Person, Via, TIMEOUT};

/// Messages each member sends of each kind; the cut comes after half of them.
const ROUNDS: usize = 20;

/// (nick, text, private) of every message `p` was shown, with how often.
fn shown(p: &Person) -> HashMap<(String, String, bool), usize> {
    let mut seen = HashMap::new();
    for e in &p.log {
        if let EngineEvent::Message {
            nick,
            text,
            private,
            ..
        } = e
        {
            *seen
                .entry((nick.clone(), text.clone(), *private))
                .or_insert(0) += 1;
        }
    }
    seen
}

/// Reads events until `p` was shown every expected message, or [`TIMEOUT`] passes.
async fn wait_all(p: &mut Person, expected: &[(String, String, bool)]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let seen = shown(p);
        if expected.iter().all(|k| seen.contains_key(k)) {
            return;
        }
        p.drain_for(Duration::from_millis(100)).await;
    }
}

/// (lost, duplicated) among `expected` at `p`.
fn tally(p: &Person, expected: &[(String, String, bool)]) -> (usize, usize) {
    let seen = shown(p);
    let lost = expected.iter().filter(|k| !seen.contains_key(*k)).count();
    let duplicated = expected
        .iter()
        .filter_map(|k| seen.get(k))
        .map(|n| n.saturating_sub(1))
        .sum();
    (lost, duplicated)
}

async fn drop_mid_conversation(via: Via, tag: &str) {
    let relay = start_relay(tag).await;
    let upstream = match via {
        Via::Tcp => relay.c2s_addr,
        Via::WebSocket | Via::Bosh => relay.http_addr.unwrap(),
    };
    let proxy = Proxy::start(upstream).await;
    let proxied = match via {
        Via::Tcp => format!("xmpp://{}", proxy.addr),
        Via::WebSocket => format!("ws://{}/xmpp-websocket", proxy.addr),
        Via::Bosh => format!("http://{}/http-bind", proxy.addr),
    };
    let proxied = ServerUrl::parse(&proxied).unwrap();
    let mut a = Person::join(engine_config(&relay, proxied, tag, "alice")).await;
    let mut b = Person::join(engine_config(&relay, url(&relay, via), tag, "bob")).await;
    a.wait_members(2).await;
    b.wait_members(2).await;

    let mut to_alice = Vec::new();
    let mut to_bob = Vec::new();
    for i in 0..ROUNDS {
        if i == ROUNDS / 2 {
            proxy.cut();
        }
        let (ag, ap) = (format!("alice group {i}"), format!("alice private {i}"));
        let (bg, bp) = (format!("bob group {i}"), format!("bob private {i}"));
        // A refused private text (the member is gone: a re-join) counts as lost below.
        a.handle.send(&ag).unwrap();
        let _ = a.handle.send_private("bob", &ap).await;
        b.handle.send(&bg).unwrap();
        let _ = b.handle.send_private("alice", &bp).await;
        to_bob.push(("alice".to_owned(), ag, false));
        to_bob.push(("alice".to_owned(), ap, true));
        to_alice.push(("bob".to_owned(), bg, false));
        to_alice.push(("bob".to_owned(), bp, true));
        // Let the conversation interleave with the cut and the reconnection.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_all(&mut a, &to_alice).await;
    wait_all(&mut b, &to_bob).await;
    a.drain_for(Duration::from_millis(500)).await;
    b.drain_for(Duration::from_millis(500)).await;

    let (lost_a, dup_a) = tally(&a, &to_alice);
    let (lost_b, dup_b) = tally(&b, &to_bob);
    let rejoined = b
        .log
        .iter()
        .any(|e| matches!(e, EngineEvent::MemberLeft { .. }));
    eprintln!(
        "drop over {via:?}: sent {}, lost {}, duplicated {}, re-joined {rejoined}",
        to_alice.len() + to_bob.len(),
        lost_a + lost_b,
        dup_a + dup_b
    );
    assert_eq!((lost_a, dup_a), (0, 0), "at alice: {:?}", a.log);
    assert_eq!((lost_b, dup_b), (0, 0), "at bob: {:?}", b.log);
    assert!(
        !rejoined,
        "the session outlived the drop: bob never saw alice leave"
    );
    if via != Via::Bosh {
        // The drop was real: alice's stream broke and was resumed (a BOSH client just
        // sends its requests again on new HTTP connections).
        assert!(
            a.log.iter().any(|e| matches!(
                e,
                EngineEvent::Connection(ConnectionState::Reconnecting { .. })
            )),
            "{:?}",
            a.log
        );
    }
    assert_eq!(a.handle.pending().await.unwrap(), 0);
    assert_eq!(b.handle.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn a_drop_over_tcp_loses_nothing() {
    drop_mid_conversation(Via::Tcp, "drop-tcp").await;
}

#[tokio::test]
async fn a_drop_over_websocket_loses_nothing() {
    drop_mid_conversation(Via::WebSocket, "drop-ws").await;
}

#[tokio::test]
async fn a_drop_over_bosh_loses_nothing() {
    drop_mid_conversation(Via::Bosh, "drop-bosh").await;
}
