//! SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, without channel binding.
//!
//! Accounts keep only [`Credentials`]: salt, iteration count, `StoredKey` and `ServerKey`.
//! The password itself is never stored. The proof is checked by comparing
//! `H(ClientProof xor ClientSignature)` with `StoredKey` in constant time. For an unknown
//! user the exchange runs to the end with a salt derived from a server secret, so the reply
//! to the first message does not reveal whether an account exists.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// PBKDF2 iteration count for new accounts (RFC 7677's minimum).
pub const ITERATIONS: u32 = 4096;

/// What an account keeps: enough to verify a SCRAM proof, not enough to log in.
#[derive(Clone)]
pub struct Credentials {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let mut out = [0u8; 32];
    if let Ok(mut mac) = HmacSha256::new_from_slice(key) {
        mac.update(data);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

impl Credentials {
    /// Derives credentials from a password (RFC 5802 section 3).
    pub fn derive(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, b"Server Key");
        Self {
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }
}

/// Why an exchange failed. All of them are answered with `<not-authorized/>` except
/// malformed messages, which get `<malformed-request/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message did not follow the RFC 5802 grammar.
    #[error("malformed SCRAM message")]
    Malformed,
    /// The client asked for something this server does not do (channel binding "p=",
    /// an authorization identity, mandatory extensions).
    #[error("unsupported SCRAM option")]
    Unsupported,
    /// Nonce or channel-binding data did not match.
    #[error("SCRAM exchange data mismatch")]
    Mismatch,
    /// The proof was wrong or the user unknown.
    #[error("not authorized")]
    NotAuthorized,
}

/// The server after sending server-first, waiting for client-final.
#[derive(Debug)]
pub struct AwaitingFinal {
    username: String,
    credentials: Option<Credentials>,
    fake_stored_key: [u8; 32],
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// Undoes the `saslname` escaping (`=2C` and `=3D`).
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('=') {
        out.push_str(rest.get(..pos).ok_or(ScramError::Malformed)?);
        let code = rest.get(pos..pos + 3).ok_or(ScramError::Malformed)?;
        match code {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err(ScramError::Malformed),
        }
        rest = rest.get(pos + 3..).ok_or(ScramError::Malformed)?;
    }
    out.push_str(rest);
    Ok(out)
}

/// Handles client-first. `lookup` maps the (raw) username to its stored credentials;
/// `normalize` is applied to the username first and may reject it. `secret` keys the fake
/// salt for unknown users; `server_nonce` must be fresh random printable text without ','.
pub fn server_first(
    client_first: &[u8],
    normalize: impl FnOnce(&str) -> Option<String>,
    lookup: impl FnOnce(&str) -> Option<Credentials>,
    secret: &[u8; 32],
    server_nonce: &str,
) -> Result<(AwaitingFinal, String), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
    let mut parts = text.splitn(3, ',');
    let cbind = parts.next().ok_or(ScramError::Malformed)?;
    let authzid = parts.next().ok_or(ScramError::Malformed)?;
    let bare = parts.next().ok_or(ScramError::Malformed)?;
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(ScramError::Unsupported),
        _ => return Err(ScramError::Malformed),
    }
    if !authzid.is_empty() {
        return Err(ScramError::Unsupported);
    }
    let gs2_header = format!("{cbind},{authzid},");
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(ScramError::Malformed)?;
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(ScramError::Malformed)?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ScramError::Malformed);
    }
    if fields.any(|f| f.starts_with("m=")) {
        return Err(ScramError::Unsupported);
    }
    let raw_user = decode_saslname(user)?;
    let username = normalize(&raw_user).unwrap_or_default();
    let credentials = if username.is_empty() {
        None
    } else {
        lookup(&username)
    };
    let (salt, iterations) = match &credentials {
        Some(c) => (c.salt.clone(), c.iterations),
        None => {
            let fake = hmac(secret, raw_user.as_bytes());
            (fake.get(..16).unwrap_or(&fake).to_vec(), ITERATIONS)
        }
    };
    let fake_stored_key = hmac(secret, b"fake stored key");
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(&salt));
    Ok((
        AwaitingFinal {
            username,
            credentials,
            fake_stored_key,
            gs2_header,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        },
        server_first,
    ))
}

impl AwaitingFinal {
    /// Handles client-final. On success returns the username and server-final
    /// (`v=...`), to be sent in `<success>`.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, String), ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof_b64) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let mut fields = without_proof.split(',');
        let cbind = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed)?;
        let cbind = STANDARD.decode(cbind).map_err(|_| ScramError::Malformed)?;
        if cbind != self.gs2_header.as_bytes() || nonce != self.nonce {
            return Err(ScramError::Mismatch);
        }
        let proof = STANDARD
            .decode(proof_b64)
            .map_err(|_| ScramError::Malformed)?;
        let proof: [u8; 32] = proof.try_into().map_err(|_| ScramError::Malformed)?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let (stored_key, server_key, known) = match &self.credentials {
            Some(c) => (c.stored_key, c.server_key, true),
            None => (self.fake_stored_key, self.fake_stored_key, false),
        };
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for ((k, p), s) in client_key.iter_mut().zip(proof).zip(signature) {
            *k = p ^ s;
        }
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        let ok = computed.ct_eq(&stored_key).unwrap_u8() == 1;
        if !ok || !known {
            return Err(ScramError::NotAuthorized);
        }
        let server_signature = hmac(&server_key, auth_message.as_bytes());
        Ok((
            self.username,
            format!("v={}", STANDARD.encode(server_signature)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3 test vector.
    #[test]
    fn rfc7677_vector() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = Credentials::derive("pencil", salt, 4096);
        let (state, first) = server_first(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| Some(u.to_owned()),
            |u| (u == "user").then(|| creds.clone()),
            &[7; 32],
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, last) = state
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(last, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn wrong_proof_unknown_user_and_bad_input_fail() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = Credentials::derive("pencil", salt, 4096);
        let nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let (state, _) = server_first(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| Some(u.to_owned()),
            |_| Some(creds.clone()),
            &[7; 32],
            nonce,
        )
        .unwrap();
        let bad = state.finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=");
        assert_eq!(bad.unwrap_err(), ScramError::NotAuthorized);

        let (state, first) = server_first(
            b"n,,n=nobody,r=abc",
            |u| Some(u.to_owned()),
            |_| None,
            &[7; 32],
            nonce,
        )
        .unwrap();
        assert!(first.contains(",i=4096"));
        let r = state
            .finish(format!("c=biws,r=abc{nonce},p={}", STANDARD.encode([0u8; 32])).as_bytes());
        assert_eq!(r.unwrap_err(), ScramError::NotAuthorized);

        for bad in [
            &b"p=tls-unique,,n=u,r=x"[..],
            b"n,a=admin,n=u,r=x",
            b"n,,n=u,r=x,m=ext",
        ] {
            assert_eq!(
                server_first(bad, |u| Some(u.into()), |_| None, &[0; 32], "n").unwrap_err(),
                ScramError::Unsupported
            );
        }
        assert_eq!(
            server_first(b"garbage", |u| Some(u.into()), |_| None, &[0; 32], "n").unwrap_err(),
            ScramError::Malformed
        );
        assert_eq!(decode_saslname("a=2Cb=3D").unwrap(), "a,b=");
        assert!(decode_saslname("a=2").is_err());
    }
}
