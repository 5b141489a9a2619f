//! Simulator scenarios for file transfer: resume after a dropped link or a restart, and several
//! sources for one file.

mod common;

use common::seed;
use core::time::Duration;
use node_core::sim::{NodeIdx, Sim, SimConfig};
use node_core::{Command, Config, Event, FileHash};

const CHUNK: u32 = 64 * 1024;

fn pair(seed: u64) -> (Sim, NodeIdx, NodeIdx) {
    let mut sim = Sim::new(SimConfig { seed, ..SimConfig::default() });
    let cfg = |name: &str| Config { name: name.into(), chunk_size: CHUNK, transfer_window: 4, ..Config::default() };
    let a = sim.add_node(cfg("a"), 0);
    let b = sim.add_node(cfg("b"), 0);
    assert!(sim
        .run_while_not(Duration::from_secs(10), Duration::from_millis(100), |s| { s.node(a).node.peers().len() == 1 }));
    (sim, a, b)
}

fn content(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 11) as u8).collect()
}

fn offer(sim: &mut Sim, from: NodeIdx, to: NodeIdx, data: Vec<u8>) -> FileHash {
    let spec = sim.node_mut(from).storage.add_file("data.bin", data, CHUNK);
    let to_id = sim.node(to).node.peer_id();
    let file = spec.file;
    sim.command(
        from,
        Command::OfferFile {
            to: to_id,
            name: spec.name,
            size: spec.size,
            chunk_size: spec.chunk_size,
            file: spec.file,
            chunk_hashes: spec.chunk_hashes,
        },
    )
    .unwrap();
    file
}

/// The largest value `pick` finds in a node's events (0 if none).
fn max_of(sim: &Sim, idx: NodeIdx, pick: impl Fn(&Event) -> Option<u64>) -> u64 {
    sim.node(idx).events.iter().filter_map(|(_, e)| pick(e)).max().unwrap_or(0)
}

/// Bytes the receiver has verified and written.
fn received(sim: &Sim, idx: NodeIdx) -> u64 {
    max_of(sim, idx, |e| match e {
        Event::TransferProgress { done, .. } => Some(*done),
        _ => None,
    })
}

/// Bytes the sender has sent.
fn sent(sim: &Sim, idx: NodeIdx) -> u64 {
    max_of(sim, idx, |e| match e {
        Event::TransferSent { sent, .. } => Some(*sent),
        _ => None,
    })
}

fn done(sim: &Sim, idx: NodeIdx) -> bool {
    sim.node(idx).events.iter().any(|(_, e)| matches!(e, Event::TransferDone { .. }))
}

#[test]
fn a_transfer_survives_its_link_dropping_and_resumes() {
    let (mut sim, a, b) = pair(seed(21));
    let data = content(8 << 20, 1);
    offer(&mut sim, a, b, data.clone());
    assert!(sim.run_while_not(Duration::from_secs(60), Duration::from_millis(5), |s| received(s, b) > 3 << 20));
    assert!(sim.break_link(a, b), "the link existed");
    let finished = sim.run_while_not(Duration::from_secs(120), Duration::from_millis(100), |s| done(s, b));
    assert!(finished, "the transfer completes after the link comes back");
    sim.run_for(Duration::from_secs(1)); // let "complete" reach the sender
    assert_eq!(sim.node(b).storage.finished, vec![("data.bin".to_owned(), data.clone())]);
    let resent = sent(&sim, a);
    assert!(resent < data.len() as u64 * 13 / 10, "resumed rather than restarted: sent {resent} for {}", data.len());
    assert!(
        sim.node(a).events.iter().any(|(_, e)| matches!(e, Event::TransferSent { complete: true, .. })),
        "the sender learns the receiver has it all"
    );
}

#[test]
fn a_restarted_receiver_resumes_from_its_disk() {
    let (mut sim, a, b) = pair(seed(22));
    let data = content(8 << 20, 2);
    offer(&mut sim, a, b, data.clone());
    assert!(sim.run_while_not(Duration::from_secs(60), Duration::from_millis(5), |s| received(s, b) > 4 << 20));
    sim.kill(b);
    sim.run_for(Duration::from_secs(1));
    sim.restart(b);
    let finished = sim.run_while_not(Duration::from_secs(180), Duration::from_millis(100), |s| done(s, b));
    assert!(finished, "the restarted receiver completes");
    assert_eq!(sim.node(b).storage.finished.len(), 1);
    assert_eq!(sim.node(b).storage.finished[0].1, data);
    let resent = sent(&sim, a);
    assert!(resent < data.len() as u64 * 16 / 10, "less than 60 % sent again: {resent}");
}

#[test]
fn several_holders_of_the_same_file_each_serve_chunks() {
    let mut sim = Sim::new(SimConfig { seed: seed(23), ..SimConfig::default() });
    let cfg = |name: &str| Config { name: name.into(), chunk_size: CHUNK, transfer_window: 4, ..Config::default() };
    let a = sim.add_node(cfg("a"), 0);
    let c = sim.add_node(cfg("c"), 0);
    let b = sim.add_node(cfg("b"), 0);
    assert!(sim
        .run_while_not(Duration::from_secs(10), Duration::from_millis(100), |s| { s.node(b).node.peers().len() == 2 }));
    let data = content(4 << 20, 3);
    offer(&mut sim, a, b, data.clone());
    offer(&mut sim, c, b, data.clone());
    assert!(sim.run_while_not(Duration::from_secs(60), Duration::from_millis(50), |s| done(s, b)));
    assert_eq!(sim.node(b).storage.finished[0].1, data);
    let (from_a, from_c) = (sent(&sim, a), sent(&sim, c));
    assert!(from_a > 0 && from_c > 0, "both served: a {from_a}, c {from_c}");
    assert!(from_a + from_c < data.len() as u64 * 12 / 10, "no chunk fetched twice over");
    let offered = sim.node(b).events.iter().filter(|(_, e)| matches!(e, Event::TransferOffered { .. })).count();
    let finished = sim.node(b).events.iter().filter(|(_, e)| matches!(e, Event::TransferDone { .. })).count();
    assert_eq!((offered, finished), (1, 1), "one download, not two");
}

#[test]
fn a_corrupt_chunk_is_refused_and_its_sender_dropped() {
    let (mut sim, a, b) = pair(seed(24));
    let data = content(1 << 20, 4);
    offer(&mut sim, a, b, data.clone());
    // Corrupt the sender's disk after it hashed the file: every chunk it serves is now wrong.
    let file = *sim.node(a).storage.files.keys().next().unwrap();
    sim.node_mut(a).storage.files.get_mut(&file).unwrap()[100] ^= 0xff;
    sim.run_for(Duration::from_secs(5));
    let misbehaved = sim.node(b).events.iter().any(|(_, e)| matches!(e, Event::PeerMisbehaved { .. }));
    assert!(misbehaved, "the bad chunk is caught");
    assert!(!done(&sim, b));
    assert!(sim.node(b).storage.finished.is_empty(), "nothing unverified lands");
}

#[test]
fn an_empty_file_transfers() {
    let (mut sim, a, b) = pair(seed(25));
    offer(&mut sim, a, b, Vec::new());
    assert!(sim.run_while_not(Duration::from_secs(10), Duration::from_millis(50), |s| done(s, b)));
    assert_eq!(sim.node(b).storage.finished[0].1, Vec::<u8>::new());
}

#[test]
fn a_download_whose_sources_vanish_gives_up_after_ten_minutes() {
    let (mut sim, a, b) = pair(seed(26));
    offer(&mut sim, a, b, content(32 << 20, 6));
    assert!(sim.run_while_not(Duration::from_secs(30), Duration::from_millis(5), |s| received(s, b) > 1 << 20));
    assert!(!done(&sim, b), "killed mid-way");
    sim.kill(a);
    sim.run_for(Duration::from_secs(9 * 60));
    let failed = |s: &Sim| s.node(b).events.iter().any(|(_, e)| matches!(e, Event::TransferFailed { .. }));
    assert!(!failed(&sim), "patient while the source may come back");
    sim.run_for(Duration::from_secs(3 * 60));
    assert!(failed(&sim), "gives up (the partial file stays for a later offer)");
    assert!(!sim.node(b).storage.partial.is_empty());
}
