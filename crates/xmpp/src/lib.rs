//! `cryptocat-xmpp`: the client transport. It gets a Cryptocat client onto an XMPP server
//! and into MUC rooms, and moves opaque payload bytes; it knows nothing of keys or
//! plaintext.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(group_bytes: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use cryptocat_xmpp::{Client, Config, Event, ServerUrl, TrustConfig};
//! // Or ws(s)://host/xmpp-websocket, or http(s)://host/http-bind (BOSH).
//! let mut config = Config::new(ServerUrl::parse("xmpp://localhost:5222")?);
//! config.trust = TrustConfig::system_and_file("relay-cert.pem".as_ref())?;
//! let (handle, mut events) = Client::connect(config).await?; // registers a random account
//! handle.join("room", "occupant-name")?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::Joined { .. } => { handle.send_groupchat("room", &group_bytes)?; }
//!         Event::GroupPayload { bytes, .. } => { /* GroupMessage::decode(&bytes) */ }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - [`url`]: `xmpp://host:port` (TCP + STARTTLS), `ws(s)://…/xmpp-websocket`,
//!   `http(s)://…/http-bind` (BOSH). Parse errors name the problem, not the address.
//! - [`tls`]: rustls (ring) with the system roots (rustls-native-certs) plus optional
//!   certificates from a PEM file (`--ca-cert`), or only a given certificate (tests).
//! - [`transport`]: the [`ElementStream`] trait, "an XML element stream over some
//!   framing" (open/restart the stream and get features, send an element, receive the next
//!   one, close), and the TCP + STARTTLS connector. TLS is never skipped on TCP: a server
//!   without STARTTLS is refused. Closing a TCP stream sends `</stream:stream>` and reads
//!   up to the server's own for at most 500 ms (RFC 6120 section 4.4) before the TLS
//!   shutdown: a socket dropped with data unread is reset, and the server could lose the
//!   last stanzas sent.
//! - [`websocket`]: RFC 7395 over tokio-tungstenite (subprotocol `xmpp`, one element per
//!   frame, `<open/>`/`<close/>`; closing waits up to 500 ms for the server's `<close/>`,
//!   as ejabberd drops frames it has not handled when the WebSocket closes); `wss://` runs
//!   our rustls configuration under it. Each frame is fed to the same limited parser
//!   under a synthetic stream root, so a frame that is not exactly one element is
//!   refused.
//! - [`bosh`]: XEP-0124/XEP-0206 on hyper 1's HTTP/1.1 client over our own TCP or rustls
//!   connections (`https://` uses the same [`TrustConfig`]). A driver task per session
//!   keeps one long poll outstanding and sends outgoing elements on a second request
//!   (never more than the server's `requests`), processes responses in `rid` order,
//!   paces requests with a token bucket (8/s, burst 20: below what our relay and others
//!   call overactivity) while queued elements batch, restarts the stream with
//!   `xmpp:restart='true'` after SASL, resends a request with the same `rid` after a
//!   network error, timeout or HTTP 5xx (so a cut HTTP connection loses nothing and the
//!   session goes on), and ends with a typed [`BoshError`] on a `terminate` body or HTTP
//!   4xx. Requests are numbered as they are written and written one at a time, each once
//!   the one before is on the wire and, while that one is unanswered, 20 ms after it
//!   ([`BoshConfig::request_gap`]), so that a server gets the rids in order (ejabberd
//!   loses a request that overtakes the one before). Response bodies are bounded in bytes
//!   and elements and parsed with the shared limited parser ([`bosh::parse_body`]).
//!   `close` sends `type='terminate'` once, after every earlier request, and waits (at
//!   most 2 s) for its answer.
//! - [`xml`]: the parser for what the server sends (rxml's lexer, which refuses DTDs and
//!   entities, plus minidom's tree builder), with stanza-size and depth limits, and escaping
//!   for everything we write.
//! - [`session`]: the `X-CRYPTOCAT-KEY` key challenge (`docs/key-challenge.md`) when
//!   [`Config::identity`] is set and the server offers it (signed by
//!   `cryptocat_protocol::keyauth`, the key never leaves that crate; the TLS exporter of
//!   the stream is the channel binding, [`ElementStream::channel_binding`]); otherwise
//!   XEP-0077 in-band registration, SASL SCRAM-SHA-256 (RFC 5802/7677; the
//!   server signature is checked in constant time, iteration counts are bounded); resource
//!   binding. Random accounts as Cryptocat made them: 16 random bytes as hex for the
//!   username, 32 random bytes for the password, from the OS RNG.
//! - [`client`]: one tokio task per connection owns the stream and the room table; the
//!   [`ClientHandle`] sends it commands, an [`Events`] channel (bounded: a slow consumer
//!   slows reading from the server) carries [`Event`]s. After a dropped connection it
//!   reconnects with exponential back-off and jitter ([`Backoff`]), logs in again (if the
//!   server forgot an account we generated, e.g. after a restart, it registers a new one),
//!   and re-joins every room under the same nickname; [`Event::Disconnected`] /
//!   [`Event::Reconnecting`] / [`Event::Connected`] / [`Event::Joined`] tell the engine.
//!   Where the server offers XEP-0198, it first tries to resume the session instead
//!   ([`Event::Resumed`]: same JID, still in every room, nothing lost).
//! - [`sm`]: XEP-0198 stream management, enabled after binding when offered: both sides
//!   count stanzas, `<r/>` is answered, an `<r/>` follows each payload we send, and every
//!   stanza stays queued (at most [`sm::MAX_UNACKED`]) until the server's `<a h=…/>`
//!   covers it. On reconnection the client logs in and sends `<resume previd h/>` before
//!   binding; on `<resumed/>` it sends again what the server had not acknowledged (the
//!   server does the same) and no re-join is needed; on `<failed/>` (or a forgotten
//!   account) it binds a new resource, reports the unacknowledged payloads as
//!   [`Event::NotSent`] and re-joins as before.
//!
//! # Why our own small client core rather than tokio-xmpp
//!
//! tokio-xmpp 6 would give STARTTLS with a custom `ServerConnector`, SCRAM and binding.
//! We did not take it because (1) its stream layer is an `AsyncRead + AsyncWrite` XML
//! document, and WebSocket (one element per frame, `<open/>` instead of a stream header)
//! and BOSH (request/response `<body/>` wrappers) do not fit under it, while we need all
//! three behind one interface (the field notes confirm it has neither); (2) in-band registration and, later, the key-challenge SASL
//! mechanism need raw-element flows before authentication, which tokio-xmpp only allows
//! by re-implementing the connection in a `StanzaStream` closure anyway; (3) its
//! reconnection does not know our rooms, which we must re-join. What remains is small:
//! a ~250-line TCP connector, a ~200-line WebSocket connector, a ~900-line BOSH
//! connector (there is no maintained Rust BOSH client), ~300 lines of
//! registration/SCRAM/bind, and the room logic we would have written regardless. The XML lexing is the same rxml/minidom tokio-xmpp
//! uses, so the relay, the client and the third-party test share a parser family.
//!
//! # Not in this slice
//!
//! - Without XEP-0198 on the server (and over BOSH, whose session survives broken HTTP
//!   connections by itself), a reconnection makes a new session and re-joins; messages in
//!   flight are reported as [`Event::NotSent`] or lost, so the engine's outbox resends what
//!   the server did not acknowledge (our own room payloads come back as an echo, which
//!   serves as the acknowledgement).
//! - SCRAM-SHA-256-PLUS (channel binding for SCRAM; the key challenge has it).
//! - Re-joining after a reconnection uses the same nickname; if the server still holds
//!   the old session's occupant (a half-open connection it has not noticed yet), the
//!   `conflict` is retried [`client::MAX_REJOIN_TRIES`] times with growing delays before
//!   [`Event::JoinFailed`]. With XEP-0198 resumption (our relay over TCP) no re-join
//!   happens: the resumption takes the session over from the half-open connection.
//!
//! # Invariants
//!
//! - Network input never panics: `unwrap`/`expect`/`panic`/indexing are denied; parse
//!   failures end the connection with a typed [`TransportError`].
//! - Error `Display` strings and `tracing` output carry no JIDs, room names, nicknames,
//!   passwords or payloads; [`Credentials`] has an opaque `Debug`. [`Event`]s do carry user
//!   data: they are for the engine, never for logs.
//! - No plaintext path: we send only `<payload xmlns="urn:xmpp:cryptocat:1">` messages; an
//!   incoming `<body>` without a payload is dropped and reported as
//!   [`Event::PlaintextDropped`], never surfaced as text.
//! - Incoming payloads are decoded with `cryptocat_protocol::wire::decode_base64`, which
//!   bounds their size before decoding.

pub mod bosh;
pub mod client;
pub mod room_config;
pub mod room_key;
pub mod session;
pub mod sm;
pub mod tls;
pub mod transport;
pub mod websocket;
pub mod xml;

/// Server addresses (from `cryptocat-link`, shared with invite links).
pub use cryptocat_link::url;
pub use cryptocat_link::{Access, Invite, InviteError, Pin};

pub use bosh::{BoshConfig, BoshError};
pub use client::{
    Backoff, Client, ClientError, ClientHandle, Config, ConnectError, DisconnectReason, Event,
    Events, MessageId, ServerInUse,
};
pub use session::{AuthError, Credentials, SessionError};
pub use tls::{AcceptedKey, CertificateReason, Refusal, TlsConfigError, TrustConfig};
pub use transport::{ElementStream, TlsFailure, TransportError};
pub use url::{ServerUrl, Transport, UrlError};
