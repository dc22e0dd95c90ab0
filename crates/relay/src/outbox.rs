//! One session's outbox: the stanzas other sessions routed to it, waiting for its
//! connection to take them, with their count and bytes kept as they come and go (and in
//! the server-wide [`Counters`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::Limits;
use crate::hub::lock;
use crate::retained::Counters;

/// The queue of one session (shared by the routing table and the session's task).
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    counters: Arc<Counters>,
    max_stanzas: usize,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<String>,
    bytes: usize,
    /// A stanza for this session was dropped.
    overflowed: bool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = lock(&self.queue);
        f.debug_struct("Outbox")
            .field("stanzas", &q.items.len())
            .field("bytes", &q.bytes)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An empty outbox under `limits`.
    pub(crate) fn new(limits: &Limits, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            counters,
            max_stanzas: limits.outbox_stanzas.max(1),
        })
    }

    /// Queues a stanza; `false` when it was dropped (the outbox is full).
    pub(crate) fn push(&self, xml: String) -> bool {
        let mut q = lock(&self.queue);
        if q.items.len() >= self.max_stanzas {
            q.overflowed = true;
            return false;
        }
        q.bytes = q.bytes.saturating_add(xml.len());
        Counters::add(&self.counters.outbox_bytes, xml.len());
        q.items.push_back(xml);
        drop(q);
        self.ready.notify_one();
        true
    }

    fn pop(&self) -> Option<String> {
        let mut q = lock(&self.queue);
        let xml = q.items.pop_front()?;
        q.bytes = q.bytes.saturating_sub(xml.len());
        Counters::sub(&self.counters.outbox_bytes, xml.len());
        Some(xml)
    }

    /// The next stanza, waiting for one. Cancel-safe: a stanza is taken only when
    /// returned.
    pub(crate) async fn recv(&self) -> Option<String> {
        loop {
            if let Some(xml) = self.pop() {
                return Some(xml);
            }
            self.ready.notified().await;
        }
    }

    /// Whether a stanza for this session was ever dropped.
    pub(crate) fn overflowed(&self) -> bool {
        lock(&self.queue).overflowed
    }

    /// Bytes queued.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        lock(&self.queue).bytes
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let q = lock(&self.queue);
        Counters::sub(&self.counters.outbox_bytes, q.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_are_counted_in_and_out() {
        let counters = Arc::new(Counters::default());
        let limits = Limits {
            outbox_stanzas: 2,
            ..Limits::default()
        };
        let outbox = Outbox::new(&limits, Arc::clone(&counters));
        assert!(outbox.push("abc".into()));
        assert!(outbox.push("defgh".into()));
        assert!(!outbox.push("x".into()), "over the count");
        assert!(outbox.overflowed());
        assert_eq!(outbox.bytes(), 8);
        assert_eq!(Counters::get(&counters.outbox_bytes), 8);
        assert_eq!(outbox.recv().await.as_deref(), Some("abc"));
        assert_eq!(Counters::get(&counters.outbox_bytes), 5);
        drop(outbox);
        assert_eq!(
            Counters::get(&counters.outbox_bytes),
            0,
            "freed with the outbox"
        );
    }
}
