//! Errors. None carries a room name, nickname, JID, key or text.

use cryptocat_protocol::group::RoomError;
use cryptocat_xmpp::ConnectError;

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
    /// The server could not be reached or refused us.
    #[error("could not connect to the server: {0}")]
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

impl StartError {
    /// A stable machine-readable code (the CLI's JSON `error` events use it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRoom => "invalid_room",
            Self::InvalidNickname => "invalid_nickname",
            Self::Connect(_) => "unreachable",
            Self::JoinFailed { .. } => "join_failed",
            Self::JoinTimeout => "join_timeout",
            Self::Room(_) => "room_setup",
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
    /// The connection is down: private messages cannot wait (their sessions restart after
    /// the reconnection), so send again once connected.
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
