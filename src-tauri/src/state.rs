//! What the app holds: the engines of the joined rooms, the embedded relay, and an invite
//! link handed over from outside (a click on a `cryptocat://` link) until the window takes it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cryptocat_client::{Access, EngineHandle, Invite, Pin};
use cryptocat_relay::embedded::{self, Embedded};
use tokio::sync::Mutex;

use crate::dto::{InviteLink, RoomInvites, Way};

/// Shared by every command (Tauri's managed state).
#[derive(Default)]
pub struct AppState {
    /// Joined rooms by (lower-cased) room name.
    pub rooms: Mutex<HashMap<String, EngineHandle>>,
    /// The rooms joined on the embedded relay (through "this computer", or through a link
    /// that carries its key).
    pub local_rooms: Mutex<HashSet<String>>,
    /// The embedded relay, once started.
    relay: Mutex<Option<Embedded>>,
    /// Where the embedded relay keeps its TLS key and certificate (the app's data
    /// directory, `relay/`), set once at start; unset (tests): a temporary directory, so a
    /// new key at every start.
    relay_dir: OnceLock<PathBuf>,
    /// The last invite link opened from outside that the window has not taken yet.
    opened: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No room names: this may end up in a log.
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Why the embedded relay is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// It could not start (no port, no certificate).
    Failed,
    /// It runs with the other network setting and rooms use it: leave them first.
    InUse,
}

/// Why the embedded relay's key was not replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// Rooms use the relay: leave them first.
    InUse,
    /// The new key could not be made or kept.
    Failed,
}

impl AppState {
    /// Sets where the embedded relay keeps its key (once; later calls change nothing).
    pub fn set_relay_dir(&self, dir: PathBuf) {
        let _ = self.relay_dir.set(dir);
    }

    /// Leaves every joined room, each bounded by `timeout`.
    pub async fn leave_all(&self, timeout: std::time::Duration) {
        let rooms: Vec<EngineHandle> = self.rooms.lock().await.drain().map(|(_, h)| h).collect();
        for handle in rooms {
            if tokio::time::timeout(timeout, handle.leave()).await.is_err() {
                tracing::warn!("leaving a room timed out at exit");
            }
        }
    }

    /// Whether the embedded relay runs.
    pub async fn relay_started(&self) -> bool {
        self.relay.lock().await.is_some()
    }

    /// The embedded relay ([`cryptocat_relay::embedded`]), started on first use: on
    /// loopback, or on every interface with `local_network`; its key kept in the app's data
    /// directory. Asking for the other `local_network` setting restarts it when no room
    /// uses it. Returns how this computer reaches it (c2s with STARTTLS checked by its pin,
    /// then the loopback WebSocket).
    pub async fn local_relay(&self, local_network: bool) -> Result<Access, RelayError> {
        let mut relay = self.relay.lock().await;
        if relay
            .as_ref()
            .is_some_and(|r| r.local_network != local_network)
        {
            if !self.local_rooms.lock().await.is_empty() {
                return Err(RelayError::InUse);
            }
            *relay = None;
        }
        if relay.is_none() {
            let state_dir = match self.relay_dir.get() {
                Some(dir) => Some(private_dir(dir).map_err(|e| {
                    tracing::warn!("the built-in server's folder could not be made: {e}");
                    RelayError::Failed
                })?),
                None => None,
            };
            let options = embedded::Options {
                local_network,
                state_dir,
            };
            let started = embedded::start(&options).await.map_err(|e| {
                tracing::warn!("the embedded relay could not start: {e}");
                RelayError::Failed
            })?;
            *relay = Some(started);
        }
        Ok(relay.as_ref().ok_or(RelayError::Failed)?.this_computer())
    }

    /// The pin of the running embedded relay's key.
    pub async fn relay_pin(&self) -> Option<Pin> {
        self.relay.lock().await.as_ref().and_then(Embedded::pin)
    }

    /// Stops the embedded relay and makes it a new key: links made before stop working.
    /// Refused while a room uses it.
    pub async fn renew_relay_key(&self) -> Result<(), RenewError> {
        let mut relay = self.relay.lock().await;
        if !self.local_rooms.lock().await.is_empty() {
            return Err(RenewError::InUse);
        }
        *relay = None;
        // Without a kept key (no data directory), every start makes a new one already.
        let Some(dir) = self.relay_dir.get() else {
            return Ok(());
        };
        forget_relay_key(dir).map_err(|e| {
            tracing::warn!("the built-in server's key could not be replaced: {e}");
            RenewError::Failed
        })
    }

    /// The invite links to `room`: through the embedded relay for a room held there (this
    /// computer, and the local network when it listens there), through the server in use
    /// otherwise. `None` when we are not in that room.
    pub async fn invites(&self, room: &str) -> Option<RoomInvites> {
        let handle = self.rooms.lock().await.get(room).cloned()?;
        if self.local_rooms.lock().await.contains(room) {
            if let Some(relay) = self.relay.lock().await.as_ref() {
                let mut links = vec![invite_link(Way::ThisComputer, room, relay.this_computer())];
                if let Some(access) = relay.local_network_access() {
                    links.push(invite_link(Way::LocalNetwork, room, access));
                }
                return Some(RoomInvites {
                    links,
                    built_in: true,
                    local_network: relay.local_network,
                });
            }
        }
        let invite = handle.invite();
        Some(RoomInvites {
            links: vec![invite_link(Way::ServerInUse, &invite.room, invite.access)],
            built_in: false,
            local_network: false,
        })
    }

    /// Keeps an invite link opened from outside until the window takes it.
    pub fn set_opened(&self, link: String) {
        if let Ok(mut opened) = self.opened.lock() {
            *opened = Some(link);
        }
    }

    /// The invite link opened from outside, once.
    pub fn take_opened(&self) -> Option<String> {
        self.opened.lock().ok()?.take()
    }
}

fn invite_link(way: Way, room: &str, access: Access) -> InviteLink {
    let invite = Invite {
        room: room.to_owned(),
        access,
    };
    let link = invite.to_link();
    InviteLink {
        way,
        join_command: join_command(&link),
        hosts: crate::dto::hosts(&invite.access),
        pinned: !invite.access.pins.is_empty(),
        link,
    }
}

/// `cryptocat join "LINK" --nick NICK`: the command a terminal user runs (`NICK` is a
/// placeholder for their nickname). The link is quoted: it has `&` and `?` in it.
pub fn join_command(link: &str) -> String {
    format!("cryptocat join {} --nick NICK", shell_word(link))
}

/// `s` as one word for the terminal of whoever receives it: bare when it is plain; in
/// double quotes when nothing in it is special there, which bash, zsh, fish, PowerShell and
/// Windows' cmd.exe all read alike (cmd.exe knows no single quotes: `'a&b'` runs `b`); in
/// POSIX single quotes otherwise. Written links percent-encode `"`, `\`, and backquotes,
/// so they take double quotes unless a server's path has `$` or `!`.
fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
    {
        s.to_owned()
    } else if !s.chars().any(|c| "\"$`\\!".contains(c) || c.is_control()) {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Makes `dir` (and its parents) with the owner alone allowed in: 0700 on Unix. On
/// Windows the directory is under %LOCALAPPDATA%, whose inherited ACL lets in only the
/// user, SYSTEM and the administrators; the app sets none of its own (that would take
/// unsafe Win32 calls, which the workspace forbids).
fn private_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    Ok(dir.to_owned())
}

/// Makes the relay's next start use a new key (the one kept in `dir` is deleted).
fn forget_relay_key(dir: &Path) -> std::io::Result<()> {
    cryptocat_relay::embedded::forget_key(dir)
}

/// The app's identifier before the reverse-DNS one in `tauri.conf.json`
/// (`cat.crypto.Cryptocat`): the directories named after it may hold the built-in server's
/// key (data) and the remembered choices and window state (config).
pub const LEGACY_IDENTIFIER: &str = "invalid.cryptocat.desktop";

/// The files kept in the app's config directory that follow a new identifier: the join
/// screen's remembered server and nickname ([`crate::prefs`]) and the main window's size
/// and place (tauri-plugin-window-state).
pub const CONFIG_FILES: &[&str] = &[
    crate::prefs::FILE,
    tauri_plugin_window_state::DEFAULT_FILENAME,
];

/// The directory of the former identifier `legacy` beside `dir` (the same kind of
/// directory of the current identifier); `None` when `dir` is that one already.
fn legacy_sibling(dir: &Path, legacy: &str) -> Option<PathBuf> {
    if dir.file_name() == Some(std::ffi::OsStr::new(legacy)) {
        return None;
    }
    Some(dir.parent()?.join(legacy))
}

/// Renames `old` to `new` (making `new`'s parent, owner only) unless `old` is missing or
/// `new` exists. Returns whether it moved.
fn move_unless_present(old: &Path, new: &Path) -> bool {
    if !old.exists() || new.exists() {
        return false;
    }
    let Some(parent) = new.parent() else {
        return false;
    };
    // No path in the log: it names the person's home.
    match cryptocat_relay::store::private_dir(parent).and_then(|()| std::fs::rename(old, new)) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("a file stays under the former identifier: {}", e.kind());
            false
        }
    }
}

/// Moves the built-in server's key directory (`relay/`) from the data directory of the
/// app's former identifier (`legacy`, a sibling of `data_dir`) into `data_dir`, when the
/// identifier changed and `data_dir` has no `relay/` yet: the key, and so every invite link
/// sent for the built-in server, survives the change. Returns whether it moved.
pub fn migrate_relay_dir(data_dir: &Path, legacy: &str) -> bool {
    let Some(old) = legacy_sibling(data_dir, legacy) else {
        return false;
    };
    let old = old.join("relay");
    old.is_dir() && move_unless_present(&old, &data_dir.join("relay"))
}

/// Moves [`CONFIG_FILES`] from the config directory of the former identifier (`legacy`, a
/// sibling of `config_dir`) into `config_dir`, each unless `config_dir` has its own; the
/// former directory goes when nothing else is left in it. Returns the names moved.
pub fn migrate_config_files(config_dir: &Path, legacy: &str) -> Vec<&'static str> {
    let Some(old) = legacy_sibling(config_dir, legacy) else {
        return Vec::new();
    };
    let moved = CONFIG_FILES
        .iter()
        .copied()
        .filter(|name| {
            old.join(name).is_file() && move_unless_present(&old.join(name), &config_dir.join(name))
        })
        .collect();
    // Only when empty (anything else in it is not ours to delete).
    let _ = std::fs::remove_dir(&old);
    moved
}

/// A plugin that only brings what the former identifier's directories hold (see
/// [`migrate_relay_dir`], [`migrate_config_files`]) along at start. A plugin, registered
/// before tauri-plugin-window-state, because that one reads its file in its own set-up,
/// before the app's `setup` runs.
pub fn legacy_identifier_plugin<R: tauri::Runtime>() -> tauri::plugin::TauriPlugin<R> {
    use tauri::Manager as _;
    tauri::plugin::Builder::new("cryptocat-legacy-identifier")
        .setup(|app, _| {
            if let Ok(dir) = app.path().app_config_dir() {
                migrate_config_files(&dir, LEGACY_IDENTIFIER);
            }
            // The local data directory: see `lib.rs`.
            if let Ok(dir) = app.path().app_local_data_dir() {
                migrate_relay_dir(&dir, LEGACY_IDENTIFIER);
            }
            Ok(())
        })
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The identifier in `tauri.conf.json`, which the app's directories are named after.
    fn identifier() -> String {
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap();
        conf["identifier"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_identifier_is_reverse_dns_and_not_the_former_one() {
        assert_eq!(identifier(), "cat.crypto.Cryptocat");
        assert_ne!(identifier(), LEGACY_IDENTIFIER);
    }

    #[test]
    fn the_relay_key_follows_the_new_identifier_once() {
        let base = std::env::temp_dir().join(format!("cryptocat-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let old = base.join(LEGACY_IDENTIFIER).join("relay");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("localhost.key"), b"kept key").unwrap();
        // Same identifier: nothing to do.
        assert!(!migrate_relay_dir(
            &base.join(LEGACY_IDENTIFIER),
            LEGACY_IDENTIFIER
        ));
        // The identifier of tauri.conf.json: the key moves, once.
        let new = base.join(identifier());
        assert!(migrate_relay_dir(&new, LEGACY_IDENTIFIER));
        assert_eq!(
            std::fs::read(new.join("relay/localhost.key")).unwrap(),
            b"kept key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&new).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        assert!(!old.exists());
        assert!(!migrate_relay_dir(&new, LEGACY_IDENTIFIER));
        // A new directory with a key of its own keeps it.
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("localhost.key"), b"older key").unwrap();
        assert!(!migrate_relay_dir(&new, LEGACY_IDENTIFIER));
        assert_eq!(
            std::fs::read(new.join("relay/localhost.key")).unwrap(),
            b"kept key"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn remembered_choices_and_window_state_follow_the_new_identifier() {
        let base =
            std::env::temp_dir().join(format!("cryptocat-migrate-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let old = base.join(LEGACY_IDENTIFIER);
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("remembered.json"), b"{\"nick\":\"alice\"}").unwrap();
        std::fs::write(old.join(".window-state.json"), b"{}").unwrap();
        let new = base.join(identifier());
        // The new directory has a window state of its own already: that one stays.
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join(".window-state.json"), b"{\"main\":{}}").unwrap();
        assert_eq!(
            migrate_config_files(&new, LEGACY_IDENTIFIER),
            ["remembered.json"]
        );
        assert_eq!(
            std::fs::read(new.join("remembered.json")).unwrap(),
            b"{\"nick\":\"alice\"}"
        );
        assert_eq!(
            std::fs::read(new.join(".window-state.json")).unwrap(),
            b"{\"main\":{}}"
        );
        // Not empty (the window state stayed): the former directory stays too.
        assert!(old.join(".window-state.json").exists());
        std::fs::remove_file(old.join(".window-state.json")).unwrap();
        assert!(migrate_config_files(&new, LEGACY_IDENTIFIER).is_empty());
        assert!(!old.exists(), "the emptied former directory is gone");
        // Nothing under the former identifier: nothing moves, nothing fails.
        let fresh = base.join("elsewhere").join(identifier());
        assert!(migrate_config_files(&fresh, LEGACY_IDENTIFIER).is_empty());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn commands_are_shell_safe() {
        assert_eq!(
            join_command("cryptocat://join?v=1&server=xmpp://127.0.0.1:5222&room=lobby"),
            "cryptocat join \"cryptocat://join?v=1&server=xmpp://127.0.0.1:5222&room=lobby\" --nick NICK"
        );
        assert_eq!(shell_word("/tmp/a b/x.pem"), "\"/tmp/a b/x.pem\"");
        assert_eq!(shell_word("it's"), "\"it's\"");
        assert_eq!(shell_word("a$b"), "'a$b'");
        assert_eq!(shell_word("it's $5"), r"'it'\''s $5'");
        assert_eq!(shell_word("say \"hi\""), r#"'say "hi"'"#);
    }

    /// The relay starts on loopback; a second one (the defaults now taken by the first, or
    /// by anything else) falls back to free ports and has its own key.
    #[tokio::test]
    async fn relay_falls_back_to_free_ports() {
        let a = AppState::default();
        let b = AppState::default();
        let sa = a.local_relay(false).await.unwrap();
        let sb = b.local_relay(false).await.unwrap();
        assert_ne!(sa.servers, sb.servers);
        assert!(sa.servers.iter().all(|s| s.is_loopback()));
        assert_eq!(sa.pins.len(), 1);
        assert_ne!(sa.pins, sb.pins);
        assert_eq!(a.relay_pin().await.as_ref(), sa.pins.first());
    }

    /// Switching to the local network restarts an unused relay on every interface, and
    /// is refused while a room uses it; so is a new key.
    #[tokio::test]
    async fn local_network_switch_and_new_key() {
        let dir = std::env::temp_dir().join(format!("cryptocat-state-test-{}", std::process::id()));
        let state = AppState::default();
        state.set_relay_dir(dir.join("relay"));
        state.local_relay(false).await.unwrap();
        state.local_relay(true).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("relay"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        state.local_rooms.lock().await.insert("lobby".into());
        assert_eq!(
            state.local_relay(false).await.unwrap_err(),
            RelayError::InUse
        );
        assert!(state.local_relay(true).await.is_ok());
        assert_eq!(state.renew_relay_key().await, Err(RenewError::InUse));
        assert!(state.relay_started().await);
        state.local_rooms.lock().await.clear();
        let before = state.relay_pin().await.unwrap();
        state.renew_relay_key().await.unwrap();
        assert!(!state.relay_started().await);
        let after = state.local_relay(true).await.unwrap();
        assert!(!before.is_in(&after.pins), "a new key after renewing");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn opened_link_is_taken_once() {
        let state = AppState::default();
        assert_eq!(state.take_opened(), None);
        state.set_opened("cryptocat://join?v=1".into());
        state.set_opened("cryptocat://join?v=1&room=b".into());
        assert_eq!(
            state.take_opened().as_deref(),
            Some("cryptocat://join?v=1&room=b")
        );
        assert_eq!(state.take_opened(), None);
    }
}
