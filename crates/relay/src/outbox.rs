//! One session's outbox: the stanzas other sessions routed to it, waiting for its
//! connection to take them, with their count and bytes kept as they come and go (and in
//! the server-wide [`Counters`]).
//!
//! An outbox holds at most `outbox_stanzas` stanzas and `outbox_bytes` bytes. A stanza
//! that does not fit means the session's client is not reading: the outbox is emptied
//! at once (its memory freed), refuses everything after, and its session's task, woken
//! by [`Outbox::recv`] returning `None` or by [`Outbox::ended`], drops the connection.

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
    /// Woken once when the outbox overflows.
    overflow: Notify,
    counters: Arc<Counters>,
    max_stanzas: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<String>,
    bytes: usize,
    /// A stanza did not fit: the outbox is empty and refuses everything.
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
            overflow: Notify::new(),
            counters,
            max_stanzas: limits.outbox_stanzas.max(1),
            max_bytes: limits.outbox_bytes,
        })
    }

    /// Queues a stanza; `false` when it did not fit (the outbox is full, or overflowed
    /// before): then the outbox is emptied and its session is to end.
    pub(crate) fn push(&self, xml: String) -> bool {
        let mut q = lock(&self.queue);
        if q.overflowed {
            return false;
        }
        if q.items.len() >= self.max_stanzas || q.bytes.saturating_add(xml.len()) > self.max_bytes {
            q.overflowed = true;
            q.items = VecDeque::new();
            Counters::sub(&self.counters.outbox_bytes, q.bytes);
            q.bytes = 0;
            drop(q);
            self.ready.notify_one();
            self.overflow.notify_waiters();
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

    /// The next stanza, waiting for one; `None` once the outbox overflowed (the session
    /// must end). Cancel-safe: a stanza is taken only when returned.
    pub(crate) async fn recv(&self) -> Option<String> {
        loop {
            if let Some(xml) = self.pop() {
                return Some(xml);
            }
            if self.overflowed() {
                return None;
            }
            self.ready.notified().await;
        }
    }

    /// Completes once the outbox has overflowed (for a task busy writing).
    pub(crate) async fn ended(&self) {
        loop {
            let notified = self.overflow.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.overflowed() {
                return;
            }
            notified.await;
        }
    }

    /// Whether a stanza did not fit (the session must end; it is not resumed either,
    /// since stanzas were lost).
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

    fn outbox(stanzas: usize, bytes: usize) -> (Arc<Outbox>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let limits = Limits {
            outbox_stanzas: stanzas,
            outbox_bytes: bytes,
            ..Limits::default()
        };
        (Outbox::new(&limits, Arc::clone(&counters)), counters)
    }

    #[tokio::test]
    async fn bytes_are_counted_in_and_out() {
        let (outbox, counters) = outbox(10, 100);
        assert!(outbox.push("abc".into()));
        assert!(outbox.push("defgh".into()));
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

    #[tokio::test]
    async fn a_stanza_past_the_bytes_empties_the_outbox_and_ends_it() {
        let (outbox, counters) = outbox(10, 10);
        assert!(outbox.push("abcd".into()));
        assert!(outbox.push("efgh".into()));
        assert!(!outbox.push("ijk".into()), "11 bytes > 10");
        assert!(outbox.overflowed());
        assert_eq!(outbox.bytes(), 0);
        assert_eq!(Counters::get(&counters.outbox_bytes), 0, "freed at once");
        assert!(!outbox.push("x".into()), "nothing more is taken");
        assert_eq!(outbox.recv().await, None);
        outbox.ended().await;
    }

    #[tokio::test]
    async fn a_stanza_past_the_count_ends_it_too() {
        let (outbox, counters) = outbox(2, 1000);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!outbox.push("c".into()));
        assert_eq!(Counters::get(&counters.outbox_bytes), 0);
        assert_eq!(outbox.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_task_learns_of_the_overflow() {
        let (outbox, _) = outbox(10, 4);
        let waiting = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move { outbox.ended().await })
        };
        let receiving = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move { outbox.recv().await })
        };
        tokio::task::yield_now().await;
        assert!(!outbox.push("too long".into()));
        waiting.await.unwrap();
        assert_eq!(receiving.await.unwrap(), None);
    }
}
