//! The mesh as this node sees it: its own links, plus whom each neighbour last said it is linked
//! to. Neighbours' lists are their word (unverified, and as fresh as the last peer exchange),
//! which is enough for a map; nothing is decided from them here.

use super::Node;
use crate::identity::PeerId;
use crate::interface::LinkKind;
use std::collections::BTreeMap;

/// Nodes and links for drawing the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeshMap {
    /// Every node on the map (this one first) with its name.
    pub nodes: Vec<(PeerId, String)>,
    /// Links, each once: `(a, b, kind)`; `kind` is known only for this node's own links.
    pub links: Vec<(PeerId, PeerId, Option<LinkKind>)>,
}

impl Node {
    /// The mesh map: this node, its neighbours, and the neighbours' reported links.
    pub fn mesh_map(&self) -> MeshMap {
        let mut names: BTreeMap<PeerId, String> = BTreeMap::new();
        let mut edges: BTreeMap<(PeerId, PeerId), Option<LinkKind>> = BTreeMap::new();
        let ordered = |a: PeerId, b: PeerId| if a < b { (a, b) } else { (b, a) };
        for l in self.links.values() {
            let Some((peer, name)) = l.established() else { continue };
            names.insert(peer, name.to_owned());
            edges.insert(ordered(self.me, peer), Some(l.kind));
        }
        for l in self.links.values() {
            let Some((peer, _)) = l.established() else { continue };
            for (other, name) in &l.reported {
                if *other == self.me {
                    continue;
                }
                names.entry(*other).or_insert_with(|| name.clone());
                edges.entry(ordered(peer, *other)).or_insert(None);
            }
        }
        let mut nodes = vec![(self.me, self.config.name.clone())];
        nodes.extend(names.into_iter().filter(|(p, _)| *p != self.me));
        MeshMap { nodes, links: edges.into_iter().map(|((a, b), kind)| (a, b, kind)).collect() }
    }
}
