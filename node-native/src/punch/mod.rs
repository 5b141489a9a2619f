//! Hole punching for the core's `PreparePunch` / `Punch`: TCP simultaneous open ([`tcp`]) and
//! UDP probes followed by QUIC ([`udp`]).

pub mod tcp;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr};

/// A socket bound for a punch the core is preparing, kept until it says where to punch to.
pub enum Held {
    /// A TCP port.
    Tcp(tcp::HeldPort),
    /// A UDP socket.
    Udp(tokio::net::UdpSocket),
}

/// The address punch sockets bind to for a node listening on `listen`: the unspecified IPv4
/// address for a wildcard listener, since punching is for NATs, which are IPv4.
fn punch_ip(listen: IpAddr) -> IpAddr {
    if listen.is_unspecified() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        listen
    }
}
