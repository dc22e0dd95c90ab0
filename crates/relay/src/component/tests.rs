use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::group::occupant_name;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::keyauth::{self, ClientFirst};
use rand_core::SeedableRng as _;

use super::*;
use crate::stanza::NS_PAYLOAD;

fn now() -> Instant {
    Instant::now()
}

fn identity(seed: u64) -> Identity {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    Identity::generate(&mut rng, cryptocat_protocol::Timestamp(1))
}

/// The join with a key (and `proof`, an element or nothing), and what it is answered with.
fn join_with_key(
    c: &mut Component,
    from: &str,
    room: &str,
    id: &Identity,
    proof: &str,
) -> Vec<String> {
    let nick = occupant_name(&id.verifying_key());
    let key = STANDARD.encode(ClientFirst::new(id).encode());
    let xml = format!(
        "<presence from='{from}' to='{room}@{DOMAIN}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/>\
         <key xmlns='{NS_ROOM_KEY}'>{key}</key>{proof}</presence>"
    );
    c.handle_bytes(now(), xml.as_bytes()).unwrap();
    drain(c)
}

/// The text of the first `<challenge>` in `out`.
fn challenge_of(out: &[String]) -> Option<String> {
    out.iter().find_map(|x| {
        let start = x.find(&format!("<challenge xmlns='{NS_ROOM_KEY}'>"))?;
        let rest = x.get(start..)?;
        let text = rest.get(rest.find('>')? + 1..rest.find("</challenge>")?)?;
        Some(text.to_owned())
    })
}

/// Joins `room` as the key of `seed`, proving it: the nickname, and what the proven join
/// was answered with (or the refusal of the first step).
fn join_proven(c: &mut Component, from: &str, room: &str, seed: u64) -> (String, Vec<String>) {
    let id = identity(seed);
    let nick = occupant_name(&id.verifying_key());
    let out = join_with_key(c, from, room, &id, "");
    let Some(b64) = challenge_of(&out) else {
        return (nick, out);
    };
    let challenge = keyauth::Challenge::decode(&STANDARD.decode(b64).unwrap()).unwrap();
    let proof = keyauth::room_respond(&id, &format!("{room}@{DOMAIN}"), &challenge).unwrap();
    let proof = format!(
        "<proof xmlns='{NS_ROOM_KEY}'>{}</proof>",
        STANDARD.encode(proof)
    );
    (nick, join_with_key(c, from, room, &id, &proof))
}

const DOMAIN: &str = "conference.example.org";
const HOST_HEADER: &str = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns='jabber:component:accept' from='conference.example.org' id='3BF96D75'>";

fn secret() -> Secret {
    Secret::new(b"s3cr3t".to_vec()).unwrap()
}

fn drain(c: &mut Component) -> Vec<String> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn attached(limits: Limits) -> Component {
    let mut c = Component::new(DOMAIN, secret(), limits);
    let header = c.start();
    assert!(header.contains("xmlns='jabber:component:accept'"));
    assert!(header.contains(&format!("to='{DOMAIN}'")));
    c.handle_bytes(now(), HOST_HEADER.as_bytes()).unwrap();
    assert_eq!(
        drain(&mut c),
        // sha1("3BF96D75" + "s3cr3t"), as the host computes it.
        ["<handshake>07081014aba0a5ba027357e1bc7c817b9b6c5c79</handshake>"]
    );
    assert_eq!(c.phase(), Phase::Handshaking);
    c.handle_bytes(now(), b"<handshake/>").unwrap();
    assert_eq!(c.phase(), Phase::Attached);
    c
}

fn join(from: &str, room: &str, nick: &str) -> String {
    format!("<presence from='{from}' to='{room}@{DOMAIN}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
}

fn payload() -> String {
    crate::stanza::sample_group_payload()
}

fn groupchat(from: &str, room: &str) -> String {
    format!(
        "<message from='{from}' to='{room}@{DOMAIN}' type='groupchat' id='g1'>\
         <payload xmlns='{NS_PAYLOAD}'>{}</payload></message>",
        payload()
    )
}

#[test]
fn a_wrong_secret_and_early_stanzas_end_the_stream() {
    let mut c = Component::new(DOMAIN, secret(), Limits::default());
    c.start();
    c.handle_bytes(now(), HOST_HEADER.as_bytes()).unwrap();
    let refused = c.handle_bytes(
        now(),
        b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
          <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>s3cr3t is wrong</text></stream:error>",
    );
    assert_eq!(refused, Err(LinkError::Refused("not-authorized")));
    // The error names the condition only, never the host's text.
    assert!(!refused.unwrap_err().to_string().contains("s3cr3t"));

    let mut c = Component::new(DOMAIN, secret(), Limits::default());
    c.start();
    c.handle_bytes(now(), HOST_HEADER.as_bytes()).unwrap();
    assert_eq!(
        c.handle_bytes(now(), join("a@example.org/r", "room", "n").as_bytes()),
        Err(LinkError::Unexpected)
    );
    let mut c = Component::new(DOMAIN, secret(), Limits::default());
    c.start();
    let no_id = HOST_HEADER.replace(" id='3BF96D75'", "");
    assert_eq!(
        c.handle_bytes(now(), no_id.as_bytes()),
        Err(LinkError::BadHeader)
    );
}

#[test]
fn occupants_of_the_host_chat_and_plaintext_is_refused() {
    let mut c = attached(Limits::default());
    let (a, b) = ("alice@example.org/r1", "bob@remote.example/r2");
    let (n1, _) = join_proven(&mut c, a, "room", 1);
    let (n2, joined) = join_proven(&mut c, b, "room", 2);
    assert!(joined
        .iter()
        .any(|x| x.contains(&format!("to='{b}'")) && x.contains("code='110'")));
    // Alice learns of bob by his room JID, never his real JID.
    let to_alice: Vec<&String> = joined
        .iter()
        .filter(|x| x.contains(&format!("to='{a}'")))
        .collect();
    assert_eq!(to_alice.len(), 1);
    assert!(to_alice[0].contains(&format!("from='room@{DOMAIN}/{n2}'")));
    assert!(!to_alice[0].contains("remote.example"));

    c.handle_bytes(now(), groupchat(a, "room").as_bytes())
        .unwrap();
    let relayed = drain(&mut c);
    assert_eq!(relayed.len(), 2, "{relayed:?}");
    for x in &relayed {
        assert!(x.contains(&format!("from='room@{DOMAIN}/{n1}'")) && x.contains(&payload()));
    }
    // Plaintext: refused to its sender, reaches nobody.
    let plain = format!(
        "<message from='{a}' to='room@{DOMAIN}' type='groupchat' id='p'><body>hello</body></message>"
    );
    c.handle_bytes(now(), plain.as_bytes()).unwrap();
    let out = drain(&mut c);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("policy-violation") && out[0].contains(&format!("to='{a}'")));
    assert!(!out[0].contains("hello"));
    // Someone not in the room cannot post to it.
    c.handle_bytes(now(), groupchat("eve@example.org/x", "room").as_bytes())
        .unwrap();
    let out = drain(&mut c);
    assert!(
        out.len() == 1 && out[0].contains("not-acceptable"),
        "{out:?}"
    );
    // Service discovery: a room service that refuses plaintext and checks keys.
    let disco = format!(
        "<iq from='{a}' to='{DOMAIN}' type='get' id='d'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    );
    c.handle_bytes(now(), disco.as_bytes()).unwrap();
    let out = drain(&mut c);
    assert!(out[0].contains("category='conference'") && out[0].contains(NS_PAYLOAD));
    assert!(out[0].contains(NS_ROOM_KEY));
    // Leaving, and a bounce, free the occupants.
    let leave = format!("<presence from='{b}' to='room@{DOMAIN}/{n2}' type='unavailable'/>");
    c.handle_bytes(now(), leave.as_bytes()).unwrap();
    let bounce = format!("<presence from='{a}' to='room@{DOMAIN}/{n1}' type='error'/>");
    c.handle_bytes(now(), bounce.as_bytes()).unwrap();
    drain(&mut c);
    assert_eq!(c.retained(), ComponentRetained::default());
}

/// The room key proof: a join without a key, a name that is not the key's, a proof by
/// another key are refused; the proven join is in.
#[test]
fn joiners_prove_their_key_or_stay_out() {
    let mut c = attached(Limits::default());
    let a = "a@example.org/r";
    c.handle_bytes(now(), join(a, "room", "n1").as_bytes())
        .unwrap();
    let out = drain(&mut c);
    assert!(
        out.len() == 1 && out[0].contains("not-allowed") && out[0].contains(NS_ROOM_KEY),
        "{out:?}"
    );
    let (id, other) = (identity(1), identity(2));
    let key = STANDARD.encode(ClientFirst::new(&id).encode());
    let wrong = occupant_name(&other.verifying_key());
    let xml = format!(
        "<presence from='{a}' to='room@{DOMAIN}/{wrong}'><key xmlns='{NS_ROOM_KEY}'>{key}</key></presence>"
    );
    c.handle_bytes(now(), xml.as_bytes()).unwrap();
    let out = drain(&mut c);
    assert!(out[0].contains("not-acceptable"), "{out:?}");
    let out = join_with_key(&mut c, a, "room", &id, "");
    assert!(challenge_of(&out).is_some(), "{out:?}");
    let forged = format!(
        "<proof xmlns='{NS_ROOM_KEY}'>{}</proof>",
        STANDARD.encode([7u8; 64])
    );
    let out = join_with_key(&mut c, a, "room", &id, &forged);
    assert!(out[0].contains("did not verify"), "{out:?}");
    assert_eq!(c.retained().members, 0);
    let (_, out) = join_proven(&mut c, a, "room", 1);
    assert!(out.iter().any(|x| x.contains("code='110'")), "{out:?}");
    assert_eq!((c.retained().members, c.retained().pending_proofs), (1, 0));
}

/// What the host (and whoever is behind it) can make the component keep: key proofs in
/// progress, members, rooms and occupants within the relay's limits, output within
/// `outbox_bytes` plus one stanza's fan-out; all counted and freed.
#[test]
fn what_the_host_can_make_it_keep_is_bounded_and_freed() {
    let limits = Limits {
        connections: 20,
        rooms_per_session: 2,
        occupants_per_room: 8,
        outbox_bytes: 4096,
        ..Limits::default()
    };
    let mut c = attached(limits);
    // Challenges nobody answers: at most `rooms_per_session` per JID, `connections` in all,
    // freed after `negotiation_timeout_secs`.
    let mut flood = String::new();
    for i in 0..200u64 {
        let id = identity(1000 + i);
        let nick = occupant_name(&id.verifying_key());
        let key = STANDARD.encode(ClientFirst::new(&id).encode());
        for room in ["p1", "p2", "p3"] {
            flood.push_str(&format!(
                "<presence from='u{i}@example.org/r' to='{room}@{DOMAIN}/{nick}'>\
                 <key xmlns='{NS_ROOM_KEY}'>{key}</key></presence>"
            ));
        }
    }
    c.handle_bytes(now(), flood.as_bytes()).unwrap();
    drain(&mut c);
    assert_eq!(c.retained().pending_proofs, 20, "{:?}", c.retained());
    c.handle_timeout(now() + Duration::from_secs(61));
    assert_eq!(c.retained().pending_proofs, 0);
    // Proven joins: members, rooms and occupants within their limits.
    let mut most_output = 0;
    let mut joined = Vec::new();
    for i in 0..60u64 {
        let from = format!("u{i}@example.org/r");
        for room in ["r1", "r2", "r3", &format!("x{i}")] {
            let (nick, _) = join_proven(&mut c, &from, room, i);
            most_output = most_output.max(c.retained().output_bytes);
            joined.push((from.clone(), room.to_owned(), nick));
        }
    }
    let held = c.retained();
    assert_eq!(held.members, 20, "{held:?}");
    assert!(held.occupants <= 40, "{held:?}");
    assert_eq!((held.pending_stanzas, held.pending_proofs), (0, 0));
    assert!(most_output <= 4096 + 8 * 1024, "{most_output}");
    // Groupchat from every member: output is handed out as it is handled.
    let mut chat = String::new();
    for i in 0..20 {
        chat.push_str(&groupchat(&format!("u{i}@example.org/r"), "r1"));
    }
    c.handle_bytes(now(), chat.as_bytes()).unwrap();
    assert!(
        c.retained().output_bytes <= 4096 + 8 * 2048,
        "{:?}",
        c.retained()
    );
    assert!(
        c.retained().pending_stanzas > 0,
        "handling paused while output waits"
    );
    drain(&mut c);
    assert_eq!(c.retained().pending_stanzas, 0);
    for (from, room, nick) in joined {
        let leave =
            format!("<presence from='{from}' to='{room}@{DOMAIN}/{nick}' type='unavailable'/>");
        c.handle_bytes(now(), leave.as_bytes()).unwrap();
        drain(&mut c);
    }
    assert_eq!(c.retained(), ComponentRetained::default());
}

#[test]
fn a_lost_link_empties_the_rooms_and_tells_the_occupants_once_back() {
    let mut c = attached(Limits::default());
    join_proven(&mut c, "a@example.org/r", "room", 1);
    join_proven(&mut c, "b@example.org/r", "room", 2);
    // A challenge in progress is forgotten with the link.
    join_with_key(&mut c, "c@example.org/r", "room", &identity(3), "");
    assert_eq!(c.retained().pending_proofs, 1);
    c.connection_lost();
    assert_eq!(c.retained().members, 0);
    assert_eq!(c.retained().pending_proofs, 0);
    assert_eq!(c.phase(), Phase::Down);
    // A second loss before reattaching adds nothing.
    c.start();
    c.connection_lost();
    c.start();
    c.handle_bytes(now(), HOST_HEADER.as_bytes()).unwrap();
    drain(&mut c);
    c.handle_bytes(now(), b"<handshake/>").unwrap();
    let told = drain(&mut c);
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told
        .iter()
        .all(|x| x.contains("code='332'") && x.contains("type='unavailable'")));
}

#[test]
fn shutdown_tells_the_occupants_and_closes() {
    let mut c = attached(Limits::default());
    join_proven(&mut c, "a@example.org/r", "room", 1);
    let out = c.close();
    assert_eq!(out.len(), 2);
    assert!(out[0].contains("code='332'"));
    assert_eq!(out[1], "</stream:stream>");
}

/// Occupants are pinged: an error answer (the host answering for a session that is gone)
/// or no answer for two rounds removes the occupant and tells the others; an answer keeps
/// it. At most one ping per member is outstanding.
#[test]
fn occupants_whose_session_is_gone_are_removed() {
    let limits = Limits {
        occupant_ping_secs: 10,
        ..Limits::default()
    };
    let t0 = now();
    let mut c = attached(limits);
    let (a, b) = ("a@example.org/r", "b@example.org/r");
    join_proven(&mut c, a, "room", 1);
    let (nb, _) = join_proven(&mut c, b, "room", 2);
    assert!(c.poll_timeout().is_some());
    let ping_ids = |out: &[String]| -> Vec<(String, String)> {
        out.iter()
            .filter(|x| x.contains("urn:xmpp:ping"))
            .map(|x| {
                let field = |name: &str| {
                    let start = x.find(&format!("{name}='")).unwrap() + name.len() + 2;
                    x[start..start + x[start..].find('\'').unwrap()].to_owned()
                };
                (field("to"), field("id"))
            })
            .collect()
    };
    c.handle_timeout(t0 + Duration::from_secs(11));
    let out = drain(&mut c);
    // From the room, so that a host balancing the domain over several instances by the
    // destination's bare JID routes the answers to this one.
    assert!(
        out.iter()
            .filter(|x| x.contains("urn:xmpp:ping"))
            .all(|x| x.contains(&format!("from='room@{DOMAIN}'"))),
        "{out:?}"
    );
    let pings = ping_ids(&out);
    assert_eq!(pings.len(), 2, "{pings:?}");
    assert_eq!(c.retained().pending_pings, 2);
    for (to, id) in &pings {
        let kind = if to == a { "result" } else { "error" };
        let answer = format!("<iq from='{to}' to='{DOMAIN}' type='{kind}' id='{id}'/>");
        c.handle_bytes(now(), answer.as_bytes()).unwrap();
    }
    let out = drain(&mut c);
    // a is told b was removed (333); b too, should its session come back (110, 333).
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].contains(&format!("to='{a}'"))
            && out[0].contains(&format!("room@{DOMAIN}/{nb}"))
            && out[0].contains("type='unavailable'")
            && out[0].contains("code='333'"),
        "{out:?}"
    );
    assert!(out[1].contains(&format!("to='{b}'")) && out[1].contains("code='110'"));
    assert_eq!((c.retained().members, c.retained().pending_pings), (1, 0));
    // Someone else answering a's ping does not count.
    c.handle_timeout(t0 + Duration::from_secs(22));
    let pings = ping_ids(&drain(&mut c));
    assert_eq!(pings.len(), 1);
    let forged = format!(
        "<iq from='{b}' to='{DOMAIN}' type='error' id='{}'/>",
        pings[0].1
    );
    c.handle_bytes(now(), forged.as_bytes()).unwrap();
    assert_eq!((c.retained().members, c.retained().pending_pings), (1, 1));
    // Unanswered: still there after one round (no second ping), gone after two.
    c.handle_timeout(t0 + Duration::from_secs(33));
    assert!(ping_ids(&drain(&mut c)).is_empty());
    assert_eq!(c.retained().members, 1);
    c.handle_timeout(t0 + Duration::from_secs(44));
    drain(&mut c);
    assert_eq!(c.retained(), ComponentRetained::default());
}
