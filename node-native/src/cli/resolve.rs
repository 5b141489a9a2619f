//! Turning what a user typed into a peer or an address.

use node_core::{PeerId, PeerSummary};
use std::net::SocketAddr;

/// Finds a linked peer by full id, unique id prefix (4+ characters), or unique name.
pub fn peer(query: &str, peers: &[PeerSummary]) -> Result<PeerId, String> {
    let q = query.trim();
    if let Ok(id) = q.parse::<PeerId>() {
        return Ok(id);
    }
    let by_prefix: Vec<&PeerSummary> =
        if q.len() >= 4 { peers.iter().filter(|p| p.peer.to_string().starts_with(q)).collect() } else { Vec::new() };
    let by_name: Vec<&PeerSummary> = peers.iter().filter(|p| p.name == q).collect();
    match (by_prefix.as_slice(), by_name.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.peer),
        ([], []) => Err(format!("no connected peer matches '{q}' (try /peers)")),
        _ => Err(format!("'{q}' matches several peers; use more of the id")),
    }
}

/// True if `text` is meant as an address (`host:port`, `[v6]:port`) rather than a name: names
/// never contain ':'.
pub fn is_address(text: &str) -> bool {
    text.contains(':')
}

/// Resolves `host:port` (names looked up by the system resolver).
pub async fn addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !text.contains(':') {
        return Err(format!("'{text}' is not host:port"));
    }
    match tokio::net::lookup_host(text).await {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("'{text}' resolves to no address")),
        Err(e) => Err(format!("cannot resolve '{text}': {e}")),
    }
}
