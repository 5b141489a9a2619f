//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Weft: a peer-to-peer mesh. Finds other nodes on the LAN, chats, and sends verified,
/// resumable files — encrypted end to end, no server needed.
#[derive(Debug, Parser)]
#[command(name = "weft", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: run a node).
    #[command(subcommand)]
    pub command: Option<Commands>,
    /// Options for running a node when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a node (the default).
    Run(Box<RunArgs>),
    /// Print this node's peer id (creating the identity if needed) and exit.
    Id {
        /// Where the identity lives.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// Options of `weft run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Display name shown to peers (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Mesh to join; nodes in other meshes on the same LAN are ignored.
    #[arg(long, default_value = "default")]
    pub mesh: String,
    /// TCP port to accept links on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on (`::` takes IPv4 and IPv6; falls back to IPv4 where IPv6 is off).
    #[arg(long, default_value = "::")]
    pub bind: std::net::IpAddr,
    /// A node to dial at start: host:port, or a name held on the bootstrap server; repeatable.
    /// Redialed with backoff if the link drops.
    #[arg(long, value_name = "ADDR|NAME")]
    pub connect: Vec<String>,
    /// A bootstrap server (http://host:port or https://host): announce there, link to the mesh's
    /// live peers it lists, and claim and look up names through it.
    #[arg(long, value_name = "URL")]
    pub bootstrap: Option<String>,
    /// An MQTT broker to signal through (mqtt://, mqtts://, ws:// or wss://; user:password@ if it
    /// asks): nodes that share only a broker find each other by PeerId, no bootstrap server
    /// needed. Envelopes are signed and sealed; the broker sees only ciphertext.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<weft_native::mqtt::BrokerUrl>,
    /// A STUN responder (ip:port; RFC 5780 behaviour tests need one with two addresses, as
    /// weft-bootstrap runs) for the NAT probe and hole punching, instead of the bootstrap
    /// server's.
    #[arg(long, value_name = "ADDR")]
    pub stun: Option<SocketAddr>,
    /// The bootstrap server's key to require (default: pin the key it shows on first contact).
    #[arg(long, value_name = "PEER_ID", requires = "bootstrap")]
    pub bootstrap_key: Option<node_core::PeerId>,
    /// Most peers from the bootstrap server's list to dial (0: names and signaling only).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub bootstrap_peers: usize,
    /// Most links to keep: the overlay keeps one less as neighbors, and one link stays free for
    /// requests to peers outside them.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_peers: u16,
    /// Where the identity key lives (default: ~/.local/share/weft).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where received files go (default: <data-dir>/downloads).
    #[arg(long, value_name = "DIR")]
    pub downloads: Option<PathBuf>,
    /// Serve the page and browser signaling on this address (e.g. 0.0.0.0:7780): a browser that
    /// opens http://<this host>:7780/ joins the mesh through this node, no server needed.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Serve the page from this directory instead of the copy built into weft.
    #[arg(long, value_name = "DIR", requires = "http")]
    pub web_dir: Option<PathBuf>,
    /// Machine-readable mode: one JSON event per line on stdout, one JSON command per line on stdin.
    #[arg(long)]
    pub json: bool,
    /// Verbose logs on stderr (or set RUST_LOG).
    #[arg(long)]
    pub debug: bool,
    /// Do not announce on or listen to the LAN, nor ask its router for a port mapping (links
    /// only through --connect).
    #[arg(long)]
    pub no_discovery: bool,
    /// Do not ask the LAN's router for a port mapping (UPnP, which opens this node's TCP port to
    /// the internet when the router grants it); --no-discovery implies it.
    #[arg(long)]
    pub no_upnp: bool,
    /// Do not punch UDP holes (QUIC) when linking across NATs.
    #[arg(long)]
    pub no_udp_punch: bool,
    /// Do not punch TCP holes (simultaneous open) when linking across NATs.
    #[arg(long)]
    pub no_tcp_punch: bool,
    /// UDP discovery port pool, as FIRST-LAST or a comma list.
    #[arg(long, default_value = "47470-47474", value_parser = parse_ports)]
    pub discovery_ports: PortList,
}

/// A parsed port pool.
#[derive(Debug, Clone)]
pub struct PortList(pub Vec<u16>);

fn parse_ports(s: &str) -> Result<PortList, String> {
    let mut ports = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let a: u16 = a.trim().parse().map_err(|_| format!("bad port '{a}'"))?;
            let b: u16 = b.trim().parse().map_err(|_| format!("bad port '{b}'"))?;
            if a > b || b - a > 64 {
                return Err(format!("bad port range {a}-{b} (at most 65 ports, low to high)"));
            }
            ports.extend(a..=b);
        } else {
            ports.push(part.parse().map_err(|_| format!("bad port '{part}'"))?);
        }
    }
    if ports.is_empty() || ports.contains(&0) {
        return Err("give at least one non-zero port".into());
    }
    Ok(PortList(ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pools_parse_and_reject_nonsense() {
        assert_eq!(parse_ports("47470-47474").unwrap().0, vec![47470, 47471, 47472, 47473, 47474]);
        assert_eq!(parse_ports("1,5, 9").unwrap().0, vec![1, 5, 9]);
        assert!(parse_ports("9-1").is_err());
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("x").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
