//! The person's settings: held in memory for the session; kept across sessions only in the
//! OS keyring, and only when they opted in to "remember my identity" ([`crate::secrets`]).
//! They are not written to disk, but for the language, which is no secret and is wanted
//! from the first window on ([`crate::prefs`] keeps it, with the join screen's remembered
//! server and nickname; the window's size and place are tauri-plugin-window-state's).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The language the app speaks: the UI (`ui/src/lib/i18n.ts`) and the Rust side's own
/// texts ([`crate::texts`]: tray, notifications).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// The first of the system's languages that has a catalogue, else English.
    #[default]
    System,
    /// English.
    En,
    /// French.
    Fr,
    /// Arabic (written right to left).
    Ar,
}

impl Language {
    /// Every choice, "follow the system" first.
    pub const ALL: [Self; 4] = [Self::System, Self::En, Self::Fr, Self::Ar];

    /// The catalogue's language code (`ui/src/locales/CODE.json`); `None` for the system's.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::System => None,
            Self::En => Some("en"),
            Self::Fr => Some("fr"),
            Self::Ar => Some("ar"),
        }
    }
}

/// What the settings panel changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Settings {
    /// Notifications show the sender and the text (by default only "New message in ROOM").
    pub show_content: bool,
    /// No notifications at all.
    pub mute: bool,
    /// Closing the window keeps the app running in the tray (else closing quits).
    pub keep_in_tray: bool,
    /// Keep the identity key and the verified fingerprints in the OS keyring.
    pub remember_identity: bool,
    /// The language of the UI, the tray and notifications (settings kept in a keyring
    /// before there was a choice have none: "follow the system").
    #[serde(default)]
    pub language: Language,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            show_content: false,
            mute: false,
            keep_in_tray: true,
            remember_identity: false,
            language: Language::System,
        }
    }
}

/// The settings and the unread count, shared by commands, notifications and the tray.
#[derive(Debug)]
pub struct SettingsState {
    inner: Mutex<Inner>,
    /// Turns true once the settings kept in the keyring were read at start (or found
    /// missing, or the keyring did not answer): a join or the settings panel waits for it,
    /// so that a quick first join still uses the remembered identity.
    restored: tokio::sync::watch::Sender<bool>,
}

impl Default for SettingsState {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            restored: tokio::sync::watch::Sender::new(false),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    settings: Settings,
    unread: u32,
}

impl SettingsState {
    /// The current settings.
    pub fn get(&self) -> Settings {
        self.inner.lock().map(|i| i.settings).unwrap_or_default()
    }

    /// Replaces the settings.
    pub fn set(&self, settings: Settings) {
        if let Ok(mut i) = self.inner.lock() {
            i.settings = settings;
        }
    }

    /// Changes one setting through `f`, returning the result.
    pub fn update(&self, f: impl FnOnce(&mut Settings)) -> Settings {
        match self.inner.lock() {
            Ok(mut i) => {
                f(&mut i.settings);
                i.settings
            }
            Err(_) => Settings::default(),
        }
    }

    /// Counts one more unread message; returns the new count.
    pub fn add_unread(&self) -> u32 {
        match self.inner.lock() {
            Ok(mut i) => {
                i.unread = i.unread.saturating_add(1);
                i.unread
            }
            Err(_) => 0,
        }
    }

    /// Clears the unread count (the window got the focus).
    pub fn clear_unread(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.unread = 0;
        }
    }

    /// The start-up read of the keyring is over (whatever it found).
    pub fn mark_restored(&self) {
        self.restored.send_replace(true);
    }

    /// Waits until [`Self::mark_restored`], at most `limit` (a keyring that never answers
    /// must not hold a join forever; the settings then stay as they are).
    pub async fn wait_restored(&self, limit: std::time::Duration) {
        let mut rx = self.restored.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|done| *done)).await;
    }

    /// Unread messages since the window last had the focus.
    pub fn unread(&self) -> u32 {
        self.inner.lock().map(|i| i.unread).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn waiting_for_the_restore_ends_when_marked_or_at_the_limit() {
        let state = SettingsState::default();
        let start = std::time::Instant::now();
        state
            .wait_restored(std::time::Duration::from_millis(50))
            .await;
        assert!(start.elapsed() >= std::time::Duration::from_millis(50));
        state.mark_restored();
        let start = std::time::Instant::now();
        state
            .wait_restored(std::time::Duration::from_secs(30))
            .await;
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn defaults_hide_content_and_keep_nothing() {
        let s = Settings::default();
        assert!(!s.show_content && !s.mute && !s.remember_identity && s.keep_in_tray);
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"show_content": false, "mute": false, "keep_in_tray": true, "remember_identity": false, "language": "system"})
        );
    }

    #[test]
    fn the_language_reads_as_its_code_and_older_settings_follow_the_system() {
        let ar: Settings = serde_json::from_value(serde_json::json!({
            "show_content": false, "mute": false, "keep_in_tray": true,
            "remember_identity": true, "language": "ar"
        }))
        .unwrap();
        assert_eq!(ar.language, Language::Ar);
        // As a keyring kept them before the language was a setting.
        let older: Settings = serde_json::from_value(serde_json::json!({
            "show_content": true, "mute": false, "keep_in_tray": true, "remember_identity": true
        }))
        .unwrap();
        assert_eq!(older.language, Language::System);
        assert!(older.show_content);
        // In JSON, each choice is its catalogue's code ("system" for the system's).
        for l in Language::ALL {
            let json = serde_json::to_value(l).unwrap();
            assert_eq!(json.as_str(), Some(l.code().unwrap_or("system")));
            assert_eq!(serde_json::from_value::<Language>(json).unwrap(), l);
        }
        assert!(serde_json::from_value::<Language>(serde_json::json!("de")).is_err());
    }

    #[test]
    fn unread_counts_and_clears() {
        let st = SettingsState::default();
        assert_eq!(st.add_unread(), 1);
        assert_eq!(st.add_unread(), 2);
        st.clear_unread();
        assert_eq!(st.unread(), 0);
        let s = st.update(|s| s.mute = true);
        assert!(s.mute && st.get().mute);
    }
}
