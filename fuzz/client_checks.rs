//! Checks behind the client transport's fuzz targets (what `cryptocat-xmpp` reads from a
//! server before and around the XML stream), shared with
//! `crates/xmpp/tests/xmpp/fuzz_corpus.rs` (included there with `#[path]`), so CI replays
//! the corpora on stable Rust.

#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_xmpp::bosh::{parse_body, NS_HTTPBIND};
use cryptocat_xmpp::session::{parse_server_first, MAX_ITERATIONS, MIN_ITERATIONS};
use cryptocat_xmpp::xml::ParserLimits;

/// A check: runs one input and panics if a property fails.
pub type Check = fn(&[u8]);

/// Every client target, by name.
pub const CLIENT_TARGETS: &[(&str, Check)] = &[
    ("client_bosh_body", client_bosh_body),
    ("client_scram_first", client_scram_first),
];

const MAX_CHILDREN: usize = 8;

fn limits() -> ParserLimits {
    ParserLimits {
        max_stanza_bytes: 4096,
        max_depth: 8,
    }
}

/// The input is a BOSH response body. An accepted body is a closed `<body/>` in the
/// httpbind namespace with at most `MAX_CHILDREN` children; its children, serialized and
/// wrapped in a fresh body, parse again to the same elements.
pub fn client_bosh_body(data: &[u8]) {
    let Ok(body) = parse_body(data, limits(), MAX_CHILDREN) else {
        return;
    };
    assert!(body.root.is("body", NS_HTTPBIND));
    assert!(body.children.len() <= MAX_CHILDREN);
    let mut again = format!("<body xmlns='{NS_HTTPBIND}'>").into_bytes();
    for child in &body.children {
        child.write_to(&mut again).expect("writing to a Vec");
    }
    again.extend_from_slice(b"</body>");
    let reparsed = parse_body(&again, limits(), MAX_CHILDREN);
    let reparsed = match reparsed {
        Ok(b) => b,
        Err(e) => panic!("a body's own children were refused when sent again: {e}"),
    };
    assert_eq!(reparsed.children, body.children);
}

/// The input is `cnonce '\n' server-first`. An accepted server-first extends the client
/// nonce, has an iteration count within bounds, and its canonical form parses to the same.
pub fn client_scram_first(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some((cnonce, server_first)) = text.split_once('\n') else {
        return;
    };
    let Ok(parsed) = parse_server_first(server_first, cnonce) else {
        return;
    };
    assert!(!cnonce.is_empty());
    assert!(parsed.nonce.starts_with(cnonce) && parsed.nonce.len() > cnonce.len());
    assert!((MIN_ITERATIONS..=MAX_ITERATIONS).contains(&parsed.iterations));
    let canonical = format!(
        "r={},s={},i={}",
        parsed.nonce,
        STANDARD.encode(&parsed.salt),
        parsed.iterations
    );
    let again = parse_server_first(&canonical, cnonce).expect("the canonical form parses");
    assert_eq!(again, parsed);
}

/// Seeds shaped like real server traffic: (target, name, bytes).
pub fn client_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "client_bosh_body",
            "empty",
            format!("<body xmlns='{NS_HTTPBIND}'/>").into_bytes(),
        ),
        (
            "client_bosh_body",
            "session",
            format!(
                "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' sid='abc' wait='60' \
                 requests='2' hold='1' xmpp:version='1.0'><stream:features \
                 xmlns:stream='http://etherx.jabber.org/streams'><mechanisms \
                 xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism>\
                 </mechanisms></stream:features></body>"
            )
            .into_bytes(),
        ),
        (
            "client_bosh_body",
            "groupchat",
            format!(
                "<body xmlns='{NS_HTTPBIND}'><message xmlns='jabber:client' type='groupchat' \
                 from='room@conference.localhost/abc' to='x@localhost/r'><payload \
                 xmlns='urn:xmpp:cryptocat:1'>AAEC</payload></message></body>"
            )
            .into_bytes(),
        ),
        (
            "client_bosh_body",
            "terminate",
            format!("<body xmlns='{NS_HTTPBIND}' type='terminate' condition='item-not-found'/>")
                .into_bytes(),
        ),
        (
            "client_scram_first",
            "rfc7677",
            b"rOClKhIxsrH8\nr=rOClKhIxsrH8%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .to_vec(),
        ),
        (
            "client_scram_first",
            "extension",
            b"abc\nr=abcdef,s=AAAA,i=4096,m=ext".to_vec(),
        ),
    ]
}
