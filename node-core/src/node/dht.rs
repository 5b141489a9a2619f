//! The DHT inside the node: every node publishes a signed record of how to reach it (the
//! addresses others can dial, and the overlay neighbors it is linked to) at the peers closest to
//! its id, and a direct message or a signaling envelope for a peer we have no link to follows
//! that record instead of flooding the mesh:
//!
//! 1. a neighbor of the recipient that we are linked to carries it the last hop;
//! 2. else a link opens to the recipient itself, if the record gives an address to dial;
//! 3. else to a neighbor of the recipient that we know how to dial;
//! 4. with no record yet, the message waits (bounded) for a lookup of it;
//! 5. and with no record at all, it floods as before: nothing is lost for want of a route.
//!
//! Only the sender looks a record up; a node passing a message on uses the records it already
//! has, or floods, so one message costs at most one lookup.

use super::Node;
use crate::identity::PeerId;
use crate::overlay::kademlia::{LookupDone, LookupId, Record};
use crate::overlay::record::{addresses_key, SignedRecord, MAX_VIA};
use crate::time::Instant;
use crate::wire::{Message, MAX_ADDRS};
use core::time::Duration;
use rand_core::RngCore;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

/// How long a published record lives.
const RECORD_TTL: Duration = Duration::from_secs(3600);
/// How often it is published again, unchanged.
const REPUBLISH: Duration = Duration::from_secs(20 * 60);
/// Least time between two publications (when the neighbors or addresses change).
const MIN_REPUBLISH: Duration = Duration::from_secs(30);
/// How long after the first neighbor the first record goes out (the views settle first), plus
/// a random part up to [`PUBLISH_SPREAD_MS`] so that nodes started together do not all store at
/// once (each store may need a link of its own).
const FIRST_PUBLISH: Duration = Duration::from_secs(5);
const PUBLISH_SPREAD_MS: u32 = 15_000;
/// Recipients whose record is being looked up at once.
const PENDING_TARGETS: usize = 32;
/// Messages waiting for one recipient's record.
const PENDING_PER_TARGET: usize = 16;
/// Longest a message waits for a lookup before it floods anyway (the lookup goes on, and what
/// it finds routes the next message).
const PENDING_WAIT: Duration = Duration::from_secs(4);
/// Records of other peers kept after a lookup found them.
const FOUND_RECORDS: usize = 256;

/// How far a route may go beyond the links we have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// Only over our links, never back to `from` (a node passing a message on).
    Links {
        /// The peer the message came from.
        from: Option<PeerId>,
    },
    /// Also by a lookup, and by opening a link to the recipient or a neighbor of it, except to
    /// `avoid` (a peer that just refused us). Only for the message's sender.
    Dial {
        /// The peer not to try again.
        avoid: Option<PeerId>,
    },
}

/// What the node keeps for routing by the DHT.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// When we last published, and what (addresses, neighbors).
    published: Option<(Instant, Vec<SocketAddr>, Vec<PeerId>)>,
    /// When the first publication is due (set when the first neighbor comes).
    first_publish: Option<Instant>,
    /// Messages waiting for a lookup of their recipient's record, by recipient, since when.
    pending: BTreeMap<PeerId, (Instant, VecDeque<Message>)>,
    /// The lookup running for each recipient.
    lookups: BTreeMap<LookupId, PeerId>,
    /// Records lookups found, by publisher.
    found: BTreeMap<PeerId, SignedRecord>,
}

impl Node {
    /// Once a second: messages that waited too long for a lookup flood, and our record is
    /// published when it is due.
    pub(super) fn dht_maintain(&mut self, now: Instant) {
        let pending = &mut self.overlay.routes.pending;
        let late: Vec<PeerId> =
            pending.iter().filter(|(_, (since, _))| *since + PENDING_WAIT <= now).map(|(p, _)| *p).collect();
        for peer in late {
            for message in self.overlay.routes.pending.remove(&peer).map(|(_, m)| m).unwrap_or_default() {
                self.flood_unrouted(&message);
            }
        }
        self.dht_publish(now);
    }

    fn dht_publish(&mut self, now: Instant) {
        let via: Vec<PeerId> = self.overlay.overlay.membership().active().iter().take(MAX_VIA).copied().collect();
        if via.is_empty() {
            return;
        }
        let addrs = self.dialable_addrs();
        if self.overlay.routes.first_publish.is_none() {
            let spread = Duration::from_millis(u64::from(self.rng.next_u32() % PUBLISH_SPREAD_MS));
            self.overlay.routes.first_publish = Some(now + FIRST_PUBLISH + spread);
        }
        let routes = &mut self.overlay.routes;
        let first = routes.first_publish.unwrap_or(now);
        let due = match &routes.published {
            None => now >= first,
            Some((at, a, v)) => now >= *at + REPUBLISH || (now >= *at + MIN_REPUBLISH && (*a != addrs || *v != via)),
        };
        if !due {
            return;
        }
        // The publication time in milliseconds orders our versions (a restart starts higher).
        let record = SignedRecord::addresses_via(&self.keys, &addrs, &via, now.unix_ms(), now + RECORD_TTL);
        let Ok(record) = record else { return };
        // Busy: every lookup slot is taken; the next tick tries again.
        if self.overlay.overlay.put_record(now, record).is_ok() {
            self.overlay.routes.published = Some((now, addrs, via));
        }
        self.overlay_pump(now);
    }

    /// The addresses another node could dial us at: the router's mapping first, then the
    /// addresses we listen on. None for a node without a listener (a browser).
    fn dialable_addrs(&self) -> Vec<SocketAddr> {
        if self.config.tcp_port.is_none() {
            return Vec::new();
        }
        let mapped = self.port_mapping.flatten();
        let mut addrs: Vec<SocketAddr> = mapped.into_iter().collect();
        for a in &self.config.listen_addrs {
            if !addrs.contains(a) && addrs.len() < MAX_ADDRS {
                addrs.push(*a);
            }
        }
        addrs
    }

    /// The record we have of `peer`'s addresses: the newer of one a lookup found and one stored
    /// here.
    fn record_of(&self, now: Instant, peer: &PeerId) -> Option<SignedRecord> {
        let fresh = |r: &&SignedRecord| r.expires() > now && r.publisher == *peer;
        let found = self.overlay.routes.found.get(peer).filter(fresh);
        let stored = self.overlay.overlay.dht().record(now, &addresses_key(peer)).filter(fresh);
        found.into_iter().chain(stored).max_by_key(|r| r.seq).cloned()
    }

    /// Sends `message` for `to` (which we have no link to) by `to`'s record; false when there is
    /// no route (the caller floods it). With [`Reach::Dial`] (its sender) a link may be opened
    /// for it, and a message with no record yet waits for a lookup (then routes or floods); a
    /// node passing it on only uses the links it has, so a flood never makes every node that
    /// hears it dial the recipient.
    pub(super) fn route_by_record(&mut self, now: Instant, to: PeerId, message: Message, reach: Reach) -> bool {
        if let Some(record) = self.record_of(now, &to) {
            return self.route_with(now, to, &record, message, reach);
        }
        // A node that knows no more peers than its link cap is in a (nearly) full mesh: a flood
        // there costs a few frames and no wait, where a lookup would hold the message back.
        if matches!(reach, Reach::Links { .. }) || self.peers.iter().count() <= self.config.max_peers {
            return false;
        }
        let routes = &mut self.overlay.routes;
        if let Some((_, waiting)) = routes.pending.get_mut(&to) {
            if waiting.len() >= PENDING_PER_TARGET {
                return false;
            }
            waiting.push_back(message);
            return true;
        }
        if routes.pending.len() >= PENDING_TARGETS {
            return false;
        }
        // A lookup still running from a message that gave up waiting serves this one too.
        if !routes.lookups.values().any(|t| *t == to) {
            let Ok(lookup) = self.overlay.overlay.find_record(now, addresses_key(&to)) else { return false };
            self.overlay.routes.lookups.insert(lookup, to);
        }
        self.overlay.routes.pending.insert(to, (now, VecDeque::from([message])));
        self.overlay_pump(now);
        true
    }

    /// Steps 1 to 3 of the module's list, with `record` in hand.
    fn route_with(&mut self, now: Instant, to: PeerId, record: &SignedRecord, message: Message, reach: Reach) -> bool {
        let via = record.via().unwrap_or_default();
        // A record naming us as a way in while we have no link to `to` is out of date: passing
        // the message to another neighbor it names could send it round in a circle.
        if via.contains(&self.me) {
            return false;
        }
        let skip = match reach {
            Reach::Links { from } => from,
            Reach::Dial { avoid } => avoid,
        };
        if let Some(v) = via.iter().find(|v| Some(**v) != skip && self.peers.link_of(v).is_some()) {
            return self.send_over_link(now, *v, message);
        }
        let Reach::Dial { avoid } = reach else { return false };
        let addrs = record.addrs().unwrap_or_default();
        if self.config.tcp_port.is_some() && !addrs.is_empty() && avoid != Some(to) {
            self.peers.observe(to, "", None, super::peers::Source::Exchange, now);
            for addr in addrs.iter().rev() {
                self.peers.add_hint(&to, *addr);
            }
        }
        let target = if avoid != Some(to) && self.can_dial(&to) {
            Some(to)
        } else {
            via.iter().find(|v| Some(**v) != avoid && self.can_dial(v)).copied()
        };
        let Some(target) = target else { return false };
        self.hold_routed(now, target, message)
    }

    /// A routed message held for `failed` will not get there (it refused the link, or the link
    /// never came). Our own: if `failed` was its recipient, one of the recipient's neighbors is
    /// tried. Otherwise, or when that is no option, the message floods (and a record that led
    /// nowhere is not used again).
    pub(super) fn reroute(&mut self, now: Instant, failed: PeerId, message: Message) {
        let (to, ours) = match &message {
            Message::Direct(d) => (Some(d.body.to), d.body.author == self.me),
            Message::Signal { envelope, .. } => (Some(envelope.to), envelope.from == self.me),
            _ => (None, false),
        };
        let record = to.filter(|to| ours && *to == failed).and_then(|to| self.record_of(now, &to));
        let routed = match (to, record) {
            (Some(to), Some(record)) => {
                self.route_with(now, to, &record, message.clone(), Reach::Dial { avoid: Some(failed) })
            }
            _ => false,
        };
        if !routed {
            if let Some(to) = to {
                self.overlay.routes.found.remove(&to);
            }
            self.flood_unrouted(&message);
        }
    }

    /// Holds a routed message for `peer` while a link to it opens; false if it cannot be held.
    fn hold_routed(&mut self, now: Instant, peer: PeerId, message: Message) -> bool {
        match self.hold_for(now, peer, message) {
            Ok(()) => true,
            Err(super::overlay::NotHeld::Refused) => false,
            Err(super::overlay::NotHeld::PushedOut(oldest)) => {
                self.flood_unrouted(&oldest);
                true
            }
        }
    }

    /// Sends a direct message or envelope over our link to `peer`: at once once the peer has
    /// taken the link, else held until it does (flooded if the link fails first). False with
    /// no link.
    pub(super) fn send_over_link(&mut self, now: Instant, peer: PeerId, message: Message) -> bool {
        let Some(link) = self.peers.link_of(&peer) else { return false };
        if self.links.get(&link).is_some_and(|l| l.confirmed) {
            self.send(link, &message);
            return true;
        }
        self.hold_routed(now, peer, message)
    }

    /// A DHT lookup ended: messages waiting for its record go on (routed, or flooded).
    pub(super) fn dht_lookup_done(&mut self, now: Instant, done: LookupDone<PeerId, SignedRecord>) {
        let Some(to) = self.overlay.routes.lookups.remove(&done.id) else { return };
        let waiting = self.overlay.routes.pending.remove(&to).map(|(_, m)| m).unwrap_or_default();
        let record = done.record.filter(|r| r.publisher == to && r.addrs().is_some());
        if let Some(record) = &record {
            let found = &mut self.overlay.routes.found;
            if found.len() >= FOUND_RECORDS && !found.contains_key(&to) {
                // The one expiring first makes room.
                let first = found.iter().min_by_key(|(_, r)| r.expires_ms).map(|(p, _)| *p);
                found.retain(|p, _| Some(*p) != first);
            }
            found.insert(to, record.clone());
        }
        for message in waiting {
            let routed = match &record {
                Some(record) => {
                    // The lookup may have taken long enough for a link to come up meanwhile.
                    self.send_over_link(now, to, message.clone())
                        || self.route_with(now, to, record, message.clone(), Reach::Dial { avoid: None })
                }
                None => false,
            };
            if !routed {
                self.flood_unrouted(&message);
            }
        }
    }
}
