//! Bench (e): linking across NATs in the NAT lab (tests/support/natlab.rs), real `weft`
//! processes. For each pair of NAT types: from the `connect <peer id>` command to the link being
//! up at the initiator (its `peer_connected`: both ends' first frames crossed), median of RUNS
//! (5), with the strategy that won; then the share of TRIALS (20) in which two port-restricted
//! NATs link directly. Each run starts a fresh lab and waits for both nodes' NAT reports before
//! the clock starts. Needs root.
//!
//!     cargo bench -p node-native --bench nat_connect
//!
//! The baseline, measured in every lab: a raw TCP connect and a one-byte echo from A's host to the
//! server through A's NAT, so the ratio says how many plain round trips across the lab a link
//! costs.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use support::lab_server::LabServer;
use support::natlab::{Nat, NatLab, Side, PUBLIC_IP};
use support::{netns, Weft};

const ECHO_PORT: u16 = 9000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One run: the time to link, the strategy, and the baseline.
fn run(na: Nat, nb: Nat) -> (Option<Duration>, String, Duration) {
    let lab = NatLab::new(na, nb);
    let server = LabServer::start(&lab);
    let echo = SocketAddr::from((PUBLIC_IP, ECHO_PORT));
    lab.run_in("pub", move || {
        let listener = TcpListener::bind(echo).unwrap();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_ok() {
                    let _ = s.write_all(&b);
                }
            }
        });
    });
    let baseline = lab.run_in("a1", move || {
        let t = Instant::now();
        let mut s = TcpStream::connect(echo).unwrap();
        s.write_all(b"x").unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
        t.elapsed()
    });
    let dir = tempfile::tempdir().unwrap();
    let start = |side, name| {
        let bind = lab.host_ip(side).to_string();
        let args = ["--no-discovery", "--bind", &bind, "--bootstrap", &server.url, "--bootstrap-peers", "0"];
        Weft::start_with_prefix(dir.path(), name, &args, &lab.exec(side))
    };
    let (mut a, b) = (start(Side::A, "a"), start(Side::B, "b"));
    for w in [&a, &b] {
        w.wait_event(Duration::from_secs(20), |e| e["event"] == "nat").expect("a NAT report");
    }
    let t0 = Instant::now();
    a.send(json!({"cmd": "connect", "addr": b.peer_id}));
    let up = a.wait_event(Duration::from_secs(60), |e| e["event"] == "peer_connected" && e["peer_id"] == b.peer_id);
    let took = up.map(|_| t0.elapsed());
    let report = a.wait_event(Duration::from_secs(60), |e| e["event"] == "connectivity");
    let strategy = report.and_then(|r| r["linked"].as_str().map(str::to_owned)).unwrap_or_else(|| "none".into());
    (took, strategy, baseline)
}

fn main() {
    if let Err(why) = netns::check() {
        println!("nat_connect: skipped ({why})");
        return;
    }
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (runs, trials) = (env("RUNS", 5), env("TRIALS", 20));
    println!("{:<36} {:>10} {:>12} {:>8}  strategy", "pair", "link ms", "baseline ms", "ratio");
    for (i, &na) in Nat::ALL.iter().enumerate() {
        for &nb in &Nat::ALL[i..] {
            let (mut times, mut bases, mut won) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                let (took, strategy, base) = run(na, nb);
                times.push(took.unwrap_or(Duration::from_secs(60)));
                bases.push(base);
                won.push(strategy);
            }
            won.sort();
            won.dedup();
            let (t, b) = (median(times), median(bases));
            let pair = format!("{na:?} x {nb:?}");
            println!(
                "{pair:<36} {:>10.0} {:>12.2} {:>8.0}  {}",
                t.as_secs_f64() * 1000.0,
                b.as_secs_f64() * 1000.0,
                t.as_secs_f64() / b.as_secs_f64(),
                won.join(", ")
            );
        }
    }
    let direct = (0..trials)
        .filter(|_| {
            let (took, strategy, _) = run(Nat::PortRestricted, Nat::PortRestricted);
            took.is_some() && strategy == "udp-punch"
        })
        .count();
    println!("port-restricted x port-restricted: {direct}/{trials} linked directly (udp-punch)");
}
