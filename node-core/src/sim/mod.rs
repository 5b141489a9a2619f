//! A deterministic discrete-event network for driving many [`Node`]s in one thread.
//!
//! Events sit in a queue keyed by `(time, sequence)`, so equal times keep their insertion order
//! and a seed fixes everything: link latency and jitter, datagram loss, every node's RNG. Nothing
//! sleeps, so a thousand nodes run through a simulated minute in seconds.
//!
//! The model: nodes sit in LAN *segments* (broadcast domains); datagrams reach the other live
//! nodes of the sender's segment, with loss. Links are reliable and ordered (like TCP) but carry
//! latency; a dial to a dead or partitioned node fails after a timeout. Killing a node makes it
//! vanish without closing anything (a power cut), so peers must notice through liveness.
//! Partitions black-hole traffic between groups. Each node has an in-memory disk ([`SimStorage`])
//! that survives [`Sim::restart`], and the simulator accepts every file offer, resuming from it.

mod storage;

pub use storage::{describe, PartialFile, SimStorage};

use crate::envelope::RtcSignal;
use crate::identity::{Keypair, PeerId};
use crate::interface::{
    Command, CommandError, CommandId, DatagramDest, Direction, Event, Input, LinkId, LinkKind, Output,
};
use crate::time::Instant;
use crate::{Config, Node};
use core::time::Duration;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Network behaviour of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for everything random.
    pub seed: u64,
    /// One-way latency of links and datagrams.
    pub latency: Duration,
    /// Extra random latency, up to this much.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub datagram_loss: f64,
    /// How long a dial to a dead or unreachable address takes to fail.
    pub dial_timeout: Duration,
    /// Simulated start time (Unix epoch based).
    pub start: Instant,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            latency: Duration::from_millis(2),
            jitter: Duration::from_millis(3),
            datagram_loss: 0.01,
            dial_timeout: Duration::from_secs(3),
            start: Instant::from_unix_ms(1_750_000_000_000),
        }
    }
}

/// Index of a node in the simulation.
pub type NodeIdx = usize;

/// A simulated host.
pub struct SimNode {
    /// The state machine.
    pub node: Node,
    /// Its secret key (kept for restarts).
    keys: Keypair,
    config: Config,
    /// Its IP address.
    pub ip: IpAddr,
    /// Its broadcast domain.
    pub segment: u32,
    /// Its partition group (nodes in different groups cannot reach each other).
    pub group: u32,
    /// Whether it is running.
    pub alive: bool,
    /// App events it produced, with their times.
    pub events: Vec<(Instant, Event)>,
    /// Its disk.
    pub storage: SimStorage,
    timer: Option<Instant>,
    generation: u64,
}

#[derive(Debug)]
enum SimEvent {
    Timer { node: NodeIdx, generation: u64 },
    Input { node: NodeIdx, generation: u64, input: Input },
}

/// The simulated network.
pub struct Sim {
    config: SimConfig,
    now: Instant,
    seq: u64,
    queue: BTreeMap<(Instant, u64), SimEvent>,
    rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    /// Each live link end and the other end: (node, link) -> (node, link).
    pairs: BTreeMap<(NodeIdx, LinkId), (NodeIdx, LinkId)>,
    /// Earliest time the next frame on a directed link may arrive, keeping links FIFO.
    fifo: BTreeMap<(NodeIdx, LinkId), Instant>,
    log: blake3::Hasher,
    /// Frames delivered, for benches and sanity checks.
    pub frames_delivered: u64,
    /// Datagrams delivered.
    pub datagrams_delivered: u64,
    /// Signaling groups: every member reaches every other through a simulated signaling server
    /// (the bootstrap server, or a native node's `/v1/signal` with its browsers).
    signal_groups: Vec<Vec<NodeIdx>>,
    /// Envelopes delivered over signaling groups.
    pub envelopes_delivered: u64,
}

/// The TCP port every simulated node listens on.
pub const SIM_TCP_PORT: u16 = 4000;
/// The UDP source port of simulated discovery datagrams.
const SIM_UDP_PORT: u16 = 40_000;

impl Sim {
    /// An empty network.
    pub fn new(config: SimConfig) -> Self {
        Sim {
            now: config.start,
            seq: 0,
            queue: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            nodes: Vec::new(),
            pairs: BTreeMap::new(),
            fifo: BTreeMap::new(),
            log: blake3::Hasher::new(),
            frames_delivered: 0,
            datagrams_delivered: 0,
            signal_groups: Vec::new(),
            envelopes_delivered: 0,
        }
    }

    /// Current simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Adds a node on LAN `segment`, started now. `config.tcp_port` is set by the simulator.
    pub fn add_node(&mut self, mut config: Config, segment: u32) -> NodeIdx {
        config.tcp_port = Some(SIM_TCP_PORT);
        self.add_host(config, segment)
    }

    /// Adds a browser node: no TCP listener, no LAN discovery, WebRTC links only. Its WebRTC
    /// stack is simulated: descriptions name the simulated link, and a data channel opens one
    /// round trip after the answer arrives, if the two hosts can reach each other.
    pub fn add_browser(&mut self, mut config: Config) -> NodeIdx {
        config.tcp_port = None;
        config.lan_discovery = false;
        config.webrtc = true;
        // Browsers sit on no LAN segment of their own: segment u32::MAX hears no broadcasts.
        self.add_host(config, u32::MAX)
    }

    /// Puts `members` in one signaling group (each learns the others are reachable now).
    pub fn signal_group(&mut self, members: &[NodeIdx]) {
        for &m in members {
            for &other in members {
                if m != other {
                    let peer = self.nodes[other].node.peer_id();
                    let now = self.now;
                    self.input(now, m, Input::SignalPeer { peer, online: true });
                }
            }
        }
        self.signal_groups.push(members.to_vec());
    }

    fn add_host(&mut self, mut config: Config, segment: u32) -> NodeIdx {
        let idx = self.nodes.len();
        let keys = Keypair::generate(&mut self.rng);
        let octets = (idx as u32 + 1).to_be_bytes();
        let ip = IpAddr::V4(Ipv4Addr::new(10, octets[1], octets[2], octets[3]));
        if let (Some(port), true) = (config.tcp_port, config.listen_addrs.is_empty()) {
            // Like a native node listing its interfaces.
            config.listen_addrs = vec![SocketAddr::new(ip, port)];
        }
        let seed = self.rng.next_u64();
        let node = Node::new(config.clone(), keys.clone(), seed, self.now);
        self.nodes.push(SimNode {
            node,
            keys,
            config,
            ip,
            segment,
            group: 0,
            alive: true,
            events: Vec::new(),
            storage: SimStorage::default(),
            timer: None,
            generation: 0,
        });
        self.schedule(self.now, SimEvent::Timer { node: idx, generation: 0 });
        idx
    }

    /// The nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, idx: NodeIdx) -> &SimNode {
        &self.nodes[idx]
    }

    /// One node, mutably (to add files to its storage).
    pub fn node_mut(&mut self, idx: NodeIdx) -> &mut SimNode {
        &mut self.nodes[idx]
    }

    /// The socket address other nodes dial to reach `idx`.
    pub fn addr_of(&self, idx: NodeIdx) -> SocketAddr {
        SocketAddr::new(self.nodes[idx].ip, SIM_TCP_PORT)
    }

    /// The node index with this id.
    pub fn index_of(&self, peer: &PeerId) -> Option<NodeIdx> {
        self.nodes.iter().position(|n| n.node.peer_id() == *peer)
    }

    /// Gives a command to a node now and carries out its outputs.
    pub fn command(&mut self, idx: NodeIdx, command: Command) -> Result<CommandId, CommandError> {
        let now = self.now;
        let r = self.nodes[idx].node.command(now, command);
        self.drain(idx);
        r
    }

    /// Stops a node without a word to anyone: its links go silent.
    pub fn kill(&mut self, idx: NodeIdx) {
        self.nodes[idx].alive = false;
        self.nodes[idx].generation += 1;
        self.pairs.retain(|(n, _), (m, _)| *n != idx && *m != idx);
    }

    /// Starts a killed node again with the same identity, config and disk.
    pub fn restart(&mut self, idx: NodeIdx) {
        let seed = self.rng.next_u64();
        let n = &mut self.nodes[idx];
        n.node = Node::new(n.config.clone(), n.keys.clone(), seed, self.now);
        n.alive = true;
        n.generation += 1;
        n.timer = None;
        let generation = n.generation;
        self.schedule(self.now, SimEvent::Timer { node: idx, generation });
    }

    /// Splits nodes into groups that cannot reach each other (`group_of(idx)`); links across
    /// groups go silent.
    pub fn partition(&mut self, group_of: impl Fn(NodeIdx) -> u32) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.group = group_of(i);
        }
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    /// Drops the link between `a` and `b` at both ends, as a network glitch would (both see it close).
    pub fn break_link(&mut self, a: NodeIdx, b: NodeIdx) -> bool {
        let ends: Vec<((NodeIdx, LinkId), (NodeIdx, LinkId))> =
            self.pairs.iter().filter(|((n, _), (m, _))| *n == a && *m == b).map(|(k, v)| (*k, *v)).collect();
        for (x, y) in &ends {
            self.pairs.remove(x);
            self.pairs.remove(y);
            for (node, link) in [*x, *y] {
                let generation = self.nodes[node].generation;
                let input = Input::LinkClosed { link, reason: "connection reset".into() };
                self.schedule(self.now, SimEvent::Input { node, generation, input });
            }
        }
        !ends.is_empty()
    }

    /// Hash of every app event so far, with its time and node: equal for equal seeds.
    pub fn log_hash(&self) -> [u8; 32] {
        *self.log.clone().finalize().as_bytes()
    }

    /// Runs until simulated time `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some((&(at, seq), _)) = self.queue.first_key_value() {
            if at > until {
                break;
            }
            let Some(ev) = self.queue.remove(&(at, seq)) else { break };
            self.now = at;
            self.dispatch(ev);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs in steps of `step` until `done` holds or `limit` passes; returns whether it held.
    pub fn run_while_not(&mut self, limit: Duration, step: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.run_for(step);
        }
        done(self)
    }

    fn schedule(&mut self, at: Instant, ev: SimEvent) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn delay(&mut self) -> Duration {
        let j = self.config.jitter.as_micros() as u64;
        let extra = if j == 0 { 0 } else { self.rng.next_u64() % j };
        self.config.latency + Duration::from_micros(extra)
    }

    fn reachable(&self, a: NodeIdx, b: NodeIdx) -> bool {
        self.nodes[a].alive && self.nodes[b].alive && self.nodes[a].group == self.nodes[b].group
    }

    fn dispatch(&mut self, ev: SimEvent) {
        match ev {
            SimEvent::Timer { node, generation } => {
                let n = &mut self.nodes[node];
                if !n.alive || n.generation != generation {
                    return;
                }
                if n.timer.is_some_and(|t| t > self.now) {
                    return; // superseded by an earlier re-arm
                }
                n.timer = None;
                n.node.handle_timeout(self.now);
                self.drain(node);
            }
            SimEvent::Input { node, generation, input } => {
                let n = &mut self.nodes[node];
                if !n.alive || n.generation != generation {
                    return;
                }
                n.node.handle(self.now, input);
                self.drain(node);
            }
        }
    }

    fn input(&mut self, at: Instant, node: NodeIdx, input: Input) {
        let generation = self.nodes[node].generation;
        self.schedule(at, SimEvent::Input { node, generation, input });
    }

    /// Carries out every output of `idx`, then re-arms its timer.
    fn drain(&mut self, idx: NodeIdx) {
        while let Some(out) = self.nodes[idx].node.poll_output() {
            self.carry_out(idx, out);
        }
        if let Some(t) = self.nodes[idx].node.poll_timeout() {
            let n = &mut self.nodes[idx];
            if n.timer.is_none_or(|cur| t < cur) {
                n.timer = Some(t);
                let generation = n.generation;
                self.schedule(t.max(self.now), SimEvent::Timer { node: idx, generation });
            }
        }
    }

    fn carry_out(&mut self, idx: NodeIdx, out: Output) {
        let now = self.now;
        match out {
            Output::Transmit { dest, data } => self.transmit(idx, dest, data),
            Output::OpenLink { link, addr, expect, kind } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.ip == addr.ip() && addr.port() == SIM_TCP_PORT)
                    .filter(|t| self.reachable(idx, *t) && *t != idx);
                let Some(t) = target else {
                    let at = now + self.config.dial_timeout;
                    return self.input(at, idx, Input::LinkFailed { link, reason: "unreachable".into() });
                };
                let their_id = self.nodes[t].node.peer_id();
                if expect.is_some_and(|e| e != their_id) {
                    let at = now + self.delay() * 2;
                    return self.input(at, idx, Input::LinkFailed { link, reason: "identity mismatch".into() });
                }
                let their_link = self.nodes[t].node.allocate_link_id();
                self.pairs.insert((idx, link), (t, their_link));
                self.pairs.insert((t, their_link), (idx, link));
                let my_id = self.nodes[idx].node.peer_id();
                let my_addr = SocketAddr::new(self.nodes[idx].ip, 50_000);
                let rtt = self.delay() * 2;
                self.fifo.insert((idx, link), now + rtt);
                self.fifo.insert((t, their_link), now + rtt);
                self.input(
                    now + rtt,
                    idx,
                    Input::LinkUp { link, peer: their_id, direction: Direction::Outbound, remote_addr: addr, kind },
                );
                self.input(
                    now + rtt,
                    t,
                    Input::LinkUp {
                        link: their_link,
                        peer: my_id,
                        direction: Direction::Inbound,
                        remote_addr: my_addr,
                        kind,
                    },
                );
            }
            Output::SendFrame { link, data } => {
                let Some(&(t, their_link)) = self.pairs.get(&(idx, link)) else { return };
                if !self.reachable(idx, t) {
                    return; // black hole
                }
                let d = self.delay();
                let at = (now + d).max(self.fifo.get(&(t, their_link)).copied().unwrap_or(now));
                self.fifo.insert((t, their_link), at + Duration::from_micros(1));
                self.frames_delivered += 1;
                self.input(at, t, Input::Frame { link: their_link, data });
            }
            Output::CloseLink { link, reason } => {
                self.fifo.remove(&(idx, link));
                if let Some((t, their_link)) = self.pairs.remove(&(idx, link)) {
                    self.pairs.remove(&(t, their_link));
                    if self.reachable(idx, t) {
                        let at = (now + self.delay()).max(self.fifo.get(&(t, their_link)).copied().unwrap_or(now));
                        self.input(
                            at,
                            t,
                            Input::LinkClosed { link: their_link, reason: format!("closed by peer: {reason}") },
                        );
                    }
                }
            }
            Output::ReadChunk { file, index, offset, len } => {
                let result = match self.nodes[idx].storage.files.get(&file) {
                    Some(data) => {
                        let start = offset as usize;
                        let end = start + len as usize;
                        data.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| "short file".to_owned())
                    }
                    None => Err("no such file".to_owned()),
                };
                self.input(now, idx, Input::ChunkRead { file, index, result });
            }
            Output::WriteChunk { file, index, offset, data } => {
                if let Some(p) = self.nodes[idx].storage.partial.get_mut(&file) {
                    let start = offset as usize;
                    if let Some(slot) = p.data.get_mut(start..start + data.len()) {
                        slot.copy_from_slice(&data);
                        if let Some(h) = p.have.get_mut(index as usize) {
                            *h = true;
                        }
                    }
                }
                self.input(now, idx, Input::ChunkWritten { file, index });
            }
            Output::FinalizeDownload { file, name, size } => {
                let storage = &mut self.nodes[idx].storage;
                let result = match storage.partial.remove(&file) {
                    Some(p) if p.data.len() as u64 == size && *blake3::hash(&p.data).as_bytes() == file.0 => {
                        storage.files.insert(file, p.data.clone());
                        storage.finished.push((name.clone(), p.data));
                        Ok(format!("/sim/{name}"))
                    }
                    _ => Err("whole-file hash mismatch".to_owned()),
                };
                self.input(now, idx, Input::DownloadFinalized { file, result });
            }
            Output::Event(event) => self.on_event(idx, event),
            Output::SendSignal { to, data } => {
                let Some(t) = self.index_of(&to) else { return };
                let shared = self.signal_groups.iter().any(|g| g.contains(&idx) && g.contains(&t));
                if shared && self.nodes[t].alive {
                    // Through a server: two hops of latency, and partitions do not apply.
                    let at = now + self.delay() * 2;
                    self.envelopes_delivered += 1;
                    self.input(at, t, Input::Signal { data });
                }
            }
            Output::OpenRtc { link, peer, offer } => self.open_rtc(idx, link, peer, offer),
            Output::OpenRelay { link, .. } | Output::PreparePunch { link, .. } | Output::Punch { link, .. } => {
                let reason = "the simulator has no NATs, relays or punching".to_owned();
                self.input(now, idx, Input::LinkFailed { link, reason });
            }
            Output::RtcRemote { link, signal } => self.rtc_remote(idx, link, signal),
        }
    }

    /// The simulated WebRTC stack: an offer or answer is "sim <node> <link>".
    fn open_rtc(&mut self, idx: NodeIdx, link: LinkId, peer: PeerId, offer: Option<String>) {
        let now = self.now;
        let me = format!("sim {idx} {}", link.0);
        let signal = match offer {
            None => RtcSignal::Offer { sdp: me },
            Some(sdp) => match parse_sim_sdp(&sdp)
                .filter(|(n, _)| self.nodes.get(*n).is_some_and(|h| h.node.peer_id() == peer))
            {
                Some(_) => RtcSignal::Answer { sdp: me },
                None => return self.input(now, idx, Input::LinkFailed { link, reason: "bad description".into() }),
            },
        };
        self.input(now, idx, Input::RtcLocal { link, signal });
    }

    /// The answer reached the offerer: the data channel opens at both ends if they can reach
    /// each other (the simulated ICE), else the offerer's attempt fails.
    fn rtc_remote(&mut self, idx: NodeIdx, link: LinkId, signal: RtcSignal) {
        let now = self.now;
        let RtcSignal::Answer { sdp } = signal else { return };
        let Some((t, their_link)) = parse_sim_sdp(&sdp) else { return };
        if t >= self.nodes.len() || !self.reachable(idx, t) {
            let at = now + self.config.dial_timeout;
            return self.input(at, idx, Input::LinkFailed { link, reason: "ICE failed".into() });
        }
        let their_link = LinkId(their_link);
        self.pairs.insert((idx, link), (t, their_link));
        self.pairs.insert((t, their_link), (idx, link));
        let rtt = self.delay() * 2;
        self.fifo.insert((idx, link), now + rtt);
        self.fifo.insert((t, their_link), now + rtt);
        let (my_id, their_id) = (self.nodes[idx].node.peer_id(), self.nodes[t].node.peer_id());
        let (my_addr, their_addr) =
            (SocketAddr::new(self.nodes[idx].ip, 50_000), SocketAddr::new(self.nodes[t].ip, 50_000));
        let kind = LinkKind::WebRtc;
        let up = |link, peer, direction, remote_addr| Input::LinkUp { link, peer, direction, remote_addr, kind };
        self.input(now + rtt, idx, up(link, their_id, Direction::Outbound, their_addr));
        self.input(now + rtt, t, up(their_link, my_id, Direction::Inbound, my_addr));
    }

    fn transmit(&mut self, idx: NodeIdx, dest: DatagramDest, data: Vec<u8>) {
        let from = SocketAddr::new(self.nodes[idx].ip, SIM_UDP_PORT);
        let targets: Vec<NodeIdx> = match dest {
            DatagramDest::LanBroadcast { .. } => (0..self.nodes.len())
                .filter(|t| *t != idx && self.nodes[*t].segment == self.nodes[idx].segment)
                .collect(),
            DatagramDest::Unicast(addr) => self.nodes.iter().position(|n| n.ip == addr.ip()).into_iter().collect(),
        };
        for t in targets {
            if !self.reachable(idx, t) {
                continue;
            }
            let lost = (self.rng.next_u32() as f64 / u32::MAX as f64) < self.config.datagram_loss;
            if lost {
                continue;
            }
            let at = self.now + self.delay();
            self.datagrams_delivered += 1;
            self.input(at, t, Input::Datagram { from, data: data.clone() });
        }
    }

    fn on_event(&mut self, idx: NodeIdx, event: Event) {
        let now = self.now;
        self.log.update(format!("{} {idx} {event:?}\n", now.as_micros()).as_bytes());
        if let Event::TransferOffered { transfer_id, from, size, chunk_size, file, .. } = &event {
            // The simulated user accepts every offer, resuming from what is on its disk.
            let storage = &mut self.nodes[idx].storage;
            let have = storage.have(file, *size, *chunk_size);
            if have.is_empty() {
                let chunks = crate::transfer::chunk_count(*size, *chunk_size) as usize;
                storage.partial.insert(*file, PartialFile { data: vec![0; *size as usize], have: vec![false; chunks] });
            }
            let cmd = Command::AcceptOffer { from: *from, transfer_id: *transfer_id, have };
            let _ = self.nodes[idx].node.command(now, cmd);
        }
        self.nodes[idx].events.push((now, event));
    }
}

/// Reads a simulated description: "sim <node> <link>".
fn parse_sim_sdp(sdp: &str) -> Option<(NodeIdx, u64)> {
    let mut parts = sdp.strip_prefix("sim ")?.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
