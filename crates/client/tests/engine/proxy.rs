//! A loopback TCP proxy between clients and the relay: it records every byte in both
//! directions, can cut every connection (a network failure), and can switch to another
//! upstream (a restarted relay), or swallow everything while keeping the connections
//! open (a network that silently loses packets).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    captured: Arc<Mutex<Vec<u8>>>,
    /// Only what the server sent to clients, in order (not interleaved with the other
    /// direction, so it can be parsed).
    down: Arc<Mutex<Vec<u8>>>,
    /// While set, bytes are read and dropped: client to server, server to client.
    swallow: Arc<[AtomicBool; 2]>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    captured: Arc<Mutex<Vec<u8>>>,
    down: Option<Arc<Mutex<Vec<u8>>>>,
    swallow: Arc<[AtomicBool; 2]>,
    direction: usize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) if swallow[direction].load(Ordering::SeqCst) => {}
            Ok(n) => {
                captured.lock().unwrap().extend_from_slice(&buf[..n]);
                if let Some(down) = &down {
                    down.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(Mutex::new(Vec::new()));
        let swallow = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let (up, cs, cap, dn, sw) = (
            Arc::clone(&upstream),
            Arc::clone(&conns),
            Arc::clone(&captured),
            Arc::clone(&down),
            Arc::clone(&swallow),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let target = *up.lock().unwrap();
                let cap = Arc::clone(&cap);
                let dn = Arc::clone(&dn);
                let sw = Arc::clone(&sw);
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw_half) = server.into_split();
                    // Both directions in this task: aborting it cuts both.
                    tokio::select! {
                        () = pump(cr, sw_half, Arc::clone(&cap), None, Arc::clone(&sw), 0) => {}
                        () = pump(sr, cw, cap, Some(dn), sw, 1) => {}
                    }
                });
                cs.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            upstream,
            conns,
            captured,
            down,
            swallow,
            accept,
        }
    }

    /// Cuts every open connection, as a network failure would.
    pub fn cut(&self) {
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// While `on`, the open connections stay open but carry nothing: what is sent is
    /// lost (and never acknowledged).
    pub fn swallow(&self, on: bool) {
        for direction in self.swallow.iter() {
            direction.store(on, Ordering::SeqCst);
        }
    }

    /// Like [`Proxy::swallow`], for what the server sends only.
    pub fn swallow_downstream(&self, on: bool) {
        self.swallow[1].store(on, Ordering::SeqCst);
    }

    /// New connections go to `addr`.
    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap() = addr;
    }

    /// What the server sent to clients so far.
    pub fn downstream(&self) -> Vec<u8> {
        self.down.lock().unwrap().clone()
    }

    /// Everything that went through, both directions.
    pub fn captured(&self) -> Vec<u8> {
        self.captured.lock().unwrap().clone()
    }
}
