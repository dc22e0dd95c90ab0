//! Windows: the window is Microsoft Edge WebView2, part of Windows 10 and 11 (and
//! installable on older systems). Where the runtime is missing, Tauri fails to make the
//! window deep inside its event loop: a panic, and the process stays, with nothing on the
//! screen. The app checks first ([`tauri::webview_version`]) and says what to do in a
//! message box (rfd: the workspace forbids the unsafe Win32 call itself).

/// Microsoft's WebView2 page (the Evergreen Bootstrapper and Standalone Installer).
pub const DOWNLOAD_PAGE: &str = "https://developer.microsoft.com/microsoft-edge/webview2/";

/// What the message box says.
pub const MESSAGE: &str = "Cryptocat shows its window with Microsoft Edge WebView2, which \
    Windows 10 and 11 include but this computer lacks.\n\nInstall the WebView2 Runtime (the \
    Evergreen Bootstrapper or Standalone Installer from Microsoft's page, or ask your \
    administrator), then start Cryptocat again. The command-line client, cryptocat.exe, \
    works without it.\n\nOpen Microsoft's WebView2 page now?";

/// The runtime's version, or the loader's reason when no WebView2 Runtime can be used.
pub fn check() -> Result<String, String> {
    tauri::webview_version().map_err(|e| e.to_string())
}

/// Tells the person the runtime is missing and offers Microsoft's page (opened in the
/// browser when they say yes).
pub fn tell_missing() {
    let answer = rfd::MessageDialog::new()
        .set_level(rfd::MessageLevel::Error)
        .set_title("Cryptocat needs Microsoft Edge WebView2")
        .set_description(MESSAGE)
        .set_buttons(rfd::MessageButtons::YesNo)
        .show();
    if answer == rfd::MessageDialogResult::Yes && open::that_detached(DOWNLOAD_PAGE).is_err() {
        tracing::warn!("the browser could not be started");
    }
}
