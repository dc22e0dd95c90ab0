//! `cryptocat-desktop`: the Tauri 2 shell. The only crate that knows Tauri and JSON.
//!
//! The Rust side owns everything secret: one [`cryptocat_client::Engine`] per joined room
//! (keys, sessions, transport), and the embedded relay ([`cryptocat_relay::embedded`],
//! in-process, its key kept in the app's data directory) when the person picks "this
//! computer". Invite links opened from outside arrive through [`deeplink`]. The webview gets typed
//! commands ([`commands`]) and one typed event stream (the `engine` Tauri event carrying
//! [`dto::RoomEvent`]s); the types are in [`dto`] and their TypeScript twins are generated
//! into `ui/src/lib/bindings/`. No key crosses: only readable fingerprints, safety numbers
//! and QR payload bytes.

#[macro_use]
mod command_list;
#[cfg(all(test, not(windows)))]
mod command_bindings;
pub mod commands;
pub mod deeplink;
pub mod dto;
pub mod links;
pub mod notify;
pub mod prefs;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod sys;
pub mod texts;
pub mod tray;
mod webkit;
#[cfg(windows)]
pub mod webview2;

use std::process::ExitCode;

use tauri::Manager;

/// The log target of the readiness lines ("join screen ready", "room joined", "blank page
/// loaded") that the desktop bench times (`RUST_LOG=cryptocat_desktop::ready=info`).
pub const READY_TARGET: &str = "cryptocat_desktop::ready";

/// The argument that starts the bench's peer instead of the app: one Tauri window showing
/// an empty page (`ui/public/blank.html`), no app state, no commands.
pub const BLANK_WINDOW_ARG: &str = "--blank-window";

/// The Tauri handler of the commands in `command_list.rs`.
macro_rules! app_handler {
    ($($module:ident :: $function:ident),* $(,)?) => {
        tauri::generate_handler![$($module::$function),*]
    };
}

/// Runs the app until its last window closes.
pub fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // One context (it embeds the UI): generating it twice would embed the assets twice.
    // Reads `src-tauri/tauri.conf.json` (a link to the root file): the paths in it resolve
    // from src-tauri/, as they do for the Tauri CLI that builds the bundles.
    let context = tauri::generate_context!();
    #[cfg(windows)]
    if let Err(e) = webview2::check() {
        tracing::error!("no Microsoft Edge WebView2 Runtime, so no window: {e}");
        webview2::tell_missing();
        return ExitCode::FAILURE;
    }
    if std::env::args_os().any(|a| a == BLANK_WINDOW_ARG) {
        return run_blank(context);
    }
    let app = tauri::Builder::default()
        // First: a second launch hands over its arguments and exits before anything else.
        .plugin(deeplink::single_instance())
        .plugin(tauri_plugin_deep_link::init())
        // Before the window state is read: files kept under the former identifier move.
        .plugin(state::legacy_identifier_plugin())
        // The main window's size, position and maximized state, kept in the app's config
        // directory at exit and restored at start (not its visibility: it always shows).
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(window_state_flags())
                .build(),
        )
        .manage(state::AppState::default())
        .manage(prefs::Prefs::default())
        .manage(settings::SettingsState::default())
        .setup(|app| {
            match app.path().app_config_dir() {
                Ok(dir) => app.state::<prefs::Prefs>().set_dir(&dir),
                Err(e) => tracing::warn!("no config directory (nothing will be remembered): {e}"),
            }
            sys::restore_language(app.handle());
            // The window, drawn in that language from the start.
            sys::create_main_window(app.handle())?;
            if let Err(e) = tray::create(app.handle()) {
                tracing::warn!("no tray icon (closing the window will quit): {e}");
            }
            sys::restore_settings(app.handle());
            // The local data directory: the same as app_data_dir on Linux and macOS; on
            // Windows %LOCALAPPDATA%, not the roaming profile, which a domain copies to its
            // servers (no private key of ours should travel with it).
            match app.path().app_local_data_dir() {
                Ok(dir) => app
                    .state::<state::AppState>()
                    .set_relay_dir(dir.join("relay")),
                Err(e) => tracing::warn!(
                    "no data directory (the built-in server's key will not be kept): {e}"
                ),
            }
            deeplink::setup(app.handle());
            if let Some(window) = app.get_webview_window("main") {
                webkit::tune(&window);
            }
            Ok(())
        })
        .on_window_event(tray::on_window_event)
        .invoke_handler(with_app_commands!(app_handler))
        .build(context);
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("the app failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            // Leave every room (members see us go, keys are deleted) before the process ends.
            let state = handle.state::<state::AppState>();
            tauri::async_runtime::block_on(state.leave_all(LEAVE_TIMEOUT));
        }
    });
    ExitCode::SUCCESS
}

/// The bench's peer: a plain Tauri window (default WebKit settings) on an empty page.
fn run_blank(mut context: tauri::Context) -> ExitCode {
    context.config_mut().app.windows.clear();
    let app = tauri::Builder::default()
        .on_page_load(|_, payload| {
            if payload.event() == tauri::webview::PageLoadEvent::Finished {
                tracing::info!(target: READY_TARGET, "blank page loaded");
            }
        })
        .setup(|app| {
            tauri::WebviewWindowBuilder::new(
                app,
                "blank",
                tauri::WebviewUrl::App("blank.html".into()),
            )
            .title("blank")
            .inner_size(960.0, 680.0)
            .build()?;
            Ok(())
        })
        .build(context);
    match app {
        Ok(app) => {
            app.run(|_, _| {});
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("the blank window failed to start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What tauri-plugin-window-state keeps of the main window.
pub fn window_state_flags() -> tauri_plugin_window_state::StateFlags {
    use tauri_plugin_window_state::StateFlags;
    StateFlags::SIZE | StateFlags::POSITION | StateFlags::MAXIMIZED
}

/// How long leaving the rooms may hold up quitting.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
