//! Third-party JavaScript clients (npm packages pinned in `tests/js/package.json`) against
//! the relay: strophe.js 5 over BOSH registers with strophejs-plugin-register, logs in
//! with SCRAM-SHA-256, joins a room and gets `policy-violation` for a plaintext `<body>`
//! that the TCP occupant never sees; strophe.js over WebSocket does the same with an
//! account registered beforehand (the plugin works over BOSH only).
//!
//! Skipped with a notice when `node` is missing or the packages are not installed
//! (`cd crates/relay/tests/js && npm install --ignore-scripts`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::client::Client;
use crate::start;
use crate::web::{register, WsClient};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Whether node and the packages are there; prints why not.
fn node_ready() -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // scripts/test installs node and the packages and sets CRYPTOCAT_REQUIRE_JS=1, so in
    // CI a missing piece is a failure, not a skip.
    let required = std::env::var_os("CRYPTOCAT_REQUIRE_JS").is_some_and(|v| v == "1");
    if !node {
        assert!(
            !required,
            "node is not installed but CRYPTOCAT_REQUIRE_JS=1"
        );
        eprintln!("SKIPPED: node is not installed");
        return false;
    }
    if !js_dir().join("node_modules/strophe.js").exists() {
        assert!(!required, "npm packages missing but CRYPTOCAT_REQUIRE_JS=1");
        eprintln!(
            "SKIPPED: npm packages missing: cd crates/relay/tests/js && npm install --ignore-scripts"
        );
        return false;
    }
    true
}

/// Runs `tests/js/strophe.mjs` with these arguments and checks it succeeded.
async fn run_strophe(args: &[&str]) {
    // The script ends itself after 20 s whatever happens.
    let dir = js_dir();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("strophe.mjs"))
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK policy-violation"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("joined"), "{stdout}");
}

/// The TCP occupant saw the JavaScript client arrive and leave, never its plaintext.
async fn only_presences(tcp: &mut Client) {
    let mut presences = 0;
    loop {
        let e = tcp.next().await;
        assert_eq!(e.name(), "presence", "only presences reach the room: {e:?}");
        presences += 1;
        if e.attr("type") == Some("unavailable") {
            break;
        }
    }
    assert_eq!(presences, 2);
    tcp.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn strophe_js_over_bosh_registers_joins_and_gets_policy_violation() {
    if !node_ready() {
        return;
    }
    let server = start().await;
    let mut tcp = Client::account(&server, "tcpjs").await;
    tcp.join("jsroom", "t").await;
    let url = format!("http://{}/http-bind", server.http_addr.unwrap());
    run_strophe(&[url.as_str(), "jsroom", "strophe"]).await;
    only_presences(&mut tcp).await;
}

#[tokio::test]
async fn strophe_js_over_websocket_logs_in_joins_and_gets_policy_violation() {
    if !node_ready() {
        return;
    }
    let server = start().await;
    let mut tcp = Client::account(&server, "tcpjsws").await;
    tcp.join("jswsroom", "t").await;
    // Strophe's registration plugin is BOSH-only: register over WebSocket here.
    let (mut ws, _) = WsClient::connect(&server).await;
    let reg = register(&mut ws, "stropheuser", "strophe-pw").await;
    assert_eq!(reg.attr("type"), Some("result"));
    drop(ws);
    let url = format!("ws://{}/xmpp-websocket", server.http_addr.unwrap());
    run_strophe(&[
        url.as_str(),
        "jswsroom",
        "strophe",
        "stropheuser",
        "strophe-pw",
    ])
    .await;
    only_presences(&mut tcp).await;
}
