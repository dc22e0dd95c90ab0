//! BOSH request scheduling against a scripted connection manager that logs every request
//! in the order it reads them, handles rids as XEP-0124 says (an early request waits for
//! the ones before it; a request with nothing to answer is held until the next one
//! arrives), and reads some HTTP connections late (a slow connection, or a server that
//! takes a while to accept). ejabberd 23.01 parks a request that overtook the one before
//! it and, if that one is then held, never processes it: the client must make the rids
//! arrive in order, each once, and its terminate after every request it numbered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptocat_xmpp::bosh::{connect_bosh, BoshConfig};
use cryptocat_xmpp::xml::ParserLimits;
use cryptocat_xmpp::{ElementStream, ServerUrl, TrustConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::TIMEOUT;

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

/// One request as the scripted server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arrival {
    rid: u64,
    terminate: bool,
    /// The request's child elements, as sent.
    children: String,
}

struct Request {
    rid: u64,
    terminate: bool,
    creation: bool,
    children: String,
    reply: oneshot::Sender<String>,
}

/// The scripted connection manager.
struct Manager {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    push: mpsc::UnboundedSender<String>,
    /// Set just before the terminate's answer is written.
    terminate_answered: Arc<AtomicBool>,
}

/// How much later than it arrived the manager reads a request on a slow connection.
const SLOW: Duration = Duration::from_millis(40);
/// How long the manager takes to answer the terminate.
const TERMINATE_ANSWER: Duration = Duration::from_millis(300);

fn attr(head: &str, name: &str) -> Option<String> {
    let start = head.find(&format!(" {name}='"))? + name.len() + 3;
    let len = head.get(start..)?.find('\'')?;
    head.get(start..start + len).map(str::to_owned)
}

fn parse_request(body: &str) -> (String, String) {
    let head_end = body.find('>').unwrap();
    let head = body[..head_end].to_owned();
    let children = if head.ends_with('/') {
        String::new()
    } else {
        let end = body.rfind("</body>").unwrap();
        body[head_end + 1..end].to_owned()
    };
    (head, children)
}

fn response(children: &str, terminate: bool) -> String {
    let kind = if terminate { " type='terminate'" } else { "" };
    format!("<body xmlns='{NS_HTTPBIND}'{kind}>{children}</body>")
}

impl Manager {
    /// Starts it; connections number 1, 3, 5… are read [`SLOW`] late. With `one_shot`
    /// instead, every connection is closed after one answer (`Connection: close`), so
    /// every request needs a new connection.
    async fn start(one_shot: bool) -> Manager {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let terminate_answered = Arc::new(AtomicBool::new(false));
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (push, pushed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut n = 0u32;
            while let Ok((conn, _)) = listener.accept().await {
                let slow = !one_shot && n % 2 == 1;
                n += 1;
                tokio::spawn(serve_connection(conn, slow, one_shot, requests_tx.clone()));
            }
        });
        tokio::spawn(session(
            requests,
            pushed,
            Arc::clone(&arrivals),
            Arc::clone(&terminate_answered),
        ));
        Manager {
            addr,
            arrivals,
            push,
            terminate_answered,
        }
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

/// Reads HTTP/1.1 requests on one connection and answers each in turn.
async fn serve_connection(
    mut conn: TcpStream,
    slow: bool,
    one_shot: bool,
    requests: mpsc::UnboundedSender<Request>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8(buf[head_end..head_end + len].to_vec()).unwrap();
        buf.drain(..head_end + len);
        if slow {
            tokio::time::sleep(SLOW).await;
        }
        let (head, children) = parse_request(&body);
        let (reply, answer) = oneshot::channel();
        let request = Request {
            rid: attr(&head, "rid").unwrap().parse().unwrap(),
            terminate: attr(&head, "type").as_deref() == Some("terminate"),
            creation: attr(&head, "sid").is_none(),
            children,
            reply,
        };
        if requests.send(request).is_err() {
            return;
        }
        let Ok(answer) = answer.await else { return };
        let close = if one_shot {
            "Connection: close\r\n"
        } else {
            ""
        };
        let http = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\n{close}\
             Content-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if conn.write_all(http.as_bytes()).await.is_err() || one_shot {
            return;
        }
    }
}

/// The BOSH session: processes requests in rid order, holds one, pushes what the test
/// gives it on the held request.
async fn session(
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut pushed: mpsc::UnboundedReceiver<String>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    terminate_answered: Arc<AtomicBool>,
) {
    let mut next = 0u64;
    let mut early: BTreeMap<u64, Request> = BTreeMap::new();
    let mut held: Option<oneshot::Sender<String>> = None;
    let mut out = String::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                arrivals.lock().unwrap().push(Arrival {
                    rid: request.rid,
                    terminate: request.terminate,
                    children: request.children.clone(),
                });
                if request.creation {
                    next = request.rid + 1;
                    let _ = request.reply.send(format!(
                        "<body xmlns='{NS_HTTPBIND}' \
                         xmlns:stream='http://etherx.jabber.org/streams' sid='s1' wait='5' \
                         hold='1' requests='2' inactivity='30' polling='2'>\
                         <stream:features/></body>"
                    ));
                    continue;
                }
                early.insert(request.rid, request);
                while let Some(request) = early.remove(&next) {
                    next += 1;
                    if let Some(h) = held.take() {
                        let _ = h.send(response(&std::mem::take(&mut out), false));
                    }
                    if request.terminate {
                        let answered = Arc::clone(&terminate_answered);
                        tokio::spawn(async move {
                            tokio::time::sleep(TERMINATE_ANSWER).await;
                            answered.store(true, Ordering::SeqCst);
                            let _ = request.reply.send(response("", true));
                        });
                        continue;
                    }
                    if out.is_empty() {
                        held = Some(request.reply);
                    } else {
                        let _ = request.reply.send(response(&std::mem::take(&mut out), false));
                    }
                }
            }
            xml = pushed.recv() => {
                let Some(xml) = xml else { return };
                out.push_str(&xml);
                if let Some(h) = held.take() {
                    let _ = h.send(response(&std::mem::take(&mut out), false));
                }
            }
        }
    }
}

async fn connect(manager: &Manager, config: BoshConfig) -> impl ElementStream {
    let url = ServerUrl::parse(&format!("http://{}/http-bind", manager.addr)).unwrap();
    let tls = TrustConfig::default().client_config_allow_empty().unwrap();
    let mut stream = connect_bosh(
        &url,
        "localhost",
        tls,
        ParserLimits::default(),
        config,
        TIMEOUT,
    )
    .await
    .unwrap();
    let features = tokio::time::timeout(TIMEOUT, stream.open())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(features.name(), "features");
    stream
}

fn message(n: u32) -> String {
    format!("<message xmlns='jabber:client' id='m{n}'/>")
}

/// Every rid once, consecutive, in the order the manager read them.
fn assert_in_order(arrivals: &[Arrival]) {
    let rids: Vec<u64> = arrivals.iter().map(|a| a.rid).collect();
    let first = rids[0];
    let expected: Vec<u64> = (first..first + rids.len() as u64).collect();
    assert_eq!(rids, expected, "rids in the order the manager read them");
}

#[tokio::test]
async fn requests_reach_a_manager_with_a_slow_connection_in_rid_order() {
    let manager = Manager::start(false).await;
    // The gap must exceed how much later the slow connections are read.
    let config = BoshConfig {
        request_gap: SLOW * 6,
        ..BoshConfig::default()
    };
    let mut stream = connect(&manager, config).await;
    // Elements sent while a poll is held, a few milliseconds apart: each wants a request
    // of its own while the one before it is still held (the case ejabberd got wrong).
    let mut sent = 0;
    for round in 0..4u32 {
        for _ in 0..3 {
            stream.send(message(sent)).await.unwrap();
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Something for the client, answered at once by the test.
        manager
            .push
            .send(format!("<message xmlns='jabber:client' id='p{round}'/>"))
            .unwrap();
        let got = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .expect("the pushed element did not arrive: a request was parked")
            .unwrap();
        assert_eq!(got.attr("id"), Some(format!("p{round}").as_str()));
        stream.send(message(sent)).await.unwrap();
        sent += 1;
    }
    tokio::time::timeout(TIMEOUT, stream.close()).await.unwrap();

    let arrivals = manager.arrivals();
    assert_in_order(&arrivals);
    assert!(arrivals.len() >= 6, "{arrivals:?}");
    // Every element once, in order, and the terminate last.
    let ids: String = arrivals.iter().map(|a| a.children.as_str()).collect();
    let expected: String = (0..sent).map(message).collect();
    assert_eq!(ids, expected);
    assert_eq!(arrivals.iter().filter(|a| a.terminate).count(), 1);
    assert!(arrivals.last().unwrap().terminate);
}

#[tokio::test]
async fn close_sends_the_terminate_after_every_numbered_request_and_waits_for_its_answer() {
    // A new connection per request: the last request before close() is still connecting
    // when the close begins.
    let manager = Manager::start(true).await;
    let mut stream = connect(&manager, BoshConfig::default()).await;
    // The first poll is held; an element answers it and is held in turn; another element
    // gets a request of its own, and close() comes right after it: that request is
    // numbered before the terminate and must reach the manager before it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.send(message(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.send(message(1)).await.unwrap();
    tokio::time::timeout(TIMEOUT, stream.close()).await.unwrap();
    assert!(
        manager.terminate_answered.load(Ordering::SeqCst),
        "close() returned before the terminate was answered"
    );
    let arrivals = manager.arrivals();
    assert_in_order(&arrivals);
    assert_eq!(arrivals.iter().filter(|a| a.terminate).count(), 1);
    assert!(arrivals.last().unwrap().terminate);
    let ids: String = arrivals.iter().map(|a| a.children.as_str()).collect();
    assert_eq!(ids, format!("{}{}", message(0), message(1)));
}
