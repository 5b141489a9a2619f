//! Whom to dial and when: `--connect` targets (while the overlay has no neighbor), discovered
//! peers handed to the overlay (lower id first), the caps on links and dials in flight.

use super::links::{Link, LinkState};
use super::peers::{push_front_bounded, Source};
use super::{Node, PendingConnect};
use crate::identity::PeerId;
use crate::interface::{Direction, LinkId, LinkKind, Output};
use crate::time::Instant;
use core::time::Duration;
use std::net::SocketAddr;

/// How long a peer heard only over IPv6 link-local waits for its IPv4 announcement.
const LINK_LOCAL_GRACE: Duration = Duration::from_millis(250);
/// Most dials in flight at once.
const MAX_CONCURRENT_DIALS: usize = 8;
/// The higher id waits this long after discovering a peer before dialing it, so the lower id's
/// dial usually wins and no duplicate link is made.
const HIGHER_ID_DIAL_DELAY: Duration = Duration::from_millis(1500);

impl Node {
    /// Remembers a `--connect` target and dials it now.
    pub(super) fn connect(&mut self, now: Instant, addr: SocketAddr, expect: Option<PeerId>) {
        if let Some(peer) = expect {
            self.peers.observe(peer, "", Some(addr), Source::Manual, now);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.next_dial = now;
                p.failures = 0;
                p.wanted = true;
            }
            self.dial_candidates(now);
            return;
        }
        // Identity unknown until the handshake: keep the address as a target, redialed with
        // backoff until a link to it completes `Hello`; then it becomes a manual known peer.
        self.pending_connects.insert(addr, PendingConnect { failures: 0, next_dial: now, link: None });
        self.dial_candidates(now);
    }

    pub(super) fn open_link(&mut self, now: Instant, addr: SocketAddr, expect: Option<PeerId>) -> LinkId {
        let link = self.allocate_link_id();
        self.links.insert(link, Link::new(Direction::Outbound, LinkKind::Tcp, addr, expect, now));
        self.outputs.push_back(Output::OpenLink { link, addr, expect, kind: LinkKind::Tcp });
        link
    }

    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let (mut established, mut outbound, mut dialing) = (0, 0, 0);
        for l in self.links.values() {
            match l.state {
                LinkState::Established { .. } => {
                    established += 1;
                    if l.direction == Direction::Outbound {
                        outbound += 1;
                    }
                }
                LinkState::Dialing => dialing += 1,
                LinkState::Handshaking { .. } => {}
            }
        }
        (established, outbound, dialing)
    }

    /// Dials known peers that are due, within the caps: total links, outbound share (a quarter of
    /// the slots stay for inbound links, so no node only dials out), and dials in flight.
    pub(super) fn dial_candidates(&mut self, now: Instant) {
        self.learn_discovered(now);
        let (established, outbound, mut dialing) = self.counts();
        let max = self.config.max_peers;
        let reserve = if max >= 4 { max / 4 } else { 0 };
        let have_links = established > 0;
        let isolated = self.overlay.overlay.membership().active().is_empty();
        let tcp = self.config.tcp_port.is_some();
        let mut due: Vec<(PeerId, Option<SocketAddr>, bool)> = self
            .peers
            .iter()
            // The overlay picks the links to keep; the peers the user named are dialed only
            // while the node has no neighbor (they are its way back in).
            .filter(|(_, p)| p.source == Source::Manual && (isolated || p.wanted))
            .filter(|(id, p)| **id != self.me && p.link.is_none() && p.dialing.is_none() && p.next_dial <= now)
            .filter_map(|(id, p)| {
                let how = if self.wants_rtc(p, have_links) {
                    None
                } else if tcp && !p.addrs.is_empty() {
                    Some(p.addrs[0])
                } else {
                    return None;
                };
                Some((*id, how, p.source == Source::Manual))
            })
            .collect();
        // Manual targets first: the user asked for them.
        due.sort_by_key(|(_, _, manual)| !*manual);
        let mut opened = 0;
        let targets: Vec<SocketAddr> = self
            .pending_connects
            .iter()
            .filter(|(_, t)| t.link.is_none() && t.next_dial <= now)
            .map(|(a, _)| *a)
            .collect();
        for addr in targets {
            if !tcp {
                break;
            }
            if dialing >= MAX_CONCURRENT_DIALS || established + dialing >= max {
                break;
            }
            let link = self.open_link(now, addr, None);
            if let Some(t) = self.pending_connects.get_mut(&addr) {
                t.link = Some(link);
            }
            dialing += 1;
        }
        for (peer, addr, manual) in due {
            if dialing >= MAX_CONCURRENT_DIALS || established + dialing >= max {
                break;
            }
            if !manual && outbound + opened + dialing >= max.saturating_sub(reserve) {
                continue;
            }
            let link = match addr {
                Some(addr) => self.open_link(now, addr, Some(peer)),
                None => self.open_rtc_link(now, peer),
            };
            if let Some(p) = self.peers.get_mut(&peer) {
                p.dialing = Some(link);
            }
            dialing += 1;
            opened += 1;
        }
    }

    /// Called by discovery for a newly seen peer: it becomes the overlay's candidate at once if
    /// ours is the lower id, a moment later otherwise (by then the lower id's request has
    /// usually linked us, and no duplicate link is made).
    pub(super) fn schedule_discovered_learning(&mut self, now: Instant, peer: PeerId) {
        let mut delay = if self.me < peer { Duration::ZERO } else { HIGHER_ID_DIAL_DELAY };
        if let Some(p) = self.peers.get_mut(&peer) {
            // Heard over IPv6 link-local first: give the IPv4 copy of the announcement (sent at
            // the same moment) a beat to arrive, since it makes the better address.
            let only_link_local =
                p.addrs.iter().all(|a| matches!(a, SocketAddr::V6(v6) if v6.ip().is_unicast_link_local()));
            if only_link_local {
                delay = delay.max(LINK_LOCAL_GRACE);
            }
            if p.link.is_none() && p.dialing.is_none() && p.learn_at.is_none() {
                let at = now + delay;
                p.learn_at = Some(at);
                self.dial_wakeup = Some(self.dial_wakeup.map_or(at, |w| w.min(at)));
            }
        }
        self.dial_candidates(now);
    }

    /// Hands the overlay the discovered peers whose wait is over.
    fn learn_discovered(&mut self, now: Instant) {
        let due: Vec<PeerId> =
            self.peers.iter().filter(|(_, p)| p.learn_at.is_some_and(|at| at <= now)).map(|(id, _)| *id).collect();
        for peer in due {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.learn_at = None;
            }
            self.overlay_learn(now, peer);
        }
        let next = self.peers.iter().filter_map(|(_, p)| p.learn_at).min();
        if let Some(at) = next {
            self.dial_wakeup = Some(self.dial_wakeup.map_or(at, |w| w.min(at)));
        }
    }

    /// Records the address a discovery announcement came from.
    pub(super) fn note_discovered_addr(&mut self, peer: &PeerId, addr: SocketAddr) {
        if let Some(p) = self.peers.get_mut(peer) {
            push_front_bounded(&mut p.addrs, addr);
        }
    }
}
