//! Checks behind the fuzz targets of what people paste (`cryptocat-link`: invite links,
//! pins, server addresses), shared with `crates/link/tests/fuzz_corpus.rs` (included there
//! with `#[path]`), so CI replays the corpora on stable Rust.

#![allow(dead_code)]

use cryptocat_link::invite::{MAX_LINK_BYTES, MAX_PINS, MAX_SERVERS};
use cryptocat_link::{Invite, Pin, ServerUrl};

/// A check: runs one input and panics if a property fails.
pub type Check = fn(&[u8]);

/// Every link target, by name.
pub const LINK_TARGETS: &[(&str, Check)] = &[("link_invite", link_invite)];

/// The input is text pasted as an invite link (or, after a first line `pin` / `url`, as a
/// pin or a server address). Anything accepted is within the limits, is written back to a
/// text that reads the same, and never repeats a value of the input in an error.
pub fn link_invite(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(pin) = text.strip_prefix("pin\n") {
        if let Ok(p) = pin.parse::<Pin>() {
            assert_eq!(p.to_string().parse::<Pin>(), Ok(p));
        }
        return;
    }
    if let Some(url) = text.strip_prefix("url\n") {
        if let Ok(u) = ServerUrl::parse(url) {
            assert_eq!(ServerUrl::parse(&u.to_string()), Ok(u));
        }
        return;
    }
    match Invite::parse(&text) {
        Ok(invite) => {
            assert!(!invite.access.servers.is_empty());
            assert!(invite.access.servers.len() <= MAX_SERVERS);
            assert!(invite.access.pins.len() <= MAX_PINS);
            let link = invite.to_link();
            assert!(link.len() <= MAX_LINK_BYTES, "{} bytes", link.len());
            assert_eq!(Invite::parse(&link), Ok(invite));
        }
        Err(e) => {
            // Errors name parameters (cut to 16 letters, digits, '-' or '_'), never values.
            let message = e.to_string();
            assert!(message.len() < 400, "{message}");
        }
    }
}

/// Seeds: what a working link looks like, and the near misses.
pub fn link_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let pin = "sha256/47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
    vec![
        (
            "link_invite",
            "local-network",
            format!("cryptocat://join?v=1&server=xmpp://192.168.1.20:5222&domain=localhost&pin={pin}&room=lobby").into_bytes(),
        ),
        (
            "link_invite",
            "public",
            format!("cryptocat://join?v=1&server=wss://chat.example.org:443/xmpp-websocket&server=https://chat.example.org/http-bind&server=xmpp://chat.example.org&muc=rooms.example.org&pin={pin}&pin={pin}&room=Caf%C3%A9").into_bytes(),
        ),
        (
            "link_invite",
            "this-computer",
            format!("cryptocat://join?v=1&server=xmpp://127.0.0.1:5222&domain=localhost&pin={pin}&room=a.b_c-d").into_bytes(),
        ),
        (
            "link_invite",
            "future-version",
            b"cryptocat://join?v=2&server=xmpp://a.example&room=x&extra=1".to_vec(),
        ),
        ("link_invite", "pin", format!("pin\n{pin}").into_bytes()),
        (
            "link_invite",
            "url",
            b"url\nhttps://[::1]:5281/http-bind/".to_vec(),
        ),
    ]
}
