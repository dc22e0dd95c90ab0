//! Pinned trust: a server is accepted when its key has the pin, whatever signed its
//! certificate, and refused before anything of ours is sent when it does not.

use std::net::SocketAddr;

use cryptocat_relay::{Config as RelayConfig, Server};
use cryptocat_xmpp::{
    CertificateReason, Client, ConnectError, Pin, Refusal, SessionError, TlsFailure,
    TransportError, TrustConfig,
};

use crate::{config_for, online, start_relay, start_relay_http};

fn refusal(err: &ConnectError) -> Refusal {
    match err {
        ConnectError::Session(SessionError::Transport(TransportError::Tls(
            TlsFailure::Certificate(r),
        ))) => r.clone(),
        other => panic!("expected a refused certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn the_pinned_key_is_accepted_and_another_refused_before_login() {
    let server = start_relay().await;
    let right = Pin::of_certificate(&server.tls.certificate).unwrap();
    // The pin alone: no roots, no certificate file.
    let alice = online(config_for(
        server.c2s_addr,
        TrustConfig::pinned(vec![right]),
    ))
    .await;
    let registered = server.account_count();
    assert_eq!(registered, 1);

    let wrong = Pin::of_spki(b"some other key");
    let err = Client::connect(config_for(
        server.c2s_addr,
        TrustConfig::pinned(vec![wrong]),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        refusal(&err),
        Refusal {
            reason: CertificateReason::WrongKey,
            seen: Some(right),
        }
    );
    let text = err.to_string();
    assert!(text.contains("not the one the invite names"), "{text}");
    assert!(text.contains(&right.to_string()), "{text}");
    // Nothing was registered for the refused attempt.
    assert_eq!(server.account_count(), registered);
    // One of several pins is enough.
    online(config_for(
        server.c2s_addr,
        TrustConfig::pinned(vec![wrong, right]),
    ))
    .await;
    alice.handle.disconnect().unwrap();
}

#[tokio::test]
async fn pins_hold_over_websocket_and_bosh_with_tls() {
    let server = start_relay_http("pins-https", true).await;
    let port = server.http_addr.unwrap().port();
    let right = Pin::of_certificate(&server.tls.certificate).unwrap();
    for url in [
        format!("wss://localhost:{port}/xmpp-websocket"),
        format!("https://localhost:{port}/http-bind"),
    ] {
        let mut config = cryptocat_xmpp::Config::new(url.parse().unwrap());
        config.trust = TrustConfig::pinned(vec![right]);
        let _peer = online(config).await;
        let mut config = cryptocat_xmpp::Config::new(url.parse().unwrap());
        config.trust = TrustConfig::pinned(vec![Pin::of_spki(b"other")]);
        let err = Client::connect(config).await.unwrap_err();
        assert_eq!(refusal(&err).reason, CertificateReason::WrongKey, "{url}");
    }
    // One account per accepted connection, none for the refused ones.
    assert_eq!(server.account_count(), 2);
}

/// A self-signed CA:TRUE certificate used as the server's own, as `prosodyctl cert
/// generate`, Debian's ejabberd and `openssl req -x509` make: chain validation refuses it
/// and says why (with the key it saw); a pin of its key accepts it.
#[tokio::test]
async fn a_ca_certificate_as_the_servers_own() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let dir = std::env::temp_dir().join(format!("cryptocat-xmpp-ca-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut config = RelayConfig::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.tls_cert = Some(cert_path);
    config.tls_key = Some(key_path);
    let server = Server::bind(config).await.unwrap().spawn();

    let pin = Pin::of_certificate(cert.der()).unwrap();
    let err = Client::connect(config_for(
        server.c2s_addr,
        TrustConfig::only(cert.der().clone()),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        refusal(&err),
        Refusal {
            reason: CertificateReason::CaUsedAsEndEntity,
            seen: Some(pin),
        }
    );
    online(config_for(server.c2s_addr, TrustConfig::pinned(vec![pin]))).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// An invite's servers are tried in order: a closed port and a server with another key
/// are passed over, and the client reports the address and key it ended up with. When
/// every address fails, a refused key is what is reported.
#[tokio::test]
async fn addresses_are_tried_in_order() {
    let right = start_relay().await;
    let impostor = crate::start_relay_at(SocketAddr::from(([127, 0, 0, 1], 0)), "impostor").await;
    let pin = Pin::of_certificate(&right.tls.certificate).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url =
        |addr: SocketAddr| cryptocat_xmpp::ServerUrl::parse(&format!("xmpp://{addr}")).unwrap();

    let mut config = config_for(closed, TrustConfig::pinned(vec![pin]));
    config.fallback_servers = vec![url(impostor.c2s_addr), url(right.c2s_addr)];
    let peer = online(config).await;
    let in_use = peer.handle.server_in_use().unwrap();
    assert_eq!(in_use.url, url(right.c2s_addr));
    assert_eq!(in_use.key, Some(pin));
    assert_eq!(impostor.account_count(), 0);

    let mut config = config_for(closed, TrustConfig::pinned(vec![pin]));
    config.fallback_servers = vec![url(impostor.c2s_addr)];
    let err = Client::connect(config).await.unwrap_err();
    assert_eq!(refusal(&err).reason, CertificateReason::WrongKey);
}
