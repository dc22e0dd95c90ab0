//! Checks behind the relay's fuzz targets, shared with `crates/relay/tests/relay/fuzz_corpus.rs`
//! (included there with `#[path]`), so CI replays the corpus on stable Rust.

#![allow(dead_code)]

use base64::Engine as _;
use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_protocol::message::Message;
use cryptocat_protocol::wire::decode_base64;
use cryptocat_relay::framing::synthetic_header;
use cryptocat_relay::http::{parse_bosh_body, NS_HTTPBIND};
use cryptocat_relay::stanza::{check_payload, MessageKind, Stanza, NS_PAYLOAD};
use cryptocat_relay::xml::{ParserLimits, StreamParser, XmlEvent, NS_CLIENT};
use cryptocat_relay::Limits;
use minidom::{Element, Node};

/// A check: runs one input and panics if a property fails.
pub type Check = fn(&[u8]);

/// Every relay target, by name.
pub const RELAY_TARGETS: &[(&str, Check)] = &[
    ("relay_xml_stream", relay_xml_stream),
    ("relay_stanza", relay_stanza),
    ("relay_bosh_body", relay_bosh_body),
    ("relay_component", relay_component),
];

const HEADER: &str = "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
                      xmlns:stream='http://etherx.jabber.org/streams'>";

fn small_limits() -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: 4096,
        max_depth: 8,
    }
}

/// The stanzas of a client stream that starts with `header` and goes on with `body`, or
/// None if the parser refuses it.
fn stanzas(header: &str, body: &[u8], limits: ParserLimits) -> Option<Vec<Element>> {
    let mut parser = StreamParser::new(limits);
    let mut events = parser.feed(header.as_bytes()).ok()?;
    events.extend(parser.feed(body).ok()?);
    Some(
        events
            .into_iter()
            .filter_map(|e| match e {
                XmlEvent::Stanza(el) => Some(el),
                _ => None,
            })
            .collect(),
    )
}

fn serialize(el: &Element) -> Vec<u8> {
    let mut out = Vec::new();
    el.write_to(&mut out).expect("writing to a Vec");
    out
}

/// The input is what a client sends after its stream header. Every stanza the parser
/// yields is read by `Stanza::parse`, and:
/// - the plaintext policy holds: a message whose content is anything but one Cryptocat
///   payload element (a `<body>`, any other child, any text) is refused;
/// - an accepted payload is canonical base64 of a well-formed envelope for its type, and
///   the relayed form the server builds from it passes the policy again with the same text;
/// - the stanza, serialized and parsed again, is the same element and is classified the
///   same way (what the relay re-serializes reads back as it was read).
pub fn relay_stanza(data: &[u8]) {
    let Some(elements) = stanzas(HEADER, data, small_limits()) else {
        return;
    };
    for el in &elements {
        let parsed = Stanza::parse(el);
        if let Ok(Stanza::Message(m)) = &parsed {
            let only_payload = el
                .nodes()
                .filter(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()))
                .count()
                == 1
                && el.children().count() == 1
                && el.children().all(|c| c.is("payload", NS_PAYLOAD));
            if let Ok(text) = &m.payload {
                assert!(
                    only_payload,
                    "the policy let through a message with other content"
                );
                assert!(matches!(m.kind, MessageKind::Chat | MessageKind::Groupchat));
                let bytes = decode_base64(text).expect("accepted payload is base64");
                match m.kind {
                    MessageKind::Groupchat => {
                        let g = GroupMessage::decode(&bytes).expect("accepted group message");
                        assert_eq!(&g.to_base64(), text, "non-canonical payload accepted");
                    }
                    _ => {
                        let p = Message::decode(&bytes).expect("accepted pairwise message");
                        assert_eq!(&p.to_base64(), text, "non-canonical payload accepted");
                    }
                }
                let kind = if m.kind == MessageKind::Groupchat {
                    "groupchat"
                } else {
                    "chat"
                };
                let relayed: Element = format!(
                    "<message xmlns='{NS_CLIENT}' type='{kind}'><payload xmlns='{NS_PAYLOAD}'>{text}</payload></message>"
                )
                .parse()
                .expect("relayed form parses");
                assert_eq!(check_payload(m.kind, &relayed).as_ref(), Ok(text));
            }
        }
        // A top-level element in no namespace (`xmlns=''`) is not a stanza (refused as
        // unsupported-stanza-type) and is never serialized again; the serializer would drop
        // its empty declaration.
        if el.ns().is_empty() {
            assert!(parsed.is_err());
            continue;
        }
        // Escaping can make a stanza longer: the structure is what must survive.
        let roomy = ParserLimits {
            max_stanza_bytes: 1 << 20,
            max_depth: 8,
        };
        let again =
            stanzas(HEADER, &serialize(el), roomy).expect("a serialized stanza parses again");
        assert_eq!(again.len(), 1, "one stanza became {}", again.len());
        assert_eq!(&again[0], el, "serializing changed the stanza");
        assert_eq!(
            format!("{:?}", Stanza::parse(&again[0])),
            format!("{parsed:?}"),
            "classification changed after a round trip"
        );
    }
}

/// The input is a BOSH request body. Properties: the parser never panics; an accepted
/// body's root is `<body/>` in the httpbind namespace; its payload (the re-serialized child
/// stanzas, which the session's stream parser reads next) yields, after the synthetic
/// stream header a BOSH session starts with, exactly the child elements of the input, in
/// order (no stanza gained, lost or altered); and the payload wrapped in a new `<body/>`
/// parses to the same payload.
pub fn relay_bosh_body(data: &[u8]) {
    let limits = Limits {
        max_stanza_bytes: 4096,
        max_depth: 8,
        ..Limits::default()
    };
    let Some(body) = parse_bosh_body(data, &limits) else {
        return;
    };
    assert!(body.root.is("body", NS_HTTPBIND));
    // The children as the parser saw them, from the original bytes.
    let originals = stanzas("", data, small_limits()).expect("accepted body parses");
    let header = synthetic_header(Some("localhost"), Some("1.0"));
    let fed = stanzas(&header, &body.payload, small_limits())
        .expect("the payload of an accepted body is a well-formed stream continuation");
    assert_eq!(fed.len(), originals.len(), "stanza count changed");
    for (a, b) in fed.iter().zip(&originals) {
        assert_eq!(
            a, b,
            "a stanza changed between the body and the session stream"
        );
    }
    let mut wrapped = format!("<body xmlns='{NS_HTTPBIND}' rid='1'>").into_bytes();
    wrapped.extend_from_slice(&body.payload);
    wrapped.extend_from_slice(b"</body>");
    let again = parse_bosh_body(&wrapped, &limits).expect("re-wrapped payload parses");
    assert_eq!(again.payload, body.payload, "payload is not a fixpoint");
}

/// What a host server sends the room service on its component stream. The first byte
/// picks where the rest goes: odd, right after our stream header (the host's header, the
/// handshake's answer); even, once attached (stanzas from the host's users). Whatever comes:
/// - nothing panics, and the stream either goes on or ends with a [`LinkError`];
/// - every output parses as a stanza of a component stream, and every relayed `chat` or
///   `groupchat` message passes the plaintext policy (only a Cryptocat payload gets out);
/// - what is kept stays within the limits: members, occupants, and nothing pending once
///   the output is drained.
pub fn relay_component(data: &[u8]) {
    use cryptocat_relay::component::{Component, Phase, Secret};
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_stanza_bytes: 4096,
        max_depth: 8,
        connections: 16,
        rooms_per_session: 4,
        occupants_per_room: 8,
        outbox_bytes: 16 * 1024,
        ..Limits::default()
    };
    let secret = Secret::new(b"fuzz".to_vec()).expect("non-empty");
    // Known nonces, so that inputs can carry valid room key proofs (seed "proven-chat").
    let mut c =
        Component::new("conference.localhost", secret, limits).with_entropy(Box::new(ZeroEntropy));
    let now = std::time::Instant::now();
    c.start();
    if mode % 2 == 0 {
        c.handle_bytes(now, COMPONENT_HOST_HEADER.as_bytes())
            .expect("the host header");
        c.handle_bytes(now, b"<handshake/>").expect("the handshake");
        assert_eq!(c.phase(), Phase::Attached);
    }
    let _ = c.handle_bytes(now, rest);
    let mut parser = StreamParser::new(ParserLimits {
        max_stanza_bytes: 1 << 20,
        max_depth: 16,
    });
    parser
        .feed(COMPONENT_HOST_HEADER.as_bytes())
        .expect("header");
    while let Some(out) = c.poll_output() {
        let events = parser.feed(out.as_bytes()).expect("output is well-formed");
        for ev in events {
            let XmlEvent::Stanza(el) = ev else {
                panic!("output is stanzas only: {out}");
            };
            if el.name() == "message" {
                let kind = match el.attr("type") {
                    Some("chat") => MessageKind::Chat,
                    Some("groupchat") => MessageKind::Groupchat,
                    _ => continue,
                };
                if el.get_child("subject", "jabber:component:accept").is_some() {
                    continue; // the empty subject that ends a join
                }
                let mut payload_only = el.clone();
                // The MUC marker on private messages is ours, not the sender's.
                payload_only.remove_child("x", "http://jabber.org/protocol/muc#user");
                assert!(
                    check_payload(kind, &payload_only).is_ok(),
                    "relayed message breaks the policy: {out}"
                );
            }
        }
    }
    let held = c.retained();
    assert!(held.members <= 16 && held.occupants <= 16 * 4, "{held:?}");
    assert!(held.pending_proofs <= 16, "{held:?}");
    assert_eq!((held.pending_stanzas, held.output_bytes), (0, 0));
}

/// Nonces of zeros (the fuzz target's component).
struct ZeroEntropy;

impl cryptocat_relay::stream::Entropy for ZeroEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

const COMPONENT_HOST_HEADER: &str =
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns='jabber:component:accept' from='conference.localhost' id='f00d'>";

fn summary(events: &[XmlEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            XmlEvent::StreamOpen(h) => format!("open {:?} {:?} {}", h.to, h.version, h.is_stream),
            XmlEvent::Stanza(el) => format!("{el:?}"),
            XmlEvent::StreamClose => "close".to_owned(),
        })
        .collect()
}

/// The first byte picks a chunk size; the rest is a client's byte stream. Properties: the
/// parser never panics; fed in chunks it yields exactly what it yields fed at once (or
/// fails likewise); every stanza it yields can be classified and policy-checked without
/// panicking.
pub fn relay_xml_stream(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let limits = small_limits();
    let mut whole_parser = StreamParser::new(limits);
    let whole = whole_parser.feed(input);
    let mut parser = StreamParser::new(limits);
    let mut events = Vec::new();
    let mut failed = false;
    for piece in input.chunks(chunk) {
        match parser.feed(piece) {
            Ok(e) => events.extend(e),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match &whole {
        Ok(w) => {
            assert!(
                !failed,
                "chunked feeding failed where feeding at once did not"
            );
            assert_eq!(summary(w), summary(&events), "chunking changed the events");
        }
        Err(_) => assert!(
            failed,
            "chunked feeding accepted what feeding at once refused"
        ),
    }
    for e in &events {
        if let XmlEvent::Stanza(el) = e {
            let _ = Stanza::parse(el);
            let _ = check_payload(MessageKind::Chat, el);
            let _ = check_payload(MessageKind::Groupchat, el);
        }
    }
}

/// Seed inputs shaped like real traffic (what our clients, slixmpp and strophe.js send), as
/// (target, name, bytes). Written to `corpus/<target>/seed-<name>` by the ignored test
/// `write_relay_seed_corpus` in `crates/relay/tests/relay/fuzz_corpus.rs`.
pub fn relay_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use cryptocat_protocol::dake::{self, DakeContext};
    use cryptocat_protocol::identity::Identity;
    use cryptocat_protocol::Timestamp;
    use rand_core::SeedableRng as _;

    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let alice = Identity::generate(&mut rng, Timestamp(1_764_000_000_000));
    let ctx = DakeContext {
        room: "room@conference.localhost".into(),
        initiator: "room@conference.localhost/a".into(),
        responder: "room@conference.localhost/b".into(),
    };
    let pairwise = dake::initiate(&mut rng, &alice, ctx, None)
        .map(|(_, m)| Message::Identity(m).to_base64())
        .unwrap_or_default();
    let group = GroupMessage {
        epoch: [1; 16],
        sender: 1,
        index: 7,
        prev_hash: [2; 32],
        ciphertext: vec![3; 64],
        macs: vec![[4; 16], [5; 16]],
    }
    .to_base64();
    let stanzas: Vec<(&str, String)> = vec![
        ("starttls", "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".into()),
        ("register-get", "<iq type='get' id='reg0' to='localhost'><query xmlns='jabber:iq:register'/></iq>".into()),
        ("register-set", "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>5f2a9c</username><password>p4ss</password></query></iq>".into()),
        ("auth", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj01ZjJhOWMscj1meWtv</auth>".into()),
        ("bind", "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>".into()),
        ("session", "<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>".into()),
        ("join", "<presence to='room@conference.localhost/a' id='j1' xml:lang='en'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x><c xmlns='http://jabber.org/protocol/caps' node='http://slixmpp.com/ver/1.17.0' hash='sha-1' ver='GYhPsLS2c1E7kkWJAp9sRW+4/Gs='/></presence>".into()),
        ("leave", "<presence type='unavailable' to='room@conference.localhost/a'/>".into()),
        ("groupchat", format!("<message type='groupchat' id='g1' to='room@conference.localhost'><payload xmlns='{NS_PAYLOAD}'>{group}</payload></message>")),
        ("groupchat-ws", format!("<message xmlns='jabber:client' type='groupchat' to='room@conference.localhost'>\n  <payload xmlns='{NS_PAYLOAD}'>\n{group}\n</payload>\n</message>")),
        ("chat", format!("<message type='chat' id='p1' to='room@conference.localhost/b'><payload xmlns='{NS_PAYLOAD}'>{pairwise}</payload></message>")),
        ("plaintext", "<message type='groupchat' to='room@conference.localhost' id='x'><body>hello</body></message>".into()),
        ("payload-and-body", format!("<message type='groupchat' to='room@conference.localhost'><payload xmlns='{NS_PAYLOAD}'>{group}</payload><body>hi</body></message>")),
        ("ping", "<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>".into()),
        ("disco", "<iq type='get' id='d1' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>".into()),
        ("bad-jid", "<message type='chat' to='a@b@c'><payload xmlns='urn:xmpp:cryptocat:1'>AAAA</payload></message>".into()),
        ("prefixed", "<cl:message xmlns:cl='jabber:client' type='groupchat' to='r@conference.localhost'><p:payload xmlns:p='urn:xmpp:cryptocat:1'>AAAA</p:payload></cl:message>".into()),
    ];
    let mut out = Vec::new();
    let mut all = String::new();
    for (name, xml) in &stanzas {
        out.push(("relay_stanza", (*name).to_owned(), xml.clone().into_bytes()));
        all.push_str(xml);
    }
    out.push(("relay_stanza", "session-all".to_owned(), all.into_bytes()));
    let body = |attrs: &str, inner: &str| {
        format!("<body xmlns='{NS_HTTPBIND}' {attrs}>{inner}</body>").into_bytes()
    };
    let bosh: Vec<(&str, Vec<u8>)> = vec![
        ("create", format!("<body xmlns='{NS_HTTPBIND}' content='text/xml; charset=utf-8' hold='1' rid='1573741820' to='localhost' ver='1.6' wait='60' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>").into_bytes()),
        ("auth", body("rid='1573741821' sid='7e1b' xmlns:xmpp='urn:xmpp:xbosh'", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj01ZjJhOWMscj1meWtv</auth>")),
        ("restart", body("rid='1573741822' sid='7e1b' to='localhost' xml:lang='en' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'", "")),
        ("poll", body("rid='1573741823' sid='7e1b'", "")),
        ("stanzas", body("rid='1573741824' sid='7e1b'", &format!("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq><presence xmlns='jabber:client' to='room@conference.localhost/a'><x xmlns='http://jabber.org/protocol/muc'/></presence><message xmlns='jabber:client' type='groupchat' to='room@conference.localhost'><payload xmlns='{NS_PAYLOAD}'>{group}</payload></message>"))),
        ("unqualified", body("rid='1573741825' sid='7e1b'", "<message type='groupchat'><body>hi</body></message>")),
        ("terminate", body("rid='1573741826' sid='7e1b' type='terminate'", "<presence xmlns='jabber:client' type='unavailable'/>")),
        ("prefixes", format!("<b:body xmlns:b='{NS_HTTPBIND}' xmlns:c='jabber:client' rid='9'><c:message type='chat' to='r@conference.localhost/b'><payload xmlns='{NS_PAYLOAD}'>{pairwise}</payload></c:message></b:body>").into_bytes()),
    ];
    for (name, bytes) in bosh {
        out.push(("relay_bosh_body", name.to_owned(), bytes));
    }
    let muc = "conference.localhost";
    let join = |from: &str, nick: &str| {
        format!("<presence from='{from}' to='room@{muc}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    };
    let attached: Vec<(&str, String)> = vec![
        ("join", join("a@localhost/r", "n1")),
        ("chat-room", format!("{}{}<message from='a@localhost/r' to='room@{muc}' type='groupchat' id='g'><payload xmlns='{NS_PAYLOAD}'>{group}</payload></message><message from='b@remote.example/x' to='room@{muc}/n1' type='chat' id='p'><payload xmlns='{NS_PAYLOAD}'>{pairwise}</payload></message>", join("a@localhost/r", "n1"), join("b@remote.example/x", "n2"))),
        ("plaintext", format!("{}<message from='a@localhost/r' to='room@{muc}' type='groupchat'><body>hello</body></message>", join("a@localhost/r", "n1"))),
        ("leave-and-bounce", format!("{}{}<presence from='a@localhost/r' to='room@{muc}/n1' type='unavailable'/><message from='b@localhost/r' to='room@{muc}' type='error'/>", join("a@localhost/r", "n1"), join("b@localhost/r", "n2"))),
        ("disco", format!("<iq from='a@localhost/r' to='{muc}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq><iq from='localhost' to='{muc}' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")),
        ("stream-error", "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>".into()),
    ];
    // A proven join (the fuzz target's nonces are zeros), then a groupchat.
    let id = Identity::generate(&mut rng, Timestamp(1_764_000_000_000));
    let nick = cryptocat_protocol::group::occupant_name(&id.verifying_key());
    let key = base64::engine::general_purpose::STANDARD
        .encode(cryptocat_protocol::keyauth::ClientFirst::new(&id).encode());
    let challenge = cryptocat_protocol::keyauth::Challenge {
        nonce: [0; 32],
        binding: cryptocat_protocol::keyauth::BindingType::None,
        domain: format!("room@{muc}"),
    };
    let proof = cryptocat_protocol::keyauth::room_respond(&id, &format!("room@{muc}"), &challenge)
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
        .unwrap_or_default();
    let ns_key = "urn:xmpp:cryptocat:room-key:1";
    let keyed = |proof: &str| {
        format!("<presence from='p@localhost/r' to='room@{muc}/{nick}'><key xmlns='{ns_key}'>{key}</key>{proof}</presence>")
    };
    let attached: Vec<(&str, String)> = attached
        .into_iter()
        .chain([(
            "proven-chat",
            format!(
                "{}{}<message from='p@localhost/r' to='room@{muc}' type='groupchat' id='g'><payload xmlns='{NS_PAYLOAD}'>{group}</payload></message>",
                keyed(""),
                keyed(&format!("<proof xmlns='{ns_key}'>{proof}</proof>"))
            ),
        )])
        .collect();
    for (name, xml) in attached {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(xml.as_bytes());
        out.push(("relay_component", name.to_owned(), bytes));
    }
    let opening: Vec<(&str, String)> = vec![
        ("handshake", format!("{COMPONENT_HOST_HEADER}<handshake/>{}", join("a@localhost/r", "n1"))),
        ("refused", format!("{COMPONENT_HOST_HEADER}<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")),
    ];
    for (name, xml) in opening {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(xml.as_bytes());
        out.push(("relay_component", name.to_owned(), bytes));
    }
    out
}
