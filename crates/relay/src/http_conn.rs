//! One connection of the HTTP listener, below TLS and hyper: it holds the connection's
//! place in the listener's counts ([`crate::address::ConnectionCounts`]) for as long as
//! it lives, an upgraded WebSocket included (hyper hands this very stream to the upgrade),
//! and it fails a write that makes no progress for `write_timeout_secs`, so that a client
//! that does not read its responses (a held BOSH response, a WebSocket) is dropped and
//! what waited for it freed.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::future::Future as _;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::hub::{lock, Refused};
use crate::server::Shared;

/// A counted place in the HTTP listener's connection counts, given back on drop.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
    proxy: bool,
}

impl Slot {
    /// Counts a connection from `ip`, or says why it is refused.
    pub(crate) fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Result<Self, Refused> {
        let ip = ip.to_canonical();
        let proxy = shared
            .config
            .trusted_proxies
            .iter()
            .any(|p| p.to_canonical() == ip);
        let limits = &shared.config.limits;
        lock(&shared.http_connections).admit(
            ip,
            proxy,
            limits.http_connections_per_ip,
            limits.http_connections,
        )?;
        Ok(Self {
            shared: Arc::clone(shared),
            ip,
            proxy,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.shared.http_connections).release(self.ip, self.proxy);
    }
}

/// A connection of the HTTP listener with its [`Slot`] and its write deadline.
pub(crate) struct HttpConn<S> {
    io: S,
    _slot: Slot,
    write_timeout: Duration,
    /// Armed when a write (or flush) would block; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> HttpConn<S> {
    pub(crate) fn new(io: S, slot: Slot, write_timeout: Duration) -> Self {
        Self {
            io,
            _slot: slot,
            write_timeout,
            stalled: None,
        }
    }

    /// Passes a write's result on, failing a `Pending` that has lasted `write_timeout`.
    fn deadline<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client does not read",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HttpConn<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HttpConn<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.deadline(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.deadline(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.deadline(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.deadline(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
