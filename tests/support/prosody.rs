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
    /// The component port for our room service ([`Prosody::start_with_component`]).
    pub component_port: Option<u16>,
    /// Declared before `dir`: the process is killed before its directory is removed.
    process: Option<Killed>,
    dir: TempDir,
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
        Self::start_configured(tag, None)
    }

    /// Starts one whose `conference.localhost` is our component (an external component
    /// with `component_secret`, its port on loopback) instead of Prosody's MUC.
    pub fn start_with_component(tag: &str, secret: &str) -> Option<Self> {
        Self::start_configured(tag, Some(secret))
    }

    fn start_configured(tag: &str, component_secret: Option<&str>) -> Option<Self> {
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
        let component_port = component_secret.map(|_| free_port());
        let config = match (component_secret, component_port) {
            (Some(secret), Some(port)) => {
                let muc = "Component \"conference.localhost\" \"muc\"";
                assert!(config.contains(muc));
                config
                    .replace(
                        muc,
                        &format!("Component \"conference.localhost\"\n\tcomponent_secret = \"{secret}\""),
                    )
                    .replace(
                        "VirtualHost \"localhost\"",
                        &format!(
                            "component_ports = {{ {port} }}\ncomponent_interfaces = {{ \"127.0.0.1\" }}\n\n\
                             VirtualHost \"localhost\""
                        ),
                    )
            }
            _ => config,
        };
        std::fs::write(dir.join("prosody.cfg.lua"), config).unwrap();
        let mut prosody = Self {
            c2s_port,
            http_port,
            https_port,
            pin,
            component_port,
            process: None,
            dir,
        };
        prosody.run();
        Some(prosody)
    }

    /// Starts the process on the configuration in its directory and waits for its ports.
    fn run(&mut self) {
        self.process = Some(Killed(
            Command::new("prosody")
                .arg("--config")
                .arg(self.dir.join("prosody.cfg.lua"))
                .arg("-F")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        let started = Instant::now();
        for port in [self.c2s_port, self.http_port, self.https_port]
            .into_iter()
            .chain(self.component_port)
        {
            crate::wait_listening(port, Duration::from_secs(15)).unwrap_or_else(|| {
                panic!(
                    "prosody did not listen on {port}; see {}",
                    self.dir.join("prosody.log").display()
                )
            });
        }
        eprintln!("prosody: started in {:?}", started.elapsed());
    }

    /// Kills the process, then starts it again on the same ports, directory and
    /// configuration (a host server going away and coming back).
    pub fn restart(&mut self) {
        drop(self.process.take());
        self.run();
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
