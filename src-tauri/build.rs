//! Generates the Tauri context and the permissions of the app's own commands (one
//! `allow-<command>` each, from the one list in `src/command_list.rs`;
//! `capabilities/main.json` grants them to the main window only).

include!("src/command_list.rs");

/// The command names, as `&[&str]`.
macro_rules! command_names {
    ($($module:ident :: $function:ident),* $(,)?) => {
        &[$(stringify!($function)),*]
    };
}

const COMMANDS: &[&str] = with_app_commands!(command_names);

fn main() {
    println!("cargo:rerun-if-changed=src/command_list.rs");
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        // A build script reports failure by exiting non-zero with a message.
        eprintln!("tauri-build failed: {e:#}");
        std::process::exit(1);
    }
}
