//! What the engine reports. Events carry user data (nicknames, texts): show them, never
//! log them.
//!
//! The one mapping of events to JSON: their `Serialize` is the CLI's JSON line contract
//! (`cryptocat --json`, one object per event, `type` first) and the desktop app's IPC
//! payload; with the `ts` feature they also derive their TypeScript twins (ts-rs), which
//! the desktop app's bindings export.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// A duration as whole milliseconds (the `delay_ms` of the JSON).
fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The connection to the server, as a person should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "Connection"))]
pub enum ConnectionState {
    /// Connecting for the first time.
    Connecting,
    /// Logged in and in the room.
    Connected,
    /// The connection dropped; trying again.
    Reconnecting {
        /// 1-based attempt.
        attempt: u32,
        /// Wait before it (`delay_ms` in JSON).
        #[serde(rename = "delay_ms", serialize_with = "as_millis")]
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        delay: Duration,
    },
    /// Gave up (or left): nothing more will be sent or received.
    Offline,
}

impl ConnectionState {
    /// A stable lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting { .. } => "reconnecting",
            Self::Offline => "offline",
        }
    }
}

/// A member of the room, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "Member"))]
pub struct MemberView {
    /// Nickname (from the encrypted key exchange).
    pub nick: String,
    /// Identity fingerprint, readable form (40 hex digits in groups).
    pub fingerprint: String,
    /// Fingerprint bytes (what [`crate::VerifiedContact`] stores; not in JSON).
    #[serde(skip)]
    pub fingerprint_bytes: [u8; 32],
    /// Verified by the person (marked, or the secret question succeeded), now or in an
    /// earlier session.
    pub verified: bool,
    /// Our pairwise safety number with this member (60 digits in groups of 5).
    pub safety_number: String,
    /// The safety number's QR payload.
    pub safety_qr: Vec<u8>,
    /// In the current attested epoch (can read what we send now).
    pub in_epoch: bool,
}

/// Why the engine warns. Codes are stable: the CLI prints them and scripts match them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub enum WarningCode {
    /// A member's identity key differs from the one it had (in this room, or when it was
    /// verified under this nickname).
    KeyChanged,
    /// Two members claim one nickname.
    NicknameTaken,
    /// A member told different people different nicknames.
    NicknameMismatch,
    /// The server shows different keys for one member to different people.
    RosterSplit,
    /// The server hides a member from us that others see.
    HiddenMember,
    /// A member sent different messages to different people.
    Equivocation,
    /// A message's chain link does not match.
    TranscriptInconsistent,
    /// A message failed its origin check (forged or injected).
    ForgedMessage,
    /// A message from a member could not be decrypted although it passed its origin check.
    Garbled,
    /// One of our messages was not confirmed by everyone in time.
    Unconfirmed,
    /// A message from a member is known to exist but never reached us.
    MissingMessage,
    /// A member did not finish the key exchange or send its keys in time; it is left out.
    MemberUnresponsive,
    /// A member's occupant name is not bound to its key, or its session is for another
    /// room: it is left out.
    MemberRefused,
    /// A message without encryption arrived and was dropped.
    PlaintextDropped,
    /// A payload that was not valid arrived and was dropped.
    InvalidPayload,
    /// The server refused one of our messages.
    MessageRefused,
    /// A secret-question verification was abandoned.
    VerificationAborted,
    /// Texts were held too long for members to come back after a reconnection and went
    /// out to the members present.
    RejoinIncomplete,
    /// The server is a standard XMPP server, not one of ours: it does not refuse plaintext
    /// in rooms, or did not check that we hold our key, or both (said once, after joining;
    /// the end-to-end guarantees are unchanged).
    ServerGuarantees,
}

impl WarningCode {
    /// Every code, for a UI to check that it has a sentence for each.
    pub const ALL: &'static [WarningCode] = &[
        Self::KeyChanged,
        Self::NicknameTaken,
        Self::NicknameMismatch,
        Self::RosterSplit,
        Self::HiddenMember,
        Self::Equivocation,
        Self::TranscriptInconsistent,
        Self::ForgedMessage,
        Self::Garbled,
        Self::Unconfirmed,
        Self::MissingMessage,
        Self::MemberUnresponsive,
        Self::MemberRefused,
        Self::PlaintextDropped,
        Self::InvalidPayload,
        Self::MessageRefused,
        Self::VerificationAborted,
        Self::RejoinIncomplete,
        Self::ServerGuarantees,
    ];

    /// The stable snake_case code.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::KeyChanged => "key_changed",
            Self::NicknameTaken => "nickname_taken",
            Self::NicknameMismatch => "nickname_mismatch",
            Self::RosterSplit => "roster_split",
            Self::HiddenMember => "hidden_member",
            Self::Equivocation => "equivocation",
            Self::TranscriptInconsistent => "transcript_inconsistent",
            Self::ForgedMessage => "forged_message",
            Self::Garbled => "garbled",
            Self::Unconfirmed => "unconfirmed",
            Self::MissingMessage => "missing_message",
            Self::MemberUnresponsive => "member_unresponsive",
            Self::MemberRefused => "member_refused",
            Self::PlaintextDropped => "plaintext_dropped",
            Self::InvalidPayload => "invalid_payload",
            Self::MessageRefused => "message_refused",
            Self::VerificationAborted => "verification_aborted",
            Self::RejoinIncomplete => "rejoin_incomplete",
            Self::ServerGuarantees => "server_guarantees",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub enum EngineEvent {
    /// The connection changed.
    Connection(ConnectionState),
    /// We are in the room (sent once, first).
    Joined {
        /// Room name.
        room: String,
        /// Our nickname.
        nick: String,
        /// Our fingerprint, readable form.
        fingerprint: String,
    },
    /// A member finished its key exchange with us and told us its nickname.
    MemberJoined {
        /// The member (its fields at the event's top level in JSON).
        #[serde(flatten)]
        member: MemberView,
    },
    /// A member left.
    MemberLeft {
        /// Its nickname.
        nick: String,
    },
    /// The room's keys changed and every member attested them.
    Rekeyed {
        /// Epoch counter.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        epoch: u64,
        /// Members including us.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        members: usize,
    },
    /// One of our group texts went out under this id.
    Sent {
        /// What [`crate::EngineHandle::send`] returned.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        local_id: u64,
        /// The message id (as in [`EngineEvent::Confirmation`]).
        id: String,
    },
    /// A message from a member.
    Message {
        /// Message id (group: the protocol's id; private: a local counter `p-N`).
        id: String,
        /// Sender nickname.
        nick: String,
        /// The text (render as text, never as markup).
        text: String,
        /// A one-to-one message.
        private: bool,
    },
    /// One of our private texts went out.
    PrivateSent {
        /// Recipient nickname.
        to: String,
    },
    /// Confirmation progress of one of our group messages.
    Confirmation {
        /// Message id.
        id: String,
        /// How many other members confirmed it.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        confirmed: usize,
        /// Of how many.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        of: usize,
    },
    /// A member asked us a secret question (answer with
    /// [`crate::EngineHandle::answer`]).
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
    /// Something to tell the person loudly.
    Warning {
        /// What kind.
        code: WarningCode,
        /// A readable sentence (may name members by nickname).
        message: String,
        /// The message concerned, for [`WarningCode::Unconfirmed`] (absent from JSON
        /// otherwise).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        id: Option<String>,
        /// The nicknames the warning is about, so that a UI can say it in its own words
        /// (`message` is English): the member concerned first, then, when another member
        /// reported it, that member (`nickname_mismatch`, `roster_split`,
        /// `hidden_member`, `equivocation`); everyone missing for `unconfirmed` and
        /// `member_unresponsive`; the nickname claimed twice for `nickname_taken`; empty
        /// when no member is named.
        who: Vec<String>,
        /// How many members did not come back, for [`WarningCode::RejoinIncomplete`]
        /// (absent from JSON otherwise).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional, type = "number"))]
        count: Option<usize>,
    },
    /// Something failed for good (the room could not be re-joined, the connection was
    /// given up); [`EngineEvent::Connection`] with [`ConnectionState::Offline`] follows.
    Error {
        /// A stable snake_case code.
        code: &'static str,
        /// A readable sentence.
        message: String,
    },
    /// We left the room; the engine stops.
    Left,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` holds every code once: the match below stops compiling when a code is added,
    /// and the positions must then be given in `ALL` too.
    #[test]
    fn all_warning_codes_are_listed() {
        fn position(c: WarningCode) -> usize {
            match c {
                WarningCode::KeyChanged => 0,
                WarningCode::NicknameTaken => 1,
                WarningCode::NicknameMismatch => 2,
                WarningCode::RosterSplit => 3,
                WarningCode::HiddenMember => 4,
                WarningCode::Equivocation => 5,
                WarningCode::TranscriptInconsistent => 6,
                WarningCode::ForgedMessage => 7,
                WarningCode::Garbled => 8,
                WarningCode::Unconfirmed => 9,
                WarningCode::MissingMessage => 10,
                WarningCode::MemberUnresponsive => 11,
                WarningCode::MemberRefused => 12,
                WarningCode::PlaintextDropped => 13,
                WarningCode::InvalidPayload => 14,
                WarningCode::MessageRefused => 15,
                WarningCode::VerificationAborted => 16,
                WarningCode::RejoinIncomplete => 17,
                WarningCode::ServerGuarantees => 18,
            }
        }
        for (i, c) in WarningCode::ALL.iter().enumerate() {
            assert_eq!(position(*c), i, "{}", c.as_str());
        }
        assert_eq!(WarningCode::ALL.len(), 19);
    }
}
