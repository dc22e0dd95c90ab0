//! The keyring with a real backend: GNOME Keyring's Secret Service, unlocked, in a private
//! `dbus-run-session` with a throw-away HOME; and the clear error when no keyring answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Killed, INNER};
use cryptocat_client::VerifiedContact;
use cryptocat_desktop::secrets::{Keyring, SecretsError};
use cryptocat_desktop::settings::Settings;
use cryptocat_protocol::identity::Identity;
use cryptocat_protocol::Timestamp;

#[test]
fn identity_and_verified_round_trip_through_gnome_keyring() {
    if std::env::var_os(INNER).is_some() {
        return inside_session();
    }
    if !common::tools_present(&["dbus-run-session", "dbus-send", "gnome-keyring-daemon"]) {
        return;
    }
    let home = std::env::temp_dir().join(format!("cryptocat-keyring-test-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let home_s = home.to_str().unwrap().to_owned();
    let data = format!("{home_s}/.local/share");
    let runtime = format!("{home_s}/run");
    std::fs::create_dir_all(&runtime).unwrap();
    common::rerun_in_session(
        "identity_and_verified_round_trip_through_gnome_keyring",
        &[
            ("HOME", home_s.as_str()),
            ("XDG_DATA_HOME", data.as_str()),
            ("XDG_RUNTIME_DIR", runtime.as_str()),
        ],
    );
    let _ = std::fs::remove_dir_all(&home);
}

fn inside_session() {
    let mut daemon = Command::new("gnome-keyring-daemon")
        .args(["--foreground", "--unlock", "--components=secrets"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = daemon.stdin.take().unwrap();
        stdin.write_all(b"test-password").unwrap();
    }
    let _daemon = Killed(daemon);
    common::wait_for_name("org.freedesktop.secrets");

    let k = Keyring::new(&format!("cryptocat-test-{}", std::process::id()));
    let id = Identity::generate(&mut rand_core::OsRng, Timestamp(1_000));
    // The collection may take a moment to be unlocked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = k.save_identity(&id) {
        assert!(Instant::now() < deadline, "keyring never answered: {e}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let back = k.load_identity(Timestamp(2_000)).unwrap().expect("kept");
    assert_eq!(back.fingerprint(), id.fingerprint());

    let verified = vec![
        VerifiedContact {
            nickname: "bob".into(),
            fingerprint: [7; 32],
        },
        VerifiedContact {
            nickname: "carol".into(),
            fingerprint: [9; 32],
        },
    ];
    assert_eq!(k.load_verified().unwrap(), Vec::new());
    k.save_verified(&verified).unwrap();
    assert_eq!(k.load_verified().unwrap(), verified);

    let settings = Settings {
        show_content: true,
        remember_identity: true,
        ..Settings::default()
    };
    k.save_settings(&settings).unwrap();
    assert_eq!(k.load_settings().unwrap(), Some(settings));

    k.forget().unwrap();
    assert!(k.load_identity(Timestamp(3_000)).unwrap().is_none());
    assert_eq!(k.load_verified().unwrap(), Vec::new());
    assert_eq!(k.load_settings().unwrap(), None);
    k.forget().expect("forgetting twice is fine");
}

#[test]
fn no_keyring_is_a_clear_error() {
    if std::env::var_os("CRYPTOCAT_TEST_NO_BUS").is_some() {
        let k = Keyring::new("cryptocat-test-nobus");
        let id = Identity::generate(&mut rand_core::OsRng, Timestamp(1_000));
        let e = k.save_identity(&id).unwrap_err();
        assert_eq!(e, SecretsError::NoBackend);
        assert_eq!(e.code(), "keyring_unavailable");
        assert!(e.to_string().contains("no keyring is available"));
        assert_eq!(
            k.load_identity(Timestamp(1_000)).unwrap_err(),
            SecretsError::NoBackend
        );
        return;
    }
    // This process's own environment is left alone: a child runs with no session bus.
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "no_keyring_is_a_clear_error", "--nocapture"])
        .env("CRYPTOCAT_TEST_NO_BUS", "1")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/cryptocat-test-bus",
        )
        .status()
        .unwrap();
    assert!(status.success());
}
