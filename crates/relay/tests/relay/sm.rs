//! XEP-0198 stream management on TCP (and resumption on WebSocket): acknowledgements, resumption of a detached session
//! (room membership kept, unacknowledged stanzas resent), refusal of another account's
//! resumption, the limits (unacknowledged queue, detached lifetime), and a leave sent
//! just before a connection reset.

use std::time::Duration;

use cryptocat_relay::{Limits, Running};
use minidom::Element;

use crate::client::{payload_text, Client, Event};
use crate::web::{self, WsClient, Xmpp as _};
use crate::{group_payload, groupchat, payload, start_with};

const NS_SM: &str = "urn:xmpp:sm:3";

fn limits() -> Limits {
    Limits {
        auth_failure_delay_ms: 10,
        ..Limits::default()
    }
}

/// STARTTLS, (registration,) login and the restarted stream's features.
async fn logged_in(server: &Running, user: &str, register: bool) -> (Client, Element) {
    let mut c = Client::connect(server).await;
    c.starttls().await;
    c.open_stream().await;
    if register {
        let reg = c.register(user, &format!("pw-{user}")).await;
        assert_eq!(reg.attr("type"), Some("result"), "{reg:?}");
    }
    c.login(user, &format!("pw-{user}")).await.unwrap();
    let features = c.open_stream().await;
    (c, features)
}

async fn bind(c: &mut Client) {
    c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await;
    let reply = c.next().await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
}

/// A bound client with stream management enabled; returns it and the resumption id.
async fn managed(server: &Running, user: &str, max: &str) -> (Client, String) {
    let (mut c, features) = logged_in(server, user, true).await;
    assert!(features.get_child("sm", NS_SM).is_some(), "{features:?}");
    bind(&mut c).await;
    c.send(&format!("<enable xmlns='{NS_SM}' resume='true'/>"))
        .await;
    let enabled = c.next().await;
    assert!(enabled.is("enabled", NS_SM), "{enabled:?}");
    assert_eq!(enabled.attr("resume"), Some("true"));
    assert_eq!(enabled.attr("max"), Some(max));
    let id = enabled.attr("id").unwrap().to_owned();
    assert_eq!(id.len(), 32, "128 random bits");
    (c, id)
}

async fn ack(c: &mut Client) -> String {
    c.send(&format!("<r xmlns='{NS_SM}'/>")).await;
    loop {
        let a = c.next().await;
        if a.is("a", NS_SM) {
            return a.attr("h").unwrap().to_owned();
        }
    }
}

/// Waits until `pred` holds (polls for up to 2 s).
async fn eventually(mut pred: impl FnMut() -> bool) {
    for _ in 0..100 {
        if pred() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn detached_session_is_resumed_by_its_account_only() {
    let server = start_with(limits()).await;
    let (mut alice, id) = managed(&server, "smalice", "120").await;
    assert_eq!(ack(&mut alice).await, "0");
    alice.join("smroom", "a").await;
    assert_eq!(ack(&mut alice).await, "1", "the join presence");
    let mut bob = Client::account(&server, "smbob").await;
    bob.join("smroom", "b").await;
    let first = group_payload(1);
    bob.send(&groupchat("smroom", &payload(&first))).await;
    bob.next().await; // echo
                      // Alice's connection breaks without a closing tag: the session is kept.
    drop(alice);
    eventually(|| server.detached_count() == 1).await;
    let second = group_payload(2);
    bob.send(&groupchat("smroom", &payload(&second))).await;
    bob.next().await; // echo

    // Another account cannot take it over.
    let (mut mallory, _) = logged_in(&server, "smmallory", true).await;
    mallory
        .send(&format!("<resume xmlns='{NS_SM}' previd='{id}' h='0'/>"))
        .await;
    let failed = mallory.next().await;
    assert!(failed.is("failed", NS_SM), "{failed:?}");
    assert!(failed
        .get_child("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .is_some());
    assert_eq!(server.detached_count(), 1);

    // Alice resumes, acknowledging nothing: everything since <enabled/> comes again, then
    // what arrived while she was away; Bob never saw her leave.
    let (mut alice, features) = logged_in(&server, "smalice", false).await;
    assert!(features.get_child("sm", NS_SM).is_some());
    alice
        .send(&format!("<resume xmlns='{NS_SM}' previd='{id}' h='0'/>"))
        .await;
    let resumed = alice.next().await;
    assert!(resumed.is("resumed", NS_SM), "{resumed:?}");
    assert_eq!(resumed.attr("h"), Some("1"), "the server handled her join");
    assert_eq!(resumed.attr("previd"), Some(id.as_str()));
    assert_eq!(server.detached_count(), 0);
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        let el = alice.next().await;
        if let Some(p) = payload_text(&el) {
            payloads.push(p);
        }
    }
    assert_eq!(payloads, [first, second]);
    bob.expect_silence(Duration::from_millis(200)).await;
    // The session goes on; an acknowledgement of more than was sent ends it.
    let third = group_payload(3);
    bob.send(&groupchat("smroom", &payload(&third))).await;
    bob.next().await; // echo
    loop {
        let el = alice.next().await;
        if payload_text(&el).as_deref() == Some(third.as_str()) {
            break;
        }
    }
    alice
        .send(&format!("<a xmlns='{NS_SM}' h='100000'/>"))
        .await;
    assert_eq!(alice.expect_stream_error().await, "undefined-condition");
    // A stream error ends the session for good: not detached, Bob sees her leave.
    let gone = bob.next().await;
    assert_eq!(gone.attr("type"), Some("unavailable"), "{gone:?}");
    assert_eq!(server.detached_count(), 0);
}

#[tokio::test]
async fn unacknowledged_queue_and_detached_lifetime_are_bounded() {
    let server = start_with(Limits {
        sm_max_unacked: 4,
        sm_resume_secs: 1,
        ..limits()
    })
    .await;
    let (mut alice, _) = managed(&server, "smcarol", "1").await;
    alice.join("smroom2", "c").await; // presence + subject: 2 unacknowledged
    let mut bob = Client::account(&server, "smdave").await;
    bob.join("smroom2", "d").await; // Bob's arrival: 3
    for seed in 0..3 {
        bob.send(&groupchat("smroom2", &payload(&group_payload(seed))))
            .await;
    }
    assert_eq!(alice.expect_stream_error().await, "resource-constraint");

    // Detached sessions expire after sm_resume_secs; their occupant then leaves.
    let (mut erin, _) = managed(&server, "smerin", "1").await;
    erin.join("smroom2", "e").await;
    drop(erin);
    eventually(|| server.detached_count() == 1).await;
    let mut left = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !left && tokio::time::Instant::now() < deadline {
        if let Event::Element(el) = bob.next_event().await {
            left = el.attr("type") == Some("unavailable")
                && el.attr("from") == Some("smroom2@conference.localhost/e");
        }
    }
    assert!(left, "the detached occupant left when the session expired");
    assert_eq!(server.detached_count(), 0);
}

/// A group message of about 16 KiB of base64.
fn big(seed: u8) -> String {
    cryptocat_protocol::group::wire::GroupMessage {
        epoch: [seed; 16],
        sender: 1,
        index: 1,
        prev_hash: [seed; 32],
        ciphertext: vec![seed; 12 * 1024],
        macs: vec![[seed; 16]; 2],
    }
    .to_base64()
}

/// Issue 14 row 8: what a stream-managed session keeps is bounded in bytes too: the
/// unacknowledged stanzas (`resource-constraint` past `outbox_bytes`), and a detached
/// session whose outbox overflows ends at once rather than at `sm_resume_secs`.
#[tokio::test]
async fn unacknowledged_and_detached_bytes_are_bounded() {
    let server = start_with(Limits {
        outbox_bytes: 64 * 1024,
        sm_resume_secs: 120,
        ..limits()
    })
    .await;
    // Read but never acknowledged: five 16 KiB stanzas are past 64 KiB, far below the
    // 1,024-stanza count.
    let (mut alice, _) = managed(&server, "smbytes", "120").await;
    alice.join("smroom3", "a").await;
    let mut bob = Client::account(&server, "smbytes2").await;
    bob.join("smroom3", "b").await;
    for seed in 0..3 {
        bob.send(&groupchat("smroom3", &payload(&big(seed)))).await;
        loop {
            if payload_text(&alice.next().await).is_some() {
                break;
            }
        }
    }
    for seed in 3..5 {
        bob.send(&groupchat("smroom3", &payload(&big(seed)))).await;
    }
    assert_eq!(alice.expect_stream_error().await, "resource-constraint");

    // Detached, then flooded: ended as soon as its outbox overflows.
    let (mut erin, _) = managed(&server, "smbytes3", "120").await;
    erin.join("smroom3", "e").await;
    drop(erin);
    eventually(|| server.detached_count() == 1).await;
    for seed in 0..5 {
        bob.send(&groupchat("smroom3", &payload(&big(seed)))).await;
    }
    eventually(|| server.detached_count() == 0).await;
    assert_eq!(server.retained().outbox_bytes, 0);
}

/// A client sends a groupchat message, leaves, closes its stream and resets the
/// connection at once, with the server's answers unread: the server's write of the echo
/// fails, yet the leave it read in the same go reaches the other occupant at once, and the
/// session is not kept for resumption.
#[tokio::test]
async fn leave_before_a_reset_reaches_the_others() {
    let server = start_with(limits()).await;
    let (mut alice, _) = managed(&server, "rstalice", "120").await;
    alice.join("rstroom", "a").await;
    let mut bob = Client::account(&server, "rstbob").await;
    bob.join("rstroom", "b").await;
    let arrival = alice.next().await;
    assert_eq!(arrival.attr("from"), Some("rstroom@conference.localhost/b"));
    alice
        .send(&format!(
            "{}<r xmlns='{NS_SM}'/><presence type='unavailable' \
             to='rstroom@conference.localhost/a'/></stream:stream>",
            groupchat("rstroom", &payload(&group_payload(1)))
        ))
        .await;
    alice.reset();
    let message = bob.next().await;
    assert!(payload_text(&message).is_some(), "{message:?}");
    let gone = tokio::time::timeout(Duration::from_secs(1), bob.next())
        .await
        .expect("the leave reaches Bob at once");
    assert_eq!(gone.attr("type"), Some("unavailable"), "{gone:?}");
    assert_eq!(gone.attr("from"), Some("rstroom@conference.localhost/a"));
    eventually(|| server.detached_count() == 0).await;
    bob.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(server.detached_count(), 0);
}

/// A WebSocket client with stream management enabled; returns it and the resumption id.
async fn ws_managed(server: &Running, user: &str) -> (WsClient, String) {
    let (mut c, _) = WsClient::connect(server).await;
    web::register(&mut c, user, &format!("pw-{user}")).await;
    web::login(&mut c, user, &format!("pw-{user}"))
        .await
        .unwrap();
    web::bind(&mut c).await;
    c.send(&format!("<enable xmlns='{NS_SM}' resume='true'/>"))
        .await;
    let enabled = c.next().await;
    assert!(enabled.is("enabled", NS_SM), "{enabled:?}");
    assert_eq!(enabled.attr("resume"), Some("true"));
    (c, enabled.attr("id").unwrap().to_owned())
}

/// XEP-0198 over WebSocket as over TCP: a broken WebSocket leaves its session detached
/// (still in its rooms, stanzas kept for it), and a `<resume/>` on a new WebSocket takes
/// it over; nobody saw the member leave.
#[tokio::test]
async fn websocket_session_is_resumed_on_a_new_websocket() {
    let server = start_with(limits()).await;
    let (mut alice, id) = ws_managed(&server, "wsalice").await;
    web::join(&mut alice, "wsroom", "a").await;
    let mut bob = Client::account(&server, "wsbob").await;
    bob.join("wsroom", "b").await;
    // The WebSocket breaks without <close/>.
    drop(alice);
    eventually(|| server.detached_count() == 1).await;
    let away = group_payload(7);
    bob.send(&groupchat("wsroom", &payload(&away))).await;
    bob.next().await; // echo

    let (mut alice, _) = WsClient::connect(&server).await;
    web::login(&mut alice, "wsalice", "pw-wsalice")
        .await
        .unwrap();
    let features = alice.restart().await;
    assert!(features.get_child("sm", NS_SM).is_some(), "{features:?}");
    alice
        .send(&format!("<resume xmlns='{NS_SM}' previd='{id}' h='0'/>"))
        .await;
    let resumed = alice.next().await;
    assert!(resumed.is("resumed", NS_SM), "{resumed:?}");
    assert_eq!(server.detached_count(), 0);
    loop {
        let el = alice.next().await;
        if payload_text(&el).as_deref() == Some(away.as_str()) {
            break;
        }
    }
    bob.expect_silence(Duration::from_millis(200)).await;
    // The stream goes on, acknowledged as before.
    alice.send(&format!("<r xmlns='{NS_SM}'/>")).await;
    loop {
        if alice.next().await.is("a", NS_SM) {
            break;
        }
    }
}

/// A detached WebSocket session counts among the streams admitted (per address and in
/// total) until it expires, and is then freed: its occupant leaves.
#[tokio::test]
async fn detached_websocket_session_counts_until_it_expires() {
    let server = start_with(Limits {
        sm_resume_secs: 1,
        ..limits()
    })
    .await;
    let mut bob = Client::account(&server, "wsdave").await;
    bob.join("wsroom2", "d").await;
    let (mut carol, _) = ws_managed(&server, "wscarol").await;
    web::join(&mut carol, "wsroom2", "c").await;
    bob.next().await; // carol's arrival
    assert_eq!(server.retained().sessions, 2);
    drop(carol);
    eventually(|| server.detached_count() == 1).await;
    assert_eq!(
        server.retained().sessions,
        2,
        "the detached session still counts"
    );
    let gone = bob.next().await;
    assert_eq!(gone.attr("type"), Some("unavailable"), "{gone:?}");
    assert_eq!(gone.attr("from"), Some("wsroom2@conference.localhost/c"));
    assert_eq!(server.detached_count(), 0);
    assert_eq!(server.retained().sessions, 1);
    assert_eq!(server.retained().outbox_bytes, 0);
}
