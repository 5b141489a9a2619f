//! What HyParView peers say to each other, and what the membership asks of its driver.

use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// How much a neighbor request insists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Priority {
    /// The sender has fewer than `min_active` active peers (or it is a joiner's contact): taken
    /// even by a full view, within the eviction budget.
    High,
    /// Taken only if the receiver has room.
    Low,
}

/// What HyParView peers say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P> {
    /// "Take me in" (to the contact we join through).
    Join,
    /// A joiner walking the overlay.
    ForwardJoin {
        /// Who joins.
        peer: P,
        /// Hops left.
        ttl: u16,
    },
    /// "Make me an active peer."
    Neighbor(Priority),
    /// The answer to [`Message::Neighbor`].
    NeighborReply {
        /// Taken or not.
        accepted: bool,
    },
    /// "You are out of my active view"; `alive`: keep me as a passive peer.
    Disconnect {
        /// The sender stays in the overlay.
        alive: bool,
    },
    /// A sample of the origin's views, walking to a random peer.
    Shuffle {
        /// Who asked.
        origin: P,
        /// The sample.
        peers: Vec<P>,
        /// Hops left.
        ttl: u16,
    },
    /// A sample of the answering peer's passive view, back to the origin.
    ShuffleReply {
        /// The sample.
        peers: Vec<P>,
    },
}

/// A timer the driver arms and hands back through [`HyParView::timer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer<P> {
    /// Time to shuffle.
    Shuffle,
    /// A neighbor request to this peer went unanswered.
    Neighbor(P),
    /// Time to ask again peers passed over since the view fell short.
    Retry,
}

/// What the membership asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<P> {
    /// Send `message` to `peer` (opening a link first if there is none).
    Send(P, Message<P>),
    /// `peer` entered the active view: keep a link with it.
    NeighborUp(P),
    /// `peer` left the active view: its link may go (after the messages sent before this).
    NeighborDown(P),
    /// Call [`HyParView::timer`] with this timer at `at`.
    Schedule(Instant, Timer<P>),
    /// Too few active peers and nobody left to ask: join again through a contact the driver
    /// knows (a bootstrap server, a configured peer, the LAN). This is also what pulls a small
    /// island that formed while many nodes joined at once back into the overlay.
    Isolated,
}
