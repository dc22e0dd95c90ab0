//! Integration tests: our transport against the real relay, started in-process on
//! 127.0.0.1 (port 0), plus a scripted fake server for what the relay never sends.

// Test code: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bosh;
mod bosh_order;
mod fake_server;
mod fuzz_corpus;
mod keyauth;
mod pins;
mod proxy;
mod relay;
mod sm;
mod url;
mod websocket;

use std::net::SocketAddr;
use std::time::Duration;

use cryptocat_relay::{Config as RelayConfig, Limits, Running, Server};
use cryptocat_xmpp::{
    Backoff, Client, ClientHandle, Config, Event, Events, ServerUrl, TrustConfig,
};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn start_relay_at(addr: SocketAddr, tag: &str) -> Running {
    start_relay_with(addr, tag, Limits::default()).await
}

/// A relay with these limits (the authentication back-off shortened for tests).
pub async fn start_relay_with(addr: SocketAddr, tag: &str, limits: Limits) -> Running {
    let mut config = RelayConfig::new("localhost", addr);
    config.state_dir = Some(
        std::env::temp_dir().join(format!("cryptocat-xmpp-test-{}-{tag}", std::process::id())),
    );
    config.limits = Limits {
        auth_failure_delay_ms: 10,
        ..limits
    };
    Server::bind(config).await.unwrap().spawn()
}

/// A relay that does not offer XEP-0198 resumption (as many servers): a broken
/// connection means a new session and re-joining.
pub async fn start_relay_without_resumption() -> Running {
    let limits = Limits {
        sm_resume_secs: 0,
        ..Limits::default()
    };
    start_relay_with(SocketAddr::from(([127, 0, 0, 1], 0)), "no-resume", limits).await
}

/// A relay that also serves HTTP (WebSocket at /xmpp-websocket) on loopback.
pub async fn start_relay_with_http() -> Running {
    start_relay_http("http", false).await
}

/// A relay with an HTTP listener (HTTPS with its generated certificate when `https`).
pub async fn start_relay_http(tag: &str, https: bool) -> Running {
    let mut config = RelayConfig::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http_tls = Some(https);
    config.state_dir = Some(
        std::env::temp_dir().join(format!("cryptocat-xmpp-test-{}-{tag}", std::process::id())),
    );
    config.limits = Limits {
        auth_failure_delay_ms: 10,
        ..Limits::default()
    };
    Server::bind(config).await.unwrap().spawn()
}

pub async fn start_relay() -> Running {
    start_relay_at(SocketAddr::from(([127, 0, 0, 1], 0)), "main").await
}

/// A client configuration for a server at `addr` with the domain `localhost`.
pub fn config_for(addr: SocketAddr, trust: TrustConfig) -> Config {
    let mut config =
        Config::new(ServerUrl::parse(&format!("xmpp://{addr}")).unwrap()).with_domain("localhost");
    config.trust = trust;
    config.connect_timeout = Duration::from_secs(5);
    config.reconnect = Some(Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: Some(20),
    });
    config
}

pub fn config(server: &Running) -> Config {
    config_for(
        server.c2s_addr,
        TrustConfig::only(server.tls.certificate.clone()),
    )
}

#[derive(Debug)]
pub struct Peer {
    pub handle: ClientHandle,
    pub events: Events,
    pub jid: String,
}

pub async fn online(config: Config) -> Peer {
    let (handle, mut events) = Client::connect(config).await.unwrap();
    let jid = match next(&mut events).await {
        Event::Connected { jid } => jid,
        other => panic!("expected Connected, got {other:?}"),
    };
    Peer {
        handle,
        events,
        jid,
    }
}

/// The next event other than [`Event::Accepted`] (see [`next_event`]).
pub async fn next(events: &mut Events) -> Event {
    loop {
        match next_event(events).await {
            Event::Accepted { .. } => {}
            ev => return ev,
        }
    }
}

/// The next event, whatever it is.
pub async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("event channel closed")
}

/// The next event that `pick` accepts; others are skipped.
pub async fn wait_for<T>(events: &mut Events, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    loop {
        let ev = next(events).await;
        if let Some(t) = pick(&ev) {
            return t;
        }
    }
}

/// Asserts no event arrives within `dur`.
pub async fn expect_silence(events: &mut Events, dur: Duration) {
    let deadline = tokio::time::Instant::now() + dur;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if !matches!(ev, Event::Accepted { .. }) {
            panic!("unexpected event: {ev:?}");
        }
    }
}

pub async fn joined(peer: &mut Peer, room: &str, nick: &str) -> Vec<String> {
    peer.handle.join(room, nick).unwrap();
    wait_for(&mut peer.events, |e| match e {
        Event::Joined { room: r, occupants } if r.eq_ignore_ascii_case(room) => {
            Some(occupants.clone())
        }
        Event::JoinFailed { condition, .. } => panic!("join failed: {condition}"),
        _ => None,
    })
    .await
}
