// The one list of the app's commands: what the window may call, as `module::function`.
//
// Everything else is made from it: `lib.rs` registers these functions with Tauri
// (`generate_handler!`), `build.rs` (which includes this file) declares one `allow-<command>`
// permission each, and the `command_bindings` test writes the TypeScript functions
// (`ui/src/lib/bindings/commands.ts`, from each function's signature and doc comment) and the
// main window's capability (`capabilities/main.json`, which grants exactly these), and fails
// when either file is stale. Adding a command is adding a line here.
//
// No `//!` or `#[…]` in this file: build.rs includes it as items.

/// Calls the macro `$then` with every command as `module::function`, comma-separated.
macro_rules! with_app_commands {
    ($then:ident) => {
        $then! {
            commands::join,
            commands::send,
            commands::send_private,
            commands::ask,
            commands::answer,
            commands::mark_verified,
            commands::members,
            commands::leave,
            commands::retry_now,
            commands::my_fingerprint,
            sys::get_settings,
            sys::set_settings,
            sys::forget_remembered,
            links::open_link,
            commands::invites,
            commands::renew_relay_key,
            deeplink::read_invite,
            deeplink::take_opened_link,
            commands::ui_ready,
            tray::quit,
            tray::set_unread_total,
            prefs::get_remembered,
            prefs::set_remembered,
        }
    };
}
