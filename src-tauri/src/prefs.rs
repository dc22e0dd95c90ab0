//! What the person chose to have remembered on this computer between runs: the last
//! server and nickname (the join screen's "Remember this server and my nickname", off
//! unless ticked). Kept as JSON in the app's config directory (`remembered.json`, `0600`
//! in a `0700` directory, replaced atomically); never a room name, an invite link (it
//! names a room), a message or a key. Beside it `language.json`, the language chosen in
//! the settings ([`Language`]; none while it is "follow the system"), so that the UI, the
//! tray and notifications speak it from the next start on. The window's size and position
//! are kept by tauri-plugin-window-state (see `lib.rs`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tauri::State;
use ts_rs::TS;

use crate::dto::{CommandError, ServerChoice};
use crate::settings::Language;

/// The file's name in the app's config directory.
pub const FILE: &str = "remembered.json";

/// The chosen language's file in the app's config directory.
pub const LANGUAGE_FILE: &str = "language.json";

/// What [`LANGUAGE_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct KeptLanguage {
    language: Language,
}

/// The longest server address or pin kept (a typed address is short; a file edited by
/// hand is not trusted to keep it so).
const MAX_FIELD: usize = 2048;
/// The largest file read back: what `save` writes is far smaller; anything larger is not
/// ours and is not read whole.
const MAX_FILE: u64 = 16 * 1024;

/// What is remembered for the next join screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Remembered {
    /// The nickname last joined with.
    pub nick: String,
    /// The server last joined (`this_computer` or an address; none after joining through
    /// an invite link, which is not kept).
    pub server: Option<ServerChoice>,
}

impl Remembered {
    /// The same, checked: a valid nickname, no invite link, bounded fields. `None` when it
    /// cannot be kept.
    fn checked(self) -> Option<Self> {
        let nick = cryptocat_client::check_nickname(&self.nick).ok()?;
        let server = match self.server {
            Some(ServerChoice::Invite { .. }) | None => None,
            Some(ServerChoice::Url { url, pin }) => {
                if url.len() > MAX_FIELD || pin.as_ref().is_some_and(|p| p.len() > MAX_FIELD) {
                    return None;
                }
                Some(ServerChoice::Url { url, pin })
            }
            Some(this @ ServerChoice::ThisComputer { .. }) => Some(this),
        };
        Some(Self { nick, server })
    }
}

/// Where the remembered choices live (Tauri's managed state).
#[derive(Debug, Default)]
pub struct Prefs {
    /// The file, set once at start; unset (no config directory): nothing is kept.
    path: OnceLock<PathBuf>,
}

impl Prefs {
    /// Keeps the file in `dir` (once; later calls change nothing).
    pub fn set_dir(&self, dir: &Path) {
        let _ = self.path.set(dir.join(FILE));
    }

    /// What was remembered; `None` when nothing was, or the file cannot be read or holds
    /// something this app would not have written.
    pub fn load(&self) -> Option<Remembered> {
        serde_json::from_slice::<Remembered>(&read_bounded(self.path.get()?)?)
            .ok()?
            .checked()
    }

    /// The language chosen in the settings; "follow the system" when none was kept (or the
    /// file is not one this app wrote).
    pub fn load_language(&self) -> Language {
        self.language_path()
            .and_then(|path| read_bounded(&path))
            .and_then(|bytes| serde_json::from_slice::<KeptLanguage>(&bytes).ok())
            .map_or(Language::System, |kept| kept.language)
    }

    /// Keeps the chosen language (nothing is kept for "follow the system").
    pub fn save_language(&self, language: Language) -> Result<(), CommandError> {
        let failed = || CommandError::new("prefs_failed", "the language could not be kept");
        let path = self.language_path().ok_or_else(failed)?;
        if language == Language::System {
            return cryptocat_relay::store::remove(&path).map_err(|_| failed());
        }
        let bytes = serde_json::to_vec(&KeptLanguage { language }).map_err(|_| failed())?;
        if let Some(dir) = path.parent() {
            cryptocat_relay::store::private_dir(dir).map_err(|_| failed())?;
        }
        cryptocat_relay::store::replace(&path, &bytes).map_err(|_| failed())
    }

    fn language_path(&self) -> Option<PathBuf> {
        Some(self.path.get()?.parent()?.join(LANGUAGE_FILE))
    }

    /// Remembers `what`, or forgets (`None`: the file is removed).
    pub fn save(&self, what: Option<Remembered>) -> Result<(), CommandError> {
        let failed = || CommandError::new("prefs_failed", "the choices could not be kept");
        let path = self.path.get().ok_or_else(failed)?;
        match what {
            None => cryptocat_relay::store::remove(path).map_err(|_| failed()),
            Some(what) => {
                let what = what.checked().ok_or_else(|| {
                    CommandError::new("invalid_nickname", "that nickname cannot be kept")
                })?;
                let bytes = serde_json::to_vec_pretty(&what).map_err(|_| failed())?;
                if let Some(dir) = path.parent() {
                    cryptocat_relay::store::private_dir(dir).map_err(|_| failed())?;
                }
                cryptocat_relay::store::replace(path, &bytes).map_err(|_| failed())
            }
        }
    }
}

/// The file at `path`, unless it is larger than any this app writes ([`MAX_FILE`]: such a
/// file is not ours and is not read whole).
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).ok()?, MAX_FILE + 1),
        &mut bytes,
    )
    .ok()?;
    (bytes.len() as u64 <= MAX_FILE).then_some(bytes)
}

/// What the join screen fills in: the remembered server and nickname, if any.
#[tauri::command]
pub fn get_remembered(prefs: State<'_, Prefs>) -> Option<Remembered> {
    prefs.load()
}

/// Remembers the server and nickname for the next start (the person ticked "Remember"),
/// or forgets them (`null`).
#[tauri::command]
pub fn set_remembered(
    prefs: State<'_, Prefs>,
    remembered: Option<Remembered>,
) -> Result<(), CommandError> {
    prefs.save(remembered)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cryptocat-prefs-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn remembers_the_server_and_nickname_and_forgets_them() {
        let dir = scratch("round");
        let prefs = Prefs::default();
        assert!(prefs.save(None).is_err(), "no directory yet: nothing kept");
        prefs.set_dir(&dir.join("config"));
        assert_eq!(prefs.load(), None);
        let what = Remembered {
            nick: "  alice ".into(),
            server: Some(ServerChoice::Url {
                url: "xmpp://example.org".into(),
                pin: Some(format!("sha256/{}", "A".repeat(43))),
            }),
        };
        prefs.save(Some(what.clone())).unwrap();
        let back = prefs.load().unwrap();
        assert_eq!(back.nick, "alice");
        assert_eq!(back.server, what.server);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join("config").join(FILE)), 0o600);
            assert_eq!(mode(&dir.join("config")), 0o700);
        }
        prefs.save(None).unwrap();
        assert_eq!(prefs.load(), None);
        prefs.save(None).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keeps_the_chosen_language_and_nothing_for_the_system() {
        let dir = scratch("language");
        let prefs = Prefs::default();
        assert!(
            prefs.save_language(Language::Ar).is_err(),
            "no directory yet"
        );
        prefs.set_dir(&dir);
        assert_eq!(prefs.load_language(), Language::System);
        prefs.save_language(Language::Ar).unwrap();
        assert_eq!(prefs.load_language(), Language::Ar);
        assert_eq!(
            std::fs::read_to_string(dir.join(LANGUAGE_FILE)).unwrap(),
            r#"{"language":"ar"}"#
        );
        prefs.save_language(Language::Fr).unwrap();
        assert_eq!(prefs.load_language(), Language::Fr);
        prefs.save_language(Language::System).unwrap();
        assert!(!dir.join(LANGUAGE_FILE).exists());
        assert_eq!(prefs.load_language(), Language::System);
        std::fs::write(dir.join(LANGUAGE_FILE), r#"{"language":"de"}"#).unwrap();
        assert_eq!(prefs.load_language(), Language::System);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An invite link names a room: only the nickname is kept. A bad nickname, a huge
    /// field or a file that is not ours is not used.
    #[test]
    fn keeps_no_invite_and_nothing_odd() {
        let dir = scratch("odd");
        let prefs = Prefs::default();
        prefs.set_dir(&dir);
        prefs
            .save(Some(Remembered {
                nick: "bob".into(),
                server: Some(ServerChoice::Invite {
                    link: "cryptocat://join?v=1&room=secret-room".into(),
                }),
            }))
            .unwrap();
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(!text.contains("secret-room"), "{text}");
        assert_eq!(
            prefs.load(),
            Some(Remembered {
                nick: "bob".into(),
                server: None
            })
        );
        let bad = prefs.save(Some(Remembered {
            nick: "\u{7}".into(),
            server: None,
        }));
        assert_eq!(bad.unwrap_err().code, "invalid_nickname");
        std::fs::write(
            dir.join(FILE),
            format!(
                r#"{{"nick":"eve","server":{{"kind":"url","url":"{}"}}}}"#,
                "x".repeat(5000)
            ),
        )
        .unwrap();
        assert_eq!(prefs.load(), None);
        std::fs::write(dir.join(FILE), b"not json").unwrap();
        assert_eq!(prefs.load(), None);
        // A file larger than any we write is not read whole, even when it parses.
        std::fs::write(
            dir.join(FILE),
            format!(r#"{{"nick":"bob","server":null{}}}"#, " ".repeat(20_000)),
        )
        .unwrap();
        assert_eq!(prefs.load(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
