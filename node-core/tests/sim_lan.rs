//! Simulator scenarios for the LAN mesh: discovery, linking, broadcast, failure detection,
//! partitions and determinism.

mod common;

use common::{chats_received, connected, lan, seed};
use core::time::Duration;
use node_core::{Command, Event};

#[test]
fn fifty_nodes_discover_each_other_link_and_broadcast_exactly_once() {
    let mut sim = lan(50, seed(11));
    let all_known = sim.run_while_not(Duration::from_secs(30), Duration::from_millis(500), |s| {
        s.nodes().iter().all(|n| n.node.known_peers().len() == 49)
    });
    assert!(all_known, "every node discovers the 49 others");
    let linked = sim.run_while_not(Duration::from_secs(30), Duration::from_millis(500), |s| {
        s.nodes().iter().all(|n| !n.node.peers().is_empty()) && connected(s)
    });
    assert!(linked, "every node links and the mesh is connected");
    for n in sim.nodes() {
        assert!(n.node.peers().len() <= 32, "max peers holds");
    }
    sim.run_for(Duration::from_secs(5));
    sim.command(7, Command::Chat { text: "hello mesh".into() }).unwrap();
    sim.run_for(Duration::from_secs(5));
    for i in 0..50 {
        let expected = usize::from(i != 7);
        assert_eq!(chats_received(&sim, i, "hello mesh"), expected, "node {i} got the chat exactly once");
    }
}

#[test]
fn a_killed_node_is_detected_and_removed_while_the_rest_stay_connected() {
    let mut sim = lan(12, seed(12));
    assert!(sim.run_while_not(Duration::from_secs(30), Duration::from_millis(500), |s| {
        s.nodes().iter().all(|n| n.node.peers().len() == 11)
    }));
    let victim = sim.node(5).node.peer_id();
    sim.kill(5);
    // Liveness: 45 s of silence, checked every second.
    sim.run_for(Duration::from_secs(50));
    for (i, n) in sim.nodes().iter().enumerate().filter(|(i, _)| *i != 5) {
        assert!(n.node.peers().iter().all(|p| p.peer != victim), "node {i} dropped the dead link");
        assert!(
            n.events.iter().any(|(_, e)| matches!(e, Event::PeerDisconnected { peer, .. } if *peer == victim)),
            "node {i} reported the loss"
        );
        assert_eq!(n.node.peers().len(), 10, "node {i} keeps its other links");
    }
    assert!(connected(&sim));
    // Redials fail with backoff; the dead peer is then forgotten.
    sim.run_for(Duration::from_secs(180));
    for n in sim.nodes().iter().filter(|n| n.alive) {
        assert!(!n.node.known_peers().contains(&victim), "the dead peer is forgotten");
    }
    sim.command(0, Command::Chat { text: "still here".into() }).unwrap();
    sim.run_for(Duration::from_secs(2));
    for i in (1..12).filter(|i| *i != 5) {
        assert_eq!(chats_received(&sim, i, "still here"), 1);
    }
}

#[test]
fn a_partition_heals_and_broadcast_reaches_everyone_again() {
    let mut sim = lan(10, seed(13));
    assert!(sim.run_while_not(Duration::from_secs(30), Duration::from_millis(500), |s| {
        s.nodes().iter().all(|n| n.node.peers().len() == 9)
    }));
    sim.partition(|i| u32::from(i >= 5));
    sim.run_for(Duration::from_secs(60));
    for n in sim.nodes() {
        assert_eq!(n.node.peers().len(), 4, "only the own side stays linked");
    }
    sim.heal();
    let healed = sim.run_while_not(Duration::from_secs(60), Duration::from_secs(1), |s| {
        s.nodes().iter().all(|n| n.node.peers().len() == 9)
    });
    assert!(healed, "discovery relinks both sides");
    sim.command(9, Command::Chat { text: "healed".into() }).unwrap();
    sim.run_for(Duration::from_secs(2));
    for i in 0..9 {
        assert_eq!(chats_received(&sim, i, "healed"), 1);
    }
}

#[test]
fn direct_messages_reach_only_their_target_even_without_a_link() {
    let (mut sim, [a, _b, _bridge, c]) = bridged_segments(seed(14));
    let c_id = sim.node(c).node.peer_id();
    sim.run_for(Duration::from_secs(3));
    assert!(sim.node(a).node.peers().iter().all(|p| p.peer != c_id), "a has no link to c");
    sim.command(a, Command::Direct { to: c_id, text: "psst".into() }).unwrap();
    sim.run_for(Duration::from_secs(2));
    for (i, n) in sim.nodes().iter().enumerate() {
        let got = n.events.iter().filter(|(_, e)| matches!(e, Event::Direct { text, .. } if text == "psst")).count();
        assert_eq!(got, usize::from(i == c), "node {i}");
    }
}

#[test]
fn simultaneous_dials_leave_exactly_one_link() {
    let mut sim = node_core::sim::Sim::new(node_core::sim::SimConfig { seed: seed(15), ..Default::default() });
    let cfg = |name: &str| node_core::Config { name: name.into(), lan_discovery: false, ..Default::default() };
    let a = sim.add_node(cfg("a"), 0);
    let b = sim.add_node(cfg("b"), 0);
    let (a_addr, b_addr) = (sim.addr_of(a), sim.addr_of(b));
    sim.command(a, Command::Connect { addr: b_addr, expect: None }).unwrap();
    sim.command(b, Command::Connect { addr: a_addr, expect: None }).unwrap();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.node(a).node.peers().len(), 1);
    assert_eq!(sim.node(b).node.peers().len(), 1);
    assert_eq!(
        sim.node(a).node.peers()[0].direction.map(|d| d == node_core::Direction::Outbound),
        sim.node(b).node.peers()[0].direction.map(|d| d == node_core::Direction::Inbound),
        "both ends agree on which link survived"
    );
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.node(a).node.peers().len(), 1, "no flapping");
    let connects = sim.node(a).events.iter().filter(|(_, e)| matches!(e, Event::PeerConnected { .. })).count();
    assert!(connects <= 2, "settles quickly: {connects} connects");
}

#[test]
fn the_same_seed_gives_the_same_event_log() {
    let run = |seed: u64| {
        let mut sim = lan(20, seed);
        sim.run_for(Duration::from_secs(10));
        sim.command(3, Command::Chat { text: "determinism".into() }).unwrap();
        sim.kill(4);
        sim.run_for(Duration::from_secs(60));
        sim.log_hash()
    };
    let s = seed(16);
    assert_eq!(run(s), run(s));
    assert_ne!(run(s), run(s + 1), "a different seed changes the run");
}

#[test]
fn the_mesh_map_shows_own_links_and_what_neighbours_report() {
    let (mut sim, [a, b, bridge, c]) = bridged_segments(seed(16));
    let c_id = sim.node(c).node.peer_id();
    let id = |i| sim.node(i).node.peer_id();
    let (a_id, b_id, bridge_id) = (id(a), id(b), id(bridge));
    // Neighbours share their lists on link-up and in the periodic exchange.
    let sees_c = sim.run_while_not(Duration::from_secs(300), Duration::from_secs(1), |s| {
        s.node(a).node.mesh_map().links.iter().any(|(x, y, _)| [*x, *y].contains(&c_id))
    });
    assert!(sees_c, "a learns bridge's link to c from bridge's peer exchange");
    let map = sim.node(a).node.mesh_map();
    assert_eq!(map.nodes[0], (a_id, "a".to_owned()), "the map starts with the node itself");
    assert!(map.nodes.contains(&(c_id, "c".to_owned())));
    let kind = |x: node_core::PeerId, y: node_core::PeerId| {
        map.links.iter().find(|(p, q, _)| (*p, *q) == (x.min(y), x.max(y))).map(|(_, _, k)| *k)
    };
    assert_eq!(kind(a_id, b_id), Some(Some(node_core::LinkKind::Tcp)), "own links carry their kind");
    assert_eq!(kind(a_id, bridge_id), Some(Some(node_core::LinkKind::Tcp)));
    assert_eq!(kind(bridge_id, c_id), Some(None), "reported links are marked as hearsay");
    assert_eq!(kind(a_id, c_id), None, "a has no link to c");
    let unique: std::collections::BTreeSet<_> = map.links.iter().map(|(p, q, _)| (*p, *q)).collect();
    assert_eq!(unique.len(), map.links.len(), "each link once");
}

/// Two LAN segments joined only through `bridge`: a, b and bridge on segment 0, and c (one peer
/// at most, no discovery) on segment 1, which bridge has just been told to dial.
fn bridged_segments(seed: u64) -> (node_core::sim::Sim, [node_core::sim::NodeIdx; 4]) {
    let mut sim = node_core::sim::Sim::new(node_core::sim::SimConfig { seed, ..Default::default() });
    let cfg = |name: &str, max_peers| node_core::Config { name: name.into(), max_peers, ..Default::default() };
    let a = sim.add_node(cfg("a", 32), 0);
    let b = sim.add_node(cfg("b", 32), 0);
    let bridge = sim.add_node(cfg("bridge", 32), 0);
    let c = sim.add_node(node_core::Config { lan_discovery: false, ..cfg("c", 1) }, 1);
    sim.run_for(Duration::from_secs(3));
    let (c_addr, c_id) = (sim.addr_of(c), sim.node(c).node.peer_id());
    sim.command(bridge, Command::Connect { addr: c_addr, expect: Some(c_id) }).unwrap();
    (sim, [a, b, bridge, c])
}
