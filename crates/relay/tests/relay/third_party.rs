//! Interop with a third-party client: tokio-xmpp 6 (its SCRAM from the `sasl` crate, its
//! stream negotiation, resource binding and stanza types) through a STARTTLS connector that
//! trusts the relay's generated certificate.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    initiate_stream, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStream,
    XmppStreamElement,
};
use tokio_xmpp::{Client, Event, Stanza};

use crate::client::{Client as RawClient, NS_PAYLOAD};

/// STARTTLS with a root store holding only the relay's certificate.
#[derive(Clone)]
pub struct TrustingConnector {
    pub addr: SocketAddr,
    pub cert: rustls::pki_types::CertificateDer<'static>,
}

impl std::fmt::Debug for TrustingConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustingConnector")
            .field("addr", &self.addr)
            .finish()
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    }
}

impl ServerConnector for TrustingConnector {
    type Stream = BufStream<Tls>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            PendingFeaturesRecv<Self::Stream>,
            sasl::common::ChannelBinding,
        ),
        tokio_xmpp::Error,
    > {
        let domain = jid.domain().as_str();
        let tcp = BufStream::new(TcpStream::connect(self.addr).await?);
        let pending = initiate_stream(tcp, ns, header(domain), timeouts).await?;
        let (features, mut stream): (_, XmppStream<_>) = pending.recv_features().await?;
        if !features.can_starttls() {
            return Err(tokio_xmpp::Error::Disconnected);
        }
        stream
            .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                starttls::Request,
            )))
            .await?;
        loop {
            match stream
                .next()
                .await
                .map(|v| v.and_then(|v| v.into_read_error()))
            {
                Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                _ => return Err(tokio_xmpp::Error::Disconnected),
            }
        }
        let tcp = stream.into_inner().into_inner();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let pending = initiate_stream(BufStream::new(tls), ns, header(domain), timeouts).await?;
        Ok((pending, sasl::common::ChannelBinding::None))
    }
}

const PASSWORD: &str = "correct horse";

/// Registers `user` with the raw client, then logs in with tokio-xmpp.
async fn online(server: &cryptocat_relay::Running, user: &str) -> Client {
    let mut raw = RawClient::connect(server).await;
    raw.starttls().await;
    raw.open_stream().await;
    let reply = raw.register(user, PASSWORD).await;
    assert_eq!(reply.attr("type"), Some("result"));
    let jid = BareJid::new(&format!("{user}@localhost")).unwrap();
    let connector = TrustingConnector {
        addr: server.c2s_addr,
        cert: server.tls.certificate.clone(),
    };
    let mut client = Client::new_with_connector(jid, PASSWORD, connector, Timeouts::default());
    loop {
        match tokio::time::timeout(crate::client::TIMEOUT, client.next()).await {
            Ok(Some(Event::Online { bound_jid, .. })) => {
                assert!(bound_jid
                    .to_string()
                    .starts_with(&format!("{user}@localhost/")));
                return client;
            }
            Ok(Some(Event::Disconnected(e))) => panic!("login failed: {e}"),
            Ok(Some(Event::Stanza(_))) => {}
            Ok(None) => panic!("client ended"),
            Err(_) => panic!("timed out logging in"),
        }
    }
}

/// The next stanza that `pick` accepts; other stanzas are skipped.
async fn wait_for<T>(client: &mut Client, mut pick: impl FnMut(&Stanza) -> Option<T>) -> T {
    loop {
        match tokio::time::timeout(crate::client::TIMEOUT, client.next()).await {
            Ok(Some(Event::Stanza(s))) => {
                if let Some(t) = pick(&s) {
                    return t;
                }
            }
            Ok(Some(Event::Disconnected(e))) => panic!("disconnected: {e}"),
            Ok(_) => {}
            Err(_) => panic!("timed out"),
        }
    }
}

/// Whether any message arrives within `ms`.
async fn message_within(client: &mut Client, ms: u64) -> bool {
    let wait = async {
        loop {
            match client.next().await {
                Some(Event::Stanza(Stanza::Message(_))) => return true,
                Some(_) => {}
                None => return false,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_millis(ms), wait)
        .await
        .unwrap_or(false)
}

fn join(nick: &str) -> Stanza {
    Presence::available()
        .with_to(Jid::new(&format!("room@conference.localhost/{nick}")).unwrap())
        .with_payload(Muc::new())
        .into()
}

fn self_presence(nick: &str) -> impl FnMut(&Stanza) -> Option<()> + '_ {
    move |s| match s {
        Stanza::Presence(p)
            if p.from.as_ref().map(|f| f.to_string())
                == Some(format!("room@conference.localhost/{nick}")) =>
        {
            Some(())
        }
        _ => None,
    }
}

#[tokio::test]
async fn tokio_xmpp_clients_log_in_join_and_only_payloads_pass() {
    let server = crate::start().await;
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;

    alice.send_stanza(join("a")).await.unwrap();
    wait_for(&mut alice, self_presence("a")).await;
    bob.send_stanza(join("b")).await.unwrap();
    wait_for(&mut bob, self_presence("b")).await;
    wait_for(&mut alice, self_presence("b")).await;

    let b64 = crate::group_payload(9);
    let payload: Element = format!("<payload xmlns='{NS_PAYLOAD}'>{b64}</payload>")
        .parse()
        .unwrap();
    let room = Jid::new("room@conference.localhost").unwrap();
    let message = Message::groupchat(Some(room.clone())).with_payloads(vec![payload]);
    alice.send_stanza(message.into()).await.unwrap();
    let got = wait_for(&mut bob, |s| match s {
        // Skip the room's subject message.
        Stanza::Message(m) if m.type_ == MessageType::Groupchat && m.subjects.is_empty() => {
            Some(m.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        got.from.map(|f| f.to_string()).as_deref(),
        Some("room@conference.localhost/a")
    );
    let text = got
        .payloads
        .iter()
        .find(|p| p.is("payload", NS_PAYLOAD))
        .map(Element::text);
    assert_eq!(text.as_deref(), Some(b64.as_str()));
    assert!(got.bodies.is_empty());

    // A plaintext body from a standard client: refused, and Bob sees nothing.
    let plain = Message::groupchat(Some(room)).with_body(
        tokio_xmpp::parsers::message::Lang(String::new()),
        "hello".into(),
    );
    alice.send_stanza(plain.into()).await.unwrap();
    let condition = wait_for(&mut alice, |s| match s {
        Stanza::Message(m) if m.type_ == MessageType::Error => m
            .payloads
            .iter()
            .find(|p| p.name() == "error")
            .and_then(|e| e.children().find(|c| c.name() != "text"))
            .map(|c| c.name().to_owned()),
        _ => None,
    })
    .await;
    assert_eq!(condition, "policy-violation");
    assert!(
        !message_within(&mut bob, 300).await,
        "plaintext reached bob"
    );
}
