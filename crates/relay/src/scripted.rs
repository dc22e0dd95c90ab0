//! A scripted server (feature `scripted`), for tests and benchmarks of what our relay never
//! sends but another server could: it serves one client STARTTLS (with the relay's TLS
//! identity), SCRAM-SHA-256 for one password (the relay's SCRAM code; the signature flipped
//! on request), resource binding, an empty service discovery and a room join, then sends
//! whatever XML its feed gives it, as it comes, until the feed closes, and waits for the
//! client to go. Used by `crates/xmpp/tests/xmpp/fake_server.rs` and the bench's
//! `made_up_occupants` row.
//!
//! It trusts its client: every step that does not go as scripted ends the connection with
//! an error naming the step.

use std::collections::VecDeque;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cryptocat_xml::{ParserLimits, StreamParser, XmlEvent};
use minidom::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::scram;

const HEADER: &str = "<?xml version='1.0'?><stream:stream from='localhost' id='s1' \
     version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// The room the client joins; the script's XML speaks for `room@conference.localhost`.
pub const ROOM_JID: &str = "room@conference.localhost";

/// What the server does.
pub struct Script {
    /// The account's password (any user name is accepted).
    pub password: String,
    /// Flip the server signature in SCRAM's last message (and end there).
    pub forge_signature: bool,
    /// XML sent after the client joined the room (its self-presence, status 110), one item
    /// at a time as they come; the server waits for the client to leave once it closes.
    pub feed: mpsc::UnboundedReceiver<String>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("forge_signature", &self.forge_signature)
            .finish_non_exhaustive()
    }
}

impl Script {
    /// A script that sends `xml` after the join.
    pub fn fixed(password: &str, forge_signature: bool, xml: Vec<String>) -> Self {
        let (tx, feed) = mpsc::unbounded_channel();
        for x in xml {
            let _ = tx.send(x);
        }
        Self {
            password: password.to_owned(),
            forge_signature,
            feed,
        }
    }
}

struct Conn<S> {
    io: S,
    parser: StreamParser,
    queue: VecDeque<Element>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Conn {
            io,
            parser: StreamParser::new(ParserLimits::default()),
            queue: VecDeque::new(),
        }
    }

    async fn send(&mut self, xml: &str) -> Result<(), String> {
        self.io
            .write_all(xml.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.io.flush().await.map_err(|e| format!("flush: {e}"))
    }

    async fn read_events(&mut self) -> Result<Vec<XmlEvent>, String> {
        let mut buf = [0u8; 4096];
        let n = self
            .io
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the client closed".into());
        }
        self.parser
            .feed(buf.get(..n).unwrap_or_default())
            .map_err(|e| format!("parse: {e}"))
    }

    /// Waits for a stream header (fresh parser).
    async fn header(&mut self) -> Result<(), String> {
        self.parser = StreamParser::new(ParserLimits::default());
        self.queue.clear();
        loop {
            let mut opened = false;
            for ev in self.read_events().await? {
                match ev {
                    XmlEvent::StreamOpen(_) => opened = true,
                    XmlEvent::Stanza(e) => self.queue.push_back(e),
                    XmlEvent::StreamClose => return Err("the client closed its stream".into()),
                }
            }
            if opened {
                return Ok(());
            }
        }
    }

    async fn next(&mut self) -> Result<Element, String> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(e);
            }
            for ev in self.read_events().await? {
                if let XmlEvent::Stanza(e) = ev {
                    self.queue.push_back(e);
                }
            }
        }
    }
}

/// Serves one client from `listener` as `script` says. `Ok` when the script ran to its end
/// (or the client refused the certificate, which ends it early).
pub async fn serve_one(
    acceptor: &TlsAcceptor,
    listener: TcpListener,
    mut script: Script,
) -> Result<(), String> {
    let (tcp, _) = listener
        .accept()
        .await
        .map_err(|e| format!("accept: {e}"))?;
    let mut c = Conn::new(tcp);
    c.header().await?;
    c.send(HEADER).await?;
    c.send("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").await?;
    if c.next().await?.name() != "starttls" {
        return Err("no <starttls/>".into());
    }
    c.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    // A client that refuses the certificate ends here.
    let Ok(tls) = acceptor.accept(c.io).await else {
        return Ok(());
    };
    let mut c = Conn::new(tls);
    c.header().await?;
    c.send(HEADER).await?;
    c.send("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>").await?;
    let auth = c.next().await?;
    let first = STANDARD
        .decode(auth.text())
        .map_err(|_| "client-first: not base64")?;
    let creds = scram::Credentials::derive(&script.password, vec![7; 16], 4096);
    let (waiting, server_first) = scram::server_first(
        &first,
        |u| Some(u.to_owned()),
        |_| Some(creds),
        &[9; 32],
        "servernonce",
    )
    .map_err(|e| format!("client-first: {e}"))?;
    c.send(&format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        STANDARD.encode(server_first)
    ))
    .await?;
    let response = c.next().await?;
    let client_final = STANDARD
        .decode(response.text())
        .map_err(|_| "client-final: not base64")?;
    let (_, server_final) = waiting
        .finish(&client_final)
        .map_err(|e| format!("client-final: {e}"))?;
    let server_final = if script.forge_signature {
        let sig = server_final
            .strip_prefix("v=")
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or("server-final: no signature")?;
        let flipped: Vec<u8> = sig.iter().map(|b| b ^ 1).collect();
        format!("v={}", STANDARD.encode(flipped))
    } else {
        server_final
    };
    c.send(&format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
        STANDARD.encode(server_final)
    ))
    .await?;
    if script.forge_signature {
        return Ok(());
    }
    c.header().await?;
    c.send(HEADER).await?;
    c.send("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
        .await?;
    let bind = c.next().await?;
    c.send(&format!(
        "<iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u@localhost/r</jid></bind></iq>",
        cryptocat_xml::escape(bind.attr("id").unwrap_or_default())
    ))
    .await?;
    // Answer service discovery with nothing (a server without a listed room service),
    // wait for the join presence, then answer as a room would and send the script.
    let presence = loop {
        let el = c.next().await?;
        if el.name() == "iq" {
            c.send(&format!(
                "<iq type='result' id='{}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
                cryptocat_xml::escape(el.attr("id").unwrap_or_default())
            ))
            .await?;
            continue;
        }
        break el;
    };
    if presence.name() != "presence" {
        return Err(format!(
            "<{}/> instead of the join presence",
            presence.name()
        ));
    }
    c.send(&format!("<presence from='{ROOM_JID}/a' to='u@localhost/r'><x xmlns='http://jabber.org/protocol/muc#user'><item role='participant'/><status code='110'/></x></presence>")).await?;
    while let Some(xml) = script.feed.recv().await {
        c.send(&xml).await?;
    }
    // Keep the connection until the client leaves.
    let mut buf = [0u8; 1024];
    while matches!(c.io.read(&mut buf).await, Ok(n) if n > 0) {}
    Ok(())
}
