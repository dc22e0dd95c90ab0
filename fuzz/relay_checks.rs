//! Checks behind the relay's fuzz targets, shared with `crates/relay/tests/relay/fuzz_corpus.rs`
//! (included there with `#[path]`), so CI replays the corpus on stable Rust.

#![allow(dead_code)]

use cryptocat_relay::stanza::{check_payload, MessageKind, Stanza};
use cryptocat_relay::xml::{ParserLimits, StreamParser, XmlEvent};

/// A check: runs one input and panics if a property fails.
pub type Check = fn(&[u8]);

/// Every relay target, by name.
pub const RELAY_TARGETS: &[(&str, Check)] = &[("relay_xml_stream", relay_xml_stream)];

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
    let limits = ParserLimits {
        max_stanza_bytes: 4096,
        max_depth: 8,
    };
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
