//! Bench (b): LAN discovery latency between real `weft` processes in network namespaces — from
//! starting three nodes at once to every node linked to the other two — median of 10 runs.
//! Needs root (it builds the namespaces itself and removes them).
//!
//!     cargo bench -p node-native --bench discovery_latency
//!
//! The baseline printed beside it is process start-up alone (`weft` until its `ready` line), so
//! the ratio says how much of the wait is discovery itself.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::netns::{self, Lan};
use support::Weft;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if let Err(why) = netns::check() {
        println!("discovery_latency: skipped ({why})");
        return;
    }
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut linked = Vec::new();
    let mut ready = Vec::new();
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let mut lan = Lan::new();
        for _ in 0..3 {
            lan.add_host();
        }
        let t0 = Instant::now();
        let nodes: Vec<Weft> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let (lan, dir) = (&lan, dir.path());
                    s.spawn(move || Weft::start_with_prefix(dir, &format!("n{i}"), &[], &lan.exec(i)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        ready.push(t0.elapsed());
        for n in &nodes {
            n.wait_until(Duration::from_secs(30), |evs| {
                let linked: std::collections::BTreeSet<&str> = evs
                    .iter()
                    .filter(|e| e["event"] == "peer_connected")
                    .filter_map(|e| e["peer_id"].as_str())
                    .collect();
                (linked.len() >= 2).then_some(())
            })
            .expect("all linked");
        }
        let t = t0.elapsed();
        println!("run {run}: all linked after {:.0} ms", t.as_secs_f64() * 1000.0);
        linked.push(t);
    }
    let (l, r) = (median(linked), median(ready));
    println!("median start-to-ready (baseline): {:.0} ms", r.as_secs_f64() * 1000.0);
    println!("median start-to-all-linked: {:.0} ms", l.as_secs_f64() * 1000.0);
    println!(
        "discovery alone: {:.0} ms; ratio all-linked/ready {:.2}",
        (l - r).as_secs_f64() * 1000.0,
        l.as_secs_f64() / r.as_secs_f64()
    );
}
