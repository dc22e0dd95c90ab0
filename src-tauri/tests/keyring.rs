//! The keyring with a real backend: GNOME Keyring's Secret Service, unlocked, in a private
//! `dbus-run-session` with a throw-away HOME; and the clear error when no keyring answers.
// Linux only: GNOME Keyring on a private D-Bus session: the Secret Service back-end.
#![cfg(target_os = "linux")]
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

    values_split_over_parts_as_on_windows();
}

/// Credential Manager holds at most 2,560 bytes per item, so on Windows a value is split
/// over parts; the same code runs here with 64-byte parts against GNOME Keyring.
fn values_split_over_parts_as_on_windows() {
    let service = format!("cryptocat-test-parts-{}", std::process::id());
    let k = Keyring::with_item_limit(&service, 64);
    let item = |name: &str| match keyring::Entry::new(&service, name).unwrap().get_secret() {
        Ok(bytes) => Some(bytes.len()),
        Err(keyring::Error::NoEntry) => None,
        Err(e) => panic!("{name}: {e}"),
    };
    let many: Vec<VerifiedContact> = (0..6u8)
        .map(|i| VerifiedContact {
            nickname: format!("friend number {i}"),
            fingerprint: [i; 32],
        })
        .collect();
    k.save_verified(&many).unwrap();
    assert_eq!(k.load_verified().unwrap(), many);
    assert_eq!(item("verified"), Some(64), "the first part is full");
    assert_eq!(item("verified.part2"), Some(64));
    let parts = (2..100)
        .take_while(|i| item(&format!("verified.part{i}")).is_some())
        .count()
        + 1;
    assert!(parts >= 8, "{parts} parts");

    // A shorter value leaves no part of the longer one behind.
    let few = many[..1].to_vec();
    k.save_verified(&few).unwrap();
    assert_eq!(k.load_verified().unwrap(), few);
    assert_eq!(item(&format!("verified.part{parts}")), None);

    k.forget().unwrap();
    assert_eq!(k.load_verified().unwrap(), Vec::new());
    assert_eq!(item("verified"), None);
    assert_eq!(item("verified.part2"), None);
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
