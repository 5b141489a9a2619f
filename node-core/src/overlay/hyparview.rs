//! HyParView membership (Leitão, Pereira, Rodrigues, DSN 2007): a small active view of peers we
//! keep links with (symmetric: if A has B, B has A) and a larger passive view of peers we know,
//! kept fresh by periodic shuffles and drawn on when an active peer fails. Sans-IO and generic
//! over the peer id, like iroh-gossip's `proto`: inputs go in with the time, outputs (messages,
//! view changes, timers) come out of [`HyParView::poll`].
//!
//! Everything a peer sends is bounded before it is used: walk lengths are clamped to ours,
//! shuffles to the size we would send, and views never exceed their capacities, so a lying peer
//! cannot grow our state or push honest peers out of the views en masse.

mod messages;

pub use messages::{Message, Out, Priority, Timer};

use crate::bounded::TokenBucket;
use crate::time::Instant;
use core::time::Duration;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The paper's parameters (its defaults, for ~10,000 nodes), and the rates at which peers' messages
/// may change our views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Active view size (the paper's fanout + 1).
    pub active_capacity: usize,
    /// Passive view size.
    pub passive_capacity: usize,
    /// Active random walk length: how far a join travels.
    pub active_walk: u16,
    /// Passive random walk length: at which hop a joiner is put in a passive view.
    pub passive_walk: u16,
    /// Active peers sent in a shuffle.
    pub shuffle_active: usize,
    /// Passive peers sent in a shuffle.
    pub shuffle_passive: usize,
    /// How far a shuffle walks.
    pub shuffle_walk: u16,
    /// How often we shuffle.
    pub shuffle_interval: Duration,
    /// How long a neighbor request may go unanswered before another candidate is asked.
    pub neighbor_timeout: Duration,
    /// How long peers that refused us, left us or timed out are passed over when refilling.
    pub retry_interval: Duration,
    /// Active peers others' requests may push out at once…
    pub eviction_burst: u32,
    /// …and then one more per this interval.
    pub eviction_interval: Duration,
    /// Below this many active peers the node's neighbor requests insist ([`Priority::High`]),
    /// and with nobody left to ask it asks its driver for a contact to join through again
    /// ([`Out::Isolated`]), at most once per retry interval.
    pub min_active: usize,
    /// On each shuffle, the chance (in percent) that a node with a full active view swaps a
    /// random active peer for a passive one. Off by default: after a partition, the nodes left
    /// below capacity keep asking their passive peers and re-merge the halves; rotation is for
    /// overlays where both halves could end up saturated, and it costs broadcast efficiency
    /// (every rewiring cuts PlumTree's tree somewhere: at 10,000 simulated nodes 1 % a minute
    /// took the redundancy from 0.03 to 0.23).
    pub rotation_percent: u32,
    /// Passive peers others' samples may replace at once…
    pub passive_churn_burst: u32,
    /// …and then one more per this interval.
    pub passive_churn_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            active_capacity: 5,
            passive_capacity: 30,
            active_walk: 6,
            passive_walk: 3,
            shuffle_active: 3,
            shuffle_passive: 4,
            shuffle_walk: 6,
            shuffle_interval: Duration::from_secs(60),
            neighbor_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(10),
            eviction_burst: 2,
            eviction_interval: Duration::from_secs(10),
            min_active: 2,
            rotation_percent: 0,
            passive_churn_burst: 16,
            passive_churn_interval: Duration::from_secs(3),
        }
    }
}

impl Config {
    /// The parameters for an active view of `active` peers (at least one), the rest scaled as the
    /// paper scales them (passive view six times the active one).
    pub fn with_active_capacity(active: usize) -> Self {
        let active = active.max(1);
        Config { active_capacity: active, passive_capacity: active * 6, min_active: active.min(2), ..Config::default() }
    }

    fn sample_len(&self) -> usize {
        1 + self.shuffle_active + self.shuffle_passive
    }
}

/// One node's membership state.
#[derive(Debug)]
pub struct HyParView<P: Ord + Clone> {
    me: P,
    config: Config,
    active: BTreeSet<P>,
    /// When each active peer came in.
    active_since: BTreeMap<P, Instant>,
    /// Active peers the layer above relies on.
    tree: BTreeSet<P>,
    passive: BTreeSet<P>,
    /// Peers we asked to be neighbors and have not answered.
    asked: BTreeSet<P>,
    /// Peers that refused us, left us or stayed silent: not asked again until the retry timer.
    spurned: BTreeSet<P>,
    retry_armed: bool,
    /// When we last asked the driver for a contact.
    last_isolated: Option<Instant>,
    /// Shuffle replies we still take (one per shuffle we started).
    replies_expected: u8,
    evictions: TokenBucket,
    passive_churn: TokenBucket,
    rng: ChaCha8Rng,
    out: VecDeque<Out<P>>,
}

/// Who decided a change to a view: us, or a peer's message (which is rate-limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Us,
    Peer,
}

impl<P: Ord + Clone + core::fmt::Debug> HyParView<P> {
    /// A node `me` with no peers yet; the first shuffle is scheduled from `now`.
    pub fn new(me: P, config: Config, seed: u64, now: Instant) -> Self {
        let mut hv = HyParView {
            me,
            active: BTreeSet::new(),
            active_since: BTreeMap::new(),
            tree: BTreeSet::new(),
            passive: BTreeSet::new(),
            asked: BTreeSet::new(),
            spurned: BTreeSet::new(),
            retry_armed: false,
            last_isolated: None,
            replies_expected: 0,
            evictions: TokenBucket::new(config.eviction_burst, config.eviction_interval),
            passive_churn: TokenBucket::new(config.passive_churn_burst, config.passive_churn_interval),
            rng: ChaCha8Rng::seed_from_u64(seed),
            out: VecDeque::new(),
            config,
        };
        hv.schedule_shuffle(now);
        hv
    }

    /// Who we are.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The active view.
    pub fn active(&self) -> &BTreeSet<P> {
        &self.active
    }

    /// Peers we asked to be neighbors that have not answered yet.
    pub fn asked(&self) -> &BTreeSet<P> {
        &self.asked
    }

    /// The passive view.
    pub fn passive(&self) -> &BTreeSet<P> {
        &self.passive
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Out<P>> {
        self.out.pop_front()
    }

    /// Joins the overlay through `contact` (again, if the views have run dry).
    pub fn join(&mut self, now: Instant, contact: P) {
        if contact == self.me || self.active.contains(&contact) {
            return;
        }
        self.add_active(now, contact.clone(), Cause::Us);
        self.send(contact, Message::Join);
    }

    /// The driver heard of `peer` (from a bootstrap server, peer exchange, the LAN): a
    /// passive candidate.
    /// While the active view has room it is asked at once: in a mesh smaller than the active
    /// view, that is what makes every node a neighbor of every other (a full mesh).
    pub fn learn(&mut self, now: Instant, peer: P) {
        if self.active.contains(&peer) || self.passive.contains(&peer) {
            return;
        }
        self.add_passive(now, peer, Cause::Us);
        self.refill(now);
    }

    /// The link to `peer` failed: it leaves the views, and passive peers take its place.
    pub fn peer_failed(&mut self, now: Instant, peer: &P) {
        self.asked.remove(peer);
        self.passive.remove(peer);
        self.spurned.remove(peer);
        self.active_since.remove(peer);
        if self.active.remove(peer) {
            self.out.push_back(Out::NeighborDown(peer.clone()));
        }
        self.refill(now);
    }

    /// A message from `from`.
    pub fn handle(&mut self, now: Instant, from: P, message: Message<P>) {
        if from == self.me {
            return;
        }
        match message {
            Message::Join => self.on_join(now, from),
            Message::ForwardJoin { peer, ttl } => {
                // Walks travel over active links only; a stranger cannot start one here.
                if self.active.contains(&from) {
                    self.on_forward_join(now, from, peer, ttl);
                }
            }
            Message::Neighbor(priority) => {
                let accepted = self.active.contains(&from)
                    || self.active.len() < self.config.active_capacity
                    || (priority == Priority::High && self.may_evict(now));
                if accepted {
                    self.asked.remove(&from);
                    self.add_active(now, from.clone(), Cause::Us);
                }
                self.send(from, Message::NeighborReply { accepted });
            }
            Message::NeighborReply { accepted } => {
                if !self.asked.remove(&from) {
                    return; // not asked: a peer cannot push itself in this way
                }
                if accepted {
                    self.add_active(now, from, Cause::Us);
                } else {
                    self.add_passive(now, from.clone(), Cause::Us);
                    self.spurned.insert(from);
                    self.refill(now);
                }
            }
            Message::Disconnect { alive } => {
                self.active_since.remove(&from);
                if self.active.remove(&from) {
                    self.out.push_back(Out::NeighborDown(from.clone()));
                    if alive {
                        self.add_passive(now, from.clone(), Cause::Us);
                        self.spurned.insert(from);
                    }
                    self.refill(now);
                }
            }
            Message::Shuffle { origin, peers, ttl } => {
                if self.active.contains(&from) {
                    self.on_shuffle(now, from, origin, peers, ttl);
                }
            }
            Message::ShuffleReply { peers } => {
                if self.replies_expected == 0 {
                    return;
                }
                self.replies_expected -= 1;
                for p in self.bounded_sample(peers) {
                    self.add_passive(now, p, Cause::Peer);
                }
            }
        }
    }

    /// A timer scheduled through [`Out::Schedule`] is due.
    pub fn timer(&mut self, now: Instant, timer: Timer<P>) {
        match timer {
            Timer::Neighbor(peer) => {
                // Silent: not a peer to count on. Someone else is asked.
                if self.asked.remove(&peer) {
                    self.passive.remove(&peer);
                    self.refill(now);
                }
            }
            Timer::Retry => {
                self.retry_armed = false;
                self.spurned.clear();
                self.refill(now);
            }
            Timer::Shuffle => {
                if let Some(to) = self.random_active_except(&[]) {
                    let mut peers = vec![self.me.clone()];
                    let active = self.active.clone();
                    peers.extend(self.random_sample(&active, self.config.shuffle_active));
                    let passive = self.passive.clone();
                    peers.extend(self.random_sample(&passive, self.config.shuffle_passive));
                    let ttl = self.config.shuffle_walk;
                    // One reply per shuffle in flight; an old one may still come.
                    self.replies_expected = self.replies_expected.saturating_add(1).min(2);
                    self.send(to, Message::Shuffle { origin: self.me.clone(), peers, ttl });
                }
                self.rotate(now);
                self.refill(now);
                self.schedule_shuffle(now);
            }
        }
    }

    /// Now and then, with a full view, asks a passive peer in (it takes us within its eviction
    /// budget; when it does, one of our active peers makes room).
    fn rotate(&mut self, now: Instant) {
        let full = self.active.len() >= self.config.active_capacity;
        if !full || self.rng.next_u32() % 100 >= self.config.rotation_percent {
            return;
        }
        let candidates: BTreeSet<P> =
            self.passive.iter().filter(|p| !self.asked.contains(*p) && !self.spurned.contains(*p)).cloned().collect();
        if let Some(peer) = self.random_sample(&candidates, 1).pop() {
            self.ask(now, peer, Priority::High);
        }
    }

    fn on_join(&mut self, now: Instant, joiner: P) {
        let taken =
            self.active.contains(&joiner) || self.active.len() < self.config.active_capacity || self.may_evict(now);
        let others: Vec<P> = self.active.iter().filter(|p| **p != joiner).cloned().collect();
        let ttl = self.config.active_walk;
        if taken {
            self.add_active(now, joiner.clone(), Cause::Us);
            for peer in others {
                self.send(peer, Message::ForwardJoin { peer: joiner.clone(), ttl });
            }
        } else {
            // Full and out of budget: the joiner finds its neighbors through one walk instead.
            self.send(joiner.clone(), Message::Disconnect { alive: true });
            if let Some(next) = self.random_active_except(&[&joiner]) {
                self.send(next, Message::ForwardJoin { peer: joiner, ttl });
            }
        }
    }

    fn on_forward_join(&mut self, now: Instant, from: P, joiner: P, ttl: u16) {
        if joiner == self.me {
            return;
        }
        // A walk never runs longer than ours: a TTL of 1000 is our walk length.
        let ttl = ttl.min(self.config.active_walk);
        if ttl == 0 || self.active.len() <= 1 {
            self.ask_joiner(now, joiner);
            return;
        }
        if ttl == self.config.passive_walk {
            self.add_passive(now, joiner.clone(), Cause::Peer);
        }
        match self.random_active_except(&[&from, &joiner]) {
            Some(next) => self.send(next, Message::ForwardJoin { peer: joiner, ttl: ttl - 1 }),
            None => self.ask_joiner(now, joiner),
        }
    }

    /// The end of a join walk: ask the joiner to be our neighbor (it says yes while it has
    /// room). Making room here is a peer's doing, so it spends the eviction budget.
    fn ask_joiner(&mut self, now: Instant, joiner: P) {
        if self.active.contains(&joiner) || self.asked.contains(&joiner) {
            return;
        }
        let room = self.active.len() + self.asked.len() < self.config.active_capacity;
        if room || self.may_evict(now) {
            self.ask(now, joiner, Priority::High);
        } else {
            self.add_passive(now, joiner, Cause::Peer);
        }
    }

    fn on_shuffle(&mut self, now: Instant, from: P, origin: P, peers: Vec<P>, ttl: u16) {
        let peers = self.bounded_sample(peers);
        let ttl = ttl.min(self.config.shuffle_walk);
        if ttl > 1 && self.active.len() > 1 {
            if let Some(next) = self.random_active_except(&[&from, &origin]) {
                self.send(next, Message::Shuffle { origin, peers, ttl: ttl - 1 });
                return;
            }
        }
        if origin == self.me {
            return;
        }
        let passive = self.passive.clone();
        let reply = self.random_sample(&passive, peers.len());
        self.send(origin, Message::ShuffleReply { peers: reply });
        for p in peers {
            self.add_passive(now, p, Cause::Peer);
        }
    }

    fn schedule_shuffle(&mut self, now: Instant) {
        self.out.push_back(Out::Schedule(now + self.config.shuffle_interval, Timer::Shuffle));
    }

    fn send(&mut self, to: P, message: Message<P>) {
        self.out.push_back(Out::Send(to, message));
    }

    /// Puts `peer` in the active view, making room by moving a random active peer to the
    /// passive view (and telling it). Callers have checked the eviction budget where a peer's
    /// message is the cause.
    fn add_active(&mut self, now: Instant, peer: P, cause: Cause) {
        if peer == self.me || self.active.contains(&peer) {
            return;
        }
        if self.active.len() >= self.config.active_capacity {
            if let Some(out) = self.victim(now, &peer) {
                self.active_since.remove(&out);
                self.active.remove(&out);
                self.send(out.clone(), Message::Disconnect { alive: true });
                self.out.push_back(Out::NeighborDown(out.clone()));
                self.add_passive(now, out, cause);
            }
        }
        self.passive.remove(&peer);
        self.spurned.remove(&peer);
        self.active_since.insert(peer.clone(), now);
        self.active.insert(peer.clone());
        self.out.push_back(Out::NeighborUp(peer));
    }

    /// Whether a peer's request may push an active peer out: freely while a young one (in the
    /// view for less than the eviction interval) can go, since the peers a flood of requests
    /// brings in are all young; an established peer only within the eviction budget.
    fn may_evict(&mut self, now: Instant) -> bool {
        let young = self.active_since.values().any(|since| *since + self.config.eviction_interval > now);
        young || self.evictions.take(now)
    }

    /// The active peer that makes room for `newcomer`: a young one if there is one (see
    /// [`Self::may_evict`]), and among those, or else among all, one the layer above does not
    /// lean on ([`Self::set_tree`]) if possible, so the broadcast tree is not cut.
    fn victim(&mut self, now: Instant, newcomer: &P) -> Option<P> {
        let young: BTreeSet<P> = self
            .active_since
            .iter()
            .filter(|(p, since)| *p != newcomer && **since + self.config.eviction_interval > now)
            .map(|(p, _)| p.clone())
            .collect();
        let pool =
            if young.is_empty() { self.active.iter().filter(|p| *p != newcomer).cloned().collect() } else { young };
        let spare: BTreeSet<P> = pool.difference(&self.tree).cloned().collect();
        let pool = if spare.is_empty() { pool } else { spare };
        self.random_sample(&pool, 1).pop()
    }

    /// The active peers the layer above relies on (PlumTree's eager peers, the links of its
    /// broadcast tree): when a peer must make room, others go first.
    pub fn set_tree(&mut self, peers: &BTreeSet<P>) {
        self.tree.clone_from(peers);
    }

    /// Remembers `peer` as a passive peer. When the view is full a random entry makes room,
    /// at the rate the passive churn budget allows if a peer's message is the cause.
    fn add_passive(&mut self, now: Instant, peer: P, cause: Cause) {
        if peer == self.me || self.active.contains(&peer) || self.passive.contains(&peer) {
            return;
        }
        if self.passive.len() >= self.config.passive_capacity {
            if cause == Cause::Peer && !self.passive_churn.take(now) {
                return;
            }
            let passive = self.passive.clone();
            if let Some(victim) = self.random_sample(&passive, 1).pop() {
                self.passive.remove(&victim);
                self.spurned.remove(&victim);
            }
        }
        self.passive.insert(peer);
    }

    /// Below capacity: asks passive peers (not already asked, not recently spurned) to be
    /// neighbors, one per free slot; with nobody left to ask, tries again after the retry
    /// interval.
    fn refill(&mut self, now: Instant) {
        while self.active.len() + self.asked.len() < self.config.active_capacity {
            let candidates: BTreeSet<P> = self
                .passive
                .iter()
                .filter(|p| !self.asked.contains(*p) && !self.spurned.contains(*p))
                .cloned()
                .collect();
            let Some(peer) = self.random_sample(&candidates, 1).pop() else {
                let quiet = self.last_isolated.is_none_or(|at| at + self.config.retry_interval <= now);
                if self.active.len() < self.config.min_active && self.asked.is_empty() && quiet {
                    self.last_isolated = Some(now);
                    self.out.push_back(Out::Isolated);
                }
                if !self.retry_armed && !self.spurned.is_empty() {
                    self.retry_armed = true;
                    let at = now + self.config.retry_interval;
                    self.out.push_back(Out::Schedule(at, Timer::Retry));
                }
                return;
            };
            // Fewer than `min_active` neighbors is one failure from isolation (or a pair of
            // nodes stranded together): such a node insists, within the others' budgets.
            let priority = if self.active.len() < self.config.min_active { Priority::High } else { Priority::Low };
            self.ask(now, peer, priority);
        }
    }

    fn ask(&mut self, now: Instant, peer: P, priority: Priority) {
        self.asked.insert(peer.clone());
        let at = now + self.config.neighbor_timeout;
        self.out.push_back(Out::Schedule(at, Timer::Neighbor(peer.clone())));
        self.send(peer, Message::Neighbor(priority));
    }

    fn random_active_except(&mut self, except: &[&P]) -> Option<P> {
        let choices: Vec<P> = self.active.iter().filter(|p| !except.contains(p)).cloned().collect();
        if choices.is_empty() {
            return None;
        }
        let i = self.rng.next_u32() as usize % choices.len();
        choices.into_iter().nth(i)
    }

    /// Up to `n` distinct members of `set`, at random.
    fn random_sample(&mut self, set: &BTreeSet<P>, n: usize) -> Vec<P> {
        let mut all: Vec<P> = set.iter().cloned().collect();
        let mut picked = Vec::new();
        while picked.len() < n && !all.is_empty() {
            let i = self.rng.next_u32() as usize % all.len();
            picked.push(all.swap_remove(i));
        }
        picked
    }

    /// A peer's sample cut to what we would send ourselves, without us and without repeats.
    fn bounded_sample(&self, peers: Vec<P>) -> Vec<P> {
        let mut seen = BTreeSet::new();
        peers.into_iter().filter(|p| *p != self.me && seen.insert(p.clone())).take(self.config.sample_len()).collect()
    }
}

#[cfg(test)]
mod tests;
