//! The server side of the `X-CRYPTOCAT-KEY` SASL mechanism (`docs/key-challenge.md`).
//!
//! The cryptography (message formats, transcript, signature check, localpart) lives in
//! [`cryptocat_protocol::keyauth`]; this module keeps the exchange's state between
//! `<auth/>` and `<response/>`: the claimed key, the nonce sent and the channel binding of
//! this stream. The state is consumed by the first response, so each nonce is checked at
//! most once.

use cryptocat_protocol::keyauth::{
    self, BindingType, Challenge, ChannelBinding, ClientFirst, KeyAuthError, NONCE_BYTES,
};

use crate::stream::Entropy;

/// An exchange waiting for client-final. Not `Clone`: a nonce is used once.
pub struct AwaitingSignature {
    first: ClientFirst,
    nonce: [u8; NONCE_BYTES],
    binding: ChannelBinding,
}

impl std::fmt::Debug for AwaitingSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingSignature")
            .field("binding", &self.binding.kind())
            .finish_non_exhaustive()
    }
}

/// Handles client-first (the initial response of `<auth mechanism="X-CRYPTOCAT-KEY">`):
/// returns the state and the challenge bytes, with a fresh nonce drawn from `entropy`.
/// `binding` is this stream's own channel binding.
pub fn start(
    client_first: &[u8],
    domain: &str,
    binding: ChannelBinding,
    entropy: &mut dyn Entropy,
) -> Result<(AwaitingSignature, Vec<u8>), KeyAuthError> {
    let first = ClientFirst::decode(client_first)?;
    let mut nonce = [0u8; NONCE_BYTES];
    entropy.fill(&mut nonce);
    let challenge = Challenge {
        nonce,
        binding: binding.kind(),
        domain: domain.to_owned(),
    };
    Ok((
        AwaitingSignature {
            first,
            nonce,
            binding,
        },
        challenge.encode(),
    ))
}

impl AwaitingSignature {
    /// Checks client-final; returns the key-derived localpart to bind.
    pub fn finish(self, domain: &str, client_final: &[u8]) -> Result<String, KeyAuthError> {
        keyauth::verify(
            domain,
            &self.nonce,
            &self.first,
            &self.binding,
            client_final,
        )
    }

    /// The binding type this exchange checks.
    pub fn binding(&self) -> BindingType {
        self.binding.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptocat_protocol::identity::Identity;
    use cryptocat_protocol::Timestamp;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    #[test]
    fn signature_for_one_nonce_fails_for_the_next() {
        let id = Identity::generate(&mut ChaCha20Rng::seed_from_u64(1), Timestamp(0));
        let first = ClientFirst::new(&id).encode();
        let cb = ChannelBinding::TlsExporter([3; 32]);
        let mut entropy = Counter(0);
        let (state, challenge) = start(&first, "localhost", cb, &mut entropy).unwrap();
        let challenge = Challenge::decode(&challenge).unwrap();
        let sig = keyauth::respond(&id, "localhost", &challenge, &cb).unwrap();
        let name = state.finish("localhost", &sig).unwrap();
        assert_eq!(name, keyauth::localpart(&id.verifying_key()));
        let (state, _) = start(&first, "localhost", cb, &mut entropy).unwrap();
        assert_eq!(
            state.finish("localhost", &sig),
            Err(KeyAuthError::BadSignature)
        );
    }
}
