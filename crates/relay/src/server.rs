//! The tokio shell: listeners, one task per connection, TLS upgrade, timeouts, and the
//! hand-off of stanzas between sessions. All protocol decisions are in [`crate::stream`]
//! and [`crate::hub`]; this module only moves bytes and waits.
//!
//! **Shutdown** ([`Running::shutdown`]): the accept loops stop, every stream is ended with
//! the `system-shutdown` stream error (RFC 6120 4.9.3.22) and `</stream:stream>` (a
//! WebSocket `<close/>`, a BOSH terminate body), sessions kept for XEP-0198 resumption are
//! dropped, idle HTTP connections are closed, and the call returns once every connection
//! is gone or the grace period is over.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::acme::{Acme, AcmeError};
use crate::config::Config;
use crate::hub::{lock, Delivery, Hub, SessionId};
use crate::outbox::Outbox;
use crate::retained::{Counters, Retained};
use crate::stream::{C2s, Detached, OsEntropy, Output};
use crate::tls::{TlsError, TlsIdentity};
use crate::xml;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound (address in use, permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The domain is not a valid XMPP domain.
    #[error("invalid domain {0:?}")]
    Domain(String),
    /// ACME cannot be set up.
    #[error(transparent)]
    Acme(#[from] AcmeError),
}

pub(crate) struct Shared {
    pub(crate) hub: Mutex<Hub>,
    /// XEP-0198: stream-managed sessions whose connection broke, by resumption id.
    pub(crate) detached: Mutex<HashMap<String, Parked>>,
    /// XEP-0198: live stream-managed TCP and WebSocket sessions by resumption id, with their account and
    /// a signal that makes the connection let go of the session (a `<resume/>` that arrives
    /// before the server noticed the old connection broke).
    pub(crate) attached: Mutex<HashMap<String, (String, Arc<Notify>)>>,
    pub(crate) outboxes: Mutex<HashMap<SessionId, Arc<Outbox>>>,
    /// What is held on clients' behalf, counted where it is kept.
    pub(crate) counters: Arc<Counters>,
    pub(crate) config: Config,
    pub(crate) secret: [u8; 32],
    pub(crate) tls: TlsIdentity,
    pub(crate) bosh: crate::http::Bosh,
    /// Open connections to the HTTP listener, per address and in total.
    pub(crate) http_connections: Mutex<crate::address::ConnectionCounts>,
    /// `true` once the server is shutting down: every connection ends its stream.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Every connection holds a clone (in its [`SessionGuard`] or HTTP task); shutdown
    /// drops this one and waits until the receiver sees no sender left.
    pub(crate) alive: Mutex<Option<mpsc::Sender<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// A token that keeps shutdown waiting while a connection lives (`None` once shutdown
    /// began).
    pub(crate) fn alive(&self) -> Option<mpsc::Sender<()>> {
        lock(&self.alive).clone()
    }

    /// Resolves once shutdown begins.
    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    pub(crate) fn dispatch(&self, deliveries: Vec<Delivery>) {
        let outboxes = lock(&self.outboxes);
        for d in deliveries {
            if let Some(outbox) = outboxes.get(&d.to) {
                if !outbox.push(d.xml) {
                    tracing::warn!(session = d.to.0, "outbox full; stanza dropped");
                }
            }
        }
    }
}

/// A server whose listeners are bound; [`Server::spawn`] starts serving.
pub struct Server {
    shared: Arc<Shared>,
    c2s: TcpListener,
    http: Option<TcpListener>,
    acme: Option<(Acme, TcpListener)>,
    alive: mpsc::Receiver<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("c2s", &self.c2s.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The c2s address actually bound.
    pub c2s_addr: SocketAddr,
    /// The HTTP address actually bound.
    pub http_addr: Option<SocketAddr>,
    /// The TLS identity.
    pub tls: TlsIdentity,
    /// Whether the HTTP listener speaks HTTPS.
    pub http_tls: bool,
    /// The ACME challenge listener's address, with ACME.
    pub challenge_addr: Option<SocketAddr>,
    acme: Option<Acme>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    alive: Option<mpsc::Receiver<()>>,
}

impl Running {
    /// Whether a room exists (for tests; no names are logged or listed).
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.shared.hub).room_exists(room)
    }

    /// Number of detached stream-managed sessions kept for resumption (XEP-0198).
    pub fn detached_count(&self) -> usize {
        lock(&self.shared.detached).len()
    }

    /// Number of open BOSH sessions.
    pub fn bosh_session_count(&self) -> usize {
        self.shared.bosh.count()
    }

    /// What the relay holds on its clients' behalf now (counted where it is kept).
    pub fn retained(&self) -> Retained {
        let c = &self.shared.counters;
        Retained {
            outbox_bytes: Counters::get(&c.outbox_bytes),
            http_body_bytes: Counters::get(&c.http_body_bytes),
            http_connections: lock(&self.shared.http_connections).total(),
            sessions: lock(&self.shared.hub).session_count(),
            bosh_sessions: self.shared.bosh.count(),
        }
    }

    /// Number of registered (SCRAM) accounts.
    pub fn account_count(&self) -> usize {
        lock(&self.shared.hub).account_count()
    }

    /// Number of rooms.
    pub fn room_count(&self) -> usize {
        lock(&self.shared.hub).room_count()
    }

    /// The ACME side (status, forced renewal), when ACME is on.
    pub fn acme(&self) -> Option<&Acme> {
        self.acme.as_ref()
    }

    /// The addresses and pin people use to reach this server, for invite links
    /// ([`crate::public`]).
    pub fn public_access(&self) -> cryptocat_link::Access {
        crate::public::access(
            &self.shared.config,
            self.c2s_addr,
            self.http_addr,
            self.http_tls,
            self.tls.pin(),
        )
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Stops accepting connections (open ones go on; see [`Self::shutdown`]).
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Shuts down cleanly: stops accepting, ends every stream with `system-shutdown`
    /// (`</stream:stream>` on TCP, `<close/>` on WebSocket, a terminate body on BOSH),
    /// drops the sessions kept for resumption, and waits until every connection is gone,
    /// at most `grace`. Returns whether all were gone in time.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        // The listeners are closed when this returns (a new server may bind them).
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        self.shared.shutdown.send_replace(true);
        let parked = std::mem::take(&mut *lock(&self.shared.detached));
        drop(parked);
        drop(lock(&self.shared.alive).take());
        let Some(mut alive) = self.alive.take() else {
            return true;
        };
        tokio::time::timeout(grace, async move { while alive.recv().await.is_some() {} })
            .await
            .is_ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    /// Prepares TLS and binds the listeners.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        if jid::BareJid::new(&config.domain)
            .ok()
            .filter(|j| j.node().is_none())
            .is_none()
        {
            return Err(StartError::Domain(config.domain.clone()));
        }
        let (tls, acme) = if config.acme.is_some() {
            let (tls, acme) = Acme::prepare(&config)?;
            (tls, Some(acme))
        } else {
            (TlsIdentity::from_config(&config)?, None)
        };
        let c2s = listen(config.c2s).map_err(|source| StartError::Bind {
            addr: config.c2s,
            source,
        })?;
        let http = match config.http {
            Some(addr) => Some(listen(addr).map_err(|source| StartError::Bind { addr, source })?),
            None => None,
        };
        let acme = match (acme, &config.acme) {
            (Some(acme), Some(settings)) => {
                let addr = settings.challenge_listen;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?;
                Some((acme, listener))
            }
            _ => None,
        };
        let (alive_tx, alive) = mpsc::channel(1);
        let mut secret = [0u8; 32];
        {
            use rand_core::RngCore as _;
            rand_core::OsRng.fill_bytes(&mut secret);
        }
        let shared = Arc::new(Shared {
            hub: Mutex::new(
                Hub::new(&config.domain, config.limits.clone())
                    .with_require_key_bound(config.require_key_bound),
            ),
            outboxes: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            config,
            secret,
            tls,
            bosh: crate::http::Bosh::default(),
            http_connections: Mutex::default(),
            detached: Mutex::new(HashMap::new()),
            attached: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
            alive: Mutex::new(Some(alive_tx)),
        });
        Ok(Self {
            shared,
            c2s,
            http,
            acme,
            alive,
        })
    }

    /// Starts the accept loops on the current tokio runtime.
    pub fn spawn(self) -> Running {
        let c2s_addr = self.c2s.local_addr().unwrap_or(self.shared.config.c2s);
        let http_addr = self.http.as_ref().and_then(|l| l.local_addr().ok());
        let mut tasks = Vec::new();
        let shared = Arc::clone(&self.shared);
        tasks.push(tokio::spawn(accept_c2s(self.c2s, Arc::clone(&shared))));
        if let Some(http) = self.http {
            tasks.push(tokio::spawn(crate::http::accept(http, Arc::clone(&shared))));
        }
        let mut challenge_addr = None;
        let acme = self.acme.map(|(acme, listener)| {
            challenge_addr = listener.local_addr().ok();
            tasks.push(tokio::spawn(crate::acme::serve_challenges(
                listener,
                acme.clone(),
            )));
            tasks.push(tokio::spawn(acme.clone().run()));
            acme
        });
        Running {
            c2s_addr,
            http_addr,
            tls: shared.tls.clone(),
            http_tls: shared.config.http_is_tls(),
            challenge_addr,
            acme,
            shared,
            tasks,
            alive: Some(self.alive),
        }
    }
}

/// The accept queue asked of the kernel for the c2s and HTTP listeners (Linux caps it at
/// `net.core.somaxconn`, 4,096 since 5.4). tokio's default of 1,024 overflowed under a
/// burst of connections (clients reconnecting together after an outage, or
/// `tests/relay/robustness.rs` on a loaded machine): past it Linux drops the handshake's
/// last ACK or answers with SYN cookies, and clients wait for retransmissions.
pub const LISTEN_BACKLOG: u32 = 65_535;

/// Binds a listener with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR` on Unix, as tokio's
/// `TcpListener::bind` sets it).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn accept_c2s(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(tcp, peer.ip(), Arc::clone(&shared)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

enum End {
    StartTls,
    Closed,
    /// XEP-0198 `<resume/>`: the shell looks the detached session up.
    Resume {
        previd: String,
        h: u32,
        user: String,
    },
}

/// A detached session (XEP-0198): its machine state, its outbox (stanzas keep arriving
/// there) and the guard that keeps it in the hub and its rooms until it expires.
pub(crate) struct Parked {
    pub(crate) state: Detached,
    pub(crate) rx: Arc<Outbox>,
    pub(crate) guard: SessionGuard,
    /// Tells this parking from a later one of the same session.
    generation: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Keeps the session for `sm_resume_secs` (if there is room), then ends it.
pub(crate) fn park(shared: &Arc<Shared>, state: Detached, rx: Arc<Outbox>, guard: SessionGuard) {
    let id = state.id.clone();
    let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut parked = lock(&shared.detached);
        if parked.len() >= shared.config.limits.sm_detached_sessions {
            tracing::info!(session = guard.id.0, "no room to keep a detached session");
            drop(parked);
            drop(guard);
            return;
        }
        tracing::debug!(session = guard.id.0, "session detached for resumption");
        parked.insert(
            id.clone(),
            Parked {
                state,
                rx: Arc::clone(&rx),
                guard,
                generation,
            },
        );
    }
    let shared = Arc::clone(shared);
    let lifetime = Duration::from_secs(shared.config.limits.sm_resume_secs);
    tokio::spawn(async move {
        // Ends at its lifetime, or as soon as its outbox overflows (it could not be
        // resumed, and what it held is freed now).
        tokio::select! {
            () = tokio::time::sleep(lifetime) => {}
            () = rx.ended() => {}
        }
        let expired = {
            let mut parked = lock(&shared.detached);
            match parked.get(&id) {
                Some(p) if p.generation == generation => parked.remove(&id),
                _ => None,
            }
        };
        if let Some(p) = expired {
            tracing::debug!(session = p.guard.id.0, "detached session expired");
        }
    });
}

/// This connection's entry in [`Shared::attached`], kept in step with the machine.
pub(crate) struct Attachment {
    pub(crate) takeover: Arc<Notify>,
    registered: Option<String>,
}

impl Attachment {
    pub(crate) fn new() -> Self {
        Self {
            takeover: Arc::new(Notify::new()),
            registered: None,
        }
    }

    pub(crate) fn sync(&mut self, c2s: &C2s, shared: &Shared) {
        if self.registered.is_some() {
            return;
        }
        if let Some((id, user)) = c2s.resumable() {
            lock(&shared.attached)
                .insert(id.to_owned(), (user.to_owned(), Arc::clone(&self.takeover)));
            self.registered = Some(id.to_owned());
        }
    }

    pub(crate) fn release(&mut self, shared: &Shared) {
        if let Some(id) = self.registered.take() {
            let mut attached = lock(&shared.attached);
            if attached
                .get(&id)
                .is_some_and(|(_, n)| Arc::ptr_eq(n, &self.takeover))
            {
                attached.remove(&id);
            }
        }
    }
}

/// Takes the detached session `previd` if it belongs to `user`.
fn take_parked(shared: &Shared, previd: &str, user: &str) -> Option<Parked> {
    let taken = {
        let mut parked = lock(&shared.detached);
        match parked.get(previd) {
            Some(p) if p.state.user == user => parked.remove(previd),
            _ => None,
        }
    }?;
    if taken.rx.overflowed() {
        // Stanzas for it were dropped: end it (the guard leaves the rooms) rather than
        // resume it as if nothing was lost.
        tracing::info!(session = taken.guard.id.0, "outbox overflowed; not resumed");
        return None;
    }
    Some(taken)
}

/// Finds the session to resume: detached already, or still attached to a connection the
/// server has not seen break (that connection is told to let go, and we wait for it).
pub(crate) async fn find_session(shared: &Shared, previd: &str, user: &str) -> Option<Parked> {
    if let Some(p) = take_parked(shared, previd, user) {
        return Some(p);
    }
    let live = lock(&shared.attached)
        .get(previd)
        .filter(|(owner, _)| owner == user)
        .map(|(_, n)| Arc::clone(n))?;
    live.notify_one();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(p) = take_parked(shared, previd, user) {
            return Some(p);
        }
    }
    None
}

async fn connection(mut tcp: TcpStream, ip: IpAddr, shared: Arc<Shared>) {
    let admitted = lock(&shared.hub).admit(ip, Instant::now());
    let id = match admitted {
        Ok(id) => id,
        Err(refused) => return refuse(tcp, refused, &shared).await,
    };
    let (mut rx, mut guard, mut c2s) = open_session(&shared, id, ip, Instant::now());
    tracing::debug!(session = id.0, "connected");
    let mut attachment = Attachment::new();
    if let End::StartTls = drive(&mut tcp, &mut c2s, &rx, &shared, &mut attachment).await {
        let limit = c2s
            .read_timeout(Instant::now())
            .min(shared.config.limits.tls_handshake_timeout());
        let handshake = tokio::time::timeout(limit, shared.tls.acceptor.accept(tcp)).await;
        if let Ok(Ok(mut tls)) = handshake {
            if let Some(exporter) = crate::tls::exporter(tls.get_ref().1) {
                c2s.set_channel_binding(exporter);
            }
            c2s.tls_established();
            while let End::Resume { previd, h, user } =
                drive(&mut tls, &mut c2s, &rx, &shared, &mut attachment).await
            {
                match find_session(&shared, &previd, &user).await {
                    Some(p) => {
                        // This connection takes the old session over; its own fresh
                        // registration (never bound) is released.
                        c2s.resumed(p.guard.id, p.state, h);
                        rx = p.rx;
                        guard = p.guard;
                    }
                    None => c2s.resume_failed(),
                }
            }
        } else {
            tracing::debug!(session = id.0, "TLS handshake failed");
        }
    }
    attachment.release(&shared);
    // A session whose outbox overflowed ends: its client was not reading.
    if let Some(state) = c2s.detach().filter(|_| !rx.overflowed()) {
        park(&shared, state, rx, guard);
    }
}

/// Answers a refused connection with a stream error and closes it.
async fn refuse(mut tcp: TcpStream, refused: crate::hub::Refused, shared: &Shared) {
    tracing::info!(%refused, "connection refused");
    let msg = format!(
        "{}{}",
        xml::stream_header(&shared.config.domain, "refused"),
        xml::stream_error("policy-violation", &refused.to_string())
    );
    let limit = shared.config.limits.write_timeout();
    let _ = tokio::time::timeout(limit, async {
        let _ = tcp.write_all(msg.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// What an admitted stream starts with, whatever its transport: its outbox in the routing
/// table, the guard that leaves rooms and frees the address slot however the task ends
/// (even by a panic), and its state machine.
pub(crate) fn open_session(
    shared: &Arc<Shared>,
    id: SessionId,
    ip: IpAddr,
    now: Instant,
) -> (Arc<Outbox>, SessionGuard, C2s) {
    let rx = Outbox::new(&shared.config.limits, Arc::clone(&shared.counters));
    lock(&shared.outboxes).insert(id, Arc::clone(&rx));
    let guard = SessionGuard::new(shared, ip, id);
    let c2s = C2s::new(
        id,
        ip,
        &shared.config.domain,
        shared.config.limits.clone(),
        shared.secret,
        Box::new(OsEntropy),
        now,
    );
    (rx, guard, c2s)
}

pub(crate) struct SessionGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ip: IpAddr,
    pub(crate) id: SessionId,
    /// Keeps shutdown waiting for this session.
    _alive: Option<mpsc::Sender<()>>,
}

impl SessionGuard {
    pub(crate) fn new(shared: &Arc<Shared>, ip: IpAddr, id: SessionId) -> Self {
        Self {
            shared: Arc::clone(shared),
            ip,
            id,
            _alive: shared.alive(),
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        lock(&self.shared.outboxes).remove(&self.id);
        let deliveries = lock(&self.shared.hub).disconnect(self.ip, self.id);
        self.shared.dispatch(deliveries);
        tracing::debug!(session = self.id.0, "disconnected");
    }
}

/// Runs a write (or flush, or shutdown) to the client: `false` when it failed, took
/// longer than `write_timeout_secs`, or the session's outbox overflowed meanwhile. A
/// client that stops reading is dropped instead of holding its task and buffers.
async fn bounded<T>(
    io_op: impl std::future::Future<Output = std::io::Result<T>>,
    shared: &Shared,
    outbox: &Outbox,
) -> bool {
    tokio::select! {
        r = tokio::time::timeout(shared.config.limits.write_timeout(), io_op) => {
            matches!(r, Ok(Ok(_)))
        }
        () = outbox.ended() => false,
    }
}

/// Writes what the machine produced. Returns `Some(end)` when the connection must stop
/// being driven in its current form.
///
/// Once a write fails, nothing more is written, but the deliveries to other sessions the
/// machine queued behind it still go out: they come from stanzas already read and
/// handled (a leave read together with an earlier message whose echo could not be
/// written must still reach the other occupants).
async fn flush<S: AsyncWrite + Unpin>(
    io: &mut S,
    c2s: &mut C2s,
    shared: &Shared,
    outbox: &Outbox,
) -> Option<End> {
    let mut broken = false;
    while let Some(out) = c2s.poll_output() {
        match out {
            Output::Deliver(d) => shared.dispatch(d),
            _ if broken => {}
            Output::Send(xml) => {
                if !bounded(io.write_all(xml.as_bytes()), shared, outbox).await {
                    tracing::debug!(session = c2s.id().0, "write failed; connection dropped");
                    broken = true;
                }
            }
            Output::Pause(d) => {
                broken = !bounded(io.flush(), shared, outbox).await;
                tokio::time::sleep(d).await;
            }
            Output::StartTls => {
                if !bounded(io.flush(), shared, outbox).await {
                    return Some(End::Closed);
                }
                return Some(End::StartTls);
            }
            Output::Close => {
                if bounded(io.flush(), shared, outbox).await {
                    bounded(io.shutdown(), shared, outbox).await;
                }
                return Some(End::Closed);
            }
            Output::Resume { previd, h, user } => {
                if !bounded(io.flush(), shared, outbox).await {
                    return Some(End::Closed);
                }
                return Some(End::Resume { previd, h, user });
            }
        }
    }
    if broken || !bounded(io.flush(), shared, outbox).await {
        return Some(End::Closed);
    }
    None
}

async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    c2s: &mut C2s,
    rx: &Outbox,
    shared: &Shared,
    attachment: &mut Attachment,
) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    let mut stopping = std::pin::pin!(shared.stopping());
    loop {
        attachment.sync(c2s, shared);
        if let Some(end) = flush(io, c2s, shared, rx).await {
            return end;
        }
        let takeover = Arc::clone(&attachment.takeover);
        let timeout = c2s.read_timeout(Instant::now());
        tokio::select! {
            read = tokio::time::timeout(timeout, io.read(&mut buf)) => match read {
                Err(_) => c2s.handle_timeout(),
                Ok(Ok(0)) => {
                    tracing::debug!(session = c2s.id().0, "connection closed by the peer");
                    return End::Closed;
                }
                Ok(Err(e)) => {
                    tracing::debug!(session = c2s.id().0, error = %e.kind(), "read failed");
                    return End::Closed;
                }
                Ok(Ok(n)) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    c2s.handle_bytes(Instant::now(), bytes, &shared.hub);
                }
            },
            next = rx.recv() => match next {
                Some(xml) => c2s.outgoing(xml),
                None => {
                    tracing::info!(session = c2s.id().0, "outbox full: client not reading; dropped");
                    return End::Closed;
                }
            },
            // A resumption on another connection takes this session over.
            () = takeover.notified() => return End::Closed,
            () = &mut stopping => {
                c2s.fail("system-shutdown", "the server is shutting down");
                return flush(io, c2s, shared, rx).await.unwrap_or(End::Closed);
            }
        }
    }
}
