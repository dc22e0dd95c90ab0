//! What the app holds: the engines of the joined rooms and the embedded relay.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use cryptocat_client::{EngineHandle, ServerUrl, TrustConfig};
use cryptocat_relay::{Config as RelayConfig, Running, Server, StartError};
use tokio::sync::Mutex;

use crate::dto::LocalServer;

/// Shared by every command (Tauri's managed state).
#[derive(Default)]
pub struct AppState {
    /// Joined rooms by (lower-cased) room name.
    pub rooms: Mutex<HashMap<String, EngineHandle>>,
    /// The rooms joined on the embedded relay.
    pub local_rooms: Mutex<HashSet<String>>,
    /// The embedded relay, once started.
    relay: Mutex<Option<Embedded>>,
}

struct Embedded {
    running: Running,
    /// Listening on every interface (the "local network" opt-in), not loopback only.
    local_network: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No room names: this may end up in a log.
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Where the embedded relay listens, and what to trust to reach it.
#[derive(Debug, Clone)]
pub struct LocalRelay {
    /// `xmpp://127.0.0.1:PORT`.
    pub url: ServerUrl,
    /// Its self-signed certificate only.
    pub trust: TrustConfig,
}

/// Why the embedded relay is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// It could not start (no port, no certificate).
    Failed,
    /// It runs with the other network setting and rooms use it: leave them first.
    InUse,
}

/// The relay's XMPP domain (rooms at `conference.localhost`).
pub const LOCAL_DOMAIN: &str = "localhost";
/// The ports tried first (the XMPP defaults); free ports are used when they are taken.
pub const DEFAULT_C2S_PORT: u16 = 5222;
/// See [`DEFAULT_C2S_PORT`].
pub const DEFAULT_HTTP_PORT: u16 = 5280;

impl AppState {
    /// Leaves every joined room, each bounded by `timeout`.
    pub async fn leave_all(&self, timeout: std::time::Duration) {
        let rooms: Vec<EngineHandle> = self.rooms.lock().await.drain().map(|(_, h)| h).collect();
        for handle in rooms {
            if tokio::time::timeout(timeout, handle.leave()).await.is_err() {
                tracing::warn!("leaving a room timed out at exit");
            }
        }
    }

    /// Whether the embedded relay runs.
    pub async fn relay_started(&self) -> bool {
        self.relay.lock().await.is_some()
    }

    /// The embedded relay, started on first use: c2s (STARTTLS) and plain HTTP (WebSocket,
    /// BOSH; plain HTTP counts as secure from loopback only) on 127.0.0.1, or on every
    /// interface with `local_network`; ports 5222 and 5280 when free, otherwise free
    /// ports. Its self-signed certificate is written to a temporary directory (so that it
    /// can be handed to `cryptocat join --ca-cert`); nothing else goes to disk. Asking for
    /// the other `local_network` setting restarts it when no room uses it.
    pub async fn local_relay(&self, local_network: bool) -> Result<LocalRelay, RelayError> {
        let mut relay = self.relay.lock().await;
        if relay
            .as_ref()
            .is_some_and(|r| r.local_network != local_network)
        {
            if !self.local_rooms.lock().await.is_empty() {
                return Err(RelayError::InUse);
            }
            *relay = None;
        }
        if relay.is_none() {
            let running = start_relay(local_network).await.map_err(|e| {
                tracing::warn!("the embedded relay could not start: {e}");
                RelayError::Failed
            })?;
            *relay = Some(Embedded {
                running,
                local_network,
            });
        }
        let running = &relay.as_ref().ok_or(RelayError::Failed)?.running;
        let url = ServerUrl::parse(&format!("xmpp://127.0.0.1:{}", running.c2s_addr.port()))
            .map_err(|_| RelayError::Failed)?;
        Ok(LocalRelay {
            url,
            trust: TrustConfig::only(running.tls.certificate.clone()),
        })
    }

    /// How someone else joins `room` on the embedded relay, when it runs.
    pub async fn local_server(&self, room: &str) -> Option<LocalServer> {
        let relay = self.relay.lock().await;
        let embedded = relay.as_ref()?;
        let running = &embedded.running;
        let http = running.http_addr?;
        let c2s_port = running.c2s_addr.port();
        let websocket_url = format!("ws://{LOCAL_DOMAIN}:{}/xmpp-websocket", http.port());
        let cert_path = running.tls.certificate_path.display().to_string();
        let lan_address = if embedded.local_network {
            lan_address().map(|ip| ip.to_string())
        } else {
            None
        };
        let lan_join_command = lan_address.as_ref().map(|ip| {
            format!(
                "cryptocat join --server xmpp://{ip}:{c2s_port} --domain {LOCAL_DOMAIN} \
                 --ca-cert {} --room {room} --nick NICK",
                shell_word(&cert_file_name())
            )
        });
        Some(LocalServer {
            domain: LOCAL_DOMAIN.to_owned(),
            join_command: join_command(&websocket_url, room),
            websocket_url,
            bosh_url: format!("http://{LOCAL_DOMAIN}:{}/http-bind", http.port()),
            c2s_port,
            local_network: embedded.local_network,
            lan_address,
            lan_join_command,
            certificate_fingerprint: running.tls.fingerprint(),
            certificate_path: cert_path,
        })
    }
}

/// `cryptocat join` on this computer through the relay's WebSocket (plain HTTP is secure
/// on loopback; the host `localhost` is also the XMPP domain). Room names never need
/// quoting (the engine allows letters, digits, `-`, `_` and `.` only).
pub fn join_command(websocket_url: &str, room: &str) -> String {
    format!("cryptocat join --server {websocket_url} --room {room} --nick NICK")
}

/// The name the certificate has in the local-network command (the other person copies the
/// file shown next to it).
fn cert_file_name() -> String {
    format!("{LOCAL_DOMAIN}.pem")
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

async fn start_relay(local_network: bool) -> Result<Running, StartError> {
    let ip = if local_network {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let mut c2s = SocketAddr::new(ip, DEFAULT_C2S_PORT);
    let mut http = SocketAddr::new(ip, DEFAULT_HTTP_PORT);
    // At most three tries: each taken default port falls back to a free one once.
    for _ in 0..3 {
        let mut config = RelayConfig::new(LOCAL_DOMAIN, c2s);
        config.http = Some(http);
        config.http_tls = Some(false);
        match Server::bind(config).await {
            Ok(server) => return Ok(server.spawn()),
            Err(StartError::Bind { addr, .. }) if addr == c2s && c2s.port() != 0 => c2s.set_port(0),
            Err(StartError::Bind { addr, .. }) if addr == http && http.port() != 0 => {
                http.set_port(0)
            }
            Err(e) => return Err(e),
        }
    }
    let mut config = RelayConfig::new(LOCAL_DOMAIN, c2s);
    config.http = Some(http);
    config.http_tls = Some(false);
    Ok(Server::bind(config).await?.spawn())
}

/// This computer's address on the local network: the source address of the default route
/// (a UDP "connect" sends nothing). `None` without a route.
fn lan_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn commands_are_shell_safe() {
        assert_eq!(
            join_command("ws://localhost:5280/xmpp-websocket", "lobby"),
            "cryptocat join --server ws://localhost:5280/xmpp-websocket --room lobby --nick NICK"
        );
        assert_eq!(shell_word("/tmp/a b/x.pem"), "'/tmp/a b/x.pem'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    /// The relay starts on loopback with both listeners; a second one (the defaults now
    /// taken by the first, or by anything else) falls back to free ports.
    #[tokio::test]
    async fn relay_falls_back_to_free_ports() {
        let a = AppState::default();
        let b = AppState::default();
        a.local_relay(false).await.unwrap();
        b.local_relay(false).await.unwrap();
        let (sa, sb) = (
            a.local_server("lobby").await.unwrap(),
            b.local_server("lobby").await.unwrap(),
        );
        assert_ne!(sa.c2s_port, sb.c2s_port);
        assert_ne!(sa.websocket_url, sb.websocket_url);
        assert!(sb.websocket_url.starts_with("ws://localhost:"));
        assert!(!sa.local_network && sa.lan_address.is_none() && sa.lan_join_command.is_none());
        assert_eq!(sa.certificate_fingerprint.len(), 32 * 3 - 1);
        assert!(std::path::Path::new(&sa.certificate_path).exists());
    }

    /// Switching to the local network restarts an unused relay on every interface, and
    /// is refused while a room uses it.
    #[tokio::test]
    async fn local_network_switch() {
        let state = AppState::default();
        state.local_relay(false).await.unwrap();
        state.local_relay(true).await.unwrap();
        let info = state.local_server("lobby").await.unwrap();
        assert!(info.local_network);
        if let Some(cmd) = &info.lan_join_command {
            assert!(cmd.contains("--ca-cert localhost.pem"), "{cmd}");
        }
        state.local_rooms.lock().await.insert("lobby".into());
        assert_eq!(
            state.local_relay(false).await.unwrap_err(),
            RelayError::InUse
        );
        assert!(state.local_relay(true).await.is_ok());
    }
}
