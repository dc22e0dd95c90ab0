//! A private cluster of stock ejabberd 23.01 nodes on this machine, with our room service
//! (`conference.localhost`) spread over several component connections.
//!
//! What it is, and what was found out making it (docs/deploy.md has the operator's side):
//! - Each node as [`crate::ejabberd::Ejabberd`]'s: its own directory (config, spool,
//!   logs, certificate), node name (`cc_cl_<pid>_<n>_<i>@localhost`) and loopback ports,
//!   plus an `ejabberd_service` listener for the component.
//! - Erlang distribution needs a port mapper here: with `ERL_DIST_PORT` (how the single
//!   node runs without epmd) a node looks for every other node on that same port, so two
//!   nodes on one address cannot meet. The cluster starts its own `epmd` on a free
//!   loopback port and gives every node and every `ejabberdctl` call `ERL_EPMD_PORT`: the
//!   system's epmd (port 4369) is neither used nor started. One random cookie for all
//!   nodes (clustering needs the same one).
//! - Node 0 starts, then every other node starts and runs `ejabberdctl join_cluster
//!   <node 0>` (its Mnesia is replaced by a copy of the cluster's; ejabberd restarts in the
//!   node, about 1.4 s here).
//! - Every node's config has `domain_balancing` for the component domain:
//!   `type: bare_destination` with `component_number` = the number of instances, so that
//!   every stanza to one room goes to one instance (ejabberd hashes the bare destination
//!   JID over `component_number` slots; each component connection takes a free slot when
//!   it connects; a slot whose connection is gone drops what is routed to it until a
//!   connection takes it again; connections beyond `component_number` are accepted and
//!   get nothing).
//! - [`Cluster::freeze`] stops a node (SIGSTOP, a hang), [`Cluster::kill`] ends it with
//!   SIGKILL (a crash); [`Cluster::restart`] starts it again from its spool, and it rejoins
//!   the cluster by itself.
//! - On drop every node is stopped (SIGTERM, SIGKILL after 5 s) and the cluster's epmd is
//!   killed, also when the test fails; the logs are kept when it failed.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cryptocat_link::Pin;

use crate::ejabberd::{
    cookie, free_ports, make_certificate, pin_of, run, wait_listening, with_component, CONFIG,
};
use crate::Killed;

/// How long a node may take to start (or to join) before the test fails.
const START_LIMIT: Duration = Duration::from_secs(40);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// One node of a [`Cluster`].
pub struct Node {
    /// Client-to-server port (STARTTLS required).
    pub c2s_port: u16,
    /// Plain HTTP: BOSH at `/bosh`, WebSocket at `/ws`.
    pub http_port: u16,
    /// The `ejabberd_service` listener for the component.
    pub component_port: u16,
    /// The key pin of the node's certificate.
    pub pin: Pin,
    /// The node's log directory.
    pub logs: PathBuf,
    /// The Erlang node name.
    pub name: String,
    dir: PathBuf,
    pid: Option<u32>,
}

impl Node {
    /// `xmpp://127.0.0.1:PORT` (STARTTLS).
    pub fn xmpp_url(&self) -> String {
        format!("xmpp://127.0.0.1:{}", self.c2s_port)
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.http_port)
    }

    /// `http://127.0.0.1:PORT/bosh`.
    pub fn bosh_url(&self) -> String {
        format!("http://127.0.0.1:{}/bosh", self.http_port)
    }

    /// Whether the node runs (a zombie, killed but not yet reaped by whoever adopted the
    /// detached node, does not).
    pub fn running(&self) -> bool {
        self.pid.is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
        })
    }

    fn signal(&self, sig: &str) -> bool {
        let Some(pid) = self.pid else { return false };
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.running() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn stop(&mut self) {
        if self.signal("-TERM") && !self.wait_gone(STOP_LIMIT) {
            self.signal("-KILL");
            self.wait_gone(Duration::from_secs(2));
        }
        self.pid = None;
    }
}

/// Several ejabberd nodes clustered, stopped (with their epmd) on drop.
pub struct Cluster {
    /// The nodes, node 0 first (the one the others joined).
    pub nodes: Vec<Node>,
    /// How long starting and joining every node took.
    pub formed_in: Duration,
    epmd_port: u16,
    // Declared after the nodes: killed once they are stopped.
    _epmd: Killed,
}

impl Cluster {
    /// Starts `nodes` nodes, clustered, each with a service listener for
    /// [`crate::component::COMPONENT_DOMAIN`] with `secret`, the domain balanced over
    /// `instances` component connections by bare destination. `None` (skipped) when
    /// ejabberd cannot run here.
    pub fn start(nodes: usize, instances: usize, secret: &str) -> Option<Self> {
        if !crate::tools_present(&["ejabberdctl", "epmd", "openssl", "chown"]) {
            return None;
        }
        if !crate::is_root() {
            crate::skip("ejabberd tests run as root (ejabberdctl runs the node as `ejabberd`)");
            return None;
        }
        let started = Instant::now();
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let [epmd_port] = free_ports();
        let epmd = Killed::spawn(
            Command::new("epmd")
                .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        assert!(
            wait_listening(epmd_port, Duration::from_secs(5)),
            "the cluster's epmd does not listen"
        );
        let cookie = cookie();
        let mut cluster = Self {
            nodes: Vec::new(),
            formed_in: Duration::ZERO,
            epmd_port,
            _epmd: epmd,
        };
        for i in 0..nodes {
            let node = cluster.make_node(n, i, &cookie, secret, instances);
            cluster.nodes.push(node);
            cluster.launch(i);
            if i > 0 {
                let first = cluster.nodes[0].name.clone();
                let out = cluster.ctl(i, &["join_cluster", &first]);
                assert!(
                    out.status.success(),
                    "join_cluster failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                cluster.wait_listening(i);
            }
        }
        let members = cluster.members(0);
        assert_eq!(members.len(), nodes, "cluster members: {members:?}");
        cluster.formed_in = started.elapsed();
        Some(cluster)
    }

    fn make_node(&self, n: u32, i: usize, cookie: &str, secret: &str, instances: usize) -> Node {
        let pid = std::process::id();
        let name = format!("cc_cl_{pid}_{n}_{i}@localhost");
        let dir = std::env::temp_dir().join(format!("cryptocat-ejabberd-cluster-{pid}-{n}-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["logs", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let [c2s_port, http_port, https_port, component_port] = free_ports();
        let cert_pem = dir.join("ejabberd.pem");
        make_certificate(&cert_pem);
        let pin = pin_of(&cert_pem);
        let config = CONFIG
            .replace("{{CERTFILE}}", &cert_pem.display().to_string())
            .replace("{{C2S_PORT}}", &c2s_port.to_string())
            .replace("{{HTTP_PORT}}", &http_port.to_string())
            .replace("{{HTTPS_PORT}}", &https_port.to_string());
        let mut config = with_component(&config, component_port, secret);
        config.push_str(&format!(
            "\ndomain_balancing:\n  \"{}\":\n    type: bare_destination\n    \
             component_number: {instances}\n",
            crate::component::COMPONENT_DOMAIN
        ));
        // No ERL_DIST_PORT: the nodes find each other through the cluster's epmd.
        let ctl = format!(
            "INET_DIST_INTERFACE=127.0.0.1\n\
             ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0 -setcookie {cookie}\"\n\
             EJABBERD_PID_PATH={}/ejabberd.pid\n\
             EJABBERD_BYPASS_WARNINGS=true\n",
            dir.display()
        );
        assert!(!config.contains("{{"));
        std::fs::write(dir.join("ejabberd.yml"), config).unwrap();
        std::fs::write(dir.join("ejabberdctl.cfg"), ctl).unwrap();
        std::fs::copy("/etc/ejabberd/inetrc", dir.join("inetrc")).ok();
        run(Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(&dir));
        Node {
            c2s_port,
            http_port,
            component_port,
            pin,
            logs: dir.join("logs"),
            name,
            dir,
            pid: None,
        }
    }

    /// Runs one ejabberdctl command against node `i`.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Output {
        let node = &self.nodes[i];
        let dir = &node.dir;
        Command::new("ejabberdctl")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .arg("--config-dir")
            .arg(dir)
            .arg("--config")
            .arg(dir.join("ejabberd.yml"))
            .arg("--ctl-config")
            .arg(dir.join("ejabberdctl.cfg"))
            .arg("--logs")
            .arg(&node.logs)
            .arg("--spool")
            .arg(dir.join("spool"))
            .arg("--node")
            .arg(&node.name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The running members of the cluster as node `i` sees them (`list_cluster`).
    pub fn members(&self, i: usize) -> Vec<String> {
        let out = self.ctl(i, &["list_cluster"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Freezes node `i` (SIGSTOP): it keeps its sockets open and handles nothing, as a
    /// hung node does.
    pub fn freeze(&self, i: usize) {
        assert!(self.nodes[i].signal("-STOP"), "node {i} was not running");
    }

    /// Kills node `i` with SIGKILL (a crash) and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.signal("-KILL"), "node {i} was not running");
        assert!(
            node.wait_gone(Duration::from_secs(5)),
            "node {i} survived SIGKILL"
        );
        node.pid = None;
    }

    /// Starts node `i` again (after [`Cluster::kill`]); it rejoins the cluster from its
    /// spool. Returns when it serves its ports and the others see it.
    pub fn restart(&mut self, i: usize) {
        let _ = std::fs::remove_file(self.nodes[i].dir.join("ejabberd.pid"));
        self.launch(i);
        let deadline = Instant::now() + START_LIMIT;
        let other = usize::from(i == 0);
        while !self.members(other).contains(&self.nodes[i].name) {
            assert!(Instant::now() < deadline, "node {i} did not rejoin");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of node `i`'s log (for failure messages).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log =
            std::fs::read_to_string(self.nodes[i].logs.join("ejabberd.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Starts node `i` and waits until it has a pid, says it started, and listens.
    fn launch(&mut self, i: usize) {
        let log = self.nodes[i].logs.join("ejabberd.log");
        let count = |text: &str| text.matches("is started in the node").count();
        let before = count(&std::fs::read_to_string(&log).unwrap_or_default());
        let out = self.ctl(i, &["start"]);
        assert!(
            out.status.success(),
            "ejabberdctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let node = &mut self.nodes[i];
            if node.pid.is_none() {
                node.pid = std::fs::read_to_string(node.dir.join("ejabberd.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if node.pid.is_some() && count(&text) > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not start within {START_LIMIT:?}; log:\n{}",
                self.log_tail(i, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_listening(i);
    }

    fn wait_listening(&self, i: usize) {
        let node = &self.nodes[i];
        for port in [node.c2s_port, node.http_port, node.component_port] {
            assert!(
                wait_listening(port, START_LIMIT),
                "node {i} does not listen on {port}; see {}",
                node.logs.display()
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
            if std::thread::panicking() {
                eprintln!("ejabberd log kept in {}", node.logs.display());
                let _ = std::fs::remove_dir_all(node.dir.join("spool"));
            } else {
                let _ = std::fs::remove_dir_all(&node.dir);
            }
        }
        // The epmd guard is dropped (killed) after this.
    }
}
