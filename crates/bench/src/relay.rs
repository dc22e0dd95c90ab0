//! The relay suite: our `cryptocat-server` against Prosody (Debian's package), both on
//! loopback, one after the other in the same run, driven by the same raw XMPP clients.
//!
//! - A 10-member room with one sender and 1 KiB payloads (a well-formed Cryptocat group
//!   message, which our relay's plaintext policy accepts and Prosody relays like anything
//!   else). Deliveries per second: the sender keeps a window of messages in flight; a
//!   delivery is one message arriving at one of the 9 other members. Latency: one message
//!   at a time, from the send to its arrival at each of the 9 (p50, p99).
//! - Peak RSS of each server process (`VmHWM` in `/proc/PID/status`) after those runs.
//! - Ours only: 10,000 idle BOSH sessions, each holding one long-poll request, and the RSS
//!   of a fresh relay process holding them (goal: under 500 MB).
//!
//! Fair set-up: both servers require STARTTLS on c2s (Prosody's default, our only mode) and
//! use the same certificate; accounts are registered in-band and log in with
//! SCRAM-SHA-256; storage is in memory for both. Our relay's per-connection stanza rate
//! limit (100/s by default) would throttle the single sender, and Prosody has none by
//! default, so the bench raises ours. The relay runs as a separate process (this binary in
//! its hidden `relay-server` mode) so that its memory is its own.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_protocol::group::wire::GroupMessage;
use cryptocat_xml::{ParserLimits, StreamParser, XmlEvent};
use hmac::{Hmac, Mac};
use minidom::Element;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;

pub(crate) const DOMAIN: &str = "localhost";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub(crate) const NS_PAYLOAD: &str = "urn:xmpp:cryptocat:1";
pub(crate) const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of the relay suite.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Room members (one sends, the others receive).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=200))]
    pub members: u32,
    /// Messages in the throughput run.
    #[arg(long, default_value_t = 5000)]
    pub messages: u32,
    /// Messages in the latency run (one at a time).
    #[arg(long, default_value_t = 1000)]
    pub latency_messages: u32,
    /// Idle BOSH sessions to hold (0: skip).
    #[arg(long, default_value_t = 10_000)]
    pub bosh_sessions: u32,
    /// Skip Prosody (measure ours only).
    #[arg(long)]
    pub no_prosody: bool,
}

/// Options of the hidden `relay-server` mode: our relay in a process of its own.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    c2s: SocketAddr,
    #[arg(long)]
    http: SocketAddr,
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    state_dir: PathBuf,
}

/// Runs our relay until killed (the bench's child process).
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    raise_fd_limit(30_000);
    let mut config = cryptocat_relay::Config::new(DOMAIN, args.c2s);
    config.http = Some(args.http);
    config.http_tls = Some(false);
    config.tls_cert = Some(args.cert.clone());
    config.tls_key = Some(args.key.clone());
    config.state_dir = Some(args.state_dir.clone());
    // One sender must not be throttled by the per-connection stanza rate (Prosody has no
    // such limit by default); unauthenticated BOSH sessions must outlive the measurement.
    config.limits.stanzas_per_second = 1_000_000;
    config.limits.stanza_burst = 1_000_000;
    config.limits.negotiation_timeout_secs = 600;
    config.limits.bosh_inactivity_secs = 600;
    config.limits.registrations_per_ip = 10_000;
    // The idle BOSH sessions come through one address, as from a reverse proxy on the
    // same host (their X-Forwarded-For addresses are the clients'): such a proxy is listed,
    // so that its connections count in the listener's total only.
    config.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = cryptocat_relay::Server::bind(config).await?.spawn();
        println!("ready {}", running.c2s_addr);
        std::future::pending::<()>().await;
        Ok(())
    })
}

pub(crate) fn raise_fd_limit(want: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|c| c < want) {
        lim.current = Some(lim.maximum.map_or(want, |m| m.min(want)));
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

// ---------------------------------------------------------------------------------------
// Servers

struct ServerProcess {
    name: &'static str,
    child: Child,
    c2s: SocketAddr,
    http: Option<SocketAddr>,
}

impl ServerProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn wait_for_port(addr: SocketAddr, child: &mut Child, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited with {status} before listening");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{name} did not listen on {addr} within 15 s")
}

async fn start_ours(dir: &Path) -> anyhow::Result<ServerProcess> {
    let c2s = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("relay-server")
        .args(["--c2s", &c2s.to_string(), "--http", &http.to_string()])
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .arg("--state-dir")
        .arg(dir.join("ours"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting our relay")?;
    wait_for_port(c2s, &mut child, "cryptocat-server").await?;
    Ok(ServerProcess {
        name: "cryptocat-server",
        child,
        c2s,
        http: Some(http),
    })
}

async fn start_prosody(dir: &Path) -> anyhow::Result<Option<ServerProcess>> {
    let Ok(prosody) = which("prosody") else {
        eprintln!(
            "prosody is not installed: skipping the peer (Debian: apt-get install prosody, \
             or `. scripts/lib/setup.sh && ensure_prosody`)"
        );
        return Ok(None);
    };
    let port = free_port()?;
    let data = dir.join("prosody-data");
    std::fs::create_dir_all(&data)?;
    let is_root = rustix::process::geteuid().is_root();
    let config = format!(
        r#"-- Written by cryptocat-bench relay: loopback only, in-memory storage.
{run_as_root}
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{data}"
storage = "memory"
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = 4096
modules_enabled = {{ "saslauth"; "tls"; "disco"; "ping"; "register" }}
modules_disabled = {{ "s2s"; "offline"; "c2s_limits" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
allow_registration = true
min_seconds_between_registrations = 0
log = {{ error = "{dir}/prosody.log" }}
ssl = {{ certificate = "{dir}/cert.pem"; key = "{dir}/key.pem" }}
VirtualHost "{DOMAIN}"
Component "conference.{DOMAIN}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
    muc_room_default_history_length = 0
"#,
        run_as_root = if is_root { "run_as_root = true" } else { "" },
        dir = dir.display(),
        data = data.display(),
    );
    let path = dir.join("prosody.cfg.lua");
    std::fs::write(&path, config)?;
    let mut child = Command::new(prosody)
        .arg("--config")
        .arg(&path)
        .arg("-F")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting prosody")?;
    let c2s = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_port(c2s, &mut child, "prosody").await?;
    Ok(Some(ServerProcess {
        name: "prosody",
        child,
        c2s,
        http: None,
    }))
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{program} not found"))
}

/// A field of `/proc/PID/status` in kB.
pub(crate) fn proc_status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------
// A raw XMPP client: TCP, STARTTLS, in-band registration, SCRAM-SHA-256, bind, MUC.

pub(crate) struct Xmpp<S> {
    io: S,
    parser: StreamParser,
    queue: VecDeque<XmlEvent>,
    buf: Vec<u8>,
}

fn parser() -> StreamParser {
    StreamParser::new(ParserLimits {
        max_stanza_bytes: 1 << 20,
        max_depth: 32,
    })
}

impl<S> Xmpp<S> {
    /// Takes the connection out, keeping the parser state for [`Self::with_io`].
    fn split_io(self) -> (S, Xmpp<()>) {
        let rest = Xmpp {
            io: (),
            parser: self.parser,
            queue: self.queue,
            buf: self.buf,
        };
        (self.io, rest)
    }
}

impl Xmpp<()> {
    /// The same stream state over another reader (a split-off read half).
    fn with_io<T>(self, io: T) -> Xmpp<T> {
        Xmpp {
            io,
            parser: self.parser,
            queue: self.queue,
            buf: self.buf,
        }
    }
}

impl<S: AsyncRead + Unpin> Xmpp<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            parser: parser(),
            queue: VecDeque::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// The next stanza (stream headers skipped).
    pub(crate) async fn next(&mut self) -> anyhow::Result<Element> {
        loop {
            match self.queue.pop_front() {
                Some(XmlEvent::Stanza(e)) => return Ok(e),
                Some(XmlEvent::StreamOpen(_)) => continue,
                Some(XmlEvent::StreamClose) => bail!("the server closed the stream"),
                None => {
                    let n = tokio::time::timeout(STEP_TIMEOUT, self.io.read(&mut self.buf))
                        .await
                        .context("timed out waiting for the server")??;
                    if n == 0 {
                        bail!("the server closed the connection");
                    }
                    let bytes = self.buf.get(..n).unwrap_or_default();
                    let events = self.parser.feed(bytes)?;
                    self.queue.extend(events);
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Xmpp<S> {
    pub(crate) async fn send(&mut self, xml: &str) -> anyhow::Result<()> {
        self.io.write_all(xml.as_bytes()).await?;
        self.io.flush().await?;
        Ok(())
    }

    async fn open(&mut self) -> anyhow::Result<Element> {
        self.parser = parser();
        self.queue.clear();
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        ))
        .await?;
        let f = self.next().await?;
        if f.name() != "features" {
            bail!("expected stream features, got {}", String::from(&f));
        }
        Ok(f)
    }

    async fn expect_result(&mut self, id: &str) -> anyhow::Result<Element> {
        loop {
            let e = self.next().await?;
            if e.name() == "iq" && e.attr("id") == Some(id) {
                if e.attr("type") != Some("result") {
                    bail!("iq {id} failed: {}", String::from(&e));
                }
                return Ok(e);
            }
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key)?;
    m.update(data);
    Ok(m.finalize().into_bytes().to_vec())
}

pub(crate) type Conn = Xmpp<TlsStream<TcpStream>>;

async fn account(
    addr: SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    user: &str,
) -> anyhow::Result<Conn> {
    account_on(TcpStream::connect(addr).await?, tls, user).await
}

/// Registers and logs `user` in on an open TCP connection, up to a bound resource.
pub(crate) async fn account_on(
    tcp: TcpStream,
    tls: &tokio_rustls::TlsConnector,
    user: &str,
) -> anyhow::Result<Conn> {
    tcp.set_nodelay(true)?;
    let mut plain = Xmpp::new(tcp);
    let f = plain.open().await.context("opening the stream")?;
    if f.get_child("starttls", NS_TLS).is_none() {
        bail!("the server offers no STARTTLS");
    }
    plain
        .send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    let proceed = plain.next().await?;
    if !proceed.is("proceed", NS_TLS) {
        bail!("STARTTLS refused");
    }
    let (tcp, _) = plain.split_io();
    let io = tls
        .connect(ServerName::try_from(DOMAIN)?, tcp)
        .await
        .context("TLS handshake")?;
    let mut c = Xmpp::new(io);
    c.open().await.context("opening the stream after TLS")?;
    let password = format!("pw-{user}");
    c.send(&format!(
        "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>\
         <username>{user}</username><password>{password}</password></query></iq>"
    ))
    .await?;
    c.expect_result("reg1").await.context("registering")?;
    scram_sha256(&mut c, user, &password)
        .await
        .context("logging in")?;
    c.open().await.context("opening the stream after SASL")?;
    c.send(&format!(
        "<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>bench</resource></bind></iq>"
    ))
    .await?;
    c.expect_result("bind1").await.context("binding")?;
    Ok(c)
}

async fn scram_sha256(c: &mut Conn, user: &str, password: &str) -> anyhow::Result<()> {
    let cnonce = hex::encode(rand_nonce());
    let first_bare = format!("n={user},r={cnonce}");
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
        STANDARD.encode(format!("n,,{first_bare}"))
    ))
    .await?;
    let challenge = c.next().await?;
    if !challenge.is("challenge", NS_SASL) {
        bail!("SCRAM-SHA-256 refused: {}", String::from(&challenge));
    }
    let server_first = String::from_utf8(STANDARD.decode(challenge.text().trim())?)?;
    let (mut nonce, mut salt, mut iters) = (String::new(), Vec::new(), 0u32);
    for part in server_first.split(',') {
        if let Some(v) = part.strip_prefix("r=") {
            nonce = v.to_owned();
        } else if let Some(v) = part.strip_prefix("s=") {
            salt = STANDARD.decode(v)?;
        } else if let Some(v) = part.strip_prefix("i=") {
            iters = v.parse()?;
        }
    }
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iters, &mut salted);
    let client_key = hmac(&salted, b"Client Key")?;
    let stored_key = Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes())?;
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    c.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        STANDARD.encode(format!("{without_proof},p={}", STANDARD.encode(proof)))
    ))
    .await?;
    let outcome = c.next().await?;
    if !outcome.is("success", NS_SASL) {
        bail!("authentication failed: {}", String::from(&outcome));
    }
    Ok(())
}

fn rand_nonce() -> [u8; 12] {
    use rand_core::RngCore as _;
    let mut b = [0u8; 12];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

pub(crate) async fn join(c: &mut Conn, room: &str, nick: &str) -> anyhow::Result<()> {
    c.send(&format!(
        "<presence to='{room}@conference.{DOMAIN}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    ))
    .await?;
    loop {
        let e = c.next().await?;
        if e.attr("type") == Some("error") {
            bail!("join failed: {}", String::from(&e));
        }
        // The subject (empty or not) ends the join on both servers.
        if e.name() == "message" && e.get_child("subject", "jabber:client").is_some() {
            return Ok(());
        }
    }
}

pub(crate) fn tls_connector(
    cert: CertificateDer<'static>,
) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

// ---------------------------------------------------------------------------------------
// The room runs

/// What one server achieved.
#[derive(Debug, Clone)]
struct RoomFigures {
    deliveries_per_sec: f64,
    p50_ns: u64,
    p99_ns: u64,
    peak_rss_kb: u64,
}

/// A 1 KiB payload (base64 of a group message) for message `seq`.
pub(crate) fn payload_b64(seq: u32, members: usize) -> String {
    let macs = members.saturating_sub(1).max(1);
    // 1,024 base64 characters = 768 bytes: 16+4+4+32 header-ish fields, the MACs, the rest
    // ciphertext (the exact encoding overhead is measured below and adjusted).
    let mut ct = 768usize.saturating_sub(16 * macs + 64);
    loop {
        let m = GroupMessage {
            epoch: [7; 16],
            sender: 0,
            index: seq,
            prev_hash: [9; 32],
            ciphertext: vec![0x5a; ct],
            macs: vec![[3; 16]; macs],
        };
        let b = m.to_base64();
        if b.len() >= 1024 || ct > 2048 {
            return b;
        }
        ct += 1;
    }
}

struct Shared {
    /// Per receiver: how many payload messages it has seen.
    seen: Vec<AtomicU64>,
    /// Send instants (ns since `epoch`) of the latency run's messages.
    sent_at: Vec<AtomicU64>,
    epoch: Instant,
    notify: Notify,
}

/// Reads until `total` payload messages arrived; records latencies of those at or beyond
/// `latency_from`.
async fn receive(
    mut rd: Xmpp<tokio::io::ReadHalf<TlsStream<TcpStream>>>,
    idx: usize,
    total: u64,
    latency_from: u64,
    shared: Arc<Shared>,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut count = 0u64;
    while count < total {
        let e = rd.next().await?;
        if e.name() != "message" || e.get_child("payload", NS_PAYLOAD).is_none() {
            if e.attr("type") == Some("error") {
                bail!("error stanza: {}", String::from(&e));
            }
            continue;
        }
        let seq: u64 = e
            .attr("id")
            .and_then(|i| i.strip_prefix('s'))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("message without a sequence id"))?;
        if seq != count {
            bail!("member {idx} got message {seq}, expected {count}");
        }
        if seq >= latency_from {
            let now = u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let i = usize::try_from(seq - latency_from).unwrap_or(usize::MAX);
            if let Some(at) = shared.sent_at.get(i) {
                latencies.push(now.saturating_sub(at.load(Ordering::Acquire)));
            }
        }
        count += 1;
        if let Some(s) = shared.seen.get(idx) {
            s.store(count, Ordering::Release);
        }
        shared.notify.notify_waiters();
    }
    Ok(latencies)
}

fn min_seen(shared: &Shared) -> u64 {
    shared
        .seen
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .min()
        .unwrap_or(0)
}

async fn wait_seen(shared: &Shared, at_least: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if min_seen(shared) >= at_least {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            bail!("deliveries stalled at {} of {at_least}", min_seen(shared));
        }
    }
}

fn percentile(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (sorted.len() * pct).div_ceil(100).max(1) - 1;
    sorted.get(i).copied().unwrap_or(0)
}

async fn room_run(
    server: &ServerProcess,
    cert: CertificateDer<'static>,
    args: &Args,
) -> anyhow::Result<RoomFigures> {
    let tls = tls_connector(cert)?;
    let members = usize::try_from(args.members)?;
    let tag = hex::encode(rand_nonce()).get(..8).unwrap_or("x").to_owned();
    let mut conns = Vec::new();
    for i in 0..members {
        let mut c = account(server.c2s, &tls, &format!("b{tag}{i}")).await?;
        join(&mut c, "benchroom", &format!("m{i}"))
            .await
            .context("joining the room")?;
        conns.push(c);
    }
    let throughput = u64::from(args.messages);
    let latency_n = u64::from(args.latency_messages);
    let shared = Arc::new(Shared {
        seen: (1..members).map(|_| AtomicU64::new(0)).collect(),
        sent_at: (0..latency_n).map(|_| AtomicU64::new(0)).collect(),
        epoch: Instant::now(),
        notify: Notify::new(),
    });
    let mut conns = conns.into_iter();
    let sender = conns.next().ok_or_else(|| anyhow!("no members"))?;
    // The sender's own echoes are read and dropped.
    let (sender_io, sender_rest) = sender.split_io();
    let (sender_rd, mut sender_wr) = tokio::io::split(sender_io);
    let mut echo = sender_rest.with_io(sender_rd);
    let echo_task = tokio::spawn(async move {
        loop {
            if echo.next().await.is_err() {
                return;
            }
        }
    });
    let mut readers = Vec::new();
    // The receivers' write halves stay open until the end.
    let mut writers = Vec::new();
    for (idx, c) in conns.enumerate() {
        let (io, rest) = c.split_io();
        let (rd, wr) = tokio::io::split(io);
        writers.push(wr);
        readers.push(tokio::spawn(receive(
            rest.with_io(rd),
            idx,
            throughput + latency_n,
            throughput,
            Arc::clone(&shared),
        )));
    }
    let payloads: Vec<String> = (0..8).map(|i| payload_b64(i, members)).collect();
    let stanza = |seq: u64| -> String {
        let p = payloads
            .get(usize::try_from(seq % 8).unwrap_or(0))
            .map_or("", String::as_str);
        format!(
            "<message type='groupchat' id='s{seq}' to='benchroom@conference.{DOMAIN}'>\
             <payload xmlns='{NS_PAYLOAD}'>{p}</payload></message>"
        )
    };

    // Throughput: a window of messages in flight.
    let window = 200u64;
    let start = Instant::now();
    for seq in 0..throughput {
        if seq >= window {
            wait_seen(&shared, seq - window).await?;
        }
        sender_wr.write_all(stanza(seq).as_bytes()).await?;
    }
    sender_wr.flush().await?;
    wait_seen(&shared, throughput).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let receivers = (members - 1) as f64;
    let deliveries_per_sec = throughput as f64 * receivers / elapsed;

    // Latency: one message at a time.
    for i in 0..latency_n {
        let seq = throughput + i;
        let now = u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(at) = shared.sent_at.get(usize::try_from(i)?) {
            at.store(now, Ordering::Release);
        }
        sender_wr.write_all(stanza(seq).as_bytes()).await?;
        sender_wr.flush().await?;
        wait_seen(&shared, seq + 1).await?;
    }
    let mut latencies = Vec::new();
    for r in readers {
        latencies.extend(r.await??);
    }
    echo_task.abort();
    drop(writers);
    latencies.sort_unstable();
    let peak_rss_kb = proc_status_kb(server.pid(), "VmHWM")?;
    Ok(RoomFigures {
        deliveries_per_sec,
        p50_ns: percentile(&latencies, 50),
        p99_ns: percentile(&latencies, 99),
        peak_rss_kb,
    })
}

// ---------------------------------------------------------------------------------------
// Idle BOSH sessions

/// One HTTP/1.1 request on `tcp`; returns the response body.
pub(crate) async fn http_post(
    tcp: &mut TcpStream,
    body: &str,
    forwarded_for: IpAddr,
) -> anyhow::Result<String> {
    let req = format!(
        "POST /http-bind HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Type: text/xml\r\n\
         X-Forwarded-For: {forwarded_for}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(STEP_TIMEOUT, tcp.read(&mut buf)).await??;
        if n == 0 {
            bail!("connection closed");
        }
        got.extend_from_slice(buf.get(..n).unwrap_or_default());
        let text = String::from_utf8_lossy(&got);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if rest.len() >= len {
                return Ok(rest.to_owned());
            }
        }
    }
}

/// Creates a session and leaves one long-poll request held on its connection.
async fn idle_bosh_session(http: SocketAddr, client: IpAddr) -> anyhow::Result<TcpStream> {
    let mut tcp = TcpStream::connect(http).await?;
    let rid = 1000u64;
    let created = http_post(
        &mut tcp,
        &format!(
            "<body xmlns='{NS_HTTPBIND}' rid='{rid}' to='{DOMAIN}' wait='60' hold='1' ver='1.6' \
             xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
        ),
        client,
    )
    .await?;
    let body: Element = created.parse().map_err(|e| anyhow!("bad body {e}"))?;
    let sid = body
        .attr("sid")
        .ok_or_else(|| anyhow!("session refused: {created}"))?;
    let poll = format!(
        "<body xmlns='{NS_HTTPBIND}' rid='{}' sid='{sid}'/>",
        rid + 1
    );
    let req = format!(
        "POST /http-bind HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Type: text/xml\r\n\
         X-Forwarded-For: {client}\r\nContent-Length: {}\r\n\r\n{poll}",
        poll.len()
    );
    tcp.write_all(req.as_bytes()).await?;
    Ok(tcp)
}

async fn bosh_run(dir: &Path, sessions: u32) -> anyhow::Result<(u64, u64, f64)> {
    raise_fd_limit(30_000);
    let server = start_ours(dir).await?;
    let http = server.http.ok_or_else(|| anyhow!("no HTTP listener"))?;
    let before = proc_status_kb(server.pid(), "VmRSS")?;
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..sessions {
        // A reverse proxy's view: 25 sessions per client address (the per-address caps
        // stay at their defaults).
        let n = i / 25;
        let [_, a, b, c] = n.to_be_bytes();
        let client = IpAddr::V4(Ipv4Addr::new(10, a, b, c));
        let sem = Arc::clone(&sem);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await?;
            idle_bosh_session(http, client).await
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.push(t.await??);
    }
    let setup = start.elapsed().as_secs_f64();
    // Let the server settle, then read its memory while every session is held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = proc_status_kb(server.pid(), "VmRSS")?;
    drop(held);
    drop(server);
    Ok((before, rss, setup))
}

// ---------------------------------------------------------------------------------------
// Output

/// One result line: the JSON contract of the other suites (`suite`, `op`, `ours_ns`,
/// `peer`, `peer_ns`, `ratio`) extended for figures that are not durations: those have
/// `ours_ns`/`peer_ns` null and carry `ours_value`/`peer_value` in `unit`.
#[derive(Debug, Serialize)]
pub(crate) struct Line {
    pub(crate) suite: &'static str,
    pub(crate) op: String,
    pub(crate) ours_ns: Option<u64>,
    pub(crate) peer: &'static str,
    pub(crate) peer_ns: Option<u64>,
    pub(crate) ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ours_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) peer_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) members: Option<u32>,
}

pub(crate) fn ratio(ours: f64, peer: Option<f64>) -> Option<f64> {
    peer.filter(|p| *p > 0.0)
        .map(|p| ((ours / p) * 1000.0).round() / 1000.0)
}

#[allow(clippy::cast_precision_loss)]
fn room_lines(ours: &RoomFigures, peer: Option<&RoomFigures>, members: u32) -> Vec<Line> {
    let peer_name = if peer.is_some() { "prosody" } else { "none" };
    let value = |op: &str, o: f64, p: Option<f64>, unit: &'static str| Line {
        suite: "relay",
        op: op.to_owned(),
        ours_ns: None,
        peer: peer_name,
        peer_ns: None,
        ratio: ratio(o, p),
        ours_value: Some((o * 10.0).round() / 10.0),
        peer_value: p.map(|p| (p * 10.0).round() / 10.0),
        unit: Some(unit),
        members: Some(members),
    };
    let time = |op: &str, o: u64, p: Option<u64>| Line {
        suite: "relay",
        op: op.to_owned(),
        ours_ns: Some(o),
        peer: peer_name,
        peer_ns: p,
        ratio: ratio(o as f64, p.map(|p| p as f64)),
        ours_value: None,
        peer_value: None,
        unit: None,
        members: Some(members),
    };
    vec![
        value(
            "deliveries_per_sec",
            ours.deliveries_per_sec,
            peer.map(|p| p.deliveries_per_sec),
            "deliveries/s",
        ),
        time("delivery_latency_p50", ours.p50_ns, peer.map(|p| p.p50_ns)),
        time("delivery_latency_p99", ours.p99_ns, peer.map(|p| p.p99_ns)),
        value(
            "peak_rss",
            ours.peak_rss_kb as f64 / 1024.0,
            peer.map(|p| p.peak_rss_kb as f64 / 1024.0),
            "MB",
        ),
    ]
}

pub(crate) fn print_lines(lines: &[Line], json: bool) -> anyhow::Result<()> {
    if json {
        for l in lines {
            println!("{}", serde_json::to_string(l)?);
        }
        return Ok(());
    }
    println!(
        "{:<24} {:>14} {:>14} {:>8}  unit",
        "op", "ours", "peer", "ratio"
    );
    for l in lines {
        let (o, p, unit) = match (l.ours_ns, l.ours_value) {
            (Some(o), _) => (
                format!("{:.1}", o as f64 / 1000.0),
                l.peer_ns
                    .map_or("-".into(), |p| format!("{:.1}", p as f64 / 1000.0)),
                "us",
            ),
            (None, Some(v)) => (
                format!("{v:.1}"),
                l.peer_value.map_or("-".into(), |p| format!("{p:.1}")),
                l.unit.unwrap_or(""),
            ),
            _ => ("-".into(), "-".into(), ""),
        };
        let r = l.ratio.map_or("-".into(), |r| format!("{r:.3}"));
        println!("{:<24} {o:>14} {p:>14} {r:>8}  {unit}", l.op);
    }
    Ok(())
}

/// Runs the suite.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cryptocat-bench-relay-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ours"))?;
    let result = run_in(&dir, args).await;
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("keeping {} for inspection", dir.display());
    }
    result
}

async fn run_in(dir: &Path, args: &Args) -> anyhow::Result<()> {
    let cert = rcgen::generate_simple_self_signed(vec![
        DOMAIN.to_owned(),
        format!("conference.{DOMAIN}"),
    ])?;
    std::fs::write(dir.join("cert.pem"), cert.cert.pem())?;
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem())?;
    let der = CertificateDer::from(cert.cert.der().to_vec());

    let ours = {
        let server = start_ours(dir).await?;
        let figures = room_run(&server, der.clone(), args)
            .await
            .with_context(|| format!("room run against {}", server.name))?;
        figures
    };
    let peer = if args.no_prosody {
        None
    } else {
        match start_prosody(dir).await? {
            Some(server) => Some(
                room_run(&server, der.clone(), args)
                    .await
                    .with_context(|| format!("room run against {}", server.name))?,
            ),
            None => None,
        }
    };
    let mut lines = room_lines(&ours, peer.as_ref(), args.members);
    if args.bosh_sessions > 0 {
        let (before, rss, setup) = bosh_run(dir, args.bosh_sessions).await?;
        eprintln!(
            "{} idle BOSH sessions set up in {setup:.1} s; relay RSS {:.1} MB before, {:.1} MB holding them",
            args.bosh_sessions,
            before as f64 / 1024.0,
            rss as f64 / 1024.0
        );
        lines.push(Line {
            suite: "relay",
            op: format!("bosh_idle_{}_rss", args.bosh_sessions),
            ours_ns: None,
            peer: "goal",
            peer_ns: None,
            ratio: ratio(rss as f64 / 1024.0, Some(500.0)),
            ours_value: Some(((rss as f64 / 1024.0) * 10.0).round() / 10.0),
            peer_value: Some(500.0),
            unit: Some("MB"),
            members: None,
        });
    }
    print_lines(&lines, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_1_kib_of_base64_and_a_valid_group_message() {
        let b = payload_b64(3, 10);
        assert!((1024..1030).contains(&b.len()), "{}", b.len());
        assert_eq!(GroupMessage::from_base64(&b).unwrap().index, 3);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&[], 50), 0);
    }
}
