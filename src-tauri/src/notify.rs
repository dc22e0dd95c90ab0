//! Desktop notifications for new messages (notify-rust: D-Bus `org.freedesktop.Notifications`
//! on Linux, toast notifications on Windows, the system's own API on macOS).
//!
//! What a notification says is decided by [`notification_text`], a pure function: by
//! default only "New message in ROOM" (no sender, no text), so that a screen seen by others
//! leaks nothing; with [`crate::settings::Settings::show_content`] the sender and the text
//! (shortened; escaped where the notification service reads markup, [`TextFormat`]).
//!
//! A click on a notification (the XDG `default` action; on Windows a click on the toast)
//! is waited for on a thread of its own ([`show`] with an `on_click` callback); the app then
//! shows and focuses the window and emits [`OPEN_CHAT_EVENT`] so that the UI opens that
//! chat. On Windows a toast names its app by [`APP_USER_MODEL_ID`], which the installer
//! registers (`deploy/windows/cryptocat.nsi`).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The app name notifications carry.
pub const APP_NAME: &str = "Cryptocat";

/// The AppUserModelID Windows toasts carry: `tauri.conf.json`'s identifier, registered by
/// the installer under `HKCU\Software\Classes\AppUserModelId` with the name and icon
/// Windows shows. (Without it notify-rust would borrow PowerShell's.)
pub const APP_USER_MODEL_ID: &str = "cat.crypto.Cryptocat";

/// The longest text shown in a notification, in characters (the rest becomes "…").
pub const MAX_BODY_CHARS: usize = 160;

/// How long a notification stays up, in milliseconds.
pub const TIMEOUT_MS: u32 = 8_000;

/// The Tauri event asking the UI to open a chat, carrying an [`OpenChat`].
pub const OPEN_CHAT_EVENT: &str = "open_chat";

/// Which chat to open after a notification was clicked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OpenChat {
    /// The room (as `Joined::room`).
    pub room: String,
    /// For a private chat, the member's nickname; `null` for the group.
    pub nick: Option<String>,
}

/// A new message, as the notification policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Room name.
    pub room: &'a str,
    /// Sender nickname.
    pub sender: &'a str,
    /// The text.
    pub text: &'a str,
    /// A private message (else a group one).
    pub private: bool,
}

/// What a notification shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationText {
    /// The title line.
    pub summary: String,
    /// The body (may be empty).
    pub body: String,
    /// The label of the action that opens the chat (XDG services may show it).
    pub open: String,
}

/// How a notification service reads the text it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// As markup (the XDG notification spec's body markup: dunst, GNOME, KDE): `<`, `&`
    /// and quotes are escaped.
    Markup,
    /// As plain text (Windows toasts set it as an XML node's text; macOS): shown as is.
    Plain,
}

impl TextFormat {
    /// What this system's notification service reads.
    pub const NATIVE: Self = if cfg!(all(unix, not(target_os = "macos"))) {
        Self::Markup
    } else {
        Self::Plain
    };
}

/// The notification for a new message on this system, in its language: content hidden
/// unless `show_content`.
pub fn notification_text(msg: &NewMessage<'_>, show_content: bool) -> NotificationText {
    notification_text_for(
        crate::texts::Texts::system(),
        msg,
        show_content,
        TextFormat::NATIVE,
    )
}

/// The notification for a new message as the person's settings want it: in their chosen
/// language, content hidden unless they turned on "show content".
pub fn notification_for(
    msg: &NewMessage<'_>,
    settings: &crate::settings::Settings,
) -> NotificationText {
    notification_text_for(
        crate::texts::Texts::of(settings.language),
        msg,
        settings.show_content,
        TextFormat::NATIVE,
    )
}

/// [`notification_text`] in the language of `texts`.
pub fn notification_text_in(
    texts: &crate::texts::Texts,
    msg: &NewMessage<'_>,
    show_content: bool,
) -> NotificationText {
    notification_text_for(texts, msg, show_content, TextFormat::NATIVE)
}

/// [`notification_text`] for a service that reads `format`.
pub fn notification_text_as(
    msg: &NewMessage<'_>,
    show_content: bool,
    format: TextFormat,
) -> NotificationText {
    notification_text_for(crate::texts::Texts::system(), msg, show_content, format)
}

/// The notification in the language of `texts` for a service that reads `format`: content
/// hidden unless `show_content`; control characters become spaces.
fn notification_text_for(
    texts: &crate::texts::Texts,
    msg: &NewMessage<'_>,
    show_content: bool,
    format: TextFormat,
) -> NotificationText {
    let escape = |s: &str| match format {
        TextFormat::Markup => escape_markup(s),
        TextFormat::Plain => without_controls(s),
    };
    let room = escape(&shorten(msg.room, 64));
    let open = texts.get("native.notifyOpen", &[]);
    if !show_content {
        return NotificationText {
            summary: texts.get("native.notifyNew", &[("room", &room)]),
            body: String::new(),
            open,
        };
    }
    let sender = escape(&shorten(msg.sender, 64));
    let key = if msg.private {
        "native.notifyPrivate"
    } else {
        "native.notifyFrom"
    };
    let summary = texts.get(key, &[("sender", &sender), ("room", &room)]);
    NotificationText {
        summary,
        body: escape(&shorten(msg.text, MAX_BODY_CHARS)),
        open,
    }
}

/// Control characters (but line breaks) as spaces.
fn without_controls(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

/// Escapes the characters the notification spec's body markup gives meaning to.
fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with "…" when cut.
fn shorten(s: &str, max: usize) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Why a notification could not be shown (no user data in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the notification could not be shown (no notification service)")]
pub struct NotifyError;

/// Shows a notification and returns once the notification service took it; `on_click`
/// runs (on a thread of its own) if the person clicks it. Blocking: call it off the async
/// runtime.
pub fn show(
    text: &NotificationText,
    on_click: impl FnOnce() + Send + 'static,
) -> Result<(), NotifyError> {
    let mut n = notify_rust::Notification::new();
    n.appname(APP_NAME)
        .summary(&text.summary)
        .body(&text.body)
        .timeout(notify_rust::Timeout::Milliseconds(TIMEOUT_MS));
    // XDG: a click is the `default` action, which must be offered. Windows: a click on the
    // toast is its default response; an action there would add an "Open" button.
    #[cfg(not(windows))]
    n.action("default", &text.open);
    #[cfg(windows)]
    n.app_id(APP_USER_MODEL_ID);
    let handle = n.show().map_err(|_| NotifyError)?;
    wait_for_click(handle, on_click);
    Ok(())
}

/// Waits on a thread of its own for the `default` action (a click) or the close.
#[cfg(all(unix, not(target_os = "macos")))]
fn wait_for_click(
    handle: notify_rust::NotificationHandle,
    on_click: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            handle.wait_for_action(|action| {
                if action == "default" {
                    on_click();
                }
            });
        });
    if spawned.is_err() {
        tracing::warn!("could not wait for a notification click");
    }
}

/// Waits on a thread of its own for a click on the toast (its default response, which
/// notify-rust reports while the toast is up) or its dismissal.
#[cfg(windows)]
fn wait_for_click(
    handle: notify_rust::NotificationHandle,
    on_click: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let _ = handle.wait_for_response(|response: &notify_rust::NotificationResponse| {
                if response.is_default_action() {
                    on_click();
                }
            });
        });
    if spawned.is_err() {
        tracing::warn!("could not wait for a notification click");
    }
}

/// macOS: a click on a notification brings the app forward by itself.
#[cfg(target_os = "macos")]
fn wait_for_click<H>(_handle: H, on_click: impl FnOnce() + Send + 'static) {
    drop(on_click);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: NewMessage<'static> = NewMessage {
        room: "lobby",
        sender: "mallory",
        text: "the launch code is 1234",
        private: false,
    };

    /// The English texts, whatever the language of the machine running the tests.
    fn notification_text(msg: &NewMessage<'_>, show_content: bool) -> NotificationText {
        notification_text_in(&crate::texts::Texts::for_language("en"), msg, show_content)
    }

    #[test]
    fn notifications_follow_the_language_chosen_in_the_settings() {
        use crate::settings::{Language, Settings};
        let chosen = |language, show_content| {
            notification_for(
                &MSG,
                &Settings {
                    language,
                    show_content,
                    ..Settings::default()
                },
            )
        };
        let ar = chosen(Language::Ar, false);
        assert_eq!(ar.summary, "رسالة جديدة في lobby");
        assert_eq!((ar.body.as_str(), ar.open.as_str()), ("", "فتح"));
        let ar = chosen(Language::Ar, true);
        assert_eq!(ar.summary, "mallory في lobby");
        assert_eq!(ar.body, MSG.text);
        let fr = chosen(Language::Fr, false);
        assert_eq!(fr.summary, "Nouveau message dans lobby");
        assert_eq!(fr.open, "Ouvrir");
        let en = chosen(Language::En, false);
        assert_eq!(
            (en.summary.as_str(), en.open.as_str()),
            ("New message in lobby", "Open")
        );
        // "Follow the system": the language the environment gives.
        let system = chosen(Language::System, false);
        assert_eq!(
            system.summary,
            crate::texts::Texts::system().get("native.notifyNew", &[("room", "lobby")])
        );
    }

    #[test]
    fn in_french_too_and_still_escaped() {
        let fr = crate::texts::Texts::for_language("fr_FR.UTF-8");
        let t = notification_text_in(&fr, &MSG, false);
        assert_eq!(t.summary, "Nouveau message dans lobby");
        let t = notification_text_in(
            &fr,
            &NewMessage {
                sender: "<b>x</b>",
                private: true,
                ..MSG
            },
            true,
        );
        assert_eq!(t.summary, "&lt;b&gt;x&lt;/b&gt; (en privé) dans lobby");
    }

    #[test]
    fn content_is_hidden_by_default() {
        let t = notification_text(&MSG, false);
        assert_eq!(t.summary, "New message in lobby");
        assert_eq!(t.body, "");
        let private = notification_text(
            &NewMessage {
                private: true,
                ..MSG
            },
            false,
        );
        assert_eq!(private, t, "a private message says no more");
    }

    #[test]
    fn content_is_shown_when_asked() {
        let t = notification_text(&MSG, true);
        assert_eq!(t.summary, "mallory in lobby");
        assert_eq!(t.body, "the launch code is 1234");
        let p = notification_text(
            &NewMessage {
                private: true,
                ..MSG
            },
            true,
        );
        assert_eq!(p.summary, "mallory (private) in lobby");
    }

    #[test]
    fn markup_is_escaped_and_long_texts_cut() {
        let hostile = NewMessage {
            sender: "<b>x</b>",
            text: "<a href=\"file:///etc\">&click</a>\u{7}",
            ..MSG
        };
        let t = notification_text_as(&hostile, true, TextFormat::Markup);
        assert_eq!(t.summary, "&lt;b&gt;x&lt;/b&gt; in lobby");
        assert_eq!(
            t.body,
            "&lt;a href=&quot;file:///etc&quot;&gt;&amp;click&lt;/a&gt; "
        );
        let long = "é".repeat(500);
        let t = notification_text(&NewMessage { text: &long, ..MSG }, true);
        assert_eq!(t.body.chars().count(), MAX_BODY_CHARS + 1);
        assert!(t.body.ends_with('…'));
    }

    #[test]
    fn plain_text_services_get_the_text_as_typed_without_controls() {
        let hostile = NewMessage {
            sender: "<b>x</b>",
            text: "fish & chips <3\u{7}\nbye",
            ..MSG
        };
        let t = notification_text_as(&hostile, true, TextFormat::Plain);
        assert_eq!(t.summary, "<b>x</b> in lobby");
        assert_eq!(t.body, "fish & chips <3 \nbye");
        let hidden = notification_text_as(&hostile, false, TextFormat::Plain);
        assert_eq!(hidden.summary, "New message in lobby");
        assert_eq!(hidden.body, "");
    }

    #[test]
    fn the_toast_id_is_the_app_identifier_the_installer_registers() {
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap();
        assert_eq!(conf["identifier"], APP_USER_MODEL_ID);
        let nsi = include_str!("../../deploy/windows/cryptocat.nsi");
        assert!(
            nsi.contains(&format!("!define IDENTIFIER \"{APP_USER_MODEL_ID}\"")),
            "deploy/windows/cryptocat.nsi defines another IDENTIFIER"
        );
        assert!(
            nsi.contains(&format!(
                "!define LEGACY_IDENTIFIER \"{}\"",
                crate::state::LEGACY_IDENTIFIER
            )),
            "deploy/windows/cryptocat.nsi defines another LEGACY_IDENTIFIER"
        );
    }
}
