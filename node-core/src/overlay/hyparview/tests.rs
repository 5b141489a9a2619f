//! HyParView on an in-memory network of `u32` peers (every message delivered, in order), and
//! against peers that lie.
use super::*;
use std::collections::BTreeMap;

fn t(ms: u64) -> Instant {
    Instant::from_unix_ms(1_000_000 + ms)
}

/// Nodes, the messages in flight between them and their timers.
struct Net {
    nodes: BTreeMap<u32, HyParView<u32>>,
    wire: VecDeque<(u32, u32, Message<u32>)>,
    timers: BTreeMap<(Instant, u64), (u32, Timer<u32>)>,
    seq: u64,
    now: Instant,
}

/// More messages than any of these tests needs: past it, the nodes are looping.
const MESSAGE_LIMIT: usize = 1_000_000;

impl Net {
    fn new() -> Self {
        Net { nodes: BTreeMap::new(), wire: VecDeque::new(), timers: BTreeMap::new(), seq: 0, now: t(0) }
    }

    fn add(&mut self, id: u32) {
        self.nodes.insert(id, HyParView::new(id, Config::default(), u64::from(id), self.now));
    }

    /// Moves every output onto the wire or the timer queue and delivers until nothing is left.
    fn settle(&mut self) {
        let mut delivered = 0;
        loop {
            for (id, node) in &mut self.nodes {
                while let Some(out) = node.poll() {
                    match out {
                        Out::Send(to, m) => self.wire.push_back((*id, to, m)),
                        Out::Schedule(at, timer) => {
                            self.seq += 1;
                            self.timers.insert((at, self.seq), (*id, timer));
                        }
                        Out::NeighborUp(_) | Out::NeighborDown(_) | Out::Isolated => {}
                    }
                }
            }
            let Some((from, to, m)) = self.wire.pop_front() else { return };
            delivered += 1;
            assert!(delivered < MESSAGE_LIMIT, "the nodes keep talking: a message loop");
            match self.nodes.get_mut(&to) {
                Some(node) => node.handle(self.now, from, m),
                // A dead peer: the sender's link to it fails.
                None => {
                    let now = self.now;
                    if let Some(sender) = self.nodes.get_mut(&from) {
                        sender.peer_failed(now, &to);
                    }
                }
            }
        }
    }

    /// Lets `d` pass, firing the timers that fall due and settling after each.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), (id, timer)) = entry.remove_entry();
            self.now = self.now.max(at);
            if let Some(node) = self.nodes.get_mut(&id) {
                node.timer(at, timer);
            }
            self.settle();
        }
        self.now = until;
    }

    fn connected(&self) -> bool {
        let Some(start) = self.nodes.keys().next() else { return true };
        let mut seen = BTreeSet::from([*start]);
        let mut queue = vec![*start];
        while let Some(n) = queue.pop() {
            for p in self.nodes[&n].active() {
                if seen.insert(*p) {
                    queue.push(*p);
                }
            }
        }
        seen.len() == self.nodes.len()
    }
}

/// `n` nodes, each joining through a random earlier one, a second apart, then half a minute
/// for the views to settle.
fn joined(n: u32) -> Net {
    let mut net = Net::new();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    net.add(0);
    for id in 1..n {
        net.add(id);
        let contact = rng.next_u32() % id;
        let now = net.now;
        net.nodes.get_mut(&id).unwrap().join(now, contact);
        net.settle();
        net.advance(Duration::from_secs(1));
    }
    net.advance(Duration::from_secs(30));
    net
}

#[test]
fn fifty_joins_make_one_connected_overlay_of_symmetric_bounded_views() {
    let net = joined(50);
    for (id, node) in &net.nodes {
        let active = node.active();
        assert!(!active.is_empty() && active.len() <= 5, "{id}: {active:?}");
        for p in active {
            assert!(net.nodes[p].active().contains(id), "{id} has {p} but not the other way round");
        }
    }
    assert!(net.connected(), "one overlay");
}

#[test]
fn shuffles_fill_the_passive_views_within_bounds_and_keep_the_overlay_whole() {
    let mut net = joined(50);
    for _ in 0..10 {
        net.advance(Duration::from_secs(60));
    }
    let filled = net.nodes.values().filter(|n| n.passive().len() >= 5).count();
    assert!(filled >= 45, "only {filled} of 50 passive views have 5 peers or more");
    assert!(net.nodes.values().all(|n| n.passive().len() <= 30 && n.active().len() <= 5));
    assert!(net.connected());
}

#[test]
fn a_failed_active_peer_is_replaced_from_the_passive_view() {
    let mut net = joined(30);
    for _ in 0..5 {
        net.advance(Duration::from_secs(60));
    }
    assert!(net.connected(), "connected before the kill");
    // Kill a node: every neighbour notices its link drop.
    let dead = 7;
    net.nodes.remove(&dead);
    let now = net.now;
    for node in net.nodes.values_mut() {
        node.peer_failed(now, &dead);
    }
    net.settle();
    // Refusals are retried after the retry interval.
    net.advance(Duration::from_secs(30));
    assert!(net.nodes.values().all(|n| !n.active().contains(&dead) && !n.passive().contains(&dead)));
    assert!(net.nodes.values().all(|n| !n.active().is_empty()), "nobody is left alone");
    assert!(net.connected());
}

/// A node with active peers 1 and 2 and an empty outbox.
fn node_with_two_neighbours() -> HyParView<u32> {
    let mut n = HyParView::new(0, Config::default(), 1, t(0));
    n.handle(t(0), 1, Message::Neighbor(Priority::High));
    n.handle(t(0), 2, Message::Neighbor(Priority::High));
    while n.poll().is_some() {}
    n
}

fn sent(n: &mut HyParView<u32>) -> Vec<(u32, Message<u32>)> {
    std::iter::from_fn(|| n.poll())
        .filter_map(|o| match o {
            Out::Send(to, m) => Some((to, m)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_forward_join_with_ttl_1000_walks_no_further_than_ours() {
    let mut n = node_with_two_neighbours();
    n.handle(t(1), 1, Message::ForwardJoin { peer: 99, ttl: 1000 });
    let out = sent(&mut n);
    assert_eq!(out, [(2, Message::ForwardJoin { peer: 99, ttl: Config::default().active_walk - 1 })]);
    assert!(!n.active().contains(&99), "a walk with hops left passes the joiner on");
}

#[test]
fn a_shuffle_of_ten_thousand_peers_adds_no_more_than_we_would_send() {
    let mut n = node_with_two_neighbours();
    let peers: Vec<u32> = (100..10_100).collect();
    n.handle(t(1), 1, Message::Shuffle { origin: 1, peers, ttl: 0 });
    let c = Config::default();
    assert!(n.passive().len() <= 1 + c.shuffle_active + c.shuffle_passive, "{:?}", n.passive());
    assert_eq!(n.active().len(), 2, "the active view is untouched");
    let reply = sent(&mut n);
    assert!(matches!(&reply[..], [(1, Message::ShuffleReply { .. })]), "{reply:?}");
    // And however many shuffles come, the passive view stays within its capacity.
    for round in 0..50u32 {
        let peers: Vec<u32> = (0..10).map(|i| 20_000 + round * 10 + i).collect();
        n.handle(t(2), 1, Message::Shuffle { origin: 1, peers, ttl: 0 });
    }
    assert_eq!(n.passive().len(), c.passive_capacity);
}

#[test]
fn an_unasked_neighbor_reply_or_disconnect_of_a_stranger_changes_nothing() {
    let mut n = node_with_two_neighbours();
    n.handle(t(1), 66, Message::NeighborReply { accepted: true });
    n.handle(t(1), 67, Message::Disconnect { alive: true });
    assert_eq!(n.active().iter().copied().collect::<Vec<_>>(), [1, 2]);
    assert!(n.passive().is_empty());
}

fn neighbor_requests(n: &mut HyParView<u32>) -> Vec<u32> {
    sent(n).into_iter().filter_map(|(to, m)| matches!(m, Message::Neighbor(_)).then_some(to)).collect()
}

/// A full node: active peers 1..=5, passive peers 10..=14 (from the reply to its shuffle).
fn full_node() -> HyParView<u32> {
    let mut n = HyParView::new(0, Config::default(), 1, t(0));
    for p in 1..=5 {
        n.handle(t(0), p, Message::Neighbor(Priority::Low));
    }
    n.timer(t(0), Timer::Shuffle);
    n.handle(t(0), 3, Message::ShuffleReply { peers: (10..=14).collect() });
    while n.poll().is_some() {}
    n
}

#[test]
fn an_unanswered_neighbor_request_gives_way_to_another_candidate() {
    let mut n = full_node();
    n.peer_failed(t(1), &1);
    let asked = neighbor_requests(&mut n);
    assert_eq!(asked.len(), 1, "one request for the one free slot: {asked:?}");
    let silent = asked[0];
    n.timer(t(7), Timer::Neighbor(silent));
    let next = neighbor_requests(&mut n);
    assert_eq!(next.len(), 1);
    assert_ne!(next[0], silent, "the silent peer is dropped and another asked");
    assert!(!n.passive().contains(&silent));
}

#[test]
fn a_refusal_is_not_asked_again_until_the_retry_timer() {
    let mut n = full_node();
    for p in 1..=5 {
        n.peer_failed(t(1), &p);
    }
    let asked = neighbor_requests(&mut n);
    assert_eq!(asked.len(), 5, "every passive peer is asked at once: {asked:?}");
    for p in &asked {
        n.handle(t(2), *p, Message::NeighborReply { accepted: false });
    }
    let out: Vec<Out<u32>> = std::iter::from_fn(|| n.poll()).collect();
    assert!(
        !out.iter().any(|o| matches!(o, Out::Send(_, Message::Neighbor(_)))),
        "refusers are not asked again at once: {out:?}"
    );
    let retry = out.iter().find_map(|o| match o {
        Out::Schedule(at, Timer::Retry) => Some(*at),
        _ => None,
    });
    let at = retry.expect("a retry is scheduled");
    n.timer(at, Timer::Retry);
    assert_eq!(neighbor_requests(&mut n).len(), 5, "and asked again after it");
}

#[test]
fn a_thousand_strangers_asking_in_push_out_no_more_than_the_eviction_budget() {
    let c = Config::default();
    let budget = c.eviction_burst as usize;
    let mut n = full_node();
    // A minute later the five honest peers are established; then the flood comes.
    let start = 60_000;
    for sybil in 1000..2000 {
        n.handle(t(start), sybil, Message::Neighbor(Priority::High));
        n.handle(t(start), sybil + 1000, Message::Join);
    }
    let honest = n.active().iter().filter(|p| **p <= 5).count();
    assert!(honest >= 5 - budget, "{:?}", n.active());
    assert_eq!(n.active().len(), c.active_capacity);
    // A minute more of it: the strangers it let in are the ones that make room for the next
    // (the newest peers go first), so the honest peers stay.
    for (i, sybil) in (3000..3600).enumerate() {
        n.handle(t(start + 1000 + i as u64 * 100), sybil, Message::Neighbor(Priority::High));
        n.handle(t(start + 1000 + i as u64 * 100), sybil + 1000, Message::Join);
    }
    let still = n.active().iter().filter(|p| **p <= 5).count();
    assert!(still >= 5 - budget, "{:?}", n.active());
    assert_eq!(n.active().len(), c.active_capacity);
}

#[test]
fn walks_shuffles_and_replies_from_outside_the_active_view_are_ignored() {
    let mut n = full_node();
    let before = (n.active().clone(), n.passive().clone());
    n.handle(t(1), 66, Message::ForwardJoin { peer: 67, ttl: 0 });
    n.handle(t(1), 66, Message::Shuffle { origin: 66, peers: (100..110).collect(), ttl: 0 });
    n.handle(t(1), 66, Message::ShuffleReply { peers: (200..210).collect() });
    assert_eq!((n.active().clone(), n.passive().clone()), before);
    assert!(sent(&mut n).is_empty());
}

#[test]
fn an_active_liar_shuffling_without_end_replaces_the_passive_view_only_at_the_churn_rate() {
    let c = Config::default();
    let mut n = full_node();
    // Fill the passive view with honest peers through our own shuffles' replies.
    for round in 0..10u64 {
        n.timer(t(round), Timer::Shuffle);
        let peers = (0..8).map(|i| 100 + round as u32 * 8 + i).collect();
        n.handle(t(round), 2, Message::ShuffleReply { peers });
    }
    assert_eq!(n.passive().len(), c.passive_capacity);
    for round in 0..1000u32 {
        let peers = (0..8).map(|i| 10_000 + round * 8 + i).collect();
        n.handle(t(100), 1, Message::Shuffle { origin: 1, peers, ttl: 0 });
    }
    let lies = n.passive().iter().filter(|p| **p >= 10_000).count();
    assert!(lies <= c.passive_churn_burst as usize, "{lies} of {} are the liar's", c.passive_capacity);
}

#[test]
fn an_active_peer_forwarding_a_thousand_made_up_joiners_pushes_out_no_more_than_the_budget() {
    let c = Config::default();
    let mut n = full_node();
    let start = 60_000;
    // Peer 1 lies: it forwards joins of identities it controls, and each says yes at once.
    for (i, sybil) in (5000..6000u32).enumerate() {
        let at = t(start + i as u64);
        n.handle(at, 1, Message::ForwardJoin { peer: sybil, ttl: 0 });
        n.handle(at, sybil, Message::NeighborReply { accepted: true });
    }
    let honest = n.active().iter().filter(|p| (2..=5).contains(*p)).count();
    assert!(honest >= 4 - c.eviction_burst as usize, "{:?}", n.active());
    assert_eq!(n.active().len(), c.active_capacity);
}
