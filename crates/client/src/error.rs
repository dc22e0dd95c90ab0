//! Errors. None carries a room name, nickname, JID, key or text.

use cryptocat_protocol::group::RoomError;
use cryptocat_xmpp::{CertificateReason, ConnectError, SessionError, TlsFailure, TransportError};

/// Why [`crate::Engine::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The room name is not allowed.
    #[error("room name must be 1 to 64 letters, digits, '-', '_' or '.' (no spaces)")]
    InvalidRoom,
    /// The nickname is not allowed.
    #[error("nickname must be 1 to 64 bytes without control characters")]
    InvalidNickname,
    /// No server address was given.
    #[error("no server address was given")]
    NoServer,
    /// The server could not be reached or refused us.
    #[error("could not connect to the server: {err}{hint}", err = .0, hint = connect_hint(.0))]
    Connect(#[from] ConnectError),
    /// The server refused the room.
    #[error("the server refused to let us join the room ({condition})")]
    JoinFailed {
        /// The XMPP error condition.
        condition: String,
    },
    /// The server did not answer the join in time.
    #[error("the server did not confirm joining the room in time")]
    JoinTimeout,
    /// The room protocol refused our parameters.
    #[error("could not set up the room: {0}")]
    Room(#[from] RoomError),
}

/// What a person can do about a connection failure, when there is something.
fn connect_hint(e: &ConnectError) -> &'static str {
    match e {
        ConnectError::Session(SessionError::Transport(TransportError::StreamError {
            condition,
        })) if condition == "host-unknown" => {
            " (the server does not serve that XMPP domain: give the domain it serves with \
             --domain, or use the server's invite link)"
        }
        _ => "",
    }
}

impl StartError {
    /// A stable machine-readable code (the CLI's JSON `error` events use it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRoom => "invalid_room",
            Self::InvalidNickname => "invalid_nickname",
            Self::NoServer => "invalid_server",
            Self::Connect(_) => "unreachable",
            Self::JoinFailed { .. } => "join_failed",
            Self::JoinTimeout => "join_timeout",
            Self::Room(_) => "room_setup",
        }
    }

    /// What went wrong when the server could not be reached ([`Self::code`]
    /// `unreachable`), as a stable code: `wrong_server` (the key is not the pinned one),
    /// `certificate_refused`, `name_not_found`, `connection_refused`, `timed_out`,
    /// `unknown_domain` (the server does not serve that XMPP domain),
    /// `registration_refused`, `login_refused`, `tls_config`, `invalid_domain`, or
    /// `unreachable` for the rest. `None` for the other errors.
    pub fn reason(&self) -> Option<&'static str> {
        let Self::Connect(e) = self else {
            return None;
        };
        Some(match e {
            ConnectError::Tls(_) => "tls_config",
            ConnectError::InvalidDomain => "invalid_domain",
            ConnectError::Timeout => "timed_out",
            ConnectError::Session(session) => match session {
                SessionError::Transport(t) => match t {
                    TransportError::Tls(TlsFailure::Certificate(r))
                        if r.reason == CertificateReason::WrongKey =>
                    {
                        "wrong_server"
                    }
                    TransportError::Tls(TlsFailure::Certificate(_)) => "certificate_refused",
                    TransportError::Resolve => "name_not_found",
                    TransportError::Connect(std::io::ErrorKind::ConnectionRefused) => {
                        "connection_refused"
                    }
                    TransportError::Connect(std::io::ErrorKind::TimedOut) => "timed_out",
                    TransportError::StreamError { condition } if condition == "host-unknown" => {
                        "unknown_domain"
                    }
                    _ => "unreachable",
                },
                SessionError::Registration { .. } | SessionError::RegistrationUnavailable => {
                    "registration_refused"
                }
                SessionError::Auth(_) | SessionError::Bind { .. } => "login_refused",
            },
        })
    }

    /// The error condition the server gave when it refused us (registration, resource
    /// binding, joining the room): an XMPP condition name such as `conflict` or
    /// `not-allowed`, for the person to read or report. `None` for the other errors.
    pub fn server_condition(&self) -> Option<&str> {
        match self {
            Self::JoinFailed { condition }
            | Self::Connect(ConnectError::Session(
                SessionError::Registration { condition } | SessionError::Bind { condition },
            )) => Some(condition),
            _ => None,
        }
    }

    /// The pin of the key a refused server showed, when its certificate was refused (so
    /// that a person can compare it, or pass it as `--pin` after checking).
    pub fn seen_key(&self) -> Option<cryptocat_xmpp::Pin> {
        match self {
            Self::Connect(e) => e.certificate_refusal().and_then(|r| r.seen),
            _ => None,
        }
    }
}

/// Why a request to a running engine failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine stopped (left the room, or gave up reconnecting).
    #[error("not in the room any more")]
    Closed,
    /// Nobody in the room has that nickname.
    #[error("nobody in the room has that nickname")]
    UnknownNickname,
    /// Several members claim that nickname; they must be told apart by fingerprint.
    #[error("several members use that nickname")]
    AmbiguousNickname,
    /// Too many private messages already wait (for the connection, or for a member's new
    /// session after a re-join: [`crate::engine::MAX_PRIVATE_OUTBOX`]); send again later.
    #[error("offline: the private message was not sent")]
    Offline,
    /// The text is empty.
    #[error("empty message")]
    EmptyText,
    /// The room protocol refused the request (text too long, no session yet, ...).
    #[error(transparent)]
    Room(#[from] RoomError),
}

impl EngineError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::UnknownNickname => "unknown_nickname",
            Self::AmbiguousNickname => "ambiguous_nickname",
            Self::EmptyText => "empty_text",
            Self::Offline => "offline",
            Self::Room(RoomError::TextTooLong { .. }) => "text_too_long",
            Self::Room(RoomError::NoSession) => "no_session",
            Self::Room(RoomError::Verify(_)) => "verification",
            Self::Room(_) => "room",
        }
    }
}
