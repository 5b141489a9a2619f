//! Node settings, with the defaults DESIGN.md names.

use core::time::Duration;
use std::net::SocketAddr;

/// How a node behaves. Drivers fill in what they learned while binding sockets.
#[derive(Debug, Clone)]
pub struct Config {
    /// Display name shown to peers.
    pub name: String,
    /// The mesh this node belongs to; nodes in other meshes are ignored.
    pub mesh_id: String,
    /// Most established links (DESIGN: 32 native, 16 browser).
    pub max_peers: usize,
    /// Peers past which discovery announces at its slowest.
    pub enough_peers: usize,
    /// Whether to announce and listen on the LAN.
    pub lan_discovery: bool,
    /// The discovery port pool.
    pub discovery_ports: Vec<u16>,
    /// The TCP port this node accepts links on, if any (announced and sent in `Hello`).
    pub tcp_port: Option<u16>,
    /// The HTTP port, if the driver serves one (announced).
    pub http_port: Option<u16>,
    /// Addresses the node believes it listens on, for `Hello`.
    pub listen_addrs: Vec<SocketAddr>,
    /// Largest frame accepted on a link.
    pub frame_cap: usize,
    /// Send a ping when a link has been quiet this long.
    pub ping_interval: Duration,
    /// Close a link that has been silent this long.
    pub stale_after: Duration,
    /// Hop limit for broadcast and routed messages.
    pub max_hops: u8,
    /// Capacity of the broadcast seen-cache.
    pub seen_cache: usize,
    /// Most peers remembered (linked or not).
    pub max_known_peers: usize,
    /// Chunk size for files this node offers.
    pub chunk_size: u32,
    /// Chunks a receiver keeps in flight per source: the per-link credit.
    pub transfer_window: usize,
    /// How often to ask a random neighbour for its peers.
    pub peer_exchange_interval: Duration,
    /// Whether the driver can open WebRTC data-channel links ([`crate::Output::OpenRtc`]).
    pub webrtc: bool,
    /// Whether the driver can open relay links (it has a bootstrap server with `/v1/relay`).
    pub relay: bool,
    /// Whether the driver runs a NAT probe ([`crate::Input::NatDetected`]): link attempts wait
    /// a few seconds for its report before describing this node without one.
    pub nat_probe: bool,
    /// Whether the driver asks the LAN's router for a port mapping ([`crate::Input::PortMapped`]).
    pub port_mapping: bool,
    /// Which hole punches the driver can carry out ([`crate::Output::PreparePunch`]).
    pub punch: crate::nat::plan::Punching,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: String::from("weft"),
            mesh_id: String::from("default"),
            max_peers: 32,
            enough_peers: 8,
            lan_discovery: true,
            discovery_ports: crate::discovery::DEFAULT_PORTS.to_vec(),
            tcp_port: None,
            http_port: None,
            listen_addrs: Vec::new(),
            frame_cap: crate::wire::frame::DEFAULT_FRAME_CAP,
            ping_interval: Duration::from_secs(15),
            stale_after: Duration::from_secs(45),
            max_hops: 16,
            seen_cache: 8192,
            max_known_peers: 1024,
            chunk_size: crate::wire::MAX_CHUNK_SIZE,
            transfer_window: 16,
            peer_exchange_interval: Duration::from_secs(60),
            webrtc: false,
            relay: false,
            punch: crate::nat::plan::Punching::default(),
            nat_probe: false,
            port_mapping: false,
        }
    }
}
