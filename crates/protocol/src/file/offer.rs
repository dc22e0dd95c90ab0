//! The file offer: what a sender puts inside an end-to-end encrypted message so that the
//! recipient can fetch, check and decrypt a file. The server never sees it.
//!
//! Encoding (version 1), integers big-endian, decoded with hard limits:
//!
//! ```text
//! version (1 byte, = 1)
//! key (32) || sha256 (32) || size (u64) || body size (u64, = body_len(size))
//! url  (u16 length, 8..=2048 bytes: UTF-8 `https://...`, no whitespace or controls)
//! type (u8 length, 1..=127 bytes: printable ASCII `type/subtype`)
//! name (u8 length, 1..=255 bytes: UTF-8, no `/`, `\`, controls, not `.` or `..`)
//! ```

use zeroize::Zeroizing;

use super::stream::{body_len, FileKey, MAX_FILE_BYTES};
use crate::wire::{DecodeError, Reader};

/// Version byte of the offer encoding.
pub const OFFER_VERSION: u8 = 1;
/// Longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest media type, in bytes.
pub const MAX_TYPE_BYTES: usize = 127;
/// Longest file name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest encoded offer.
pub const MAX_OFFER_BYTES: usize =
    1 + 32 + 32 + 8 + 8 + 2 + MAX_URL_BYTES + 1 + MAX_TYPE_BYTES + 1 + MAX_NAME_BYTES;

/// A file offered in a conversation. Holds the file's key: no `Clone`, zeroized on drop
/// (through [`FileKey`]).
pub struct FileOffer {
    /// Where the encrypted body can be fetched.
    pub url: String,
    /// The file's key.
    pub key: FileKey,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Plaintext size in bytes.
    pub size: u64,
    /// Media type, e.g. `image/png`.
    pub media_type: String,
    /// File name, without any path.
    pub name: String,
}

impl std::fmt::Debug for FileOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor the name (user data) nor the URL.
        f.debug_struct("FileOffer")
            .field("size", &self.size)
            .field("media_type", &self.media_type)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, what: &'static str) -> DecodeError {
    DecodeError::Invalid { field, what }
}

/// Checks a URL: `https://`, at most [`MAX_URL_BYTES`], no whitespace or controls.
pub fn check_url(url: &str) -> Result<(), DecodeError> {
    if url.len() > MAX_URL_BYTES {
        return Err(DecodeError::FieldTooLong {
            field: "url",
            len: url.len(),
            max: MAX_URL_BYTES,
        });
    }
    if !url.starts_with("https://")
        || url.len() <= "https://".len()
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid("url", "https URL"));
    }
    Ok(())
}

/// Checks a media type: printable ASCII `type/subtype`, at most [`MAX_TYPE_BYTES`].
pub fn check_media_type(t: &str) -> Result<(), DecodeError> {
    if t.len() > MAX_TYPE_BYTES {
        return Err(DecodeError::FieldTooLong {
            field: "type",
            len: t.len(),
            max: MAX_TYPE_BYTES,
        });
    }
    let ok = t.bytes().all(|b| b.is_ascii_graphic())
        && matches!(t.split_once('/'), Some((a, b)) if !a.is_empty() && !b.is_empty());
    if ok {
        Ok(())
    } else {
        Err(invalid("type", "media type"))
    }
}

/// Checks a file name: 1 to [`MAX_NAME_BYTES`] bytes of UTF-8 with no path separator or
/// control character, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), DecodeError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(DecodeError::FieldTooLong {
            field: "name",
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        Err(invalid("name", "file name"))
    } else {
        Ok(())
    }
}

impl FileOffer {
    /// Checks every field against the limits decoding enforces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_url(&self.url)?;
        check_media_type(&self.media_type)?;
        check_name(&self.name)?;
        if self.size > MAX_FILE_BYTES {
            return Err(invalid("size", "file size within the limit"));
        }
        Ok(())
    }

    /// The encrypted body's size: what the recipient should accept at most.
    pub fn body_size(&self) -> u64 {
        body_len(self.size)
    }

    /// Encodes the offer; the bytes hold the key, so they are zeroized on drop.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
        self.validate()?;
        let mut out = Zeroizing::new(Vec::with_capacity(MAX_OFFER_BYTES));
        out.push(OFFER_VERSION);
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.body_size().to_be_bytes());
        let url_len = u16::try_from(self.url.len()).map_err(|_| invalid("url", "https URL"))?;
        out.extend_from_slice(&url_len.to_be_bytes());
        out.extend_from_slice(self.url.as_bytes());
        for (field, text) in [("type", &self.media_type), ("name", &self.name)] {
            let len = u8::try_from(text.len()).map_err(|_| invalid(field, "short text"))?;
            out.push(len);
            out.extend_from_slice(text.as_bytes());
        }
        Ok(out)
    }

    /// Decodes an offer from a decrypted message. Never panics; refuses anything outside
    /// the limits, a body size other than the one the size implies, and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_OFFER_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_OFFER_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != OFFER_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let key = FileKey::from_bytes(r.array::<32>("key")?);
        let sha256 = r.array::<32>("sha256")?;
        let size = r.u64("size")?;
        if size > MAX_FILE_BYTES {
            return Err(invalid("size", "file size within the limit"));
        }
        if r.u64("body_size")? != body_len(size) {
            return Err(invalid("body_size", "padded size of the file"));
        }
        let url = r.string16("url", MAX_URL_BYTES)?;
        let media_type = short_string(&mut r, "type", MAX_TYPE_BYTES)?;
        let name = short_string(&mut r, "name", MAX_NAME_BYTES)?;
        r.finish()?;
        let offer = Self {
            url,
            key,
            sha256,
            size,
            media_type,
            name,
        };
        offer.validate()?;
        Ok(offer)
    }
}

fn short_string(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<String, DecodeError> {
    let len = usize::from(r.u8(field)?);
    if len > max {
        return Err(DecodeError::FieldTooLong { field, len, max });
    }
    let bytes = r.take(len, field)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid(field, "UTF-8 string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> FileOffer {
        FileOffer {
            url: "https://files.example.org/upload/4f2a/abc".into(),
            key: FileKey::from_bytes([9; 32]),
            sha256: [3; 32],
            size: 123_456,
            media_type: "image/png".into(),
            name: "holiday photo é.png".into(),
        }
    }

    #[test]
    fn round_trips() {
        let o = offer();
        let bytes = o.to_bytes().unwrap();
        let back = FileOffer::from_bytes(&bytes).unwrap();
        assert_eq!(back.url, o.url);
        assert_eq!(back.key.as_bytes(), o.key.as_bytes());
        assert_eq!(back.sha256, o.sha256);
        assert_eq!(back.size, o.size);
        assert_eq!(back.body_size(), body_len(o.size));
        assert_eq!(back.media_type, o.media_type);
        assert_eq!(back.name, o.name);
        let debug = format!("{back:?}");
        assert!(
            !debug.contains("holiday") && !debug.contains("example"),
            "{debug}"
        );
        // Every strict prefix fails, and so does a trailing byte.
        for cut in 0..bytes.len() {
            assert!(FileOffer::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            FileOffer::from_bytes(&long),
            Err(DecodeError::TrailingBytes(1))
        ));
    }

    #[test]
    fn limits_are_enforced() {
        type Change = fn(&mut FileOffer);
        let cases: [(&str, Change); 12] = [
            ("url too long", |o| {
                o.url = format!("https://{}", "a".repeat(MAX_URL_BYTES))
            }),
            ("url not https", |o| o.url = "http://x.org/a".into()),
            ("url with space", |o| o.url = "https://x.org/a b".into()),
            ("name too long", |o| o.name = "é".repeat(128)),
            ("name with slash", |o| o.name = "../etc/passwd".into()),
            ("name with backslash", |o| o.name = "a\\b".into()),
            ("name with control", |o| o.name = "a\u{7}b".into()),
            ("name dotdot", |o| o.name = "..".into()),
            ("name empty", |o| o.name = String::new()),
            ("type too long", |o| {
                o.media_type = format!("a/{}", "b".repeat(MAX_TYPE_BYTES))
            }),
            ("type without slash", |o| o.media_type = "png".into()),
            ("size too large", |o| o.size = MAX_FILE_BYTES + 1),
        ];
        for (what, change) in cases {
            let mut o = offer();
            change(&mut o);
            assert!(o.validate().is_err(), "{what}");
            assert!(o.to_bytes().is_err(), "{what}");
        }
        // At the limits it is accepted.
        let mut o = offer();
        o.name = "n".repeat(MAX_NAME_BYTES);
        o.media_type = format!("a/{}", "b".repeat(MAX_TYPE_BYTES - 2));
        o.url = format!("https://{}", "u".repeat(MAX_URL_BYTES - 8));
        o.size = MAX_FILE_BYTES;
        let bytes = o.to_bytes().unwrap();
        assert_eq!(bytes.len(), MAX_OFFER_BYTES);
        assert!(FileOffer::from_bytes(&bytes).is_ok());
    }

    #[test]
    fn decoding_refuses_bad_fields() {
        let good = offer().to_bytes().unwrap().to_vec();
        let mut v = good.clone();
        v[0] = 2;
        assert!(matches!(
            FileOffer::from_bytes(&v),
            Err(DecodeError::UnsupportedVersion(2))
        ));
        // A body size that does not match the size.
        let mut v = good.clone();
        v[1 + 64 + 8 + 7] ^= 1;
        assert!(FileOffer::from_bytes(&v).is_err());
        // A name with a separator written by hand.
        let mut v = good.clone();
        let at = v.len() - 1;
        v[at] = b'/';
        assert!(FileOffer::from_bytes(&v).is_err());
        // Too large as a whole.
        assert!(matches!(
            FileOffer::from_bytes(&vec![1; MAX_OFFER_BYTES + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
