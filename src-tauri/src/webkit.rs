//! WebKitGTK settings of the main window that lower its memory (Linux only).
//!
//! Measured with `cryptocat-bench desktop` under Xvfb (idle, a room open), one setting at a
//! time: hardware acceleration off took the WebKitWebProcess from about 168 MB to 104 MB of
//! PSS (no GL context and compositing buffers in the web process; the UI is plain CSS).
//! The `DocumentViewer` cache model, no page cache, no WebGL and no media changed nothing
//! measurable (within 2 MB), so they are left at WebKit's defaults.

/// Applies the settings to the window's webview.
#[cfg(target_os = "linux")]
pub fn tune<R: tauri::Runtime>(window: &tauri::WebviewWindow<R>) {
    let result = window.with_webview(|webview| {
        use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
        if let Some(settings) = WebViewExt::settings(&webview.inner()) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
    });
    if result.is_err() {
        tracing::warn!("could not apply the WebKit settings");
    }
}

/// Nothing to tune outside WebKitGTK.
#[cfg(not(target_os = "linux"))]
pub fn tune<R: tauri::Runtime>(_window: &tauri::WebviewWindow<R>) {}
