//! A deterministic discrete-event simulator for the overlay alone: thousands of [`Overlay`]s
//! with numbered ids, per-pair latency, deaths noticed after a detection delay, partitions, and
//! a bootstrap service that hands an isolated node a random live contact (what a bootstrap
//! server, a configured peer or the LAN does for a real node). Seeded: the same seed gives the
//! same run.
//!
//! It also floods, over the same active views, for the baseline the broadcast bench compares
//! PlumTree against.

use super::kademlia::{Key, KeyOf, LookupDone, LookupId, Record};
use super::{Config, Message, MessageId, Out, Overlay, Timer};
use crate::time::Instant;
use core::time::Duration;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

pub mod scenario;

/// A record for the simulator: valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// Where it is stored.
    pub key: Key,
    /// Its version.
    pub version: u64,
    /// When it expires.
    pub expires: Instant,
}

impl Record for SimRecord {
    fn key(&self) -> Key {
        self.key
    }
    fn expires(&self) -> Instant {
        self.expires
    }
    fn verify(&self) -> bool {
        true
    }
    fn supersedes(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

/// The network's behaviour.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for everything random.
    pub seed: u64,
    /// Fastest one-way latency between two nodes…
    pub latency_min: Duration,
    /// …and slowest (each pair gets a fixed latency in between).
    pub latency_max: Duration,
    /// How long after a neighbor dies (or is cut off) a node notices its link is gone.
    pub failure_detection: Duration,
    /// How long opening a link to a dead or unreachable node takes to fail.
    pub dial_timeout: Duration,
    /// How often each node hears of a random node from the bootstrap service (as a real node
    /// does from its server's peer list, peer exchange or the LAN); zero: never.
    pub learn_interval: Duration,
    /// The overlay's parameters.
    pub overlay: Config,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(100),
            failure_detection: Duration::from_secs(5),
            dial_timeout: Duration::from_secs(3),
            learn_interval: Duration::from_secs(60),
            overlay: Config { dht_refresh: Duration::from_secs(60), ..Config::default() },
        }
    }
}

/// How long a node has to have been in the overlay before the bootstrap service hands it out.
const SETTLE: Duration = Duration::from_secs(5);

/// A node's index, which is also its id.
pub type Id = u32;

type SimOverlay = Overlay<Id, SimRecord>;

enum Event {
    Message {
        from: Id,
        to: Id,
        message: Message<Id, SimRecord>,
    },
    Timer {
        node: Id,
        timer: Timer<Id>,
    },
    /// `node` notices its link to `peer` is gone.
    Failed {
        node: Id,
        peer: Id,
    },
    Flood {
        from: Id,
        to: Id,
        id: MessageId,
        hops: u16,
    },
    Join {
        node: Id,
    },
    Learn {
        node: Id,
    },
}

/// One broadcast's deliveries.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    /// Who sent it, and when.
    pub origin: Id,
    /// When it was sent.
    pub sent: Instant,
    /// Every node that delivered it: when, and after how many hops.
    pub delivered: BTreeMap<Id, (Instant, u16)>,
    /// Payload copies received (the first and every duplicate).
    pub payloads: u64,
}

impl Spread {
    /// Relative message redundancy: payloads received per node reached, less one (0: a tree).
    pub fn rmr(&self) -> f64 {
        let reached = self.delivered.len().saturating_sub(1);
        if reached == 0 {
            return 0.0;
        }
        self.payloads as f64 / reached as f64 - 1.0
    }

    /// The most hops any node was reached at.
    pub fn last_hops(&self) -> u16 {
        self.delivered.values().map(|(_, h)| *h).max().unwrap_or(0)
    }

    /// How long it took to reach the last node it reached.
    pub fn last_delivery(&self) -> Duration {
        self.delivered.values().map(|(at, _)| at.saturating_duration_since(self.sent)).max().unwrap_or_default()
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimStats {
    /// Messages delivered to live nodes.
    pub messages: u64,
    /// Events processed.
    pub events: u64,
    /// Times a node that was in the overlay ran dry and was handed a contact.
    pub rejoins: u64,
    /// Active-view changes (a neighbor in, a neighbor out), summed over all nodes.
    pub view_changes: u64,
}

/// The simulator.
pub struct OverlaySim {
    config: SimConfig,
    rng: ChaCha8Rng,
    now: Instant,
    seq: u64,
    queue: BTreeMap<(Instant, u64), Event>,
    nodes: Vec<Option<SimOverlay>>,
    /// Partition group of each node.
    group: Vec<u32>,
    live: BTreeSet<Id>,
    /// Nodes that have joined, and when: the bootstrap service hands out only those that have
    /// settled in (the first node, or ones in for a while with a neighbor), as a real server
    /// lists nodes that have been online for a while rather than ones still joining.
    joined: Vec<(Id, Instant)>,
    joined_set: BTreeSet<Id>,
    spreads: BTreeMap<MessageId, Spread>,
    floods: BTreeMap<MessageId, Spread>,
    /// Lookups asked for through [`OverlaySim::lookup`], by node and lookup.
    asked: BTreeSet<(Id, LookupId)>,
    lookups: Vec<(Id, LookupDone<Id, SimRecord>)>,
    stats: SimStats,
}

impl OverlaySim {
    /// An empty network.
    pub fn new(config: SimConfig) -> Self {
        OverlaySim {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            now: Instant::from_unix_ms(1_750_000_000_000),
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::new(),
            group: Vec::new(),
            live: BTreeSet::new(),
            joined: Vec::new(),
            joined_set: BTreeSet::new(),
            spreads: BTreeMap::new(),
            floods: BTreeMap::new(),
            asked: BTreeSet::new(),
            lookups: Vec::new(),
            stats: SimStats::default(),
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Live nodes.
    pub fn live(&self) -> &BTreeSet<Id> {
        &self.live
    }

    /// A node's overlay, if it is alive.
    pub fn node(&self, id: Id) -> Option<&SimOverlay> {
        self.nodes.get(id as usize).and_then(Option::as_ref)
    }

    /// A random live node.
    pub fn random_live(&mut self) -> Option<Id> {
        if self.live.is_empty() {
            return None;
        }
        let i = self.rng.next_u32() as usize % self.live.len();
        self.live.iter().nth(i).copied()
    }

    /// Adds a node; it joins through a random live node after `delay` (the first node waits).
    pub fn add_node(&mut self, delay: Duration) -> Id {
        let id = Id::try_from(self.nodes.len()).unwrap_or(Id::MAX);
        let seed = self.rng.next_u64();
        self.nodes.push(Some(Overlay::new(id, self.config.overlay.clone(), seed, self.now)));
        self.group.push(0);
        self.live.insert(id);
        self.drain(id);
        self.push(self.now + delay, Event::Join { node: id });
        if !self.config.learn_interval.is_zero() {
            let first = self.rng.next_u64() % self.config.learn_interval.as_micros().max(1) as u64;
            self.push(self.now + delay + Duration::from_micros(first), Event::Learn { node: id });
        }
        id
    }

    /// Kills `id` at once: its neighbors notice after the detection delay.
    pub fn kill(&mut self, id: Id) {
        let Some(overlay) = self.nodes.get_mut(id as usize).and_then(Option::take) else { return };
        self.live.remove(&id);
        let at = self.now + self.config.failure_detection;
        for peer in overlay.membership().active().clone() {
            self.push(at, Event::Failed { node: peer, peer: id });
        }
    }

    /// Splits the network: nodes in different groups cannot reach each other; links across
    /// break after the detection delay.
    pub fn partition(&mut self, group_of: impl Fn(Id) -> u32) {
        for (i, g) in self.group.iter_mut().enumerate() {
            *g = group_of(Id::try_from(i).unwrap_or(Id::MAX));
        }
        let at = self.now + self.config.failure_detection;
        let mut cut = Vec::new();
        for id in &self.live {
            if let Some(o) = self.node(*id) {
                for peer in o.membership().active() {
                    if self.group[*id as usize] != self.group[*peer as usize] {
                        cut.push((*id, *peer));
                    }
                }
            }
        }
        for (node, peer) in cut {
            self.push(at, Event::Failed { node, peer });
        }
    }

    /// Ends a partition.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    /// `origin` broadcasts a fresh message through PlumTree.
    pub fn broadcast(&mut self, origin: Id) -> MessageId {
        let id = self.fresh_id();
        let now = self.now;
        let mut spread = Spread { origin, sent: now, ..Spread::default() };
        spread.delivered.insert(origin, (now, 0));
        self.spreads.insert(id, spread);
        if let Some(o) = self.overlay_mut(origin) {
            o.broadcast(now, id, id[..8].to_vec());
        }
        self.drain(origin);
        id
    }

    /// `origin` floods a fresh message over the same active views (the baseline).
    pub fn flood(&mut self, origin: Id) -> MessageId {
        let id = self.fresh_id();
        let mut spread = Spread { origin, sent: self.now, ..Spread::default() };
        spread.delivered.insert(origin, (self.now, 0));
        self.floods.insert(id, spread);
        self.flood_on(origin, None, id, 0);
        id
    }

    /// What became of a broadcast.
    pub fn spread(&self, id: &MessageId) -> Option<&Spread> {
        self.spreads.get(id)
    }

    /// What became of a flood.
    pub fn flood_spread(&self, id: &MessageId) -> Option<&Spread> {
        self.floods.get(id)
    }

    /// `from` looks up the peer `target`; the result comes out of [`OverlaySim::take_lookups`].
    pub fn lookup(&mut self, from: Id, target: Id) -> bool {
        let now = self.now;
        let started = self.overlay_mut(from).and_then(|o| o.find_node(now, target.key_of()).ok());
        if let Some(id) = started {
            self.asked.insert((from, id));
        }
        self.drain(from);
        started.is_some()
    }

    /// Lookups asked for through [`OverlaySim::lookup`] that finished since the last call.
    pub fn take_lookups(&mut self) -> Vec<(Id, LookupDone<Id, SimRecord>)> {
        std::mem::take(&mut self.lookups)
    }

    /// Runs until `d` has passed.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now = at;
            self.stats.events += 1;
            self.dispatch(event);
        }
        self.now = until;
    }

    /// PlumTree's counters summed over the live nodes.
    pub fn broadcast_stats(&self) -> super::plumtree::Stats {
        let mut total = super::plumtree::Stats::default();
        for id in &self.live {
            if let Some(o) = self.node(*id) {
                let s = o.broadcast_state().stats();
                total.payloads_received += s.payloads_received;
                total.duplicates += s.duplicates;
                total.grafts += s.grafts;
                total.announcements_dropped += s.announcements_dropped;
                total.shorter_paths += s.shorter_paths;
            }
        }
        total
    }

    /// Whether the live nodes' active views form one connected graph.
    pub fn connected(&self) -> bool {
        self.components() <= 1
    }

    /// Connected components among the live nodes.
    pub fn components(&self) -> usize {
        let mut seen = BTreeSet::new();
        let mut components = 0;
        for start in &self.live {
            if !seen.insert(*start) {
                continue;
            }
            components += 1;
            let mut stack = vec![*start];
            while let Some(n) = stack.pop() {
                if let Some(o) = self.node(n) {
                    for p in o.membership().active() {
                        if self.live.contains(p) && seen.insert(*p) {
                            stack.push(*p);
                        }
                    }
                }
            }
        }
        components
    }

    /// Live nodes with no live active peer.
    pub fn isolated(&self) -> Vec<Id> {
        self.live
            .iter()
            .filter(|id| {
                self.node(**id).is_some_and(|o| !o.membership().active().iter().any(|p| self.live.contains(p)))
            })
            .copied()
            .collect()
    }

    fn fresh_id(&mut self) -> MessageId {
        let mut id = [0u8; 32];
        self.rng.fill_bytes(&mut id);
        id
    }

    fn overlay_mut(&mut self, id: Id) -> Option<&mut SimOverlay> {
        self.nodes.get_mut(id as usize).and_then(Option::as_mut)
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    /// One-way latency between two nodes: fixed per pair.
    fn latency(&self, a: Id, b: Id) -> Duration {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let h = u64::from(lo).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(hi).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let h = h ^ (h >> 29) ^ self.config.seed;
        let span = self.config.latency_max.saturating_sub(self.config.latency_min).as_micros() as u64;
        self.config.latency_min + Duration::from_micros(h.wrapping_mul(0x2545_f491_4f6c_dd1d) % span.max(1))
    }

    fn reachable(&self, from: Id, to: Id) -> bool {
        self.live.contains(&to) && self.group[from as usize] == self.group[to as usize]
    }

    fn dispatch(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Message { from, to, message } => {
                if !self.live.contains(&to) {
                    return;
                }
                self.stats.messages += 1;
                if let Message::Broadcast(super::plumtree::Message::Gossip { id, .. }) = &message {
                    if let Some(s) = self.spreads.get_mut(id) {
                        s.payloads += 1;
                    }
                }
                if let Some(o) = self.overlay_mut(to) {
                    o.handle(now, from, message);
                }
                self.drain(to);
            }
            Event::Timer { node, timer } => {
                if let Some(o) = self.overlay_mut(node) {
                    o.timer(now, timer);
                }
                self.drain(node);
            }
            Event::Failed { node, peer } => {
                if let Some(o) = self.overlay_mut(node) {
                    o.peer_failed(now, &peer);
                }
                self.drain(node);
            }
            Event::Join { node } => self.rejoin(node),
            Event::Learn { node } => {
                if !self.live.contains(&node) {
                    return;
                }
                if let Some(peer) = self.random_joined(node) {
                    if let Some(o) = self.overlay_mut(node) {
                        o.learn(now, peer);
                    }
                    self.drain(node);
                }
                self.push(now + self.config.learn_interval, Event::Learn { node });
            }
            Event::Flood { from, to, id, hops } => {
                if !self.live.contains(&to) {
                    return;
                }
                let Some(spread) = self.floods.get_mut(&id) else { return };
                spread.payloads += 1;
                if spread.delivered.contains_key(&to) {
                    return;
                }
                spread.delivered.insert(to, (now, hops));
                self.flood_on(to, Some(from), id, hops);
            }
        }
    }

    fn flood_on(&mut self, node: Id, from: Option<Id>, id: MessageId, hops: u16) {
        let Some(o) = self.node(node) else { return };
        let targets: Vec<Id> = o.membership().active().iter().filter(|p| Some(**p) != from).copied().collect();
        for to in targets {
            if self.reachable(node, to) {
                let at = self.now + self.latency(node, to);
                self.push(at, Event::Flood { from: node, to, id, hops: hops + 1 });
            }
        }
    }

    /// Hands `node` a random contact that has been in the overlay, as a bootstrap service
    /// would (the very first node has nobody to join through, and is simply in).
    fn rejoin(&mut self, node: Id) {
        if !self.live.contains(&node) {
            return;
        }
        let contact = self.random_joined(node);
        if self.joined_set.insert(node) {
            self.joined.push((node, self.now));
        } else {
            self.stats.rejoins += 1;
        }
        let Some(contact) = contact else { return };
        let now = self.now;
        if let Some(o) = self.overlay_mut(node) {
            o.join(now, contact);
        }
        self.drain(node);
    }

    /// A random live node other than `node` that has settled in the overlay.
    fn random_joined(&mut self, node: Id) -> Option<Id> {
        if self.joined.len() > 2 * self.live.len() {
            let live = &self.live;
            self.joined.retain(|(id, _)| live.contains(id));
            self.joined_set.retain(|id| live.contains(id));
        }
        let first = self.joined.first().map(|(id, _)| *id);
        for _ in 0..64 {
            if self.joined.is_empty() {
                return None;
            }
            let (c, at) = self.joined[self.rng.next_u32() as usize % self.joined.len()];
            let settled = Some(c) == first
                || (at + SETTLE <= self.now && self.node(c).is_some_and(|o| !o.membership().active().is_empty()));
            if c != node && self.live.contains(&c) && settled {
                return Some(c);
            }
        }
        first.filter(|f| *f != node && self.live.contains(f))
    }

    fn drain(&mut self, node: Id) {
        let mut outs = Vec::new();
        if let Some(o) = self.overlay_mut(node) {
            while let Some(out) = o.poll() {
                outs.push(out);
            }
        }
        for out in outs {
            match out {
                Out::Send(to, message) => self.send(node, to, message),
                Out::Schedule(at, timer) => self.push(at, Event::Timer { node, timer }),
                Out::Isolated => {
                    // The bootstrap service answers after a round trip.
                    let at = self.now + self.config.latency_max * 2;
                    self.push(at, Event::Join { node });
                }
                Out::Deliver { id, hops, .. } => {
                    let now = self.now;
                    if let Some(s) = self.spreads.get_mut(&id) {
                        s.delivered.entry(node).or_insert((now, hops));
                    }
                }
                Out::LookupDone(done) => {
                    if self.asked.remove(&(node, done.id)) {
                        self.lookups.push((node, done));
                    }
                }
                Out::NeighborUp(_) | Out::NeighborDown(_) => self.stats.view_changes += 1,
            }
        }
    }

    fn send(&mut self, from: Id, to: Id, message: Message<Id, SimRecord>) {
        if self.reachable(from, to) {
            let at = self.now + self.latency(from, to);
            self.push(at, Event::Message { from, to, message });
            return;
        }
        // Membership and broadcast traffic goes over links: the sender learns the peer is gone
        // (an existing link breaks, a new one fails to open). DHT requests simply time out.
        if matches!(message, Message::Dht(_)) {
            return;
        }
        let linked = self.node(from).is_some_and(|o| o.membership().active().contains(&to));
        let delay = if linked { self.config.failure_detection } else { self.config.dial_timeout };
        let at = self.now + delay;
        self.push(at, Event::Failed { node: from, peer: to });
    }
}
