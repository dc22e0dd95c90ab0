//! The double ratchet through the public API: delivery orders, faults, replays, tampering.

use std::collections::HashSet;

use cryptocat_protocol::message::{DataMessage, Message};
use cryptocat_protocol::ratchet::{RatchetError, MAX_SKIP};
use cryptocat_protocol::session::{ReceiveError, Session, SessionEvent};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

use crate::common::{handshake, rng};
use crate::sim::{Faults, SimNet};

fn text(ev: Option<SessionEvent>) -> String {
    match ev {
        Some(SessionEvent::Text(t)) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn conversation_both_ways_with_several_dh_steps() {
    let mut rng = rng(20);
    let mut p = handshake(&mut rng);
    for round in 0..5 {
        for i in 0..3 {
            let m = p.a.send_text(&mut rng, &format!("a{round}.{i}")).unwrap();
            assert_eq!(
                text(p.b.handle_data(&mut rng, &m).unwrap()),
                format!("a{round}.{i}")
            );
        }
        let m = p.b.send_text(&mut rng, &format!("b{round}")).unwrap();
        assert_eq!(
            text(p.a.handle_data(&mut rng, &m).unwrap()),
            format!("b{round}")
        );
    }
}

#[test]
fn responder_can_send_first() {
    let mut rng = rng(21);
    let mut p = handshake(&mut rng);
    let m = p.b.send_text(&mut rng, "first").unwrap();
    assert_eq!(text(p.a.handle_data(&mut rng, &m).unwrap()), "first");
    let m = p.a.send_text(&mut rng, "second").unwrap();
    assert_eq!(text(p.b.handle_data(&mut rng, &m).unwrap()), "second");
}

/// Drives a two-party conversation over a faulty network. Every message that is delivered
/// at least once decrypts exactly once; every second copy is rejected as a duplicate.
fn run_faulty(seed: u64, faults: Faults, rounds: usize) {
    let mut rng = rng(seed);
    let mut p = handshake(&mut rng);
    let mut net: SimNet<(usize, DataMessage, String)> = SimNet::new(seed ^ 0xabcdef, faults);
    let mut received: [HashSet<String>; 2] = [HashSet::new(), HashSet::new()];
    let mut sent = 0usize;
    for round in 0..rounds {
        // Party 0 is Alice (a), party 1 Bob (b); each round both may send a burst.
        let burst = 1 + round % 4;
        for i in 0..burst {
            let label = format!("a-{round}-{i}");
            let m = p.a.send_text(&mut rng, &label).unwrap();
            net.send(1, (0, m, label));
            sent += 1;
        }
        if round % 3 != 0 {
            let label = format!("b-{round}");
            let m = p.b.send_text(&mut rng, &label).unwrap();
            net.send(0, (1, m, label));
            sent += 1;
        }
        // Deliver a few now, the rest later (reordering across rounds).
        for _ in 0..2 {
            if let Some((to, (_, m, label))) = net.next() {
                deliver(&mut p.a, &mut p.b, &mut rng, to, &m, &label, &mut received);
            }
        }
    }
    while let Some((to, (_, m, label))) = net.next() {
        deliver(&mut p.a, &mut p.b, &mut rng, to, &m, &label, &mut received);
    }
    let got = received[0].len() + received[1].len();
    assert_eq!(
        got + net.dropped,
        sent,
        "each message that arrived decrypted once"
    );
}

fn deliver(
    a: &mut Session,
    b: &mut Session,
    rng: &mut ChaCha20Rng,
    to: usize,
    m: &DataMessage,
    label: &str,
    received: &mut [HashSet<String>; 2],
) {
    let target = if to == 0 { a } else { b };
    match target.handle_data(rng, m) {
        Ok(Some(SessionEvent::Text(t))) => {
            assert_eq!(t, label);
            assert!(received[to].insert(t), "a message decrypted twice");
        }
        Ok(other) => panic!("unexpected event {other:?}"),
        Err(ReceiveError::Ratchet(RatchetError::Duplicate { .. })) => {
            assert!(
                received[to].contains(label),
                "rejected as duplicate but never received"
            );
        }
        Err(e) => panic!("delivery of {label} failed: {e}"),
    }
}

#[test]
fn reordering_only() {
    run_faulty(
        30,
        Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            max_delay: 12,
        },
        60,
    );
}

#[test]
fn drops_duplicates_and_reordering() {
    for seed in 31..36 {
        run_faulty(
            seed,
            Faults {
                drop_per_mille: 150,
                duplicate_per_mille: 200,
                max_delay: 8,
            },
            60,
        );
    }
}

#[test]
fn tampered_header_or_ciphertext_is_rejected_and_state_survives() {
    let mut rng = rng(40);
    let mut p = handshake(&mut rng);
    let m = p.a.send_text(&mut rng, "genuine").unwrap();
    let bytes = Message::Data(m.clone()).encode();
    // Flip each byte after the instance tags (ratchet key, counters, length, ciphertext).
    for i in 10..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        match Message::decode(&bad) {
            Ok(Message::Data(d)) => assert!(p.b.handle_data(&mut rng, &d).is_err(), "byte {i}"),
            Ok(other) => panic!("decoded as another type: {other:?}"),
            Err(_) => {}
        }
    }
    assert_eq!(text(p.b.handle_data(&mut rng, &m).unwrap()), "genuine");
}

#[test]
fn wrong_instance_tags_are_rejected() {
    let mut rng = rng(41);
    let mut p = handshake(&mut rng);
    let mut m = p.a.send_text(&mut rng, "x").unwrap();
    m.receiver = cryptocat_protocol::InstanceTag(m.receiver.0 ^ 1);
    assert!(matches!(
        p.b.handle_data(&mut rng, &m),
        Err(ReceiveError::WrongInstance { .. })
    ));
}

#[test]
fn skip_limit_is_enforced_with_a_clear_error() {
    let mut rng = rng(42);
    let mut p = handshake(&mut rng);
    let first = p.a.send_text(&mut rng, "0").unwrap();
    let mut far = first.clone();
    far.header.index = MAX_SKIP + 1;
    assert_eq!(
        p.b.handle_data(&mut rng, &far).err(),
        Some(ReceiveError::Ratchet(RatchetError::TooFarAhead {
            skip: u64::from(MAX_SKIP) + 1,
            max: MAX_SKIP
        }))
    );
    assert_eq!(text(p.b.handle_data(&mut rng, &first).unwrap()), "0");
}

#[test]
fn skipped_key_store_is_bounded() {
    let mut rng = rng(43);
    let mut p = handshake(&mut rng);
    let mut msgs = Vec::new();
    for i in 0..2_100 {
        msgs.push(p.a.send_text(&mut rng, &i.to_string()).unwrap());
    }
    // Deliver 1,500 and then the last: 2,098 keys are skipped, at most 2,000 are kept.
    assert_eq!(
        text(p.b.handle_data(&mut rng, &msgs[1_500]).unwrap()),
        "1500"
    );
    assert_eq!(
        text(p.b.handle_data(&mut rng, msgs.last().unwrap()).unwrap()),
        "2099"
    );
    assert_eq!(
        p.b.stored_skipped_keys(),
        cryptocat_protocol::ratchet::MAX_STORED_SKIPPED
    );
    // The newest skipped ones still decrypt; the oldest were deleted.
    assert_eq!(
        text(p.b.handle_data(&mut rng, &msgs[2_098]).unwrap()),
        "2098"
    );
    assert!(p.b.handle_data(&mut rng, &msgs[0]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Any delivery order of a window of messages (spanning DH steps) decrypts every
    /// message exactly once, and any replay is rejected.
    #[test]
    fn any_order_decrypts_each_exactly_once(seed in any::<u64>(), order in Just(()).prop_perturb(|_, mut r| {
        let mut v: Vec<usize> = (0..18).collect();
        for i in (1..v.len()).rev() { let j = (r.next_u32() as usize) % (i + 1); v.swap(i, j); }
        v
    })) {
        let mut rng = rng(seed);
        let mut p = handshake(&mut rng);
        // Alice sends 6, Bob answers (DH step), Alice sends 6 more on a new chain, and so on.
        let mut to_bob = Vec::new();
        for chunk in 0..3 {
            for i in 0..6 {
                to_bob.push(p.a.send_text(&mut rng, &format!("{chunk}-{i}")).unwrap());
            }
            // Bob must have seen at least one message of this chain to answer on a new key.
            let m = p.b.send_text(&mut rng, "ack").unwrap();
            p.a.handle_data(&mut rng, &m).unwrap();
        }
        let mut seen = HashSet::new();
        for &i in &order {
            let t = text(p.b.handle_data(&mut rng, &to_bob[i]).unwrap());
            prop_assert!(seen.insert(t));
        }
        prop_assert_eq!(seen.len(), 18);
        for m in &to_bob {
            prop_assert!(p.b.handle_data(&mut rng, m).is_err());
        }
    }

    /// Wire round-trip of data messages with arbitrary texts.
    #[test]
    fn data_message_wire_round_trip(seed in any::<u64>(), text_in in ".{0,200}") {
        let mut rng = rng(seed);
        let mut p = handshake(&mut rng);
        let m = p.a.send_text(&mut rng, &text_in).unwrap();
        let wire = Message::Data(m.clone()).to_base64();
        let back = Message::from_base64(&wire).unwrap();
        prop_assert_eq!(&back, &Message::Data(m));
        prop_assert_eq!(back.encode(), Message::from_base64(&wire).unwrap().encode());
        if let Message::Data(d) = back {
            prop_assert_eq!(text(p.b.handle_data(&mut rng, &d).unwrap()), text_in);
        }
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(&bytes);
    }
}
