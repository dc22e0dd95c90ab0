//! A one-to-one Cryptocat conversation end to end, in one process: two fresh identities,
//! the DAKEZ handshake, messages both ways, and question-and-answer verification. Prints
//! what each side sees and the size of every message on the wire.
//!
//! Run: `cargo run --release -p cryptocat-protocol --example conversation`

#![allow(clippy::print_stdout)]

use std::time::{SystemTime, UNIX_EPOCH};

use cryptocat_protocol::dake::{self, DakeContext};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::message::Message;
use cryptocat_protocol::session::SessionEvent;
use cryptocat_protocol::Timestamp;
use rand_core::OsRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = OsRng;
    let now = Timestamp(u64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?);
    let alice = Identity::generate(&mut rng, now);
    let bob = Identity::generate(&mut rng, now);
    println!("Alice's fingerprint: {}", alice.fingerprint());
    println!("Bob's fingerprint:   {}", bob.fingerprint());

    let ctx = DakeContext {
        room: "demo@conference.localhost".into(),
        initiator: "demo@conference.localhost/alice-occupant".into(),
        responder: "demo@conference.localhost/bob-occupant".into(),
    };
    let (waiting, identity_msg) = dake::initiate(&mut rng, &alice, ctx.clone(), None)?;
    wire("Alice -> Bob", &Message::Identity(identity_msg.clone()));
    let (bob_waiting, auth_r) = dake::respond(&mut rng, &bob, ctx, &identity_msg, now)?;
    wire("Bob -> Alice", &Message::AuthR(auth_r.clone()));
    let (mut a, auth_i) = waiting.handle_auth_r(&mut rng, &alice, &auth_r, now)?;
    wire("Alice -> Bob", &Message::AuthI(auth_i.clone()));
    let mut b = bob_waiting.handle_auth_i(&bob, &auth_i)?;
    println!(
        "Handshake done. Safety number (both sides): {}",
        a.safety_number(&alice.verifying_key()).to_readable()
    );

    for (from_alice, text) in [
        (true, "Hi Bob, is this thing on?"),
        (false, "Loud and clear."),
        (true, "Great!"),
    ] {
        let (sender, receiver, name) = if from_alice {
            (&mut a, &mut b, "Alice")
        } else {
            (&mut b, &mut a, "Bob")
        };
        let msg = sender.send_text(&mut rng, text)?;
        wire(&format!("{name} ->"), &Message::Data(msg.clone()));
        if let Some(SessionEvent::Text(t)) = receiver.handle_data(&mut rng, &msg)? {
            println!("  {name}: {t}");
        }
    }

    // Bob asks a secret question; Alice answers with different case and spacing.
    let step1 = b.start_verification(&mut rng, Some("Where did we meet?"), "The Old Library")?;
    if let Some(SessionEvent::Smp(ev)) = a.handle_data(&mut rng, &step1)? {
        println!("Alice sees: {ev:?}");
    }
    let step2 = a.answer_verification(&mut rng, "the old  library")?;
    b.handle_data(&mut rng, &step2)?;
    let mut results = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(m) = b.poll_transmit() {
            progressed = true;
            if let Some(SessionEvent::Smp(ev)) = a.handle_data(&mut rng, &m)? {
                results.push(format!("Alice: {ev:?}"));
            }
        }
        while let Some(m) = a.poll_transmit() {
            progressed = true;
            if let Some(SessionEvent::Smp(ev)) = b.handle_data(&mut rng, &m)? {
                results.push(format!("Bob: {ev:?}"));
            }
        }
        if !progressed {
            break;
        }
    }
    for r in results {
        println!("Verification result, {r}");
    }
    Ok(())
}

fn wire(label: &str, msg: &Message) {
    println!(
        "{label} {:>5} bytes on the wire ({} base64)",
        msg.encode().len(),
        msg.to_base64().len()
    );
}
