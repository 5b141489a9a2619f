//! Peer exchange: sharing whom we are linked to, and taking neighbours' lists as hints.

use super::peers::Source;
use super::Node;
use crate::identity::PeerId;
use crate::interface::LinkId;
use crate::time::Instant;
use crate::wire::{Message, PeerInfo, MAX_PEX_ENTRIES};
use rand_core::RngCore;

impl Node {
    /// Established peers other than `except`, as dial hints for a neighbour.
    pub(super) fn exchange_list(&self, except: Option<PeerId>) -> Vec<PeerInfo> {
        self.links
            .values()
            .filter_map(|l| {
                let (peer, name) = l.established()?;
                if Some(peer) == except {
                    return None;
                }
                let capabilities = self.peers.get(&peer).and_then(|p| p.capabilities).unwrap_or_default();
                Some(PeerInfo {
                    peer_id: peer,
                    name: name.to_owned(),
                    addrs: l.dialable_addr().into_iter().collect(),
                    capabilities,
                })
            })
            .take(MAX_PEX_ENTRIES)
            .collect()
    }

    /// Peer exchange entries are hints: remembered, then verified by dialing with the PeerId expected.
    pub(super) fn handle_peer_exchange(&mut self, now: Instant, peers: Vec<PeerInfo>) {
        for info in peers {
            if info.peer_id == self.me {
                continue;
            }
            let new = self.peers.observe(info.peer_id, &info.name, None, Source::Exchange, now);
            let delay = self.rtc_dial_delay(&info.peer_id);
            for addr in &info.addrs {
                self.peers.add_hint(&info.peer_id, *addr);
            }
            if let Some(p) = self.peers.get_mut(&info.peer_id) {
                // A neighbour's word until the peer's own Hello replaces it.
                p.capabilities = p.capabilities.or(Some(info.capabilities));
            }
            self.overlay_learn(now, info.peer_id);
            // Both ends of a WebRTC pair hear of each other about now: the lower id offers first.
            if new && self.peers.get(&info.peer_id).is_some_and(|p| self.wants_rtc(p, true)) {
                if let Some(p) = self.peers.get_mut(&info.peer_id) {
                    p.next_dial = now + delay;
                }
            }
        }
        self.dial_candidates(now);
    }

    pub(super) fn periodic_peer_exchange(&mut self) {
        let established: Vec<LinkId> =
            self.links.iter().filter(|(_, l)| l.established().is_some()).map(|(id, _)| *id).collect();
        if established.is_empty() {
            return;
        }
        let pick = established[(self.rng.next_u32() as usize) % established.len()];
        self.request_peers(pick);
    }

    /// Asks a neighbour for its peers, allowing one more answer on that link.
    pub(super) fn request_peers(&mut self, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            l.pex_allowance = l.pex_allowance.saturating_add(1).min(4);
            self.send(link, &Message::PeerRequest);
        }
    }
}
