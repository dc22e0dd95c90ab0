//! The real app end to end: the debug `cryptocat-desktop` binary under Xvfb, driven through
//! WebDriver (`tauri-driver` in front of Debian's `WebKitWebDriver`), together with the
//! `cryptocat` CLI (`cryptocat join LINK --nick bob --json`) joining the same room on the
//! app's embedded relay through the link the room's invite panel shows (c2s with STARTTLS,
//! the relay's key checked against the link's pin).
//!
//! Before the first start, the session's HOME holds what an install from before the
//! reverse-DNS identifier left under `invalid.cryptocat.desktop` (a relay key made by
//! `cryptocat-server`, a remembered nickname, a window size and place): the app comes up
//! with that window, that nickname filled in, and that key in its invite links.
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
//! Two rooms are open at once: the first one's unread message shows in the room list and
//! the window's title ("Cryptocat (1)"; the window is found by a pattern that takes the
//! count, for screenshots and closing); leaving one puts the other on screen. The
//! notification is for a private message in the room not on screen, and its click brings
//! that room and that private chat to the front. Arabic picked in the settings turns the
//! window right to left and the tray's menu into Arabic at once; "follow the system" turns
//! both back.
//!
//! The session also runs GNOME Keyring (unlocked, in a throw-away HOME). "Remember my
//! identity" is turned on before the first join; after Quit, the app is started again and
//! joins with the same fingerprint, showing the CLI's member as verified: both came back from
//! the keyring. It then joins a room on a `cryptocat-server` of its own through its invite
//! link, sees the countdown when that server stops, and once it is started again "Retry
//! now" reconnects before the countdown's end (a second CLI then finds the app in the room
//! and gets its message). Last, with the tray host gone, closing the window asks before
//! quitting, and confirming quits (both CLIs see the app leave).
//!
//! Needs `Xvfb`, `xwd` and `xclock` (Debian's `x11-apps`), `xdotool`, `dbus-daemon`,
//! `dbus-monitor`, `dbus-send`, `dunst`, `gnome-keyring-daemon`, Debian's `python3-gi`,
//! `tauri-driver` (`cargo install tauri-driver --version 2.1.0 --locked`),
//! `WebKitWebDriver` (Debian's `webkit2gtk-driver`) and the CLI built into the same target
//! directory with `cryptocat-server` (`cargo build -p cryptocat-cli -p cryptocat-server`);
//! `scripts/test` ensures all of them. Without
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

#[path = "e2e/session.rs"]
mod session;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use session::{
    app_window, close_window, compact, find_tool, focus_another_window, free_display, icon_file,
    json_child, json_child_with, profile_dir, red_pixels, screenshot, start_tauri_driver,
    tray_menu, wait_for, window_title, Driver, NotifyLog, Procs, RelayProcess, BUS_CONFIG,
    SYSTEM_PYTHON, WAIT,
};

const ROOM: &str = "garden";
const APP_NICK: &str = "alice";
const CLI_NICK: &str = "bob";

// ---- the test --------------------------------------------------------------------------

/// The key pin an invite link carries.
fn pin_of(link: &str) -> String {
    link.split('&')
        .find_map(|p| p.strip_prefix("pin="))
        .unwrap_or_else(|| panic!("no pin in {link}"))
        .to_owned()
}

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
    let server_bin = profile_dir().join("cryptocat-server");
    if !cli_bin.is_file() || !server_bin.is_file() {
        return missing(&format!(
            "the cryptocat CLI at {} or cryptocat-server beside it (cargo build -p cryptocat-cli -p cryptocat-server)",
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
    let mut tray = json_child_with(
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
    // What an install from before the reverse-DNS identifier left under
    // `invalid.cryptocat.desktop`: the built-in server's key (made here by cryptocat-server
    // in such a folder), the remembered nickname and server, the window's size and place.
    // The app brings them along at its first start.
    let legacy_data = home.join(".local/share/invalid.cryptocat.desktop");
    let legacy_config = home.join(".config/invalid.cryptocat.desktop");
    let legacy_link = RelayProcess::new(&server_bin, &legacy_data.join("relay")).start(&mut procs);
    procs.stop(RelayProcess::LABEL);
    let legacy_pin = pin_of(&legacy_link);
    std::fs::create_dir_all(&legacy_config).unwrap();
    std::fs::write(
        legacy_config.join("remembered.json"),
        format!(
            r#"{{"nick":"{APP_NICK}","server":{{"kind":"this_computer","local_network":false}}}}"#
        ),
    )
    .unwrap();
    let legacy_rect = json!({ "x": 60, "y": 50, "width": 1000, "height": 700 });
    std::fs::write(
        legacy_config.join(".window-state.json"),
        json!({ "main": {
            "width": legacy_rect["width"], "height": legacy_rect["height"],
            "x": legacy_rect["x"], "y": legacy_rect["y"],
            "prev_x": legacy_rect["x"], "prev_y": legacy_rect["y"],
            "maximized": false, "visible": true, "decorated": true, "fullscreen": false
        }})
        .to_string(),
    )
    .unwrap();

    let d = Driver::launch(port, &caps);
    let launched = started.elapsed();

    // The window has the size and place kept under the former identifier; the files
    // moved to the new identifier's folders, and the former config folder is gone.
    d.el("#join-room");
    let first_rect = d.call("GET", "/window/rect", None).unwrap();
    for k in ["width", "height", "x", "y"] {
        assert_eq!(
            first_rect[k], legacy_rect[k],
            "the window's {k}: {first_rect}"
        );
    }
    assert!(home
        .join(".local/share/cat.crypto.Cryptocat/relay/localhost.key")
        .is_file());
    assert!(!legacy_data.join("relay").exists());
    assert!(
        !legacy_config.exists(),
        "the emptied former config folder stays"
    );

    // Join screen. First "remember my identity": kept in the session's keyring.
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
    // "Remember the server and my nickname", ticked, with the nickname remembered under
    // the former identifier: filled in (here, after leaving, and at the next start).
    assert_eq!(
        d.script("return document.querySelector('#join-nick').value"),
        json!(APP_NICK)
    );
    assert_eq!(
        d.script("return document.querySelector('#join-remember').checked"),
        json!(true)
    );
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
    let pin = pin_of(&link);
    // The key kept under the former identifier: links sent before still hold.
    assert_eq!(
        pin, legacy_pin,
        "the built-in server's key after the identifier changed"
    );
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
    let mut cli = json_child(&mut procs, &cli_bin, &args, "cryptocat");

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
    let mut twin = json_child(&mut procs, &cli_bin, &args, "cryptocat (twin)");
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
    // server filled in): a message in the first room counts there, unread, in the room
    // list and in the window's title (which the screenshots find the window by all the
    // same).
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
    wait_for("the unread total in the window's title", WAIT, || {
        window_title(display) == "Cryptocat (1)"
    });
    screenshot(&xwd, display, "rooms");
    d.click(&format!(".room-list .room-switch[aria-label^='#{ROOM},']"));
    d.until(
        "the first room on screen, its message read",
        &format!("return document.querySelector('.room-header h1')?.textContent === '#{ROOM}' && !document.querySelector('.room-list .unread-count')"),
    );
    wait_for("the window's title without a count", WAIT, || {
        window_title(display) == "Cryptocat"
    });

    // Leaving asks first ("Stay" has the focus); the person confirms, and the other room
    // comes on screen.
    d.click(".room-header button.leave");
    d.click(".dialog.leave-confirm button.leave-now");
    cli.wait("alice leaving", |v| {
        v["type"] == "member_left" && v["nick"] == APP_NICK
    });
    d.until(
        "the other room on screen",
        "return document.querySelector('.room-header h1')?.textContent === '#annex'",
    );
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
        || format!("the CLI printed: {:#?}", cli.seen()),
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

    // The person turns to the other room, then works in another window: a private
    // message in the first room makes a notification, content hidden, and puts the dot on
    // the tray icon.
    d.click(".room-list .room-switch[aria-label^='#annex']");
    d.until(
        "the other room on screen",
        "return document.querySelector('.room-header h1')?.textContent === '#annex'",
    );
    focus_another_window(&mut procs, &session_env);
    d.until("the app's window unfocused", "return !document.hasFocus()");
    tray.forget();
    cli.line("/msg alice are you there?");
    let call = notify_log.wait(&format!("New message in {ROOM}"));
    assert!(
        !call.contains("are you there") && !call.contains(CLI_NICK),
        "the notification shows the content: {call}"
    );
    tray.wait("the icon with the unread dot", has_dot);

    // A click on the notification (dunst's default action) brings the window back: it has
    // the focus, the dot goes, and it shows that room and chat: the first room, the
    // private chat with bob, with the message.
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
    d.until(
        "the private chat with bob in the first room, on screen",
        &format!(
            "return document.querySelector('.room-header h1')?.textContent === '#{ROOM}' \
               && document.querySelector('.tabs [role=tab][aria-selected=true]')?.textContent.trim() === 'bob' \
               && [...document.querySelectorAll('.messages .text')].some(e => e.textContent === 'are you there?')"
        ),
    );

    // Closing the window, as a window manager's close button does: a tray host shows the
    // icon, so the window hides and the app stays in the room; the tray's Show brings it
    // back.
    let visible = || app_window(display).is_some();
    assert!(visible(), "the window is shown before closing");
    close_window(&session_env);
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

    // Arabic, picked in the settings: the window turns right to left at once, and the
    // tray's menu speaks it too; then back to the system's language (English here).
    let language_started = Instant::now();
    let pick = |code: &str| {
        d.script(&format!(
            "const p = document.querySelector('.dialog.settings select'); p.value = '{code}'; \
             p.dispatchEvent(new Event('change', {{ bubbles: true }})); return true"
        ));
    };
    d.click(".room-header .room-settings");
    d.el(".dialog.settings select");
    pick("ar");
    d.until(
        "the window in Arabic, right to left",
        "return document.documentElement.dir === 'rtl' \
           && document.querySelector('#settings-title')?.textContent === 'الإعدادات'",
    );
    tray_menu(&mut tray, &["إظهار Cryptocat", "كتم الإشعارات", "إنهاء"]);
    std::thread::sleep(Duration::from_millis(300));
    screenshot(&xwd, display, "settings-arabic");
    pick("system");
    d.until(
        "the window in English again",
        "return document.documentElement.dir === 'ltr' \
           && document.querySelector('#settings-title')?.textContent === 'Settings'",
    );
    d.click(".dialog.settings button.close");
    eprintln!(
        "desktop e2e: Arabic picked and back (window and tray) took {:.1} s",
        language_started.elapsed().as_secs_f64()
    );

    // The window moved and resized by the person: kept for the next start.
    let rect = json!({ "x": 40, "y": 30, "width": 900, "height": 640 });
    d.call("POST", "/window/rect", Some(rect.clone()))
        .unwrap_or_else(|e| panic!("set the window's rect: {e}"));
    let before = d.call("GET", "/window/rect", None).unwrap();

    // The tray menu, as the panel reads it (in English again); Quit leaves the rooms and
    // ends the app.
    let menu = tray_menu(&mut tray, &["Show Cryptocat", "Mute notifications", "Quit"]);
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

    // ---- "Retry now": the server of a room goes away and comes back ----
    // A second room, on a server of its own (cryptocat-server, its key kept in a folder so
    // that the link's pin still holds after the restart), joined through its invite link.
    let retry_started = Instant::now();
    let server = RelayProcess::new(&server_bin, &home.join("server"));
    let link = format!("{}retry", server.start(&mut procs));
    d.click(".room-list button.join-another");
    d.click("input[value=url]");
    // Pasted at once, as a person pastes it (typed key by key, a part would be read).
    d.script(&format!(
        "const i = document.querySelector('#join-url'); i.value = {}; \
         i.dispatchEvent(new Event('input', {{ bubbles: true }})); return true",
        serde_json::to_string(&link).unwrap()
    ));
    d.until(
        "the join screen filled from the server's link",
        "return document.querySelector('[data-testid=invite-room]')?.textContent === '#retry'",
    );
    d.click("form button[type=submit]");
    d.until(
        "the server's room on screen",
        "return document.querySelector('.room-header h1')?.textContent === '#retry' \
           && !document.querySelector('.banner.connection')",
    );
    // The server stops: the banner counts down to the next attempt, further each time.
    procs.stop(RelayProcess::LABEL);
    let countdown = "const t = document.querySelector('.banner.connection.reconnecting [role=status]')?.textContent ?? ''; \
         const m = /in (\\d+) s/.exec(t); return m ? Number(m[1]) : 0";
    d.until(
        "a countdown of 4 s or more",
        &format!("return (() => {{ {countdown} }})() >= 4"),
    );
    screenshot(&xwd, display, "reconnecting");
    // It is back; "Retry now" reconnects at once, before the countdown's end.
    server.start(&mut procs);
    let left = d.script(&format!("return (() => {{ {countdown} }})()"));
    let left = left.as_u64().unwrap_or(0);
    assert!(
        left >= 3,
        "the countdown ran down to {left} s before the click"
    );
    let clicked = Instant::now();
    d.click(".banner.connection button.retry");
    d.until(
        "the room connected again",
        "return document.querySelector('.room-header h1')?.textContent === '#retry' \
           && !document.querySelector('.banner.connection')",
    );
    let took = clicked.elapsed();
    assert!(
        took < Duration::from_secs(left - 1),
        "reconnected {took:?} after the click, with {left} s left: the timer, not the button"
    );
    // The room works again: a newcomer finds alice in it, and gets her message.
    let carol_args: Vec<String> = vec![
        "join".into(),
        link.clone(),
        "--nick".into(),
        "carol".into(),
        "--json".into(),
    ];
    let mut carol = json_child(&mut procs, &cli_bin, &carol_args, "cryptocat (carol)");
    carol.wait("alice in the room again", |v| {
        v["type"] == "member_joined" && v["nick"] == APP_NICK
    });
    carol.wait("a settled room", |v| {
        v["type"] == "rekeyed" && v["members"] == 2
    });
    d.type_into(".composer textarea", "back after the outage");
    d.click(".composer button[type=submit]");
    carol.wait("the app's message after the outage", |v| {
        v["type"] == "message" && v["text"] == "back after the outage"
    });
    eprintln!(
        "desktop e2e: \"Retry now\" (a server stopped and started again) took {:.1} s",
        retry_started.elapsed().as_secs_f64()
    );

    // ---- closing with no tray host: the window asks first; quitting leaves the rooms ----
    let close_started = Instant::now();
    procs.stop("the tray host");
    close_window(&session_env);
    d.until(
        "the question before quitting",
        "return document.querySelector('.dialog.quit-confirm')?.textContent.includes('Quit Cryptocat?')",
    );
    assert!(
        app_window(display).is_some(),
        "the window stays while it asks"
    );
    screenshot(&xwd, display, "quit-confirm");
    // Clicked from a script, a moment later: the app ends under a WebDriver click, whose
    // answer then never comes.
    d.script(
        "setTimeout(() => document.querySelector('.dialog.quit-confirm button.quit-now').click(), 50); \
         return true",
    );
    cli.wait("alice leaving (quit after the question)", |v| {
        v["type"] == "member_left" && v["nick"] == APP_NICK
    });
    carol.wait("alice leaving the server's room", |v| {
        v["type"] == "member_left" && v["nick"] == APP_NICK
    });
    wait_for("the app gone", WAIT, || app_window(display).is_none());
    eprintln!(
        "desktop e2e: closing with no tray host, confirmed, took {:.1} s",
        close_started.elapsed().as_secs_f64()
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
