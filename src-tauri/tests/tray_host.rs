//! Whether a tray host is there, on a real session bus of the test's own: none at first
//! (closing then quits), then the tray side of a panel (`support/sni_host.py`, a
//! StatusNotifierWatcher with a host registered), then none again once it is gone.
// Linux only: StatusNotifierItem hosts on D-Bus (elsewhere the tray is always there).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Killed, INNER};
use cryptocat_desktop::tray::tray_host_present;

const SYSTEM_PYTHON: &str = "/usr/bin/python3";

#[test]
fn tray_host_is_seen_only_while_a_panel_runs() {
    if std::env::var_os(INNER).is_some() {
        return inside_session();
    }
    if !common::tools_present(&["dbus-run-session", "dbus-send"]) {
        return;
    }
    common::rerun_in_session("tray_host_is_seen_only_while_a_panel_runs", &[]);
}

fn inside_session() {
    assert!(!tray_host_present(), "no panel yet");
    let mut host = Killed(
        Command::new(SYSTEM_PYTHON)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sni_host.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(host.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"ready\""), "{line}");
    assert!(
        tray_host_present(),
        "the panel's watcher says a host is there"
    );
    drop(host);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tray_host_present() {
        assert!(std::time::Instant::now() < deadline, "the panel is gone");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
