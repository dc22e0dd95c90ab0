//! The tokio shell of the component: connects to the host server's component port, runs
//! the handshake within `negotiation_timeout_secs`, moves bytes between the socket and
//! [`Component`], and when the host goes away reconnects with back-off (1 s doubling to
//! [`MAX_BACKOFF`], from 1 s again once a handshake succeeded). With several host
//! addresses (the nodes of a cluster), each attempt after a failure goes to the next one,
//! at once while some address of the round is untried; the back-off applies between
//! rounds. Every write has the
//! `write_timeout_secs` deadline; a quiet stream gets a whitespace keep-alive every
//! [`KEEPALIVE`], so a dead host is noticed.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Component, LinkError, Phase, Secret};
use crate::config::Limits;

/// Bytes read from the host at once.
pub const READ_BUFFER: usize = 16 * 1024;
/// Longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A whitespace keep-alive after this long without writing.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// What `cryptocat-server component` runs.
#[derive(Debug)]
pub struct ComponentConfig {
    /// The host server's component ports, `HOST:PORT`, tried in turn (at least one).
    pub connect: Vec<String>,
    /// The component's domain (the room service), e.g. `conference.example.org`.
    pub domain: String,
    /// The shared secret.
    pub secret: Secret,
    /// The relay's limits (the rooms', the parser's, the deadlines).
    pub limits: Limits,
}

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("cannot connect: {0:?}")]
    Connect(std::io::ErrorKind),
    #[error("no handshake within the negotiation deadline")]
    Timeout,
    #[error("connection error: {0:?}")]
    Io(std::io::ErrorKind),
    #[error("the host server closed the connection")]
    Eof,
    #[error("a write took longer than its deadline")]
    WriteTimeout,
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("shutting down")]
    Shutdown,
}

/// Runs the component until `shutdown` turns true. `attached` is called with the address
/// after each successful handshake (the binary prints a line scripts wait for).
pub async fn run(
    config: ComponentConfig,
    mut shutdown: watch::Receiver<bool>,
    attached: impl Fn(&str) + Send,
) {
    let mut core = Component::new(&config.domain, config.secret, config.limits.clone());
    let mut backoff = Duration::from_secs(1);
    let addresses = config.connect.len().max(1);
    let mut index = 0;
    // Failed attempts since the last handshake or back-off.
    let mut failed_in_round = 0;
    loop {
        let address = config.connect.get(index).map_or("", String::as_str);
        let ended = connection(address, &config.limits, &mut core, &mut shutdown, &attached).await;
        if matches!(ended, Ended::Shutdown) || *shutdown.borrow() {
            return;
        }
        if core.phase() == Phase::Attached {
            backoff = Duration::from_secs(1);
            failed_in_round = 0;
        }
        failed_in_round += 1;
        index = (index + 1) % addresses;
        // At once while another address of this round is untried.
        let wait = if failed_in_round < addresses {
            Duration::ZERO
        } else {
            backoff
        };
        match &ended {
            Ended::Link(LinkError::Refused("not-authorized")) => tracing::error!(
                "the host server refused the component's secret; retrying in {} s",
                wait.as_secs()
            ),
            other => tracing::warn!(
                reason = %other,
                "component link to the host server lost; retrying in {} s",
                wait.as_secs()
            ),
        }
        core.connection_lost();
        if wait.is_zero() {
            continue;
        }
        failed_in_round = 0;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connection(
    address: &str,
    limits: &Limits,
    core: &mut Component,
    shutdown: &mut watch::Receiver<bool>,
    attached: &(impl Fn(&str) + Send),
) -> Ended {
    let negotiation = limits.negotiation_timeout();
    let tcp = match tokio::time::timeout(negotiation, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Ended::Connect(e.kind()),
        Err(_) => return Ended::Timeout,
    };
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    let write_timeout = limits.write_timeout();
    let header = core.start();
    if let Err(e) = write(&mut wr, header.as_bytes(), write_timeout).await {
        return e;
    }
    let deadline = tokio::time::Instant::now() + negotiation;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut last_write = tokio::time::Instant::now();
    loop {
        while let Some(out) = core.poll_output() {
            if let Err(e) = write(&mut wr, out.as_bytes(), write_timeout).await {
                return e;
            }
            last_write = tokio::time::Instant::now();
        }
        let attached_now = core.phase() == Phase::Attached;
        let keepalive = last_write + KEEPALIVE;
        let timer = core
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .filter(|_| attached_now);
        let wake = match (attached_now, timer) {
            (false, _) => deadline,
            (true, Some(at)) => at.min(keepalive),
            (true, None) => keepalive,
        };
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return Ended::Eof,
                    Ok(n) => n,
                    Err(e) => return Ended::Io(e.kind()),
                };
                let was_attached = core.phase() == Phase::Attached;
                let now = std::time::Instant::now();
                if let Err(e) = core.handle_bytes(now, buf.get(..n).unwrap_or_default()) {
                    return Ended::Link(e);
                }
                if !was_attached && core.phase() == Phase::Attached {
                    attached(address);
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if !attached_now {
                    return Ended::Timeout;
                }
                core.handle_timeout(std::time::Instant::now());
                if tokio::time::Instant::now() >= keepalive {
                    if let Err(e) = write(&mut wr, b" ", write_timeout).await {
                        return e;
                    }
                    last_write = tokio::time::Instant::now();
                }
            }
            _ = shutdown.changed() => {
                if attached_now {
                    for out in core.close() {
                        if write(&mut wr, out.as_bytes(), write_timeout).await.is_err() {
                            break;
                        }
                    }
                    let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
                }
                return Ended::Shutdown;
            }
        }
    }
}

async fn write(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), Ended> {
    match tokio::time::timeout(limit, wr.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Ended::Io(e.kind())),
        Err(_) => Err(Ended::WriteTimeout),
    }
}
