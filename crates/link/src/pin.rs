//! Key pins: `sha256/` and the unpadded base64url SHA-256 of a server's
//! SubjectPublicKeyInfo (RFC 5280), as RFC 7469 pinned keys (there in padded base64).
//!
//! The pin names the server's public key, not its certificate: a certificate renewed with
//! the same key (an ACME renewal that keeps the key, a self-signed certificate made again)
//! keeps the pin, and a certificate that is otherwise unusable (self-signed, a CA
//! certificate used as the server's own, expired) can still be checked against it.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The text before the digest.
pub const PIN_PREFIX: &str = "sha256/";
/// Length of a pin's text: the prefix and 43 base64url characters.
pub const PIN_TEXT_LEN: usize = PIN_PREFIX.len() + 43;

/// A SHA-256 digest of a server's SubjectPublicKeyInfo. Public: it names a public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

/// Why a pin could not be read or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not `sha256/` followed by 43 base64url characters.
    #[error("a key pin is sha256/ followed by 43 base64url characters")]
    Malformed,
    /// The certificate could not be parsed to find its public key.
    #[error("the certificate could not be read")]
    BadCertificate,
}

impl Pin {
    /// The pin of a DER-encoded SubjectPublicKeyInfo (with its outer SEQUENCE).
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }

    /// The pin of a certificate's public key.
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Result<Self, PinError> {
        let parsed = webpki::EndEntityCert::try_from(cert).map_err(|_| PinError::BadCertificate)?;
        Ok(Self::of_spki(parsed.subject_public_key_info().as_ref()))
    }

    /// The digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `other` is the same pin, compared in constant time.
    pub fn matches(&self, other: &Pin) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Whether any of `pins` is this one (each compared in constant time).
    pub fn is_in(&self, pins: &[Pin]) -> bool {
        pins.iter()
            .fold(subtle::Choice::from(0), |found, p| {
                found | self.0.ct_eq(&p.0)
            })
            .into()
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

impl FromStr for Pin {
    type Err = PinError;
    fn from_str(text: &str) -> Result<Self, PinError> {
        let text = text.trim();
        if text.len() != PIN_TEXT_LEN {
            return Err(PinError::Malformed);
        }
        let digest = text
            .get(..PIN_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PIN_PREFIX))
            .and_then(|_| text.get(PIN_PREFIX.len()..))
            .ok_or(PinError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(digest)
            .map_err(|_| PinError::Malformed)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| PinError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let pin = Pin::of_spki(b"spki");
        let text = pin.to_string();
        assert!(text.starts_with("sha256/"));
        assert_eq!(text.len(), PIN_TEXT_LEN);
        assert_eq!(text.parse::<Pin>().unwrap(), pin);
        assert_eq!(
            text.replacen("sha256", "SHA256", 1).parse::<Pin>().unwrap(),
            pin
        );
        for bad in [
            "",
            "sha256/",
            "sha1/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &text.replace('/', ":"),
            &format!("{text}A"),
            &format!("{}=", &text[..text.len() - 1]),
            &text.replace(&text[7..9], "+/"),
        ] {
            assert_eq!(bad.parse::<Pin>(), Err(PinError::Malformed), "{bad}");
        }
        // The last character carries 2 bits of padding, which must be zero: flipping the
        // lowest makes another text for the same bytes, which is refused.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = text.chars().last().unwrap();
        let flipped = alphabet
            .chars()
            .nth(alphabet.find(last).unwrap() ^ 1)
            .unwrap();
        let mut other = text.clone();
        other.pop();
        other.push(flipped);
        assert_eq!(other.parse::<Pin>(), Err(PinError::Malformed));
    }

    #[test]
    fn matches_in_constant_time_api() {
        let a = Pin::of_spki(b"a");
        let b = Pin::of_spki(b"b");
        assert!(a.matches(&a) && !a.matches(&b));
        assert!(a.is_in(&[b, a]) && !a.is_in(&[b]) && !a.is_in(&[]));
    }

    /// The pin of a certificate is the pin of its SPKI: the same key in two certificates
    /// (another name, made again) has one pin; another key has another.
    #[test]
    fn pin_follows_the_key_not_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let one = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let two = rcgen::CertificateParams::new(vec!["b.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let p1 = Pin::of_certificate(one.der()).unwrap();
        assert_eq!(p1, Pin::of_certificate(two.der()).unwrap());
        assert_eq!(p1, Pin::of_spki(&key.public_key_der()));
        let other = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        assert_ne!(p1, Pin::of_certificate(other.cert.der()).unwrap());
        assert_eq!(
            Pin::of_certificate(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            Err(PinError::BadCertificate)
        );
    }
}
