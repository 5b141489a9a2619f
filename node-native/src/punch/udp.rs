//! UDP hole punching, then QUIC over the punched path. Each end binds a fresh socket and asks
//! the STUN server where it shows (the core turns that into the address the peer should aim at);
//! at the agreed instant both send small probes at each other's address. Each end answers
//! wherever the peer's probes come from, as long as it is the peer's public IP: a symmetric NAT
//! gives the peer a port nobody could have predicted, and locking on to the observed source is
//! what gets such pairs through. Once each end has heard the other and been heard, the socket
//! becomes a QUIC endpoint ([`crate::quic`]), which proves both identities.
//!
//! Probes are not authenticated (QUIC does that); they carry both PeerIds only so that stray
//! datagrams and other attempts are not mistaken for this one.

use crate::actor::ToActor;
use crate::quic;
use crate::stream_link::{Carrier, NewLink};
use crate::tcp::Keys;
use node_core::{Input, LinkId, PeerId};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Marks a punch probe.
const MAGIC: &[u8; 8] = b"weftpnch";
/// Magic, flags, sender, receiver.
const PROBE_LEN: usize = 8 + 1 + 32 + 32;
/// Flag: the sender has heard from the receiver.
const HEARD: u8 = 1;
/// How often probes go out while punching.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long an end keeps probing before it gives up.
const PROBE_FOR: Duration = Duration::from_secs(4);
/// Probes sent in one go once an end is done, so the other learns it was heard.
const LAST_WORDS: usize = 3;
/// The QUIC handshake after the punch.
const QUIC_TIMEOUT: Duration = Duration::from_secs(3);

/// A punch probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    from: PeerId,
    to: PeerId,
    heard: bool,
}

impl Probe {
    fn encode(&self) -> [u8; PROBE_LEN] {
        let mut out = [0u8; PROBE_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = if self.heard { HEARD } else { 0 };
        out[9..41].copy_from_slice(self.from.as_bytes());
        out[41..].copy_from_slice(self.to.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Probe> {
        if bytes.len() != PROBE_LEN || &bytes[..8] != MAGIC {
            return None;
        }
        let id = |range: std::ops::Range<usize>| bytes.get(range)?.try_into().ok().map(PeerId::from_bytes);
        Some(Probe { from: id(9..41)?, to: id(41..PROBE_LEN)?, heard: bytes[8] & HEARD != 0 })
    }
}

/// Binds a punch socket on `ip` and asks `stun` (if any) where it shows; returns the socket and
/// the mapped address (`None` when there is no server or it did not answer).
pub async fn prepare(ip: IpAddr, stun: Option<SocketAddr>) -> std::io::Result<(UdpSocket, Option<SocketAddr>)> {
    let socket = UdpSocket::bind(SocketAddr::new(super::punch_ip(ip), 0)).await?;
    let mapped = match stun {
        Some(server) => crate::nat::binding(&socket, server).await.map(|b| b.mapped),
        None => None,
    };
    Ok((socket, mapped))
}

/// Punches from `socket` to `remote` for `link` starting after `wait`, then makes the QUIC link
/// with `peer`; reports the outcome to the actor.
pub fn spawn(
    link: LinkId,
    peer: PeerId,
    socket: UdpSocket,
    remote: SocketAddr,
    wait: Duration,
    keys: Keys,
    to_actor: mpsc::Sender<ToActor>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let msg = match run(peer, socket, remote, &keys).await {
            Ok(new) => ToActor::Outbound(link, new),
            Err(reason) => ToActor::Input(Input::LinkFailed { link, reason }),
        };
        let _ = to_actor.send(msg).await;
    });
}

async fn run(peer: PeerId, socket: UdpSocket, remote: SocketAddr, keys: &Keys) -> Result<NewLink, String> {
    let me = keys.identity.peer_id();
    let path = punch(&socket, me, peer, remote).await?;
    let socket = socket.into_std().map_err(|e| e.to_string())?;
    let quic = quic::link(socket, path, &keys.identity, &keys.tls, peer);
    let stream = match tokio::time::timeout(QUIC_TIMEOUT, quic).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(format!("punched to {path}, then {e}")),
        Err(_) => return Err(format!("punched to {path}, then the QUIC handshake timed out")),
    };
    let remote = stream.remote();
    Ok(NewLink { carrier: Carrier::Quic(stream), peer, remote })
}

/// Probes until both ends have heard each other; returns where the peer's probes came from.
async fn punch(socket: &UdpSocket, me: PeerId, peer: PeerId, remote: SocketAddr) -> Result<SocketAddr, String> {
    let end = Instant::now() + PROBE_FOR;
    let mut target = remote;
    let mut heard = false;
    let mut buf = [0u8; 1500];
    let mut tick = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if Instant::now() >= end {
                    let why = if heard { "the peer never heard us" } else { "nothing came back" };
                    return Err(format!("UDP punch to {remote}: {why} within {PROBE_FOR:?}"));
                }
                // A lost probe is a lost probe: the next one follows.
                let _ = socket.send_to(&Probe { from: me, to: peer, heard }.encode(), target).await;
            }
            got = socket.recv_from(&mut buf) => {
                let (n, from) = match got {
                    Ok(got) => got,
                    // An ICMP error from an earlier probe: the socket still works.
                    Err(_) => continue,
                };
                // Only the peer's public IP counts, whatever port its NAT chose.
                if from.ip() != remote.ip() {
                    continue;
                }
                let done = match Probe::decode(&buf[..n]) {
                    Some(p) if p.from == peer && p.to == me => {
                        (target, heard) = (from, true);
                        p.heard
                    }
                    Some(_) => continue,
                    // Anything else from the peer's address is its QUIC handshake: it has
                    // finished punching, so it heard us.
                    None if heard && from == target => true,
                    None => continue,
                };
                if done {
                    for _ in 0..LAST_WORDS {
                        let _ = socket.send_to(&Probe { from: me, to: peer, heard: true }.encode(), target).await;
                    }
                    return Ok(target);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::identity::Keypair;

    #[test]
    fn probes_round_trip_and_anything_else_is_not_one() {
        let (a, b) = (Keypair::from_secret([1; 32]).peer_id(), Keypair::from_secret([2; 32]).peer_id());
        for heard in [false, true] {
            let p = Probe { from: a, to: b, heard };
            assert_eq!(Probe::decode(&p.encode()), Some(p));
        }
        let bytes = Probe { from: a, to: b, heard: true }.encode();
        assert_eq!(Probe::decode(&bytes[..PROBE_LEN - 1]), None);
        assert_eq!(Probe::decode(&[0u8; PROBE_LEN]), None);
    }
}
