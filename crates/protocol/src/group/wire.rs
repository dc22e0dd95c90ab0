//! Wire format of the group protocol.
//!
//! Two kinds of bytes: group messages, broadcast to the room ([`GroupMessage`], type
//! `0x20`), and group content carried inside the pairwise sessions of part 1
//! ([`GroupProfile`] and [`EpochKey`]). Layouts are in `docs/protocol.md`.

use crate::content::MAX_PADDED_BYTES;
use crate::wire::{self, DecodeError, Reader, Writer, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

/// Type byte of a group message.
pub const GROUP_MESSAGE_TYPE: u8 = 0x20;

/// Most members in a room, including ourselves.
pub const MAX_MEMBERS: usize = 256;

/// Longest nickname, in UTF-8 bytes.
pub const MAX_NICKNAME_BYTES: usize = 64;

/// Longest room name or member address, in bytes. With [`MAX_MEMBERS`] members at this
/// length an [`EpochKey`] still fits the content limit (a test checks it).
pub const MAX_ADDRESS_BYTES: usize = 256;

/// Length of an epoch tag.
pub const EPOCH_TAG_BYTES: usize = 16;

/// Length of a per-recipient origin MAC.
pub const MAC_BYTES: usize = 16;

/// Largest ciphertext in a group message.
pub const MAX_GROUP_CIPHERTEXT: usize = MAX_PADDED_BYTES + 16;

/// Identifies an epoch: a hash of the room, the epoch counter and the roster.
pub type EpochTag = [u8; EPOCH_TAG_BYTES];

/// A group message as broadcast to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The epoch it belongs to.
    pub epoch: EpochTag,
    /// The sender's position in the epoch roster.
    pub sender: u16,
    /// Index in the sender's chain for this epoch.
    pub index: u32,
    /// Hash of the sender's previous message in this epoch (zeros for the first).
    pub prev_hash: [u8; 32],
    /// AES-256-GCM ciphertext of the padded [`GroupBody`].
    pub ciphertext: Vec<u8>,
    /// One origin MAC per other roster member, in roster order (the sender skipped).
    pub macs: Vec<[u8; MAC_BYTES]>,
}

impl GroupMessage {
    /// The header bytes: authenticated as AES-GCM associated data.
    pub(crate) fn header_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(PROTOCOL_VERSION)
            .u8(GROUP_MESSAGE_TYPE)
            .raw(&self.epoch)
            .u16(self.sender)
            .u32(self.index)
            .raw(&self.prev_hash);
        w.into_vec()
    }

    /// Header and ciphertext: what the message hash covers (not the MACs).
    pub(crate) fn signed_part(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.header_bytes()).bytes32(&self.ciphertext);
        w.into_vec()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.signed_part());
        let count = u16::try_from(self.macs.len()).unwrap_or(u16::MAX);
        w.u16(count);
        for mac in self.macs.iter().take(usize::from(count)) {
            w.raw(mac);
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
        if kind != GROUP_MESSAGE_TYPE {
            return Err(DecodeError::UnknownType(kind));
        }
        let epoch = r.array::<EPOCH_TAG_BYTES>("epoch")?;
        let sender = r.u16("sender")?;
        let index = r.u32("index")?;
        let prev_hash = r.array::<32>("prev_hash")?;
        let ciphertext = r.bytes32("ciphertext", MAX_GROUP_CIPHERTEXT)?.to_vec();
        let count = usize::from(r.u16("mac_count")?);
        if count >= MAX_MEMBERS {
            return Err(DecodeError::FieldTooLong {
                field: "macs",
                len: count,
                max: MAX_MEMBERS - 1,
            });
        }
        let mut macs = Vec::with_capacity(count);
        for _ in 0..count {
            macs.push(r.array::<MAC_BYTES>("mac")?);
        }
        r.finish()?;
        Ok(Self {
            epoch,
            sender,
            index,
            prev_hash,
            ciphertext,
            macs,
        })
    }

    /// Base64 text form.
    pub fn to_base64(&self) -> String {
        wire::encode_base64(&self.encode())
    }

    /// Parses the base64 text form.
    pub fn from_base64(text: &str) -> Result<Self, DecodeError> {
        Self::decode(&wire::decode_base64(text)?)
    }
}

/// An acknowledgement: "the latest message I hold from `sender` is `index`, with `hash`".
/// Because each message names its predecessor's hash, it acknowledges the whole chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Roster position of the acknowledged sender.
    pub sender: u16,
    /// Index of its latest message held.
    pub index: u32,
    /// Hash of that message.
    pub hash: [u8; 32],
}

impl Ack {
    fn encode(&self, w: &mut Writer) {
        w.u16(self.sender).u32(self.index).raw(&self.hash);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            sender: r.u16("ack.sender")?,
            index: r.u32("ack.index")?,
            hash: r.array::<32>("ack.hash")?,
        })
    }
}

fn encode_acks(w: &mut Writer, acks: &[Ack]) {
    let count = u16::try_from(acks.len()).unwrap_or(u16::MAX);
    w.u16(count);
    for ack in acks.iter().take(usize::from(count)) {
        ack.encode(w);
    }
}

fn decode_acks(r: &mut Reader<'_>) -> Result<Vec<Ack>, DecodeError> {
    let count = usize::from(r.u16("ack_count")?);
    if count > MAX_MEMBERS {
        return Err(DecodeError::FieldTooLong {
            field: "acks",
            len: count,
            max: MAX_MEMBERS,
        });
    }
    let mut acks = Vec::with_capacity(count);
    for _ in 0..count {
        acks.push(Ack::decode(r)?);
    }
    Ok(acks)
}

/// What a group message says, once decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// A chat message.
    Text(String),
    /// Nothing to say: carries acknowledgements while idle.
    Heartbeat,
    /// The sender is leaving; its acknowledgements cover every sender (its final view).
    Leave,
}

/// The plaintext of a group message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBody {
    /// Acknowledgements of other members' messages.
    pub acks: Vec<Ack>,
    /// The payload.
    pub kind: BodyKind,
}

impl GroupBody {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match &self.kind {
            BodyKind::Text(_) => w.u8(1),
            BodyKind::Heartbeat => w.u8(2),
            BodyKind::Leave => w.u8(3),
        };
        encode_acks(&mut w, &self.acks);
        if let BodyKind::Text(text) = &self.kind {
            w.bytes32(text.as_bytes());
        }
        w.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8("body.kind")?;
        let acks = decode_acks(&mut r)?;
        let kind = match kind {
            1 => BodyKind::Text(r.string32("body.text", crate::content::MAX_TEXT_BYTES)?),
            2 => BodyKind::Heartbeat,
            3 => BodyKind::Leave,
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(Self { acks, kind })
    }
}

/// Sent first on every pairwise session in a room: who I am here.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupProfile {
    /// The room, so a session made for one room cannot be used in another.
    pub room: String,
    /// The nickname the person chose. The server never sees it.
    pub nickname: String,
}

impl core::fmt::Debug for GroupProfile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Nicknames are user data: keep them out of logs.
        f.debug_struct("GroupProfile").finish_non_exhaustive()
    }
}

impl GroupProfile {
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.bytes16(self.room.as_bytes())
            .bytes16(self.nickname.as_bytes());
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let room = r.string16("profile.room", MAX_ADDRESS_BYTES)?;
        let nickname = r.string16("profile.nickname", MAX_NICKNAME_BYTES)?;
        Ok(Self { room, nickname })
    }
}

/// One member of an epoch roster.
#[derive(Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The member's occupant address.
    pub address: String,
    /// The member's identity key, as encoded (compared as bytes; decoding every roster
    /// key of every `EpochKey` would cost O(N²) point decompressions per join).
    pub identity_key: [u8; 32],
    /// Hash of the nickname the member told the attesting party.
    pub nickname_hash: [u8; 32],
}

impl core::fmt::Debug for RosterEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RosterEntry")
            .field(
                "fingerprint",
                &crate::fingerprint::Fingerprint::of_key_bytes(&self.identity_key),
            )
            .finish_non_exhaustive()
    }
}

/// Sent over each pairwise session when the sender enters an epoch: its attestation of
/// the roster (with nickname hashes) and of its view of the previous epoch, and its keys
/// for this epoch.
pub struct EpochKey {
    /// The epoch counter.
    pub(crate) counter: u64,
    /// The roster, sorted by address.
    pub(crate) roster: Vec<RosterEntry>,
    /// The sender's chain key for this epoch (known to every member).
    pub(crate) chain_key: crate::kdf::Secret32,
    /// The origin-MAC key from the sender to this recipient (known to the two of them).
    pub(crate) mac_key: crate::kdf::Secret32,
    /// The sender's view of the previous epoch it shares with the recipient: the tag and
    /// one acknowledgement per sender of that epoch.
    pub(crate) previous: Option<(EpochTag, Vec<Ack>)>,
}

impl core::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochKey")
            .field("counter", &self.counter)
            .field("members", &self.roster.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for EpochKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.counter == other.counter
            && self.roster == other.roster
            && bool::from(self.chain_key.as_bytes().ct_eq(other.chain_key.as_bytes()))
            && bool::from(self.mac_key.as_bytes().ct_eq(other.mac_key.as_bytes()))
            && self.previous == other.previous
    }
}

impl Eq for EpochKey {}

impl Clone for EpochKey {
    fn clone(&self) -> Self {
        Self {
            counter: self.counter,
            roster: self.roster.clone(),
            chain_key: self.chain_key.duplicate(),
            mac_key: self.mac_key.duplicate(),
            previous: self.previous.clone(),
        }
    }
}

impl EpochKey {
    /// The epoch counter.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The attested roster.
    pub fn roster(&self) -> &[RosterEntry] {
        &self.roster
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u64(self.counter);
        let count = u16::try_from(self.roster.len()).unwrap_or(u16::MAX);
        w.u16(count);
        for e in self.roster.iter().take(usize::from(count)) {
            w.bytes16(e.address.as_bytes())
                .raw(&e.identity_key)
                .raw(&e.nickname_hash);
        }
        w.raw(self.chain_key.as_bytes())
            .raw(self.mac_key.as_bytes());
        match &self.previous {
            None => {
                w.u8(0);
            }
            Some((tag, acks)) => {
                w.u8(1).raw(tag);
                encode_acks(w, acks);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let counter = r.u64("epoch.counter")?;
        let count = usize::from(r.u16("epoch.roster_count")?);
        if count > MAX_MEMBERS {
            return Err(DecodeError::FieldTooLong {
                field: "epoch.roster",
                len: count,
                max: MAX_MEMBERS,
            });
        }
        let mut roster = Vec::with_capacity(count);
        for _ in 0..count {
            let address = r.string16("epoch.roster.address", MAX_ADDRESS_BYTES)?;
            // Kept as bytes: only ever compared with keys we hold, never used to verify.
            let identity_key = r.array::<32>("epoch.roster.identity_key")?;
            let nickname_hash = r.array::<32>("epoch.roster.nickname_hash")?;
            roster.push(RosterEntry {
                address,
                identity_key,
                nickname_hash,
            });
        }
        let chain_key = crate::kdf::Secret32(r.array::<32>("epoch.chain_key")?);
        let mac_key = crate::kdf::Secret32(r.array::<32>("epoch.mac_key")?);
        let previous = match r.u8("epoch.has_previous")? {
            0 => None,
            1 => {
                let tag = r.array::<EPOCH_TAG_BYTES>("epoch.previous_tag")?;
                Some((tag, decode_acks(r)?))
            }
            _ => {
                return Err(DecodeError::Invalid {
                    field: "epoch.has_previous",
                    what: "flag (0 or 1)",
                })
            }
        };
        Ok(Self {
            counter,
            roster,
            chain_key,
            mac_key,
            previous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_message_round_trip_and_limits() {
        let m = GroupMessage {
            epoch: [7; 16],
            sender: 3,
            index: 9,
            prev_hash: [1; 32],
            ciphertext: vec![5; 100],
            macs: vec![[2; 16]; 4],
        };
        let bytes = m.encode();
        assert_eq!(GroupMessage::decode(&bytes).unwrap(), m);
        assert_eq!(GroupMessage::from_base64(&m.to_base64()).unwrap(), m);
        let mut too_many = bytes[..bytes.len() - 4 * 16 - 2].to_vec();
        too_many.extend_from_slice(&u16::try_from(MAX_MEMBERS).unwrap().to_be_bytes());
        assert!(matches!(
            GroupMessage::decode(&too_many),
            Err(DecodeError::FieldTooLong { .. })
        ));
        let mut truncated = bytes.clone();
        truncated.pop();
        assert!(GroupMessage::decode(&truncated).is_err());
    }

    /// The largest `EpochKey` (a full roster of the longest addresses, a full previous
    /// view) fits the content and message limits once padded and encrypted.
    #[test]
    fn largest_epoch_key_fits_the_limits() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .to_bytes();
        let roster: Vec<RosterEntry> = (0..MAX_MEMBERS)
            .map(|i| RosterEntry {
                address: format!("{i:0>width$}", width = MAX_ADDRESS_BYTES),
                identity_key: key,
                nickname_hash: [1; 32],
            })
            .collect();
        let acks = (0..MAX_MEMBERS)
            .map(|i| Ack {
                sender: u16::try_from(i).unwrap(),
                index: u32::MAX,
                hash: [2; 32],
            })
            .collect();
        let ek = EpochKey {
            counter: u64::MAX,
            roster,
            chain_key: crate::kdf::Secret32([3; 32]),
            mac_key: crate::kdf::Secret32([4; 32]),
            previous: Some(([5; 16], acks)),
        };
        let padded = crate::content::Content::EpochKey(ek)
            .to_padded_bytes()
            .unwrap();
        assert!(
            padded.len() <= crate::content::MAX_PADDED_BYTES,
            "{}",
            padded.len()
        );
        // Data message overhead: prefix, header, length, GCM tag.
        assert!(padded.len() + 50 + 4 + 16 <= crate::wire::MAX_MESSAGE_BYTES);
        let back = crate::content::Content::from_padded_bytes(&padded).unwrap();
        assert!(
            matches!(back, crate::content::Content::EpochKey(k) if k.roster().len() == MAX_MEMBERS)
        );
    }

    #[test]
    fn body_round_trip() {
        let b = GroupBody {
            acks: vec![Ack {
                sender: 1,
                index: 2,
                hash: [3; 32],
            }],
            kind: BodyKind::Text("hi".into()),
        };
        assert_eq!(GroupBody::decode(&b.encode()).unwrap(), b);
        let h = GroupBody {
            acks: vec![],
            kind: BodyKind::Leave,
        };
        assert_eq!(GroupBody::decode(&h.encode()).unwrap(), h);
    }
}
