//! XMPP over WebSocket (RFC 7395) against the relay's `/xmpp-websocket`, in the same room
//! as a TCP client.

use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_xmpp::{Config, Event, ServerUrl, TrustConfig};

use crate::proxy::Proxy;
use crate::{config, joined, next, online, start_relay_with_http, wait_for};

#[tokio::test]
async fn websocket_client_registers_joins_and_exchanges_payloads_with_a_tcp_client() {
    let server = start_relay_with_http().await;
    let url = format!("ws://{}/xmpp-websocket", server.http_addr.unwrap());
    let mut ws_config = Config::new(ServerUrl::parse(&url).unwrap()).with_domain("localhost");
    // ws:// has no TLS of its own (loopback): an empty trust store is fine.
    ws_config.trust = TrustConfig::default();
    let mut alice = online(ws_config).await;
    let mut bob = online(config(&server)).await;
    assert!(alice.jid.contains("@localhost/"));

    assert!(joined(&mut alice, "room", "a").await.is_empty());
    assert_eq!(joined(&mut bob, "room", "b").await, ["a"]);
    assert_eq!(
        next(&mut alice.events).await,
        Event::OccupantJoined {
            room: "room".into(),
            nick: "b".into()
        }
    );
    let bytes = GroupMessage {
        epoch: [8; 16],
        sender: 0,
        index: 1,
        prev_hash: [9; 32],
        ciphertext: vec![10; 48],
        macs: vec![[11; 16]],
    }
    .encode();
    alice.handle.send_groupchat("room", &bytes).unwrap();
    for peer in [&mut bob, &mut alice] {
        assert_eq!(
            next(&mut peer.events).await,
            Event::GroupPayload {
                room: "room".into(),
                from_nick: "a".into(),
                bytes: bytes.clone()
            }
        );
    }
    bob.handle
        .send_private("room", "a", &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    // A group envelope is not a pairwise message: the relay refuses it.
    assert!(matches!(
        next(&mut bob.events).await,
        Event::StanzaError { condition, .. } if condition == "policy-violation"
    ));
    // A malformed payload over WebSocket gets the same policy error.
    alice.handle.send_groupchat("room", b"junk").unwrap();
    assert!(matches!(
        next(&mut alice.events).await,
        Event::StanzaError { condition, .. } if condition == "policy-violation"
    ));
    alice.handle.leave("room").unwrap();
    assert_eq!(
        next(&mut alice.events).await,
        Event::Left {
            room: "room".into()
        }
    );
}

#[tokio::test]
async fn websocket_client_resumes_its_session_after_a_cut() {
    let server = start_relay_with_http().await;
    let proxy = Proxy::start(server.http_addr.unwrap()).await;
    let url = format!("ws://{}/xmpp-websocket", proxy.addr);
    let mut ws_config = crate::config_for(proxy.addr, TrustConfig::default());
    ws_config.server = ServerUrl::parse(&url).unwrap();
    let mut alice = online(ws_config).await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "room", "a").await;
    joined(&mut bob, "room", "b").await;
    next(&mut alice.events).await;

    // XEP-0198 over WebSocket: the relay kept the session, still in the room.
    proxy.cut();
    wait_for(&mut alice.events, |e| match e {
        Event::Resumed { .. } => Some(()),
        Event::Connected { .. } | Event::Joined { .. } => panic!("not resumed: {e:?}"),
        _ => None,
    })
    .await;
    let bytes = GroupMessage {
        epoch: [1; 16],
        sender: 0,
        index: 2,
        prev_hash: [3; 32],
        ciphertext: vec![4; 16],
        macs: vec![[5; 16]],
    }
    .encode();
    alice.handle.send_groupchat("room", &bytes).unwrap();
    let got = wait_for(&mut bob.events, |e| match e {
        Event::GroupPayload { bytes, .. } => Some(bytes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, bytes);
}
