//! The room key proof, joiner side (`docs/key-challenge.md` section 10): where the room
//! service offers `urn:xmpp:cryptocat:room-key:1`, a join carries our identity key
//! (`<key>`, base64 client-first), the room answers with a challenge (a presence error
//! carrying `<challenge>`), and we join again with `<key>` and `<proof>`, the signature of
//! `cryptocat_protocol::keyauth::room_respond` over the room's JID and its nonce. The
//! cryptography is in `cryptocat_protocol::keyauth`; this module only builds and reads the
//! elements.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::keyauth::{self, Challenge, ClientFirst, MAX_CHALLENGE_BYTES};
use minidom::Element;

/// The namespace of the elements and the room service's disco feature.
pub const NS_ROOM_KEY: &str = "urn:xmpp:cryptocat:room-key:1";

/// Challenges answered per join attempt before it counts as failed (a room that keeps
/// challenging does not get signatures without end).
pub const MAX_PROOFS_PER_JOIN: u8 = 2;

/// The `<key>` element of a join by `identity`.
pub fn key_element(identity: &Identity) -> String {
    format!(
        "<key xmlns='{NS_ROOM_KEY}'>{}</key>",
        STANDARD.encode(ClientFirst::new(identity).encode())
    )
}

/// The `<proof>` element answering the `<challenge>` child of `presence` for the room
/// `room_jid` (bare); `None` when there is none or it is not one we answer (malformed,
/// another room's, asking for a channel binding).
pub fn proof_element(identity: &Identity, room_jid: &str, presence: &Element) -> Option<String> {
    let text = presence.get_child("challenge", NS_ROOM_KEY)?.text();
    let text = text.trim();
    if text.len() > MAX_CHALLENGE_BYTES.div_ceil(3) * 4 {
        return None;
    }
    let challenge = Challenge::decode(&STANDARD.decode(text).ok()?).ok()?;
    let proof = keyauth::room_respond(identity, room_jid, &challenge).ok()?;
    Some(format!(
        "<proof xmlns='{NS_ROOM_KEY}'>{}</proof>",
        STANDARD.encode(proof)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptocat_protocol::keyauth::BindingType;
    use rand_core::SeedableRng as _;

    #[test]
    fn answers_its_room_challenge_only() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let id = Identity::generate(&mut rng, cryptocat_protocol::Timestamp(1));
        let room = "r@conference.example.org";
        let presence = |domain: &str| -> Element {
            let ch = Challenge {
                nonce: [5; 32],
                binding: BindingType::None,
                domain: domain.to_owned(),
            };
            format!(
                "<presence xmlns='jabber:client' type='error'><challenge xmlns='{NS_ROOM_KEY}'>{}</challenge></presence>",
                STANDARD.encode(ch.encode())
            )
            .parse()
            .unwrap()
        };
        let proof = proof_element(&id, room, &presence(room)).unwrap();
        let sig = STANDARD
            .decode(proof.split('>').nth(1).unwrap().split('<').next().unwrap())
            .unwrap();
        assert!(keyauth::room_verify(room, &[5; 32], &ClientFirst::new(&id), &sig).is_ok());
        assert!(proof_element(&id, room, &presence("s@conference.example.org")).is_none());
        let plain: Element = "<presence xmlns='jabber:client' type='error'/>"
            .parse()
            .unwrap();
        assert!(proof_element(&id, room, &plain).is_none());
        assert!(key_element(&id).contains(NS_ROOM_KEY));
    }
}
