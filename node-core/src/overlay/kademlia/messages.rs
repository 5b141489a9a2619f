//! What DHT peers say to each other, what the DHT asks of its driver, and how lookups and
//! stores end.

use super::Key;
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// What DHT peers say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P, R> {
    /// "Who do you know closest to `target`?"
    FindNode {
        /// Matches the answer.
        request: u64,
        /// The key.
        target: Key,
    },
    /// "Do you have the record at `key`? If not, who is closest to it?"
    FindRecord {
        /// Matches the answer.
        request: u64,
        /// The key.
        key: Key,
    },
    /// The peers closest to the key asked about.
    Nodes {
        /// The request answered.
        request: u64,
        /// Up to k peers.
        peers: Vec<P>,
    },
    /// The record asked about.
    Found {
        /// The request answered.
        request: u64,
        /// The record.
        record: R,
    },
    /// "Keep this record."
    Store(R),
}

/// Names a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// A timer the driver arms and hands back through [`Kademlia::timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A request may have gone unanswered.
    Request(u64),
}

/// How a lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupDone<P, R> {
    /// Which lookup.
    pub id: LookupId,
    /// What it looked for.
    pub target: Key,
    /// The closest answering peers, closest first (up to k).
    pub closest: Vec<P>,
    /// The record, for a record lookup that found one.
    pub record: Option<R>,
    /// Requests in sequence until the peer whose key is `target` answered (1: it was in our
    /// table), if it did.
    pub hops_to_target: Option<u8>,
    /// Requests sent.
    pub requests: usize,
}

/// What the DHT asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<P, R> {
    /// Send `message` to `peer` (over a link, or however the driver reaches it).
    Send(P, Message<P, R>),
    /// Call [`Kademlia::timer`] with this timer at the given time.
    Schedule(Instant, Timer),
    /// A lookup finished.
    Done(LookupDone<P, R>),
}

/// Why a lookup could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Too many lookups are running.
    #[error("too many lookups are running")]
    Busy,
}

/// Why a record was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Its signature or form does not check out.
    #[error("the record does not verify")]
    Invalid,
    /// It has expired, or expires too far ahead.
    #[error("the record has expired or lives too long")]
    Lifetime,
    /// We hold a newer one.
    #[error("a newer record is stored")]
    Stale,
    /// The store is full of records closer to us.
    #[error("the record store is full")]
    Full,
}
