//! Links in messages. The UI detects `http://` and `https://` addresses in message text
//! (and nothing else), asks the person to confirm with the full address shown, then calls
//! [`open_link`]; this module checks the address again before handing it to the system
//! browser (the `open` crate: `xdg-open` and its kin on Linux, `open` on macOS,
//! `ShellExecuteW` on Windows; called from Rust only, the webview has no way to open
//! anything itself).

use crate::dto::CommandError;

/// The longest address opened.
pub const MAX_URL_BYTES: usize = 2048;

/// The address to open, or why not: only absolute `http`/`https` URLs with a host and
/// without user name or password (which make addresses such as
/// `https://bank.example@evil.example` look like another site).
pub fn checked_url(text: &str) -> Result<url::Url, CommandError> {
    let refuse = || CommandError::new("invalid_link", "only http and https links are opened");
    if text.len() > MAX_URL_BYTES || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse());
    }
    let url = url::Url::parse(text).map_err(|_| refuse())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(refuse());
    }
    Ok(url)
}

/// Opens an http(s) address in the system browser (the UI confirmed it with the person).
#[tauri::command]
pub fn open_link(url: String) -> Result<(), CommandError> {
    let url = checked_url(&url)?;
    // Detached: the browser outlives the call (and the app).
    open::that_detached(url.as_str())
        .map_err(|_| CommandError::new("open_failed", "the browser could not be started"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_web_addresses_pass() {
        for ok in [
            "https://example.org/",
            "http://example.org:8080/a?b=c#d",
            "https://xn--bcher-kva.example/",
        ] {
            assert!(checked_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://example.org/",
            "about:blank",
            "vbscript:msgbox",
            "https://user:pw@example.org/",
            "https://bank.example@evil.example/",
            "//example.org/",
            "https://exa mple.org/",
            "https://example.org/\n",
            "",
        ] {
            let e = checked_url(bad).map(|u| u.to_string());
            assert!(e.is_err(), "{bad} -> {e:?}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_BYTES));
        assert!(checked_url(&long).is_err());
    }
}
