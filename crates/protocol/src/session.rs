//! An established one-to-one session: the double ratchet, the SMP state and an outbox.
//!
//! Sans-IO shape: [`Session::encrypt`] returns the message to send,
//! [`Session::handle_data`] consumes a received one and returns what happened, and
//! protocol replies the session makes by itself (SMP steps) wait in
//! [`Session::poll_transmit`].

use std::collections::VecDeque;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::CryptoRngCore;

use crate::content::{Content, ContentError};
use crate::fingerprint::{Fingerprint, SafetyNumber};
use crate::message::DataMessage;
use crate::profile::ClientProfile;
use crate::ratchet::{MessageKey, Ratchet, RatchetError};
use crate::smp::{Smp, SmpContext, SmpError, SmpEvent, SmpMessage};
use crate::wire::DecodeError;
use crate::InstanceTag;

/// Which side of the handshake this session was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the Identity message.
    Initiator,
    /// Answered with Auth-R.
    Responder,
}

pub(crate) struct SessionKeys {
    pub(crate) role: Role,
    pub(crate) ratchet: Ratchet,
    pub(crate) session_id: [u8; 32],
    pub(crate) our_tag: InstanceTag,
    pub(crate) our_fingerprint: Fingerprint,
    pub(crate) their_profile: ClientProfile,
}

/// What a received data message meant.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per received message, matched at once
pub enum SessionEvent {
    /// A text message from the peer.
    Text(String),
    /// Progress or result of question-and-answer verification.
    Smp(SmpEvent),
    /// Group protocol content, for [`crate::group::Room`].
    Group(Content),
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// The content is not acceptable (too long).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The ratchet could not step (the peer's key is low-order; should be unreachable).
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
}

/// Why a received message was not accepted. After `WrongInstance` and `Ratchet` errors the
/// session state is unchanged. A `Content` error comes after the message authenticated:
/// its key is spent and the ratchet has moved on (the peer sent authenticated garbage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// The message is for another instance or from another peer instance.
    #[error("message instance tags {sender:#x}->{receiver:#x} do not match this session")]
    WrongInstance {
        /// Sender tag in the message.
        sender: u32,
        /// Receiver tag in the message.
        receiver: u32,
    },
    /// The ratchet refused it (replay, too far ahead, failed authentication).
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
    /// It decrypted but the content is malformed (a peer bug: authenticated garbage).
    #[error("decrypted content is malformed: {0}")]
    Content(#[from] DecodeError),
}

/// Why a verification step could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The SMP state machine refused the call.
    #[error(transparent)]
    Smp(#[from] SmpError),
    /// Sending the step failed.
    #[error(transparent)]
    Encrypt(#[from] EncryptError),
}

/// An established session.
pub struct Session {
    role: Role,
    ratchet: Ratchet,
    session_id: [u8; 32],
    our_tag: InstanceTag,
    our_fingerprint: Fingerprint,
    their_profile: ClientProfile,
    smp: Smp,
    outbox: VecDeque<DataMessage>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("peer", &self.their_profile.fingerprint())
            .field("ratchet", &self.ratchet)
            .finish_non_exhaustive()
    }
}

fn seal(key: &MessageKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let okm = key.expand();
    let (k, n) = okm.split_at(32);
    let cipher = Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(k));
    cipher
        .encrypt(
            Nonce::from_slice(n),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default()
}

fn open(key: &MessageKey, aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let okm = key.expand();
    let (k, n) = okm.split_at(32);
    let cipher = Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(k));
    cipher
        .decrypt(
            Nonce::from_slice(n),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

impl Session {
    pub(crate) fn new(keys: SessionKeys) -> Self {
        let smp = Smp::new(SmpContext {
            our_fingerprint: *keys.our_fingerprint.as_bytes(),
            their_fingerprint: *keys.their_profile.fingerprint().as_bytes(),
            session_id: keys.session_id,
        });
        Self {
            role: keys.role,
            ratchet: keys.ratchet,
            session_id: keys.session_id,
            our_tag: keys.our_tag,
            our_fingerprint: keys.our_fingerprint,
            their_profile: keys.their_profile,
            smp,
            outbox: VecDeque::new(),
        }
    }

    /// Which side of the handshake we were.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The session id (both sides derive the same; it binds SMP to this session).
    pub fn session_id(&self) -> &[u8; 32] {
        &self.session_id
    }

    /// The peer's authenticated profile.
    pub fn their_profile(&self) -> &ClientProfile {
        &self.their_profile
    }

    /// The peer's fingerprint.
    pub fn their_fingerprint(&self) -> Fingerprint {
        self.their_profile.fingerprint()
    }

    /// Our fingerprint.
    pub fn our_fingerprint(&self) -> Fingerprint {
        self.our_fingerprint
    }

    /// The pairwise safety number of the two identity keys.
    pub fn safety_number(&self, our_key: &ed25519_dalek::VerifyingKey) -> SafetyNumber {
        SafetyNumber::new(our_key, self.their_profile.identity_key())
    }

    /// Number of skipped message keys held (for diagnostics and tests).
    pub fn stored_skipped_keys(&self) -> usize {
        self.ratchet.stored_skipped()
    }

    /// Encrypts one content item.
    pub fn encrypt(
        &mut self,
        rng: &mut impl CryptoRngCore,
        content: &Content,
    ) -> Result<DataMessage, EncryptError> {
        let plaintext = zeroize::Zeroizing::new(content.to_padded_bytes()?);
        let (header, key) = self.ratchet.next_sending_key(rng)?;
        let mut msg = DataMessage {
            sender: self.our_tag,
            receiver: self.their_profile.instance_tag(),
            header,
            ciphertext: Vec::new(),
        };
        let aad = self.aad(&msg);
        msg.ciphertext = seal(&key, &aad, &plaintext);
        Ok(msg)
    }

    /// Encrypts a text message.
    pub fn send_text(
        &mut self,
        rng: &mut impl CryptoRngCore,
        text: &str,
    ) -> Result<DataMessage, EncryptError> {
        self.encrypt(rng, &Content::Text(text.to_owned()))
    }

    fn aad(&self, msg: &DataMessage) -> [u8; 32 + DataMessage::HEADER_BYTES] {
        let mut aad = [0u8; 32 + DataMessage::HEADER_BYTES];
        let (id, header) = aad.split_at_mut(32);
        id.copy_from_slice(&self.session_id);
        header.copy_from_slice(&msg.header_array());
        aad
    }

    /// Decrypts a received data message and returns its content without acting on it.
    /// Most callers want [`Session::handle_data`], which also runs SMP steps.
    pub fn decrypt_content(&mut self, msg: &DataMessage) -> Result<Content, ReceiveError> {
        if msg.receiver != self.our_tag || msg.sender != self.their_profile.instance_tag() {
            return Err(ReceiveError::WrongInstance {
                sender: msg.sender.0,
                receiver: msg.receiver.0,
            });
        }
        let aad = self.aad(msg);
        let plaintext = zeroize::Zeroizing::new(
            self.ratchet
                .receive(&msg.header, |key| open(key, &aad, &msg.ciphertext))?,
        );
        Ok(Content::from_padded_bytes(&plaintext)?)
    }

    /// Decrypts a received data message. SMP replies, if any, are queued for
    /// [`Session::poll_transmit`].
    pub fn handle_data(
        &mut self,
        rng: &mut impl CryptoRngCore,
        msg: &DataMessage,
    ) -> Result<Option<SessionEvent>, ReceiveError> {
        let content = self.decrypt_content(msg)?;
        Ok(match content {
            Content::Text(text) => Some(SessionEvent::Text(text)),
            Content::Smp(step) => {
                let out = self.smp.handle(rng, step);
                if let Some(reply) = out.reply {
                    let reply = self.encrypt(rng, &Content::Smp(reply)).map_err(|_| {
                        ReceiveError::Content(DecodeError::Invalid {
                            field: "smp",
                            what: "reply",
                        })
                    })?;
                    self.outbox.push_back(reply);
                }
                out.event.map(SessionEvent::Smp)
            }
            other @ (Content::GroupProfile(_) | Content::EpochKey(_)) => {
                Some(SessionEvent::Group(other))
            }
        })
    }

    /// The next protocol message the session wants sent (SMP replies).
    pub fn poll_transmit(&mut self) -> Option<DataMessage> {
        self.outbox.pop_front()
    }

    /// Asks the peer a secret question: returns the first SMP message, encrypted.
    pub fn start_verification(
        &mut self,
        rng: &mut impl CryptoRngCore,
        question: Option<&str>,
        answer: &str,
    ) -> Result<DataMessage, VerifyError> {
        let step = self.smp.start(rng, question, answer)?;
        Ok(self.encrypt(rng, &Content::Smp(step))?)
    }

    /// Answers the peer's secret question.
    pub fn answer_verification(
        &mut self,
        rng: &mut impl CryptoRngCore,
        answer: &str,
    ) -> Result<DataMessage, VerifyError> {
        let step = self.smp.answer(rng, answer)?;
        Ok(self.encrypt(rng, &Content::Smp(step))?)
    }

    /// Abandons a verification in progress.
    pub fn abort_verification(
        &mut self,
        rng: &mut impl CryptoRngCore,
    ) -> Result<DataMessage, VerifyError> {
        let step: SmpMessage = self.smp.abort();
        Ok(self.encrypt(rng, &Content::Smp(step))?)
    }

    #[cfg(test)]
    pub(crate) fn ratchet_snapshot(&self) -> Ratchet {
        self.ratchet.snapshot()
    }

    #[cfg(test)]
    pub(crate) fn with_ratchet(&self, ratchet: Ratchet) -> Self {
        Self::new(SessionKeys {
            role: self.role,
            ratchet,
            session_id: self.session_id,
            our_tag: self.our_tag,
            our_fingerprint: self.our_fingerprint,
            their_profile: self.their_profile.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dake::{self, DakeContext};
    use crate::identity::Identity;
    use crate::Timestamp;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const NOW: Timestamp = Timestamp(1_000_000);

    fn pair(rng: &mut ChaCha20Rng) -> (Identity, Identity, Session, Session) {
        let alice = Identity::generate(rng, NOW);
        let bob = Identity::generate(rng, NOW);
        let ctx = DakeContext {
            room: "r".into(),
            initiator: "r/a".into(),
            responder: "r/b".into(),
        };
        let (wr, m1) = dake::initiate(rng, &alice, ctx.clone(), None).unwrap();
        let (wi, m2) = dake::respond(rng, &bob, ctx, &m1, NOW).unwrap();
        let (a, m3) = wr.handle_auth_r(rng, &alice, &m2, NOW).unwrap();
        let b = wi.handle_auth_i(&bob, &m3).unwrap();
        (alice, bob, a, b)
    }

    fn text(ev: Option<SessionEvent>) -> String {
        match ev {
            Some(SessionEvent::Text(t)) => t,
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// State captured after message k cannot decrypt messages before k.
    #[test]
    fn forward_secrecy_state_after_k_cannot_read_earlier_messages() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (_, _, mut a, mut b) = pair(&mut rng);
        let mut sent = Vec::new();
        for i in 0..6 {
            let m = a.send_text(&mut rng, &format!("m{i}")).unwrap();
            assert_eq!(text(b.handle_data(&mut rng, &m).unwrap()), format!("m{i}"));
            sent.push(m);
            if i == 2 {
                // A reply makes a DH step in the middle.
                let r = b.send_text(&mut rng, "r").unwrap();
                a.handle_data(&mut rng, &r).unwrap();
            }
        }
        // The attacker steals Bob's whole state now.
        let mut stolen = b.with_ratchet(b.ratchet_snapshot());
        for m in &sent {
            assert!(
                stolen.handle_data(&mut rng, m).is_err(),
                "stolen state read an old message"
            );
        }
        // The stolen copy is a working copy: it does read the next one (so the check above
        // is not vacuous).
        let next = a.send_text(&mut rng, "next").unwrap();
        assert_eq!(text(stolen.handle_data(&mut rng, &next).unwrap()), "next");
    }

    /// A stolen state stops working after one DH round trip.
    #[test]
    fn post_compromise_security_after_one_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (_, _, mut a, mut b) = pair(&mut rng);
        let m = a.send_text(&mut rng, "before").unwrap();
        b.handle_data(&mut rng, &m).unwrap();
        let mut stolen = b.with_ratchet(b.ratchet_snapshot());
        // Still compromised: Alice's next message on the same chain.
        let m1 = a.send_text(&mut rng, "still readable").unwrap();
        assert_eq!(
            text(stolen.handle_data(&mut rng, &m1).unwrap()),
            "still readable"
        );
        b.handle_data(&mut rng, &m1).unwrap();
        // Bob answers with a fresh ratchet key (the attacker cannot know its secret)...
        let r = b.send_text(&mut rng, "reply").unwrap();
        a.handle_data(&mut rng, &r).unwrap();
        // ...and Alice's next message is out of the attacker's reach.
        let m2 = a.send_text(&mut rng, "healed").unwrap();
        assert!(stolen.handle_data(&mut rng, &m2).is_err());
        assert_eq!(text(b.handle_data(&mut rng, &m2).unwrap()), "healed");
    }

    #[test]
    fn verification_succeeds_with_the_same_answer_and_fails_otherwise() {
        for (answer_a, answer_b, ok) in
            [("Blue whale", "blue  WHALE!", true), ("blue", "red", false)]
        {
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let (_, _, mut a, mut b) = pair(&mut rng);
            let m1 = a
                .start_verification(&mut rng, Some("Favourite animal?"), answer_a)
                .unwrap();
            match b.handle_data(&mut rng, &m1).unwrap() {
                Some(SessionEvent::Smp(SmpEvent::QuestionReceived { question })) => {
                    assert_eq!(question.as_deref(), Some("Favourite animal?"))
                }
                other => panic!("{other:?}"),
            }
            let m2 = b.answer_verification(&mut rng, answer_b).unwrap();
            assert_eq!(a.handle_data(&mut rng, &m2).unwrap(), None);
            let m3 = a.poll_transmit().unwrap();
            let b_result = b.handle_data(&mut rng, &m3).unwrap();
            let m4 = b.poll_transmit().unwrap();
            let a_result = a.handle_data(&mut rng, &m4).unwrap();
            let expected = Some(SessionEvent::Smp(if ok {
                SmpEvent::Succeeded
            } else {
                SmpEvent::Failed
            }));
            assert_eq!(a_result, expected);
            assert_eq!(b_result, expected);
        }
    }

    #[test]
    fn debug_output_of_secret_holders_shows_no_key_material() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (alice, _, a, _) = pair(&mut rng);
        let snapshot = a.ratchet_snapshot();
        let root_hex: String = snapshot
            .root_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for text in [
            format!("{a:?}"),
            format!("{alice:?}"),
            format!("{snapshot:?}"),
        ] {
            assert!(!text.contains(&root_hex[..12]), "{text}");
            assert!(!text.contains("root"), "{text}");
        }
    }
}
