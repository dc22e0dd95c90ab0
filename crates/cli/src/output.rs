//! How events are printed: one JSON object per line (`--json`), or a readable transcript.

use cryptocat_client::{ConnectionState, EngineEvent, MemberView};
use serde_json::{json, Value};

/// Renders an engine event as the JSON line contract (see the README): the engine's own
/// serialization, which the desktop app's IPC carries too. `None` if an event cannot be
/// written (it always can).
pub fn event_json(event: &EngineEvent) -> Option<Value> {
    serde_json::to_value(event).ok()
}

/// Sets `key` on a JSON object (no-op on anything else).
pub fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(obj) = v.as_object_mut() {
        obj.insert(key.to_owned(), value);
    }
}

/// A member as JSON (for `/who` and `/fingerprint`).
pub fn member_json(m: &MemberView) -> Value {
    json!({
        "nick": m.nick,
        "fingerprint": m.fingerprint,
        "verified": m.verified,
        "safety_number": m.safety_number,
        "in_epoch": m.in_epoch,
    })
}

/// Makes text from the network safe for a terminal: control characters (escape
/// sequences), bidirectional overrides and other invisible formatting characters are
/// shown as `\u{..}` instead of acting on the terminal. Newlines are kept, indented.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n    "),
            '\t' => out.push(' '),
            c if c.is_control() || is_invisible_format(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

fn is_invisible_format(c: char) -> bool {
    matches!(u32::from(c),
        0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF | 0xFFF9..=0xFFFB)
}

/// A readable line for an event, or `None` to print nothing.
pub fn event_text(event: &EngineEvent, me: &str) -> Option<String> {
    let s = sanitize;
    Some(match event {
        EngineEvent::Connection(ConnectionState::Connected) => "* connected".into(),
        EngineEvent::Connection(ConnectionState::Connecting) => "* connecting...".into(),
        EngineEvent::Connection(ConnectionState::Reconnecting { attempt, delay }) => format!(
            "* connection lost; reconnecting (attempt {attempt}, in {:.1} s)",
            delay.as_secs_f32()
        ),
        EngineEvent::Connection(ConnectionState::Offline) => "* offline".into(),
        EngineEvent::Joined {
            room,
            nick,
            fingerprint,
        } => format!(
            "* joined {} as {}. Your fingerprint: {fingerprint}\n* type /help for commands",
            s(room),
            s(nick)
        ),
        EngineEvent::MemberJoined { member } => format!(
            "* {} joined, fingerprint {}{}",
            s(&member.nick),
            member.fingerprint,
            if member.verified { " (verified)" } else { "" }
        ),
        EngineEvent::MemberLeft { nick } => format!("* {} left", s(nick)),
        EngineEvent::Rekeyed { members, .. } => {
            format!("* room keys renewed for {members} member(s)")
        }
        EngineEvent::Sent { .. } | EngineEvent::PrivateSent { .. } => return None,
        EngineEvent::Message {
            nick,
            text,
            private,
            ..
        } => {
            if *private {
                format!("[private] <{}> {}", s(nick), s(text))
            } else {
                format!("<{}> {}", s(nick), s(text))
            }
        }
        EngineEvent::Confirmation { id, confirmed, of } if confirmed == of => {
            format!("* your message {id} reached all {of}")
        }
        EngineEvent::Question { nick, question } => match question {
            Some(q) => format!(
                "* {} asks you: {}  (reply with /answer {} ANSWER)",
                s(nick),
                s(q),
                s(nick)
            ),
            None => format!(
                "* {} wants to verify with a shared secret (reply with /answer {} SECRET)",
                s(nick),
                s(nick)
            ),
        },
        EngineEvent::Verification {
            nick,
            verified,
            manual,
        } => match (verified, manual) {
            (true, true) => format!("* {} marked verified", s(nick)),
            (false, true) => format!("* {} no longer marked verified", s(nick)),
            (true, false) => format!("* {} answered the secret question: verified", s(nick)),
            (false, false) => format!(
                "* verification with {} FAILED: the answers differ, or someone is in between",
                s(nick)
            ),
        },
        EngineEvent::Warning { code, message, .. } => {
            format!("! WARNING ({}): {}", code.as_str(), s(message))
        }
        EngineEvent::Error { message, .. } => format!("! error: {}", s(message)),
        EngineEvent::Left => format!("* {} left the room", s(me)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hostile_text_cannot_drive_the_terminal() {
        let out = sanitize("hi\u{1b}[2J\u{1b}]0;title\u{7}\u{202e}gpj.exe\r");
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'));
        assert!(out.contains("\\u{1b}[2J"));
        assert!(out.contains("\\u{202e}"));
        assert_eq!(sanitize("a\nb"), "a\n    b");
    }

    #[test]
    fn json_lines_follow_the_contract() {
        let v = event_json(&EngineEvent::Message {
            id: "ab-1-0".into(),
            nick: "bob".into(),
            text: "<script>x</script>".into(),
            private: false,
        })
        .unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["text"], "<script>x</script>");
        assert_eq!(v["private"], false);
        let line = v.to_string();
        assert!(!line.contains('\n'));
        let v = event_json(&EngineEvent::Confirmation {
            id: "x".into(),
            confirmed: 2,
            of: 2,
        })
        .unwrap();
        assert_eq!(
            (v["confirmed"].as_u64(), v["of"].as_u64()),
            (Some(2), Some(2))
        );
    }

    /// The lines keep the shapes scripts read (fields are only ever added).
    #[test]
    fn json_lines_keep_their_shapes() {
        let line = |e: EngineEvent| event_json(&e).unwrap();
        assert_eq!(
            line(EngineEvent::Connection(ConnectionState::Reconnecting {
                attempt: 2,
                delay: std::time::Duration::from_millis(1500),
            })),
            json!({"type": "connection", "state": "reconnecting", "attempt": 2, "delay_ms": 1500})
        );
        assert_eq!(
            line(EngineEvent::Connection(ConnectionState::Connected)),
            json!({"type": "connection", "state": "connected"})
        );
        let member = MemberView {
            nick: "bob".into(),
            fingerprint: "ab".repeat(20),
            fingerprint_bytes: [7; 32],
            verified: true,
            safety_number: "12345".into(),
            safety_qr: vec![1, 2],
            in_epoch: true,
        };
        let v = line(EngineEvent::MemberJoined { member });
        assert_eq!(
            (&v["type"], &v["nick"], &v["verified"]),
            (&json!("member_joined"), &json!("bob"), &json!(true))
        );
        assert_eq!(v["fingerprint"], "ab".repeat(20));
        assert!(v.get("fingerprint_bytes").is_none());
        let v = line(EngineEvent::Warning {
            code: cryptocat_client::WarningCode::Unconfirmed,
            message: "m".into(),
            id: Some("x".into()),
            who: vec!["carol".into()],
            count: None,
        });
        assert_eq!(
            v,
            json!({"type": "warning", "code": "unconfirmed", "message": "m", "id": "x", "who": ["carol"]})
        );
        let v = line(EngineEvent::Warning {
            code: cryptocat_client::WarningCode::KeyChanged,
            message: "m".into(),
            id: None,
            who: vec![],
            count: None,
        });
        assert!(v.get("id").is_none(), "{v}");
        assert_eq!(
            line(EngineEvent::Error {
                code: "offline",
                message: "m".into()
            }),
            json!({"type": "error", "code": "offline", "message": "m"})
        );
        assert_eq!(line(EngineEvent::Left), json!({"type": "left"}));
    }
}
