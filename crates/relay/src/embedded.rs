//! The relay as the apps embed it to host a room: the desktop app's "This computer" and
//! `cryptocat host`. One code path for both: where it listens, what it keeps, and the
//! invite links that reach it.
//!
//! It serves the domain `localhost`: c2s with STARTTLS, and plain HTTP (WebSocket, BOSH)
//! that counts as secure from loopback only. On loopback by default; with `local_network`
//! on every interface, where other computers reach it over c2s with STARTTLS. Ports 5222
//! and 5280 when free, free ports otherwise. With a state directory its TLS key persists
//! there, so that links made earlier keep working across restarts.
//!
//! Every link carries the pin of the relay's key: the friend's app accepts exactly this
//! relay, with no certificate file to copy and nothing trusted on first use.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use cryptocat_link::{Access, Pin, ServerUrl};

use crate::config::Config;
use crate::server::{Running, Server, StartError};

/// The relay's XMPP domain (rooms at `conference.localhost`).
pub const LOCAL_DOMAIN: &str = "localhost";
/// The c2s port tried first (the XMPP default).
pub const DEFAULT_C2S_PORT: u16 = 5222;
/// The HTTP port tried first (the usual BOSH/WebSocket port).
pub const DEFAULT_HTTP_PORT: u16 = 5280;
/// Most local-network addresses put in one link (the link format's limit).
pub const MAX_LAN_ADDRESSES: usize = cryptocat_link::invite::MAX_SERVERS;

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Listen on every interface, not loopback only.
    pub local_network: bool,
    /// Where the TLS key and certificate are kept; `None`: a temporary directory (a new
    /// key, and new links, at every start).
    pub state_dir: Option<PathBuf>,
}

/// A running embedded relay.
#[derive(Debug)]
pub struct Embedded {
    /// The relay.
    pub running: Running,
    /// Whether it listens on every interface.
    pub local_network: bool,
}

/// Starts the relay: the default ports when free, otherwise free ports.
pub async fn start(options: &Options) -> Result<Embedded, StartError> {
    let ip = if options.local_network {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let mut c2s = SocketAddr::new(ip, DEFAULT_C2S_PORT);
    let mut http = SocketAddr::new(ip, DEFAULT_HTTP_PORT);
    let config = |c2s, http| {
        let mut config = Config::new(LOCAL_DOMAIN, c2s);
        config.http = Some(http);
        config.http_tls = Some(false);
        config.state_dir.clone_from(&options.state_dir);
        config
    };
    // At most three tries: each taken default port falls back to a free one once.
    for _ in 0..3 {
        match Server::bind(config(c2s, http)).await {
            Ok(server) => {
                return Ok(Embedded {
                    running: server.spawn(),
                    local_network: options.local_network,
                })
            }
            Err(StartError::Bind { addr, .. }) if addr == c2s && c2s.port() != 0 => c2s.set_port(0),
            Err(StartError::Bind { addr, .. }) if addr == http && http.port() != 0 => {
                http.set_port(0)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Embedded {
        running: Server::bind(config(c2s, http)).await?.spawn(),
        local_network: options.local_network,
    })
}

impl Embedded {
    /// The pin of the relay's key.
    pub fn pin(&self) -> Option<Pin> {
        Some(self.running.tls.pin())
    }

    /// How this computer reaches it: c2s with STARTTLS on loopback, checked by the pin.
    /// (No plain loopback WebSocket beside it: a link with a pin names TLS addresses only,
    /// so that nothing answering on a port of this computer can stand in for the relay.)
    pub fn this_computer(&self) -> Access {
        let servers = ServerUrl::parse(&format!(
            "xmpp://127.0.0.1:{}",
            self.running.c2s_addr.port()
        ))
        .into_iter()
        .collect();
        self.access(servers)
    }

    /// How other computers on the local network reach it: c2s with STARTTLS on each of
    /// this computer's addresses (the default route's first), checked by the pin. `None`
    /// on loopback only, or without a network address.
    pub fn local_network_access(&self) -> Option<Access> {
        if !self.local_network {
            return None;
        }
        let port = self.running.c2s_addr.port();
        let servers: Vec<ServerUrl> = lan_addresses()
            .into_iter()
            .filter_map(|ip| {
                ServerUrl::parse(&format!("xmpp://{}", SocketAddr::new(ip, port))).ok()
            })
            .collect();
        (!servers.is_empty()).then(|| self.access(servers))
    }

    fn access(&self, servers: Vec<ServerUrl>) -> Access {
        Access {
            servers,
            domain: Some(LOCAL_DOMAIN.to_owned()),
            muc: None,
            pins: self.pin().into_iter().collect(),
        }
    }
}

/// Deletes the key and certificate kept in `state_dir` ("make a new key"): the next
/// [`start`] with this state directory makes a new key, and every link made before stops
/// working (its pin names the old key). Stop the running relay first and start it again
/// to serve the new key. Files that are not there are not an error.
pub fn forget_key(state_dir: &Path) -> std::io::Result<()> {
    crate::tls::forget_generated(state_dir, LOCAL_DOMAIN)
}

/// This computer's addresses another computer could use: IPv4 addresses of interfaces
/// that are not loopback or link-local, the default route's first, at most
/// [`MAX_LAN_ADDRESSES`].
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = Vec::new();
    if let Some(ip) = default_route_address() {
        found.push(ip);
    }
    if let Ok(interfaces) = if_addrs::get_if_addrs() {
        for interface in interfaces {
            let ip = interface.ip();
            let usable = match ip {
                IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
                IpAddr::V6(_) => false,
            };
            if usable && !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found.truncate(MAX_LAN_ADDRESSES);
    found
}

/// The source address of the default route (a UDP "connect" sends nothing); `None`
/// without a route.
fn default_route_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two relays: the second finds the default ports taken and falls back to free ones;
    /// the links name the ports in use, the domain and the pin.
    #[tokio::test]
    async fn falls_back_to_free_ports_and_links_name_what_runs() {
        let a = start(&Options::default()).await.unwrap();
        let b = start(&Options::default()).await.unwrap();
        assert_ne!(a.running.c2s_addr.port(), b.running.c2s_addr.port());
        let access = b.this_computer();
        access.check().unwrap();
        assert_eq!(access.servers.len(), 1);
        assert_eq!(access.servers[0].port, b.running.c2s_addr.port());
        assert!(access.servers.iter().all(ServerUrl::is_loopback));
        assert_eq!(access.domain.as_deref(), Some(LOCAL_DOMAIN));
        assert_eq!(access.pins, vec![b.pin().unwrap()]);
        assert_ne!(a.pin(), b.pin());
        assert!(b.local_network_access().is_none());
    }

    /// With a state directory the key, and so the links, survive a restart; forgetting it
    /// makes another.
    #[tokio::test]
    async fn the_kept_key_survives_a_restart_until_forgotten() {
        let dir =
            std::env::temp_dir().join(format!("cryptocat-embedded-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = Options {
            local_network: false,
            state_dir: Some(dir.clone()),
        };
        let first = start(&options).await.unwrap();
        let pin = first.pin().unwrap();
        assert_eq!(first.running.tls.pin(), pin);
        assert!(
            first
                .running
                .shutdown(std::time::Duration::from_secs(5))
                .await
        );
        let second = start(&options).await.unwrap();
        assert_eq!(second.pin(), Some(pin));
        assert_eq!(second.this_computer().pins, vec![pin]);
        assert!(
            second
                .running
                .shutdown(std::time::Duration::from_secs(5))
                .await
        );
        forget_key(&dir).unwrap();
        let third = start(&options).await.unwrap();
        assert_ne!(third.pin(), Some(pin));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lan_addresses_are_not_loopback() {
        let found = lan_addresses();
        assert!(found.len() <= MAX_LAN_ADDRESSES);
        assert!(found.iter().all(|ip| !ip.is_loopback()));
    }
}
