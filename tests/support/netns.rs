//! "Another computer": two Linux network namespaces joined by a veth pair, with addresses
//! inside them only (10.231.N.1 and .2/24). Deleted on drop, also when a test fails.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// One end: a namespace, its veth device and address.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name.
    pub name: String,
    /// Its veth device.
    pub device: String,
    /// Its address on the veth.
    pub ip: Ipv4Addr,
}

impl Host {
    /// `program` run inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

/// Two hosts joined by a veth pair; both namespaces are deleted on drop.
#[derive(Debug)]
pub struct Pair {
    /// The first host (10.231.N.1).
    pub a: Host,
    /// The second host (10.231.N.2).
    pub b: Host,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {} failed", args.join(" "));
}

impl Pair {
    /// Makes the pair. `None` (the test skips, or fails under CRYPTOCAT_REQUIRE_INTEROP=1)
    /// when not root or without iproute2.
    pub fn new(tag: &str) -> Option<Self> {
        if !crate::tools_present(&["ip"]) {
            return None;
        }
        if !crate::is_root() {
            crate::skip("network namespaces need root");
            return None;
        }
        sweep(tag);
        let pid = std::process::id();
        let subnet = u8::try_from(20 + pid % 200).unwrap_or(20);
        let host = |end: &str, last: u8| Host {
            name: format!("cc-{tag}-{pid}-{end}"),
            device: format!("v{pid}{end}"),
            ip: Ipv4Addr::new(10, 231, subnet, last),
        };
        let pair = Self {
            a: host("a", 1),
            b: host("b", 2),
        };
        // From here on, drop deletes whatever was made.
        ip(&["netns", "add", &pair.a.name]);
        ip(&["netns", "add", &pair.b.name]);
        ip(&[
            "link",
            "add",
            &pair.a.device,
            "netns",
            &pair.a.name,
            "type",
            "veth",
            "peer",
            "name",
            &pair.b.device,
            "netns",
            &pair.b.name,
        ]);
        for h in [&pair.a, &pair.b] {
            ip(&[
                "-n",
                &h.name,
                "addr",
                "add",
                &format!("{}/24", h.ip),
                "dev",
                &h.device,
            ]);
            ip(&["-n", &h.name, "link", "set", &h.device, "up"]);
            ip(&["-n", &h.name, "link", "set", "lo", "up"]);
        }
        Some(pair)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for h in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", &h.name]).status();
        }
    }
}

/// Deletes namespaces `cc-TAG-PID-*` left by a test process that no longer runs (killed
/// by a signal, so its guards never dropped).
fn sweep(tag: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let prefix = format!("cc-{tag}-");
    for name in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
