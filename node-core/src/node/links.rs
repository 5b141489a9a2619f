//! Link lifecycle: dial, authenticate (`Hello`), keep one link per peer, keep it alive, close it.

use super::peers::Source;

use super::Node;
use crate::identity::PeerId;
use crate::interface::{Direction, Event, LinkId, LinkKind, Output};
use crate::time::Instant;
use crate::wire::{self, Decoded, Hello, Message, MAX_ADDRS};
use core::time::Duration;
use rand_core::RngCore;
use std::net::SocketAddr;

/// Most links waiting for `Hello` at once.
const MAX_HANDSHAKING: usize = 32;
/// Links allowed past `max_peers` (being handshaken, swapped or refused politely).
pub(super) const EXTRA_LINKS: usize = 16;
/// A link that authenticated but sent no `Hello` within this is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A dial the driver never answered is given up after this.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a probed link may stay silent (see [`Link::probe`]).
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Least time between two peer-exchange answers on one link.
const PEX_ANSWER_INTERVAL: Duration = Duration::from_secs(5);

/// A `--connect` address whose identity is not known yet.
#[derive(Debug, Clone)]
pub(super) struct PendingConnect {
    pub failures: u32,
    pub next_dial: Instant,
    pub link: Option<LinkId>,
}

#[derive(Debug, Clone)]
pub(super) enum LinkState {
    Dialing,
    Handshaking { peer: PeerId },
    Established { peer: PeerId, name: String },
}

#[derive(Debug, Clone)]
pub(super) struct Link {
    pub direction: Direction,
    pub kind: LinkKind,
    pub addr: SocketAddr,
    pub expect: Option<PeerId>,
    pub state: LinkState,
    /// When the current phase (dialing, then handshaking) began.
    pub opened_at: Instant,
    pub last_rx: Instant,
    pub last_ping: Instant,
    pub ping: Option<(u64, Instant)>,
    pub rtt: Option<Duration>,
    /// The peer's advertised TCP listen port, from its `Hello`.
    pub listen_port: Option<u16>,
    pub last_pex_answer: Option<Instant>,
    /// Peer-exchange lists we will still take on this link: one unasked (the share on connect)
    /// plus one per request we sent. More are ignored, so a neighbour cannot flood our table.
    pub pex_allowance: u8,
    /// The WebRTC negotiation this link belongs to (the offerer's session number).
    pub rtc_session: Option<u64>,
    /// Remote candidates applied to this attempt so far.
    pub rtc_candidates: u16,
    /// When we pinged the peer because its signaling channel dropped (a closed tab, often):
    /// silence for [`PROBE_TIMEOUT`] after that closes the link without waiting for `stale_after`.
    pub probe: Option<Instant>,
    /// Whom the peer last said it is linked to (its peer-exchange list, at most
    /// `MAX_PEX_ENTRIES`): the edges of the mesh map beyond our own links.
    pub reported: Vec<(PeerId, String)>,
    /// A hole punched for this pair only: its addresses are no use to anyone else.
    pub punched: bool,
    /// Whether the peer has taken the link: it spoke after its `Hello` (a node at its cap
    /// sends `Hello` and then refuses). Messages held for the peer wait for this, so none goes
    /// into a link about to be refused. Links the peer dialed are taken from the start.
    pub confirmed: bool,
    /// Opened to carry messages held for the peer (DHT requests, a routed message), not to
    /// make it a neighbor: closed as soon as it goes quiet.
    pub for_held: bool,
}

impl Link {
    /// A link in its first phase: dialing (outbound) or about to handshake (inbound).
    pub(super) fn new(
        direction: Direction,
        kind: LinkKind,
        addr: SocketAddr,
        expect: Option<PeerId>,
        now: Instant,
    ) -> Self {
        Link {
            direction,
            kind,
            addr,
            expect,
            state: LinkState::Dialing,
            opened_at: now,
            last_rx: now,
            last_ping: now,
            ping: None,
            rtt: None,
            listen_port: None,
            last_pex_answer: None,
            pex_allowance: 1,
            rtc_session: None,
            rtc_candidates: 0,
            probe: None,
            reported: Vec::new(),
            punched: false,
            confirmed: direction == Direction::Inbound,
            for_held: false,
        }
    }

    pub fn established(&self) -> Option<(PeerId, &str)> {
        match &self.state {
            LinkState::Established { peer, name } => Some((*peer, name)),
            _ => None,
        }
    }

    pub(super) fn peer(&self) -> Option<PeerId> {
        match &self.state {
            LinkState::Dialing => None,
            LinkState::Handshaking { peer } | LinkState::Established { peer, .. } => Some(*peer),
        }
    }

    /// Where a third party could dial this peer: the address we dialed, or the source IP of its
    /// inbound link with the listen port it told us. Not an IPv6 link-local address: its scope
    /// is an interface index of ours, meaningless to anyone else.
    pub(super) fn dialable_addr(&self) -> Option<SocketAddr> {
        if self.kind != LinkKind::Tcp || self.punched {
            // WebRTC addresses are ICE candidates, and punched ones NAT mappings: good for
            // this session and this peer only.
            return None;
        }
        let addr = match self.direction {
            Direction::Outbound => Some(self.addr),
            Direction::Inbound => self.listen_port.map(|p| {
                let mut a = self.addr;
                a.set_port(p);
                a
            }),
        }?;
        match addr {
            SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => None,
            _ => Some(addr),
        }
    }
}

impl Node {
    pub(super) fn handle_link_up(
        &mut self,
        now: Instant,
        link: LinkId,
        peer: PeerId,
        direction: Direction,
        remote_addr: SocketAddr,
        kind: LinkKind,
    ) {
        let entry = self.links.entry(link).or_insert_with(|| Link::new(direction, kind, remote_addr, None, now));
        entry.kind = kind;
        // A link the core opened keeps the direction it gave it (punched and relayed links count
        // as the lower id's, whoever the transport calls the dialer).
        let direction = entry.direction;
        if entry.addr == super::rtc::NO_ADDR {
            entry.addr = remote_addr;
        }
        entry.last_rx = now;
        entry.opened_at = now; // the handshake phase starts: `Hello` is due within HELLO_TIMEOUT
        let (expect, addr) = (entry.expect, entry.addr);
        if peer == self.me {
            self.close_link(link, "connected to ourselves", None);
            return;
        }
        if expect.is_some_and(|e| e != peer) {
            self.close_link(link, "the peer is not the identity we expected", None);
            return;
        }
        // A `--connect` address now has an identity: from here on it is a manual known peer.
        if self.pending_connects.iter().any(|(_, t)| t.link == Some(link)) {
            self.pending_connects.retain(|_, t| t.link != Some(link));
            self.peers.observe(peer, "", Some(addr), Source::Manual, now);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.dialing = p.dialing.or(Some(link));
            }
        }
        // Identities cost nothing, so links that have not said Hello yet are capped, and so is
        // the total: a flood of connections cannot exhaust our sockets.
        let handshaking = self.links.values().filter(|l| matches!(l.state, LinkState::Handshaking { .. })).count();
        let up = self.links.values().filter(|l| !matches!(l.state, LinkState::Dialing)).count();
        if handshaking >= MAX_HANDSHAKING || up > self.config.max_peers + EXTRA_LINKS {
            self.close_link(link, "too many links", None);
            return;
        }
        // A second outbound link to a peer we already reach the same way: the dialer alone drops
        // it, before Hello, so both ends never have to agree on which of two same-way links to keep.
        if direction == Direction::Outbound {
            let twin = self
                .links
                .iter()
                .any(|(id, l)| *id != link && l.direction == Direction::Outbound && l.peer() == Some(peer));
            if twin {
                if let Some(p) = self.peers.get_mut(&peer) {
                    if p.dialing == Some(link) {
                        p.dialing = None;
                    }
                }
                self.close_link(link, "already linked", None);
                return;
            }
        }
        if let Some(l) = self.links.get_mut(&link) {
            l.state = LinkState::Handshaking { peer };
        }
        let hello = Hello {
            protocol_version: wire::PROTOCOL_VERSION,
            peer_id: self.me,
            name: self.config.name.clone(),
            mesh_id: self.config.mesh_id.clone(),
            listen_port: self.config.tcp_port,
            listen_addrs: self.config.listen_addrs.iter().take(MAX_ADDRS).copied().collect(),
            capabilities: self.capabilities(),
        };
        self.send(link, &Message::Hello(hello));
    }

    /// A link went away: a dial that failed, or an up link that closed.
    pub(super) fn handle_link_gone(&mut self, now: Instant, link: LinkId, reason: &str) {
        let Some(l) = self.links.remove(&link) else {
            return; // we closed it ourselves
        };
        match l.state {
            LinkState::Dialing | LinkState::Handshaking { .. } => {
                self.attempt_failed(now, link, &l);
                self.connect_link_failed(now, link, reason);
            }
            LinkState::Established { peer, .. } => self.peer_lost(now, peer, link, reason),
        }
    }

    /// A link that never got established is gone, for whatever reason: count it against whoever
    /// it was dialed for, so nothing is redialed in a tight loop.
    fn attempt_failed(&mut self, now: Instant, link: LinkId, l: &Link) {
        if let Some(peer) = l.expect.or_else(|| l.peer()) {
            if self.peers.get(&peer).is_some_and(|p| p.dialing == Some(link)) {
                let jitter = self.jitter();
                self.peers.dial_failed(&peer, now, jitter);
            }
        }
        let jitter = self.jitter();
        if let Some(t) = self.pending_connects.values_mut().find(|t| t.link == Some(link)) {
            t.link = None;
            t.failures = t.failures.saturating_add(1);
            t.next_dial = now + super::peers::backoff(t.failures, jitter);
        }
        if let Some(peer) = l.expect.or_else(|| l.peer()) {
            let linked = self.peers.link_of(&peer).is_some();
            let trying = self.links.values().any(|o| o.expect == Some(peer) || o.peer() == Some(peer));
            if !linked && !trying {
                self.overlay_link_gone(now, peer);
            }
        }
    }

    /// Bookkeeping when an established link to `peer` ends.
    fn peer_lost(&mut self, now: Instant, peer: PeerId, link: LinkId, reason: &str) {
        let jitter = self.jitter();
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.link == Some(link) {
                p.link = None;
                p.failures = 0;
                p.next_dial = now + super::peers::backoff(1, jitter);
            }
        }
        if self.peers.link_of(&peer).is_none() {
            let actions = self.transfers.on_peer_disconnected(now, peer);
            self.apply(actions);
            self.emit(Event::PeerDisconnected { peer, reason: reason.to_owned() });
            self.overlay_link_gone(now, peer);
        }
    }

    pub(super) fn jitter(&mut self) -> f64 {
        0.8 + 0.4 * (self.rng.next_u32() as f64 / u32::MAX as f64)
    }

    /// Closes a link we decided to drop. With `now`, the loss of an established link is reported
    /// (event, transfers, redial); without, it is a silent swap (a duplicate link, shutdown).
    pub(super) fn close_link(&mut self, link: LinkId, reason: &str, now: Option<Instant>) {
        let Some(l) = self.links.remove(&link) else {
            return;
        };
        self.outputs.push_back(Output::CloseLink { link, reason: reason.to_owned() });
        match (&l.state, now) {
            (LinkState::Established { peer, .. }, Some(now)) => {
                let peer = *peer;
                self.peer_lost(now, peer, link, reason)
            }
            (LinkState::Established { peer, .. }, None) => {
                if let Some(p) = self.peers.get_mut(peer) {
                    if p.link == Some(link) {
                        p.link = None;
                    }
                }
            }
            _ => {
                let now = self.now;
                self.attempt_failed(now, link, &l);
            }
        }
    }

    pub(super) fn misbehaved(&mut self, link: LinkId, reason: &str) {
        self.stats.misbehaving_links += 1;
        let peer = self.links.get(&link).and_then(|l| l.peer());
        if let Some(peer) = peer {
            self.emit(Event::PeerMisbehaved { peer, reason: reason.to_owned() });
        }
        let now = self.now;
        self.close_link(link, reason, Some(now));
        // Misbehaving peers are not redialed soon.
        let jitter = self.jitter();
        if let Some(p) = peer.and_then(|id| self.peers.get_mut(&id)) {
            p.failures = p.failures.saturating_add(3);
            p.next_dial = now + super::peers::backoff(p.failures, jitter);
        }
    }

    pub(super) fn handle_frame(&mut self, now: Instant, link: LinkId, data: &[u8]) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.last_rx = now;
        let msg = match wire::decode(data) {
            Ok(Decoded::Message(m)) => m,
            Ok(Decoded::UnknownKind(_)) => {
                self.stats.unknown_kinds += 1;
                return;
            }
            Err(e) => return self.misbehaved(link, &e.to_string()),
        };
        if let Err(e) = msg.validate() {
            return self.misbehaved(link, e);
        }
        match self.links.get(&link).map(|l| l.state.clone()) {
            Some(LinkState::Handshaking { peer }) => match msg {
                Message::Hello(h) => self.handle_hello(now, link, peer, h),
                _ => self.misbehaved(link, "first message was not Hello"),
            },
            Some(LinkState::Established { peer, .. }) => self.handle_message(now, link, peer, msg),
            _ => {}
        }
    }

    fn handle_hello(&mut self, now: Instant, link: LinkId, peer: PeerId, hello: Hello) {
        if hello.peer_id != peer {
            return self.misbehaved(link, "Hello names another identity than the transport proved");
        }
        if hello.protocol_version != wire::PROTOCOL_VERSION {
            return self.close_link(link, "incompatible protocol version", None);
        }
        if hello.mesh_id != self.config.mesh_id {
            return self.close_link(link, "different mesh", None);
        }
        // One link per pair: if one is already up, keep the one dialed by the lower id.
        let replaced = self.peers.link_of(&peer);
        if let Some(old) = replaced {
            let keep_new = self.prefer_new_link(peer, old, link);
            let drop = if keep_new { old } else { link };
            self.close_link(drop, "duplicate link", None);
            if !keep_new {
                return;
            }
        }
        let (established, _, _) = self.counts();
        let full = established >= self.config.max_peers && replaced.is_none();
        // A peer the user named gets past the cap only as the way in of a node with no neighbor:
        // `--max-peers` is a hard limit once the node is in the overlay.
        let way_in = self.overlay.overlay.membership().active().is_empty()
            && self.peers.get(&peer).is_some_and(|p| p.source == Source::Manual);
        if full && !way_in {
            let peers = self.exchange_list(Some(peer));
            self.send(link, &Message::PeerExchange { peers });
            self.send(link, &Message::Goodbye { reason: "peer limit reached".into() });
            return self.close_link(link, "peer limit reached", None);
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.state = LinkState::Established { peer, name: hello.name.clone() };
        l.listen_port = hello.listen_port;
        l.last_ping = now;
        let (direction, kind, addr) = (l.direction, l.kind, l.addr);
        let dialable = l.dialable_addr();
        let source =
            if direction == Direction::Outbound && l.expect.is_none() { Source::Manual } else { Source::Discovery };
        self.peers.observe(peer, &hello.name, dialable, source, now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.link = Some(link);
            if p.dialing == Some(link) {
                p.dialing = None;
            }
            p.failures = 0;
            p.capabilities = Some(hello.capabilities);
            p.wanted = false;
            p.given_up = false;
        }
        // Measure the round trip right away, so UIs show an RTT from the start.
        let nonce = self.rng.next_u64();
        if let Some(l) = self.links.get_mut(&link) {
            l.ping = Some((nonce, now));
        }
        self.send(link, &Message::Ping { nonce });
        let user_asked =
            self.connects.contains_key(&peer) || self.peers.get(&peer).is_some_and(|p| p.source == Source::Manual);
        self.connect_linked(now, peer, link);
        self.overlay_link_up(now, peer, link, user_asked);
        if replaced.is_some() {
            // The peer was connected all along, over the link just dropped: no events, but
            // whatever the transfers had in flight on the old link is asked for again.
            let mut actions = self.transfers.on_peer_disconnected(now, peer);
            actions.extend(self.transfers.on_peer_connected(now, peer));
            return self.apply(actions);
        }
        self.emit(Event::PeerConnected { peer, name: hello.name, kind, addr, direction });
        let peers = self.exchange_list(Some(peer));
        if !peers.is_empty() {
            self.send(link, &Message::PeerExchange { peers });
        }
        self.request_peers(link);
        let actions = self.transfers.on_peer_connected(now, peer);
        self.apply(actions);
    }

    /// Whether `new` should replace `old` as the one link to `peer`: the lower id keeps its
    /// outbound link, computed the same way on both ends so they agree without talking.
    fn prefer_new_link(&self, peer: PeerId, old: LinkId, new: LinkId) -> bool {
        let wanted = if self.me < peer { Direction::Outbound } else { Direction::Inbound };
        let dir = |id: LinkId| self.links.get(&id).map(|l| l.direction);
        // Both ends see the same kinds, so this ranking agrees on both: direct beats WebRTC beats
        // the relay (a relay that came up first gives way to a punched link).
        let rank = |id: LinkId| match self.links.get(&id).map(|l| l.kind) {
            Some(LinkKind::Relay) => 0,
            Some(LinkKind::WebRtc) => 1,
            _ => 2,
        };
        match (dir(old), dir(new)) {
            (Some(o), Some(n)) if o != n => n == wanted,
            // Same direction (two dials to two addresses, a punch and a relay): the better kind,
            // else the older.
            _ => rank(new) > rank(old),
        }
    }

    fn handle_message(&mut self, now: Instant, link: LinkId, peer: PeerId, msg: Message) {
        // Our first Ping's answer, or the peer's own first Ping: it took the link.
        if matches!(msg, Message::Ping { .. } | Message::Pong { .. }) {
            if let Some(l) = self.links.get_mut(&link).filter(|l| !l.confirmed) {
                l.confirmed = true;
                self.overlay_link_confirmed(link, peer);
            }
        }
        match msg {
            Message::Hello(_) => self.misbehaved(link, "second Hello"),
            Message::Ping { nonce } => self.send(link, &Message::Pong { nonce }),
            Message::Pong { nonce } => {
                if let Some(l) = self.links.get_mut(&link) {
                    if let Some((n, sent)) = l.ping {
                        if n == nonce {
                            l.rtt = Some(now - sent);
                            l.ping = None;
                        }
                    }
                }
            }
            Message::PeerRequest => {
                let Some(l) = self.links.get_mut(&link) else { return };
                if l.last_pex_answer.is_some_and(|t| now - t < PEX_ANSWER_INTERVAL) {
                    return;
                }
                l.last_pex_answer = Some(now);
                let peers = self.exchange_list(Some(peer));
                self.send(link, &Message::PeerExchange { peers });
            }
            Message::PeerExchange { peers } => {
                let Some(l) = self.links.get_mut(&link) else { return };
                if l.pex_allowance == 0 {
                    self.stats.unsolicited_exchanges += 1;
                    return;
                }
                l.pex_allowance -= 1;
                l.reported = peers.iter().map(|p| (p.peer_id, p.name.clone())).collect();
                self.handle_peer_exchange(now, peers)
            }
            Message::Chat(c) => self.handle_chat(now, link, c),
            Message::Direct(d) => self.handle_direct(now, link, d),
            Message::Signal { envelope, hops } => self.handle_signal_message(now, link, envelope, hops),
            Message::Overlay { message, hints } => self.handle_overlay_message(now, link, peer, message, hints),
            Message::Goodbye { reason } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    // It left on purpose: do not hammer it with redials.
                    p.next_dial = now + Duration::from_secs(30);
                }
                self.close_link(link, &format!("peer said goodbye: {reason}"), Some(now));
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.next_dial = p.next_dial.max(now + Duration::from_secs(30));
                }
            }
            other => {
                let actions = self.transfers.on_message(now, peer, other);
                self.apply(actions);
            }
        }
    }

    /// Liveness: pings quiet links, closes silent ones, gives up on stuck handshakes and dials.
    pub(super) fn check_links(&mut self, now: Instant) {
        let mut to_close = Vec::new();
        let mut to_ping = Vec::new();
        for (id, l) in &self.links {
            let age = now - l.opened_at;
            match l.state {
                LinkState::Dialing if age > DIAL_TIMEOUT => to_close.push((*id, "dial timed out")),
                LinkState::Handshaking { .. } if now - l.opened_at > HELLO_TIMEOUT => {
                    to_close.push((*id, "no Hello in time"))
                }
                LinkState::Established { .. } if now - l.last_rx > self.config.stale_after => {
                    to_close.push((*id, "timed out"))
                }
                LinkState::Established { .. } if l.probe.is_some_and(|t| l.last_rx < t && now - t >= PROBE_TIMEOUT) => {
                    to_close.push((*id, "timed out after its signaling channel closed"))
                }
                LinkState::Established { .. } if now - l.last_ping >= self.config.ping_interval => to_ping.push(*id),
                _ => {}
            }
        }
        for (id, reason) in to_close {
            let dialing = self.links.get(&id).is_some_and(|l| matches!(l.state, LinkState::Dialing));
            if dialing {
                self.outputs.push_back(Output::CloseLink { link: id, reason: reason.into() });
                self.handle_link_gone(now, id, reason);
            } else {
                self.close_link(id, reason, Some(now));
            }
        }
        if !self.has_room() {
            return;
        }
        for id in to_ping {
            let nonce = self.rng.next_u64();
            if let Some(l) = self.links.get_mut(&id) {
                l.last_ping = now;
                l.ping = Some((nonce, now));
            }
            self.send(id, &Message::Ping { nonce });
        }
    }
}
