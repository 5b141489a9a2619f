//! What the application asks of the node, and why the node may refuse.

use super::FileHash;
use crate::identity::PeerId;
use crate::wire::TransferId;
use std::net::SocketAddr;

/// What the application asks of the node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// Dial an address, optionally expecting a given identity there. The address is remembered
    /// and redialed with backoff whenever its link drops.
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Whom to expect.
        expect: Option<PeerId>,
    },
    /// Announce now with a fresh start burst.
    Discover,
    /// Broadcast a chat message.
    Chat {
        /// Text.
        text: String,
    },
    /// Send a direct message.
    Direct {
        /// Recipient.
        to: PeerId,
        /// Text.
        text: String,
    },
    /// Offer a file the driver has hashed.
    OfferFile {
        /// Recipient.
        to: PeerId,
        /// File name to show.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Chunk size used for `chunk_hashes`.
        chunk_size: u32,
        /// BLAKE3 of the whole file.
        file: FileHash,
        /// BLAKE3 of each chunk.
        chunk_hashes: Vec<[u8; 32]>,
    },
    /// Accept an offer; `have` marks chunks already on disk from an earlier attempt.
    AcceptOffer {
        /// The sender.
        from: PeerId,
        /// The offer.
        transfer_id: TransferId,
        /// One flag per chunk, or empty for "nothing yet".
        have: Vec<bool>,
    },
    /// Decline an offer.
    DeclineOffer {
        /// The sender.
        from: PeerId,
        /// The offer.
        transfer_id: TransferId,
        /// Why.
        reason: String,
    },
    /// Close links with everyone, politely.
    Shutdown,
    /// Link to `peer` wherever it is, through NATs if need be: the two nodes describe their
    /// networks to each other over signaling and work down the strategy ladder
    /// ([`crate::nat::plan`]). Ends with [`Event::Connectivity`](super::Event::Connectivity).
    ConnectPeer {
        /// Whom.
        peer: PeerId,
    },
    /// Keep a bootstrap server's answer for a name in the DHT, stored again while the server
    /// vouches for it, so the name resolves from the mesh while the server cannot be reached.
    /// The driver sends every answer it gets from a server.
    MirrorName {
        /// The answer, as the server signed it.
        answer: Box<crate::names::NameAnswer>,
    },
    /// Stop keeping `server`'s answer for `name` in the DHT (the server says nobody holds it
    /// now). Copies other peers stored expire when the server said they would.
    ForgetName {
        /// The server.
        server: PeerId,
        /// The name.
        name: crate::names::Name,
    },
    /// Look a name up in the DHT, taking only `server`'s word for it. Ends with
    /// [`Event::NameResolved`](super::Event::NameResolved).
    LookupName {
        /// The server the caller trusts (its pinned key).
        server: PeerId,
        /// The name.
        name: crate::names::Name,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The text is longer than the protocol allows.
    #[error("text too long: {len} bytes, at most {max}")]
    TextTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No link or route is known to that peer right now.
    #[error("peer {0} is not connected")]
    NotConnected(String),
    /// There is no such pending offer.
    #[error("no pending offer {0}")]
    NoSuchOffer(String),
    /// The file description is inconsistent (hash count, chunk size, name).
    #[error("invalid file description: {0}")]
    InvalidFile(&'static str),
    /// Sending to oneself.
    #[error("that is this node's own id")]
    SelfTarget,
    /// A bound on work in progress is reached; try again later.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// A name answer that cannot go into the DHT: it does not check out.
    #[error("the name answer cannot be mirrored: {0}")]
    Unmirrorable(#[from] crate::overlay::record::RecordError),
    /// A name answer the server no longer vouches for, or vouches for further ahead than the
    /// DHT keeps a name ([`MAX_NAME_TTL`](crate::overlay::record::MAX_NAME_TTL)).
    #[error("the name answer has expired, or is vouched for more than 8 days ahead (check this machine's clock)")]
    AnswerOutOfTime,
}
