//! The app's OS-facing behaviour, tied together: what happens on engine events
//! (notifications, the unread indicator, keeping verified fingerprints), what a join takes
//! from the keyring, and the settings commands.

use cryptocat_client::{EngineConfig, EngineEvent, EngineHandle};
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::Timestamp;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};

use crate::dto::CommandError;
use crate::notify::{self, NewMessage, OpenChat, OPEN_CHAT_EVENT};
use crate::secrets::{self, Keyring, SecretsError};
use crate::settings::{Settings, SettingsState};
use crate::state::AppState;
use crate::tray;

impl From<SecretsError> for CommandError {
    fn from(e: SecretsError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

/// Runs a keyring call off the async runtime (the Secret Service client blocks).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce(Keyring) -> Result<T, SecretsError> + Send + 'static,
) -> Result<T, SecretsError> {
    tauri::async_runtime::spawn_blocking(move || f(Keyring::default()))
        .await
        .unwrap_or(Err(SecretsError::Failed))
}

/// Before a join: when the person chose "remember my identity", the kept identity (made
/// and kept now if there is none yet) and the verified fingerprints go into `config`.
pub async fn prepare_join(
    settings: &SettingsState,
    config: &mut EngineConfig,
) -> Result<(), CommandError> {
    settings.wait_restored(RESTORE_WAIT).await;
    if !settings.get().remember_identity {
        return Ok(());
    }
    let (identity, verified) = blocking(|k| {
        let identity = match k.load_identity(now())? {
            Some(identity) => identity,
            None => {
                let identity = Identity::generate(&mut rand_core::OsRng, now());
                k.save_identity(&identity)?;
                identity
            }
        };
        Ok((identity, k.load_verified()?))
    })
    .await?;
    config.identity = Some(identity);
    config.verified = verified;
    Ok(())
}

/// After each engine event of `room`: notifications and the unread indicator for new
/// messages while the window is unfocused; the kept verified list on verification changes.
pub fn on_engine_event<R: Runtime>(app: &AppHandle<R>, room: &str, event: &EngineEvent) {
    match event {
        EngineEvent::Message {
            nick,
            text,
            private,
            ..
        } => new_message(app, room, nick, text, *private),
        EngineEvent::Verification { nick, verified, .. }
            if app.state::<SettingsState>().get().remember_identity =>
        {
            let (app, room, nick, verified) =
                (app.clone(), room.to_owned(), nick.clone(), *verified);
            tauri::async_runtime::spawn(async move {
                let handle = app
                    .state::<AppState>()
                    .rooms
                    .lock()
                    .await
                    .get(&room)
                    .cloned();
                if let Some(handle) = handle {
                    keep_verification(handle, nick, verified).await;
                }
            });
        }
        _ => {}
    }
}

async fn keep_verification(handle: EngineHandle, nick: String, verified: bool) {
    let Ok(members) = handle.members().await else {
        return;
    };
    let Some(fingerprint) = members
        .iter()
        .find(|m| m.nick == nick)
        .map(|m| m.fingerprint_bytes)
    else {
        return;
    };
    let saved = blocking(move |k| {
        let list = secrets::apply_verification(k.load_verified()?, &nick, fingerprint, verified);
        k.save_verified(&list)
    })
    .await;
    if let Err(e) = saved {
        tracing::warn!("could not keep a verification in the keyring: {}", e.code());
    }
}

fn new_message<R: Runtime>(app: &AppHandle<R>, room: &str, nick: &str, text: &str, private: bool) {
    if tray::main_window_focused(app) {
        return;
    }
    let state = app.state::<SettingsState>();
    state.add_unread();
    tray::set_unread(app, true);
    let settings = state.get();
    if settings.mute {
        return;
    }
    let body = notify::notification_for(
        &NewMessage {
            room,
            sender: nick,
            text,
            private,
        },
        &settings,
    );
    let open = OpenChat {
        room: room.to_owned(),
        nick: private.then(|| nick.to_owned()),
    };
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let clicked = app.clone();
        let shown = notify::show(&body, move || {
            tray::show_main_window(&clicked);
            if clicked.emit(OPEN_CHAT_EVENT, open).is_err() {
                tracing::warn!("could not ask the window to open a chat");
            }
        });
        if shown.is_err() {
            tracing::warn!("no notification service answered");
        }
    });
}

/// At start: the settings kept in the keyring, if the person had asked for that. Nothing
/// happens when no keyring answers.
pub fn restore_settings<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let kept = blocking(|k| k.load_settings()).await;
        let state = app.state::<SettingsState>();
        if let Ok(Some(kept)) = kept {
            // The language is the one kept on disk (read at start, [`restore_language`]).
            let language = state.get().language;
            state.set(Settings {
                remember_identity: true,
                language,
                ..kept
            });
            tray::sync_mute(&app, &state.get());
        }
        state.mark_restored();
    });
}

/// At start, before the tray is made: the language chosen in an earlier run
/// ([`crate::prefs`] keeps it), so that the tray and the first notification speak it.
pub fn restore_language<R: Runtime>(app: &AppHandle<R>) {
    let language = app.state::<crate::prefs::Prefs>().load_language();
    app.state::<SettingsState>()
        .update(|s| s.language = language);
}

/// The global the UI reads its first language from (`ui/src/lib/i18n.ts`).
pub const LANGUAGE_GLOBAL: &str = "__CRYPTOCAT_LANGUAGE__";

/// The script that hands the UI the chosen language before its own scripts run, so that the
/// first window is drawn in it (the settings themselves come later: `get_settings` waits for
/// the keyring). Only a language code, never anything the person typed.
pub fn language_script(language: crate::settings::Language) -> String {
    let code = serde_json::to_string(&language).unwrap_or_else(|_| "\"system\"".to_owned());
    format!("window.{LANGUAGE_GLOBAL} = {code};")
}

/// Makes the main window from its configuration (`tauri.conf.json`, `create: false`), with
/// [`language_script`] for the language restored by [`restore_language`].
pub fn create_main_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let language = app.state::<SettingsState>().get().language;
    let Some(config) = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == tray::MAIN_WINDOW)
        .cloned()
    else {
        return Ok(());
    };
    tauri::WebviewWindowBuilder::from_config(app, &config)?
        .initialization_script(language_script(language))
        .build()?;
    Ok(())
}

/// How long a join or the settings panel waits for the start-up read of the keyring.
const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The current settings, once the start-up read of the keyring is over (or after
/// [`RESTORE_WAIT`]).
#[tauri::command]
pub async fn get_settings(settings: State<'_, SettingsState>) -> Result<Settings, CommandError> {
    settings.wait_restored(RESTORE_WAIT).await;
    Ok(settings.get())
}

/// Changes the settings. Turning "remember my identity" on makes an identity and keeps it
/// (used from the next join), with the settings; turning it off deletes what was kept.
/// Fails with a `keyring_*` code (and the setting stays off) when no keyring answers.
#[tauri::command]
pub async fn set_settings<R: Runtime>(
    app: AppHandle<R>,
    settings: State<'_, SettingsState>,
    next: Settings,
) -> Result<Settings, CommandError> {
    let old = settings.get();
    if next.remember_identity {
        let first = !old.remember_identity;
        blocking(move |k| {
            if first && k.load_identity(now())?.is_none() {
                k.save_identity(&Identity::generate(&mut rand_core::OsRng, now()))?;
            }
            k.save_settings(&next)
        })
        .await?;
    } else if old.remember_identity {
        blocking(|k| k.forget()).await?;
    }
    if next.language != old.language {
        // Applied for this run whatever happens; kept for the next one when it can be.
        if let Err(e) = app
            .state::<crate::prefs::Prefs>()
            .save_language(next.language)
        {
            tracing::warn!("the chosen language is not kept: {}", e.code);
        }
    }
    settings.set(next);
    tray::sync_mute(&app, &next);
    tray::sync_language(&app, &next);
    Ok(next)
}

/// Deletes what the keyring keeps (identity, verified fingerprints, settings) and turns
/// "remember my identity" off.
#[tauri::command]
pub async fn forget_remembered(
    settings: State<'_, SettingsState>,
) -> Result<Settings, CommandError> {
    blocking(|k| k.forget()).await?;
    Ok(settings.update(|s| s.remember_identity = false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Language;

    #[test]
    fn the_first_language_reaches_the_ui_as_a_code() {
        assert_eq!(
            language_script(Language::Ar),
            "window.__CRYPTOCAT_LANGUAGE__ = \"ar\";"
        );
        assert_eq!(
            language_script(Language::System),
            "window.__CRYPTOCAT_LANGUAGE__ = \"system\";"
        );
        // The UI reads the same global.
        let ui = include_str!("../../ui/src/lib/i18n.ts");
        assert!(ui.contains(LANGUAGE_GLOBAL));
        // The window is made here, not from the configuration.
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap_or_default();
        let main = conf["app"]["windows"]
            .as_array()
            .and_then(|w| w.iter().find(|w| w["label"] == crate::tray::MAIN_WINDOW))
            .cloned()
            .unwrap_or_default();
        assert_eq!(main["create"], false);
    }
}
