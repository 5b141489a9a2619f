//! The node's side of LAN discovery: sending announcements on schedule, acting on received ones.

use super::peers::Source;
use super::Node;
use crate::discovery::{designated_port, AnnounceError, Announcement};
use crate::interface::{DatagramDest, Event, Output};
use crate::time::Instant;
use core::time::Duration;
use rand_core::RngCore;
use std::net::SocketAddr;

/// How soon after it was signed a repeated announcement may still teach us another address of
/// its sender (the same broadcast arriving over another path).
const MULTIPATH_WINDOW: Duration = Duration::from_secs(2);
/// Most unicast replies to newly seen nodes per second.
const REPLIES_PER_SECOND: u32 = 10;

impl Node {
    fn announcement(&mut self, now: Instant) -> Option<Announcement> {
        let tcp_port = self.config.tcp_port?;
        Some(Announcement {
            peer_id: self.me,
            name: self.config.name.clone(),
            mesh_id: self.config.mesh_id.clone(),
            tcp_port,
            quic_port: None,
            http_port: self.config.http_port,
            unix_ms: now.unix_ms(),
            nonce: self.rng.next_u64(),
        })
    }

    /// Sends the scheduled broadcast and schedules the next one.
    pub(super) fn announce(&mut self, now: Instant) {
        let enough = self.peers().len() >= self.config.enough_peers;
        let next = self.schedule.next_after(now, enough, &mut self.rng);
        self.next_announce = Some(next.max(now + Duration::from_millis(1)));
        if !self.has_room() {
            return;
        }
        let (Some(port), Some(a)) = (designated_port(&self.config.discovery_ports, now), self.announcement(now)) else {
            return;
        };
        let data = a.encode_signed(&self.keys);
        self.outputs.push_back(Output::Transmit { dest: DatagramDest::LanBroadcast { port }, data });
    }

    pub(super) fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if !self.config.lan_discovery {
            return;
        }
        let a = match Announcement::decode_verified(data) {
            Ok(a) => a,
            Err(_) => {
                self.stats.bad_datagrams += 1;
                return;
            }
        };
        if a.peer_id == self.me {
            return; // our own broadcast, looped back
        }
        if a.mesh_id != self.config.mesh_id {
            self.stats.foreign_mesh_announcements += 1;
            return;
        }
        if let Err(e) = self.replay.check(&a, now) {
            debug_assert!(matches!(e, AnnounceError::Replay | AnnounceError::Stale));
            self.stats.replayed_announcements += 1;
            // One announcement reaches us several ways at once (IPv4 broadcast, subnet broadcast,
            // IPv4 and IPv6 multicast); whichever copy came first, the others still tell us an
            // address of a peer we know. Only copies fresh from their sender's clock count, so
            // an old announcement replayed later teaches nothing.
            let fresh = a.unix_ms.abs_diff(now.unix_ms()) <= MULTIPATH_WINDOW.as_millis() as u64;
            if e == AnnounceError::Replay && fresh && a.tcp_port != 0 && self.peers.get(&a.peer_id).is_some() {
                let mut addr = from;
                addr.set_port(a.tcp_port);
                self.note_discovered_addr(&a.peer_id, addr);
            }
            return;
        }
        if a.tcp_port == 0 {
            return;
        }
        // The dial target is the datagram's source IP, never anything the body claims (with its
        // scope, which an IPv6 link-local address needs).
        let mut addr = from;
        addr.set_port(a.tcp_port);
        let is_new = self.peers.observe(a.peer_id, &a.name, Some(addr), Source::Discovery, now);
        self.note_discovered_addr(&a.peer_id, addr);
        if is_new {
            self.emit(Event::PeerDiscovered { peer: a.peer_id, name: a.name.clone(), addr });
            self.reply_to(now, from);
            self.schedule_discovered_learning(now, a.peer_id);
        } else if self.peers.link_of(&a.peer_id).is_none() {
            // Known, unlinked, and still announcing: a candidate again (after a partition
            // heals, say).
            if let Some(p) = self.peers.get_mut(&a.peer_id) {
                p.given_up = false;
            }
            self.schedule_discovered_learning(now, a.peer_id);
        }
    }

    /// An immediate unicast announcement to a newly seen node, so it need not wait for our next
    /// broadcast. Budgeted, since the source address of a datagram can be forged.
    fn reply_to(&mut self, now: Instant, to: SocketAddr) {
        if now - self.reply_budget.0 >= Duration::from_secs(1) {
            self.reply_budget = (now, 0);
        }
        if self.reply_budget.1 >= REPLIES_PER_SECOND || !self.has_room() {
            return;
        }
        self.reply_budget.1 += 1;
        if let Some(a) = self.announcement(now) {
            let data = a.encode_signed(&self.keys);
            self.outputs.push_back(Output::Transmit { dest: DatagramDest::Unicast(to), data });
        }
    }
}
