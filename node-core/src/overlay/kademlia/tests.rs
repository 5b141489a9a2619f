//! Kademlia on an in-memory network of numbered peers, and against peers that lie.
use super::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeSet;

fn t(ms: u64) -> Instant {
    Instant::from_unix_ms(1_000_000 + ms)
}

/// A record whose validity the test decides.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Note {
    key: Key,
    version: u32,
    expires: Instant,
    signed: bool,
}

impl Record for Note {
    fn key(&self) -> Key {
        self.key
    }
    fn expires(&self) -> Instant {
        self.expires
    }
    fn verify(&self) -> bool {
        self.signed
    }
    fn supersedes(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

fn note(key: u8, version: u32) -> Note {
    Note { key: [key; 32], version, expires: t(3_600_000), signed: true }
}

type Dht = Kademlia<u32, Note>;

/// Nodes; every message is delivered at once unless its receiver is missing (then the
/// request times out).
struct Net {
    nodes: BTreeMap<u32, Dht>,
    /// Peers that answer every request with these ids.
    liars: BTreeMap<u32, Vec<u32>>,
    done: Vec<(u32, LookupDone<u32, Note>)>,
    now: Instant,
}

impl Net {
    /// `n` nodes, each knowing three random earlier ones, then each looking itself up (the
    /// usual way in).
    fn new(n: u32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut net = Net { nodes: BTreeMap::new(), liars: BTreeMap::new(), done: Vec::new(), now: t(0) };
        for id in 0..n {
            let mut node = Dht::new(id, Config::default());
            for _ in 0..3.min(id) {
                node.observe(net.now, rng.next_u32() % id);
            }
            net.nodes.insert(id, node);
        }
        for id in 0..n {
            net.lookup(id, |d, now| d.find_node(now, id.key_of()));
        }
        net.done.clear();
        net
    }

    fn lookup(
        &mut self,
        at: u32,
        start: impl FnOnce(&mut Dht, Instant) -> Result<LookupId, LookupError>,
    ) -> LookupDone<u32, Note> {
        let now = self.now;
        let node = self.nodes.get_mut(&at).expect("a node");
        start(node, now).expect("started");
        self.run();
        let i = self.done.iter().position(|(n, _)| *n == at).expect("the lookup finished");
        self.done.remove(i).1
    }

    fn run(&mut self) {
        let mut timers = Vec::new();
        loop {
            let mut wire = Vec::new();
            for (id, node) in &mut self.nodes {
                while let Some(out) = node.poll() {
                    match out {
                        Out::Send(to, m) => wire.push((*id, to, m)),
                        Out::Schedule(_, timer) => timers.push((*id, timer)),
                        Out::Done(done) => self.done.push((*id, done)),
                    }
                }
            }
            if wire.is_empty() {
                // Nothing in flight: unanswered requests time out.
                if timers.is_empty() {
                    return;
                }
                self.now += Duration::from_secs(2);
                for (id, timer) in timers.drain(..) {
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.timer(self.now, timer);
                    }
                }
                continue;
            }
            for (from, to, m) in wire {
                if let Some(lie) = self.liars.get(&to) {
                    if let Message::FindNode { request, .. } | Message::FindRecord { request, .. } = m {
                        let lie = Message::Nodes { request, peers: lie.clone() };
                        if let Some(node) = self.nodes.get_mut(&from) {
                            node.handle(self.now, to, lie);
                        }
                    }
                } else if let Some(node) = self.nodes.get_mut(&to) {
                    node.handle(self.now, from, m);
                }
            }
        }
    }
}

#[test]
fn lookups_find_every_peer_within_log2_n_plus_two_hops() {
    let n = 300u32;
    let mut net = Net::new(n);
    let limit = (f64::from(n).log2() + 2.0).floor() as u8;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..100 {
        let from = rng.next_u32() % n;
        let target = rng.next_u32() % n;
        if from == target {
            continue;
        }
        let done = net.lookup(from, |d, now| d.find_node(now, target.key_of()));
        let hops = done.hops_to_target.unwrap_or_else(|| panic!("{from} did not find {target}"));
        assert!(hops <= limit, "{from} → {target}: {hops} hops, more than {limit}");
    }
}

#[test]
fn a_record_put_by_one_node_is_found_by_another_and_forgeries_are_refused() {
    let mut net = Net::new(100);
    let put = net.lookup(3, |d, now| d.put_record(now, note(0xaa, 1)).map_err(|_| LookupError::Busy));
    assert_eq!(put.closest.len(), 20);
    net.run();
    let held = net.nodes.values().filter(|d| d.record(t(0), &[0xaa; 32]).is_some()).count();
    assert!(held >= 20, "stored at the k closest (and the publisher): {held}");
    let got = net.lookup(77, |d, now| d.find_record(now, [0xaa; 32]));
    assert_eq!(got.record, Some(note(0xaa, 1)));

    // A forged record, an expired one and an older version are all refused.
    let holder = put.closest[0];
    let node = net.nodes.get_mut(&holder).unwrap();
    assert_eq!(node.store(t(0), Note { signed: false, ..note(0xbb, 1) }), Err(StoreError::Invalid));
    assert_eq!(node.store(t(0), Note { expires: t(0), ..note(0xbb, 1) }), Err(StoreError::Lifetime));
    assert_eq!(node.store(t(0), note(0xaa, 0)), Err(StoreError::Stale));
    assert_eq!(node.store(t(0), note(0xaa, 2)), Ok(()));
}

#[test]
fn a_full_store_keeps_the_records_closest_to_us() {
    let config = Config { record_capacity: 10, ..Config::default() };
    let mut d = Dht::new(0, config);
    let me = 0u32.key_of();
    for key in 0..=255u8 {
        let _ = d.store(t(0), note(key, 1));
    }
    let kept: Vec<Key> = d.records().map(|r| r.key).collect();
    assert_eq!(kept.len(), 10);
    let mut all: Vec<Key> = (0..=255u8).map(|k| [k; 32]).collect();
    all.sort_by_key(|k| distance(k, &me));
    let closest: BTreeSet<Key> = all.into_iter().take(10).collect();
    assert_eq!(kept.into_iter().collect::<BTreeSet<_>>(), closest);
}

#[test]
fn replies_full_of_unreachable_ids_neither_stop_a_lookup_nor_enter_the_table() {
    let n = 100u32;
    let mut net = Net::new(n);
    let (asker, target) = (40u32, 60u32);
    // Liars answer every request with the twenty ids closest to the target among a thousand
    // that nobody runs; the asker and the peers it asks know them.
    let mut ghosts: Vec<u32> = (1_000_000..1_001_000).collect();
    ghosts.sort_by_key(|g| distance(&g.key_of(), &target.key_of()));
    ghosts.truncate(20);
    let liars: Vec<u32> = (90..100).collect();
    for liar in &liars {
        net.liars.insert(*liar, ghosts.clone());
        for node in net.nodes.values_mut() {
            node.observe(t(0), *liar);
        }
    }
    let before: BTreeSet<u32> = net.nodes[&asker].table().peers().copied().collect();
    let done = net.lookup(asker, |d, now| d.find_node(now, target.key_of()));
    assert!(done.hops_to_target.is_some(), "the target was found despite the lies");
    assert!(done.requests <= Config::default().lookup_budget);
    let after: BTreeSet<u32> = net.nodes[&asker].table().peers().copied().collect();
    assert!(ghosts.iter().all(|g| !after.contains(g)), "no ghost entered the table");
    let honest_lost: Vec<u32> = before.difference(&after).copied().collect();
    assert!(honest_lost.is_empty(), "honest peers pushed out: {honest_lost:?}");
}

#[test]
fn ten_thousand_fresh_ids_cannot_push_live_peers_out_of_the_table() {
    let mut d = Dht::new(0, Config::default());
    for p in 1..=2000u32 {
        d.observe(t(0), p);
    }
    let before: BTreeSet<u32> = d.table().peers().copied().collect();
    for p in 100_000..110_000u32 {
        d.observe(t(1), p);
    }
    let after: BTreeSet<u32> = d.table().peers().copied().collect();
    assert!(before.is_subset(&after), "every live entry stays");
    // Entries that stop answering make room again.
    let stale = *before.iter().next().unwrap();
    d.forget(&stale);
    assert!(!d.table().contains(&stale));
}

#[test]
fn answers_to_requests_never_made_or_from_the_wrong_peer_are_ignored() {
    let mut net = Net::new(50);
    let d = net.nodes.get_mut(&1).unwrap();
    let table: BTreeSet<u32> = d.table().peers().copied().collect();
    d.handle(t(0), 999, Message::Nodes { request: 12345, peers: vec![1000, 1001] });
    d.handle(t(0), 998, Message::Found { request: 1, record: note(1, 1) });
    assert!(d.poll().is_none());
    assert_eq!(d.table().peers().copied().collect::<BTreeSet<_>>(), table, "strangers' answers add nobody");
}
