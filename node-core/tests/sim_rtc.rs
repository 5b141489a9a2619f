//! Simulator scenarios for browser nodes: WebRTC links negotiated in sealed envelopes, carried by
//! a signaling server or routed through the mesh.

mod common;

use common::{chats_received, connected, seed};
use core::time::Duration;
use node_core::sim::{NodeIdx, Sim, SimConfig};
use node_core::{Command, Config, LinkKind, PeerId};

fn native(sim: &mut Sim, name: &str) -> NodeIdx {
    sim.add_node(Config { name: name.into(), webrtc: true, ..Config::default() }, 0)
}

fn browser(sim: &mut Sim, name: &str) -> NodeIdx {
    sim.add_browser(Config { name: name.into(), max_peers: 16, ..Config::default() })
}

fn link_kind(sim: &Sim, a: NodeIdx, b: NodeIdx) -> Option<LinkKind> {
    let peer: PeerId = sim.node(b).node.peer_id();
    sim.node(a).node.peers().into_iter().find(|p| p.peer == peer).and_then(|p| p.kind)
}

#[test]
fn a_page_served_by_a_native_node_links_to_it_to_a_node_only_it_knows_and_to_another_page() {
    let mut sim = Sim::new(SimConfig { seed: seed(31), ..SimConfig::default() });
    let n1 = native(&mut sim, "n1");
    let n2 = native(&mut sim, "n2");
    let b1 = browser(&mut sim, "b1");
    let b2 = browser(&mut sim, "b2");
    // n1 serves both pages and their `/v1/signal`; n2 is only on n1's LAN.
    sim.signal_group(&[n1, b1, b2]);
    let all = [n1, n2, b1, b2];
    let full = sim.run_while_not(Duration::from_secs(20), Duration::from_millis(100), |s| {
        all.iter().all(|&i| s.node(i).node.peers().len() == 3)
    });
    assert!(full, "four nodes, full mesh: {:?}", all.map(|i| sim.node(i).node.peers().len()));
    assert_eq!(link_kind(&sim, n1, n2), Some(LinkKind::Tcp), "native pairs stay on TCP");
    for (a, b) in [(b1, n1), (b1, n2), (b1, b2), (b2, n1), (b2, n2)] {
        assert_eq!(link_kind(&sim, a, b), Some(LinkKind::WebRtc), "{a}-{b}");
        assert_eq!(link_kind(&sim, b, a), Some(LinkKind::WebRtc), "{b}-{a}");
    }
    // n2 was never in a signaling group: its envelopes went through n1 over the mesh.
    sim.run_for(Duration::from_secs(2));
    sim.command(b1, Command::Chat { text: "from the page".into() }).unwrap();
    sim.run_for(Duration::from_secs(2));
    for i in [n1, n2, b2] {
        assert_eq!(chats_received(&sim, i, "from the page"), 1, "node {i}");
    }
    assert!(connected(&sim));
}

#[test]
fn twelve_pages_on_one_server_make_one_link_per_pair() {
    let mut sim = Sim::new(SimConfig { seed: seed(32), ..SimConfig::default() });
    let nat = native(&mut sim, "server-side");
    let pages: Vec<NodeIdx> = (0..12).map(|i| browser(&mut sim, &format!("b{i}"))).collect();
    let mut group = vec![nat];
    group.extend(&pages);
    sim.signal_group(&group);
    let full = sim.run_while_not(Duration::from_secs(30), Duration::from_millis(200), |s| {
        group.iter().all(|&i| s.node(i).node.peers().len() == 12)
    });
    assert!(full, "{:?}", group.iter().map(|&i| sim.node(i).node.peers().len()).collect::<Vec<_>>());
    // Glare (both ends offering) may make two attempts, but only one link per pair survives.
    sim.run_for(Duration::from_secs(10));
    for &i in &group {
        let peers = sim.node(i).node.peers();
        let mut ids: Vec<PeerId> = peers.iter().map(|p| p.peer).collect();
        ids.dedup();
        assert_eq!(ids.len(), 12, "node {i} has one link per peer");
    }
}

#[test]
fn a_closed_page_is_dropped_and_the_others_keep_their_links() {
    let mut sim = Sim::new(SimConfig { seed: seed(33), ..SimConfig::default() });
    let n1 = native(&mut sim, "n1");
    let b1 = browser(&mut sim, "b1");
    let b2 = browser(&mut sim, "b2");
    sim.signal_group(&[n1, b1, b2]);
    assert!(sim.run_while_not(Duration::from_secs(20), Duration::from_millis(100), |s| {
        [n1, b1, b2].iter().all(|&i| s.node(i).node.peers().len() == 2)
    }));
    sim.kill(b2);
    sim.run_for(Duration::from_secs(50));
    assert_eq!(sim.node(b1).node.peers().len(), 1);
    assert_eq!(sim.node(n1).node.peers().len(), 1);
    assert_eq!(link_kind(&sim, b1, n1), Some(LinkKind::WebRtc));
}
