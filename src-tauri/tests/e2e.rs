//! The real app end to end: the debug `cryptocat-desktop` binary under Xvfb, driven through
//! WebDriver (`tauri-driver` in front of Debian's `WebKitWebDriver`), together with the
//! `cryptocat` CLI (`cryptocat join LINK --nick bob --json`) joining the same room on the
//! app's embedded relay through the link the room's invite panel shows (c2s with STARTTLS,
//! the relay's key checked against the link's pin).
//!
//! It joins through the UI, exchanges group messages both ways, sees the app's message
//! confirmed by 1 of 1, chats in private, compares the fingerprint in the verification
//! dialog with the one the CLI printed, marks the CLI's member verified, answers the CLI's
//! secret question in the UI (both sides see the match), and sees the "nickname taken"
//! warning when a second CLI claims the same nickname with another key. Then it leaves and
//! hands the invite link to a second invocation of the app binary, as the desktop does when
//! a link is clicked: that process exits with status 0, the first window shows the join
//! screen filled from the link (the room and the "checked by the invite's key" mark), and
//! with a nickname typed it joins and chats with the CLI again. It takes a
//! screenshot of each screen from the X server (`xwd`); with `CRYPTOCAT_UPDATE_SCREENSHOTS=1`
//! they are written to `docs/screenshots/`.
//!
//! The app runs in a desktop session of its own: a private session bus (`dbus-daemon`),
//! dunst as the notification server, and the tray side of a panel
//! (`tests/support/sni_host.py`: the StatusNotifierWatcher that the app's
//! libayatana-appindicator registers with, reading the item and its menu over D-Bus as a
//! panel does). With another window focused (xclock, focused by `xdotool`), a message from
//! the CLI makes a `Notify` call with the content hidden and puts the red dot on the tray
//! icon; dunst's default action (a click on the notification) gives the window the focus
//! back and takes the dot off; the tray menu has Show, Mute and Quit, and Quit ends the app,
//! which leaves the room (the CLI sees it go).
//!
//! The session also runs GNOME Keyring (unlocked, in a throw-away HOME). "Remember my
//! identity" is turned on before the first join; after Quit, the app is started again and
//! joins with the same fingerprint, showing the CLI's member as verified: both came back from
//! the keyring.
//!
//! Needs `Xvfb`, `xwd` and `xclock` (Debian's `x11-apps`), `xdotool`, `dbus-daemon`,
//! `dbus-monitor`, `dbus-send`, `dunst`, `gnome-keyring-daemon`, Debian's `python3-gi`,
//! `tauri-driver` (`cargo install tauri-driver --version 2.1.0 --locked`),
//! `WebKitWebDriver` (Debian's `webkit2gtk-driver`) and the CLI built into the same target
//! directory (`cargo build -p cryptocat-cli`); `scripts/test` ensures all of them. Without
//! them the test prints a notice and passes, unless `CRYPTOCAT_REQUIRE_INTEROP=1`.
//!
//! The WebDriver client is a few lines of HTTP/1.0 over `TcpStream` with `serde_json`.
// Linux only: Xvfb, WebKitWebDriver, D-Bus, dunst and a tray host: a Linux desktop session.
#![cfg(target_os = "linux")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROOM: &str = "garden";
const APP_NICK: &str = "alice";
const CLI_NICK: &str = "bob";
const WAIT: Duration = Duration::from_secs(30);

// ---- processes -------------------------------------------------------------------------

/// Kills (and reaps) its children when dropped, so a failed assertion leaves nothing behind.
struct Procs(Vec<(&'static str, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in self.0.iter_mut().rev() {
            // Each runs in its own process group (tauri-driver's WebKitWebDriver and the
            // app go with it).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The target directory's profile folder (`target/debug`), from this test's own path
/// (`target/debug/deps/e2e-HASH`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first display from :92 on with no X server (lock file or socket).
fn free_display() -> u32 {
    (92..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("no free X display")
}

/// Starts tauri-driver (`command`, with its environment set) on free ports in front of
/// WebKitWebDriver, registered in `procs`; returns its port once it listens.
fn start_tauri_driver(
    procs: &mut Procs,
    label: &'static str,
    webkit_driver: &Path,
    command: &mut Command,
) -> u16 {
    let (port, native_port) = (free_port(), free_port());
    procs.0.push((
        label,
        command
            .args([
                "--port".to_owned(),
                port.to_string(),
                "--native-port".to_owned(),
                native_port.to_string(),
                "--native-driver".to_owned(),
                webkit_driver.display().to_string(),
            ])
            // No accessibility bus under Xvfb; WebKit would wait for it.
            .env("NO_AT_BRIDGE", "1")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    wait_for(label, Duration::from_secs(10), || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
    });
    port
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- WebDriver -------------------------------------------------------------------------

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.0 request (the server closes the connection after the response, so the
/// body is everything after the headers, never chunked).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let resp = String::from_utf8_lossy(&resp);
    let (_, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("bad HTTP response: {resp}"))?;
    let v: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    match v.get("value") {
        Some(value) if value.get("error").is_some() => Err(format!(
            "{}: {}",
            value["error"],
            value["message"].as_str().unwrap_or("")
        )),
        Some(value) => Ok(value.clone()),
        None => Ok(v),
    }
}

struct Driver {
    port: u16,
    session: String,
}

impl Driver {
    /// A new session: tauri-driver starts the app.
    fn launch(port: u16, caps: &Value) -> Driver {
        // tauri-driver accepts connections before WebKitWebDriver answers: retry briefly.
        let start = Instant::now();
        let session = loop {
            match http(port, "POST", "/session", Some(caps)) {
                Ok(v) => break v,
                Err(e) if start.elapsed() > Duration::from_secs(20) => {
                    panic!("WebDriver session: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        Driver {
            port,
            session: session["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    fn find(&self, using: &str, value: &str) -> Result<String, String> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": using, "value": value })),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element id in {v}"))
    }

    /// Waits for an element (by CSS selector, or XPath when it starts with `/`).
    fn el(&self, selector: &str) -> String {
        let using = if selector.starts_with('/') {
            "xpath"
        } else {
            "css selector"
        };
        let start = Instant::now();
        loop {
            match self.find(using, selector) {
                Ok(id) => return id,
                Err(e) if start.elapsed() > WAIT => panic!("no element {selector}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn click(&self, selector: &str) {
        let id = self.el(selector);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    fn type_into(&self, selector: &str, text: &str) {
        let id = self.el(selector);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    fn text(&self, selector: &str) -> String {
        let id = self.el(selector);
        self.call("GET", &format!("/element/{id}/text"), None)
            .unwrap_or_else(|e| panic!("text of {selector}: {e}"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page and returns its result.
    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Waits until the script returns something truthy, and returns it.
    fn until(&self, what: &str, script: &str) -> Value {
        self.until_or(what, script, String::new)
    }

    /// [`Self::until`], with `context()` (what the CLI printed, say) in the failure.
    fn until_or(&self, what: &str, script: &str, context: impl Fn() -> String) -> Value {
        let start = Instant::now();
        loop {
            let v = self.script(script);
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            if start.elapsed() > WAIT {
                let shown = self.script(
                    "return [...document.querySelectorAll('.messages .message')].map(m => m.textContent).join(' | ')",
                );
                panic!(
                    "timed out waiting for {what}; the app shows: {shown}; {}",
                    context()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---- screenshots -----------------------------------------------------------------------

/// A picture of the app's window, taken from the X server with `xwd` (Debian's x11-apps).
/// WebDriver's own screenshot never returns here: WebKitGTK's snapshot waits for a
/// composited frame, and the app turns WebKit's compositing off (src-tauri/src/webkit.rs).
/// Fails unless the window shows more than a few colours (a blank or black window would
/// pass a plain "is it a PNG" check); written to docs/screenshots/NAME.png when
/// `CRYPTOCAT_UPDATE_SCREENSHOTS=1`.
fn screenshot(xwd: &Path, display: u32, name: &str) {
    let start = Instant::now();
    let (width, height, rgb) = loop {
        let out = Command::new(xwd)
            .args([
                "-silent",
                "-display",
                &format!(":{display}"),
                "-name",
                "Cryptocat",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: xwd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (width, height, rgb) =
            decode_xwd(&out.stdout).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut colours: Vec<&[u8]> = rgb.chunks_exact(3).collect();
        colours.sort_unstable();
        colours.dedup();
        // The window is mapped before WebKit paints into it: wait for the paint.
        if colours.len() > 16 {
            break (width, height, rgb);
        }
        assert!(
            start.elapsed() < WAIT,
            "{name}: the window shows {} colours",
            colours.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    if std::env::var("CRYPTOCAT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(dir.join(format!("{name}.png"))).unwrap();
        let mut png = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        png.set_color(png::ColorType::Rgb);
        png.set_depth(png::BitDepth::Eight);
        png.write_header().unwrap().write_image_data(&rgb).unwrap();
    }
}

/// Width, height and RGB bytes of an XWD image in ZPixmap format with 24 or 32 bits per
/// pixel (what `xwd` writes for a TrueColor window).
fn decode_xwd(data: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let field = |i: usize| -> Result<u32, String> {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "short XWD header".to_owned())
    };
    let (header_size, format, width, height) = (field(0)?, field(2)?, field(4)?, field(5)?);
    let (byte_order, bits_per_pixel, bytes_per_line) = (field(7)?, field(11)?, field(12)?);
    let (masks, ncolors) = ([field(14)?, field(15)?, field(16)?], field(19)?);
    if format != 2 || width == 0 || height == 0 || masks.contains(&0) {
        return Err(format!(
            "unexpected XWD image (format {format}, {width}x{height})"
        ));
    }
    // 24-bit pixels may be stored in 32-bit units: the line length tells.
    let pixel_bytes = match (bits_per_pixel, bytes_per_line / width) {
        (24 | 32, 4..) => 4,
        (24, 3) => 3,
        _ => return Err(format!("unexpected {bits_per_pixel} bits per pixel")),
    };
    let pixels_at = header_size as usize + ncolors as usize * 12;
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height as usize {
        let line = pixels_at + y * bytes_per_line as usize;
        for x in 0..width as usize {
            let at = line + x * pixel_bytes;
            let b = data.get(at..at + pixel_bytes).ok_or("short XWD image")?;
            let mut word = [0u8; 4];
            word[..pixel_bytes].copy_from_slice(b);
            let v = if byte_order == 0 {
                u32::from_le_bytes(word)
            } else {
                u32::from_be_bytes(word) >> (8 * (4 - pixel_bytes))
            };
            for mask in masks {
                rgb.push(u8::try_from((v & mask) >> mask.trailing_zeros()).unwrap_or(u8::MAX));
            }
        }
    }
    Ok((width, height, rgb))
}

// ---- the CLI and the tray host -----------------------------------------------------------

/// A child process that prints one JSON object per line (`cryptocat join --json`, the tray
/// host in tests/support/sni_host.py) and reads commands on stdin.
struct JsonChild {
    label: &'static str,
    stdin: ChildStdin,
    events: Receiver<Value>,
    seen: Vec<Value>,
}

impl JsonChild {
    fn start(procs: &mut Procs, bin: &Path, args: &[String], label: &'static str) -> JsonChild {
        Self::start_with(procs, Command::new(bin).args(args), label)
    }

    fn start_with(procs: &mut Procs, command: &mut Command, label: &'static str) -> JsonChild {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("{label}: not JSON: {line}"),
                }
            }
        });
        procs.0.push((label, child));
        JsonChild {
            label,
            stdin,
            events,
            seen: Vec::new(),
        }
    }

    fn line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Forgets the events printed so far: the next `wait` looks only at new ones.
    fn forget(&mut self) {
        while self.events.try_recv().is_ok() {}
        self.seen.clear();
    }

    /// The last event printed so far that `f` accepts (waiting for one if none was).
    fn latest(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        match self.seen.iter().rev().find(|v| f(v)) {
            Some(v) => v.clone(),
            None => self.wait(what, f),
        }
    }

    /// The first event (from now on, or already seen) that `f` accepts.
    fn wait(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + WAIT;
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
                    "{} did not print {what}; it printed: {:#?}",
                    self.label, self.seen
                ),
            }
        }
    }
}

// ---- the desktop session ------------------------------------------------------------------

/// A session bus with no services to start on demand, open to everything on it
/// (`dbus-monitor` watches the `Notify` calls).
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// Debian's Python, with python3-gi (a Python from pyenv or a venv lacks `gi`).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The `Notify` calls on the session bus, as `dbus-monitor` prints them.
struct NotifyLog(std::sync::Arc<std::sync::Mutex<String>>);

impl NotifyLog {
    fn start(procs: &mut Procs, env: &[(&str, String)]) -> NotifyLog {
        let mut child = Command::new("dbus-monitor")
            .args([
                "--session",
                "interface='org.freedesktop.Notifications',member='Notify'",
            ])
            .envs(env.iter().cloned())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        procs.0.push(("dbus-monitor", child));
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut log = writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // dbus-monitor prints its own NameAcquired signal once it listens.
        wait_for("dbus-monitor", WAIT, || !log.lock().unwrap().is_empty());
        NotifyLog(log)
    }

    /// The first `Notify` call whose text contains `needle`.
    fn wait(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let found = self
                .0
                .lock()
                .unwrap()
                .split("method call ")
                .find(|call| call.contains("member=Notify") && call.contains(needle))
                .map(str::to_owned);
            if let Some(call) = found {
                return call;
            }
            assert!(
                start.elapsed() < WAIT,
                "no Notify call with {needle:?}: {}",
                self.0.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Opens another window (xclock, away from the app's) and gives it the keyboard focus, as
/// when the person turns to another program.
fn focus_another_window(procs: &mut Procs, env: &[(&str, String)]) {
    let clock = Command::new("xclock")
        .args(["-geometry", "100x100+1170+690"])
        .envs(env.iter().cloned())
        .process_group(0)
        .spawn()
        .unwrap();
    procs.0.push(("xclock", clock));
    let out = Command::new("xdotool")
        .args(["search", "--sync", "--name", "^xclock$"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no xclock window"))
        .to_owned();
    let status = Command::new("xdotool")
        .args(["windowfocus", "--sync", &id])
        .envs(env.iter().cloned())
        .status()
        .unwrap();
    assert!(status.success(), "xdotool windowfocus: {status}");
}

/// The PNG file a StatusNotifierItem event names (IconName, a path or a name in
/// IconThemePath).
fn icon_file(item: &Value) -> PathBuf {
    let name = item["icon_name"].as_str().unwrap_or_default();
    let theme = item["icon_theme_path"].as_str().unwrap_or_default();
    let path = if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        Path::new(theme).join(name)
    };
    if path.is_file() {
        path
    } else {
        path.with_extension("png")
    }
}

/// How many clearly red pixels a PNG has (the unread dot); `None` when it cannot be read
/// (the tray library replaces its icon files).
fn red_pixels(path: &Path) -> Option<usize> {
    let file = std::fs::File::open(path).ok()?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut buf).ok()?;
    let channels = info.color_type.samples();
    Some(
        buf.get(..info.buffer_size())?
            .chunks_exact(channels)
            .filter(|p| channels >= 3 && p[0] > 180 && p[1] < 90 && p[2] < 90)
            .count(),
    )
}

fn compact(fp: &str) -> String {
    fp.chars().filter(|c| !c.is_whitespace()).collect()
}

// ---- the test --------------------------------------------------------------------------

fn missing(what: &str) {
    let msg = format!("desktop end-to-end test: {what} not found");
    if std::env::var("CRYPTOCAT_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("{msg} (CRYPTOCAT_REQUIRE_INTEROP=1; scripts/test installs it)");
    }
    eprintln!("SKIPPED {msg}");
}

#[test]
fn desktop_app_with_the_cli_on_the_embedded_relay() {
    let started = Instant::now();
    let app = PathBuf::from(env!("CARGO_BIN_EXE_cryptocat-desktop"));
    let cli_bin = profile_dir().join("cryptocat");
    let (Some(xvfb), Some(tauri_driver), Some(webkit_driver), Some(xwd)) = (
        find_tool("Xvfb"),
        find_tool("tauri-driver"),
        find_tool("WebKitWebDriver"),
        find_tool("xwd"),
    ) else {
        return missing("Xvfb, tauri-driver, WebKitWebDriver or xwd");
    };
    let desktop_tools = [
        "dbus-daemon",
        "dbus-monitor",
        "dbus-send",
        "dunst",
        "dunstctl",
        "gnome-keyring-daemon",
        "xdotool",
        "xclock",
    ];
    let desktop: Vec<PathBuf> = desktop_tools.iter().filter_map(|t| find_tool(t)).collect();
    if desktop.len() < desktop_tools.len() || !Path::new(SYSTEM_PYTHON).is_file() {
        return missing(&format!(
            "one of {desktop_tools:?} or {SYSTEM_PYTHON} (python3-gi)"
        ));
    }
    if !cli_bin.is_file() {
        return missing(&format!(
            "the cryptocat CLI at {} (cargo build -p cryptocat-cli)",
            cli_bin.display()
        ));
    }

    let mut procs = Procs(Vec::new());
    let display = free_display();
    procs.0.push((
        "Xvfb",
        Command::new(xvfb)
            .args([
                format!(":{display}"),
                "-screen".into(),
                "0".into(),
                "1280x800x24".into(),
                "-nolisten".into(),
                "tcp".into(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    wait_for("Xvfb", Duration::from_secs(10), || {
        Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
    });

    // A desktop session around the app: its own session bus, dunst (the notification
    // server), the tray side of a panel (tests/support/sni_host.py) and a monitor of the
    // Notify calls.
    // The bus starts nothing on demand (Debian's session bus would start
    // xdg-desktop-portal, which without a desktop's backend holds the app's start for
    // about 25 s, and the Secret Service): only what the test runs answers.
    let bus_config = std::env::temp_dir().join(format!("cryptocat-e2e-bus-{display}.conf"));
    std::fs::write(&bus_config, BUS_CONFIG).unwrap();
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", bus_config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_owned();
    let _ = std::fs::remove_file(&bus_config);
    assert!(
        address.starts_with("unix:"),
        "dbus-daemon printed {address:?}"
    );
    procs.0.push(("dbus-daemon", bus));
    // A throw-away HOME: the keyring's files and the WebKit data live there.
    let home = std::env::temp_dir().join(format!("cryptocat-e2e-home-{display}"));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("run")).unwrap();
    let at_home = |p: &str| home.join(p).display().to_string();
    let session_env = vec![
        ("DISPLAY", format!(":{display}")),
        ("DBUS_SESSION_BUS_ADDRESS", address.clone()),
        ("HOME", at_home("")),
        ("XDG_DATA_HOME", at_home(".local/share")),
        ("XDG_CONFIG_HOME", at_home(".config")),
        ("XDG_CACHE_HOME", at_home(".cache")),
        ("XDG_RUNTIME_DIR", at_home("run")),
        // The app in English (the UI's texts and the tray's, which the test reads),
        // whatever the machine's language.
        ("LANGUAGE", "en".to_owned()),
    ];
    // GNOME Keyring's Secret Service, unlocked with a password on stdin, for "remember my
    // identity".
    let mut keyring = Command::new("gnome-keyring-daemon")
        .args(["--foreground", "--unlock", "--components=secrets"])
        .envs(session_env.clone())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    keyring
        .stdin
        .take()
        .unwrap()
        .write_all(b"e2e-password")
        .unwrap();
    procs.0.push(("gnome-keyring-daemon", keyring));
    wait_for("the Secret Service on the bus", WAIT, || {
        Command::new("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .envs(session_env.clone())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
    });
    procs.0.push((
        "dunst",
        Command::new("dunst")
            .envs(session_env.clone())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    ));
    let notify_log = NotifyLog::start(&mut procs, &session_env);
    let mut tray = JsonChild::start_with(
        &mut procs,
        Command::new(SYSTEM_PYTHON)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sni_host.py"))
            .envs(session_env.clone())
            .process_group(0),
        "the tray host",
    );
    tray.wait("ready", |v| v["event"] == "ready");

    let port = start_tauri_driver(
        &mut procs,
        "tauri-driver",
        &webkit_driver,
        Command::new(&tauri_driver).envs(session_env.clone()),
    );
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "tauri:options": { "application": app.display().to_string() }
    }}});
    let d = Driver::launch(port, &caps);
    let launched = started.elapsed();

    // Join screen. First "remember my identity": kept in the session's keyring.
    d.el("#join-room");
    d.click(".app-settings");
    d.click(".dialog.settings input[aria-describedby=settings-remember-hint]");
    d.until(
        "the identity kept in the keyring",
        "const d = document.querySelector('.dialog.settings'); \
         return d && d.getAttribute('aria-busy') === 'false' && !d.querySelector('.error') \
           && d.querySelector('input[aria-describedby=settings-remember-hint]').checked",
    );
    d.click(".dialog.settings button.close");
    d.until(
        "the settings closed",
        "return !document.querySelector('.dialog.settings') && !!document.querySelector('.join img.app-icon')?.complete",
    );
    // WebKit paints the closed dialog's place a moment after the DOM changed.
    std::thread::sleep(Duration::from_millis(300));
    screenshot(&xwd, display, "join");
    d.type_into("#join-room", ROOM);
    d.type_into("#join-nick", APP_NICK);
    // "Remember the server and my nickname": filled in after leaving and at the next start.
    d.click("#join-remember");
    d.click("form button[type=submit]");
    d.el(".room-header h1");
    assert_eq!(d.text(".room-header h1"), format!("#{ROOM}"));
    let my_fp = d.text("[data-testid=header-fingerprint]");

    // The room's invite panel: the CLI joins through its "this computer" link, as
    // `cryptocat join LINK --nick bob`.
    d.click("[data-testid=invite-open]");
    let link = d.text("[data-testid=invite-link-this_computer]");
    assert!(
        link.starts_with("cryptocat://join?v=1&server=xmpp://127.0.0.1:"),
        "{link}"
    );
    assert!(link.ends_with(&format!("&room={ROOM}")), "{link}");
    let pin = link
        .split('&')
        .find_map(|p| p.strip_prefix("pin="))
        .unwrap_or_else(|| panic!("no pin in {link}"))
        .to_owned();
    assert_eq!(
        d.text("[data-testid=invite-command-this_computer]"),
        format!("cryptocat join \"{link}\" --nick NICK")
    );
    // Copy: to the clipboard, or (no clipboard access) the link selected for Ctrl+C.
    d.click("[data-testid=copy-this_computer]");
    let copy = d.until(
        "the copy's outcome",
        "const b = document.querySelector('[data-testid=copy-this_computer]'); \
         return b.textContent.trim() === 'Copied' ? 'copied' \
           : document.querySelector('.invite-way [role=status]') && window.getSelection().toString()",
    );
    assert!(copy == "copied" || copy == link.as_str(), "{copy}");
    eprintln!(
        "desktop e2e: the invite panel's copy button: {}",
        if copy == "copied" {
            "clipboard"
        } else {
            "selection"
        }
    );
    screenshot(&xwd, display, "invite");
    d.click(".dialog.invite button.close");
    let args: Vec<String> = vec![
        "join".into(),
        link.clone(),
        "--nick".into(),
        CLI_NICK.into(),
        "--json".into(),
    ];
    let mut cli = JsonChild::start(&mut procs, &cli_bin, &args, "cryptocat");

    let joined = cli.wait("joined", |v| v["type"] == "joined");
    let cli_fp = joined["fingerprint"].as_str().unwrap().to_owned();
    // Over c2s with STARTTLS, the relay's key checked against the link's pin.
    assert!(
        joined["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("xmpp://127.0.0.1:")),
        "{joined}"
    );
    assert_eq!(joined["server_key"], pin.as_str(), "{joined}");
    let alice = cli.wait("alice joined", |v| {
        v["type"] == "member_joined" && v["nick"] == APP_NICK
    });
    assert_eq!(
        compact(alice["fingerprint"].as_str().unwrap()),
        compact(&my_fp),
        "the CLI sees the fingerprint the app shows as its own"
    );
    d.until(
        "bob in the member list",
        "return [...document.querySelectorAll('.members .nick')].some(e => e.textContent === 'bob')",
    );
    cli.wait("a settled room", |v| {
        v["type"] == "rekeyed" && v["members"] == 2
    });

    // App → CLI, with the confirmation reaching 1 of 1.
    d.type_into(".composer textarea", "hello from the app");
    d.click(".composer button[type=submit]");
    let got = cli.wait("the app's message", |v| v["type"] == "message");
    assert_eq!(got["nick"], APP_NICK);
    assert_eq!(got["text"], "hello from the app");
    assert_eq!(got["private"], false);
    d.until(
        "the confirmation by 1 of 1",
        "const t = document.querySelector('.message.mine .confirm-text'); \
         return t && t.textContent === 'confirmed by 1 of 1'",
    );

    // CLI → app.
    cli.line("hello from the terminal");
    let from = d.until(
        "the CLI's message",
        "const m = [...document.querySelectorAll('.message')].find(li => \
           li.querySelector('.text')?.textContent === 'hello from the terminal'); \
         return m && m.querySelector('.from').textContent",
    );
    assert_eq!(from, CLI_NICK);
    screenshot(&xwd, display, "room");

    // Private chat, both ways.
    d.click(".members button[aria-label='Private chat with bob']");
    d.type_into(".composer textarea", "just between us");
    d.click(".composer button[type=submit]");
    let got = cli.wait("the private message", |v| {
        v["type"] == "message" && v["private"] == true
    });
    assert_eq!(got["nick"], APP_NICK);
    assert_eq!(got["text"], "just between us");
    cli.line("/msg alice sure, privately");
    d.until(
        "the CLI's private reply",
        "return [...document.querySelectorAll('.messages .text')].some(e => e.textContent === 'sure, privately')",
    );
    screenshot(&xwd, display, "private-chat");
    d.click("#tab-group");

    // Verification: the fingerprint shown is the one the CLI printed; mark verified.
    d.click(".members button[aria-label='Verify bob']");
    let theirs = d.text("[data-testid=their-fingerprint]");
    assert_eq!(compact(&theirs), compact(&cli_fp));
    d.click("//div[@role='dialog']//button[text()='Mark as verified']");
    d.until(
        "the verified mark",
        "return document.querySelector('.dialog .status')?.textContent.trim() === 'bob is verified.'",
    );
    screenshot(&xwd, display, "verification");

    // Secret question from the CLI, answered in the app: both see the match.
    cli.line("/ask alice Where did we meet? garden party");
    d.type_into("#verify-reply", "Garden Party");
    d.click("form.answer button[type=submit]");
    d.until(
        "the question's result in the app",
        "return document.querySelector('.dialog .result.ok')?.textContent",
    );
    let result = cli.wait("the question's result", |v| {
        v["type"] == "verification" && v["manual"] == false
    });
    assert_eq!(result["nick"], APP_NICK);
    assert_eq!(result["verified"], true);
    screenshot(&xwd, display, "secret-question");
    d.click(".dialog button.close");

    // A second "bob" with another key: the app warns that the nickname is taken.
    let mut twin = JsonChild::start(&mut procs, &cli_bin, &args, "cryptocat (twin)");
    twin.wait("joined", |v| v["type"] == "joined");
    d.until(
        "the nickname warning",
        "return document.querySelector('.banner.warnings .warning.nickname_taken')?.textContent",
    );
    screenshot(&xwd, display, "warning");
    twin.line("/leave");
    twin.wait("left", |v| v["type"] == "left");

    // ---- the link clicked: the desktop runs the app again with it ----
    // Back on the join screen, the link goes to a second invocation of the app, which hands
    // it to this one and exits; the join screen fills in, and the nickname is all to type.
    // A second room at once, on the same built-in server (the remembered nickname and
    // server filled in): a message in the first room counts there, unread.
    d.click(".room-list button.join-another");
    assert_eq!(
        d.until(
            "the remembered nickname",
            "return document.querySelector('#join-nick')?.value",
        ),
        APP_NICK
    );
    d.type_into("#join-room", "annex");
    d.click("form button[type=submit]");
    d.until(
        "the second room on screen",
        "return document.querySelector('.room-header h1')?.textContent === '#annex'",
    );
    cli.line("while you are in the annex");
    cli.wait("the CLI's message sent", |v| v["type"] == "sent");
    let unread = d.until(
        "the first room's unread count",
        "return document.querySelector('.room-list .unread-count') && \
           [...document.querySelectorAll('.room-list .room-switch')].map(b => b.getAttribute('aria-label')).join(' | ')",
    );
    assert_eq!(
        unread,
        format!("#{ROOM}, 1 unread message | #annex"),
        "the room list"
    );
    d.click(".room-header button.leave");
    d.click(".dialog.leave-confirm button.leave-now");
    d.until(
        "the first room back on screen",
        &format!("return document.querySelector('.room-header h1')?.textContent === '#{ROOM}' && !document.querySelector('.room-list .unread-count')"),
    );

    // Leaving asks first ("Stay" has the focus); the person confirms.
    d.click(".room-header button.leave");
    d.click(".dialog.leave-confirm button.leave-now");
    cli.wait("alice leaving", |v| {
        v["type"] == "member_left" && v["nick"] == APP_NICK
    });
    d.el("#join-room");
    let mut second = Command::new(&app)
        .arg(&link)
        .envs(session_env.clone())
        .env("NO_AT_BRIDGE", "1")
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let status = {
        let start = Instant::now();
        loop {
            if let Some(status) = second.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > WAIT {
                let _ = second.kill();
                panic!("the second launch did not exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(status.success(), "the second launch exited with {status}");
    assert_eq!(
        d.until(
            "the join screen filled from the link",
            "return document.querySelector('[data-testid=invite-room]')?.textContent",
        ),
        format!("#{ROOM}")
    );
    assert!(d
        .text("[data-testid=invite-key]")
        .contains("Checked by the invite"));
    screenshot(&xwd, display, "join-invite");
    // What the CLI printed before (the room with alice and the twin) is forgotten; what it
    // prints from the rejoin on stays, however fast it comes.
    cli.forget();
    // The remembered nickname is there already: nothing to type.
    assert_eq!(
        d.until(
            "the remembered nickname",
            "return document.querySelector('#join-nick')?.value",
        ),
        APP_NICK
    );
    d.click("form button[type=submit]");
    assert_eq!(d.text(".room-header h1"), format!("#{ROOM}"));
    cli.wait("alice back through the link", |v| {
        v["type"] == "member_joined" && v["nick"] == APP_NICK
    });
    cli.wait("a settled room", |v| {
        v["type"] == "rekeyed" && v["members"] == 2
    });
    d.type_into(".composer textarea", "back through the link");
    d.click(".composer button[type=submit]");
    let got = cli.wait("the app's message", |v| v["type"] == "message");
    assert_eq!(got["text"], "back through the link");
    cli.line("welcome back");
    cli.wait("the CLI's message sent", |v| v["type"] == "sent");
    d.until_or(
        "the CLI's message",
        "return [...document.querySelectorAll('.messages .text')].some(e => e.textContent === 'welcome back')",
        || format!("the CLI printed: {:#?}", cli.seen),
    );

    // ---- the desktop: tray icon, notification, a click on it, the tray menu ----
    // The tray icon as it is now, without the unread dot: the window has the focus (each
    // focus, as when a second launch brought it to the front, writes the icon again).
    // (libayatana-appindicator has no tooltips: the icon is what changes.)
    let normal = tray.latest("the tray icon", |v| v["event"] == "item");
    // The item is named after the app's reverse-DNS identifier (tauri.conf.json).
    assert!(
        normal["id"]
            .as_str()
            .is_some_and(|id| id.ends_with("cat.crypto.Cryptocat")),
        "the tray item's Id: {}",
        normal["id"]
    );
    let normal_red =
        red_pixels(&icon_file(&normal)).unwrap_or_else(|| panic!("no icon file for {normal}"));
    let has_dot = |v: &Value| {
        v["event"] == "item" && red_pixels(&icon_file(v)).is_some_and(|red| red > normal_red + 20)
    };

    // The person works in another window: a message makes a notification, content
    // hidden, and puts the dot on the tray icon.
    focus_another_window(&mut procs, &session_env);
    d.until("the app's window unfocused", "return !document.hasFocus()");
    tray.forget();
    cli.line("are you there?");
    let call = notify_log.wait("New message in");
    assert!(
        !call.contains("are you there") && !call.contains(CLI_NICK),
        "the notification shows the content: {call}"
    );
    tray.wait("the icon with the unread dot", has_dot);

    // A click on the notification (dunst's default action) brings the window back: it has
    // the focus, and the dot goes.
    tray.forget();
    let status = Command::new("dunstctl")
        .args(["action", "0"])
        .envs(session_env.clone())
        .status()
        .unwrap();
    assert!(status.success(), "dunstctl action 0: {status}");
    tray.wait("the icon without the dot", |v| {
        v["event"] == "item" && red_pixels(&icon_file(v)).is_some_and(|red| red <= normal_red)
    });
    d.until("the app's window focused", "return document.hasFocus()");

    // Closing the window, as a window manager's close button does: a tray host shows the
    // icon, so the window hides and the app stays in the room; the tray's Show brings it
    // back.
    let visible = || {
        Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^Cryptocat$"])
            .envs(session_env.clone())
            .output()
            .is_ok_and(|o| !o.stdout.trim_ascii().is_empty())
    };
    assert!(visible(), "the window is shown before closing");
    let asked = Command::new(SYSTEM_PYTHON)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/wm_close.py"))
        .arg("Cryptocat")
        .envs(session_env.clone())
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&asked.stdout).trim(),
        "0",
        "no window took WM_DELETE_WINDOW: {}",
        String::from_utf8_lossy(&asked.stderr)
    );
    wait_for("the window hidden to the tray", WAIT, || !visible());
    tray.forget();
    tray.line("menu");
    let menu = tray.wait("the menu", |v| v["event"] == "menu");
    let show = menu["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "Show Cryptocat")
        .unwrap()["id"]
        .clone();
    tray.line(&format!("click {show}"));
    wait_for("the window shown again", WAIT, visible);
    d.type_into(".composer textarea", "still here");
    d.click(".composer button[type=submit]");
    cli.wait("the app's message after hiding", |v| {
        v["type"] == "message" && v["text"] == "still here"
    });
    tray.forget();

    // The window moved and resized by the person: kept for the next start.
    let rect = json!({ "x": 40, "y": 30, "width": 900, "height": 640 });
    d.call("POST", "/window/rect", Some(rect.clone()))
        .unwrap_or_else(|e| panic!("set the window's rect: {e}"));
    let before = d.call("GET", "/window/rect", None).unwrap();

    // The tray menu, as the panel reads it; Quit leaves the room and ends the app.
    tray.line("menu");
    let menu = tray.wait("the menu", |v| v["event"] == "menu");
    let labels: Vec<&str> = menu["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["label"].as_str())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(labels, ["Show Cryptocat", "Mute notifications", "Quit"]);
    let quit = menu["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "Quit")
        .unwrap()["id"]
        .clone();
    tray.line(&format!("click {quit}"));
    tray.wait("the click", |v| v["event"] == "clicked");
    cli.wait("alice leaving (the app quit from the tray)", |v| {
        v["type"] == "member_left" && v["nick"] == APP_NICK
    });
    let _ = d.call("DELETE", "", None);
    cli.forget();

    // ---- the app again: the keyring gave it back its identity and whom it verified ----
    // This time in a dark desktop theme (through a second tauri-driver whose environment
    // asks GTK for it): the UI follows it.
    let dark_port = start_tauri_driver(
        &mut procs,
        "tauri-driver (dark)",
        &webkit_driver,
        Command::new(&tauri_driver)
            .envs(session_env.clone())
            .env("GTK_THEME", "Adwaita:dark"),
    );
    let d = Driver::launch(dark_port, &caps);
    assert_eq!(
        d.script("return matchMedia('(prefers-color-scheme: dark)').matches"),
        json!(true),
        "the UI sees the dark theme"
    );
    assert_eq!(
        d.script("return getComputedStyle(document.body).backgroundColor"),
        json!("rgb(21, 24, 28)")
    );
    // Remembered: the window's size and place, the server and the nickname; not the room.
    d.el("#join-room");
    let after = d.call("GET", "/window/rect", None).unwrap();
    for k in ["width", "height", "x", "y"] {
        assert_eq!(
            after[k], before[k],
            "the window's {k}: {after} after, {before} before"
        );
    }
    assert_eq!(before["width"], rect["width"], "{before}");
    assert_eq!(
        d.until(
            "the remembered nickname",
            "return document.querySelector('#join-nick')?.value",
        ),
        APP_NICK
    );
    assert_eq!(
        d.script("return document.querySelector('#join-room').value"),
        json!("")
    );
    assert_eq!(
        d.script("return document.querySelector('input[value=this_computer]').checked"),
        json!(true)
    );
    std::thread::sleep(Duration::from_millis(300));
    screenshot(&xwd, display, "join-dark");
    d.type_into("#join-room", ROOM);
    d.click("form button[type=submit]");
    d.el(".room-header h1");
    assert_eq!(
        compact(&d.text("[data-testid=header-fingerprint]")),
        compact(&my_fp),
        "the second launch has the identity kept in the keyring"
    );
    d.until(
        "bob shown verified (the kept list)",
        "return [...document.querySelectorAll('.members .member')].some(m => \
           m.querySelector('.nick')?.textContent === 'bob' && m.querySelector('.badge.verified'))",
    );
    screenshot(&xwd, display, "room-dark");
    let again = cli.wait("alice back", |v| {
        v["type"] == "member_joined" && v["nick"] == APP_NICK
    });
    assert_eq!(
        compact(again["fingerprint"].as_str().unwrap()),
        compact(&my_fp)
    );

    cli.line("/leave");
    cli.wait("left", |v| v["type"] == "left");
    let _ = d.call("DELETE", "", None);
    let _ = std::fs::remove_dir_all(&home);
    eprintln!(
        "desktop e2e: app window up {:.1} s after start, whole run {:.1} s",
        launched.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
