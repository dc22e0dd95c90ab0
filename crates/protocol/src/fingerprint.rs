//! Readable fingerprints of identity keys and pairwise safety numbers.
//!
//! Two ways for people to check that they talk to the right key, both over public data:
//!
//! - A [`Fingerprint`] names one identity key: SHA-256 over the domain label
//!   `cryptocat/v1/fingerprint` and the 32 key bytes, each part prefixed with its length as a
//!   big-endian `u64` (the framing of every hash in this crate). It reads, OTR-style, as the first
//!   20 bytes in 40 uppercase hex digits: `6A87622A B68EB0CD 33B90B79 5FDED28C 1098F2F7`.
//! - A [`SafetyNumber`] names a *pair* of keys, Signal-style: 60 decimal digits that both parties
//!   see the same, to read aloud, plus a QR payload that one side scans from the other's screen.
//!   Each key contributes 30 digits by libsignal's `NumericFingerprintGenerator` (5200 iterations of
//!   SHA-512, version `0x0000`), with the 32 key bytes doubling as the stable identifier because our
//!   identities have no other one.
//!
//! Comparisons of fingerprints, digits and QR payloads run in constant time ([`subtle`]). None of
//! this is secret, but a comparison that leaks where it stopped has no reason to exist here.

use core::fmt::{self, Write as _};
use core::hash::{Hash, Hasher};

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};
use subtle::{Choice, ConstantTimeEq};

use crate::kdf;

/// Domain label of [`Fingerprint::of`].
const FINGERPRINT_LABEL: &[u8] = b"cryptocat/v1/fingerprint";

/// How many leading bytes of a [`Fingerprint`] its readable form shows.
pub const READABLE_BYTES: usize = 20;

/// Hex digits in a readable fingerprint (spaces not counted).
pub const READABLE_HEX_DIGITS: usize = 2 * READABLE_BYTES;

/// SHA-512 iterations per side of a [`SafetyNumber`] (libsignal's value).
pub const SAFETY_NUMBER_ITERATIONS: u32 = 5200;

/// The version hashed into the first iteration of a [`SafetyNumber`] side (libsignal's `0x0000`).
const SAFETY_NUMBER_HASH_VERSION: u16 = 0;

/// Digits in a [`SafetyNumber`].
pub const SAFETY_NUMBER_DIGITS: usize = 60;

/// Digits each key contributes to a [`SafetyNumber`].
const DIGITS_PER_SIDE: usize = SAFETY_NUMBER_DIGITS / 2;

/// Bytes of each side's iterated hash carried in a QR payload.
const QR_HASH_BYTES: usize = 32;

/// The first byte of [`SafetyNumber::qr_payload`].
pub const QR_VERSION: u8 = 1;

/// Length of [`SafetyNumber::qr_payload`]: version, local hash, remote hash.
pub const QR_PAYLOAD_LEN: usize = 1 + 2 * QR_HASH_BYTES;

/// Why a readable fingerprint or a scanned safety-number QR payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// The scanned QR payload has no bytes at all.
    #[error("the scanned safety-number QR code is empty")]
    QrEmpty,
    /// The scanned QR payload starts with a version this implementation does not speak.
    #[error("the scanned safety-number QR code has version {found}, expected {expected}")]
    QrVersion {
        /// [`QR_VERSION`].
        expected: u8,
        /// The first byte of the payload.
        found: u8,
    },
    /// The scanned QR payload has the right version but not [`QR_PAYLOAD_LEN`] bytes.
    #[error("the scanned safety-number QR code has {found} bytes, expected {expected}")]
    QrLength {
        /// [`QR_PAYLOAD_LEN`].
        expected: usize,
        /// The payload's length.
        found: usize,
    },
    /// A readable fingerprint holds a character that is neither a hex digit nor whitespace.
    #[error("a fingerprint may hold only hex digits and spaces, not {0:?}")]
    ReadableCharacter(char),
    /// A readable fingerprint does not hold exactly [`READABLE_HEX_DIGITS`] hex digits.
    #[error("a fingerprint has {expected} hex digits, this one has {found}")]
    ReadableLength {
        /// [`READABLE_HEX_DIGITS`].
        expected: usize,
        /// The hex digits found.
        found: usize,
    },
}

/// The fingerprint of one identity key: SHA-256 over `cryptocat/v1/fingerprint` and the key.
///
/// Equality is constant-time. [`fmt::Display`] and [`fmt::Debug`] both show the readable form.
#[derive(Clone, Copy)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        Self::of_key_bytes(key.as_bytes())
    }

    /// The fingerprint of an encoded ed25519 public key (no decoding needed).
    pub fn of_key_bytes(key: &[u8; 32]) -> Self {
        Self(kdf::hash(FINGERPRINT_LABEL, &[key]))
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A fingerprint from its 32 hash bytes (as stored or received).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The first [`READABLE_BYTES`] bytes as 40 uppercase hex digits in 5 groups of 8, separated
    /// by single spaces: `6A87622A B68EB0CD 33B90B79 5FDED28C 1098F2F7`.
    pub fn to_readable(&self) -> String {
        let mut out = String::with_capacity(READABLE_HEX_DIGITS + 4);
        for (i, byte) in self.0.iter().take(READABLE_BYTES).enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02X}");
        }
        out
    }

    /// Parses a readable fingerprint as a person typed or pasted it: any whitespace anywhere
    /// (or none), either case. Yields only the [`READABLE_BYTES`]-byte prefix the readable form
    /// shows; compare it with [`Fingerprint::matches_readable`] rather than by hand.
    pub fn parse_readable(text: &str) -> Result<[u8; READABLE_BYTES], FingerprintError> {
        let mut out = [0u8; READABLE_BYTES];
        let mut found = 0usize;
        for c in text.chars().filter(|c| !c.is_whitespace()) {
            let nibble = hex_nibble(c).ok_or(FingerprintError::ReadableCharacter(c))?;
            if let Some(byte) = out.get_mut(found / 2) {
                *byte = (*byte << 4) | nibble;
            }
            found = found.saturating_add(1);
        }
        if found == READABLE_HEX_DIGITS {
            Ok(out)
        } else {
            Err(FingerprintError::ReadableLength {
                expected: READABLE_HEX_DIGITS,
                found,
            })
        }
    }

    /// True when `text` is this fingerprint's readable form, up to whitespace and case.
    /// Malformed text is simply no match. The byte comparison is constant-time.
    pub fn matches_readable(&self, text: &str) -> bool {
        match Self::parse_readable(text) {
            Ok(prefix) => bool::from(prefix.ct_eq(&array_prefix::<READABLE_BYTES, 32>(&self.0))),
            Err(_) => false,
        }
    }
}

impl ConstantTimeEq for Fingerprint {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

impl Eq for Fingerprint {}

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_readable())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_readable())
    }
}

/// The safety number of a pair of identity keys: 60 digits that both sides compute alike.
///
/// Each key yields 30 digits (libsignal's numeric fingerprint); the smaller half comes first, so
/// `SafetyNumber::new(a, b)` and `SafetyNumber::new(b, a)` show the same digits. The QR payload,
/// by contrast, is directional: it says "I am local, you are remote", and
/// [`SafetyNumber::compare_qr`] on the other side checks it the other way round.
#[derive(Clone)]
pub struct SafetyNumber {
    /// 60 ASCII digits.
    digits: String,
    /// The first 32 bytes of the local key's iterated hash.
    local: [u8; QR_HASH_BYTES],
    /// The first 32 bytes of the remote key's iterated hash.
    remote: [u8; QR_HASH_BYTES],
}

impl SafetyNumber {
    /// The safety number between our `local` identity key and the peer's `remote` one.
    pub fn new(local: &VerifyingKey, remote: &VerifyingKey) -> Self {
        let local_hash = side_hash(local);
        let remote_hash = side_hash(remote);
        let local_digits = digits30(&local_hash);
        let remote_digits = digits30(&remote_hash);
        let (first, second) = if local_digits <= remote_digits {
            (local_digits, remote_digits)
        } else {
            (remote_digits, local_digits)
        };
        let mut digits = String::with_capacity(SAFETY_NUMBER_DIGITS);
        digits.push_str(&first);
        digits.push_str(&second);
        Self {
            digits,
            local: array_prefix(&local_hash),
            remote: array_prefix(&remote_hash),
        }
    }

    /// The 60 digits, without spaces.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The digits in 12 groups of 5 separated by single spaces.
    pub fn to_readable(&self) -> String {
        let mut out = String::with_capacity(SAFETY_NUMBER_DIGITS + 11);
        for (i, c) in self.digits.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    /// The bytes to show as a QR code: [`QR_VERSION`], then the first 32 bytes of our (local)
    /// key's iterated hash, then the remote key's. The peer scans it and calls
    /// [`SafetyNumber::compare_qr`] on its own safety number, where the roles are swapped.
    pub fn qr_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(QR_PAYLOAD_LEN);
        out.push(QR_VERSION);
        out.extend_from_slice(&self.local);
        out.extend_from_slice(&self.remote);
        out
    }

    /// Checks a QR payload scanned from the peer's screen: `Ok(true)` when the peer's local key
    /// is our remote key and its remote key is our local key. `Ok(false)` is a mismatch, which
    /// includes scanning our own payload. Malformed payloads are errors: an empty one, one of
    /// another version, one of the wrong length. The hash comparison is constant-time.
    pub fn compare_qr(&self, scanned: &[u8]) -> Result<bool, FingerprintError> {
        let (&version, rest) = scanned.split_first().ok_or(FingerprintError::QrEmpty)?;
        if version != QR_VERSION {
            return Err(FingerprintError::QrVersion {
                expected: QR_VERSION,
                found: version,
            });
        }
        let length_error = FingerprintError::QrLength {
            expected: QR_PAYLOAD_LEN,
            found: scanned.len(),
        };
        if scanned.len() != QR_PAYLOAD_LEN {
            return Err(length_error);
        }
        let (their_local, their_remote) =
            rest.split_at_checked(QR_HASH_BYTES).ok_or(length_error)?;
        let same = their_local.ct_eq(&self.remote) & their_remote.ct_eq(&self.local);
        Ok(bool::from(same))
    }

    /// True when `other_digits` are these 60 digits, ignoring any whitespace (as read aloud and
    /// typed in groups). The comparison is constant-time.
    pub fn matches(&self, other_digits: &str) -> bool {
        let typed: String = other_digits
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        bool::from(typed.as_bytes().ct_eq(self.digits.as_bytes()))
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_readable())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({})", self.to_readable())
    }
}

/// One side of a safety number: the key is its own stable identifier.
fn side_hash(key: &VerifyingKey) -> [u8; 64] {
    let bytes = key.as_bytes();
    iterated_hash(
        SAFETY_NUMBER_HASH_VERSION,
        bytes,
        bytes,
        SAFETY_NUMBER_ITERATIONS,
    )
}

/// libsignal's `NumericFingerprintGenerator` core: `h = SHA-512(version_be16 || key || stable_id
/// || key)`, then `iterations - 1` times `h = SHA-512(h || key)`.
fn iterated_hash(version: u16, key: &[u8], stable_id: &[u8], iterations: u32) -> [u8; 64] {
    let mut buf: [u8; 64] = Sha512::new()
        .chain_update(version.to_be_bytes())
        .chain_update(key)
        .chain_update(stable_id)
        .chain_update(key)
        .finalize()
        .into();
    for _ in 1..iterations {
        buf = Sha512::new()
            .chain_update(buf)
            .chain_update(key)
            .finalize()
            .into();
    }
    buf
}

/// 30 digits from the first 30 bytes of an iterated hash: six 5-byte big-endian chunks, each
/// modulo 100000, zero-padded to 5 digits.
fn digits30(hash: &[u8; 64]) -> String {
    let mut out = String::with_capacity(DIGITS_PER_SIDE);
    for chunk in hash.chunks_exact(5).take(DIGITS_PER_SIDE / 5) {
        let n = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) % 100_000;
        // Writing to a String cannot fail.
        let _ = write!(out, "{n:05}");
    }
    out
}

/// The first `N` bytes of an `M`-byte array (`N <= M`; a larger `N` is zero-padded).
fn array_prefix<const N: usize, const M: usize>(bytes: &[u8; M]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes.iter()) {
        *o = *b;
    }
    out
}

/// The value of one hex digit, either case.
fn hex_nibble(c: char) -> Option<u8> {
    match u8::try_from(c).ok()? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use serde_json::Value;

    fn key(seed: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    fn vectors(name: &str) -> Value {
        let path = format!("{}/../../test-vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn hex_field(v: &Value, field: &str) -> Vec<u8> {
        hex::decode(v[field].as_str().unwrap()).unwrap()
    }

    fn verifying_key(bytes: &[u8]) -> VerifyingKey {
        VerifyingKey::from_bytes(bytes.try_into().unwrap()).unwrap()
    }

    #[test]
    fn fingerprint_is_a_function_of_the_key() {
        assert_eq!(Fingerprint::of(&key(1)), Fingerprint::of(&key(1)));
        assert_ne!(Fingerprint::of(&key(1)), Fingerprint::of(&key(2)));
        let fp = Fingerprint::of(&key(3));
        assert_eq!(Fingerprint::from_bytes(*fp.as_bytes()), fp);
        // Domain-separated: not a bare hash of the key.
        assert_ne!(
            fp.as_bytes(),
            &<[u8; 32]>::from(sha2::Sha256::digest(key(3).as_bytes()))
        );
    }

    #[test]
    fn fingerprint_readable_shape() {
        let fp = Fingerprint::of(&key(7));
        let readable = fp.to_readable();
        assert_eq!(readable.len(), 44, "{readable}");
        let groups: Vec<&str> = readable.split(' ').collect();
        assert_eq!(groups.len(), 5, "{readable}");
        for g in &groups {
            assert_eq!(g.len(), 8, "{readable}");
            assert!(
                g.chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
                "{readable}"
            );
        }
        assert_eq!(
            groups.concat(),
            hex::encode_upper(&fp.as_bytes()[..READABLE_BYTES])
        );
        assert_eq!(fp.to_string(), readable);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({readable})"));
    }

    #[test]
    fn fingerprint_parse_and_match_readable() {
        let fp = Fingerprint::of(&key(9));
        let readable = fp.to_readable();
        let prefix = Fingerprint::parse_readable(&readable).unwrap();
        assert_eq!(prefix[..], fp.as_bytes()[..READABLE_BYTES]);

        let squashed: String = readable.chars().filter(|c| *c != ' ').collect();
        let messy = format!(
            "  {}\n\t{} ",
            &squashed[..13].to_lowercase(),
            &squashed[13..]
        );
        assert!(fp.matches_readable(&readable));
        assert!(fp.matches_readable(&squashed));
        assert!(fp.matches_readable(&messy));
        assert!(fp.matches_readable(&readable.to_lowercase()));
        assert!(!Fingerprint::of(&key(10)).matches_readable(&readable));

        // One digit changed.
        let mut wrong = squashed.clone().into_bytes();
        wrong[39] = if wrong[39] == b'0' { b'1' } else { b'0' };
        assert!(!fp.matches_readable(std::str::from_utf8(&wrong).unwrap()));

        assert_eq!(
            Fingerprint::parse_readable(&squashed[..38]),
            Err(FingerprintError::ReadableLength {
                expected: 40,
                found: 38
            })
        );
        assert_eq!(
            Fingerprint::parse_readable(&format!("{squashed}00")),
            Err(FingerprintError::ReadableLength {
                expected: 40,
                found: 42
            })
        );
        assert_eq!(
            Fingerprint::parse_readable(&format!("{}G", &squashed[..39])),
            Err(FingerprintError::ReadableCharacter('G'))
        );
        assert_eq!(
            Fingerprint::parse_readable(&readable.replace(' ', ":")),
            Err(FingerprintError::ReadableCharacter(':'))
        );
        assert!(!fp.matches_readable(""));
        assert!(!fp.matches_readable(&format!("{readable}é")));
    }

    #[test]
    fn fingerprint_hash_is_usable_in_maps() {
        let mut set = std::collections::HashSet::new();
        set.insert(Fingerprint::of(&key(1)));
        set.insert(Fingerprint::of(&key(1)));
        set.insert(Fingerprint::of(&key(2)));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn fingerprint_safety_number_is_symmetric() {
        let (a, b) = (key(1), key(2));
        let ab = SafetyNumber::new(&a, &b);
        let ba = SafetyNumber::new(&b, &a);
        assert_eq!(ab.digits(), ba.digits());
        assert_eq!(ab.digits().len(), SAFETY_NUMBER_DIGITS);
        assert!(ab.digits().bytes().all(|c| c.is_ascii_digit()));
        // The smaller half first.
        assert!(ab.digits()[..30] <= ab.digits()[30..]);
        assert_ne!(ab.digits(), SafetyNumber::new(&a, &key(3)).digits());

        let readable = ab.to_readable();
        assert_eq!(readable.len(), 71);
        let groups: Vec<&str> = readable.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g.len() == 5));
        assert_eq!(groups.concat(), ab.digits());
        assert_eq!(ab.to_string(), readable);
        assert_eq!(format!("{ab:?}"), format!("SafetyNumber({readable})"));
    }

    #[test]
    fn fingerprint_safety_number_qr_round_trip() {
        let (a, b, mallory) = (key(1), key(2), key(3));
        let at_alice = SafetyNumber::new(&a, &b);
        let at_bob = SafetyNumber::new(&b, &a);
        let qr = at_alice.qr_payload();
        assert_eq!(qr.len(), QR_PAYLOAD_LEN);
        assert_eq!(qr[0], QR_VERSION);
        assert_eq!(at_bob.compare_qr(&qr), Ok(true));
        assert_eq!(at_alice.compare_qr(&at_bob.qr_payload()), Ok(true));

        // Scanning one's own screen is no confirmation.
        assert_eq!(at_alice.compare_qr(&qr), Ok(false));
        // Mallory in the middle: Alice holds (a, m), Bob holds (b, a).
        let alice_sees_mallory = SafetyNumber::new(&a, &mallory);
        assert_eq!(
            at_bob.compare_qr(&alice_sees_mallory.qr_payload()),
            Ok(false)
        );
        assert_eq!(
            alice_sees_mallory.compare_qr(&at_bob.qr_payload()),
            Ok(false)
        );
        assert_eq!(SafetyNumber::new(&mallory, &b).compare_qr(&qr), Ok(false));

        // One bit flipped anywhere in either hash.
        for i in 1..QR_PAYLOAD_LEN {
            let mut bad = qr.clone();
            bad[i] ^= 0x01;
            assert_eq!(at_bob.compare_qr(&bad), Ok(false), "byte {i}");
        }
    }

    #[test]
    fn fingerprint_safety_number_malformed_qr() {
        let at_bob = SafetyNumber::new(&key(2), &key(1));
        let qr = SafetyNumber::new(&key(1), &key(2)).qr_payload();
        assert_eq!(at_bob.compare_qr(&[]), Err(FingerprintError::QrEmpty));
        let mut v2 = qr.clone();
        v2[0] = 2;
        assert_eq!(
            at_bob.compare_qr(&v2),
            Err(FingerprintError::QrVersion {
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            at_bob.compare_qr(&[0u8; QR_PAYLOAD_LEN]),
            Err(FingerprintError::QrVersion {
                expected: 1,
                found: 0
            })
        );
        for len in [1, 33, QR_PAYLOAD_LEN - 1, QR_PAYLOAD_LEN + 1, 200] {
            let mut bad = qr.clone();
            bad.resize(len, 0);
            assert_eq!(
                at_bob.compare_qr(&bad),
                Err(FingerprintError::QrLength {
                    expected: QR_PAYLOAD_LEN,
                    found: len
                }),
                "length {len}"
            );
        }
        let err = at_bob.compare_qr(&v2).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
    }

    #[test]
    fn fingerprint_safety_number_matches_typed_digits() {
        let sn = SafetyNumber::new(&key(4), &key(5));
        assert!(sn.matches(sn.digits()));
        assert!(sn.matches(&sn.to_readable()));
        assert!(sn.matches(&format!(" {}\n", sn.to_readable().replace(' ', "\u{a0}\t"))));
        assert!(SafetyNumber::new(&key(5), &key(4)).matches(&sn.to_readable()));
        assert!(!sn.matches(&sn.digits()[..59]));
        assert!(!sn.matches(&format!("{}0", sn.digits())));
        assert!(!sn.matches(""));
        let mut wrong = sn.digits().as_bytes().to_vec();
        wrong[17] = if wrong[17] == b'9' { b'8' } else { b'9' };
        assert!(!sn.matches(std::str::from_utf8(&wrong).unwrap()));
        assert!(!sn.matches(SafetyNumber::new(&key(4), &key(6)).digits()));
    }

    /// libsignal's own vectors (rust/protocol/src/fingerprint.rs, fingerprint_test_v1/v2) for the
    /// generic core, with its 33-byte serialized keys and phone-number stable identifiers.
    #[test]
    fn fingerprint_libsignal_vectors() {
        let doc = vectors("libsignal-fingerprint.json");
        let tests = doc["tests"].as_array().unwrap();
        assert!(!tests.is_empty(), "libsignal-fingerprint.json: no tests");
        for t in tests {
            let version = u16::try_from(t["version"].as_u64().unwrap()).unwrap();
            let iterations = u32::try_from(t["iterations"].as_u64().unwrap()).unwrap();
            let mut halves = Vec::new();
            for side in ["alice", "bob"] {
                let s = &t[side];
                let hash = iterated_hash(
                    version,
                    &hex_field(s, "key"),
                    s["stableId"].as_str().unwrap().as_bytes(),
                    iterations,
                );
                assert_eq!(
                    hex::encode(&hash[..32]),
                    s["hash32"].as_str().unwrap(),
                    "{side}"
                );
                halves.push(digits30(&hash));
            }
            halves.sort();
            assert_eq!(halves.concat(), t["displayable"].as_str().unwrap());
        }
        println!(
            "libsignal-fingerprint.json: {} vector(s) passed",
            tests.len()
        );
    }

    /// Known answers computed by the independent Python implementation in
    /// scripts/extract-vectors.py (RFC 8032 test keys).
    #[test]
    fn fingerprint_cryptocat_known_answers() {
        let doc = vectors("cryptocat-fingerprint.json");
        assert_eq!(
            doc["fingerprintLabel"].as_str().unwrap().as_bytes(),
            FINGERPRINT_LABEL
        );
        let fps = doc["fingerprints"].as_array().unwrap();
        assert!(!fps.is_empty());
        for f in fps {
            let fp = Fingerprint::of(&verifying_key(&hex_field(f, "key")));
            assert_eq!(
                hex::encode(fp.as_bytes()),
                f["fingerprint"].as_str().unwrap()
            );
            assert_eq!(fp.to_readable(), f["readable"].as_str().unwrap());
        }
        let s = &doc["safetyNumber"];
        assert_eq!(
            s["iterations"].as_u64(),
            Some(u64::from(SAFETY_NUMBER_ITERATIONS))
        );
        let local = verifying_key(&hex_field(s, "local"));
        let remote = verifying_key(&hex_field(s, "remote"));
        let sn = SafetyNumber::new(&local, &remote);
        assert_eq!(sn.digits(), s["digits"].as_str().unwrap());
        assert_eq!(sn.qr_payload(), hex_field(s, "localQrPayload"));
        assert_eq!(hex::encode(sn.local), s["localHash32"].as_str().unwrap());
        assert_eq!(hex::encode(sn.remote), s["remoteHash32"].as_str().unwrap());
    }

    #[test]
    fn fingerprint_digits_encoding() {
        // 5-byte chunks, big-endian, mod 100000, zero-padded.
        let mut hash = [0u8; 64];
        hash[..5].copy_from_slice(&[0xff; 5]); // 2^40 - 1 = 1099511627775 -> 27775
        hash[9] = 7; // second chunk = 7 -> 00007
        hash[10..15].copy_from_slice(&[0, 0, 1, 0x86, 0xa0]); // 100000 -> 00000
        assert_eq!(digits30(&hash), "277750000700000000000000000000");
        assert_eq!(hex_nibble('a'), Some(10));
        assert_eq!(hex_nibble('F'), Some(15));
        assert_eq!(hex_nibble('g'), None);
        assert_eq!(hex_nibble('٣'), None);
    }
}
