//! The view of the room and its epochs: which members are ready, choosing and entering an
//! epoch, handing out our keys, and taking in everyone's `EpochKey`.

use rand_core::CryptoRngCore;

use super::epoch::{epoch_tag, Epoch};
use super::wire::{Ack, EpochKey, EpochTag, RosterEntry, MAX_MEMBERS};
use super::{
    nickname_hash, Alarm, Exclusion, IncomingError, Member, Room, RoomEvent, MAX_COUNTER_JUMP,
    MAX_OLD_EPOCHS,
};
use crate::content::Content;
use crate::kdf::{self, Secret32};
use crate::message::Message;
use crate::Timestamp;

impl Room {
    pub(super) fn view(&self) -> Vec<RosterEntry> {
        let mut roster = vec![RosterEntry {
            address: self.me.clone(),
            identity_key: self.identity.verifying_key().to_bytes(),
            nickname_hash: nickname_hash(&self.nickname),
        }];
        for (address, m) in &self.members {
            if let (true, Some(key), Some(nick)) = (m.ready(), m.identity_key, m.nickname.as_ref())
            {
                roster.push(RosterEntry {
                    address: address.clone(),
                    identity_key: key.to_bytes(),
                    nickname_hash: nickname_hash(nick),
                });
            }
        }
        roster.sort_by(|a, b| a.address.cmp(&b.address));
        roster
    }

    pub(super) fn same_members(a: &[RosterEntry], b: &[RosterEntry]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.address == y.address && x.identity_key == y.identity_key)
    }

    pub(super) fn stable(&self) -> bool {
        !self.members.values().any(Member::pending)
    }

    /// Enters the epoch that matches our view of the room, if it changed.
    pub(super) fn reconsider(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        self.reconsider_epoch(now, rng);
        // A settled room may have texts waiting (e.g. after a handshake gave up).
        self.flush_queued(now);
    }

    pub(super) fn reconsider_epoch(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        if self.left || !self.stable() {
            return;
        }
        let view = self.view();
        if let Some(cur) = &self.current {
            if Self::same_members(&cur.roster, &view) {
                return;
            }
        }
        let current_counter = self.current.as_ref().map_or(0, |e| e.counter);
        // Adopt the highest proposal that matches our view, else propose our own.
        let adopt = self
            .members
            .values()
            .filter_map(|m| m.proposal.as_ref())
            .filter(|p| p.counter > current_counter && Self::same_members(&p.roster, &view))
            .map(|p| p.counter)
            .max();
        let counter = adopt.unwrap_or(self.max_counter.saturating_add(1));
        self.enter_epoch(now, rng, counter, view);
    }

    pub(super) fn enter_epoch(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        counter: u64,
        roster: Vec<RosterEntry>,
    ) {
        let tag = epoch_tag(&self.room, counter, &roster);
        if self.current.as_ref().is_some_and(|e| e.tag == tag) {
            return;
        }
        let Some(me) = roster.iter().position(|e| e.address == self.me) else {
            return;
        };
        let Ok(me) = u16::try_from(me) else { return };
        let chain_key = kdf::fresh_secret(rng);
        let mac_keys: Vec<Secret32> = (0..roster.len()).map(|_| kdf::fresh_secret(rng)).collect();
        // Our view of the epoch we leave, for those who shared it.
        let mut previous: Option<(EpochTag, Vec<Ack>, Vec<String>)> = None;
        if let Some(mut old) = self.current.take() {
            let acks = old.acks(true);
            let members = old.roster.iter().map(|e| e.address.clone()).collect();
            previous = Some((old.tag, acks, members));
            old.retire_at = Some(now.plus_millis(self.config.old_epoch_grace_ms));
            self.old.push(old);
            while self.old.len() > MAX_OLD_EPOCHS {
                let mut dropped = self.old.remove(0);
                dropped.forget_keys();
            }
        }
        self.max_counter = self.max_counter.max(counter);
        let mut epoch = Epoch::new(counter, tag, roster.clone(), me, chain_key, mac_keys, now);
        epoch.attest_deadline = now.plus_millis(self.config.attest_timeout_ms);
        for (pos, entry) in roster.iter().enumerate() {
            if entry.address == self.me {
                continue;
            }
            let Some((chain_key, mac_key)) = epoch.keys_for(pos) else {
                continue;
            };
            let prev = previous
                .as_ref()
                .filter(|(_, _, members)| members.contains(&entry.address))
                .map(|(t, a, _)| (*t, a.clone()));
            let content = Content::EpochKey(EpochKey {
                counter,
                roster: roster.clone(),
                chain_key,
                mac_key,
                previous: prev,
            });
            let sent = self
                .members
                .get_mut(&entry.address)
                .and_then(|m| m.session.as_mut())
                .and_then(|s| s.encrypt(rng, &content).ok());
            if let Some(msg) = sent {
                self.send_private(&entry.address, &Message::Data(msg));
            }
        }
        epoch.keys_handed_out();
        self.current = Some(epoch);
        // Keys that arrived before we entered.
        let early: Vec<(String, EpochKey)> = self
            .members
            .iter_mut()
            .filter_map(|(a, m)| {
                let matches = m
                    .proposal
                    .as_ref()
                    .is_some_and(|p| epoch_tag(&self.room, p.counter, &p.roster) == tag);
                if matches {
                    m.proposal.take().map(|p| (a.clone(), p))
                } else {
                    None
                }
            })
            .collect();
        for (from, key) in early {
            self.apply_epoch_key(now, rng, &from, &key);
        }
        if self.current.as_ref().is_some_and(|e| e.attested) {
            self.on_attested(now, rng);
        }
    }

    pub(super) fn handle_epoch_key(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        key: EpochKey,
    ) -> Result<(), IncomingError> {
        let sender_key = self
            .members
            .get(from)
            .and_then(|m| m.identity_key)
            .ok_or(IncomingError::UnknownSender)?;
        let sorted = key
            .roster
            .windows(2)
            .all(|w| w.first().map(|e| &e.address) < w.get(1).map(|e| &e.address));
        let lists_sender = key
            .roster
            .iter()
            .any(|e| e.address == from && e.identity_key == sender_key.to_bytes());
        let me_entry = key.roster.iter().find(|e| e.address == self.me);
        if key.roster.len() < 2
            || key.roster.len() > MAX_MEMBERS
            || !sorted
            || !lists_sender
            || me_entry.is_none()
        {
            return Err(IncomingError::BadEpochKey);
        }
        if me_entry.is_some_and(|e| e.identity_key != self.identity.verifying_key().to_bytes()) {
            self.alarm(Alarm::RosterSplit {
                member: self.me.clone(),
                reported_by: from.to_owned(),
            });
            return Err(IncomingError::BadEpochKey);
        }
        if key.counter > self.max_counter.saturating_add(MAX_COUNTER_JUMP) {
            // No honest member runs this far ahead; it would also let an insider exhaust the
            // counter and freeze rekeying.
            return Err(IncomingError::BadEpochKey);
        }
        self.max_counter = self.max_counter.max(key.counter);
        let mut readmitted = false;
        if let Some(m) = self.members.get_mut(from) {
            if m.excluded == Exclusion::UntilHeard {
                m.excluded = Exclusion::No;
                readmitted = true;
            }
        }
        if readmitted {
            self.reconsider(now, rng);
        }
        // Its view of the previous epoch, checked against ours.
        if let Some((prev_tag, acks)) = &key.previous {
            self.take_acks_in(now, prev_tag, from, acks);
        }
        let tag = epoch_tag(&self.room, key.counter, &key.roster);
        if self.current.as_ref().is_some_and(|e| e.tag == tag) {
            // It agrees with us: whatever it proposed before is moot.
            if let Some(m) = self.members.get_mut(from) {
                m.proposal = None;
            }
            self.apply_epoch_key(now, rng, from, &key);
            if self.current.as_ref().is_some_and(|e| e.attested) {
                self.on_attested(now, rng);
            }
            return Ok(());
        }
        if self.old.iter().any(|e| e.tag == tag) {
            return Ok(());
        }
        let unexcluded = self
            .current
            .as_ref()
            .is_some_and(|e| !e.roster.iter().any(|r| r.address == from));
        // Another key for a member we know: the server shows different keys to different
        // people.
        let mut splits = Vec::new();
        for e in &key.roster {
            if let Some(m) = self.members.get(&e.address) {
                if m.identity_key
                    .is_some_and(|k| k.to_bytes() != e.identity_key)
                {
                    splits.push(e.address.clone());
                }
            }
        }
        for member in splits {
            self.alarm(Alarm::RosterSplit {
                member,
                reported_by: from.to_owned(),
            });
        }
        let current_counter = self.current.as_ref().map_or(0, |e| e.counter);
        let adopt = key.counter > current_counter
            && self.stable()
            && Self::same_members(&key.roster, &self.view());
        if let Some(m) = self.members.get_mut(from) {
            if m.proposal.as_ref().is_none_or(|p| p.counter <= key.counter) {
                m.proposal = Some(key.clone());
                m.proposal_at = now;
                m.hidden_reported = false;
            }
        }
        if adopt {
            self.enter_epoch(now, rng, key.counter, self.view());
        } else if unexcluded {
            self.reconsider(now, rng);
        }
        Ok(())
    }

    pub(super) fn apply_epoch_key(
        &mut self,
        now: Timestamp,
        _rng: &mut impl CryptoRngCore,
        from: &str,
        key: &EpochKey,
    ) {
        let Some(epoch) = self.current.as_mut() else {
            return;
        };
        let Some(pos) = epoch.roster.iter().position(|e| e.address == from) else {
            return;
        };
        let their_hash = key
            .roster
            .get(pos)
            .map(|e| e.nickname_hash)
            .unwrap_or_default();
        if !epoch.set_peer_keys(pos, &key.chain_key, &key.mac_key, their_hash) {
            return; // Already held: a duplicate, already checked.
        }
        let mut mismatches = Vec::new();
        for (mine, theirs) in epoch.roster.iter().zip(&key.roster) {
            if mine.nickname_hash != theirs.nickname_hash {
                mismatches.push(mine.address.clone());
            }
        }
        let _ = now;
        for member in mismatches {
            self.alarm(Alarm::NicknameMismatch {
                member,
                reported_by: from.to_owned(),
            });
        }
    }

    pub(super) fn on_attested(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore) {
        let Some(epoch) = self.current.as_ref() else {
            return;
        };
        let (counter, members) = (epoch.counter, epoch.roster.len());
        if epoch.ready_reported {
            return;
        }
        if let Some(e) = self.current.as_mut() {
            e.ready_reported = true;
        }
        self.events
            .push_back(RoomEvent::EpochReady { counter, members });
        self.flush_queued(now);
        self.retry_buffered(now, rng);
    }
}
