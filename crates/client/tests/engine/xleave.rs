use cryptocat_xmpp::{Client, Config, Event, TrustConfig};
use std::time::Duration;

#[tokio::test]
async fn xmpp_leave_over_tcp() {
    let relay = crate::start_relay("xleave").await;
    let mk = || {
        let mut c = Config::new(crate::url(&relay, crate::Via::Tcp)).with_domain("localhost");
        c.trust = TrustConfig::only(relay.tls.certificate.clone());
        c
    };
    let (a, mut ae) = Client::connect(mk()).await.unwrap();
    let (b, mut be) = Client::connect(mk()).await.unwrap();
    a.join("r", "aaa").unwrap();
    loop {
        if let Some(Event::Joined { .. }) = ae.recv().await {
            break;
        }
    }
    b.join("r", "bbb").unwrap();
    loop {
        if let Some(Event::Joined { .. }) = be.recv().await {
            break;
        }
    }
    let payload = cryptocat_protocol::group::wire::GroupMessage {
        epoch: [7; 16],
        sender: 0,
        index: 1,
        prev_hash: [9; 32],
        ciphertext: vec![1; 64],
        macs: vec![[1; 16]],
    }
    .encode();
    b.send_groupchat("r", &payload).unwrap();
    b.leave("r").unwrap();
    b.disconnect().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = ae.recv().await;
            eprintln!("A {e:?}");
            if let Some(Event::OccupantLeft { .. }) = e {
                break;
            }
        }
    })
    .await;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(500), be.recv()).await {
        eprintln!("B {e:?}");
    }
    assert!(got.is_ok());
}
