//! The strategy planner: given what two nodes know of their own networks, the order in which to
//! try to link them (P2PD's ladder) and, for each strategy left out, why. Pure and deterministic,
//! so both ends of an attempt compute the same plan from the same two descriptions.

use super::{Filtering, Mapping, NatReport, NatType, PortAllocation};
use core::net::SocketAddr;
use core::time::Duration;
use serde::{Deserialize, Serialize};

/// One way of linking two nodes, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Dial the peer's own listen addresses (same LAN).
    LanDirect,
    /// Dial the peer's public address (no NAT, or a mapped port).
    PublicDirect,
    /// Ask the peer to dial our public address.
    Reverse,
    /// Simultaneous UDP probes at an agreed instant, then QUIC over the punched path.
    UdpPunch,
    /// TCP simultaneous open, then Noise.
    TcpSimultaneousOpen,
    /// Through the bootstrap server's relay.
    Relay,
}

impl Strategy {
    /// Every strategy, in the order they are tried.
    pub const LADDER: [Strategy; 6] = [
        Strategy::LanDirect,
        Strategy::PublicDirect,
        Strategy::Reverse,
        Strategy::UdpPunch,
        Strategy::TcpSimultaneousOpen,
        Strategy::Relay,
    ];

    /// How long a step may take before the next one is tried.
    pub fn timeout(self) -> Duration {
        match self {
            Strategy::LanDirect => Duration::from_secs(3),
            Strategy::PublicDirect | Strategy::Reverse => Duration::from_secs(5),
            // Two STUN bindings (≤ 1.2 s each, one per end, one after the other), the agreed
            // start (≤ 1.2 s), 4 s of probes, a 3 s QUIC handshake.
            Strategy::UdpPunch => Duration::from_secs(11),
            // The agreed start (≤ 1.2 s), 5 s of connects, the last one's 1.5 s.
            Strategy::TcpSimultaneousOpen => Duration::from_secs(9),
            Strategy::Relay => Duration::from_secs(20),
        }
    }

    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LanDirect => "lan-direct",
            Strategy::PublicDirect => "public-direct",
            Strategy::Reverse => "reverse",
            Strategy::UdpPunch => "udp-punch",
            Strategy::TcpSimultaneousOpen => "tcp-simultaneous-open",
            Strategy::Relay => "relay",
        }
    }
}

/// What one node tells the other about itself when they set out to link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Where it listens for TCP (its own interface addresses).
    pub addrs: Vec<SocketAddr>,
    /// Its NAT probe's findings, if it has run.
    pub nat: Option<NatReport>,
    /// Whether it can reach a relay (it has a bootstrap server).
    pub relay: bool,
    /// Which hole punches its driver can carry out.
    pub punch: Punching,
    /// A public address its router maps to its TCP listener (UPnP), if it got one.
    pub mapped: Option<SocketAddr>,
}

/// Which hole punches a node's driver can carry out (a browser can do neither; a native node
/// may have either turned off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Punching {
    /// UDP probes, then QUIC.
    pub udp: bool,
    /// TCP simultaneous open, then Noise.
    pub tcp: bool,
}

impl Punching {
    /// Both kinds.
    pub const ALL: Punching = Punching { udp: true, tcp: true };
}

/// Most listen addresses taken from a peer's [`EndpointInfo`]: each one costs a dial.
pub const MAX_ADDRS: usize = 8;

/// A strategy in a plan, or left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// To be tried, in this order.
    Try(Strategy),
    /// Not tried, and why (for the connectivity report).
    Skip(Strategy, &'static str),
}

fn public(info: &EndpointInfo) -> Option<SocketAddr> {
    info.nat.as_ref().and_then(|n| n.public)
}

fn nat_type(info: &EndpointInfo) -> Option<NatType> {
    info.nat.as_ref().map(|n| n.nat_type)
}

/// Whether a hole can be punched from behind `a` to behind `b` (the NAT lab's findings: any pair
/// with an endpoint-independent mapping on both sides; one symmetric side only against a peer
/// whose filter lets the symmetric side's new port in, or with predictable ports).
fn punchable(a: &NatReport, b: &NatReport) -> Result<(), &'static str> {
    let predictable =
        |r: &NatReport| matches!(r.allocation, Some(PortAllocation::Preserving | PortAllocation::FixedDelta(_)));
    let eim = |r: &NatReport| r.mapping == Some(Mapping::EndpointIndependent) || r.nat_type == NatType::Open;
    let lets_new_ports_in = |r: &NatReport| {
        matches!(r.filtering, Some(Filtering::EndpointIndependent | Filtering::AddressDependent))
            || r.nat_type == NatType::Open
    };
    match (eim(a), eim(b)) {
        (true, true) => Ok(()),
        (true, false) if lets_new_ports_in(a) || predictable(b) => Ok(()),
        (false, true) if lets_new_ports_in(b) || predictable(a) => Ok(()),
        (false, false) if predictable(a) && predictable(b) => Ok(()),
        (false, false) => Err("both NATs map each destination to a new, unpredictable port"),
        _ => Err("a symmetric NAT facing a port-restricted filter: the punched port is never the one let in"),
    }
}

/// Whether a side's public TCP address can be predicted: TCP has no STUN here, so the public
/// port must be the local one (no NAT, or an endpoint-independent NAT that keeps ports), and each
/// side's SYN must match the other's: a NAT that picks a new port per destination breaks that.
fn tcp_predictable(r: &NatReport) -> Result<(), &'static str> {
    if r.nat_type == NatType::Open {
        return Ok(());
    }
    if r.public.is_none() {
        return Err("a public address is unknown");
    }
    if r.mapping != Some(Mapping::EndpointIndependent) {
        return Err("a NAT maps each destination to a new port");
    }
    if r.allocation != Some(PortAllocation::Preserving) {
        return Err("a NAT does not keep local ports, so the public TCP port cannot be predicted");
    }
    Ok(())
}

/// The plan for `me` linking to `peer`: every strategy of the ladder, tried or skipped with a
/// reason. `me` is the side that calls `plan`; both sides call it with their own view.
pub fn plan(me: &EndpointInfo, peer: &EndpointInfo) -> Vec<Planned> {
    Strategy::LADDER
        .iter()
        .map(|&s| match why_not(s, me, peer) {
            None => Planned::Try(s),
            Some(reason) => Planned::Skip(s, reason),
        })
        .collect()
}

fn why_not(s: Strategy, me: &EndpointInfo, peer: &EndpointInfo) -> Option<&'static str> {
    match s {
        Strategy::LanDirect => {
            if peer.addrs.is_empty() {
                return Some("the peer listens on no address");
            }
            match (public(me), public(peer)) {
                (Some(a), Some(b)) if a.ip() != b.ip() => Some("not on the same LAN (different public addresses)"),
                _ => None,
            }
        }
        Strategy::PublicDirect if peer.mapped.is_some() => None,
        Strategy::PublicDirect => match nat_type(peer) {
            Some(NatType::Open) => None,
            Some(_) => Some("the peer is behind a NAT"),
            None => Some("the peer's NAT is unknown"),
        },
        Strategy::Reverse if me.mapped.is_some() => None,
        Strategy::Reverse => match nat_type(me) {
            Some(NatType::Open) => None,
            Some(_) => Some("we are behind a NAT"),
            None => Some("our NAT is unknown"),
        },
        Strategy::TcpSimultaneousOpen if !me.punch.tcp => Some("this node does not punch TCP"),
        Strategy::TcpSimultaneousOpen if !peer.punch.tcp => Some("the peer does not punch TCP"),
        Strategy::TcpSimultaneousOpen => match (&me.nat, &peer.nat) {
            (Some(a), Some(b)) => tcp_predictable(a).and(tcp_predictable(b)).err(),
            _ => Some("a NAT type is unknown"),
        },
        Strategy::UdpPunch if !me.punch.udp => Some("this node does not punch UDP"),
        Strategy::UdpPunch if !peer.punch.udp => Some("the peer does not punch UDP"),
        Strategy::UdpPunch => match (&me.nat, &peer.nat) {
            (Some(a), Some(b)) if a.nat_type == NatType::UdpBlocked || b.nat_type == NatType::UdpBlocked => {
                Some("UDP is blocked on one side")
            }
            (Some(a), Some(b)) => punchable(a, b).err(),
            _ => Some("a NAT type is unknown"),
        },
        Strategy::Relay => (!me.relay || !peer.relay).then_some("no common relay"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        nat_type: NatType,
        mapping: Mapping,
        filtering: Filtering,
        allocation: PortAllocation,
        ip: u8,
    ) -> NatReport {
        NatReport {
            nat_type,
            public: Some(SocketAddr::from(([198, 51, 100, ip], 40_000))),
            mapping: Some(mapping),
            filtering: Some(filtering),
            allocation: Some(allocation),
            exact: true,
        }
    }

    fn behind(kind: &str, ip: u8) -> EndpointInfo {
        use Filtering as F;
        use Mapping as M;
        let r = match kind {
            "full" => report(
                NatType::FullCone,
                M::EndpointIndependent,
                F::EndpointIndependent,
                PortAllocation::Preserving,
                ip,
            ),
            "addr" => report(
                NatType::AddressRestricted,
                M::EndpointIndependent,
                F::AddressDependent,
                PortAllocation::Preserving,
                ip,
            ),
            "port" => report(
                NatType::PortRestricted,
                M::EndpointIndependent,
                F::AddressAndPortDependent,
                PortAllocation::Preserving,
                ip,
            ),
            "sym" => report(
                NatType::Symmetric,
                M::AddressAndPortDependent,
                F::AddressAndPortDependent,
                PortAllocation::Random,
                ip,
            ),
            _ => unreachable!(),
        };
        EndpointInfo {
            addrs: vec![SocketAddr::from(([10, 0, ip, 2], 7000))],
            nat: Some(r),
            relay: true,
            punch: Punching::ALL,
            mapped: None,
        }
    }

    fn tries(p: &[Planned]) -> Vec<Strategy> {
        p.iter().filter_map(|x| if let Planned::Try(s) = x { Some(*s) } else { None }).collect()
    }

    #[test]
    fn the_nat_lab_table_decides_punching() {
        let types = ["full", "addr", "port", "sym"];
        for (i, a) in types.iter().enumerate() {
            for b in &types[i..] {
                let want = !matches!((*a, *b), ("port", "sym") | ("sym", "sym"));
                for (me, peer) in [(behind(a, 1), behind(b, 2)), (behind(b, 2), behind(a, 1))] {
                    let p = tries(&plan(&me, &peer));
                    assert_eq!(p.contains(&Strategy::UdpPunch), want, "{a} x {b}: {p:?}");
                    let tcp = *a != "sym" && *b != "sym";
                    assert_eq!(p.contains(&Strategy::TcpSimultaneousOpen), tcp, "{a} x {b}: {p:?}");
                    assert_eq!(p.last(), Some(&Strategy::Relay), "relay is always the last resort");
                    assert!(!p.contains(&Strategy::LanDirect), "different public addresses: {p:?}");
                }
            }
        }
    }

    #[test]
    fn predictable_symmetric_nats_are_still_punched() {
        let mut a = behind("sym", 1);
        a.nat.as_mut().unwrap().allocation = Some(PortAllocation::FixedDelta(2));
        assert!(tries(&plan(&a, &behind("port", 2))).contains(&Strategy::UdpPunch));
    }

    #[test]
    fn a_punch_either_side_cannot_do_is_skipped_with_who_cannot() {
        let (a, mut b) = (behind("port", 1), behind("port", 2));
        b.punch.udp = false;
        let p = plan(&a, &b);
        assert!(p.contains(&Planned::Skip(Strategy::UdpPunch, "the peer does not punch UDP")), "{p:?}");
        assert!(tries(&p).contains(&Strategy::TcpSimultaneousOpen));
        let p = plan(&b, &a);
        assert!(p.contains(&Planned::Skip(Strategy::UdpPunch, "this node does not punch UDP")), "{p:?}");
    }

    #[test]
    fn a_port_mapped_by_the_router_is_dialled_even_behind_symmetric_nats() {
        let (a, mut b) = (behind("sym", 1), behind("sym", 2));
        assert!(!tries(&plan(&a, &b)).contains(&Strategy::PublicDirect));
        b.mapped = Some(SocketAddr::from(([198, 51, 100, 2], 7000)));
        assert!(tries(&plan(&a, &b)).contains(&Strategy::PublicDirect), "A dials B's mapping");
        assert!(tries(&plan(&b, &a)).contains(&Strategy::Reverse), "B asks A to dial its mapping");
    }

    #[test]
    fn open_hosts_are_dialled_or_asked_to_dial() {
        let mut open = behind("full", 1);
        open.nat.as_mut().unwrap().nat_type = NatType::Open;
        let natted = behind("port", 2);
        assert!(tries(&plan(&natted, &open)).contains(&Strategy::PublicDirect));
        assert!(tries(&plan(&open, &natted)).contains(&Strategy::Reverse));
        assert!(!tries(&plan(&natted, &natted.clone())).contains(&Strategy::PublicDirect));
    }

    #[test]
    fn every_skip_says_why_and_unknowns_still_reach_the_relay() {
        let unknown = EndpointInfo {
            addrs: vec![SocketAddr::from(([10, 0, 0, 5], 7000))],
            nat: None,
            relay: true,
            punch: Punching::ALL,
            mapped: None,
        };
        let p = plan(&unknown, &unknown);
        assert_eq!(tries(&p), vec![Strategy::LanDirect, Strategy::Relay]);
        assert!(p.iter().all(|x| match x {
            Planned::Skip(_, why) => !why.is_empty(),
            Planned::Try(_) => true,
        }));
        let no_relay = EndpointInfo { relay: false, ..unknown.clone() };
        assert!(!tries(&plan(&no_relay, &unknown)).contains(&Strategy::Relay));
    }
}
