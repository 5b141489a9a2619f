//! Issue 6 with real processes: 30 `weft` nodes on loopback with `--max-peers 6`, each started
//! with `--connect` to one earlier node picked by a seeded generator (`SEED` from the
//! environment, printed, or a fixed default). LAN discovery is off, so every link grows from
//! those dials and what the nodes then tell each other. The test proves that:
//! - the overlay becomes connected (over links both ends report) within 60 s;
//! - no node ever reports more than 6 established links, checked at every poll from the first
//!   start to the last count;
//! - a chat from one node reaches each of the other 29 exactly once, from the right author, and
//!   never comes back to the node that sent it.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::Weft;

const NODES: usize = 30;
const MAX_PEERS: usize = 6;
/// The default `SEED`: which earlier node each node dials, and which node chats.
const DEFAULT_SEED: u64 = 6;
/// The nodes' own mesh, so no node from another test could ever join this one.
const MESH: &str = "overlay-mesh-test";
/// How long the overlay has to become connected after the last node started.
const SETTLE: Duration = Duration::from_secs(60);
/// Between two polls of every node's peer list.
const POLL: Duration = Duration::from_millis(400);
/// How long the chat has to reach everyone.
const DELIVERY: Duration = Duration::from_secs(20);
/// How long late copies get to show up before chats are counted.
const QUIET: Duration = Duration::from_secs(3);

/// The seed: `SEED` from the environment (printed, so a failure can be replayed) or the default.
fn seed() -> u64 {
    let seed = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    println!("SEED={seed}");
    seed
}

/// SplitMix64: a few lines, no dependency, and the same picks on every platform.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (the bias of a plain modulo is far below what 30 picks could show).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One poll of every node's own peer list.
struct Snapshot {
    /// How many established links each node reports (every entry of its list, ours or not).
    counts: Vec<usize>,
    /// The nodes each node reports a link to, as indices into the node list.
    links: Vec<BTreeSet<usize>>,
    /// Peer ids a node reported that belong to none of our nodes (never expected).
    strangers: Vec<Vec<String>>,
}

impl Snapshot {
    /// Asks each node in turn for its peers (the `peers` JSON command).
    fn take(nodes: &mut [Weft], index: &BTreeMap<String, usize>) -> Snapshot {
        let mut s = Snapshot { counts: vec![], links: vec![], strangers: vec![] };
        for node in nodes.iter_mut() {
            assert!(node.alive(), "{} exited", node.name);
            let list = node.peers();
            s.counts.push(list.len());
            let (ours, theirs): (Vec<_>, Vec<_>) = list.into_iter().partition(|p| index.contains_key(p));
            s.links.push(ours.iter().map(|p| index[p]).collect());
            s.strangers.push(theirs);
        }
        s
    }

    /// Whether both ends report the link between `a` and `b`.
    fn mutual(&self, a: usize, b: usize) -> bool {
        self.links[a].contains(&b) && self.links[b].contains(&a)
    }

    /// The connected components over mutual links, smallest first.
    fn components(&self) -> Vec<Vec<usize>> {
        let n = self.links.len();
        let mut seen = vec![false; n];
        let mut out = Vec::new();
        while let Some(start) = seen.iter().position(|s| !s) {
            seen[start] = true;
            let mut component = vec![start];
            let mut next = 0;
            while next < component.len() {
                let a = component[next];
                next += 1;
                for &b in &self.links[a] {
                    if !seen[b] && self.mutual(a, b) {
                        seen[b] = true;
                        component.push(b);
                    }
                }
            }
            component.sort_unstable();
            out.push(component);
        }
        out.sort_by_key(|c| c.len());
        out
    }

    /// Connected over mutual links, and nobody alone.
    fn connected(&self) -> bool {
        self.counts.iter().all(|&c| c >= 1) && self.components().len() == 1
    }

    /// The nodes over the cap.
    fn over_cap(&self) -> Vec<usize> {
        (0..self.counts.len()).filter(|&i| self.counts[i] > MAX_PEERS).collect()
    }

    /// Every node's links (`?` marks one only this end reports), then the components.
    fn describe(&self, nodes: &[Weft]) -> String {
        let mut out = String::new();
        for (i, links) in self.links.iter().enumerate() {
            let names: Vec<String> = links
                .iter()
                .map(|&j| format!("{}{}", nodes[j].name, if self.mutual(i, j) { "" } else { "?" }))
                .collect();
            out += &format!("  {} ({} links): {}", nodes[i].name, self.counts[i], names.join(" "));
            if !self.strangers[i].is_empty() {
                out += &format!(" + strangers {:?}", self.strangers[i]);
            }
            out += "\n";
        }
        let components: Vec<String> = self
            .components()
            .iter()
            .map(|c| format!("[{}]", c.iter().map(|&i| nodes[i].name.as_str()).collect::<Vec<_>>().join(" ")))
            .collect();
        out += &format!("  {} component(s): {}", components.len(), components.join(" "));
        out
    }

    /// Panics, naming the nodes and their links, if any node is over `--max-peers`.
    fn assert_under_cap(&self, nodes: &[Weft], when: &str) {
        let over = self.over_cap();
        assert!(
            over.is_empty(),
            "{} report more than {MAX_PEERS} links {when}:\n{}",
            over.iter().map(|&i| nodes[i].name.as_str()).collect::<Vec<_>>().join(", "),
            self.describe(nodes)
        );
    }
}

#[test]
fn thirty_nodes_with_max_peers_6_form_one_overlay_where_chat_reaches_all_and_direct_messages_their_recipient_once() {
    let seed = seed();
    let mut rng = SplitMix(seed);
    // Node i (i ≥ 1) dials an earlier node; the first dials nobody.
    let targets: Vec<Option<usize>> = (0..NODES).map(|i| (i > 0).then(|| rng.below(i))).collect();
    let sender = rng.below(NODES);
    let dial_plan: Vec<String> =
        targets.iter().enumerate().filter_map(|(i, t)| t.map(|j| format!("n{i:02}→n{j:02}"))).collect();
    println!("--connect plan: {}", dial_plan.join(" "));

    let dir = tempfile::tempdir().unwrap();
    let max_peers = MAX_PEERS.to_string();
    let mut nodes: Vec<Weft> = Vec::with_capacity(NODES);
    let mut index = BTreeMap::new();
    let started = Instant::now();
    for (i, target) in targets.iter().enumerate() {
        // `Weft::start` returns once the node printed `ready`, i.e. once it listens: every
        // target below is already accepting links.
        let connect = target.map(|j| format!("127.0.0.1:{}", nodes[j].tcp_port));
        let mut args = vec!["--no-discovery", "--bind", "127.0.0.1", "--mesh", MESH, "--max-peers", max_peers.as_str()];
        if let Some(addr) = &connect {
            args.extend(["--connect", addr.as_str()]);
        }
        let node = Weft::start(dir.path(), &format!("n{i:02}"), &args);
        index.insert(node.peer_id.clone(), i);
        nodes.push(node);
        // The cap holds while the overlay grows, not only once it has settled.
        Snapshot::take(&mut nodes, &index).assert_under_cap(&nodes, &format!("after n{i:02} started"));
    }
    println!("{NODES} nodes started in {:?}", started.elapsed());

    // Settled: connected over mutual links at two polls in a row.
    let deadline = Instant::now() + SETTLE;
    let settling = Instant::now();
    let mut polls = 0;
    let mut was_connected = false;
    let settled = loop {
        let snap = Snapshot::take(&mut nodes, &index);
        polls += 1;
        snap.assert_under_cap(&nodes, &format!("at poll {polls} of the settling wait"));
        let connected = snap.connected();
        if connected && was_connected {
            break snap;
        }
        was_connected = connected;
        if Instant::now() >= deadline {
            panic!(
                "SEED={seed}: the overlay is not connected {SETTLE:?} after the last start ({polls} polls):\n{}",
                snap.describe(&nodes)
            );
        }
        std::thread::sleep(POLL);
    };
    let mut degrees: BTreeMap<usize, usize> = BTreeMap::new();
    for &c in &settled.counts {
        *degrees.entry(c).or_default() += 1;
    }
    println!("connected after {:?} ({polls} polls); links per node → nodes: {degrees:?}", settling.elapsed());
    assert!(settled.strangers.iter().all(|s| s.is_empty()), "links to unknown peers:\n{}", settled.describe(&nodes));

    // One chat, from the node the seed picked.
    let text = format!("overlay chat from n{sender:02}, seed {seed}");
    let is_it = |e: &Value| e["event"] == "chat" && e["text"] == text.as_str();
    nodes[sender].send(json!({"cmd": "chat", "text": text}));
    let sent_at = Instant::now();
    let deadline = sent_at + DELIVERY;
    let missing: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != sender)
        .filter(|(_, n)| n.wait_event(deadline.saturating_duration_since(Instant::now()), is_it).is_none())
        .map(|(_, n)| n.name.clone())
        .collect();
    if !missing.is_empty() {
        let errors: Vec<Value> = nodes[sender].events().into_iter().filter(|e| e["event"] == "error").collect();
        let links = Snapshot::take(&mut nodes, &index);
        panic!(
            "SEED={seed}: n{sender:02}'s chat did not reach {} of {} nodes within {DELIVERY:?}: {}\n\
             sender's errors: {errors:?}\nlinks now:\n{}",
            missing.len(),
            NODES - 1,
            missing.join(", "),
            links.describe(&nodes)
        );
    }
    println!("the chat reached all {} other nodes in {:?}", NODES - 1, sent_at.elapsed());

    // Give duplicates every chance to arrive before counting.
    std::thread::sleep(QUIET);
    let sender_id = nodes[sender].peer_id.clone();
    let mut wrong = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let copies: Vec<Value> = node.events().into_iter().filter(&is_it).collect();
        let expected = usize::from(i != sender);
        if copies.len() != expected {
            wrong.push(format!("{} got {} copies (expected {expected})", node.name, copies.len()));
        }
        for c in &copies {
            if c["from"] != sender_id.as_str() || c["from_name"] != nodes[sender].name.as_str() {
                wrong.push(format!("{} got it from {} ({})", node.name, c["from"], c["from_name"]));
            }
        }
        // A broadcast channel that lagged dropped events: the counts above would mean nothing.
        if node.count(|e| e["event"] == "error" && e["code"] == "lagged") > 0 {
            wrong.push(format!("{} dropped events (lagged)", node.name));
        }
    }
    assert!(wrong.is_empty(), "SEED={seed}: not exactly once everywhere:\n  {}", wrong.join("\n  "));

    // And the cap still holds after the broadcast.
    let snap = Snapshot::take(&mut nodes, &index);
    snap.assert_under_cap(&nodes, "after the chat");

    // A direct message to a node the sender has no link to: routed by the recipient's record
    // in the DHT (or, without one yet, flooded), it reaches the recipient once and nobody else.
    let linked = &snap.links[sender];
    let to = (0..NODES).find(|&i| i != sender && !linked.contains(&i)).expect("a node the sender has no link to");
    let text = format!("direct from n{sender:02} to n{to:02}, seed {seed}");
    let is_it = |e: &Value| e["event"] == "direct" && e["text"] == text.as_str();
    let msg = json!({"cmd": "msg", "peer": nodes[to].peer_id, "text": text});
    nodes[sender].send(msg);
    let got = nodes[to].wait_event(DELIVERY, is_it);
    assert!(got.is_some(), "SEED={seed}: n{to:02} did not get n{sender:02}'s direct message");
    std::thread::sleep(QUIET);
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.count(is_it), usize::from(i == to), "SEED={seed}: {} and the direct message", node.name);
    }
    let mut floods = 0;
    for node in &mut nodes {
        node.send(json!({"cmd": "stats"}));
        let stats = node.wait_event(Duration::from_secs(5), |e| e["event"] == "stats").expect("stats");
        floods += stats["flooded_messages"].as_u64().expect("flooded_messages");
    }
    println!("the direct message reached n{to:02} once; nodes flooded {floods} messages in all");
}
