//! The tokio shell: listeners, one task per connection, TLS upgrade, timeouts, and the
//! hand-off of stanzas between sessions. All protocol decisions are in [`crate::stream`]
//! and [`crate::hub`]; this module only moves bytes and waits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::hub::{lock, Delivery, Hub, SessionId};
use crate::stream::{C2s, OsEntropy, Output};
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
}

pub(crate) struct Shared {
    pub(crate) hub: Mutex<Hub>,
    pub(crate) outboxes: Mutex<HashMap<SessionId, mpsc::Sender<String>>>,
    pub(crate) config: Config,
    pub(crate) secret: [u8; 32],
    pub(crate) tls: TlsIdentity,
    pub(crate) bosh: crate::http::Bosh,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn dispatch(&self, deliveries: Vec<Delivery>) {
        let outboxes = lock(&self.outboxes);
        for d in deliveries {
            if let Some(tx) = outboxes.get(&d.to) {
                if tx.try_send(d.xml).is_err() {
                    tracing::warn!(session = d.to.0, "outbox full or closed; stanza dropped");
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
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Whether a room exists (for tests; no names are logged or listed).
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.shared.hub).room_exists(room)
    }

    /// Number of open BOSH sessions.
    pub fn bosh_session_count(&self) -> usize {
        self.shared.bosh.count()
    }

    /// Number of rooms.
    pub fn room_count(&self) -> usize {
        lock(&self.shared.hub).room_count()
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
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
        let tls = TlsIdentity::from_config(&config)?;
        let c2s = TcpListener::bind(config.c2s)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.c2s,
                source,
            })?;
        let http = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let mut secret = [0u8; 32];
        {
            use rand_core::RngCore as _;
            rand_core::OsRng.fill_bytes(&mut secret);
        }
        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub::new(&config.domain, config.limits.clone())),
            outboxes: Mutex::new(HashMap::new()),
            config,
            secret,
            tls,
            bosh: crate::http::Bosh::default(),
        });
        Ok(Self { shared, c2s, http })
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
        Running {
            c2s_addr,
            http_addr,
            tls: shared.tls.clone(),
            http_tls: shared.config.http_is_tls(),
            shared,
            tasks,
        }
    }
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
}

async fn connection(mut tcp: TcpStream, ip: IpAddr, shared: Arc<Shared>) {
    let admitted = lock(&shared.hub).connect(ip, Instant::now());
    let Some(id) = admitted else {
        tracing::info!("connection refused: too many from one address");
        let msg = format!(
            "{}{}",
            xml::stream_header(&shared.config.domain, "refused"),
            xml::stream_error("policy-violation", "too many connections from your address")
        );
        let _ = tcp.write_all(msg.as_bytes()).await;
        let _ = tcp.shutdown().await;
        return;
    };
    let (mut rx, _guard, mut c2s) = open_session(&shared, id, ip, Instant::now());
    tracing::debug!(session = id.0, "connected");
    if let End::StartTls = drive(&mut tcp, &mut c2s, &mut rx, &shared).await {
        let handshake = tokio::time::timeout(
            c2s.read_timeout(Instant::now()),
            shared.tls.acceptor.accept(tcp),
        )
        .await;
        if let Ok(Ok(mut tls)) = handshake {
            c2s.tls_established();
            drive(&mut tls, &mut c2s, &mut rx, &shared).await;
        } else {
            tracing::debug!(session = id.0, "TLS handshake failed");
        }
    }
}

/// What an admitted stream starts with, whatever its transport: its outbox in the routing
/// table, the guard that leaves rooms and frees the address slot however the task ends
/// (even by a panic), and its state machine.
pub(crate) fn open_session(
    shared: &Arc<Shared>,
    id: SessionId,
    ip: IpAddr,
    now: Instant,
) -> (mpsc::Receiver<String>, SessionGuard, C2s) {
    let (tx, rx) = mpsc::channel(shared.config.limits.outbox_stanzas.max(1));
    lock(&shared.outboxes).insert(id, tx);
    let guard = SessionGuard {
        shared: Arc::clone(shared),
        ip,
        id,
    };
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
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        lock(&self.shared.outboxes).remove(&self.id);
        let deliveries = lock(&self.shared.hub).disconnect(self.ip, self.id);
        self.shared.dispatch(deliveries);
        tracing::debug!(session = self.id.0, "disconnected");
    }
}

/// Writes everything or fails; a client that stops reading for the idle timeout is
/// dropped instead of holding its task forever.
async fn write<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, io.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Writes what the machine produced. Returns `Some(end)` when the connection must stop
/// being driven in its current form.
async fn flush<S: AsyncWrite + Unpin>(io: &mut S, c2s: &mut C2s, shared: &Shared) -> Option<End> {
    while let Some(out) = c2s.poll_output() {
        match out {
            Output::Send(xml) => {
                if !write(io, xml.as_bytes(), c2s.idle_timeout()).await {
                    return Some(End::Closed);
                }
            }
            Output::Pause(d) => {
                let _ = io.flush().await;
                tokio::time::sleep(d).await;
            }
            Output::Deliver(d) => shared.dispatch(d),
            Output::StartTls => {
                let _ = io.flush().await;
                return Some(End::StartTls);
            }
            Output::Close => {
                let _ = io.flush().await;
                let _ = io.shutdown().await;
                return Some(End::Closed);
            }
        }
    }
    if io.flush().await.is_err() {
        return Some(End::Closed);
    }
    None
}

async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    c2s: &mut C2s,
    rx: &mut mpsc::Receiver<String>,
    shared: &Shared,
) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(end) = flush(io, c2s, shared).await {
            return end;
        }
        let timeout = c2s.read_timeout(Instant::now());
        tokio::select! {
            read = tokio::time::timeout(timeout, io.read(&mut buf)) => match read {
                Err(_) => c2s.handle_timeout(),
                Ok(Ok(0)) | Ok(Err(_)) => return End::Closed,
                Ok(Ok(n)) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    c2s.handle_bytes(Instant::now(), bytes, &shared.hub);
                }
            },
            Some(xml) = rx.recv() => {
                if !write(io, xml.as_bytes(), c2s.idle_timeout()).await {
                    return End::Closed;
                }
            }
        }
    }
}
