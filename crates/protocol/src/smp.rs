//! The socialist millionaires' protocol (SMP): question-and-answer verification.
//!
//! Two users who share a piece of knowledge (the answer to a question one of them asks)
//! check that they are talking to each other, without a man in the middle, and without
//! revealing anything about the answers beyond whether they are equal. This is OTRv4's SMP
//! (itself OTRv3's SMP on an elliptic curve) carried over to ristretto255:
//!
//! - the group is ristretto255 with generator `G` = `RISTRETTO_BASEPOINT_POINT`; it has
//!   prime order, so beyond canonical decoding (done by [`crate::wire::Reader::point`]) and
//!   rejecting the identity there is no cofactor or small-subgroup handling;
//! - every zero-knowledge proof is a Fiat–Shamir proof whose challenge is
//!   [`crate::kdf::hash_to_scalar`] under its own domain label ([`label`]), in place of
//!   OTRv4's `HashToScalar(0x0N || ...)`;
//! - the compared secret binds both identity fingerprints and the session id
//!   ([`SmpContext`]), so a man in the middle, who necessarily runs two sessions with
//!   different keys, cannot make the comparison succeed even if he knows the answer.
//!
//! # Flow
//!
//! ```text
//! Alice (initiator, secret x)                    Bob (responder, secret y)
//! start()    -- SMP1: question, G2a, G3a + proofs ->  handle(): QuestionReceived
//!                                                  answer()
//! handle()  <- SMP2: G2b, G3b, Pb, Qb + proofs --
//!            -- SMP3: Pa, Qa, Ra + proofs ------>  handle(): Succeeded / Failed
//! handle()  <- SMP4: Rb + proof ----------------
//!    Succeeded / Failed
//! ```
//!
//! The responder learns the result on SMP3 and the initiator on SMP4. The final check is
//! `Rab == Pa - Pb`, compared in constant time on the compressed encodings.
//!
//! # Errors
//!
//! Misuse of the API (starting twice, answering when no question is pending, over-long
//! inputs) returns [`SmpError`]. Anything the peer does wrong never returns an error: the
//! state machine goes back to idle, the output carries [`SmpMessage::Abort`] to send and
//! an [`SmpEvent::Aborted`] event with an [`SmpAbortReason`].

use core::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::kdf;
use crate::wire::{DecodeError, Reader, Writer};

/// The longest question, in UTF-8 bytes, that [`Smp::start`] sends and the decoder accepts.
pub const MAX_QUESTION_BYTES: usize = 1024;

/// The longest answer, in UTF-8 bytes before normalization, that [`Smp::start`] and
/// [`Smp::answer`] accept.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// Message type byte of [`SmpMessage::One`].
pub const TAG_SMP1: u8 = 0x11;
/// Message type byte of [`SmpMessage::Two`].
pub const TAG_SMP2: u8 = 0x12;
/// Message type byte of [`SmpMessage::Three`].
pub const TAG_SMP3: u8 = 0x13;
/// Message type byte of [`SmpMessage::Four`].
pub const TAG_SMP4: u8 = 0x14;
/// Message type byte of [`SmpMessage::Abort`].
pub const TAG_ABORT: u8 = 0x15;

/// Domain labels of the SMP hashes. Each is unique in the crate; `docs/protocol.md` lists
/// them. `PROOF_n` replaces OTRv4's `HashToScalar(0x0n || ...)` prefix byte `n`.
pub mod label {
    /// The secret `x` / `y` derived from the answer and the context.
    pub const SECRET: &[u8] = b"cryptocat/v1/smp/secret";
    /// SMP1: proof of knowledge of `a2` (`c2`).
    pub const PROOF_1: &[u8] = b"cryptocat/v1/smp/1";
    /// SMP1: proof of knowledge of `a3` (`c3`).
    pub const PROOF_2: &[u8] = b"cryptocat/v1/smp/2";
    /// SMP2: proof of knowledge of `b2` (`c2`).
    pub const PROOF_3: &[u8] = b"cryptocat/v1/smp/3";
    /// SMP2: proof of knowledge of `b3` (`c3`).
    pub const PROOF_4: &[u8] = b"cryptocat/v1/smp/4";
    /// SMP2: proof that `Pb`, `Qb` were formed correctly (`cp`).
    pub const PROOF_5: &[u8] = b"cryptocat/v1/smp/5";
    /// SMP3: proof that `Pa`, `Qa` were formed correctly (`cp`).
    pub const PROOF_6: &[u8] = b"cryptocat/v1/smp/6";
    /// SMP3: proof that `Ra` was formed correctly (`cr`).
    pub const PROOF_7: &[u8] = b"cryptocat/v1/smp/7";
    /// SMP4: proof that `Rb` was formed correctly (`cr`).
    pub const PROOF_8: &[u8] = b"cryptocat/v1/smp/8";
}

/// How many times [`normalize_answer`] applies its pipeline at most while looking for a
/// fixed point.
const NORMALIZE_MAX_ROUNDS: usize = 4;

/// Normalizes an answer so that trivially different spellings compare equal.
///
/// One round is: NFKC, full default case folding, NFKC again, then removal of every
/// whitespace character (Unicode `White_Space`) and every punctuation character (general
/// category `P*`: `Pc Pd Ps Pe Pi Pf Po`). Symbols (`S*`), digits, letters and marks are
/// kept. Removing characters can expose a combining mark to a new base character (for
/// example `e.\u{301}`), so the round is repeated until the text stops changing (at most
/// four rounds; one or two in practice). The result is therefore idempotent:
/// `normalize_answer(&normalize_answer(s)) == normalize_answer(s)`.
///
/// `"  Hello, World! "` becomes `"helloworld"` and `"Straße"` becomes `"strasse"`.
pub fn normalize_answer(answer: &str) -> String {
    let mut current = normalize_round(answer);
    for _ in 1..NORMALIZE_MAX_ROUNDS {
        let next = normalize_round(&current);
        if *next == *current {
            break;
        }
        current = next;
    }
    core::mem::take(&mut *current)
}

/// One round of [`normalize_answer`]; every intermediate buffer is wiped when dropped.
fn normalize_round(text: &str) -> Zeroizing<String> {
    let mut first = Zeroizing::new(String::with_capacity(text.len().saturating_mul(2)));
    first.extend(text.nfkc());
    let folded = Zeroizing::new(caseless::default_case_fold_str(&first));
    let mut second = Zeroizing::new(String::with_capacity(folded.len().saturating_mul(2)));
    second.extend(folded.nfkc());
    let mut out = Zeroizing::new(String::with_capacity(second.len()));
    out.extend(second.chars().filter(|&c| is_kept(c)));
    out
}

/// True for the characters [`normalize_answer`] keeps.
fn is_kept(c: char) -> bool {
    !c.is_whitespace() && c.general_category_group() != GeneralCategoryGroup::Punctuation
}

/// What the compared secret is bound to besides the answer.
///
/// Each side fills in its own view: `our_fingerprint` is the local identity's fingerprint,
/// `their_fingerprint` the peer's as seen in this session, and `session_id` the id both
/// sides derived from the key exchange. The comparison succeeds only if both sides see the
/// same two fingerprints (mirrored) and the same session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpContext {
    /// Fingerprint of our identity key.
    pub our_fingerprint: [u8; 32],
    /// Fingerprint of the peer's identity key, as authenticated in this session.
    pub their_fingerprint: [u8; 32],
    /// The session id from the key exchange.
    pub session_id: [u8; 32],
}

/// One SMP message. Every field is public protocol data (no secrets).
///
/// Wire form: [`SmpMessage::tag`] is written by the caller, then the fields in the order
/// listed here, points as 32-byte compressed ristretto255 encodings and scalars as 32-byte
/// canonical little-endian encodings.
// At most four of these per run: moving under 1 KiB beats boxing and keeps plain fields.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmpMessage {
    /// SMP1, initiator → responder: the question and the initiator's halves of `G2`, `G3`.
    One {
        /// The question shown to the responder, if any.
        question: Option<String>,
        /// `G * a2`.
        g2a: RistrettoPoint,
        /// Challenge of the proof of knowledge of `a2`.
        c2: Scalar,
        /// Response of the proof of knowledge of `a2`.
        d2: Scalar,
        /// `G * a3`.
        g3a: RistrettoPoint,
        /// Challenge of the proof of knowledge of `a3`.
        c3: Scalar,
        /// Response of the proof of knowledge of `a3`.
        d3: Scalar,
    },
    /// SMP2, responder → initiator: the responder's halves of `G2`, `G3` and `Pb`, `Qb`.
    Two {
        /// `G * b2`.
        g2b: RistrettoPoint,
        /// Challenge of the proof of knowledge of `b2`.
        c2: Scalar,
        /// Response of the proof of knowledge of `b2`.
        d2: Scalar,
        /// `G * b3`.
        g3b: RistrettoPoint,
        /// Challenge of the proof of knowledge of `b3`.
        c3: Scalar,
        /// Response of the proof of knowledge of `b3`.
        d3: Scalar,
        /// `G3 * r4`.
        pb: RistrettoPoint,
        /// `G * r4 + G2 * y`.
        qb: RistrettoPoint,
        /// Challenge of the proof for `Pb`, `Qb`.
        cp: Scalar,
        /// First response of the proof for `Pb`, `Qb`.
        d5: Scalar,
        /// Second response of the proof for `Pb`, `Qb`.
        d6: Scalar,
    },
    /// SMP3, initiator → responder: `Pa`, `Qa` and `Ra`.
    Three {
        /// `G3 * r4`.
        pa: RistrettoPoint,
        /// `G * r4 + G2 * x`.
        qa: RistrettoPoint,
        /// Challenge of the proof for `Pa`, `Qa`.
        cp: Scalar,
        /// First response of the proof for `Pa`, `Qa`.
        d5: Scalar,
        /// Second response of the proof for `Pa`, `Qa`.
        d6: Scalar,
        /// `(Qa - Qb) * a3`.
        ra: RistrettoPoint,
        /// Challenge of the proof for `Ra`.
        cr: Scalar,
        /// Response of the proof for `Ra`.
        d7: Scalar,
    },
    /// SMP4, responder → initiator: `Rb`.
    Four {
        /// `(Qa - Qb) * b3`.
        rb: RistrettoPoint,
        /// Challenge of the proof for `Rb`.
        cr: Scalar,
        /// Response of the proof for `Rb`.
        d7: Scalar,
    },
    /// Either side abandons the run. No fields.
    Abort,
}

impl SmpMessage {
    /// The message type byte: `0x11`..`0x14` for SMP1..SMP4, `0x15` for abort.
    pub fn tag(&self) -> u8 {
        match self {
            Self::One { .. } => TAG_SMP1,
            Self::Two { .. } => TAG_SMP2,
            Self::Three { .. } => TAG_SMP3,
            Self::Four { .. } => TAG_SMP4,
            Self::Abort => TAG_ABORT,
        }
    }

    /// Writes the fields (not the tag, which the caller writes first).
    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Self::One {
                question,
                g2a,
                c2,
                d2,
                g3a,
                c3,
                d3,
            } => {
                match question {
                    None => {
                        w.u8(0);
                    }
                    Some(q) => {
                        w.u8(1).bytes16(q.as_bytes());
                    }
                }
                w.point(g2a)
                    .scalar(c2)
                    .scalar(d2)
                    .point(g3a)
                    .scalar(c3)
                    .scalar(d3);
            }
            Self::Two {
                g2b,
                c2,
                d2,
                g3b,
                c3,
                d3,
                pb,
                qb,
                cp,
                d5,
                d6,
            } => {
                w.point(g2b).scalar(c2).scalar(d2);
                w.point(g3b).scalar(c3).scalar(d3);
                w.point(pb).point(qb).scalar(cp).scalar(d5).scalar(d6);
            }
            Self::Three {
                pa,
                qa,
                cp,
                d5,
                d6,
                ra,
                cr,
                d7,
            } => {
                w.point(pa).point(qa).scalar(cp).scalar(d5).scalar(d6);
                w.point(ra).scalar(cr).scalar(d7);
            }
            Self::Four { rb, cr, d7 } => {
                w.point(rb).scalar(cr).scalar(d7);
            }
            Self::Abort => {}
        }
    }

    /// Reads the fields of the message whose type byte is `tag`. Points must be canonical
    /// and not the identity, scalars canonical. Does not check for trailing bytes (the
    /// caller does).
    pub(crate) fn decode(tag: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match tag {
            TAG_SMP1 => {
                let question = match r.u8("smp1.has_question")? {
                    0 => None,
                    1 => Some(r.string16("smp1.question", MAX_QUESTION_BYTES)?),
                    _ => {
                        return Err(DecodeError::Invalid {
                            field: "smp1.has_question",
                            what: "flag (0 or 1)",
                        })
                    }
                };
                let g2a = r.point("smp1.g2a")?;
                let c2 = r.scalar("smp1.c2")?;
                let d2 = r.scalar("smp1.d2")?;
                let g3a = r.point("smp1.g3a")?;
                let c3 = r.scalar("smp1.c3")?;
                let d3 = r.scalar("smp1.d3")?;
                Ok(Self::One {
                    question,
                    g2a,
                    c2,
                    d2,
                    g3a,
                    c3,
                    d3,
                })
            }
            TAG_SMP2 => {
                let g2b = r.point("smp2.g2b")?;
                let c2 = r.scalar("smp2.c2")?;
                let d2 = r.scalar("smp2.d2")?;
                let g3b = r.point("smp2.g3b")?;
                let c3 = r.scalar("smp2.c3")?;
                let d3 = r.scalar("smp2.d3")?;
                let pb = r.point("smp2.pb")?;
                let qb = r.point("smp2.qb")?;
                let cp = r.scalar("smp2.cp")?;
                let d5 = r.scalar("smp2.d5")?;
                let d6 = r.scalar("smp2.d6")?;
                Ok(Self::Two {
                    g2b,
                    c2,
                    d2,
                    g3b,
                    c3,
                    d3,
                    pb,
                    qb,
                    cp,
                    d5,
                    d6,
                })
            }
            TAG_SMP3 => {
                let pa = r.point("smp3.pa")?;
                let qa = r.point("smp3.qa")?;
                let cp = r.scalar("smp3.cp")?;
                let d5 = r.scalar("smp3.d5")?;
                let d6 = r.scalar("smp3.d6")?;
                let ra = r.point("smp3.ra")?;
                let cr = r.scalar("smp3.cr")?;
                let d7 = r.scalar("smp3.d7")?;
                Ok(Self::Three {
                    pa,
                    qa,
                    cp,
                    d5,
                    d6,
                    ra,
                    cr,
                    d7,
                })
            }
            TAG_SMP4 => {
                let rb = r.point("smp4.rb")?;
                let cr = r.scalar("smp4.cr")?;
                let d7 = r.scalar("smp4.d7")?;
                Ok(Self::Four { rb, cr, d7 })
            }
            TAG_ABORT => Ok(Self::Abort),
            other => Err(DecodeError::UnknownType(other)),
        }
    }
}

/// What happened, for the application to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmpEvent {
    /// The peer started SMP; the application should show the question (if any), ask the
    /// user for the answer and pass it to [`Smp::answer`] (or call [`Smp::abort`]).
    QuestionReceived {
        /// The peer's question; `None` when the peer sent none (the users agreed on the
        /// secret some other way).
        question: Option<String>,
    },
    /// The run completed and both answers (and contexts) were equal: the peer is verified.
    Succeeded,
    /// The run completed and the answers (or the fingerprints or session ids) differed.
    /// The peer is not verified.
    Failed,
    /// The run was abandoned without a result. The peer is not verified.
    Aborted {
        /// Why.
        reason: SmpAbortReason,
    },
}

/// Why a run was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpAbortReason {
    /// The peer sent a message that does not fit the current step: an SMP2, SMP3 or SMP4
    /// we were not expecting, or an SMP1 while a run was in progress (including both
    /// sides starting at the same time). Start again.
    OutOfOrder,
    /// A zero-knowledge proof in the peer's message did not verify: the peer (or someone
    /// in between) did not follow the protocol.
    InvalidProof,
    /// The message held a value the decoder would have rejected (an identity point or an
    /// over-long question). Only reachable with a message that did not come from
    /// [`SmpMessage::decode`].
    Malformed,
    /// The peer sent [`SmpMessage::Abort`].
    PeerAborted,
}

/// The result of [`Smp::handle`]: a message to send back and/or an event to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpOutput {
    /// A message to send to the peer, if any.
    pub reply: Option<SmpMessage>,
    /// An event for the application, if any.
    pub event: Option<SmpEvent>,
}

impl SmpOutput {
    fn nothing() -> Self {
        Self {
            reply: None,
            event: None,
        }
    }

    fn abort(reason: SmpAbortReason) -> Self {
        Self {
            reply: Some(SmpMessage::Abort),
            event: Some(SmpEvent::Aborted { reason }),
        }
    }

    fn peer_aborted() -> Self {
        Self {
            reply: None,
            event: Some(SmpEvent::Aborted {
                reason: SmpAbortReason::PeerAborted,
            }),
        }
    }
}

/// Misuse of the SMP API by the application. Protocol errors caused by the peer are
/// reported as [`SmpEvent::Aborted`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The answer is longer than [`MAX_ANSWER_BYTES`] UTF-8 bytes.
    #[error("the answer is longer than {MAX_ANSWER_BYTES} bytes")]
    AnswerTooLong,
    /// The answer is empty after [`normalize_answer`] (it held only whitespace and
    /// punctuation), which would make the secret guessable.
    #[error("the answer is empty once whitespace and punctuation are removed")]
    EmptyAnswer,
    /// The question is longer than [`MAX_QUESTION_BYTES`] UTF-8 bytes.
    #[error("the question is longer than {MAX_QUESTION_BYTES} bytes")]
    QuestionTooLong,
    /// [`Smp::start`] was called while a run is in progress (including while a received
    /// question awaits an answer). Call [`Smp::abort`] first to restart.
    #[error("an SMP run is already in progress")]
    AlreadyInProgress,
    /// [`Smp::answer`] was called while no received question awaits an answer.
    #[error("no SMP question is waiting for an answer")]
    NotAwaitingAnswer,
}

/// Initiator, after sending SMP1.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Expect2 {
    x: Scalar,
    a2: Scalar,
    a3: Scalar,
}

/// Responder, after receiving a valid SMP1, until the user answers.
#[derive(Zeroize, ZeroizeOnDrop)]
struct AwaitingAnswer {
    g2a: RistrettoPoint,
    g3a: RistrettoPoint,
}

/// Responder, after sending SMP2.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Expect3 {
    g3a: RistrettoPoint,
    g2: RistrettoPoint,
    g3: RistrettoPoint,
    b3: Scalar,
    pb: RistrettoPoint,
    qb: RistrettoPoint,
}

/// Initiator, after sending SMP3.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Expect4 {
    g3b: RistrettoPoint,
    pa_minus_pb: RistrettoPoint,
    qa_minus_qb: RistrettoPoint,
    a3: Scalar,
}

/// The SMP state machine (OTR's `SMPSTATE_*`, plus the wait for the user's answer).
/// Each state's values are boxed so they move without copies and are wiped on drop.
enum State {
    /// `SMPSTATE_EXPECT1`: no run in progress.
    Idle,
    /// `SMPSTATE_EXPECT2`: we started.
    Expect2(Box<Expect2>),
    /// We received SMP1; the user must answer.
    AwaitingAnswer(Box<AwaitingAnswer>),
    /// `SMPSTATE_EXPECT3`: we answered.
    Expect3(Box<Expect3>),
    /// `SMPSTATE_EXPECT4`: we sent SMP3.
    Expect4(Box<Expect4>),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Expect2(_) => "Expect2",
            Self::AwaitingAnswer(_) => "AwaitingAnswer",
            Self::Expect3(_) => "Expect3",
            Self::Expect4(_) => "Expect4",
        }
    }
}

/// One side of SMP runs within one session. Runs can follow each other; one at a time.
pub struct Smp {
    ctx: SmpContext,
    state: State,
}

impl fmt::Debug for Smp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state name only: the held scalars (and the derived points) stay private.
        f.debug_struct("Smp")
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl Smp {
    /// An idle SMP for the session described by `ctx`.
    pub fn new(ctx: SmpContext) -> Self {
        Self {
            ctx,
            state: State::Idle,
        }
    }

    /// We ask: starts a run and returns SMP1 to send.
    ///
    /// The secret is `x = hash_to_scalar(label::SECRET, [initiator fingerprint = ours,
    /// responder fingerprint = theirs, session id, normalize_answer(answer)])`.
    pub fn start(
        &mut self,
        rng: &mut impl CryptoRngCore,
        question: Option<&str>,
        answer: &str,
    ) -> Result<SmpMessage, SmpError> {
        if self.in_progress() {
            return Err(SmpError::AlreadyInProgress);
        }
        if question.is_some_and(|q| q.len() > MAX_QUESTION_BYTES) {
            return Err(SmpError::QuestionTooLong);
        }
        let normalized = checked_normalized(answer)?;
        let x = derive_secret(
            &self.ctx.our_fingerprint,
            &self.ctx.their_fingerprint,
            &self.ctx.session_id,
            &normalized,
        );
        let a2 = random_scalar(rng);
        let a3 = random_scalar(rng);
        let g2a = RistrettoPoint::mul_base(&a2);
        let g3a = RistrettoPoint::mul_base(&a3);
        let (c2, d2) = prove_dlog(rng, label::PROOF_1, &a2);
        let (c3, d3) = prove_dlog(rng, label::PROOF_2, &a3);
        self.state = State::Expect2(Box::new(Expect2 {
            x: *x,
            a2: *a2,
            a3: *a3,
        }));
        Ok(SmpMessage::One {
            question: question.map(str::to_owned),
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
        })
    }

    /// After [`SmpEvent::QuestionReceived`]: the user's answer. Returns SMP2 to send.
    ///
    /// The secret is `y = hash_to_scalar(label::SECRET, [initiator fingerprint = theirs,
    /// responder fingerprint = ours, session id, normalize_answer(answer)])`, so `x == y`
    /// exactly when the answers normalize equally and both sides agree on both
    /// fingerprints and the session id. On error the question stays pending.
    pub fn answer(
        &mut self,
        rng: &mut impl CryptoRngCore,
        answer: &str,
    ) -> Result<SmpMessage, SmpError> {
        let (g2a, g3a) = match &self.state {
            State::AwaitingAnswer(s) => (s.g2a, s.g3a),
            _ => return Err(SmpError::NotAwaitingAnswer),
        };
        let normalized = checked_normalized(answer)?;
        let y = derive_secret(
            &self.ctx.their_fingerprint,
            &self.ctx.our_fingerprint,
            &self.ctx.session_id,
            &normalized,
        );
        let b2 = random_scalar(rng);
        let b3 = random_scalar(rng);
        let g2b = RistrettoPoint::mul_base(&b2);
        let g3b = RistrettoPoint::mul_base(&b3);
        let (c2, d2) = prove_dlog(rng, label::PROOF_3, &b2);
        let (c3, d3) = prove_dlog(rng, label::PROOF_4, &b3);
        let g2 = g2a * *b2;
        let g3 = g3a * *b3;
        let r4 = random_scalar(rng);
        let pb = g3 * *r4;
        let qb = RistrettoPoint::mul_base(&r4) + g2 * *y;
        let (cp, d5, d6) = prove_pq(rng, label::PROOF_5, &g2, &g3, &r4, &y);
        self.state = State::Expect3(Box::new(Expect3 {
            g3a,
            g2,
            g3,
            b3: *b3,
            pb,
            qb,
        }));
        Ok(SmpMessage::Two {
            g2b,
            c2,
            d2,
            g3b,
            c3,
            d3,
            pb,
            qb,
            cp,
            d5,
            d6,
        })
    }

    /// Handles a received SMP message, whatever the step.
    ///
    /// Never fails: a peer's protocol violation resets to idle, replies
    /// [`SmpMessage::Abort`] and reports [`SmpEvent::Aborted`]:
    ///
    /// - a message that is not the expected next step (including SMP1 while a run is in
    ///   progress or awaiting our answer, e.g. when both sides start at once):
    ///   [`SmpAbortReason::OutOfOrder`];
    /// - a proof that does not verify: [`SmpAbortReason::InvalidProof`];
    /// - an identity point or over-long question (impossible after decoding):
    ///   [`SmpAbortReason::Malformed`].
    ///
    /// A received [`SmpMessage::Abort`] resets to idle without a reply and reports
    /// `Aborted { reason: PeerAborted }`, or nothing at all if no run was in progress.
    /// A valid SMP1 reports [`SmpEvent::QuestionReceived`]; a valid SMP3 replies SMP4 and
    /// reports [`SmpEvent::Succeeded`] or [`SmpEvent::Failed`]; a valid SMP4 reports the
    /// same.
    pub fn handle(&mut self, rng: &mut impl CryptoRngCore, msg: SmpMessage) -> SmpOutput {
        let state = core::mem::replace(&mut self.state, State::Idle);
        if matches!(msg, SmpMessage::Abort) {
            return match state {
                State::Idle => SmpOutput::nothing(),
                _ => SmpOutput::peer_aborted(),
            };
        }
        match state {
            State::Idle => self.on_smp1(msg),
            State::Expect2(s) => self.on_smp2(rng, &s, msg),
            State::Expect3(s) => on_smp3(rng, &s, msg),
            State::Expect4(s) => on_smp4(&s, msg),
            State::AwaitingAnswer(_) => SmpOutput::abort(SmpAbortReason::OutOfOrder),
        }
    }

    /// Abandons the current run (if any) and returns the abort message to send.
    pub fn abort(&mut self) -> SmpMessage {
        self.state = State::Idle;
        SmpMessage::Abort
    }

    /// True from [`Smp::start`] or a received SMP1 until the run ends.
    pub fn in_progress(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// True while a received question waits for [`Smp::answer`].
    pub fn awaiting_answer(&self) -> bool {
        matches!(self.state, State::AwaitingAnswer(_))
    }

    /// Idle, expecting SMP1.
    fn on_smp1(&mut self, msg: SmpMessage) -> SmpOutput {
        let SmpMessage::One {
            question,
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
        } = msg
        else {
            return SmpOutput::abort(SmpAbortReason::OutOfOrder);
        };
        if question
            .as_ref()
            .is_some_and(|q| q.len() > MAX_QUESTION_BYTES)
            || any_identity(&[&g2a, &g3a])
        {
            return SmpOutput::abort(SmpAbortReason::Malformed);
        }
        let proofs_ok = verify_dlog(label::PROOF_1, &g2a, &c2, &d2)
            & verify_dlog(label::PROOF_2, &g3a, &c3, &d3);
        if !proofs_ok {
            return SmpOutput::abort(SmpAbortReason::InvalidProof);
        }
        self.state = State::AwaitingAnswer(Box::new(AwaitingAnswer { g2a, g3a }));
        SmpOutput {
            reply: None,
            event: Some(SmpEvent::QuestionReceived { question }),
        }
    }

    /// Initiator expecting SMP2: verify, reply SMP3.
    fn on_smp2(&mut self, rng: &mut impl CryptoRngCore, s: &Expect2, msg: SmpMessage) -> SmpOutput {
        let SmpMessage::Two {
            g2b,
            c2,
            d2,
            g3b,
            c3,
            d3,
            pb,
            qb,
            cp,
            d5,
            d6,
        } = msg
        else {
            return SmpOutput::abort(SmpAbortReason::OutOfOrder);
        };
        if any_identity(&[&g2b, &g3b, &pb, &qb]) {
            return SmpOutput::abort(SmpAbortReason::Malformed);
        }
        let g2 = g2b * s.a2;
        let g3 = g3b * s.a3;
        let proofs_ok = verify_dlog(label::PROOF_3, &g2b, &c2, &d2)
            & verify_dlog(label::PROOF_4, &g3b, &c3, &d3)
            & verify_pq(label::PROOF_5, &g2, &g3, &pb, &qb, &cp, &d5, &d6);
        if !proofs_ok {
            return SmpOutput::abort(SmpAbortReason::InvalidProof);
        }
        let r4 = random_scalar(rng);
        let pa = g3 * *r4;
        let qa = RistrettoPoint::mul_base(&r4) + g2 * s.x;
        let (cp, d5, d6) = prove_pq(rng, label::PROOF_6, &g2, &g3, &r4, &s.x);
        let qa_minus_qb = qa - qb;
        let ra = qa_minus_qb * s.a3;
        let (cr, d7) = prove_r(rng, label::PROOF_7, &qa_minus_qb, &s.a3);
        self.state = State::Expect4(Box::new(Expect4 {
            g3b,
            pa_minus_pb: pa - pb,
            qa_minus_qb,
            a3: s.a3,
        }));
        SmpOutput {
            reply: Some(SmpMessage::Three {
                pa,
                qa,
                cp,
                d5,
                d6,
                ra,
                cr,
                d7,
            }),
            event: None,
        }
    }
}

/// Responder expecting SMP3: verify, reply SMP4 and report the result.
fn on_smp3(rng: &mut impl CryptoRngCore, s: &Expect3, msg: SmpMessage) -> SmpOutput {
    let SmpMessage::Three {
        pa,
        qa,
        cp,
        d5,
        d6,
        ra,
        cr,
        d7,
    } = msg
    else {
        return SmpOutput::abort(SmpAbortReason::OutOfOrder);
    };
    if any_identity(&[&pa, &qa, &ra]) {
        return SmpOutput::abort(SmpAbortReason::Malformed);
    }
    let qa_minus_qb = qa - s.qb;
    let proofs_ok = verify_pq(label::PROOF_6, &s.g2, &s.g3, &pa, &qa, &cp, &d5, &d6)
        & verify_r(label::PROOF_7, &s.g3a, &qa_minus_qb, &ra, &cr, &d7)
        & !qa_minus_qb.is_identity();
    if !proofs_ok {
        return SmpOutput::abort(SmpAbortReason::InvalidProof);
    }
    let rb = qa_minus_qb * s.b3;
    let (cr, d7) = prove_r(rng, label::PROOF_8, &qa_minus_qb, &s.b3);
    let rab = ra * s.b3;
    SmpOutput {
        reply: Some(SmpMessage::Four { rb, cr, d7 }),
        event: Some(result_event(&rab, &(pa - s.pb))),
    }
}

/// Initiator expecting SMP4: verify and report the result.
fn on_smp4(s: &Expect4, msg: SmpMessage) -> SmpOutput {
    let SmpMessage::Four { rb, cr, d7 } = msg else {
        return SmpOutput::abort(SmpAbortReason::OutOfOrder);
    };
    if any_identity(&[&rb]) {
        return SmpOutput::abort(SmpAbortReason::Malformed);
    }
    if !verify_r(label::PROOF_8, &s.g3b, &s.qa_minus_qb, &rb, &cr, &d7) {
        return SmpOutput::abort(SmpAbortReason::InvalidProof);
    }
    let rab = rb * s.a3;
    SmpOutput {
        reply: None,
        event: Some(result_event(&rab, &s.pa_minus_pb)),
    }
}

/// `Succeeded` if `rab == pa_minus_pb`, compared in constant time on the encodings.
fn result_event(rab: &RistrettoPoint, pa_minus_pb: &RistrettoPoint) -> SmpEvent {
    let equal = rab
        .compress()
        .as_bytes()
        .ct_eq(pa_minus_pb.compress().as_bytes());
    if bool::from(equal) {
        SmpEvent::Succeeded
    } else {
        SmpEvent::Failed
    }
}

/// Checks the answer's length and normalizes it; the result is wiped on drop.
fn checked_normalized(answer: &str) -> Result<Zeroizing<String>, SmpError> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(SmpError::AnswerTooLong);
    }
    let normalized = Zeroizing::new(normalize_answer(answer));
    if normalized.is_empty() {
        return Err(SmpError::EmptyAnswer);
    }
    Ok(normalized)
}

/// The SMP secret for a run started by `initiator_fp` with `responder_fp`.
fn derive_secret(
    initiator_fp: &[u8; 32],
    responder_fp: &[u8; 32],
    session_id: &[u8; 32],
    normalized_answer: &str,
) -> Zeroizing<Scalar> {
    Zeroizing::new(kdf::hash_to_scalar(
        label::SECRET,
        &[
            initiator_fp,
            responder_fp,
            session_id,
            normalized_answer.as_bytes(),
        ],
    ))
}

/// A uniformly random scalar, wiped on drop.
fn random_scalar(rng: &mut impl CryptoRngCore) -> Zeroizing<Scalar> {
    Zeroizing::new(Scalar::random(rng))
}

/// True if any point is the identity.
fn any_identity(points: &[&RistrettoPoint]) -> bool {
    points.iter().any(|p| p.is_identity())
}

/// A challenge: `hash_to_scalar(label, [compressed points...])`.
fn challenge(label: &[u8], points: &[RistrettoPoint]) -> Scalar {
    let encoded: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(|e| e.as_slice()).collect();
    kdf::hash_to_scalar(label, &parts)
}

/// Constant-time scalar equality.
fn scalar_eq(a: &Scalar, b: &Scalar) -> bool {
    bool::from(a.ct_eq(b))
}

/// Schnorr proof of knowledge of `secret` with `G * secret` public:
/// `c = H(label, G * r)`, `d = r - secret * c`.
fn prove_dlog(rng: &mut impl CryptoRngCore, label: &[u8], secret: &Scalar) -> (Scalar, Scalar) {
    let r = random_scalar(rng);
    let c = challenge(label, &[RistrettoPoint::mul_base(&r)]);
    let d = *r - secret * c;
    (c, d)
}

/// Checks `c == H(label, G * d + public * c)`.
fn verify_dlog(label: &[u8], public: &RistrettoPoint, c: &Scalar, d: &Scalar) -> bool {
    let commitment = RistrettoPoint::mul_base(d) + public * c;
    scalar_eq(c, &challenge(label, &[commitment]))
}

/// Proof that `P = G3 * r4` and `Q = G * r4 + G2 * secret`:
/// `cp = H(label, G3 * r5, G * r5 + G2 * r6)`, `d5 = r5 - r4 * cp`, `d6 = r6 - secret * cp`.
fn prove_pq(
    rng: &mut impl CryptoRngCore,
    label: &[u8],
    g2: &RistrettoPoint,
    g3: &RistrettoPoint,
    r4: &Scalar,
    secret: &Scalar,
) -> (Scalar, Scalar, Scalar) {
    let r5 = random_scalar(rng);
    let r6 = random_scalar(rng);
    let cp = challenge(label, &[g3 * *r5, RistrettoPoint::mul_base(&r5) + g2 * *r6]);
    let d5 = *r5 - r4 * cp;
    let d6 = *r6 - secret * cp;
    (cp, d5, d6)
}

/// Checks `cp == H(label, G3 * d5 + P * cp, G * d5 + G2 * d6 + Q * cp)`.
#[allow(clippy::too_many_arguments)]
fn verify_pq(
    label: &[u8],
    g2: &RistrettoPoint,
    g3: &RistrettoPoint,
    p: &RistrettoPoint,
    q: &RistrettoPoint,
    cp: &Scalar,
    d5: &Scalar,
    d6: &Scalar,
) -> bool {
    let first = g3 * d5 + p * cp;
    let second = RistrettoPoint::mul_base(d5) + g2 * d6 + q * cp;
    scalar_eq(cp, &challenge(label, &[first, second]))
}

/// Proof that `R = (Qa - Qb) * secret` with `G * secret` public:
/// `cr = H(label, G * r7, (Qa - Qb) * r7)`, `d7 = r7 - secret * cr`.
fn prove_r(
    rng: &mut impl CryptoRngCore,
    label: &[u8],
    qa_minus_qb: &RistrettoPoint,
    secret: &Scalar,
) -> (Scalar, Scalar) {
    let r7 = random_scalar(rng);
    let cr = challenge(label, &[RistrettoPoint::mul_base(&r7), qa_minus_qb * *r7]);
    let d7 = *r7 - secret * cr;
    (cr, d7)
}

/// Checks `cr == H(label, G * d7 + G3x * cr, (Qa - Qb) * d7 + R * cr)`, where `G3x` is the
/// prover's `G * a3` or `G * b3`.
fn verify_r(
    label: &[u8],
    g3x: &RistrettoPoint,
    qa_minus_qb: &RistrettoPoint,
    r: &RistrettoPoint,
    cr: &Scalar,
    d7: &Scalar,
) -> bool {
    let first = RistrettoPoint::mul_base(d7) + g3x * cr;
    let second = qa_minus_qb * d7 + r * cr;
    scalar_eq(cr, &challenge(label, &[first, second]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const FP_ALICE: [u8; 32] = [0xa1; 32];
    const FP_BOB: [u8; 32] = [0xb0; 32];
    const FP_MALLORY: [u8; 32] = [0x66; 32];
    const SID: [u8; 32] = [0x5e; 32];

    fn alice_ctx() -> SmpContext {
        SmpContext {
            our_fingerprint: FP_ALICE,
            their_fingerprint: FP_BOB,
            session_id: SID,
        }
    }

    fn bob_ctx() -> SmpContext {
        SmpContext {
            our_fingerprint: FP_BOB,
            their_fingerprint: FP_ALICE,
            session_id: SID,
        }
    }

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    /// Sends a message through the wire encoding: tag byte, fields, nothing after.
    fn over_wire(msg: &SmpMessage) -> SmpMessage {
        let mut w = Writer::new();
        w.u8(msg.tag());
        msg.encode(&mut w);
        let bytes = w.into_vec();
        decode_bytes(&bytes).unwrap()
    }

    fn decode_bytes(bytes: &[u8]) -> Result<SmpMessage, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("tag")?;
        let msg = SmpMessage::decode(tag, &mut r)?;
        r.finish()?;
        Ok(msg)
    }

    fn encode_fields(msg: &SmpMessage) -> Vec<u8> {
        let mut w = Writer::new();
        msg.encode(&mut w);
        w.into_vec()
    }

    /// Runs a whole exchange through the wire encoding; returns (Alice's, Bob's) final
    /// events.
    fn run(
        alice: SmpContext,
        bob: SmpContext,
        question: Option<&str>,
        alice_answer: &str,
        bob_answer: &str,
        seed: u64,
    ) -> (SmpEvent, SmpEvent) {
        let mut rng = rng(seed);
        let mut a = Smp::new(alice);
        let mut b = Smp::new(bob);

        let m1 = a.start(&mut rng, question, alice_answer).unwrap();
        assert!(a.in_progress());
        let out = b.handle(&mut rng, over_wire(&m1));
        assert_eq!(out.reply, None);
        assert_eq!(
            out.event,
            Some(SmpEvent::QuestionReceived {
                question: question.map(str::to_owned)
            })
        );
        assert!(b.awaiting_answer());

        let m2 = b.answer(&mut rng, bob_answer).unwrap();
        let out = a.handle(&mut rng, over_wire(&m2));
        assert_eq!(out.event, None);
        let m3 = out.reply.unwrap();
        assert_eq!(m3.tag(), TAG_SMP3);

        let out = b.handle(&mut rng, over_wire(&m3));
        let bob_event = out.event.unwrap();
        let m4 = out.reply.unwrap();
        assert_eq!(m4.tag(), TAG_SMP4);
        assert!(!b.in_progress());

        let out = a.handle(&mut rng, over_wire(&m4));
        assert_eq!(out.reply, None);
        let alice_event = out.event.unwrap();
        assert!(!a.in_progress());
        (alice_event, bob_event)
    }

    /// An exchange up to (not including) Bob handling SMP3: returns both sides and SMP3.
    fn up_to_smp3(rng: &mut ChaCha20Rng) -> (Smp, Smp, SmpMessage) {
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let m1 = a.start(rng, Some("q?"), "answer").unwrap();
        b.handle(rng, m1);
        let m2 = b.answer(rng, "answer").unwrap();
        let m3 = a.handle(rng, m2).reply.unwrap();
        (a, b, m3)
    }

    fn aborted(reason: SmpAbortReason) -> SmpOutput {
        SmpOutput {
            reply: Some(SmpMessage::Abort),
            event: Some(SmpEvent::Aborted { reason }),
        }
    }

    #[test]
    fn equal_answers_succeed_on_both_sides() {
        let (a, b) = run(
            alice_ctx(),
            bob_ctx(),
            Some("Where did we meet?"),
            "Paris",
            "paris",
            1,
        );
        assert_eq!((a, b), (SmpEvent::Succeeded, SmpEvent::Succeeded));
        let (a, b) = run(
            alice_ctx(),
            bob_ctx(),
            None,
            "  The Louvre!",
            "the\tlouvre",
            2,
        );
        assert_eq!((a, b), (SmpEvent::Succeeded, SmpEvent::Succeeded));
    }

    #[test]
    fn different_answers_fail_on_both_sides() {
        let (a, b) = run(alice_ctx(), bob_ctx(), Some("Where?"), "Paris", "London", 3);
        assert_eq!((a, b), (SmpEvent::Failed, SmpEvent::Failed));
        // Symbols are not stripped: "a+b" and "ab" differ.
        let (a, b) = run(alice_ctx(), bob_ctx(), None, "a+b", "ab", 4);
        assert_eq!((a, b), (SmpEvent::Failed, SmpEvent::Failed));
    }

    #[test]
    fn different_session_ids_fail() {
        let bob = SmpContext {
            session_id: [0x5f; 32],
            ..bob_ctx()
        };
        let (a, b) = run(alice_ctx(), bob, None, "secret", "secret", 5);
        assert_eq!((a, b), (SmpEvent::Failed, SmpEvent::Failed));
    }

    #[test]
    fn swapped_fingerprints_fail() {
        // Bob files the fingerprints the wrong way round (as if he were Alice).
        let (a, b) = run(alice_ctx(), alice_ctx(), None, "secret", "secret", 6);
        assert_eq!((a, b), (SmpEvent::Failed, SmpEvent::Failed));
    }

    #[test]
    fn man_in_the_middle_fingerprint_fails() {
        // Bob sees Mallory's key where Alice's should be: same answer, still fails.
        let bob = SmpContext {
            their_fingerprint: FP_MALLORY,
            ..bob_ctx()
        };
        let (a, b) = run(alice_ctx(), bob, None, "secret", "secret", 7);
        assert_eq!((a, b), (SmpEvent::Failed, SmpEvent::Failed));
        let alice = SmpContext {
            our_fingerprint: FP_MALLORY,
            ..alice_ctx()
        };
        let (a, b) = run(alice, bob_ctx(), None, "secret", "secret", 8);
        assert_eq!((a, b), (SmpEvent::Failed, SmpEvent::Failed));
    }

    #[test]
    fn secret_binds_roles_fingerprints_and_session() {
        let x = derive_secret(&FP_ALICE, &FP_BOB, &SID, "paris");
        assert_eq!(*x, *derive_secret(&FP_ALICE, &FP_BOB, &SID, "paris"));
        assert_ne!(*x, *derive_secret(&FP_BOB, &FP_ALICE, &SID, "paris"));
        assert_ne!(*x, *derive_secret(&FP_ALICE, &FP_BOB, &[0; 32], "paris"));
        assert_ne!(*x, *derive_secret(&FP_ALICE, &FP_MALLORY, &SID, "paris"));
        assert_ne!(*x, *derive_secret(&FP_ALICE, &FP_BOB, &SID, "london"));
    }

    #[test]
    fn runs_can_follow_each_other_and_either_side_can_start() {
        let mut rng = rng(9);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        for round in 0..2 {
            // Bob starts the second time; his context is mirrored, so it still succeeds.
            let (init, resp) = if round == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let m1 = init.start(&mut rng, None, "x").unwrap();
            resp.handle(&mut rng, m1);
            let m2 = resp.answer(&mut rng, "X").unwrap();
            let m3 = init.handle(&mut rng, m2).reply.unwrap();
            let out = resp.handle(&mut rng, m3);
            assert_eq!(out.event, Some(SmpEvent::Succeeded));
            let out = init.handle(&mut rng, out.reply.unwrap());
            assert_eq!(out.event, Some(SmpEvent::Succeeded));
        }
    }

    #[test]
    fn malformed_points_are_rejected_at_decode() {
        let mut rng = rng(10);
        let (_, _, m3) = up_to_smp3(&mut rng);
        let mut bytes = vec![TAG_SMP3];
        bytes.extend(encode_fields(&m3));
        assert!(decode_bytes(&bytes).is_ok());

        // Pa is the first field of SMP3 (bytes 1..33).
        for bad in [[0u8; 32], [0xff; 32]] {
            let mut corrupted = bytes.clone();
            corrupted[1..33].copy_from_slice(&bad);
            assert!(matches!(
                decode_bytes(&corrupted),
                Err(DecodeError::Invalid {
                    field: "smp3.pa",
                    ..
                })
            ));
        }
        // Ra is at 1 + 5 * 32.
        let mut corrupted = bytes.clone();
        corrupted[161..193].copy_from_slice(&[0u8; 32]);
        assert!(matches!(
            decode_bytes(&corrupted),
            Err(DecodeError::Invalid {
                field: "smp3.ra",
                ..
            })
        ));
        // A non-canonical scalar (cp, at 1 + 2 * 32).
        let mut corrupted = bytes.clone();
        corrupted[65..97].copy_from_slice(&[0xff; 32]);
        assert!(matches!(
            decode_bytes(&corrupted),
            Err(DecodeError::Invalid {
                field: "smp3.cp",
                ..
            })
        ));

        // SMP4's Rb as the identity.
        let mut bytes = vec![TAG_SMP4, 0, 0];
        bytes.resize(1 + 96, 0);
        assert!(matches!(
            decode_bytes(&bytes),
            Err(DecodeError::Invalid {
                field: "smp4.rb",
                ..
            })
        ));
    }

    #[test]
    fn identity_points_given_directly_to_handle_abort() {
        let mut rng = rng(11);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let SmpMessage::One {
            question,
            c2,
            d2,
            g3a,
            c3,
            d3,
            ..
        } = a.start(&mut rng, None, "secret").unwrap()
        else {
            panic!("not SMP1")
        };
        let g2a = RistrettoPoint::default();
        let out = b.handle(
            &mut rng,
            SmpMessage::One {
                question,
                g2a,
                c2,
                d2,
                g3a,
                c3,
                d3,
            },
        );
        assert_eq!(out, aborted(SmpAbortReason::Malformed));
        assert!(!b.in_progress());

        let long = "?".repeat(MAX_QUESTION_BYTES + 1);
        let g2a = RistrettoPoint::mul_base(&Scalar::ONE);
        let out = b.handle(
            &mut rng,
            SmpMessage::One {
                question: Some(long),
                g2a,
                c2,
                d2,
                g3a,
                c3,
                d3,
            },
        );
        assert_eq!(out, aborted(SmpAbortReason::Malformed));
    }

    #[test]
    fn corrupted_smp1_proof_aborts() {
        let mut rng = rng(12);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let SmpMessage::One {
            question,
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
        } = a.start(&mut rng, None, "secret").unwrap()
        else {
            panic!("not SMP1")
        };
        let bad = SmpMessage::One {
            question,
            g2a,
            c2,
            d2: d2 + Scalar::ONE,
            g3a,
            c3,
            d3,
        };
        let out = b.handle(&mut rng, over_wire(&bad));
        assert_eq!(out, aborted(SmpAbortReason::InvalidProof));
        assert!(!b.in_progress());
        assert_eq!(
            b.answer(&mut rng, "secret"),
            Err(SmpError::NotAwaitingAnswer)
        );
    }

    #[test]
    fn corrupted_smp2_proof_aborts() {
        // Variant 0 is the untouched message (control); 1..=4 corrupt one proof each.
        for which in 0..5 {
            let mut rng = rng(13 + 100 * which);
            let mut a = Smp::new(alice_ctx());
            let mut b = Smp::new(bob_ctx());
            let m1 = a.start(&mut rng, None, "secret").unwrap();
            b.handle(&mut rng, m1);
            let SmpMessage::Two {
                g2b,
                c2,
                d2,
                g3b,
                c3,
                d3,
                pb,
                qb,
                cp,
                d5,
                d6,
            } = b.answer(&mut rng, "secret").unwrap()
            else {
                panic!("not SMP2")
            };
            let msg = match which {
                0 => SmpMessage::Two {
                    g2b,
                    c2,
                    d2,
                    g3b,
                    c3,
                    d3,
                    pb,
                    qb,
                    cp,
                    d5,
                    d6,
                },
                1 => SmpMessage::Two {
                    g2b,
                    c2: c2 + Scalar::ONE,
                    d2,
                    g3b,
                    c3,
                    d3,
                    pb,
                    qb,
                    cp,
                    d5,
                    d6,
                },
                2 => SmpMessage::Two {
                    g2b,
                    c2,
                    d2,
                    g3b,
                    c3,
                    d3: -d3,
                    pb,
                    qb,
                    cp,
                    d5,
                    d6,
                },
                3 => SmpMessage::Two {
                    g2b,
                    c2,
                    d2,
                    g3b,
                    c3,
                    d3,
                    pb,
                    qb,
                    cp,
                    d5,
                    d6: d6 + Scalar::ONE,
                },
                // Pb swapped for another point: the cp proof no longer matches.
                _ => SmpMessage::Two {
                    g2b,
                    c2,
                    d2,
                    g3b,
                    c3,
                    d3,
                    pb: qb,
                    qb,
                    cp,
                    d5,
                    d6,
                },
            };
            let out = a.handle(&mut rng, over_wire(&msg));
            if which == 0 {
                assert_eq!(out.event, None);
                assert_eq!(out.reply.map(|m| m.tag()), Some(TAG_SMP3));
                assert!(a.in_progress());
            } else {
                assert_eq!(
                    out,
                    aborted(SmpAbortReason::InvalidProof),
                    "variant {which}"
                );
                assert!(!a.in_progress());
            }
        }
    }

    #[test]
    fn corrupted_smp3_proof_aborts_without_a_result() {
        for which in 0..3 {
            let mut rng = rng(14 + which);
            let (_, mut b, m3) = up_to_smp3(&mut rng);
            let SmpMessage::Three {
                pa,
                qa,
                cp,
                d5,
                d6,
                ra,
                cr,
                d7,
            } = m3
            else {
                panic!("not SMP3")
            };
            let bad = match which {
                0 => SmpMessage::Three {
                    pa,
                    qa,
                    cp,
                    d5: d5 + Scalar::ONE,
                    d6,
                    ra,
                    cr,
                    d7,
                },
                1 => SmpMessage::Three {
                    pa,
                    qa,
                    cp,
                    d5,
                    d6,
                    ra,
                    cr,
                    d7: d7 + Scalar::ONE,
                },
                _ => SmpMessage::Three {
                    pa,
                    qa,
                    cp,
                    d5,
                    d6,
                    ra: ra + ra,
                    cr,
                    d7,
                },
            };
            let out = b.handle(&mut rng, over_wire(&bad));
            assert_eq!(out, aborted(SmpAbortReason::InvalidProof));
            assert!(!b.in_progress());
        }
    }

    #[test]
    fn corrupted_smp4_proof_aborts_without_a_result() {
        let mut rng = rng(20);
        let (mut a, mut b, m3) = up_to_smp3(&mut rng);
        let out = b.handle(&mut rng, m3);
        assert_eq!(out.event, Some(SmpEvent::Succeeded));
        let Some(SmpMessage::Four { rb, cr, d7 }) = out.reply else {
            panic!("not SMP4")
        };
        let bad = SmpMessage::Four {
            rb,
            cr: cr + Scalar::ONE,
            d7,
        };
        let out = a.handle(&mut rng, over_wire(&bad));
        assert_eq!(out, aborted(SmpAbortReason::InvalidProof));
        assert!(!a.in_progress());
    }

    #[test]
    fn forged_rb_without_proof_is_rejected() {
        // A cheating responder cannot just send Rb = (Pa - Pb) * a3^-1-style values: any
        // Rb not matching its proof aborts. Here Rb is replaced by a random point.
        let mut rng = rng(21);
        let (mut a, mut b, m3) = up_to_smp3(&mut rng);
        let Some(SmpMessage::Four { cr, d7, .. }) = b.handle(&mut rng, m3).reply else {
            panic!("not SMP4")
        };
        let rb = RistrettoPoint::random(&mut rng);
        let out = a.handle(&mut rng, SmpMessage::Four { rb, cr, d7 });
        assert_eq!(out, aborted(SmpAbortReason::InvalidProof));
    }

    #[test]
    fn three_before_two_aborts() {
        let mut rng = rng(22);
        let (_, _, m3) = up_to_smp3(&mut rng);
        // An initiator still expecting SMP2.
        let mut a = Smp::new(alice_ctx());
        a.start(&mut rng, None, "secret").unwrap();
        assert_eq!(
            a.handle(&mut rng, m3.clone()),
            aborted(SmpAbortReason::OutOfOrder)
        );
        assert!(!a.in_progress());
        // A responder that has not answered yet.
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let m1 = a.start(&mut rng, None, "secret").unwrap();
        b.handle(&mut rng, m1);
        assert_eq!(b.handle(&mut rng, m3), aborted(SmpAbortReason::OutOfOrder));
        assert!(!b.in_progress());
    }

    #[test]
    fn two_when_not_started_aborts() {
        let mut rng = rng(23);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let m1 = a.start(&mut rng, None, "secret").unwrap();
        b.handle(&mut rng, m1);
        let m2 = b.answer(&mut rng, "secret").unwrap();
        let mut idle = Smp::new(alice_ctx());
        assert_eq!(
            idle.handle(&mut rng, m2.clone()),
            aborted(SmpAbortReason::OutOfOrder)
        );
        assert!(!idle.in_progress());
        // And a responder receiving SMP2 (a reflection of its own message).
        assert_eq!(b.handle(&mut rng, m2), aborted(SmpAbortReason::OutOfOrder));
        assert!(!b.in_progress());
    }

    #[test]
    fn four_out_of_order_aborts() {
        let mut rng = rng(24);
        let (_, mut b, m3) = up_to_smp3(&mut rng);
        let m4 = b.handle(&mut rng, m3).reply.unwrap();
        let mut idle = Smp::new(alice_ctx());
        assert_eq!(
            idle.handle(&mut rng, m4.clone()),
            aborted(SmpAbortReason::OutOfOrder)
        );
        let mut a = Smp::new(alice_ctx());
        a.start(&mut rng, None, "secret").unwrap();
        assert_eq!(a.handle(&mut rng, m4), aborted(SmpAbortReason::OutOfOrder));
        assert!(!a.in_progress());
    }

    #[test]
    fn one_during_a_run_aborts() {
        let mut rng = rng(25);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        // Both start at once: each receives SMP1 while expecting SMP2.
        let a1 = a.start(&mut rng, None, "secret").unwrap();
        let b1 = b.start(&mut rng, None, "secret").unwrap();
        assert_eq!(
            a.handle(&mut rng, b1.clone()),
            aborted(SmpAbortReason::OutOfOrder)
        );
        assert_eq!(
            b.handle(&mut rng, a1.clone()),
            aborted(SmpAbortReason::OutOfOrder)
        );
        assert!(!a.in_progress() && !b.in_progress());
        // A second SMP1 while awaiting the user's answer.
        b.handle(&mut rng, a1.clone());
        assert!(b.awaiting_answer());
        assert_eq!(b.handle(&mut rng, a1), aborted(SmpAbortReason::OutOfOrder));
        assert!(!b.in_progress());
    }

    #[test]
    fn peer_abort_resets_and_is_reported() {
        let mut rng = rng(26);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let m1 = a.start(&mut rng, None, "secret").unwrap();
        b.handle(&mut rng, m1);
        let abort = b.abort();
        assert_eq!(abort, SmpMessage::Abort);
        assert!(!b.in_progress());
        let out = a.handle(&mut rng, over_wire(&abort));
        assert_eq!(
            out,
            SmpOutput {
                reply: None,
                event: Some(SmpEvent::Aborted {
                    reason: SmpAbortReason::PeerAborted
                })
            }
        );
        assert!(!a.in_progress());
        // An abort while idle changes nothing and reports nothing.
        assert_eq!(a.handle(&mut rng, SmpMessage::Abort), SmpOutput::nothing());
        // A new run works after an abort.
        let m1 = a.start(&mut rng, None, "secret").unwrap();
        assert!(b.handle(&mut rng, m1).event.is_some());
    }

    #[test]
    fn api_misuse_is_an_error() {
        let mut rng = rng(27);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        assert_eq!(
            b.answer(&mut rng, "secret"),
            Err(SmpError::NotAwaitingAnswer)
        );
        let long_answer = "a".repeat(MAX_ANSWER_BYTES + 1);
        assert_eq!(
            a.start(&mut rng, None, &long_answer),
            Err(SmpError::AnswerTooLong)
        );
        assert_eq!(
            a.start(&mut rng, None, " ?! \t"),
            Err(SmpError::EmptyAnswer)
        );
        let long_question = "q".repeat(MAX_QUESTION_BYTES + 1);
        assert_eq!(
            a.start(&mut rng, Some(&long_question), "secret"),
            Err(SmpError::QuestionTooLong)
        );
        assert!(!a.in_progress());
        let max_question = "q".repeat(MAX_QUESTION_BYTES);
        let m1 = a.start(&mut rng, Some(&max_question), "secret").unwrap();
        assert_eq!(
            a.start(&mut rng, None, "secret"),
            Err(SmpError::AlreadyInProgress)
        );
        b.handle(&mut rng, over_wire(&m1));
        assert_eq!(
            b.start(&mut rng, None, "secret"),
            Err(SmpError::AlreadyInProgress)
        );
        // A rejected answer leaves the question pending.
        assert_eq!(
            b.answer(&mut rng, &long_answer),
            Err(SmpError::AnswerTooLong)
        );
        assert_eq!(b.answer(&mut rng, "..."), Err(SmpError::EmptyAnswer));
        assert!(b.awaiting_answer());
        assert!(b.answer(&mut rng, "secret").is_ok());
        assert_eq!(
            b.answer(&mut rng, "secret"),
            Err(SmpError::NotAwaitingAnswer)
        );
    }

    #[test]
    fn normalization_examples() {
        assert_eq!(normalize_answer("  Hello, World! "), "helloworld");
        assert_eq!(normalize_answer("Straße"), "strasse");
        assert_eq!(normalize_answer("STRASSE"), "strasse");
        assert_eq!(normalize_answer("ＡＢＣ"), "abc");
        assert_eq!(
            normalize_answer("a\tb\nc\u{a0}d\u{2003}e\u{3000}f\r\ng"),
            "abcdefg"
        );
        assert_eq!(normalize_answer("¿Qué?"), "qué");
        assert_eq!(normalize_answer("「日本」…"), "日本");
        assert_eq!(normalize_answer("l'été — 2024"), "lété2024");
        // Composed and decomposed forms agree; the ligature is expanded.
        assert_eq!(normalize_answer("e\u{301}"), normalize_answer("\u{e9}"));
        assert_eq!(normalize_answer("ﬁne"), "fine");
        // Symbols are kept.
        assert_eq!(normalize_answer("a + b = c $"), "a+b=c$");
        // Removing punctuation can expose a combining mark; the result is still stable.
        let exposed = normalize_answer("e.\u{301}");
        assert_eq!(exposed, "\u{e9}");
        assert_eq!(normalize_answer(&exposed), exposed);
    }

    #[test]
    fn normalization_removes_every_whitespace_not_just_the_first() {
        // Cryptocat 2 stripped only the first whitespace character.
        assert_eq!(normalize_answer(" a b c d "), "abcd");
        assert_eq!(normalize_answer("x  y\t\tz\n\n"), "xyz");
        assert_eq!(normalize_answer("one two"), normalize_answer("onetwo"));
    }

    fn assert_normalized_form(input: &str) -> Result<(), TestCaseError> {
        let once = normalize_answer(input);
        prop_assert_eq!(&normalize_answer(&once), &once);
        for c in once.chars() {
            prop_assert!(!c.is_whitespace(), "whitespace {:?} in {:?}", c, once);
            prop_assert!(
                c.general_category_group() != GeneralCategoryGroup::Punctuation,
                "punctuation {:?} in {:?}",
                c,
                once
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent_and_strips(input in any::<String>()) {
            assert_normalized_form(&input)?;
        }

        #[test]
        fn normalization_is_idempotent_on_tricky_text(
            input in "[ \t\n\u{a0}\u{3000}.,!?¿'\"«»()a-zA-Zß\u{1e9e}İıΣσςﬁＡｂ\u{301}\u{300}\u{327}\u{338}]{0,24}"
        ) {
            assert_normalized_form(&input)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn smp_result_matches_normalized_equality(
            x in "[aAbB ,.]{1,4}",
            y in "[aAbB ,.]{1,4}",
            seed in any::<u64>(),
        ) {
            let nx = normalize_answer(&x);
            let ny = normalize_answer(&y);
            prop_assume!(!nx.is_empty() && !ny.is_empty());
            let expected = if nx == ny { SmpEvent::Succeeded } else { SmpEvent::Failed };
            let (a, b) = run(alice_ctx(), bob_ctx(), None, &x, &y, seed);
            prop_assert_eq!(&a, &expected);
            prop_assert_eq!(&b, &expected);
        }
    }

    #[test]
    fn every_message_round_trips_with_the_documented_layout() {
        let mut rng = rng(28);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let m1 = a.start(&mut rng, Some("Où ?"), "secret").unwrap();
        b.handle(&mut rng, m1.clone());
        let m2 = b.answer(&mut rng, "secret").unwrap();
        let m3 = a.handle(&mut rng, m2.clone()).reply.unwrap();
        let m4 = b.handle(&mut rng, m3.clone()).reply.unwrap();
        let SmpMessage::One {
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
            ..
        } = m1.clone()
        else {
            panic!("not SMP1")
        };
        let no_question = SmpMessage::One {
            question: None,
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
        };
        let empty_question = SmpMessage::One {
            question: Some(String::new()),
            g2a,
            c2,
            d2,
            g3a,
            c3,
            d3,
        };

        let cases = [
            (m1, TAG_SMP1, 1 + 2 + "Où ?".len() + 192),
            (no_question, TAG_SMP1, 1 + 192),
            (empty_question, TAG_SMP1, 1 + 2 + 192),
            (m2, TAG_SMP2, 352),
            (m3, TAG_SMP3, 256),
            (m4, TAG_SMP4, 96),
            (SmpMessage::Abort, TAG_ABORT, 0),
        ];
        for (msg, tag, len) in cases {
            assert_eq!(msg.tag(), tag);
            let fields = encode_fields(&msg);
            assert_eq!(fields.len(), len, "{msg:?}");
            let mut r = Reader::new(&fields);
            assert_eq!(SmpMessage::decode(tag, &mut r).unwrap(), msg);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn smp1_layout_and_decode_errors() {
        let g = RISTRETTO_BASEPOINT_POINT;
        let s = Scalar::from(7u8);
        let msg = SmpMessage::One {
            question: Some("hi".into()),
            g2a: g,
            c2: s,
            d2: s,
            g3a: g,
            c3: s,
            d3: s,
        };
        let fields = encode_fields(&msg);
        assert_eq!(&fields[..5], &[1, 0, 2, b'h', b'i']);
        assert_eq!(&fields[5..37], g.compress().as_bytes());
        assert_eq!(&fields[37..69], s.as_bytes());

        // Flag other than 0 or 1.
        let mut bad = fields.clone();
        bad[0] = 2;
        assert!(matches!(
            SmpMessage::decode(TAG_SMP1, &mut Reader::new(&bad)),
            Err(DecodeError::Invalid {
                field: "smp1.has_question",
                ..
            })
        ));
        // Question over the limit.
        let mut bad = vec![1];
        bad.extend(u16::try_from(MAX_QUESTION_BYTES + 1).unwrap().to_be_bytes());
        bad.extend(vec![b'q'; MAX_QUESTION_BYTES + 1]);
        assert!(matches!(
            SmpMessage::decode(TAG_SMP1, &mut Reader::new(&bad)),
            Err(DecodeError::FieldTooLong {
                field: "smp1.question",
                ..
            })
        ));
        // Invalid UTF-8.
        let bad = [1, 0, 1, 0xff];
        assert!(matches!(
            SmpMessage::decode(TAG_SMP1, &mut Reader::new(&bad)),
            Err(DecodeError::Invalid {
                field: "smp1.question",
                ..
            })
        ));
        // Truncated.
        assert!(matches!(
            SmpMessage::decode(TAG_SMP1, &mut Reader::new(&fields[..fields.len() - 1])),
            Err(DecodeError::Truncated {
                field: "smp1.d3",
                needed: 1
            })
        ));
        // Unknown tag.
        assert_eq!(
            SmpMessage::decode(0x16, &mut Reader::new(&[])),
            Err(DecodeError::UnknownType(0x16))
        );
        // Trailing bytes are left for the caller.
        let mut r = Reader::new(&[9]);
        assert_eq!(SmpMessage::decode(TAG_ABORT, &mut r), Ok(SmpMessage::Abort));
        assert_eq!(r.remaining(), 1);
    }

    fn assert_secret_absent(debug: &str, secret: &Scalar) {
        let hex_secret = hex::encode(secret.as_bytes());
        assert!(!debug.contains(&hex_secret), "{debug}");
        assert!(
            !debug.contains(&format!("{:?}", secret.as_bytes())),
            "{debug}"
        );
        assert!(
            !debug.contains("Scalar") && !debug.contains("Ristretto"),
            "{debug}"
        );
    }

    #[test]
    fn debug_output_contains_no_secrets() {
        let mut rng = rng(29);
        let mut a = Smp::new(alice_ctx());
        let mut b = Smp::new(bob_ctx());
        let m1 = a.start(&mut rng, None, "secret").unwrap();
        let debug = format!("{a:?}");
        assert!(debug.contains("Expect2"), "{debug}");
        let State::Expect2(s) = &a.state else {
            panic!("not Expect2")
        };
        for secret in [&s.x, &s.a2, &s.a3] {
            assert_secret_absent(&debug, secret);
        }

        b.handle(&mut rng, m1);
        let m2 = b.answer(&mut rng, "secret").unwrap();
        let debug = format!("{b:?}");
        let State::Expect3(s) = &b.state else {
            panic!("not Expect3")
        };
        assert_secret_absent(&debug, &s.b3);

        a.handle(&mut rng, m2);
        let debug = format!("{a:?}");
        assert!(debug.contains("Expect4"), "{debug}");
        let State::Expect4(s) = &a.state else {
            panic!("not Expect4")
        };
        assert_secret_absent(&debug, &s.a3);
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn base_multiplication_uses_the_ristretto_basepoint() {
        let s = Scalar::from(123_456u32);
        assert_eq!(RistrettoPoint::mul_base(&s), RISTRETTO_BASEPOINT_POINT * s);
    }

    #[test]
    fn labels_are_distinct() {
        let labels = [
            label::SECRET,
            label::PROOF_1,
            label::PROOF_2,
            label::PROOF_3,
            label::PROOF_4,
            label::PROOF_5,
            label::PROOF_6,
            label::PROOF_7,
            label::PROOF_8,
        ];
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn proofs_verify_and_are_bound_to_their_label() {
        let mut rng = rng(30);
        let secret = Scalar::random(&mut rng);
        let public = RistrettoPoint::mul_base(&secret);
        let (c, d) = prove_dlog(&mut rng, label::PROOF_1, &secret);
        assert!(verify_dlog(label::PROOF_1, &public, &c, &d));
        // A proof from one step cannot be replayed at another (e.g. reflected SMP1 proofs).
        assert!(!verify_dlog(label::PROOF_3, &public, &c, &d));
        let other = RistrettoPoint::mul_base(&(secret + Scalar::ONE));
        assert!(!verify_dlog(label::PROOF_1, &other, &c, &d));
    }
}
