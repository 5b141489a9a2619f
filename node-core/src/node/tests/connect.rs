//! Two nodes that share only a signaling channel link across their NATs.
use super::*;
use crate::interface::PunchProto;
use crate::nat::plan::{Punching, Strategy};
use crate::nat::report::StepResult;
use crate::nat::{Filtering, Mapping, NatReport, NatType, PortAllocation};

/// A node behind a port-restricted NAT that punches TCP only (UDP in the tests that say so).
fn natted(seed: u8, public: &str) -> Node {
    natted_with(seed, public, Punching { udp: false, tcp: true }, Mapping::EndpointIndependent)
}

fn natted_with(seed: u8, public: &str, punch: Punching, mapping: Mapping) -> Node {
    let config = Config {
        tcp_port: Some(4000),
        listen_addrs: vec![addr(&format!("10.0.{seed}.2:4000"))],
        name: format!("n{seed}"),
        relay: true,
        nat_probe: true,
        punch,
        ..Config::default()
    };
    let mut n = Node::new(config, keys(seed), u64::from(seed), t(0));
    let symmetric = mapping != Mapping::EndpointIndependent;
    let report = NatReport {
        nat_type: if symmetric { NatType::Symmetric } else { NatType::PortRestricted },
        public: Some(addr(public)),
        mapping: Some(mapping),
        filtering: Some(Filtering::AddressAndPortDependent),
        allocation: Some(if symmetric { PortAllocation::FixedDelta(2) } else { PortAllocation::Preserving }),
        exact: true,
    };
    n.handle(t(0), Input::NatDetected { report });
    n
}

/// Carries signaling between `a` and `b` until neither sends any; returns every other output.
fn pump(a: &mut Node, b: &mut Node, now: Instant) -> (Vec<Output>, Vec<Output>) {
    let (mut rest_a, mut rest_b) = (Vec::new(), Vec::new());
    loop {
        let (outs_a, outs_b) = (drain(a), drain(b));
        if outs_a.is_empty() && outs_b.is_empty() {
            return (rest_a, rest_b);
        }
        for o in outs_a {
            match o {
                Output::SendSignal { data, .. } => b.handle(now, Input::Signal { data }),
                o => rest_a.push(o),
            }
        }
        for o in outs_b {
            match o {
                Output::SendSignal { data, .. } => a.handle(now, Input::Signal { data }),
                o => rest_b.push(o),
            }
        }
    }
}

fn prepared(outs: &[Output]) -> Option<LinkId> {
    prepared_for(outs, PunchProto::Tcp)
}

fn prepared_for(outs: &[Output], want: PunchProto) -> Option<LinkId> {
    outs.iter().find_map(|o| match o {
        Output::PreparePunch { link, proto, .. } if *proto == want => Some(*link),
        _ => None,
    })
}

fn punch(outs: &[Output]) -> Option<(LinkId, SocketAddr)> {
    outs.iter().find_map(|o| match o {
        Output::Punch { link, remote, .. } => Some((*link, *remote)),
        _ => None,
    })
}

fn report(outs: &[Output]) -> Option<crate::nat::report::ConnectReport> {
    outs.iter().find_map(|o| match o {
        Output::Event(Event::Connectivity { report, .. }) => Some(report.clone()),
        _ => None,
    })
}

/// Two port-restricted nodes online on one server; `a` asks to link to `b`.
fn start(public_b: &str) -> (Node, Node, Vec<Output>, Vec<Output>) {
    introduce(natted(1, "198.51.100.1:40000"), natted(2, public_b))
}

/// `a` and `b` are online on one server; `a` asks to link to `b`.
fn introduce(mut a: Node, mut b: Node) -> (Node, Node, Vec<Output>, Vec<Output>) {
    let (ka, kb) = (keys(1).peer_id(), keys(2).peer_id());
    a.handle(t(1), Input::SignalPeer { peer: kb, online: true });
    b.handle(t(1), Input::SignalPeer { peer: ka, online: true });
    drain(&mut a);
    drain(&mut b);
    a.command(t(2), Command::ConnectPeer { peer: kb }).unwrap();
    let (outs_a, outs_b) = pump(&mut a, &mut b, t(3));
    (a, b, outs_a, outs_b)
}

/// Both ends' punch sockets are bound (local ports 40001 and 40002), in the order the protocol
/// asks for them; returns both punch links and what each end did next.
fn ports_ready(a: &mut Node, b: &mut Node, outs_a: &[Output]) -> (LinkId, LinkId, Vec<Output>, Vec<Output>) {
    let link_a = prepared(outs_a).expect("the initiator prepares a TCP punch after the steps that cannot work");
    a.handle(t(4), Input::PunchPrepared { link: link_a, local_port: 40001, mapped: None });
    let (_, outs_b) = pump(a, b, t(4));
    let link_b = prepared(&outs_b).expect("the responder prepares its punch");
    b.handle(t(5), Input::PunchPrepared { link: link_b, local_port: 40002, mapped: None });
    let (outs_a, outs_b) = pump(a, b, t(5));
    (link_a, link_b, outs_a, outs_b)
}

#[test]
fn two_port_restricted_nodes_punch_tcp_and_both_report_it() {
    let (mut a, mut b, outs_a, _) = start("198.51.100.2:40000");
    let (link_a, link_b, outs_a, outs_b) = ports_ready(&mut a, &mut b, &outs_a);
    assert_eq!(punch(&outs_b), Some((link_b, addr("198.51.100.1:40001"))), "B punches to A's public port");
    assert_eq!(punch(&outs_a), Some((link_a, addr("198.51.100.2:40002"))), "A punches to B's public port");
    // The punched connection comes up and both say Hello.
    let (ka, kb) = (keys(1), keys(2));
    let remote = addr("198.51.100.2:40002");
    a.handle(
        t(6),
        Input::LinkUp {
            link: link_a,
            peer: kb.peer_id(),
            direction: Direction::Outbound,
            remote_addr: remote,
            kind: LinkKind::Tcp,
        },
    );
    a.handle(t(6), Input::Frame { link: link_a, data: hello(&kb, "default") });
    let remote = addr("198.51.100.1:40001");
    b.handle(
        t(6),
        Input::LinkUp {
            link: link_b,
            peer: ka.peer_id(),
            direction: Direction::Outbound,
            remote_addr: remote,
            kind: LinkKind::Tcp,
        },
    );
    b.handle(t(6), Input::Frame { link: link_b, data: hello(&ka, "default") });
    let (ra, rb) = (report(&drain(&mut a)).expect("A reports"), report(&drain(&mut b)).expect("B reports"));
    assert_eq!(ra.linked, Some(Strategy::TcpSimultaneousOpen), "{ra:?}");
    assert_eq!(rb.linked, Some(Strategy::TcpSimultaneousOpen), "{rb:?}");
    let skipped: Vec<Strategy> =
        ra.steps.iter().filter(|s| matches!(s.result, StepResult::Skipped { .. })).map(|s| s.strategy).collect();
    assert_eq!(skipped, [Strategy::LanDirect, Strategy::PublicDirect, Strategy::Reverse, Strategy::UdpPunch]);
}

#[test]
fn a_symmetric_node_punches_udp_to_a_full_cone_with_its_next_port_predicted() {
    let a = natted_with(1, "198.51.100.1:40000", Punching::ALL, Mapping::AddressAndPortDependent);
    let mut b = natted_with(2, "198.51.100.2:40000", Punching::ALL, Mapping::EndpointIndependent);
    // B's filter lets anyone in once it has sent: a full cone.
    let mut full = b.nat.clone().unwrap();
    (full.nat_type, full.filtering) = (NatType::FullCone, Some(Filtering::EndpointIndependent));
    b.handle(t(0), Input::NatDetected { report: full });
    let (mut a, mut b, outs_a, _) = introduce(a, b);
    let link_a = prepared_for(&outs_a, PunchProto::Udp).expect("UDP punching comes before TCP");
    // A's STUN binding from its punch socket showed port 50000; its NAT counts up by 2, so the
    // peer's punch must aim at the port A's own first packet to B will get.
    a.handle(t(4), Input::PunchPrepared { link: link_a, local_port: 41001, mapped: Some(addr("198.51.100.1:50000")) });
    let (_, outs_b) = pump(&mut a, &mut b, t(4));
    let link_b = prepared_for(&outs_b, PunchProto::Udp).expect("the responder prepares its UDP socket");
    b.handle(t(5), Input::PunchPrepared { link: link_b, local_port: 41002, mapped: Some(addr("198.51.100.2:41002")) });
    let (outs_a, outs_b) = pump(&mut a, &mut b, t(5));
    assert_eq!(punch(&outs_b), Some((link_b, addr("198.51.100.1:50002"))), "the predicted port");
    assert_eq!(punch(&outs_a), Some((link_a, addr("198.51.100.2:41002"))), "B's STUN mapping, as is");
    let up = |link, peer: &Keypair| Input::LinkUp {
        link,
        peer: peer.peer_id(),
        direction: Direction::Outbound,
        remote_addr: addr("198.51.100.9:1"),
        kind: LinkKind::Quic,
    };
    a.handle(t(6), up(link_a, &keys(2)));
    a.handle(t(6), Input::Frame { link: link_a, data: hello(&keys(2), "default") });
    b.handle(t(6), up(link_b, &keys(1)));
    b.handle(t(6), Input::Frame { link: link_b, data: hello(&keys(1), "default") });
    let (ra, rb) = (report(&drain(&mut a)).expect("A reports"), report(&drain(&mut b)).expect("B reports"));
    assert_eq!((ra.linked, rb.linked), (Some(Strategy::UdpPunch), Some(Strategy::UdpPunch)), "{ra:?} {rb:?}");
    let d = a.diagnose(&keys(2).peer_id());
    assert_eq!(d.report, Some(ra), "the doctor keeps the report");
    assert_eq!(d.link.and_then(|l| l.kind), Some(LinkKind::Quic));
    assert!(!d.attempt_running);
}

#[test]
fn a_punch_towards_a_private_address_is_refused() {
    // B describes a "public" address on a private network: A must not send packets there.
    let (mut a, mut b, outs_a, _) = start("192.168.7.9:40000");
    let (link_a, _, outs_a, _) = ports_ready(&mut a, &mut b, &outs_a);
    assert_eq!(punch(&outs_a), None, "no punch towards 192.168.7.9");
    // The step times out and the relay is tried instead.
    a.handle_timeout(t(5) + Strategy::TcpSimultaneousOpen.timeout());
    let outs = drain(&mut a);
    assert!(closed(&outs, link_a), "the punch link is closed");
    assert!(outs.iter().any(|o| matches!(o, Output::OpenRelay { .. })), "then the relay: {outs:?}");
}

#[test]
fn a_peer_that_never_answers_ends_in_a_report_not_a_hang() {
    let mut a = natted(1, "198.51.100.1:40000");
    let kb = keys(2).peer_id();
    a.handle(t(1), Input::SignalPeer { peer: kb, online: true });
    a.command(t(2), Command::ConnectPeer { peer: kb }).unwrap();
    drain(&mut a);
    let mut now = t(2);
    let mut ended = None;
    for _ in 0..100 {
        now = a.poll_timeout().unwrap().max(now);
        a.handle_timeout(now);
        if let Some(r) = report(&drain(&mut a)) {
            ended = Some(r);
            break;
        }
    }
    let r = ended.expect("the attempt ends");
    assert_eq!(r.linked, None);
    assert!(r.failure.unwrap().contains("did not answer"));
}

#[test]
fn a_direct_link_replaces_a_relayed_one_at_both_ends_alike() {
    let mut n = node(1);
    let peer = keys(2);
    let relayed = n.allocate_link_id();
    let via = addr("198.51.100.10:8080");
    let up = |link, kind| Input::LinkUp {
        link,
        peer: peer.peer_id(),
        direction: Direction::Inbound,
        remote_addr: via,
        kind,
    };
    n.handle(t(1), up(relayed, LinkKind::Relay));
    n.handle(t(1), Input::Frame { link: relayed, data: hello(&peer, "default") });
    drain(&mut n);
    // Then a punched TCP link comes up the same way round: the better kind wins, whichever came
    // first, so both ends drop the same link.
    let direct = n.allocate_link_id();
    n.handle(t(2), up(direct, LinkKind::Tcp));
    n.handle(t(2), Input::Frame { link: direct, data: hello(&peer, "default") });
    let outs = drain(&mut n);
    assert!(closed(&outs, relayed), "the relay gives way: {outs:?}");
    assert!(!closed(&outs, direct));
    assert_eq!(n.peers().first().and_then(|p| p.kind), Some(LinkKind::Tcp));
}

#[test]
fn with_a_broker_up_the_hello_goes_to_a_peer_never_seen_and_a_second_copy_changes_nothing() {
    let (mut a, mut b) = (natted(1, "198.51.100.1:40000"), natted(2, "198.51.100.2:40000"));
    let kb = keys(2).peer_id();
    a.command(t(2), Command::ConnectPeer { peer: kb }).unwrap();
    let sent = |outs: &[Output]| {
        outs.iter()
            .filter_map(|o| match o {
                Output::SendSignal { to, data } if *to == kb => Some(data.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(sent(&drain(&mut a)).is_empty(), "no channel reaches B yet");
    a.handle(t(3), Input::SignalBroker { up: true });
    let hello = sent(&drain(&mut a));
    assert_eq!(hello.len(), 1, "the Hello goes out through the broker");
    // The same envelope over the server and the broker: B answers once.
    b.handle(t(3), Input::SignalBroker { up: true });
    b.handle(t(3), Input::Signal { data: hello[0].clone() });
    let first = drain(&mut b);
    b.handle(t(3), Input::Signal { data: hello[0].clone() });
    let second = drain(&mut b);
    assert!(first.iter().any(|o| matches!(o, Output::SendSignal { .. })), "B welcomes A: {first:?}");
    assert!(second.is_empty(), "the copy is dropped: {second:?}");
    assert_eq!(b.stats().duplicate_messages, 1);
}

#[test]
fn a_browser_connects_to_a_peer_id_by_offering_webrtc_through_the_broker() {
    let config = Config { webrtc: true, tcp_port: None, ..Config::default() };
    let mut page = Node::new(config, keys(1), 1, t(0));
    let kb = keys(2).peer_id();
    assert!(page.command(t(1), Command::ConnectPeer { peer: kb }).is_err(), "no channel reaches B yet");
    page.handle(t(1), Input::SignalBroker { up: true });
    drain(&mut page);
    page.command(t(2), Command::ConnectPeer { peer: kb }).unwrap();
    let outs = drain(&mut page);
    assert!(outs.iter().any(|o| matches!(o, Output::OpenRtc { peer, offer: None, .. } if *peer == kb)), "{outs:?}");
    page.command(t(3), Command::ConnectPeer { peer: kb }).unwrap();
    assert!(!drain(&mut page).iter().any(|o| matches!(o, Output::OpenRtc { .. })), "one attempt at a time");
}

#[test]
fn when_the_udp_punch_fails_the_tcp_punch_still_gets_its_own_addresses() {
    let a = natted_with(1, "198.51.100.1:40000", Punching::ALL, Mapping::EndpointIndependent);
    let b = natted_with(2, "198.51.100.2:40000", Punching::ALL, Mapping::EndpointIndependent);
    let (mut a, mut b, outs_a, _) = introduce(a, b);
    let udp_a = prepared_for(&outs_a, PunchProto::Udp).expect("UDP first");
    a.handle(t(4), Input::PunchPrepared { link: udp_a, local_port: 41001, mapped: Some(addr("198.51.100.1:41001")) });
    let (_, outs_b) = pump(&mut a, &mut b, t(4));
    let udp_b = prepared_for(&outs_b, PunchProto::Udp).expect("the responder's UDP socket");
    b.handle(t(5), Input::PunchPrepared { link: udp_b, local_port: 41002, mapped: Some(addr("198.51.100.2:41002")) });
    let (outs_a, _) = pump(&mut a, &mut b, t(5));
    assert!(punch(&outs_a).is_some(), "A punches UDP");
    // The UDP punch fails: A moves on to TCP, and this time both ends punch again.
    a.handle(t(6), Input::LinkFailed { link: udp_a, reason: "nothing came back".into() });
    let (outs_a, _) = pump(&mut a, &mut b, t(6));
    let tcp_a = prepared_for(&outs_a, PunchProto::Tcp).expect("then TCP");
    a.handle(t(7), Input::PunchPrepared { link: tcp_a, local_port: 42001, mapped: None });
    let (_, outs_b) = pump(&mut a, &mut b, t(7));
    let tcp_b = prepared_for(&outs_b, PunchProto::Tcp).expect("the responder takes the TCP step's punch");
    b.handle(t(8), Input::PunchPrepared { link: tcp_b, local_port: 42002, mapped: None });
    let (outs_a, outs_b) = pump(&mut a, &mut b, t(8));
    assert_eq!(punch(&outs_b), Some((tcp_b, addr("198.51.100.1:42001"))));
    assert_eq!(punch(&outs_a), Some((tcp_a, addr("198.51.100.2:42002"))));
}

/// The `Hello`s `outs` hands to a signaling channel.
fn signals(outs: &[Output]) -> Vec<Vec<u8>> {
    outs.iter()
        .filter_map(|o| match o {
            Output::SendSignal { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_hello_waits_for_a_route_and_a_link_still_dialing_is_none() {
    let (mut a, mut b) = (natted(1, "198.51.100.1:40000"), natted(2, "198.51.100.2:40000"));
    let (ka, kb) = (keys(1).peer_id(), keys(2).peer_id());
    // A dials somewhere (say, an address a bootstrap listing gave): a link, but no route yet.
    a.command(t(1), Command::Connect { addr: addr("10.0.2.2:4000"), expect: Some(kb) }).unwrap();
    a.command(t(1), Command::ConnectPeer { peer: kb }).unwrap();
    assert!(signals(&drain(&mut a)).is_empty(), "no channel reaches B and no linked peer could carry it");
    // B comes online on the server: the Hello goes, and B answers it.
    b.handle(t(2), Input::SignalPeer { peer: ka, online: true });
    drain(&mut b);
    a.handle(t(2), Input::SignalPeer { peer: kb, online: true });
    let outs = drain(&mut a);
    assert_eq!(signals(&outs).len(), 1, "the Hello went on the channel: {outs:?}");
    for data in signals(&outs) {
        b.handle(t(2), Input::Signal { data });
    }
    let welcome = signals(&drain(&mut b));
    assert_eq!(welcome.len(), 1, "B welcomes A");
}

#[test]
fn a_hello_that_went_only_into_the_mesh_goes_again_when_a_channel_reaches_the_peer() {
    let (mut a, mut b) = (natted(1, "198.51.100.1:40000"), natted(2, "198.51.100.2:40000"));
    let (ka, kb, kc) = (keys(1).peer_id(), keys(2).peer_id(), keys(3));
    link_up(&mut a, &kc, t(1));
    drain(&mut a);
    a.command(t(1), Command::ConnectPeer { peer: kb }).unwrap();
    let outs = drain(&mut a);
    assert!(signals(&outs).is_empty(), "no channel yet");
    let flooded = outs.iter().any(|o| matches!(o, Output::SendFrame { .. }));
    assert!(flooded, "the Hello went into the mesh: {outs:?}");
    b.handle(t(2), Input::SignalPeer { peer: ka, online: true });
    drain(&mut b);
    a.handle(t(2), Input::SignalPeer { peer: kb, online: true });
    let hellos = signals(&drain(&mut a));
    assert_eq!(hellos.len(), 1, "the Hello goes again, on the channel");
    b.handle(t(2), Input::Signal { data: hellos[0].clone() });
    assert_eq!(signals(&drain(&mut b)).len(), 1, "B welcomes A");
    // Sent on a channel once, it is not sent again however often the channel comes and goes.
    a.handle(t(3), Input::SignalPeer { peer: kb, online: false });
    a.handle(t(3), Input::SignalPeer { peer: kb, online: true });
    assert!(signals(&drain(&mut a)).is_empty());
}
