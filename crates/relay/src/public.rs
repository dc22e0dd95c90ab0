//! What the server tells people: its addresses and the invite-link prefix of its start
//! banner (`cryptocat_link::Access::link_prefix`, `docs/invite.md`).
//!
//! Addresses, in the order a client tries them: `wss://` then `https://` (BOSH) when the
//! HTTP listener speaks TLS, then `xmpp://` (c2s with STARTTLS). A plain HTTP listener is
//! never in the link: the link carries the pin, which only TLS can check.
//!
//! Host names: a TLS address uses [`Config::public_host`] when it is set, else the
//! listener's own address when that is loopback (a test or a development set-up: what
//! is printed works as printed), else the domain. An unspecified listener (`0.0.0.0`,
//! `[::]`) is never printed as a host. The link names the XMPP domain when the first address's host is not it, and
//! always carries the pin of the server's key.

use std::net::SocketAddr;

use cryptocat_link::{Access, Pin, ServerUrl};

use crate::config::Config;

/// The host a TLS address of `listener` names.
fn tls_host(config: &Config, listener: SocketAddr) -> String {
    match &config.public_host {
        Some(host) => host.clone(),
        None if listener.ip().is_loopback() => listener.ip().to_string(),
        None => config.domain.clone(),
    }
}

fn url(scheme: &str, host: &str, port: u16, path: &str) -> Option<ServerUrl> {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    ServerUrl::parse(&format!("{scheme}://{host}:{port}{path}")).ok()
}

/// How to reach the server: its addresses in order, its domain when needed, its pin.
pub fn access(
    config: &Config,
    c2s: SocketAddr,
    http: Option<SocketAddr>,
    http_tls: bool,
    pin: Pin,
) -> Access {
    let mut servers = Vec::new();
    if let Some(http) = http.filter(|_| http_tls) {
        let host = tls_host(config, http);
        servers.extend(url("wss", &host, http.port(), "/xmpp-websocket"));
        servers.extend(url("https", &host, http.port(), "/http-bind"));
    }
    servers.extend(url("xmpp", &tls_host(config, c2s), c2s.port(), ""));
    let domain = servers
        .first()
        .filter(|first| !first.host.eq_ignore_ascii_case(&config.domain))
        .map(|_| config.domain.clone());
    Access {
        servers,
        domain,
        muc: None,
        pins: vec![pin],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptocat_link::Invite;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn pin() -> Pin {
        Pin::of_spki(b"key")
    }

    #[test]
    fn a_public_server_on_every_interface_prints_its_names() {
        let mut config = Config::new("example.org", addr("[::]:5222"));
        config.public_host = Some("chat.example.org".into());
        let access = access(
            &config,
            addr("[::]:5222"),
            Some(addr("0.0.0.0:443")),
            true,
            pin(),
        );
        let servers: Vec<String> = access.servers.iter().map(ToString::to_string).collect();
        assert_eq!(
            servers,
            [
                "wss://chat.example.org:443/xmpp-websocket",
                "https://chat.example.org:443/http-bind",
                "xmpp://chat.example.org:5222",
            ]
        );
        assert_eq!(access.domain.as_deref(), Some("example.org"));
        access.check().unwrap();
        let prefix = access.link_prefix();
        assert!(
            !prefix.contains("0.0.0.0") && !prefix.contains("[::]"),
            "{prefix}"
        );
        let invite = Invite::parse(&format!("{prefix}lobby")).unwrap();
        assert_eq!(invite.room, "lobby");
        assert_eq!(invite.access, access);
        assert_eq!(invite.access.pins, vec![pin()]);
    }

    #[test]
    fn the_domain_is_named_only_when_the_host_differs() {
        let config = Config::new("example.org", addr("0.0.0.0:5222"));
        let access = access(
            &config,
            addr("0.0.0.0:5222"),
            Some(addr("0.0.0.0:5281")),
            true,
            pin(),
        );
        assert_eq!(access.servers[0].host, "example.org");
        assert_eq!(access.servers[0].port, 5281);
        assert_eq!(access.domain, None);
        assert!(!access.link_prefix().contains("domain="));
    }

    #[test]
    fn plain_http_is_never_in_a_link() {
        let config = Config::new("localhost", addr("127.0.0.1:5222"));
        let local = access(
            &config,
            addr("127.0.0.1:5222"),
            Some(addr("127.0.0.1:5280")),
            false,
            pin(),
        );
        let servers: Vec<String> = local.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["xmpp://127.0.0.1:5222"]);
        assert_eq!(local.domain.as_deref(), Some("localhost"));
        local.check().unwrap();

        let config = Config::new("example.org", addr("0.0.0.0:5222"));
        let public = access(
            &config,
            addr("0.0.0.0:5222"),
            Some(addr("0.0.0.0:5280")),
            false,
            pin(),
        );
        let servers: Vec<String> = public.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["xmpp://example.org:5222"]);
        public.check().unwrap();

        let v6 = access(&config, addr("[::1]:5222"), None, false, pin());
        assert_eq!(v6.servers[0].to_string(), "xmpp://[::1]:5222");
    }
}
