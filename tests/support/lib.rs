//! Support shared by the cross-crate end-to-end tests: the workspace's binaries as
//! processes that speak JSON lines (and their Windows builds under Wine, [`wine`]), other
//! computers as network namespaces joined by a veth pair, and packet captures read back.
//!
//! Every resource is a guard: processes are killed and namespaces deleted on drop, so a
//! failing test cleans up as a passing one does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    missing_debug_implementations
)]

pub mod cluster;
pub mod component;
pub mod ejabberd;
pub mod netns;
pub mod pcap;
pub mod prosody;
pub mod relay;
pub mod stock;
pub mod wine;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a test waits for one expected event.
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether `CRYPTOCAT_REQUIRE_INTEROP=1` (CI): then a missing tool fails the test.
pub fn required() -> bool {
    std::env::var("CRYPTOCAT_REQUIRE_INTEROP").as_deref() == Ok("1")
}

/// Skips (prints a notice and returns `false`) or, when [`required`], fails.
pub fn skip(why: &str) -> bool {
    if required() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Whether every program is installed (else [`skip`]).
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
    missing.is_empty() || skip(&format!("missing {}", missing.join(", ")))
}

/// Whether this process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The profile directory the tests were built into (`target/debug`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

/// A workspace binary of the same build (`cryptocat`, `cryptocat-server`); fails with
/// the command that builds it when it is missing.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p cryptocat-cli -p cryptocat-server)",
        path.display()
    );
    path
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Makes `cryptocat-test-NAME-PID`.
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("cryptocat-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The key pin of the first certificate in a PEM file.
pub fn pem_pin(pem: &[u8]) -> cryptocat_link::Pin {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap();
    cryptocat_link::Pin::of_certificate(&der.into()).unwrap()
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on loopback `port`; `None` after `limit`.
pub fn wait_listening(port: u16, limit: Duration) -> Option<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The lines of a process's output, read on a thread (so that a test can wait with a
/// timeout instead of blocking on a pipe that never ends). The thread reads to the end even
/// once the receiver is dropped: a process that prints more (the relay's banner after the
/// line a test waited for) must not write into a closed pipe, where its `println!` panics
/// (seen with `cryptocat-server.exe` under Wine, which then dropped every client).
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            // A dropped receiver: keep draining.
            let _ = tx.send(line);
        }
    });
    rx
}

/// Sends `signal` (`TERM`, `INT`, …) to `child` and waits at most `limit` for it to end;
/// `None` if it did not.
pub fn signal_and_wait(child: &mut Child, signal: &str, limit: Duration) -> Option<ExitStatus> {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A child process, killed on drop.
pub struct Killed(pub Child);

impl Killed {
    /// Starts `command` with nothing on stdin and its output inherited.
    pub fn spawn(command: &mut Command) -> Self {
        Self(command.stdin(Stdio::null()).spawn().unwrap())
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, …); `None` once the process is
/// gone or on a system without it.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// A process that prints one JSON object per line (`cryptocat … --json`) and reads
/// commands on stdin; killed on drop.
pub struct JsonChild {
    label: String,
    /// `None` when another owner holds (and kills) the process ([`JsonChild::attach`]).
    child: Option<Child>,
    pid: u32,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    seen: Vec<Value>,
}

impl JsonChild {
    /// Starts `command` (stdin and stdout piped, stderr inherited).
    pub fn start(command: &mut Command, label: &str) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot start: {e}"));
        let mut json = Self::attach(&mut child, label);
        json.child = Some(child);
        json
    }

    /// Reads the JSON lines of a child that another owner keeps and kills (the desktop
    /// end-to-end test's process registry): takes its piped stdin and stdout.
    pub fn attach(child: &mut Child, label: &str) -> Self {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout not piped");
        let (tx, events) = mpsc::channel();
        let name = label.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("{name}: not JSON: {line}"),
                }
            }
        });
        Self {
            label: label.to_owned(),
            child: None,
            pid: child.id(),
            stdin,
            events,
            seen: Vec::new(),
        }
    }

    /// Writes one line to its stdin.
    pub fn line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first event (already seen, or from now on) that `f` accepts; fails after
    /// [`WAIT`] with every event seen.
    pub fn wait(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        self.wait_within(what, WAIT, f)
    }

    /// [`JsonChild::wait`] with another bound.
    pub fn wait_within(
        &mut self,
        what: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if f(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {limit:?}; seen: {:#?}",
                    self.label, self.seen
                ),
            }
        }
    }

    /// The first event of `type`.
    pub fn wait_type(&mut self, kind: &str) -> Value {
        self.wait(kind, |v| v["type"] == kind)
    }

    /// Closes stdin and waits (at most [`WAIT`]) for the process to end.
    pub fn finish(&mut self) -> ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + WAIT;
        loop {
            let child = self
                .child
                .as_mut()
                .expect("an attached child: its owner waits for it");
            if let Some(status) = child.try_wait().unwrap() {
                // Collect what it printed last.
                while let Ok(v) = self.events.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(v);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: did not exit; seen: {:#?}",
                self.label,
                self.seen
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every event seen so far.
    pub fn seen(&self) -> &[Value] {
        &self.seen
    }

    /// Takes in what it printed since the last look, without waiting; the number of new
    /// events.
    pub fn poll(&mut self) -> usize {
        let before = self.seen.len();
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        self.seen.len() - before
    }

    /// Its process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Forgets the events printed so far: the next `wait` looks only at new ones.
    pub fn forget(&mut self) {
        while self.events.try_recv().is_ok() {}
        self.seen.clear();
    }

    /// The last event printed so far that `f` accepts (waiting for one if none was).
    pub fn latest(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        self.poll();
        match self.seen.iter().rev().find(|v| f(v)) {
            Some(v) => v.clone(),
            None => self.wait(what, f),
        }
    }
}

impl Drop for JsonChild {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
