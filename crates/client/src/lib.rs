//! `cryptocat-client`: the client engine. It ties the protocol (`cryptocat-protocol`'s
//! [`Room`](cryptocat_protocol::group::Room)) to the transport (`cryptocat-xmpp`) once,
//! for the command-line client and the desktop app.
//!
//! # The seed flow
//!
//! [`Engine::start`] takes what a person typed, a room name and a nickname
//! ([`EngineConfig`]), and:
//! 1. checks both ([`check_room_name`], [`check_nickname`]) before touching the network;
//! 2. creates fresh keys for the session ([`Identity`](cryptocat_protocol::identity::Identity)),
//!    unless the desktop app passes one back from the keyring;
//! 3. connects and logs in: the transport registers a random account in-band and logs in
//!    with SCRAM (or proves the key where the server offers the key challenge);
//! 4. joins the MUC room under the occupant name derived from our key
//!    ([`occupant_name`](cryptocat_protocol::group::occupant_name)), never the nickname;
//! 5. starts a pairwise key exchange with every member present; each carries the
//!    nicknames, encrypted; then the group epoch is formed and attested by everyone.
//!
//! Then everything is an [`EngineEvent`]: members joining with nickname and fingerprint,
//! messages, per-message confirmation ("confirmed by c of n-1"), verification results,
//! warnings, connection state. The [`EngineHandle`] sends group and private texts, runs
//! the secret question, marks members verified, lists members, and leaves.
//!
//! # No plaintext path
//!
//! A text goes out only through [`Room`](cryptocat_protocol::group::Room): group texts
//! under the attested epoch's keys, private texts over an established pairwise session
//! (without one, [`EngineError::Room`] with `NoSession`). An incoming plain `<body>` is
//! dropped by the transport and surfaces as a [`WarningCode::PlaintextDropped`] warning.
//!
//! # Reliability
//!
//! - Group payloads stay in an outbox until the server echoes them back (the echo is the
//!   server's acceptance). After a reconnection the ones not echoed are sent again, byte
//!   for byte: members who already have one refuse the copy as a replay, so nothing shows
//!   twice, and members who missed it still hold the old epoch's keys for a grace period.
//! - After a reconnection everyone saw us leave and come back, so every pairwise session
//!   restarts: the engine forgets them and meets every occupant again, and a new epoch
//!   forms. Texts typed while offline wait, and go out once the members who were in the
//!   room before are back (or after [`EngineConfig::rejoin_wait`], with a warning), so
//!   nobody who was there misses them.
//! - Private texts need a live session: while offline they are refused
//!   ([`EngineError::Offline`]) rather than silently lost.
//!
//! # Invariants
//!
//! - One task per room owns the `Room` and the transport handle; the handle only sends it
//!   commands. Nothing here blocks on the network while holding protocol state.
//! - Events carry user data (nicknames, texts, fingerprints): they are for display. Errors
//!   and `tracing` output carry none. Secret answers and texts in commands are zeroized.
//! - Verified fingerprints are compared in constant time.

mod config;
mod engine;
mod error;
mod event;

pub use config::{check_nickname, check_room_name, EngineConfig, VerifiedContact, MAX_ROOM_BYTES};
pub use engine::{Engine, EngineEvents, EngineHandle, MAX_HELD, MAX_OUTBOX, MAX_PRIVATE_OUTBOX};
pub use error::{EngineError, StartError};
pub use event::{ConnectionState, EngineEvent, MemberView, WarningCode};

pub use cryptocat_xmpp::{
    Access, Backoff, Invite, InviteError, Pin, ServerInUse, ServerUrl, TrustConfig,
};
