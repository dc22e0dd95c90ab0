//! `X-CRYPTOCAT-KEY`: the SASL mechanism in which a client proves to an XMPP server that it
//! holds the ed25519 key of its session [`Identity`], and gets an account whose localpart
//! is derived from that key (`docs/key-challenge.md` is the specification).
//!
//! Three messages, each the raw SASL data (base64 on XMPP):
//!
//! 1. client-first, [`ClientFirst`]: version `1` and the 32-byte public key (33 bytes).
//! 2. server-challenge, [`Challenge`]: version, a fresh 32-byte nonce, the channel binding
//!    type the server checks, and the server's domain.
//! 3. client-final: the 64-byte ed25519 signature of [`signed_bytes`] (label, context,
//!    domain, nonce, key, channel binding), made by [`respond`] and checked by [`verify`].
//!
//! The server answers `<success/>` with the localpart ([`localpart`]) as additional data.
//! Everything here is pure: the caller brings the nonce, the channel binding and the
//! domain; nonces are single-use by construction (the server keeps one per exchange and
//! forgets it on the first response).

use ed25519_dalek::{Signature, VerifyingKey};

use crate::identity::{external_signed_bytes, Identity};
use crate::kdf::{self, label};
use crate::wire::{Reader, Writer};

/// The SASL mechanism name.
pub const MECHANISM: &str = "X-CRYPTOCAT-KEY";
/// The version byte of client-first and server-challenge.
pub const VERSION: u8 = 1;
/// Bytes of the server's nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a `tls-exporter` channel binding (RFC 9266).
pub const EXPORTER_BYTES: usize = 32;
/// The RFC 9266 exporter label.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// Longest domain accepted in a challenge (RFC 7622 limits each JID part to 1023 bytes).
pub const MAX_DOMAIN_BYTES: usize = 1023;
/// Characters of a key-derived localpart (25 hash bytes in base32). Not 32: random
/// Cryptocat usernames are 32 hex digits and must never fall in the reserved shape.
pub const LOCALPART_CHARS: usize = 40;
/// Hash bytes in a localpart.
const LOCALPART_BYTES: usize = 25;
/// Bytes of client-first.
pub const CLIENT_FIRST_BYTES: usize = 1 + 32;
/// Bytes of client-final.
pub const CLIENT_FINAL_BYTES: usize = 64;
/// Largest server-challenge.
pub const MAX_CHALLENGE_BYTES: usize = 1 + NONCE_BYTES + 1 + 2 + MAX_DOMAIN_BYTES;
/// The context string signed after the external-signature label, so that no other
/// external signature (a future use of [`Identity::sign_with_label`]) can be replayed as
/// a login.
pub const CONTEXT: &[u8] = b"xmpp-sasl/X-CRYPTOCAT-KEY";
/// The context string of the room key proof (`docs/key-challenge.md` section 10): the
/// same messages, signed for a room's JID under this context, so that a room proof is
/// never a login and a login never a room proof.
pub const ROOM_CONTEXT: &[u8] = b"xmpp-muc/room-key";

/// Why a key challenge message was refused. Carries no key or domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyAuthError {
    /// The message has the wrong length or layout.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The version byte is not [`VERSION`].
    #[error("unsupported key challenge version {0}")]
    UnsupportedVersion(u8),
    /// The public key is not a valid ed25519 point, or has small order.
    #[error("the public key is not a valid ed25519 key")]
    BadKey,
    /// The challenge names another domain than the one we connected to.
    #[error("the challenge is for another domain")]
    WrongDomain,
    /// The server asks for a channel binding this side cannot provide.
    #[error("the server asks for a channel binding this connection does not have")]
    ChannelBindingUnavailable,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
}

/// Which channel binding the server checks (one byte in the challenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingType {
    /// No TLS at the server's end of this stream (loopback HTTP, a TLS-terminating proxy,
    /// BOSH): the signature binds domain and nonce only. Byte `0`.
    None,
    /// RFC 9266 `tls-exporter`: 32 bytes exported with label `EXPORTER-Channel-Binding`
    /// and no context. Byte `1`.
    TlsExporter,
}

impl BindingType {
    /// The byte in the challenge.
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::TlsExporter => 1,
        }
    }

    /// The name signed in the transcript.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::TlsExporter => "tls-exporter",
        }
    }

    fn from_code(code: u8) -> Result<Self, KeyAuthError> {
        match code {
            0 => Ok(Self::None),
            1 => Ok(Self::TlsExporter),
            _ => Err(KeyAuthError::Malformed("channel binding type")),
        }
    }
}

/// The channel binding data signed: none, or the 32 exported bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// No binding.
    None,
    /// `tls-exporter` output.
    TlsExporter([u8; EXPORTER_BYTES]),
}

impl core::fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.kind().name())
    }
}

impl ChannelBinding {
    /// Its type.
    pub fn kind(&self) -> BindingType {
        match self {
            Self::None => BindingType::None,
            Self::TlsExporter(_) => BindingType::TlsExporter,
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Self::None => &[],
            Self::TlsExporter(d) => d,
        }
    }
}

/// client-first: `VERSION || public key (32)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFirst {
    /// The ed25519 identity key the client claims.
    pub key: VerifyingKey,
}

impl ClientFirst {
    /// For `identity`.
    pub fn new(identity: &Identity) -> Self {
        Self {
            key: identity.verifying_key(),
        }
    }

    /// The 33 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION).raw(self.key.as_bytes());
        w.into_vec()
    }

    /// Parses client-first; refuses other lengths, versions, invalid and small-order keys.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyAuthError> {
        if bytes.len() != CLIENT_FIRST_BYTES {
            return Err(KeyAuthError::Malformed("client-first"));
        }
        let mut r = Reader::new(bytes);
        let version = r
            .u8("version")
            .map_err(|_| KeyAuthError::Malformed("client-first"))?;
        if version != VERSION {
            return Err(KeyAuthError::UnsupportedVersion(version));
        }
        let key = r
            .array::<32>("key")
            .map_err(|_| KeyAuthError::Malformed("client-first"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| KeyAuthError::BadKey)?;
        if key.is_weak() {
            return Err(KeyAuthError::BadKey);
        }
        Ok(Self { key })
    }
}

/// server-challenge: `VERSION || nonce (32) || binding type (1) || bytes16(domain)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Fresh random bytes, used once.
    pub nonce: [u8; NONCE_BYTES],
    /// The channel binding the server will check.
    pub binding: BindingType,
    /// The server's XMPP domain (UTF-8, 1 to [`MAX_DOMAIN_BYTES`] bytes).
    pub domain: String,
}

impl Challenge {
    /// The bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION)
            .raw(&self.nonce)
            .u8(self.binding.code())
            .bytes16(self.domain.as_bytes());
        w.into_vec()
    }

    /// Parses a challenge (at most [`MAX_CHALLENGE_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyAuthError> {
        const WHAT: KeyAuthError = KeyAuthError::Malformed("challenge");
        if bytes.len() > MAX_CHALLENGE_BYTES {
            return Err(WHAT);
        }
        let mut r = Reader::new(bytes);
        let version = r.u8("version").map_err(|_| WHAT)?;
        if version != VERSION {
            return Err(KeyAuthError::UnsupportedVersion(version));
        }
        let nonce = r.array::<NONCE_BYTES>("nonce").map_err(|_| WHAT)?;
        let binding = BindingType::from_code(r.u8("binding").map_err(|_| WHAT)?)?;
        let domain = r
            .bytes16("domain", MAX_DOMAIN_BYTES)
            .map_err(|_| WHAT)?
            .to_vec();
        r.finish().map_err(|_| WHAT)?;
        let domain = String::from_utf8(domain).map_err(|_| WHAT)?;
        if domain.is_empty() {
            return Err(WHAT);
        }
        Ok(Self {
            nonce,
            binding,
            domain,
        })
    }
}

/// The signed message after the external-signature prefix:
/// `bytes16(domain) || bytes16(nonce) || bytes16(key) || bytes16(binding name) ||
/// bytes16(binding data)`.
fn transcript(
    domain: &str,
    nonce: &[u8; NONCE_BYTES],
    key: &VerifyingKey,
    binding: &ChannelBinding,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes16(domain.as_bytes())
        .bytes16(nonce)
        .bytes16(key.as_bytes())
        .bytes16(binding.kind().name().as_bytes())
        .bytes16(binding.data());
    w.into_vec()
}

/// Exactly the bytes the ed25519 signature of client-final covers:
/// `bytes16("cryptocat/v1/external") || bytes16(CONTEXT) || transcript`.
pub fn signed_bytes(
    domain: &str,
    nonce: &[u8; NONCE_BYTES],
    key: &VerifyingKey,
    binding: &ChannelBinding,
) -> Vec<u8> {
    external_signed_bytes(CONTEXT, &transcript(domain, nonce, key, binding))
}

/// The client's answer (client-final, 64 bytes) to `challenge`. Refuses a challenge for
/// another domain than `expected_domain` (the one the client connected to) and a binding
/// type that does not match what this connection has (`binding`: the exporter when the
/// client's connection is TLS, else none). A server that says `none` while the client has
/// TLS is answered without binding (a TLS-terminating proxy, see the specification).
pub fn respond(
    identity: &Identity,
    expected_domain: &str,
    challenge: &Challenge,
    binding: &ChannelBinding,
) -> Result<[u8; CLIENT_FINAL_BYTES], KeyAuthError> {
    if challenge.domain != expected_domain {
        return Err(KeyAuthError::WrongDomain);
    }
    let binding = match (challenge.binding, binding) {
        (BindingType::None, _) => ChannelBinding::None,
        (BindingType::TlsExporter, b @ ChannelBinding::TlsExporter(_)) => *b,
        (BindingType::TlsExporter, ChannelBinding::None) => {
            return Err(KeyAuthError::ChannelBindingUnavailable)
        }
    };
    let message = transcript(
        &challenge.domain,
        &challenge.nonce,
        &identity.verifying_key(),
        &binding,
    );
    Ok(identity.sign_with_label(CONTEXT, &message).to_bytes())
}

/// The server's check of client-final: the signature over the server's own domain, the
/// nonce it sent, the key of client-first and the server's own view of the channel
/// binding. Returns the localpart to bind. `verify_strict` (no small-order keys, canonical
/// `S`): a signature verifies for exactly one key.
pub fn verify(
    domain: &str,
    nonce: &[u8; NONCE_BYTES],
    first: &ClientFirst,
    binding: &ChannelBinding,
    client_final: &[u8],
) -> Result<String, KeyAuthError> {
    let sig: [u8; CLIENT_FINAL_BYTES] = client_final
        .try_into()
        .map_err(|_| KeyAuthError::Malformed("client-final"))?;
    let sig = Signature::from_bytes(&sig);
    let msg = signed_bytes(domain, nonce, &first.key, binding);
    first
        .key
        .verify_strict(&msg, &sig)
        .map_err(|_| KeyAuthError::BadSignature)?;
    Ok(localpart(&first.key))
}

/// Exactly the bytes the signature of a room key proof covers:
/// `bytes16("cryptocat/v1/external") || bytes16(ROOM_CONTEXT) || transcript`, the
/// transcript with the room's bare JID for the domain and no channel binding.
pub fn room_signed_bytes(room: &str, nonce: &[u8; NONCE_BYTES], key: &VerifyingKey) -> Vec<u8> {
    external_signed_bytes(
        ROOM_CONTEXT,
        &transcript(room, nonce, key, &ChannelBinding::None),
    )
}

/// The joiner's proof (64 bytes) for a room's `challenge`: refuses a challenge for another
/// room than `expected_room` (the bare JID it joins) and one asking for a channel binding
/// (a room is never the TLS endpoint of its occupants' streams).
pub fn room_respond(
    identity: &Identity,
    expected_room: &str,
    challenge: &Challenge,
) -> Result<[u8; CLIENT_FINAL_BYTES], KeyAuthError> {
    if challenge.domain != expected_room {
        return Err(KeyAuthError::WrongDomain);
    }
    if challenge.binding != BindingType::None {
        return Err(KeyAuthError::ChannelBindingUnavailable);
    }
    let message = transcript(
        expected_room,
        &challenge.nonce,
        &identity.verifying_key(),
        &ChannelBinding::None,
    );
    Ok(identity.sign_with_label(ROOM_CONTEXT, &message).to_bytes())
}

/// The room's check of a proof: the signature over its own JID, the nonce it sent and the
/// key the joiner claimed, with `verify_strict`.
pub fn room_verify(
    room: &str,
    nonce: &[u8; NONCE_BYTES],
    first: &ClientFirst,
    proof: &[u8],
) -> Result<(), KeyAuthError> {
    let sig: [u8; CLIENT_FINAL_BYTES] = proof
        .try_into()
        .map_err(|_| KeyAuthError::Malformed("room proof"))?;
    let sig = Signature::from_bytes(&sig);
    first
        .key
        .verify_strict(&room_signed_bytes(room, nonce, &first.key), &sig)
        .map_err(|_| KeyAuthError::BadSignature)
}

/// The JID localpart bound to `key`: the first 25 bytes of
/// `SHA-256(u64(len(label)) || label || u64(32) || key)` with label
/// `cryptocat/v1/xmpp-localpart`, in lowercase RFC 4648 base32 without padding
/// ([`LOCALPART_CHARS`] characters, `a-z2-7`).
pub fn localpart(key: &VerifyingKey) -> String {
    let h = kdf::hash(label::KEY_LOCALPART, &[key.as_bytes()]);
    base32_lower(h.get(..LOCALPART_BYTES).unwrap_or(&h))
}

/// Whether `name` has the shape of a key-derived localpart.
pub fn is_key_localpart(name: &str) -> bool {
    name.len() == LOCALPART_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let idx = ((acc >> bits) & 31) as usize;
            out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'a')));
        }
    }
    if bits > 0 {
        let idx = ((acc << (5 - bits)) & 31) as usize;
        out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'a')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceTag, Timestamp};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn identity(seed: u8) -> Identity {
        Identity::from_seed(&[seed; 32], InstanceTag(0x100), Timestamp(0))
    }

    fn challenge() -> Challenge {
        Challenge {
            nonce: [7; 32],
            binding: BindingType::TlsExporter,
            domain: "example.org".into(),
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        // RFC 4648 section 10, lowercased, padding removed.
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"foob"), "mzxw6yq");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn round_trip_and_verify() {
        let id = identity(1);
        let first = ClientFirst::decode(&ClientFirst::new(&id).encode()).unwrap();
        let ch = Challenge::decode(&challenge().encode()).unwrap();
        assert_eq!(ch, challenge());
        let cb = ChannelBinding::TlsExporter([9; 32]);
        let sig = respond(&id, "example.org", &ch, &cb).unwrap();
        let name = verify("example.org", &ch.nonce, &first, &cb, &sig).unwrap();
        assert_eq!(name, localpart(&id.verifying_key()));
        assert!(is_key_localpart(&name));
        assert_eq!(name.len(), LOCALPART_CHARS);
        // Random Cryptocat usernames (32 hex digits) are never in the reserved shape.
        assert!(!is_key_localpart(&"a2".repeat(16)));
        assert!(is_key_localpart(&"a2".repeat(20)));
        // Any other domain, nonce, binding, key or a flipped bit fails.
        assert_eq!(
            verify("example.net", &ch.nonce, &first, &cb, &sig),
            Err(KeyAuthError::BadSignature)
        );
        assert_eq!(
            verify("example.org", &[8; 32], &first, &cb, &sig),
            Err(KeyAuthError::BadSignature)
        );
        assert_eq!(
            verify(
                "example.org",
                &ch.nonce,
                &first,
                &ChannelBinding::None,
                &sig
            ),
            Err(KeyAuthError::BadSignature)
        );
        let other = ClientFirst::new(&identity(2));
        assert_eq!(
            verify("example.org", &ch.nonce, &other, &cb, &sig),
            Err(KeyAuthError::BadSignature)
        );
        let mut bad = sig;
        bad[10] ^= 1;
        assert_eq!(
            verify("example.org", &ch.nonce, &first, &cb, &bad),
            Err(KeyAuthError::BadSignature)
        );
        assert_eq!(
            verify("example.org", &ch.nonce, &first, &cb, &sig[1..]),
            Err(KeyAuthError::Malformed("client-final"))
        );
    }

    #[test]
    fn client_checks_domain_and_binding() {
        let id = identity(1);
        let cb = ChannelBinding::TlsExporter([9; 32]);
        assert_eq!(
            respond(&id, "example.net", &challenge(), &cb),
            Err(KeyAuthError::WrongDomain)
        );
        assert_eq!(
            respond(&id, "example.org", &challenge(), &ChannelBinding::None),
            Err(KeyAuthError::ChannelBindingUnavailable)
        );
    }

    #[test]
    fn decoders_refuse_bad_input() {
        let id = identity(1);
        let mut first = ClientFirst::new(&id).encode();
        assert!(ClientFirst::decode(&first[..32]).is_err());
        first[0] = 2;
        assert_eq!(
            ClientFirst::decode(&first),
            Err(KeyAuthError::UnsupportedVersion(2))
        );
        // The identity point (small order) is refused.
        let mut weak = vec![1u8; 33];
        weak[1..].copy_from_slice(&{
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        });
        assert_eq!(ClientFirst::decode(&weak), Err(KeyAuthError::BadKey));
        let ch = challenge().encode();
        assert!(Challenge::decode(&ch[..ch.len() - 1]).is_err());
        let mut long = ch.clone();
        long.push(0);
        assert!(Challenge::decode(&long).is_err());
        let mut cb = ch;
        cb[33] = 9;
        assert!(Challenge::decode(&cb).is_err());
        assert!(Challenge::decode(&vec![1u8; MAX_CHALLENGE_BYTES + 1]).is_err());
    }

    proptest::proptest! {
        /// Network bytes of any shape give an error or a message, never a panic, and a
        /// decoded challenge encodes back to the same bytes.
        #[test]
        fn decoders_take_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1200)) {
            let _ = ClientFirst::decode(&bytes);
            if let Ok(ch) = Challenge::decode(&bytes) {
                proptest::prop_assert_eq!(ch.encode(), bytes);
            }
        }
    }

    /// The published vector in `test-vectors/key-challenge.json`: regenerate with
    /// `cargo test -p cryptocat-protocol keyauth::tests::print_vector -- --ignored --nocapture`.
    fn vector() -> String {
        let seed = [0x42u8; 32];
        let id = Identity::from_seed(&seed, InstanceTag(0x100), Timestamp(0));
        let mut nonce = [0u8; 32];
        for (b, i) in nonce.iter_mut().zip(0u8..) {
            *b = i;
        }
        let exporter = [0xa5u8; 32];
        let ch = Challenge {
            nonce,
            binding: BindingType::TlsExporter,
            domain: "example.org".into(),
        };
        let cb = ChannelBinding::TlsExporter(exporter);
        let sig = respond(&id, "example.org", &ch, &cb).unwrap();
        let key = id.verifying_key();
        format!(
            "{{\n  \"source\": \"generated by crates/protocol/src/keyauth.rs (tests::vector)\",\n  \
             \"seed\": \"{}\",\n  \"public_key\": \"{}\",\n  \"domain\": \"example.org\",\n  \
             \"nonce\": \"{}\",\n  \"tls_exporter\": \"{}\",\n  \
             \"client_first_base64\": \"{}\",\n  \"challenge_base64\": \"{}\",\n  \
             \"signed_bytes\": \"{}\",\n  \"client_final_base64\": \"{}\",\n  \
             \"localpart\": \"{}\"\n}}\n",
            hex::encode(seed),
            hex::encode(key.as_bytes()),
            hex::encode(nonce),
            hex::encode(exporter),
            STANDARD.encode(ClientFirst { key }.encode()),
            STANDARD.encode(ch.encode()),
            hex::encode(signed_bytes("example.org", &nonce, &key, &cb)),
            STANDARD.encode(sig),
            localpart(&key),
        )
    }

    #[test]
    #[ignore = "prints the vector"]
    fn print_vector() {
        print!("{}", vector());
    }

    #[test]
    fn published_vector_matches() {
        let published = include_str!("../../../test-vectors/key-challenge.json");
        assert_eq!(published, vector());
    }

    #[test]
    fn room_proofs_verify_for_their_room_and_nonce_only() {
        use rand_core::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let id = Identity::generate(&mut rng, crate::Timestamp(1));
        let first = ClientFirst::new(&id);
        let room = "r@conference.example.org";
        let challenge = Challenge {
            nonce: [7; NONCE_BYTES],
            binding: BindingType::None,
            domain: room.to_owned(),
        };
        let proof = room_respond(&id, room, &challenge).unwrap();
        assert_eq!(room_verify(room, &[7; NONCE_BYTES], &first, &proof), Ok(()));
        let bad = |r: &str, nonce: [u8; NONCE_BYTES]| room_verify(r, &nonce, &first, &proof);
        assert_eq!(
            bad("s@conference.example.org", [7; NONCE_BYTES]),
            Err(KeyAuthError::BadSignature)
        );
        assert_eq!(bad(room, [8; NONCE_BYTES]), Err(KeyAuthError::BadSignature));
        // Another room's challenge, or one asking for a binding, is not answered.
        assert_eq!(
            room_respond(&id, "s@conference.example.org", &challenge),
            Err(KeyAuthError::WrongDomain)
        );
        let bound = Challenge {
            binding: BindingType::TlsExporter,
            ..challenge.clone()
        };
        assert_eq!(
            room_respond(&id, room, &bound),
            Err(KeyAuthError::ChannelBindingUnavailable)
        );
        // A login signature over the same values is not a room proof, nor the reverse.
        let login = respond(&id, room, &challenge, &ChannelBinding::None).unwrap();
        assert_eq!(
            room_verify(room, &[7; NONCE_BYTES], &first, &login),
            Err(KeyAuthError::BadSignature)
        );
        assert_eq!(
            verify(
                room,
                &[7; NONCE_BYTES],
                &first,
                &ChannelBinding::None,
                &proof
            ),
            Err(KeyAuthError::BadSignature)
        );
        assert_eq!(
            room_verify(room, &[7; NONCE_BYTES], &first, &proof[..63]),
            Err(KeyAuthError::Malformed("room proof"))
        );
    }
}
