//! The `cryptocat-server` binary as an operator runs it: the start banner (its lines, the
//! key pin, the invite-link prefix that works as printed), the same pin after a restart
//! with the same state directory, and a clean shutdown on SIGTERM: every stream ends with
//! `system-shutdown` and `</stream:stream>`, and the process exits 0.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cryptocat_link::{Invite, Pin, Transport};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::client::Client;

const TIMEOUT: Duration = Duration::from_secs(20);

/// The process, killed on drop (a failing test leaves nothing running).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the banner said.
struct Banner {
    lines: Vec<String>,
    c2s: std::net::SocketAddr,
    certificate: PathBuf,
    pin: Pin,
    prefix: String,
}

fn start(state: &Path) -> (Killed, Banner) {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_cryptocat-server"))
            .args(["--domain", "localhost", "--c2s", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !lines
        .last()
        .is_some_and(|l: &String| l.contains("invite links"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(rx.recv_timeout(left).expect("banner incomplete"));
    }
    let find = |start: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(start))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {start:?} line in {lines:#?}"))
    };
    let c2s = find("cryptocat-server: c2s on ")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The line scripts read: `cryptocat-server: ORIGIN certificate PATH`.
    let certificate = lines
        .iter()
        .find_map(|l| l.split_once(" certificate ").map(|(_, p)| PathBuf::from(p)))
        .unwrap();
    let pin = find("cryptocat-server: key pin ").parse().unwrap();
    let prefix = find("cryptocat-server: invite links: ");
    (
        child,
        Banner {
            lines,
            c2s,
            certificate,
            pin,
            prefix,
        },
    )
}

fn wait_exit(child: &mut Killed) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn banner_link_prefix_same_pin_after_restart_and_clean_sigterm() {
    let state = std::env::temp_dir().join(format!("cryptocat-process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let (mut server, banner) = start(&state);

    // The existing lines are still there, then the pin and the link prefix.
    for start in [
        "cryptocat-server: c2s on ",
        "cryptocat-server: BOSH at http://127.0.0.1:",
        "cryptocat-server: WebSocket at ws://127.0.0.1:",
        "cryptocat-server: generated self-signed certificate ",
        "cryptocat-server: SHA-256 fingerprint ",
    ] {
        assert!(
            banner.lines.iter().any(|l| l.starts_with(start)),
            "{start:?} missing from {:#?}",
            banner.lines
        );
    }
    let certificate = CertificateDer::from_pem_file(&banner.certificate).unwrap();
    assert_eq!(Pin::of_certificate(&certificate).unwrap(), banner.pin);
    let invite = Invite::parse(&format!("{}lobby", banner.prefix)).unwrap();
    assert_eq!(invite.room, "lobby");
    assert_eq!(invite.access.pins, vec![banner.pin]);
    assert_eq!(invite.access.domain.as_deref(), Some("localhost"));
    let transports: Vec<Transport> = invite.access.servers.iter().map(|s| s.transport).collect();
    // The plain HTTP listener is not in the link: a pin is checked over TLS only.
    assert_eq!(transports, [Transport::Tcp]);
    let xmpp = invite.access.servers.last().unwrap();
    assert_eq!(
        (xmpp.host.as_str(), xmpp.port),
        ("127.0.0.1", banner.c2s.port())
    );

    // A stream still negotiating, and an account in a room over TLS.
    let mut raw = tokio::net::TcpStream::connect(banner.c2s).await.unwrap();
    raw.write_all(
        b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("</stream:features>") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(TIMEOUT, raw.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the features");
        seen.extend_from_slice(&buf[..n]);
    }
    let mut member = Client::connect_addr(banner.c2s, certificate).await;
    member.starttls().await;
    member.open_stream().await;
    let registered = member.register("ada", "pw-ada").await;
    assert_eq!(registered.attr("type"), Some("result"));
    member.login("ada", "pw-ada").await.unwrap();
    member.bind().await;
    member.join("lobby", "ada").await;

    rustix::process::kill_process(
        rustix::process::Pid::from_child(&server.0),
        rustix::process::Signal::TERM,
    )
    .unwrap();

    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, raw.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("<system-shutdown"), "{rest}");
    assert!(rest.trim_end().ends_with("</stream:stream>"), "{rest}");
    assert_eq!(member.expect_stream_error().await, "system-shutdown");
    let status = wait_exit(&mut server);
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Restarted with the same state directory: the same key, so the same pin and links.
    let (_again, restarted) = start(&state);
    assert_eq!(restarted.pin, banner.pin);
    assert_eq!(
        std::fs::read(&restarted.certificate).unwrap(),
        std::fs::read(&banner.certificate).unwrap()
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// `cryptocat-server component` refuses a secret file it must not use, with exit status 2
/// and one line that names the file and the problem, never the secret.
#[test]
fn component_refuses_unusable_secret_files_without_quoting_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("cc-component-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, content: &[u8], mode: u32| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let cases = [
        (dir.join("missing"), "does not exist"),
        (write("empty", b"\n", 0o600), "is empty"),
        (
            write("large", &[b's'; 4096], 0o600),
            "larger than 1024 bytes",
        ),
        (
            write("open", b"hunter2-secret\n", 0o644),
            "readable by every user",
        ),
    ];
    for (path, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_cryptocat-server"))
            .args([
                "component",
                "--connect",
                "127.0.0.1:9",
                "--domain",
                "conference.localhost",
            ])
            .arg("--secret-file")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("sss"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing started");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
