//! Settings: from the command line or a TOML file (same names, `--c2s` is `c2s = "..."`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::acme::AcmeConfig;

/// Every limit the server enforces. Defaults suit a small public relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest stanza in input bytes; above it the stream is closed with
    /// `<policy-violation/>`.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting below the stream root.
    pub max_depth: usize,
    /// Sustained stanzas per second per connection; above it the server stops reading
    /// from the connection until the budget refills (back-pressure, nothing is dropped).
    pub stanzas_per_second: u32,
    /// Burst allowance for `stanzas_per_second`.
    pub stanza_burst: u32,
    /// Open connections allowed per client address (IPv6: per /64, an IPv4-mapped address
    /// counts as IPv4; as for every per-address limit): TCP streams, WebSocket streams,
    /// BOSH sessions, detached sessions.
    pub connections_per_ip: usize,
    /// Open connections allowed on the whole server, counted as `connections_per_ip`;
    /// above it: `<policy-violation/>` and close (BOSH: `policy-violation`).
    pub connections: usize,
    /// In-band registrations allowed per IP address in `registration_window_secs`.
    pub registrations_per_ip: u32,
    /// The registration rate window.
    pub registration_window_secs: u64,
    /// Failed authentications on one connection before it is closed.
    pub auth_failures_per_connection: u32,
    /// Base delay before answering a failed authentication; doubles with each recent
    /// failure from the same IP address, up to 32 times the base.
    pub auth_failure_delay_ms: u64,
    /// An authenticated connection that sends nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// A write to a client (one stanza on TCP or WebSocket; on the HTTP listener, any
    /// write) that makes no progress for this long drops the connection: a client that
    /// stops reading does not hold its task and buffers for `idle_timeout_secs`.
    pub write_timeout_secs: u64,
    /// A connection must authenticate and bind within this time.
    pub negotiation_timeout_secs: u64,
    /// A TLS handshake (STARTTLS on c2s, HTTPS) must end within this time; the
    /// connection is closed otherwise.
    pub tls_handshake_timeout_secs: u64,
    /// Open connections to the HTTP listener per client address (the TCP peer's; IPv6 by
    /// /64), counted from accept (TLS handshakes, request heads, held BOSH requests,
    /// WebSockets); above it a connection is closed at once. Addresses in
    /// `trusted_proxies` count in `http_connections` only.
    pub http_connections_per_ip: usize,
    /// Open connections to the HTTP listener in total; above it a connection is closed at
    /// once.
    pub http_connections: usize,
    /// An HTTP request head must arrive within this time, counted from when the listener
    /// starts waiting for it (the connection's start, or the end of the previous response).
    pub http_head_timeout_secs: u64,
    /// A whole HTTP request, head and body, must arrive within this time, counted as the
    /// head's; a BOSH body still coming then is answered HTTP 408 and the connection
    /// closed, so a slow sender cannot hold a connection and its body buffer.
    pub http_request_timeout_secs: u64,
    /// Rooms one session may be in at once.
    pub rooms_per_session: usize,
    /// Occupants in one room.
    pub occupants_per_room: usize,
    /// Stanzas queued for one session (routed to it and not yet written; BOSH: waiting
    /// for a response). One more means its client is not reading: the queue is freed at
    /// once and the session ended (its connection dropped).
    pub outbox_stanzas: usize,
    /// Bytes queued for one session, counted as `outbox_stanzas`; also the most a
    /// stream-managed session keeps unacknowledged (XEP-0198: above it
    /// `resource-constraint`). Keep it well above `max_stanza_bytes`.
    pub outbox_bytes: usize,
    /// BOSH sessions open at once on the whole server; above it session creation gets
    /// `<body type='terminate' condition='policy-violation'/>`.
    pub bosh_sessions: usize,
    /// BOSH sessions open at once per client address.
    pub bosh_sessions_per_ip: usize,
    /// Longest `wait` (seconds) a BOSH request may be held; a client asking more gets this.
    pub bosh_max_wait_secs: u64,
    /// A BOSH session with no request held and none received for this long is ended.
    pub bosh_inactivity_secs: u64,
    /// Largest BOSH request body in bytes; above it: HTTP 413 and nothing is processed.
    pub bosh_max_body_bytes: usize,
    /// Sustained HTTP requests per second per BOSH session; above the burst the session is
    /// terminated with `policy-violation`.
    pub bosh_requests_per_second: u32,
    /// Burst allowance for `bosh_requests_per_second`.
    pub bosh_request_burst: u32,
    /// XEP-0198: how long (seconds) a stream-managed session whose TCP connection broke is
    /// kept detached, in its rooms, for the client to resume (`max` in `<enabled/>`).
    /// 0 disables resumption (acknowledgements still work).
    pub sm_resume_secs: u64,
    /// XEP-0198: stanzas sent but not yet acknowledged, per session; above it the stream
    /// ends with `resource-constraint`. The server asks for an acknowledgement (`<r/>`)
    /// every 8 stanzas.
    pub sm_max_unacked: usize,
    /// XEP-0198: detached sessions kept at once on the whole server; above it a broken
    /// connection ends its session as without stream management.
    pub sm_detached_sessions: usize,
    /// `cryptocat-server component` only: every this many seconds each occupant's full
    /// JID is pinged (XEP-0199); an error answer (its session is gone), or none for two
    /// rounds, removes it from its rooms (ejabberd tells the rooms nothing when a client
    /// dies without leaving). 0: no pings.
    pub occupant_ping_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_depth: 16,
            stanzas_per_second: 100,
            stanza_burst: 400,
            connections_per_ip: 64,
            connections: 20_000,
            registrations_per_ip: 20,
            registration_window_secs: 600,
            auth_failures_per_connection: 3,
            auth_failure_delay_ms: 250,
            idle_timeout_secs: 600,
            write_timeout_secs: 30,
            negotiation_timeout_secs: 60,
            tls_handshake_timeout_secs: 10,
            http_connections_per_ip: 256,
            http_connections: 20_000,
            http_head_timeout_secs: 10,
            http_request_timeout_secs: 30,
            rooms_per_session: 32,
            occupants_per_room: cryptocat_protocol::group::wire::MAX_MEMBERS,
            outbox_stanzas: 4096,
            outbox_bytes: 4 * 1024 * 1024,
            bosh_sessions: 10_000,
            bosh_sessions_per_ip: 32,
            bosh_max_wait_secs: 60,
            bosh_inactivity_secs: 60,
            bosh_max_body_bytes: 256 * 1024 + 4096,
            bosh_requests_per_second: 10,
            bosh_request_burst: 40,
            sm_resume_secs: 120,
            sm_max_unacked: 1024,
            sm_detached_sessions: 1000,
            occupant_ping_secs: 60,
        }
    }
}

impl Limits {
    /// [`Self::idle_timeout_secs`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// [`Self::negotiation_timeout_secs`] as a duration.
    pub fn negotiation_timeout(&self) -> Duration {
        Duration::from_secs(self.negotiation_timeout_secs)
    }

    /// [`Self::write_timeout_secs`] as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    /// [`Self::tls_handshake_timeout_secs`] as a duration.
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The XMPP domain; rooms live at `conference.<domain>`.
    pub domain: String,
    /// Client-to-server listener (STARTTLS required).
    pub c2s: SocketAddr,
    /// HTTP listener: BOSH at `/http-bind`, WebSocket at `/xmpp-websocket`.
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Whether the HTTP listener speaks HTTPS. Unset: HTTPS exactly when `tls_cert` and
    /// `tls_key` are given or ACME is on; `true` also serves HTTPS with the generated certificate;
    /// `false` serves plain HTTP even with a certificate (for a reverse proxy).
    #[serde(default)]
    pub http_tls: Option<bool>,
    /// Reverse proxies (besides loopback) whose plain-HTTP requests count as secure and
    /// whose `X-Forwarded-For` names the client address for the per-address limits.
    #[serde(default)]
    pub trusted_proxies: Vec<IpAddr>,
    /// PEM certificate chain; without it a self-signed one is generated.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Where the generated key and certificate are kept across restarts (`DOMAIN.key`,
    /// `0600`, and `DOMAIN.pem`), and with ACME its account and certificates. Default: a
    /// temporary directory, and a new key (a new pin) at every start.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The host name clients use to reach this server, in the addresses and the invite-link
    /// prefix it prints (default: the domain; a loopback listener prints its address).
    #[serde(default)]
    pub public_host: Option<String>,
    /// Get and renew the certificate by ACME (`[acme]` in TOML; see [`crate::acme`]).
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// Room joins only for accounts bound to a key (`X-CRYPTOCAT-KEY`); SCRAM accounts
    /// get `not-allowed`. Default `false`: rooms accept both.
    #[serde(default)]
    pub require_key_bound: bool,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
}

impl Config {
    /// A configuration for `domain` with default limits, listening on `c2s`.
    pub fn new(domain: impl Into<String>, c2s: SocketAddr) -> Self {
        Self {
            domain: domain.into(),
            c2s,
            http: None,
            http_tls: None,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            state_dir: None,
            public_host: None,
            acme: None,
            require_key_bound: false,
            limits: Limits::default(),
        }
    }

    /// Whether the HTTP listener serves HTTPS (see [`Self::http_tls`]): unset, exactly when
    /// the certificate is not self-signed (`tls_cert` or ACME).
    pub fn http_is_tls(&self) -> bool {
        self.http_tls
            .unwrap_or(self.tls_cert.is_some() || self.acme.is_some())
    }

    /// The host name in printed addresses: [`Self::public_host`], or the domain.
    pub fn public_host(&self) -> &str {
        self.public_host.as_deref().unwrap_or(&self.domain)
    }

    /// The MUC service's domain.
    pub fn muc_domain(&self) -> String {
        format!("conference.{}", self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round() {
        let c: Config = toml::from_str(
            "domain = \"example.org\"\nc2s = \"127.0.0.1:5222\"\n[limits]\nmax_stanza_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(c.domain, "example.org");
        assert_eq!(c.limits.max_stanza_bytes, 1000);
        assert_eq!(c.limits.max_depth, 16);
        assert!(
            toml::from_str::<Config>("domain = \"x\"\nc2s = \"127.0.0.1:1\"\nbogus = 1\n").is_err()
        );
        assert!(c.acme.is_none() && !c.http_is_tls());
        assert_eq!(c.public_host(), "example.org");
    }

    /// The example shipped in `deploy/` parses and means what its comments say.
    #[test]
    fn the_deploy_example_parses() {
        let c: Config =
            toml::from_str(include_str!("../../../deploy/cryptocat-server.toml")).unwrap();
        assert_eq!(c.domain, "chat.example.org");
        assert_eq!(c.http.map(|a| a.port()), Some(443));
        assert!(c.http_is_tls());
        let acme = c.acme.as_ref().unwrap();
        assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT);
        assert_eq!(acme.challenge_listen.port(), 80);
        assert_eq!(crate::acme::names(&c), vec!["chat.example.org".to_owned()]);
    }

    #[test]
    fn acme_table_with_defaults() {
        let c: Config = toml::from_str(
            "domain = \"example.org\"\nc2s = \"[::]:5222\"\npublic_host = \"chat.example.org\"\n\
             state_dir = \"/var/lib/cryptocat-server\"\n[acme]\ncontact = \"ops@example.org\"\n",
        )
        .unwrap();
        let acme = c.acme.as_ref().unwrap();
        assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT);
        assert_eq!(acme.contact.as_deref(), Some("ops@example.org"));
        assert_eq!(
            acme.challenge_listen,
            crate::acme::default_challenge_listen()
        );
        assert!(c.http_is_tls());
        assert_eq!(c.public_host(), "chat.example.org");
        assert_eq!(
            crate::acme::names(&c),
            vec!["example.org".to_owned(), "chat.example.org".to_owned()]
        );
        assert!(toml::from_str::<Config>(
            "domain = \"x\"\nc2s = \"127.0.0.1:1\"\n[acme]\nbogus = 1\n"
        )
        .is_err());
    }
}
