//! The hostile-server row of the `attack` suite (issue 14 row 10): what a server can make
//! a client keep by reporting occupants that do not exist, against an honest room message
//! in the same run.
//!
//! A scripted server ([`cryptocat_relay::scripted`], with a relay's TLS identity) serves
//! one `cryptocat-xmpp` client in this process. `made_up_occupants`: the server reports
//! [`FLOOD`] occupants with 200-character names (four times what a room can hold); then,
//! timed, more made-up occupants in batches, each batch followed by one room message that
//! tells the client's reader the batch is through. `peer_ns`: 1 KiB room messages through
//! the same connection. `ns_per_message` is the client's time per presence, seen from the
//! reader (the scripted server's writing and the loopback included, as for the honest
//! message). `retained_bytes`: the occupant names the client kept (it reports each kept
//! occupant once, as `OccupantJoined`), after the flood and after the timed batches
//! (`retained_after_timers_bytes`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_relay::scripted::{self, Script, ROOM_JID};
use cryptocat_relay::{Config as RelayConfig, Running, Server};
use cryptocat_xmpp::{Client, Config, Credentials, Event, Events, ServerUrl, TrustConfig};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::attack::{Finding, Op};
use crate::measure::{compare, Plan};

/// Made-up occupants the server reports before the timed batches.
pub const FLOOD: usize = 4 * cryptocat_xmpp::client::MAX_OCCUPANTS;
/// Length of each made-up occupant's name.
const NAME_BYTES: usize = 200;

/// Measures `made_up_occupants`.
pub fn measure(op: Op, plan: Plan) -> Result<Finding> {
    if op != Op::MadeUpOccupants {
        bail!("{} is not a server op", op.name());
    }
    let rt = Runtime::new()?;
    let mut session = rt.block_on(Session::start())?;
    // The flood, counted by what the client reports.
    let kept = rt.block_on(session.occupants(FLOOD))?;
    let retained = kept * (NAME_BYTES + 1);
    let session = std::cell::RefCell::new(session);
    let (attack, honest) = compare(
        plan,
        &mut |k| {
            let mut s = session.borrow_mut();
            let t0 = Instant::now();
            rt.block_on(s.occupants(usize::try_from(k)?))?;
            Ok(t0.elapsed())
        },
        &mut |k| {
            let mut s = session.borrow_mut();
            let t0 = Instant::now();
            rt.block_on(s.messages(usize::try_from(k)?))?;
            Ok(t0.elapsed())
        },
    )?;
    let session = session.into_inner();
    let kept_after = session.kept;
    rt.block_on(session.finish())?;
    Ok(Finding {
        op,
        retained_bytes: retained,
        retained_after_timers_bytes: Some(kept_after * (NAME_BYTES + 1)),
        reply_bytes_per_message: None,
        retained_connections: None,
        retained_connections_after_timers: None,
        attack,
        honest,
    })
}

/// The client and what the server is told to send it.
struct Session {
    _relay: Running,
    feed: mpsc::UnboundedSender<String>,
    handle: cryptocat_xmpp::ClientHandle,
    events: Events,
    server: tokio::task::JoinHandle<Result<(), String>>,
    /// Made-up occupants sent so far (each gets a new name).
    sent: usize,
    /// Occupants the client reported.
    kept: usize,
    /// Room messages sent so far (their ids).
    marks: usize,
}

impl Session {
    async fn start() -> Result<Session> {
        let mut config = RelayConfig::new("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
        config.state_dir = Some(std::env::temp_dir().join(format!(
            "cryptocat-bench-attack-server-{}",
            std::process::id()
        )));
        let relay = Server::bind(config).await?.spawn();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (feed, rx) = mpsc::unbounded_channel();
        let acceptor = relay.tls.acceptor.clone();
        let server = tokio::spawn(async move {
            let script = Script {
                password: "pw".into(),
                forge_signature: false,
                feed: rx,
            };
            scripted::serve_one(&acceptor, listener, script).await
        });
        let mut config =
            Config::new(ServerUrl::parse(&format!("xmpp://{addr}"))?).with_domain("localhost");
        config.trust = TrustConfig::only(relay.tls.certificate.clone());
        config.credentials = Some(Credentials::new("u", "pw"));
        config.reconnect = None;
        let (handle, mut events) = Client::connect(config).await?;
        handle.join("room", "a")?;
        loop {
            match events.recv().await.context("the client ended")? {
                Event::Joined { .. } => break,
                Event::JoinFailed { condition, .. } => bail!("join failed: {condition}"),
                _ => {}
            }
        }
        Ok(Session {
            _relay: relay,
            feed,
            handle,
            events,
            server,
            sent: 0,
            kept: 0,
            marks: 0,
        })
    }

    /// `n` made-up occupants, then a room message; returns when the client has read them.
    async fn occupants(&mut self, n: usize) -> Result<usize> {
        let pad = "x".repeat(NAME_BYTES.saturating_sub(8));
        for _ in 0..n {
            self.sent += 1;
            self.feed
                .send(format!(
                    "<presence from='{ROOM_JID}/{:07}-{pad}'><x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/></x></presence>",
                    self.sent
                ))
                .ok()
                .context("the server ended")?;
        }
        self.messages(1).await?;
        Ok(self.kept)
    }

    /// `n` 1 KiB room messages; returns when the client has read them.
    async fn messages(&mut self, n: usize) -> Result<()> {
        let payload = STANDARD.encode([0x42u8; 1024]);
        for _ in 0..n {
            self.marks += 1;
            self.feed
                .send(format!(
                    "<message type='groupchat' from='{ROOM_JID}/eve' id='m{}'><payload xmlns='urn:xmpp:cryptocat:1'>{payload}</payload></message>",
                    self.marks
                ))
                .ok()
                .context("the server ended")?;
        }
        let mut seen = 0;
        while seen < n {
            match tokio::time::timeout(Duration::from_secs(30), self.events.recv())
                .await
                .context("the client read nothing for 30 s")?
                .context("the client ended")?
            {
                Event::OccupantJoined { .. } => self.kept += 1,
                Event::GroupPayload { .. } => seen += 1,
                _ => {}
            }
        }
        Ok(())
    }

    async fn finish(self) -> Result<()> {
        drop(self.feed);
        let _ = self.handle.disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        Ok(())
    }
}
