//! Time: the deadlines a room asks for ([`Room::poll_timeout`]) and what runs when they
//! are due ([`Room::handle_timeout`]).

use rand_core::CryptoRngCore;

use super::wire::{BodyKind, GroupBody};
use super::{
    Alarm, Destination, Exclusion, Handshake, MessageId, Room, Transmit, MAX_RETRY_BACKOFF_MS,
};
use crate::Timestamp;

impl Room {
    /// When [`Room::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut next: Option<Timestamp> = None;
        let floor = self.timers_ran;
        let mut consider = |t: Timestamp| {
            if t > floor {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.left {
            return None;
        }
        for m in self.members.values() {
            if let (Exclusion::Retrying, Some(t)) = (m.excluded, m.retry_at) {
                consider(t);
            }
            if m.proposal.is_some() && !m.hidden_reported {
                consider(m.proposal_at.plus_millis(self.config.attest_timeout_ms));
            }
            if m.pending() {
                if !m.initiated_fallback {
                    consider(m.since.plus_millis(self.config.handshake_timeout_ms / 2));
                }
                consider(m.since.plus_millis(self.config.handshake_timeout_ms));
            }
        }
        if let Some(e) = &self.current {
            if !e.attested && !e.attest_reported {
                consider(e.attest_deadline);
            }
            if e.attested {
                consider(e.started.plus_millis(self.config.rekey_after_ms));
            }
        }
        for e in self.current.iter().chain(self.old.iter()) {
            for s in e.sent.iter().filter(|s| s.is_text && !s.flagged) {
                consider(s.at.plus_millis(self.config.confirm_timeout_ms));
            }
            for p in e.peers.iter().flatten() {
                if let (Some(t), false) = (p.gap_since, p.gap_reported) {
                    consider(t.plus_millis(self.config.confirm_timeout_ms));
                }
            }
            if let (Some(t), true) = (e.first_unacked, e.attested) {
                consider(t.plus_millis(self.config.heartbeat_ms));
            }
            if let Some(t) = e.retire_at {
                consider(t);
            }
        }
        if let Some(t) = self.buffered.oldest() {
            consider(t.plus_millis(self.config.old_epoch_grace_ms));
        }
        next
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        if self.left {
            return;
        }
        self.timers_ran = self.timers_ran.max(now);
        // Handshakes: the other side should have started; start ourselves half-way, give
        // up at the deadline.
        let mut fallback = Vec::new();
        let mut expired = Vec::new();
        for (a, m) in &self.members {
            if !m.pending() {
                continue;
            }
            let age = now.0.saturating_sub(m.since.0);
            if age >= self.config.handshake_timeout_ms {
                expired.push(a.clone());
            } else if age >= self.config.handshake_timeout_ms / 2
                && !m.initiated_fallback
                && self.me.as_str() < a.as_str()
            {
                // Something of ours or theirs was lost: the side that leads starts over.
                fallback.push(a.clone());
            }
        }
        for a in fallback {
            if let Some(m) = self.members.get_mut(&a) {
                m.initiated_fallback = true;
                m.handshake = Handshake::Idle;
            }
            self.initiate(rng, &a);
        }
        for a in expired {
            // The Auth-I its early data waited for is not coming.
            self.early.forget(&a);
            let mut report = false;
            if let Some(m) = self.members.get_mut(&a) {
                m.excluded = Exclusion::Retrying;
                m.retry_backoff_ms = m
                    .retry_backoff_ms
                    .clamp(self.config.handshake_timeout_ms, MAX_RETRY_BACKOFF_MS);
                m.retry_at = Some(now.plus_millis(m.retry_backoff_ms));
                report = !m.timeout_reported;
                m.timeout_reported = true;
            }
            if report {
                self.alarm(Alarm::HandshakeTimeout { member: a });
            }
        }
        // Retry handshakes with members left out after a timeout.
        let retry: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.present
                    && m.excluded == Exclusion::Retrying
                    && m.retry_at.is_some_and(|t| now >= t)
            })
            .map(|(a, _)| a.clone())
            .collect();
        for a in retry {
            self.early.forget(&a);
            if let Some(m) = self.members.get_mut(&a) {
                m.handshake = Handshake::Idle;
                m.since = now;
                m.retry_backoff_ms = (m.retry_backoff_ms * 2).min(MAX_RETRY_BACKOFF_MS);
                m.retry_at = Some(now.plus_millis(m.retry_backoff_ms));
            }
            if self.me < a {
                self.initiate(rng, &a);
            }
        }
        // Attestation.
        let mut missing_members = Vec::new();
        if let Some(e) = self.current.as_mut() {
            if !e.attested && !e.attest_reported && now >= e.attest_deadline {
                e.attest_reported = true;
                missing_members = e
                    .missing_keys()
                    .iter()
                    .filter_map(|&i| e.roster.get(i).map(|r| r.address.clone()))
                    .collect();
            }
        }
        if !missing_members.is_empty() {
            for a in &missing_members {
                if let Some(m) = self.members.get_mut(a) {
                    m.excluded = Exclusion::UntilHeard;
                }
            }
            self.alarm(Alarm::AttestationTimeout {
                missing: missing_members,
            });
        }
        // Heartbeats, in the current epoch and in old ones still in their grace period (a
        // text that arrived there after we moved on is acknowledged there).
        let heartbeat_ms = self.config.heartbeat_ms;
        for e in self.current.iter_mut().chain(self.old.iter_mut()) {
            let clock_ran_out = e
                .first_unacked
                .is_some_and(|t| now >= t.plus_millis(heartbeat_ms));
            if clock_ran_out && !e.owes_acks() {
                // Started by a message that left a gap: nothing to acknowledge yet. The
                // next message in order starts a fresh clock.
                e.first_unacked = None;
            }
            let due = e.attested && e.owes_acks() && clock_ran_out;
            if due && e.others() > 0 {
                let acks = e.acks(false);
                let msg = e.seal(
                    &GroupBody {
                        acks,
                        kind: BodyKind::Heartbeat,
                    },
                    now,
                );
                self.outbox.push_back(Transmit {
                    to: Destination::Room,
                    payload: msg.encode(),
                });
            }
        }
        // Members someone else sees but the server does not show us.
        let hidden_after = self.config.attest_timeout_ms;
        let mut hidden = Vec::new();
        let present: Vec<String> = self.members.keys().cloned().collect();
        for (from, m) in self.members.iter_mut() {
            let Some(p) = &m.proposal else { continue };
            // Its latest proposal, still standing after the attestation timeout.
            if m.hidden_reported || now < m.proposal_at.plus_millis(hidden_after) {
                continue;
            }
            for e in &p.roster {
                let known = e.address == self.me || present.contains(&e.address);
                if !known {
                    hidden.push(Alarm::HiddenMember {
                        member: e.address.clone(),
                        reported_by: from.clone(),
                    });
                }
            }
            m.hidden_reported = true;
        }
        for a in hidden {
            self.alarm(a);
        }
        // Confirmations and gaps.
        let confirm = self.config.confirm_timeout_ms;
        let mut alarms = Vec::new();
        for e in self.current.iter_mut().chain(self.old.iter_mut()) {
            let roster: Vec<String> = e.roster.iter().map(|r| r.address.clone()).collect();
            let flagged: Vec<u32> = e
                .sent
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_text && !s.flagged && now >= s.at.plus_millis(confirm))
                .filter_map(|(i, _)| u32::try_from(i).ok())
                .collect();
            for index in flagged {
                if let Some(s) = e.sent.get_mut(index as usize) {
                    s.flagged = true;
                }
                let missing: Vec<String> = e
                    .unconfirmed_by(index)
                    .iter()
                    .filter_map(|&i| roster.get(i).cloned())
                    .collect();
                if !missing.is_empty() {
                    alarms.push(Alarm::Unconfirmed {
                        id: MessageId {
                            epoch: e.tag,
                            sender: e.me,
                            index,
                        },
                        missing,
                    });
                }
            }
            for (i, p) in e.peers.iter_mut().enumerate() {
                let Some(p) = p else { continue };
                if let (Some(t), false) = (p.gap_since, p.gap_reported) {
                    if now >= t.plus_millis(confirm) && p.expected > p.contiguous {
                        p.gap_reported = true;
                        alarms.push(Alarm::Missing {
                            sender: roster.get(i).cloned().unwrap_or_default(),
                            index: p.contiguous,
                        });
                    }
                }
            }
        }
        for a in alarms {
            self.alarm(a);
        }
        // Old epochs: delete their keys.
        let mut i = 0;
        while i < self.old.len() {
            if self
                .old
                .get(i)
                .and_then(|e| e.retire_at)
                .is_some_and(|t| now >= t)
            {
                let mut e = self.old.remove(i);
                e.forget_keys();
            } else {
                i += 1;
            }
        }
        self.retry_buffered(now, rng);
        // Periodic rekey, and any change of view (exclusions above).
        let due = self.current.as_ref().is_some_and(|e| {
            e.attested && now >= e.started.plus_millis(self.config.rekey_after_ms)
        });
        if due {
            self.rekey(now, rng);
        } else {
            self.reconsider(now, rng);
        }
    }
}
