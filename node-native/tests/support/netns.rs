//! A LAN made of network namespaces: one "switch" namespace holding a bridge, and one namespace
//! per host with a veth into the bridge, addressed 10.77.0.0/24. Everything is created by the test
//! and removed on drop (processes first), so no traffic leaves the namespaces.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this machine can run namespace tests, or why not.
pub fn check() -> Result<(), String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (ip netns)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("needs iproute2's `ip` command".into()),
    }
}

/// Skips (returning false) on a user's machine without root; fails loudly under CI.
pub fn required() -> bool {
    match check() {
        Ok(()) => true,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("namespace tests must run under CI, but: {why}")
        }
        Err(why) => {
            eprintln!("skipping namespace test: {why}");
            false
        }
    }
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

pub fn sysctl(ns: &str, key: &str, value: &str) {
    let _ = Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", &format!("{key}={value}")]).output();
}

/// Runs `f` on a thread whose network namespace is `ns` (sockets it makes live there, and so do
/// those of threads it starts, such as a tokio runtime's workers).
pub fn run_in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {path}");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// Kills every process in each namespace, then deletes it.
pub fn remove<'a>(namespaces: impl IntoIterator<Item = &'a String>) {
    for ns in namespaces {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
}

/// A bridged LAN of namespaces.
pub struct Lan {
    prefix: String,
    switch: String,
    hosts: Vec<String>,
}

impl Lan {
    /// An empty LAN (just the switch).
    pub fn new() -> Lan {
        let prefix = format!("wft{}x{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed));
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch]);
        let lan = Lan { prefix, switch, hosts: Vec::new() };
        ip(&["-n", &lan.switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &lan.switch, "link", "set", "br0", "up"]);
        lan
    }

    /// Adds a host with an IPv4 address (and IPv6 link-local); returns its index.
    pub fn add_host(&mut self) -> usize {
        self.add(true)
    }

    /// Adds a host with no IPv4 at all: only its IPv6 link-local address.
    pub fn add_host_v6_only(&mut self) -> usize {
        self.add(false)
    }

    fn add(&mut self, v4: bool) -> usize {
        let i = self.hosts.len();
        let ns = format!("{}-h{i}", self.prefix);
        ip(&["netns", "add", &ns]);
        self.hosts.push(ns.clone());
        let port = format!("p{i}");
        ip(&["-n", &self.switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        ip(&["-n", &self.switch, "link", "set", &port, "master", "br0", "up"]);
        sysctl(&ns, "net.ipv6.conf.all.accept_dad", "0");
        sysctl(&ns, "net.ipv6.conf.eth0.accept_dad", "0");
        if v4 {
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.ip(i)), "dev", "eth0"]);
        }
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        if v4 {
            // Broadcast to 255.255.255.255 and multicast need a route; the namespace has nothing else.
            ip(&["-n", &ns, "route", "add", "default", "dev", "eth0"]);
        }
        i
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, i as u8 + 1)
    }

    /// Host `i`'s namespace name.
    pub fn ns(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// Command prefix running a program on host `i`.
    pub fn exec(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.hosts[i].clone()]
    }

    /// Runs `f` on a thread whose network namespace is host `i`'s (sockets it makes live there).
    pub fn run_in<T: Send + 'static>(&self, i: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        run_in_ns(&self.hosts[i], f)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        remove(self.hosts.iter().chain(std::iter::once(&self.switch)));
    }
}
