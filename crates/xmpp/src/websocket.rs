//! XMPP over WebSocket (RFC 7395): subprotocol `xmpp`, one complete element per text
//! frame, `<open/>`/`<close/>` in the framing namespace instead of a stream header.
//! `wss://` puts our rustls configuration under the WebSocket; `ws://` is for loopback or
//! a local reverse proxy (the relay serves plain HTTP there).

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::transport::{
    stream_error_condition, tcp_connect, tls_failure, BoxFuture, ElementStream, TlsFailure,
    TransportError,
};
use crate::url::{ServerUrl, Transport};
use crate::xml::{escape, ParserLimits, StreamParser, XmlEvent, NS_STREAM};

/// The RFC 7395 framing namespace.
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// The byte stream under the WebSocket (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An RFC 7395 connection.
pub struct WebSocketTransport {
    ws: WebSocketStream<Box<dyn Io>>,
    domain: String,
    limits: ParserLimits,
    /// Fed a synthetic stream root, then every frame: each frame is one element at depth 1.
    parser: StreamParser,
    /// `tls-exporter` of the `wss://` connection.
    binding: Option<[u8; 32]>,
}

impl std::fmt::Debug for WebSocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketTransport").finish_non_exhaustive()
    }
}

const ROOT: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Adds `xmlns='jabber:client'` to a top-level stanza that has no namespace (RFC 7395
/// requires every frame's element to be namespace-qualified).
pub(crate) fn qualify(xml: &str) -> String {
    for name in ["<message", "<presence", "<iq"] {
        if let Some(rest) = xml.strip_prefix(name) {
            let head_end = rest.find('>').unwrap_or(rest.len());
            let head = rest.get(..head_end).unwrap_or_default();
            if rest.starts_with([' ', '>', '/']) && !head.contains("xmlns=") {
                return format!("{name} xmlns='jabber:client'{rest}");
            }
        }
    }
    xml.to_owned()
}

/// Connects to a `ws://` or `wss://` URL with subprotocol `xmpp`. TLS (for `wss`) is
/// checked against the URL's host.
pub async fn connect_websocket(
    url: &ServerUrl,
    domain: &str,
    tls: Arc<rustls::ClientConfig>,
    limits: ParserLimits,
    timeout: Duration,
) -> Result<WebSocketTransport, TransportError> {
    tokio::time::timeout(timeout, connect_inner(url, domain, tls, limits))
        .await
        .map_err(|_| TransportError::Connect(std::io::ErrorKind::TimedOut))?
}

async fn connect_inner(
    url: &ServerUrl,
    domain: &str,
    tls: Arc<rustls::ClientConfig>,
    limits: ParserLimits,
) -> Result<WebSocketTransport, TransportError> {
    let Transport::WebSocket { secure } = url.transport else {
        return Err(TransportError::Protocol("not a WebSocket address"));
    };
    let tcp = tcp_connect(&url.host, url.port).await?;
    let mut binding = None;
    let io: Box<dyn Io> = if secure {
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|_| TransportError::Tls(TlsFailure::InvalidName))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| tls_failure(&e))?;
        binding = crate::transport::exporter(stream.get_ref().1);
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let mut request = url
        .to_string()
        .into_client_request()
        .map_err(|_| TransportError::Protocol("invalid WebSocket request"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("xmpp"),
    );
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(limits.max_stanza_bytes);
    config.max_frame_size = Some(limits.max_stanza_bytes);
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
        .await
        .map_err(|_| TransportError::Protocol("WebSocket upgrade refused"))?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok());
    if protocol != Some("xmpp") {
        return Err(TransportError::Protocol(
            "server did not accept subprotocol xmpp",
        ));
    }
    Ok(WebSocketTransport {
        ws,
        domain: domain.to_owned(),
        limits,
        parser: StreamParser::new(limits),
        binding,
    })
}

impl WebSocketTransport {
    async fn write(&mut self, xml: String) -> Result<(), TransportError> {
        self.ws
            .send(Message::text(qualify(&xml)))
            .await
            .map_err(|_| TransportError::Io(std::io::ErrorKind::BrokenPipe))
    }

    async fn open_inner(&mut self) -> Result<Element, TransportError> {
        self.parser = StreamParser::new(self.limits);
        self.parser
            .feed(ROOT.as_bytes())
            .map_err(TransportError::Xml)?;
        let open = format!(
            "<open xmlns='{NS_FRAMING}' to='{}' version='1.0'/>",
            escape(&self.domain)
        );
        self.write(open).await?;
        let features = self.next_inner().await?;
        if !features.is("features", NS_STREAM) {
            return Err(TransportError::Protocol("expected stream features"));
        }
        Ok(features)
    }

    async fn next_inner(&mut self) -> Result<Element, TransportError> {
        loop {
            let frame = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Binary(_))) => {
                    return Err(TransportError::Protocol("binary WebSocket frame"))
                }
                Some(Ok(Message::Close(_))) | None => return Err(TransportError::Closed),
                Some(Ok(_)) => continue,
                Some(Err(_)) => {
                    return Err(TransportError::Io(std::io::ErrorKind::ConnectionReset))
                }
            };
            let mut events = self
                .parser
                .feed(frame.as_str().as_bytes())
                .map_err(TransportError::Xml)?
                .into_iter();
            let element = match (events.next(), events.next()) {
                (Some(XmlEvent::Stanza(el)), None) => el,
                _ => {
                    return Err(TransportError::Protocol(
                        "a frame must hold exactly one element",
                    ))
                }
            };
            if element.is("open", NS_FRAMING) {
                continue;
            }
            if element.is("close", NS_FRAMING) {
                return Err(TransportError::Closed);
            }
            if element.is("error", NS_STREAM) {
                return Err(TransportError::StreamError {
                    condition: stream_error_condition(&element),
                });
            }
            return Ok(element);
        }
    }
}

impl ElementStream for WebSocketTransport {
    fn channel_binding(&self) -> Option<[u8; 32]> {
        self.binding
    }

    fn open(&mut self) -> BoxFuture<'_, Result<Element, TransportError>> {
        Box::pin(self.open_inner())
    }

    fn send(&mut self, xml: String) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(self.write(xml))
    }

    fn next(&mut self) -> BoxFuture<'_, Result<Element, TransportError>> {
        Box::pin(self.next_inner())
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let close = format!("<close xmlns='{NS_FRAMING}'/>");
            if self.write(close).await.is_ok() {
                // RFC 7395 section 3.6: wait (briefly) for the server's <close/>, reading
                // what it still sends, before closing the WebSocket. ejabberd 23.01 drops
                // the frames it has not handled yet when the WebSocket closes, so closing
                // at once lost the stanzas sent just before (the room leave).
                let drain = async { while self.next_inner().await.is_ok() {} };
                let _ = tokio::time::timeout(crate::transport::CLOSE_WAIT, drain).await;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), self.ws.close(None)).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::qualify;

    #[test]
    fn stanzas_get_the_client_namespace_once() {
        assert_eq!(
            qualify("<message to='a'/>"),
            "<message xmlns='jabber:client' to='a'/>"
        );
        assert_eq!(
            qualify("<iq type='get'>"),
            "<iq xmlns='jabber:client' type='get'>"
        );
        assert_eq!(
            qualify("<presence xmlns='jabber:client'/>"),
            "<presence xmlns='jabber:client'/>"
        );
        assert_eq!(qualify("<auth xmlns='x'/>"), "<auth xmlns='x'/>");
        assert_eq!(qualify("<iqx/>"), "<iqx/>");
    }
}
