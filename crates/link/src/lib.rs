//! `cryptocat-link`: what people copy and paste to reach a server.
//!
//! - [`url`]: server addresses, `xmpp://host:port` (TCP with STARTTLS),
//!   `ws(s)://host/xmpp-websocket` and `http(s)://host/http-bind` (BOSH).
//! - [`pin`]: key pins, `sha256/…`, the SHA-256 of a server's SubjectPublicKeyInfo.
//! - [`invite`]: invite links, `cryptocat://join?v=1&…` (`docs/invite.md`): a room, the
//!   servers to try in order, the XMPP domain and room service when they are not the
//!   defaults, and pins.
//! - [`room`]: the room-name rule that the engine and links share.
//!
//! Everything here is pure: no IO, no logging. Parsers check every limit before keeping
//! anything and never panic (`fuzz/fuzz_targets/invite_link.rs`); their errors name what
//! is wrong and never repeat the input, which may be private (a room name).

pub mod invite;
pub mod pin;
pub mod room;
pub mod url;

pub use invite::{Access, Invite, InviteError};
pub use pin::{Pin, PinError};
pub use room::{room_name, MAX_ROOM_BYTES};
pub use url::{ServerUrl, Transport, UrlError};
