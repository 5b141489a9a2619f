//! PlumTree broadcast (Leitão, Pereira, Rodrigues, SRDS 2007) over the HyParView active view:
//! a message is pushed in full along a spanning tree (the *eager* peers) and announced by id to
//! everyone else (the *lazy* peers). A duplicate prunes the link it came over out of the tree;
//! an announcement of a message that does not arrive in time grafts the announcer back in, so the
//! tree heals itself when a node on it fails. Sans-IO and generic over peer and message id.
//!
//! A sender's first message travels the shared tree; after that each recent sender has a tree
//! of its own ([`trees`]), shaped only by its own messages, so a sender who keeps talking
//! reaches everyone over short paths from itself rather than along a tree that suits whoever
//! shaped it.
//!
//! Everything a peer can make us hold is bounded: the payload cache (for grafts) and the set of
//! announced-but-missing ids are capped in count and age, announcements are capped per message,
//! an announcement nobody backs up costs one graft and is forgotten, and per-sender trees are
//! capped in number ([`Config::origin_trees`]).

mod trees;

use crate::bounded::BoundedSet;
use crate::time::Instant;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use trees::Trees;

/// PlumTree's timers and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long an announced message may take to arrive before we graft the announcer.
    pub graft_timeout: Duration,
    /// How long each further announcer gets after the first graft.
    pub graft_retry: Duration,
    /// With one tree for all (`origin_trees` zero), a lazy path more than this many hops
    /// shorter than the eager one replaces it (a margin, because every sender's messages pull
    /// the one tree their way).
    pub optimization_threshold: u16,
    /// The same in a sender's own tree, which only its own messages shape.
    pub origin_optimization_threshold: u16,
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
    /// Most senders with a tree of their own (zero: one tree for all, as in the paper).
    pub origin_trees: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            graft_timeout: Duration::from_millis(500),
            graft_retry: Duration::from_millis(250),
            optimization_threshold: 3,
            origin_optimization_threshold: 0,
            cache_retention: Duration::from_secs(30),
            cache_capacity: 4096,
            seen_capacity: 16_384,
            missing_capacity: 1024,
            announcers_per_message: 4,
            ihave_batch: 64,
            max_hops: 64,
            origin_trees: 64,
        }
    }
}

/// What PlumTree peers say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P, I> {
    /// A message in full, `hops` links from its origin.
    Gossip {
        /// Its id (unique per message, e.g. a hash of it).
        id: I,
        /// The node that broadcast it (it travels that node's tree).
        origin: P,
        /// Links travelled so far.
        hops: u16,
        /// Pushed along the shared tree (the pusher has no tree of `origin`'s yet): only such
        /// messages shape the shared tree.
        shared: bool,
        /// The message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// "I have these": ids with the hop count they reached us at.
    IHave(Vec<(I, u16)>),
    /// "Push to me" — in the tree the receiver uses for the origin of `id` (which it then
    /// sends), or of `origin` when there is no id (a shorter path).
    Graft {
        /// The message to send.
        id: Option<I>,
        /// Whose tree, when there is no `id` to tell.
        origin: Option<P>,
    },
    /// "Stop pushing `origin`'s messages to me": I got that one already, or have a shorter
    /// path. With `shared`, the message came along the shared tree, and the link leaves that
    /// tree too.
    Prune {
        /// Whose tree.
        origin: P,
        /// The shared tree too.
        shared: bool,
    },
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
    Send(P, Message<P, I>),
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

/// What a gossip message says about itself, apart from its payload.
struct Arrival<P, I> {
    id: I,
    origin: P,
    hops: u16,
    shared: bool,
}

/// A delivered message, kept for grafts and for tree optimisation.
#[derive(Debug)]
struct Cached<P> {
    payload: Vec<u8>,
    origin: P,
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
    /// Shorter paths grafted (tree optimisations).
    pub shorter_paths: u64,
}

/// One node's broadcast state.
#[derive(Debug)]
pub struct PlumTree<P: Ord + Clone, I: Ord + Clone> {
    config: Config,
    me: P,
    trees: Trees<P>,
    seen: BoundedSet<I>,
    cache: BTreeMap<I, Cached<P>>,
    cache_order: VecDeque<I>,
    missing: BTreeMap<I, Missing<P>>,
    stats: Stats,
    out: VecDeque<Out<P, I>>,
}

impl<P: Ord + Clone, I: Ord + Clone> PlumTree<P, I> {
    /// Node `me`, with no neighbors yet.
    pub fn new(me: P, config: Config) -> Self {
        PlumTree {
            me,
            seen: BoundedSet::new(config.seen_capacity),
            trees: Trees::new(config.origin_trees),
            config,
            cache: BTreeMap::new(),
            cache_order: VecDeque::new(),
            missing: BTreeMap::new(),
            stats: Stats::default(),
            out: VecDeque::new(),
        }
    }

    /// The shared tree's eager neighbors: a sender's first message is pushed to them in full,
    /// and each sender's own tree starts as a copy.
    pub fn eager(&self) -> &BTreeSet<P> {
        &self.trees.shared().eager
    }

    /// The shared tree's lazy neighbors, which hear only ids.
    pub fn lazy(&self) -> &BTreeSet<P> {
        &self.trees.shared().lazy
    }

    /// Every neighbor some tree leans on (pushed to, or pushing to us): the links the
    /// membership should spare when it must make room.
    pub fn tree_links(&self) -> BTreeSet<P> {
        self.trees.links()
    }

    /// How many senders have a tree of their own here.
    pub fn origin_trees(&self) -> usize {
        self.trees.origin_count()
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
        self.trees.neighbor_up(peer.clone());
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
        self.trees.neighbor_down(peer);
        for m in self.missing.values_mut() {
            m.announcers.retain(|(p, _)| p != peer);
        }
    }

    /// Broadcasts a message of ours. Returns false if `id` was seen already.
    pub fn broadcast(&mut self, now: Instant, id: I, payload: Vec<u8>) -> bool {
        if !self.seen.insert(id.clone()) {
            return false;
        }
        self.push(now, id, self.me.clone(), None, 0, payload);
        true
    }

    /// A message from `from`, over a link the driver authenticated (see [`Self::is_neighbor`]
    /// for what a non-neighbor's message may do).
    pub fn handle(&mut self, now: Instant, from: P, message: Message<P, I>) {
        self.expire(now);
        match message {
            Message::Gossip { id, origin, hops, shared, payload } => {
                self.on_gossip(now, from, Arrival { id, origin, hops, shared }, payload)
            }
            Message::IHave(ids) => {
                for (id, hops) in ids.into_iter().take(self.config.ihave_batch) {
                    self.on_ihave(now, from.clone(), id, hops);
                }
            }
            Message::Graft { id, origin } => {
                let cached = id.and_then(|id| self.cache.get(&id).map(|c| (id, c)));
                let origin = cached.as_ref().map(|(_, c)| c.origin.clone()).or(origin);
                let shared = origin.as_ref().is_none_or(|o| !self.trees.has(o));
                if let Some((id, c)) = cached {
                    let message = Message::Gossip {
                        id,
                        origin: c.origin.clone(),
                        hops: c.hops.saturating_add(1),
                        shared,
                        payload: c.payload.clone(),
                    };
                    self.send(from.clone(), message);
                }
                self.trees.promote(origin.as_ref(), shared, &from);
            }
            Message::Prune { origin, shared } => self.trees.demote(Some(&origin), shared, &from),
        }
    }

    /// Whether `peer` is a neighbor (in the tree or announced to). Messages from other peers —
    /// a link the membership is still settling, a view the two ends briefly disagree on — are
    /// still delivered and answered, but never change the tree: a message must not be lost
    /// because it crossed a link in the moment two views disagreed.
    fn is_neighbor(&self, peer: &P) -> bool {
        self.trees.shared().contains(peer)
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
        // Which tree `peer` joins shows when the message arrives (`on_gossip`).
        self.send(peer, Message::Graft { id: Some(id), origin: None });
    }

    fn on_gossip(&mut self, now: Instant, from: P, arrival: Arrival<P, I>, payload: Vec<u8>) {
        let Arrival { id, origin, hops, shared } = arrival;
        self.stats.payloads_received += 1;
        // Hop counts are the sender's word: only the origin itself may claim one hop.
        let plausible = hops >= 2 || (hops == 1 && from == origin);
        if !self.seen.insert(id.clone()) {
            // A duplicate: this link is not needed in the tree, unless it is the shorter path.
            self.stats.duplicates += 1;
            if !self.is_neighbor(&from) {
                return;
            }
            if let Some(parent) = plausible.then(|| self.take_shorter_parent(&id, &origin, &from, hops)).flatten() {
                // `parent` sent us this message: it is upstream, not a child to push to.
                self.trees.reparent(&origin, &from, false);
                self.send(parent, Message::Prune { origin, shared: false });
                return;
            }
            // In the shared tree the link goes both ways (the paper's rule); in the sender's
            // own tree only `from` stops pushing to us — whether we push to it is its to say.
            if shared {
                self.trees.demote(None, true, &from);
            }
            self.send(from, Message::Prune { origin, shared });
            return;
        }
        let announced = self.missing.remove(&id);
        if self.is_neighbor(&from) {
            if shared {
                self.trees.promote(None, true, &from);
            }
            self.trees.reparent(&origin, &from, true);
        }
        self.out.push_back(Out::Deliver { id: id.clone(), from: from.clone(), hops, payload: payload.clone() });
        if hops < self.config.max_hops {
            self.push(now, id, origin.clone(), Some(from.clone()), hops, payload);
        }
        // Announced first over a much shorter path: that path is grafted into the sender's
        // tree (after the push, which must not send the message back over it). The shorter
        // path is usually the faster one too, so this is the common case of the check in
        // `on_ihave`, which only sees announcements that come after the message.
        let shortest = announced.and_then(|m| m.announcers.into_iter().min_by_key(|(_, h)| *h));
        if let Some((shorter, announced_hops)) = shortest.filter(|_| plausible && self.trees.has(&origin)) {
            self.shorten(&origin, &from, hops, shorter, announced_hops);
        }
    }

    fn on_ihave(&mut self, now: Instant, from: P, id: I, hops: u16) {
        if self.seen.contains(&id) {
            // Tree optimisation: a much shorter path exists through `from`; take it.
            if let Some(c) = self.cache.get(&id) {
                if let Some(parent) = c.from.clone() {
                    let (origin, tree_hops) = (c.origin.clone(), c.hops);
                    self.shorten(&origin, &parent, tree_hops, from, hops);
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

    /// In a sender's own tree the parent is the neighbor with the fewest hops from the sender,
    /// not the fastest: a copy that comes second over a path more than the threshold shorter
    /// makes `from` the parent (returned: the old one, to prune). Judging by arrival alone
    /// would undo, message after message, what the announcements' hop counts graft.
    fn take_shorter_parent(&mut self, id: &I, origin: &P, from: &P, hops: u16) -> Option<P> {
        if !self.trees.has(origin) {
            return None;
        }
        let c = self.cache.get_mut(id).filter(|c| c.origin == *origin)?;
        let parent = c.from.clone().filter(|p| p != from)?;
        if hops.saturating_add(self.config.origin_optimization_threshold) >= c.hops {
            return None;
        }
        c.from = Some(from.clone());
        c.hops = hops;
        Some(parent)
    }

    /// Tree optimisation: `origin`'s message came from `parent` after `tree_hops` hops, and
    /// `shorter` announced it after `hops`; if that is shorter by more than the threshold,
    /// `shorter` is grafted.
    ///
    /// With one tree for all (the paper's way) `parent` is pruned at once. In a sender's own
    /// tree `parent` goes on pushing to us until the shorter path's copy comes in, which makes
    /// `shorter` the parent ([`Trees::reparent`]) and prunes `parent` — or `parent`'s copy turns
    /// out the shorter after all.
    fn shorten(&mut self, origin: &P, parent: &P, tree_hops: u16, shorter: P, hops: u16) {
        let own_tree = self.trees.has(origin);
        if !own_tree && !self.trees.shared_only() {
            // Its tree was dropped for a more recent sender's: nothing to shape.
            return;
        }
        let threshold =
            if own_tree { self.config.origin_optimization_threshold } else { self.config.optimization_threshold };
        if shorter == *parent || !self.is_neighbor(&shorter) || hops.saturating_add(threshold) >= tree_hops {
            return;
        }
        self.stats.shorter_paths += 1;
        self.send(shorter.clone(), Message::Graft { id: None, origin: Some(origin.clone()) });
        if !own_tree {
            self.trees.promote(None, true, &shorter);
            self.trees.demote(None, true, parent);
            self.send(parent.clone(), Message::Prune { origin: origin.clone(), shared: true });
        }
    }

    /// Pushes a message to the eager peers of its origin's tree and announces it to the lazy
    /// ones (not back to `from`), and keeps it for grafts. A sender without a tree here is
    /// pushed along the shared tree, and gets its own (a copy) for its next message.
    fn push(&mut self, now: Instant, id: I, origin: P, from: Option<P>, hops: u16, payload: Vec<u8>) {
        let next = hops.saturating_add(1);
        let (tree, shared) = match self.trees.get(&origin) {
            Some(tree) => (tree, false),
            None => (self.trees.shared(), true),
        };
        let not_from = |p: &&P| Some(*p) != from.as_ref();
        let eager: Vec<P> = tree.eager.iter().filter(not_from).cloned().collect();
        let lazy: Vec<P> = tree.lazy.iter().filter(not_from).cloned().collect();
        for peer in eager {
            let message = Message::Gossip {
                id: id.clone(),
                origin: origin.clone(),
                hops: next,
                shared,
                payload: payload.clone(),
            };
            self.send(peer, message);
        }
        for peer in lazy {
            self.send(peer, Message::IHave(vec![(id.clone(), next)]));
        }
        if shared {
            self.trees.create(&origin, from.as_ref());
        }
        self.remember(now, id, origin, from, hops, payload);
    }

    fn remember(&mut self, now: Instant, id: I, origin: P, from: Option<P>, hops: u16, payload: Vec<u8>) {
        if self.cache.len() >= self.config.cache_capacity {
            if let Some(old) = self.cache_order.pop_front() {
                self.cache.remove(&old);
            }
        }
        let expires = now + self.config.cache_retention;
        self.cache_order.push_back(id.clone());
        self.cache.insert(id, Cached { payload, origin, from, hops, expires });
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

    fn send(&mut self, to: P, message: Message<P, I>) {
        self.out.push_back(Out::Send(to, message));
    }
}

#[cfg(test)]
mod tests;
