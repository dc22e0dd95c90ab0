//! A simulated network: per-message drop, duplication, delay and reordering, driven by a
//! seeded RNG and a fixed clock, so every failure reproduces from its seed.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// What the network may do to each message.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability (per mille) that a message is dropped.
    pub drop_per_mille: u32,
    /// Probability (per mille) that a message is delivered twice.
    pub duplicate_per_mille: u32,
    /// Largest extra delay, in ticks; messages with different delays are reordered.
    pub max_delay: u64,
}

/// A network carrying messages of type `M` to numbered parties.
pub struct SimNet<M> {
    rng: ChaCha20Rng,
    faults: Faults,
    now: u64,
    seq: u64,
    queue: Vec<(u64, u64, usize, M)>,
    pub dropped: usize,
    pub duplicated: usize,
}

impl<M: Clone> SimNet<M> {
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            faults,
            now: 0,
            seq: 0,
            queue: Vec::new(),
            dropped: 0,
            duplicated: 0,
        }
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        self.rng.next_u32() % 1000 < per_mille
    }

    fn delay(&mut self) -> u64 {
        if self.faults.max_delay == 0 {
            0
        } else {
            self.rng.next_u64() % (self.faults.max_delay + 1)
        }
    }

    /// Hands a message to the network for party `to`.
    pub fn send(&mut self, to: usize, msg: M) {
        if self.roll(self.faults.drop_per_mille) {
            self.dropped += 1;
            return;
        }
        let copies = if self.roll(self.faults.duplicate_per_mille) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 1 + self.delay();
            self.seq += 1;
            self.queue.push((at, self.seq, to, msg.clone()));
        }
    }

    /// Delivers the next message due (earliest time, then send order).
    pub fn next(&mut self) -> Option<(usize, M)> {
        let idx = self
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(_, (at, seq, _, _))| (*at, *seq))
            .map(|(i, _)| i)?;
        let (at, _, to, msg) = self.queue.swap_remove(idx);
        self.now = self.now.max(at);
        Some((to, msg))
    }
}
