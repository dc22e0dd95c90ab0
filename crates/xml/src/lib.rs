//! `cryptocat-xml`: the incremental, limited XML stream parser shared by the relay
//! (parsing what clients send) and the client transport (parsing what a server we do not
//! trust sends), and XML escaping.
//!
//! [`StreamParser`] is fed raw bytes as they arrive and yields [`XmlEvent`]s: the stream
//! header, each complete top-level stanza as a [`minidom::Element`], and the end of the
//! stream. It is built on `rxml`'s sans-IO `RawParser` (the lexer tokio-xmpp uses; it refuses
//! DTDs, processing instructions and entity declarations) plus `minidom`'s tree builder.
//!
//! Limits, checked before anything grows: a stanza may span at most
//! [`ParserLimits::max_stanza_bytes`] bytes of input and nest at most
//! [`ParserLimits::max_depth`] elements below the stream root; a single token (name,
//! attribute value, text chunk) is at most 8 KiB in the lexer, so the lexer's own buffer is
//! bounded too. Whitespace between stanzas (keep-alives) is dropped, never accumulated.

use minidom::tree_builder::TreeBuilder;
use minidom::Element;
use rxml::error::EndOrError;
use rxml::{Parse as _, RawEvent, RawParser};

/// The stream namespace (RFC 6120).
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// The client namespace.
pub const NS_CLIENT: &str = "jabber:client";

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Largest stanza, counted in input bytes from its `<` to its end tag.
    pub max_stanza_bytes: usize,
    /// Deepest nesting below the stream root (a stanza is depth 1).
    pub max_depth: usize,
}

impl Default for ParserLimits {
    /// Generous limits for a client reading a server: 1 MiB stanzas, depth 32.
    fn default() -> Self {
        Self {
            max_stanza_bytes: 1 << 20,
            max_depth: 32,
        }
    }
}

/// What the parser recognised.
#[derive(Debug)]
pub enum XmlEvent {
    /// The stream header `<stream:stream ...>` with its attributes.
    StreamOpen(StreamHeader),
    /// A complete top-level element.
    Stanza(Element),
    /// `</stream:stream>`.
    StreamClose,
}

/// The attributes of a stream header that the server looks at.
#[derive(Debug, Clone, Default)]
pub struct StreamHeader {
    /// `to`: the domain the client wants.
    pub to: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// Whether the element was `stream` in the stream namespace.
    pub is_stream: bool,
    /// The root element itself, without children (BOSH reads its attributes).
    pub root: Option<Element>,
}

/// Why the input could not be parsed: each maps to an RFC 6120 stream error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The bytes are not well-formed (restricted) XML.
    #[error("not well-formed XML")]
    NotWellFormed,
    /// A stanza grew past the size limit.
    #[error("stanza larger than {max} bytes")]
    StanzaTooLarge {
        /// The limit.
        max: usize,
    },
    /// Elements nested deeper than the limit.
    #[error("elements nested deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Character data directly inside the stream root.
    #[error("text outside of stanzas")]
    TextAtTopLevel,
}

/// An incremental parser for one XML stream (one per stream restart).
pub struct StreamParser {
    raw: RawParser,
    tree: TreeBuilder,
    limits: ParserLimits,
    /// Input bytes of the stanza being read, if one has started.
    stanza_bytes: usize,
    opened: bool,
    closed: bool,
}

impl std::fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamParser")
            .field("depth", &self.tree.depth())
            .field("stanza_bytes", &self.stanza_bytes)
            .field("opened", &self.opened)
            .finish()
    }
}

impl StreamParser {
    /// A parser waiting for a stream header.
    pub fn new(limits: ParserLimits) -> Self {
        Self {
            raw: RawParser::new(),
            tree: TreeBuilder::new(),
            limits,
            stanza_bytes: 0,
            opened: false,
            closed: false,
        }
    }

    /// Feeds bytes and returns every event they complete. After an error the parser must
    /// not be fed again.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<XmlEvent>, XmlError> {
        let mut events = Vec::new();
        while !self.closed {
            match self.raw.parse(&mut bytes, false) {
                Ok(Some(ev)) => self.handle(ev, &mut events)?,
                Ok(None) => break,
                Err(EndOrError::NeedMoreData) => {
                    if bytes.is_empty() {
                        break;
                    }
                }
                Err(EndOrError::Error(_)) => return Err(XmlError::NotWellFormed),
            }
        }
        Ok(events)
    }

    fn handle(&mut self, ev: RawEvent, events: &mut Vec<XmlEvent>) -> Result<(), XmlError> {
        let len = ev.metrics().len();
        let depth = self.tree.depth();
        match &ev {
            RawEvent::XmlDeclaration(..) => return Ok(()),
            RawEvent::Text(_, text) if depth <= 1 => {
                if text.as_str().chars().all(|c| c.is_ascii_whitespace()) {
                    return Ok(());
                }
                return Err(XmlError::TextAtTopLevel);
            }
            RawEvent::ElementHeadOpen(..) => {
                if depth > self.limits.max_depth {
                    return Err(XmlError::TooDeep {
                        max: self.limits.max_depth,
                    });
                }
                if depth == 1 {
                    self.stanza_bytes = 0;
                }
            }
            _ => {}
        }
        if depth >= 1 {
            self.stanza_bytes = self.stanza_bytes.saturating_add(len);
            if self.stanza_bytes > self.limits.max_stanza_bytes {
                return Err(XmlError::StanzaTooLarge {
                    max: self.limits.max_stanza_bytes,
                });
            }
        }
        let is_head_close = matches!(ev, RawEvent::ElementHeadClose(_));
        let is_foot = matches!(ev, RawEvent::ElementFoot(_));
        self.tree
            .process_event(ev)
            .map_err(|_| XmlError::NotWellFormed)?;
        let new_depth = self.tree.depth();
        if is_head_close && new_depth == 1 && !self.opened {
            self.opened = true;
            let header = match self.tree.top() {
                Some(root) => StreamHeader {
                    to: root.attr("to").map(str::to_owned),
                    version: root.attr("version").map(str::to_owned),
                    is_stream: root.is("stream", NS_STREAM),
                    root: Some(root.clone()),
                },
                None => return Err(XmlError::NotWellFormed),
            };
            events.push(XmlEvent::StreamOpen(header));
        } else if is_foot && new_depth == 1 {
            self.stanza_bytes = 0;
            if let Some(stanza) = self.tree.unshift_child() {
                events.push(XmlEvent::Stanza(stanza));
            }
        } else if is_foot && new_depth == 0 {
            self.closed = true;
            events.push(XmlEvent::StreamClose);
        }
        Ok(())
    }
}

/// Escapes text for use in XML character data or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
