//! The desktop session the end-to-end test (`tests/e2e.rs`) runs the app in, and how it
//! looks at it: processes, the WebDriver client, screenshots from the X server, the CLI and
//! the tray host as JSON-printing children, the `Notify` calls on the session bus, the
//! tray icon's pixels.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// The helpers every cross-crate test shares (tests/support).
pub use cryptocat_tests::{free_port, profile_dir, JsonChild};

/// How long any one step may take.
pub const WAIT: Duration = Duration::from_secs(30);

// ---- processes -------------------------------------------------------------------------

/// Kills (and reaps) its children when dropped, so a failed assertion leaves nothing behind.
pub struct Procs(pub Vec<(&'static str, Child)>);

/// Kills a child and its process group (tauri-driver's WebKitWebDriver and the app go
/// with it), and reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Procs {
    /// Kills the children started under `label` (as a crash or a switched-off server
    /// would end them).
    pub fn stop(&mut self, label: &str) {
        let (gone, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition::<Vec<_>, _>(|(l, _)| *l == label);
        assert!(!gone.is_empty(), "nothing runs as {label}");
        self.0 = kept;
        for (_, mut child) in gone {
            kill_group(&mut child);
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in self.0.iter_mut().rev() {
            kill_group(child);
        }
    }
}

pub fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The first display from :92 on with no X server (lock file or socket).
pub fn free_display() -> u32 {
    (92..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("no free X display")
}

/// Starts tauri-driver (`command`, with its environment set) on free ports in front of
/// WebKitWebDriver, registered in `procs`; returns its port once it listens.
pub fn start_tauri_driver(
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

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- WebDriver -------------------------------------------------------------------------

pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.0 request (the server closes the connection after the response, so the
/// body is everything after the headers, never chunked).
pub fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
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

pub struct Driver {
    port: u16,
    session: String,
}

impl Driver {
    /// A new session: tauri-driver starts the app.
    pub fn launch(port: u16, caps: &Value) -> Driver {
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

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    pub fn find(&self, using: &str, value: &str) -> Result<String, String> {
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
    pub fn el(&self, selector: &str) -> String {
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

    pub fn click(&self, selector: &str) {
        let id = self.el(selector);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    pub fn type_into(&self, selector: &str, text: &str) {
        let id = self.el(selector);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    pub fn text(&self, selector: &str) -> String {
        let id = self.el(selector);
        self.call("GET", &format!("/element/{id}/text"), None)
            .unwrap_or_else(|e| panic!("text of {selector}: {e}"))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page and returns its result.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Waits until the script returns something truthy, and returns it.
    pub fn until(&self, what: &str, script: &str) -> Value {
        self.until_or(what, script, String::new)
    }

    /// [`Self::until`], with `context()` (what the CLI printed, say) in the failure.
    pub fn until_or(&self, what: &str, script: &str, context: impl Fn() -> String) -> Value {
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

/// The main window's title, as an `xdotool search --name` pattern: "Cryptocat", or
/// "Cryptocat (N)" while N messages are unread (`tray::window_title`).
pub const WINDOW_NAME: &str = r"^Cryptocat( \([0-9]+\))?$";

/// The X id of the app's visible main window (found by its title), if it shows.
pub fn app_window(display: u32) -> Option<String> {
    let out = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", WINDOW_NAME])
        .env("DISPLAY", format!(":{display}"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

/// Asks the app's main window to close as a window manager's close button does (a
/// WM_DELETE_WINDOW client message, `tests/support/wm_close.py`), whatever its title.
pub fn close_window(env: &[(&str, String)]) {
    let asked = Command::new(SYSTEM_PYTHON)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/wm_close.py"))
        .arg(WINDOW_NAME)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&asked.stdout).trim(),
        "0",
        "no window took WM_DELETE_WINDOW: {}",
        String::from_utf8_lossy(&asked.stderr)
    );
}

/// The title of the app's visible main window (empty when it does not show).
pub fn window_title(display: u32) -> String {
    let Some(id) = app_window(display) else {
        return String::new();
    };
    Command::new("xdotool")
        .args(["getwindowname", &id])
        .env("DISPLAY", format!(":{display}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A picture of the app's window, taken from the X server with `xwd` (Debian's x11-apps).
/// WebDriver's own screenshot never returns here: WebKitGTK's snapshot waits for a
/// composited frame, and the app turns WebKit's compositing off (src-tauri/src/webkit.rs).
/// Fails unless the window shows more than a few colours (a blank or black window would
/// pass a plain "is it a PNG" check); written to docs/screenshots/NAME.png when
/// `CRYPTOCAT_UPDATE_SCREENSHOTS=1`.
pub fn screenshot(xwd: &Path, display: u32, name: &str) {
    let start = Instant::now();
    let (width, height, rgb) = loop {
        let id = app_window(display)
            .unwrap_or_else(|| panic!("{name}: no visible window is titled {WINDOW_NAME}"));
        let out = Command::new(xwd)
            .args(["-silent", "-display", &format!(":{display}"), "-id", &id])
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
pub fn decode_xwd(data: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
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

/// Starts `bin args` as a child that prints one JSON object per line (`cryptocat join
/// --json`), registered in `procs`.
pub fn json_child(
    procs: &mut Procs,
    bin: &Path,
    args: &[String],
    label: &'static str,
) -> JsonChild {
    json_child_with(procs, Command::new(bin).args(args), label)
}

/// Starts `command` (the CLI, the tray host in tests/support/sni_host.py) as a JSON-printing
/// child registered in `procs`, which kills it (with its process group).
pub fn json_child_with(procs: &mut Procs, command: &mut Command, label: &'static str) -> JsonChild {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let json = JsonChild::attach(&mut child, label);
    procs.0.push((label, child));
    json
}

/// The tray's menu as the panel reads it (a `menu` event), read again until its labels are
/// `labels`: a relabelled menu reaches the panel a moment later.
pub fn tray_menu(tray: &mut JsonChild, labels: &[&str]) -> Value {
    let start = Instant::now();
    loop {
        tray.forget();
        tray.line("menu");
        let menu = tray.wait("the menu", |v| v["event"] == "menu");
        let now: Vec<String> = menu["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["label"].as_str())
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if now == labels {
            return menu;
        }
        assert!(
            start.elapsed() < WAIT,
            "the tray menu reads {now:?}, not {labels:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- a relay of its own ------------------------------------------------------------------

/// `cryptocat-server` on fixed loopback ports with its key kept in a folder: started again,
/// it is the same server at the same address (the pin in its links still holds).
pub struct RelayProcess {
    bin: PathBuf,
    args: Vec<String>,
    c2s: u16,
}

impl RelayProcess {
    /// Its label in [`Procs`].
    pub const LABEL: &'static str = "cryptocat-server";

    pub fn new(bin: &Path, state_dir: &Path) -> RelayProcess {
        let (c2s, http) = (free_port(), free_port());
        let args = vec![
            "--domain".to_owned(),
            "localhost".to_owned(),
            "--c2s".to_owned(),
            format!("127.0.0.1:{c2s}"),
            "--http".to_owned(),
            format!("127.0.0.1:{http}"),
            "--state-dir".to_owned(),
            state_dir.display().to_string(),
        ];
        RelayProcess {
            bin: bin.to_owned(),
            args,
            c2s,
        }
    }

    /// Starts it and waits until it listens; returns the invite link it prints, without
    /// the room name at its end (`...&room=`).
    pub fn start(&self, procs: &mut Procs) -> String {
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        // Read to the end (a closed pipe would fail its later lines).
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(link) = line.strip_prefix("cryptocat-server: invite links: ") {
                    let _ = tx.send(link.to_owned());
                }
            }
        });
        procs.0.push((Self::LABEL, child));
        let link = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("cryptocat-server printed no invite link"));
        assert!(link.ends_with("&room="), "{link}");
        wait_for("cryptocat-server listening", WAIT, || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, self.c2s)).is_ok()
        });
        link
    }
}

// ---- the desktop session ------------------------------------------------------------------

/// A session bus with no services to start on demand, open to everything on it
/// (`dbus-monitor` watches the `Notify` calls).
pub const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
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
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The `Notify` calls on the session bus, as `dbus-monitor` prints them.
pub struct NotifyLog(std::sync::Arc<std::sync::Mutex<String>>);

impl NotifyLog {
    pub fn start(procs: &mut Procs, env: &[(&str, String)]) -> NotifyLog {
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
    pub fn wait(&self, needle: &str) -> String {
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
pub fn focus_another_window(procs: &mut Procs, env: &[(&str, String)]) {
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
pub fn icon_file(item: &Value) -> PathBuf {
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
pub fn red_pixels(path: &Path) -> Option<usize> {
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

pub fn compact(fp: &str) -> String {
    fp.chars().filter(|c| !c.is_whitespace()).collect()
}
