//! The probe against a model NAT and a model RFC 5780 responder, in virtual time.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

const PUBLIC: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(203, 0, 113, 7));
const LOCAL: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 1, 2));
const SERVER: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(198, 51, 100, 10));
const SERVER2: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(198, 51, 100, 11));

#[derive(Clone, Copy)]
enum Alloc {
    Preserve,
    Delta(u16),
    Scatter,
}

/// A NAT in front of the probe's host, and the STUN responder behind it.
struct Model {
    mapping: Mapping,
    filtering: Filtering,
    alloc: Alloc,
    /// No NAT at all: public address = local address.
    open: bool,
    /// Drop every datagram (UDP blocked).
    blocked: bool,
    /// The responder ignores CHANGE-REQUEST (answers from where it was asked).
    ignores_change: bool,
    target: StunTarget,
    /// (local port, destination as the mapping keys it) → public port.
    table: BTreeMap<(u16, Option<IpAddr>, Option<u16>), u16>,
    /// (public port, remote) pairs sent to.
    sent_to: BTreeSet<(u16, SocketAddr)>,
    next_port: u16,
    scatter: u64,
}

impl Model {
    fn new(mapping: Mapping, filtering: Filtering, alloc: Alloc, alt_ip: bool) -> Model {
        Model {
            mapping,
            filtering,
            alloc,
            open: false,
            blocked: false,
            ignores_change: false,
            target: StunTarget {
                primary: SocketAddr::new(SERVER, 3478),
                alt_port: Some(3479),
                alt_ip: alt_ip.then_some(SERVER2),
            },
            table: BTreeMap::new(),
            sent_to: BTreeSet::new(),
            next_port: 40_000,
            scatter: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn public_port(&mut self, local: u16, to: SocketAddr) -> u16 {
        if self.open {
            return local;
        }
        let key = match self.mapping {
            Mapping::EndpointIndependent => (local, None, None),
            Mapping::AddressDependent => (local, Some(to.ip()), None),
            Mapping::AddressAndPortDependent => (local, Some(to.ip()), Some(to.port())),
        };
        if let Some(p) = self.table.get(&key) {
            return *p;
        }
        let port = match self.alloc {
            Alloc::Preserve if !self.table.values().any(|p| *p == local) => local,
            Alloc::Preserve | Alloc::Delta(_) => {
                let step = if let Alloc::Delta(d) = self.alloc { d } else { 1 };
                self.next_port += step;
                self.next_port
            }
            Alloc::Scatter => {
                self.scatter = self.scatter.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                1024 + (self.scatter >> 33) as u16 % 60_000
            }
        };
        self.table.insert(key, port);
        port
    }

    fn admits(&self, public_port: u16, from: SocketAddr) -> bool {
        if self.open {
            return true;
        }
        match self.filtering {
            Filtering::EndpointIndependent => self.table.values().any(|p| *p == public_port),
            Filtering::AddressDependent => self.sent_to.iter().any(|(p, r)| *p == public_port && r.ip() == from.ip()),
            Filtering::AddressAndPortDependent => self.sent_to.contains(&(public_port, from)),
        }
    }

    /// What reaches the probe for `req`, if anything, and from where.
    fn answer(&mut self, req: BindingRequest, ports: &[u16; SOCKETS]) -> Option<(SocketAddr, BindingResponse)> {
        if self.blocked {
            return None;
        }
        let local = ports[req.socket];
        let public_port = self.public_port(local, req.to);
        self.sent_to.insert((public_port, req.to));
        let t = self.target;
        if req.change.ip && t.alt_ip.is_none() {
            return Some((req.to, BindingResponse::Error { code: 420 }));
        }
        let change = if self.ignores_change { Change::default() } else { req.change };
        let from_ip = if change.ip { t.alt_ip.unwrap() } else { req.to.ip() };
        let other_port = if req.to.port() == 3478 { 3479 } else { 3478 };
        let from = SocketAddr::new(from_ip, if change.port { other_port } else { req.to.port() });
        let public = SocketAddr::new(if self.open { LOCAL } else { PUBLIC }, public_port);
        self.admits(public_port, from).then_some((from, BindingResponse::Success { mapped: public }))
    }
}

/// Runs a probe to its end against `model`; returns the report and the virtual time it took.
fn run(model: &mut Model) -> (NatReport, Duration) {
    let ports: [u16; SOCKETS] = core::array::from_fn(|i| 50_000 + 7 * i as u16);
    let t0 = Instant::from_unix_ms(1_000_000);
    let mut now = t0;
    let mut probe = NatProbe::new(model.target, vec![LOCAL], ports, ProbeTiming::default(), 7, now);
    for _ in 0..10_000 {
        while let Some(req) = probe.poll_transmit() {
            if let Some((from, resp)) = model.answer(req, &ports) {
                probe.handle_response(now + Duration::from_millis(1), req.socket, req.tid, from, resp);
            }
        }
        if let Some(report) = probe.result() {
            return (report.expect("the model answers the plain binding"), now - t0);
        }
        now = probe.poll_timeout().expect("an unfinished probe has a timer");
        probe.handle_timeout(now);
    }
    panic!("the probe never finished");
}

fn nat_type(mapping: Mapping, filtering: Filtering, alt_ip: bool) -> NatReport {
    run(&mut Model::new(mapping, filtering, Alloc::Preserve, alt_ip)).0
}

#[test]
fn the_four_lab_types_are_told_apart_with_a_second_server_address() {
    use Filtering as F;
    use Mapping as M;
    let cases = [
        (M::EndpointIndependent, F::EndpointIndependent, NatType::FullCone),
        (M::EndpointIndependent, F::AddressDependent, NatType::AddressRestricted),
        (M::EndpointIndependent, F::AddressAndPortDependent, NatType::PortRestricted),
        (M::AddressAndPortDependent, F::AddressAndPortDependent, NatType::Symmetric),
        (M::AddressDependent, F::AddressDependent, NatType::Symmetric),
    ];
    for (mapping, filtering, want) in cases {
        let r = nat_type(mapping, filtering, true);
        assert_eq!(r.nat_type, want, "{mapping:?} / {filtering:?}: {r:?}");
        assert_eq!((r.mapping, r.filtering), (Some(mapping), Some(filtering)), "{r:?}");
        assert!(r.exact);
        assert_eq!(r.public.map(|p| p.ip()), Some(PUBLIC));
    }
}

#[test]
fn with_one_server_address_the_stricter_filter_is_assumed() {
    let r = nat_type(Mapping::EndpointIndependent, Filtering::EndpointIndependent, false);
    assert_eq!(r.nat_type, NatType::AddressRestricted, "{r:?}");
    assert!(!r.exact);
    let r = nat_type(Mapping::EndpointIndependent, Filtering::AddressAndPortDependent, false);
    assert_eq!(r.nat_type, NatType::PortRestricted, "{r:?}");
    let r = nat_type(Mapping::AddressAndPortDependent, Filtering::AddressAndPortDependent, false);
    assert_eq!(r.nat_type, NatType::Symmetric, "{r:?}");
}

#[test]
fn port_allocation_is_sampled() {
    let alloc =
        |a| run(&mut Model::new(Mapping::AddressAndPortDependent, Filtering::AddressAndPortDependent, a, true)).0;
    assert_eq!(alloc(Alloc::Preserve).allocation, Some(PortAllocation::Preserving));
    assert_eq!(alloc(Alloc::Delta(2)).allocation, Some(PortAllocation::FixedDelta(2)));
    assert_eq!(alloc(Alloc::Scatter).allocation, Some(PortAllocation::Random));
}

#[test]
fn no_nat_and_no_udp_are_recognised() {
    let mut open = Model::new(Mapping::EndpointIndependent, Filtering::EndpointIndependent, Alloc::Preserve, true);
    open.open = true;
    let (r, _) = run(&mut open);
    assert_eq!(r.nat_type, NatType::Open, "{r:?}");
    let mut blocked = Model::new(Mapping::EndpointIndependent, Filtering::EndpointIndependent, Alloc::Preserve, true);
    blocked.blocked = true;
    let (r, took) = run(&mut blocked);
    assert_eq!(r.nat_type, NatType::UdpBlocked);
    assert_eq!(took, ProbeTiming::default().give_up_after, "gives up after one request's patience");
}

#[test]
fn a_restricted_nat_is_classified_within_two_give_ups() {
    let (_, took) =
        run(&mut Model::new(Mapping::EndpointIndependent, Filtering::AddressAndPortDependent, Alloc::Preserve, true));
    // Two unanswered filtering requests in a row, after the first answer's round trip.
    assert!(took <= ProbeTiming::default().give_up_after * 2 + Duration::from_millis(10), "{took:?}");
}

#[test]
fn stray_and_repeated_answers_change_nothing() {
    let mut model = Model::new(Mapping::EndpointIndependent, Filtering::EndpointIndependent, Alloc::Preserve, true);
    let ports: [u16; SOCKETS] = core::array::from_fn(|i| 50_000 + i as u16);
    let now = Instant::from_unix_ms(5);
    let mut probe = NatProbe::new(model.target, vec![LOCAL], ports, ProbeTiming::default(), 1, now);
    let req = probe.poll_transmit().unwrap();
    let bogus = BindingResponse::Success { mapped: SocketAddr::new(PUBLIC, 1) };
    probe.handle_response(now, req.socket, req.tid ^ 1, req.to, bogus);
    probe.handle_response(now, req.socket + 1, req.tid, req.to, bogus);
    assert!(probe.poll_transmit().is_none(), "nothing follows from answers nobody asked for");
    let (from, resp) = model.answer(req, &ports).unwrap();
    probe.handle_response(now, req.socket, req.tid, from, resp);
    let after_first = probe.in_flight.len();
    probe.handle_response(now, req.socket, req.tid, from, resp);
    assert_eq!(probe.in_flight.len(), after_first, "a repeated answer is not a second one");
}

#[test]
fn a_responder_that_ignores_change_requests_does_not_make_a_full_cone() {
    let mut model = Model::new(Mapping::EndpointIndependent, Filtering::AddressAndPortDependent, Alloc::Preserve, true);
    model.ignores_change = true;
    let (r, _) = run(&mut model);
    assert_eq!(r.filtering, None, "unknown, not endpoint-independent: {r:?}");
    assert!(!r.exact);
    assert_eq!(r.nat_type, NatType::PortRestricted, "the cautious guess: {r:?}");
}

#[test]
fn a_responder_refusing_the_plain_binding_is_an_error_not_blocked_udp() {
    let target = StunTarget { primary: SocketAddr::new(SERVER, 3478), alt_port: Some(3479), alt_ip: None };
    let ports: [u16; SOCKETS] = core::array::from_fn(|i| 50_000 + i as u16);
    let now = Instant::from_unix_ms(1_000_000);
    let mut probe = NatProbe::new(target, vec![LOCAL], ports, ProbeTiming::default(), 7, now);
    let req = probe.poll_transmit().expect("the first binding");
    probe.handle_response(now, req.socket, req.tid, target.primary, BindingResponse::Error { code: 400 });
    assert!(matches!(probe.result(), Some(Err(ProbeRefused { code: 400 }))), "{:?}", probe.result());
    assert_eq!(probe.poll_timeout(), None, "nothing more to wait for");
}
