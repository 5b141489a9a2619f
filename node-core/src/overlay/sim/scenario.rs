//! The overlay scenarios of issue 6, shared by the suite (small sizes), the `overlay_sim`
//! example (any size, one scenario at a time) and the `overlay` bench (the full sizes):
//! joins in waves, steady broadcasts, churn, a simultaneous kill of half the nodes, a partition
//! and its heal, and lookups. Each returns numbers; the callers decide what must hold.

use super::{Id, OverlaySim, SimConfig, Spread};
use crate::overlay::MessageId;
use core::time::Duration;

/// How a network grows.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    /// Nodes in all.
    pub nodes: u32,
    /// Nodes per wave.
    pub wave: u32,
    /// Time between waves (each wave's joins spread over its first second).
    pub gap: Duration,
    /// Quiet time after the last wave.
    pub settle: Duration,
}

impl Growth {
    /// `nodes` joining in ten waves, five seconds apart, then a minute to settle.
    pub fn waves_of(nodes: u32) -> Self {
        Growth { nodes, wave: nodes.div_ceil(10).max(1), gap: Duration::from_secs(5), settle: Duration::from_secs(60) }
    }
}

/// Builds a network: the nodes join in waves, each through a random node already there.
pub fn grow(config: SimConfig, growth: Growth) -> OverlaySim {
    let mut sim = OverlaySim::new(config);
    let mut added = 0;
    while added < growth.nodes {
        let wave = growth.wave.min(growth.nodes - added);
        for i in 0..wave {
            sim.add_node(Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(wave)));
        }
        added += wave;
        sim.run_for(growth.gap);
    }
    sim.run_for(growth.settle);
    sim
}

/// Broadcasts from `count` random live nodes, one every `every`, then waits `tail` for the last
/// to spread; returns each broadcast's spread.
pub fn broadcasts(sim: &mut OverlaySim, count: usize, every: Duration, tail: Duration) -> Vec<Spread> {
    let ids = send_from_random_nodes(sim, count, every, tail, OverlaySim::broadcast);
    ids.iter().filter_map(|id| sim.spread(id).cloned()).collect()
}

/// The same, flooded (the baseline).
pub fn floods(sim: &mut OverlaySim, count: usize, every: Duration, tail: Duration) -> Vec<Spread> {
    let ids = send_from_random_nodes(sim, count, every, tail, OverlaySim::flood);
    ids.iter().filter_map(|id| sim.flood_spread(id).cloned()).collect()
}

/// How a conversation's messages spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spreading {
    /// Through PlumTree.
    PlumTree,
    /// Flooded over the same active views (the baseline).
    Flooding,
}

impl Spreading {
    fn send(self, sim: &mut OverlaySim, origin: Id) -> MessageId {
        match self {
            Spreading::PlumTree => sim.broadcast(origin),
            Spreading::Flooding => sim.flood(origin),
        }
    }

    fn spread(self, sim: &OverlaySim, id: &MessageId) -> Option<Spread> {
        match self {
            Spreading::PlumTree => sim.spread(id).cloned(),
            Spreading::Flooding => sim.flood_spread(id).cloned(),
        }
    }
}

/// A conversation: `senders` take turns, `rounds` messages each, `every` apart, then `tail`
/// passes; returns each round's spreads, the first round first (through PlumTree, the first
/// message of each sender travels the shared tree, later ones the sender's own).
pub fn conversation(
    sim: &mut OverlaySim,
    senders: &[Id],
    rounds: usize,
    (every, tail): (Duration, Duration),
    how: Spreading,
) -> Vec<Vec<Spread>> {
    let mut ids = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut round = Vec::with_capacity(senders.len());
        for sender in senders {
            if sim.live().contains(sender) {
                round.push(how.send(sim, *sender));
            }
            sim.run_for(every);
        }
        ids.push(round);
    }
    sim.run_for(tail);
    ids.iter().map(|round| round.iter().filter_map(|id| how.spread(sim, id)).collect()).collect()
}

/// Sends `count` messages with `send`, each from a random live node, `every` apart, then lets
/// `tail` pass.
fn send_from_random_nodes(
    sim: &mut OverlaySim,
    count: usize,
    every: Duration,
    tail: Duration,
    send: fn(&mut OverlaySim, Id) -> MessageId,
) -> Vec<MessageId> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        if let Some(origin) = sim.random_live() {
            ids.push(send(sim, origin));
        }
        sim.run_for(every);
    }
    sim.run_for(tail);
    ids
}

/// How many of the nodes alive now a spread missed.
pub fn missed(sim: &OverlaySim, spread: &Spread) -> usize {
    sim.live().iter().filter(|id| !spread.delivered.contains_key(id)).count()
}

/// Kills a random `percent` of the live nodes at once; returns how many died.
pub fn kill_percent(sim: &mut OverlaySim, percent: u32) -> usize {
    let count = sim.live().len() * percent as usize / 100;
    for _ in 0..count {
        if let Some(victim) = sim.random_live() {
            sim.kill(victim);
        }
    }
    count
}

/// After a kill: broadcasts one message a second from a random survivor, each given `tail` to
/// spread, until one reaches every survivor. Returns the time from the kill to that broadcast's
/// last delivery, or `None` if none did within `limit`.
pub fn recovery(sim: &mut OverlaySim, limit: Duration, tail: Duration) -> Option<Duration> {
    let start = sim.now();
    let mut pending: Vec<MessageId> = Vec::new();
    while sim.now() < start + limit + tail {
        if sim.now() < start + limit {
            if let Some(origin) = sim.random_live() {
                pending.push(sim.broadcast(origin));
            }
        }
        sim.run_for(Duration::from_secs(1));
        for id in &pending {
            let Some(spread) = sim.spread(id) else { continue };
            if spread.sent + tail <= sim.now() && missed(sim, spread) == 0 {
                let last = spread.delivered.values().map(|(at, _)| *at).max().unwrap_or(spread.sent);
                return Some(last - start);
            }
        }
        pending.retain(|id| sim.spread(id).is_some_and(|s| s.sent + tail > sim.now()));
    }
    None
}

/// Churn: every second, replaces `percent_per_minute / 60` percent of the live nodes (killed
/// at once, fresh nodes joining through random live ones) for `duration`. Every `check` it
/// records the live nodes that have been up longer than `grace` yet have no live neighbor.
/// Returns those sightings (empty: nobody was ever isolated).
pub fn churn(
    sim: &mut OverlaySim,
    percent_per_minute: u32,
    duration: Duration,
    check: Duration,
    grace: Duration,
) -> Vec<(Duration, Id)> {
    let start = sim.now();
    let mut owed = 0.0f64;
    let mut isolated = Vec::new();
    let mut born: std::collections::BTreeMap<Id, crate::time::Instant> = std::collections::BTreeMap::new();
    let mut next_check = start + check;
    while sim.now() < start + duration {
        owed += sim.live().len() as f64 * f64::from(percent_per_minute) / 100.0 / 60.0;
        while owed >= 1.0 {
            owed -= 1.0;
            if let Some(victim) = sim.random_live() {
                sim.kill(victim);
            }
            let id = sim.add_node(Duration::ZERO);
            born.insert(id, sim.now());
        }
        sim.run_for(Duration::from_secs(1));
        if sim.now() >= next_check {
            next_check += check;
            let now = sim.now();
            for id in sim.isolated() {
                let old_enough = born.get(&id).is_none_or(|b| *b + grace <= now);
                if old_enough {
                    isolated.push((now - start, id));
                }
            }
        }
    }
    isolated
}

/// `count` lookups of random live peers from random live nodes; returns the hops each took
/// (`None`: not found).
pub fn lookups(sim: &mut OverlaySim, count: usize) -> Vec<Option<u8>> {
    sim.take_lookups();
    let mut started = 0;
    while started < count {
        let (Some(from), Some(target)) = (sim.random_live(), sim.random_live()) else { break };
        if from != target && sim.lookup(from, target) {
            started += 1;
            sim.run_for(Duration::from_millis(100));
        }
    }
    sim.run_for(Duration::from_secs(30));
    sim.take_lookups().into_iter().map(|(_, done)| done.hops_to_target).collect()
}
