//! Helpers shared by the simulator scenarios.
#![allow(dead_code)]

use node_core::sim::{NodeIdx, Sim, SimConfig};
use node_core::{Config, Event, PeerId};
use std::collections::{BTreeMap, BTreeSet};

/// The seed for a scenario: `SEED` from the environment (printed, so a failure can be replayed),
/// or the scenario's fixed default.
pub fn seed(default: u64) -> u64 {
    let seed = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    println!("SEED={seed}");
    seed
}

pub fn lan(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig { seed, ..SimConfig::default() });
    for i in 0..n {
        sim.add_node(Config { name: format!("n{i}"), ..Config::default() }, 0);
    }
    sim
}

/// `n` nodes on one LAN, each keeping at most `max_peers` links: past that size the overlay
/// decides the links, so most pairs are not linked.
pub fn overlay_lan(n: usize, max_peers: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig { seed, ..SimConfig::default() });
    for i in 0..n {
        sim.add_node(Config { name: format!("n{i}"), max_peers, ..Config::default() }, 0);
    }
    sim
}

/// The established-link graph among live nodes.
pub fn graph(sim: &Sim) -> BTreeMap<PeerId, BTreeSet<PeerId>> {
    sim.nodes()
        .iter()
        .filter(|n| n.alive)
        .map(|n| (n.node.peer_id(), n.node.peers().into_iter().map(|p| p.peer).collect()))
        .collect()
}

/// Whether the live nodes form one connected component over established links.
pub fn connected(sim: &Sim) -> bool {
    let g = graph(sim);
    let Some(start) = g.keys().next().copied() else { return true };
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(p) = stack.pop() {
        for q in g.get(&p).into_iter().flatten() {
            if g.contains_key(q) && seen.insert(*q) {
                stack.push(*q);
            }
        }
    }
    seen.len() == g.len()
}

pub fn chats_received(sim: &Sim, idx: NodeIdx, text: &str) -> usize {
    sim.node(idx).events.iter().filter(|(_, e)| matches!(e, Event::Chat { text: t, .. } if t == text)).count()
}
