//! A private stock Prosody (Debian's 0.12) for the tests: its defaults, in-band
//! registration, MUC, BOSH and WebSocket, none of Cryptocat's modules
//! (`tests/support/prosody/stock.cfg.lua`), on free loopback ports in a directory of its
//! own, with a self-signed CA:TRUE certificate as `prosodyctl cert generate` makes.
//! Stopped on drop.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cryptocat_link::Pin;

use crate::{free_port, Killed, TempDir};

/// A running Prosody.
pub struct Prosody {
    /// c2s (STARTTLS).
    pub c2s_port: u16,
    /// Plain HTTP: BOSH at /http-bind, WebSocket at /xmpp-websocket.
    pub http_port: u16,
    /// HTTPS: the same over TLS.
    pub https_port: u16,
    /// The pin of its certificate's key.
    pub pin: Pin,
    dir: TempDir,
    _process: Killed,
}

/// A self-signed CA:TRUE certificate for `localhost` and `conference.localhost`, as
/// `openssl req -x509` (and so `prosodyctl cert generate` and Debian's ejabberd) make.
/// Returns its key's pin.
pub fn self_signed_ca_cert(cert: &Path, key: &Path) -> Pin {
    let status = Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=localhost"])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,DNS:conference.localhost",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req failed");
    crate::pem_pin(&std::fs::read(cert).unwrap())
}

impl Prosody {
    /// Starts one. `None` (skipped, or failed under CRYPTOCAT_REQUIRE_INTEROP=1) without
    /// prosody or openssl.
    pub fn start(tag: &str) -> Option<Self> {
        if !crate::tools_present(&["prosody", "openssl"]) {
            return None;
        }
        let dir = TempDir::new(&format!("prosody-{tag}"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let pin = self_signed_ca_cert(&dir.join("localhost.crt"), &dir.join("localhost.key"));
        let (c2s_port, http_port, https_port) = (free_port(), free_port(), free_port());
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("support/prosody/stock.cfg.lua"),
        )
        .unwrap();
        let config = template
            .replace("@DIR@", &dir.0.display().to_string())
            .replace("@C2S_PORT@", &c2s_port.to_string())
            .replace("@HTTP_PORT@", &http_port.to_string())
            .replace("@HTTPS_PORT@", &https_port.to_string());
        let config_path = dir.join("prosody.cfg.lua");
        std::fs::write(&config_path, config).unwrap();
        let process = Killed(
            Command::new("prosody")
                .arg("--config")
                .arg(&config_path)
                .arg("-F")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        for port in [c2s_port, http_port, https_port] {
            crate::wait_listening(port, Duration::from_secs(15)).unwrap_or_else(|| {
                panic!(
                    "prosody did not listen on {port}; see {}",
                    dir.join("prosody.log").display()
                )
            });
        }
        eprintln!("prosody: started in {:?}", started.elapsed());
        Some(Self {
            c2s_port,
            http_port,
            https_port,
            pin,
            dir,
            _process: process,
        })
    }

    /// The accounts that exist on `localhost` (its data files).
    pub fn accounts(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("data/localhost/accounts"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".dat"))
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Its log (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default()
    }
}
