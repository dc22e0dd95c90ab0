//! A simulated XMPP room for the group protocol: a server that relays room-wide and
//! private payloads between [`Room`]s with drops, duplicates, delays and reordering from a
//! seeded RNG, a fixed clock, a capture of every byte it relays, and hooks for a malicious
//! server (withhold, tamper, inject) and a malicious insider (a "twin": two copies of one
//! member with identical state, whose outputs go to different people).

use cryptocat_protocol::group::{occupant_name, Destination, Room, RoomConfig, RoomEvent};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::Timestamp;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::sim::Faults;

pub const ROOM: &str = "friends@conference.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Room,
    Private,
}

#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: String,
    pub to: String,
    pub channel: Channel,
    pub payload: Vec<u8>,
    /// Which copy of a twinned sender produced it (kept for hooks that target a twin).
    #[allow(dead_code)]
    pub from_twin: bool,
}

/// What a malicious server does with one envelope.
pub enum Verdict {
    Deliver,
    Drop,
    Replace(Vec<u8>),
}

pub type Hook = Box<dyn FnMut(&Envelope) -> Verdict>;

pub struct Member {
    pub address: String,
    #[allow(dead_code)]
    pub nickname: String,
    pub room: Room,
    pub rng: ChaCha20Rng,
    pub events: Vec<RoomEvent>,
    pub errors: usize,
    /// A second copy of this member, and who receives its output instead.
    pub twin: Option<(Room, ChaCha20Rng, Vec<String>)>,
}

pub struct Sim {
    pub members: Vec<Member>,
    pub now: Timestamp,
    rng: ChaCha20Rng,
    faults: Faults,
    queue: Vec<(u64, u64, Envelope)>,
    seq: u64,
    pub captured: Vec<Vec<u8>>,
    pub hook: Option<Hook>,
    pub config: RoomConfig,
}

pub fn config() -> RoomConfig {
    RoomConfig::default()
}

impl Sim {
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            members: Vec::new(),
            now: Timestamp(1_764_000_000_000),
            rng: ChaCha20Rng::seed_from_u64(seed),
            faults,
            queue: Vec::new(),
            seq: 0,
            captured: Vec::new(),
            hook: None,
            config: config(),
        }
    }

    fn make(&self, seed: u64, nickname: &str) -> (Room, ChaCha20Rng, String) {
        self.make_at(seed, nickname, None)
    }

    fn make_at(
        &self,
        seed: u64,
        nickname: &str,
        address: Option<&str>,
    ) -> (Room, ChaCha20Rng, String) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = Identity::generate(&mut rng, self.now);
        let address = match address {
            Some(a) => a.to_owned(),
            None => format!("{ROOM}/{}", occupant_name(&identity.verifying_key())),
        };
        let room = Room::new(
            identity,
            self.config.clone(),
            ROOM,
            &address,
            nickname,
            self.now,
            &mut rng,
        )
        .unwrap();
        (room, rng, address)
    }

    /// A member joins: the server announces presence both ways.
    pub fn join(&mut self, seed: u64, nickname: &str) -> usize {
        let (room, rng, address) = self.make(seed, nickname);
        self.add(Member {
            address,
            nickname: nickname.into(),
            room,
            rng,
            events: Vec::new(),
            errors: 0,
            twin: None,
        })
    }

    /// A malicious member with a twin: `twin_nickname` is what the twin tells `twin_targets`.
    pub fn join_twinned(
        &mut self,
        seed: u64,
        nickname: &str,
        twin_nickname: &str,
        twin_targets: Vec<String>,
    ) -> usize {
        let (room, rng, address) = self.make(seed, nickname);
        let (twin, twin_rng, _) = self.make(seed, twin_nickname);
        self.add(Member {
            address,
            nickname: nickname.into(),
            room,
            rng,
            events: Vec::new(),
            errors: 0,
            twin: Some((twin, twin_rng, twin_targets)),
        })
    }

    /// A member at an address of the test's choosing (not derived from its key).
    pub fn join_at(&mut self, seed: u64, nickname: &str, address: &str) -> usize {
        let (room, rng, address) = self.make_at(seed, nickname, Some(address));
        self.add(Member {
            address,
            nickname: nickname.into(),
            room,
            rng,
            events: Vec::new(),
            errors: 0,
            twin: None,
        })
    }

    /// The server plays a second identity (`fake_seed`) under the same address, shown only
    /// to `fake_targets`.
    pub fn join_split(
        &mut self,
        seed: u64,
        fake_seed: u64,
        nickname: &str,
        address: &str,
        fake_targets: Vec<String>,
    ) -> usize {
        let (room, rng, address) = self.make_at(seed, nickname, Some(address));
        let (fake, fake_rng, _) = self.make_at(fake_seed, nickname, Some(&address));
        self.add(Member {
            address,
            nickname: nickname.into(),
            room,
            rng,
            events: Vec::new(),
            errors: 0,
            twin: Some((fake, fake_rng, fake_targets)),
        })
    }

    /// A member whose presence the server hides from the members at `hidden_from`.
    pub fn join_hidden(&mut self, seed: u64, nickname: &str, hidden_from: &[usize]) -> usize {
        let (room, rng, address) = self.make(seed, nickname);
        let m = Member {
            address,
            nickname: nickname.into(),
            room,
            rng,
            events: Vec::new(),
            errors: 0,
            twin: None,
        };
        self.add_hidden(m, hidden_from)
    }

    fn add(&mut self, m: Member) -> usize {
        self.add_hidden(m, &[])
    }

    fn add_hidden(&mut self, mut m: Member, hidden_from: &[usize]) -> usize {
        let now = self.now;
        for (i, other) in self.members.iter_mut().enumerate() {
            if hidden_from.contains(&i) {
                continue;
            }
            other.room.member_present(now, &mut other.rng, &m.address);
            if let Some((t, r, _)) = other.twin.as_mut() {
                t.member_present(now, r, &m.address);
            }
            m.room.member_present(now, &mut m.rng, &other.address);
            if let Some((t, r, _)) = m.twin.as_mut() {
                t.member_present(now, r, &other.address);
            }
        }
        self.members.push(m);
        self.collect();
        self.members.len() - 1
    }

    /// A member disappears from the room (the server's presence says so); its `Room`
    /// stays, so tests can check what it can still read.
    pub fn remove(&mut self, i: usize) -> Member {
        let gone = self.members.remove(i);
        let now = self.now;
        for other in &mut self.members {
            other.room.member_absent(now, &mut other.rng, &gone.address);
        }
        self.collect();
        gone
    }

    /// Payloads relayed to the room so far.
    pub fn room_payloads(&self) -> usize {
        let mut distinct: Vec<&Vec<u8>> = self
            .captured
            .iter()
            .filter(|p| p.get(1) == Some(&0x20))
            .collect();
        distinct.sort();
        distinct.dedup();
        distinct.len()
    }

    pub fn address(&self, i: usize) -> String {
        self.members[i].address.clone()
    }

    /// Gathers everything the members want sent into the network queue.
    pub fn collect(&mut self) {
        let mut out = Vec::new();
        for m in &mut self.members {
            while let Some(t) = m.room.poll_transmit() {
                out.push((m.address.clone(), t, false, None));
            }
            if let Some((twin, _, targets)) = m.twin.as_mut() {
                while let Some(t) = twin.poll_transmit() {
                    out.push((m.address.clone(), t, true, Some(targets.clone())));
                }
            }
            while let Some(e) = m.room.poll_event() {
                m.events.push(e);
            }
            if let Some((twin, _, _)) = m.twin.as_mut() {
                while twin.poll_event().is_some() {}
            }
        }
        let addresses: Vec<(String, Option<Vec<String>>)> = self
            .members
            .iter()
            .map(|m| (m.address.clone(), m.twin.as_ref().map(|t| t.2.clone())))
            .collect();
        for (from, t, from_twin, twin_targets) in out {
            let recipients: Vec<String> = match &t.to {
                Destination::Room => addresses
                    .iter()
                    .filter(|(a, _)| *a != from)
                    .map(|(a, _)| a.clone())
                    .collect(),
                Destination::Member(a) => vec![a.clone()],
            };
            let own_targets = addresses
                .iter()
                .find(|(a, _)| *a == from)
                .and_then(|(_, t)| t.clone());
            for to in recipients {
                // A twinned sender: the twin's output reaches only its targets, the
                // primary's only the others.
                if from_twin && !twin_targets.as_ref().is_some_and(|t| t.contains(&to)) {
                    continue;
                }
                if !from_twin && own_targets.as_ref().is_some_and(|t| t.contains(&to)) {
                    continue;
                }
                let channel = if t.to == Destination::Room {
                    Channel::Room
                } else {
                    Channel::Private
                };
                self.enqueue(Envelope {
                    from: from.clone(),
                    to,
                    channel,
                    payload: t.payload.clone(),
                    from_twin,
                });
            }
        }
    }

    fn enqueue(&mut self, env: Envelope) {
        self.captured.push(env.payload.clone());
        let roll = |rng: &mut ChaCha20Rng, p: u32| rng.next_u32() % 1000 < p;
        if roll(&mut self.rng, self.faults.drop_per_mille) {
            return;
        }
        let copies = if roll(&mut self.rng, self.faults.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.faults.max_delay == 0 {
                0
            } else {
                self.rng.next_u64() % (self.faults.max_delay + 1)
            };
            self.seq += 1;
            self.queue
                .push((self.now.0 + 1 + delay, self.seq, env.clone()));
        }
    }

    /// Injects a payload as if `from` sent it to `to`.
    pub fn inject(&mut self, env: Envelope) {
        self.enqueue(env);
    }

    fn deliver(&mut self, env: Envelope) {
        let env = match self.hook.as_mut().map(|h| h(&env)) {
            None | Some(Verdict::Deliver) => env,
            Some(Verdict::Drop) => return,
            Some(Verdict::Replace(p)) => Envelope { payload: p, ..env },
        };
        let now = self.now;
        let Some(m) = self.members.iter_mut().find(|m| m.address == env.to) else {
            return;
        };
        let result = match env.channel {
            Channel::Room => m
                .room
                .handle_group(now, &mut m.rng, &env.from, &env.payload),
            Channel::Private => m
                .room
                .handle_private(now, &mut m.rng, &env.from, &env.payload),
        };
        if result.is_err() {
            m.errors += 1;
        }
        if let Some((twin, rng, _)) = m.twin.as_mut() {
            let _ = match env.channel {
                Channel::Room => twin.handle_group(now, rng, &env.from, &env.payload),
                Channel::Private => twin.handle_private(now, rng, &env.from, &env.payload),
            };
        }
    }

    /// Runs the network and the timers for `ms` of simulated time (or until nothing is
    /// left to do).
    pub fn run(&mut self, ms: u64) {
        let deadline = self.now.0 + ms;
        loop {
            self.collect();
            let next_msg = self
                .queue
                .iter()
                .enumerate()
                .min_by_key(|(_, (at, seq, _))| (*at, *seq))
                .map(|(i, (at, _, _))| (i, *at));
            let next_timer = self
                .members
                .iter()
                .filter_map(|m| m.room.poll_timeout())
                .map(|t| t.0)
                .min();
            match (next_msg, next_timer) {
                (Some((i, at)), timer) if timer.is_none_or(|t| at <= t) => {
                    if at > deadline {
                        break;
                    }
                    let (_, _, env) = self.queue.swap_remove(i);
                    self.now = Timestamp(self.now.0.max(at));
                    self.deliver(env);
                }
                (_, Some(t)) => {
                    if t > deadline {
                        break;
                    }
                    self.now = Timestamp(self.now.0.max(t));
                    let now = self.now;
                    for m in &mut self.members {
                        if m.room.poll_timeout().is_some_and(|d| d <= now) {
                            m.room.handle_timeout(now, &mut m.rng);
                        }
                        if let Some((twin, rng, _)) = m.twin.as_mut() {
                            if twin.poll_timeout().is_some_and(|d| d <= now) {
                                twin.handle_timeout(now, rng);
                            }
                        }
                    }
                }
                (None, None) => break,
                (Some(_), None) => unreachable!(),
            }
        }
        self.collect();
        self.now = Timestamp(self.now.0.max(deadline.min(self.now.0 + ms)));
    }

    pub fn send(&mut self, i: usize, text: &str) -> u64 {
        let now = self.now;
        let m = &mut self.members[i];
        let id = m.room.send_text(now, text).unwrap();
        if let Some((twin, _, _)) = m.twin.as_mut() {
            twin.send_text(now, text).unwrap();
        }
        self.collect();
        id
    }

    pub fn texts(&self, i: usize) -> Vec<(String, String)> {
        self.members[i]
            .events
            .iter()
            .filter_map(|e| match e {
                RoomEvent::Message { nickname, text, .. } => Some((nickname.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn alarms(&self, i: usize) -> Vec<cryptocat_protocol::group::Alarm> {
        self.members[i]
            .events
            .iter()
            .filter_map(|e| match e {
                RoomEvent::Alarm(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }
}
