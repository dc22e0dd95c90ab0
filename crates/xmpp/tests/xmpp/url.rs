//! Server address parsing.

use cryptocat_xmpp::{ServerUrl, Transport, UrlError};

#[test]
fn accepted_forms() {
    let u = ServerUrl::parse("xmpp://localhost:5222").unwrap();
    assert_eq!(u.transport, Transport::Tcp);
    assert_eq!(u.port, 5222);
    let u = ServerUrl::parse("ws://127.0.0.1:5280/xmpp-websocket").unwrap();
    assert_eq!(u.transport, Transport::WebSocket { secure: false });
    let u = ServerUrl::parse("HTTPS://Chat.Example.org/http-bind").unwrap();
    assert_eq!(u.transport, Transport::Bosh { secure: true });
    assert_eq!(u.host, "chat.example.org");
    assert_eq!(u.port, 443);
    assert_eq!(u.to_string(), "https://chat.example.org:443/http-bind");
    // The default path when none is given, and the paths other servers use.
    assert_eq!(
        ServerUrl::parse("https://localhost/").unwrap().path,
        "/http-bind"
    );
    assert_eq!(
        ServerUrl::parse("wss://localhost").unwrap().path,
        "/xmpp-websocket"
    );
    assert_eq!(
        ServerUrl::parse("http://localhost:5280/bosh").unwrap().path,
        "/bosh"
    );
    assert_eq!(
        ServerUrl::parse("ws://localhost:5280/ws/").unwrap().path,
        "/ws"
    );
}

#[test]
fn refused_forms_have_clear_errors() {
    let cases: &[(&str, UrlError)] = &[
        ("localhost:5222", UrlError::MissingScheme),
        ("ftp://localhost", UrlError::UnsupportedScheme("ftp".into())),
        ("xmpp://:5222", UrlError::MissingHost),
        ("xmpp://localhost:0", UrlError::InvalidPort),
        ("xmpp://localhost:99999", UrlError::InvalidPort),
        ("xmpp://localhost:port", UrlError::InvalidPort),
        (
            "xmpp://localhost:5222/path",
            UrlError::WrongPath {
                expected: "no path",
            },
        ),
        (
            "ws://localhost/http-bind",
            UrlError::WrongPath {
                expected: "/xmpp-websocket",
            },
        ),
        (
            "http://localhost/xmpp-websocket",
            UrlError::WrongPath {
                expected: "/http-bind",
            },
        ),
        (
            "https://localhost/a b",
            UrlError::NotAllowed("characters not allowed in a path"),
        ),
        (
            "xmpp://user:pw@localhost",
            UrlError::NotAllowed("user info"),
        ),
        (
            "http://localhost/http-bind?x=1",
            UrlError::NotAllowed("a query"),
        ),
        (
            "xmpp://local host",
            UrlError::NotAllowed("characters not allowed in a host"),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(ServerUrl::parse(text).as_ref(), Err(expected), "{text}");
    }
    // Messages never repeat credentials from the address.
    let msg = ServerUrl::parse("xmpp://user:secretpw@localhost")
        .unwrap_err()
        .to_string();
    assert!(!msg.contains("secretpw"), "{msg}");
    assert!(ServerUrl::parse("gopher://x")
        .unwrap_err()
        .to_string()
        .contains("use xmpp, ws, wss, http or https"));
}
