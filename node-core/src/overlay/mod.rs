//! The overlay for meshes past the full-mesh cap (issue 6, in progress): HyParView membership
//! ([`hyparview`]) first; PlumTree broadcast and a Kademlia table follow. Sans-IO and generic
//! over the peer id, so the simulator drives thousands of them.

pub mod hyparview;
pub mod kademlia;
pub mod plumtree;
