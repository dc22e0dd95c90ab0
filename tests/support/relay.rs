//! Our relay, `cryptocat-server`, as a process on free loopback ports (killed on drop).

use std::process::{Command, Stdio};
use std::time::Duration;

use cryptocat_link::Pin;

use crate::{binary, free_port, lines_of, Killed, TempDir};

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
    _process: Killed,
}

impl Relay {
    /// Starts one (`https`: its HTTP listener with TLS, the generated certificate).
    pub fn start(tag: &str, https: bool) -> Self {
        let dir = TempDir::new(&format!("relay-{tag}"));
        let (c2s_port, http_port) = (free_port(), free_port());
        let mut process = Killed(
            Command::new(binary("cryptocat-server"))
                .args(["--domain", "localhost"])
                .arg("--c2s")
                .arg(format!("127.0.0.1:{c2s_port}"))
                .arg("--http")
                .arg(format!("127.0.0.1:{http_port}"))
                .args(["--http-tls", if https { "true" } else { "false" }])
                .arg("--state-dir")
                .arg(&dir.0)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let banner = lines_of(process.0.stdout.take().unwrap());
        let mut pin = None;
        while let Ok(line) = banner.recv_timeout(Duration::from_secs(15)) {
            // `cryptocat-server: generated self-signed certificate PATH`
            if let Some((_, path)) = line.split_once(" certificate ") {
                let pem = std::fs::read(path.trim()).unwrap();
                pin = Some(crate::pem_pin(&pem));
                break;
            }
        }
        let pin = pin.expect("the relay's banner names no certificate");
        crate::wait_listening(c2s_port, Duration::from_secs(10)).expect("relay c2s");
        Self {
            c2s_port,
            http_port,
            https,
            pin,
            _dir: dir,
            _process: process,
        }
    }
}
