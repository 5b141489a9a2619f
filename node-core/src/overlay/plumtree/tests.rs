//! PlumTree on a fixed graph with latency, and against peers that lie.
use super::*;

fn t(ms: u64) -> Instant {
    Instant::from_unix_ms(1_000_000 + ms)
}

/// Nodes on a fixed graph; every link takes `latency(a, b)` ms one way.
struct Net {
    nodes: Vec<PlumTree<usize, u64>>,
    /// (arrival, seq) → (from, to, message) or a timer.
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    now: Instant,
    dead: BTreeSet<usize>,
    delivered: BTreeMap<u64, Vec<(usize, u16)>>,
}

enum Event {
    Message(usize, usize, Message<usize, u64>),
    Timer(usize, Timer<u64>),
}

/// Links take 10 ms plus a little per pair, so paths differ in length.
fn latency(a: usize, b: usize) -> Duration {
    Duration::from_millis(10 + ((a * 7 + b * 13) % 11) as u64)
}

impl Net {
    /// A ring of `n` with chords to the node `n / 3` away: every node has four neighbors.
    fn ring(n: usize) -> Self {
        Self::ring_with(n, Config::default())
    }

    fn ring_with(n: usize, config: Config) -> Self {
        let mut nodes: Vec<PlumTree<usize, u64>> = (0..n).map(|i| PlumTree::new(i, config.clone())).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            for j in [(i + 1) % n, (i + n - 1) % n, (i + n / 3) % n, (i + n - n / 3) % n] {
                node.neighbor_up(j);
            }
        }
        Net { nodes, queue: BTreeMap::new(), seq: 0, now: t(0), dead: BTreeSet::new(), delivered: BTreeMap::new() }
    }

    fn drain(&mut self, i: usize) {
        while let Some(out) = self.nodes[i].poll() {
            self.seq += 1;
            match out {
                Out::Send(to, m) => {
                    let at = self.now + latency(i, to);
                    self.queue.insert((at, self.seq), Event::Message(i, to, m));
                }
                Out::Schedule(at, timer) => {
                    self.queue.insert((at, self.seq), Event::Timer(i, timer));
                }
                Out::Deliver { id, hops, .. } => self.delivered.entry(id).or_default().push((i, hops)),
            }
        }
    }

    fn broadcast(&mut self, origin: usize, id: u64) {
        assert!(self.nodes[origin].broadcast(self.now, id, vec![1, 2, 3]));
        self.delivered.entry(id).or_default().push((origin, 0));
        self.drain(origin);
        self.run();
    }

    fn run(&mut self) {
        while let Some(((at, _), event)) = self.queue.pop_first() {
            self.now = at;
            match event {
                Event::Message(from, to, m) => {
                    if self.dead.contains(&to) {
                        continue;
                    }
                    self.nodes[to].handle(at, from, m);
                    self.drain(to);
                }
                Event::Timer(i, timer) => {
                    if !self.dead.contains(&i) {
                        self.nodes[i].timer(at, timer);
                        self.drain(i);
                    }
                }
            }
        }
    }

    fn payloads(&self) -> u64 {
        self.nodes.iter().map(|n| n.stats().payloads_received).sum()
    }

    /// Who got message `id`, each once.
    fn reached(&self, id: u64) -> BTreeSet<usize> {
        let got = &self.delivered[&id];
        let set: BTreeSet<usize> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(set.len(), got.len(), "a node delivered {id} twice");
        set
    }
}

#[test]
fn the_first_broadcast_prunes_a_tree_and_later_ones_travel_it_without_duplicates() {
    for origin_trees in [64, 0] {
        first_broadcast_prunes_a_tree(Config { origin_trees, ..Config::default() });
    }
}

fn first_broadcast_prunes_a_tree(config: Config) {
    let n = 30;
    let mut net = Net::ring_with(n, config);
    net.broadcast(0, 1);
    assert_eq!(net.reached(1).len(), n);
    let first = net.payloads();
    assert!(first > (n - 1) as u64, "the first one floods: {first}");
    let before = net.payloads();
    net.broadcast(5, 2);
    assert_eq!(net.reached(2).len(), n);
    let second = net.payloads() - before;
    // A tree over n nodes has n - 1 edges: each node gets the payload once.
    assert_eq!(second, (n - 1) as u64, "the second travels the tree only");
    let eager_edges: usize = net.nodes.iter().map(|x| x.eager().len()).sum();
    assert_eq!(eager_edges, 2 * (n - 1), "eager links form a spanning tree, both ways");
}

#[test]
fn when_a_tree_node_dies_the_announcements_graft_the_tree_back_together() {
    let n = 30;
    let mut net = Net::ring(n);
    net.broadcast(0, 1);
    // Kill the node with the most eager links, and tell its neighbors.
    let victim = (1..n).max_by_key(|i| net.nodes[*i].eager().len()).unwrap();
    net.dead.insert(victim);
    for node in &mut net.nodes {
        node.neighbor_down(&victim);
    }
    net.broadcast(0, 2);
    let alive: BTreeSet<usize> = (0..n).filter(|i| *i != victim).collect();
    assert_eq!(net.reached(2), alive);
    let grafts: u64 = net.nodes.iter().map(|x| x.stats().grafts).sum();
    assert!(grafts >= 1, "the cut-off part was grafted back");
    // And the healed tree carries the next one without grafts.
    net.broadcast(0, 3);
    assert_eq!(net.reached(3), alive);
    assert_eq!(net.nodes.iter().map(|x| x.stats().grafts).sum::<u64>(), grafts);
}

#[test]
fn ten_thousand_announcements_of_messages_that_do_not_exist_are_bounded_and_forgotten() {
    let c = Config::default();
    let mut node: PlumTree<usize, u64> = PlumTree::new(0, c.clone());
    node.neighbor_up(1);
    node.neighbor_up(2);
    let ids: Vec<(u64, u16)> = (0..10_000).map(|i| (i, 1)).collect();
    for batch in ids.chunks(100) {
        node.handle(t(0), 1, Message::IHave(batch.to_vec()));
    }
    assert!(node.missing_len() <= c.missing_capacity);
    assert!(node.stats().announcements_dropped > 0);
    let timers: Vec<Timer<u64>> = std::iter::from_fn(|| node.poll())
        .filter_map(|o| match o {
            Out::Schedule(_, timer) => Some(timer),
            _ => None,
        })
        .collect();
    assert!(timers.len() <= c.missing_capacity);
    // Each costs one graft to the liar, then it is forgotten.
    for timer in timers {
        node.timer(t(600), timer);
    }
    assert_eq!(node.missing_len(), 0);
    assert!(node.stats().grafts <= c.missing_capacity as u64);
    // The honest neighbor is still there to carry real messages.
    assert!(node.eager().contains(&2));
    while node.poll().is_some() {}
    node.handle(t(700), 2, Message::Gossip { id: 77_777, origin: 5, shared: true, hops: 1, payload: vec![9] });
    let delivered = std::iter::from_fn(|| node.poll()).filter(|o| matches!(o, Out::Deliver { .. })).count();
    assert_eq!(delivered, 1);
}

#[test]
fn a_graft_for_an_unknown_id_sends_nothing_and_a_non_neighbor_never_enters_the_tree() {
    let mut node: PlumTree<usize, u64> = PlumTree::new(0, Config::default());
    node.neighbor_up(1);
    node.handle(t(0), 1, Message::Graft { id: Some(5), origin: None });
    assert!(node.poll().is_none());
    // Peer 9 is linked but not (or not yet) a neighbor: its message is delivered and passed to
    // the tree, but 9 is neither pushed to nor pruned, and its grafts and prunes change nothing.
    node.handle(t(0), 9, Message::Gossip { id: 1, origin: 5, shared: true, hops: 1, payload: vec![] });
    let out: Vec<_> = std::iter::from_fn(|| node.poll()).collect();
    assert!(out.iter().any(|o| matches!(o, Out::Deliver { id: 1, from: 9, .. })), "{out:?}");
    assert!(out.iter().all(|o| !matches!(o, Out::Send(9, _))), "{out:?}");
    node.handle(t(0), 9, Message::Gossip { id: 1, origin: 5, shared: true, hops: 1, payload: vec![] });
    node.handle(t(0), 9, Message::Graft { id: None, origin: Some(5) });
    node.handle(t(0), 9, Message::Prune { origin: 5, shared: true });
    assert!(node.poll().is_none(), "no prune for a duplicate from a non-neighbor");
    assert!(!node.eager().contains(&9) && !node.lazy().contains(&9));
    assert!(node.eager().contains(&1));
}

#[test]
fn a_message_past_the_hop_limit_is_delivered_but_not_passed_on() {
    let mut node: PlumTree<usize, u64> = PlumTree::new(0, Config::default());
    node.neighbor_up(1);
    node.neighbor_up(2);
    node.handle(t(0), 1, Message::Gossip { id: 1, origin: 5, shared: true, hops: u16::MAX, payload: vec![] });
    let out: Vec<_> = std::iter::from_fn(|| node.poll()).collect();
    assert!(matches!(&out[..], [Out::Deliver { .. }]), "{out:?}");
}

#[test]
fn a_neighbor_that_arrives_after_a_message_hears_of_it_and_grafts_it() {
    let mut a: PlumTree<usize, u64> = PlumTree::new(1, Config::default());
    let mut b: PlumTree<usize, u64> = PlumTree::new(2, Config::default());
    assert!(a.broadcast(t(0), 1, vec![42]));
    while a.poll().is_some() {}
    // b links to a a second later: a tells it what it still holds.
    a.neighbor_up(2);
    b.neighbor_up(1);
    let to_b: Vec<_> = std::iter::from_fn(|| a.poll()).collect();
    assert_eq!(to_b, [Out::Send(2, Message::IHave(vec![(1, 1)]))]);
    b.handle(t(1000), 1, Message::IHave(vec![(1, 1)]));
    let timer = std::iter::from_fn(|| b.poll()).find_map(|o| match o {
        Out::Schedule(at, timer) => Some((at, timer)),
        _ => None,
    });
    let (at, timer) = timer.expect("b waits for it, then grafts");
    b.timer(at, timer);
    let graft: Vec<_> = std::iter::from_fn(|| b.poll()).collect();
    assert_eq!(graft, [Out::Send(1, Message::Graft { id: Some(1), origin: None })]);
    a.handle(at, 2, Message::Graft { id: Some(1), origin: None });
    let Some(Out::Send(2, gossip)) = a.poll() else { panic!("a answers the graft") };
    b.handle(at, 1, gossip);
    assert!(
        std::iter::from_fn(|| b.poll()).any(|o| matches!(o, Out::Deliver { id: 1, payload, .. } if payload == [42]))
    );
}

/// Hops from `origin` to the farthest node over the shortest paths of the ring with chords.
fn eccentricity(n: usize, origin: usize) -> u16 {
    let mut hops = vec![u16::MAX; n];
    hops[origin] = 0;
    let mut queue = VecDeque::from([origin]);
    while let Some(i) = queue.pop_front() {
        for j in [(i + 1) % n, (i + n - 1) % n, (i + n / 3) % n, (i + n - n / 3) % n] {
            if hops[j] == u16::MAX {
                hops[j] = hops[i] + 1;
                queue.push_back(j);
            }
        }
    }
    hops.into_iter().max().unwrap_or(0)
}

#[test]
fn a_sender_who_keeps_talking_gets_short_paths_without_bending_anyone_elses_tree() {
    let n = 90;
    let mut net = Net::ring(n);
    // Node 0's first message shapes the shared tree, its next ones a tree of its own.
    for id in 1..=3 {
        net.broadcast(0, id);
    }
    let zero_hops = net.delivered[&3].iter().map(|(_, h)| *h).max().unwrap();
    // Node 45 talks: its first message travels the tree shaped by 0, its later ones a tree of
    // its own, shortened by the announcements that showed shorter paths.
    let last_hops = |net: &Net, id: u64| net.delivered[&id].iter().map(|(_, h)| *h).max().unwrap();
    net.broadcast(45, 100);
    let first = last_hops(&net, 100);
    for id in 101..=109 {
        net.broadcast(45, id);
        assert_eq!(net.reached(id).len(), n);
    }
    let before = net.payloads();
    net.broadcast(45, 110);
    assert_eq!(net.payloads() - before, (n - 1) as u64, "settled: no duplicates");
    let settled = last_hops(&net, 110);
    let shortest = eccentricity(n, 45);
    assert!(settled < first, "45's tree got shorter: {first} hops, then {settled}");
    assert!(
        settled <= shortest + Config::default().origin_optimization_threshold,
        "{settled} hops against {shortest} over the shortest paths"
    );
    // Node 0's tree was not bent by 45's: its next message goes as before, once to each node.
    let before = net.payloads();
    net.broadcast(0, 4);
    assert_eq!(net.reached(4).len(), n);
    assert_eq!(net.payloads() - before, (n - 1) as u64, "no duplicates");
    assert_eq!(last_hops(&net, 4), zero_hops);
    // Nor was the shared tree: a new sender's first message travels it once to each node,
    // with no announced message missing on the way.
    let (before, grafts) = (net.payloads(), net.nodes.iter().map(|x| x.stats().grafts).sum::<u64>());
    net.broadcast(20, 200);
    assert_eq!(net.reached(200).len(), n);
    assert_eq!(net.payloads() - before, (n - 1) as u64, "the shared tree is still a spanning tree");
    assert_eq!(net.nodes.iter().map(|x| x.stats().grafts).sum::<u64>(), grafts);
}

#[test]
fn only_the_origin_may_claim_one_hop() {
    let mut node: PlumTree<usize, u64> = PlumTree::new(0, Config::default());
    node.neighbor_up(1);
    node.neighbor_up(2);
    let gossip = |id, hops, shared| Message::Gossip { id, origin: 9, hops, shared, payload: vec![] };
    // 9's first message, from 1, gives 9 a tree here with 1 as the parent.
    node.handle(t(0), 1, gossip(1, 4, true));
    node.handle(t(10), 1, gossip(2, 4, false));
    while node.poll().is_some() {}
    // 2 claims to be one hop from 9 (it is not 9): an ordinary duplicate, pruned.
    node.handle(t(20), 2, gossip(2, 1, false));
    let out: Vec<_> = std::iter::from_fn(|| node.poll()).collect();
    assert_eq!(out, [Out::Send(2, Message::Prune { origin: 9, shared: false })]);
    // A plausible shorter copy does take over: the old parent is pruned.
    node.handle(t(30), 1, gossip(3, 4, false));
    while node.poll().is_some() {}
    node.handle(t(40), 2, gossip(3, 2, false));
    let out: Vec<_> = std::iter::from_fn(|| node.poll()).collect();
    assert_eq!(out, [Out::Send(1, Message::Prune { origin: 9, shared: false })]);
}
