//! What the app holds: the engines of the joined rooms and the embedded relay.

use std::collections::HashMap;
use std::net::SocketAddr;

use cryptocat_client::{EngineHandle, ServerUrl, TrustConfig};
use cryptocat_relay::{Config as RelayConfig, Running, Server};
use tokio::sync::Mutex;

/// Shared by every command (Tauri's managed state).
#[derive(Default)]
pub struct AppState {
    /// Joined rooms by (lower-cased) room name.
    pub rooms: Mutex<HashMap<String, EngineHandle>>,
    /// The embedded relay, once started.
    relay: Mutex<Option<Running>>,
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

/// The relay's XMPP domain (rooms at `conference.localhost`).
pub const LOCAL_DOMAIN: &str = "localhost";

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

    /// The embedded relay, started on loopback on first use (c2s with STARTTLS on a free
    /// port; no HTTP listener, nothing written to disk).
    pub async fn local_relay(&self) -> Result<LocalRelay, String> {
        let mut relay = self.relay.lock().await;
        if relay.is_none() {
            let config = RelayConfig::new(LOCAL_DOMAIN, SocketAddr::from(([127, 0, 0, 1], 0)));
            let server = Server::bind(config).await.map_err(|e| e.to_string())?;
            *relay = Some(server.spawn());
        }
        let running = relay
            .as_ref()
            .ok_or_else(|| "relay not running".to_owned())?;
        let url =
            ServerUrl::parse(&format!("xmpp://{}", running.c2s_addr)).map_err(|e| e.to_string())?;
        Ok(LocalRelay {
            url,
            trust: TrustConfig::only(running.tls.certificate.clone()),
        })
    }
}
