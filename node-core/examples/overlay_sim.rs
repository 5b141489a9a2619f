//! Runs one overlay scenario at any size and prints what happened.
//!
//!     cargo run --release -p node-core --features sim --example overlay_sim -- \
//!         --nodes 10000 --seed 1 --scenario grow|steady|kill|churn|partition|lookups
//!
//! Every scenario first grows the network in ten waves five seconds apart, then lets it settle
//! for a simulated minute.

use core::time::Duration;
use node_core::overlay::sim::scenario::{self, Growth};
use node_core::overlay::sim::{OverlaySim, SimConfig, Spread};
use std::process::ExitCode;

const USAGE: &str = "usage: overlay_sim [--nodes N] [--seed S] [--scenario grow|steady|kill|churn|partition|lookups]";

struct Args {
    nodes: u32,
    seed: u64,
    scenario: String,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { nodes: 1000, seed: 1, scenario: "steady".into() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nodes" => args.nodes = value.parse().map_err(|_| format!("--nodes: not a number: {value}"))?,
            "--seed" => args.seed = value.parse().map_err(|_| format!("--seed: not a number: {value}"))?,
            "--scenario" => args.scenario = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn summarize(label: &str, spreads: &[Spread], sim: &OverlaySim) {
    let n = spreads.len().max(1) as f64;
    let full = spreads.iter().filter(|s| scenario::missed(sim, s) == 0).count();
    let rmr = spreads.iter().map(|s| s.rmr()).sum::<f64>() / n;
    let hops = spreads.iter().map(|s| f64::from(s.last_hops())).sum::<f64>() / n;
    println!(
        "{label}: {full}/{} reached every live node; mean RMR {rmr:.3}; mean last-delivery hops {hops:.2}",
        spreads.len()
    );
}

// An example is a driver, not the core: it may read the host clock.
#[allow(clippy::disallowed_methods)]
fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("overlay_sim: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    let started = std::time::Instant::now();
    let config = SimConfig { seed: args.seed, ..SimConfig::default() };
    let mut sim = scenario::grow(config, Growth::waves_of(args.nodes));
    println!(
        "grew {} nodes in waves: {} component(s), {} rejoin(s), {:.1} s wall",
        args.nodes,
        sim.components(),
        sim.stats().rejoins,
        started.elapsed().as_secs_f64()
    );
    let second = Duration::from_secs(1);
    match args.scenario.as_str() {
        "steady" => {
            // The first broadcasts over fresh links flood and prune the tree into shape.
            scenario::broadcasts(&mut sim, 5, second, Duration::from_secs(5));
            let before = sim.broadcast_stats();
            let spreads = scenario::broadcasts(&mut sim, 10, second, Duration::from_secs(10));
            summarize("plumtree", &spreads, &sim);
            let after = sim.broadcast_stats();
            println!("  duplicates {}, grafts {}", after.duplicates - before.duplicates, after.grafts - before.grafts);
            let floods = scenario::floods(&mut sim, 10, second, Duration::from_secs(10));
            summarize("flooding", &floods, &sim);
        }
        "kill" => {
            let killed = scenario::kill_percent(&mut sim, 50);
            match scenario::recovery(&mut sim, Duration::from_secs(60), Duration::from_secs(5)) {
                Some(d) => {
                    println!("killed {killed}; broadcasts reach every survivor {:.1} s after the kill", d.as_secs_f64())
                }
                None => println!("killed {killed}; no broadcast reached every survivor within 60 s"),
            }
        }
        "churn" => {
            let isolated = scenario::churn(
                &mut sim,
                10,
                Duration::from_secs(300),
                Duration::from_secs(5),
                Duration::from_secs(10),
            );
            println!(
                "churn 10%/min for 5 min: {} isolation sighting(s); {} component(s)",
                isolated.len(),
                sim.components()
            );
            let spreads = scenario::broadcasts(&mut sim, 5, second, Duration::from_secs(10));
            summarize("after churn", &spreads, &sim);
        }
        "partition" => {
            let half = args.nodes / 2;
            sim.partition(|id| u32::from(id < half));
            sim.run_for(Duration::from_secs(60));
            println!("partitioned for 60 s: {} component(s)", sim.components());
            sim.heal();
            match scenario::recovery(&mut sim, Duration::from_secs(300), Duration::from_secs(5)) {
                Some(d) => println!("healed; broadcasts reach every node {:.1} s after the heal", d.as_secs_f64()),
                None => println!("healed; no broadcast reached every node within 300 s"),
            }
        }
        "grow" => {}
        "lookups" => {
            let hops = scenario::lookups(&mut sim, 200);
            let found: Vec<u8> = hops.iter().flatten().copied().collect();
            let max = found.iter().max().copied().unwrap_or(0);
            let mean = found.iter().map(|h| f64::from(*h)).sum::<f64>() / found.len().max(1) as f64;
            println!(
                "lookups: {}/{} found; hops mean {mean:.2}, max {max}; log2(N) + 2 = {:.1}",
                found.len(),
                hops.len(),
                f64::from(args.nodes).log2() + 2.0
            );
        }
        other => {
            eprintln!("overlay_sim: unknown scenario {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    println!(
        "simulated to {:?}; {} events; {:.1} s wall",
        sim.now(),
        sim.stats().events,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
