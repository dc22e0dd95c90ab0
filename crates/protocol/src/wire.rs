//! Byte-level encoding shared by every message type.
//!
//! Untrusted bytes are read once, here, through [`Reader`]: every read is bounds-checked and
//! names the field it was reading, so a short or malformed message becomes a
//! [`DecodeError`] and never a panic. [`Writer`] is the matching encoder. All integers are
//! big-endian; variable-length fields carry a length prefix and a per-field maximum.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;

/// The protocol version carried in the first byte of every message.
pub const PROTOCOL_VERSION: u8 = 1;

/// The largest encoded message this crate decodes (before base64), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 160 * 1024;

/// Why bytes from the network could not be read as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`] (or its base64 form larger than
    /// the matching limit).
    #[error("message is {len} bytes, above the limit of {max}")]
    TooLarge {
        /// Length of what was offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message ended before a field was complete.
    #[error("message ended inside field `{field}`: {needed} more bytes needed")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// How many more bytes it needed.
        needed: usize,
    },
    /// The first byte names a protocol version this build does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The type byte names no message this build knows.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// Bytes were left over after the last field.
    #[error("{0} unexpected bytes after the end of the message")]
    TrailingBytes(usize),
    /// A field was complete but its value is not acceptable.
    #[error("field `{field}` is not a valid {what}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What the field should have been.
        what: &'static str,
    },
    /// A length-prefixed field declared more than its limit.
    #[error("field `{field}` declares {len} items or bytes, above its limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text form was not valid base64.
    #[error("message is not valid base64")]
    Base64,
}

/// Decodes standard base64 text with a size check before any allocation.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, DecodeError> {
    let max_text = MAX_MESSAGE_BYTES.div_ceil(3) * 4;
    let trimmed = text.trim();
    if trimmed.len() > max_text {
        return Err(DecodeError::TooLarge {
            len: trimmed.len(),
            max: max_text,
        });
    }
    STANDARD.decode(trimmed).map_err(|_| DecodeError::Base64)
}

/// Encodes bytes as standard base64 (what travels inside an XMPP element).
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A bounds-checked cursor over untrusted bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes exactly `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array::<1>(field)?))
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array::<2>(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array::<4>(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array::<8>(field)?))
    }

    /// A field with a 16-bit length prefix, at most `max` bytes.
    pub(crate) fn bytes16(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        self.take(len, field)
    }

    /// A field with a 32-bit length prefix, at most `max` bytes.
    pub(crate) fn bytes32(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        if len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        self.take(len, field)
    }

    /// UTF-8 text with a 16-bit length prefix.
    pub(crate) fn string16(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<String, DecodeError> {
        let bytes = self.bytes16(field, max)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
            field,
            what: "UTF-8 string",
        })
    }

    /// UTF-8 text with a 32-bit length prefix.
    pub(crate) fn string32(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<String, DecodeError> {
        let bytes = self.bytes32(field, max)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
            field,
            what: "UTF-8 string",
        })
    }

    /// A canonical, non-identity ristretto255 point.
    pub(crate) fn point(&mut self, field: &'static str) -> Result<RistrettoPoint, DecodeError> {
        let bytes = self.array::<32>(field)?;
        let point = CompressedRistretto(bytes)
            .decompress()
            .ok_or(DecodeError::Invalid {
                field,
                what: "canonical ristretto255 point",
            })?;
        if point.is_identity() {
            return Err(DecodeError::Invalid {
                field,
                what: "non-identity ristretto255 point",
            });
        }
        Ok(point)
    }

    /// A canonical scalar modulo the group order.
    pub(crate) fn scalar(&mut self, field: &'static str) -> Result<Scalar, DecodeError> {
        let bytes = self.array::<32>(field)?;
        Option::<Scalar>::from(Scalar::from_canonical_bytes(bytes)).ok_or(DecodeError::Invalid {
            field,
            what: "canonical scalar",
        })
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

/// The matching encoder.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(256),
        }
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Writes a 16-bit length prefix then the bytes. Callers keep fields under their
    /// limits (all far below `u16::MAX`); a longer field is cut to fit, which the decoder
    /// then rejects, so a caller bug cannot produce an ambiguous encoding.
    pub(crate) fn bytes16(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        self.u16(len);
        self.raw(bytes.get(..usize::from(len)).unwrap_or(bytes))
    }

    /// Writes a 32-bit length prefix then the bytes.
    pub(crate) fn bytes32(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.raw(bytes)
    }

    pub(crate) fn point(&mut self, p: &RistrettoPoint) -> &mut Self {
        self.raw(p.compress().as_bytes())
    }

    pub(crate) fn scalar(&mut self, s: &Scalar) -> &mut Self {
        self.raw(s.as_bytes())
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_with_field_name() {
        let mut r = Reader::new(&[0, 1]);
        assert_eq!(
            r.u32("counter"),
            Err(DecodeError::Truncated {
                field: "counter",
                needed: 2
            })
        );
    }

    #[test]
    fn length_prefix_above_limit_is_rejected_before_reading() {
        let mut w = Writer::new();
        w.bytes16(&[7u8; 40]);
        let bytes = w.into_vec();
        let mut r = Reader::new(&bytes);
        assert_eq!(
            r.bytes16("text", 39),
            Err(DecodeError::FieldTooLong {
                field: "text",
                len: 40,
                max: 39
            })
        );
    }

    #[test]
    fn identity_and_non_canonical_points_are_rejected() {
        let mut r = Reader::new(&[0u8; 32]);
        assert!(matches!(r.point("p"), Err(DecodeError::Invalid { .. })));
        let mut r = Reader::new(&[0xffu8; 32]);
        assert!(matches!(r.point("p"), Err(DecodeError::Invalid { .. })));
    }

    #[test]
    fn non_canonical_scalar_is_rejected() {
        let mut r = Reader::new(&[0xffu8; 32]);
        assert!(matches!(r.scalar("s"), Err(DecodeError::Invalid { .. })));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8("a").unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(2)));
    }

    #[test]
    fn oversized_base64_is_rejected_before_decoding() {
        let text = "A".repeat(MAX_MESSAGE_BYTES * 2);
        assert!(matches!(
            decode_base64(&text),
            Err(DecodeError::TooLarge { .. })
        ));
        assert_eq!(decode_base64("not base64!"), Err(DecodeError::Base64));
    }
}
