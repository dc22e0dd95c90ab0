//! `cryptocat-server`: a small, hardened XMPP relay that carries only Cryptocat ciphertext.
//!
//! # Structure
//!
//! The protocol logic is sans-IO; a thin tokio shell moves bytes.
//!
//! - [`xml`]: incremental XML stream parser with limits (stanza size, depth), and the
//!   writer for server output.
//! - [`stanza`]: stanzas parsed once into typed shapes; the plaintext policy.
//! - [`scram`]: SCRAM-SHA-256 server side; accounts keep only salted keys.
//! - [`keyauth`]: the `X-CRYPTOCAT-KEY` mechanism's exchange state (the key challenge;
//!   the cryptography is `cryptocat_protocol::keyauth`).
//! - [`stream`]: one client stream as a state machine (`handle_bytes` →
//!   `poll_output`): STARTTLS, registration, SASL, bind, then routing, and XEP-0198
//!   stream management (the shell in [`server`] parks a broken TCP session for
//!   resumption). WebSocket and BOSH feed the same machine ([`stream::C2s::with_framing`]).
//! - [`framing`]: sans-IO helpers for the HTTP transports (standalone elements, `<open/>`).
//! - [`http`]: the HTTP listener (hyper 1): `/`, WebSocket (RFC 7395) at
//!   `/xmpp-websocket`, BOSH (XEP-0124/0206) at `/http-bind`, and the channel security rule.
//! - [`hub`]: shared state (accounts, sessions, per-address counters) and routing,
//!   returning deliveries instead of writing.
//! - [`component`]: the same room service as an XEP-0114 component of another server
//!   (`cryptocat-server component`): the handshake, the sans-IO core, the reconnecting
//!   shell, the secret file.
//! - [`rooms`]: the room (MUC) service, sans-IO and generic over who its occupants are:
//!   the hub's sessions, or full JIDs behind a host server (the XEP-0114 component).
//! - [`address`]: the unit of every per-address limit (IPv4, or IPv6 /64) and the HTTP
//!   listener's connection counts; `outbox`: each session's capped queue of routed
//!   stanzas; [`retained`]: what the relay holds for clients, read from those counts.
//! - [`tls`], [`server`], [`config`]: certificates (the generated key kept in the state
//!   directory, so the pin survives restarts), the tokio shell (with the clean shutdown),
//!   settings.
//! - [`acme`]: certificates by ACME (HTTP-01, `instant-acme`), renewed in the background
//!   for the same key. [`store`]: the state directory's private files.
//! - [`public`]: the addresses and invite-link prefix the start banner prints.
//!
//! # Invariants
//!
//! - Architecture invariant: nothing about message content is stored or logged. Rooms
//!   keep no history and vanish when empty; accounts live in memory only, as SCRAM salted
//!   keys (never the password).
//! - A `chat` or `groupchat` message is relayed only if its sole content is one
//!   `<payload xmlns="urn:xmpp:cryptocat:1">` whose base64 decodes to a well-formed
//!   envelope; the relayed stanza is rebuilt from that payload. Anything else gets a
//!   `policy-violation` error and reaches nobody.
//! - Network input never panics the process: parse errors close the stream with an RFC
//!   6120 stream error. Limits: stanza size, nesting depth, stanza rate (back-pressure),
//!   connections per address and in total (streams, and HTTP connections from accept),
//!   registrations per address, authentication failures (delay doubling per address,
//!   connection closed after a few); an IPv6 address counts by its /64. Deadlines on
//!   every read (TLS handshake, request head, whole HTTP request, negotiation, idle) and
//!   on writes; outboxes capped in stanzas and bytes, a client that does not read dropped.
//! - `tracing` output carries session numbers and event names only: no JID localparts,
//!   nicknames, room names, passwords or content.

pub mod acme;
pub mod address;
pub mod component;
pub mod config;
pub mod embedded;
pub mod framing;
pub mod http;
mod http_conn;
pub mod hub;
pub mod keyauth;
pub(crate) mod outbox;
pub mod public;
pub mod retained;
pub mod rooms;
pub mod scram;
#[cfg(feature = "scripted")]
pub mod scripted;
pub mod server;
pub mod stanza;
pub mod store;
pub mod stream;
pub mod tls;
pub mod xml;

pub use config::{Config, Limits};
pub use retained::Retained;
pub use server::{Running, Server, StartError};
