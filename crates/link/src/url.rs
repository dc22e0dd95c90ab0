//! Server addresses: `xmpp://host:port` (TCP with STARTTLS), `ws://` / `wss://…/xmpp-websocket`
//! (RFC 7395) and `http://` / `https://…/http-bind` (BOSH, XEP-0124/0206). Parsed once
//! here for the transport, the CLI, the desktop app and invite links.

use std::fmt;

/// The default c2s port when `xmpp://host` has none.
pub const DEFAULT_XMPP_PORT: u16 = 5222;
/// The WebSocket endpoint path.
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";
/// The BOSH endpoint path.
pub const BOSH_PATH: &str = "/http-bind";
/// Longest path accepted.
pub const MAX_PATH_BYTES: usize = 256;

/// How to reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, then STARTTLS (required).
    Tcp,
    /// WebSocket; `secure` for `wss://`.
    WebSocket {
        /// TLS below the WebSocket.
        secure: bool,
    },
    /// BOSH over HTTP; `secure` for `https://`.
    Bosh {
        /// TLS below HTTP.
        secure: bool,
    },
}

/// A parsed server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// The transport the scheme names.
    pub transport: Transport,
    /// Host name or IP literal (without brackets), also the TLS server name.
    pub host: String,
    /// Port (explicit, or the scheme's default).
    pub port: u16,
    /// The HTTP path for WebSocket and BOSH (`/xmpp-websocket` and `/http-bind` when the
    /// address gave none; ejabberd uses `/ws` and `/bosh`); empty for `xmpp://`.
    pub path: String,
}

/// Why a server address was refused. Messages name the problem, never the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://`.
    #[error("server address has no scheme: use xmpp://host:port, ws(s)://host/xmpp-websocket or http(s)://host/http-bind")]
    MissingScheme,
    /// A scheme other than xmpp, ws, wss, http, https.
    #[error("unsupported scheme {0:?}: use xmpp, ws, wss, http or https")]
    UnsupportedScheme(String),
    /// Nothing between `://` and the port or path.
    #[error("server address has no host")]
    MissingHost,
    /// The port is not a number in 1..=65535.
    #[error("server address has an invalid port")]
    InvalidPort,
    /// A path for `xmpp://`, or the other HTTP transport's usual path.
    #[error("wrong path for this scheme: expected {expected}")]
    WrongPath {
        /// The path the scheme needs.
        expected: &'static str,
    },
    /// User info, a query, a fragment, or characters not allowed in a host.
    #[error("server address has {0}, which is not allowed")]
    NotAllowed(&'static str),
}

impl ServerUrl {
    /// Whether the transport runs over TLS (`xmpp://` with STARTTLS, `wss://`, `https://`).
    pub fn is_tls(&self) -> bool {
        matches!(
            self.transport,
            Transport::Tcp
                | Transport::WebSocket { secure: true }
                | Transport::Bosh { secure: true }
        )
    }

    /// Whether the host is this computer: `localhost` or a loopback IP address.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether the host is an IP address rather than a name.
    pub fn is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }

    /// Parses a server address.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::MissingScheme)?;
        let scheme = scheme.to_ascii_lowercase();
        let (transport, default_port, expected) = match scheme.as_str() {
            "xmpp" => (Transport::Tcp, DEFAULT_XMPP_PORT, ""),
            "ws" => (Transport::WebSocket { secure: false }, 80, WEBSOCKET_PATH),
            "wss" => (Transport::WebSocket { secure: true }, 443, WEBSOCKET_PATH),
            "http" => (Transport::Bosh { secure: false }, 80, BOSH_PATH),
            "https" => (Transport::Bosh { secure: true }, 443, BOSH_PATH),
            other => return Err(UrlError::UnsupportedScheme(truncate(other))),
        };
        if rest.contains('?') {
            return Err(UrlError::NotAllowed("a query"));
        }
        if rest.contains('#') {
            return Err(UrlError::NotAllowed("a fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::NotAllowed("user info"));
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(default_port);
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        {
            return Err(UrlError::NotAllowed("characters not allowed in a host"));
        }
        let path = path.trim_end_matches('/');
        if path.len() > MAX_PATH_BYTES
            || !path
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b))
        {
            return Err(UrlError::NotAllowed("characters not allowed in a path"));
        }
        // Any path the server uses (ejabberd: /ws and /bosh; Prosody and ours:
        // /xmpp-websocket and /http-bind, the default when none is given), but not the
        // other transport's usual one, which is a mix-up.
        let path = match transport {
            Transport::Tcp if path.is_empty() => "",
            Transport::Tcp => {
                return Err(UrlError::WrongPath {
                    expected: "no path",
                })
            }
            _ if path.is_empty() => expected,
            Transport::WebSocket { .. } if path.ends_with(BOSH_PATH) => {
                return Err(UrlError::WrongPath { expected })
            }
            Transport::Bosh { .. } if path.ends_with(WEBSOCKET_PATH) => {
                return Err(UrlError::WrongPath { expected })
            }
            _ => path,
        };
        Ok(Self {
            transport,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_owned(),
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(16).collect()
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), UrlError> {
    // IPv6 literal: [::1]:5222
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::MissingHost)?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(parse_port(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UrlError::InvalidPort),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, p)) => Ok((host, Some(parse_port(p)?))),
        None => Ok((authority, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::InvalidPort),
        Ok(n) => Ok(n),
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Tcp => "xmpp",
            Transport::WebSocket { secure: false } => "ws",
            Transport::WebSocket { secure: true } => "wss",
            Transport::Bosh { secure: false } => "http",
            Transport::Bosh { secure: true } => "https",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl std::str::FromStr for ServerUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_transports() {
        let u = ServerUrl::parse("xmpp://localhost:5223").unwrap();
        assert_eq!(u.transport, Transport::Tcp);
        assert_eq!((u.host.as_str(), u.port), ("localhost", 5223));
        assert_eq!(ServerUrl::parse("xmpp://example.org").unwrap().port, 5222);
        let u = ServerUrl::parse("wss://chat.example.org/xmpp-websocket").unwrap();
        assert_eq!(u.transport, Transport::WebSocket { secure: true });
        assert_eq!(u.port, 443);
        let u = ServerUrl::parse("http://127.0.0.1:5280/http-bind/").unwrap();
        assert_eq!(u.transport, Transport::Bosh { secure: false });
        assert_eq!(u.path, "/http-bind");
        let u = ServerUrl::parse("xmpp://[::1]:5222").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.to_string(), "xmpp://[::1]:5222");
        assert!(u.is_loopback() && u.is_tls() && u.is_ip());
    }

    #[test]
    fn tls_and_loopback() {
        let plain = ServerUrl::parse("ws://localhost:5280/xmpp-websocket").unwrap();
        assert!(!plain.is_tls() && plain.is_loopback() && !plain.is_ip());
        let remote = ServerUrl::parse("https://example.org/http-bind").unwrap();
        assert!(remote.is_tls() && !remote.is_loopback());
        assert!(ServerUrl::parse("http://127.0.0.2:80/http-bind")
            .unwrap()
            .is_loopback());
        assert!(!ServerUrl::parse("xmpp://10.0.0.1").unwrap().is_loopback());
    }
}
