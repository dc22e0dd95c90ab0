//! The versioned wire format of the one-to-one protocol.
//!
//! Every message starts with `version: u8`, `type: u8`, `sender_tag: u32`,
//! `receiver_tag: u32` (big-endian). [`Message::decode`] parses untrusted bytes into typed
//! messages once; after that, code works on types. `docs/protocol.md` gives the layouts.

use curve25519_dalek::ristretto::RistrettoPoint;

use crate::content::MAX_PADDED_BYTES;
use crate::profile::ClientProfile;
use crate::ring_sig::RingSignature;
use crate::wire::{self, DecodeError, Reader, Writer, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use crate::InstanceTag;

/// Message type bytes.
pub mod kind {
    /// DAKE 1: the initiator's profile and ephemeral key.
    pub const IDENTITY: u8 = 0x01;
    /// DAKE 2: the responder's profile, ephemeral and ratchet keys and ring signature.
    pub const AUTH_R: u8 = 0x02;
    /// DAKE 3: the initiator's ratchet key and ring signature.
    pub const AUTH_I: u8 = 0x03;
    /// A double-ratchet data message.
    pub const DATA: u8 = 0x04;
}

/// Largest ciphertext in a data message: padded plaintext plus the GCM tag.
pub const MAX_CIPHERTEXT_BYTES: usize = MAX_PADDED_BYTES + 16;

/// DAKE message 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMessage {
    /// The initiator's instance tag.
    pub sender: InstanceTag,
    /// The receiver's tag if known, else 0.
    pub receiver: InstanceTag,
    /// The initiator's signed profile.
    pub profile: ClientProfile,
    /// The initiator's ephemeral ristretto255 key `Y`.
    pub y: RistrettoPoint,
}

/// DAKE message 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRMessage {
    /// The responder's instance tag.
    pub sender: InstanceTag,
    /// The initiator's instance tag.
    pub receiver: InstanceTag,
    /// The responder's signed profile.
    pub profile: ClientProfile,
    /// The responder's ephemeral ristretto255 key `X`.
    pub x: RistrettoPoint,
    /// The responder's first x25519 ratchet public key.
    pub ratchet_key: [u8; 32],
    pub(crate) sigma: RingSignature,
}

/// DAKE message 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthIMessage {
    /// The initiator's instance tag.
    pub sender: InstanceTag,
    /// The responder's instance tag.
    pub receiver: InstanceTag,
    /// The initiator's first x25519 ratchet public key.
    pub ratchet_key: [u8; 32],
    pub(crate) sigma: RingSignature,
}

/// The ratchet header of a data message (authenticated as associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataHeader {
    /// The sender's current x25519 ratchet public key.
    pub ratchet_key: [u8; 32],
    /// Length of the sender's previous sending chain.
    pub previous_chain_length: u32,
    /// Index of this message in the sender's current chain.
    pub index: u32,
}

/// A double-ratchet data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Sender instance tag.
    pub sender: InstanceTag,
    /// Receiver instance tag.
    pub receiver: InstanceTag,
    /// The ratchet header.
    pub header: DataHeader,
    /// AES-256-GCM ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

impl DataMessage {
    /// Length of [`DataMessage::header_array`].
    pub(crate) const HEADER_BYTES: usize = 1 + 1 + 4 + 4 + 32 + 4 + 4;

    /// The header bytes without allocating.
    pub(crate) fn header_array(&self) -> [u8; Self::HEADER_BYTES] {
        let mut out = [0u8; Self::HEADER_BYTES];
        let parts: [&[u8]; 7] = [
            &[PROTOCOL_VERSION, kind::DATA],
            &self.sender.0.to_be_bytes(),
            &self.receiver.0.to_be_bytes(),
            &self.header.ratchet_key,
            &self.header.previous_chain_length.to_be_bytes(),
            &self.header.index.to_be_bytes(),
            &[],
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = out.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        out
    }

    /// The bytes authenticated as associated data: everything before the ciphertext.
    pub(crate) fn header_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        write_prefix(&mut w, kind::DATA, self.sender, self.receiver);
        w.raw(&self.header.ratchet_key)
            .u32(self.header.previous_chain_length)
            .u32(self.header.index);
        w.into_vec()
    }
}

/// Any one-to-one protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built and matched once per message; boxing buys nothing
pub enum Message {
    /// DAKE 1.
    Identity(IdentityMessage),
    /// DAKE 2.
    AuthR(AuthRMessage),
    /// DAKE 3.
    AuthI(AuthIMessage),
    /// Data.
    Data(DataMessage),
}

fn write_prefix(w: &mut Writer, kind: u8, sender: InstanceTag, receiver: InstanceTag) {
    w.u8(PROTOCOL_VERSION)
        .u8(kind)
        .u32(sender.0)
        .u32(receiver.0);
}

impl Message {
    /// Sender and receiver instance tags.
    pub fn tags(&self) -> (InstanceTag, InstanceTag) {
        match self {
            Message::Identity(m) => (m.sender, m.receiver),
            Message::AuthR(m) => (m.sender, m.receiver),
            Message::AuthI(m) => (m.sender, m.receiver),
            Message::Data(m) => (m.sender, m.receiver),
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Message::Identity(m) => {
                write_prefix(&mut w, kind::IDENTITY, m.sender, m.receiver);
                m.profile.encode(&mut w);
                w.point(&m.y);
            }
            Message::AuthR(m) => {
                write_prefix(&mut w, kind::AUTH_R, m.sender, m.receiver);
                m.profile.encode(&mut w);
                w.point(&m.x).raw(&m.ratchet_key);
                m.sigma.encode(&mut w);
            }
            Message::AuthI(m) => {
                write_prefix(&mut w, kind::AUTH_I, m.sender, m.receiver);
                w.raw(&m.ratchet_key);
                m.sigma.encode(&mut w);
            }
            Message::Data(m) => {
                w.raw(&m.header_bytes()).bytes32(&m.ciphertext);
            }
        }
        w.into_vec()
    }

    /// Parses untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = r.u8("type")?;
        let sender = InstanceTag(r.u32("sender_tag")?);
        let receiver = InstanceTag(r.u32("receiver_tag")?);
        if !sender.is_valid() {
            return Err(DecodeError::Invalid {
                field: "sender_tag",
                what: "instance tag",
            });
        }
        let msg = match kind {
            kind::IDENTITY => Message::Identity(IdentityMessage {
                sender,
                receiver,
                profile: ClientProfile::decode(&mut r)?,
                y: r.point("y")?,
            }),
            kind::AUTH_R => Message::AuthR(AuthRMessage {
                sender,
                receiver,
                profile: ClientProfile::decode(&mut r)?,
                x: r.point("x")?,
                ratchet_key: r.array::<32>("ratchet_key")?,
                sigma: RingSignature::decode(&mut r)?,
            }),
            kind::AUTH_I => Message::AuthI(AuthIMessage {
                sender,
                receiver,
                ratchet_key: r.array::<32>("ratchet_key")?,
                sigma: RingSignature::decode(&mut r)?,
            }),
            kind::DATA => Message::Data(DataMessage {
                sender,
                receiver,
                header: DataHeader {
                    ratchet_key: r.array::<32>("ratchet_key")?,
                    previous_chain_length: r.u32("previous_chain_length")?,
                    index: r.u32("index")?,
                },
                ciphertext: r.bytes32("ciphertext", MAX_CIPHERTEXT_BYTES)?.to_vec(),
            }),
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// The base64 text form carried in an XMPP element.
    pub fn to_base64(&self) -> String {
        wire::encode_base64(&self.encode())
    }

    /// Parses the base64 text form.
    pub fn from_base64(text: &str) -> Result<Self, DecodeError> {
        Self::decode(&wire::decode_base64(text)?)
    }
}
