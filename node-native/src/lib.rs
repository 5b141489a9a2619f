//! # weft-native — the native Weft node
//!
//! A tokio driver for [`node_core`]: LAN discovery over UDP broadcast and multicast, TCP links
//! encrypted with Noise XX and bound to each node's Ed25519 identity, files on disk, and the
//! `weft` command-line program. Embed it with [`start`] and drive it through the [`NodeHandle`].
//!
//! ```
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! use weft_native::{start, NodeConfig, NodeEvent};
//! use weft_native::node_core::Event;
//!
//! // Two nodes on loopback, LAN discovery off; on a real LAN leave it on and skip `connect`.
//! let dir = tempfile::tempdir()?;
//! let config = |name: &str| NodeConfig {
//!     name: name.into(),
//!     data_dir: dir.path().join(name),
//!     downloads_dir: dir.path().join(name).join("downloads"),
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     lan_discovery: false,
//!     ..NodeConfig::default()
//! };
//! let alice = start(config("alice")).await?;
//! let mut events = alice.subscribe();
//! let bob = start(NodeConfig { connect: vec![alice.tcp_addr()], ..config("bob") }).await?;
//! while bob.peers().await?.is_empty() {
//!     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//! }
//! bob.chat("hello, mesh").await?;
//! loop {
//!     if let NodeEvent::Core(Event::Chat { from_name, text, .. }) = events.recv().await? {
//!         assert_eq!((from_name.as_str(), text.as_str()), ("bob", "hello, mesh"));
//!         break;
//!     }
//! }
//! bob.shutdown().await;
//! alice.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Module map
//! - `actor`: the task that owns the node and carries out its outputs.
//! - [`noise`]: the Noise XX handshake with identity binding, and stream encryption.
//! - `tcp`: listener, dialer and per-link reader/writer tasks.
//! - `udp`: discovery sockets (pool ports, multicast, unicast replies).
//! - [`http`]: the page and `/v1/signal` for browsers (`weft run --http`).
//! - `signal_router`: where envelopes go outside the mesh (local browsers, the server session).
//! - [`rtc`]: WebRTC data channels to browsers.
//! - [`bootstrap`]: the bootstrap server's API, presence and signaling session.
//! - [`files`]: hashing, `.part` downloads with state files, the verified finish.
//! - [`identity_file`]: the key in the data directory.
//! - [`NodeHandle`]: the library API.

mod actor;
pub mod bootstrap;
mod clock;
pub mod files;
mod handle;
pub mod http;
pub mod identity_file;
mod link;
pub mod mqtt;
mod names;
pub mod nat;
pub mod noise;
mod punch;
mod quic;
mod relay;
pub mod rtc;
mod rtc_runtime;
mod signal_router;
mod stream_link;
mod tcp;
#[cfg(test)]
mod test_keys;
mod udp;
pub mod upnp;

pub use bootstrap::{BootstrapConfig, BootstrapError, NameValue};
pub use handle::{DriverStats, NodeEvent, NodeHandle, RequestError};
pub use http::HttpConfig;
pub use names::{NameSource, ResolvedName};
pub use node_core;

use actor::{Actor, ToActor, INBOX};
use bootstrap::{Bootstrap, BootstrapClient};
use node_core::{Config, Input};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Display name.
    pub name: String,
    /// Mesh id; nodes in other meshes are ignored.
    pub mesh: String,
    /// TCP listen address (port 0: any free port; `[::]` takes IPv4 too).
    pub listen: SocketAddr,
    /// Addresses to dial at start and keep dialing.
    pub connect: Vec<SocketAddr>,
    /// Most established links.
    pub max_peers: usize,
    /// Where the identity lives.
    pub data_dir: PathBuf,
    /// Where received files go.
    pub downloads_dir: PathBuf,
    /// Announce on and listen to the LAN.
    pub lan_discovery: bool,
    /// The discovery port pool.
    pub discovery_ports: Vec<u16>,
    /// Accept every file offer (resuming from disk).
    pub auto_accept: bool,
    /// Largest frame accepted on a link.
    pub frame_cap: usize,
    /// A bootstrap server to announce to, find peers and names through.
    pub bootstrap: Option<BootstrapConfig>,
    /// Accept and open WebRTC links (browser peers).
    pub webrtc: bool,
    /// Serve the page and `/v1/signal` to browsers (needs `webrtc`).
    pub http: Option<HttpConfig>,
    /// Classify the NAT against the bootstrap server's STUN responder at start.
    pub nat_probe: bool,
    /// An MQTT broker to signal through (with or without a bootstrap server).
    pub mqtt: Option<mqtt::BrokerUrl>,
    /// A STUN responder (RFC 5780, as weft-bootstrap runs) to classify the NAT and map punch
    /// sockets with, instead of the bootstrap server's.
    pub stun: Option<SocketAddr>,
    /// Ask the LAN's router for a port mapping (UPnP IGD), so peers anywhere can dial us. Only
    /// with `lan_discovery`: without it the node sends nothing to the LAN at all.
    pub upnp: bool,
    /// Which hole punches to try when linking across NATs (UDP then QUIC; TCP simultaneous
    /// open). Both by default; a network that mangles one can have it turned off.
    pub punch: node_core::nat::plan::Punching,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let core = Config::default();
        let data_dir = default_data_dir();
        NodeConfig {
            name: core.name,
            mesh: core.mesh_id,
            listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            connect: Vec::new(),
            max_peers: core.max_peers,
            downloads_dir: data_dir.join("downloads"),
            data_dir,
            lan_discovery: true,
            discovery_ports: core.discovery_ports,
            auto_accept: true,
            frame_cap: core.frame_cap,
            bootstrap: None,
            webrtc: true,
            nat_probe: true,
            punch: node_core::nat::plan::Punching::ALL,
            mqtt: None,
            stun: None,
            upnp: true,
            http: None,
        }
    }
}

/// `$XDG_DATA_HOME/weft`, `~/.local/share/weft`, or `./weft-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("weft");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/weft"),
        None => PathBuf::from("weft-data"),
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] identity_file::IdentityError),
    /// The TCP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The discovery sockets could not be set up.
    #[error("LAN discovery: {0}")]
    Discovery(std::io::Error),
    /// The bootstrap configuration is unusable.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The page and signaling could not be served.
    #[error("cannot serve the page on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The mesh name cannot be part of an MQTT topic.
    #[error("--mqtt: the mesh name {0:?} has characters MQTT topics reserve (+, #, /)")]
    MqttMesh(String),
    /// The MQTT client could not be set up.
    #[error("MQTT: {0}")]
    Mqtt(rustls::Error),
    /// The QUIC certificate could not be made from the identity.
    #[error(transparent)]
    Tls(#[from] quic::tls::TlsSetupError),
    /// Browsers link over WebRTC; serving them the page with WebRTC off would strand them.
    #[error("--http needs WebRTC, which is turned off")]
    HttpWithoutWebRtc,
}

/// Addresses to tell peers we listen on: each non-loopback interface with our port.
fn listen_addrs(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local())
        .map(|i| SocketAddr::new(i.ip(), listen.port()))
        .take(node_core::wire::MAX_ADDRS)
        .collect()
}

/// Binds the TCP listener. The unspecified IPv6 address is bound dual-stack, so one socket takes
/// IPv4 and IPv6 links (peers found over IPv6 link-local multicast are dialed over IPv6); where
/// the host has no IPv6 it falls back to IPv4 only.
fn bind_tcp(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let dual = |addr: SocketAddr| -> std::io::Result<TcpListener> {
        let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        if addr.is_ipv6() {
            s.set_only_v6(false)?;
        }
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        TcpListener::from_std(s.into())
    };
    match dual(listen) {
        Err(e) if listen.ip() == std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED) => {
            tracing::info!("no IPv6 ({e}); listening on IPv4 only");
            dual(SocketAddr::from((Ipv4Addr::UNSPECIFIED, listen.port())))
        }
        other => other,
    }
}

/// Asks the router for a port mapping to `listen`, tells the core and the user what came of it,
/// and keeps the mapping until the node stops.
async fn map_port(listen: SocketAddr, to_actor: mpsc::Sender<ToActor>, events: broadcast::Sender<NodeEvent>) {
    let mapping = upnp::map_tcp(listen).await;
    let tcp = mapping.as_ref().ok().map(|m| m.external);
    let error = mapping.as_ref().err().map(|e| e.to_string());
    if let Some(e) = &error {
        tracing::info!("{e}");
    }
    let _ = events.send(NodeEvent::PortMapped { external: tcp, error });
    if to_actor.send(ToActor::Input(Input::PortMapped { tcp })).await.is_err() {
        return;
    }
    if let Ok(m) = mapping {
        let stopped = async move { to_actor.closed().await };
        m.keep(stopped).await;
    }
}

/// Where the NAT probe and punch sockets find a STUN responder.
enum StunSource {
    /// `--stun`.
    Given(SocketAddr),
    /// The bootstrap server's, as its `/v1/info` describes it.
    Bootstrap(Arc<Bootstrap>),
}

/// Classifies this node's NAT against a STUN responder and hands the report to the node. A
/// failure is logged: the node works on without it.
async fn probe_nat(
    source: StunSource,
    clock: &clock::Clock,
    to_actor: &mpsc::Sender<ToActor>,
    punch_stun: &std::sync::OnceLock<SocketAddr>,
) {
    let target = match source {
        StunSource::Given(addr) => match nat::target_of(addr).await {
            Some(target) => target,
            None => return tracing::warn!("the STUN responder at {addr} did not answer: NAT type unknown"),
        },
        StunSource::Bootstrap(bs) => match bs.client.stun_target().await {
            Ok(Some(target)) => target,
            Ok(None) => return tracing::info!("the bootstrap server runs no STUN responder: NAT type unknown"),
            Err(e) => return tracing::warn!("cannot learn the bootstrap server's STUN address: {e}"),
        },
    };
    // UDP punches ask the same responder where their sockets show.
    let _ = punch_stun.set(target.primary);
    match nat::probe(target, clock).await {
        Ok(report) => {
            let _ = to_actor.send(ToActor::Input(Input::NatDetected { report })).await;
        }
        Err(e) => tracing::warn!("{e}"),
    }
}

/// Starts a node on the current tokio runtime.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, StartError> {
    if config.http.is_some() && !config.webrtc {
        return Err(StartError::HttpWithoutWebRtc);
    }
    let identity = identity_file::load_or_create(&config.data_dir)?;
    let listener = bind_tcp(config.listen).map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let tcp_addr = listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let listen_addrs = listen_addrs(tcp_addr);
    let http_listener = match &config.http {
        Some(http) => Some(http::bind(http).await.map_err(|source| StartError::Http { addr: http.listen, source })?),
        None => None,
    };
    let (to_actor, inbox) = mpsc::channel(INBOX);
    let punch_stun = Arc::new(std::sync::OnceLock::new());
    let discovery = if config.lan_discovery {
        Some(udp::Discovery::start(&config.discovery_ports, to_actor.clone()).map_err(StartError::Discovery)?)
    } else {
        None
    };
    let core = Config {
        name: config.name.clone(),
        mesh_id: config.mesh.clone(),
        max_peers: config.max_peers,
        lan_discovery: config.lan_discovery,
        discovery_ports: config.discovery_ports.clone(),
        tcp_port: Some(tcp_addr.port()),
        listen_addrs: listen_addrs.clone(),
        frame_cap: config.frame_cap,
        webrtc: config.webrtc,
        relay: config.bootstrap.is_some(),
        nat_probe: config.nat_probe && (config.stun.is_some() || config.bootstrap.is_some()),
        punch: config.punch,
        port_mapping: config.upnp && config.lan_discovery,
        ..Config::default()
    };
    let chunk_size = core.chunk_size;
    let clock = clock::Clock::new();
    let seed = rand::random::<u64>();
    let peer_id = identity.peer_id();
    let mut node = node_core::Node::new(core, identity.clone(), seed, clock.now());
    node.add_entropy(rand::random());
    for addr in &config.connect {
        let _ = node.command(clock.now(), node_core::Command::Connect { addr: *addr, expect: None });
    }
    let bootstrap = match &config.bootstrap {
        Some(b) => {
            let pins = bootstrap::pins::Pins::new(&config.data_dir, b.key);
            Some(Arc::new(Bootstrap {
                client: BootstrapClient::new(&b.url, pins)?,
                keys: identity.clone(),
                observed: Default::default(),
                tcp_port: tcp_addr.port(),
                listen_addrs: listen_addrs.clone(),
            }))
        }
        None => None,
    };
    let rtc_settings = Arc::new(rtc::RtcSettings {
        udp_addrs: rtc::RtcSettings::udp_addrs_for(tcp_addr),
        stun_urls: Default::default(),
        frame_cap: config.frame_cap,
    });
    let router = Arc::new(signal_router::SignalRouter::default());
    let tls = Arc::new(quic::tls::TlsIdentity::new(&identity)?);
    let keys = tcp::Keys { identity: Arc::new(identity), noise_static: Arc::new(noise::generate_static()), tls };
    tcp::spawn_listener(listener, keys.clone(), to_actor.clone());
    let to_actor_for_signal = to_actor.clone();
    let (events, first) = broadcast::channel(4096);
    let (commands, command_rx) = mpsc::channel(256);
    let actor = Actor {
        node,
        clock,
        keys,
        frame_cap: config.frame_cap,
        downloads_dir: config.downloads_dir.clone(),
        auto_accept: config.auto_accept,
        to_actor,
        discovery,
        events: events.clone(),
        links: HashMap::new(),
        rtc_attempts: HashMap::new(),
        rtc: rtc_settings.clone(),
        router: router.clone(),
        served: HashMap::new(),
        offers: HashMap::new(),
        opening: HashMap::new(),
        downloads: HashMap::new(),
        pending_offers: HashMap::new(),
        pending_names: HashMap::new(),
        relay: bootstrap.clone().map(|bs| (bs, config.mesh.clone())),
        punch_ip: tcp_addr.ip(),
        punch_stun: punch_stun.clone(),
        punches: HashMap::new(),
    };
    let http_addr = match (&config.http, http_listener) {
        (Some(http), Some((listener, addr))) => {
            let state = http::HttpState {
                me: peer_id,
                name: config.name.clone(),
                mesh: config.mesh.clone(),
                clock,
                router: router.clone(),
                to_actor: to_actor_for_signal.clone(),
                sessions: Default::default(),
            };
            http::spawn(listener, http, state);
            Some(addr)
        }
        _ => None,
    };
    if let Some(url) = &config.mqtt {
        if !mqtt::topic_safe(&config.mesh) {
            return Err(StartError::MqttMesh(config.mesh.clone()));
        }
        let (router, to_actor, events) = (router.clone(), to_actor_for_signal.clone(), events.clone());
        mqtt::spawn(url.clone(), config.mesh.clone(), peer_id, router, to_actor, events).map_err(StartError::Mqtt)?;
    }
    tokio::spawn(actor.run(command_rx, inbox));
    let stun = match (config.stun, &bootstrap) {
        (Some(addr), _) => Some(StunSource::Given(addr)),
        (None, Some(bs)) => Some(StunSource::Bootstrap(bs.clone())),
        (None, None) => None,
    };
    if let (true, Some(source)) = (config.nat_probe, stun) {
        let (to_actor, clock) = (to_actor_for_signal.clone(), clock);
        tokio::spawn(async move { probe_nat(source, &clock, &to_actor, &punch_stun).await });
    }
    if config.upnp && config.lan_discovery {
        tokio::spawn(map_port(tcp_addr, to_actor_for_signal.clone(), events.clone()));
    }
    if let Some(addr) = config.stun {
        *rtc_settings.stun_urls.lock().unwrap_or_else(|e| e.into_inner()) = vec![format!("stun:{addr}")];
    }
    if let (Some(bs), Some(b)) = (&bootstrap, &config.bootstrap) {
        let me = bootstrap::Identity { name: config.name.clone(), mesh: config.mesh.clone(), dial_peers: b.dial_peers };
        tokio::spawn(bootstrap::presence_loop(bs.clone(), me, commands.clone(), events.clone()));
        // Signaling serves WebRTC and linking across NATs (`--connect PEER_ID`) alike.
        let signal = bootstrap::signal::signal_loop(bs.clone(), config.mesh.clone(), router, to_actor_for_signal);
        tokio::spawn(signal);
        if config.webrtc && config.stun.is_none() {
            let (bs, rtc) = (bs.clone(), rtc_settings);
            tokio::spawn(async move {
                if let Ok(Some(url)) = bs.client.stun_url().await {
                    *rtc.stun_urls.lock().unwrap_or_else(|e| e.into_inner()) = vec![url];
                }
            });
        }
    }
    Ok(NodeHandle {
        commands,
        events,
        first: Arc::new(std::sync::Mutex::new(Some(first))),
        peer_id,
        tcp_addr,
        http_addr,
        listen_addrs,
        chunk_size,
        bootstrap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_http_address_leaves_nothing_running() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let result = start(NodeConfig {
            data_dir: dir.path().to_owned(),
            listen: tcp,
            lan_discovery: false,
            http: Some(http::HttpConfig { listen: taken.local_addr().unwrap(), web_dir: None }),
            ..Default::default()
        })
        .await;
        assert!(matches!(result, Err(StartError::Http { .. })), "the taken address is reported");
        std::net::TcpListener::bind(tcp).expect("the node's TCP port was let go");
    }
}
