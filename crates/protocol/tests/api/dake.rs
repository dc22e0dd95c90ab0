//! The handshake: success, binding to room and session, MITM, deniability.

use cryptocat_protocol::content::Content;
use cryptocat_protocol::dake::{self, DakeError};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::message::Message;
use cryptocat_protocol::session::SessionEvent;
use cryptocat_protocol::smp::SmpEvent;

use crate::common::{ctx, handshake, rng, NOW};

#[test]
fn handshake_agrees_on_session_and_fingerprints() {
    let mut rng = rng(1);
    let p = handshake(&mut rng);
    assert_eq!(p.a.session_id(), p.b.session_id());
    assert_eq!(p.a.their_fingerprint(), p.bob.fingerprint());
    assert_eq!(p.b.their_fingerprint(), p.alice.fingerprint());
    assert_eq!(
        p.a.safety_number(&p.alice.verifying_key()).digits(),
        p.b.safety_number(&p.bob.verifying_key()).digits()
    );
}

#[test]
fn every_handshake_message_round_trips_on_the_wire() {
    let mut rng = rng(2);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    let (wait_r, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let m1 = match Message::from_base64(&Message::Identity(m1).to_base64()).unwrap() {
        Message::Identity(m) => m,
        other => panic!("decoded as {other:?}"),
    };
    let (wait_i, m2) = dake::respond(&mut rng, &bob, ctx("r"), &m1, NOW).unwrap();
    let m2 = match Message::decode(&Message::AuthR(m2).encode()).unwrap() {
        Message::AuthR(m) => m,
        other => panic!("decoded as {other:?}"),
    };
    let (mut a, m3) = wait_r.handle_auth_r(&mut rng, &alice, &m2, NOW).unwrap();
    let m3 = match Message::decode(&Message::AuthI(m3).encode()).unwrap() {
        Message::AuthI(m) => m,
        other => panic!("decoded as {other:?}"),
    };
    let mut b = wait_i.handle_auth_i(&bob, &m3).unwrap();
    let msg = a.send_text(&mut rng, "hello").unwrap();
    let msg = match Message::decode(&Message::Data(msg).encode()).unwrap() {
        Message::Data(m) => m,
        other => panic!("decoded as {other:?}"),
    };
    assert_eq!(
        b.handle_data(&mut rng, &msg).unwrap(),
        Some(SessionEvent::Text("hello".into()))
    );
}

#[test]
fn auth_r_from_another_room_is_rejected() {
    let mut rng = rng(3);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    // Alice starts in room A; the server replays her Identity message into room B.
    let (wait_r, m1) = dake::initiate(&mut rng, &alice, ctx("a@conference.x"), None).unwrap();
    let (_, m2) = dake::respond(&mut rng, &bob, ctx("b@conference.x"), &m1, NOW).unwrap();
    assert_eq!(
        wait_r.handle_auth_r(&mut rng, &alice, &m2, NOW).err(),
        Some(DakeError::BadSignature)
    );
}

#[test]
fn auth_r_with_other_addresses_is_rejected() {
    let mut rng = rng(4);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    let (wait_r, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let mut other = ctx("r");
    other.initiator = "r/someone-else".into();
    let (_, m2) = dake::respond(&mut rng, &bob, other, &m1, NOW).unwrap();
    assert_eq!(
        wait_r.handle_auth_r(&mut rng, &alice, &m2, NOW).err(),
        Some(DakeError::BadSignature)
    );
}

#[test]
fn auth_i_replayed_into_another_session_is_rejected() {
    let mut rng = rng(5);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    // Session 1 completes; its Auth-I is then replayed into session 2.
    let (wait_r, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let (wait_i, m2) = dake::respond(&mut rng, &bob, ctx("r"), &m1, NOW).unwrap();
    let (_, m3) = wait_r.handle_auth_r(&mut rng, &alice, &m2, NOW).unwrap();
    wait_i.handle_auth_i(&bob, &m3).unwrap();
    let (_, m1b) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let (wait_i2, _) = dake::respond(&mut rng, &bob, ctx("r"), &m1b, NOW).unwrap();
    assert_eq!(
        wait_i2.handle_auth_i(&bob, &m3).err(),
        Some(DakeError::BadSignature)
    );
}

#[test]
fn replayed_auth_r_into_new_initiation_is_rejected() {
    let mut rng = rng(6);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    let (_, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let (_, m2) = dake::respond(&mut rng, &bob, ctx("r"), &m1, NOW).unwrap();
    let (wait_r2, _) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    assert_eq!(
        wait_r2.handle_auth_r(&mut rng, &alice, &m2, NOW).err(),
        Some(DakeError::BadSignature)
    );
}

#[test]
fn substituted_profile_is_rejected() {
    // The server swaps Bob's profile for Mallory's inside Auth-R: Bob's ring signature
    // no longer verifies (it covered Bob's profile).
    let mut rng = rng(7);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    let mallory = Identity::generate(&mut rng, NOW);
    let (wait_r, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let (_, mut m2) = dake::respond(&mut rng, &bob, ctx("r"), &m1, NOW).unwrap();
    m2.profile = mallory.profile().clone();
    m2.sender = mallory.instance_tag();
    assert_eq!(
        wait_r.handle_auth_r(&mut rng, &alice, &m2, NOW).err(),
        Some(DakeError::BadSignature)
    );
}

#[test]
fn expired_profile_is_rejected() {
    let mut rng = rng(8);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    let (_, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let much_later = NOW.plus_millis(30 * 24 * 3600 * 1000);
    assert!(matches!(
        dake::respond(&mut rng, &bob, ctx("r"), &m1, much_later).err(),
        Some(DakeError::Profile(_))
    ));
}

#[test]
fn reflected_identity_is_rejected() {
    let mut rng = rng(9);
    let alice = Identity::generate(&mut rng, NOW);
    let (_, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    assert_eq!(
        dake::respond(&mut rng, &alice, ctx("r"), &m1, NOW).err(),
        Some(DakeError::Reflection)
    );
}

/// Mallory sits between Alice and Bob and runs a handshake with each. Both complete (the
/// server can always do that), but each side sees Mallory's fingerprint, not its friend's,
/// and a secret question relayed through Mallory fails on both sides.
#[test]
fn man_in_the_middle_shows_other_fingerprints_and_fails_smp() {
    let mut rng = rng(10);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    let mallory = Identity::generate(&mut rng, NOW);

    let (wr, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let (wi, m2) = dake::respond(&mut rng, &mallory, ctx("r"), &m1, NOW).unwrap();
    let (mut a, m3) = wr.handle_auth_r(&mut rng, &alice, &m2, NOW).unwrap();
    let mut ma = wi.handle_auth_i(&mallory, &m3).unwrap();

    let (wr, m1) = dake::initiate(&mut rng, &mallory, ctx("r"), None).unwrap();
    let (wi, m2) = dake::respond(&mut rng, &bob, ctx("r"), &m1, NOW).unwrap();
    let (mut mb, m3) = wr.handle_auth_r(&mut rng, &mallory, &m2, NOW).unwrap();
    let mut b = wi.handle_auth_i(&bob, &m3).unwrap();

    assert_ne!(a.their_fingerprint(), bob.fingerprint());
    assert_ne!(b.their_fingerprint(), alice.fingerprint());

    // Alice asks; Mallory relays every SMP step's content to the other side.
    let mut to_mallory_from_a = vec![a.start_verification(&mut rng, Some("pet?"), "Rex").unwrap()];
    let mut to_mallory_from_b = Vec::new();
    let mut a_result = None;
    let mut b_result = None;
    for _ in 0..10 {
        for msg in to_mallory_from_a.drain(..) {
            // Mallory decrypts Alice's step (she is Alice's peer) and re-sends the same
            // SMP content to Bob.
            let content = relay_smp(&mut ma, &mut rng, &msg);
            if let Some(c) = content {
                let fwd = mb.encrypt(&mut rng, &c).unwrap();
                match b.handle_data(&mut rng, &fwd).unwrap() {
                    Some(SessionEvent::Smp(SmpEvent::QuestionReceived { .. })) => {
                        to_mallory_from_b.push(b.answer_verification(&mut rng, "Rex").unwrap());
                    }
                    Some(SessionEvent::Smp(ev)) => b_result = Some(ev),
                    _ => {}
                }
                while let Some(m) = b.poll_transmit() {
                    to_mallory_from_b.push(m);
                }
            }
        }
        for msg in to_mallory_from_b.drain(..) {
            let content = relay_smp(&mut mb, &mut rng, &msg);
            if let Some(c) = content {
                let fwd = ma.encrypt(&mut rng, &c).unwrap();
                if let Some(SessionEvent::Smp(ev)) = a.handle_data(&mut rng, &fwd).unwrap() {
                    a_result = Some(ev);
                }
                while let Some(m) = a.poll_transmit() {
                    to_mallory_from_a.push(m);
                }
            }
        }
    }
    assert!(
        matches!(
            a_result,
            Some(SmpEvent::Failed) | Some(SmpEvent::Aborted { .. })
        ),
        "{a_result:?}"
    );
    assert!(
        matches!(
            b_result,
            Some(SmpEvent::Failed) | Some(SmpEvent::Aborted { .. })
        ),
        "{b_result:?}"
    );
    assert_ne!(a_result, Some(SmpEvent::Succeeded));
    assert_ne!(b_result, Some(SmpEvent::Succeeded));
}

/// Mallory's view: decrypt a data message and recover the SMP content it carried. The
/// session hands SMP steps to its own state machine, so Mallory taps the content by
/// decrypting with a twin she controls: here she simply re-encodes what she can see.
fn relay_smp(
    session: &mut cryptocat_protocol::session::Session,
    rng: &mut rand_chacha::ChaCha20Rng,
    msg: &cryptocat_protocol::message::DataMessage,
) -> Option<Content> {
    let _ = rng;
    session.decrypt_content(msg).ok()
}

#[test]
fn forged_transcript_verifies_like_a_real_one() {
    let mut rng = rng(11);
    let alice = Identity::generate(&mut rng, NOW);
    let bob = Identity::generate(&mut rng, NOW);
    // A real transcript.
    let (wr, m1) = dake::initiate(&mut rng, &alice, ctx("r"), None).unwrap();
    let (wi, m2) = dake::respond(&mut rng, &bob, ctx("r"), &m1, NOW).unwrap();
    let (_, m3) = wr.handle_auth_r(&mut rng, &alice, &m2, NOW).unwrap();
    wi.handle_auth_i(&bob, &m3).unwrap();
    assert!(dake::transcript_verifies(&ctx("r"), &m1, &m2, &m3));
    // A forgery made from the two public profiles and Bob's forging key alone (no
    // identity or DAKE secret of anyone) verifies just as well.
    let (f1, f2, f3) = dake::forge_transcript(
        &mut rng,
        &ctx("r"),
        alice.profile(),
        bob.profile(),
        &bob.export_forging_secret(),
    )
    .unwrap();
    assert!(dake::transcript_verifies(&ctx("r"), &f1, &f2, &f3));
    // And verification is not vacuous: a transcript for another room does not verify.
    assert!(!dake::transcript_verifies(&ctx("other"), &f1, &f2, &f3));
}
