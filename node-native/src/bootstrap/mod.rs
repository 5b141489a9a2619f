//! A node's side of a bootstrap server: the [`client`], key [`pins`], the presence loop (announce,
//! fetch the mesh's live peers, dial the ones not yet linked), and what a node's name maps to.

pub mod client;
pub mod pins;
pub(crate) mod signal;

pub use client::{BootstrapClient, BootstrapError};

use crate::handle::{ActorCommand, NodeEvent};
use node_core::identity::Keypair;
use node_core::names::MAX_VALUE_LEN;
use node_core::presence::Presence;
use node_core::wire::{Capabilities, MAX_ADDRS};
use node_core::{Command, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How a node uses a bootstrap server.
#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    /// The server's base URL (`http://host:port` or `https://host`).
    pub url: String,
    /// The server key to require (otherwise the first key seen is pinned).
    pub key: Option<PeerId>,
    /// Most peers from the server's list to dial (0: use the server for names only).
    pub dial_peers: usize,
}

/// What a node's name maps to: the node and where to reach it. JSON, at most 512 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    /// The node the name stands for.
    pub peer_id: PeerId,
    /// Where it listens, best first.
    pub addrs: Vec<SocketAddr>,
}

impl NameValue {
    /// The JSON bytes, dropping trailing addresses until they fit a name's value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.clone();
        v.addrs.truncate(MAX_ADDRS);
        loop {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            if bytes.len() <= MAX_VALUE_LEN || v.addrs.is_empty() {
                return bytes;
            }
            v.addrs.pop();
        }
    }

    /// Parses a name's value; `None` if it is not a node's address.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// What the node keeps about its server.
pub struct Bootstrap {
    /// The client.
    pub client: BootstrapClient,
    /// The node's key (announcements and names are signed with it).
    pub keys: Keypair,
    /// The address the server last saw us at.
    pub observed: Mutex<Option<IpAddr>>,
    /// Where we listen.
    pub tcp_port: u16,
    /// Our listen addresses.
    pub listen_addrs: Vec<SocketAddr>,
}

impl Bootstrap {
    /// Our addresses as others should dial them: the one the server saw first, then our own.
    pub fn reachable_addrs(&self) -> Vec<SocketAddr> {
        let observed = *self.observed.lock().unwrap_or_else(|e| e.into_inner());
        observed
            .map(|ip| SocketAddr::new(ip, self.tcp_port))
            .into_iter()
            .chain(self.listen_addrs.iter().copied())
            .collect()
    }
}

/// Unix milliseconds now (what announcements and name records are stamped with).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Who we are to the mesh, for announcements.
pub(crate) struct Identity {
    pub name: String,
    pub mesh: String,
    pub dial_peers: usize,
}

/// Announces every `reannounce_after` seconds, and dials the mesh's live peers not yet linked.
/// Failures are reported once per outage, then retried with backoff.
pub(crate) async fn presence_loop(
    bs: Arc<Bootstrap>,
    me: Identity,
    commands: mpsc::Sender<ActorCommand>,
    events: broadcast::Sender<NodeEvent>,
) {
    let mut failing = false;
    let mut announced = false;
    let mut retry = Duration::from_secs(5);
    let mut dialed: BTreeSet<PeerId> = BTreeSet::new();
    // The loop ends with the node (its command channel closes).
    while !commands.is_closed() {
        // With no routable listen address, announce the port alone: the server pairs it with
        // the address it sees.
        let addrs = if bs.listen_addrs.is_empty() {
            vec![SocketAddr::new(IpAddr::from([0, 0, 0, 0]), bs.tcp_port)]
        } else {
            bs.listen_addrs.iter().copied().take(MAX_ADDRS).collect()
        };
        let presence = Presence {
            peer_id: bs.keys.peer_id(),
            name: me.name.clone(),
            mesh_id: me.mesh.clone(),
            addrs,
            nat: Default::default(),
            capabilities: Capabilities(Capabilities::FILES | Capabilities::RELAY_BROADCAST),
            unix_ms: now_ms(),
        };
        let round = async {
            let reply = bs.client.announce(presence, &bs.keys).await?;
            *bs.observed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reply.observed_ip);
            let peers = if me.dial_peers > 0 { bs.client.peers(&me.mesh).await? } else { Vec::new() };
            Ok::<_, BootstrapError>((reply, peers))
        };
        let wait = match round.await {
            Ok((reply, peers)) => {
                if std::mem::take(&mut failing) || !std::mem::replace(&mut announced, true) {
                    let key = bs.client.server_key().await.ok();
                    let _ = events.send(NodeEvent::BootstrapConnected {
                        url: bs.client.url().to_owned(),
                        server_key: key,
                        observed_ip: reply.observed_ip,
                        peers: peers.len(),
                    });
                }
                retry = Duration::from_secs(5);
                dial_new(&bs, &me, peers, &commands, &mut dialed).await;
                Duration::from_secs(u64::from(reply.reannounce_after_secs).clamp(10, 600))
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    let _ = events.send(NodeEvent::Error { code: "bootstrap", message: e.to_string() });
                }
                retry = (retry * 2).min(Duration::from_secs(120));
                retry
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn dial_new(
    bs: &Bootstrap,
    me: &Identity,
    peers: Vec<node_core::presence::LivePeer>,
    commands: &mpsc::Sender<ActorCommand>,
    dialed: &mut BTreeSet<PeerId>,
) {
    let (tx, rx) = oneshot::channel();
    if commands.send(ActorCommand::Peers(tx)).await.is_err() {
        return;
    }
    let linked: BTreeSet<PeerId> = rx.await.unwrap_or_default().into_iter().map(|p| p.peer).collect();
    // Forget peers that are neither listed nor linked any more, so newcomers get their slots.
    let listed: BTreeSet<PeerId> = peers.iter().map(|p| p.presence.presence.peer_id).collect();
    dialed.retain(|p| listed.contains(p) || linked.contains(p));
    let me_id = bs.keys.peer_id();
    for peer in peers {
        let p = &peer.presence.presence;
        if dialed.len() >= me.dial_peers {
            break;
        }
        if p.peer_id == me_id || linked.contains(&p.peer_id) || dialed.contains(&p.peer_id) {
            continue;
        }
        // The address the server saw, with the port the peer listens on: what works across NATs
        // that keep ports and for public hosts. (Punching through the rest is the NAT planner's job.)
        let Some(port) = p.addrs.first().map(|a| a.port()) else { continue };
        let addr = SocketAddr::new(peer.observed_ip, port);
        let (tx, _rx) = oneshot::channel();
        let cmd = Command::Connect { addr, expect: Some(p.peer_id) };
        if commands.send(ActorCommand::Core(cmd, tx)).await.is_ok() {
            tracing::debug!("dialing {} at {addr} (from the bootstrap server)", p.peer_id.short());
            dialed.insert(p.peer_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_values_fit_and_round_trip() {
        let peer_id = Keypair::from_secret([1; 32]).peer_id();
        let v = NameValue { peer_id, addrs: vec!["127.0.0.1:4000".parse().unwrap()] };
        assert_eq!(NameValue::decode(&v.encode()), Some(v));
        let many = NameValue { peer_id, addrs: vec!["[2001:db8:1:2:3:4:5:6]:65535".parse().unwrap(); 40] };
        let bytes = many.encode();
        assert!(bytes.len() <= MAX_VALUE_LEN);
        assert!(!NameValue::decode(&bytes).unwrap().addrs.is_empty());
        assert_eq!(NameValue::decode(b"not json"), None);
    }
}
