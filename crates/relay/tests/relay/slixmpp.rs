//! slixmpp (PyPI, a third-party XMPP library) against the relay over TCP + STARTTLS:
//! `tests/py/slixmpp_interop.py` registers two clients in-band, logs them in, joins a room,
//! checks that a Cryptocat payload message from one reaches the other, and that a plaintext
//! `<body>` gets `policy-violation` and reaches nobody. A TCP occupant of our own in the
//! same room checks the last part from outside: it sees the payloads and never the text.
//!
//! The Python venv comes from `ensure_python_venv` in `scripts/lib/setup.sh`
//! (`target/interop-venv`, or `$CRYPTOCAT_INTEROP_VENV`). Without it the test prints
//! `SKIPPED` and passes, unless `CRYPTOCAT_REQUIRE_INTEROP=1` (set by `scripts/test`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::client::{payload_text, Client};
use crate::{group_payload, start};

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("CRYPTOCAT_INTEROP_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import slixmpp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let required = std::env::var_os("CRYPTOCAT_REQUIRE_INTEROP").is_some_and(|v| v == "1");
    assert!(
        !required,
        "no Python venv with slixmpp at {} but CRYPTOCAT_REQUIRE_INTEROP=1 \
         (run: . scripts/lib/setup.sh && ensure_python_venv)",
        venv.display()
    );
    eprintln!(
        "SKIPPED: no Python venv with slixmpp at {}; create it with \
         `. scripts/lib/setup.sh && ensure_python_venv`",
        venv.display()
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slixmpp_registers_joins_relays_payloads_and_gets_policy_violation_for_plaintext() {
    let Some(python) = venv_python() else {
        return;
    };
    let server = start().await;
    let mut watcher = Client::account(&server, "watcher").await;
    watcher.join("pyroom", "w").await;

    let payload = group_payload(42);
    let secret = "slixmpp plaintext that must reach nobody";
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/slixmpp_interop.py");
    let args = vec![
        script.display().to_string(),
        "--port".into(),
        server.c2s_addr.port().to_string(),
        "--cafile".into(),
        server.tls.certificate_path.display().to_string(),
        "--room".into(),
        "pyroom".into(),
        "--payload".into(),
        payload.clone(),
        "--plaintext".into(),
        secret.into(),
    ];
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(&args)
            .stdin(Stdio::null())
            .output()
    });

    let out = run.await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "slixmpp script failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    for line in [
        "OK registered and logged in",
        "OK joined",
        "OK payload-received",
        "OK policy-violation",
        "OK plaintext-reached-nobody",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in {stdout}");
    }
    // The watcher saw both slixmpp clients arrive, and Alice's two payloads,
    // never the plaintext.
    let mut payloads = 0;
    let mut presences = 0;
    while payloads < 2 {
        let e = watcher.next().await;
        let xml = String::from(&e);
        assert!(
            !xml.contains(secret),
            "plaintext reached the watcher: {xml}"
        );
        match e.name() {
            "presence" => presences += 1,
            "message" => {
                assert_eq!(e.attr("type"), Some("groupchat"), "{xml}");
                assert_eq!(e.attr("from"), Some("pyroom@conference.localhost/alice"));
                assert_eq!(payload_text(&e).as_deref(), Some(payload.as_str()));
                payloads += 1;
            }
            _ => panic!("unexpected {xml}"),
        }
    }
    assert!(presences >= 2, "the watcher saw {presences} presences");

    // Both leave: two unavailable presences, still no plaintext.
    loop {
        match tokio::time::timeout(Duration::from_secs(2), watcher.next_event()).await {
            Ok(crate::client::Event::Element(e)) => {
                assert!(!String::from(&e).contains(secret));
                assert_eq!(e.name(), "presence");
            }
            Ok(crate::client::Event::Closed) => panic!("watcher's stream closed"),
            Err(_) => break,
        }
    }
}
