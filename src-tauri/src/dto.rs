//! What crosses the IPC boundary, and nothing else. Every type here derives `ts_rs::TS`;
//! `ui/src/lib/bindings/index.ts` is generated from them (see [`bindings`]) and a test
//! fails when the committed file differs from a fresh export.
//!
//! No key material crosses: members carry their readable fingerprint, the pairwise safety
//! number and the bytes of its QR payload; the raw fingerprint bytes and keys stay here.

use cryptocat_client::{ConnectionState, EngineEvent, MemberView};
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
    /// `http(s)://host[:port]/http-bind`.
    Url {
        /// The address as typed.
        url: String,
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
/// sentence (no user data in either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CommandError {
    /// Stable code (`invalid_room`, `invalid_nickname`, `invalid_server`, `unreachable`,
    /// `join_failed`, `join_timeout`, `already_joined`, `not_joined`, `relay_failed`, and
    /// the engine's codes such as `no_session`, `offline`, `empty_text`).
    pub code: String,
    /// English sentence.
    pub message: String,
}

impl CommandError {
    /// From a code and a sentence.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl From<cryptocat_client::EngineError> for CommandError {
    fn from(e: cryptocat_client::EngineError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<cryptocat_client::StartError> for CommandError {
    fn from(e: cryptocat_client::StartError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// A member, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Member {
    /// Nickname.
    pub nick: String,
    /// Readable identity fingerprint.
    pub fingerprint: String,
    /// Verified (marked, or the secret question succeeded).
    pub verified: bool,
    /// Our pairwise safety number with this member.
    pub safety_number: String,
    /// The safety number's QR payload, to render as a QR code.
    pub safety_qr: Vec<u8>,
    /// In the current attested epoch.
    pub in_epoch: bool,
}

impl From<&MemberView> for Member {
    fn from(m: &MemberView) -> Self {
        Self {
            nick: m.nick.clone(),
            fingerprint: m.fingerprint.clone(),
            verified: m.verified,
            safety_number: m.safety_number.clone(),
            safety_qr: m.safety_qr.clone(),
            in_epoch: m.in_epoch,
        }
    }
}

/// The connection, as the banner shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Connection {
    /// Connecting for the first time.
    Connecting,
    /// In the room.
    Connected,
    /// Trying again.
    Reconnecting {
        /// 1-based attempt.
        attempt: u32,
        /// Wait before it, in milliseconds.
        #[ts(type = "number")]
        delay_ms: u64,
    },
    /// Gave up or left.
    Offline,
}

impl From<&ConnectionState> for Connection {
    fn from(c: &ConnectionState) -> Self {
        match c {
            ConnectionState::Connecting => Self::Connecting,
            ConnectionState::Connected => Self::Connected,
            ConnectionState::Reconnecting { attempt, delay } => Self::Reconnecting {
                attempt: *attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            },
            ConnectionState::Offline => Self::Offline,
        }
    }
}

/// An engine event, as the webview receives it (`EngineEvent` in TypeScript, where
/// `Event` is the DOM's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(rename = "EngineEvent")]
pub enum Event {
    /// The connection changed.
    Connection {
        /// New state.
        connection: Connection,
    },
    /// We are in the room.
    Joined {
        /// Room name.
        room: String,
        /// Our nickname.
        nick: String,
        /// Our readable fingerprint.
        fingerprint: String,
    },
    /// A member finished its key exchange with us.
    MemberJoined {
        /// The member.
        member: Member,
    },
    /// A member left.
    MemberLeft {
        /// Its nickname.
        nick: String,
    },
    /// New room keys, attested by every member.
    Rekeyed {
        /// Epoch counter.
        #[ts(type = "number")]
        epoch: u64,
        /// Members including us.
        #[ts(type = "number")]
        members: usize,
    },
    /// One of our group texts went out under this id.
    Sent {
        /// What `send` returned.
        #[ts(type = "number")]
        local_id: u64,
        /// Message id (as in `confirmation`).
        id: String,
    },
    /// A text from a member (render as text, never as markup).
    Message {
        /// Message id.
        id: String,
        /// Sender nickname.
        nick: String,
        /// The text.
        text: String,
        /// One-to-one.
        private: bool,
    },
    /// One of our private texts went out.
    PrivateSent {
        /// Recipient.
        to: String,
    },
    /// Confirmation progress of one of our group texts.
    Confirmation {
        /// Message id.
        id: String,
        /// Other members who confirmed it.
        #[ts(type = "number")]
        confirmed: usize,
        /// Of how many.
        #[ts(type = "number")]
        of: usize,
    },
    /// A member asks us a secret question.
    Question {
        /// Who asks.
        nick: String,
        /// The question, if any.
        question: Option<String>,
    },
    /// A member's verification state changed.
    Verification {
        /// The member.
        nick: String,
        /// Verified or not.
        verified: bool,
        /// Marked by hand (`false`: the secret question's result).
        manual: bool,
    },
    /// Something to show loudly.
    Warning {
        /// Stable snake_case code (`key_changed`, `unconfirmed`, ...).
        code: String,
        /// English sentence.
        message: String,
        /// The message concerned (for `unconfirmed`).
        id: Option<String>,
    },
    /// Something failed for good.
    Error {
        /// Stable snake_case code.
        code: String,
        /// English sentence.
        message: String,
    },
    /// We left; the engine stopped.
    Left,
}

impl Event {
    /// The DTO of an engine event; `None` for events this version does not know.
    pub fn from_engine(e: &EngineEvent) -> Option<Self> {
        Some(match e {
            EngineEvent::Connection(c) => Self::Connection {
                connection: c.into(),
            },
            EngineEvent::Joined {
                room,
                nick,
                fingerprint,
            } => Self::Joined {
                room: room.clone(),
                nick: nick.clone(),
                fingerprint: fingerprint.clone(),
            },
            EngineEvent::MemberJoined { member } => Self::MemberJoined {
                member: member.into(),
            },
            EngineEvent::MemberLeft { nick } => Self::MemberLeft { nick: nick.clone() },
            EngineEvent::Rekeyed { epoch, members } => Self::Rekeyed {
                epoch: *epoch,
                members: *members,
            },
            EngineEvent::Sent { local_id, id } => Self::Sent {
                local_id: *local_id,
                id: id.clone(),
            },
            EngineEvent::Message {
                id,
                nick,
                text,
                private,
            } => Self::Message {
                id: id.clone(),
                nick: nick.clone(),
                text: text.clone(),
                private: *private,
            },
            EngineEvent::PrivateSent { to } => Self::PrivateSent { to: to.clone() },
            EngineEvent::Confirmation { id, confirmed, of } => Self::Confirmation {
                id: id.clone(),
                confirmed: *confirmed,
                of: *of,
            },
            EngineEvent::Question { nick, question } => Self::Question {
                nick: nick.clone(),
                question: question.clone(),
            },
            EngineEvent::Verification {
                nick,
                verified,
                manual,
            } => Self::Verification {
                nick: nick.clone(),
                verified: *verified,
                manual: *manual,
            },
            EngineEvent::Warning { code, message, id } => Self::Warning {
                code: code.as_str().to_owned(),
                message: message.clone(),
                id: id.clone(),
            },
            EngineEvent::Error { code, message } => Self::Error {
                code: (*code).to_owned(),
                message: message.clone(),
            },
            EngineEvent::Left => Self::Left,
            _ => return None,
        })
    }
}

/// How someone else reaches the embedded relay: what the room screen shows to share.
/// Nothing secret: addresses, the relay certificate's SHA-256 and where its PEM is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LocalServer {
    /// The relay's XMPP domain (`localhost`).
    pub domain: String,
    /// WebSocket address on this computer: `ws://localhost:PORT/xmpp-websocket` (the
    /// desktop app's "Another server" takes it too).
    pub websocket_url: String,
    /// BOSH address on this computer: `http://localhost:PORT/http-bind`.
    pub bosh_url: String,
    /// The c2s (TCP with STARTTLS) port.
    pub c2s_port: u16,
    /// The command that joins the room from a terminal on this computer (`NICK` is a
    /// placeholder for the other person's nickname).
    pub join_command: String,
    /// Whether the relay also listens on the local network.
    pub local_network: bool,
    /// The address the local network reaches it at, when `local_network` and one was found.
    pub lan_address: Option<String>,
    /// The command for another computer on the local network (TCP with STARTTLS, trusting
    /// a copy of the relay's certificate), when `lan_address` is known.
    pub lan_join_command: Option<String>,
    /// SHA-256 of the relay's (self-signed) certificate, colon-separated hex.
    pub certificate_fingerprint: String,
    /// Where the certificate's PEM is, to copy to the other computer.
    pub certificate_path: String,
}

/// What the `engine` Tauri event carries: which room, what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoomEvent {
    /// The room (as `Joined::room`).
    pub room: String,
    /// The event.
    pub event: Event,
}

/// The name of the Tauri event carrying [`RoomEvent`]s.
pub const ENGINE_EVENT: &str = "engine";

/// The TypeScript declarations of every IPC type, as one module.
pub fn bindings() -> String {
    let decls = [
        ServerChoice::decl(),
        JoinRequest::decl(),
        Joined::decl(),
        CommandError::decl(),
        Member::decl(),
        Connection::decl(),
        Event::decl(),
        RoomEvent::decl(),
        crate::settings::Settings::decl(),
        crate::notify::OpenChat::decl(),
        LocalServer::decl(),
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
            event: Event::Confirmation {
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
                url: "xmpp://x".into()
            }
        );
    }

    #[test]
    fn members_carry_no_fingerprint_bytes() {
        let view = cryptocat_client::MemberView {
            nick: "bob".into(),
            fingerprint: "ab".repeat(20),
            fingerprint_bytes: [7; 32],
            verified: false,
            safety_number: "12345".into(),
            safety_qr: vec![1, 2, 3],
            in_epoch: true,
        };
        let v = serde_json::to_value(Member::from(&view)).unwrap();
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
    }
}
