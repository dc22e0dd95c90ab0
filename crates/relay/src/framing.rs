//! Sans-IO helpers shared by the WebSocket (RFC 7395) and BOSH (XEP-0124/0206) shells:
//! turning what the [`crate::stream::C2s`] machine writes for a TCP stream into standalone
//! elements, and turning a WebSocket `<open/>` into the stream header the machine expects.

use minidom::Element;

use crate::stream::NS_FRAMING;
use crate::xml::{escape, NS_CLIENT, NS_STREAM};

/// Makes one element written for an RFC 6120 stream standalone: top-level stanzas get
/// `xmlns='jabber:client'` and `stream:` elements declare their prefix, unless their start
/// tag already declares it. Everything the server writes comes from [`crate::xml::Out`],
/// which escapes `>` in attribute values, so the first `>` ends the start tag.
pub fn standalone(xml: &str) -> String {
    let head_end = xml.find('>').unwrap_or(xml.len());
    let head = xml.get(..head_end).unwrap_or(xml);
    let name_end = head.find([' ', '/', '>']).unwrap_or(head.len());
    let name = head.get(1..name_end).unwrap_or("");
    let insert = match name {
        "message" | "presence" | "iq" if !head.contains(" xmlns=") => {
            format!(" xmlns='{NS_CLIENT}'")
        }
        n if n.starts_with("stream:") && !head.contains(" xmlns:stream=") => {
            format!(" xmlns:stream='{NS_STREAM}'")
        }
        _ => return xml.to_owned(),
    };
    let mut out = String::with_capacity(xml.len() + insert.len());
    out.push_str(xml.get(..name_end).unwrap_or(""));
    out.push_str(&insert);
    out.push_str(xml.get(name_end..).unwrap_or(""));
    out
}

/// What one WebSocket text frame holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// `<open/>`: (re)starts the stream; carries `to` and `version`.
    Open {
        /// The `to` attribute.
        to: Option<String>,
        /// The `version` attribute.
        version: Option<String>,
    },
    /// `<close/>`: ends the stream.
    Close,
    /// Any other element, fed to the machine as it is.
    Element,
    /// A frame that is not one framing element where one was expected, or that tries to
    /// smuggle in a TCP stream header.
    Invalid,
}

/// Largest `<open/>` or `<close/>` frame looked at with a tree parser.
const MAX_FRAMING_ELEMENT: usize = 2048;

/// Classifies a WebSocket text frame.
pub fn classify_ws_frame(frame: &str) -> WsFrame {
    let t = frame.trim();
    if t.starts_with("<open") || t.starts_with("<close") {
        if t.len() > MAX_FRAMING_ELEMENT {
            return WsFrame::Invalid;
        }
        // One empty element and nothing after it (RFC 7395 §3.3.2): the tree parser stops
        // at the end of the first element, so `<open/>x` would otherwise lose the `x`.
        // `<` cannot occur inside attribute values, so counting it finds every tag.
        let tags = t.matches('<').count();
        let whole = (tags == 1 && t.ends_with("/>"))
            || (tags == 2 && (t.ends_with("</open>") || t.ends_with("</close>")));
        if !whole {
            return WsFrame::Invalid;
        }
        let Ok(el) = t.parse::<Element>() else {
            return WsFrame::Invalid;
        };
        if el.nodes().next().is_some() {
            return WsFrame::Invalid;
        }
        if el.is("open", NS_FRAMING) {
            return WsFrame::Open {
                to: el.attr("to").map(str::to_owned),
                version: el.attr("version").map(str::to_owned),
            };
        }
        if el.is("close", NS_FRAMING) {
            return WsFrame::Close;
        }
        return WsFrame::Invalid;
    }
    if t.starts_with("<stream") || t.starts_with("</") || t.starts_with("<?") {
        return WsFrame::Invalid;
    }
    WsFrame::Element
}

/// The RFC 6120 stream header equivalent to an `<open/>` (or a BOSH session request) with
/// these attributes, to feed into the machine.
pub fn synthetic_header(to: Option<&str>, version: Option<&str>) -> String {
    let mut s = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'");
    if let Some(to) = to {
        s.push_str(&format!(" to='{}'", escape(to)));
    }
    if let Some(v) = version {
        s.push_str(&format!(" version='{}'", escape(v)));
    }
    s.push('>');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_adds_namespaces_once() {
        assert_eq!(
            standalone("<message to='a@b' type='chat'><payload xmlns='x'>A</payload></message>"),
            "<message xmlns='jabber:client' to='a@b' type='chat'><payload xmlns='x'>A</payload></message>"
        );
        assert_eq!(standalone("<iq/>"), "<iq xmlns='jabber:client'/>");
        assert_eq!(
            standalone("<iq xmlns='jabber:client' id='1'/>"),
            "<iq xmlns='jabber:client' id='1'/>"
        );
        assert_eq!(
            standalone("<stream:features><bind xmlns='b'/></stream:features>"),
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='b'/></stream:features>"
        );
        assert_eq!(
            standalone("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>x</success>"),
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>x</success>"
        );
    }

    #[test]
    fn ws_frames_are_classified() {
        assert_eq!(
            classify_ws_frame(
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
            ),
            WsFrame::Open {
                to: Some("localhost".into()),
                version: Some("1.0".into())
            }
        );
        assert_eq!(
            classify_ws_frame("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
            WsFrame::Close
        );
        assert_eq!(classify_ws_frame("<open to='x'/>"), WsFrame::Invalid);
        // Anything after the element, or inside it, makes the frame invalid.
        let ns = "xmlns='urn:ietf:params:xml:ns:xmpp-framing'";
        for bad in [
            format!("<open {ns} to='localhost' version='1.0'/>x"),
            format!("<open {ns} to='localhost' version='1.0'/><message/>"),
            format!("<open {ns} to='localhost' version='1.0'>x</open>"),
            format!("<close {ns}/><presence/>"),
        ] {
            assert_eq!(classify_ws_frame(&bad), WsFrame::Invalid, "{bad}");
        }
        assert!(matches!(
            classify_ws_frame(&format!("<open {ns} to='localhost' version='1.0'></open>")),
            WsFrame::Open { .. }
        ));
        assert_eq!(classify_ws_frame(&format!("<close {ns}/>")), WsFrame::Close);
        assert_eq!(
            classify_ws_frame("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"),
            WsFrame::Invalid
        );
        assert_eq!(
            classify_ws_frame("<iq type='get' id='1'/>"),
            WsFrame::Element
        );
    }
}
