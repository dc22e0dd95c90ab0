//! What crosses the IPC boundary, and nothing else. Every type here derives `ts_rs::TS`;
//! `ui/src/lib/bindings/index.ts` is generated from them (see [`bindings`]) and a test
//! fails when the committed file differs from a fresh export.
//!
//! No key material crosses: members carry their readable fingerprint, the pairwise safety
//! number and the bytes of its QR payload; the raw fingerprint bytes and keys stay here.

use cryptocat_client::{ConnectionState, EngineEvent, MemberView, WarningCode};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerChoice {
    /// The relay built into the app (started on first use): on loopback only, or also
    /// reachable from the local network when `local_network` is set.
    ThisComputer {
        /// Let people on the local network join too (off unless the person opts in).
        #[serde(default)]
        local_network: bool,
    },
    /// A server address: `xmpp://host[:port]`, `ws(s)://host[:port]/xmpp-websocket` or
    /// `http(s)://host[:port]/http-bind` (an invite link pasted here is read as one).
    Url {
        /// The address as typed.
        url: String,
        /// A key pin (`sha256/…`) the server's key must match; none (or blank): the
        /// system's certificate authorities decide.
        #[serde(default)]
        pin: Option<String>,
    },
    /// An invite link (`cryptocat://join?v=1&…`): its servers, domain and pins; the
    /// request's room must be the link's.
    Invite {
        /// The link as given.
        link: String,
    },
}

/// The `join` command's argument.
#[derive(Debug, Clone, Deserialize, Serialize, TS)]
pub struct JoinRequest {
    /// Room name as typed.
    pub room: String,
    /// Nickname as typed.
    pub nick: String,
    /// Where.
    pub server: ServerChoice,
}

/// What `join` returns once we are in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Joined {
    /// The room name (lower-cased): the key for every other command.
    pub room: String,
    /// Our nickname.
    pub nick: String,
    /// Our fingerprint, readable form.
    pub fingerprint: String,
}

/// A failed command: a stable snake_case code for the UI to translate, and an English
/// sentence (no user data in either). Every code is in [`ERROR_CODES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CommandError {
    /// Stable code: one of [`ERROR_CODES`]. For a server that could not be reached, the
    /// reason (`wrong_server`, `certificate_refused`, `connection_refused`, ...) rather
    /// than the plain `unreachable`.
    pub code: String,
    /// English sentence (for `invalid_invite`, what is wrong with the link).
    pub message: String,
    /// The pin of the key a refused server showed (`wrong_server`, `certificate_refused`):
    /// public, for the person to compare.
    #[serde(default)]
    pub seen_key: Option<String>,
    /// The condition a refusing server gave (`registration_refused`, `login_refused`,
    /// `join_failed`): an XMPP condition name such as `conflict`, at most
    /// [`MAX_DETAIL`] characters.
    #[serde(default)]
    pub detail: Option<String>,
}

/// The longest [`CommandError::detail`] passed on (a condition name is short; a server
/// is not trusted to keep it so).
pub const MAX_DETAIL: usize = 64;

/// Every [`CommandError::code`] a command can return; the UI has a sentence for each
/// (`ui/tests/strings.test.ts` fails when one lacks it).
pub const ERROR_CODES: &[&str] = &[
    // Join requests (commands.rs) and StartError::code().
    "invalid_room",
    "invalid_nickname",
    "invalid_server",
    "invalid_pin",
    "invalid_invite",
    "unreachable",
    "join_failed",
    "join_timeout",
    "room_setup",
    "already_joined",
    "not_joined",
    "relay_failed",
    "relay_in_use",
    "relay_key_in_use",
    "relay_key_failed",
    // StartError::reason(): why a server could not be reached.
    "wrong_server",
    "certificate_refused",
    "name_not_found",
    "connection_refused",
    "timed_out",
    "unknown_domain",
    "registration_refused",
    "login_refused",
    "tls_config",
    "invalid_domain",
    // EngineError::code().
    "closed",
    "unknown_nickname",
    "ambiguous_nickname",
    "offline",
    "empty_text",
    "text_too_long",
    "no_session",
    "verification",
    "room",
    // secrets.rs and links.rs.
    "keyring_unavailable",
    "keyring_failed",
    "keyring_corrupt",
    "invalid_link",
    "open_failed",
    // prefs.rs.
    "prefs_failed",
];

/// Every code of an `EngineEvent::Error`: the UI has a sentence for
/// each too (a test reads the engine's sources for them).
pub const EVENT_ERROR_CODES: &[&str] = &["rejoin_failed", "offline"];

impl CommandError {
    /// From a code and a sentence.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            seen_key: None,
            detail: None,
        }
    }
}

impl From<cryptocat_client::EngineError> for CommandError {
    fn from(e: cryptocat_client::EngineError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<cryptocat_client::StartError> for CommandError {
    /// The reason when the server could not be reached (so the UI can say which), else
    /// the code; with the key a refused server showed.
    fn from(e: cryptocat_client::StartError) -> Self {
        Self {
            code: e.reason().unwrap_or(e.code()).to_owned(),
            message: e.to_string(),
            seen_key: e.seen_key().map(|pin| pin.to_string()),
            detail: e
                .server_condition()
                .map(|c| c.chars().take(MAX_DETAIL).collect()),
        }
    }
}

impl From<cryptocat_client::InviteError> for CommandError {
    fn from(e: cryptocat_client::InviteError) -> Self {
        Self::new("invalid_invite", e.to_string())
    }
}

/// An invite link, read for the join screen: what it leads to and how the server is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct InviteView {
    /// The link, as this app writes it (what a join request carries).
    pub link: String,
    /// The room name (lower-cased).
    pub room: String,
    /// The servers' host names, in the order tried, each once.
    pub hosts: Vec<String>,
    /// The key pins (`sha256/…`) the server must show one of; empty: the system's
    /// certificate authorities check it.
    pub pins: Vec<String>,
    /// Every server is on this computer (loopback).
    pub this_computer: bool,
}

impl From<&cryptocat_client::Invite> for InviteView {
    fn from(invite: &cryptocat_client::Invite) -> Self {
        Self {
            link: invite.to_link(),
            room: invite.room.clone(),
            hosts: hosts(&invite.access),
            pins: invite.access.pins.iter().map(ToString::to_string).collect(),
            this_computer: invite.access.servers.iter().all(|s| s.is_loopback()),
        }
    }
}

/// The host names of an access's servers, in order, each once.
pub fn hosts(access: &cryptocat_client::Access) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for server in &access.servers {
        if !hosts.contains(&server.host) {
            hosts.push(server.host.clone());
        }
    }
    hosts
}

/// A link opened from outside (a clicked `cryptocat://` link, or one given at launch), as
/// the window takes it: read, or refused with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpenedLink {
    /// A usable invite.
    Invite {
        /// What it leads to.
        invite: InviteView,
    },
    /// Not a usable invite (`invalid_invite`, with what is wrong).
    Invalid {
        /// Why.
        error: CommandError,
    },
}

/// A way into a room, as the invite panel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    /// The built-in server, from this computer only.
    ThisComputer,
    /// The built-in server, from the local network.
    LocalNetwork,
    /// The server the room is on (another server).
    ServerInUse,
}

/// One invite link of the panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct InviteLink {
    /// Who can use it.
    pub way: Way,
    /// The link.
    pub link: String,
    /// `cryptocat join "LINK" --nick NICK`, for a terminal (`NICK` is a placeholder).
    pub join_command: String,
    /// The servers' host names.
    pub hosts: Vec<String>,
    /// Carries the server's key pin.
    pub pinned: bool,
}

/// The invite panel of a room: one link per way in. No secret: addresses and public key
/// pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoomInvites {
    /// The links, this computer's first.
    pub links: Vec<InviteLink>,
    /// The room is on the built-in server.
    pub built_in: bool,
    /// The built-in server also listens on the local network (with no `local_network`
    /// link, no network address was found).
    pub local_network: bool,
}

/// A member, for display: the engine's view (`Member` in TypeScript; its fingerprint bytes
/// stay out of JSON).
pub type Member = MemberView;

/// What the `engine` Tauri event carries: which room, what happened. The event is the
/// engine's own, serialized as the CLI's JSON lines are (`cryptocat_client::EngineEvent`:
/// one mapping of events for both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct RoomEvent {
    /// The room (as `Joined::room`).
    pub room: String,
    /// The event.
    pub event: EngineEvent,
}

/// The name of the Tauri event carrying [`RoomEvent`]s.
pub const ENGINE_EVENT: &str = "engine";

/// The name of the Tauri event that says an invite link was opened from outside (no
/// payload: the window takes it with the `take_opened_link` command).
pub const OPENED_LINK_EVENT: &str = "opened_link";

/// The TypeScript declarations of every IPC type, as one module.
pub fn bindings() -> String {
    let decls = [
        ServerChoice::decl(),
        JoinRequest::decl(),
        Joined::decl(),
        CommandError::decl(),
        MemberView::decl(),
        ConnectionState::decl(),
        WarningCode::decl(),
        EngineEvent::decl(),
        RoomEvent::decl(),
        crate::settings::Language::decl(),
        crate::settings::Settings::decl(),
        crate::prefs::Remembered::decl(),
        crate::notify::OpenChat::decl(),
        InviteView::decl(),
        OpenedLink::decl(),
        Way::decl(),
        InviteLink::decl(),
        RoomInvites::decl(),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/dto.rs by `cargo test -p cryptocat-desktop export_bindings`\n\
         // (with UPDATE_BINDINGS=1). Do not edit by hand.\n\n",
    );
    out.push_str(&format!(
        "/** The Tauri event carrying `RoomEvent`s. */\nexport const ENGINE_EVENT = {ENGINE_EVENT:?};\n"
    ));
    out.push_str(&format!(
        "/** The Tauri event carrying an `OpenChat` (a notification was clicked). */\nexport const OPEN_CHAT_EVENT = {:?};\n",
        crate::notify::OPEN_CHAT_EVENT
    ));
    out.push_str(&format!(
        "/** The Tauri event saying an invite link was opened from outside. */\nexport const OPENED_LINK_EVENT = {OPENED_LINK_EVENT:?};\n"
    ));
    out.push_str(&format!(
        "/** The Tauri event asking the window to confirm quitting (closed while in a room, no tray). */\nexport const CLOSE_REQUESTED_EVENT = {:?};\n",
        crate::tray::CLOSE_REQUESTED_EVENT
    ));
    out.push_str(&format!(
        "/** Every `CommandError` code (each has a sentence in strings.ts). */\nexport const ERROR_CODES = {ERROR_CODES:?} as const;\n"
    ));
    let warning_codes: Vec<&str> = cryptocat_client::WarningCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    out.push_str(&format!(
        "/** Every code of a `warning` engine event (each has a sentence in the catalogues). */\nexport const WARNING_CODES = {warning_codes:?} as const;\n"
    ));
    out.push_str(&format!(
        "/** Every code of an `error` engine event (each has a sentence in strings.ts). */\nexport const EVENT_ERROR_CODES = {EVENT_ERROR_CODES:?} as const;\n"
    ));
    for d in decls {
        out.push('\n');
        out.push_str("export ");
        out.push_str(&d);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The committed `ui/src/lib/bindings/index.ts` equals a fresh export; with
    /// `UPDATE_BINDINGS=1` it is rewritten instead.
    #[test]
    fn export_bindings() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ui/src/lib/bindings/index.ts");
        let fresh = bindings();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/lib/bindings/index.ts is stale: run \
             UPDATE_BINDINGS=1 cargo test -p cryptocat-desktop export_bindings and commit it"
        );
    }

    #[test]
    fn events_serialize_as_the_bindings_say() {
        let e = RoomEvent {
            room: "lobby".into(),
            event: EngineEvent::Confirmation {
                id: "m1".into(),
                confirmed: 1,
                of: 2,
            },
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"room": "lobby", "event": {"type": "confirmation", "id": "m1", "confirmed": 1, "of": 2}})
        );
        let c: ServerChoice = serde_json::from_str(r#"{"kind":"this_computer"}"#).unwrap();
        assert_eq!(
            c,
            ServerChoice::ThisComputer {
                local_network: false
            }
        );
        let c: ServerChoice = serde_json::from_str(r#"{"kind":"url","url":"xmpp://x"}"#).unwrap();
        assert_eq!(
            c,
            ServerChoice::Url {
                url: "xmpp://x".into(),
                pin: None
            }
        );
        let c: ServerChoice =
            serde_json::from_str(r#"{"kind":"invite","link":"cryptocat://join?v=1"}"#).unwrap();
        assert_eq!(
            c,
            ServerChoice::Invite {
                link: "cryptocat://join?v=1".into()
            }
        );
    }

    /// A link as the desktop hands it over (through the `url` crate of the deep-link
    /// plugin) reads as the link written; the view names the hosts once and the pin.
    #[test]
    fn invite_view_of_a_link() {
        let pin = format!("sha256/{}", "A".repeat(43));
        let link = format!(
            "cryptocat://join?v=1&server=xmpp://127.0.0.1:5222&server=xmpp://localhost:5224\
             &server=xmpp://127.0.0.1:5223&domain=localhost&pin={pin}&room=Garden"
        );
        let through_url = url::Url::parse(&link).unwrap();
        let invite = cryptocat_client::Invite::parse(through_url.as_str()).unwrap();
        let view = InviteView::from(&invite);
        assert_eq!(view.room, "garden");
        assert_eq!(view.hosts, ["127.0.0.1", "localhost"]);
        assert_eq!(view.pins, [pin]);
        assert!(view.this_computer);
        assert_eq!(
            cryptocat_client::Invite::parse(&view.link).unwrap(),
            invite,
            "the view's link is the same invite"
        );
        let bad = CommandError::from(
            cryptocat_client::Invite::parse("cryptocat://join?v=2&room=x").unwrap_err(),
        );
        assert_eq!(bad.code, "invalid_invite");
        assert!(bad.message.contains("version 2"), "{}", bad.message);
        assert_eq!(
            serde_json::to_value(OpenedLink::Invalid { error: bad }).unwrap()["kind"],
            "invalid"
        );
    }

    /// Every code the sources hand to `CommandError::new` is listed in `ERROR_CODES`
    /// (whose sentences the UI's tests check).
    #[test]
    fn every_error_code_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for part in text.split("CommandError::new(\"").skip(1) {
                found.push(part.split('"').next().unwrap().to_owned());
            }
        }
        assert!(found.len() > 5, "{found:?}");
        for code in found {
            assert!(
                ERROR_CODES.contains(&code.as_str()),
                "{code} is not in ERROR_CODES"
            );
        }
        for e in [
            cryptocat_client::StartError::InvalidRoom,
            cryptocat_client::StartError::NoServer,
            cryptocat_client::StartError::JoinTimeout,
        ] {
            assert!(ERROR_CODES.contains(&CommandError::from(e).code.as_str()));
        }
        for e in [
            cryptocat_client::EngineError::Closed,
            cryptocat_client::EngineError::Offline,
            cryptocat_client::EngineError::EmptyText,
        ] {
            assert!(ERROR_CODES.contains(&CommandError::from(e).code.as_str()));
        }
    }

    /// Every code the engine puts in an `Error` event is listed in `EVENT_ERROR_CODES`.
    #[test]
    fn every_event_error_code_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/client/src");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for part in text.split("EngineEvent::Error {").skip(1) {
                let code = part.split("code: \"").nth(1).unwrap();
                found.push(code.split('"').next().unwrap().to_owned());
            }
        }
        assert!(found.len() >= 2, "{found:?}");
        for code in &found {
            assert!(
                EVENT_ERROR_CODES.contains(&code.as_str()),
                "{code} is not in EVENT_ERROR_CODES"
            );
        }
        for code in EVENT_ERROR_CODES {
            assert!(found.iter().any(|c| c == code), "{code} is never sent");
        }
    }

    /// A refusing server's condition reaches the UI, bounded; other errors carry none.
    #[test]
    fn a_refusal_carries_the_server_condition() {
        let e = CommandError::from(cryptocat_client::StartError::JoinFailed {
            condition: "registration-required".into(),
        });
        assert_eq!(e.code, "join_failed");
        assert_eq!(e.detail.as_deref(), Some("registration-required"));
        let long = CommandError::from(cryptocat_client::StartError::JoinFailed {
            condition: "x".repeat(500),
        });
        assert_eq!(long.detail.map(|d| d.len()), Some(MAX_DETAIL));
        assert_eq!(
            CommandError::from(cryptocat_client::StartError::JoinTimeout).detail,
            None
        );
    }

    #[test]
    fn members_carry_no_fingerprint_bytes() {
        let view = MemberView {
            nick: "bob".into(),
            fingerprint: "ab".repeat(20),
            fingerprint_bytes: [7; 32],
            verified: false,
            safety_number: "12345".into(),
            safety_qr: vec![1, 2, 3],
            in_epoch: true,
        };
        let v = serde_json::to_value(&view).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "fingerprint",
                "in_epoch",
                "nick",
                "safety_number",
                "safety_qr",
                "verified"
            ]
        );
        let joined = serde_json::to_value(EngineEvent::MemberJoined { member: view }).unwrap();
        assert!(joined.get("fingerprint_bytes").is_none(), "{joined}");
        assert_eq!(joined["type"], "member_joined");
    }
}
