//! The stock-ejabberd harness (`cryptocat_tests::ejabberd`) checks itself: a private node
//! starts (the time is printed once: 2.5 to 3.4 s here on 2 busy cores, 0.2 to 0.5 s of
//! it for the certificate), one `cryptocat_xmpp` client registers in-band and logs in over TCP with
//! STARTTLS, trusting the node by its key pin alone, the account shows up in
//! `registered_users` (and is gone once the client disconnected), a client without the
//! pin refuses the certificate, and the node's directory is gone after the drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::Duration;

use cryptocat_tests::ejabberd::{Ejabberd, DOMAIN, MUC_DOMAIN};
use cryptocat_xmpp::{Client, Config, Event, ServerUrl, TrustConfig};

#[test]
fn a_private_ejabberd_registers_and_logs_in_a_client_over_starttls() {
    let Some(server) = Ejabberd::start("harness") else {
        return;
    };
    assert!(server.registered_users().is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config =
            Config::new(ServerUrl::parse(&server.xmpp_url()).unwrap()).with_domain(DOMAIN);
        config.trust = TrustConfig::pinned(vec![server.pin]);
        config.reconnect = None;
        let (handle, mut events) =
            tokio::time::timeout(Duration::from_secs(30), Client::connect(config))
                .await
                .expect("login timed out")
                .unwrap_or_else(|e| panic!("login failed: {e}\n{}", server.log_tail(30)));
        assert_eq!(handle.muc_domain(), MUC_DOMAIN);
        let users = server.registered_users();
        assert_eq!(users.len(), 1, "{users:?}");
        // The client removes the account it registered when it disconnects (XEP-0077).
        handle.disconnect().unwrap();
        let disconnected = async {
            while let Some(event) = events.recv().await {
                if matches!(event, Event::Disconnected { .. }) {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), disconnected)
            .await
            .expect("no Disconnected");
    });
    let users = server.registered_users();
    assert!(users.is_empty(), "{users:?}");
    // A client that trusts the system roots only refuses the node's certificate.
    runtime.block_on(async {
        let mut config =
            Config::new(ServerUrl::parse(&server.xmpp_url()).unwrap()).with_domain(DOMAIN);
        config.reconnect = None;
        let Err(refused) = Client::connect(config).await else {
            panic!("a certificate no authority signed was accepted");
        };
        assert!(refused.is_certificate_refusal(), "{refused}");
    });
    let logs = server.logs.clone();
    let dir = logs.parent().unwrap().to_owned();
    drop(server);
    assert!(!Path::new(&dir).exists(), "the node's directory is removed");
}
