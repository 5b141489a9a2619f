//! The STUN responder: RFC 5389 binding on `--stun-port` (default 3478) and RFC 5780 behaviour
//! discovery with an alternate port (and, with `--stun-alt-ip`, an alternate address), so nodes
//! can classify their NAT's mapping and filtering.
//!
//! Without a second IP, RFC 5780 §6 forbids OTHER-ADDRESS and wants a 420 for CHANGE-REQUEST; as
//! an extension that Weft's nodes use (they learn the alternate port from `/v1/info`), a
//! change-port-only request is honoured, and change-IP still gets 420.

pub mod responder;

/// The binding client (used by the tests).
pub use node_core::nat::stun as client;
/// The wire format lives in node-core, shared with the nodes' NAT probe.
pub use node_core::nat::stun::attr;

pub use responder::{respond, Reply, ServerAddrs, SocketId};

use crate::metrics::Metrics;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::UdpSocket;

async fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    if !addr.ip().is_unspecified() {
        return UdpSocket::bind(addr).await;
    }
    match UdpSocket::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), addr.port())).await {
        Ok(s) => Ok(s),
        Err(_) => UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port())).await,
    }
}

/// Largest datagram read; STUN binding requests are far smaller.
const MAX_DATAGRAM: usize = 2048;

/// The bound responder: one socket per [`SocketId`] the configuration has.
pub struct StunServer {
    addrs: ServerAddrs,
    sockets: Vec<(SocketId, Arc<UdpSocket>)>,
}

impl StunServer {
    /// Binds every socket `addrs` needs. Port 0 picks free ports (the alternate IP then uses the
    /// same pair, as RFC 5780 wants). An unspecified primary IP binds the dual-stack `[::]`
    /// (falling back to `0.0.0.0` where IPv6 is off).
    pub async fn bind(mut addrs: ServerAddrs) -> std::io::Result<Self> {
        let primary = bind_udp(SocketAddr::new(addrs.primary_ip, addrs.primary_port)).await?;
        addrs.primary_port = primary.local_addr()?.port();
        let mut sockets = vec![(SocketId::PRIMARY, Arc::new(primary))];
        if let Some(port) = addrs.alt_port {
            let alt = bind_udp(SocketAddr::new(addrs.primary_ip, port)).await?;
            addrs.alt_port = Some(alt.local_addr()?.port());
            sockets.push((SocketId { alt_ip: false, alt_port: true }, Arc::new(alt)));
        }
        for (id, addr) in addrs.sockets() {
            if id.alt_ip {
                sockets.push((id, Arc::new(bind_udp(addr).await?)));
            }
        }
        Ok(StunServer { addrs, sockets })
    }

    /// The addresses in use (with the ports bound).
    pub fn addrs(&self) -> ServerAddrs {
        self.addrs
    }

    /// The bound addresses, by socket.
    pub fn local_addrs(&self) -> Vec<(SocketId, SocketAddr)> {
        self.sockets.iter().filter_map(|(id, s)| Some((*id, s.local_addr().ok()?))).collect()
    }

    /// Answers requests on every socket until dropped or the task is aborted.
    pub async fn serve(self, metrics: Arc<Metrics>) {
        let mut tasks = tokio::task::JoinSet::new();
        let all = Arc::new(self.sockets);
        for (id, socket) in all.iter() {
            let (id, socket, all, addrs, metrics) = (*id, socket.clone(), all.clone(), self.addrs, metrics.clone());
            tasks.spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    let (n, from) = match socket.recv_from(&mut buf).await {
                        Ok(r) => r,
                        // ICMP errors from earlier sends surface here on Linux; keep serving.
                        Err(_) => continue,
                    };
                    let Some(reply) = respond(&buf[..n], from, id, &addrs) else { continue };
                    let Some((_, out)) = all.iter().find(|(sid, _)| *sid == reply.send_from) else { continue };
                    let to = match (out.local_addr(), reply.send_to) {
                        // A dual-stack socket sends to IPv4 clients through mapped addresses.
                        (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
                            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                        }
                        (_, to) => to,
                    };
                    if out.send_to(&reply.bytes, to).await.is_ok() {
                        metrics.stun_requests.inc();
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}
