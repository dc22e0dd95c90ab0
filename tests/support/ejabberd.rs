//! A private stock ejabberd (Debian's 23.01 package) per test.
//!
//! The configuration is `tests/support/ejabberd/ejabberd.yml`: Debian's default file with
//! loopback listeners on free ports, the instance's own certificate, in-band registration
//! open and `registration_timeout: infinity` (what the docs tell an operator to change);
//! everything else is ejabberd's default (BOSH at `/bosh`, WebSocket at `/ws`, MUC at
//! `conference.localhost`).
//!
//! How it runs, and what it needs:
//! - root (ejabberdctl switches to the `ejabberd` user with `su`; any other user is
//!   refused by ejabberdctl itself), `ejabberdctl` and `openssl`; otherwise the test is
//!   skipped (or fails under `CRYPTOCAT_REQUIRE_INTEROP=1`).
//! - Everything of an instance lives in one directory owned by `ejabberd`: the config,
//!   `ejabberdctl.cfg`, the certificate, `spool/` (Mnesia) and `logs/`. The node has its
//!   own name (`cc_<tag>_<pid>_<n>@localhost`).
//! - No epmd and no `~/.erlang.cookie`: `ejabberdctl.cfg` sets `ERL_DIST_PORT` (the node
//!   listens for Erlang distribution on a free loopback port and the ejabberdctl commands
//!   connect there), `INET_DIST_INTERFACE=127.0.0.1` and `-setcookie` with a random
//!   cookie. Nothing of the system service (`/etc/ejabberd`, `/var/lib/ejabberd`, the
//!   default node `ejabberd@localhost`) is used.
//! - Started with `ejabberdctl … start` (detached); ready when the log says "is started
//!   in the node" and the three ports accept connections (about 2 s here, plus 0.4 s for
//!   the certificate). Stopped on drop (also when a test panics) with SIGTERM to the
//!   node's pid (about 2.5 s), SIGKILL after 5 s; the logs are kept when the test failed.
//!
//! The certificate is made as Debian's package makes its own (`openssl req -new -x509`,
//! key and certificate in one PEM, CN `ejabberd`, CA:TRUE): no client trusts it by
//! default, so clients use [`Ejabberd::pin`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use cryptocat_link::Pin;

/// The XMPP domain every instance serves.
pub const DOMAIN: &str = "localhost";
/// ejabberd's default MUC service for [`DOMAIN`].
pub const MUC_DOMAIN: &str = "conference.localhost";

pub(crate) const CONFIG: &str = include_str!("ejabberd/ejabberd.yml");
const CTL_CONFIG: &str = include_str!("ejabberd/ejabberdctl.cfg");

/// How long a start may take before the test fails.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM before it is killed (it takes about
/// 2.5 s here; its spool is thrown away, so nothing is lost by killing it).
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// One running ejabberd node; stopped (and its directory removed) on drop.
pub struct Ejabberd {
    /// Client-to-server port (STARTTLS required).
    pub c2s_port: u16,
    /// Plain HTTP: BOSH at `/bosh`, WebSocket at `/ws`.
    pub http_port: u16,
    /// HTTPS with the same handlers.
    pub https_port: u16,
    /// The key pin of the instance's certificate.
    pub pin: Pin,
    /// The PEM file with the certificate (and its key).
    pub cert_pem: PathBuf,
    /// The node's log directory (`ejabberd.log`, `error.log`), kept when a test fails.
    pub logs: PathBuf,
    /// The `ejabberd_service` listener for our room service, when started with one
    /// ([`Ejabberd::start_with_component`]).
    pub component_port: Option<u16>,
    dir: PathBuf,
    node: String,
    pid: Option<u32>,
}

impl Ejabberd {
    /// Starts an instance, or returns `None` (skipped) when ejabberd cannot run here.
    /// `tag` names it in the node name and the directory.
    pub fn start(tag: &str) -> Option<Self> {
        Self::start_configured(tag, None)
    }

    /// Starts an instance whose room service is our component: an `ejabberd_service`
    /// listener on a free loopback port for [`crate::component::COMPONENT_DOMAIN`] with
    /// `secret`, and `mod_muc` (with `mod_muc_admin`, which needs it) off, so that
    /// `conference.localhost` is the component's. Everything else as [`Self::start`].
    pub fn start_with_component(tag: &str, secret: &str) -> Option<Self> {
        Self::start_configured(tag, Some(secret))
    }

    fn start_configured(tag: &str, component_secret: Option<&str>) -> Option<Self> {
        if !crate::tools_present(&["ejabberdctl", "openssl", "chown"]) {
            return None;
        }
        if !crate::is_root() {
            crate::skip("ejabberd tests run as root (ejabberdctl runs the node as `ejabberd`)");
            return None;
        }
        let started = Instant::now();
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(24)
            .collect();
        let node = format!("cc_{tag}_{}_{n}@localhost", std::process::id());
        let dir = std::env::temp_dir().join(format!(
            "cryptocat-ejabberd-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["logs", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let [c2s_port, http_port, https_port, dist_port, service_port] = free_ports();
        let cert_pem = dir.join("ejabberd.pem");
        make_certificate(&cert_pem);
        let pin = pin_of(&cert_pem);
        let certificate_time = started.elapsed();
        let config = CONFIG
            .replace("{{CERTFILE}}", &cert_pem.display().to_string())
            .replace("{{C2S_PORT}}", &c2s_port.to_string())
            .replace("{{HTTP_PORT}}", &http_port.to_string())
            .replace("{{HTTPS_PORT}}", &https_port.to_string());
        let config = match component_secret {
            Some(secret) => with_component(&config, service_port, secret),
            None => config,
        };
        let component_port = component_secret.map(|_| service_port);
        let ctl = CTL_CONFIG
            .replace("{{DIST_PORT}}", &dist_port.to_string())
            .replace("{{COOKIE}}", &cookie())
            .replace("{{DIR}}", &dir.display().to_string());
        assert!(!config.contains("{{") && !ctl.contains("{{"));
        std::fs::write(dir.join("ejabberd.yml"), config).unwrap();
        std::fs::write(dir.join("ejabberdctl.cfg"), ctl).unwrap();
        std::fs::copy("/etc/ejabberd/inetrc", dir.join("inetrc")).ok();
        run(Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(&dir));
        let mut server = Self {
            c2s_port,
            http_port,
            https_port,
            pin,
            cert_pem,
            logs: dir.join("logs"),
            component_port,
            dir,
            node,
            pid: None,
        };
        let out = server.ctl(&["start"]);
        assert!(
            out.status.success(),
            "ejabberdctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        server.wait_started();
        for port in [c2s_port, http_port, https_port]
            .into_iter()
            .chain(component_port)
        {
            assert!(
                wait_listening(port, START_LIMIT.saturating_sub(started.elapsed())),
                "ejabberd does not listen on {port}; see {}",
                server.logs.display()
            );
        }
        static PRINTED: Once = Once::new();
        PRINTED.call_once(|| {
            eprintln!(
                "ejabberd (stock, private node) started in {} ms, of which {} ms for its \
                 certificate",
                started.elapsed().as_millis(),
                certificate_time.as_millis()
            );
        });
        Some(server)
    }

    /// `http://127.0.0.1:PORT/bosh`.
    pub fn bosh_url(&self) -> String {
        format!("http://127.0.0.1:{}/bosh", self.http_port)
    }

    /// `https://127.0.0.1:PORT/bosh`.
    pub fn bosh_tls_url(&self) -> String {
        format!("https://127.0.0.1:{}/bosh", self.https_port)
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.http_port)
    }

    /// `wss://127.0.0.1:PORT/ws`.
    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}/ws", self.https_port)
    }

    /// `xmpp://127.0.0.1:PORT` (STARTTLS).
    pub fn xmpp_url(&self) -> String {
        format!("xmpp://127.0.0.1:{}", self.c2s_port)
    }

    /// The accounts registered on [`DOMAIN`] (`ejabberdctl registered_users`).
    pub fn registered_users(&self) -> Vec<String> {
        let out = self.ctl(&["registered_users", DOMAIN]);
        assert!(
            out.status.success(),
            "registered_users failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Runs one ejabberdctl command against this node.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let dir = &self.dir;
        Command::new("ejabberdctl")
            .arg("--config-dir")
            .arg(dir)
            .arg("--config")
            .arg(dir.join("ejabberd.yml"))
            .arg("--ctl-config")
            .arg(dir.join("ejabberdctl.cfg"))
            .arg("--logs")
            .arg(&self.logs)
            .arg("--spool")
            .arg(dir.join("spool"))
            .arg("--node")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The last `lines` lines of the node's log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.logs.join("ejabberd.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits for "is started in the node" in the log (ejabberd writes it once every
    /// module and listener is up), and reads the pid file.
    fn wait_started(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        let log = self.logs.join("ejabberd.log");
        loop {
            if self.pid.is_none() {
                self.pid = std::fs::read_to_string(self.dir.join("ejabberd.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if self.pid.is_some() && text.contains("is started in the node") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ejabberd did not start within {START_LIMIT:?}; log:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let Some(pid) = self.pid.take() else {
            // Never got as far as a pid: stop through ejabberdctl, best effort.
            let _ = self.ctl(&["stop"]);
            return;
        };
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !signal("-TERM") {
            return;
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                signal("-KILL");
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("ejabberd log kept in {}", self.logs.display());
            // Keep the logs, drop the rest.
            let _ = std::fs::remove_dir_all(self.dir.join("spool"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) fn run(command: &mut Command) {
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate as Debian's ejabberd package makes it (its preinst script):
/// `openssl req -new -x509 -days 365 -nodes`, key and certificate in the same file.
pub(crate) fn make_certificate(path: &Path) {
    run(Command::new("openssl")
        .args(["req", "-new", "-x509", "-days", "365", "-nodes"])
        .args([
            "-subj",
            "/O=Internet Widgits Pty Ltd/OU=localdomain/CN=ejabberd/emailAddress=root@localhost",
        ])
        .arg("-out")
        .arg(path)
        .arg("-keyout")
        .arg(path));
}

pub(crate) fn pin_of(pem: &Path) -> Pin {
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(pem)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 failed");
    Pin::of_certificate(&rustls_pki_types::CertificateDer::from(out.stdout)).unwrap()
}

/// Distinct free loopback ports (all bound at once, then released).
pub(crate) fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// The configuration with an `ejabberd_service` listener for our component and without
/// ejabberd's own MUC (which would claim the same domain).
pub(crate) fn with_component(config: &str, port: u16, secret: &str) -> String {
    let listener = format!(
        "listen:\n  -\n    port: {port}\n    ip: \"127.0.0.1\"\n    module: ejabberd_service\n    \
         hosts:\n      \"{}\":\n        password: \"{secret}\"\n",
        crate::component::COMPONENT_DOMAIN
    );
    let mut out = String::new();
    let mut in_muc = false;
    for line in config.lines() {
        if line == "  mod_muc:" || line == "  mod_muc_admin: {}" {
            in_muc = line == "  mod_muc:";
            continue;
        }
        if in_muc {
            if line.starts_with("    ") {
                continue;
            }
            in_muc = false;
        }
        if line == "listen:" {
            out.push_str(&listener);
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.contains("mod_muc") && out.contains("ejabberd_service"));
    out
}

pub(crate) fn wait_listening(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A random Erlang cookie (letters only, as erl makes them).
pub(crate) fn cookie() -> String {
    let mut bytes = [0u8; 20];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| char::from(b'A' + b % 26)).collect()
}
