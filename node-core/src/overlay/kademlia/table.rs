//! The Kademlia routing table: 256 buckets of up to k peers, by the length of the prefix a
//! peer's key shares with ours.
//!
//! Only peers that spoke to us themselves get in ([`RoutingTable::observe`]); ids that other
//! peers merely name in their replies never do. A full bucket keeps its live entries and turns
//! the newcomer away (the original paper's preference for long-lived peers), and an entry is
//! replaced only after it failed to answer twice in a row: a flood of fresh ids cannot push
//! honest peers out.

use super::{distance, Key, KeyOf};
use crate::time::Instant;
use std::collections::VecDeque;

/// Failures in a row after which an entry is dropped.
const FAILURES_TO_DROP: u8 = 2;

#[derive(Debug, Clone)]
struct Entry<P> {
    peer: P,
    key: Key,
    last_seen: Instant,
    failures: u8,
}

/// What [`RoutingTable::observe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A new entry.
    Added,
    /// A known peer, now the freshest of its bucket.
    Refreshed,
    /// Its bucket is full of live peers: not added.
    BucketFull,
    /// That is us.
    Ignored,
}

/// The table.
#[derive(Debug, Clone)]
pub struct RoutingTable<P> {
    me: Key,
    k: usize,
    /// Bucket `i` holds peers whose key shares exactly `i` leading bits with ours; oldest first.
    buckets: Vec<VecDeque<Entry<P>>>,
}

impl<P: Clone + PartialEq + KeyOf> RoutingTable<P> {
    /// An empty table around `me`, `k` peers per bucket.
    pub fn new(me: Key, k: usize) -> Self {
        RoutingTable { me, k: k.max(1), buckets: vec![VecDeque::new(); 256] }
    }

    /// Peers in the table.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(VecDeque::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(VecDeque::is_empty)
    }

    /// Whether `peer` is in the table.
    pub fn contains(&self, peer: &P) -> bool {
        self.bucket(&peer.key_of()).is_some_and(|b| self.buckets[b].iter().any(|e| e.peer == *peer))
    }

    /// `peer` spoke to us (a request, or an answer to ours).
    pub fn observe(&mut self, now: Instant, peer: P) -> Observed {
        let key = peer.key_of();
        let Some(b) = self.bucket(&key) else { return Observed::Ignored };
        let bucket = &mut self.buckets[b];
        if let Some(i) = bucket.iter().position(|e| e.peer == peer) {
            if let Some(mut e) = bucket.remove(i) {
                e.last_seen = now;
                e.failures = 0;
                bucket.push_back(e);
            }
            return Observed::Refreshed;
        }
        if bucket.len() >= self.k {
            // Room only where an entry has stopped answering.
            match bucket.iter().position(|e| e.failures >= FAILURES_TO_DROP) {
                Some(i) => {
                    bucket.remove(i);
                }
                None => return Observed::BucketFull,
            }
        }
        bucket.push_back(Entry { peer, key, last_seen: now, failures: 0 });
        Observed::Added
    }

    /// `peer` did not answer a request; after [`FAILURES_TO_DROP`] in a row its place is free
    /// for the next peer that speaks to us.
    pub fn failed(&mut self, peer: &P) {
        let Some(b) = self.bucket(&peer.key_of()) else { return };
        if let Some(e) = self.buckets[b].iter_mut().find(|e| e.peer == *peer) {
            e.failures = e.failures.saturating_add(1);
        }
    }

    /// Forgets `peer` (it left, or its link proved it is not who it says).
    pub fn remove(&mut self, peer: &P) {
        if let Some(b) = self.bucket(&peer.key_of()) {
            self.buckets[b].retain(|e| e.peer != *peer);
        }
    }

    /// Up to `n` answering peers closest to `target`, closest first.
    pub fn closest(&self, target: &Key, n: usize) -> Vec<P> {
        let mut all: Vec<(Key, &Entry<P>)> = self
            .buckets
            .iter()
            .flatten()
            .filter(|e| e.failures < FAILURES_TO_DROP)
            .map(|e| (distance(&e.key, target), e))
            .collect();
        all.sort_by_key(|a| a.0);
        all.into_iter().take(n).map(|(_, e)| e.peer.clone()).collect()
    }

    /// Every peer in the table.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.buckets.iter().flatten().map(|e| &e.peer)
    }

    /// Index of the bucket for `key`; `None` for our own key.
    fn bucket(&self, key: &Key) -> Option<usize> {
        let d = distance(&self.me, key);
        let zeros = leading_zeros(&d);
        (zeros < 256).then_some(zeros)
    }
}

fn leading_zeros(key: &Key) -> usize {
    let mut zeros = 0;
    for byte in key {
        if *byte == 0 {
            zeros += 8;
        } else {
            return zeros + byte.leading_zeros() as usize;
        }
    }
    zeros
}
