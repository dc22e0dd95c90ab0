//! The Cryptocat desktop app. Everything is in the library (`cryptocat_desktop`).

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    cryptocat_desktop::run()
}
