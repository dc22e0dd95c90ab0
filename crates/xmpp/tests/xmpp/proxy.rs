//! Reconnection: a TCP proxy between the client and the relay whose connections the test
//! cuts, and whose upstream can be switched to a fresh relay (a server restart).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptocat_xmpp::{DisconnectReason, Event, TrustConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{
    config, config_for, joined, next, online, start_relay, start_relay_at,
    start_relay_without_resumption, wait_for,
};

pub struct Proxy {
    pub addr: SocketAddr,
    pub upstream: Arc<Mutex<SocketAddr>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Bumped to cut client sides only, holding the server sides open for a while.
    half_open: tokio::sync::watch::Sender<u32>,
    /// Bumped to stop forwarding on open connections (both sockets stay open).
    frozen: tokio::sync::watch::Sender<u32>,
    _accept: JoinHandle<()>,
}

/// How long a half-open cut keeps the server side of a connection.
pub const HOLD: Duration = Duration::from_millis(800);

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (up, cs) = (Arc::clone(&upstream), Arc::clone(&conns));
        let (half_open, watch) = tokio::sync::watch::channel(0u32);
        let (frozen, freeze_watch) = tokio::sync::watch::channel(0u32);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let target = *up.lock().unwrap();
                let mut watch = watch.clone();
                watch.mark_unchanged();
                let mut freeze = freeze_watch.clone();
                freeze.mark_unchanged();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = watch.changed() => {
                                drop(client);
                                tokio::time::sleep(HOLD).await;
                                drop(server);
                            }
                            _ = freeze.changed() => {
                                // Nothing more goes through; both ends stay open until
                                // the connection is cut.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                });
                cs.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            upstream,
            conns,
            half_open,
            frozen,
            _accept: accept,
        }
    }

    /// Drops the client side of every open connection but keeps the server side for
    /// [`HOLD`]: the server still sees the old session, as over a half-open connection.
    pub fn cut_client_side(&self) {
        self.half_open.send_modify(|n| *n += 1);
    }

    /// Stops forwarding on every open connection without closing it: what either side
    /// writes from now on is never delivered (a connection that silently died).
    pub fn freeze(&self) {
        self.frozen.send_modify(|n| *n += 1);
    }

    /// Cuts every open connection (both sockets are dropped).
    pub fn cut(&self) {
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn dropped_connection_reconnects_and_rejoins_the_room() {
    let server = start_relay_without_resumption().await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let mut alice = online(config_for(
        proxy.addr,
        TrustConfig::only(server.tls.certificate.clone()),
    ))
    .await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "room", "a").await;
    joined(&mut bob, "room", "b").await;
    next(&mut alice.events).await; // Bob's arrival
    let first_jid = alice.jid.clone();

    proxy.cut();
    let ev = next(&mut alice.events).await;
    assert!(
        matches!(
            ev,
            Event::Disconnected {
                reason: DisconnectReason::ConnectionLost(_),
                will_reconnect: true
            }
        ),
        "{ev:?}"
    );
    let jid = wait_for(&mut alice.events, |e| match e {
        Event::Connected { jid } => Some(jid.clone()),
        _ => None,
    })
    .await;
    // Same account (the relay still knows it), new resource.
    assert_eq!(jid.split('/').next(), first_jid.split('/').next());
    let occupants = wait_for(&mut alice.events, |e| match e {
        Event::Joined { room, occupants } if room == "room" => Some(occupants.clone()),
        _ => None,
    })
    .await;
    assert_eq!(occupants, ["b"]);
    // Bob saw Alice leave and come back.
    assert_eq!(
        wait_for(&mut bob.events, |e| match e {
            Event::OccupantLeft { nick, .. } => Some(nick.clone()),
            _ => None,
        })
        .await,
        "a"
    );
    assert_eq!(
        wait_for(&mut bob.events, |e| match e {
            Event::OccupantJoined { nick, .. } => Some(nick.clone()),
            _ => None,
        })
        .await,
        "a"
    );
    // And payloads flow again.
    let bytes = cryptocat_protocol::group::wire::GroupMessage {
        epoch: [1; 16],
        sender: 0,
        index: 0,
        prev_hash: [2; 32],
        ciphertext: vec![3; 32],
        macs: vec![[4; 16]],
    }
    .encode();
    alice.handle.send_groupchat("room", &bytes).unwrap();
    let got = wait_for(&mut bob.events, |e| match e {
        Event::GroupPayload {
            from_nick, bytes, ..
        } => Some((from_nick.clone(), bytes.clone())),
        _ => None,
    })
    .await;
    assert_eq!(got, ("a".to_owned(), bytes));
}

#[tokio::test]
async fn server_restart_registers_anew_and_rejoins() {
    let first = start_relay_at(SocketAddr::from(([127, 0, 0, 1], 0)), "first").await;
    let proxy = Proxy::start(first.c2s_addr).await;
    let second = start_relay_at(SocketAddr::from(([127, 0, 0, 1], 0)), "second").await;
    let trust = TrustConfig {
        system_roots: false,
        extra: vec![
            first.tls.certificate.clone(),
            second.tls.certificate.clone(),
        ],
        pins: Vec::new(),
    };
    let mut alice = online(config_for(proxy.addr, trust)).await;
    joined(&mut alice, "room", "a").await;

    // "Restart": the old server goes away with its accounts; a new one answers.
    *proxy.upstream.lock().unwrap() = second.c2s_addr;
    first.stop();
    proxy.cut();
    drop(first);
    let jid = wait_for(&mut alice.events, |e| match e {
        Event::Connected { jid } => Some(jid.clone()),
        _ => None,
    })
    .await;
    assert_ne!(
        jid.split('@').next(),
        alice.jid.split('@').next(),
        "new account"
    );
    let occupants = wait_for(&mut alice.events, |e| match e {
        Event::Joined { room, occupants } if room == "room" => Some(occupants.clone()),
        _ => None,
    })
    .await;
    assert!(occupants.is_empty());
    assert!(second.room_exists("room"));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn reconnection_gives_up_after_max_attempts() {
    let server = start_relay().await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let mut cfg = config_for(
        proxy.addr,
        TrustConfig::only(server.tls.certificate.clone()),
    );
    cfg.reconnect = Some(cryptocat_xmpp::Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(40),
        max_attempts: Some(2),
    });
    let mut alice = online(cfg).await;
    // Nothing listens upstream any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    *proxy.upstream.lock().unwrap() = dead.local_addr().unwrap();
    drop(dead);
    proxy.cut();
    let reason = wait_for(&mut alice.events, |e| match e {
        Event::Disconnected {
            reason,
            will_reconnect: false,
        } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(reason, DisconnectReason::GaveUp(_)), "{reason:?}");
    assert!(alice.events.recv().await.is_none());
}

#[tokio::test]
async fn rejoin_refused_while_the_old_occupant_lingers_is_retried() {
    let server = start_relay_without_resumption().await;
    let proxy = Proxy::start(server.c2s_addr).await;
    let mut alice = online(config_for(
        proxy.addr,
        TrustConfig::only(server.tls.certificate.clone()),
    ))
    .await;
    let mut bob = online(config(&server)).await;
    joined(&mut alice, "room", "a").await;
    joined(&mut bob, "room", "b").await;
    next(&mut alice.events).await;

    let started = std::time::Instant::now();
    proxy.cut_client_side();
    // The relay still has "a" until HOLD ends; the re-join gets conflict and is retried,
    // never reported as JoinFailed.
    let occupants = wait_for(&mut alice.events, |e| match e {
        Event::Joined { room, occupants } if room == "room" => Some(occupants.clone()),
        Event::JoinFailed { condition, .. } => panic!("join failed: {condition}"),
        _ => None,
    })
    .await;
    assert_eq!(occupants, ["b"]);
    assert!(
        started.elapsed() >= HOLD,
        "joined before the old occupant left"
    );
    // Bob saw the old occupant leave and the new one arrive.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next(&mut bob.events).await {
            Event::OccupantLeft { nick, .. } => seen.push(format!("-{nick}")),
            Event::OccupantJoined { nick, .. } => seen.push(format!("+{nick}")),
            _ => {}
        }
    }
    assert_eq!(seen, ["-a", "+a"]);
}
