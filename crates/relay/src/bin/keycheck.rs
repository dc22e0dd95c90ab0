//! `cryptocat-keycheck`: the `X-CRYPTOCAT-KEY` signature check for servers whose own
//! language has no Ed25519 (Prosody 0.12's Lua; see `deploy/prosody/mod_cryptocat_key.lua`).
//! All cryptography stays in `cryptocat_protocol::keyauth`.
//!
//! ```text
//! cryptocat-keycheck verify DOMAIN NONCE_HEX EXPORTER_HEX|- CLIENT_FIRST_HEX CLIENT_FINAL_HEX
//! ```
//!
//! `EXPORTER_HEX` is the stream's RFC 9266 `tls-exporter` value (32 bytes), `-` when the
//! challenge said binding `none`. Prints `ok LOCALPART` and exits 0 when the signature
//! verifies; prints `refused REASON` and exits 1 when it does not; exits 2 on bad usage.
//! Nothing secret passes through it (public key, nonce, signature).

use std::process::ExitCode;

use cryptocat_protocol::keyauth::{self, ChannelBinding, ClientFirst, NONCE_BYTES};

#[allow(clippy::print_stdout)] // the answer is the program's output
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(localpart) => {
            println!("ok {localpart}");
            ExitCode::SUCCESS
        }
        Err(Outcome::Refused(reason)) => {
            println!("refused {reason}");
            ExitCode::from(1)
        }
        Err(Outcome::Usage(what)) => {
            eprintln!(
                "cryptocat-keycheck: {what}\nusage: cryptocat-keycheck verify DOMAIN NONCE_HEX \
                 EXPORTER_HEX|- CLIENT_FIRST_HEX CLIENT_FINAL_HEX"
            );
            ExitCode::from(2)
        }
    }
}

enum Outcome {
    Refused(String),
    Usage(&'static str),
}

fn hex_arg<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], Outcome> {
    let bytes = hex::decode(text).map_err(|_| Outcome::Usage(what))?;
    bytes.try_into().map_err(|_| Outcome::Usage(what))
}

fn run(args: &[String]) -> Result<String, Outcome> {
    let [cmd, domain, nonce, exporter, first, last] = args else {
        return Err(Outcome::Usage("expected 6 arguments"));
    };
    if cmd != "verify" {
        return Err(Outcome::Usage("unknown command"));
    }
    if domain.is_empty() || domain.len() > keyauth::MAX_DOMAIN_BYTES {
        return Err(Outcome::Usage("bad domain"));
    }
    let nonce: [u8; NONCE_BYTES] = hex_arg(nonce, "nonce must be 32 bytes of hex")?;
    let binding = if exporter == "-" {
        ChannelBinding::None
    } else {
        ChannelBinding::TlsExporter(hex_arg(exporter, "exporter must be 32 bytes of hex")?)
    };
    // Client messages come from the network: bounded before decoding.
    if first.len() > 2 * keyauth::CLIENT_FIRST_BYTES || last.len() > 2 * keyauth::CLIENT_FINAL_BYTES
    {
        return Err(Outcome::Refused("malformed".into()));
    }
    let first = hex::decode(first).map_err(|_| Outcome::Refused("malformed".into()))?;
    let last = hex::decode(last).map_err(|_| Outcome::Refused("malformed".into()))?;
    let first = ClientFirst::decode(&first).map_err(|e| Outcome::Refused(e.to_string()))?;
    keyauth::verify(domain, &nonce, &first, &binding, &last)
        .map_err(|e| Outcome::Refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    /// The published vector (`test-vectors/key-challenge.json`) through the helper's
    /// argument format.
    #[test]
    fn published_vector_verifies_and_a_flipped_bit_does_not() {
        let v = include_str!("../../../../test-vectors/key-challenge.json");
        let field = |name: &str| {
            let start = v.find(&format!("\"{name}\": \"")).unwrap() + name.len() + 5;
            v[start..].split('"').next().unwrap().to_owned()
        };
        let first = hex::encode(STANDARD.decode(field("client_first_base64")).unwrap());
        let mut last = STANDARD.decode(field("client_final_base64")).unwrap();
        let args = |last: &[u8]| {
            vec![
                "verify".to_owned(),
                field("domain"),
                field("nonce"),
                field("tls_exporter"),
                first.clone(),
                hex::encode(last),
            ]
        };
        assert_eq!(run(&args(&last)).ok(), Some(field("localpart")));
        last[0] ^= 1;
        assert!(matches!(run(&args(&last)), Err(Outcome::Refused(_))));
        let mut none = args(&last);
        none[3] = "-".into();
        assert!(matches!(run(&none), Err(Outcome::Refused(_))));
        assert!(matches!(run(&none[..4]), Err(Outcome::Usage(_))));
    }
}
