//! What a room keeps for later on others' behalf, bounded per room in bytes and freed when
//! its reason ends (`docs/protocol.md` section 22.2):
//!
//! - *early data*: pairwise data messages from a member whose Auth-I has not arrived yet
//!   (they overtook it); kept only while we wait for that Auth-I, freed when the handshake
//!   completes, is restarted, times out, or the member leaves;
//! - *buffered* group messages: for an epoch we do not hold, or from a member whose keys
//!   for the epoch have not arrived; kept at most `old_epoch_grace_ms` after arrival.
//!
//! Both are [`PerOccupant`] queues: a room-wide byte and count budget, a count limit per
//! occupant, and fair eviction: when the room's budget is full, the occupant holding the
//! most bytes gives up an entry, so a flood from some occupants cannot push out what the
//! others sent, and no number of occupants can make the room hold more than the budget.

use std::collections::{BTreeMap, VecDeque};

use super::wire::{GroupMessage, MAC_BYTES};
use crate::Timestamp;

/// Bytes of early data a room keeps, all members together.
pub const MAX_EARLY_BYTES: usize = 4 << 20;
/// Early data messages kept per member.
pub const MAX_EARLY: usize = 32;
/// Bytes of buffered group messages a room keeps, all senders together.
pub const MAX_BUFFERED_BYTES: usize = 8 << 20;
/// Buffered group messages a room keeps, all senders together.
pub const MAX_BUFFERED: usize = 1_024;
/// Buffered group messages kept per occupant.
pub const MAX_BUFFERED_PER_SENDER: usize = 128;

/// The early-data budget: the first messages of a member are kept (they carry its
/// profile and epoch keys), later ones are refused.
pub(crate) const EARLY: Budget = Budget {
    max_bytes: MAX_EARLY_BYTES,
    max_items: MAX_EARLY * super::wire::MAX_MEMBERS,
    max_items_per_occupant: MAX_EARLY,
    keep_oldest: true,
};

/// The buffered-message budget: an occupant's newest messages are kept.
pub(crate) const BUFFERED: Budget = Budget {
    max_bytes: MAX_BUFFERED_BYTES,
    max_items: MAX_BUFFERED,
    max_items_per_occupant: MAX_BUFFERED_PER_SENDER,
    keep_oldest: false,
};

/// What a room holds because of what others sent: the figures an attacker controls.
/// For diagnostics, tests and the attack benchmark; sizes are payload bytes plus the
/// size of each entry's own struct (allocator overhead not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retained {
    /// Pairwise data messages kept for members whose handshake has not finished.
    pub early_bytes: usize,
    /// Group messages kept for an epoch we do not hold, or for keys not yet arrived.
    pub buffered_bytes: usize,
    /// Group message keys kept for skipped messages, in every epoch held.
    pub group_skipped_keys: usize,
    /// Pairwise message keys kept for skipped messages, in every session.
    pub pairwise_skipped_keys: usize,
}

/// Bytes one stored skipped key takes, as counted by [`Retained::total_bytes`]: the key,
/// its index and, for pairwise keys, the ratchet key it belongs to.
const SKIPPED_KEY_BYTES: usize = 32 + 4 + 32;

impl Retained {
    /// Everything above in bytes.
    pub fn total_bytes(&self) -> usize {
        self.early_bytes
            .saturating_add(self.buffered_bytes)
            .saturating_add(
                self.group_skipped_keys
                    .saturating_add(self.pairwise_skipped_keys)
                    .saturating_mul(SKIPPED_KEY_BYTES),
            )
    }
}

/// Limits of one [`PerOccupant`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Bytes held in all (see [`Kept::held_bytes`]).
    pub(crate) max_bytes: usize,
    /// Entries held in all.
    pub(crate) max_items: usize,
    /// Entries held per occupant.
    pub(crate) max_items_per_occupant: usize,
    /// Which entry of an occupant goes first: its newest (`true`: the first ones are
    /// kept) or its oldest.
    pub(crate) keep_oldest: bool,
}

/// Something kept: how many bytes it holds (payload and the entry itself).
pub(crate) trait Kept {
    fn held_bytes(&self) -> usize;
}

impl Kept for Vec<u8> {
    fn held_bytes(&self) -> usize {
        self.capacity() + core::mem::size_of::<Entry<Vec<u8>>>()
    }
}

impl Kept for GroupMessage {
    fn held_bytes(&self) -> usize {
        self.ciphertext.capacity()
            + self.macs.capacity() * MAC_BYTES
            + core::mem::size_of::<Entry<GroupMessage>>()
    }
}

/// One kept item, with its arrival order and time.
pub(crate) struct Entry<T> {
    seq: u64,
    at: Timestamp,
    bytes: usize,
    item: T,
}

struct Queue<T> {
    entries: VecDeque<Entry<T>>,
    bytes: usize,
}

/// Items kept per occupant under a room-wide [`Budget`].
pub(crate) struct PerOccupant<T> {
    budget: Budget,
    queues: BTreeMap<String, Queue<T>>,
    bytes: usize,
    items: usize,
    next_seq: u64,
}

impl<T: Kept> PerOccupant<T> {
    pub(crate) fn new(budget: Budget) -> Self {
        Self {
            budget,
            queues: BTreeMap::new(),
            bytes: 0,
            items: 0,
            next_seq: 0,
        }
    }

    /// Bytes held in all (the running count).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held in all.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items
    }

    /// Keeps `item` from `from`, arrived at `at`, then evicts until the budget holds.
    /// Returns whether `item` itself is still kept.
    pub(crate) fn push(&mut self, from: &str, item: T, at: Timestamp) -> bool {
        let bytes = item.held_bytes();
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.queues.contains_key(from) {
            self.queues.insert(
                from.to_owned(),
                Queue {
                    entries: VecDeque::new(),
                    bytes: 0,
                },
            );
        }
        let Some(queue) = self.queues.get_mut(from) else {
            return false;
        };
        queue.entries.push_back(Entry {
            seq,
            at,
            bytes,
            item,
        });
        queue.bytes += bytes;
        self.bytes += bytes;
        self.items += 1;
        if queue.entries.len() > self.budget.max_items_per_occupant {
            self.evict_one(from);
        }
        while self.bytes > self.budget.max_bytes || self.items > self.budget.max_items {
            let Some(largest) = self.largest_holder() else {
                break;
            };
            self.evict_one(&largest);
        }
        self.queues
            .get(from)
            .and_then(|q| q.entries.back())
            .is_some_and(|e| e.seq == seq)
    }

    /// The occupant holding the most bytes (the smallest address among equals).
    fn largest_holder(&self) -> Option<String> {
        let mut best: Option<(&String, usize)> = None;
        for (a, q) in &self.queues {
            if best.is_none_or(|(_, b)| q.bytes > b) {
                best = Some((a, q.bytes));
            }
        }
        best.map(|(a, _)| a.clone())
    }

    fn evict_one(&mut self, from: &str) {
        let Some(queue) = self.queues.get_mut(from) else {
            return;
        };
        let gone = if self.budget.keep_oldest {
            queue.entries.pop_back()
        } else {
            queue.entries.pop_front()
        };
        if let Some(e) = gone {
            queue.bytes = queue.bytes.saturating_sub(e.bytes);
            self.bytes = self.bytes.saturating_sub(e.bytes);
            self.items = self.items.saturating_sub(1);
        }
        if queue.entries.is_empty() {
            self.queues.remove(from);
        }
    }

    /// Takes what `from` sent, in arrival order.
    pub(crate) fn take(&mut self, from: &str) -> Vec<T> {
        let Some(queue) = self.queues.remove(from) else {
            return Vec::new();
        };
        self.bytes = self.bytes.saturating_sub(queue.bytes);
        self.items = self.items.saturating_sub(queue.entries.len());
        queue.entries.into_iter().map(|e| e.item).collect()
    }

    /// Forgets what `from` sent.
    pub(crate) fn forget(&mut self, from: &str) {
        drop(self.take(from));
    }

    /// Takes everything, in arrival order: `(occupant, item, arrival time)`.
    pub(crate) fn take_all(&mut self) -> Vec<(String, T, Timestamp)> {
        let mut all: Vec<(u64, String, T, Timestamp)> = Vec::with_capacity(self.items);
        for (from, queue) in std::mem::take(&mut self.queues) {
            for e in queue.entries {
                all.push((e.seq, from.clone(), e.item, e.at));
            }
        }
        self.bytes = 0;
        self.items = 0;
        all.sort_by_key(|(seq, ..)| *seq);
        all.into_iter().map(|(_, f, i, at)| (f, i, at)).collect()
    }

    /// The arrival time of the oldest entry.
    pub(crate) fn oldest(&self) -> Option<Timestamp> {
        self.queues
            .values()
            .flat_map(|q| q.entries.iter().map(|e| e.at))
            .min()
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
        self.bytes = 0;
        self.items = 0;
    }

    /// The bytes held, counted afresh by walking every entry (tests compare it with the
    /// running count).
    #[cfg(test)]
    pub(crate) fn walk_bytes(&self) -> usize {
        self.queues
            .values()
            .flat_map(|q| q.entries.iter())
            .map(|e| e.item.held_bytes())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> Vec<u8> {
        vec![0u8; n]
    }

    fn budget(max_bytes: usize, keep_oldest: bool) -> Budget {
        Budget {
            max_bytes,
            max_items: 100,
            max_items_per_occupant: 4,
            keep_oldest,
        }
    }

    #[test]
    fn a_flood_takes_from_the_largest_holder_only() {
        let size = item(1_000).held_bytes();
        let mut q = PerOccupant::new(budget(10 * size, false));
        assert!(q.push("honest", item(1_000), Timestamp(1)));
        for i in 0..100 {
            q.push(&format!("flood{}", i % 3), item(1_000), Timestamp(2));
            assert!(q.bytes() <= 10 * size);
            assert_eq!(q.bytes(), q.walk_bytes());
        }
        // The honest occupant's single entry survived the flood.
        assert_eq!(q.take("honest").len(), 1);
        assert_eq!(q.bytes(), q.walk_bytes());
    }

    #[test]
    fn per_occupant_limit_keeps_the_chosen_end() {
        let mut oldest = PerOccupant::new(budget(1 << 20, true));
        let mut newest = PerOccupant::new(budget(1 << 20, false));
        for n in 1..=6 {
            let kept = oldest.push("a", item(n), Timestamp(n as u64));
            assert_eq!(kept, n <= 4);
            assert!(newest.push("a", item(n), Timestamp(n as u64)));
        }
        let lens = |v: Vec<Vec<u8>>| v.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(lens(oldest.take("a")), vec![1, 2, 3, 4]);
        assert_eq!(newest.oldest(), Some(Timestamp(3)));
        assert_eq!(lens(newest.take("a")), vec![3, 4, 5, 6]);
        assert_eq!((oldest.bytes(), newest.bytes()), (0, 0));
    }

    #[test]
    fn take_all_returns_arrival_order_and_empties() {
        let mut q = PerOccupant::new(budget(1 << 20, false));
        q.push("b", item(1), Timestamp(1));
        q.push("a", item(2), Timestamp(2));
        q.push("b", item(3), Timestamp(3));
        let all: Vec<(String, usize)> = q
            .take_all()
            .into_iter()
            .map(|(f, i, _)| (f, i.len()))
            .collect();
        assert_eq!(all, vec![("b".into(), 1), ("a".into(), 2), ("b".into(), 3)]);
        assert_eq!((q.len(), q.bytes(), q.oldest()), (0, 0, None));
    }
}
