//! ACME against Pebble (Debian's `pebble` and `pebble-challtestsrv`) on loopback: the
//! relay gets its certificate by HTTP-01 (Pebble really validates: its DNS is
//! challtestsrv, answering every name with 127.0.0.1, and its HTTP-01 port is the relay's
//! challenge listener), a client that trusts only Pebble's root registers and joins a
//! room, a forced renewal serves a new certificate for the same key (same pin), a restart
//! serves the kept certificate without an order, and an order Pebble cannot validate
//! fails with a clear error.
//!
//! Skipped with a notice when Pebble is not installed, unless
//! `CRYPTOCAT_REQUIRE_INTEROP=1` (set by `scripts/test`), where that is a failure.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptocat_link::Pin;
use cryptocat_relay::acme::{Acme, AcmeConfig, AcmeStatus};
use cryptocat_relay::tls::Origin;
use cryptocat_relay::{Config, Running, Server};
use cryptocat_xmpp::{Backoff, Client, Event, ServerUrl, TrustConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The relay's XMPP domain (challtestsrv resolves every name to 127.0.0.1).
const DOMAIN: &str = "relay.example.org";
/// Bound on every wait (never a measured time).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Pebble, challtestsrv and their directory; killed and removed on drop, also when the
/// test fails.
struct Pebble {
    children: Vec<(&'static str, Child)>,
    dir: PathBuf,
    directory: String,
    management: u16,
    /// The CA of Pebble's own HTTPS certificate.
    https_ca: PathBuf,
    https_ca_der: CertificateDer<'static>,
    /// Where Pebble's VA connects for HTTP-01.
    challenge_port: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pebble {
    /// Both logs, for failure messages.
    fn logs(&self) -> String {
        ["challtestsrv", "pebble"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                format!("--- {name} ---\n{text}")
            })
            .collect()
    }
}

fn installed() -> bool {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|p| p.join(name).is_file()))
    };
    let found = on_path("pebble") && on_path("pebble-challtestsrv");
    if !found {
        let required = std::env::var_os("CRYPTOCAT_REQUIRE_INTEROP").is_some_and(|v| v == "1");
        assert!(
            !required,
            "pebble is not installed but CRYPTOCAT_REQUIRE_INTEROP=1"
        );
        eprintln!("SKIPPED: pebble is not installed (apt-get install pebble)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both TCP and UDP (challtestsrv's DNS answers on both).
fn free_dns_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_listening(port: u16, what: &str, pebble: &Pebble) {
    let deadline = Instant::now() + TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start:\n{}",
            pebble.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(name: &'static str, command: &mut Command, dir: &Path) -> (&'static str, Child) {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    (name, child)
}

/// Starts challtestsrv (DNS only, every name 127.0.0.1, no AAAA) and Pebble (its HTTPS
/// certificate from a CA made here, HTTP-01 validation on `challenge_port`).
fn start_pebble() -> Pebble {
    let dir = std::env::temp_dir().join(format!("cryptocat-pebble-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "cryptocat test CA for Pebble");
    let ca = ca.self_signed(&ca_key).unwrap();
    let https_key = rcgen::KeyPair::generate().unwrap();
    let https = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&https_key, &ca, &ca_key)
        .unwrap();
    let https_ca = dir.join("https-ca.pem");
    std::fs::write(&https_ca, ca.pem()).unwrap();
    std::fs::write(dir.join("https-cert.pem"), https.pem()).unwrap();
    std::fs::write(dir.join("https-key.pem"), https_key.serialize_pem()).unwrap();

    let (dns, dns_management) = (free_dns_port(), free_port());
    let (listen, management, challenge_port, tls_port) =
        (free_port(), free_port(), free_port(), free_port());
    let config = format!(
        r#"{{"pebble": {{
  "listenAddress": "127.0.0.1:{listen}",
  "managementListenAddress": "127.0.0.1:{management}",
  "certificate": "{cert}",
  "privateKey": "{key}",
  "httpPort": {challenge_port},
  "tlsPort": {tls_port},
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}}}"#,
        cert = dir.join("https-cert.pem").display(),
        key = dir.join("https-key.pem").display(),
    );
    let config_path = dir.join("pebble-config.json");
    std::fs::write(&config_path, config).unwrap();

    let mut pebble = Pebble {
        children: Vec::new(),
        directory: format!("https://localhost:{listen}/dir"),
        management,
        https_ca,
        https_ca_der: ca.der().clone(),
        challenge_port,
        dir: dir.clone(),
    };
    pebble.children.push(spawn(
        "challtestsrv",
        Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")]),
        &dir,
    ));
    wait_listening(dns_management, "pebble-challtestsrv", &pebble);
    pebble.children.push(spawn(
        "pebble",
        Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // Validate at once instead of after a random pause; validation itself is real
            // (PEBBLE_VA_ALWAYS_VALID is not set).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .current_dir(&dir),
        &dir,
    ));
    wait_listening(listen, "pebble", &pebble);
    wait_listening(management, "pebble's management interface", &pebble);
    pebble
}

/// `GET path` on Pebble's management interface (HTTPS, our CA).
async fn management_get(pebble: &Pebble, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pebble.https_ca_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", pebble.management))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8(response).unwrap();
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    text
}

/// Pebble's root for issued certificates (a new one at every Pebble start).
async fn pebble_root(pebble: &Pebble) -> CertificateDer<'static> {
    let response = management_get(pebble, "/roots/0").await;
    let pem = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap();
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn relay_config(pebble: &Pebble, state_dir: &Path, challenge_port: u16) -> Config {
    let mut config = Config::new(DOMAIN, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.state_dir = Some(state_dir.to_owned());
    config.acme = Some(AcmeConfig {
        directory: pebble.directory.clone(),
        contact: Some("ops@example.org".into()),
        domains: Vec::new(),
        directory_ca: Some(pebble.https_ca.clone()),
        challenge_listen: SocketAddr::from(([127, 0, 0, 1], challenge_port)),
    });
    config
}

/// Waits until the status says an order ended (issued or failed).
async fn order_outcome(acme: &Acme, done: impl Fn(&AcmeStatus) -> bool) -> AcmeStatus {
    let mut status = acme.subscribe();
    let outcome = tokio::time::timeout(TIMEOUT, status.wait_for(|s| done(s)))
        .await
        .expect("no ACME outcome in time")
        .unwrap()
        .clone();
    outcome
}

/// A client that trusts only `root`, on the relay's c2s: registers, joins a room, and
/// reports the key of the server it reached.
async fn join_trusting(running: &Running, root: CertificateDer<'static>, room: &str) -> Pin {
    let url = ServerUrl::parse(&format!("xmpp://{}", running.c2s_addr)).unwrap();
    let mut config = cryptocat_xmpp::Config::new(url).with_domain(DOMAIN);
    config.trust = TrustConfig::only(root);
    config.connect_timeout = Duration::from_secs(10);
    config.reconnect = Some(Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: Some(3),
    });
    let (handle, mut events) = Client::connect(config).await.unwrap();
    handle.join(room, "ada").unwrap();
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match events.recv().await.expect("events ended") {
                Event::Joined { .. } => break,
                Event::JoinFailed { condition, .. } => panic!("join failed: {condition}"),
                _ => {}
            }
        }
    })
    .await
    .expect("no join in time");
    assert!(running.room_exists(room));
    let key = handle.server_in_use().unwrap().key.unwrap();
    handle.disconnect().unwrap();
    key
}

/// The certificate the HTTPS listener presents now (a fresh handshake), checked against
/// `root` for the domain.
async fn served_certificate(
    running: &Running,
    root: &CertificateDer<'static>,
) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(running.http_addr.unwrap())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_renews_for_the_same_key_and_a_client_trusting_its_root_joins() {
    if !installed() {
        return;
    }
    let pebble = start_pebble();
    let state = pebble.dir.join("relay-state");
    let config = relay_config(&pebble, &state, pebble.challenge_port);

    // First start: the self-signed certificate of the kept key until Pebble's arrives.
    let running = Server::bind(config.clone()).await.unwrap().spawn();
    assert!(running.http_tls, "HTTPS by default with ACME");
    let acme = running.acme().unwrap().clone();
    let pin = running.tls.pin();
    assert_eq!(Pin::of_certificate(&running.tls.certificate).unwrap(), pin);
    let status = order_outcome(&acme, |s| s.issued.is_some() || s.last_error.is_some()).await;
    let issued = status
        .issued
        .unwrap_or_else(|| panic!("no certificate: {:?}\n{}", status.last_error, pebble.logs()));
    assert_eq!(Pin::of_certificate(&issued.certificate).unwrap(), pin);
    assert_eq!(running.tls.current_certificate(), issued.certificate);
    assert!(issued.not_before < issued.renew_at && issued.renew_at < issued.not_after);
    eprintln!(
        "issued by Pebble for {:?}, key {pin}, kept in {}",
        acme.names(),
        issued.path.display()
    );

    // A client that trusts only Pebble's root: the chain and the name check out.
    let root = pebble_root(&pebble).await;
    assert_eq!(join_trusting(&running, root.clone(), "lobby").await, pin);
    assert_eq!(
        served_certificate(&running, &root).await,
        issued.certificate
    );

    // A forced renewal: another certificate, the same key, served without a restart.
    let renewed = acme.renew().await.unwrap();
    assert_ne!(renewed.certificate, issued.certificate);
    assert_eq!(Pin::of_certificate(&renewed.certificate).unwrap(), pin);
    assert_eq!(acme.status().orders, 2);
    assert_eq!(
        served_certificate(&running, &root).await,
        renewed.certificate
    );
    assert_eq!(
        join_trusting(&running, root.clone(), "after-renewal").await,
        pin
    );

    // Everything kept is private.
    #[cfg(unix)]
    for path in [
        cryptocat_relay::tls::key_path(&state, DOMAIN),
        cryptocat_relay::acme::account_path(&state, &pebble.directory),
        cryptocat_relay::acme::certificate_path(&state, DOMAIN, &pebble.directory),
    ] {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert!(running.shutdown(Duration::from_secs(5)).await);

    // A restart serves the kept certificate at once, with no order.
    let again = Server::bind(config).await.unwrap().spawn();
    assert_eq!(again.tls.origin, Origin::Acme);
    assert!(!again.tls.generated);
    assert_eq!(again.tls.pin(), pin);
    assert_eq!(again.tls.certificate, renewed.certificate);
    let kept = again.acme().unwrap().status();
    assert_eq!(
        kept.issued.map(|i| i.certificate),
        Some(renewed.certificate)
    );
    assert_eq!(join_trusting(&again, root, "after-restart").await, pin);
    assert!(again.shutdown(Duration::from_secs(5)).await);

    // An order Pebble cannot validate (nothing answers on its HTTP-01 port): a clear
    // error, and the self-signed certificate of the key goes on being served.
    let elsewhere = pebble.dir.join("relay-unreachable");
    let unreachable = relay_config(&pebble, &elsewhere, 0);
    let failing = Server::bind(unreachable).await.unwrap().spawn();
    let status = order_outcome(failing.acme().unwrap(), |s| {
        s.issued.is_some() || s.last_error.is_some()
    })
    .await;
    let error = status.last_error.unwrap();
    eprintln!("the failed order reads: {error}");
    assert!(status.issued.is_none());
    assert!(error.starts_with("ACME order failed: "), "{error}");
    assert!(error.contains(DOMAIN), "{error}");
    assert!(!error.contains("PRIVATE KEY"), "{error}");
    assert!(failing.tls.generated);
    assert!(failing.shutdown(Duration::from_secs(5)).await);
}
