//! The punch and relay legs of a link attempt: opening the link the driver binds a socket for,
//! telling the peer where to aim (our predicted public address), and the relay fallback.

use super::{Role, PUNCH_LEAD};
use crate::envelope::{ConnectSignal, SignalBody};
use crate::identity::PeerId;
use crate::interface::{Direction, LinkId, LinkKind, Output, PunchProto};
use crate::nat::NatType;
use crate::node::Node;
use crate::time::Instant;
use std::net::SocketAddr;

impl Node {
    /// Starts a punch to `peer`: a link waiting for the driver's socket ([`Output::PreparePunch`]).
    pub(super) fn open_punch(&mut self, now: Instant, peer: PeerId, proto: PunchProto) -> LinkId {
        let link = self.allocate_link_id();
        let kind = match proto {
            PunchProto::Tcp => LinkKind::Tcp,
            PunchProto::Udp => LinkKind::Quic,
        };
        let addr = crate::node::rtc::NO_ADDR;
        let direction = self.dialer_side(peer);
        let mut l = crate::node::links::Link::new(direction, kind, addr, Some(peer), now);
        l.punched = true;
        self.links.insert(link, l);
        self.outputs.push_back(Output::PreparePunch { link, peer, proto });
        link
    }

    /// The driver bound the punch socket of `link`: tell the peer where to punch to (initiator),
    /// or answer and start (responder).
    pub(in crate::node) fn handle_punch_prepared(
        &mut self,
        now: Instant,
        link: LinkId,
        local_port: u16,
        mapped: Option<SocketAddr>,
    ) {
        let Some((peer, a)) =
            self.connects.iter().find(|(_, a)| a.current.as_ref().is_some_and(|(_, _, links)| links.contains(&link)))
        else {
            return;
        };
        let (peer, session, role, punch_remote) = (*peer, a.session, a.role, a.punch_remote);
        let proto = match self.links.get(&link).map(|l| l.kind) {
            Some(LinkKind::Quic) => PunchProto::Udp,
            _ => PunchProto::Tcp,
        };
        let Some(addr) = self.predict_punch_addr(local_port, mapped) else {
            let reason = "our public address is unknown";
            self.close_link(link, reason, None);
            return self.connect_link_failed(now, link, reason);
        };
        match role {
            Role::Initiator => {
                self.send_envelope(peer, &SignalBody::Connect { session, step: ConnectSignal::Punch { proto, addr } })
            }
            Role::Responder => {
                let Some((_, remote)) = punch_remote else { return };
                let at = now + PUNCH_LEAD;
                let step = ConnectSignal::PunchReply { proto, addr, at_ms: at.unix_ms() };
                self.send_envelope(peer, &SignalBody::Connect { session, step });
                self.outputs.push_back(Output::Punch { link, peer, proto, remote, at });
            }
        }
    }

    /// Where the peer should send its punch to reach our punch socket (bound to `local_port`,
    /// seen by STUN at `mapped`): the STUN mapping itself when our NAT maps every destination
    /// alike; when it maps each destination anew, the port it will pick next (P2PD's
    /// prediction: the local port when it keeps ports, the STUN mapping plus the step when it
    /// counts up). A random allocator gets the STUN mapping, which the peer can still use if its
    /// own NAT lets our first packet in (it then answers wherever that came from).
    fn predict_punch_addr(&self, local_port: u16, mapped: Option<SocketAddr>) -> Option<SocketAddr> {
        use crate::nat::{Mapping, PortAllocation};
        let nat = self.nat.as_ref();
        let public = mapped.or_else(|| nat.and_then(|n| n.public).map(|p| SocketAddr::new(p.ip(), local_port)))?;
        let Some(nat) = nat.filter(|n| n.nat_type != NatType::Open) else { return Some(public) };
        if nat.mapping == Some(Mapping::EndpointIndependent) {
            return Some(public);
        }
        let port = match nat.allocation {
            Some(PortAllocation::Preserving) => local_port,
            Some(PortAllocation::FixedDelta(delta)) => {
                u16::try_from(i32::from(public.port()) + delta).unwrap_or(public.port())
            }
            _ => public.port(),
        };
        Some(SocketAddr::new(public.ip(), port))
    }

    /// The direction of a link both ends open at once (punched, relayed): the lower id, which
    /// runs the handshake's initiator, counts as the dialer, so the one-link-per-pair rule sees
    /// the same link from both ends.
    pub(in crate::node) fn dialer_side(&self, peer: PeerId) -> Direction {
        if self.me < peer {
            Direction::Outbound
        } else {
            Direction::Inbound
        }
    }

    /// Opens a relay link to `peer` (see [`Output::OpenRelay`]).
    pub(super) fn open_relay(&mut self, now: Instant, peer: PeerId) -> LinkId {
        let link = self.allocate_link_id();
        let addr = crate::node::rtc::NO_ADDR;
        let direction = self.dialer_side(peer);
        self.links.insert(link, crate::node::links::Link::new(direction, LinkKind::Relay, addr, Some(peer), now));
        self.outputs.push_back(Output::OpenRelay { link, peer });
        link
    }
}
