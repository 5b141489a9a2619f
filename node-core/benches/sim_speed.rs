//! Bench (c): the simulator's speed — 1,000 nodes for 60 simulated seconds — printed as wall
//! time and as a ratio against real time (simulated node-seconds per wall second).
//!
//!     cargo bench -p node-core --bench sim_speed
//!     SIM_NODES=200 SIM_SECONDS=30 SEED=3 cargo bench -p node-core --bench sim_speed
//!
//! Topology: LAN segments of 50 nodes (each a broadcast domain, as on real networks), and each
//! segment's first node dials the next segment's first node, so the whole thing is one mesh.

use core::time::Duration;
use node_core::sim::{Sim, SimConfig};
use node_core::{Command, Config, Event};
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// The bench is a driver, not the core: it may read the host clock to time the simulator.
#[allow(clippy::disallowed_methods)]
fn main() {
    let nodes = env("SIM_NODES", 1000) as usize;
    let seconds = env("SIM_SECONDS", 60);
    let seed = env("SEED", 1);
    let segment = 50;
    let mut sim = Sim::new(SimConfig { seed, ..SimConfig::default() });
    for i in 0..nodes {
        sim.add_node(Config { name: format!("n{i}"), ..Config::default() }, (i / segment) as u32);
    }
    let heads: Vec<usize> = (0..nodes).step_by(segment).collect();
    for w in heads.windows(2) {
        let (addr, id) = (sim.addr_of(w[1]), sim.node(w[1]).node.peer_id());
        sim.command(w[0], Command::Connect { addr, expect: Some(id) }).unwrap();
    }
    let start = Instant::now();
    sim.run_for(Duration::from_secs(seconds.saturating_sub(5)));
    sim.command(0, Command::Chat { text: "bench".into() }).unwrap();
    sim.run_for(Duration::from_secs(5.min(seconds)));
    let wall = start.elapsed();
    let reached = sim
        .nodes()
        .iter()
        .filter(|n| n.events.iter().any(|(_, e)| matches!(e, Event::Chat { text, .. } if text == "bench")))
        .count();
    let links: usize = sim.nodes().iter().map(|n| n.node.peers().len()).sum::<usize>() / 2;
    println!("SEED={seed} nodes={nodes} simulated={seconds}s");
    println!("wall time: {:.2} s", wall.as_secs_f64());
    println!(
        "frames delivered: {}, datagrams delivered: {}, links: {links}, chat reached {reached}/{}",
        sim.frames_delivered,
        sim.datagrams_delivered,
        nodes - 1
    );
    println!("ratio simulated/wall time: {:.1}x", seconds as f64 / wall.as_secs_f64());
    println!("node-seconds per wall second: {:.0}", (nodes as u64 * seconds) as f64 / wall.as_secs_f64());
}
