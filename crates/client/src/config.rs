//! What an engine needs to start, and the checks on what a person typed.

use std::time::Duration;

use cryptocat_protocol::group::wire::MAX_NICKNAME_BYTES;
use cryptocat_protocol::group::RoomConfig;
use cryptocat_protocol::identity::Identity;
use cryptocat_xmpp::{Access, Backoff, ServerUrl, TrustConfig};

use crate::error::StartError;

pub use cryptocat_link::MAX_ROOM_BYTES;

/// A fingerprint a person verified earlier, under the nickname it had then. The desktop
/// app keeps these in the OS keyring so that verification carries across sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedContact {
    /// The nickname it had when verified.
    pub nickname: String,
    /// The identity fingerprint (32 bytes, [`cryptocat_protocol::fingerprint::Fingerprint`]).
    pub fingerprint: [u8; 32],
}

/// Everything [`crate::Engine::start`] needs.
pub struct EngineConfig {
    /// Where the XMPP server is.
    pub server: ServerUrl,
    /// Other addresses of the same server, tried in order after `server`.
    pub fallback_servers: Vec<ServerUrl>,
    /// The XMPP domain, when it differs from the URL's host.
    pub domain: Option<String>,
    /// The room service (MUC), when it is not `conference.<domain>`.
    pub muc_domain: Option<String>,
    /// Which certificates to trust.
    pub trust: TrustConfig,
    /// The room name as typed (checked by [`check_room_name`], lower-cased).
    pub room: String,
    /// The nickname as typed (checked by [`check_nickname`]). Travels only inside the
    /// encrypted key exchange.
    pub nickname: String,
    /// Our identity; `None` creates fresh keys for this session (the default: the seed
    /// flow). The desktop app passes one back from the keyring when the person opted in.
    pub identity: Option<Identity>,
    /// Fingerprints verified in earlier sessions.
    pub verified: Vec<VerifiedContact>,
    /// Timers and policies of the room protocol.
    pub room_config: RoomConfig,
    /// Bound on connecting, TLS and login together.
    pub connect_timeout: Duration,
    /// Bound on joining the room after login.
    pub join_timeout: Duration,
    /// Reconnection after a dropped connection; `None` goes offline at once instead.
    pub reconnect: Option<Backoff>,
    /// After a reconnection, how long texts wait for the members who were in the room
    /// before to come back (so that none of them misses a message sent meanwhile).
    pub rejoin_wait: Duration,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No room name, nickname or key: this may end up in a log.
        f.debug_struct("EngineConfig")
            .field("transport", &self.server.transport)
            .field("identity", &self.identity.as_ref().map(|_| "given"))
            .field("verified", &self.verified.len())
            .field("room_config", &self.room_config)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Defaults for joining `room` on `server` as `nickname`: fresh keys, system roots,
    /// 10 s to connect and 20 s to join, reconnection with the default back-off.
    pub fn new(server: ServerUrl, room: &str, nickname: &str) -> Self {
        Self {
            server,
            fallback_servers: Vec::new(),
            domain: None,
            muc_domain: None,
            trust: TrustConfig::system(),
            room: room.to_owned(),
            nickname: nickname.to_owned(),
            identity: None,
            verified: Vec::new(),
            room_config: RoomConfig::default(),
            connect_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(20),
            reconnect: Some(Backoff::default()),
            rejoin_wait: Duration::from_secs(30),
        }
    }
}

impl EngineConfig {
    /// Joining `room` as `nickname` on the server an invite link (or a server address
    /// with pins) describes: its addresses in order, its domain and room service, and
    /// with pins, trust in exactly those keys (no certificate authority); without pins,
    /// the system's authorities.
    pub fn for_access(access: &Access, room: &str, nickname: &str) -> Result<Self, StartError> {
        let mut servers = access.servers.iter().cloned();
        let server = servers.next().ok_or(StartError::NoServer)?;
        let mut config = Self::new(server, room, nickname);
        config.fallback_servers = servers.collect();
        config.domain = access.domain.clone();
        config.muc_domain = access.muc.clone();
        if !access.pins.is_empty() {
            config.trust = TrustConfig::pinned(access.pins.clone());
        }
        Ok(config)
    }

    /// How to reach the server as configured (for invite links).
    pub fn access(&self) -> Access {
        Access {
            servers: std::iter::once(self.server.clone())
                .chain(self.fallback_servers.iter().cloned())
                .collect(),
            domain: self.domain.clone(),
            muc: self.muc_domain.clone(),
            pins: self.trust.pins.clone(),
        }
    }
}

/// Checks a room name: 1 to [`MAX_ROOM_BYTES`] bytes of letters, digits, `-`, `_` and `.`
/// (no spaces, no `@`, `/` or other characters that mean something in an XMPP address).
/// Returns it lower-cased.
pub fn check_room_name(room: &str) -> Result<String, StartError> {
    cryptocat_link::room_name(room).ok_or(StartError::InvalidRoom)
}

/// Checks a nickname: 1 to 64 bytes, not only spaces, no control characters. Returns it
/// with surrounding spaces removed.
pub fn check_nickname(nick: &str) -> Result<String, StartError> {
    let nick = nick.trim();
    if nick.is_empty() || nick.len() > MAX_NICKNAME_BYTES || nick.chars().any(char::is_control) {
        return Err(StartError::InvalidNickname);
    }
    Ok(nick.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn room_names() {
        assert_eq!(check_room_name("Lobby").unwrap(), "lobby");
        assert_eq!(check_room_name("a-b_c.d").unwrap(), "a-b_c.d");
        for bad in [
            "",
            "a b",
            "a@b",
            "a/b",
            ".a",
            "a.",
            "a\u{0}b",
            &"x".repeat(65),
        ] {
            assert!(check_room_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nicknames() {
        assert_eq!(check_nickname("  Alice ").unwrap(), "Alice");
        assert_eq!(check_nickname("Zoë 🐱").unwrap(), "Zoë 🐱");
        for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
            assert!(check_nickname(bad).is_err(), "{bad:?}");
        }
    }
}
