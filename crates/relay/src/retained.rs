//! What the relay holds on its clients' behalf, counted where it is kept: bytes queued for
//! sessions (outboxes and BOSH responses waiting to be sent), request body bytes being
//! read, and open connections. [`crate::Running::retained`] reads the counts; tests and
//! `cryptocat-bench attack` assert and print them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The running counts, updated by the structures that keep the bytes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Stanza bytes queued for sessions: outboxes and BOSH pending elements.
    pub(crate) outbox_bytes: AtomicUsize,
    /// BOSH request body bytes read so far by requests still being read.
    pub(crate) http_body_bytes: AtomicUsize,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicUsize, n: usize) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicUsize, n: usize) {
        // Every `sub` follows the `add` of the same bytes; saturate anyway.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }

    pub(crate) fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }
}

/// A snapshot of what the relay holds (no names, no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retained {
    /// Stanza bytes queued for sessions whose connections have not taken them yet
    /// (outboxes, and BOSH elements waiting for a response to carry them).
    pub outbox_bytes: usize,
    /// Request body bytes held by BOSH requests still being read.
    pub http_body_bytes: usize,
    /// Open connections on the HTTP listener (TLS handshakes, request heads, upgraded
    /// WebSockets, held BOSH requests).
    pub http_connections: usize,
    /// Streams admitted by the hub: TCP connections, WebSockets, BOSH sessions and
    /// detached stream-managed sessions.
    pub sessions: usize,
    /// Open BOSH sessions.
    pub bosh_sessions: usize,
}

impl Retained {
    /// The counted bytes.
    pub fn total_bytes(&self) -> usize {
        self.outbox_bytes.saturating_add(self.http_body_bytes)
    }
}
