//! Invite links opened from outside, and the one running app.
//!
//! The `cryptocat` URL scheme is declared in `tauri.conf.json` (`plugins.deep-link`; on
//! Linux the `.deb`'s desktop entry gets `MimeType=x-scheme-handler/cryptocat` and runs
//! `cryptocat-desktop LINK`). A link given at launch is read by the deep-link plugin from
//! the arguments; a second launch (a link clicked while the app runs) finds the first one
//! through the single-instance plugin (D-Bus on Linux), hands it its arguments, which the
//! deep-link plugin reads, and exits with status 0; the first window comes to the front.
//!
//! Either way the link is kept in [`AppState`] and the window is told (the
//! [`OPENED_LINK_EVENT`], no payload); it takes the link with [`take_opened_link`], read
//! in Rust into a view ([`InviteView`]). The link is never logged: it names a room.

use cryptocat_client::Invite;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use tauri_plugin_deep_link::DeepLinkExt as _;

use crate::dto::{CommandError, InviteView, OpenedLink, OPENED_LINK_EVENT};
use crate::state::AppState;

/// The single-instance plugin: a second launch hands over its arguments (read by the
/// deep-link plugin first, see the `deep-link` feature) and the first window comes to the
/// front. Register it before any other plugin.
pub fn single_instance<R: Runtime>() -> tauri::plugin::TauriPlugin<R> {
    tauri_plugin_single_instance::init(|app, _args, _cwd| {
        tracing::info!("a second launch handed over its arguments");
        crate::tray::show_main_window(app);
    })
}

/// At start: keeps a link given at launch, and listens for the links later launches hand
/// over.
pub fn setup<R: Runtime>(app: &AppHandle<R>) {
    let deep_link = app.deep_link();
    if let Ok(Some(urls)) = deep_link.get_current() {
        opened(app, urls.iter().map(url::Url::as_str));
    }
    let handle = app.clone();
    deep_link.on_open_url(move |event| {
        let urls = event.urls();
        opened(&handle, urls.iter().map(url::Url::as_str));
    });
}

/// Keeps the first invite-looking link of `urls` and tells the window.
fn opened<'a, R: Runtime>(app: &AppHandle<R>, mut urls: impl Iterator<Item = &'a str>) {
    let Some(link) = urls.find(|u| Invite::looks_like_link(u)) else {
        return;
    };
    app.state::<AppState>().set_opened(link.to_owned());
    if app.emit(OPENED_LINK_EVENT, ()).is_err() {
        tracing::warn!("could not tell the window about an opened link");
    }
}

/// Reads an invite link: what the join screen shows before joining through it
/// (`invalid_invite` with what is wrong).
#[tauri::command]
pub fn read_invite(link: String) -> Result<InviteView, CommandError> {
    Ok(InviteView::from(&Invite::parse(&link)?))
}

/// The invite link opened from outside (clicked, or given at launch) that the window has
/// not taken yet, read.
#[tauri::command]
pub fn take_opened_link(state: State<'_, AppState>) -> Option<OpenedLink> {
    state.take_opened().map(|link| opened_link(&link))
}

/// A link as the window takes it: read, or refused with the reason.
pub fn opened_link(link: &str) -> OpenedLink {
    match Invite::parse(link) {
        Ok(invite) => OpenedLink::Invite {
            invite: InviteView::from(&invite),
        },
        Err(e) => OpenedLink::Invalid { error: e.into() },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn opened_links_are_read_or_refused_with_the_reason() {
        let ok = opened_link(
            "cryptocat://join?v=1&server=wss://chat.example.org/xmpp-websocket&room=garden",
        );
        let OpenedLink::Invite { invite } = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(invite.room, "garden");
        assert_eq!(invite.hosts, ["chat.example.org"]);
        assert!(invite.pins.is_empty() && !invite.this_computer);
        let bad = opened_link("cryptocat://join?v=1&server=ws://chat.example.org&room=garden");
        let OpenedLink::Invalid { error } = bad else {
            panic!("{bad:?}")
        };
        assert_eq!(error.code, "invalid_invite");
        assert!(error.message.contains("no TLS"), "{}", error.message);
        assert_eq!(
            read_invite("https://example.org".into()).unwrap_err().code,
            "invalid_invite"
        );
    }
}
