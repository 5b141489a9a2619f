//! The table of peers this node knows about, linked or not, and when to dial them.

use crate::identity::PeerId;
use crate::interface::LinkId;
use crate::time::Instant;
use crate::wire::{Capabilities, MAX_ADDRS};
use core::time::Duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Dial failures after which an unseen, non-manual peer is forgotten.
const FORGET_AFTER_FAILURES: u32 = 5;
/// How recently a peer must have been heard of to survive its failures.
const SEEN_RECENTLY: Duration = Duration::from_secs(60);
/// An unlinked peer nobody has mentioned for this long is forgotten.
const FORGET_UNSEEN: Duration = Duration::from_secs(600);
/// Longest wait between redials.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How we heard of a peer; decides how hard we hold on to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    /// A LAN announcement: seen directly.
    Discovery,
    /// A neighbour's peer exchange: a hint.
    Exchange,
    /// The user asked for it (`--connect`): redialed forever.
    Manual,
}

#[derive(Debug, Clone)]
pub(super) struct KnownPeer {
    pub name: String,
    /// Dialable addresses, most recently confirmed first.
    pub addrs: Vec<SocketAddr>,
    pub source: Source,
    pub link: Option<LinkId>,
    pub dialing: Option<LinkId>,
    pub last_seen: Instant,
    pub failures: u32,
    pub next_dial: Instant,
    /// What it supports, once its `Hello` or a neighbour told us.
    pub capabilities: Option<Capabilities>,
    /// Whether a driver signaling channel reaches it (see `Input::SignalPeer`).
    pub signal: bool,
    /// When to hand it to the overlay as a candidate neighbor (a discovered peer waits a beat;
    /// see `schedule_discovered_learning`).
    pub learn_at: Option<Instant>,
    /// The user asked for a link to it (`Connect`) and none has come up yet: dialed (with
    /// backoff) even while the overlay has neighbors.
    pub wanted: bool,
    /// The overlay gave up on it (its link failed): forgotten soon unless heard of again.
    pub given_up: bool,
}

/// Known peers, bounded: the oldest unlinked non-manual peer makes room for a new one.
#[derive(Debug)]
pub(super) struct PeerTable {
    peers: BTreeMap<PeerId, KnownPeer>,
    capacity: usize,
}

impl PeerTable {
    pub fn new(capacity: usize) -> Self {
        PeerTable { peers: BTreeMap::new(), capacity: capacity.max(1) }
    }

    pub fn ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    pub fn get(&self, id: &PeerId) -> Option<&KnownPeer> {
        self.peers.get(id)
    }

    pub fn get_mut(&mut self, id: &PeerId) -> Option<&mut KnownPeer> {
        self.peers.get_mut(id)
    }

    pub fn link_of(&self, id: &PeerId) -> Option<LinkId> {
        self.peers.get(id).and_then(|p| p.link)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &KnownPeer)> {
        self.peers.iter()
    }

    /// Adds a third party's address hint for a known peer: after the addresses we confirmed
    /// ourselves, never displacing them, and only while there is room.
    pub fn add_hint(&mut self, id: &PeerId, addr: SocketAddr) {
        if let Some(p) = self.peers.get_mut(id) {
            if !p.addrs.contains(&addr) && p.addrs.len() < MAX_ADDRS {
                p.addrs.push(addr);
            }
        }
    }

    /// Records that `id` was heard of at `addr`; returns true if it is new. A manual source is
    /// sticky; a better source upgrades a weaker one.
    pub fn observe(&mut self, id: PeerId, name: &str, addr: Option<SocketAddr>, source: Source, now: Instant) -> bool {
        if let Some(p) = self.peers.get_mut(&id) {
            if !name.is_empty() {
                p.name = name.to_owned();
            }
            if let Some(addr) = addr {
                push_front_bounded(&mut p.addrs, addr);
            }
            p.source = p.source.max(source);
            if source != Source::Exchange || p.source == Source::Exchange {
                p.last_seen = now;
            }
            return false;
        }
        if self.peers.len() >= self.capacity && !self.evict_one(source) {
            return false;
        }
        self.peers.insert(
            id,
            KnownPeer {
                name: name.to_owned(),
                addrs: addr.into_iter().collect(),
                source,
                link: None,
                dialing: None,
                last_seen: now,
                failures: 0,
                next_dial: now,
                capabilities: None,
                signal: false,
                learn_at: None,
                wanted: false,
                given_up: false,
            },
        );
        true
    }

    /// Makes room for a peer heard of from `source`: the stalest unlinked hint goes first, then
    /// the stalest discovered peer. A hint never pushes out a peer we saw ourselves.
    fn evict_one(&mut self, source: Source) -> bool {
        let victim = self
            .peers
            .iter()
            .filter(|(_, p)| p.link.is_none() && p.dialing.is_none() && p.source != Source::Manual)
            .filter(|(_, p)| source != Source::Exchange || p.source == Source::Exchange)
            // Peers a signaling channel reaches go last: they are online right now.
            .min_by_key(|(_, p)| (p.signal, p.source, p.last_seen))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.peers.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Counts a failed dial and pushes the next one back exponentially (with the jitter given).
    pub fn dial_failed(&mut self, id: &PeerId, now: Instant, jitter: f64) {
        if let Some(p) = self.peers.get_mut(id) {
            p.dialing = None;
            p.failures = p.failures.saturating_add(1);
            p.next_dial = now + backoff(p.failures, jitter);
            // Try the next address first next time.
            if p.addrs.len() > 1 {
                p.addrs.rotate_left(1);
            }
        }
    }

    /// Forgets peers that have gone quiet: unlinked, not manual, and either failing to dial while
    /// unseen, or unseen for a long time.
    pub fn expire(&mut self, now: Instant) {
        self.peers.retain(|_, p| {
            if p.link.is_some() || p.dialing.is_some() || p.source == Source::Manual || p.signal {
                return true;
            }
            let quiet = now - p.last_seen;
            let failing = p.failures >= FORGET_AFTER_FAILURES || p.given_up;
            !(quiet >= FORGET_UNSEEN || (failing && quiet >= SEEN_RECENTLY))
        });
    }
}

/// Wait before redial number `failures` (1-based): 1 s, 2 s, 4 s ... capped at a minute.
pub(super) fn backoff(failures: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(6));
    base.min(MAX_BACKOFF).mul_f64(jitter.clamp(0.5, 1.5))
}

/// Puts `addr` first (most recently confirmed), except that IPv6 link-local addresses always
/// come after the others: they work only on this link and mean nothing in a peer exchange.
pub(super) fn push_front_bounded(addrs: &mut Vec<SocketAddr>, addr: SocketAddr) {
    addrs.retain(|a| *a != addr);
    addrs.insert(0, addr);
    addrs.sort_by_key(is_link_local_v6); // stable: recency order holds within each group
    addrs.truncate(MAX_ADDRS);
}

fn is_link_local_v6(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unicast_link_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    #[test]
    fn link_local_addresses_come_last() {
        let mut addrs = Vec::new();
        let v4: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let ll: SocketAddr = "[fe80::1%2]:1".parse().unwrap();
        let v4b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        push_front_bounded(&mut addrs, v4);
        push_front_bounded(&mut addrs, ll);
        assert_eq!(addrs, vec![v4, ll]);
        push_front_bounded(&mut addrs, v4b);
        assert_eq!(addrs, vec![v4b, v4, ll]);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn table_is_bounded_and_keeps_manual_peers() {
        let t0 = Instant::from_unix_ms(0);
        let mut t = PeerTable::new(2);
        assert!(t.observe(id(1), "a", None, Source::Manual, t0));
        assert!(t.observe(id(2), "b", None, Source::Exchange, t0));
        assert!(t.observe(id(3), "c", None, Source::Exchange, t0 + Duration::from_secs(1)));
        assert!(t.get(&id(1)).is_some(), "manual peers are never evicted");
        assert!(t.get(&id(2)).is_none(), "the oldest hint made room");
    }

    #[test]
    fn hints_never_displace_what_we_saw_ourselves() {
        let t0 = Instant::from_unix_ms(0);
        let mut t = PeerTable::new(2);
        let seen: SocketAddr = "10.0.0.1:1".parse().unwrap();
        t.observe(id(1), "a", Some(seen), Source::Discovery, t0);
        for port in 2..20 {
            t.add_hint(&id(1), SocketAddr::from(([192, 0, 2, 1], port)));
        }
        let addrs = &t.get(&id(1)).unwrap().addrs;
        assert_eq!(addrs[0], seen, "the confirmed address stays first");
        assert_eq!(addrs.len(), MAX_ADDRS);
        assert!(t.observe(id(2), "b", None, Source::Discovery, t0));
        assert!(!t.observe(id(3), "c", None, Source::Exchange, t0), "a hint cannot evict a discovered peer");
        assert!(t.get(&id(1)).is_some() && t.get(&id(2)).is_some());
    }

    #[test]
    fn failing_unseen_peers_are_forgotten() {
        let t0 = Instant::from_unix_ms(0);
        let mut t = PeerTable::new(8);
        t.observe(id(1), "a", None, Source::Discovery, t0);
        for _ in 0..FORGET_AFTER_FAILURES {
            t.dial_failed(&id(1), t0, 1.0);
        }
        t.expire(t0 + Duration::from_secs(10));
        assert!(t.get(&id(1)).is_some(), "seen recently");
        t.expire(t0 + SEEN_RECENTLY);
        assert!(t.get(&id(1)).is_none());
    }
}
