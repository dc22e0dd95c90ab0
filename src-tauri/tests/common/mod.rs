//! Running a test inside a private D-Bus session (and an X display) of its own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Set in the child process that runs inside the session.
pub const INNER: &str = "CRYPTOCAT_TEST_INNER";

/// Whether the programs are installed; when one is missing, fails under
/// `CRYPTOCAT_REQUIRE_INTEROP=1` and otherwise prints a notice (the caller skips).
pub fn tools_present(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing {} (Debian: scripts/lib/setup.sh ensure_desktop_os_deps)",
        missing.join(", ")
    );
    if std::env::var("CRYPTOCAT_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// An Xvfb server on a free display (killed on drop).
pub struct Xvfb {
    child: Child,
    /// `:N`.
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Self {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line.trim().parse().expect("Xvfb prints its display");
        Self {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs this test binary's test `name` again under `dbus-run-session` with [`INNER`] set
/// and `env`, and asserts it passed.
pub fn rerun_in_session(name: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("dbus-run-session");
    cmd.arg("--")
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("dbus-run-session runs");
    assert!(status.success(), "the test inside the D-Bus session failed");
}

/// A child process killed on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `name` has an owner on the session bus (asking with NameHasOwner, which does
/// not start a service by D-Bus activation).
pub fn wait_for_name(name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = Command::new("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.DBus",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .expect("dbus-send runs");
        if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} did not appear on the bus"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
