//! The XML edge of the relay: the shared stream parser ([`cryptocat_xml`], re-exported
//! here) for what clients send, and a tiny writer for what the server sends.

use std::fmt::Write as _;

pub use cryptocat_xml::{
    escape, ParserLimits, StreamHeader, StreamParser, XmlError, XmlEvent, NS_CLIENT, NS_STREAM,
};

/// An element the server writes. Attribute values and text are escaped on output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    name: &'static str,
    xmlns: Option<&'static str>,
    attrs: Vec<(&'static str, String)>,
    children: Vec<Out>,
    text: Option<String>,
}

impl Out {
    /// An element without namespace declaration (inherits `jabber:client`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            xmlns: None,
            attrs: Vec::new(),
            children: Vec::new(),
            text: None,
        }
    }

    /// An element that declares its namespace.
    pub fn ns(name: &'static str, xmlns: &'static str) -> Self {
        let mut out = Self::new(name);
        out.xmlns = Some(xmlns);
        out
    }

    /// Adds an attribute.
    #[must_use]
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push((name, value.into()));
        self
    }

    /// Adds an attribute if the value is present.
    #[must_use]
    pub fn attr_opt(self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.attr(name, v),
            None => self,
        }
    }

    /// Adds a child element.
    #[must_use]
    pub fn child(mut self, child: Out) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the text content.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Serialises the element.
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, s: &mut String) {
        s.push('<');
        s.push_str(self.name);
        if let Some(ns) = self.xmlns {
            let _ = write!(s, " xmlns='{}'", escape(ns));
        }
        for (k, v) in &self.attrs {
            let _ = write!(s, " {k}='{}'", escape(v));
        }
        if self.children.is_empty() && self.text.is_none() {
            s.push_str("/>");
            return;
        }
        s.push('>');
        if let Some(t) = &self.text {
            s.push_str(&escape(t));
        }
        for c in &self.children {
            c.write(s);
        }
        s.push_str("</");
        s.push_str(self.name);
        s.push('>');
    }
}

/// The server's stream header.
pub fn stream_header(domain: &str, id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' \
         xmlns:stream='{NS_STREAM}' id='{}' from='{}' version='1.0' xml:lang='en'>",
        escape(id),
        escape(domain)
    )
}

/// A stream error followed by the closing tag. `condition` is an RFC 6120 stream error
/// condition name; `text` is a fixed explanation, never user content.
pub fn stream_error(condition: &'static str, text: &str) -> String {
    format!(
        "{}</stream:stream>",
        stream_error_out(condition, text).to_xml()
    )
}

/// A standalone stream error element (WebSocket and BOSH framing), declaring its prefix.
pub fn stream_error_element(condition: &'static str, text: &str) -> String {
    stream_error_out(condition, text)
        .attr("xmlns:stream", NS_STREAM)
        .to_xml()
}

fn stream_error_out(condition: &'static str, text: &str) -> Out {
    const NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    Out::new("stream:error")
        .child(Out::ns(condition, NS))
        .child(Out::ns("text", NS).text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParserLimits = ParserLimits {
        max_stanza_bytes: 1024,
        max_depth: 4,
    };
    const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

    #[test]
    fn parses_header_and_stanzas_fed_byte_by_byte() {
        let input = format!("{HEADER}  <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq> \n<presence/></stream:stream>");
        let mut p = StreamParser::new(LIMITS);
        let mut events = Vec::new();
        for b in input.as_bytes() {
            events.extend(p.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(events.len(), 4, "{events:?}");
        match &events[0] {
            XmlEvent::StreamOpen(h) => {
                assert!(h.is_stream);
                assert_eq!(h.to.as_deref(), Some("localhost"));
            }
            other => panic!("{other:?}"),
        }
        match &events[1] {
            XmlEvent::Stanza(e) => {
                assert!(e.is("iq", NS_CLIENT));
                assert!(e.get_child("ping", "urn:xmpp:ping").is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&events[2], XmlEvent::Stanza(e) if e.name() == "presence"));
        assert!(matches!(events[3], XmlEvent::StreamClose));
    }

    #[test]
    fn rejects_oversized_stanza_even_when_split_in_text_chunks() {
        let mut p = StreamParser::new(LIMITS);
        p.feed(HEADER.as_bytes()).unwrap();
        let big = format!("<message><body>{}</body></message>", "a".repeat(4000));
        assert_eq!(
            p.feed(big.as_bytes()).unwrap_err(),
            XmlError::StanzaTooLarge { max: 1024 }
        );
    }

    #[test]
    fn many_small_stanzas_do_not_add_up() {
        let mut p = StreamParser::new(LIMITS);
        p.feed(HEADER.as_bytes()).unwrap();
        for _ in 0..100 {
            let ev = p
                .feed(b"<presence><status>hello there</status></presence>")
                .unwrap();
            assert_eq!(ev.len(), 1);
        }
    }

    #[test]
    fn rejects_deep_nesting_and_dtd_and_top_level_text() {
        let mut p = StreamParser::new(LIMITS);
        p.feed(HEADER.as_bytes()).unwrap();
        assert_eq!(
            p.feed(b"<a><b><c><d><e><f>").unwrap_err(),
            XmlError::TooDeep { max: 4 }
        );
        let mut p = StreamParser::new(LIMITS);
        assert_eq!(
            p.feed(b"<!DOCTYPE foo [<!ENTITY x 'y'>]><stream:stream>")
                .unwrap_err(),
            XmlError::NotWellFormed
        );
        let mut p = StreamParser::new(LIMITS);
        p.feed(HEADER.as_bytes()).unwrap();
        assert_eq!(
            p.feed(b"hello<presence/>").unwrap_err(),
            XmlError::TextAtTopLevel
        );
        let mut p = StreamParser::new(LIMITS);
        p.feed(HEADER.as_bytes()).unwrap();
        assert_eq!(p.feed(b"<a></b>").unwrap_err(), XmlError::NotWellFormed);
    }

    #[test]
    fn out_escapes() {
        let x = Out::new("message")
            .attr("to", "a'b<")
            .child(Out::ns("x", "urn:x").text("&<>"))
            .to_xml();
        assert_eq!(
            x,
            "<message to='a&apos;b&lt;'><x xmlns='urn:x'>&amp;&lt;&gt;</x></message>"
        );
    }
}
#[cfg(test)]
mod server_output_tests {
    use super::*;

    #[test]
    fn server_output_parses() {
        let mut p = StreamParser::new(ParserLimits {
            max_stanza_bytes: 1 << 20,
            max_depth: 10,
        });
        let s = format!(
            "{}{}",
            stream_header("localhost", "abc"),
            stream_error("policy-violation", "x")
        );
        let r = p.feed(s.as_bytes());
        assert!(r.is_ok(), "{r:?} {s}");
    }
}
