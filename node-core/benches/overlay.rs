//! Bench (f): the overlay at 1,000 and 10,000 simulated nodes — PlumTree's relative message
//! redundancy (RMR) and last-delivery hops against plain flooding over the same active views in
//! the same run, Kademlia lookup hops, and the simulator's speed.
//!
//!     cargo bench -p node-core --features sim --bench overlay
//!     OVERLAY_NODES=1000,10000 SEED=1 cargo bench -p node-core --features sim --bench overlay
//!
//! Each size: ten waves of joins five seconds apart, a simulated minute to settle, five
//! broadcasts to shape the tree, then twenty PlumTree broadcasts and twenty floods from random
//! nodes (one a second) — each sender a one-off, so every message travels the shared tree; then
//! a conversation: five senders taking turns, ten messages each, against the same five
//! flooding (the first round travels the shared tree, later rounds each sender's own, which
//! settles over the first few; the last four rounds are compared); then 200
//! lookups of random live peers. Simulator speed is timed on its
//! own: the grown network run for 60 more simulated seconds with a broadcast every second.

use core::time::Duration;
use node_core::overlay::sim::scenario::{self, Growth, Spreading};
use node_core::overlay::sim::{SimConfig, Spread};

/// Messages each sender of the conversation sends.
const ROUNDS: usize = 10;

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// A spreading's means: RMR, last-delivery hops, last-delivery time in ms.
type Means = (f64, f64, f64);

fn report(label: &str, spreads: &[Spread], live: usize) -> Means {
    let full = spreads.iter().filter(|s| s.delivered.len() == live).count();
    let rmr = mean(spreads.iter().map(Spread::rmr));
    let hops = mean(spreads.iter().map(|s| f64::from(s.last_hops())));
    let ms = mean(spreads.iter().map(|s| s.last_delivery().as_secs_f64() * 1000.0));
    println!(
        "  {label:10} reached all {full}/{}  RMR {rmr:.3}  last-delivery hops {hops:.2}  time {ms:.0} ms",
        spreads.len()
    );
    (rmr, hops, ms)
}

fn ratio(label: &str, (rmr, hops, ms): Means, (f_rmr, f_hops, f_ms): Means) {
    let r = |a: f64, b: f64| a / b.max(f64::EPSILON);
    println!(
        "  ratio {label}/flooding: RMR {:.3}  last-delivery hops {:.2}  time {:.2}",
        r(rmr, f_rmr),
        r(hops, f_hops),
        r(ms, f_ms)
    );
}

// The bench is a driver, not the core: it may read the host clock to time the simulator.
#[allow(clippy::disallowed_methods)]
fn main() {
    let seed = std::env::var("SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let sizes: Vec<u32> = std::env::var("OVERLAY_NODES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let second = Duration::from_secs(1);
    for nodes in sizes {
        println!("SEED={seed} nodes={nodes}");
        let started = std::time::Instant::now();
        let mut sim = scenario::grow(SimConfig { seed, ..SimConfig::default() }, Growth::waves_of(nodes));
        let grown = started.elapsed();
        println!(
            "  grown in {:.1} s wall ({} simulated s), components {}",
            grown.as_secs_f64(),
            10 * 5 + 60,
            sim.components()
        );

        scenario::broadcasts(&mut sim, 5, second, Duration::from_secs(5));
        let live = sim.live().len();
        let changes = sim.stats().view_changes;
        let plum = scenario::broadcasts(&mut sim, 20, second, Duration::from_secs(10));
        let flood = scenario::floods(&mut sim, 20, second, Duration::from_secs(10));
        let plumtree = report("plumtree", &plum, live);
        let b = sim.broadcast_stats();
        println!(
            "  (active-view changes while measuring: {}; grafts so far {}, duplicates {})",
            sim.stats().view_changes - changes,
            b.grafts,
            b.duplicates
        );
        ratio("plumtree", plumtree, report("flooding", &flood, live));

        let mut senders: Vec<_> = (0..5).filter_map(|_| sim.random_live()).collect();
        senders.sort_unstable();
        senders.dedup();
        let b = sim.broadcast_stats();
        let timing = (second, Duration::from_secs(10));
        let talk = scenario::conversation(&mut sim, &senders, ROUNDS, timing, Spreading::PlumTree);
        let a = sim.broadcast_stats();
        println!(
            "  (conversation: {} duplicates, {} grafts, {} shorter paths taken)",
            a.duplicates - b.duplicates,
            a.grafts - b.grafts,
            a.shorter_paths - b.shorter_paths
        );
        let talk_flood = scenario::conversation(&mut sim, &senders, 2, timing, Spreading::Flooding);
        let live = sim.live().len();
        println!("  a conversation, {} senders taking turns:", senders.len());
        for (i, round) in talk.iter().enumerate() {
            report(&format!("round {}", i + 1), round, live);
        }
        let settled: Vec<Spread> = talk[ROUNDS - 4..].iter().flatten().cloned().collect();
        let settled = report("last 4", &settled, live);
        let flooded: Vec<Spread> = talk_flood.into_iter().flatten().collect();
        ratio("last 4 rounds", settled, report("flooding", &flooded, live));

        let hops = scenario::lookups(&mut sim, 200);
        let found: Vec<f64> = hops.iter().flatten().map(|h| f64::from(*h)).collect();
        let max = found.iter().copied().fold(0.0, f64::max);
        let bound = f64::from(nodes).log2() + 2.0;
        println!(
            "  kademlia: {}/{} found, hops mean {:.2} max {max}; log2(N) + 2 = {bound:.1} (max/bound {:.2})",
            found.len(),
            hops.len(),
            mean(found.iter().copied()),
            max / bound
        );

        let events_before = sim.stats().events;
        let timed = std::time::Instant::now();
        for _ in 0..60 {
            if let Some(origin) = sim.random_live() {
                sim.broadcast(origin);
            }
            sim.run_for(second);
        }
        let wall = timed.elapsed().as_secs_f64();
        println!(
            "  simulator: {nodes} nodes × 60 simulated s in {wall:.2} s wall ({} events); ratio simulated/wall {:.1}x",
            sim.stats().events - events_before,
            60.0 / wall.max(f64::EPSILON)
        );
    }
}
