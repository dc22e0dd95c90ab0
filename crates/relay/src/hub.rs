//! The shared, sans-IO server state: accounts, bound sessions, rooms, per-address
//! counters, and the routing of stanzas between sessions.
//!
//! Every method takes the current time as an argument and returns what should be written
//! where as [`Delivery`] values; nothing here touches a socket or a clock. The tokio shell
//! keeps one `Hub` behind a mutex. The rooms are the room service of [`crate::rooms`],
//! attached here to the relay's own sessions.
//!
//! Invariants: nothing about message content is kept; a relayed message is rebuilt from
//! its checked payload.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jid::{BareJid, FullJid};

use crate::address::AddressKey;
use crate::config::Limits;
use crate::rooms::{message_error, relayed, Joiner, RoomLimits, Rooms, Routed};
use crate::scram::Credentials;
use crate::stanza::{IqStanza, MessageKind, MessageStanza, PresenceStanza};

pub(crate) use crate::rooms::ErrorReply;
pub use crate::rooms::{NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_OWNER, NS_MUC_USER};

/// How long failed authentications from an address count towards its back-off.
const AUTH_FAILURE_MEMORY: Duration = Duration::from_secs(300);

/// Identifies one connection's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Serialised stanza for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Recipient.
    pub to: SessionId,
    /// The stanza.
    pub xml: String,
}

/// Why [`Hub::admit`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The client's address (IPv6: its /64) has `connections_per_ip` open.
    #[error("too many connections from your address")]
    PerAddress,
    /// The server has `connections` open.
    #[error("too many connections")]
    Total,
}

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The username is taken (`conflict`).
    #[error("username taken")]
    Conflict,
    /// Too many registrations from this address (`resource-constraint`).
    #[error("registration rate limit")]
    RateLimited,
    /// Username or password unacceptable (`not-acceptable`).
    #[error("username or password not acceptable")]
    NotAcceptable,
}

#[derive(Debug, Default)]
struct AddressState {
    connections: usize,
    registrations: VecDeque<Instant>,
    recent_auth_failures: u32,
    last_auth_failure: Option<Instant>,
}

#[derive(Debug)]
struct Session {
    jid: FullJid,
    /// Authenticated with `X-CRYPTOCAT-KEY`.
    key_bound: bool,
}

/// Locks shared state. A panic while the lock was held cannot leave the hub half-updated
/// in a way that matters more than refusing every later connection would, so a poisoned
/// lock is taken over rather than propagated.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Normalises an account username with the JID localpart rules; `None` if unusable.
pub fn normalize_username(domain: &str, raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > 256 || raw.contains(['@', '/']) {
        return None;
    }
    let bare = BareJid::new(&format!("{raw}@{domain}")).ok()?;
    bare.node().map(|n| n.as_str().to_owned())
}

/// The state shared by all connections.
#[derive(Debug)]
pub struct Hub {
    domain: String,
    limits: Limits,
    accounts: HashMap<String, Credentials>,
    sessions: HashMap<SessionId, Session>,
    /// Bound full JID (as text) to session.
    by_jid: HashMap<String, SessionId>,
    rooms: Rooms<SessionId>,
    /// Per-address counters, IPv6 by /64 ([`AddressKey`]).
    addresses: HashMap<AddressKey, AddressState>,
    /// Streams admitted and not yet disconnected.
    open: usize,
    next_session: u64,
}

impl Hub {
    /// An empty hub for `domain`.
    pub fn new(domain: &str, limits: Limits) -> Self {
        Self {
            domain: domain.to_owned(),
            rooms: Rooms::new(&format!("conference.{domain}"), RoomLimits::of(&limits)),
            limits,
            accounts: HashMap::new(),
            sessions: HashMap::new(),
            by_jid: HashMap::new(),
            addresses: HashMap::new(),
            open: 0,
            next_session: 1,
        }
    }

    /// Makes room joins of accounts not bound to a key (SCRAM accounts) fail.
    #[must_use]
    pub fn with_require_key_bound(mut self, require: bool) -> Self {
        self.rooms.set_require_key_bound(require);
        self
    }

    /// The server's domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The MUC service's domain.
    pub fn muc_domain(&self) -> &str {
        self.rooms.muc_domain()
    }

    /// Number of registered accounts (for tests and metrics; no names).
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Number of rooms that exist (for tests and metrics; no names).
    pub fn room_count(&self) -> usize {
        self.rooms.room_count()
    }

    /// Whether a room exists.
    pub fn room_exists(&self, room: &str) -> bool {
        self.rooms.room_exists(room)
    }

    /// Admits a new connection from `ip`, or refuses it when its address (IPv6: its /64)
    /// or the whole server has too many.
    pub fn connect(&mut self, ip: IpAddr, now: Instant) -> Option<SessionId> {
        self.admit(ip, now).ok()
    }

    /// [`Self::connect`], saying why a connection is refused.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<SessionId, Refused> {
        if self.next_session % 256 == 0 {
            self.prune(now);
        }
        if self.open >= self.limits.connections {
            return Err(Refused::Total);
        }
        let state = self.addresses.entry(AddressKey::of(ip)).or_default();
        if state.connections >= self.limits.connections_per_ip {
            return Err(Refused::PerAddress);
        }
        state.connections += 1;
        self.open += 1;
        let id = SessionId(self.next_session);
        self.next_session += 1;
        Ok(id)
    }

    /// Forgets per-address counters that no longer limit anything, so the table does not
    /// grow with every address ever seen.
    pub fn prune(&mut self, now: Instant) {
        let window = Duration::from_secs(self.limits.registration_window_secs);
        self.addresses.retain(|_, s| {
            s.registrations
                .retain(|t| now.saturating_duration_since(*t) < window);
            let failing = s
                .last_auth_failure
                .is_some_and(|t| now.saturating_duration_since(t) < AUTH_FAILURE_MEMORY);
            s.connections > 0 || !s.registrations.is_empty() || failing
        });
    }

    /// Streams admitted and not yet disconnected (TCP, WebSocket, BOSH, detached).
    pub fn session_count(&self) -> usize {
        self.open
    }

    /// Number of addresses with counters (for tests).
    pub fn tracked_addresses(&self) -> usize {
        self.addresses.len()
    }

    /// A connection ended: leaves its rooms and unbinds it. Returns the presences to send.
    pub fn disconnect(&mut self, ip: IpAddr, id: SessionId) -> Vec<Delivery> {
        let mut out = Vec::new();
        if let Some(session) = self.sessions.remove(&id) {
            self.by_jid.remove(session.jid.as_str());
            out = Self::deliveries(self.rooms.leave_all(&id));
        }
        self.open = self.open.saturating_sub(1);
        let key = AddressKey::of(ip);
        if let Some(state) = self.addresses.get_mut(&key) {
            state.connections = state.connections.saturating_sub(1);
            if state.connections == 0
                && state.registrations.is_empty()
                && state.recent_auth_failures == 0
            {
                self.addresses.remove(&key);
            }
        }
        out
    }

    /// Whether a registration from `ip` is allowed now; records it if so.
    pub fn admit_registration(&mut self, ip: IpAddr, now: Instant) -> bool {
        let window = Duration::from_secs(self.limits.registration_window_secs);
        let max = self.limits.registrations_per_ip as usize;
        let state = self.addresses.entry(AddressKey::of(ip)).or_default();
        while let Some(first) = state.registrations.front() {
            if now.saturating_duration_since(*first) >= window {
                state.registrations.pop_front();
            } else {
                break;
            }
        }
        if state.registrations.len() >= max {
            return false;
        }
        state.registrations.push_back(now);
        true
    }

    /// Whether a username is free.
    pub fn username_free(&self, username: &str) -> bool {
        !self.accounts.contains_key(username)
    }

    /// Adds an account (the credentials were derived outside the lock).
    pub fn add_account(
        &mut self,
        username: String,
        credentials: Credentials,
    ) -> Result<(), RegisterError> {
        if self.accounts.contains_key(&username) {
            return Err(RegisterError::Conflict);
        }
        self.accounts.insert(username, credentials);
        Ok(())
    }

    /// The stored credentials of an account.
    pub fn credentials(&self, username: &str) -> Option<Credentials> {
        self.accounts.get(username).cloned()
    }

    /// Records a failed authentication and returns how long to wait before answering.
    pub fn auth_failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        let base = self.limits.auth_failure_delay_ms;
        let state = self.addresses.entry(AddressKey::of(ip)).or_default();
        if let Some(last) = state.last_auth_failure {
            if now.saturating_duration_since(last) > AUTH_FAILURE_MEMORY {
                state.recent_auth_failures = 0;
            }
        }
        state.recent_auth_failures = state.recent_auth_failures.saturating_add(1);
        state.last_auth_failure = Some(now);
        let factor = 1u64 << state.recent_auth_failures.saturating_sub(1).min(5);
        Duration::from_millis(base.saturating_mul(factor))
    }

    /// Binds an authenticated session to a resource (the requested one if free, else a
    /// fresh one) and returns its full JID.
    pub fn bind(
        &mut self,
        id: SessionId,
        username: &str,
        requested: Option<&str>,
        fresh: &str,
        key_bound: bool,
    ) -> Option<FullJid> {
        let bare = BareJid::new(&format!("{username}@{}", self.domain)).ok()?;
        let jid = requested
            .and_then(|r| bare.with_resource_str(r).ok())
            .filter(|j| !self.by_jid.contains_key(j.as_str()))
            .or_else(|| bare.with_resource_str(fresh).ok())?;
        if self.by_jid.contains_key(jid.as_str()) {
            return None;
        }
        self.by_jid.insert(jid.as_str().to_owned(), id);
        self.sessions.insert(
            id,
            Session {
                jid: jid.clone(),
                key_bound,
            },
        );
        Some(jid)
    }

    fn deliveries(routed: Vec<Routed<SessionId>>) -> Vec<Delivery> {
        routed
            .into_iter()
            .map(|r| Delivery {
                to: r.to,
                xml: r.xml,
            })
            .collect()
    }

    /// Handles presence from a bound session (presence to the room service; anything
    /// else is not relayed: there are no rosters).
    pub fn presence(&mut self, id: SessionId, p: &PresenceStanza) -> Vec<Delivery> {
        let Some(session) = self.sessions.get(&id) else {
            return Vec::new();
        };
        let joiner = Joiner {
            key: &id,
            jid: &session.jid,
            key_bound: session.key_bound,
        };
        Self::deliveries(self.rooms.presence(joiner, p))
    }

    /// Handles a message from a bound session; the policy was checked while parsing.
    pub fn message(&mut self, id: SessionId, m: &MessageStanza) -> Vec<Delivery> {
        let mut out = Vec::new();
        let Some(from) = self.sessions.get(&id).map(|s| s.jid.clone()) else {
            return out;
        };
        if m.kind == MessageKind::Error {
            return out; // never answer or relay an error
        }
        let error = |kind, condition, text: &str| Delivery {
            to: id,
            xml: message_error(m, &from, kind, condition, text),
        };
        let payload = match &m.payload {
            Ok(p) => p,
            Err(v) => {
                tracing::debug!(session = id.0, reason = %v, "message refused by policy");
                out.push(error("modify", "policy-violation", &v.to_string()));
                return out;
            }
        };
        let Some(to) = &m.to else {
            out.push(error("modify", "bad-request", "a recipient is required"));
            return out;
        };
        if let Some((room, nick)) = self.rooms.target(to) {
            return Self::deliveries(self.rooms.message(&id, &from, m, payload, room, nick));
        }
        if m.kind != MessageKind::Chat {
            out.push(error("modify", "bad-request", "groupchat goes to a room"));
            return out;
        }
        if to.domain().as_str() != self.domain || to.node().is_none() {
            out.push(error("cancel", "service-unavailable", "no such recipient"));
            return out;
        }
        let targets: Vec<(SessionId, String)> = match to.resource() {
            Some(_) => self
                .by_jid
                .get(to.as_str())
                .map(|s| (*s, to.to_string()))
                .into_iter()
                .collect(),
            None => self
                .sessions
                .iter()
                .filter(|(_, s)| s.jid.to_bare() == to.to_bare())
                .map(|(sid, s)| (*sid, s.jid.to_string()))
                .collect(),
        };
        if targets.is_empty() {
            out.push(error(
                "cancel",
                "service-unavailable",
                "recipient not online",
            ));
        }
        for (sid, jid) in targets {
            out.push(Delivery {
                to: sid,
                xml: relayed(m, payload, from.as_str(), &jid, "chat", false),
            });
        }
        out
    }

    /// Handles an iq addressed to the MUC service or a room. Returns the reply.
    pub fn muc_iq(&self, from: &FullJid, iq: &IqStanza) -> Option<String> {
        self.rooms.iq(from.as_str(), iq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_counters_are_pruned_when_idle() {
        let limits = Limits {
            registration_window_secs: 10,
            ..Limits::default()
        };
        let mut hub = Hub::new("localhost", limits);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let id = hub.connect(a, t0).unwrap();
        assert!(hub.admit_registration(b, t0));
        hub.auth_failed(c, t0);
        hub.prune(t0);
        assert_eq!(hub.tracked_addresses(), 3);
        hub.prune(t0 + Duration::from_secs(11));
        assert_eq!(hub.tracked_addresses(), 2, "b's registration expired");
        hub.prune(t0 + AUTH_FAILURE_MEMORY + Duration::from_secs(1));
        assert_eq!(
            hub.tracked_addresses(),
            1,
            "only a's open connection remains"
        );
        hub.disconnect(a, id);
        assert_eq!(hub.tracked_addresses(), 0);
    }

    #[test]
    fn every_per_address_limit_counts_an_ipv6_64_as_one_address() {
        let limits = Limits {
            connections_per_ip: 3,
            registrations_per_ip: 2,
            auth_failure_delay_ms: 100,
            ..Limits::default()
        };
        let mut hub = Hub::new("localhost", limits);
        let t = Instant::now();
        let host = |i: u16| IpAddr::from([0x2001, 0xdb8, 7, 7, i, 0, 0, i]);
        // Connections: three addresses of one /64 fill its budget; a fourth is refused.
        let ids: Vec<SessionId> = (1..=3).map(|i| hub.admit(host(i), t).unwrap()).collect();
        assert_eq!(hub.admit(host(4), t), Err(Refused::PerAddress));
        // Another /64 has its own.
        let other: IpAddr = "2001:db8:7:8::1".parse().unwrap();
        let o = hub.admit(other, t).unwrap();
        // Freed by any address of the /64.
        hub.disconnect(host(9), ids[0]);
        assert!(hub.admit(host(5), t).is_ok());
        // Registrations and the authentication back-off are shared too.
        assert!(hub.admit_registration(host(10), t));
        assert!(hub.admit_registration(host(11), t));
        assert!(!hub.admit_registration(host(12), t));
        assert!(hub.admit_registration(other, t));
        assert_eq!(hub.auth_failed(host(13), t), Duration::from_millis(100));
        assert_eq!(hub.auth_failed(host(14), t), Duration::from_millis(200));
        assert_eq!(hub.auth_failed(other, t), Duration::from_millis(100));
        hub.disconnect(other, o);
    }

    #[test]
    fn ipv4_mapped_ipv6_shares_the_ipv4_budget() {
        let limits = Limits {
            connections_per_ip: 2,
            ..Limits::default()
        };
        let mut hub = Hub::new("localhost", limits);
        let t = Instant::now();
        let v4: IpAddr = "192.0.2.5".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.5".parse().unwrap();
        let a = hub.admit(v4, t).unwrap();
        let b = hub.admit(mapped, t).unwrap();
        assert_eq!(hub.admit(v4, t), Err(Refused::PerAddress));
        assert_eq!(hub.admit(mapped, t), Err(Refused::PerAddress));
        hub.disconnect(mapped, a);
        hub.disconnect(v4, b);
        assert_eq!(hub.tracked_addresses(), 0);
    }

    #[test]
    fn the_whole_server_has_a_connection_cap() {
        let limits = Limits {
            connections: 5,
            ..Limits::default()
        };
        let mut hub = Hub::new("localhost", limits);
        let t = Instant::now();
        let ids: Vec<SessionId> = (1..=5u8)
            .map(|i| hub.admit(IpAddr::from([192, 0, 2, i]), t).unwrap())
            .collect();
        assert_eq!(hub.session_count(), 5);
        // A fresh address is refused: the cap is the server's, not the address's.
        assert_eq!(
            hub.admit(IpAddr::from([198, 51, 100, 1]), t),
            Err(Refused::Total)
        );
        hub.disconnect(IpAddr::from([192, 0, 2, 3]), ids[2]);
        assert!(hub.admit(IpAddr::from([198, 51, 100, 1]), t).is_ok());
    }

    #[test]
    fn auth_failure_delay_doubles_and_is_capped() {
        let limits = Limits {
            auth_failure_delay_ms: 100,
            ..Limits::default()
        };
        let mut hub = Hub::new("localhost", limits);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let t = Instant::now();
        let delays: Vec<u64> = (0..8)
            .map(|_| u64::try_from(hub.auth_failed(ip, t).as_millis()).unwrap())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 3200, 3200]);
        // Forgotten after a quiet period.
        let later = t + AUTH_FAILURE_MEMORY + Duration::from_secs(1);
        assert_eq!(hub.auth_failed(ip, later), Duration::from_millis(100));
    }

    #[test]
    fn usernames_are_normalized_and_validated() {
        assert_eq!(
            normalize_username("localhost", "Alice").as_deref(),
            Some("alice")
        );
        assert_eq!(normalize_username("localhost", "a@b"), None);
        assert_eq!(normalize_username("localhost", "a/b"), None);
        assert_eq!(normalize_username("localhost", ""), None);
    }
}
