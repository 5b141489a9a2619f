//! PlumTree broadcast (Leitão, Pereira, Rodrigues, SRDS 2007) over the HyParView active view:
//! a message is pushed in full along a spanning tree (the *eager* peers) and announced by id to
//! everyone else (the *lazy* peers). A duplicate prunes the link it came over out of the tree;
//! an announcement of a message that does not arrive in time grafts the announcer back in, so the
//! tree heals itself when a node on it fails. Sans-IO and generic over peer and message id.
//!
//! Everything a peer can make us hold is bounded: the payload cache (for grafts) and the set of
//! announced-but-missing ids are capped in count and age, announcements are capped per message,
//! and an announcement nobody backs up costs one graft and is forgotten.

use crate::bounded::BoundedSet;
use crate::time::Instant;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// PlumTree's timers and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long an announced message may take to arrive before we graft the announcer.
    pub graft_timeout: Duration,
    /// How long each further announcer gets after the first graft.
    pub graft_retry: Duration,
    /// A lazy path this many hops shorter than the eager one replaces it in the tree.
    pub optimization_threshold: u16,
    /// How long payloads stay available for grafts.
    pub cache_retention: Duration,
    /// Most payloads kept for grafts.
    pub cache_capacity: usize,
    /// Most message ids remembered as delivered (duplicates of older ones are delivered again
    /// only if they are still travelling, which their hop limit prevents).
    pub seen_capacity: usize,
    /// Most announced-but-missing messages tracked at once.
    pub missing_capacity: usize,
    /// Most announcers remembered per missing message.
    pub announcers_per_message: usize,
    /// Ids per announcement message.
    pub ihave_batch: usize,
    /// Hops after which a message travels no further.
    pub max_hops: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            graft_timeout: Duration::from_millis(500),
            graft_retry: Duration::from_millis(250),
            optimization_threshold: 3,
            cache_retention: Duration::from_secs(30),
            cache_capacity: 4096,
            seen_capacity: 16_384,
            missing_capacity: 1024,
            announcers_per_message: 4,
            ihave_batch: 64,
            max_hops: 64,
        }
    }
}

/// What PlumTree peers say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<I> {
    /// A message in full, `hops` links from its origin.
    Gossip {
        /// Its id (unique per message, e.g. a hash of it).
        id: I,
        /// Links travelled so far.
        hops: u16,
        /// The message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// "I have these": ids with the hop count they reached us at.
    IHave(Vec<(I, u16)>),
    /// "Put me back in your tree", and send `id` if given.
    Graft(Option<I>),
    /// "Take me out of your tree": I got that message already.
    Prune,
}

/// A timer the driver arms and hands back through [`PlumTree::timer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer<I> {
    /// An announced message may be late.
    Missing(I),
}

/// What PlumTree asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<P, I> {
    /// Send `message` to neighbor `peer`.
    Send(P, Message<I>),
    /// A new message for the application.
    Deliver {
        /// Its id.
        id: I,
        /// The neighbor it came from.
        from: P,
        /// Links it travelled.
        hops: u16,
        /// The message.
        payload: Vec<u8>,
    },
    /// Call [`PlumTree::timer`] with this timer at the given time.
    Schedule(Instant, Timer<I>),
}

/// A delivered message, kept for grafts and for tree optimisation.
#[derive(Debug)]
struct Cached<P> {
    payload: Vec<u8>,
    from: Option<P>,
    hops: u16,
    expires: Instant,
}

/// A message announced to us that has not arrived.
#[derive(Debug)]
struct Missing<P> {
    announcers: VecDeque<(P, u16)>,
    expires: Instant,
}

/// Counters for the bench and `stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Payloads received (new or not).
    pub payloads_received: u64,
    /// Payloads received that were already delivered.
    pub duplicates: u64,
    /// Grafts sent for missing messages.
    pub grafts: u64,
    /// Announcements ignored because the missing set was full.
    pub announcements_dropped: u64,
}

/// One node's broadcast state.
#[derive(Debug)]
pub struct PlumTree<P: Ord + Clone, I: Ord + Clone> {
    config: Config,
    eager: BTreeSet<P>,
    lazy: BTreeSet<P>,
    seen: BoundedSet<I>,
    cache: BTreeMap<I, Cached<P>>,
    cache_order: VecDeque<I>,
    missing: BTreeMap<I, Missing<P>>,
    stats: Stats,
    out: VecDeque<Out<P, I>>,
}

impl<P: Ord + Clone, I: Ord + Clone> PlumTree<P, I> {
    /// A node with no neighbors yet.
    pub fn new(config: Config) -> Self {
        PlumTree {
            seen: BoundedSet::new(config.seen_capacity),
            config,
            eager: BTreeSet::new(),
            lazy: BTreeSet::new(),
            cache: BTreeMap::new(),
            cache_order: VecDeque::new(),
            missing: BTreeMap::new(),
            stats: Stats::default(),
            out: VecDeque::new(),
        }
    }

    /// The neighbors messages are pushed to in full.
    pub fn eager(&self) -> &BTreeSet<P> {
        &self.eager
    }

    /// The neighbors messages are announced to.
    pub fn lazy(&self) -> &BTreeSet<P> {
        &self.lazy
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Announced messages still awaited.
    pub fn missing_len(&self) -> usize {
        self.missing.len()
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Out<P, I>> {
        self.out.pop_front()
    }

    /// A new neighbor: messages go to it in full until it prunes itself. It also hears the ids
    /// of the messages still cached (the newest [`Config::ihave_batch`]), so a node that joins,
    /// or rejoins after its links churned, grafts what went by while it had no way in.
    pub fn neighbor_up(&mut self, peer: P) {
        self.lazy.remove(&peer);
        self.eager.insert(peer.clone());
        let recent: Vec<(I, u16)> = self
            .cache_order
            .iter()
            .rev()
            .filter_map(|id| self.cache.get(id).map(|c| (id.clone(), c.hops.saturating_add(1))))
            .take(self.config.ihave_batch)
            .collect();
        if !recent.is_empty() {
            self.send(peer, Message::IHave(recent));
        }
    }

    /// A neighbor left.
    pub fn neighbor_down(&mut self, peer: &P) {
        self.eager.remove(peer);
        self.lazy.remove(peer);
        for m in self.missing.values_mut() {
            m.announcers.retain(|(p, _)| p != peer);
        }
    }

    /// Broadcasts a message of ours. Returns false if `id` was seen already.
    pub fn broadcast(&mut self, now: Instant, id: I, payload: Vec<u8>) -> bool {
        if !self.seen.insert(id.clone()) {
            return false;
        }
        self.push(now, id, None, 0, payload);
        true
    }

    /// A message from `from`, over a link the driver authenticated (see [`Self::is_neighbor`]
    /// for what a non-neighbor's message may do).
    pub fn handle(&mut self, now: Instant, from: P, message: Message<I>) {
        self.expire(now);
        match message {
            Message::Gossip { id, hops, payload } => self.on_gossip(now, from, id, hops, payload),
            Message::IHave(ids) => {
                for (id, hops) in ids.into_iter().take(self.config.ihave_batch) {
                    self.on_ihave(now, from.clone(), id, hops);
                }
            }
            Message::Graft(id) => {
                if self.is_neighbor(&from) {
                    self.lazy.remove(&from);
                    self.eager.insert(from.clone());
                }
                if let Some(id) = id {
                    if let Some(c) = self.cache.get(&id) {
                        let message =
                            Message::Gossip { id, hops: c.hops.saturating_add(1), payload: c.payload.clone() };
                        self.send(from, message);
                    }
                }
            }
            Message::Prune => {
                if self.eager.remove(&from) {
                    self.lazy.insert(from);
                }
            }
        }
    }

    /// Whether `peer` is a neighbor (in the tree or announced to). Messages from other peers —
    /// a link the membership is still settling, a view the two ends briefly disagree on — are
    /// still delivered and answered, but never change the tree: a message must not be lost
    /// because it crossed a link in the moment two views disagreed.
    fn is_neighbor(&self, peer: &P) -> bool {
        self.eager.contains(peer) || self.lazy.contains(peer)
    }

    /// A timer scheduled through [`Out::Schedule`] is due.
    pub fn timer(&mut self, now: Instant, timer: Timer<I>) {
        let Timer::Missing(id) = timer;
        self.expire(now);
        let Some(missing) = self.missing.get_mut(&id) else { return };
        let Some((peer, _)) = missing.announcers.pop_front() else {
            self.missing.remove(&id);
            return;
        };
        if missing.announcers.is_empty() {
            // The last announcer gets its graft; if it lies, nothing is left to wait for.
            self.missing.remove(&id);
        } else {
            self.out.push_back(Out::Schedule(now + self.config.graft_retry, Timer::Missing(id.clone())));
        }
        self.stats.grafts += 1;
        if self.is_neighbor(&peer) {
            self.lazy.remove(&peer);
            self.eager.insert(peer.clone());
        }
        self.send(peer, Message::Graft(Some(id)));
    }

    fn on_gossip(&mut self, now: Instant, from: P, id: I, hops: u16, payload: Vec<u8>) {
        self.stats.payloads_received += 1;
        if !self.seen.insert(id.clone()) {
            // A duplicate: this link is not needed in the tree.
            self.stats.duplicates += 1;
            if self.is_neighbor(&from) {
                self.eager.remove(&from);
                self.lazy.insert(from.clone());
                self.send(from, Message::Prune);
            }
            return;
        }
        self.missing.remove(&id);
        if self.is_neighbor(&from) {
            self.lazy.remove(&from);
            self.eager.insert(from.clone());
        }
        self.out.push_back(Out::Deliver { id: id.clone(), from: from.clone(), hops, payload: payload.clone() });
        if hops < self.config.max_hops {
            self.push(now, id, Some(from), hops, payload);
        }
    }

    fn on_ihave(&mut self, now: Instant, from: P, id: I, hops: u16) {
        if self.seen.contains(&id) {
            // Tree optimisation: a much shorter path exists through `from`; take it.
            if let Some(c) = self.cache.get(&id).filter(|_| self.is_neighbor(&from)) {
                if hops.saturating_add(self.config.optimization_threshold) < c.hops {
                    if let Some(parent) = c.from.clone() {
                        self.lazy.remove(&from);
                        self.eager.insert(from.clone());
                        self.send(from, Message::Graft(None));
                        if self.eager.remove(&parent) {
                            self.lazy.insert(parent.clone());
                        }
                        self.send(parent, Message::Prune);
                    }
                }
            }
            return;
        }
        let expires = now + self.config.cache_retention;
        let full = self.missing.len() >= self.config.missing_capacity;
        match self.missing.get_mut(&id) {
            Some(m) => {
                if m.announcers.len() < self.config.announcers_per_message
                    && !m.announcers.iter().any(|(p, _)| *p == from)
                {
                    m.announcers.push_back((from, hops));
                }
            }
            None if full => {
                self.stats.announcements_dropped += 1;
            }
            None => {
                self.missing.insert(id.clone(), Missing { announcers: VecDeque::from([(from, hops)]), expires });
                self.out.push_back(Out::Schedule(now + self.config.graft_timeout, Timer::Missing(id)));
            }
        }
    }

    /// Pushes a message to the eager peers and announces it to the lazy ones (not back to
    /// `from`), and keeps it for grafts.
    fn push(&mut self, now: Instant, id: I, from: Option<P>, hops: u16, payload: Vec<u8>) {
        let next = hops.saturating_add(1);
        let eager: Vec<P> = self.eager.iter().filter(|p| Some(*p) != from.as_ref()).cloned().collect();
        for peer in eager {
            self.send(peer, Message::Gossip { id: id.clone(), hops: next, payload: payload.clone() });
        }
        let lazy: Vec<P> = self.lazy.iter().filter(|p| Some(*p) != from.as_ref()).cloned().collect();
        for peer in lazy {
            self.send(peer, Message::IHave(vec![(id.clone(), next)]));
        }
        self.remember(now, id, from, hops, payload);
    }

    fn remember(&mut self, now: Instant, id: I, from: Option<P>, hops: u16, payload: Vec<u8>) {
        if self.cache.len() >= self.config.cache_capacity {
            if let Some(old) = self.cache_order.pop_front() {
                self.cache.remove(&old);
            }
        }
        let expires = now + self.config.cache_retention;
        self.cache_order.push_back(id.clone());
        self.cache.insert(id, Cached { payload, from, hops, expires });
    }

    /// Forgets cached payloads and missing messages past their retention.
    fn expire(&mut self, now: Instant) {
        while let Some(id) = self.cache_order.front() {
            match self.cache.get(id) {
                Some(c) if c.expires > now => break,
                _ => {
                    if let Some(id) = self.cache_order.pop_front() {
                        self.cache.remove(&id);
                    }
                }
            }
        }
        self.missing.retain(|_, m| m.expires > now);
    }

    fn send(&mut self, to: P, message: Message<I>) {
        self.out.push_back(Out::Send(to, message));
    }
}

#[cfg(test)]
mod tests;
