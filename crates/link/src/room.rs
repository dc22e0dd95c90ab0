//! Room names as people type them and links carry them.

/// Longest room name, in bytes (Cryptocat 2 allowed 1 to 32 characters; we allow a bit more).
pub const MAX_ROOM_BYTES: usize = 64;

/// Checks a room name: 1 to [`MAX_ROOM_BYTES`] bytes of letters, digits, `-`, `_` and `.`
/// (no spaces, no `@`, `/` or other characters that mean something in an XMPP address),
/// neither starting nor ending with `.`. Returns it lower-cased, or `None`.
pub fn room_name(room: &str) -> Option<String> {
    // Checked after lower-casing, which can lengthen some letters.
    let room = room.to_lowercase();
    let ok = !room.is_empty()
        && room.len() <= MAX_ROOM_BYTES
        && room
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !room.starts_with('.')
        && !room.ends_with('.');
    ok.then_some(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert_eq!(room_name("Lobby").unwrap(), "lobby");
        assert_eq!(room_name("a-b_c.d").unwrap(), "a-b_c.d");
        assert_eq!(room_name("Café").unwrap(), "café");
        for bad in [
            "",
            "a b",
            "a@b",
            "a/b",
            ".a",
            "a.",
            "a\u{0}b",
            "a&b",
            &"x".repeat(65),
        ] {
            assert!(room_name(bad).is_none(), "{bad:?}");
        }
    }
}
