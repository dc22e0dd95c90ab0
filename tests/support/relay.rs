//! Our relay, `cryptocat-server`, as a process on free loopback ports (killed on drop): the
//! Linux build, or the Windows build under Wine.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cryptocat_link::Pin;

use crate::{binary, free_port, lines_of, wine, Killed, TempDir};

/// A running relay.
pub struct Relay {
    /// c2s (STARTTLS).
    pub c2s_port: u16,
    /// The HTTP listener (BOSH at /http-bind, WebSocket at /xmpp-websocket).
    pub http_port: u16,
    /// Whether the HTTP listener speaks HTTPS.
    pub https: bool,
    /// The pin of its key.
    pub pin: Pin,
    _dir: TempDir,
    process: Killed,
}

impl Relay {
    /// Starts one (`https`: its HTTP listener with TLS, the generated certificate).
    pub fn start(tag: &str, https: bool) -> Self {
        Self::start_program(
            Command::new(binary("cryptocat-server")),
            |path| path.as_os_str().to_owned(),
            Duration::from_secs(15),
            tag,
            https,
        )
    }

    /// Starts `cryptocat-server.exe` under Wine (see [`wine::ready`]).
    pub fn start_windows(tag: &str, https: bool) -> Self {
        Self::start_program(
            wine::command("cryptocat-server"),
            |path| wine::windows_path(path).into(),
            wine::FIRST_START,
            &format!("{tag}-windows"),
            https,
        )
    }

    fn start_program(
        mut command: Command,
        path_arg: impl Fn(&Path) -> OsString,
        startup: Duration,
        tag: &str,
        https: bool,
    ) -> Self {
        let dir = TempDir::new(&format!("relay-{tag}"));
        let (c2s_port, http_port) = (free_port(), free_port());
        let mut process = Killed(
            command
                .args(["--domain", "localhost"])
                .arg("--c2s")
                .arg(format!("127.0.0.1:{c2s_port}"))
                .arg("--http")
                .arg(format!("127.0.0.1:{http_port}"))
                .args(["--http-tls", if https { "true" } else { "false" }])
                .arg("--state-dir")
                .arg(path_arg(&dir.0))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let banner = lines_of(process.0.stdout.take().unwrap());
        // `cryptocat-server: generated self-signed certificate PATH`, PATH being
        // DIR/localhost.pem (as the program names it: a Windows path under Wine).
        let deadline = Instant::now() + startup;
        let mut generated = false;
        while let Ok(line) = banner.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(" certificate ") {
                generated = true;
                break;
            }
        }
        assert!(generated, "the relay's banner names no certificate");
        let pem = std::fs::read(dir.join("localhost.pem")).unwrap();
        let pin = crate::pem_pin(&pem);
        crate::wait_listening(c2s_port, Duration::from_secs(10)).expect("relay c2s");
        Self {
            c2s_port,
            http_port,
            https,
            pin,
            _dir: dir,
            process,
        }
    }

    /// Sends it SIGINT (under Wine: the console's ctrl-c) and waits at most `limit` for
    /// it to end; `None` if it did not.
    pub fn interrupt(&mut self, limit: Duration) -> Option<ExitStatus> {
        crate::signal_and_wait(&mut self.process.0, "INT", limit)
    }
}
