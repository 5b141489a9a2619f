//! The overlay inside the node: HyParView decides which links to keep (its active view, at most
//! `max_peers - 1`, one link spare for requests to peers outside it), PlumTree carries chat over
//! them, and the DHT's table learns every authenticated peer.
//!
//! In a mesh smaller than the active view every node asks every peer it hears of, so the mesh is
//! a full mesh; past that the views fill up and it becomes a partial-view overlay by itself,
//! without a mode to switch. Links the overlay does not want (and no transfer needs) are closed,
//! which is what keeps every node within `--max-peers`.

use super::links::LinkState;
use super::peers::Source;
use super::Node;
use crate::identity::{signing_domain, PeerId};
use crate::interface::{Event, LinkId};
use crate::overlay::{self, record::SignedRecord, MessageId, Overlay};
use crate::time::Instant;
use crate::wire::{ChatBody, Message, OverlayMessage, PeerInfo, Signed, MAX_PEX_ENTRIES};
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

/// Messages held for one peer while a link to it opens.
const OUTBOX_PER_PEER: usize = 16;
/// Peers with messages held at once.
const OUTBOX_PEERS: usize = 64;
/// How long held messages wait for their link before the peer counts as unreachable.
const OUTBOX_WAIT: Duration = Duration::from_secs(10);
/// A link that is neither an overlay neighbor nor needed by a transfer is closed once it is
/// this old (time for a request over it to be answered)...
const TRANSIENT_LINK_AGE: Duration = Duration::from_secs(10);
/// ...or, when we opened it for held messages, once it has been quiet this long: what it was
/// opened for (DHT requests, a routed message) is done, and the spare link slot is free for the
/// next one.
const TRANSIENT_LINK_IDLE: Duration = Duration::from_secs(3);

/// Messages for a peer we have no link to yet: overlay messages (with their hints), and direct
/// messages or envelopes the DHT routed to it ([`super::dht`]).
#[derive(Debug)]
struct Held {
    since: Instant,
    messages: VecDeque<Message>,
}

/// Why a message was not held for a peer.
pub(super) enum NotHeld {
    /// Too many peers have messages waiting: this one is not taken (the caller still has it).
    Refused,
    /// The peer's queue was full: its oldest message makes room.
    PushedOut(Box<Message>),
}

/// The node's overlay and what the node keeps for it.
pub(super) struct OverlayState {
    pub overlay: Overlay<PeerId, SignedRecord>,
    timers: BTreeMap<(Instant, u64), overlay::Timer<PeerId>>,
    seq: u64,
    outbox: BTreeMap<PeerId, Held>,
    /// The DHT's part: our published record, and messages waiting for a route.
    pub routes: super::dht::Routes,
    /// Name answers we mirror, and name lookups under way.
    pub names: super::name_mirror::NameMirror,
}

impl OverlayState {
    pub fn new(me: PeerId, max_peers: usize, seed: u64, now: Instant) -> Self {
        let config = overlay::Config::with_active_capacity(max_peers.saturating_sub(1).max(1));
        OverlayState {
            overlay: Overlay::new(me, config, seed, now),
            timers: BTreeMap::new(),
            seq: 0,
            outbox: BTreeMap::new(),
            routes: super::dht::Routes::default(),
            names: super::name_mirror::NameMirror::default(),
        }
    }

    /// When the next overlay timer is due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|((at, _), _)| *at)
    }
}

/// The PlumTree id of a chat message: its signed message id, padded.
pub(super) fn chat_gossip_id(msg_id: &crate::wire::MsgId) -> MessageId {
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(&msg_id.0);
    id
}

impl Node {
    /// Carries out what the overlay decided, until it has nothing more to say.
    pub(super) fn overlay_pump(&mut self, now: Instant) {
        while let Some(out) = self.overlay.overlay.poll() {
            match out {
                overlay::Out::Send(peer, message) => self.overlay_send(now, peer, message),
                overlay::Out::Schedule(at, timer) => {
                    self.overlay.seq += 1;
                    let seq = self.overlay.seq;
                    self.overlay.timers.insert((at, seq), timer);
                }
                overlay::Out::NeighborUp(peer) => {
                    if self.peers.link_of(&peer).is_none() {
                        self.overlay_dial(now, peer);
                    }
                }
                overlay::Out::NeighborDown(peer) => self.overlay_release(now, peer),
                overlay::Out::Isolated => self.overlay_rejoin(now),
                overlay::Out::Deliver { payload, .. } => self.deliver_gossip_chat(&payload),
                overlay::Out::LookupDone(done) => {
                    if !self.name_lookup_done(now, &done) {
                        self.dht_lookup_done(now, done);
                    }
                }
            }
        }
    }

    /// Runs the overlay timers due at `now`.
    pub(super) fn overlay_timers(&mut self, now: Instant) {
        while let Some(entry) = self.overlay.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            self.overlay.overlay.timer(now, timer);
            self.overlay_pump(now);
        }
    }

    /// A peer we heard of (LAN, peer exchange, signaling server): a candidate neighbor.
    pub(super) fn overlay_learn(&mut self, now: Instant, peer: PeerId) {
        if peer != self.me {
            self.overlay.overlay.learn(now, peer);
            self.overlay_pump(now);
        }
    }

    /// The peer took the link ([`super::links::Link::confirmed`]): what was held for it goes.
    pub(super) fn overlay_link_confirmed(&mut self, link: LinkId, peer: PeerId) {
        if let Some(held) = self.overlay.outbox.remove(&peer) {
            for message in held.messages {
                self.send(link, &message);
            }
        }
    }

    /// An authenticated link to `peer` is up: held messages go out once the peer takes it (at
    /// once on a link it dialed); a link the user asked for is our way into the overlay.
    pub(super) fn overlay_link_up(&mut self, now: Instant, peer: PeerId, link: LinkId, user_asked: bool) {
        if self.links.get(&link).is_some_and(|l| l.confirmed) {
            self.overlay_link_confirmed(link, peer);
        }
        self.overlay.overlay.link_up(now, peer);
        if user_asked && !self.overlay.overlay.membership().active().contains(&peer) {
            self.overlay.overlay.join(now, peer);
        }
        self.overlay_pump(now);
    }

    /// The link to `peer` is gone (or never came up): if the overlay counted on it, it looks
    /// elsewhere.
    pub(super) fn overlay_link_gone(&mut self, now: Instant, peer: PeerId) {
        let held = self.overlay.outbox.remove(&peer).map(|h| h.messages).unwrap_or_default();
        let mut membership = false;
        for message in held {
            match message {
                Message::Overlay { message: overlay::Message::Membership(_), .. } => membership = true,
                Message::Overlay { .. } => {}
                routed => self.reroute(now, peer, routed),
            }
        }
        if membership || self.overlay.overlay.membership().active().contains(&peer) {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.given_up = true;
            }
            self.overlay.overlay.peer_failed(now, &peer);
        } else {
            // Only DHT requests waited for it: a busy peer, not a dead one.
            self.overlay.overlay.peer_unreachable(now, &peer);
        }
        self.overlay_pump(now);
        self.dial_waiting(now);
    }

    /// An overlay message over `link`, from `peer`.
    pub(super) fn handle_overlay_message(
        &mut self,
        now: Instant,
        link: LinkId,
        peer: PeerId,
        message: OverlayMessage,
        hints: Vec<PeerInfo>,
    ) {
        self.take_hints(now, hints);
        // A broadcast is checked before PlumTree passes it on: a forged chat stops at the first
        // honest node, and only the link it came over is dropped.
        if let overlay::Message::Broadcast(overlay::plumtree::Message::Gossip { id, origin, payload, .. }) = &message {
            match self.check_gossip_chat(now, id, origin, payload) {
                Ok(true) => {}
                Ok(false) => return,
                Err(reason) => return self.misbehaved(link, reason),
            }
        }
        use crate::overlay::kademlia::Message as Dht;
        let answer = matches!(message, overlay::Message::Dht(Dht::Nodes { .. } | Dht::Found { .. }));
        self.overlay.overlay.handle(now, peer, message);
        self.overlay_pump(now);
        // The asker closes a link it opened for its requests once the last answer is in (it sent
        // everything it had before asking, so nothing is cut off), so the one spare link slot
        // serves the next request within a round trip. The other side cannot know that no more
        // is coming: it waits for the close, or for the link to go quiet.
        let short_lived = self.links.get(&link).is_some_and(|l| self.short_lived(l));
        if answer && short_lived && !self.link_needed(&peer) {
            self.release_link(now, link);
        }
    }

    /// Sends a chat message of ours through PlumTree.
    pub(super) fn broadcast_chat(&mut self, now: Instant, chat: Signed<ChatBody>) {
        let id = chat_gossip_id(&chat.body.msg_id);
        let payload = postcard::to_allocvec(&chat).unwrap_or_default();
        self.overlay.overlay.broadcast(now, id, payload);
        self.overlay_pump(now);
    }

    /// Once a second: held messages whose link never came are given up on, and links nobody
    /// needs any more are closed.
    pub(super) fn overlay_maintain(&mut self, now: Instant) {
        let expired: Vec<PeerId> =
            self.overlay.outbox.iter().filter(|(_, h)| h.since + OUTBOX_WAIT <= now).map(|(p, _)| *p).collect();
        for peer in expired {
            self.overlay_link_gone(now, peer);
        }
        self.dial_waiting(now);
        let idle: Vec<LinkId> = self
            .links
            .iter()
            .filter_map(|(id, l)| {
                let LinkState::Established { peer, .. } = l.state else { return None };
                let quiet = self.short_lived(l) && now - l.last_rx >= TRANSIENT_LINK_IDLE;
                let young = now - l.opened_at < TRANSIENT_LINK_AGE && !quiet;
                (!young && !self.link_needed(&peer)).then_some(*id)
            })
            .collect();
        for link in idle {
            self.release_link(now, link);
        }
    }

    /// Whether `l` is a link to drop as soon as its job is done: one we opened for held requests
    /// while our active view is full. With room in the view the peer is wanted as a neighbor
    /// anyway (a peer heard of is asked while there is room), so the link gets the usual time.
    fn short_lived(&self, l: &super::links::Link) -> bool {
        let membership = self.overlay.overlay.membership();
        l.for_held && membership.active().len() >= membership.config().active_capacity
    }

    /// Whether the link to `peer` has a job beyond the request that opened it: an overlay
    /// neighbor, messages waiting for it, an answer we wait for, a transfer.
    fn link_needed(&self, peer: &PeerId) -> bool {
        let overlay = &self.overlay.overlay;
        overlay.membership().active().contains(peer)
            || overlay.membership().asked().contains(peer)
            || self.overlay.outbox.contains_key(peer)
            || overlay.dht().awaiting(peer)
            || self.transfers.involves(peer)
    }

    fn release_link(&mut self, now: Instant, link: LinkId) {
        self.send(link, &Message::Goodbye { reason: "not an overlay neighbor".into() });
        self.close_link(link, "not an overlay neighbor", Some(now));
        self.dial_waiting(now);
    }

    /// Opens links for the peers messages wait for, as far as the link cap allows (called when
    /// a link slot frees up, and every second).
    fn dial_waiting(&mut self, now: Instant) {
        let waiting: Vec<PeerId> = self.overlay.outbox.keys().copied().collect();
        for peer in waiting {
            self.overlay_dial(now, peer);
        }
    }

    fn overlay_send(&mut self, now: Instant, peer: PeerId, message: OverlayMessage) {
        let hints = self.hints_for(&message);
        let message = Message::Overlay { message, hints };
        if let Some(link) = self.peers.link_of(&peer) {
            return self.send(link, &message);
        }
        match self.hold_for(now, peer, message) {
            Ok(()) => {}
            Err(NotHeld::Refused) => {
                self.stats.overlay_dropped += 1;
                self.overlay.overlay.peer_failed(now, &peer);
            }
            Err(NotHeld::PushedOut(oldest)) => self.give_up_held(&oldest),
        }
    }

    /// Holds `message` for `peer` while a link to it opens (opening it if need be).
    pub(super) fn hold_for(&mut self, now: Instant, peer: PeerId, message: Message) -> Result<(), NotHeld> {
        let confirmed = self.peers.link_of(&peer).filter(|l| self.links.get(l).is_some_and(|l| l.confirmed));
        if let Some(link) = confirmed {
            self.send(link, &message);
            return Ok(());
        }
        if !self.overlay.outbox.contains_key(&peer) && self.overlay.outbox.len() >= OUTBOX_PEERS {
            return Err(NotHeld::Refused);
        }
        let held = self.overlay.outbox.entry(peer).or_insert_with(|| Held { since: now, messages: VecDeque::new() });
        held.messages.push_back(message);
        let pushed_out = (held.messages.len() > OUTBOX_PER_PEER).then(|| held.messages.pop_front()).flatten();
        self.overlay_dial(now, peer);
        pushed_out.map_or(Ok(()), |m| Err(NotHeld::PushedOut(Box::new(m))))
    }

    /// A held message that will not go to its peer: an overlay message is dropped (the overlay
    /// copes), a routed one is the user's and goes to the mesh the slow way.
    fn give_up_held(&mut self, message: &Message) {
        match message {
            Message::Overlay { .. } => self.stats.overlay_dropped += 1,
            routed => self.flood_unrouted(routed),
        }
    }

    /// Opens a link to `peer` for the overlay: TCP to an address we know, or WebRTC through a
    /// signaling path. With no way to reach it, the overlay hears at once that it failed.
    /// At the link cap, the dial waits for the next maintenance tick.
    fn overlay_dial(&mut self, now: Instant, peer: PeerId) {
        let busy = self.links.values().any(|l| l.peer() == Some(peer) || l.expect == Some(peer));
        if busy {
            return;
        }
        let (established, _, dialing) = self.counts();
        if established + dialing >= self.config.max_peers {
            if !self.overlay.outbox.contains_key(&peer) {
                // A neighbor we cannot link to now: the overlay picks another.
                self.overlay.overlay.peer_failed(now, &peer);
            }
            return;
        }
        let Some(p) = self.peers.get(&peer) else {
            self.abandon_held(now, peer);
            self.overlay.overlay.peer_failed(now, &peer);
            return;
        };
        let link = if self.wants_rtc(p, established > 0) {
            self.open_rtc_link(now, peer)
        } else if let (Some(_), Some(addr)) = (self.config.tcp_port, p.addrs.first().copied()) {
            self.open_link(now, addr, Some(peer))
        } else {
            self.abandon_held(now, peer);
            self.overlay.overlay.peer_failed(now, &peer);
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.dialing = Some(link);
        }
        // Only DHT requests, shuffle replies and routed messages make a link short-lived: one
        // that may become a neighbor (a join, a neighbor request) gets the time the views need
        // to settle.
        let for_held = self.overlay.outbox.get(&peer).is_some_and(|h| {
            h.messages.iter().all(|m| match m {
                Message::Overlay { message, .. } => matches!(
                    message,
                    overlay::Message::Dht(_)
                        | overlay::Message::Membership(overlay::hyparview::Message::ShuffleReply { .. })
                ),
                _ => true,
            })
        });
        if let Some(l) = self.links.get_mut(&link) {
            l.for_held = for_held;
        }
    }

    /// Whether we have a way to open a link to `peer` (what [`overlay_dial`](Self::overlay_dial)
    /// needs): WebRTC through a signaling path, or TCP to an address we know.
    pub(super) fn can_dial(&self, peer: &PeerId) -> bool {
        let Some(p) = self.peers.get(peer) else { return false };
        let (established, _, _) = self.counts();
        self.wants_rtc(p, established > 0) || (self.config.tcp_port.is_some() && !p.addrs.is_empty())
    }

    /// Messages held for `peer`, which cannot be dialed: routed ones try another way (or flood);
    /// overlay messages are dropped (the overlay hears that the peer failed).
    fn abandon_held(&mut self, now: Instant, peer: PeerId) {
        let held = self.overlay.outbox.remove(&peer).map(|h| h.messages).unwrap_or_default();
        for message in held {
            if !matches!(message, Message::Overlay { .. }) {
                self.reroute(now, peer, message);
            }
        }
    }

    /// `peer` left the active view: its link goes unless something else needs it.
    fn overlay_release(&mut self, now: Instant, peer: PeerId) {
        if self.transfers.involves(&peer) {
            return;
        }
        if let Some(link) = self.peers.link_of(&peer) {
            self.release_link(now, link);
        }
    }

    /// Too few neighbors and nobody left to ask: join again through a peer the user named, or
    /// else any peer we know.
    fn overlay_rejoin(&mut self, now: Instant) {
        let active = self.overlay.overlay.membership().active().clone();
        let mut candidates: Vec<(bool, PeerId)> = self
            .peers
            .iter()
            .filter(|(id, _)| !active.contains(*id) && **id != self.me)
            .map(|(id, p)| (p.source == Source::Manual, *id))
            .collect();
        // Named peers first, then a random other.
        candidates.sort_by_key(|(manual, _)| !*manual);
        let manual = candidates.iter().take_while(|(m, _)| *m).count();
        let pick = if manual > 0 {
            Some(candidates[0].1)
        } else if candidates.is_empty() {
            None
        } else {
            use rand_core::RngCore;
            Some(candidates[self.rng.next_u32() as usize % candidates.len()].1)
        };
        if let Some(contact) = pick {
            self.overlay.overlay.join(now, contact);
        }
    }

    /// How to reach the peers `message` names, from our table.
    fn hints_for(&self, message: &OverlayMessage) -> Vec<PeerInfo> {
        message
            .mentioned()
            .into_iter()
            .filter_map(|id| {
                let p = self.peers.get(id)?;
                Some(PeerInfo {
                    peer_id: *id,
                    name: p.name.clone(),
                    addrs: p.addrs.clone(),
                    capabilities: p.capabilities.unwrap_or_default(),
                })
            })
            .take(MAX_PEX_ENTRIES)
            .collect()
    }

    /// Dial hints that came with an overlay message: remembered like a peer exchange's.
    fn take_hints(&mut self, now: Instant, hints: Vec<PeerInfo>) {
        for info in hints {
            if info.peer_id == self.me {
                continue;
            }
            self.peers.observe(info.peer_id, &info.name, None, Source::Exchange, now);
            for addr in &info.addrs {
                self.peers.add_hint(&info.peer_id, *addr);
            }
            if let Some(p) = self.peers.get_mut(&info.peer_id) {
                p.capabilities = p.capabilities.or(Some(info.capabilities));
            }
        }
    }

    /// Checks a broadcast chat before it is delivered or passed on: `Ok(true)` to go on,
    /// `Ok(false)` to drop quietly (seen, or stale), `Err` for a forgery.
    fn check_gossip_chat(
        &mut self,
        now: Instant,
        id: &MessageId,
        origin: &PeerId,
        payload: &[u8],
    ) -> Result<bool, &'static str> {
        let chat: Signed<ChatBody> = postcard::from_bytes(payload).map_err(|_| "broadcast that is not a chat")?;
        if chat_gossip_id(&chat.body.msg_id) != *id {
            return Err("broadcast under another message's id");
        }
        // A chat travels its author's tree: a made-up origin would only push real senders'
        // trees out (the signature check below makes the author the real one).
        if chat.body.author != *origin {
            return Err("broadcast under another origin than its author");
        }
        if self.seen.contains(&chat.body.msg_id) {
            // PlumTree still sees it (a duplicate prunes its link); the node does not deliver it.
            return Ok(true);
        }
        if !super::messaging::fresh(now, chat.body.unix_ms) {
            self.stats.stale_messages += 1;
            return Ok(false);
        }
        if !super::messaging::verify_body(&chat.body.author, signing_domain::CHAT, &chat) {
            self.stats.bad_signatures += 1;
            return Err("chat with a bad author signature");
        }
        Ok(true)
    }

    /// PlumTree delivered a chat (checked on arrival): the application hears of it once.
    fn deliver_gossip_chat(&mut self, payload: &[u8]) {
        let Ok(chat) = postcard::from_bytes::<Signed<ChatBody>>(payload) else { return };
        if !self.seen.insert(chat.body.msg_id) {
            self.stats.duplicate_messages += 1;
            return;
        }
        if chat.body.author != self.me {
            self.emit(Event::Chat {
                from: chat.body.author,
                from_name: chat.body.author_name,
                text: chat.body.text,
                msg_id: chat.body.msg_id,
            });
        }
    }
}
