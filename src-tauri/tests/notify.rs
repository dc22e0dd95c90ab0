//! Notifications on a real session bus: a private `dbus-run-session`, dunst (a real
//! notification server, on its own Xvfb display) and `dbus-monitor` seeing the `Notify`
//! calls. Content is hidden by default and shown with the setting; clicking (dunst's
//! `default` action, through `dunstctl action 0`) runs the click handler.
// Linux only: dunst and dbus-monitor on a private D-Bus session: the XDG back-end.
#![cfg(target_os = "linux")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Killed, Xvfb, INNER};
use cryptocat_desktop::notify::{notification_text, show, NewMessage};

const MSG: NewMessage<'static> = NewMessage {
    room: "lobby",
    sender: "mallory",
    text: "the launch code is 1234",
    private: false,
};

#[test]
fn notify_calls_hide_content_unless_asked() {
    if std::env::var_os(INNER).is_some() {
        return inside_session();
    }
    if !common::tools_present(&[
        "dbus-run-session",
        "dbus-monitor",
        "dbus-send",
        "dunst",
        "dunstctl",
        "Xvfb",
    ]) {
        return;
    }
    let x = Xvfb::start();
    common::rerun_in_session(
        "notify_calls_hide_content_unless_asked",
        // The texts in English, whatever the machine's language.
        &[("DISPLAY", x.display.as_str()), ("LANGUAGE", "en")],
    );
}

/// The `Notify` calls dbus-monitor printed: (summary, body, whole call).
fn notify_calls(log: &str) -> Vec<(String, String, String)> {
    log.split("method call ")
        .filter(|call| call.contains("member=Notify"))
        .map(|call| {
            let strings: Vec<String> = call
                .lines()
                .filter_map(|l| l.trim().strip_prefix("string \""))
                .map(|s| s.trim_end_matches('"').to_owned())
                .collect();
            (
                strings.get(2).cloned().unwrap_or_default(),
                strings.get(3).cloned().unwrap_or_default(),
                call.to_owned(),
            )
        })
        .collect()
}

fn inside_session() {
    // What goes over the bus.
    let mut monitor = Command::new("dbus-monitor")
        .arg("interface='org.freedesktop.Notifications'")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = monitor.stdout.take().unwrap();
    let _monitor = Killed(monitor);
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    // A real notification server.
    let _dunst = Killed(
        Command::new("dunst")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for_name("org.freedesktop.Notifications");
    std::thread::sleep(Duration::from_millis(200)); // dbus-monitor is listening

    let (clicked_tx, clicked) = mpsc::channel();
    let tx = clicked_tx.clone();
    show(&notification_text(&MSG, false), move || {
        tx.send("hidden").unwrap();
    })
    .expect("the server took the notification");
    show(&notification_text(&MSG, true), move || {
        clicked_tx.send("shown").unwrap();
    })
    .expect("the server took the notification");

    let deadline = Instant::now() + Duration::from_secs(5);
    let calls = loop {
        let calls = notify_calls(&log.lock().unwrap());
        if calls.len() >= 2 {
            break calls;
        }
        assert!(
            Instant::now() < deadline,
            "dbus-monitor saw no Notify calls"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (summary, body, call) = &calls[0];
    assert_eq!(summary, "New message in lobby");
    assert_eq!(body, "");
    assert!(call.contains("string \"Cryptocat\""), "app name: {call}");
    assert!(
        !call.contains("mallory") && !call.contains("launch"),
        "{call}"
    );
    assert!(
        call.contains("string \"default\""),
        "a click action: {call}"
    );
    let (summary, body, _) = &calls[1];
    assert_eq!(summary, "mallory in lobby");
    assert_eq!(body, "the launch code is 1234");

    // A click on the top notification runs its handler.
    let status = Command::new("dunstctl")
        .args(["action", "0"])
        .status()
        .unwrap();
    assert!(status.success());
    let which = clicked
        .recv_timeout(Duration::from_secs(5))
        .expect("the click handler ran");
    assert!(which == "shown" || which == "hidden");
    let log = log.lock().unwrap();
    assert!(log.contains("member=ActionInvoked"), "{log}");
}
