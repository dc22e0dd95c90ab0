//! Invite links, version 1 (`docs/invite.md`):
//!
//! ```text
//! cryptocat://join?v=1&server=URL&server=URL2&domain=DOMAIN&muc=SERVICE&pin=sha256/…&room=ROOM
//! ```
//!
//! A link names a room and how to reach and check its server ([`Access`]); it never holds
//! a nickname or a secret. Parsing is strict: every limit is checked before anything is
//! kept, an unknown parameter or version is an error (a link this app cannot read whole
//! is not half-applied), and every error names what is wrong without repeating the link.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::pin::{Pin, PinError};
use crate::room::room_name;
use crate::url::{ServerUrl, UrlError};

/// The link's scheme.
pub const SCHEME: &str = "cryptocat";
/// What every version-1 link starts with (case-insensitive when read).
pub const LINK_START: &str = "cryptocat://join?";
/// The version this code writes and reads.
pub const VERSION: &str = "1";
/// Longest link read, in bytes.
pub const MAX_LINK_BYTES: usize = 2048;
/// Most `server` parameters.
pub const MAX_SERVERS: usize = 4;
/// Most `pin` parameters (a key and its planned replacement, say).
pub const MAX_PINS: usize = 4;
/// Most parameters in all.
pub const MAX_PARAMETERS: usize = 16;
/// Longest XMPP domain or room-service name.
pub const MAX_DOMAIN_BYTES: usize = 253;

/// How to reach a server and check that it is the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Addresses in the order to try (at least one).
    pub servers: Vec<ServerUrl>,
    /// The XMPP domain, when it is not the first server's host.
    pub domain: Option<String>,
    /// The room service (MUC) domain, when it is not `conference.<domain>`.
    pub muc: Option<String>,
    /// Keys the server may present (any one): with pins, a TLS server is accepted only if
    /// its key has one of them, whoever signed its certificate; without, the system's
    /// certificate authorities decide.
    pub pins: Vec<Pin>,
}

/// A parsed invite: a room and its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The room name (checked, lower-cased).
    pub room: String,
    /// How to reach and check its server.
    pub access: Access,
}

/// Why a link was refused. Names the problem, never the link's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Longer than [`MAX_LINK_BYTES`].
    #[error("the invite link is too long (more than {max} bytes)")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Does not start with `cryptocat://join?`.
    #[error("this is not a Cryptocat invite link: it must start with cryptocat://join?")]
    NotAnInvite,
    /// Has a `#fragment`.
    #[error("the invite link has a '#' part, which invites never have")]
    Fragment,
    /// More than [`MAX_PARAMETERS`] parameters, or too many of one kind.
    #[error("the invite link has too many {what} (at most {max})")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A parameter without `=`, or with bad percent-encoding or UTF-8.
    #[error("the invite link's parameter {name:?} is not well encoded")]
    BadEncoding {
        /// The parameter's name (or its first characters).
        name: String,
    },
    /// No `v` parameter.
    #[error("the invite link has no version (v=1)")]
    MissingVersion,
    /// A version other than 1.
    #[error("the invite link is version {0}, but this app reads version 1 only: update Cryptocat")]
    UnknownVersion(String),
    /// A parameter this version does not have.
    #[error("the invite link has an unknown parameter {0:?}")]
    UnknownParameter(String),
    /// A parameter given twice that may be given once.
    #[error("the invite link names its {0} twice")]
    Duplicate(&'static str),
    /// A required parameter is missing.
    #[error("the invite link has no {0}")]
    Missing(&'static str),
    /// The room name is not allowed.
    #[error(
        "the invite link's room name is not allowed (1 to 64 letters, digits, '-', '_' or '.')"
    )]
    BadRoom,
    /// A server address could not be read.
    #[error("the invite link's server {position} is not usable: {error}")]
    BadServer {
        /// 1-based position among the `server` parameters.
        position: usize,
        /// What is wrong with it.
        error: UrlError,
    },
    /// A server without TLS (`ws://`, `http://`) that is not on this computer, or in a
    /// link with pins (a pin can only be checked over TLS).
    #[error("the invite link's server {position} has no TLS (ws:// or http://), which only an unpinned link to this computer's own server may use")]
    InsecureServer {
        /// 1-based position among the `server` parameters.
        position: usize,
    },
    /// The domain or room service is not a domain name.
    #[error("the invite link's {0} is not a valid domain name")]
    BadDomain(&'static str),
    /// A pin could not be read.
    #[error("the invite link's key pin is not usable: {0}")]
    BadPin(PinError),
}

/// What is percent-encoded in a written value: controls, space, non-ASCII (always), and
/// the characters that delimit or escape (`"#%&+<=>?[\]^`{|}`). `:` `/` `@` stay readable.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl Access {
    /// One server, no domain or room service, no pins.
    pub fn server(url: ServerUrl) -> Self {
        Self {
            servers: vec![url],
            domain: None,
            muc: None,
            pins: Vec::new(),
        }
    }

    /// The link up to the room name: `cryptocat://join?v=1&server=…&room=`. Appending a
    /// room name (letters, digits, `-`, `_`, `.`: nothing to encode) makes an invite.
    pub fn link_prefix(&self) -> String {
        let mut out = format!("{LINK_START}v={VERSION}");
        for server in &self.servers {
            push(&mut out, "server", &server.to_string());
        }
        if let Some(domain) = &self.domain {
            push(&mut out, "domain", domain);
        }
        if let Some(muc) = &self.muc {
            push(&mut out, "muc", muc);
        }
        for pin in &self.pins {
            push(&mut out, "pin", &pin.to_string());
        }
        out.push_str("&room=");
        out
    }

    /// Checks servers as a link's are checked: 1 to [`MAX_SERVERS`], none plain unless
    /// on this computer and the link has no pins (a pin is checked over TLS only, so a
    /// plain address beside it would let anything answering there stand in).
    pub fn check(&self) -> Result<(), InviteError> {
        if self.servers.is_empty() {
            return Err(InviteError::Missing("server"));
        }
        if self.servers.len() > MAX_SERVERS {
            return Err(InviteError::TooMany {
                what: "servers",
                max: MAX_SERVERS,
            });
        }
        if self.pins.len() > MAX_PINS {
            return Err(InviteError::TooMany {
                what: "pins",
                max: MAX_PINS,
            });
        }
        for (i, server) in self.servers.iter().enumerate() {
            if !server.is_tls() && (!server.is_loopback() || !self.pins.is_empty()) {
                return Err(InviteError::InsecureServer { position: i + 1 });
            }
        }
        Ok(())
    }
}

fn push(out: &mut String, name: &str, value: &str) {
    out.push('&');
    out.push_str(name);
    out.push('=');
    out.extend(utf8_percent_encode(value, VALUE));
}

impl Invite {
    /// Whether `text` looks like an invite link (starts with `cryptocat:`), so that a field
    /// that takes either a link or a server address knows which parser's error to show.
    pub fn looks_like_link(text: &str) -> bool {
        text.trim()
            .get(..SCHEME.len() + 1)
            .is_some_and(|s| s.eq_ignore_ascii_case("cryptocat:"))
    }

    /// Parses a link.
    pub fn parse(link: &str) -> Result<Self, InviteError> {
        let link = link.trim();
        if link.len() > MAX_LINK_BYTES {
            return Err(InviteError::TooLong {
                max: MAX_LINK_BYTES,
            });
        }
        let query = strip_start(link).ok_or(InviteError::NotAnInvite)?;
        if query.contains('#') {
            return Err(InviteError::Fragment);
        }
        let mut params = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            if params.len() == MAX_PARAMETERS {
                return Err(InviteError::TooMany {
                    what: "parameters",
                    max: MAX_PARAMETERS,
                });
            }
            let (name, raw) = part
                .split_once('=')
                .ok_or_else(|| InviteError::BadEncoding {
                    name: shown_name(part),
                })?;
            let value =
                percent_decode_str(raw)
                    .decode_utf8()
                    .map_err(|_| InviteError::BadEncoding {
                        name: shown_name(name),
                    })?;
            params.push((name, value.into_owned()));
        }
        // The version first: a later version may have parameters this one does not know.
        let mut versions = params.iter().filter(|(n, _)| *n == "v");
        let version = versions.next().ok_or(InviteError::MissingVersion)?;
        if versions.next().is_some() {
            return Err(InviteError::Duplicate("version"));
        }
        if version.1 != VERSION {
            return Err(InviteError::UnknownVersion(shown_name(&version.1)));
        }

        let mut room = None;
        let mut access = Access {
            servers: Vec::new(),
            domain: None,
            muc: None,
            pins: Vec::new(),
        };
        for (name, value) in params {
            match name {
                "v" => {}
                "room" => once(&mut room, "room", value)?,
                "domain" => once(&mut access.domain, "domain", domain(&value, "domain")?)?,
                "muc" => once(
                    &mut access.muc,
                    "room service (muc)",
                    domain(&value, "muc")?,
                )?,
                "server" => {
                    if access.servers.len() == MAX_SERVERS {
                        return Err(InviteError::TooMany {
                            what: "servers",
                            max: MAX_SERVERS,
                        });
                    }
                    let position = access.servers.len() + 1;
                    let url = ServerUrl::parse(&value)
                        .map_err(|error| InviteError::BadServer { position, error })?;
                    access.servers.push(url);
                }
                "pin" => {
                    if access.pins.len() == MAX_PINS {
                        return Err(InviteError::TooMany {
                            what: "pins",
                            max: MAX_PINS,
                        });
                    }
                    access
                        .pins
                        .push(value.parse().map_err(InviteError::BadPin)?);
                }
                other => return Err(InviteError::UnknownParameter(shown_name(other))),
            }
        }
        let room = room.ok_or(InviteError::Missing("room"))?;
        let room = room_name(&room).ok_or(InviteError::BadRoom)?;
        access.check()?;
        let invite = Self { room, access };
        // What we accept we can write back within the limit (percent-encoding may lengthen
        // a link that was written with raw UTF-8).
        if invite.to_link().len() > MAX_LINK_BYTES {
            return Err(InviteError::TooLong {
                max: MAX_LINK_BYTES,
            });
        }
        Ok(invite)
    }

    /// The link.
    pub fn to_link(&self) -> String {
        let mut link = self.access.link_prefix();
        link.extend(utf8_percent_encode(&self.room, VALUE));
        link
    }
}

impl fmt::Display for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_link())
    }
}

impl std::str::FromStr for Invite {
    type Err = InviteError;
    fn from_str(s: &str) -> Result<Self, InviteError> {
        Self::parse(s)
    }
}

/// The query after `cryptocat://join?` (or `cryptocat://join/?`), any case.
fn strip_start(link: &str) -> Option<&str> {
    let (scheme, rest) = link.split_once("://")?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let (host, query) = rest.split_once('?')?;
    (host.eq_ignore_ascii_case("join") || host.eq_ignore_ascii_case("join/")).then_some(query)
}

fn once<T>(slot: &mut Option<T>, what: &'static str, value: T) -> Result<(), InviteError> {
    if slot.is_some() {
        return Err(InviteError::Duplicate(what));
    }
    *slot = Some(value);
    Ok(())
}

/// A name (or a value such as the version) for an error message: at most 16 characters,
/// letters, digits, `-` and `_` only.
fn shown_name(name: &str) -> String {
    name.chars()
        .take(16)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A DNS-style domain: 1 to 253 bytes of labels of ASCII letters, digits, `-` and `_`,
/// separated by single dots. Returned lower-cased.
fn domain(value: &str, what: &'static str) -> Result<String, InviteError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_DOMAIN_BYTES
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(InviteError::BadDomain(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PIN: &str = "sha256/47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";

    fn link(params: &str) -> String {
        format!("cryptocat://join?{params}")
    }

    #[test]
    fn reads_a_full_link() {
        let text = link(&format!(
            "v=1&server=wss://chat.example.org/xmpp-websocket&server=xmpp://chat.example.org\
             &domain=Example.org&muc=rooms.example.org&pin={PIN}&room=Lobby"
        ));
        let invite = Invite::parse(&text).unwrap();
        assert_eq!(invite.room, "lobby");
        assert_eq!(invite.access.servers.len(), 2);
        assert_eq!(invite.access.servers[1].port, 5222);
        assert_eq!(invite.access.domain.as_deref(), Some("example.org"));
        assert_eq!(invite.access.muc.as_deref(), Some("rooms.example.org"));
        assert_eq!(invite.access.pins, vec![PIN.parse().unwrap()]);
        // Written back in the canonical form, which reads the same.
        let again = Invite::parse(&invite.to_link()).unwrap();
        assert_eq!(again, invite);
        assert!(invite.to_link().ends_with("&room=lobby"));
        assert!(invite
            .to_link()
            .starts_with("cryptocat://join?v=1&server=wss://chat.example.org:443/xmpp-websocket"));
    }

    #[test]
    fn accepts_harmless_variations() {
        for text in [
            "  CRYPTOCAT://JOIN?v=1&server=xmpp://a.example&room=x  ",
            "cryptocat://join/?v=1&server=xmpp://a.example&room=x&",
            "cryptocat://join?room=x&server=xmpp%3A%2F%2Fa.example&v=1",
            "cryptocat://join?v=1&server=ws://localhost:5280/xmpp-websocket&room=x",
            "cryptocat://join?v=1&server=http://127.0.0.1:5280/http-bind&room=x",
        ] {
            let invite = Invite::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(invite.room, "x");
        }
    }

    #[test]
    fn every_error_names_its_cause() {
        use InviteError as E;
        let s = "server=xmpp://a.example";
        let cases: Vec<(String, E)> = vec![
            (
                format!("https://example.org/?v=1&{s}&room=x"),
                E::NotAnInvite,
            ),
            ("cryptocat:join?v=1".into(), E::NotAnInvite),
            ("cryptocat://chat?v=1".into(), E::NotAnInvite),
            ("cryptocat://join".into(), E::NotAnInvite),
            (link(&format!("v=1&{s}&room=x#frag")), E::Fragment),
            (link(&format!("{s}&room=x")), E::MissingVersion),
            (
                link(&format!("v=2&{s}&room=x&nick=y")),
                E::UnknownVersion("2".into()),
            ),
            (
                link(&format!("v=1&v=1&{s}&room=x")),
                E::Duplicate("version"),
            ),
            (
                link(&format!("v=1&{s}&room=x&nick=alice")),
                E::UnknownParameter("nick".into()),
            ),
            (
                link(&format!("v=1&{s}&room=x&room=y")),
                E::Duplicate("room"),
            ),
            (link(&format!("v=1&{s}")), E::Missing("room")),
            (link("v=1&room=x"), E::Missing("server")),
            (link(&format!("v=1&{s}&room=a%20b")), E::BadRoom),
            (
                link(&format!("v=1&{s}&room")),
                E::BadEncoding {
                    name: "room".into(),
                },
            ),
            (
                link(&format!("v=1&{s}&room=%FF")),
                E::BadEncoding {
                    name: "room".into(),
                },
            ),
            (link(&format!("v=1&{s}&room=%G1")), E::BadRoom),
            (
                link("v=1&server=gopher://a.example&room=x"),
                E::BadServer {
                    position: 1,
                    error: UrlError::UnsupportedScheme("gopher".into()),
                },
            ),
            (
                link(&format!("v=1&{s}&server=xmpp://a.example:0&room=x")),
                E::BadServer {
                    position: 2,
                    error: UrlError::InvalidPort,
                },
            ),
            (
                link(&format!(
                    "v=1&{s}&server=ws://a.example/xmpp-websocket&room=x"
                )),
                E::InsecureServer { position: 2 },
            ),
            (
                link(&format!("v=1&{s}&domain=a..b&room=x")),
                E::BadDomain("domain"),
            ),
            (link(&format!("v=1&{s}&muc=-a&room=x")), E::BadDomain("muc")),
            (
                link(&format!("v=1&{s}&domain=a&domain=a&room=x")),
                E::Duplicate("domain"),
            ),
            (
                link(&format!("v=1&{s}&pin=sha1/x&room=x")),
                E::BadPin(PinError::Malformed),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Invite::parse(&text), Err(want), "{text}");
        }
    }

    #[test]
    fn limits() {
        let s = "server=xmpp://a.example";
        let long = link(&format!("v=1&{s}&room={}", "x".repeat(MAX_LINK_BYTES)));
        assert_eq!(
            Invite::parse(&long),
            Err(InviteError::TooLong {
                max: MAX_LINK_BYTES
            })
        );
        let five = [s; 5].join("&");
        assert_eq!(
            Invite::parse(&link(&format!("v=1&{five}&room=x"))),
            Err(InviteError::TooMany {
                what: "servers",
                max: MAX_SERVERS
            })
        );
        let pins = vec![format!("pin={PIN}"); 5].join("&");
        assert_eq!(
            Invite::parse(&link(&format!("v=1&{s}&{pins}&room=x"))),
            Err(InviteError::TooMany {
                what: "pins",
                max: MAX_PINS
            })
        );
        let many = "&&x=1".repeat(MAX_PARAMETERS);
        assert_eq!(
            Invite::parse(&link(&format!("v=1&{s}{many}&room=x"))),
            Err(InviteError::TooMany {
                what: "parameters",
                max: MAX_PARAMETERS
            })
        );
    }

    /// Values (room names, addresses) never appear in errors; parameter names do, cut
    /// and limited to letters, digits, `-` and `_`, since naming the unknown one helps.
    #[test]
    fn errors_do_not_repeat_the_link() {
        let secretish = "hunter2room";
        for text in [
            link(&format!(
                "v=1&server=xmpp://{secretish}:99999&room={secretish}"
            )),
            link(&format!("v=1&server=xmpp://a.example&room={secretish}%20")),
        ] {
            let e = Invite::parse(&text).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = Invite::parse(&link(
            "v=1&server=xmpp://a.example&room=x&<script>abcdefghijklmnopq=1",
        ))
        .unwrap_err();
        assert_eq!(e, InviteError::UnknownParameter("?script?abcdefgh".into()));
    }

    #[test]
    fn looks_like_link() {
        assert!(Invite::looks_like_link(" Cryptocat://join?v=1"));
        assert!(Invite::looks_like_link("cryptocat:whatever"));
        assert!(!Invite::looks_like_link("xmpp://example.org"));
        assert!(!Invite::looks_like_link("crypto"));
    }

    fn arb_server() -> impl Strategy<Value = ServerUrl> {
        (
            prop_oneof![
                Just("xmpp://"),
                Just("wss://"),
                Just("https://"),
                Just("ws://"),
                Just("http://")
            ],
            prop_oneof![
                "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}".prop_map(|s| s),
                Just("127.0.0.1".to_owned()),
                Just("[::1]".to_owned()),
                Just("192.168.1.20".to_owned()),
            ],
            1u16..,
        )
            .prop_map(|(scheme, host, port)| {
                let path = match scheme {
                    "xmpp://" => "",
                    "wss://" | "ws://" => "/xmpp-websocket",
                    _ => "/http-bind",
                };
                ServerUrl::parse(&format!("{scheme}{host}:{port}{path}")).unwrap()
            })
    }

    proptest! {
        /// Every invite that passes the checks is written and read back unchanged, and
        /// stays within the length limit.
        #[test]
        fn round_trip(
            room in "[a-zA-Z0-9_-]([a-zA-Z0-9_.-]{0,30}[a-zA-Z0-9_-])?",
            servers in proptest::collection::vec(arb_server(), 1..=MAX_SERVERS),
            domain in proptest::option::of("[a-z]{1,10}\\.[a-z]{2,4}"),
            muc in proptest::option::of("[a-z]{1,10}\\.[a-z]{2,4}"),
            pins in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PINS),
        ) {
            let access = Access {
                servers,
                domain,
                muc,
                pins: pins.iter().map(|d| Pin::of_spki(d)).collect(),
            };
            let invite = Invite { room: room.to_lowercase(), access };
            let text = invite.to_link();
            prop_assert!(text.len() <= MAX_LINK_BYTES);
            match invite.access.check() {
                Ok(()) => prop_assert_eq!(Invite::parse(&text), Ok(invite)),
                Err(e) => prop_assert_eq!(Invite::parse(&text), Err(e)),
            }
        }

        /// Any text: an answer, never a panic; and anything accepted is written back to a
        /// link that reads the same.
        #[test]
        fn any_text(text in "cryptocat://join\\?[ -~]{0,300}") {
            if let Ok(invite) = Invite::parse(&text) {
                prop_assert_eq!(Invite::parse(&invite.to_link()), Ok(invite));
            }
        }
    }
}
