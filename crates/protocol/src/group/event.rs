//! What a [`super::Room`] hands out and refuses: transmits, events, alarms and errors.
//! None of the error types carries user data; events do (they are for display).

use super::epoch::GroupReceiveError;
use super::wire::{EpochTag, MAX_ADDRESS_BYTES, MAX_NICKNAME_BYTES};
use crate::dake::DakeError;
use crate::fingerprint::Fingerprint;
use crate::session::{ReceiveError, VerifyError};
use crate::smp::SmpEvent;
use crate::wire::DecodeError;

/// Where a payload goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Broadcast to the room (an XMPP groupchat message).
    Room,
    /// A private message to one occupant.
    Member(String),
}

/// A payload to send. The bytes are ciphertext or public handshake data.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub to: Destination,
    /// What: an encoded [`Message`](crate::message::Message) (private) or
    /// [`GroupMessage`](super::wire::GroupMessage) (room).
    pub payload: Vec<u8>,
}

impl core::fmt::Debug for Transmit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let to = match self.to {
            Destination::Room => "room",
            Destination::Member(_) => "member",
        };
        f.debug_struct("Transmit")
            .field("to", &to)
            .field("bytes", &self.payload.len())
            .finish()
    }
}

/// Names one group message: its epoch, its sender's roster position, its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Epoch tag.
    pub epoch: EpochTag,
    /// Sender's position in the epoch roster.
    pub sender: u16,
    /// Index in the sender's chain.
    pub index: u32,
}

impl core::fmt::Display for MessageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.epoch.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{}-{}", self.sender, self.index)
    }
}

/// Something the people in the room should be told about: every variant means the server
/// or a member misbehaved, or a member stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// `reported_by` knows `member` under another nickname than we do: `member` told
    /// different people different names (or `reported_by` lies about it).
    NicknameMismatch {
        /// The member whose nickname differs.
        member: String,
        /// Who reported the other nickname.
        reported_by: String,
    },
    /// `reported_by` sees another identity key for `member`: the server is showing
    /// different keys to different people.
    RosterSplit {
        /// The member with two keys.
        member: String,
        /// Who sees the other key.
        reported_by: String,
    },
    /// `reported_by` holds a different message from `sender` at `index` than we do: the
    /// sender equivocated (or `reported_by` lies about it).
    Equivocation {
        /// The sender.
        sender: String,
        /// The index.
        index: u32,
        /// Who holds the other message.
        reported_by: String,
    },
    /// A member acknowledged a message of ours with a hash we never sent.
    FalseAcknowledgement {
        /// Who.
        reported_by: String,
    },
    /// A message's link to the sender's previous message does not match.
    ChainBroken {
        /// The sender.
        sender: String,
        /// The index whose link is wrong.
        index: u32,
    },
    /// A message claiming to come from `claimed_sender` failed its origin MAC: a forgery
    /// by another member or an injection.
    ForgedOrigin {
        /// Who it claimed to be from.
        claimed_sender: String,
    },
    /// These members never sent their keys for the epoch; they are left out of the next.
    AttestationTimeout {
        /// Who is missing.
        missing: Vec<String>,
    },
    /// `reported_by` sees `member` in the room, but the server does not show it to us (or
    /// shows it to us under no key): the server presents different rosters.
    HiddenMember {
        /// The member we do not see.
        member: String,
        /// Who sees it.
        reported_by: String,
    },
    /// A message from `sender` passed its origin MAC (only the sender could make it) but
    /// did not decrypt or parse: the sender's client is broken or hostile.
    Garbled {
        /// The sender.
        sender: String,
    },
    /// A handshake with this member did not finish in time; it is left out.
    HandshakeTimeout {
        /// Who.
        member: String,
    },
    /// Our message was not confirmed by everyone in time (withheld by the server?).
    Unconfirmed {
        /// The message.
        id: MessageId,
        /// Who has not confirmed it.
        missing: Vec<String>,
    },
    /// Someone's message is known to exist (others acknowledged it or later ones arrived)
    /// but never reached us (withheld?).
    Missing {
        /// The sender.
        sender: String,
        /// The first index we lack.
        index: u32,
    },
    /// The member's identity key changed since we last had a session.
    KeyChanged {
        /// Who.
        member: String,
    },
    /// Two members use the same nickname.
    NicknameTaken {
        /// The nickname.
        nickname: String,
        /// Their addresses.
        members: Vec<String>,
    },
    /// The member's occupant name is not derived from its key; it is left out.
    UnboundOccupantName {
        /// Who.
        member: String,
    },
    /// The member's session was made for another room; it is left out.
    RoomMismatch {
        /// Who.
        member: String,
    },
}

/// What happened in the room. Events carry user data (nicknames, texts, addresses): show
/// them, never log them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A member completed its handshake and told us its nickname.
    MemberJoined {
        /// Occupant address.
        address: String,
        /// Nickname.
        nickname: String,
        /// Identity fingerprint.
        fingerprint: Fingerprint,
    },
    /// A member left.
    MemberLeft {
        /// Occupant address.
        address: String,
        /// Nickname, if it was known.
        nickname: Option<String>,
    },
    /// A new epoch is attested by everyone and usable.
    EpochReady {
        /// Epoch counter.
        counter: u64,
        /// Members including us.
        members: usize,
    },
    /// One of our queued texts went out under this id.
    Sent {
        /// The id returned by [`Room::send_text`](super::Room::send_text).
        local_id: u64,
        /// The message id.
        id: MessageId,
    },
    /// A group message.
    Message {
        /// Its id.
        id: MessageId,
        /// Sender address.
        from: String,
        /// Sender nickname.
        nickname: String,
        /// The text.
        text: String,
    },
    /// A private (one-to-one) message.
    PrivateMessage {
        /// Sender address.
        from: String,
        /// Sender nickname.
        nickname: String,
        /// The text.
        text: String,
    },
    /// Confirmation progress of one of our messages.
    Confirmation {
        /// The message.
        id: MessageId,
        /// How many other members confirmed it.
        confirmed: usize,
        /// Of how many.
        of: usize,
    },
    /// Question-and-answer verification with a member.
    Verification {
        /// The member.
        member: String,
        /// What happened.
        event: SmpEvent,
    },
    /// Something is wrong.
    Alarm(Alarm),
}

/// A call the room refused (API misuse or local limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The nickname is empty, too long, or has control characters.
    #[error("nickname must be 1 to {MAX_NICKNAME_BYTES} bytes without control characters")]
    BadNickname,
    /// The room name or address is empty or too long.
    #[error("room name or address must be 1 to {MAX_ADDRESS_BYTES} bytes")]
    BadAddress,
    /// Our own occupant address is not bound to our key.
    #[error("our occupant name must be derived from our identity key")]
    UnboundOwnAddress,
    /// The text is too long.
    #[error("message text is {len} bytes, above the limit of {max}")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No established session with that member.
    #[error("no established session with that member")]
    NoSession,
    /// We already left.
    #[error("already left the room")]
    Left,
    /// Verification could not start or continue.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Why an incoming payload was dropped. None of these carry user data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncomingError {
    /// Not a valid message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// From an occupant we do not know (or ourselves).
    #[error("payload from an unknown occupant")]
    UnknownSender,
    /// A group message sent privately (a pairwise message sent to the room fails to
    /// decode as a group message instead).
    #[error("payload arrived on the wrong channel")]
    WrongChannel,
    /// A handshake message that does not fit the handshake state.
    #[error("unexpected handshake message")]
    UnexpectedHandshake,
    /// The handshake failed.
    #[error(transparent)]
    Dake(#[from] DakeError),
    /// A pairwise data message was refused.
    #[error(transparent)]
    Pairwise(#[from] ReceiveError),
    /// A group message was refused.
    #[error(transparent)]
    Group(#[from] GroupReceiveError),
    /// The group message's sender position does not match the occupant it came from.
    #[error("group message sender does not match its origin")]
    SenderMismatch,
    /// An epoch message that is malformed or does not list us and its sender correctly.
    #[error("invalid epoch key message")]
    BadEpochKey,
    /// A pairwise content that makes no sense here (e.g. a profile for another room).
    #[error("unexpected content on a pairwise session")]
    UnexpectedContent,
    /// A pairwise data message from a member with no session, while we wait for no Auth-I
    /// from it: nothing could ever decrypt it, so it is not kept.
    #[error("data message from a member with no session and no handshake waiting for it")]
    NoSession,
    /// An Identity message not answered: we answered another from the same member less
    /// than a quarter of the handshake timeout ago (an honest initiator restarts no faster
    /// than every half timeout).
    #[error("handshake restarted too soon after the last one; ignored")]
    HandshakeThrottled,
}
