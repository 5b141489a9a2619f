//! The NAT lab: an "internet" and two private LANs behind switchable NATs, all network
//! namespaces this test creates (and removes on drop, processes first), so no traffic leaves them.
//!
//! ```text
//!   internet 20.20.20.0/24 (bridge in `inet`)
//!     pub   20.20.20.10 + .11       the bootstrap server and its STUN responder (two addresses)
//!     ra    wan 20.20.20.1 | lan 10.0.1.1/24 -- a1 10.0.1.2
//!     rb    wan 20.20.20.2 | lan 10.0.2.1/24 -- b1 10.0.2.2
//! ```
//!
//! The "internet" is not a documentation range (RFC 5737): miniupnpd, the UPnP router of the
//! UPnP test, refuses to map ports on an address it counts as reserved. It exists only inside
//! the lab's namespaces.
//!
//! NAT behaviours are nftables rules on the routers (the recipe of `../shared/natlab`): full cone
//! (a dynamic map of outbound mappings, inbound DNAT'ed through it), address-restricted (the same,
//! only from addresses the host sent to), port-restricted (plain masquerade) and symmetric
//! (masquerade with random ports). Routers drop unsolicited inbound to themselves, as home
//! routers do (without that an early punch packet steals a mapping).

use super::netns::{ip, remove, run_in_ns, sysctl};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The server's two addresses.
pub const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(20, 20, 20, 10);
pub const PUBLIC_IP2: Ipv4Addr = Ipv4Addr::new(20, 20, 20, 11);
/// The routers' public addresses.
pub const ROUTER_A: Ipv4Addr = Ipv4Addr::new(20, 20, 20, 1);
pub const ROUTER_B: Ipv4Addr = Ipv4Addr::new(20, 20, 20, 2);

/// A router's NAT behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    FullCone,
    AddressRestricted,
    PortRestricted,
    Symmetric,
}

impl Nat {
    pub const ALL: [Nat; 4] = [Nat::FullCone, Nat::AddressRestricted, Nat::PortRestricted, Nat::Symmetric];

    /// The name a node reports for it (`node_core::nat::NatType::as_str`).
    pub fn reported(self) -> &'static str {
        match self {
            Nat::FullCone => "full-cone",
            Nat::AddressRestricted => "address-restricted",
            Nat::PortRestricted => "port-restricted",
            Nat::Symmetric => "symmetric",
        }
    }
}

/// A host behind one of the two routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// The lab; torn down on drop.
pub struct NatLab {
    prefix: String,
    namespaces: Vec<String>,
}

fn nft(ns: &str, script: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft (Debian package nftables)");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write the rules");
    let out = child.wait_with_output().expect("nft");
    assert!(out.status.success(), "nft in {ns}: {}\n{script}", String::from_utf8_lossy(&out.stderr));
}

impl NatLab {
    /// Builds the lab with both routers set to `a` and `b`.
    pub fn new(a: Nat, b: Nat) -> NatLab {
        let prefix = format!("wnl{}x{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut lab = NatLab { prefix, namespaces: Vec::new() };
        for n in ["inet", "pub", "ra", "rb", "a1", "b1"] {
            let ns = lab.ns(n);
            ip(&["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            sysctl(&ns, "net.ipv6.conf.all.accept_dad", "0");
            sysctl(&ns, "net.ipv6.conf.default.accept_dad", "0");
        }
        let inet = lab.ns("inet");
        ip(&["-n", &inet, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &inet, "link", "set", "br0", "up"]);
        for (host, addrs) in [("pub", vec![PUBLIC_IP, PUBLIC_IP2]), ("ra", vec![ROUTER_A]), ("rb", vec![ROUTER_B])] {
            let ns = lab.ns(host);
            ip(&["-n", &inet, "link", "add", host, "type", "veth", "peer", "name", "wan", "netns", &ns]);
            ip(&["-n", &inet, "link", "set", host, "master", "br0", "up"]);
            for a in addrs {
                ip(&["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", "wan"]);
            }
            ip(&["-n", &ns, "link", "set", "wan", "up"]);
        }
        lab.lan("ra", "10.0.1", "a1");
        lab.lan("rb", "10.0.2", "b1");
        lab.set_nat(Side::A, a);
        lab.set_nat(Side::B, b);
        lab
    }

    fn lan(&self, router: &str, net: &str, host: &str) {
        let (r, h) = (self.ns(router), self.ns(host));
        sysctl(&r, "net.ipv4.ip_forward", "1");
        sysctl(&r, "net.ipv4.conf.all.rp_filter", "0");
        sysctl(&r, "net.ipv4.conf.default.rp_filter", "0");
        ip(&["-n", &r, "link", "add", "lan", "type", "bridge"]);
        ip(&["-n", &r, "addr", "add", &format!("{net}.1/24"), "dev", "lan"]);
        ip(&["-n", &r, "link", "set", "lan", "up"]);
        ip(&["-n", &r, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", &h]);
        ip(&["-n", &r, "link", "set", host, "master", "lan", "up"]);
        ip(&["-n", &h, "addr", "add", &format!("{net}.2/24"), "dev", "eth0"]);
        ip(&["-n", &h, "link", "set", "eth0", "up"]);
        ip(&["-n", &h, "route", "add", "default", "via", &format!("{net}.1")]);
    }

    /// A namespace's full name.
    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The namespace of the host on `side`.
    pub fn host_ns(&self, side: Side) -> String {
        self.ns(match side {
            Side::A => "a1",
            Side::B => "b1",
        })
    }

    /// The private address of the host on `side`.
    pub fn host_ip(&self, side: Side) -> IpAddr {
        IpAddr::V4(match side {
            Side::A => Ipv4Addr::new(10, 0, 1, 2),
            Side::B => Ipv4Addr::new(10, 0, 2, 2),
        })
    }

    /// Command prefix running a program on the host on `side`.
    pub fn exec(&self, side: Side) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.host_ns(side)]
    }

    /// Sets the NAT behaviour of `side`'s router. Build a new lab rather than switch a running
    /// one: conntrack entries of the old behaviour would outlive the change.
    pub fn set_nat(&self, side: Side, nat: Nat) {
        let router = self.ns(match side {
            Side::A => "ra",
            Side::B => "rb",
        });
        let (pre, masquerade) = match nat {
            Nat::FullCone => ("iifname \"wan\" dnat ip to meta l4proto . th dport map @fc", "masquerade"),
            Nat::AddressRestricted => (
                "iifname \"wan\" meta l4proto . th dport . ip saddr @seen dnat ip to meta l4proto . th dport map @fc",
                "masquerade",
            ),
            Nat::PortRestricted => ("", "masquerade"),
            Nat::Symmetric => ("", "masquerade random"),
        };
        let _ = Command::new("ip").args(["netns", "exec", &router, "nft", "delete", "table", "ip", "natlab"]).output();
        nft(
            &router,
            &format!(
                r#"table ip natlab {{
  map fc {{ type inet_proto . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout 120s; }}
  set seen {{ type inet_proto . inet_service . ipv4_addr; flags dynamic,timeout; timeout 120s; }}
  chain pre {{ type nat hook prerouting priority dstnat; policy accept;
    {pre}
  }}
  chain post {{ type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" {masquerade}
  }}
  chain track {{ type filter hook postrouting priority srcnat + 10; policy accept;
    oifname "wan" meta l4proto {{ tcp, udp }} update @fc {{ meta l4proto . th sport : ct original ip saddr . ct original proto-src }}
    oifname "wan" meta l4proto {{ tcp, udp }} update @seen {{ meta l4proto . th sport . ip daddr }}
  }}
  chain filt_fwd {{ type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" ct status dnat accept
    iifname "wan" drop
  }}
  chain filt_in {{ type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }}
}}"#
            ),
        );
    }

    /// The router namespace of `side`.
    pub fn router_ns(&self, side: Side) -> String {
        self.ns(match side {
            Side::A => "ra",
            Side::B => "rb",
        })
    }

    /// Starts Debian's miniupnpd (`bin`) on `side`'s router: UPnP IGD for its LAN, mapping
    /// ports of its public address to LAN hosts, with its configuration under `dir`. It is
    /// killed with the lab's namespaces.
    pub fn start_miniupnpd(&self, side: Side, bin: &std::path::Path, dir: &std::path::Path) -> Daemon {
        let router = self.router_ns(side);
        let lan = match side {
            Side::A => "10.0.1.0/24",
            Side::B => "10.0.2.0/24",
        };
        // Its chains, which it fills with DNAT rules; nothing else is decided here (the lab's
        // own table lets DNAT'ed connections in).
        nft(
            &router,
            r#"table inet miniupnpd {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}"#,
        );
        let conf = dir.join("miniupnpd.conf");
        let text = format!(
            "ext_ifname=wan\nlistening_ip=lan\nenable_upnp=yes\nenable_natpmp=yes\nsecure_mode=yes\n\
             upnp_table_name=miniupnpd\nupnp_nat_table_name=miniupnpd\nupnp_forward_chain=miniupnpd\n\
             upnp_nat_chain=prerouting_miniupnpd\nupnp_nat_postrouting_chain=postrouting_miniupnpd\n\
             uuid=2f8c6f4e-54b0-4c2e-9d1e-6b3f1e0a7c11\nallow 1024-65535 {lan} 1024-65535\n\
             deny 0-65535 0.0.0.0/0 0-65535\n"
        );
        std::fs::write(&conf, text).unwrap();
        let pid = dir.join("miniupnpd.pid");
        let child = Command::new("ip")
            .args(["netns", "exec", &router])
            .arg(bin)
            .args(["-d", "-4", "-f"])
            .arg(&conf)
            .arg("-P")
            .arg(&pid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start miniupnpd");
        Daemon(child)
    }

    /// Runs `f` on a thread inside the namespace `short` (sockets it makes live there).
    pub fn run_in<T: Send + 'static>(&self, short: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        run_in_ns(&self.ns(short), f)
    }
}

/// A process the lab started, killed (and reaped) on drop.
pub struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        remove(&self.namespaces);
    }
}
