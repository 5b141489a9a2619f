//! PlumTree's spanning trees: one shared by every sender, and one per recent sender.
//!
//! A single tree serves its root well and everyone else poorly: a message from a leaf climbs to
//! where the tree branches and comes down again, so the last node it reaches is up to twice as
//! many hops away as over the shortest paths. A sender's first message travels the shared tree
//! and shapes it, as in the paper; from then on the sender has a tree of its own, a copy shaped
//! only by its own messages (the duplicates they cause and the shorter paths their
//! announcements reveal), so a sender who keeps talking — a chat — soon has a tree of short
//! paths from itself. Per-sender trees are bounded in number; the least recently used goes
//! first, and its sender starts again from the shared tree.

use std::collections::{BTreeMap, BTreeSet};

/// Which neighbors get a message in full (eager) and which hear only its id (lazy). Every
/// neighbor is in exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tree<P: Ord> {
    pub(super) eager: BTreeSet<P>,
    pub(super) lazy: BTreeSet<P>,
}

impl<P: Ord + Clone> Tree<P> {
    fn new() -> Self {
        Tree { eager: BTreeSet::new(), lazy: BTreeSet::new() }
    }

    /// Whether `peer` is a neighbor of this tree (eager or lazy).
    pub(super) fn contains(&self, peer: &P) -> bool {
        self.eager.contains(peer) || self.lazy.contains(peer)
    }

    /// Moves a neighbor into the tree; not a neighbor: nothing.
    fn promote(&mut self, peer: &P) {
        if self.lazy.remove(peer) {
            self.eager.insert(peer.clone());
        }
    }

    /// Moves a neighbor out of the tree; not a neighbor: nothing.
    fn demote(&mut self, peer: &P) {
        if self.eager.remove(peer) {
            self.lazy.insert(peer.clone());
        }
    }
}

/// A sender's tree: whom we push its messages to (`eager`), the neighbor they come to us from,
/// and when it was last used (a counter, not a clock: only the order matters). Unlike the
/// shared tree its links have a direction: a prune or graft says whether the *sender* of it
/// wants the messages, and says nothing about whether it should push them the other way.
#[derive(Debug)]
struct OriginTree<P: Ord> {
    tree: Tree<P>,
    parent: Option<P>,
    used: u64,
}

/// The shared tree and the per-sender ones, kept in step as neighbors come and go.
#[derive(Debug)]
pub(super) struct Trees<P: Ord> {
    shared: Tree<P>,
    origins: BTreeMap<P, OriginTree<P>>,
    capacity: usize,
    uses: u64,
}

impl<P: Ord + Clone> Trees<P> {
    /// No neighbors; at most `capacity` per-sender trees (zero: the shared tree only).
    pub(super) fn new(capacity: usize) -> Self {
        Trees { shared: Tree::new(), origins: BTreeMap::new(), capacity, uses: 0 }
    }

    /// The tree senders' first messages travel, and that their own trees start from.
    pub(super) fn shared(&self) -> &Tree<P> {
        &self.shared
    }

    /// Whether there is only the shared tree.
    pub(super) fn shared_only(&self) -> bool {
        self.capacity == 0
    }

    /// How many senders have a tree of their own.
    pub(super) fn origin_count(&self) -> usize {
        self.origins.len()
    }

    /// Whether `origin` has a tree of its own here.
    pub(super) fn has(&self, origin: &P) -> bool {
        self.origins.contains_key(origin)
    }

    /// `origin`'s own tree, if it has one (marked as used).
    pub(super) fn get(&mut self, origin: &P) -> Option<&Tree<P>> {
        self.uses += 1;
        let used = self.uses;
        let o = self.origins.get_mut(origin)?;
        o.used = used;
        Some(&o.tree)
    }

    /// Gives `origin` a tree of its own, a copy of the shared one, whose messages come from
    /// `parent` (none: we are the origin); the least recently used goes if there is no room.
    pub(super) fn create(&mut self, origin: &P, parent: Option<&P>) {
        if self.capacity == 0 || self.origins.contains_key(origin) {
            return;
        }
        if self.origins.len() >= self.capacity {
            let oldest = self.origins.iter().min_by_key(|(_, t)| t.used).map(|(p, _)| p.clone());
            if let Some(oldest) = oldest {
                self.origins.remove(&oldest);
            }
        }
        self.uses += 1;
        let mut tree = self.shared.clone();
        let parent = parent.filter(|p| tree.contains(p)).cloned();
        if let Some(p) = &parent {
            tree.demote(p);
        }
        self.origins.insert(origin.clone(), OriginTree { tree, parent, used: self.uses });
    }

    /// Every neighbor some tree leans on: eager in the shared tree or a sender's, or a
    /// sender's parent.
    pub(super) fn links(&self) -> BTreeSet<P> {
        let mut links = self.shared.eager.clone();
        for o in self.origins.values() {
            links.extend(o.tree.eager.iter().cloned());
            links.extend(o.parent.iter().cloned());
        }
        links
    }

    /// A new neighbor: in every tree, until it prunes itself from each.
    pub(super) fn neighbor_up(&mut self, peer: P) {
        for tree in core::iter::once(&mut self.shared).chain(self.origins.values_mut().map(|o| &mut o.tree)) {
            tree.lazy.remove(&peer);
            tree.eager.insert(peer.clone());
        }
    }

    /// A neighbor left every tree (and is nobody's parent).
    pub(super) fn neighbor_down(&mut self, peer: &P) {
        self.shared.eager.remove(peer);
        self.shared.lazy.remove(peer);
        for o in self.origins.values_mut() {
            o.tree.eager.remove(peer);
            o.tree.lazy.remove(peer);
            if o.parent.as_ref() == Some(peer) {
                o.parent = None;
            }
        }
    }

    /// `origin`'s messages now come to us from `parent`, and we stop pushing them to it (it has
    /// them). With `push_to_old`, we push them to the neighbor they came from before: the path
    /// through us may be its shorter one now — if not, its duplicate prunes us. So when a
    /// shorter path reaches a branch that hung from a long one, the whole branch turns round in
    /// one message.
    pub(super) fn reparent(&mut self, origin: &P, parent: &P, push_to_old: bool) {
        let Some(o) = self.origins.get_mut(origin) else { return };
        let old = o.parent.replace(parent.clone());
        if let Some(old) = old.filter(|old| push_to_old && old != parent) {
            o.tree.promote(&old);
        }
        o.tree.demote(parent);
    }

    /// `peer` joins `origin`'s tree if it has one, and the shared tree if `shared`.
    pub(super) fn promote(&mut self, origin: Option<&P>, shared: bool, peer: &P) {
        if shared {
            self.shared.promote(peer);
        }
        if let Some(o) = origin.and_then(|o| self.origins.get_mut(o)) {
            o.tree.promote(peer);
        }
    }

    /// `peer` leaves `origin`'s tree if it has one, and the shared tree if `shared`.
    pub(super) fn demote(&mut self, origin: Option<&P>, shared: bool, peer: &P) {
        if shared {
            self.shared.demote(peer);
        }
        if let Some(o) = origin.and_then(|o| self.origins.get_mut(o)) {
            o.tree.demote(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eager(trees: &mut Trees<u32>, origin: u32) -> BTreeSet<u32> {
        trees.get(&origin).map(|t| t.eager.clone()).unwrap_or_default()
    }

    #[test]
    fn a_sender_tree_starts_as_the_shared_one_and_then_goes_its_own_way() {
        let mut trees = Trees::new(4);
        trees.neighbor_up(1);
        trees.neighbor_up(2);
        trees.neighbor_up(3);
        // A duplicate from 3: out of the shared tree.
        trees.demote(None, true, &3);
        // 9's first message came from 1: its tree is the shared one, less the parent.
        trees.create(&9, Some(&1));
        assert_eq!(eager(&mut trees, 9), BTreeSet::from([2]));
        // A prune for 9's tree leaves the shared one alone.
        trees.demote(Some(&9), false, &2);
        assert!(eager(&mut trees, 9).is_empty());
        assert_eq!(trees.shared().eager, BTreeSet::from([1, 2]));
        // A new parent: we push to the old one, not to the new.
        trees.reparent(&9, &3, true);
        assert_eq!(eager(&mut trees, 9), BTreeSet::from([1]));
        assert!(trees.links().is_superset(&BTreeSet::from([1, 2, 3])));
    }

    #[test]
    fn neighbors_come_and_go_in_every_tree() {
        let mut trees = Trees::new(4);
        trees.neighbor_up(1);
        trees.create(&9, Some(&1));
        trees.neighbor_up(2);
        assert_eq!(eager(&mut trees, 9), BTreeSet::from([2]));
        trees.neighbor_down(&1);
        assert!(!trees.shared().contains(&1));
        assert!(!trees.links().contains(&1), "1 is nobody's parent any more");
        // Promoting a peer that is not a neighbor does not make it one.
        trees.promote(Some(&9), true, &5);
        assert!(!trees.get(&9).is_some_and(|t| t.contains(&5)));
    }

    #[test]
    fn the_least_recently_used_sender_loses_its_tree() {
        let mut trees = Trees::new(2);
        trees.neighbor_up(1);
        trees.create(&10, None);
        trees.create(&11, None);
        trees.demote(Some(&10), false, &1);
        let _ = trees.get(&10);
        trees.create(&12, None);
        assert_eq!(trees.origin_count(), 2);
        // 11 was used least recently: it went; 10 kept its own shape.
        assert!(!trees.has(&11) && trees.has(&12));
        assert!(eager(&mut trees, 10).is_empty());
    }

    #[test]
    fn capacity_zero_is_the_shared_tree_alone() {
        let mut trees = Trees::new(0);
        trees.neighbor_up(1);
        trees.create(&9, None);
        assert!(!trees.has(&9));
        assert_eq!(trees.origin_count(), 0);
    }
}
