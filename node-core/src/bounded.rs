//! Small bounded collections for anything a peer can grow.

use std::collections::{BTreeSet, VecDeque};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
