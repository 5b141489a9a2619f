//! A Kademlia DHT (Maymounkov & Mazières, 2002) over PeerIds: a routing table of k-buckets, and
//! iterative lookups (α requests in flight) that find the k peers closest to a key, a given peer,
//! or a signed record stored at those peers. Sans-IO and generic over the peer id and the record
//! type, like the rest of the overlay.
//!
//! A lying peer is bounded everywhere: replies are cut to k ids, a lookup's candidate list to
//! 3k, its requests to a fixed budget; ids named in replies never enter the routing table (only
//! peers that answer us do); records are verified before they are stored or returned, and the
//! store is capped.

mod messages;
mod table;

pub use messages::{LookupDone, LookupError, LookupId, Message, Out, StoreError, Timer};
pub use table::{Observed, RoutingTable};

use crate::time::Instant;
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

/// A point in the key space: BLAKE3 of a peer id, or a record's key.
pub type Key = [u8; 32];

/// XOR distance between two keys (compared as big-endian numbers).
pub fn distance(a: &Key, b: &Key) -> Key {
    core::array::from_fn(|i| a[i] ^ b[i])
}

/// Where a peer sits in the key space.
pub trait KeyOf {
    /// The peer's key (a hash of its id, so keys spread evenly whatever the ids look like).
    fn key_of(&self) -> Key;
}

impl KeyOf for crate::identity::PeerId {
    fn key_of(&self) -> Key {
        *blake3::hash(self.as_bytes()).as_bytes()
    }
}

/// Simulated peers are numbered.
impl KeyOf for u32 {
    fn key_of(&self) -> Key {
        *blake3::hash(&self.to_le_bytes()).as_bytes()
    }
}

/// A value the DHT stores: self-certifying, so any peer can check it.
pub trait Record: Clone + PartialEq + core::fmt::Debug {
    /// Where it is stored.
    fn key(&self) -> Key;
    /// When it stops being served.
    fn expires(&self) -> Instant;
    /// How far ahead its expiry may lie for a peer to store it: [`Config::max_record_ttl`]
    /// unless its kind needs longer (and then it says so).
    fn max_ttl(&self, default: Duration) -> Duration {
        default
    }
    /// Whether it is well formed and signed by whom it names.
    fn verify(&self) -> bool;
    /// Whether it should replace `other` (same key): a newer version.
    fn supersedes(&self, other: &Self) -> bool;
}

/// The DHT's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bucket size and replication factor.
    pub k: usize,
    /// Requests in flight per lookup.
    pub alpha: usize,
    /// How long a request may go unanswered.
    pub request_timeout: Duration,
    /// Most requests one lookup may send.
    pub lookup_budget: usize,
    /// Most lookups at once.
    pub max_lookups: usize,
    /// Most records stored for others.
    pub record_capacity: usize,
    /// Records expiring further ahead than this are refused (unless their kind allows longer,
    /// [`Record::max_ttl`]): a bound on how long a record outlives a publisher that is gone.
    pub max_record_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 20,
            alpha: 3,
            request_timeout: Duration::from_secs(2),
            lookup_budget: 100,
            max_lookups: 64,
            record_capacity: 4096,
            max_record_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotAsked,
    Asked,
    Answered,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate<P> {
    peer: P,
    depth: u8,
    state: State,
    /// A put's record went to this peer already.
    stored: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Record,
    /// Find the closest peers, then store this record at them.
    Put,
}

#[derive(Debug)]
struct Lookup<P, R> {
    target: Key,
    kind: Kind,
    /// By distance to the target.
    candidates: BTreeMap<Key, Candidate<P>>,
    requests: usize,
    record: Option<R>,
}

/// One node's DHT state.
#[derive(Debug)]
pub struct Kademlia<P, R> {
    me: P,
    config: Config,
    table: RoutingTable<P>,
    records: BTreeMap<Key, R>,
    lookups: BTreeMap<LookupId, Lookup<P, R>>,
    /// Request id → the lookup and the peer asked.
    requests: BTreeMap<u64, (LookupId, P)>,
    /// Peers we keep a link to (the overlay's active view): among the k closest candidates, a
    /// record lookup asks these first, since asking them opens no link (and any holder of the
    /// record will do).
    linked: Vec<P>,
    next_id: u64,
    out: VecDeque<Out<P, R>>,
}

impl<P: Clone + PartialEq + core::fmt::Debug + KeyOf, R: Record> Kademlia<P, R> {
    /// A node `me` with an empty table.
    pub fn new(me: P, config: Config) -> Self {
        Kademlia {
            table: RoutingTable::new(me.key_of(), config.k),
            me,
            config,
            records: BTreeMap::new(),
            lookups: BTreeMap::new(),
            requests: BTreeMap::new(),
            linked: Vec::new(),
            next_id: 1,
            out: VecDeque::new(),
        }
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable<P> {
        &self.table
    }

    /// Records stored here.
    pub fn records(&self) -> impl Iterator<Item = &R> {
        self.records.values()
    }

    /// Lookups running.
    pub fn lookups_running(&self) -> usize {
        self.lookups.len()
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Out<P, R>> {
        self.out.pop_front()
    }

    /// `peer` proved itself alive and who it says (an authenticated link came up).
    pub fn observe(&mut self, now: Instant, peer: P) -> Observed {
        if peer == self.me {
            return Observed::Ignored;
        }
        self.table.observe(now, peer)
    }

    /// `peer` is gone.
    pub fn forget(&mut self, peer: &P) {
        self.table.remove(peer);
    }

    /// The peers we keep a link to now (see `linked`).
    pub fn set_linked(&mut self, peers: impl IntoIterator<Item = P>) {
        self.linked = peers.into_iter().collect();
    }

    /// Whether a request to `peer` is waiting for its answer (its link is still needed).
    pub fn awaiting(&self, peer: &P) -> bool {
        self.requests.values().any(|(_, asked)| asked == peer)
    }

    /// Starts looking for the peers closest to `target` (a peer's key finds that peer).
    pub fn find_node(&mut self, now: Instant, target: Key) -> Result<LookupId, LookupError> {
        self.start(now, target, Kind::Node, None)
    }

    /// Starts looking for the record at `key`.
    pub fn find_record(&mut self, now: Instant, key: Key) -> Result<LookupId, LookupError> {
        self.start(now, key, Kind::Record, None)
    }

    /// Stores `record` here and at the k peers closest to its key.
    pub fn put_record(&mut self, now: Instant, record: R) -> Result<LookupId, StoreError> {
        match self.store(now, record.clone()) {
            Ok(()) => {}
            // This very record is stored here already (put again, to reach the peers closest to
            // its key now): it still goes out.
            Err(StoreError::Stale) if self.records.get(&record.key()) == Some(&record) => {}
            Err(e) => return Err(e),
        }
        self.start(now, record.key(), Kind::Put, Some(record)).map_err(|_| StoreError::Full)
    }

    /// The valid record at `key`, if stored here.
    pub fn record(&self, now: Instant, key: &Key) -> Option<&R> {
        self.records.get(key).filter(|r| r.expires() > now)
    }

    /// Drops the record at `key` stored here (its publisher says it no longer holds).
    pub fn remove_record(&mut self, key: &Key) {
        self.records.remove(key);
    }

    /// A message from `from`, who the driver has authenticated.
    pub fn handle(&mut self, now: Instant, from: P, message: Message<P, R>) {
        if from == self.me {
            return;
        }
        match message {
            Message::FindNode { request, target } => {
                self.table.observe(now, from.clone());
                let peers = self.table.closest(&target, self.config.k);
                self.send(from, Message::Nodes { request, peers });
            }
            Message::FindRecord { request, key } => {
                self.table.observe(now, from.clone());
                match self.record(now, &key).cloned() {
                    Some(record) => self.send(from, Message::Found { request, record }),
                    None => {
                        let peers = self.table.closest(&key, self.config.k);
                        self.send(from, Message::Nodes { request, peers });
                    }
                }
            }
            Message::Store(record) => {
                self.table.observe(now, from);
                // A refused record is simply not kept; the sender learns nothing it could use.
                let _ = self.store(now, record);
            }
            Message::Nodes { request, peers } => {
                let Some(lookup) = self.answered(now, request, &from) else { return };
                self.merge(lookup, &from, peers);
                self.store_early(lookup, &from);
                self.step(now, lookup);
            }
            Message::Found { request, record } => {
                let Some(lookup) = self.answered(now, request, &from) else { return };
                let valid = record.verify() && record.expires() > now;
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    if valid && l.kind == Kind::Record && record.key() == l.target {
                        l.record = Some(record);
                    }
                }
                self.step(now, lookup);
            }
        }
    }

    /// A timer scheduled through [`Out::Schedule`] is due.
    pub fn timer(&mut self, now: Instant, timer: Timer) {
        let Timer::Request(request) = timer;
        let Some((_, peer)) = self.requests.get(&request) else { return };
        self.table.failed(&peer.clone());
        self.request_failed(now, request);
    }

    /// The driver could not deliver our requests to `peer` (it refused a link, busy with
    /// others, or could not be reached): their lookups move on now instead of at the timeout.
    pub fn unreachable(&mut self, now: Instant, peer: &P) {
        let dead: Vec<u64> = self.requests.iter().filter(|(_, (_, p))| p == peer).map(|(r, _)| *r).collect();
        if !dead.is_empty() {
            // Counted once, as one timeout would be: a peer that stays unreachable leaves the
            // table after its second failure in a row, a busy one that answers later stays.
            self.table.failed(peer);
        }
        for request in dead {
            self.request_failed(now, request);
        }
    }

    fn request_failed(&mut self, now: Instant, request: u64) {
        let Some((lookup, peer)) = self.requests.remove(&request) else { return };
        if let Some(l) = self.lookups.get_mut(&lookup) {
            if let Some(c) = l.candidates.get_mut(&distance(&peer.key_of(), &l.target)) {
                c.state = State::Failed;
            }
        }
        self.step(now, lookup);
    }

    /// Stores `record` if it verifies, lives within bounds and is newer than ours; when the
    /// store is full it displaces the record farthest from us, if that is farther than it.
    pub fn store(&mut self, now: Instant, record: R) -> Result<(), StoreError> {
        if !record.verify() {
            return Err(StoreError::Invalid);
        }
        if record.expires() <= now || record.expires() > now + record.max_ttl(self.config.max_record_ttl) {
            return Err(StoreError::Lifetime);
        }
        let key = record.key();
        if let Some(old) = self.records.get(&key) {
            if old.expires() > now && !record.supersedes(old) {
                return Err(StoreError::Stale);
            }
            self.records.insert(key, record);
            return Ok(());
        }
        self.records.retain(|_, r| r.expires() > now);
        if self.records.len() >= self.config.record_capacity {
            let me = self.me.key_of();
            let farthest = self.records.keys().max_by_key(|k| distance(k, &me)).copied();
            match farthest {
                Some(f) if distance(&f, &me) > distance(&key, &me) => {
                    self.records.remove(&f);
                }
                _ => return Err(StoreError::Full),
            }
        }
        self.records.insert(key, record);
        Ok(())
    }

    fn start(&mut self, now: Instant, target: Key, kind: Kind, record: Option<R>) -> Result<LookupId, LookupError> {
        if self.lookups.len() >= self.config.max_lookups {
            return Err(LookupError::Busy);
        }
        let id = LookupId(self.fresh_id());
        let candidates = self
            .table
            .closest(&target, self.config.k)
            .into_iter()
            .map(|peer| {
                (distance(&peer.key_of(), &target), Candidate { peer, depth: 0, state: State::NotAsked, stored: false })
            })
            .collect();
        self.lookups.insert(id, Lookup { target, kind, candidates, requests: 0, record });
        self.step(now, id);
        Ok(id)
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Matches an answer to its request: only the peer asked may answer, once.
    fn answered(&mut self, now: Instant, request: u64, from: &P) -> Option<LookupId> {
        match self.requests.get(&request) {
            Some((_, asked)) if asked == from => {}
            _ => return None,
        }
        let (lookup, _) = self.requests.remove(&request)?;
        self.table.observe(now, from.clone());
        let l = self.lookups.get_mut(&lookup)?;
        if let Some(c) = l.candidates.get_mut(&distance(&from.key_of(), &l.target)) {
            c.state = State::Answered;
        }
        Some(lookup)
    }

    /// Adds the peers `from` named (at most k) as candidates one hop deeper, keeping the 3k
    /// closest.
    fn merge(&mut self, lookup: LookupId, from: &P, peers: Vec<P>) {
        let me = self.me.key_of();
        let k = self.config.k;
        let Some(l) = self.lookups.get_mut(&lookup) else { return };
        let depth = l.candidates.get(&distance(&from.key_of(), &l.target)).map_or(0, |c| c.depth.saturating_add(1));
        for peer in peers.into_iter().take(k) {
            let key = peer.key_of();
            if key == me {
                continue;
            }
            l.candidates.entry(distance(&key, &l.target)).or_insert(Candidate {
                peer,
                depth,
                state: State::NotAsked,
                stored: false,
            });
        }
        while l.candidates.len() > 3 * k {
            l.candidates.pop_last();
        }
    }

    /// Sends requests while fewer than α are in flight to the k closest not yet failed; ends
    /// the lookup when they have all answered or failed (or its budget is spent).
    fn step(&mut self, now: Instant, id: LookupId) {
        let Some(l) = self.lookups.get_mut(&id) else { return };
        let k = self.config.k;
        // Done early: the record is in hand, or the peer looked for has answered.
        let found = match l.kind {
            Kind::Record => l.record.is_some(),
            Kind::Node => l.candidates.get(&[0; 32]).is_some_and(|c| c.state == State::Answered),
            Kind::Put => false,
        };
        let mut in_flight = l.candidates.values().filter(|c| c.state == State::Asked).count();
        let mut to_ask = Vec::new();
        let mut waiting = false;
        if !found {
            let mut open: Vec<&mut Candidate<P>> =
                l.candidates.values_mut().filter(|c| c.state != State::Failed).take(k).collect();
            if l.kind == Kind::Record {
                // Stable: linked peers first, each group still closest first.
                open.sort_by_key(|c| !self.linked.contains(&c.peer));
            }
            for c in open {
                if c.state == State::NotAsked {
                    if in_flight < self.config.alpha && l.requests < self.config.lookup_budget {
                        c.state = State::Asked;
                        in_flight += 1;
                        l.requests += 1;
                        to_ask.push(c.peer.clone());
                    } else {
                        waiting = true;
                    }
                }
            }
        }
        let target = l.target;
        let kind = l.kind;
        for peer in to_ask {
            let request = self.fresh_id();
            self.requests.insert(request, (id, peer.clone()));
            self.out.push_back(Out::Schedule(now + self.config.request_timeout, Timer::Request(request)));
            let message = match kind {
                Kind::Record => Message::FindRecord { request, key: target },
                Kind::Node | Kind::Put => Message::FindNode { request, target },
            };
            self.send(peer, message);
        }
        let over_budget = self.lookups.get(&id).is_some_and(|l| l.requests >= self.config.lookup_budget);
        if found || (in_flight == 0 && (!waiting || over_budget)) {
            self.finish(id);
        }
    }

    /// A put stores its record at a peer that answers while among the k closest so far, over
    /// the link the answer came on, rather than at the end, when that link may be gone (a node
    /// with few links opens one per request). A peer later pushed out of the k closest holds a
    /// spare copy until it expires.
    fn store_early(&mut self, id: LookupId, from: &P) {
        let k = self.config.k;
        let Some(l) = self.lookups.get_mut(&id) else { return };
        let (Kind::Put, Some(record)) = (l.kind, &l.record) else { return };
        let key = distance(&from.key_of(), &l.target);
        let close = l.candidates.iter().filter(|(_, c)| c.state != State::Failed).take(k).any(|(d, _)| *d == key);
        let Some(c) = l.candidates.get_mut(&key).filter(|c| close && !c.stored) else { return };
        c.stored = true;
        let message = Message::Store(record.clone());
        self.send(from.clone(), message);
    }

    fn finish(&mut self, id: LookupId) {
        let Some(l) = self.lookups.remove(&id) else { return };
        self.requests.retain(|_, (lookup, _)| *lookup != id);
        let answered = l.candidates.values().filter(|c| c.state == State::Answered);
        let closest: Vec<&Candidate<P>> = answered.clone().take(self.config.k).collect();
        let hops_to_target = answered.clone().find(|c| c.peer.key_of() == l.target).map(|c| c.depth.saturating_add(1));
        if let (Kind::Put, Some(record)) = (l.kind, &l.record) {
            for c in closest.iter().filter(|c| !c.stored) {
                self.send(c.peer.clone(), Message::Store(record.clone()));
            }
        }
        let closest: Vec<P> = closest.into_iter().map(|c| c.peer.clone()).collect();
        let record = if l.kind == Kind::Record { l.record } else { None };
        self.out.push_back(Out::Done(LookupDone {
            id,
            target: l.target,
            closest,
            record,
            hops_to_target,
            requests: l.requests,
        }));
    }

    fn send(&mut self, to: P, message: Message<P, R>) {
        self.out.push_back(Out::Send(to, message));
    }
}

#[cfg(test)]
mod tests;
