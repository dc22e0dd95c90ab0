//! `cryptocat-desktop`: the Tauri 2 shell. The only crate that knows Tauri and JSON.
//!
//! The Rust side owns everything secret: one [`cryptocat_client::Engine`] per joined room
//! (keys, sessions, transport), and the embedded relay ([`cryptocat_relay::Server`],
//! in-process on loopback) when the person picks "this computer". The webview gets typed
//! commands ([`commands`]) and one typed event stream (the `engine` Tauri event carrying
//! [`dto::RoomEvent`]s); the types are in [`dto`] and their TypeScript twins are generated
//! into `ui/src/lib/bindings/`. No key crosses: only readable fingerprints, safety numbers
//! and QR payload bytes.

pub mod commands;
pub mod dto;
pub mod links;
pub mod notify;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod sys;
pub mod tray;

use std::process::ExitCode;

use tauri::Manager;

/// Runs the app until its last window closes.
pub fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let app = tauri::Builder::default()
        .manage(state::AppState::default())
        .manage(settings::SettingsState::default())
        .plugin(tauri_plugin_opener::init())
        .setup(|app| {
            if let Err(e) = tray::create(app.handle()) {
                tracing::warn!("no tray icon (closing the window will quit): {e}");
            }
            sys::restore_settings(app.handle());
            Ok(())
        })
        .on_window_event(tray::on_window_event)
        .invoke_handler(tauri::generate_handler![
            commands::join,
            commands::send,
            commands::send_private,
            commands::ask,
            commands::answer,
            commands::mark_verified,
            commands::members,
            commands::leave,
            commands::my_fingerprint,
            sys::get_settings,
            sys::set_settings,
            sys::forget_remembered,
            links::open_link,
            commands::local_server,
        ])
        .build(tauri::generate_context!("../tauri.conf.json"));
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

/// How long leaving the rooms may hold up quitting.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
