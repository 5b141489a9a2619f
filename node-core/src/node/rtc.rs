//! WebRTC links: whom to link over WebRTC, and their negotiation carried in envelopes.
//!
//! Each attempt is one link and one `session` number chosen by the offerer. Two peers offering to
//! each other at once simply make two attempts; the usual one-link-per-pair rule keeps one.

use super::links::{Link, LinkState};
use super::peers::KnownPeer;
use super::Node;
use crate::envelope::{RtcSignal, SignalBody};
use crate::identity::PeerId;
use crate::interface::{Direction, Event, LinkId, LinkKind, Output};
use crate::time::Instant;
use crate::wire::Capabilities;
use core::time::Duration;
use rand_core::RngCore;
use std::net::{Ipv4Addr, SocketAddr};

/// Most WebRTC links being negotiated at once (offers we made plus offers we answer): each costs
/// the driver a peer connection, so a flood of offers is refused politely past this.
const MAX_PENDING_RTC: usize = 16;
/// Most remote candidates applied per attempt: each makes the driver send connectivity checks to
/// an address the peer chose, so an endless list would turn us into a reflector.
const MAX_REMOTE_CANDIDATES: u16 = 32;
/// The higher id waits this long before offering, so the lower id's offer usually wins.
const HIGHER_ID_OFFER_DELAY: Duration = Duration::from_millis(1500);
/// The address a WebRTC link has until the driver reports the remote candidate.
pub(super) const NO_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl Node {
    /// What this node tells its peers it supports.
    pub(super) fn capabilities(&self) -> Capabilities {
        let mut bits = Capabilities::FILES | Capabilities::RELAY_BROADCAST;
        if self.config.tcp_port.is_some() {
            bits |= Capabilities::TCP;
        }
        if self.config.webrtc {
            bits |= Capabilities::WEBRTC;
        }
        Capabilities(bits)
    }

    /// How long to wait before offering to a peer first heard of now.
    pub(super) fn rtc_dial_delay(&self, peer: &PeerId) -> Duration {
        if self.me < *peer {
            Duration::ZERO
        } else {
            HIGHER_ID_OFFER_DELAY
        }
    }

    /// Whether to link `p` over WebRTC rather than TCP. Native↔native links stay on TCP: a node
    /// with a TCP listener offers WebRTC only to peers known to have none (browsers); a browser
    /// offers to everyone that takes WebRTC. An offer needs a way to reach the peer: a signaling
    /// channel, or any link for mesh routing.
    pub(super) fn wants_rtc(&self, p: &KnownPeer, have_links: bool) -> bool {
        if !self.config.webrtc || p.capabilities.is_some_and(|c| !c.has(Capabilities::WEBRTC)) {
            return false;
        }
        let peer_lacks_tcp = p.capabilities.is_some_and(|c| !c.has(Capabilities::TCP));
        if self.config.tcp_port.is_some() && !peer_lacks_tcp {
            return false;
        }
        p.signal || have_links
    }

    /// Starts a WebRTC link to `peer`: the driver makes the offer.
    pub(super) fn open_rtc_link(&mut self, now: Instant, peer: PeerId) -> LinkId {
        let link = self.allocate_link_id();
        let mut l = Link::new(Direction::Outbound, LinkKind::WebRtc, NO_ADDR, Some(peer), now);
        l.rtc_session = Some(self.rng.next_u64());
        self.links.insert(link, l);
        self.outputs.push_back(Output::OpenRtc { link, peer, offer: None });
        link
    }

    fn pending_rtc(&self) -> usize {
        self.links.values().filter(|l| l.rtc_session.is_some() && matches!(l.state, LinkState::Dialing)).count()
    }

    fn rtc_link(&self, peer: &PeerId, session: u64) -> Option<LinkId> {
        self.links.iter().find(|(_, l)| l.rtc_session == Some(session) && l.expect == Some(*peer)).map(|(id, _)| *id)
    }

    /// The driver's WebRTC stack produced our offer, answer or a candidate.
    pub(super) fn handle_rtc_local(&mut self, link: LinkId, signal: RtcSignal) {
        let Some((Some(session), Some(peer))) = self.links.get(&link).map(|l| (l.rtc_session, l.expect)) else {
            return; // the attempt was given up meanwhile
        };
        self.send_envelope(peer, &SignalBody::Rtc { session, signal });
    }

    fn refuse_rtc(&mut self, to: PeerId, session: u64, reason: &str) {
        let signal = RtcSignal::Hangup { reason: reason.to_owned() };
        self.send_envelope(to, &SignalBody::Rtc { session, signal });
    }

    /// A negotiation step from `from`, out of an envelope it signed.
    pub(super) fn handle_rtc_signal(&mut self, now: Instant, from: PeerId, session: u64, signal: RtcSignal) {
        let existing = self.rtc_link(&from, session);
        match signal {
            RtcSignal::Offer { sdp } => {
                if existing.is_some() {
                    return; // the same offer over a second channel
                }
                if !self.config.webrtc {
                    return self.refuse_rtc(from, session, "this node does not take WebRTC links");
                }
                let up = self.links.values().filter(|l| !matches!(l.state, LinkState::Dialing)).count();
                if self.pending_rtc() >= MAX_PENDING_RTC || up > self.config.max_peers + super::links::EXTRA_LINKS {
                    return self.refuse_rtc(from, session, "too many links");
                }
                let link = self.allocate_link_id();
                let mut l = Link::new(Direction::Inbound, LinkKind::WebRtc, NO_ADDR, Some(from), now);
                l.rtc_session = Some(session);
                self.links.insert(link, l);
                self.outputs.push_back(Output::OpenRtc { link, peer: from, offer: Some(sdp) });
            }
            RtcSignal::Answer { .. } | RtcSignal::Candidate(_) => {
                let Some(link) = existing else {
                    self.stats.unmatched_signals += 1;
                    return;
                };
                if matches!(signal, RtcSignal::Candidate(_)) {
                    let Some(l) = self.links.get_mut(&link) else { return };
                    if l.rtc_candidates >= MAX_REMOTE_CANDIDATES {
                        self.stats.unmatched_signals += 1;
                        return;
                    }
                    l.rtc_candidates += 1;
                }
                self.outputs.push_back(Output::RtcRemote { link, signal });
            }
            RtcSignal::Hangup { reason } => {
                // Only an attempt still negotiating can be refused; an open link ends with Goodbye.
                let negotiating = |l: &Link| matches!(l.state, LinkState::Dialing);
                if let Some(link) = existing.filter(|id| self.links.get(id).is_some_and(negotiating)) {
                    self.emit(Event::LinkRefused { peer: from, reason: reason.clone() });
                    self.close_link(link, &format!("refused: {reason}"), Some(now));
                }
            }
        }
    }
}
