//! What travels inside an encrypted one-to-one message, and its padding.
//!
//! A decrypted payload is one [`Content`] item, padded so that the ciphertext length says
//! little about the text: `content || 0x80 || 0x00*`, to the size [`bucket`] gives
//! (Padmé over a 64-byte minimum).

use crate::group::wire::{EpochKey, GroupProfile};
use crate::smp::SmpMessage;
use crate::wire::{DecodeError, Reader, Writer};

/// Largest text message, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Largest padded plaintext (an `EpochKey` for a full room with the longest addresses
/// and a full view of the previous epoch is about 90 KiB; a test checks it fits).
pub const MAX_PADDED_BYTES: usize = 128 * 1024;

const TAG_TEXT: u8 = 0x01;
const TAG_GROUP_PROFILE: u8 = 0x21;
const TAG_EPOCH_KEY: u8 = 0x22;

/// One item of decrypted content.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built and matched once per message; boxing buys nothing
pub enum Content {
    /// A chat message typed by a person.
    Text(String),
    /// A step of the socialist millionaires' protocol.
    Smp(SmpMessage),
    /// Group protocol: who the sender is in the room (first message on a session).
    GroupProfile(GroupProfile),
    /// Group protocol: the sender's keys and attestation for an epoch.
    EpochKey(EpochKey),
}

/// Why content could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The text is longer than [`MAX_TEXT_BYTES`].
    #[error("message text is {len} bytes, above the limit of {max}")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Content {
    /// Encodes and pads.
    pub(crate) fn to_padded_bytes(&self) -> Result<Vec<u8>, ContentError> {
        let mut w = Writer::new();
        match self {
            Content::Text(text) => {
                if text.len() > MAX_TEXT_BYTES {
                    return Err(ContentError::TextTooLong {
                        len: text.len(),
                        max: MAX_TEXT_BYTES,
                    });
                }
                w.u8(TAG_TEXT).bytes32(text.as_bytes());
            }
            Content::Smp(msg) => {
                w.u8(msg.tag());
                msg.encode(&mut w);
            }
            Content::GroupProfile(p) => {
                w.u8(TAG_GROUP_PROFILE);
                p.encode(&mut w);
            }
            Content::EpochKey(k) => {
                w.u8(TAG_EPOCH_KEY);
                k.encode(&mut w);
            }
        }
        Ok(pad(w.into_vec()))
    }

    /// Removes the padding and decodes.
    pub fn from_padded_bytes(padded: &[u8]) -> Result<Self, DecodeError> {
        let bytes = unpad(padded)?;
        let mut r = Reader::new(bytes);
        let tag = r.u8("content.tag")?;
        let content = match tag {
            TAG_TEXT => Content::Text(r.string32("content.text", MAX_TEXT_BYTES)?),
            0x11..=0x15 => Content::Smp(SmpMessage::decode(tag, &mut r)?),
            TAG_GROUP_PROFILE => Content::GroupProfile(GroupProfile::decode(&mut r)?),
            TAG_EPOCH_KEY => Content::EpochKey(EpochKey::decode(&mut r)?),
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(content)
    }
}

/// The padded size for `len` content bytes plus the 0x80 marker: Padmé (Nikitin et al.,
/// PETS 2019) over a 64-byte minimum. A length `L` is rounded up so that only its top
/// `floor(log2(floor(log2 L))) + 1` bits remain free: at most 12% overhead, and the
/// padded size reveals O(log log L) bits of the length.
pub(crate) fn bucket(len: usize) -> usize {
    let l = (len + 1).max(64);
    let e = usize::BITS - 1 - l.leading_zeros(); // floor(log2 L)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 E) + 1
    let low_bits = e.saturating_sub(s);
    let mask = (1usize << low_bits) - 1;
    (l + mask) & !mask
}

pub(crate) fn pad(mut bytes: Vec<u8>) -> Vec<u8> {
    let target = bucket(bytes.len());
    bytes.push(0x80);
    bytes.resize(target, 0);
    bytes
}

pub(crate) fn unpad(padded: &[u8]) -> Result<&[u8], DecodeError> {
    if padded.len() > MAX_PADDED_BYTES {
        return Err(DecodeError::TooLarge {
            len: padded.len(),
            max: MAX_PADDED_BYTES,
        });
    }
    let end = padded
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(DecodeError::Invalid {
            field: "padding",
            what: "0x80 marker",
        })?;
    match padded.get(end) {
        Some(0x80) => Ok(padded.get(..end).unwrap_or_default()),
        _ => Err(DecodeError::Invalid {
            field: "padding",
            what: "0x80 marker",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_hide_exact_length() {
        assert_eq!(bucket(0), 64);
        assert_eq!(bucket(63), 64);
        assert_eq!(bucket(64), 72);
        assert_eq!(bucket(1031), 1088);
        assert_eq!(bucket(16 * 1024 - 1), 16 * 1024);
        // Padmé: never more than 12% overhead, and few distinct sizes.
        let mut sizes = std::collections::BTreeSet::new();
        for len in 0..70_000usize {
            let b = bucket(len);
            assert!(b > len);
            assert!(b <= (len + 1).max(64) * 112 / 100 + 1, "{len} -> {b}");
            sizes.insert(b);
        }
        assert!(sizes.len() < 400, "{} distinct sizes", sizes.len());
        let a = Content::Text("hi".into()).to_padded_bytes().unwrap();
        let b = Content::Text("hello there".into())
            .to_padded_bytes()
            .unwrap();
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn too_long_text_is_refused() {
        let text = "x".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(
            Content::Text(text).to_padded_bytes(),
            Err(ContentError::TextTooLong {
                len: MAX_TEXT_BYTES + 1,
                max: MAX_TEXT_BYTES
            })
        );
    }

    #[test]
    fn bad_padding_is_an_error() {
        assert!(unpad(&[0u8; 64]).is_err());
        assert!(unpad(&[1u8, 2, 0, 0]).is_err());
        assert_eq!(unpad(&[1u8, 0x80, 0, 0]).unwrap(), &[1u8]);
    }

    proptest! {
        #[test]
        fn text_round_trips(text in ".{0,300}") {
            let c = Content::Text(text);
            let padded = c.to_padded_bytes().unwrap();
            prop_assert_eq!(padded.len(), bucket(padded.iter().rposition(|&b| b == 0x80).unwrap()));
            prop_assert_eq!(Content::from_padded_bytes(&padded).unwrap(), c);
        }
    }
}
