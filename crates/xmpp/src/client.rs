//! The client: a tokio task that owns the connection, takes commands from a
//! [`ClientHandle`] and reports [`Event`]s; it reconnects with back-off, logs in again and
//! re-joins its rooms.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use minidom::Element;
use rand_core::{OsRng, RngCore as _};
use tokio::sync::mpsc;

use crate::bosh::BoshConfig;
use crate::room_config;
use crate::room_key;
use crate::session::{self, stanza_error_condition, Credentials, Login, RoomService, SessionError};
use crate::sm::{self, StreamManagement, NS_SM};
use crate::tls::{AcceptedKey, TlsConfigError, TrustConfig};
use crate::transport::{connect_tcp, ElementStream, TransportError};
use crate::url::{ServerUrl, Transport};
use crate::xml::{escape, ParserLimits};
use cryptocat_link::Pin;

/// The Cryptocat payload namespace.
pub const NS_PAYLOAD: &str = "urn:xmpp:cryptocat:1";
/// MUC namespace.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// MUC user namespace.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// Reconnection policy: exponential back-off between `initial` and `max`, with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The delay before attempt `n` (1-based): `initial * 2^(n-1)`, capped, plus up to 25%
    /// jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(16);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        let jitter_ms = u64::try_from(base.as_millis() / 4).unwrap_or(0);
        let extra = if jitter_ms == 0 {
            0
        } else {
            OsRng.next_u64() % jitter_ms
        };
        base.saturating_add(Duration::from_millis(extra))
    }
}

/// What [`Client::connect`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the server is.
    pub server: ServerUrl,
    /// Other addresses of the same server, tried in order when `server` cannot be reached
    /// (an invite link's later `server` parameters).
    pub fallback_servers: Vec<ServerUrl>,
    /// The XMPP domain (also the TLS name); defaults to the URL's host.
    pub domain: String,
    /// The MUC service; defaults to `conference.<domain>`.
    pub muc_domain: String,
    /// Look for the server's room service (XEP-0030) at the first connection and use it
    /// instead of [`Config::muc_domain`] when found. On by default; off when the room
    /// service was given (an invite's `muc`).
    pub discover_room_service: bool,
    /// Which certificates to trust.
    pub trust: TrustConfig,
    /// An existing account; `None` registers a random one in-band.
    pub credentials: Option<Credentials>,
    /// The session identity: when set and the server offers `X-CRYPTOCAT-KEY`, the client
    /// logs in with the key challenge (account bound to the key, nothing registered) and
    /// `credentials` are not used. The key stays inside `cryptocat-protocol`.
    pub identity: Option<Arc<cryptocat_protocol::identity::Identity>>,
    /// Bound on connecting, TLS and login together.
    pub connect_timeout: Duration,
    /// Reconnection after a dropped connection; `None` ends the client instead.
    pub reconnect: Option<Backoff>,
    /// Parser limits for what the server sends.
    pub limits: ParserLimits,
    /// BOSH settings (used for `http://` and `https://` addresses).
    pub bosh: BoshConfig,
}

impl Config {
    /// Defaults for `server`: domain from the URL's host, system roots, random account,
    /// 10 s connect timeout, reconnection with the default back-off.
    pub fn new(server: ServerUrl) -> Self {
        let domain = server.host.clone();
        Self {
            muc_domain: format!("conference.{domain}"),
            discover_room_service: true,
            domain,
            server,
            fallback_servers: Vec::new(),
            trust: TrustConfig::system(),
            credentials: None,
            identity: None,
            connect_timeout: Duration::from_secs(10),
            reconnect: Some(Backoff::default()),
            limits: ParserLimits::default(),
            bosh: BoshConfig::default(),
        }
    }

    /// Sets the XMPP domain (and the MUC service to `conference.<domain>`).
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self.muc_domain = format!("conference.{}", self.domain);
        self
    }
}

/// Why [`Client::connect`] (or a reconnection) failed. No JIDs, passwords or payloads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The trust configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The domain is not a valid XMPP domain.
    #[error("invalid XMPP domain")]
    InvalidDomain,
    /// Connecting, TLS, registration, login or binding failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The whole attempt took longer than the connect timeout.
    #[error("timed out connecting to the server")]
    Timeout,
}

impl ConnectError {
    /// Whether a server's certificate was refused (wrong pinned key, untrusted, expired...).
    pub fn is_certificate_refusal(&self) -> bool {
        self.certificate_refusal().is_some()
    }

    /// The refusal, when a server's certificate was refused.
    pub fn certificate_refusal(&self) -> Option<&crate::tls::Refusal> {
        match self {
            Self::Session(SessionError::Transport(TransportError::Tls(
                crate::transport::TlsFailure::Certificate(r),
            ))) => Some(r),
            _ => None,
        }
    }
}

impl From<TlsConfigError> for ConnectError {
    fn from(e: TlsConfigError) -> Self {
        Self::Tls(e.to_string())
    }
}

impl From<TransportError> for ConnectError {
    fn from(e: TransportError) -> Self {
        Self::Session(SessionError::Transport(e))
    }
}

/// Misuse of the handle, or a client that has stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The client task has ended (disconnected or gave up).
    #[error("the client is no longer running")]
    Closed,
    /// The room name cannot be a JID localpart.
    #[error("invalid room name")]
    InvalidRoom,
    /// The nickname cannot be a JID resource.
    #[error("invalid nickname")]
    InvalidNick,
    /// The room has not been joined.
    #[error("not in that room")]
    NotInRoom,
    /// The payload is empty or too large.
    #[error("payload of {0} bytes refused")]
    PayloadSize(usize),
}

/// Why the connection went away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// [`ClientHandle::disconnect`] was called (or every handle was dropped).
    #[error("disconnected on request")]
    Requested,
    /// The connection failed or the server closed it.
    #[error("connection lost: {0}")]
    ConnectionLost(TransportError),
    /// Reconnection gave up after its last attempt failed with this.
    #[error("gave up reconnecting: {0}")]
    GaveUp(ConnectError),
}

/// The address a client is connected through, and the key its server showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInUse {
    /// The address (one of [`Config::server`] and [`Config::fallback_servers`]).
    pub url: ServerUrl,
    /// The pin of the server's TLS key (`None` without TLS).
    pub key: Option<Pin>,
    /// How we logged in: with our key (`X-CRYPTOCAT-KEY`, the server checked we hold it)
    /// or SCRAM with a registered account.
    pub login: Login,
    /// The room service in use, and whether it says it relays only Cryptocat payloads.
    pub room_service: RoomService,
}

/// Identifies a message we sent (the stanza `id`), to match a later [`Event::StanzaError`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(pub String);

/// What the client reports. Events carry user data (nicknames, payloads): they are for the
/// engine, never for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Logged in and bound (first connection, and again after each reconnection).
    Connected {
        /// Our full JID.
        jid: String,
    },
    /// We are in the room; `occupants` are the others present (not us).
    Joined {
        /// Room name (localpart).
        room: String,
        /// Other occupants' nicknames.
        occupants: Vec<String>,
    },
    /// Joining failed (`conflict` for a nickname in use, `service-unavailable` when full).
    JoinFailed {
        /// Room name.
        room: String,
        /// Stanza error condition.
        condition: String,
    },
    /// We left the room (our unavailable presence was acknowledged).
    Left {
        /// Room name.
        room: String,
    },
    /// Someone entered a room we are in.
    OccupantJoined {
        /// Room name.
        room: String,
        /// Their nickname.
        nick: String,
    },
    /// Someone left a room we are in.
    OccupantLeft {
        /// Room name.
        room: String,
        /// Their nickname.
        nick: String,
    },
    /// A room payload. The server echoes our own: `from_nick` is then our nickname, which
    /// tells the engine the server accepted it.
    GroupPayload {
        /// Room name.
        room: String,
        /// Sender's nickname.
        from_nick: String,
        /// The decoded payload (a `GroupMessage` envelope, not yet checked).
        bytes: Vec<u8>,
    },
    /// A private payload from an occupant.
    PrivatePayload {
        /// Room name.
        room: String,
        /// Sender's nickname.
        from_nick: String,
        /// The decoded payload (a pairwise `Message`, not yet checked).
        bytes: Vec<u8>,
    },
    /// A payload that was not valid base64 or too large: dropped.
    InvalidPayload {
        /// Sender's address as given by the server.
        from: String,
    },
    /// A message with a plain `<body>` and no payload: dropped, never shown.
    PlaintextDropped {
        /// Sender's address as given by the server.
        from: String,
    },
    /// The server refused a stanza of ours.
    StanzaError {
        /// The refused message's id, when it had one.
        id: Option<MessageId>,
        /// The defined condition (`policy-violation`, `not-acceptable`, ...).
        condition: String,
    },
    /// The server has one of our messages: it acknowledged it (XEP-0198), or, on a
    /// stream without stream management, it was written. A message never gets both this
    /// and [`Event::NotSent`].
    Accepted {
        /// Its id.
        id: MessageId,
    },
    /// A message could not be sent because the connection was down.
    NotSent {
        /// Its id.
        id: MessageId,
    },
    /// The connection went away. With `will_reconnect`, [`Event::Reconnecting`] follows.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// Whether the client will try again.
        will_reconnect: bool,
    },
    /// The connection came back and the server resumed the session (XEP-0198): the same
    /// JID, still in every room, and nothing lost in either direction (what the server had
    /// not acknowledged was sent again). No [`Event::Joined`] follows.
    Resumed {
        /// Our full JID (unchanged).
        jid: String,
    },
    /// Waiting `delay` before reconnection attempt `attempt`.
    Reconnecting {
        /// 1-based attempt number.
        attempt: u32,
        /// Delay before it.
        delay: Duration,
    },
}

enum Command {
    Join { room: String, nick: String },
    Leave { room: String },
    Send { xml: String, id: MessageId },
    Disconnect,
    RetryNow,
}

/// Cheap to clone; commands go to the client task.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    commands: mpsc::UnboundedSender<Command>,
    in_use: Arc<std::sync::Mutex<Option<ServerInUse>>>,
    muc_domain: Arc<str>,
    next_id: Arc<AtomicU64>,
    id_prefix: Arc<str>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Join { .. } => "Join",
            Command::Leave { .. } => "Leave",
            Command::Send { .. } => "Send",
            Command::Disconnect => "Disconnect",
            Command::RetryNow => "RetryNow",
        })
    }
}

/// The receiving end of the client's events. `None` after the final
/// [`Event::Disconnected`].
pub type Events = mpsc::Receiver<Event>;

/// Largest payload accepted for sending (the protocol's message limit).
pub const MAX_PAYLOAD_BYTES: usize = cryptocat_protocol::wire::MAX_MESSAGE_BYTES;

/// A room name as the server knows it: validated and lower-cased (XMPP localparts are
/// case-insensitive; events report this form).
fn room_name(room: &str) -> Result<String, ClientError> {
    if valid_room(room) {
        Ok(room.to_lowercase())
    } else {
        Err(ClientError::InvalidRoom)
    }
}

fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= 1023
        && !room
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"&'/:<>@".contains(c))
}

fn valid_nick(nick: &str) -> bool {
    !nick.is_empty()
        && nick.len() <= 1023
        && nick.trim() == nick
        && !nick.chars().any(char::is_control)
}

impl ClientHandle {
    fn command(&self, c: Command) -> Result<(), ClientError> {
        self.commands.send(c).map_err(|_| ClientError::Closed)
    }

    fn new_id(&self) -> MessageId {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        MessageId(format!("{}-{n}", self.id_prefix))
    }

    /// Joins `room` (a localpart at the MUC service, lower-cased) as `nick`. [`Event::Joined`] or
    /// [`Event::JoinFailed`] follows; after a reconnection the room is joined again.
    pub fn join(&self, room: &str, nick: &str) -> Result<(), ClientError> {
        let room = &room_name(room)?;
        if !valid_nick(nick) {
            return Err(ClientError::InvalidNick);
        }
        self.command(Command::Join {
            room: room.to_owned(),
            nick: nick.to_owned(),
        })
    }

    /// Leaves `room`; [`Event::Left`] follows.
    pub fn leave(&self, room: &str) -> Result<(), ClientError> {
        let room = &room_name(room)?;
        self.command(Command::Leave {
            room: room.to_owned(),
        })
    }

    fn check_payload(payload: &[u8]) -> Result<String, ClientError> {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ClientError::PayloadSize(payload.len()));
        }
        Ok(STANDARD.encode(payload))
    }

    /// Sends a room payload (a `GroupMessage` envelope) as base64 in the payload element.
    pub fn send_groupchat(&self, room: &str, payload: &[u8]) -> Result<MessageId, ClientError> {
        let room = &room_name(room)?;
        let b64 = Self::check_payload(payload)?;
        let id = self.new_id();
        let xml = format!(
            "<message type='groupchat' id='{}' to='{}@{}'><payload xmlns='{NS_PAYLOAD}'>{b64}</payload></message>",
            escape(&id.0),
            escape(room),
            escape(&self.muc_domain)
        );
        self.command(Command::Send {
            xml,
            id: id.clone(),
        })?;
        Ok(id)
    }

    /// Sends a private payload (a pairwise `Message`) to `occupant_nick` through `room`.
    pub fn send_private(
        &self,
        room: &str,
        occupant_nick: &str,
        payload: &[u8],
    ) -> Result<MessageId, ClientError> {
        let room = &room_name(room)?;
        if !valid_nick(occupant_nick) {
            return Err(ClientError::InvalidNick);
        }
        let b64 = Self::check_payload(payload)?;
        let id = self.new_id();
        let xml = format!(
            "<message type='chat' id='{}' to='{}@{}/{}'><payload xmlns='{NS_PAYLOAD}'>{b64}</payload></message>",
            escape(&id.0),
            escape(room),
            escape(&self.muc_domain),
            escape(occupant_nick)
        );
        self.command(Command::Send {
            xml,
            id: id.clone(),
        })?;
        Ok(id)
    }

    /// The address in use (or last used) and the key its server showed.
    pub fn server_in_use(&self) -> Option<ServerInUse> {
        self.in_use.lock().ok().and_then(|s| s.clone())
    }

    /// The room service's domain.
    pub fn muc_domain(&self) -> &str {
        &self.muc_domain
    }

    /// While waiting before a reconnection attempt ([`Event::Reconnecting`]), makes the
    /// attempt at once (the person asked: "Retry now"); the back-off goes on from there if
    /// it fails. Ignored while connected or while an attempt is under way.
    pub fn retry_now(&self) -> Result<(), ClientError> {
        self.command(Command::RetryNow)
    }

    /// Closes the stream; a final [`Event::Disconnected`] with
    /// [`DisconnectReason::Requested`] follows.
    pub fn disconnect(&self) -> Result<(), ClientError> {
        self.command(Command::Disconnect)
    }
}

/// Entry point.
#[derive(Debug)]
pub struct Client;

struct RoomState {
    nick: String,
    joined: bool,
    occupants: BTreeSet<String>,
    /// Automatic re-join attempts after a reconnection (0: a join the engine asked for).
    rejoin_tries: u32,
    /// A re-join refused with `conflict` waits for [`Task::rejoin_due`].
    awaiting_retry: bool,
    /// The server reported more than [`MAX_OCCUPANTS`] (said once in the log).
    over_capacity: bool,
    /// Room key challenges answered since the join was last sent
    /// ([`room_key::MAX_PROOFS_PER_JOIN`]).
    proofs_sent: u8,
}

impl RoomState {
    fn new(nick: String) -> Self {
        Self {
            nick,
            joined: false,
            occupants: BTreeSet::new(),
            rejoin_tries: 0,
            awaiting_retry: false,
            over_capacity: false,
            proofs_sent: 0,
        }
    }
}

/// How often a re-join refused with `conflict` (the server still holds our old occupant,
/// e.g. over a half-open connection) is retried before [`Event::JoinFailed`].
pub const MAX_REJOIN_TRIES: u32 = 8;

/// Most occupants kept per room: twice what the group protocol admits (members who are
/// joining or leaving count too). Presences for more are ignored.
pub const MAX_OCCUPANTS: usize = 2 * cryptocat_protocol::group::wire::MAX_MEMBERS;

/// What one connection attempt needs, kept for reconnections.
struct Connector {
    config: Config,
    /// For TLS addresses; it records the key it accepted in `accepted`.
    tls: Arc<rustls::ClientConfig>,
    /// For `ws://` and `http://` (never used to trust anyone).
    tls_plain: Arc<rustls::ClientConfig>,
    accepted: AcceptedKey,
    /// Index into the addresses of the one that worked last (tried first).
    current: usize,
    in_use: Arc<std::sync::Mutex<Option<ServerInUse>>>,
    credentials: Credentials,
    /// We made the account: if the server forgot it (a restart), register a new one.
    generated: bool,
    registered: bool,
    /// How the last connection logged in.
    login: Option<Login>,
    /// The room service, once discovered (or as configured).
    room_service: Option<RoomService>,
}

/// What a connection attempt ended with.
enum Established {
    /// A new session: bound to `jid`, with stream management when the server has it.
    Bound {
        jid: String,
        sm: Option<StreamManagement>,
    },
    /// The previous session was resumed; the `<resumed/>` element.
    Resumed(Element),
}

/// Which of several failures to report: a refused certificate says most (someone may be
/// in the way), then the first address's error.
fn telling(first: Option<ConnectError>, refused: Option<ConnectError>) -> ConnectError {
    refused.or(first).unwrap_or(ConnectError::Timeout)
}

impl Connector {
    /// Every address, in order.
    fn servers(&self) -> impl Iterator<Item = &ServerUrl> {
        std::iter::once(&self.config.server).chain(&self.config.fallback_servers)
    }

    /// Connects through the address that worked last, then the others in order; logs in,
    /// then resumes with `resume` (a `<resume/>` element) when given and the server
    /// agrees, else binds a new resource and enables stream management. Each address gets
    /// the whole connect timeout.
    async fn attempt(
        &mut self,
        resume: Option<String>,
    ) -> Result<(Box<dyn ElementStream>, Established), ConnectError> {
        let count = self.servers().count();
        let timeout = self.config.connect_timeout;
        let (mut first, mut refused) = (None, None);
        for step in 0..count {
            let index = (self.current + step) % count;
            let Some(url) = self.servers().nth(index).cloned() else {
                break;
            };
            // A pin is checked over TLS only: with pins, a plain address is never used
            // (anything answering there could stand in for the pinned server).
            if !url.is_tls() && !self.config.trust.pins.is_empty() {
                first.get_or_insert(ConnectError::Tls(
                    "a pinned server cannot be reached without TLS".into(),
                ));
                continue;
            }
            self.accepted.clear();
            let result = tokio::time::timeout(timeout, self.attempt_inner(&url, resume.clone()))
                .await
                .map_err(|_| ConnectError::Timeout)
                .and_then(|r| r);
            match result {
                Ok(done) => {
                    self.current = index;
                    let key = if url.is_tls() {
                        self.accepted.get()
                    } else {
                        None
                    };
                    let room_service = self.room_service.clone().unwrap_or(RoomService {
                        domain: self.config.muc_domain.clone(),
                        cryptocat: false,
                        key_proof: false,
                    });
                    if let Ok(mut in_use) = self.in_use.lock() {
                        *in_use = Some(ServerInUse {
                            url,
                            key,
                            login: self.login.clone().unwrap_or(Login::Key),
                            room_service,
                        });
                    }
                    return Ok(done);
                }
                Err(e) => {
                    if count > 1 {
                        tracing::info!(address = index + 1, "address failed: {e}");
                    }
                    if e.is_certificate_refusal() {
                        refused.get_or_insert(e);
                    } else {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        Err(telling(first, refused))
    }

    async fn open(&self, url: &ServerUrl) -> Result<Box<dyn ElementStream>, ConnectError> {
        let c = &self.config;
        let tls = if url.is_tls() {
            Arc::clone(&self.tls)
        } else {
            Arc::clone(&self.tls_plain)
        };
        match url.transport {
            Transport::Tcp => Ok(Box::new(
                connect_tcp(
                    &url.host,
                    url.port,
                    &c.domain,
                    tls,
                    c.limits,
                    c.connect_timeout,
                )
                .await?,
            )),
            Transport::WebSocket { .. } => Ok(Box::new(
                crate::websocket::connect_websocket(
                    url,
                    &c.domain,
                    tls,
                    c.limits,
                    c.connect_timeout,
                )
                .await?,
            )),
            Transport::Bosh { .. } => Ok(Box::new(
                crate::bosh::connect_bosh(
                    url,
                    &c.domain,
                    tls,
                    c.limits,
                    c.bosh.clone(),
                    c.connect_timeout,
                )
                .await?,
            )),
        }
    }

    async fn attempt_inner(
        &mut self,
        url: &ServerUrl,
        mut resume: Option<String>,
    ) -> Result<(Box<dyn ElementStream>, Established), ConnectError> {
        let mut stream = self.open(url).await?;
        let register = self.generated && !self.registered;
        // The key challenge when we have an identity and the server offers it.
        let identity = self.config.identity.clone();
        let domain = self.config.domain.clone();
        let key = || {
            identity.as_deref().map(|identity| session::KeyLogin {
                identity,
                domain: &domain,
            })
        };
        let features =
            match session::authenticate_as(stream.as_mut(), &self.credentials, register, key())
                .await
            {
                Ok((features, login)) => {
                    self.registered = true;
                    self.login = Some(login);
                    features
                }
                Err(SessionError::Auth(session::AuthError::Refused { .. }))
                    if self.generated && self.registered =>
                {
                    tracing::info!("account unknown to the server; registering a new one");
                    stream.close().await;
                    self.credentials = Credentials::random();
                    self.registered = false;
                    stream = self.open(url).await?;
                    let (features, login) =
                        session::authenticate_as(stream.as_mut(), &self.credentials, true, key())
                            .await?;
                    self.registered = true;
                    self.login = Some(login);
                    // A new account has no session to resume.
                    resume = None;
                    features
                }
                Err(e) => return Err(e.into()),
            };
        let offers_sm = sm::offered(&features);
        if let Some(xml) = resume.filter(|_| offers_sm) {
            stream.send(xml).await?;
            let answer = stream.next().await?;
            if answer.is("resumed", NS_SM) {
                return Ok((stream, Established::Resumed(answer)));
            }
            if !answer.is("failed", NS_SM) {
                return Err(TransportError::Protocol("unexpected answer to <resume/>").into());
            }
            tracing::info!("session resumption refused; binding a new resource");
        }
        let jid = session::bind_offered(stream.as_mut(), &features).await?;
        // The room service, once, before stream management counts stanzas.
        if self.room_service.is_none() {
            self.room_service = Some(self.find_room_service(stream.as_mut()).await?);
        }
        let sm = if offers_sm {
            enable_sm(stream.as_mut()).await?
        } else {
            None
        };
        Ok((stream, Established::Bound { jid, sm }))
    }
}

impl Connector {
    /// The configured room service, or the one service discovery finds (XEP-0030).
    async fn find_room_service(
        &mut self,
        stream: &mut dyn ElementStream,
    ) -> Result<RoomService, TransportError> {
        let configured = RoomService {
            domain: self.config.muc_domain.clone(),
            cryptocat: false,
            key_proof: false,
        };
        let found = session::discover_room_service(stream, &self.config.domain).await?;
        Ok(match found {
            Some(service) if self.config.discover_room_service => {
                if service.domain != self.config.muc_domain {
                    tracing::info!("room service found by service discovery");
                }
                self.config.muc_domain.clone_from(&service.domain);
                service
            }
            Some(service) if service.domain == configured.domain => service,
            _ => configured,
        })
    }

    /// Whether the account is one we registered with a password (to remove on leaving).
    fn owns_password_account(&self) -> bool {
        self.generated && matches!(self.login, Some(Login::Scram(_)))
    }
}

/// Sends `<enable resume='true'/>` and waits for `<enabled/>` (or `<failed/>`).
async fn enable_sm(
    stream: &mut dyn ElementStream,
) -> Result<Option<StreamManagement>, TransportError> {
    stream.send(sm::enable_xml()).await?;
    // Nothing is joined yet, so nothing else should come; a few strays are skipped.
    for _ in 0..8 {
        let el = stream.next().await?;
        if el.is("enabled", NS_SM) {
            return Ok(Some(StreamManagement::from_enabled(&el)));
        }
        if el.is("failed", NS_SM) {
            return Ok(None);
        }
        tracing::debug!("element before <enabled/> skipped");
    }
    Err(TransportError::Protocol("no answer to <enable/>"))
}

impl Client {
    /// Connects, registers (unless credentials are given), logs in and binds. Returns
    /// once the session is up; [`Event::Connected`] is the first event.
    pub async fn connect(config: Config) -> Result<(ClientHandle, Events), ConnectError> {
        if jid::BareJid::new(&config.domain)
            .ok()
            .filter(|j| j.node().is_none())
            .is_none()
        {
            return Err(ConnectError::InvalidDomain);
        }
        let accepted = AcceptedKey::default();
        let needs_roots = std::iter::once(&config.server)
            .chain(&config.fallback_servers)
            .any(ServerUrl::is_tls);
        let tls = if needs_roots {
            config.trust.client_config_recording(&accepted)?
        } else {
            config.trust.client_config_allow_empty()?
        };
        let tls_plain = config.trust.client_config_allow_empty()?;
        let (credentials, generated) = match &config.credentials {
            Some(c) => (c.clone(), false),
            None => (Credentials::random(), true),
        };
        let in_use = Arc::new(std::sync::Mutex::new(None));
        let mut connector = Connector {
            tls,
            tls_plain,
            accepted,
            current: 0,
            in_use: Arc::clone(&in_use),
            credentials,
            generated,
            registered: false,
            login: None,
            room_service: None,
            config,
        };
        let (stream, established) = connector.attempt(None).await?;
        let Established::Bound { jid, sm } = established else {
            return Err(TransportError::Protocol("resumed without asking").into());
        };
        tracing::info!("connected and bound");
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let _ = ev_tx.try_send(Event::Connected { jid: jid.clone() });
        let mut prefix = [0u8; 4];
        OsRng.fill_bytes(&mut prefix);
        let handle = ClientHandle {
            commands: cmd_tx,
            in_use,
            muc_domain: Arc::from(connector.config.muc_domain.as_str()),
            next_id: Arc::new(AtomicU64::new(1)),
            id_prefix: Arc::from(format!("cc{}", hex::encode(prefix)).as_str()),
        };
        let task = Task {
            connector,
            commands: cmd_rx,
            events: ev_tx,
            rooms: HashMap::new(),
            rejoin_due: None,
            sm,
            jid,
            pending_leaves: Vec::new(),
            outgoing: Vec::new(),
            configuring: HashMap::new(),
            config_ids: 0,
        };
        tokio::spawn(task.run(stream));
        Ok((handle, ev_rx))
    }
}

struct Task {
    connector: Connector,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Event>,
    rooms: HashMap<String, RoomState>,
    /// When to retry re-joins refused with `conflict`.
    rejoin_due: Option<tokio::time::Instant>,
    /// XEP-0198 state of the current session, when the server has it.
    sm: Option<StreamManagement>,
    /// Our full JID.
    jid: String,
    /// Leaves asked for while offline, sent if the session is resumed.
    pending_leaves: Vec<String>,
    /// Stanzas to send once the element being handled is done (room configuration).
    outgoing: Vec<String>,
    /// Rooms being configured after we created them, by the id of the iq in flight.
    configuring: HashMap<String, (String, room_config::Step)>,
    /// Numbers the room-configuration iqs.
    config_ids: u64,
}

/// How one connected period ended.
enum Ended {
    Requested,
    Lost(TransportError),
    /// The event receiver was dropped: nobody listens.
    Abandoned,
}

impl Task {
    async fn emit(&self, ev: Event) -> bool {
        self.events.send(ev).await.is_ok()
    }

    fn muc(&self) -> &str {
        &self.connector.config.muc_domain
    }

    fn join_xml(&self, room: &str, nick: &str) -> String {
        self.join_xml_with(room, nick, "")
    }

    /// A join presence, with our key where the room service asks joiners to prove it
    /// (the room key proof), and `proof` (a `<proof>` element, or nothing).
    fn join_xml_with(&self, room: &str, nick: &str, proof: &str) -> String {
        let key = self
            .connector
            .room_service
            .as_ref()
            .filter(|s| s.key_proof)
            .and(self.connector.config.identity.as_deref())
            .map(room_key::key_element)
            .unwrap_or_default();
        format!(
            "<presence to='{}@{}/{}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x>{key}{proof}</presence>",
            escape(room),
            escape(self.muc()),
            escape(nick)
        )
    }

    fn leave_xml(&self, room: &str, nick: &str) -> String {
        format!(
            "<presence type='unavailable' to='{}@{}/{}'/>",
            escape(room),
            escape(self.muc()),
            escape(nick)
        )
    }

    async fn run(mut self, mut stream: Box<dyn ElementStream>) {
        loop {
            let ended = self.connected(stream.as_mut()).await;
            let reason = match ended {
                Ended::Requested => {
                    // A password account we made is for this session only (XEP-0077).
                    if self.connector.owns_password_account()
                        && !session::cancel_registration(stream.as_mut()).await
                    {
                        tracing::info!("the server did not confirm removing our account");
                    }
                    stream.close().await;
                    let _ = self
                        .emit(Event::Disconnected {
                            reason: DisconnectReason::Requested,
                            will_reconnect: false,
                        })
                        .await;
                    return;
                }
                Ended::Abandoned => {
                    stream.close().await;
                    return;
                }
                Ended::Lost(e) => e,
            };
            tracing::info!(error = %reason, "connection lost");
            if let Some(sm) = &mut self.sm {
                sm.lost_at = Some(tokio::time::Instant::now());
            }
            let Some(backoff) = self.connector.config.reconnect.clone() else {
                let _ = self
                    .emit(Event::Disconnected {
                        reason: DisconnectReason::ConnectionLost(reason),
                        will_reconnect: false,
                    })
                    .await;
                return;
            };
            if !self
                .emit(Event::Disconnected {
                    reason: DisconnectReason::ConnectionLost(reason),
                    will_reconnect: true,
                })
                .await
            {
                return;
            }
            match self.reconnect(&backoff).await {
                Some(s) => stream = s,
                None => return,
            }
        }
    }

    /// Back-off loop; `None` when the client should end (gave up, disconnect requested,
    /// nobody listening).
    async fn reconnect(&mut self, backoff: &Backoff) -> Option<Box<dyn ElementStream>> {
        self.rejoin_due = None;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let delay = backoff.delay(attempt);
            if !self.emit(Event::Reconnecting { attempt, delay }).await {
                return None;
            }
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    cmd = self.commands.recv() => match cmd {
                        None | Some(Command::Disconnect) => {
                            let _ = self.emit(Event::Disconnected {
                                reason: DisconnectReason::Requested,
                                will_reconnect: false,
                            }).await;
                            return None;
                        }
                        Some(Command::RetryNow) => {
                            tracing::info!(attempt, "reconnecting now, as asked");
                            break;
                        }
                        Some(c) => {
                            if !self.offline_command(c).await {
                                return None;
                            }
                        }
                    }
                }
            }
            let now = tokio::time::Instant::now();
            let resume = self.sm.as_ref().and_then(|sm| sm.resume_xml(now));
            let result: Result<(), ConnectError> = match self.connector.attempt(resume).await {
                Ok((mut stream, Established::Resumed(resumed))) => {
                    match self.after_resume(stream.as_mut(), &resumed).await {
                        Ok(()) => {
                            tracing::info!(attempt, "session resumed");
                            let jid = self.jid.clone();
                            if !self.emit(Event::Resumed { jid }).await {
                                return None;
                            }
                            return Some(stream);
                        }
                        Err(e) => Err(ConnectError::from(e)),
                    }
                }
                Ok((mut stream, Established::Bound { jid, sm })) => {
                    tracing::info!(attempt, "reconnected");
                    if !self.new_session(jid.clone(), sm).await {
                        return None;
                    }
                    if !self.emit(Event::Connected { jid }).await {
                        return None;
                    }
                    let joins: Vec<String> = self
                        .rooms
                        .iter()
                        .map(|(room, st)| self.join_xml(room, &st.nick))
                        .collect();
                    let mut sent = Ok(());
                    for xml in joins {
                        sent = self.transmit(stream.as_mut(), xml, None).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    match sent {
                        Ok(()) => return Some(stream),
                        Err(e) => Err(ConnectError::from(e)),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::info!(attempt, error = %e, "reconnection failed");
                if backoff.max_attempts.is_some_and(|m| attempt >= m) {
                    let _ = self
                        .emit(Event::Disconnected {
                            reason: DisconnectReason::GaveUp(e),
                            will_reconnect: false,
                        })
                        .await;
                    return None;
                }
            }
        }
    }

    /// The server resumed our session: take its acknowledgement, send again what it had
    /// not received, and catch up with what was asked while offline.
    async fn after_resume(
        &mut self,
        stream: &mut dyn ElementStream,
        resumed: &Element,
    ) -> Result<(), TransportError> {
        let Some(state) = self.sm.as_mut() else {
            return Err(TransportError::Protocol(
                "resumed without stream management",
            ));
        };
        let accepted = state
            .acknowledged(resumed.attr("h"))
            .map_err(|_| TransportError::Protocol("bad count in <resumed/>"))?;
        state.lost_at = None;
        for id in accepted {
            let _ = self.emit(Event::Accepted { id }).await;
        }
        let Some(state) = self.sm.as_mut() else {
            return Ok(());
        };
        let resend: Vec<sm::Unacked> = state.unacked.drain(..).collect();
        let any = !resend.is_empty();
        for u in resend {
            self.transmit(stream, u.xml, u.id).await?;
        }
        if any {
            stream.send(sm::request_xml()).await?;
        }
        // Joins asked for while offline (rooms we were in are still joined).
        let joins: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, st)| !st.joined)
            .map(|(room, st)| self.join_xml(room, &st.nick))
            .collect();
        for xml in joins {
            self.transmit(stream, xml, None).await?;
        }
        for xml in std::mem::take(&mut self.pending_leaves) {
            self.transmit(stream, xml, None).await?;
        }
        Ok(())
    }

    /// The old session is gone (no resumption): what it had not acknowledged is reported
    /// as not sent, and every room will be joined again. `false`: nobody listens.
    async fn new_session(&mut self, jid: String, sm: Option<StreamManagement>) -> bool {
        self.jid = jid;
        self.pending_leaves.clear();
        let lost = std::mem::replace(&mut self.sm, sm);
        for room in self.rooms.values_mut() {
            room.joined = false;
            room.occupants.clear();
            room.rejoin_tries = 1;
            room.awaiting_retry = false;
            room.proofs_sent = 0;
        }
        if let Some(lost) = lost {
            for u in lost.unacked {
                if let Some(id) = u.id {
                    if !self.emit(Event::NotSent { id }).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Sends one element; a stanza is counted and kept until acknowledged under stream
    /// management.
    async fn transmit(
        &mut self,
        stream: &mut dyn ElementStream,
        xml: String,
        id: Option<MessageId>,
    ) -> Result<(), TransportError> {
        if let Some(state) = &mut self.sm {
            if sm::is_stanza_xml(&xml) && state.sent(&xml, id).is_err() {
                return Err(TransportError::Protocol(
                    "the server does not acknowledge stanzas",
                ));
            }
        }
        stream.send(xml).await
    }

    /// XEP-0198 elements on an established stream.
    async fn stream_management(
        &mut self,
        stream: &mut dyn ElementStream,
        el: &Element,
    ) -> Result<(), TransportError> {
        let Some(state) = self.sm.as_mut() else {
            return Ok(());
        };
        match el.name() {
            "r" => stream.send(state.answer_xml()).await,
            "a" => {
                let accepted = state.acknowledged(el.attr("h")).map_err(|_| {
                    TransportError::Protocol("bad stream management acknowledgement")
                })?;
                for id in accepted {
                    let _ = self.emit(Event::Accepted { id }).await;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A command while offline: room bookkeeping only; sends are reported as not sent.
    async fn offline_command(&mut self, c: Command) -> bool {
        match c {
            Command::Join { room, nick } => {
                self.rooms.insert(room, RoomState::new(nick));
                true
            }
            Command::Leave { room } => {
                if let Some(st) = self.rooms.remove(&room) {
                    if st.joined && self.sm.is_some() {
                        // Sent if the session is resumed (it is still in the room then).
                        let xml = self.leave_xml(&room, &st.nick);
                        self.pending_leaves.push(xml);
                    }
                    self.emit(Event::Left { room }).await
                } else {
                    true
                }
            }
            Command::Send { id, .. } => self.emit(Event::NotSent { id }).await,
            Command::Disconnect | Command::RetryNow => true,
        }
    }

    async fn connected(&mut self, stream: &mut dyn ElementStream) -> Ended {
        loop {
            let due = self.rejoin_due;
            tokio::select! {
                () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.rejoin_due = None;
                    let joins: Vec<String> = self
                        .rooms
                        .iter_mut()
                        .filter(|(_, st)| st.awaiting_retry)
                        .map(|(room, st)| {
                            st.awaiting_retry = false;
                            (room.clone(), st.nick.clone())
                        })
                        .collect::<Vec<_>>()
                        .into_iter()
                        .map(|(room, nick)| self.join_xml(&room, &nick))
                        .collect();
                    for xml in joins {
                        if let Err(e) = self.transmit(stream, xml, None).await {
                            return Ended::Lost(e);
                        }
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { return Ended::Requested };
                    match self.command(stream, cmd).await {
                        Ok(true) => {}
                        Ok(false) => return Ended::Requested,
                        Err(e) => return Ended::Lost(e),
                    }
                }
                el = stream.next() => match el {
                    Ok(el) if el.ns() == NS_SM => {
                        if let Err(e) = self.stream_management(stream, &el).await {
                            return Ended::Lost(e);
                        }
                    }
                    Ok(el) => match self.incoming(stream, el).await {
                        Ok(true) => {}
                        Ok(false) => return Ended::Abandoned,
                        Err(e) => return Ended::Lost(e),
                    },
                    Err(e) => return Ended::Lost(e),
                }
            }
        }
    }

    /// `Ok(false)`: disconnect requested.
    async fn command(
        &mut self,
        stream: &mut dyn ElementStream,
        cmd: Command,
    ) -> Result<bool, TransportError> {
        match cmd {
            Command::Disconnect => return Ok(false),
            // Connected: nothing to retry.
            Command::RetryNow => {}
            Command::Join { room, nick } => {
                let xml = self.join_xml(&room, &nick);
                self.rooms.insert(room, RoomState::new(nick));
                self.transmit(stream, xml, None).await?;
            }
            Command::Leave { room } => {
                if let Some(st) = self.rooms.get(&room) {
                    let xml = self.leave_xml(&room, &st.nick);
                    self.transmit(stream, xml, None).await?;
                }
            }
            Command::Send { xml, id } => {
                let managed = self.sm.is_some();
                let sent = self.transmit(stream, xml, Some(id.clone())).await;
                if let Err(e) = sent {
                    // Under stream management the stanza waits in the unacknowledged
                    // queue: resent after a resumption, reported if the session is lost.
                    if !managed {
                        let _ = self.emit(Event::NotSent { id }).await;
                    }
                    return Err(e);
                }
                if managed {
                    stream.send(sm::request_xml()).await?;
                } else {
                    // No acknowledgements on this stream: written is all we will know.
                    let _ = self.emit(Event::Accepted { id }).await;
                }
            }
        }
        Ok(true)
    }

    /// Splits `room@muc/nick` for a room we know; `None` otherwise.
    fn occupant<'a>(&self, from: &'a str) -> Option<(&'a str, &'a str)> {
        let (bare, nick) = from.split_once('/')?;
        let (room, domain) = bare.split_once('@')?;
        (domain.eq_ignore_ascii_case(self.muc()) && self.rooms.contains_key(room))
            .then_some((room, nick))
    }

    /// `Ok(false)`: nobody listens any more.
    async fn incoming(
        &mut self,
        stream: &mut dyn ElementStream,
        el: Element,
    ) -> Result<bool, TransportError> {
        if let Some(state) = &mut self.sm {
            if sm::is_stanza(&el) {
                state.received();
            }
        }
        let go_on = match el.name() {
            "message" => self.message(&el).await,
            "presence" => self.presence(&el).await,
            "iq" => {
                self.iq(stream, &el).await?;
                true
            }
            _ => {
                tracing::debug!("unknown top-level element ignored");
                true
            }
        };
        for xml in std::mem::take(&mut self.outgoing) {
            self.transmit(stream, xml, None).await?;
        }
        Ok(go_on)
    }

    fn room_jid(&self, room: &str) -> String {
        format!("{room}@{}", self.muc())
    }

    fn config_id(&mut self) -> String {
        self.config_ids = self.config_ids.wrapping_add(1);
        format!("cfg-{}", self.config_ids)
    }

    /// Asks for the configuration form of a room we just created (status 201).
    fn configure(&mut self, room: &str) {
        let id = self.config_id();
        self.outgoing
            .push(room_config::ask_form(&id, &self.room_jid(room)));
        self.configuring
            .insert(id, (room.to_owned(), room_config::Step::AskedForm));
    }

    /// The answer to a room-configuration iq: submit our values, or fall back to an
    /// instant room; done after the submission is answered.
    fn configured(&mut self, el: &Element) {
        let Some((room, step)) = el.attr("id").and_then(|id| self.configuring.remove(id)) else {
            return;
        };
        let ok = el.attr("type") == Some("result");
        let id = self.config_id();
        let room_jid = self.room_jid(&room);
        let next = match (step, ok) {
            (room_config::Step::AskedForm, true) => room_config::submit(&id, &room_jid, el)
                .map(|xml| (xml, room_config::Step::Submitted)),
            (room_config::Step::AskedForm | room_config::Step::Submitted, false) => None,
            (_, true) | (room_config::Step::Instant, false) => {
                if !ok {
                    tracing::info!("the server refused an instant room");
                }
                return;
            }
        };
        let (xml, step) = next.unwrap_or_else(|| {
            (
                room_config::instant(&id, &room_jid),
                room_config::Step::Instant,
            )
        });
        self.outgoing.push(xml);
        self.configuring.insert(id, (room, step));
    }

    async fn iq(
        &mut self,
        stream: &mut dyn ElementStream,
        el: &Element,
    ) -> Result<(), TransportError> {
        let kind = el.attr("type").unwrap_or_default();
        if kind != "get" && kind != "set" {
            self.configured(el);
            return Ok(());
        }
        let id = escape(el.attr("id").unwrap_or_default());
        let to = el
            .attr("from")
            .map(|f| format!(" to='{}'", escape(f)))
            .unwrap_or_default();
        let is_ping = kind == "get" && el.get_child("ping", "urn:xmpp:ping").is_some();
        let reply = if is_ping {
            format!("<iq type='result' id='{id}'{to}/>")
        } else {
            format!(
                "<iq type='error' id='{id}'{to}><error type='cancel'>\
                 <service-unavailable xmlns='{}'/></error></iq>",
                session::NS_STANZAS
            )
        };
        self.transmit(stream, reply, None).await
    }

    async fn message(&mut self, el: &Element) -> bool {
        let from = el.attr("from").unwrap_or_default();
        let kind = el.attr("type").unwrap_or("normal");
        if kind == "error" {
            let condition = stanza_error_condition(el);
            tracing::debug!(condition = %condition, "stanza error");
            return self
                .emit(Event::StanzaError {
                    id: el.attr("id").map(|i| MessageId(i.to_owned())),
                    condition,
                })
                .await;
        }
        if let Some(payload) = el.get_child("payload", NS_PAYLOAD) {
            let Some((room, nick)) = self.occupant(from) else {
                tracing::debug!("payload from outside our rooms dropped");
                return true;
            };
            let (room, from_nick) = (room.to_owned(), nick.to_owned());
            let bytes = match cryptocat_protocol::wire::decode_base64(&payload.text()) {
                Ok(b) if !b.is_empty() => b,
                _ => {
                    tracing::debug!("undecodable payload dropped");
                    return self
                        .emit(Event::InvalidPayload {
                            from: from.to_owned(),
                        })
                        .await;
                }
            };
            return match kind {
                "groupchat" => {
                    self.emit(Event::GroupPayload {
                        room,
                        from_nick,
                        bytes,
                    })
                    .await
                }
                "chat" => {
                    self.emit(Event::PrivatePayload {
                        room,
                        from_nick,
                        bytes,
                    })
                    .await
                }
                _ => true,
            };
        }
        if el.children().any(|c| c.name() == "body") {
            tracing::info!("plaintext message dropped");
            return self
                .emit(Event::PlaintextDropped {
                    from: from.to_owned(),
                })
                .await;
        }
        // Room subjects and anything else carry nothing for us.
        true
    }

    async fn presence(&mut self, el: &Element) -> bool {
        let from = el.attr("from").unwrap_or_default();
        let Some((room, nick)) = self.occupant(from) else {
            return true;
        };
        let (room, nick) = (room.to_owned(), nick.to_owned());
        let statuses: Vec<String> = el
            .get_child("x", NS_MUC_USER)
            .map(|x| {
                x.children()
                    .filter(|c| c.name() == "status")
                    .filter_map(|c| c.attr("code").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let Some(state) = self.rooms.get_mut(&room) else {
            return true;
        };
        let is_self = statuses.iter().any(|s| s == "110") || nick == state.nick;
        match el.attr("type") {
            Some("error") => {
                if state.joined {
                    return true;
                }
                // The room asks us to prove our key: join again with the proof.
                if state.proofs_sent < room_key::MAX_PROOFS_PER_JOIN {
                    let room_jid = format!("{room}@{}", self.connector.config.muc_domain);
                    let proof = self
                        .connector
                        .config
                        .identity
                        .as_deref()
                        .and_then(|id| room_key::proof_element(id, &room_jid, el));
                    if let Some(proof) = proof {
                        state.proofs_sent = state.proofs_sent.saturating_add(1);
                        let own = state.nick.clone();
                        let xml = self.join_xml_with(&room, &own, &proof);
                        self.outgoing.push(xml);
                        return true;
                    }
                }
                let condition = stanza_error_condition(el);
                if condition == "conflict"
                    && state.rejoin_tries > 0
                    && state.rejoin_tries < MAX_REJOIN_TRIES
                {
                    // Our previous occupant may still be there: try again shortly.
                    let delay = Duration::from_millis(250).saturating_mul(state.rejoin_tries);
                    state.rejoin_tries = state.rejoin_tries.saturating_add(1);
                    state.awaiting_retry = true;
                    tracing::debug!(
                        tries = state.rejoin_tries,
                        "re-join refused as conflict; retrying"
                    );
                    let at = tokio::time::Instant::now() + delay;
                    self.rejoin_due = Some(self.rejoin_due.map_or(at, |d| d.min(at)));
                    return true;
                }
                self.rooms.remove(&room);
                self.emit(Event::JoinFailed { room, condition }).await
            }
            Some("unavailable") => {
                if is_self {
                    self.rooms.remove(&room);
                    self.emit(Event::Left { room }).await
                } else if state.occupants.remove(&nick) && state.joined {
                    self.emit(Event::OccupantLeft { room, nick }).await
                } else {
                    true
                }
            }
            None => {
                if is_self {
                    if state.joined {
                        return true;
                    }
                    state.joined = true;
                    state.rejoin_tries = 0;
                    state.proofs_sent = 0;
                    let occupants = state.occupants.iter().cloned().collect();
                    // We created the room and the server holds it locked for its owner.
                    if statuses.iter().any(|s| s == "201") {
                        self.configure(&room);
                    }
                    self.emit(Event::Joined { room, occupants }).await
                } else if state.occupants.len() >= MAX_OCCUPANTS && !state.occupants.contains(&nick)
                {
                    // More occupants than any Cryptocat room can hold: the server makes
                    // them up. Kept out, so what it can make us keep stays bounded.
                    if !state.over_capacity {
                        state.over_capacity = true;
                        tracing::warn!("the server reports more occupants than a room holds");
                    }
                    true
                } else if state.occupants.insert(nick.clone()) && state.joined {
                    self.emit(Event::OccupantJoined { room, nick }).await
                } else {
                    true
                }
            }
            Some(_) => true,
        }
    }
}
