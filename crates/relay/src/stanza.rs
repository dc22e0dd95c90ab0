//! Stanzas parsed once, at the edge, into the few shapes the server acts on, and the
//! plaintext policy.
//!
//! Policy: a `<message>` of type `chat` or `groupchat` is relayed only if its only child
//! element is one `<payload xmlns="urn:xmpp:cryptocat:1">` whose text is base64 of a
//! well-formed Cryptocat envelope (a pairwise [`Message`] for `chat`, a [`GroupMessage`] for
//! `groupchat`), and it has no other content (no `<body>`, no other element, no text).
//! The relayed stanza is rebuilt from the parsed payload, so nothing else passes through.

use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_protocol::message::Message;
use cryptocat_protocol::wire::decode_base64;
use jid::Jid;
use minidom::{Element, Node};

/// Namespace of the encrypted-payload element.
pub const NS_PAYLOAD: &str = "urn:xmpp:cryptocat:1";
/// The namespace of stanzas on an XEP-0114 component stream.
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// Stanza error namespace.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Why a message was refused (the `<text>` of the `policy-violation` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Only `chat` and `groupchat` messages are relayed.
    #[error("only chat and groupchat messages are relayed")]
    MessageType,
    /// No payload element, or something besides it (a `<body>` above all).
    #[error("a message must carry exactly one Cryptocat payload element and nothing else")]
    NotOnlyPayload,
    /// The payload is not base64.
    #[error("the payload is not valid base64")]
    Base64,
    /// The payload decodes but is not a well-formed envelope for the message type.
    #[error("the payload is not a well-formed Cryptocat envelope")]
    Envelope,
}

/// Message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `chat`.
    Chat,
    /// `groupchat`.
    Groupchat,
    /// `error`: never answered, never relayed.
    Error,
    /// `normal`, `headline` or anything else.
    Other,
}

/// A parsed `<message>`.
#[derive(Debug, Clone)]
pub struct MessageStanza {
    /// Addressee.
    pub to: Option<Jid>,
    /// Stanza id.
    pub id: Option<String>,
    /// Type.
    pub kind: MessageKind,
    /// The payload's base64 text, or why the message breaks the policy.
    pub payload: Result<String, Violation>,
}

/// Presence types the server distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// No type: available.
    Available,
    /// `unavailable`.
    Unavailable,
    /// `error`.
    Error,
    /// Subscriptions, probes: ignored.
    Other,
}

/// A parsed `<presence>`.
#[derive(Debug, Clone)]
pub struct PresenceStanza {
    /// Addressee.
    pub to: Option<Jid>,
    /// Stanza id.
    pub id: Option<String>,
    /// Type.
    pub kind: PresenceKind,
}

/// iq types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqKind {
    /// `get`.
    Get,
    /// `set`.
    Set,
    /// `result`.
    Result,
    /// `error`.
    Error,
}

/// A parsed `<iq>`.
#[derive(Debug, Clone)]
pub struct IqStanza {
    /// Addressee.
    pub to: Option<Jid>,
    /// Stanza id (required).
    pub id: String,
    /// Type.
    pub kind: IqKind,
    /// The first child element.
    pub child: Option<Element>,
}

/// Any stanza.
#[derive(Debug, Clone)]
pub enum Stanza {
    /// `<message>`.
    Message(MessageStanza),
    /// `<presence>`.
    Presence(PresenceStanza),
    /// `<iq>`.
    Iq(IqStanza),
}

/// Why an element could not be read as a stanza.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StanzaError {
    /// Not message, presence or iq in `jabber:client`: a stream error.
    #[error("unsupported stanza type")]
    UnsupportedType,
    /// The `to` attribute is not a valid JID: answered with `jid-malformed`.
    #[error("malformed address")]
    JidMalformed {
        /// Element name, to shape the error reply.
        name: &'static str,
        /// Stanza id.
        id: Option<String>,
    },
    /// Missing id or type on an iq: answered with `bad-request`.
    #[error("bad request")]
    BadRequest {
        /// Element name.
        name: &'static str,
        /// Stanza id.
        id: Option<String>,
    },
}

fn parse_to(el: &Element, name: &'static str) -> Result<Option<Jid>, StanzaError> {
    match el.attr("to") {
        None => Ok(None),
        Some(to) => Jid::new(to)
            .map(Some)
            .map_err(|_| StanzaError::JidMalformed {
                name,
                id: el.attr("id").map(str::to_owned),
            }),
    }
}

impl Stanza {
    /// Reads a top-level element of a client stream.
    pub fn parse(el: &Element) -> Result<Self, StanzaError> {
        Self::parse_in(el, crate::xml::NS_CLIENT)
    }

    /// Reads a top-level element of a stream whose stanzas are in `ns` (`jabber:client`,
    /// or [`NS_COMPONENT`] on a component stream).
    pub fn parse_in(el: &Element, ns: &str) -> Result<Self, StanzaError> {
        if el.ns() != ns {
            return Err(StanzaError::UnsupportedType);
        }
        let id = el.attr("id").map(str::to_owned);
        match el.name() {
            "message" => {
                let to = parse_to(el, "message")?;
                let kind = match el.attr("type") {
                    Some("chat") => MessageKind::Chat,
                    Some("groupchat") => MessageKind::Groupchat,
                    Some("error") => MessageKind::Error,
                    _ => MessageKind::Other,
                };
                Ok(Stanza::Message(MessageStanza {
                    to,
                    id,
                    kind,
                    payload: check_payload(kind, el),
                }))
            }
            "presence" => {
                let to = parse_to(el, "presence")?;
                let kind = match el.attr("type") {
                    None => PresenceKind::Available,
                    Some("unavailable") => PresenceKind::Unavailable,
                    Some("error") => PresenceKind::Error,
                    Some(_) => PresenceKind::Other,
                };
                Ok(Stanza::Presence(PresenceStanza { to, id, kind }))
            }
            "iq" => {
                let to = parse_to(el, "iq")?;
                let kind = match el.attr("type") {
                    Some("get") => IqKind::Get,
                    Some("set") => IqKind::Set,
                    Some("result") => IqKind::Result,
                    Some("error") => IqKind::Error,
                    _ => return Err(StanzaError::BadRequest { name: "iq", id }),
                };
                let Some(id) = id else {
                    return Err(StanzaError::BadRequest {
                        name: "iq",
                        id: None,
                    });
                };
                Ok(Stanza::Iq(IqStanza {
                    to,
                    id,
                    kind,
                    child: el.children().next().cloned(),
                }))
            }
            _ => Err(StanzaError::UnsupportedType),
        }
    }
}

/// The plaintext policy (see the module docs).
pub fn check_payload(kind: MessageKind, el: &Element) -> Result<String, Violation> {
    if !matches!(kind, MessageKind::Chat | MessageKind::Groupchat) {
        return Err(Violation::MessageType);
    }
    let mut payload = None;
    for node in el.nodes() {
        match node {
            Node::Text(t) if t.chars().all(char::is_whitespace) => {}
            Node::Element(child) if payload.is_none() && child.is("payload", NS_PAYLOAD) => {
                payload = Some(child);
            }
            _ => return Err(Violation::NotOnlyPayload),
        }
    }
    let payload = payload.ok_or(Violation::NotOnlyPayload)?;
    if payload.children().next().is_some() {
        return Err(Violation::NotOnlyPayload);
    }
    let text = payload.text();
    let bytes = decode_base64(&text).map_err(|_| Violation::Base64)?;
    let ok = match kind {
        MessageKind::Groupchat => GroupMessage::decode(&bytes).is_ok(),
        _ => Message::decode(&bytes).is_ok(),
    };
    if !ok {
        return Err(Violation::Envelope);
    }
    Ok(text.trim().to_owned())
}

/// A well-formed group envelope in base64, for tests of what the policy lets through.
#[cfg(test)]
pub(crate) fn sample_group_payload() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &str, inner: &str) -> Element {
        format!("<message xmlns='jabber:client' type='{kind}' to='r@conference.localhost'>{inner}</message>")
            .parse()
            .unwrap()
    }

    #[test]
    fn policy() {
        let good = format!(
            "<payload xmlns='{NS_PAYLOAD}'>{}</payload>",
            sample_group_payload()
        );
        let el = msg("groupchat", &good);
        assert_eq!(
            check_payload(MessageKind::Groupchat, &el).unwrap(),
            sample_group_payload()
        );
        // A group message is not a pairwise envelope.
        assert_eq!(
            check_payload(MessageKind::Chat, &msg("chat", &good)),
            Err(Violation::Envelope)
        );
        let cases = [
            ("<body>hi</body>", Violation::NotOnlyPayload),
            ("", Violation::NotOnlyPayload),
            ("plain text", Violation::NotOnlyPayload),
            (&format!("{good}<body>hi</body>"), Violation::NotOnlyPayload),
            (&format!("{good}{good}"), Violation::NotOnlyPayload),
            (
                &format!("<payload xmlns='{NS_PAYLOAD}'>!!!</payload>"),
                Violation::Base64,
            ),
            (
                &format!("<payload xmlns='{NS_PAYLOAD}'>AAAA</payload>"),
                Violation::Envelope,
            ),
            (
                "<payload xmlns='urn:other'>AAAA</payload>",
                Violation::NotOnlyPayload,
            ),
        ];
        for (inner, want) in cases {
            assert_eq!(
                check_payload(MessageKind::Groupchat, &msg("groupchat", inner)),
                Err(want),
                "{inner}"
            );
        }
        assert_eq!(
            check_payload(MessageKind::Other, &msg("normal", &good)),
            Err(Violation::MessageType)
        );
    }
}
