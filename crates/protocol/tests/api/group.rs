//! The group protocol in simulated rooms: convergence, confirmations, join and leave
//! secrecy, and every attack of a malicious server or insider detected and named.

use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_protocol::group::{Alarm, Room, RoomConfig, RoomError, RoomEvent};
use cryptocat_protocol::identity::Identity;
use proptest::prelude::*;

use crate::room_sim::{Channel, Envelope, Sim, Verdict};
use crate::sim::Faults;

const CLEAN: Faults = Faults {
    drop_per_mille: 0,
    duplicate_per_mille: 0,
    max_delay: 0,
};

fn ready_counters(sim: &Sim) -> Vec<Option<(u64, bool)>> {
    sim.members.iter().map(|m| m.room.epoch()).collect()
}

fn room_of(n: usize, seed: u64, faults: Faults) -> Sim {
    let mut sim = Sim::new(seed, faults);
    for i in 0..n {
        sim.join(seed * 100 + i as u64, &format!("nick{i}"));
    }
    sim.run(10_000);
    sim
}

fn confirmations(sim: &Sim, i: usize) -> Vec<(String, usize, usize)> {
    sim.members[i]
        .events
        .iter()
        .filter_map(|e| match e {
            RoomEvent::Confirmation { id, confirmed, of } => {
                Some((id.to_string(), *confirmed, *of))
            }
            _ => None,
        })
        .collect()
}

fn final_confirmation(sim: &Sim, i: usize, local_id: u64) -> (usize, usize) {
    let id = sim.members[i]
        .events
        .iter()
        .find_map(|e| match e {
            RoomEvent::Sent { local_id: l, id } if *l == local_id => Some(id.to_string()),
            _ => None,
        })
        .expect("message was sent");
    confirmations(sim, i)
        .into_iter()
        .filter(|(cid, _, _)| *cid == id)
        .map(|(_, c, of)| (c, of))
        .max()
        .expect("a confirmation event")
}

#[test]
fn three_members_agree_chat_and_confirm() {
    let mut sim = room_of(3, 1, CLEAN);
    let epochs = ready_counters(&sim);
    assert!(
        epochs.iter().all(|e| e.is_some_and(|(_, ready)| ready)),
        "{epochs:?}"
    );
    assert!(
        epochs.windows(2).all(|w| w[0] == w[1]),
        "members disagree on the epoch: {epochs:?}"
    );
    // Everyone saw the others join with the right nicknames.
    for i in 0..3 {
        let joined: Vec<String> = sim.members[i]
            .events
            .iter()
            .filter_map(|e| match e {
                RoomEvent::MemberJoined { nickname, .. } => Some(nickname.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(joined.len(), 2, "member {i}: {joined:?}");
        assert!(!joined.contains(&format!("nick{i}")));
    }
    let ids: Vec<u64> = (0..3)
        .map(|i| sim.send(i, &format!("hello from {i}")))
        .collect();
    sim.run(10_000);
    for i in 0..3 {
        let got = sim.texts(i);
        assert_eq!(got.len(), 2, "member {i} got {got:?}");
        for (nick, text) in got {
            assert_eq!(text, format!("hello from {}", &nick[4..]));
        }
        assert_eq!(final_confirmation(&sim, i, ids[i]), (2, 2), "member {i}");
        assert!(sim.alarms(i).is_empty(), "member {i}: {:?}", sim.alarms(i));
    }
}

#[test]
fn private_messages_reach_only_their_recipient() {
    let mut sim = room_of(3, 2, CLEAN);
    let to = sim.address(1);
    let now = sim.now;
    let m = &mut sim.members[0];
    m.room
        .send_private_text(&mut m.rng, &to, "just for you")
        .unwrap();
    let _ = now;
    sim.run(5_000);
    let private = |i: usize| {
        sim.members[i]
            .events
            .iter()
            .filter(
                |e| matches!(e, RoomEvent::PrivateMessage { text, .. } if text == "just for you"),
            )
            .count()
    };
    assert_eq!(private(1), 1);
    assert_eq!(private(2), 0);
    assert_eq!(private(0), 0);
}

#[test]
fn newcomer_cannot_read_earlier_messages_and_leaver_cannot_read_later_ones() {
    let mut sim = room_of(3, 3, CLEAN);
    sim.send(0, "before the join");
    sim.run(5_000);
    let before: Vec<Vec<u8>> = sim.captured.clone();
    // Dave joins; everyone rekeys.
    let dave = sim.join(399, "dave");
    sim.run(10_000);
    let epochs = ready_counters(&sim);
    assert!(epochs.windows(2).all(|w| w[0] == w[1]), "{epochs:?}");
    assert_eq!(
        sim.members[0].room.epoch().map(|e| e.0),
        sim.members[dave].room.epoch().map(|e| e.0)
    );
    // Replay every earlier group payload to Dave: nothing decrypts.
    let from = sim.address(0);
    for p in before.iter().filter(|p| GroupMessage::decode(p).is_ok()) {
        sim.inject(Envelope {
            from: from.clone(),
            to: sim.address(dave),
            channel: Channel::Room,
            payload: p.clone(),
            from_twin: false,
        });
    }
    sim.run(60_000);
    assert!(
        sim.texts(dave).iter().all(|(_, t)| t != "before the join"),
        "{:?}",
        sim.texts(dave)
    );
    // Member 2 is removed by the server; the rest rekey and talk.
    let gone = sim.remove(2);
    sim.run(10_000);
    let later_start = sim.captured.len();
    sim.send(0, "after the leave");
    sim.run(10_000);
    assert!(sim.texts(1).iter().any(|(_, t)| t == "after the leave"));
    // The leaver's state, fed everything sent after it left, reads nothing.
    let mut leaver = gone;
    let mut read = 0;
    for p in &sim.captured[later_start..] {
        if let Ok(()) = leaver
            .room
            .handle_group(sim.now, &mut leaver.rng, &sim.address(0), p)
        {
            while let Some(e) = leaver.room.poll_event() {
                if matches!(e, RoomEvent::Message { .. }) {
                    read += 1;
                }
            }
        }
    }
    assert_eq!(read, 0);
}

#[test]
fn faulty_network_converges_and_delivers_each_message_once() {
    for seed in 10..13 {
        let faults = Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 150,
            max_delay: 40,
        };
        let mut sim = room_of(4, seed, faults);
        for round in 0..5 {
            for i in 0..4 {
                sim.send(i, &format!("{i}:{round}"));
            }
            sim.run(500);
        }
        sim.run(30_000);
        let epochs = ready_counters(&sim);
        assert!(
            epochs.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {epochs:?}"
        );
        for i in 0..4 {
            let mut got: Vec<String> = sim.texts(i).into_iter().map(|(_, t)| t).collect();
            let n = got.len();
            got.sort();
            got.dedup();
            assert_eq!(got.len(), n, "seed {seed}: member {i} saw a message twice");
            assert_eq!(n, 15, "seed {seed}: member {i} got {n} of 15");
        }
    }
}

#[test]
fn equivocating_insider_is_named_by_every_honest_member() {
    let mut sim = Sim::new(20, CLEAN);
    let a = sim.join(2001, "alice");
    let b = sim.join(2002, "bob");
    let c = sim.join(2003, "carol");
    let b_addr = sim.address(b);
    // Mallory has a twin: what the twin sends goes to Bob only.
    let m = sim.join_twinned(2004, "mallory", "mallory", vec![b_addr]);
    sim.run(10_000);
    let m_addr = sim.address(m);
    // Same index, different texts.
    let now = sim.now;
    sim.members[m]
        .room
        .send_text(now, "the meeting is at noon")
        .unwrap();
    sim.members[m]
        .twin
        .as_mut()
        .unwrap()
        .0
        .send_text(now, "the meeting is at five")
        .unwrap();
    sim.collect();
    sim.run(20_000);
    for i in [a, b, c] {
        let alarms = sim.alarms(i);
        assert!(
            alarms
                .iter()
                .any(|al| matches!(al, Alarm::Equivocation { sender, .. } if *sender == m_addr)),
            "member {i} did not name Mallory: {alarms:?}"
        );
    }
}

#[test]
fn insider_telling_different_nicknames_is_named() {
    let mut sim = Sim::new(21, CLEAN);
    let a = sim.join(2101, "alice");
    let b = sim.join(2102, "bob");
    let b_addr = sim.address(b);
    let m = sim.join_twinned(2103, "mallory", "eve", vec![b_addr]);
    sim.run(15_000);
    let m_addr = sim.address(m);
    for i in [a, b] {
        let alarms = sim.alarms(i);
        assert!(
            alarms.iter().any(
                |al| matches!(al, Alarm::NicknameMismatch { member, .. } if *member == m_addr)
            ),
            "member {i}: {alarms:?}"
        );
    }
}

#[test]
fn withheld_message_is_flagged_on_both_sides() {
    let mut sim = room_of(3, 22, CLEAN);
    let (a, c) = (sim.address(0), sim.address(2));
    let target = c.clone();
    let sender = a.clone();
    // The server withholds Alice's room messages from Carol, and nothing else.
    sim.hook = Some(Box::new(move |env: &Envelope| {
        if env.channel == Channel::Room && env.from == sender && env.to == target {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    let id = sim.send(0, "carol must not see this");
    sim.send(1, "bob acknowledges it");
    sim.run(40_000);
    assert!(sim
        .texts(2)
        .iter()
        .all(|(_, t)| t != "carol must not see this"));
    assert!(
        final_confirmation(&sim, 0, id).0 < 2,
        "a withheld message reached full confirmation"
    );
    assert!(
        sim.alarms(0)
            .iter()
            .any(|al| matches!(al, Alarm::Unconfirmed { missing, .. } if missing.contains(&c))),
        "Alice: {:?}",
        sim.alarms(0)
    );
    assert!(
        sim.alarms(2)
            .iter()
            .any(|al| matches!(al, Alarm::Missing { sender, .. } if *sender == a)),
        "Carol: {:?}",
        sim.alarms(2)
    );
}

#[test]
fn tampered_origin_mac_is_named_and_the_gap_reported() {
    let mut sim = room_of(3, 23, CLEAN);
    let (a, c) = (sim.address(0), sim.address(2));
    let (sender, target) = (a.clone(), c.clone());
    sim.hook = Some(Box::new(move |env: &Envelope| {
        if env.channel == Channel::Room && env.from == sender && env.to == target {
            let mut p = env.payload.clone();
            let n = p.len();
            p[n - 1] ^= 0x55; // Inside the last origin MAC.
            Verdict::Replace(p)
        } else {
            Verdict::Deliver
        }
    }));
    sim.send(0, "tampered for carol");
    sim.send(1, "bob speaks");
    sim.run(40_000);
    let alarms = sim.alarms(2);
    assert!(
        alarms
            .iter()
            .any(|al| matches!(al, Alarm::ForgedOrigin { claimed_sender } if *claimed_sender == a)),
        "{alarms:?}"
    );
    assert!(
        alarms
            .iter()
            .any(|al| matches!(al, Alarm::Missing { sender, .. } if *sender == a)),
        "{alarms:?}"
    );
    assert!(sim.texts(1).iter().any(|(_, t)| t == "tampered for carol"));
}

#[test]
fn injected_and_replayed_payloads_change_nothing() {
    let mut sim = room_of(3, 24, CLEAN);
    sim.send(0, "one");
    sim.run(5_000);
    let captured = sim.captured.clone();
    let (a, b) = (sim.address(0), sim.address(1));
    for p in &captured {
        sim.inject(Envelope {
            from: a.clone(),
            to: b.clone(),
            channel: Channel::Room,
            payload: p.clone(),
            from_twin: false,
        });
        sim.inject(Envelope {
            from: a.clone(),
            to: b.clone(),
            channel: Channel::Private,
            payload: p.clone(),
            from_twin: false,
        });
    }
    for junk in [vec![], vec![1u8; 3], vec![1, 0x20, 0, 0], vec![0xff; 500]] {
        sim.inject(Envelope {
            from: a.clone(),
            to: b.clone(),
            channel: Channel::Room,
            payload: junk.clone(),
            from_twin: false,
        });
        sim.inject(Envelope {
            from: a.clone(),
            to: b.clone(),
            channel: Channel::Private,
            payload: junk,
            from_twin: false,
        });
    }
    sim.run(5_000);
    assert_eq!(sim.texts(1).iter().filter(|(_, t)| t == "one").count(), 1);
    assert!(sim.members[1].errors > 0);
    let epochs = ready_counters(&sim);
    assert!(epochs.windows(2).all(|w| w[0] == w[1]), "{epochs:?}");
    sim.send(1, "still fine");
    sim.run(5_000);
    assert!(sim.texts(0).iter().any(|(_, t)| t == "still fine"));
}

#[test]
fn silent_member_is_reported_and_left_out() {
    let mut sim = room_of(3, 25, CLEAN);
    let c = sim.address(2);
    let target = c.clone();
    // From now on Carol's private messages (her epoch keys) never arrive.
    sim.hook = Some(Box::new(move |env: &Envelope| {
        if env.channel == Channel::Private && env.from == target {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    sim.join(2599, "dave");
    sim.run(120_000);
    assert!(
        sim.alarms(0).iter().any(
            |al| matches!(al, Alarm::AttestationTimeout { missing } if missing.contains(&c))
                || matches!(al, Alarm::HandshakeTimeout { .. })
        ),
        "{:?}",
        sim.alarms(0)
    );
    // Alice, Bob and Dave still reach a common, usable epoch without her.
    let ready: Vec<_> = [0usize, 1, 3]
        .iter()
        .map(|&i| sim.members[i].room.epoch())
        .collect();
    assert!(
        ready.windows(2).all(|w| w[0] == w[1]) && ready[0].is_some_and(|e| e.1),
        "{ready:?}"
    );
}

#[test]
fn nicknames_and_texts_never_cross_the_server() {
    let mut sim = room_of(5, 26, CLEAN);
    for i in 0..5 {
        sim.send(i, &format!("secret-text-{i}"));
    }
    let b = sim.address(1);
    let m = &mut sim.members[0];
    m.room
        .send_private_text(&mut m.rng, &b, "secret-private")
        .unwrap();
    sim.run(10_000);
    assert_eq!(sim.texts(1).len(), 4, "the messages were delivered");
    let needles: Vec<String> = (0..5)
        .map(|i| format!("nick{i}"))
        .chain((0..5).map(|i| format!("secret-text-{i}")))
        .chain(["secret-private".to_string()])
        .collect();
    assert!(!sim.captured.is_empty());
    for p in &sim.captured {
        let b64 = cryptocat_protocol::wire::encode_base64(p);
        for n in &needles {
            assert!(!contains(p, n.as_bytes()), "{n} in a relayed payload");
            assert!(!b64.contains(n.as_str()));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn periodic_rekey_after_a_hundred_messages() {
    let mut sim = room_of(2, 27, CLEAN);
    let start = sim.members[0].room.epoch().unwrap().0;
    for i in 0..120 {
        sim.send(i % 2, &format!("m{i}"));
        sim.run(10);
    }
    sim.run(10_000);
    let e0 = sim.members[0].room.epoch().unwrap();
    assert!(e0.0 > start, "no rekey: still epoch {}", e0.0);
    assert_eq!(Some(e0), sim.members[1].room.epoch());
    assert_eq!(sim.texts(0).len() + sim.texts(1).len(), 120);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]

    /// Under any delivery order (delays and duplicates from the seed), honest members
    /// converge to the same epoch and every message is confirmed by everyone.
    #[test]
    fn any_delivery_order_converges(seed in 1000u64..1_000_000, n in 2usize..5) {
        let faults = Faults { drop_per_mille: 0, duplicate_per_mille: 100, max_delay: 60 };
        let mut sim = room_of(n, seed, faults);
        let ids: Vec<u64> = (0..n).map(|i| sim.send(i, &format!("from {i}"))).collect();
        sim.run(30_000);
        let epochs = ready_counters(&sim);
        prop_assert!(epochs.windows(2).all(|w| w[0] == w[1]), "{:?}", epochs);
        for i in 0..n {
            prop_assert_eq!(sim.texts(i).len(), n - 1);
            prop_assert_eq!(final_confirmation(&sim, i, ids[i]), (n - 1, n - 1));
            prop_assert!(sim.alarms(i).is_empty(), "{:?}", sim.alarms(i));
        }
    }
}

#[test]
fn occupant_name_not_bound_to_the_key_is_refused() {
    let mut sim = Sim::new(28, CLEAN);
    let a = sim.join(2801, "alice");
    let b = sim.join(2802, "bob");
    // The server (or a rogue client) puts a key under a name not derived from it.
    sim.config.require_bound_names = false;
    let rogue = sim.join_at(
        2803,
        "rogue",
        &format!("{}/chosen-by-server", crate::room_sim::ROOM),
    );
    sim.run(60_000);
    let rogue_addr = sim.address(rogue);
    for i in [a, b] {
        assert!(
            sim.alarms(i).iter().any(
                |al| matches!(al, Alarm::UnboundOccupantName { member } if *member == rogue_addr)
            ),
            "{:?}",
            sim.alarms(i)
        );
        assert!(sim.members[i]
            .room
            .members()
            .iter()
            .any(|m| m.address == rogue_addr && !m.in_epoch));
    }
    let ready: Vec<_> = [a, b]
        .iter()
        .map(|&i| sim.members[i].room.epoch())
        .collect();
    assert!(
        ready[0] == ready[1] && ready[0].is_some_and(|e| e.1),
        "{ready:?}"
    );
}

#[test]
fn server_showing_two_keys_for_one_member_is_named() {
    let mut sim = Sim::new(29, CLEAN);
    sim.config.require_bound_names = false;
    let a = sim.join_at(2901, "alice", &format!("{}/a", crate::room_sim::ROOM));
    let b = sim.join_at(2902, "bob", &format!("{}/b", crate::room_sim::ROOM));
    let b_addr = sim.address(b);
    // Carol's address shows Bob a different identity than Alice sees.
    let c = sim.join_split(
        2903,
        2999,
        "carol",
        &format!("{}/c", crate::room_sim::ROOM),
        vec![b_addr],
    );
    sim.run(60_000);
    let c_addr = sim.address(c);
    let named = |i: usize| {
        sim.alarms(i)
            .iter()
            .any(|al| matches!(al, Alarm::RosterSplit { member, .. } if *member == c_addr))
    };
    assert!(
        named(a) || named(b),
        "alice {:?} / bob {:?}",
        sim.alarms(a),
        sim.alarms(b)
    );
    assert!(
        named(a) && named(b),
        "both must see it: alice {:?} / bob {:?}",
        sim.alarms(a),
        sim.alarms(b)
    );
}

#[test]
fn limits_give_clear_errors() {
    let mut rng = crate::common::rng(30);
    let now = crate::common::NOW;
    let id = Identity::generate(&mut rng, now);
    let name = cryptocat_protocol::group::occupant_name(&id.verifying_key());
    let addr = format!("r@c/{name}");
    let long_nick = "n".repeat(65);
    let err = Room::new(
        id,
        RoomConfig::default(),
        "r@c",
        &addr,
        &long_nick,
        now,
        &mut rng,
    )
    .err();
    assert_eq!(err, Some(RoomError::BadNickname));
    let id = Identity::generate(&mut rng, now);
    assert_eq!(
        Room::new(
            id,
            RoomConfig::default(),
            "r@c",
            "r@c/not-my-key",
            "nick",
            now,
            &mut rng
        )
        .err(),
        Some(RoomError::UnboundOwnAddress)
    );
    let id = Identity::generate(&mut rng, now);
    let name = cryptocat_protocol::group::occupant_name(&id.verifying_key());
    let mut room = Room::new(
        id,
        RoomConfig::default(),
        "r@c",
        &format!("r@c/{name}"),
        "nick",
        now,
        &mut rng,
    )
    .unwrap();
    let big = "x".repeat(cryptocat_protocol::content::MAX_TEXT_BYTES + 1);
    assert!(matches!(
        room.send_text(now, &big),
        Err(RoomError::TextTooLong { .. })
    ));
    // At most MAX_MEMBERS occupants are tracked.
    for i in 0..(cryptocat_protocol::group::wire::MAX_MEMBERS + 10) {
        room.member_present(now, &mut rng, &format!("r@c/occupant{i:04}"));
    }
    assert!(room.members().len() < cryptocat_protocol::group::wire::MAX_MEMBERS);
    assert!(room.members().len() >= 250);
}

#[test]
fn idle_members_fall_quiet_after_confirming() {
    let mut sim = room_of(3, 31, CLEAN);
    let before = sim.room_payloads();
    let id = sim.send(0, "one message");
    sim.run(120_000);
    let sent = sim.room_payloads() - before;
    // The text and one heartbeat from each of the two others, give or take one: no
    // heartbeat answers a heartbeat.
    assert!(
        sent <= 4,
        "{sent} room messages for one text over two minutes"
    );
    assert!(sent >= 3, "the others must acknowledge: {sent}");
    assert_eq!(final_confirmation(&sim, 0, id), (2, 2));
    for i in 0..3 {
        assert!(sim.alarms(i).is_empty(), "{:?}", sim.alarms(i));
    }
}

#[test]
fn text_waiting_for_a_failed_handshake_still_goes_out() {
    let mut sim = room_of(3, 32, CLEAN);
    // A newcomer whose private messages never arrive: its handshakes cannot finish.
    let dave = sim.join(3299, "dave");
    let d = sim.address(dave);
    sim.hook = Some(Box::new(move |env: &Envelope| {
        if env.channel == Channel::Private && (env.from == d || env.to == d) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    sim.send(0, "typed while dave was joining");
    sim.run(120_000);
    for i in [1, 2] {
        assert!(
            sim.texts(i)
                .iter()
                .any(|(_, t)| t == "typed while dave was joining"),
            "member {i}: {:?}",
            sim.texts(i)
        );
    }
    assert!(sim
        .alarms(0)
        .iter()
        .any(|a| matches!(a, Alarm::HandshakeTimeout { .. })));
}

#[test]
fn member_hidden_from_some_is_named() {
    let mut sim = Sim::new(33, CLEAN);
    let a = sim.join(3301, "alice");
    let b = sim.join(3302, "bob");
    // The server shows Xavier to Bob but hides him from Alice.
    let x = sim.join_hidden(3303, "xavier", &[a]);
    sim.run(120_000);
    let x_addr = sim.address(x);
    assert!(
        sim.alarms(a)
            .iter()
            .any(|al| matches!(al, Alarm::HiddenMember { member, .. } if *member == x_addr)),
        "alice: {:?}",
        sim.alarms(a)
    );
    assert!(
        !sim.alarms(b).is_empty(),
        "bob must notice too: {:?}",
        sim.alarms(b)
    );
}

#[test]
fn many_messages_across_rekeys_raise_no_false_alarm() {
    let mut sim = room_of(3, 34, CLEAN);
    for i in 0..300 {
        sim.send(i % 3, &format!("m{i}"));
        sim.run(37);
    }
    sim.run(60_000);
    let epochs = ready_counters(&sim);
    assert!(epochs[0].unwrap().0 >= 3, "expected rekeys: {epochs:?}");
    for i in 0..3 {
        assert_eq!(sim.texts(i).len(), 200, "member {i}");
        assert!(sim.alarms(i).is_empty(), "member {i}: {:?}", sim.alarms(i));
    }
}

#[test]
fn concurrent_joins_and_a_leave_converge() {
    for seed in 40..43 {
        let faults = Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 100,
            max_delay: 50,
        };
        let mut sim = room_of(4, seed, faults);
        // Two newcomers and one departure at the same moment.
        sim.join(seed * 1000 + 1, "erin");
        sim.join(seed * 1000 + 2, "frank");
        let _gone = sim.remove(1);
        sim.run(60_000);
        let epochs = ready_counters(&sim);
        assert_eq!(sim.members.len(), 5);
        assert!(
            epochs.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {epochs:?}"
        );
        assert!(epochs[0].is_some_and(|e| e.1), "seed {seed}: {epochs:?}");
        let id = sim.send(0, "after the churn");
        sim.run(20_000);
        assert_eq!(final_confirmation(&sim, 0, id), (4, 4), "seed {seed}");
        for i in 0..5 {
            assert!(
                sim.alarms(i).is_empty(),
                "seed {seed} member {i}: {:?}",
                sim.alarms(i)
            );
        }
    }
}

#[test]
fn leaving_sends_a_final_view_and_forgets_every_key() {
    let mut sim = room_of(3, 44, CLEAN);
    sim.send(0, "one");
    sim.send(1, "two");
    sim.run(10_000);
    let before = sim.room_payloads();
    let now = sim.now;
    sim.members[2].room.leave(now).unwrap();
    sim.collect();
    assert_eq!(
        sim.room_payloads(),
        before + 1,
        "a Leave message with the final acks"
    );
    assert_eq!(sim.members[2].room.epoch(), None, "keys kept after leaving");
    assert_eq!(
        sim.members[2].room.send_text(now, "x"),
        Err(RoomError::Left)
    );
    sim.run(5_000);
    let _gone = sim.remove(2);
    sim.run(20_000);
    for i in 0..2 {
        assert!(sim.alarms(i).is_empty(), "member {i}: {:?}", sim.alarms(i));
    }
    let epochs = ready_counters(&sim);
    assert!(epochs[0] == epochs[1] && epochs[0].is_some_and(|e| e.1));
}

#[test]
fn message_keys_are_deleted_after_use_and_old_epochs_after_their_grace() {
    let mut sim = room_of(2, 45, CLEAN);
    let start = sim.captured.len();
    sim.send(0, "first");
    sim.run(1_000);
    let first: Vec<Vec<u8>> = sim.captured[start..]
        .iter()
        .filter(|p| p.get(1) == Some(&0x20))
        .cloned()
        .collect();
    assert_eq!(first.len(), 1);
    let from = sim.address(0);
    // A replay of a message already read: its key is gone.
    let now = sim.now;
    let m = &mut sim.members[1];
    assert!(m
        .room
        .handle_group(now, &mut m.rng, &from, &first[0])
        .is_err());
    // An unread message of the old epoch: withheld from Bob now, delivered later.
    let bob = sim.address(1);
    let target = bob.clone();
    sim.hook = Some(Box::new(move |env: &Envelope| {
        if env.channel == Channel::Room && env.to == target {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    let start = sim.captured.len();
    sim.send(0, "second");
    sim.run(1_000);
    sim.hook = None;
    let second: Vec<Vec<u8>> = sim.captured[start..]
        .iter()
        .filter(|p| p.get(1) == Some(&0x20))
        .cloned()
        .collect();
    // A new member forces a new epoch; after the grace period the old epoch's keys are
    // deleted, so even the unread message no longer decrypts.
    sim.join(4599, "carol");
    sim.run(60_000);
    let now = sim.now;
    let m = &mut sim.members[1];
    let events_before = m.events.len();
    let _ = m.room.handle_group(now, &mut m.rng, &from, &second[0]);
    while let Some(e) = m.room.poll_event() {
        m.events.push(e);
    }
    assert!(!m.events[events_before..]
        .iter()
        .any(|e| matches!(e, RoomEvent::Message { .. })));
}
