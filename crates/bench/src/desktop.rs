//! The desktop suite: the release `cryptocat-desktop` against a blank Tauri window (the
//! same binary with `--blank-window`: one window on an empty page, default WebKit
//! settings), one after the other under an Xvfb server of the suite's own.
//!
//! - Launch: from spawning the process to its readiness line on stderr (the app logs
//!   "join screen ready" when the UI has mounted the join screen and listens to events;
//!   the blank window logs "blank page loaded"). Goal: under 1 s.
//! - Idle memory with a room open: the app joins a room on its built-in relay
//!   (`CRYPTOCAT_BENCH_AUTOJOIN`: the UI submits it like a typed request), both sit idle
//!   for `--idle-secs`, then PSS (`/proc/PID/smaps_rollup`) is summed over the process and
//!   all its descendants (WebKitWebProcess, WebKitNetworkProcess), with the breakdown by
//!   process name. Summed RSS is printed too (it counts shared pages once per process).
//!   Goal: at most 1.1 times the blank window.
//! - The size of the `.deb` (`scripts/package`), when one exists. Goal: under 15 MB.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use crate::relay::{print_lines, ratio, Line};

/// Options of the desktop suite.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The app's binary (default: `cryptocat-desktop` beside this one, i.e. the release
    /// build; build it with `cargo build --release -p cryptocat-desktop`).
    #[arg(long)]
    pub app: Option<PathBuf>,
    /// Seconds each process sits idle before its memory is read.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// The `.deb` whose size to report (default: the newest in
    /// `target/release/bundle/deb/`, if any).
    #[arg(long)]
    pub deb: Option<PathBuf>,
}

/// How long a launch or a join may take before the suite gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The goal for the `.deb`, printed as its peer (`"peer":"goal"`).
const DEB_GOAL_MB: f64 = 15.0;
/// What the bench asks the app to join.
const AUTOJOIN: &str = "bench-room,bencher";

/// Memory of one process tree, in kB, by process name.
#[derive(Debug, Default, Clone)]
struct Memory {
    pss_kb: BTreeMap<String, u64>,
    rss_kb: u64,
}

impl Memory {
    fn pss_total_kb(&self) -> u64 {
        self.pss_kb.values().sum()
    }
}

/// One measured process: launch time and idle memory.
#[derive(Debug)]
struct Figures {
    launch: Duration,
    memory: Memory,
}

/// Runs the suite.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let app = match &args.app {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no folder around this binary"))?
            .join("cryptocat-desktop"),
    };
    if !app.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p cryptocat-desktop)",
            app.display()
        );
    }
    let xvfb = Xvfb::start()?;
    let idle = Duration::from_secs(args.idle_secs);
    let peer = measure(&app, &xvfb.display, Mode::Blank, idle).context("blank window")?;
    let ours = measure(&app, &xvfb.display, Mode::App, idle).context("app")?;
    drop(xvfb);
    let deb = match &args.deb {
        Some(p) => Some(p.clone()),
        None => newest_deb(&app),
    };
    let deb_bytes = match &deb {
        Some(p) => Some(
            std::fs::metadata(p)
                .with_context(|| p.display().to_string())?
                .len(),
        ),
        None => None,
    };
    print_lines(&lines(&ours, &peer, deb_bytes), args.json)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    App,
    Blank,
}

/// Launches one process, waits for readiness (and the join), idles, reads its memory.
fn measure(app: &Path, display: &str, mode: Mode, idle: Duration) -> anyhow::Result<Figures> {
    let mut cmd = Command::new(app);
    cmd.env("DISPLAY", display)
        .env("RUST_LOG", "warn,cryptocat_desktop::ready=info")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove(AUTOJOIN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match mode {
        Mode::App => {
            cmd.env(AUTOJOIN_ENV, AUTOJOIN);
        }
        Mode::Blank => {
            cmd.arg("--blank-window");
        }
    }
    let start = Instant::now();
    let mut child = Killed(cmd.spawn().with_context(|| app.display().to_string())?);
    let stderr = child
        .0
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no stderr pipe"))?;
    let lines = stderr_lines(stderr);
    let ready = match mode {
        Mode::App => "join screen ready",
        Mode::Blank => "blank page loaded",
    };
    let launch = wait_for(&lines, ready, start)?;
    if mode == Mode::App {
        wait_for(&lines, "room joined", start)?;
    }
    std::thread::sleep(idle);
    if let Some(status) = child.0.try_wait()? {
        bail!("exited while idle: {status}");
    }
    let memory = tree_memory(child.0.id())?;
    Ok(Figures { launch, memory })
}

/// The app's auto-join variable (see `cryptocat_desktop::commands::AUTOJOIN_ENV`).
const AUTOJOIN_ENV: &str = "CRYPTOCAT_BENCH_AUTOJOIN";

/// Kills the process (and so its WebKit children, which exit with it) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Forwards each stderr line, with the instant it arrived, to a channel.
fn stderr_lines(stderr: impl std::io::Read + Send + 'static) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a stderr line containing `needle`; returns its arrival time since `start`.
fn wait_for(
    lines: &mpsc::Receiver<(Instant, String)>,
    needle: &str,
    start: Instant,
) -> anyhow::Result<Duration> {
    let deadline = start + STEP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((at, line)) if line.contains(needle) => return Ok(at.duration_since(start)),
            Ok((_, line)) => {
                if line.contains("ERROR") {
                    eprintln!("desktop: {line}");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("no \"{needle}\" within {STEP_TIMEOUT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the process ended before \"{needle}\"")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Memory of a process tree

/// PSS by process name and summed RSS over `root` and all its descendants.
fn tree_memory(root: u32) -> anyhow::Result<Memory> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes may end while we look: skip what cannot be read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = parent_pid(&stat) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut memory = Memory::default();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some(kids) = children.get(&pid) {
            todo.extend(kids);
        }
        let (rollup, name) = match (
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")),
            std::fs::read_to_string(format!("/proc/{pid}/comm")),
        ) {
            (Ok(rollup), Ok(name)) => (rollup, name.trim().to_owned()),
            // A descendant that ended while we looked.
            _ if pid != root => continue,
            (Err(e), _) | (_, Err(e)) => return Err(e).context("/proc of the app"),
        };
        let name = if pid == root { "app".to_owned() } else { name };
        *memory.pss_kb.entry(name).or_default() += rollup_kb(&rollup, "Pss")?;
        memory.rss_kb += rollup_kb(&rollup, "Rss")?;
    }
    Ok(memory)
}

/// The parent's pid from the text of `/proc/PID/stat` (the name, in parentheses, may hold
/// spaces and parentheses: the fields after the last `)` are state, then ppid).
fn parent_pid(stat: &str) -> Option<u32> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A `Field:   N kB` value of `/proc/PID/smaps_rollup`.
fn rollup_kb(text: &str, field: &str) -> anyhow::Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in smaps_rollup"))
}

// ---------------------------------------------------------------------------------------
// Xvfb, the .deb, output

/// An Xvfb server on a display number it picks itself (`-displayfd`), killed on drop.
struct Xvfb {
    child: Killed,
    display: String,
}

impl Xvfb {
    fn start() -> anyhow::Result<Self> {
        let mut child = Killed(
            Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("Xvfb is needed (Debian: apt-get install xvfb)")?,
        );
        let mut stdout = child
            .0
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        // Xvfb writes the display number and a newline once it accepts clients.
        let mut number = String::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte)? == 1 && byte != *b"\n" {
            number.push(char::from(byte[0]));
        }
        let number: u32 = number
            .trim()
            .parse()
            .context("Xvfb gave no display number")?;
        Ok(Self {
            child,
            display: format!(":{number}"),
        })
    }
}

impl std::fmt::Debug for Xvfb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Xvfb({}, pid {})", self.display, self.child.0.id())
    }
}

/// The newest `.deb` under `target/release/bundle/deb/` (the app binary's folder).
fn newest_deb(app: &Path) -> Option<PathBuf> {
    let dir = app.parent()?.join("bundle").join("deb");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

fn mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0 * 10.0).round() / 10.0
}

#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn lines(ours: &Figures, peer: &Figures, deb_bytes: Option<u64>) -> Vec<Line> {
    let value = |op: &str, o: f64, p: Option<f64>, unit: &'static str| Line {
        suite: "desktop",
        op: op.to_owned(),
        ours_ns: None,
        peer: if op == "deb_size" {
            "goal"
        } else {
            "blank-tauri-window"
        },
        peer_ns: None,
        ratio: ratio(o, p),
        ours_value: Some((o * 10.0).round() / 10.0),
        peer_value: p.map(|p| (p * 10.0).round() / 10.0),
        unit: Some(unit),
        members: None,
    };
    let launch_o = ours.launch.as_nanos() as u64;
    let launch_p = peer.launch.as_nanos() as u64;
    let mut out = vec![
        Line {
            suite: "desktop",
            op: "launch_to_ready".to_owned(),
            ours_ns: Some(launch_o),
            peer: "blank-tauri-window",
            peer_ns: Some(launch_p),
            ratio: ratio(launch_o as f64, Some(launch_p as f64)),
            ours_value: None,
            peer_value: None,
            unit: None,
            members: None,
        },
        value(
            "idle_pss_total",
            mb(ours.memory.pss_total_kb()),
            Some(mb(peer.memory.pss_total_kb())),
            "MB",
        ),
    ];
    let names: std::collections::BTreeSet<&String> = ours
        .memory
        .pss_kb
        .keys()
        .chain(peer.memory.pss_kb.keys())
        .collect();
    for name in names {
        let o = ours.memory.pss_kb.get(name).copied().unwrap_or(0);
        let p = peer.memory.pss_kb.get(name).copied().unwrap_or(0);
        out.push(value(&format!("idle_pss_{name}"), mb(o), Some(mb(p)), "MB"));
    }
    out.push(value(
        "idle_rss_summed",
        mb(ours.memory.rss_kb),
        Some(mb(peer.memory.rss_kb)),
        "MB",
    ));
    if let Some(bytes) = deb_bytes {
        out.push(value("deb_size", mb(bytes / 1024), Some(DEB_GOAL_MB), "MB"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_skips_names_with_spaces_and_parentheses() {
        let stat = "4242 (Web Content (x)) S 4100 4242 4242 0 -1 4194560 1 0 0";
        assert_eq!(parent_pid(stat), Some(4100));
        assert_eq!(parent_pid("1 (init) S"), None);
        assert_eq!(parent_pid("garbage"), None);
    }

    #[test]
    fn rollup_fields_are_read_in_kb() {
        let text = "55d0-7ffe ---p 00000000 00:00 0  [rollup]\nRss:              419000 kB\n\
                    Pss:              247000 kB\nPss_Anon:          1000 kB\n";
        assert_eq!(rollup_kb(text, "Pss").unwrap(), 247_000);
        assert_eq!(rollup_kb(text, "Rss").unwrap(), 419_000);
        assert!(rollup_kb(text, "Swap").is_err());
    }

    #[test]
    fn own_process_tree_is_measured() {
        let m = tree_memory(std::process::id()).unwrap();
        assert!(m.pss_total_kb() > 0);
        assert!(m.rss_kb >= m.pss_total_kb());
        assert!(m.pss_kb.contains_key("app"));
    }
}
