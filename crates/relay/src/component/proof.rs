//! The room key proof (`docs/key-challenge.md` section 10), room side: every joiner proves
//! within its MUC join that it holds the identity key its occupant name is derived from.
//!
//! 1. The join presence carries `<key xmlns='urn:xmpp:cryptocat:room-key:1'>` with the
//!    base64 client-first (version, ed25519 key); the nickname must be
//!    `occupant_name(key)`. The room answers a presence error (`auth/not-authorized`)
//!    carrying `<challenge>` (base64: version, fresh nonce, binding `none`, the room's bare
//!    JID), and keeps the exchange.
//! 2. The joiner sends the join again with `<key>` and `<proof>` (the base64 signature by
//!    `cryptocat_protocol::keyauth::room_respond`); the room verifies it against the nonce
//!    it drew and admits the occupant.
//!
//! What joiners make the room keep: one exchange per (full JID, room), at most
//! `rooms_per_member` per full JID and `total` in all, each freed at its first answer or
//! after its lifetime (the relay's `negotiation_timeout_secs`). The cryptography is in
//! `cryptocat_protocol::keyauth`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::group::occupant_name;
use cryptocat_protocol::keyauth::{
    self, BindingType, Challenge, ClientFirst, CLIENT_FINAL_BYTES, MAX_DOMAIN_BYTES, NONCE_BYTES,
};
use jid::FullJid;
use minidom::Element;

/// The namespace of the room key proof's elements and disco feature.
pub const NS_ROOM_KEY: &str = "urn:xmpp:cryptocat:room-key:1";

/// Longest base64 text read from a `<key>` or `<proof>` element.
const MAX_B64: usize = 128;

/// What a join presence comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No `<key>`: the join goes on unproven (refused by the rooms when proof is required).
    Unproven,
    /// Proven: admit it.
    Proven,
    /// Challenge it: the base64 challenge to send.
    Challenge(String),
    /// Refuse it: the stanza error's type, condition and fixed text.
    Refused(&'static str, &'static str, &'static str),
}

#[derive(Debug)]
struct Exchange {
    key: ClientFirst,
    nick: String,
    nonce: [u8; NONCE_BYTES],
    /// Which entry of `order` is this exchange's.
    seq: u64,
}

/// The exchanges in progress.
#[derive(Debug)]
pub struct Proofs {
    pending: HashMap<(FullJid, String), Exchange>,
    /// Insertion order with each entry's number and expiry, for expiring the oldest
    /// first; an entry whose exchange was answered or replaced is skipped.
    order: VecDeque<((FullJid, String), u64, Instant)>,
    next_seq: u64,
    per_jid: HashMap<FullJid, usize>,
    per_jid_max: usize,
    total_max: usize,
    lifetime: Duration,
}

impl Proofs {
    /// At most `per_jid_max` exchanges per full JID and `total_max` in all, each kept for
    /// `lifetime`.
    pub fn new(per_jid_max: usize, total_max: usize, lifetime: Duration) -> Self {
        Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            per_jid: HashMap::new(),
            per_jid_max,
            total_max,
            lifetime,
        }
    }

    /// Exchanges kept (no names).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Forgets everything (the link to the host was lost).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.order.clear();
        self.per_jid.clear();
    }

    /// Frees the exchanges whose lifetime is over.
    pub fn expire(&mut self, now: Instant) {
        while let Some((id, seq, expires)) = self.order.front() {
            if *expires > now {
                return;
            }
            let (id, seq) = (id.clone(), *seq);
            self.order.pop_front();
            if self.pending.get(&id).is_some_and(|e| e.seq == seq) {
                self.remove(&id);
            }
        }
    }

    fn remove(&mut self, id: &(FullJid, String)) -> Option<Exchange> {
        let exchange = self.pending.remove(id)?;
        if let Some(n) = self.per_jid.get_mut(&id.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_jid.remove(&id.0);
            }
        }
        Some(exchange)
    }

    /// Reads a join presence (`el`) from `from` to `room_jid` (bare) as `nick`. `nonce`:
    /// fresh random bytes, used if a challenge is made.
    pub fn join(
        &mut self,
        now: Instant,
        nonce: [u8; NONCE_BYTES],
        from: &FullJid,
        room_jid: &str,
        nick: &str,
        el: &Element,
    ) -> Outcome {
        self.expire(now);
        let Some(key_el) = el.get_child("key", NS_ROOM_KEY) else {
            return Outcome::Unproven;
        };
        let refused = |text| Outcome::Refused("auth", "not-authorized", text);
        let Some(first) = decode(key_el).and_then(|b| ClientFirst::decode(&b).ok()) else {
            return Outcome::Refused("modify", "bad-request", "malformed key");
        };
        if occupant_name(&first.key) != nick {
            return Outcome::Refused(
                "modify",
                "not-acceptable",
                "the nickname is not the key's occupant name",
            );
        }
        let id = (from.clone(), room_jid.to_owned());
        if let Some(proof_el) = el.get_child("proof", NS_ROOM_KEY) {
            let Some(exchange) = self.remove(&id) else {
                return refused("no key challenge pending: join again");
            };
            if exchange.key != first || exchange.nick != nick {
                return refused("the key proof does not answer the challenge");
            }
            let proof = decode(proof_el).filter(|p| p.len() == CLIENT_FINAL_BYTES);
            let verified = proof.is_some_and(|p| {
                keyauth::room_verify(room_jid, &exchange.nonce, &first, &p).is_ok()
            });
            return if verified {
                Outcome::Proven
            } else {
                refused("the key proof did not verify")
            };
        }
        if room_jid.len() > MAX_DOMAIN_BYTES {
            return Outcome::Refused("modify", "not-acceptable", "room name too long");
        }
        // A new challenge replaces this JID's pending one for the room.
        self.remove(&id);
        if self.per_jid.get(from).copied().unwrap_or(0) >= self.per_jid_max
            || self.pending.len() >= self.total_max
        {
            return Outcome::Refused("wait", "resource-constraint", "too many joins pending");
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.pending.insert(
            id.clone(),
            Exchange {
                key: first,
                nick: nick.to_owned(),
                nonce,
                seq,
            },
        );
        *self.per_jid.entry(from.clone()).or_default() += 1;
        self.order.push_back((id, seq, now + self.lifetime));
        if self.order.len() > self.total_max.saturating_mul(2) {
            // Entries of answered or replaced exchanges: dropped, so the order stays
            // within twice the cap whatever joiners do.
            let pending = &self.pending;
            self.order
                .retain(|(id, seq, _)| pending.get(id).is_some_and(|x| x.seq == *seq));
        }
        let challenge = Challenge {
            nonce,
            binding: BindingType::None,
            domain: room_jid.to_owned(),
        };
        Outcome::Challenge(STANDARD.encode(challenge.encode()))
    }
}

fn decode(el: &Element) -> Option<Vec<u8>> {
    let text = el.text();
    let text = text.trim();
    if text.len() > MAX_B64 {
        return None;
    }
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptocat_protocol::identity::Identity;
    use rand_core::SeedableRng as _;

    const ROOM: &str = "r@conference.example.org";

    fn identity(seed: u64) -> Identity {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        Identity::generate(&mut rng, cryptocat_protocol::Timestamp(1))
    }

    fn join_el(id: &Identity, proof: Option<&[u8]>) -> Element {
        let key = STANDARD.encode(ClientFirst::new(id).encode());
        let proof = proof
            .map(|p| {
                format!(
                    "<proof xmlns='{NS_ROOM_KEY}'>{}</proof>",
                    STANDARD.encode(p)
                )
            })
            .unwrap_or_default();
        format!(
            "<presence xmlns='jabber:component:accept'><key xmlns='{NS_ROOM_KEY}'>{key}</key>{proof}</presence>"
        )
        .parse()
        .unwrap()
    }

    fn answer(id: &Identity, outcome: &Outcome) -> Vec<u8> {
        let Outcome::Challenge(b64) = outcome else {
            panic!("{outcome:?}")
        };
        let ch = Challenge::decode(&STANDARD.decode(b64).unwrap()).unwrap();
        keyauth::room_respond(id, ROOM, &ch).unwrap().to_vec()
    }

    #[test]
    fn a_joiner_that_holds_its_key_is_proven_once() {
        let mut proofs = Proofs::new(2, 10, Duration::from_secs(60));
        let (t, from) = (Instant::now(), FullJid::new("a@example.org/r").unwrap());
        let id = identity(1);
        let nick = occupant_name(&id.verifying_key());
        let plain: Element = "<presence xmlns='jabber:component:accept'/>"
            .parse()
            .unwrap();
        assert_eq!(
            proofs.join(t, [1; 32], &from, ROOM, &nick, &plain),
            Outcome::Unproven
        );
        let ch = proofs.join(t, [1; 32], &from, ROOM, &nick, &join_el(&id, None));
        let proof = answer(&id, &ch);
        assert_eq!(proofs.pending(), 1);
        let el = join_el(&id, Some(&proof));
        assert_eq!(
            proofs.join(t, [2; 32], &from, ROOM, &nick, &el),
            Outcome::Proven
        );
        assert_eq!(proofs.pending(), 0);
        // Replayed: no exchange is pending any more.
        assert!(matches!(
            proofs.join(t, [2; 32], &from, ROOM, &nick, &el),
            Outcome::Refused("auth", "not-authorized", _)
        ));
    }

    #[test]
    fn wrong_names_keys_and_proofs_are_refused() {
        let mut proofs = Proofs::new(2, 10, Duration::from_secs(60));
        let (t, from) = (Instant::now(), FullJid::new("a@example.org/r").unwrap());
        let (id, other) = (identity(1), identity(2));
        let nick = occupant_name(&id.verifying_key());
        // Another key's name.
        assert!(matches!(
            proofs.join(
                t,
                [1; 32],
                &from,
                ROOM,
                &occupant_name(&other.verifying_key()),
                &join_el(&id, None)
            ),
            Outcome::Refused("modify", "not-acceptable", _)
        ));
        // A proof by another key for the same challenge.
        let ch = proofs.join(t, [1; 32], &from, ROOM, &nick, &join_el(&id, None));
        let forged = answer(&other, &ch);
        assert!(matches!(
            proofs.join(t, [1; 32], &from, ROOM, &nick, &join_el(&id, Some(&forged))),
            Outcome::Refused("auth", "not-authorized", _)
        ));
        // Another JID cannot answer someone else's challenge.
        let ch = proofs.join(t, [1; 32], &from, ROOM, &nick, &join_el(&id, None));
        let proof = answer(&id, &ch);
        let eve = FullJid::new("eve@example.org/r").unwrap();
        assert!(matches!(
            proofs.join(t, [1; 32], &eve, ROOM, &nick, &join_el(&id, Some(&proof))),
            Outcome::Refused("auth", "not-authorized", _)
        ));
        let junk: Element = format!(
            "<presence xmlns='jabber:component:accept'><key xmlns='{NS_ROOM_KEY}'>!!</key></presence>"
        )
        .parse()
        .unwrap();
        assert!(matches!(
            proofs.join(t, [1; 32], &from, ROOM, &nick, &junk),
            Outcome::Refused("modify", "bad-request", _)
        ));
    }

    /// What joiners can make the room keep: per JID, in total, and for a lifetime.
    #[test]
    fn pending_exchanges_are_bounded_and_expire() {
        let lifetime = Duration::from_secs(60);
        let mut proofs = Proofs::new(2, 5, lifetime);
        let t = Instant::now();
        let id = identity(1);
        let nick = occupant_name(&id.verifying_key());
        let el = join_el(&id, None);
        let a = FullJid::new("a@example.org/r").unwrap();
        for room in ["r1@c", "r2@c"] {
            assert!(matches!(
                proofs.join(t, [1; 32], &a, room, &nick, &el),
                Outcome::Challenge(_)
            ));
        }
        // Asking again for the same room replaces; a third room is over the JID's share.
        assert!(matches!(
            proofs.join(t, [1; 32], &a, "r1@c", &nick, &el),
            Outcome::Challenge(_)
        ));
        assert!(matches!(
            proofs.join(t, [1; 32], &a, "r3@c", &nick, &el),
            Outcome::Refused("wait", "resource-constraint", _)
        ));
        assert_eq!(proofs.pending(), 2);
        for i in 0..10 {
            let from = FullJid::new(&format!("u{i}@example.org/r")).unwrap();
            let _ = proofs.join(t, [1; 32], &from, "r1@c", &nick, &el);
        }
        assert_eq!(proofs.pending(), 5, "the total cap");
        proofs.expire(t + lifetime);
        assert_eq!(
            proofs.pending(),
            0,
            "all freed at the end of their lifetime"
        );
        assert!(proofs.order.is_empty() && proofs.per_jid.is_empty());
        // Asking again and again for one room keeps one exchange and a bounded order.
        for _ in 0..1000 {
            let _ = proofs.join(t, [1; 32], &a, "r1@c", &nick, &el);
        }
        assert_eq!(proofs.pending(), 1);
        assert!(proofs.order.len() <= 10, "{}", proofs.order.len());
    }
}
