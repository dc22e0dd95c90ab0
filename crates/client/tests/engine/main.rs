//! The engine end to end against the real relay, started in-process on loopback: three
//! members over each transport, verification, leaving, reconnection, and what the
//! server sees.

// Test code: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod chat;
mod drop;
mod leave;
mod proxy;
mod reconnect;

use std::net::SocketAddr;
use std::time::Duration;

use cryptocat_client::{
    Backoff, Engine, EngineConfig, EngineEvent, EngineEvents, EngineHandle, ServerUrl, TrustConfig,
};
use cryptocat_relay::{Config as RelayConfig, Limits, Running, Server};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A relay with c2s (STARTTLS) and HTTP (WebSocket, BOSH) on loopback.
pub async fn start_relay(tag: &str) -> Running {
    start_relay_at(SocketAddr::from(([127, 0, 0, 1], 0)), None, tag).await
}

pub async fn start_relay_at(c2s: SocketAddr, http: Option<SocketAddr>, tag: &str) -> Running {
    start_relay_with(c2s, http, tag, |_| {}).await
}

/// A relay on loopback whose limits `tune` changes (e.g. no resumption).
pub async fn start_relay_with(
    c2s: SocketAddr,
    http: Option<SocketAddr>,
    tag: &str,
    tune: impl FnOnce(&mut Limits),
) -> Running {
    let mut config = RelayConfig::new("localhost", c2s);
    config.http = Some(http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))));
    config.state_dir = Some(std::env::temp_dir().join(format!(
        "cryptocat-engine-test-{}-{tag}",
        std::process::id()
    )));
    config.limits = Limits {
        auth_failure_delay_ms: 10,
        ..Limits::default()
    };
    tune(&mut config.limits);
    Server::bind(config).await.unwrap().spawn()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tcp,
    WebSocket,
    Bosh,
}

pub fn url(relay: &Running, via: Via) -> ServerUrl {
    let text = match via {
        Via::Tcp => format!("xmpp://{}", relay.c2s_addr),
        Via::WebSocket => format!("ws://{}/xmpp-websocket", relay.http_addr.unwrap()),
        Via::Bosh => format!("http://{}/http-bind", relay.http_addr.unwrap()),
    };
    ServerUrl::parse(&text).unwrap()
}

pub fn engine_config(relay: &Running, server: ServerUrl, room: &str, nick: &str) -> EngineConfig {
    let mut config = EngineConfig::new(server, room, nick);
    config.domain = Some("localhost".into());
    config.trust = TrustConfig::only(relay.tls.certificate.clone());
    config.connect_timeout = Duration::from_secs(5);
    config.reconnect = Some(Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: Some(40),
    });
    config.rejoin_wait = Duration::from_secs(15);
    config
}

/// One person in a room, with everything the engine told them.
#[allow(missing_debug_implementations)]
pub struct Person {
    pub nick: String,
    pub handle: EngineHandle,
    events: EngineEvents,
    pub log: Vec<EngineEvent>,
}

impl Person {
    pub async fn join(config: EngineConfig) -> Person {
        let nick = config.nickname.clone();
        let (handle, events) = Engine::start(config).await.unwrap();
        Person {
            nick,
            handle,
            events,
            log: Vec::new(),
        }
    }

    /// Reads events until `pred` holds for one; returns it. Panics after [`TIMEOUT`].
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&EngineEvent) -> bool,
    ) -> EngineEvent {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        if let Some(e) = self.log.iter().find(|e| pred(e)) {
            return e.clone();
        }
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    self.log.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Ok(None) => panic!(
                    "{}: events ended while waiting for {what}; log: {:#?}",
                    self.nick, self.log
                ),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; log: {:#?}",
                    self.nick, self.log
                ),
            }
        }
    }

    /// Reads whatever events arrive within `d`.
    pub async fn drain_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            self.log.push(e);
        }
    }

    /// Waits until the room's epoch holds `n` members including us.
    pub async fn wait_members(&mut self, n: usize) {
        self.wait_for(
            &format!("an epoch of {n}"),
            |e| matches!(e, EngineEvent::Rekeyed { members, .. } if *members == n),
        )
        .await;
        self.log
            .retain(|e| !matches!(e, EngineEvent::Rekeyed { .. }));
    }

    /// Group texts received, as (nick, text), in order.
    pub fn received(&self) -> Vec<(String, String)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Message {
                    nick,
                    text,
                    private: false,
                    ..
                } => Some((nick.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn private_received(&self) -> Vec<(String, String)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Message {
                    nick,
                    text,
                    private: true,
                    ..
                } => Some((nick.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Warning { code, .. } => Some(code.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// Sends a text and waits until it went out; returns its message id.
    pub async fn say(&mut self, text: &str) -> String {
        let local = self.handle.send(text).unwrap();
        match self
            .wait_for(
                "our message to go out",
                |e| matches!(e, EngineEvent::Sent { local_id, .. } if *local_id == local),
            )
            .await
        {
            EngineEvent::Sent { id, .. } => id,
            _ => unreachable!(),
        }
    }

    /// Waits until a group text from `nick` arrives.
    pub async fn hear(&mut self, nick: &str, text: &str) {
        let (n, t) = (nick.to_owned(), text.to_owned());
        self.wait_for(&format!("{nick} saying {text:?}"), move |e| {
            matches!(e, EngineEvent::Message { nick, text, private: false, .. } if *nick == n && *text == t)
        })
        .await;
    }

    /// Waits until our message `id` is confirmed by `n` of `n`.
    pub async fn confirmed(&mut self, id: &str, n: usize) {
        let id = id.to_owned();
        self.wait_for(&format!("confirmation {n} of {n}"), move |e| {
            matches!(e, EngineEvent::Confirmation { id: i, confirmed, of } if *i == id && *confirmed == n && *of == n)
        })
        .await;
    }
}

/// Three people in one room over `via`, each seeing the two others in an attested epoch.
pub async fn trio(relay: &Running, via: Via, room: &str) -> (Person, Person, Person) {
    let mut a = Person::join(engine_config(relay, url(relay, via), room, "alice")).await;
    let mut b = Person::join(engine_config(relay, url(relay, via), room, "bob")).await;
    a.wait_members(2).await;
    let mut c = Person::join(engine_config(relay, url(relay, via), room, "carol")).await;
    for p in [&mut a, &mut b, &mut c] {
        p.wait_members(3).await;
    }
    (a, b, c)
}
