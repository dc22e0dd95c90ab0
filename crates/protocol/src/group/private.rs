//! Presence and private payloads: the pairwise handshakes with every member, their
//! sessions, the profiles they carry first, and the pairwise content of a room.

use rand_core::CryptoRngCore;

use super::wire::{self, GroupProfile, MAX_ADDRESS_BYTES, MAX_MEMBERS};
use super::{
    occupant_name, valid_nickname, Alarm, Exclusion, Handshake, IncomingError, Member, Room,
    RoomEvent, ANSWERED_REMEMBERED, MAX_FORMER,
};
use crate::content::Content;
use crate::dake;
use crate::fingerprint::Fingerprint;
use crate::kdf::{self, label};
use crate::message::Message;
use crate::session::{Session, SessionEvent};
use crate::Timestamp;

impl Room {
    /// An occupant is in the room (from the server's presence).
    pub fn member_present(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore, address: &str) {
        if address == self.me
            || self.left
            || address.is_empty()
            || address.len() > MAX_ADDRESS_BYTES
        {
            return;
        }
        if self.members.get(address).is_some_and(|m| m.present) {
            return;
        }
        if self.members.len() + 1 >= MAX_MEMBERS {
            return;
        }
        self.members.insert(address.to_owned(), Member::new(now));
        if self.me.as_str() < address {
            self.initiate(rng, address);
        }
        self.reconsider(now, rng);
    }

    pub(super) fn initiate(&mut self, rng: &mut impl CryptoRngCore, address: &str) {
        let ctx = self.ctx(&self.me, address);
        if let Ok((state, msg)) = dake::initiate(rng, &self.identity, ctx, None) {
            if let Some(m) = self.members.get_mut(address) {
                m.handshake = Handshake::Initiated(Box::new(state));
            }
            self.send_private(address, &Message::Identity(msg));
        }
    }

    /// An occupant left the room.
    pub fn member_absent(&mut self, now: Timestamp, rng: &mut impl CryptoRngCore, address: &str) {
        self.early.forget(address);
        if let Some(m) = self.members.remove(address) {
            if let Some(nick) = &m.nickname {
                if self.former.len() >= MAX_FORMER {
                    self.former.pop_front(); // the oldest departure
                }
                self.former.push_back((address.to_owned(), nick.clone()));
            }
            if m.announced {
                self.events.push_back(RoomEvent::MemberLeft {
                    address: address.to_owned(),
                    nickname: m.nickname,
                });
            }
        }
        self.reconsider(now, rng);
    }

    // ---- private payloads -----------------------------------------------------------

    /// A private payload from `from` (an encoded [`Message`]).
    pub fn handle_private(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        payload: &[u8],
    ) -> Result<(), IncomingError> {
        if self.left || !self.members.get(from).is_some_and(|m| m.present) {
            return Err(IncomingError::UnknownSender);
        }
        if payload.get(1) == Some(&wire::GROUP_MESSAGE_TYPE) {
            return Err(IncomingError::WrongChannel);
        }
        let msg = Message::decode(payload)?;
        match msg {
            Message::Identity(m) => {
                let digest = kdf::hash(label::HANDSHAKE_DIGEST, &[payload]);
                let we_lead = self.me.as_str() < from;
                let member = self.members.get(from).ok_or(IncomingError::UnknownSender)?;
                if member.answered.contains(&digest) {
                    return Ok(()); // A duplicate or replay of what we already answered.
                }
                if we_lead && matches!(member.handshake, Handshake::Initiated(_)) {
                    // Both started: the smaller address keeps its handshake.
                    return Err(IncomingError::UnexpectedHandshake);
                }
                // One answer per handshake attempt: an honest initiator restarts at half the
                // handshake timeout at the soonest, so a quarter leaves room for delays.
                let interval = self.config.handshake_timeout_ms / 4;
                if member
                    .answered_at
                    .is_some_and(|t| now < t.plus_millis(interval))
                {
                    return Err(IncomingError::HandshakeThrottled);
                }
                let ctx = self.ctx(from, &self.me);
                let (state, reply) = dake::respond(rng, &self.identity, ctx, &m, now)?;
                if let Some(member) = self.members.get_mut(from) {
                    member.handshake = Handshake::Responded(Box::new(state));
                    if member.answered.len() >= ANSWERED_REMEMBERED {
                        member.answered.pop_front();
                    }
                    member.answered.push_back(digest);
                    member.answered_at = Some(now);
                }
                // Data kept for an earlier attempt can never be read now.
                self.early.forget(from);
                self.send_private(from, &Message::AuthR(reply));
                Ok(())
            }
            Message::AuthR(m) => {
                let member = self
                    .members
                    .get_mut(from)
                    .ok_or(IncomingError::UnknownSender)?;
                if !matches!(member.handshake, Handshake::Initiated(_)) {
                    return Err(IncomingError::UnexpectedHandshake);
                }
                let Handshake::Initiated(state) =
                    std::mem::replace(&mut member.handshake, Handshake::Idle)
                else {
                    return Err(IncomingError::UnexpectedHandshake);
                };
                match state.try_handle_auth_r(rng, &self.identity, &m, now) {
                    Ok((session, reply)) => {
                        self.send_private(from, &Message::AuthI(reply));
                        self.install_session(now, rng, from, session);
                        Ok(())
                    }
                    Err(rejected) => {
                        let (state, e) = *rejected;
                        if let Some(member) = self.members.get_mut(from) {
                            member.handshake = Handshake::Initiated(Box::new(state));
                        }
                        Err(e.into())
                    }
                }
            }
            Message::AuthI(m) => {
                let member = self
                    .members
                    .get_mut(from)
                    .ok_or(IncomingError::UnknownSender)?;
                if !matches!(member.handshake, Handshake::Responded(_)) {
                    return Err(IncomingError::UnexpectedHandshake);
                }
                let Handshake::Responded(state) =
                    std::mem::replace(&mut member.handshake, Handshake::Idle)
                else {
                    return Err(IncomingError::UnexpectedHandshake);
                };
                match state.try_handle_auth_i(&self.identity, &m) {
                    Ok(session) => {
                        self.install_session(now, rng, from, session);
                        Ok(())
                    }
                    Err(rejected) => {
                        let (state, e) = *rejected;
                        if let Some(member) = self.members.get_mut(from) {
                            member.handshake = Handshake::Responded(Box::new(state));
                        }
                        Err(e.into())
                    }
                }
            }
            Message::Data(m) => {
                let member = self
                    .members
                    .get_mut(from)
                    .ok_or(IncomingError::UnknownSender)?;
                let Some(session) = member.session.as_mut() else {
                    // It may have overtaken the Auth-I we wait for: keep it until then.
                    let waiting =
                        member.pending() && matches!(member.handshake, Handshake::Responded(_));
                    if !waiting {
                        return Err(IncomingError::NoSession);
                    }
                    self.early.push(from, payload.to_vec(), now);
                    return Ok(());
                };
                let event = session.handle_data(rng, &m)?;
                let mut replies = Vec::new();
                while let Some(r) = session.poll_transmit() {
                    replies.push(r);
                }
                for r in replies {
                    self.send_private(from, &Message::Data(r));
                }
                match event {
                    None => Ok(()),
                    Some(SessionEvent::Text(text)) => {
                        let nickname = self.members.get(from).and_then(|m| m.nickname.clone());
                        let Some(nickname) = nickname else {
                            return Err(IncomingError::UnexpectedContent);
                        };
                        self.events.push_back(RoomEvent::PrivateMessage {
                            from: from.to_owned(),
                            nickname,
                            text,
                        });
                        Ok(())
                    }
                    Some(SessionEvent::Smp(event)) => {
                        self.events.push_back(RoomEvent::Verification {
                            member: from.to_owned(),
                            event,
                        });
                        Ok(())
                    }
                    Some(SessionEvent::Group(Content::GroupProfile(p))) => {
                        self.handle_profile(now, rng, from, p)
                    }
                    Some(SessionEvent::Group(Content::EpochKey(k))) => {
                        self.handle_epoch_key(now, rng, from, k)
                    }
                    Some(SessionEvent::Group(_)) => Err(IncomingError::UnexpectedContent),
                }
            }
        }
    }

    pub(super) fn install_session(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        session: Session,
    ) {
        let key = *session.their_profile().identity_key();
        let bound = !self.config.require_bound_names
            || from == format!("{}/{}", self.room, occupant_name(&key));
        let Some(member) = self.members.get_mut(from) else {
            return;
        };
        let changed = member.identity_key.is_some_and(|old| old != key);
        member.identity_key = Some(key);
        if !bound {
            member.excluded = Exclusion::Permanent;
            self.alarm(Alarm::UnboundOccupantName {
                member: from.to_owned(),
            });
            self.reconsider(now, rng);
            return;
        }
        member.session = Some(session);
        if member.excluded == Exclusion::Retrying {
            member.excluded = Exclusion::No;
            member.retry_at = None;
        }
        member.retry_backoff_ms = 0;
        member.timeout_reported = false;
        if changed {
            member.nickname = None;
            member.announced = false;
            self.alarm(Alarm::KeyChanged {
                member: from.to_owned(),
            });
        }
        let profile = Content::GroupProfile(GroupProfile {
            room: self.room.clone(),
            nickname: self.nickname.clone(),
        });
        let sent = self
            .members
            .get_mut(from)
            .and_then(|m| m.session.as_mut())
            .and_then(|s| s.encrypt(rng, &profile).ok());
        if let Some(msg) = sent {
            self.send_private(from, &Message::Data(msg));
        }
        for payload in self.early.take(from) {
            let _ = self.handle_private(now, rng, from, &payload);
        }
        self.reconsider(now, rng);
    }

    pub(super) fn handle_profile(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        from: &str,
        profile: GroupProfile,
    ) -> Result<(), IncomingError> {
        let room_ok = profile.room == self.room;
        let nick_ok = valid_nickname(&profile.nickname);
        let member = self
            .members
            .get_mut(from)
            .ok_or(IncomingError::UnknownSender)?;
        if !room_ok {
            member.excluded = Exclusion::Permanent;
            self.alarm(Alarm::RoomMismatch {
                member: from.to_owned(),
            });
            self.reconsider(now, rng);
            return Err(IncomingError::UnexpectedContent);
        }
        if !nick_ok {
            return Err(IncomingError::UnexpectedContent);
        }
        if member.nickname.is_some() {
            return Err(IncomingError::UnexpectedContent);
        }
        member.nickname = Some(profile.nickname.clone());
        let fingerprint = member.identity_key.as_ref().map(Fingerprint::of);
        if let Some(fingerprint) = fingerprint {
            member.announced = true;
            self.events.push_back(RoomEvent::MemberJoined {
                address: from.to_owned(),
                nickname: profile.nickname.clone(),
                fingerprint,
            });
        }
        let mut same: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.present && m.nickname.as_deref() == Some(profile.nickname.as_str()))
            .map(|(a, _)| a.clone())
            .collect();
        if profile.nickname == self.nickname {
            same.push(self.me.clone());
        }
        if same.len() > 1 {
            same.sort();
            self.alarm(Alarm::NicknameTaken {
                nickname: profile.nickname,
                members: same,
            });
        }
        self.reconsider(now, rng);
        Ok(())
    }
}
