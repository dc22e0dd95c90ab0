//! XEP-0198 stream management with resumption, against the relay: a TCP connection that
//! silently dies (the proxy freezes, then cuts it) is resumed without leaving the room and
//! without losing a payload in either direction; a refused resumption falls back to a new
//! session and a re-join, reporting what was not acknowledged as not sent; a payload, a
//! leave and a disconnect in a row end the session at once (the others see the leave).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_relay::{Config as RelayConfig, Limits, Running, Server};
use cryptocat_xmpp::{Event, MessageId, TrustConfig};

use crate::proxy::Proxy;
use crate::{config, config_for, expect_silence, joined, next, online, wait_for, Peer};

async fn relay_with(tag: &str, limits: Limits) -> Running {
    let mut config = RelayConfig::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.state_dir = Some(
        std::env::temp_dir().join(format!("cryptocat-xmpp-test-{}-{tag}", std::process::id())),
    );
    config.limits = limits;
    Server::bind(config).await.unwrap().spawn()
}

fn limits() -> Limits {
    Limits {
        auth_failure_delay_ms: 10,
        ..Limits::default()
    }
}

fn payload(seed: u8) -> Vec<u8> {
    GroupMessage {
        epoch: [seed; 16],
        sender: 0,
        index: u32::from(seed),
        prev_hash: [seed; 32],
        ciphertext: vec![seed; 40],
        macs: vec![[seed; 16]],
    }
    .encode()
}

/// Hana (through the proxy) and Tom (direct) in one room.
async fn pair(server: &Running, proxy: &Proxy) -> (Peer, Peer) {
    let trust = TrustConfig::only(server.tls.certificate.clone());
    let mut hana = online(config_for(proxy.addr, trust)).await;
    let mut tom = online(config(server)).await;
    joined(&mut hana, "room", "h").await;
    joined(&mut tom, "room", "t").await;
    next(&mut hana.events).await; // Tom's arrival
    (hana, tom)
}

/// Collects group payloads `(from, seed)` until `want` are seen, failing on any event
/// that a resumption must not produce.
async fn payloads(peer: &mut Peer, want: usize) -> Vec<(String, Vec<u8>)> {
    let mut got = Vec::new();
    while got.len() < want {
        match next(&mut peer.events).await {
            Event::GroupPayload {
                from_nick, bytes, ..
            } => got.push((from_nick, bytes)),
            Event::Disconnected { .. } | Event::Reconnecting { .. } | Event::Resumed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

#[tokio::test]
async fn a_dead_tcp_connection_is_resumed_with_the_room_and_every_payload() {
    let server = relay_with("sm-resume", limits()).await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let (mut hana, mut tom) = pair(&server, &proxy).await;
    // Traffic before the break, so the counters are past zero.
    hana.handle.send_groupchat("room", &payload(1)).unwrap();
    assert_eq!(payloads(&mut tom, 1).await, [("h".into(), payload(1))]);
    assert_eq!(payloads(&mut hana, 1).await, [("h".into(), payload(1))]);

    // The connection dies silently: what either side writes now is never delivered.
    proxy.freeze();
    for seed in [10, 11, 12] {
        tom.handle.send_groupchat("room", &payload(seed)).unwrap();
    }
    for seed in [20, 21] {
        hana.handle.send_groupchat("room", &payload(seed)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    // The relay keeps the session (and its room membership) detached.
    let jid = wait_for(&mut hana.events, |e| match e {
        Event::Resumed { jid } => Some(jid.clone()),
        Event::Connected { .. } | Event::Joined { .. } => panic!("not resumed: {e:?}"),
        _ => None,
    })
    .await;
    assert_eq!(jid, hana.jid, "same session, same resource");
    assert_eq!(server.detached_count(), 0, "taken over");

    // Hana gets Tom's three payloads and the echoes of her two, each once; Tom gets hers.
    let got: BTreeSet<_> = payloads(&mut hana, 5).await.into_iter().collect();
    let want: BTreeSet<(String, Vec<u8>)> = [10, 11, 12]
        .map(|s| ("t".to_owned(), payload(s)))
        .into_iter()
        .chain([20, 21].map(|s| ("h".to_owned(), payload(s))))
        .collect();
    assert_eq!(got, want);
    let mut from_hana = Vec::new();
    while from_hana.len() < 2 {
        match next(&mut tom.events).await {
            Event::GroupPayload {
                from_nick, bytes, ..
            } if from_nick == "h" => from_hana.push(bytes),
            Event::GroupPayload { .. } => {} // echoes of Tom's own
            other => panic!("Tom saw {other:?}"),
        }
    }
    assert_eq!(from_hana, [payload(20), payload(21)]);
    // Nothing twice, and Tom never saw Hana leave.
    expect_silence(&mut hana.events, Duration::from_millis(300)).await;
    expect_silence(&mut tom.events, Duration::from_millis(100)).await;
    // And the resumed session goes on both ways.
    tom.handle.send_groupchat("room", &payload(30)).unwrap();
    assert_eq!(payloads(&mut hana, 1).await, [("t".into(), payload(30))]);
}

#[tokio::test]
async fn a_half_open_connection_is_taken_over_by_the_resumption() {
    // The client's side dies but the relay still holds the old connection (it has not
    // noticed yet): the resumption takes the session over at once instead of waiting for
    // the relay to notice, and nobody sees Hana leave or come back.
    let server = relay_with("sm-half-open", limits()).await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let (mut hana, mut tom) = pair(&server, &proxy).await;
    let started = std::time::Instant::now();
    proxy.cut_client_side();
    let jid = wait_for(&mut hana.events, |e| match e {
        Event::Resumed { jid } => Some(jid.clone()),
        Event::Connected { .. } | Event::Joined { .. } => panic!("not resumed: {e:?}"),
        _ => None,
    })
    .await;
    assert_eq!(jid, hana.jid);
    assert!(
        started.elapsed() < crate::proxy::HOLD,
        "resumed before the old connection closed"
    );
    tom.handle.send_groupchat("room", &payload(50)).unwrap();
    assert_eq!(payloads(&mut hana, 1).await, [("t".into(), payload(50))]);
    hana.handle.send_groupchat("room", &payload(51)).unwrap();
    let got = wait_for(&mut tom.events, |e| match e {
        Event::GroupPayload {
            from_nick, bytes, ..
        } if from_nick == "h" => Some(bytes.clone()),
        Event::OccupantLeft { .. } | Event::OccupantJoined { .. } => panic!("Tom saw {e:?}"),
        _ => None,
    })
    .await;
    assert_eq!(got, payload(51));
    tokio::time::sleep(crate::proxy::HOLD).await;
    expect_silence(&mut tom.events, Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_refused_resumption_falls_back_to_a_new_session_and_rejoins() {
    // No room for detached sessions: the relay ends the session when the connection dies,
    // so the resumption gets <failed/>.
    let server = relay_with(
        "sm-failed",
        Limits {
            sm_detached_sessions: 0,
            ..limits()
        },
    )
    .await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let (mut hana, mut tom) = pair(&server, &proxy).await;
    proxy.freeze();
    let lost: MessageId = hana.handle.send_groupchat("room", &payload(40)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.cut();
    // Tom sees the old occupant go, then come back.
    let seen = wait_for(&mut tom.events, |e| match e {
        Event::OccupantLeft { nick, .. } => Some(nick.clone()),
        _ => None,
    })
    .await;
    assert_eq!(seen, "h");
    // Hana: the unacknowledged payload is reported as not sent, then a new session
    // (same account, new resource) re-joins the room.
    let mut not_sent = Vec::new();
    let jid = wait_for(&mut hana.events, |e| match e {
        Event::NotSent { id } => {
            not_sent.push(id.clone());
            None
        }
        Event::Connected { jid } => Some(jid.clone()),
        Event::Resumed { .. } => panic!("resumed a session the relay dropped"),
        _ => None,
    })
    .await;
    assert_eq!(not_sent, [lost]);
    assert_eq!(jid.split('/').next(), hana.jid.split('/').next());
    assert_ne!(jid, hana.jid);
    let occupants = wait_for(&mut hana.events, |e| match e {
        Event::Joined { room, occupants } if room == "room" => Some(occupants.clone()),
        _ => None,
    })
    .await;
    assert_eq!(occupants, ["t"]);
    assert_eq!(
        wait_for(&mut tom.events, |e| match e {
            Event::OccupantJoined { nick, .. } => Some(nick.clone()),
            _ => None,
        })
        .await,
        "h"
    );
    // Payloads flow again; the lost one never arrived.
    hana.handle.send_groupchat("room", &payload(41)).unwrap();
    let got = wait_for(&mut tom.events, |e| match e {
        Event::GroupPayload { bytes, .. } => Some(bytes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, payload(41));
    assert_eq!(server.detached_count(), 0);
}

/// A payload, a leave and a disconnect sent in a row over TCP with stream management: the
/// other occupant gets the payload and sees the leave at once, and the relay keeps no
/// detached session (the stream was closed, not broken).
#[tokio::test]
async fn payload_leave_and_disconnect_in_a_row_are_seen_at_once() {
    let server = relay_with("leave", limits()).await;
    let mut hana = online(config(&server)).await;
    let mut tom = online(config(&server)).await;
    joined(&mut hana, "room", "h").await;
    joined(&mut tom, "room", "t").await;
    next(&mut hana.events).await; // Tom's arrival
    tom.handle.send_groupchat("room", &payload(5)).unwrap();
    tom.handle.leave("room").unwrap();
    tom.handle.disconnect().unwrap();
    let got = payloads(&mut hana, 1).await;
    assert_eq!(got, [("t".to_owned(), payload(5))]);
    let left = tokio::time::timeout(Duration::from_secs(1), next(&mut hana.events))
        .await
        .expect("the leave is seen at once");
    assert!(
        matches!(&left, Event::OccupantLeft { room, nick } if room == "room" && nick == "t"),
        "{left:?}"
    );
    wait_for(&mut tom.events, |e| match e {
        Event::Disconnected {
            reason,
            will_reconnect,
        } => {
            assert!(
                matches!(reason, cryptocat_xmpp::DisconnectReason::Requested),
                "{reason:?}"
            );
            assert!(!will_reconnect);
            Some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(server.detached_count(), 0);
    expect_silence(&mut hana.events, Duration::from_millis(100)).await;
}

/// A detached session whose outbox overflowed is not resumed.
#[tokio::test]
async fn a_session_that_lost_stanzas_while_detached_is_not_resumed() {
    // The detached session's outbox is small and overflows: the relay refuses to resume it
    // (resumption promises nothing was lost), so the client starts over and re-joins.
    let server = relay_with(
        "sm-overflow",
        Limits {
            outbox_stanzas: 3,
            ..limits()
        },
    )
    .await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let trust = TrustConfig::only(server.tls.certificate.clone());
    let mut cfg = config_for(proxy.addr, trust);
    cfg.reconnect = Some(cryptocat_xmpp::Backoff {
        initial: Duration::from_millis(800),
        max: Duration::from_millis(800),
        max_attempts: Some(5),
    });
    let mut hana = online(cfg).await;
    let mut tom = online(config(&server)).await;
    joined(&mut hana, "room", "h").await;
    joined(&mut tom, "room", "t").await;
    next(&mut hana.events).await;
    proxy.cut();
    for _ in 0..100 {
        if server.detached_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.detached_count(), 1);
    for seed in 60..66 {
        tom.handle.send_groupchat("room", &payload(seed)).unwrap();
    }
    let jid = wait_for(&mut hana.events, |e| match e {
        Event::Connected { jid } => Some(jid.clone()),
        Event::Resumed { .. } => panic!("resumed a session that lost stanzas"),
        _ => None,
    })
    .await;
    assert_ne!(jid, hana.jid);
    wait_for(&mut hana.events, |e| match e {
        Event::Joined { room, .. } if room == "room" => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(server.detached_count(), 0);
}

#[tokio::test]
async fn a_payload_is_accepted_once_the_server_acknowledges_it() {
    let server = relay_with("sm-accepted", limits()).await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let (mut hana, _tom) = pair(&server, &proxy).await;
    let id = hana.handle.send_groupchat("room", &payload(3)).unwrap();
    let mut accepted = 0;
    let mut echoed = false;
    while !(echoed && accepted > 0) {
        match crate::next_event(&mut hana.events).await {
            Event::Accepted { id: a } if a == id => accepted += 1,
            Event::GroupPayload { .. } => echoed = true,
            Event::NotSent { .. } => panic!("a payload is accepted or not sent, never both"),
            _ => {}
        }
    }
    // Nothing more about it.
    expect_silence(&mut hana.events, Duration::from_millis(300)).await;
    assert_eq!(accepted, 1);
}
