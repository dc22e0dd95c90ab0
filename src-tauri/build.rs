//! Generates the Tauri context and the permissions of the app's own commands (one
//! `allow-<command>` each; `capabilities/main.json` grants them to the main window only).

fn main() {
    let commands = &[
        "join",
        "send",
        "send_private",
        "ask",
        "answer",
        "mark_verified",
        "members",
        "leave",
        "retry_now",
        "my_fingerprint",
        "get_settings",
        "set_settings",
        "forget_remembered",
        "open_link",
        "invites",
        "renew_relay_key",
        "read_invite",
        "take_opened_link",
        "ui_ready",
        "quit",
        "set_unread_total",
        "get_remembered",
        "set_remembered",
    ];
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    if let Err(e) = tauri_build::try_build(attributes) {
        // A build script reports failure by exiting non-zero with a message.
        eprintln!("tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}
