//! The DHT in the node (simulated): nodes publish how to reach them, and a direct message for a
//! peer without a link follows the recipient's record instead of flooding the mesh.

mod common;

use common::{connected, overlay_lan, seed};
use core::time::Duration;
use node_core::sim::{NodeIdx, Sim};
use node_core::{Command, Event, PeerId};

fn directs_received(sim: &Sim, idx: NodeIdx, text: &str) -> usize {
    sim.node(idx).events.iter().filter(|(_, e)| matches!(e, Event::Direct { text: t, .. } if t == text)).count()
}

fn floods(sim: &Sim) -> u64 {
    sim.nodes().iter().map(|n| n.node.stats().flooded_messages).sum()
}

/// Pairs (from, to) of live nodes with no link between them.
fn unlinked_pairs(sim: &Sim) -> Vec<(NodeIdx, NodeIdx)> {
    let linked = |a: NodeIdx, b: PeerId| sim.node(a).node.peers().iter().any(|p| p.peer == b);
    let n = sim.nodes().len();
    (0..n)
        .flat_map(|a| (0..n).map(move |b| (a, b)))
        .filter(|&(a, b)| a != b && !linked(a, sim.node(b).node.peer_id()))
        .collect()
}

/// One run: 40 nodes at six links each settle, then one message floods (the baseline) and ten
/// go between unlinked pairs. Returns (what the ten cost in flood steps, what the one cost).
fn ten_routed_and_one_flooded(seed: u64) -> (u64, u64) {
    let mut sim = overlay_lan(40, 6, seed);
    let settled = sim.run_while_not(Duration::from_secs(60), Duration::from_secs(1), connected);
    assert!(settled, "seed {seed}: the overlay is connected");
    // Every node publishes its record within seconds of its first neighbor; give the stores time.
    sim.run_for(Duration::from_secs(90));
    for n in sim.nodes() {
        assert!(n.node.peers().len() <= 6, "seed {seed}: the cap holds");
    }
    let pairs = unlinked_pairs(&sim);
    assert!(pairs.len() > 40 * 30, "seed {seed}: a partial mesh ({} pairs are not linked)", pairs.len());
    // The baseline, in this run: what one message costs the mesh when it floods (one sent to a
    // peer nobody has a record of).
    let before = floods(&sim);
    let stranger = node_core::identity::Keypair::from_secret([200; 32]).peer_id();
    sim.command(39, Command::Direct { to: stranger, text: "anyone?".into() }).unwrap();
    sim.run_for(Duration::from_secs(20));
    let one_flood = floods(&sim) - before;
    assert!(one_flood >= 30, "seed {seed}: a flood reaches (nearly) every node: {one_flood}");
    let before = floods(&sim);
    // Ten messages between unlinked pairs spread over the mesh: ten senders, ten recipients.
    let mut picked: Vec<(NodeIdx, NodeIdx)> = Vec::new();
    for from in (0..20).step_by(2) {
        let taken = |to: NodeIdx| picked.iter().any(|&(_, t)| t == to);
        if let Some(&pair) = pairs.iter().find(|&&(f, to)| f == from && to >= 20 && !taken(to)) {
            picked.push(pair);
        }
    }
    assert_eq!(picked.len(), 10, "seed {seed}: ten unlinked pairs: {picked:?}");
    for (i, &(from, to)) in picked.iter().enumerate() {
        let to_id = sim.node(to).node.peer_id();
        sim.command(from, Command::Direct { to: to_id, text: format!("routed {i}") }).unwrap();
    }
    sim.run_for(Duration::from_secs(20));
    for (i, &(from, to)) in picked.iter().enumerate() {
        let text = format!("routed {i}");
        assert_eq!(directs_received(&sim, to, &text), 1, "seed {seed}: node {to} got node {from}'s message once");
        for other in (0..40).filter(|o| *o != to) {
            assert_eq!(directs_received(&sim, other, &text), 0, "seed {seed}: only the recipient hears it");
        }
    }
    (floods(&sim) - before, one_flood)
}

#[test]
fn direct_messages_to_unlinked_peers_follow_their_records_at_a_fifth_of_the_cost_of_flooding() {
    // Each message follows its recipient's record; one that cannot (a lookup slower than the
    // wait, the recipient and its neighbors all busy at their link caps) floods instead, and
    // still arrives once. With six links a node that is about one message in seven; so over
    // five runs (fifty messages) the routed ones must cost at most a fifth of flooding them.
    let first = seed(61);
    let (mut cost, mut flooding) = (0, 0);
    for seed in first..first + 5 {
        let (ten, one) = ten_routed_and_one_flooded(seed);
        println!("seed {seed}: ten routed messages cost {ten} flood steps; one flooded message {one}");
        cost += ten;
        flooding += 10 * one;
    }
    assert!(cost * 5 <= flooding, "fifty routed messages cost {cost} flood steps; flooding them, {flooding}");
}

#[test]
fn a_direct_message_to_a_peer_the_dht_does_not_know_still_goes_out_by_flooding() {
    let mut sim = overlay_lan(20, 6, seed(62));
    assert!(sim.run_while_not(Duration::from_secs(60), Duration::from_secs(1), connected));
    sim.run_for(Duration::from_secs(30));
    let before = floods(&sim);
    let stranger = node_core::identity::Keypair::from_secret([200; 32]).peer_id();
    sim.command(3, Command::Direct { to: stranger, text: "anyone?".into() }).unwrap();
    sim.run_for(Duration::from_secs(20));
    assert!(floods(&sim) > before, "with no record the lookup gives up and the mesh floods the message");
    assert_eq!(sim.node(3).node.stats().flooded_messages, 1, "the sender floods it once");
}
