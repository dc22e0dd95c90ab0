//! A member who leaves cannot read what the room says afterwards, even if it kept every
//! key it had: carol's engine is frozen (it stays in the room but stops reading), alice
//! speaks, carol's engine leaves the room at the XMPP level while keeping its whole room
//! state (a defecting client), the others rekey, and alice speaks again. Both of alice's
//! group payloads are taken from the bytes the relay sent to bob (a recording proxy on
//! loopback WebSocket) and handed to carol's kept room state: the first one decrypts (the
//! control: the capture, the addresses and the state are right), the second never does.

use std::time::Duration;

use base64::Engine as _;
use cryptocat_client::{EngineEvent, ServerUrl};
use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_protocol::group::{Room, RoomEvent};
use cryptocat_protocol::Timestamp;
use rand_core::OsRng;

use crate::proxy::Proxy;
use crate::{engine_config, start_relay, url, Person, Via};

/// The group payloads in a stream of server-to-client WebSocket frames, as
/// (from, bytes). Each stanza travels in one unmasked text frame, so its text appears
/// whole between the frame headers.
fn group_payloads(wire: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(wire);
    let mut out = Vec::new();
    let mut rest = &text[..];
    while let Some(start) = rest.find("<message") {
        let Some(len) = rest[start..].find("</message>") else {
            break;
        };
        let stanza = &rest[start..start + len];
        rest = &rest[start + len..];
        if !(stanza.contains("type='groupchat'") || stanza.contains("type=\"groupchat\"")) {
            continue;
        }
        let from = attribute(stanza, "from").expect("a groupchat stanza names its sender");
        let open = stanza.find("<payload").expect("a payload element");
        let body_start = open + stanza[open..].find('>').unwrap() + 1;
        let body_end = stanza.find("</payload>").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stanza[body_start..body_end].trim())
            .unwrap();
        out.push((from, bytes));
    }
    out
}

fn attribute(stanza: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(i) = stanza.find(&key) {
            let value = &stanza[i + key.len()..];
            return value.find(quote).map(|end| value[..end].to_owned());
        }
    }
    None
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp(u64::try_from(ms).unwrap())
}

/// Hands `payloads` from `from` to `room`, runs its timers well past any buffering, and
/// returns the texts it decrypted.
fn feed(room: &mut Room, from: &str, payloads: &[Vec<u8>]) -> Vec<String> {
    let mut rng = OsRng;
    for p in payloads {
        let _ = room.handle_group(now(), &mut rng, from, p);
    }
    let later = Timestamp(now().as_millis() + 10 * 60 * 1000);
    room.handle_timeout(later, &mut rng);
    let mut texts = Vec::new();
    while let Some(e) = room.poll_event() {
        if let RoomEvent::Message { from: f, text, .. } = e {
            assert_eq!(f, from);
            texts.push(text);
        }
    }
    while room.poll_transmit().is_some() {}
    texts
}

#[tokio::test]
async fn a_leaver_that_kept_its_keys_cannot_read_what_follows() {
    let relay = start_relay("defect").await;
    let proxy = Proxy::start(relay.http_addr.unwrap()).await;
    let bob_url = ServerUrl::parse(&format!("ws://{}/xmpp-websocket", proxy.addr)).unwrap();
    let room = "defect";
    let mut a = Person::join(engine_config(
        &relay,
        url(&relay, Via::WebSocket),
        room,
        "alice",
    ))
    .await;
    let mut b = Person::join(engine_config(&relay, bob_url, room, "bob")).await;
    a.wait_members(2).await;
    let mut c = Person::join(engine_config(
        &relay,
        url(&relay, Via::WebSocket),
        room,
        "carol",
    ))
    .await;
    for p in [&mut a, &mut b, &mut c] {
        p.wait_members(3).await;
    }
    a.say("all three of us").await;
    b.hear("alice", "all three of us").await;
    c.hear("alice", "all three of us").await;

    // Carol stops reading but stays: alice's next message is in the epoch carol holds.
    c.handle.freeze_for_test().await.unwrap();
    let mark = proxy.downstream().len();
    a.say("carol is still here").await;
    b.hear("alice", "carol is still here").await;
    let while_frozen = proxy.downstream()[mark..].to_vec();

    // Carol leaves, keeping everything.
    let mut kept = c.handle.defect_for_test().await.unwrap();
    for p in [&mut a, &mut b] {
        p.wait_for(
            "carol leaving",
            |e| matches!(e, EngineEvent::MemberLeft { nick } if nick == "carol"),
        )
        .await;
        p.wait_members(2).await;
    }
    let mark = proxy.downstream().len();
    a.say("carol has gone").await;
    b.hear("alice", "carol has gone").await;
    // Let any follow-up (acknowledgements) arrive too.
    b.drain_for(Duration::from_millis(300)).await;
    let after_leave = proxy.downstream()[mark..].to_vec();

    let alice = kept
        .members()
        .into_iter()
        .find(|m| m.nickname.as_deref() == Some("alice"))
        .expect("carol's kept state knows alice")
        .address;
    let from_alice = |wire: &[u8]| -> Vec<Vec<u8>> {
        group_payloads(wire)
            .into_iter()
            .filter(|(from, _)| *from == alice)
            .map(|(_, bytes)| bytes)
            .collect()
    };
    let before = from_alice(&while_frozen);
    let after = from_alice(&after_leave);
    assert!(
        !before.is_empty(),
        "no payload from alice captured while carol was frozen"
    );
    assert!(
        !after.is_empty(),
        "no payload from alice captured after carol left"
    );

    // The control: carol's kept state reads what was said while she was a member.
    assert_eq!(feed(&mut kept, &alice, &before), ["carol is still here"]);
    // What was said after she left is in an epoch she has no key for.
    let old_epoch = GroupMessage::decode(&before[0]).unwrap().epoch;
    for p in &after {
        assert_ne!(GroupMessage::decode(p).unwrap().epoch, old_epoch);
    }
    assert_eq!(feed(&mut kept, &alice, &after), Vec::<String>::new());
}
