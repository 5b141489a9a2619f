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
/// this old (time for a request over it to be answered).
const TRANSIENT_LINK_AGE: Duration = Duration::from_secs(10);

/// Messages for a peer we have no link to yet.
#[derive(Debug)]
struct Held {
    since: Instant,
    messages: VecDeque<OverlayMessage>,
}

/// The node's overlay and what the node keeps for it.
pub(super) struct OverlayState {
    pub overlay: Overlay<PeerId, SignedRecord>,
    timers: BTreeMap<(Instant, u64), overlay::Timer<PeerId>>,
    seq: u64,
    outbox: BTreeMap<PeerId, Held>,
}

impl OverlayState {
    pub fn new(me: PeerId, max_peers: usize, seed: u64, now: Instant) -> Self {
        let config = overlay::Config::with_active_capacity(max_peers.saturating_sub(1).max(1));
        OverlayState {
            overlay: Overlay::new(me, config, seed, now),
            timers: BTreeMap::new(),
            seq: 0,
            outbox: BTreeMap::new(),
        }
    }

    /// When the next overlay timer is due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|((at, _), _)| *at)
    }
}

/// The PlumTree id of a chat message: its signed message id, padded.
fn chat_gossip_id(msg_id: &crate::wire::MsgId) -> MessageId {
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
                overlay::Out::LookupDone(_) => {}
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

    /// An authenticated link to `peer` is up: held messages go out; a link the user asked for
    /// is our way into the overlay.
    pub(super) fn overlay_link_up(&mut self, now: Instant, peer: PeerId, link: LinkId, user_asked: bool) {
        if let Some(held) = self.overlay.outbox.remove(&peer) {
            for message in held.messages {
                let hints = self.hints_for(&message);
                self.send(link, &Message::Overlay { message, hints });
            }
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
        let held = self.overlay.outbox.remove(&peer).is_some();
        if held || self.overlay.overlay.membership().active().contains(&peer) {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.given_up = true;
            }
            self.overlay.overlay.peer_failed(now, &peer);
            self.overlay_pump(now);
        }
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
        if let overlay::Message::Broadcast(overlay::plumtree::Message::Gossip { id, payload, .. }) = &message {
            match self.check_gossip_chat(now, id, payload) {
                Ok(true) => {}
                Ok(false) => return,
                Err(reason) => return self.misbehaved(link, reason),
            }
        }
        self.overlay.overlay.handle(now, peer, message);
        self.overlay_pump(now);
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
        let waiting: Vec<PeerId> = self.overlay.outbox.keys().copied().collect();
        for peer in waiting {
            self.overlay_dial(now, peer);
        }
        let active = self.overlay.overlay.membership().active().clone();
        let idle: Vec<LinkId> = self
            .links
            .iter()
            .filter_map(|(id, l)| {
                let LinkState::Established { peer, .. } = l.state else { return None };
                let needed = active.contains(&peer)
                    || self.overlay.outbox.contains_key(&peer)
                    || self.transfers.involves(&peer)
                    || now - l.opened_at < TRANSIENT_LINK_AGE;
                (!needed).then_some(*id)
            })
            .collect();
        for link in idle {
            self.send(link, &Message::Goodbye { reason: "not an overlay neighbor".into() });
            self.close_link(link, "not an overlay neighbor", Some(now));
        }
    }

    fn overlay_send(&mut self, now: Instant, peer: PeerId, message: OverlayMessage) {
        if let Some(link) = self.peers.link_of(&peer) {
            let hints = self.hints_for(&message);
            self.send(link, &Message::Overlay { message, hints });
            return;
        }
        if !self.overlay.outbox.contains_key(&peer) && self.overlay.outbox.len() >= OUTBOX_PEERS {
            self.stats.overlay_dropped += 1;
            self.overlay.overlay.peer_failed(now, &peer);
            return;
        }
        let held = self.overlay.outbox.entry(peer).or_insert_with(|| Held { since: now, messages: VecDeque::new() });
        if held.messages.len() >= OUTBOX_PER_PEER {
            held.messages.pop_front();
            self.stats.overlay_dropped += 1;
        }
        held.messages.push_back(message);
        self.overlay_dial(now, peer);
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
            self.overlay.outbox.remove(&peer);
            self.overlay.overlay.peer_failed(now, &peer);
            return;
        };
        let link = if self.wants_rtc(p, established > 0) {
            self.open_rtc_link(now, peer)
        } else if let (Some(_), Some(addr)) = (self.config.tcp_port, p.addrs.first().copied()) {
            self.open_link(now, addr, Some(peer))
        } else {
            self.overlay.outbox.remove(&peer);
            self.overlay.overlay.peer_failed(now, &peer);
            return;
        };
        if let Some(p) = self.peers.get_mut(&peer) {
            p.dialing = Some(link);
        }
    }

    /// `peer` left the active view: its link goes unless something else needs it.
    fn overlay_release(&mut self, now: Instant, peer: PeerId) {
        if self.transfers.involves(&peer) {
            return;
        }
        if let Some(link) = self.peers.link_of(&peer) {
            self.send(link, &Message::Goodbye { reason: "not an overlay neighbor".into() });
            self.close_link(link, "not an overlay neighbor", Some(now));
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
    fn check_gossip_chat(&mut self, now: Instant, id: &MessageId, payload: &[u8]) -> Result<bool, &'static str> {
        let chat: Signed<ChatBody> = postcard::from_bytes(payload).map_err(|_| "broadcast that is not a chat")?;
        if chat_gossip_id(&chat.body.msg_id) != *id {
            return Err("broadcast under another message's id");
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
