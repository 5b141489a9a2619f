//! LAN discovery sockets: every pool port (shared with other nodes on the host through
//! `SO_REUSEADDR` + `SO_REUSEPORT`), IPv4 multicast, IPv6 link-local multicast, and one unicast
//! socket of our own that sends everything (so replies reach this node, not a neighbour sharing
//! the pool port).

use crate::actor::ToActor;
use node_core::discovery::MAX_DATAGRAM;
use node_core::{DatagramDest, Input};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// IPv4 multicast group for announcements.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 74, 70);
/// IPv6 link-local multicast group for announcements.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0x7765, 0x6674);

/// The discovery sockets of one node.
pub struct Discovery {
    sender_v4: Arc<UdpSocket>,
    sender_v6: Option<Arc<UdpSocket>>,
    multicast_port: u16,
    /// Datagrams dropped because the node was busy (a flood must not stall it).
    pub dropped: Arc<AtomicU64>,
}

/// A socket on a shared pool port: every node on the host binds the same ports, and broadcast
/// and multicast datagrams reach all of them.
fn pool_socket(ip: IpAddr, port: u16) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(SocketAddr::new(ip, port)), Type::DGRAM, Some(Protocol::UDP))?;
    match ip {
        IpAddr::V4(_) => s.set_broadcast(true)?,
        IpAddr::V6(_) => s.set_only_v6(true)?,
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(ip, port).into())?;
    Ok(s)
}

/// Non-loopback interfaces: (IPv4 address, its subnet broadcast) and IPv6 interface indices.
fn interfaces() -> (Vec<(Ipv4Addr, Option<Ipv4Addr>)>, Vec<u32>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if iface.is_loopback() {
            continue;
        }
        match iface.addr {
            if_addrs::IfAddr::V4(a) => v4.push((a.ip, a.broadcast)),
            if_addrs::IfAddr::V6(_) => v6.extend(iface.index),
        }
    }
    // if-addrs leaves out link-local IPv6 addresses, and a LAN may have nothing else: ask the
    // kernel's own list, which has every IPv6 interface with its index.
    if let Ok(table) = std::fs::read_to_string("/proc/net/if_inet6") {
        v6.extend(ipv6_indices(&table));
    }
    v6.sort_unstable();
    v6.dedup();
    (v4, v6)
}

/// Interface indices of non-loopback lines of `/proc/net/if_inet6`
/// (`address ifindex prefixlen scope flags name`, indices in hex).
fn ipv6_indices(table: &str) -> Vec<u32> {
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, index, _, _, _, name] if *name != "lo" => u32::from_str_radix(index, 16).ok(),
                _ => None,
            }
        })
        .collect()
}

fn spawn_receiver(socket: Arc<UdpSocket>, to_actor: mpsc::Sender<ToActor>, dropped: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("discovery socket error: {e}");
                    continue;
                }
            };
            if n > MAX_DATAGRAM {
                dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let msg = ToActor::Input(Input::Datagram { from, data: buf[..n].to_vec() });
            match to_actor.try_send(msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    });
}

impl Discovery {
    /// Binds every pool port it can and starts forwarding datagrams to the actor. A pool port
    /// that cannot be bound is skipped with a warning; none at all is still a working node
    /// (it can be dialed and can dial), just not discoverable.
    pub fn start(ports: &[u16], to_actor: mpsc::Sender<ToActor>) -> std::io::Result<Discovery> {
        let dropped = Arc::new(AtomicU64::new(0));
        let (v4_ifaces, v6_ifaces) = interfaces();
        for &port in ports {
            match pool_socket(Ipv4Addr::UNSPECIFIED.into(), port) {
                Ok(s) => {
                    let _ = s.join_multicast_v4(&MULTICAST_V4, &Ipv4Addr::UNSPECIFIED);
                    for (ip, _) in &v4_ifaces {
                        let _ = s.join_multicast_v4(&MULTICAST_V4, ip);
                    }
                    let sock = Arc::new(UdpSocket::from_std(s.into())?);
                    spawn_receiver(sock, to_actor.clone(), dropped.clone());
                }
                Err(e) => tracing::warn!("discovery port {port}/udp unavailable: {e}"),
            }
            match pool_socket(Ipv6Addr::UNSPECIFIED.into(), port) {
                Ok(s) => {
                    for idx in &v6_ifaces {
                        let _ = s.join_multicast_v6(&MULTICAST_V6, *idx);
                    }
                    let sock = Arc::new(UdpSocket::from_std(s.into())?);
                    spawn_receiver(sock, to_actor.clone(), dropped.clone());
                }
                Err(e) => tracing::debug!("discovery port {port}/udp6 unavailable: {e}"),
            }
        }
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_broadcast(true)?;
        s.set_multicast_loop_v4(true)?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
        let sender_v4 = Arc::new(UdpSocket::from_std(s.into())?);
        spawn_receiver(sender_v4.clone(), to_actor.clone(), dropped.clone());
        let sender_v6 = (|| -> std::io::Result<Arc<UdpSocket>> {
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_only_v6(true)?;
            s.set_nonblocking(true)?;
            s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
            Ok(Arc::new(UdpSocket::from_std(s.into())?))
        })()
        .ok();
        if let Some(s6) = &sender_v6 {
            spawn_receiver(s6.clone(), to_actor, dropped.clone());
        }
        Ok(Discovery { sender_v4, sender_v6, multicast_port: ports.first().copied().unwrap_or(47470), dropped })
    }

    /// Sends a datagram without waiting: discovery is best effort, and a full socket buffer
    /// just loses one announcement.
    pub fn send(&self, dest: &DatagramDest, data: &[u8]) {
        match dest {
            DatagramDest::Unicast(addr) => self.send_one(*addr, data),
            DatagramDest::LanBroadcast { port } => {
                let (v4, v6) = interfaces();
                self.send_one(SocketAddr::from((Ipv4Addr::BROADCAST, *port)), data);
                for (_, bcast) in &v4 {
                    if let Some(b) = bcast {
                        self.send_one(SocketAddr::from((*b, *port)), data);
                    }
                }
                let group = SocketAddr::from((MULTICAST_V4, self.multicast_port));
                for (ip, _) in &v4 {
                    let sock = socket2::SockRef::from(&*self.sender_v4);
                    if sock.set_multicast_if_v4(ip).is_ok() {
                        self.send_one(group, data);
                    }
                }
                for idx in v6 {
                    let to = SocketAddrV6::new(MULTICAST_V6, self.multicast_port, 0, idx);
                    self.send_one(SocketAddr::V6(to), data);
                }
            }
        }
    }

    fn send_one(&self, to: SocketAddr, data: &[u8]) {
        let sock = match to.ip() {
            IpAddr::V4(_) => Some(&self.sender_v4),
            IpAddr::V6(_) => self.sender_v6.as_ref(),
        };
        if let Some(sock) = sock {
            if let Err(e) = sock.try_send_to(data, to) {
                tracing::trace!("discovery send to {to} failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_ipv6_table_parses_to_non_loopback_indices() {
        let table = "00000000000000000000000000000001 01 80 10 80       lo\n\
                     fe8000000000000098d396fffeef2b12 0c 40 20 80     eth0\n\
                     garbage\n";
        assert_eq!(super::ipv6_indices(table), vec![12]);
    }
}
