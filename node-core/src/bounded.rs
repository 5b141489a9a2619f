//! Small bounded collections for anything a peer can grow.

use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A set that forgets its oldest entries past a fixed capacity: the seen-cache for message ids
/// and the nonce cache for announcements.
#[derive(Debug, Clone)]
pub struct BoundedSet<T: Ord + Clone> {
    capacity: usize,
    order: VecDeque<T>,
    members: BTreeSet<T>,
}

impl<T: Ord + Clone> BoundedSet<T> {
    /// An empty set holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedSet { capacity: capacity.max(1), order: VecDeque::new(), members: BTreeSet::new() }
    }

    /// Inserts `value`; returns false if it was already present. Evicts the oldest entry when full.
    pub fn insert(&mut self, value: T) -> bool {
        if self.members.contains(&value) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.members.remove(&old);
            }
        }
        self.order.push_back(value.clone());
        self.members.insert(value);
        true
    }

    /// Whether `value` is present.
    pub fn contains(&self, value: &T) -> bool {
        self.members.contains(value)
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }
}

/// What [`ExpiringSet::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new entry.
    New,
    /// It was there already (and has not expired).
    Present,
    /// The set is full of entries that have not expired: nothing was added.
    Full,
}

/// A set whose entries each carry an expiry, for ids that must be remembered for exactly as long
/// as they could come back (the signaling envelopes' replay cache). Unlike [`BoundedSet`], it
/// never forgets an entry early: when full of live entries it refuses new ones, so a flood
/// cannot push an id out to make room for its replay.
#[derive(Debug, Clone)]
pub struct ExpiringSet<T: Ord + Clone> {
    capacity: usize,
    by_expiry: BTreeSet<(Instant, T)>,
    members: BTreeMap<T, Instant>,
}

impl<T: Ord + Clone> ExpiringSet<T> {
    /// An empty set holding at most `capacity` live entries (at least one).
    pub fn new(capacity: usize) -> Self {
        ExpiringSet { capacity: capacity.max(1), by_expiry: BTreeSet::new(), members: BTreeMap::new() }
    }

    /// Forgets what expired by `now`, then inserts `value` until `expires`.
    pub fn insert(&mut self, now: Instant, value: T, expires: Instant) -> Inserted {
        while let Some((at, _)) = self.by_expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_first() {
                self.members.remove(&old);
            }
        }
        if self.members.contains_key(&value) {
            return Inserted::Present;
        }
        if self.members.len() >= self.capacity {
            return Inserted::Full;
        }
        self.by_expiry.insert((expires, value.clone()));
        self.members.insert(value, expires);
        Inserted::New
    }
}

/// A token bucket: at most `burst` events at once, then one more per `every`. It caps how fast a
/// peer's messages may change state that honest peers hold (views, tables) so that a flood of
/// lies can only push out a few entries, not all of them.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: u32,
    every: core::time::Duration,
    tokens: u32,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, every: core::time::Duration) -> Self {
        TokenBucket { burst, every, tokens: burst, last: None }
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        let every = self.every.as_micros().max(1);
        let earned = u32::try_from((now - last).as_micros() / every).unwrap_or(u32::MAX);
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            let spent =
                core::time::Duration::from_micros(u64::try_from(u128::from(earned) * every).unwrap_or(u64::MAX));
            self.last = Some(last + spent);
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiring_entries_stay_until_they_expire_and_a_full_set_refuses_rather_than_forgets() {
        let t = |ms: u64| Instant::from_unix_ms(1_000_000 + ms);
        let mut s = ExpiringSet::new(2);
        assert_eq!(s.insert(t(0), 1, t(100)), Inserted::New);
        assert_eq!(s.insert(t(0), 2, t(50)), Inserted::New);
        assert_eq!(s.insert(t(10), 1, t(100)), Inserted::Present);
        assert_eq!(s.insert(t(10), 3, t(100)), Inserted::Full, "1 and 2 are live: neither is forgotten");
        assert_eq!(s.insert(t(10), 1, t(100)), Inserted::Present, "still remembered");
        assert_eq!(s.insert(t(50), 3, t(150)), Inserted::New, "2 expired, making room");
        assert_eq!(s.insert(t(100), 1, t(200)), Inserted::New, "1 expired: it could not be accepted any more");
    }

    #[test]
    fn evicts_oldest_past_capacity() {
        let mut s = BoundedSet::new(2);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert!(s.insert(2));
        assert!(s.insert(3));
        assert_eq!(s.len(), 2);
        assert!(!s.contains(&1));
        assert!(s.contains(&2) && s.contains(&3));
    }

    #[test]
    fn a_token_bucket_allows_its_burst_then_one_per_interval() {
        let mut b = TokenBucket::new(2, core::time::Duration::from_secs(10));
        let t = |s: u64| Instant::from_unix_ms(s * 1000);
        assert!(b.take(t(0)) && b.take(t(0)));
        assert!(!b.take(t(9)), "empty until a whole interval has passed");
        assert!(b.take(t(10)));
        assert!(!b.take(t(15)));
        assert!(b.take(t(20)));
        // A long quiet spell refills no more than the burst.
        assert!(b.take(t(1000)) && b.take(t(1000)) && !b.take(t(1000)));
    }
}
