//! Our room service as an XEP-0114 component of a stock server: `cryptocat-server
//! component` as a process (killed on drop), its secret in a `0600` file of its own, and
//! a raw client ([`RawClient`]) that sends what a Cryptocat client never would.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptocat_link::Pin;

use crate::{binary, lines_of, Killed, TempDir};

/// The component's domain on every test server (the stock servers' `conference.localhost`).
pub const COMPONENT_DOMAIN: &str = "conference.localhost";

/// How often the tests' components ping their occupants (`occupant_ping_secs`).
pub const PING_SECS: u64 = 2;

/// A fresh random secret (hex of 16 bytes from /dev/urandom).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running `cryptocat-server component`.
pub struct Component {
    lines: Receiver<String>,
    stderr: Receiver<String>,
    _dir: TempDir,
    process: Killed,
}

impl Component {
    /// Starts one for [`COMPONENT_DOMAIN`] against `127.0.0.1:port` with `secret`, and
    /// waits (at most 20 s) until it says it is attached.
    pub fn start(tag: &str, port: u16, secret: &str) -> Self {
        let mut c = Self::spawn(tag, port, secret);
        assert!(
            c.wait_attached(Duration::from_secs(20)),
            "the component did not attach; stderr: {}",
            c.stderr_text()
        );
        c
    }

    /// Starts one without waiting.
    pub fn spawn(tag: &str, port: u16, secret: &str) -> Self {
        Self::spawn_ports(tag, &[port], secret)
    }

    /// Starts one that tries the host ports in turn (one `--connect` each: the nodes of a
    /// cluster) and waits (at most 20 s) until it says it is attached.
    pub fn start_ports(tag: &str, ports: &[u16], secret: &str) -> Self {
        let mut c = Self::spawn_ports(tag, ports, secret);
        assert!(
            c.wait_attached(Duration::from_secs(20)),
            "the component did not attach; stderr: {}",
            c.stderr_text()
        );
        c
    }

    /// Starts one with a `--connect` per port, without waiting.
    pub fn spawn_ports(tag: &str, ports: &[u16], secret: &str) -> Self {
        let dir = TempDir::new(&format!("component-{tag}"));
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        set_private(&secret_file);
        // Occupants pinged every 2 s (60 by default), so that a test sees one whose
        // session died go within seconds; read through `--config`, as an operator's.
        let limits = dir.join("limits.toml");
        std::fs::write(
            &limits,
            format!("[limits]\noccupant_ping_secs = {PING_SECS}\n"),
        )
        .unwrap();
        let mut process = Killed(
            Command::new(binary("cryptocat-server"))
                .arg("component")
                .args(
                    ports
                        .iter()
                        .flat_map(|p| ["--connect".to_owned(), format!("127.0.0.1:{p}")]),
                )
                .args(["--domain", COMPONENT_DOMAIN])
                .arg("--secret-file")
                .arg(&secret_file)
                .arg("--config")
                .arg(&limits)
                // Everything it logs, for the tests that look for user data in it.
                .env("RUST_LOG", "debug")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(process.0.stdout.take().unwrap());
        let stderr = lines_of(process.0.stderr.take().unwrap());
        Self {
            lines,
            stderr,
            _dir: dir,
            process,
        }
    }

    /// Waits for the next "attached" banner line.
    pub fn wait_attached(&mut self, limit: Duration) -> bool {
        self.wait_attached_to(limit).is_some()
    }

    /// Waits for the next "attached" banner line; the `HOST:PORT` it names.
    pub fn wait_attached_to(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some((_, address)) = line.split_once(" attached to ") {
                return Some(address.trim().to_owned());
            }
        }
        None
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// What it wrote on stderr since the last call (its logs).
    pub fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Waits until its log has a line containing `needle`; the lines read meanwhile.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        let mut seen = String::new();
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return (true, seen);
            }
        }
        (false, seen)
    }

    /// Sends it SIGTERM and waits at most `limit` for it to end; `None` if it did not.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        crate::signal_and_wait(&mut self.process.0, "TERM", limit)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.process.0.try_wait().unwrap().is_none()
    }
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A bare XMPP client on the test's side (our transport's pieces: STARTTLS, in-band
/// registration, SCRAM, bind), sending raw stanzas: what a modified client could send.
pub struct RawClient {
    stream: cryptocat_xmpp::transport::TcpTransport,
    /// The bound full JID.
    pub jid: String,
}

impl RawClient {
    /// Registers a random account on `localhost` at `127.0.0.1:port` (pinned), logs in
    /// and binds.
    pub async fn connect(port: u16, pin: Pin) -> Self {
        use cryptocat_xmpp::session::{establish, Credentials};
        use cryptocat_xmpp::TrustConfig;
        let tls: Arc<rustls::ClientConfig> =
            TrustConfig::pinned(vec![pin]).client_config().unwrap();
        let mut stream = cryptocat_xmpp::transport::connect_tcp(
            "127.0.0.1",
            port,
            "localhost",
            tls,
            cryptocat_xmpp::xml::ParserLimits::default(),
            Duration::from_secs(15),
        )
        .await
        .unwrap();
        let jid = establish(&mut stream, &Credentials::random(), true)
            .await
            .unwrap();
        Self { stream, jid }
    }

    /// Sends one stanza.
    pub async fn send(&mut self, xml: &str) {
        use cryptocat_xmpp::ElementStream as _;
        self.stream.send(xml.to_owned()).await.unwrap();
    }

    /// Joins `room` at [`COMPONENT_DOMAIN`] as `identity` with the room key proof: the
    /// join with our key, the room's challenge, the join with the proof, our own presence.
    /// Returns the nickname (the key's occupant name).
    pub async fn join_proven(
        &mut self,
        room: &str,
        identity: &cryptocat_protocol::identity::Identity,
    ) -> String {
        use cryptocat_xmpp::room_key::{key_element, proof_element, NS_ROOM_KEY};
        let nick = cryptocat_protocol::group::occupant_name(&identity.verifying_key());
        let room_jid = format!("{room}@{COMPONENT_DOMAIN}");
        let me = format!("{room_jid}/{nick}");
        let join = |proof: &str| {
            format!(
                "<presence to='{me}'><x xmlns='http://jabber.org/protocol/muc'/>{}{proof}</presence>",
                key_element(identity)
            )
        };
        self.send(&join("")).await;
        let challenged = self
            .wait(Duration::from_secs(15), |el| {
                el.name() == "presence" && el.get_child("challenge", NS_ROOM_KEY).is_some()
            })
            .await
            .expect("the room's key challenge");
        let proof = proof_element(identity, &room_jid, &challenged).expect("a proof");
        self.send(&join(&proof)).await;
        self.wait(Duration::from_secs(15), |el| {
            el.name() == "presence"
                && el.attr("from") == Some(me.as_str())
                && el.attr("type").is_none()
        })
        .await
        .expect("own presence in the room");
        nick
    }

    /// The next element that `pick` accepts (others are skipped), within `limit`.
    pub async fn wait(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&minidom::Element) -> bool,
    ) -> Option<minidom::Element> {
        use cryptocat_xmpp::ElementStream as _;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let el = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?
                .ok()?;
            if pick(&el) {
                return Some(el);
            }
        }
    }
}
