//! Three members over each transport; verification; leaving.

use std::time::Duration;

use cryptocat_client::{EngineError, EngineEvent};

use crate::{start_relay, trio, Person, Via};

async fn three_members_chat(via: Via, tag: &str) {
    let relay = start_relay(tag).await;
    let (mut a, mut b, mut c) = trio(&relay, via, "lobby").await;

    let id_a = a.say("hello from alice").await;
    let id_b = b.say("bob here").await;
    let id_c = c.say("carol too <b>not bold</b>").await;
    for p in [&mut a, &mut b, &mut c] {
        for (nick, text) in [
            ("alice", "hello from alice"),
            ("bob", "bob here"),
            ("carol", "carol too <b>not bold</b>"),
        ] {
            if nick != p.nick {
                p.hear(nick, text).await;
            }
        }
    }
    a.confirmed(&id_a, 2).await;
    b.confirmed(&id_b, 2).await;
    c.confirmed(&id_c, 2).await;

    // A private chat between two is not seen by the third.
    a.handle.send_private("bob", "only for bob").await.unwrap();
    b.wait_for("alice's private message", |e| {
        matches!(e, EngineEvent::Message { nick, text, private: true, .. } if nick == "alice" && text == "only for bob")
    })
    .await;
    b.handle.send_private("alice", "got it").await.unwrap();
    a.wait_for("bob's private answer", |e| {
        matches!(e, EngineEvent::Message { nick, text, private: true, .. } if nick == "bob" && text == "got it")
    })
    .await;
    c.drain_for(Duration::from_millis(1500)).await;
    assert!(
        c.private_received().is_empty(),
        "{:?}",
        c.private_received()
    );
    assert!(!c.received().iter().any(|(_, t)| t.contains("only for bob")));

    // Everyone got each message exactly once, with the right nickname, and never their own.
    for p in [&a, &b, &c] {
        let got = p.received();
        assert_eq!(got.len(), 2, "{}: {got:?}", p.nick);
        assert!(got.iter().all(|(n, _)| *n != p.nick));
        assert!(p.warnings().is_empty(), "{}: {:?}", p.nick, p.warnings());
    }
    // Unknown nicknames give a clear error.
    assert_eq!(
        a.handle.send_private("mallory", "x").await,
        Err(EngineError::UnknownNickname)
    );
    assert_eq!(a.handle.send("   "), Err(EngineError::EmptyText));
}

#[tokio::test]
async fn three_members_chat_over_tcp() {
    three_members_chat(Via::Tcp, "trio-tcp").await;
}

#[tokio::test]
async fn three_members_chat_over_websocket() {
    three_members_chat(Via::WebSocket, "trio-ws").await;
}

#[tokio::test]
async fn three_members_chat_over_bosh() {
    three_members_chat(Via::Bosh, "trio-bosh").await;
}

#[tokio::test]
async fn fingerprints_match_and_the_secret_question_decides() {
    let relay = start_relay("verify").await;
    let (mut a, mut b, mut c) = trio(&relay, Via::Tcp, "verify").await;

    // Everyone sees everyone's real fingerprint, and pairwise safety numbers agree.
    let members_a = a.handle.members().await.unwrap();
    let members_b = b.handle.members().await.unwrap();
    let members_c = c.handle.members().await.unwrap();
    let fp = |list: &[cryptocat_client::MemberView], nick: &str| {
        list.iter().find(|m| m.nick == nick).unwrap().clone()
    };
    assert_eq!(fp(&members_a, "bob").fingerprint, b.handle.fingerprint());
    assert_eq!(fp(&members_a, "carol").fingerprint, c.handle.fingerprint());
    assert_eq!(fp(&members_b, "alice").fingerprint, a.handle.fingerprint());
    assert_eq!(fp(&members_c, "bob").fingerprint, b.handle.fingerprint());
    assert_eq!(
        fp(&members_a, "bob").safety_number,
        fp(&members_b, "alice").safety_number
    );
    assert_ne!(
        fp(&members_a, "bob").safety_number,
        fp(&members_a, "carol").safety_number
    );

    // The right answer (normalized: case and spacing) verifies both sides.
    a.handle
        .ask_question("bob", Some("Where did we meet?"), "Café de Flore")
        .await
        .unwrap();
    b.wait_for("alice's question", |e| {
        matches!(e, EngineEvent::Question { nick, question: Some(q) } if nick == "alice" && q == "Where did we meet?")
    })
    .await;
    b.handle.answer("alice", "  café DE flore ").await.unwrap();
    for (p, other) in [(&mut a, "bob"), (&mut b, "alice")] {
        p.wait_for("verified", |e| {
            matches!(e, EngineEvent::Verification { nick, verified: true, manual: false } if nick == other)
        })
        .await;
    }
    assert!(a
        .handle
        .members()
        .await
        .unwrap()
        .iter()
        .any(|m| m.nick == "bob" && m.verified));

    // A wrong answer fails on both sides.
    a.handle
        .ask_question("carol", Some("Our cat's name?"), "Felix")
        .await
        .unwrap();
    c.wait_for("alice's question", |e| {
        matches!(e, EngineEvent::Question { .. })
    })
    .await;
    c.handle.answer("alice", "Garfield").await.unwrap();
    for (p, other) in [(&mut a, "carol"), (&mut c, "alice")] {
        p.wait_for("verification failed", |e| {
            matches!(e, EngineEvent::Verification { nick, verified: false, manual: false } if nick == other)
        })
        .await;
    }
    assert!(c
        .handle
        .members()
        .await
        .unwrap()
        .iter()
        .all(|m| !m.verified));

    // Marking by hand, and the list of verified fingerprints the app would keep.
    c.handle.mark_verified("bob", true).await.unwrap();
    c.wait_for("marked", |e| {
        matches!(e, EngineEvent::Verification { nick, verified: true, manual: true } if nick == "bob")
    })
    .await;
    let kept = c.handle.verified_contacts().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].nickname, "bob");
    assert_eq!(
        &kept[0].fingerprint,
        &fp(&members_c, "bob").fingerprint_bytes
    );
}

#[tokio::test]
async fn a_member_leaves_and_the_others_rekey_without_it() {
    let relay = start_relay("leave").await;
    let (mut a, mut b, mut c) = trio(&relay, Via::WebSocket, "leave").await;
    let before = a.say("before the leave").await;
    b.hear("alice", "before the leave").await;
    c.hear("alice", "before the leave").await;

    c.handle.leave().await.unwrap();
    c.wait_for("left", |e| matches!(e, EngineEvent::Left)).await;
    assert!(c.handle.send("anyone?").is_err() || c.handle.pending().await.is_err());

    for p in [&mut a, &mut b] {
        p.wait_for(
            "carol leaving",
            |e| matches!(e, EngineEvent::MemberLeft { nick } if nick == "carol"),
        )
        .await;
        p.wait_members(2).await;
    }
    let after = a.say("after the leave").await;
    b.hear("alice", "after the leave").await;
    a.confirmed(&after, 1).await;
    // A new epoch: the message id names another epoch than before.
    assert_ne!(after.split('-').next(), before.split('-').next());
    let members = a.handle.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert!(members.iter().all(|m| m.nick == "bob" && m.in_epoch));
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    use cryptocat_client::{Engine, StartError};
    let relay = start_relay("bad").await;
    let url = crate::url(&relay, Via::Tcp);
    for (room, nick, code) in [
        ("two words", "alice", "invalid_room"),
        ("a@b", "alice", "invalid_room"),
        ("ok", "", "invalid_nickname"),
        ("ok", "a\u{7}b", "invalid_nickname"),
    ] {
        let err = Engine::start(crate::engine_config(&relay, url.clone(), room, nick))
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), code);
    }
    // Nothing listens there.
    let closed = cryptocat_client::ServerUrl::parse("xmpp://127.0.0.1:9").unwrap();
    let err = Engine::start(crate::engine_config(&relay, closed, "ok", "alice"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::Connect(_)), "{err}");
    let _ = Person::join; // used by other tests
}

#[tokio::test]
async fn a_verified_nickname_with_another_key_and_a_taken_nickname_are_loud() {
    use cryptocat_client::WarningCode;
    let relay = start_relay("keys").await;
    let url = crate::url(&relay, Via::Tcp);
    let mut a = Person::join(crate::engine_config(&relay, url.clone(), "keys", "alice")).await;
    let mut b = Person::join(crate::engine_config(&relay, url.clone(), "keys", "bob")).await;
    a.wait_members(2).await;
    b.wait_members(2).await;
    a.handle.mark_verified("bob", true).await.unwrap();
    // bob leaves; someone else comes back as "bob" with other keys.
    b.handle.leave().await.unwrap();
    a.wait_for("bob leaving", |e| {
        matches!(e, EngineEvent::MemberLeft { .. })
    })
    .await;
    let mut impostor = Person::join(crate::engine_config(&relay, url.clone(), "keys", "bob")).await;
    let warning = a
        .wait_for("key changed", |e| {
            matches!(
                e,
                EngineEvent::Warning {
                    code: WarningCode::KeyChanged,
                    ..
                }
            )
        })
        .await;
    let EngineEvent::Warning { message, who, .. } = warning else {
        unreachable!()
    };
    assert!(message.contains("bob"), "{message}");
    assert_eq!(
        who,
        ["bob"],
        "the member concerned, for the UI's own sentence"
    );
    assert!(a
        .handle
        .members()
        .await
        .unwrap()
        .iter()
        .all(|m| !m.verified));
    // A second "bob" at the same time: everyone is told the nickname is taken.
    impostor.wait_members(2).await;
    let _second = Person::join(crate::engine_config(&relay, url, "keys", "bob")).await;
    a.wait_for("nickname taken", |e| {
        matches!(
            e,
            EngineEvent::Warning {
                code: WarningCode::NicknameTaken,
                ..
            }
        )
    })
    .await;
    assert_eq!(
        a.handle.send_private("bob", "which one?").await,
        Err(EngineError::AmbiguousNickname)
    );
}

#[tokio::test]
async fn the_engine_logs_in_with_its_key_where_the_relay_requires_it() {
    use cryptocat_relay::{Config, Server};
    let mut config = Config::new("localhost", "127.0.0.1:0".parse().unwrap());
    config.http = Some("127.0.0.1:0".parse().unwrap());
    config.require_key_bound = true;
    config.state_dir = Some(std::env::temp_dir().join(format!(
        "cryptocat-engine-test-{}-keybound",
        std::process::id()
    )));
    let relay = Server::bind(config).await.unwrap().spawn();
    // Only key-bound accounts may join rooms here: the engine's key challenge gets in,
    // over TCP (with the TLS channel binding) and BOSH.
    let mut a = Person::join(crate::engine_config(
        &relay,
        crate::url(&relay, Via::Tcp),
        "kb",
        "alice",
    ))
    .await;
    let mut b = Person::join(crate::engine_config(
        &relay,
        crate::url(&relay, Via::Bosh),
        "kb",
        "bob",
    ))
    .await;
    a.wait_members(2).await;
    b.wait_members(2).await;
    a.say("signed in with my key").await;
    b.hear("alice", "signed in with my key").await;
}
