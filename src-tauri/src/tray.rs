//! The tray icon (Tauri's `tray-icon`: StatusNotifierItem through libayatana-appindicator
//! on Linux): the app icon, switched to a variant with a red dot while messages arrived
//! with the window unfocused ([`set_unread`]); a menu with Show, Mute notifications (a
//! check item mirroring [`Settings::mute`]) and Quit. Closing the window ([`close_action`])
//! hides it to the tray only while [`Settings::keep_in_tray`] is on, the icon exists and a
//! tray host shows it ([`tray_host_present`]: a StatusNotifierWatcher with a host on the
//! session bus); otherwise closing quits, after the window's confirmation while in a room
//! ([`CLOSE_REQUESTED_EVENT`], answered by the `quit` command).

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Emitter, Manager, Runtime, WindowEvent};

use crate::settings::{Settings, SettingsState};

/// The main window's label.
pub const MAIN_WINDOW: &str = "main";

const MENU_SHOW: &str = "show";
const MENU_MUTE: &str = "mute";
const MENU_QUIT: &str = "quit";

/// What the app keeps of its tray icon.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    show: MenuItem<R>,
    mute: CheckMenuItem<R>,
    quit: MenuItem<R>,
    normal: Image<'static>,
    unread: Image<'static>,
    /// Whether the unread variant is up (its tooltip says so, in any language).
    dot: std::sync::atomic::AtomicBool,
}

/// The tray's texts in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayTexts {
    /// The menu's Show entry.
    pub show: String,
    /// The menu's Mute notifications check entry.
    pub mute: String,
    /// The menu's Quit entry.
    pub quit: String,
    /// The tooltip.
    pub tooltip: String,
    /// The tooltip while messages arrived unseen.
    pub tooltip_unread: String,
}

/// The tray's texts in the language chosen in the settings.
pub fn tray_texts(language: crate::settings::Language) -> TrayTexts {
    let texts = crate::texts::Texts::of(language);
    TrayTexts {
        show: texts.get("native.trayShow", &[]),
        mute: texts.get("native.trayMute", &[]),
        quit: texts.get("native.trayQuit", &[]),
        tooltip: texts.get("native.trayTooltip", &[]),
        tooltip_unread: texts.get("native.trayTooltipUnread", &[]),
    }
}

impl<R: Runtime> std::fmt::Debug for Tray<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tray").finish_non_exhaustive()
    }
}

/// Makes the tray icon; `Err` when the desktop has no tray (the app then quits on close).
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let normal = tauri::include_image!("../icons/32x32.png");
    let unread = Image::new_owned(
        with_unread_dot(normal.rgba(), normal.width(), normal.height()),
        normal.width(),
        normal.height(),
    );
    let settings = app.state::<SettingsState>().get();
    let texts = tray_texts(settings.language);
    let show = MenuItem::with_id(app, MENU_SHOW, &texts.show, true, None::<&str>)?;
    let mute = CheckMenuItem::with_id(
        app,
        MENU_MUTE,
        &texts.mute,
        true,
        settings.mute,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, MENU_QUIT, &texts.quit, true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &mute, &quit])?;
    // The app's identifier (`tauri.conf.json`): the StatusNotifierItem's `Id` that a panel
    // remembers the item's place and visibility by.
    let icon = TrayIconBuilder::with_id(app.config().identifier.clone())
        .icon(normal.clone())
        .tooltip(&texts.tooltip)
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id.as_ref() {
            MENU_SHOW => show_main_window(app),
            MENU_MUTE => {
                let s = app.state::<SettingsState>().update(|s| s.mute = !s.mute);
                sync_mute(app, &s);
            }
            MENU_QUIT => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_main_window(tray.app_handle());
            }
        })
        .build(app)?;
    app.manage(Tray {
        icon,
        show,
        mute,
        quit,
        normal,
        unread,
        dot: std::sync::atomic::AtomicBool::new(false),
    });
    Ok(())
}

/// Shows, unminimizes and focuses the main window.
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Puts the mute check item in line with the settings.
pub fn sync_mute<R: Runtime>(app: &AppHandle<R>, settings: &Settings) {
    if let Some(tray) = app.try_state::<Tray<R>>() {
        let _ = tray.mute.set_checked(settings.mute);
    }
}

/// Puts the menu and the tooltip in the language chosen in `settings` (at once: the
/// settings panel changed it).
pub fn sync_language<R: Runtime>(app: &AppHandle<R>, settings: &Settings) {
    if let Some(tray) = app.try_state::<Tray<R>>() {
        let texts = tray_texts(settings.language);
        let _ = tray.show.set_text(&texts.show);
        let _ = tray.mute.set_text(&texts.mute);
        let _ = tray.quit.set_text(&texts.quit);
        let unread = tray.dot.load(std::sync::atomic::Ordering::Relaxed);
        let _ = tray.icon.set_tooltip(Some(if unread {
            texts.tooltip_unread
        } else {
            texts.tooltip
        }));
    }
}

/// Switches the tray icon to its unread variant (`true`) or back.
pub fn set_unread<R: Runtime>(app: &AppHandle<R>, unread: bool) {
    if let Some(tray) = app.try_state::<Tray<R>>() {
        let icon = if unread {
            tray.unread.clone()
        } else {
            tray.normal.clone()
        };
        let _ = tray.icon.set_icon(Some(icon));
        tray.dot.store(unread, std::sync::atomic::Ordering::Relaxed);
        let texts = tray_texts(app.state::<SettingsState>().get().language);
        let _ = tray.icon.set_tooltip(Some(if unread {
            texts.tooltip_unread
        } else {
            texts.tooltip
        }));
    }
}

/// The main window's title: the app's name, with the unread total of every room.
pub fn window_title(unread: u32) -> String {
    if unread == 0 {
        "Cryptocat".to_owned()
    } else {
        format!("Cryptocat ({unread})")
    }
}

/// Shows the unread total of every room (the window counts them) in the window's title.
#[tauri::command]
pub fn set_unread_total<R: Runtime>(app: AppHandle<R>, total: u32) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.set_title(&window_title(total));
    }
}

/// Whether the main window has the focus.
pub fn main_window_focused<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.get_webview_window(MAIN_WINDOW)
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false)
}

/// The Tauri event asking the window to confirm quitting (no payload): the window was
/// closed while in a room and there is no tray to hide to. The window answers with the
/// `quit` command, or stays.
pub const CLOSE_REQUESTED_EVENT: &str = "close_requested";

/// What closing the main window does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Hide the window; the app goes on in the tray.
    Hide,
    /// Ask the window to confirm quitting (we are in a room).
    Confirm,
    /// Let it close: the app quits.
    Quit,
}

/// What closing does: hide to the tray only when the person wants it and a tray shows our
/// icon (else nothing would bring the window back); otherwise quit, after a confirmation
/// while in a room.
pub fn close_action(keep_in_tray: bool, tray_shown: bool, in_room: bool) -> CloseAction {
    if keep_in_tray && tray_shown {
        CloseAction::Hide
    } else if in_room {
        CloseAction::Confirm
    } else {
        CloseAction::Quit
    }
}

/// The StatusNotifierWatcher's bus name, object path and interface.
#[cfg(target_os = "linux")]
const WATCHER: &str = "org.kde.StatusNotifierWatcher";
#[cfg(target_os = "linux")]
const WATCHER_PATH: &str = "/StatusNotifierWatcher";

/// Whether a tray host would show our icon now: on Linux, a StatusNotifierWatcher owns its
/// name on the session bus and says a host (a panel's tray) is registered with it (what
/// libayatana-appindicator registers with). An XEmbed-only tray is not asked about: closing
/// then quits rather than hide a window nothing may bring back. Other systems: always.
pub fn tray_host_present() -> bool {
    #[cfg(target_os = "linux")]
    {
        use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;
        let Ok(conn) = dbus::blocking::Connection::new_session() else {
            return false;
        };
        let proxy = conn.with_proxy(WATCHER, WATCHER_PATH, std::time::Duration::from_millis(500));
        proxy
            .get::<bool>(WATCHER, "IsStatusNotifierHostRegistered")
            .unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// The main window's events: focus clears the unread indicator; closing does what
/// [`close_action`] says.
pub fn on_window_event<R: Runtime>(window: &tauri::Window<R>, event: &WindowEvent) {
    let app = window.app_handle();
    match event {
        WindowEvent::Focused(true) => {
            app.state::<SettingsState>().clear_unread();
            set_unread(app, false);
        }
        WindowEvent::CloseRequested { api, .. } => {
            let keep = app.state::<SettingsState>().get().keep_in_tray;
            let tray_shown = app.try_state::<Tray<R>>().is_some() && keep && tray_host_present();
            let in_room = app
                .state::<crate::state::AppState>()
                .rooms
                .try_lock()
                .map(|rooms| !rooms.is_empty())
                .unwrap_or(true);
            match close_action(keep, tray_shown, in_room) {
                CloseAction::Hide => {
                    api.prevent_close();
                    let _ = window.hide();
                }
                CloseAction::Confirm => {
                    api.prevent_close();
                    let _ = app.emit(CLOSE_REQUESTED_EVENT, ());
                }
                CloseAction::Quit => {}
            }
        }
        _ => {}
    }
}

/// Quits the app (the window confirmed it after [`CLOSE_REQUESTED_EVENT`]): every room is
/// left on the way out.
#[tauri::command]
pub fn quit<R: Runtime>(app: AppHandle<R>) {
    app.exit(0);
}

/// The icon's RGBA pixels with a red dot in the top-right quarter (the unread variant).
pub fn with_unread_dot(rgba: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = rgba.to_vec();
    let (w, h) = (i64::from(width), i64::from(height));
    let r = (w.min(h) / 4).max(2);
    let (cx, cy) = (w - r - 1, r + 1);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x - cx, y - cy);
            if dx * dx + dy * dy <= r * r {
                let i = usize::try_from((y * w + x) * 4).unwrap_or(usize::MAX);
                if let Some(px) = out.get_mut(i..i.saturating_add(4)) {
                    px.copy_from_slice(&[0xE0, 0x24, 0x24, 0xFF]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tray_speaks_the_language_chosen_in_the_settings() {
        use crate::settings::Language;
        let ar = tray_texts(Language::Ar);
        assert_eq!(
            (ar.show.as_str(), ar.mute.as_str(), ar.quit.as_str()),
            ("إظهار Cryptocat", "كتم الإشعارات", "إنهاء")
        );
        assert_eq!(ar.tooltip_unread, "Cryptocat: رسائل جديدة");
        let fr = tray_texts(Language::Fr);
        assert_eq!(
            (fr.show.as_str(), fr.quit.as_str()),
            ("Afficher Cryptocat", "Quitter")
        );
        let en = tray_texts(Language::En);
        assert_eq!(en.quit, "Quit");
        assert_ne!(en, ar);
        assert_eq!(
            tray_texts(Language::System).show,
            crate::texts::Texts::system().get("native.trayShow", &[])
        );
    }

    #[test]
    fn the_title_counts_unread_messages() {
        assert_eq!(window_title(0), "Cryptocat");
        assert_eq!(window_title(3), "Cryptocat (3)");
    }

    #[test]
    fn closing_hides_only_to_a_tray_that_shows_and_asks_while_in_a_room() {
        use CloseAction::*;
        assert_eq!(close_action(true, true, true), Hide);
        assert_eq!(close_action(true, true, false), Hide);
        // No tray host: nothing would bring the window back.
        assert_eq!(close_action(true, false, true), Confirm);
        assert_eq!(close_action(true, false, false), Quit);
        assert_eq!(close_action(false, true, true), Confirm);
        assert_eq!(close_action(false, true, false), Quit);
    }

    #[test]
    fn unread_variant_has_a_red_dot_and_keeps_the_rest() {
        let base = vec![0x10u8; 32 * 32 * 4];
        let dotted = with_unread_dot(&base, 32, 32);
        assert_eq!(dotted.len(), base.len());
        // The dot's centre (top right) is red; the bottom-left corner is unchanged.
        let at = |x: usize, y: usize| &dotted[(y * 32 + x) * 4..(y * 32 + x) * 4 + 4];
        assert_eq!(at(32 - 8 - 1, 9), &[0xE0, 0x24, 0x24, 0xFF]);
        assert_eq!(at(0, 31), &[0x10; 4]);
        // Wrong sizes never panic.
        assert_eq!(with_unread_dot(&[1, 2, 3], 32, 32), vec![1, 2, 3]);
    }
}
