use cryptocat_protocol::group::wire::GroupMessage;

use super::*;
use crate::stanza::NS_PAYLOAD;

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
    c.handle_bytes(HOST_HEADER.as_bytes()).unwrap();
    assert_eq!(
        drain(&mut c),
        // sha1("3BF96D75" + "s3cr3t"), as the host computes it.
        ["<handshake>07081014aba0a5ba027357e1bc7c817b9b6c5c79</handshake>"]
    );
    assert_eq!(c.phase(), Phase::Handshaking);
    c.handle_bytes(b"<handshake/>").unwrap();
    assert_eq!(c.phase(), Phase::Attached);
    c
}

fn join(from: &str, room: &str, nick: &str) -> String {
    format!("<presence from='{from}' to='{room}@{DOMAIN}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
}

fn payload() -> String {
    GroupMessage {
        epoch: [1; 16],
        sender: 0,
        index: 0,
        prev_hash: [0; 32],
        ciphertext: vec![9; 48],
        macs: vec![[3; 16]],
    }
    .to_base64()
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
    c.handle_bytes(HOST_HEADER.as_bytes()).unwrap();
    let refused = c.handle_bytes(
        b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
          <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>s3cr3t is wrong</text></stream:error>",
    );
    assert_eq!(refused, Err(LinkError::Refused("not-authorized")));
    // The error names the condition only, never the host's text.
    assert!(!refused.unwrap_err().to_string().contains("s3cr3t"));

    let mut c = Component::new(DOMAIN, secret(), Limits::default());
    c.start();
    c.handle_bytes(HOST_HEADER.as_bytes()).unwrap();
    assert_eq!(
        c.handle_bytes(join("a@example.org/r", "room", "n").as_bytes()),
        Err(LinkError::Unexpected)
    );
    let mut c = Component::new(DOMAIN, secret(), Limits::default());
    c.start();
    let no_id = HOST_HEADER.replace(" id='3BF96D75'", "");
    assert_eq!(c.handle_bytes(no_id.as_bytes()), Err(LinkError::BadHeader));
}

#[test]
fn occupants_of_the_host_chat_and_plaintext_is_refused() {
    let mut c = attached(Limits::default());
    let (a, b) = ("alice@example.org/r1", "bob@remote.example/r2");
    c.handle_bytes(join(a, "room", "n1").as_bytes()).unwrap();
    c.handle_bytes(join(b, "room", "n2").as_bytes()).unwrap();
    let joined = drain(&mut c);
    assert!(joined
        .iter()
        .any(|x| x.contains(&format!("to='{b}'")) && x.contains("code='110'")));
    // Alice learns of bob by his room JID, never his real JID.
    assert!(joined
        .iter()
        .filter(|x| x.contains(&format!("to='{a}'")))
        .all(|x| !x.contains("remote.example")));

    c.handle_bytes(groupchat(a, "room").as_bytes()).unwrap();
    let relayed = drain(&mut c);
    assert_eq!(relayed.len(), 2, "{relayed:?}");
    for x in &relayed {
        assert!(x.contains(&format!("from='room@{DOMAIN}/n1'")) && x.contains(&payload()));
    }
    // Plaintext: refused to its sender, reaches nobody.
    let plain = format!(
        "<message from='{a}' to='room@{DOMAIN}' type='groupchat' id='p'><body>hello</body></message>"
    );
    c.handle_bytes(plain.as_bytes()).unwrap();
    let out = drain(&mut c);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("policy-violation") && out[0].contains(&format!("to='{a}'")));
    assert!(!out[0].contains("hello"));
    // Someone not in the room cannot post to it.
    c.handle_bytes(groupchat("eve@example.org/x", "room").as_bytes())
        .unwrap();
    let out = drain(&mut c);
    assert!(
        out.len() == 1 && out[0].contains("not-acceptable"),
        "{out:?}"
    );
    // Service discovery: a room service that refuses plaintext.
    c.handle_bytes(
        format!("<iq from='{a}' to='{DOMAIN}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            .as_bytes(),
    )
    .unwrap();
    let out = drain(&mut c);
    assert!(out[0].contains("category='conference'") && out[0].contains(NS_PAYLOAD));
    // Leaving, and a bounce, free the occupants.
    c.handle_bytes(
        format!("<presence from='{b}' to='room@{DOMAIN}/n2' type='unavailable'/>").as_bytes(),
    )
    .unwrap();
    c.handle_bytes(format!("<presence from='{a}' to='room@{DOMAIN}/n1' type='error'/>").as_bytes())
        .unwrap();
    drain(&mut c);
    assert_eq!(c.retained(), ComponentRetained::default());
}

/// What the host (and whoever is behind it) can make the component keep: members, rooms
/// and occupants within the relay's limits, output within `outbox_bytes` plus one
/// stanza's fan-out; all counted and freed.
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
    let mut flood = String::new();
    for i in 0..200 {
        for room in ["r1", "r2", "r3", &format!("x{i}")] {
            flood.push_str(&join(
                &format!("u{i}@example.org/r"),
                room,
                &format!("n{i}"),
            ));
        }
    }
    c.handle_bytes(flood.as_bytes()).unwrap();
    let mut most_output = 0;
    while c.poll_output().is_some() {
        most_output = most_output.max(c.retained().output_bytes);
    }
    let held = c.retained();
    assert_eq!(held.members, 20, "{held:?}");
    assert!(held.occupants <= 40, "{held:?}");
    assert_eq!(held.pending_stanzas, 0);
    assert!(most_output <= 4096 + 8 * 1024, "{most_output}");
    // Groupchat from every member: output is handed out as it is handled.
    let mut chat = String::new();
    for i in 0..20 {
        chat.push_str(&groupchat(&format!("u{i}@example.org/r"), "r1"));
    }
    c.handle_bytes(chat.as_bytes()).unwrap();
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
    for i in 0..200 {
        for room in ["r1", "r2", "r3", &format!("x{i}")] {
            c.handle_bytes(
                format!(
                    "<presence from='u{i}@example.org/r' to='{room}@{DOMAIN}/n{i}' type='unavailable'/>"
                )
                .as_bytes(),
            )
            .unwrap();
            drain(&mut c);
        }
    }
    assert_eq!(c.retained(), ComponentRetained::default());
}

#[test]
fn a_lost_link_empties_the_rooms_and_tells_the_occupants_once_back() {
    let mut c = attached(Limits::default());
    c.handle_bytes(join("a@example.org/r", "room", "n1").as_bytes())
        .unwrap();
    c.handle_bytes(join("b@example.org/r", "room", "n2").as_bytes())
        .unwrap();
    drain(&mut c);
    c.connection_lost();
    assert_eq!(c.retained().members, 0);
    assert_eq!(c.phase(), Phase::Down);
    // A second loss before reattaching adds nothing.
    c.start();
    c.connection_lost();
    c.start();
    c.handle_bytes(HOST_HEADER.as_bytes()).unwrap();
    drain(&mut c);
    c.handle_bytes(b"<handshake/>").unwrap();
    let told = drain(&mut c);
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told
        .iter()
        .all(|x| x.contains("code='332'") && x.contains("type='unavailable'")));
}

#[test]
fn shutdown_tells_the_occupants_and_closes() {
    let mut c = attached(Limits::default());
    c.handle_bytes(join("a@example.org/r", "room", "n1").as_bytes())
        .unwrap();
    drain(&mut c);
    let out = c.close();
    assert_eq!(out.len(), 2);
    assert!(out[0].contains("code='332'"));
    assert_eq!(out[1], "</stream:stream>");
}
