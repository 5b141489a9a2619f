//! The [`Node`]: the whole protocol of one peer as a state machine.

mod connect;
mod dht;
mod dialing;
mod discovery;
mod exchange;
mod links;
mod map;
mod messaging;
mod name_mirror;
mod overlay;
mod peers;
mod rtc;
mod signaling;

use crate::bounded::BoundedSet;
use crate::config::Config;
use crate::discovery::{AnnounceSchedule, ReplayGuard};
use crate::identity::{Keypair, PeerId};
use crate::interface::{Command, CommandError, CommandId, Event, Input, LinkId, Output};
use crate::time::Instant;
use crate::transfer::{Action, Transfers};
use crate::wire::{self, Message, MsgId};
use core::time::Duration;
use links::{Link, PendingConnect};
pub use map::MeshMap;
use peers::PeerTable;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// How often the node checks liveness, dials and transfer timeouts.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// Most outputs queued before the driver drains them; past this the node stops producing optional
/// traffic (announcements, pings) rather than grow without bound.
const MAX_QUEUED_OUTPUTS: usize = 65_536;

/// Counters a driver can show; each names something dropped or refused, so nothing vanishes silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames of a message kind from a newer version, skipped.
    pub unknown_kinds: u64,
    /// Datagrams on the discovery ports that were not valid announcements.
    pub bad_datagrams: u64,
    /// Valid announcements dropped as replays or outside the clock window.
    pub replayed_announcements: u64,
    /// Announcements from other meshes.
    pub foreign_mesh_announcements: u64,
    /// Links closed because the peer broke the protocol.
    pub misbehaving_links: u64,
    /// Broadcast or direct messages dropped as duplicates.
    pub duplicate_messages: u64,
    /// Messages with a bad author signature.
    pub bad_signatures: u64,
    /// Peer-exchange lists nobody asked for, ignored.
    pub unsolicited_exchanges: u64,
    /// Chat or direct messages whose clock is too far from ours (stale replays), ignored.
    pub stale_messages: u64,
    /// Signaling envelopes that did not decode, verify or open.
    pub bad_envelopes: u64,
    /// Envelopes of ours that could not be sealed (an oversized description, say).
    pub unsendable_envelopes: u64,
    /// Envelopes refused because the replay cache was full of live entries (a flood).
    pub envelope_cache_full: u64,
    /// WebRTC answers or candidates for no attempt we know (late, or meant for an earlier one).
    pub unmatched_signals: u64,
    /// Overlay messages dropped because too many waited for links to open.
    pub overlay_dropped: u64,
    /// Direct messages and envelopes sent to every link because no route to their recipient was
    /// known (no link, no record in the DHT): each costs the mesh a flood.
    pub flooded_messages: u64,
}

/// One peer's protocol state: discovery, links, messaging and transfers, with no IO.
///
/// # Driving a node
/// The driver owns the sockets, the clock and the disk; the node owns every decision.
/// - Feed what happened with [`handle`](Self::handle) and what the user wants with
///   [`command`](Self::command), each with the current time.
/// - After **every** `handle`, `command` or `handle_timeout`, drain [`poll_output`](Self::poll_output)
///   until it returns `None`, carrying out each [`Output`] in order.
/// - Then arm one timer for [`poll_timeout`](Self::poll_timeout) and call
///   [`handle_timeout`](Self::handle_timeout) when it fires. An early call does nothing harmful.
///
/// Getters ([`peer_id`](Self::peer_id), [`peers`](Self::peers), [`stats`](Self::stats)) never change state.
pub struct Node {
    config: Config,
    keys: Keypair,
    me: PeerId,
    rng: ChaCha8Rng,
    /// The time of the input being handled, for code paths that have no `now` argument.
    now: Instant,
    outputs: VecDeque<Output>,
    next_link: u64,
    next_command: u64,
    links: BTreeMap<LinkId, Link>,
    peers: PeerTable,
    /// `--connect` addresses not yet resolved to an identity (bounded by what the user typed).
    pending_connects: BTreeMap<std::net::SocketAddr, PendingConnect>,
    schedule: AnnounceSchedule,
    next_announce: Option<Instant>,
    replay: ReplayGuard,
    /// Discovery replies left in the current second: a spoofed flood cannot turn us into an amplifier.
    reply_budget: (Instant, u32),
    seen: BoundedSet<MsgId>,
    /// Envelopes already handled, by sender and nonce: replays and copies over a second path.
    /// Envelopes seen, until their clock window closes (the replay and duplicate cache).
    seen_envelopes: crate::bounded::ExpiringSet<(PeerId, [u8; 16])>,
    transfers: Transfers,
    next_maintenance: Instant,
    /// A discovered peer's delayed dial, when it is due before the next maintenance tick.
    dial_wakeup: Option<Instant>,
    next_peer_exchange: Instant,
    stats: Stats,
    /// What the driver's NAT probe found, once it has run.
    nat: Option<crate::nat::NatReport>,
    /// Cross-network link attempts in progress, by peer (at most `connect::MAX_CONNECTS`).
    connects: BTreeMap<PeerId, connect::Attempt>,
    /// Whether the driver's broker channel is up ([`Input::SignalBroker`]).
    broker: bool,
    /// The router's port mapping to our TCP listener ([`Input::PortMapped`]): `None` until the
    /// driver has tried, then what it got.
    port_mapping: Option<Option<std::net::SocketAddr>>,
    /// The last connectivity report per peer, oldest evicted past `connect::MAX_REPORTS`.
    reports: BTreeMap<PeerId, (Instant, crate::nat::report::ConnectReport)>,
    /// The overlay: which links to keep, and broadcast over them.
    overlay: overlay::OverlayState,
}

/// What a node can tell about its connectivity to one peer ("doctor").
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The peer.
    pub peer: PeerId,
    /// The link it has now, if any.
    pub link: Option<PeerSummary>,
    /// Whether a link attempt ([`crate::Command::ConnectPeer`]) is under way.
    pub attempt_running: bool,
    /// The last attempt's report, if one ended.
    pub report: Option<crate::nat::report::ConnectReport>,
}

/// A peer as the application sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSummary {
    /// Its id.
    pub peer: PeerId,
    /// Its name.
    pub name: String,
    /// The link kind, if linked.
    pub kind: Option<crate::interface::LinkKind>,
    /// Its address, if linked.
    pub addr: Option<std::net::SocketAddr>,
    /// Last measured round-trip time.
    pub rtt: Option<Duration>,
    /// Who dialed, if linked.
    pub direction: Option<crate::interface::Direction>,
}

impl Node {
    /// A node with identity `keys`, randomness from `rng_seed`, starting at `now`.
    pub fn new(config: Config, keys: Keypair, rng_seed: u64, now: Instant) -> Self {
        let me = keys.peer_id();
        let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
        let pex_jitter = Duration::from_millis(u64::from(rng.next_u32() % 10_000));
        let next_announce = config.lan_discovery.then_some(now);
        let overlay = overlay::OverlayState::new(me, config.max_peers, rng.next_u64(), now);
        let mut node = Node {
            seen: BoundedSet::new(config.seen_cache),
            seen_envelopes: crate::bounded::ExpiringSet::new(config.seen_cache),
            peers: PeerTable::new(config.max_known_peers),
            transfers: Transfers::new(config.transfer_window),
            next_peer_exchange: now + config.peer_exchange_interval + pex_jitter,
            config,
            keys,
            me,
            rng,
            now,
            outputs: VecDeque::new(),
            next_link: 0,
            next_command: 0,
            links: BTreeMap::new(),
            pending_connects: BTreeMap::new(),
            schedule: AnnounceSchedule::new(now),
            next_announce,
            replay: ReplayGuard::new(4096),
            reply_budget: (now, 0),
            next_maintenance: now + MAINTENANCE_INTERVAL,
            dial_wakeup: None,
            stats: Stats::default(),
            nat: None,
            connects: BTreeMap::new(),
            broker: false,
            port_mapping: None,
            reports: BTreeMap::new(),
            overlay,
        };
        node.overlay_pump(now);
        node
    }

    /// Mixes 32 bytes from the OS into the node's random generator. Drivers call it once after
    /// [`Node::new`]: the 64-bit seed is enough for ids and jitter, but the ephemeral keys that
    /// seal signaling envelopes deserve a full-strength seed. The simulator skips it.
    pub fn add_entropy(&mut self, seed: [u8; 32]) {
        let mut mixed = [0u8; 32];
        self.rng.fill_bytes(&mut mixed);
        for (m, s) in mixed.iter_mut().zip(seed) {
            *m ^= s;
        }
        self.rng = ChaCha8Rng::from_seed(mixed);
    }

    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// This node's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the NAT probe found, once the driver has run it.
    pub fn nat(&self) -> Option<&crate::nat::NatReport> {
        self.nat.as_ref()
    }

    /// Counters of what the node dropped or refused, and why.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Peers with an established link, in id order.
    pub fn peers(&self) -> Vec<PeerSummary> {
        self.links
            .values()
            .filter_map(|l| {
                let (peer, name) = l.established()?;
                Some(PeerSummary {
                    peer,
                    name: name.to_owned(),
                    kind: Some(l.kind),
                    addr: Some(l.addr),
                    rtt: l.rtt,
                    direction: Some(l.direction),
                })
            })
            .collect()
    }

    /// What this node knows of its connectivity to `peer`: its link, an attempt under way, the
    /// last attempt's report.
    pub fn diagnose(&self, peer: &PeerId) -> Diagnosis {
        Diagnosis {
            peer: *peer,
            link: self.peers().into_iter().find(|p| p.peer == *peer),
            attempt_running: self.connects.contains_key(peer),
            report: self.reports.get(peer).map(|(_, r)| r.clone()),
        }
    }

    /// Peers known but not necessarily linked (discovered, exchanged, or dialed by hand).
    pub fn known_peers(&self) -> Vec<PeerId> {
        self.peers.ids()
    }

    /// Updates the TCP port and addresses the driver learned after binding, before they are announced.
    pub fn set_listen(&mut self, tcp_port: Option<u16>, listen_addrs: Vec<std::net::SocketAddr>) {
        self.config.tcp_port = tcp_port;
        self.config.listen_addrs = listen_addrs;
    }

    /// Whether the node still knows `link` (an outbound link it gave up on is forgotten, and a
    /// late success for it must be dropped by the driver, not reported).
    pub fn has_link(&self, link: LinkId) -> bool {
        self.links.contains_key(&link)
    }

    /// A fresh id for an inbound link, to use in [`Input::LinkUp`].
    pub fn allocate_link_id(&mut self) -> LinkId {
        self.next_link += 1;
        LinkId(self.next_link)
    }

    /// The next output to carry out, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_maintenance.min(self.next_peer_exchange);
        let overlay = self.overlay.next_timer();
        for a in [self.next_announce, self.dial_wakeup, self.connect_wakeup(), overlay].into_iter().flatten() {
            t = t.min(a);
        }
        Some(t)
    }

    /// Runs whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.next_announce.is_some_and(|t| t <= now) {
            self.announce(now);
        }
        if self.dial_wakeup.is_some_and(|t| t <= now) {
            self.dial_wakeup = None;
            self.dial_candidates(now);
        }
        if self.connect_wakeup().is_some_and(|t| t <= now) {
            self.connect_timers(now);
        }
        if self.next_maintenance <= now {
            self.next_maintenance = now + MAINTENANCE_INTERVAL;
            self.maintain(now);
        }
        self.overlay_timers(now);
        if self.next_peer_exchange <= now {
            let jitter = Duration::from_millis(u64::from(self.rng.next_u32() % 10_000));
            self.next_peer_exchange = now + self.config.peer_exchange_interval + jitter;
            self.periodic_peer_exchange();
        }
    }

    /// Feeds one thing that happened.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = now;
        match input {
            Input::Datagram { from, data } => self.handle_datagram(now, from, &data),
            Input::LinkUp { link, peer, direction, remote_addr, kind } => {
                self.handle_link_up(now, link, peer, direction, remote_addr, kind)
            }
            Input::LinkFailed { link, reason } => self.handle_link_gone(now, link, &reason),
            Input::LinkClosed { link, reason } => self.handle_link_gone(now, link, &reason),
            Input::Frame { link, data } => self.handle_frame(now, link, &data),
            Input::ChunkRead { file, index, result } => {
                let actions = self.transfers.on_chunk_read(now, file, index, result);
                self.apply(actions);
            }
            Input::ChunkWritten { file, index } => {
                let actions = self.transfers.on_chunk_written(now, file, index);
                self.apply(actions);
            }
            Input::DownloadFinalized { file, result } => {
                let actions = self.transfers.on_finalized(file, result);
                self.apply(actions);
            }
            Input::StorageFailed { file, reason } => {
                let actions = self.transfers.on_storage_failed(file, reason);
                self.apply(actions);
            }
            Input::SignalPeer { peer, online } => self.handle_signal_peer(now, peer, online),
            Input::SignalBroker { up } => {
                self.broker = up;
                if up {
                    self.connect_channel_opened(now, None);
                }
            }
            Input::Signal { data } => self.handle_signal_input(now, &data),
            Input::RtcLocal { link, signal } => self.handle_rtc_local(link, signal),
            Input::PunchPrepared { link, local_port, mapped } => {
                self.handle_punch_prepared(now, link, local_port, mapped)
            }
            Input::NatDetected { report } => {
                self.nat = Some(report.clone());
                self.emit(Event::NatDetected { report });
                self.connect_send_hellos(now);
            }
            Input::PortMapped { tcp } => {
                self.port_mapping = Some(tcp);
                self.connect_send_hellos(now);
            }
        }
    }

    /// Asks the node to do something. Errors are the user's to see; nothing is half-done.
    pub fn command(&mut self, now: Instant, command: Command) -> Result<CommandId, CommandError> {
        self.now = now;
        self.next_command += 1;
        let id = CommandId(self.next_command);
        match command {
            Command::Connect { addr, expect } => {
                if expect == Some(self.me) {
                    return Err(CommandError::SelfTarget);
                }
                self.connect(now, addr, expect);
            }
            Command::Discover => {
                if self.config.lan_discovery {
                    self.schedule.restart(now);
                    self.next_announce = Some(now);
                    self.announce(now);
                }
            }
            Command::Chat { text } => self.send_chat(now, text)?,
            Command::Direct { to, text } => self.send_direct(now, to, text)?,
            Command::OfferFile { to, name, size, chunk_size, file, chunk_hashes } => {
                if to == self.me {
                    return Err(CommandError::SelfTarget);
                }
                let mut tid = [0u8; 16];
                self.rng.fill_bytes(&mut tid);
                let transfer_id = wire::TransferId(tid);
                let connected = self.peers.link_of(&to).is_some();
                let actions = self.transfers.offer(
                    transfer_id,
                    to,
                    crate::transfer::OfferSpec { name, size, chunk_size, file, chunk_hashes },
                    connected,
                )?;
                self.emit(Event::TransferStarted { command: id, transfer_id, to });
                self.apply(actions);
            }
            Command::AcceptOffer { from, transfer_id, have } => {
                let actions = self.transfers.accept(now, from, transfer_id, have)?;
                self.apply(actions);
            }
            Command::DeclineOffer { from, transfer_id, reason } => {
                let actions = self.transfers.decline(from, transfer_id, reason)?;
                self.apply(actions);
            }
            Command::Shutdown => self.shutdown(),
            Command::ConnectPeer { peer } => self.connect_peer(now, peer)?,
            Command::MirrorName { answer } => self.mirror_name(now, &answer)?,
            Command::LookupName { server, name } => self.lookup_name(now, id, server, name)?,
            Command::ForgetName { server, name } => self.forget_name(&server, &name),
        }
        Ok(id)
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Carries out what the transfer engine decided.
    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => {
                    self.send_to_peer(&to, &msg);
                }
                Action::Output(o) => self.outputs.push_back(o),
                Action::Misbehaved { peer, reason } => {
                    if let Some(link) = self.peers.link_of(&peer) {
                        self.misbehaved(link, &reason);
                    }
                }
            }
        }
    }

    /// Sends `msg` on the established link to `peer`; false if there is none.
    fn send_to_peer(&mut self, peer: &PeerId, msg: &Message) -> bool {
        match self.peers.link_of(peer) {
            Some(link) => {
                self.send(link, msg);
                true
            }
            None => false,
        }
    }

    fn send(&mut self, link: LinkId, msg: &Message) {
        self.outputs.push_back(Output::SendFrame { link, data: wire::encode(msg) });
    }

    /// Whether the output queue has room for optional traffic.
    fn has_room(&self) -> bool {
        self.outputs.len() < MAX_QUEUED_OUTPUTS
    }

    fn maintain(&mut self, now: Instant) {
        self.check_links(now);
        self.overlay_maintain(now);
        self.dht_maintain(now);
        self.names_maintain(now);
        self.peers.expire(now);
        self.dial_candidates(now);
        let actions = self.transfers.tick(now);
        self.apply(actions);
    }

    fn shutdown(&mut self) {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            if self.links.get(&link).is_some_and(|l| l.established().is_some()) {
                self.send(link, &Message::Goodbye { reason: "shutting down".into() });
            }
            self.close_link(link, "shutting down", None);
        }
        self.next_announce = None;
    }
}

#[cfg(test)]
mod tests;
