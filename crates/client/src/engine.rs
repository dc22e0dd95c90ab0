//! The engine: one tokio task per room that owns the [`Room`] state machine and the
//! transport, and the [`EngineHandle`] that talks to it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cryptocat_protocol::content::MAX_TEXT_BYTES;
use cryptocat_protocol::fingerprint::Fingerprint;
use cryptocat_protocol::group::{occupant_name, Alarm, Destination, Room, RoomEvent, Transmit};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::smp::SmpEvent;
use cryptocat_protocol::Timestamp;
use cryptocat_xmpp::{
    Access, Client, ClientHandle, Config, Event, Events, Invite, MessageId, ServerInUse,
};
use rand_core::OsRng;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::{check_nickname, check_room_name, EngineConfig, VerifiedContact};
use crate::error::{EngineError, StartError};
use crate::event::{ConnectionState, EngineEvent, MemberView, WarningCode};

/// Most group payloads kept until the server accepts them.
pub const MAX_OUTBOX: usize = 1_024;
/// Most texts held while offline.
pub const MAX_HELD: usize = 1_024;
/// Most private texts kept until the server has them (sent and not acknowledged, or
/// waiting for the connection or for a new pairwise session).
pub const MAX_PRIVATE_OUTBOX: usize = 1_024;
/// Events waiting for the application; a slower application slows the engine down.
const EVENT_QUEUE: usize = 1_024;

/// The receiving end of an engine's events.
pub type EngineEvents = mpsc::Receiver<EngineEvent>;

/// Entry point.
#[derive(Debug)]
pub struct Engine;

enum Command {
    Send {
        local_id: u64,
        text: Zeroizing<String>,
    },
    SendPrivate {
        nick: String,
        text: Zeroizing<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Ask {
        nick: String,
        question: Option<String>,
        answer: Zeroizing<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Answer {
        nick: String,
        answer: Zeroizing<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    MarkVerified {
        nick: String,
        verified: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Members {
        reply: oneshot::Sender<Vec<MemberView>>,
    },
    Verified {
        reply: oneshot::Sender<Vec<VerifiedContact>>,
    },
    Pending {
        reply: oneshot::Sender<usize>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    #[cfg(feature = "test-hooks")]
    Freeze {
        reply: oneshot::Sender<()>,
    },
    #[cfg(feature = "test-hooks")]
    Defect {
        reply: oneshot::Sender<Room>,
    },
}

/// Cheap to clone; every call goes to the engine's task.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
    next_local: Arc<AtomicU64>,
    fingerprint: Arc<str>,
    nick: Arc<str>,
    room: Arc<str>,
    /// The server as configured (for invite links).
    access: Arc<Access>,
    /// The transport, for the address in use.
    xmpp: ClientHandle,
}

impl EngineHandle {
    fn command(&self, c: Command) -> Result<(), EngineError> {
        self.commands.send(c).map_err(|_| EngineError::Closed)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.command(make(tx))?;
        rx.await.map_err(|_| EngineError::Closed)
    }

    /// Our readable fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Our nickname.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// The room name.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The address we are connected through and the key its server showed.
    pub fn server_in_use(&self) -> Option<ServerInUse> {
        self.xmpp.server_in_use()
    }

    /// An invite to this room through the server in use: the address that worked first,
    /// then the other configured ones, the domain and room service, and the pins we were
    /// given. Without pins (a server trusted through the certificate authorities) the
    /// link has none either, so the friend's app checks the server the same way.
    pub fn invite(&self) -> Invite {
        let mut access = (*self.access).clone();
        if let Some(in_use) = self.server_in_use() {
            access.servers.retain(|s| *s != in_use.url);
            access.servers.insert(0, in_use.url);
        }
        Invite {
            room: self.room.to_string(),
            access,
        }
    }

    /// Sends a text to the room. Returns a local id; [`EngineEvent::Sent`] names the
    /// message once it is encrypted for the current members, and
    /// [`EngineEvent::Confirmation`]s follow. While offline the text waits and goes out
    /// after the reconnection; it is never sent twice.
    pub fn send(&self, text: &str) -> Result<u64, EngineError> {
        check_text(text)?;
        let local_id = self.next_local.fetch_add(1, Ordering::Relaxed);
        self.command(Command::Send {
            local_id,
            text: Zeroizing::new(text.to_owned()),
        })?;
        Ok(local_id)
    }

    /// Sends a private text to the member with this nickname ([`EngineEvent::PrivateSent`]
    /// follows). The text is kept until the server has it: while offline it waits, and
    /// after a full re-join (every pairwise session restarts) what the server never took
    /// is encrypted again for the member's new session, so it arrives once. Given up with
    /// a `rejoin_incomplete` warning if the member has no session with us within
    /// `rejoin_wait`.
    pub async fn send_private(&self, nick: &str, text: &str) -> Result<(), EngineError> {
        check_text(text)?;
        self.ask(|reply| Command::SendPrivate {
            nick: nick.to_owned(),
            text: Zeroizing::new(text.to_owned()),
            reply,
        })
        .await?
    }

    /// Asks a member a secret question; [`EngineEvent::Verification`] gives the result.
    pub async fn ask_question(
        &self,
        nick: &str,
        question: Option<&str>,
        answer: &str,
    ) -> Result<(), EngineError> {
        self.ask(|reply| Command::Ask {
            nick: nick.to_owned(),
            question: question.map(str::to_owned),
            answer: Zeroizing::new(answer.to_owned()),
            reply,
        })
        .await?
    }

    /// Answers a member's secret question.
    pub async fn answer(&self, nick: &str, answer: &str) -> Result<(), EngineError> {
        self.ask(|reply| Command::Answer {
            nick: nick.to_owned(),
            answer: Zeroizing::new(answer.to_owned()),
            reply,
        })
        .await?
    }

    /// Marks a member verified (the person compared fingerprints or safety numbers) or
    /// takes the mark away.
    pub async fn mark_verified(&self, nick: &str, verified: bool) -> Result<(), EngineError> {
        self.ask(|reply| Command::MarkVerified {
            nick: nick.to_owned(),
            verified,
            reply,
        })
        .await?
    }

    /// The members who finished their key exchange with us.
    pub async fn members(&self) -> Result<Vec<MemberView>, EngineError> {
        self.ask(|reply| Command::Members { reply }).await
    }

    /// Every fingerprint verified so far (given at start, plus this session's).
    pub async fn verified_contacts(&self) -> Result<Vec<VerifiedContact>, EngineError> {
        self.ask(|reply| Command::Verified { reply }).await
    }

    /// How many of our messages wait: texts held while offline plus payloads the server
    /// has not accepted yet.
    pub async fn pending(&self) -> Result<usize, EngineError> {
        self.ask(|reply| Command::Pending { reply }).await
    }

    /// While reconnecting ([`ConnectionState::Reconnecting`]), tries at once instead of
    /// waiting out the delay (the person pressed "Retry now"). Does nothing while
    /// connected or while an attempt is under way.
    pub fn retry_now(&self) -> Result<(), EngineError> {
        self.xmpp.retry_now().map_err(|_| EngineError::Closed)
    }

    /// Leaves the room: sends our final view of the transcript, deletes every key and
    /// disconnects. [`EngineEvent::Left`] follows.
    pub async fn leave(&self) -> Result<(), EngineError> {
        self.ask(|reply| Command::Leave { reply }).await
    }

    /// Test hook: from now on the engine hands nothing from the server to its room state
    /// (it stays in the room; what arrives is dropped). Only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub async fn freeze_for_test(&self) -> Result<(), EngineError> {
        self.ask(|reply| Command::Freeze { reply }).await
    }

    /// Test hook: a member who leaves but keeps every key. The engine leaves the room at
    /// the XMPP level only (no leave message, nothing forgotten), stops, and hands over
    /// its room state, so a test can show that what the others send after the leave
    /// cannot be read with it. Only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub async fn defect_for_test(&self) -> Result<Room, EngineError> {
        self.ask(|reply| Command::Defect { reply }).await
    }
}

fn check_text(text: &str) -> Result<(), EngineError> {
    if text.trim().is_empty() {
        return Err(EngineError::EmptyText);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(EngineError::Room(
            cryptocat_protocol::group::RoomError::TextTooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            },
        ));
    }
    Ok(())
}

/// What a server that is not one of ours leaves out, in words; `None` when it adds both
/// guarantees (our relay, or Prosody with our modules).
fn missing_guarantees(server: &ServerInUse) -> Option<String> {
    // The server checked our key at login, or the room service did at the join (the
    // engine always has an identity, so the transport proved it wherever it was asked).
    let key = matches!(server.login, cryptocat_xmpp::session::Login::Key)
        || server.room_service.key_proof;
    let rooms = server.room_service.cryptocat;
    let missing = match (key, rooms) {
        (true, true) => return None,
        (true, false) => "its rooms do not refuse plaintext",
        (false, true) => "it did not check that this session holds its key",
        (false, false) => {
            "its rooms do not refuse plaintext and it did not check that this session holds its key"
        }
    };
    Some(format!(
        "This server is not a Cryptocat server: {missing}. Messages are still end-to-end \
         encrypted and verified by the members; only the server's own checks are missing."
    ))
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

impl Engine {
    /// The seed flow: checks the room name and nickname, creates fresh keys (unless
    /// given), connects (registering a random account, or the key challenge where the
    /// server offers it), joins the room under the occupant name derived from our key,
    /// and starts the key exchanges with everyone present. Returns once we are in the
    /// room; members and messages arrive as events.
    pub async fn start(config: EngineConfig) -> Result<(EngineHandle, EngineEvents), StartError> {
        let room_name = check_room_name(&config.room)?;
        let nick = check_nickname(&config.nickname)?;
        let access = Arc::new(config.access());
        let mut rng = OsRng;
        let identity = match config.identity {
            Some(identity) => identity,
            None => Identity::generate(&mut rng, now()),
        };
        // One identity for the room protocol and for the key-challenge login (used where
        // the server offers X-CRYPTOCAT-KEY; else registration and SCRAM).
        let identity = Arc::new(identity);
        let fingerprint = identity.fingerprint().to_readable();
        let occupant = occupant_name(&identity.verifying_key());

        let mut xconfig = Config::new(config.server.clone());
        if let Some(domain) = &config.domain {
            xconfig = xconfig.with_domain(domain.clone());
        }
        if let Some(muc) = &config.muc_domain {
            xconfig.muc_domain.clone_from(muc);
        }
        xconfig.fallback_servers = config.fallback_servers.clone();
        xconfig.trust = config.trust.clone();
        xconfig.connect_timeout = config.connect_timeout;
        xconfig.reconnect = config.reconnect;
        xconfig.identity = Some(Arc::clone(&identity));
        if config.muc_domain.is_some() {
            xconfig.discover_room_service = false;
        }
        let (xmpp, mut xevents) = Client::connect(xconfig).await?;
        // The room service as the transport found it (service discovery) or was told.
        let room_jid = format!("{room_name}@{}", xmpp.muc_domain());
        let our_address = format!("{room_jid}/{occupant}");
        let mut room = match Room::new(
            identity,
            config.room_config.clone(),
            &room_jid,
            &our_address,
            &nick,
            now(),
            &mut rng,
        ) {
            Ok(room) => room,
            Err(e) => {
                let _ = xmpp.disconnect();
                return Err(e.into());
            }
        };
        if let Err(e) = xmpp.join(&room_name, &occupant) {
            tracing::debug!(error = %e, "join refused locally");
            return Err(StartError::InvalidRoom);
        }
        let occupants =
            match tokio::time::timeout(config.join_timeout, wait_joined(&mut xevents, &room_name))
                .await
            {
                Ok(Ok(occupants)) => occupants,
                Ok(Err(e)) => {
                    let _ = xmpp.disconnect();
                    return Err(e);
                }
                Err(_) => {
                    let _ = xmpp.disconnect();
                    return Err(StartError::JoinTimeout);
                }
            };

        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let present: BTreeSet<String> = occupants.into_iter().collect();
        for other in &present {
            room.member_present(now(), &mut rng, &format!("{room_jid}/{other}"));
        }
        let handle = EngineHandle {
            commands: commands_tx,
            next_local: Arc::new(AtomicU64::new(1)),
            fingerprint: fingerprint.clone().into(),
            nick: nick.clone().into(),
            room: room_name.clone().into(),
            access,
            xmpp: xmpp.clone(),
        };
        let task = Task {
            room,
            room_name: room_name.clone(),
            prefix: format!("{room_jid}/"),
            occupant,
            xmpp,
            events: events_tx,
            online: true,
            present,
            before_disconnect: BTreeSet::new(),
            outbox: VecDeque::new(),
            offline_private: VecDeque::new(),
            private_out: VecDeque::new(),
            held: VecDeque::new(),
            gate: None,
            rejoin_wait: config.rejoin_wait,
            local_ids: HashMap::new(),
            verified: config.verified,
            private_counter: 0,
            finished: false,
            leaving: None,
            #[cfg(feature = "test-hooks")]
            frozen: false,
            #[cfg(feature = "test-hooks")]
            defect: None,
        };
        task.emit(EngineEvent::Connection(ConnectionState::Connected))
            .await;
        task.emit(EngineEvent::Joined {
            room: room_name,
            nick,
            fingerprint,
        })
        .await;
        if let Some(message) = handle.server_in_use().as_ref().and_then(missing_guarantees) {
            task.emit(EngineEvent::Warning {
                code: WarningCode::ServerGuarantees,
                message,
                id: None,
                who: Vec::new(),
                count: None,
            })
            .await;
        }
        tokio::spawn(task.run(xevents, commands_rx));
        Ok((handle, events_rx))
    }
}

async fn wait_joined(events: &mut Events, room: &str) -> Result<Vec<String>, StartError> {
    while let Some(event) = events.recv().await {
        match event {
            Event::Joined { room: r, occupants } if r == room => return Ok(occupants),
            Event::JoinFailed { room: r, condition } if r == room => {
                return Err(StartError::JoinFailed { condition })
            }
            Event::Disconnected { .. } => {
                return Err(StartError::JoinFailed {
                    condition: "connection-lost".into(),
                })
            }
            _ => {}
        }
    }
    Err(StartError::JoinFailed {
        condition: "connection-lost".into(),
    })
}

/// A group payload on its way: kept until the server echoes it back (accepted).
struct Pending {
    bytes: Vec<u8>,
    /// The transport's id while it is out; `None` when it must be sent (again).
    id: Option<MessageId>,
    /// It was out when the connection dropped: if the session is resumed the transport
    /// delivers it; if not, it is sent again after re-joining.
    suspect: bool,
}

/// Most pairwise payloads kept while the connection is down (for a resumed session).
const MAX_OFFLINE_PRIVATE: usize = 4_096;

/// One of our private texts, kept as text until the server has the payload that carries
/// it: after a full re-join every pairwise session restarts, so a text the server never
/// took is encrypted again for the member's new session (never twice for one session).
struct PrivateText {
    /// The member's address (occupant names come from keys: the same after a re-join).
    to: String,
    text: Zeroizing<String>,
    /// The transport's id while it is out; `None` while it waits for the connection or
    /// for a session with the member.
    id: Option<MessageId>,
    /// Given up (with a warning) if still waiting then.
    deadline: Instant,
}

/// After a re-join: texts and unaccepted payloads wait for the members who were there.
struct Gate {
    awaiting: BTreeSet<String>,
    deadline: Instant,
}

struct Task {
    room: Room,
    room_name: String,
    /// `room@muc/`: occupant addresses are this plus the occupant name.
    prefix: String,
    occupant: String,
    xmpp: ClientHandle,
    events: mpsc::Sender<EngineEvent>,
    online: bool,
    /// Occupant names present according to the server.
    present: BTreeSet<String>,
    before_disconnect: BTreeSet<String>,
    outbox: VecDeque<Pending>,
    /// Pairwise payloads made while offline: sent if the session is resumed, dropped if
    /// we re-join (every pairwise session restarts then; texts among them are in
    /// `private_out` and go again under the new sessions).
    offline_private: VecDeque<(String, Vec<u8>)>,
    /// Our private texts until the server has them.
    private_out: VecDeque<PrivateText>,
    held: VecDeque<(u64, Zeroizing<String>)>,
    gate: Option<Gate>,
    rejoin_wait: Duration,
    /// Room-local id -> our local id.
    local_ids: HashMap<u64, u64>,
    verified: Vec<VerifiedContact>,
    private_counter: u64,
    finished: bool,
    /// The answer to [`Command::Leave`], given once the transport has closed.
    leaving: Option<oneshot::Sender<()>>,
    /// Test hook: drop what the server sends instead of handing it to the room.
    #[cfg(feature = "test-hooks")]
    frozen: bool,
    /// Test hook: where the room state goes when the task ends.
    #[cfg(feature = "test-hooks")]
    defect: Option<oneshot::Sender<Room>>,
}

impl Task {
    async fn run(mut self, mut xevents: Events, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut rng = OsRng;
        // What `start` queued: handshakes with everyone present, our first epoch.
        self.flush().await;
        while !self.finished {
            let timer = self.next_deadline();
            tokio::select! {
                event = xevents.recv() => match event {
                    Some(event) => {
                        if !self.is_frozen() {
                            self.on_transport(event, &mut rng).await;
                        }
                    }
                    None => {
                        self.go_offline("the connection ended").await;
                    }
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command, &mut rng).await,
                    None => {
                        // Every handle is gone: leave quietly.
                        let _ = self.room.leave(now());
                        self.flush().await;
                        let _ = self.xmpp.leave(&self.room_name);
                        let _ = self.xmpp.disconnect();
                        self.finished = true;
                    }
                },
                () = sleep_until(timer) => {
                    self.room.handle_timeout(now(), &mut rng);
                    self.check_gate().await;
                    self.expire_private().await;
                }
            }
            self.flush().await;
        }
        // Let the transport finish: it sends our leave and closes the stream cleanly only
        // while someone still reads its events (a dropped reader looks like a broken
        // connection, which a server with stream management keeps for resumption).
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, xevents.recv()).await {
            if matches!(event, Event::Disconnected { .. }) {
                break;
            }
        }
        if let Some(reply) = self.leaving.take() {
            self.emit(EngineEvent::Left).await;
            self.emit(EngineEvent::Connection(ConnectionState::Offline))
                .await;
            let _ = reply.send(());
        }
        #[cfg(feature = "test-hooks")]
        if let Some(reply) = self.defect.take() {
            let _ = reply.send(self.room);
        }
    }

    /// Test hook: whether what the server sends is dropped ([`EngineHandle::freeze_for_test`]).
    fn is_frozen(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.frozen;
        #[cfg(not(feature = "test-hooks"))]
        false
    }

    fn next_deadline(&self) -> Option<Instant> {
        let room = self.room.poll_timeout().map(|t| {
            let wait = t.as_millis().saturating_sub(now().as_millis());
            Instant::now() + Duration::from_millis(wait)
        });
        let gate = self.gate.as_ref().map(|g| g.deadline);
        let private = self
            .private_out
            .iter()
            .filter(|p| p.id.is_none())
            .map(|p| p.deadline)
            .min();
        [room, gate, private].into_iter().flatten().min()
    }

    fn address(&self, occupant: &str) -> String {
        format!("{}{occupant}", self.prefix)
    }

    async fn emit(&self, event: EngineEvent) {
        // A closed receiver means nobody listens any more; the handle's drop ends us.
        let _ = self.events.send(event).await;
    }

    async fn warn(&self, code: WarningCode, message: String, id: Option<String>) {
        self.warn_about(code, message, id, Vec::new(), None).await;
    }

    /// A warning naming members (`who`, in the order [`EngineEvent::Warning`] gives) or
    /// carrying a number.
    async fn warn_about(
        &self,
        code: WarningCode,
        message: String,
        id: Option<String>,
        who: Vec<String>,
        count: Option<usize>,
    ) {
        self.emit(EngineEvent::Warning {
            code,
            message,
            id,
            who,
            count,
        })
        .await;
    }

    // ---- transport ----------------------------------------------------------------

    async fn on_transport(&mut self, event: Event, rng: &mut OsRng) {
        match event {
            Event::Joined { room, occupants } if room == self.room_name => {
                self.rejoined(occupants, rng).await;
            }
            Event::JoinFailed { room, condition } if room == self.room_name => {
                self.emit(EngineEvent::Error {
                    code: "rejoin_failed",
                    message: format!("could not re-join the room after reconnecting ({condition})"),
                })
                .await;
                let _ = self.xmpp.disconnect();
                self.go_offline("").await;
            }
            Event::OccupantJoined { room, nick } if room == self.room_name => {
                // The transport keeps at most MAX_OCCUPANTS per room; so do we.
                if self.present.len() < cryptocat_xmpp::client::MAX_OCCUPANTS
                    && self.present.insert(nick.clone())
                {
                    let address = self.address(&nick);
                    self.room.member_present(now(), rng, &address);
                }
                self.check_gate().await;
            }
            Event::OccupantLeft { room, nick } if room == self.room_name => {
                self.present.remove(&nick);
                let address = self.address(&nick);
                self.room.member_absent(now(), rng, &address);
            }
            Event::GroupPayload {
                room,
                from_nick,
                bytes,
            } if room == self.room_name => {
                if from_nick == self.occupant {
                    // The server's echo: accepted.
                    if let Some(pos) = self.outbox.iter().position(|p| p.bytes == bytes) {
                        self.outbox.remove(pos);
                    }
                } else {
                    let address = self.address(&from_nick);
                    if let Err(e) = self.room.handle_group(now(), rng, &address, &bytes) {
                        tracing::debug!(error = %e, "group payload dropped");
                    }
                }
            }
            Event::PrivatePayload {
                room,
                from_nick,
                bytes,
            } if room == self.room_name => {
                let address = self.address(&from_nick);
                if let Err(e) = self.room.handle_private(now(), rng, &address, &bytes) {
                    tracing::debug!(error = %e, "private payload dropped");
                }
            }
            Event::InvalidPayload { .. } => {
                self.warn(
                    WarningCode::InvalidPayload,
                    "A message that was not a valid Cryptocat payload was dropped.".into(),
                    None,
                )
                .await;
            }
            Event::PlaintextDropped { .. } => {
                self.warn(
                    WarningCode::PlaintextDropped,
                    "A message without encryption arrived and was dropped unread.".into(),
                    None,
                )
                .await;
            }
            Event::StanzaError { id, condition } => {
                let pos = id
                    .as_ref()
                    .and_then(|id| self.outbox.iter().position(|p| p.id.as_ref() == Some(id)));
                let private = id.as_ref().and_then(|id| {
                    self.private_out
                        .iter()
                        .position(|p| p.id.as_ref() == Some(id))
                });
                if let Some(pos) = private {
                    self.private_out.remove(pos);
                    self.warn(
                        WarningCode::MessageRefused,
                        format!("The server refused one of our private messages ({condition})."),
                        None,
                    )
                    .await;
                } else if let Some(pos) = pos {
                    self.outbox.remove(pos);
                    self.warn(
                        WarningCode::MessageRefused,
                        format!("The server refused one of our messages ({condition})."),
                        None,
                    )
                    .await;
                } else {
                    tracing::debug!(%condition, "stanza error");
                }
            }
            Event::NotSent { id } => {
                for p in &mut self.outbox {
                    if p.id.as_ref() == Some(&id) {
                        p.id = None;
                    }
                }
                // Encrypted again when we are back: under the same session if it is
                // resumed, under a new one after a re-join.
                let wait = Instant::now() + self.rejoin_wait;
                for p in &mut self.private_out {
                    if p.id.as_ref() == Some(&id) {
                        p.id = None;
                        p.deadline = wait;
                    }
                }
            }
            Event::Accepted { id } => {
                self.private_out.retain(|p| p.id.as_ref() != Some(&id));
            }
            Event::Disconnected { will_reconnect, .. } => {
                if self.online {
                    self.before_disconnect = self.present.clone();
                }
                self.online = false;
                // Unknown whether the server took them. A resumed session delivers them;
                // otherwise they go again after re-joining, and receivers refuse what
                // they already have, so nothing shows twice.
                for p in &mut self.outbox {
                    p.suspect = true;
                }
                if !will_reconnect {
                    self.go_offline("the connection was lost and not re-established")
                        .await;
                }
            }
            Event::Resumed { .. } => self.resumed().await,
            Event::Reconnecting { attempt, delay } => {
                self.emit(EngineEvent::Connection(ConnectionState::Reconnecting {
                    attempt,
                    delay,
                }))
                .await;
            }
            Event::Left { room } if room == self.room_name => {
                if self.leaving.is_none() {
                    // Not our leave: the room service removed us (it is going away,
                    // status 332, or it found our session gone, 333).
                    let _ = self.xmpp.disconnect();
                    self.go_offline("the room service removed us from the room")
                        .await;
                }
                self.finished = true;
            }
            _ => {}
        }
    }

    /// Back in the room after a reconnection. Everyone saw us leave and come back, so
    /// every pairwise session restarts: forget them all and meet everyone again.
    async fn rejoined(&mut self, occupants: Vec<String>, rng: &mut OsRng) {
        let t = now();
        self.offline_private.clear();
        // What the server never took waits for the members' new sessions.
        let wait = Instant::now() + self.rejoin_wait;
        for p in &mut self.private_out {
            if p.id.is_none() {
                p.deadline = wait;
            }
        }
        for p in &mut self.outbox {
            if p.suspect {
                p.id = None;
                p.suspect = false;
            }
        }
        for member in self.room.members() {
            self.room.member_absent(t, rng, &member.address);
        }
        self.present = occupants.into_iter().collect();
        for other in self.present.clone() {
            let address = self.address(&other);
            self.room.member_present(t, rng, &address);
        }
        self.online = true;
        let awaiting: BTreeSet<String> = std::mem::take(&mut self.before_disconnect);
        self.gate = Some(Gate {
            awaiting,
            deadline: Instant::now() + self.rejoin_wait,
        });
        self.emit(EngineEvent::Connection(ConnectionState::Connected))
            .await;
        self.check_gate().await;
    }

    /// The server resumed our session (XEP-0198): still in the room, nobody saw us go,
    /// and the transport re-sent what the server had not acknowledged. Send what was
    /// made while offline.
    async fn resumed(&mut self) {
        self.online = true;
        self.before_disconnect.clear();
        for p in &mut self.outbox {
            p.suspect = false;
        }
        while let Some((occupant, payload)) = self.offline_private.pop_front() {
            if let Err(e) = self.xmpp.send_private(&self.room_name, &occupant, &payload) {
                tracing::debug!(error = %e, "private payload not sent");
            }
        }
        self.emit(EngineEvent::Connection(ConnectionState::Connected))
            .await;
        self.send_waiting_private(&mut OsRng).await;
        if self.gate.is_none() {
            self.gate = Some(Gate {
                awaiting: BTreeSet::new(),
                deadline: Instant::now(),
            });
        }
        self.check_gate().await;
    }

    async fn check_gate(&mut self) {
        let Some(gate) = &self.gate else { return };
        if !self.online {
            return;
        }
        let missing = gate.awaiting.difference(&self.present).count();
        let expired = Instant::now() >= gate.deadline;
        if missing > 0 && !expired {
            return;
        }
        self.gate = None;
        if missing > 0 && (!self.held.is_empty() || !self.outbox.is_empty()) {
            self.warn_about(
                WarningCode::RejoinIncomplete,
                format!(
                    "{missing} member(s) did not come back after the reconnection; waiting messages went to those present."
                ),
                None,
                Vec::new(),
                Some(missing),
            )
            .await;
        }
        self.resend();
        while let Some((local_id, text)) = self.held.pop_front() {
            self.send_now(local_id, &text);
        }
    }

    fn resend(&mut self) {
        for i in 0..self.outbox.len() {
            let Some(p) = self.outbox.get(i) else { break };
            if p.id.is_some() {
                continue;
            }
            let sent = self.xmpp.send_groupchat(&self.room_name, &p.bytes).ok();
            if let Some(p) = self.outbox.get_mut(i) {
                p.id = sent;
            }
        }
    }

    fn send_now(&mut self, local_id: u64, text: &str) {
        match self.room.send_text(now(), text) {
            Ok(room_local) => {
                self.local_ids.insert(room_local, local_id);
            }
            Err(e) => tracing::debug!(error = %e, "text refused"),
        }
    }

    /// A private text: encrypted and sent now when we are online and have a session with
    /// the member; kept while offline (sent after a resumption, or under the member's new
    /// session after a re-join). Kept as text until the server has it either way.
    async fn send_private(
        &mut self,
        rng: &mut OsRng,
        nick: &str,
        text: Zeroizing<String>,
    ) -> Result<(), EngineError> {
        let address = self.resolve(nick)?;
        if self.private_out.len() >= MAX_PRIVATE_OUTBOX {
            return Err(EngineError::Offline);
        }
        let id = if self.online {
            Some(self.encrypt_private(rng, &address, &text).await?)
        } else {
            None
        };
        self.private_out.push_back(PrivateText {
            to: address,
            text,
            id: id.flatten(),
            deadline: Instant::now() + self.rejoin_wait,
        });
        self.emit(EngineEvent::PrivateSent {
            to: nick.to_owned(),
        })
        .await;
        Ok(())
    }

    /// Encrypts a private text for the member's current session and hands it to the
    /// transport; `Ok(None)` when the transport did not take it.
    async fn encrypt_private(
        &mut self,
        rng: &mut OsRng,
        address: &str,
        text: &str,
    ) -> Result<Option<MessageId>, EngineError> {
        // What the room queued before goes first, so that what follows is this text.
        while let Some(t) = self.room.poll_transmit() {
            self.transmit(t).await;
        }
        self.room.send_private_text(rng, address, text)?;
        let mut id = None;
        while let Some(t) = self.room.poll_transmit() {
            let ours = matches!(&t.to, Destination::Member(a) if a == address);
            let sent = self.transmit(t).await;
            if ours {
                id = sent;
            }
        }
        Ok(id)
    }

    /// Sends the private texts that wait, to every member we have a session with.
    async fn send_waiting_private(&mut self, rng: &mut OsRng) {
        if !self.online {
            return;
        }
        for i in 0..self.private_out.len() {
            let Some(p) = self.private_out.get(i).filter(|p| p.id.is_none()) else {
                continue;
            };
            let (to, text) = (p.to.clone(), p.text.clone());
            // Without a session with them yet it waits for one (or the deadline).
            if let Ok(id) = self.encrypt_private(rng, &to, &text).await {
                if let Some(p) = self.private_out.get_mut(i) {
                    p.id = id;
                }
            }
        }
    }

    /// Private texts that waited too long for a session with their member are dropped,
    /// with a warning.
    async fn expire_private(&mut self) {
        let t = Instant::now();
        let before = self.private_out.len();
        self.private_out
            .retain(|p| p.id.is_some() || p.deadline > t);
        let dropped = before.saturating_sub(self.private_out.len());
        if dropped > 0 {
            self.warn(
                WarningCode::RejoinIncomplete,
                format!(
                    "{dropped} private message(s) could not be sent: the member did not come back."
                ),
                None,
            )
            .await;
        }
    }

    async fn go_offline(&mut self, why: &str) {
        if self.finished {
            return;
        }
        if !why.is_empty() {
            self.emit(EngineEvent::Error {
                code: "offline",
                message: why.to_owned(),
            })
            .await;
        }
        self.emit(EngineEvent::Connection(ConnectionState::Offline))
            .await;
        self.finished = true;
    }

    // ---- commands -----------------------------------------------------------------

    fn resolve(&self, nick: &str) -> Result<String, EngineError> {
        let mut found = self
            .room
            .members()
            .into_iter()
            .filter(|m| m.nickname.as_deref() == Some(nick));
        let first = found.next().ok_or(EngineError::UnknownNickname)?;
        if found.next().is_some() {
            return Err(EngineError::AmbiguousNickname);
        }
        Ok(first.address)
    }

    async fn on_command(&mut self, command: Command, rng: &mut OsRng) {
        match command {
            Command::Send { local_id, text } => {
                if !self.online || self.gate.is_some() {
                    if self.held.len() >= MAX_HELD {
                        self.warn(
                            WarningCode::MessageRefused,
                            "Too many messages waiting for the connection; this one was not sent."
                                .into(),
                            None,
                        )
                        .await;
                    } else {
                        self.held.push_back((local_id, text));
                    }
                } else {
                    self.send_now(local_id, &text);
                }
            }
            Command::SendPrivate { nick, text, reply } => {
                let result = self.send_private(rng, &nick, text).await;
                let _ = reply.send(result);
            }
            Command::Ask {
                nick,
                question,
                answer,
                reply,
            } => {
                let result = self.resolve(&nick).and_then(|address| {
                    self.room
                        .start_verification(rng, &address, question.as_deref(), &answer)
                        .map_err(EngineError::from)
                });
                let _ = reply.send(result);
            }
            Command::Answer {
                nick,
                answer,
                reply,
            } => {
                let result = self.resolve(&nick).and_then(|address| {
                    self.room
                        .answer_verification(rng, &address, &answer)
                        .map_err(EngineError::from)
                });
                let _ = reply.send(result);
            }
            Command::MarkVerified {
                nick,
                verified,
                reply,
            } => {
                let result = self
                    .resolve(&nick)
                    .and_then(|address| self.view(&address).ok_or(EngineError::UnknownNickname));
                match result {
                    Ok(view) => {
                        self.set_verified(&view.nick, view.fingerprint_bytes, verified);
                        let _ = reply.send(Ok(()));
                        self.emit(EngineEvent::Verification {
                            nick,
                            verified,
                            manual: true,
                        })
                        .await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Members { reply } => {
                let views = self
                    .room
                    .members()
                    .iter()
                    .filter_map(|m| self.view(&m.address))
                    .collect();
                let _ = reply.send(views);
            }
            Command::Verified { reply } => {
                let _ = reply.send(self.verified.clone());
            }
            Command::Pending { reply } => {
                let _ = reply.send(self.held.len() + self.outbox.len() + self.private_out.len());
            }
            Command::Leave { reply } => {
                let _ = self.room.leave(now());
                self.flush().await;
                let _ = self.xmpp.leave(&self.room_name);
                let _ = self.xmpp.disconnect();
                self.held.clear();
                self.outbox.clear();
                self.private_out.clear();
                // `Left` and the answer wait until the transport has closed (bounded, in
                // `run`): a process that exits on `Left` must not cut off the leave.
                self.leaving = Some(reply);
                self.finished = true;
            }
            #[cfg(feature = "test-hooks")]
            Command::Freeze { reply } => {
                self.frozen = true;
                let _ = reply.send(());
            }
            #[cfg(feature = "test-hooks")]
            Command::Defect { reply } => {
                let _ = self.xmpp.leave(&self.room_name);
                let _ = self.xmpp.disconnect();
                self.held.clear();
                self.outbox.clear();
                self.defect = Some(reply);
                self.finished = true;
            }
        }
    }

    fn is_verified(&self, fingerprint: &[u8; 32]) -> bool {
        self.verified
            .iter()
            .any(|c| bool::from(subtle_eq(&c.fingerprint, fingerprint)))
    }

    fn set_verified(&mut self, nick: &str, fingerprint: [u8; 32], verified: bool) {
        self.verified.retain(|c| c.fingerprint != fingerprint);
        if verified {
            self.verified.push(VerifiedContact {
                nickname: nick.to_owned(),
                fingerprint,
            });
        }
    }

    fn view(&self, address: &str) -> Option<MemberView> {
        let info = self
            .room
            .members()
            .into_iter()
            .find(|m| m.address == address)?;
        let nick = info.nickname?;
        let fingerprint = info.fingerprint?;
        let safety = self.room.safety_number(address)?;
        let bytes = *fingerprint.as_bytes();
        Some(MemberView {
            nick,
            fingerprint: fingerprint.to_readable(),
            fingerprint_bytes: bytes,
            verified: self.is_verified(&bytes),
            safety_number: safety.to_readable(),
            safety_qr: safety.qr_payload(),
            in_epoch: info.in_epoch,
        })
    }

    fn nick_of(&self, address: &str) -> String {
        self.room
            .members()
            .into_iter()
            .find(|m| m.address == address)
            .and_then(|m| m.nickname)
            .unwrap_or_else(|| "a member".to_owned())
    }

    // ---- output -------------------------------------------------------------------

    /// Sends what the room wants sent and reports what happened.
    async fn flush(&mut self) {
        while let Some(t) = self.room.poll_transmit() {
            self.transmit(t).await;
        }
        while let Some(event) = self.room.poll_event() {
            self.on_room_event(event).await;
        }
    }

    /// Hands one transmit to the transport; for a private payload, the transport's id.
    async fn transmit(&mut self, t: Transmit) -> Option<MessageId> {
        match t.to {
            Destination::Room => {
                if self.outbox.len() >= MAX_OUTBOX {
                    self.outbox.pop_front();
                    self.warn(
                        WarningCode::MessageRefused,
                        "Too many messages waiting for the server; the oldest was dropped.".into(),
                        None,
                    )
                    .await;
                }
                let id = if self.online && self.gate.is_none() {
                    self.xmpp.send_groupchat(&self.room_name, &t.payload).ok()
                } else {
                    None
                };
                self.outbox.push_back(Pending {
                    bytes: t.payload,
                    id,
                    suspect: false,
                });
                None
            }
            Destination::Member(address) => {
                let occupant = address.strip_prefix(&self.prefix)?;
                if !self.online {
                    // Kept for a resumed session; dropped if we re-join instead.
                    if self.offline_private.len() < MAX_OFFLINE_PRIVATE {
                        self.offline_private
                            .push_back((occupant.to_owned(), t.payload));
                    }
                    return None;
                }
                match self
                    .xmpp
                    .send_private(&self.room_name, occupant, &t.payload)
                {
                    Ok(id) => Some(id),
                    Err(e) => {
                        tracing::debug!(error = %e, "private payload not sent");
                        None
                    }
                }
            }
        }
    }

    async fn on_room_event(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::MemberJoined {
                address,
                nickname,
                fingerprint,
            } => {
                self.check_key(&nickname, &fingerprint).await;
                if let Some(member) = self.view(&address) {
                    self.emit(EngineEvent::MemberJoined { member }).await;
                }
                // A new session with them: private texts that wait for it go now.
                if self
                    .private_out
                    .iter()
                    .any(|p| p.id.is_none() && p.to == address)
                {
                    self.send_waiting_private(&mut OsRng).await;
                }
            }
            RoomEvent::MemberLeft { nickname, .. } => {
                if let Some(nick) = nickname {
                    self.emit(EngineEvent::MemberLeft { nick }).await;
                }
            }
            RoomEvent::EpochReady { counter, members } => {
                self.emit(EngineEvent::Rekeyed {
                    epoch: counter,
                    members,
                })
                .await;
            }
            RoomEvent::Sent { local_id, id } => {
                if let Some(local_id) = self.local_ids.remove(&local_id) {
                    self.emit(EngineEvent::Sent {
                        local_id,
                        id: id.to_string(),
                    })
                    .await;
                }
            }
            RoomEvent::Message {
                id, nickname, text, ..
            } => {
                self.emit(EngineEvent::Message {
                    id: id.to_string(),
                    nick: nickname,
                    text,
                    private: false,
                })
                .await;
            }
            RoomEvent::PrivateMessage { nickname, text, .. } => {
                self.private_counter += 1;
                self.emit(EngineEvent::Message {
                    id: format!("p-{}", self.private_counter),
                    nick: nickname,
                    text,
                    private: true,
                })
                .await;
            }
            RoomEvent::Confirmation { id, confirmed, of } => {
                self.emit(EngineEvent::Confirmation {
                    id: id.to_string(),
                    confirmed,
                    of,
                })
                .await;
            }
            RoomEvent::Verification { member, event } => {
                let nick = self.nick_of(&member);
                match event {
                    SmpEvent::QuestionReceived { question } => {
                        self.emit(EngineEvent::Question { nick, question }).await;
                    }
                    SmpEvent::Succeeded | SmpEvent::Failed => {
                        let verified = event == SmpEvent::Succeeded;
                        if let Some(view) = self.view(&member) {
                            self.set_verified(&view.nick, view.fingerprint_bytes, verified);
                        }
                        self.emit(EngineEvent::Verification {
                            nick,
                            verified,
                            manual: false,
                        })
                        .await;
                    }
                    SmpEvent::Aborted { .. } => {
                        self.warn_about(
                            WarningCode::VerificationAborted,
                            format!("The secret question with {nick} was abandoned; ask again."),
                            None,
                            vec![nick.clone()],
                            None,
                        )
                        .await;
                    }
                }
            }
            RoomEvent::Alarm(alarm) => self.on_alarm(alarm).await,
        }
    }

    /// A loud warning when a nickname someone verified comes back with another key.
    /// (Keys are fresh every session, so an unverified nickname with a new key is
    /// normal; two keys at once under one nickname raise `NicknameTaken` in the room.)
    async fn check_key(&mut self, nickname: &str, fingerprint: &Fingerprint) {
        let bytes = *fingerprint.as_bytes();
        let verified_other_key = self
            .verified
            .iter()
            .any(|c| c.nickname == nickname && !bool::from(subtle_eq(&c.fingerprint, &bytes)));
        if verified_other_key && !self.is_verified(&bytes) {
            self.warn_about(
                WarningCode::KeyChanged,
                format!(
                    "{nickname} has a different key than the one you verified. It may be someone else: verify again."
                ),
                None,
                vec![nickname.to_owned()],
                None,
            )
            .await;
        }
    }

    async fn on_alarm(&mut self, alarm: Alarm) {
        let (code, message, id, who) = match alarm {
            Alarm::NicknameMismatch {
                member,
                reported_by,
            } => (
                WarningCode::NicknameMismatch,
                format!(
                    "{} is known to {} under another nickname.",
                    self.nick_of(&member),
                    self.nick_of(&reported_by)
                ),
                None,
                vec![self.nick_of(&member), self.nick_of(&reported_by)],
            ),
            Alarm::RosterSplit {
                member,
                reported_by,
            } => (
                WarningCode::RosterSplit,
                format!(
                    "{} sees a different key for {}: the server may be impersonating someone.",
                    self.nick_of(&reported_by),
                    self.nick_of(&member)
                ),
                None,
                vec![self.nick_of(&member), self.nick_of(&reported_by)],
            ),
            Alarm::Equivocation {
                sender,
                reported_by,
                ..
            } => (
                WarningCode::Equivocation,
                format!(
                    "{} received a different message from {} than we did.",
                    self.nick_of(&reported_by),
                    self.nick_of(&sender)
                ),
                None,
                vec![self.nick_of(&sender), self.nick_of(&reported_by)],
            ),
            Alarm::FalseAcknowledgement { reported_by } => (
                WarningCode::TranscriptInconsistent,
                format!(
                    "{} confirmed a message we never sent.",
                    self.nick_of(&reported_by)
                ),
                None,
                vec![self.nick_of(&reported_by)],
            ),
            Alarm::ChainBroken { sender, .. } => (
                WarningCode::TranscriptInconsistent,
                format!(
                    "The messages from {} do not follow on from each other.",
                    self.nick_of(&sender)
                ),
                None,
                vec![self.nick_of(&sender)],
            ),
            Alarm::ForgedOrigin { claimed_sender } => (
                WarningCode::ForgedMessage,
                format!(
                    "A message claiming to come from {} was forged and dropped.",
                    self.nick_of(&claimed_sender)
                ),
                None,
                vec![self.nick_of(&claimed_sender)],
            ),
            Alarm::AttestationTimeout { missing } => (
                WarningCode::MemberUnresponsive,
                format!(
                    "{} did not send their keys in time and were left out.",
                    self.nicks(&missing)
                ),
                None,
                missing.iter().map(|a| self.nick_of(a)).collect(),
            ),
            Alarm::HiddenMember {
                member,
                reported_by,
            } => (
                WarningCode::HiddenMember,
                format!(
                    "{} sees a member ({}) the server does not show us.",
                    self.nick_of(&reported_by),
                    self.nick_of(&member)
                ),
                None,
                vec![self.nick_of(&member), self.nick_of(&reported_by)],
            ),
            Alarm::Garbled { sender } => (
                WarningCode::Garbled,
                format!(
                    "A message from {} could not be decrypted.",
                    self.nick_of(&sender)
                ),
                None,
                vec![self.nick_of(&sender)],
            ),
            Alarm::HandshakeTimeout { member } => (
                WarningCode::MemberUnresponsive,
                format!(
                    "The key exchange with {} did not finish; they are left out for now.",
                    self.nick_of(&member)
                ),
                None,
                vec![self.nick_of(&member)],
            ),
            Alarm::Unconfirmed { id, missing } => (
                WarningCode::Unconfirmed,
                format!(
                    "A message was not confirmed by {} in time.",
                    self.nicks(&missing)
                ),
                Some(id.to_string()),
                missing.iter().map(|a| self.nick_of(a)).collect(),
            ),
            Alarm::Missing { sender, .. } => (
                WarningCode::MissingMessage,
                format!(
                    "A message from {} never reached us.",
                    self.nick_of(&sender)
                ),
                None,
                vec![self.nick_of(&sender)],
            ),
            Alarm::KeyChanged { member } => (
                WarningCode::KeyChanged,
                format!(
                    "{} has a different key than before. It may be someone else.",
                    self.nick_of(&member)
                ),
                None,
                vec![self.nick_of(&member)],
            ),
            Alarm::NicknameTaken { nickname, .. } => (
                WarningCode::NicknameTaken,
                format!(
                    "Two members call themselves {nickname}. Check their fingerprints before trusting either."
                ),
                None,
                vec![nickname.clone()],
            ),
            Alarm::UnboundOccupantName { .. } => (
                WarningCode::MemberRefused,
                "A member whose name is not bound to its key was left out.".to_owned(),
                None,
                Vec::new(),
            ),
            Alarm::RoomMismatch { .. } => (
                WarningCode::MemberRefused,
                "A member whose keys were made for another room was left out.".to_owned(),
                None,
                Vec::new(),
            ),
        };
        self.warn_about(code, message, id, who, None).await;
    }

    fn nicks(&self, addresses: &[String]) -> String {
        let names: Vec<String> = addresses.iter().map(|a| self.nick_of(a)).collect();
        if names.is_empty() {
            "some members".to_owned()
        } else {
            names.join(", ")
        }
    }
}

fn subtle_eq(a: &[u8; 32], b: &[u8; 32]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    a.ct_eq(b)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
