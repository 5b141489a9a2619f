//! The overlay for meshes past the full-mesh cap: HyParView membership ([`hyparview`]) keeps a
//! few links per node, PlumTree ([`plumtree`]) broadcasts over them, and Kademlia
//! ([`kademlia`]) finds any peer or signed record in a logarithmic number of hops. [`Overlay`]
//! wires the three together; each stays sans-IO and generic over the peer id, so the node runs
//! it over its links and the simulator ([`sim`], feature `sim`) runs ten thousand of them.

pub mod hyparview;
pub mod kademlia;
pub mod plumtree;
pub mod record;
#[cfg(feature = "sim")]
pub mod sim;

use crate::time::Instant;
use core::time::Duration;
use kademlia::{Key, KeyOf, LookupDone, LookupError, LookupId, Record, StoreError};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A broadcast message's id (a hash of it, chosen by its origin).
pub type MessageId = [u8; 32];

/// The three protocols' parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Membership.
    pub membership: hyparview::Config,
    /// Broadcast.
    pub broadcast: plumtree::Config,
    /// The DHT.
    pub dht: kademlia::Config,
    /// How often the DHT looks up a random key to keep its buckets fresh (zero: never).
    pub dht_refresh: Duration,
}

impl Config {
    /// Defaults with an active view of `active` peers (the node's `--max-peers`, less a spare
    /// link for the requests that go to peers outside it).
    pub fn with_active_capacity(active: usize) -> Self {
        Config {
            membership: hyparview::Config::with_active_capacity(active),
            dht_refresh: Duration::from_secs(600),
            ..Config::default()
        }
    }
}

/// What overlay peers say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P, R> {
    /// HyParView.
    Membership(hyparview::Message<P>),
    /// PlumTree.
    Broadcast(plumtree::Message<P, MessageId>),
    /// Kademlia.
    Dht(kademlia::Message<P, R>),
}

/// Most entries in a list a peer sends (a shuffle sample, announced ids, DHT peers): far above
/// what an honest peer sends, low enough that decoding one costs little.
pub const MAX_LIST: usize = 256;

impl<P, R> Message<P, R> {
    /// Whether the lists and payload a peer controls are within bounds (`max_payload` for a
    /// broadcast payload). The protocols bound what they keep on top of this.
    pub fn within_bounds(&self, max_payload: usize) -> bool {
        match self {
            Message::Membership(m) => match m {
                hyparview::Message::Shuffle { peers, .. } | hyparview::Message::ShuffleReply { peers } => {
                    peers.len() <= MAX_LIST
                }
                _ => true,
            },
            Message::Broadcast(m) => match m {
                plumtree::Message::Gossip { payload, .. } => payload.len() <= max_payload,
                plumtree::Message::IHave(ids) => ids.len() <= MAX_LIST,
                plumtree::Message::Graft { .. } | plumtree::Message::Prune { .. } => true,
            },
            Message::Dht(m) => match m {
                kademlia::Message::Nodes { peers, .. } => peers.len() <= MAX_LIST,
                _ => true,
            },
        }
    }

    /// The peers this message names (so the sender can add how to reach them).
    pub fn mentioned(&self) -> Vec<&P> {
        match self {
            Message::Membership(hyparview::Message::ForwardJoin { peer, .. }) => vec![peer],
            Message::Membership(hyparview::Message::Shuffle { origin, peers, .. }) => {
                core::iter::once(origin).chain(peers.iter()).collect()
            }
            Message::Membership(hyparview::Message::ShuffleReply { peers }) => peers.iter().collect(),
            Message::Dht(kademlia::Message::Nodes { peers, .. }) => peers.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// A timer the driver arms and hands back through [`Overlay::timer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer<P> {
    /// HyParView's.
    Membership(hyparview::Timer<P>),
    /// PlumTree's.
    Broadcast(plumtree::Timer<MessageId>),
    /// Kademlia's.
    Dht(kademlia::Timer),
    /// Time to refresh the DHT's buckets.
    Refresh,
}

/// What the overlay asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<P, R> {
    /// Send `message` to `peer` (opening a link if there is none).
    Send(P, Message<P, R>),
    /// Call [`Overlay::timer`] with this timer at the given time.
    Schedule(Instant, Timer<P>),
    /// `peer` became a neighbor: keep its link.
    NeighborUp(P),
    /// `peer` stopped being a neighbor: its link may close once the messages before this are
    /// sent.
    NeighborDown(P),
    /// Too few neighbors and nobody left to ask: join again through a contact the driver
    /// knows.
    Isolated,
    /// A broadcast message for the application.
    Deliver {
        /// Its id.
        id: MessageId,
        /// The neighbor it came from.
        from: P,
        /// Links it travelled.
        hops: u16,
        /// The message.
        payload: Vec<u8>,
    },
    /// A DHT lookup finished.
    LookupDone(LookupDone<P, R>),
}

/// One node's overlay.
#[derive(Debug)]
pub struct Overlay<P: Ord + Clone, R> {
    membership: hyparview::HyParView<P>,
    broadcast: plumtree::PlumTree<P, MessageId>,
    dht: kademlia::Kademlia<P, R>,
    refresh: Duration,
    /// Whether the DHT has looked itself up since the first neighbor came.
    dht_joined: bool,
    rng: ChaCha8Rng,
    out: VecDeque<Out<P, R>>,
}

impl<P, R> Overlay<P, R>
where
    P: Ord + Clone + core::fmt::Debug + KeyOf,
    R: Record,
{
    /// A node `me` with no peers yet.
    pub fn new(me: P, config: Config, seed: u64, now: Instant) -> Self {
        let mut overlay = Overlay {
            membership: hyparview::HyParView::new(me.clone(), config.membership, seed, now),
            broadcast: plumtree::PlumTree::new(me.clone(), config.broadcast),
            dht: kademlia::Kademlia::new(me, config.dht),
            refresh: config.dht_refresh,
            dht_joined: false,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6b61_646d),
            out: VecDeque::new(),
        };
        if !overlay.refresh.is_zero() {
            overlay.out.push_back(Out::Schedule(now + overlay.refresh, Timer::Refresh));
        }
        overlay.pump(now);
        overlay
    }

    /// Membership state.
    pub fn membership(&self) -> &hyparview::HyParView<P> {
        &self.membership
    }

    /// Broadcast state.
    pub fn broadcast_state(&self) -> &plumtree::PlumTree<P, MessageId> {
        &self.broadcast
    }

    /// DHT state.
    pub fn dht(&self) -> &kademlia::Kademlia<P, R> {
        &self.dht
    }

    /// Drops the record at `key` stored here ([`kademlia::Kademlia::remove_record`]).
    pub fn remove_record(&mut self, key: &Key) {
        self.dht.remove_record(key);
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Out<P, R>> {
        self.out.pop_front()
    }

    /// Joins through `contact`.
    pub fn join(&mut self, now: Instant, contact: P) {
        self.membership.join(now, contact);
        self.pump(now);
    }

    /// The driver heard of `peer` (bootstrap server, peer exchange, LAN): a candidate for the
    /// membership's passive view.
    pub fn learn(&mut self, now: Instant, peer: P) {
        self.membership.learn(now, peer);
        self.pump(now);
    }

    /// An authenticated link to `peer` came up: a live peer for the DHT's table.
    pub fn link_up(&mut self, now: Instant, peer: P) {
        self.dht.observe(now, peer);
        self.pump(now);
    }

    /// The link to `peer` failed (or could not be opened).
    pub fn peer_failed(&mut self, now: Instant, peer: &P) {
        self.membership.peer_failed(now, peer);
        self.dht.forget(peer);
        self.pump(now);
    }

    /// Our requests to `peer` could not be delivered (it is busy, not gone): the DHT's lookups
    /// move on without it.
    pub fn peer_unreachable(&mut self, now: Instant, peer: &P) {
        self.dht.unreachable(now, peer);
        self.pump(now);
    }

    /// Broadcasts `payload` under `id`; false if that id was seen already.
    pub fn broadcast(&mut self, now: Instant, id: MessageId, payload: Vec<u8>) -> bool {
        let fresh = self.broadcast.broadcast(now, id, payload);
        self.pump(now);
        fresh
    }

    /// Looks for the peers closest to `target` (a peer's key finds that peer).
    pub fn find_node(&mut self, now: Instant, target: Key) -> Result<LookupId, LookupError> {
        let id = self.dht.find_node(now, target);
        self.pump(now);
        id
    }

    /// Looks for the record at `key`.
    pub fn find_record(&mut self, now: Instant, key: Key) -> Result<LookupId, LookupError> {
        let id = self.dht.find_record(now, key);
        self.pump(now);
        id
    }

    /// Stores `record` here and at the peers closest to its key.
    pub fn put_record(&mut self, now: Instant, record: R) -> Result<LookupId, StoreError> {
        let id = self.dht.put_record(now, record);
        self.pump(now);
        id
    }

    /// A message from `from` (authenticated by the driver).
    pub fn handle(&mut self, now: Instant, from: P, message: Message<P, R>) {
        match message {
            Message::Membership(m) => {
                self.membership.set_tree(&self.broadcast.tree_links());
                self.membership.handle(now, from, m);
            }
            Message::Broadcast(m) => self.broadcast.handle(now, from, m),
            Message::Dht(m) => self.dht.handle(now, from, m),
        }
        self.pump(now);
    }

    /// A timer scheduled through [`Out::Schedule`] is due.
    pub fn timer(&mut self, now: Instant, timer: Timer<P>) {
        match timer {
            Timer::Membership(t) => {
                self.membership.set_tree(&self.broadcast.tree_links());
                self.membership.timer(now, t);
            }
            Timer::Broadcast(t) => self.broadcast.timer(now, t),
            Timer::Dht(t) => self.dht.timer(now, t),
            Timer::Refresh => {
                let mut key = [0u8; 32];
                self.rng.fill_bytes(&mut key);
                // Busy means lookups are running anyway: they refresh the buckets too.
                let _ = self.dht.find_node(now, key);
                self.out.push_back(Out::Schedule(now + self.refresh, Timer::Refresh));
            }
        }
        self.pump(now);
    }

    /// Moves the three machines' outputs to ours, feeding membership changes to the other two.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.membership.poll() {
                progressed = true;
                match out {
                    hyparview::Out::Send(to, m) => self.out.push_back(Out::Send(to, Message::Membership(m))),
                    hyparview::Out::Schedule(at, t) => self.out.push_back(Out::Schedule(at, Timer::Membership(t))),
                    hyparview::Out::NeighborUp(p) => {
                        self.dht.set_linked(self.membership.active().iter().cloned());
                        self.broadcast.neighbor_up(p.clone());
                        self.dht.observe(now, p.clone());
                        self.out.push_back(Out::NeighborUp(p));
                        if !self.dht_joined {
                            // The usual way into a DHT: look ourselves up through the first peer.
                            self.dht_joined = true;
                            let me = self.membership.me().key_of();
                            let _ = self.dht.find_node(now, me);
                        }
                    }
                    hyparview::Out::NeighborDown(p) => {
                        self.dht.set_linked(self.membership.active().iter().cloned());
                        self.broadcast.neighbor_down(&p);
                        self.out.push_back(Out::NeighborDown(p));
                    }
                    hyparview::Out::Isolated => self.out.push_back(Out::Isolated),
                }
            }
            while let Some(out) = self.broadcast.poll() {
                progressed = true;
                match out {
                    plumtree::Out::Send(to, m) => self.out.push_back(Out::Send(to, Message::Broadcast(m))),
                    plumtree::Out::Schedule(at, t) => self.out.push_back(Out::Schedule(at, Timer::Broadcast(t))),
                    plumtree::Out::Deliver { id, from, hops, payload } => {
                        self.out.push_back(Out::Deliver { id, from, hops, payload })
                    }
                }
            }
            while let Some(out) = self.dht.poll() {
                progressed = true;
                match out {
                    kademlia::Out::Send(to, m) => self.out.push_back(Out::Send(to, Message::Dht(m))),
                    kademlia::Out::Schedule(at, t) => self.out.push_back(Out::Schedule(at, Timer::Dht(t))),
                    kademlia::Out::Done(done) => self.out.push_back(Out::LookupDone(done)),
                }
            }
            if !progressed {
                return;
            }
        }
    }
}
