//! The message types. Every type derives serde; limits on peer-controlled sizes are checked by
//! [`Message::validate`] right after decoding, before any state changes.

use crate::identity::{PeerId, Signature};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Longest display name a node may use, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest mesh id, in bytes.
pub const MAX_MESH_ID_LEN: usize = 64;
/// Longest chat or direct text, in bytes.
pub const MAX_TEXT_LEN: usize = 16 * 1024;
/// Most addresses one peer entry may carry.
pub const MAX_ADDRS: usize = 8;
/// Most peers in one peer-exchange message.
pub const MAX_PEX_ENTRIES: usize = 64;
/// Largest data chunk (DESIGN: 256 KiB, so chunks also cross browser data channels).
pub const MAX_CHUNK_SIZE: u32 = 256 * 1024;
/// Most chunk hashes in one [`Message::Hashes`] page (512 KiB of hashes).
pub const HASHES_PER_PAGE: u32 = 16 * 1024;
/// Most chunk indices in one [`Message::Want`].
pub const MAX_WANT: usize = 64;
/// Largest file offered (64 GiB).
pub const MAX_FILE_SIZE: u64 = 64 << 30;
/// Most chunks in one file: 64 GiB at 256 KiB. Bounds the hash list (8 MiB) and the chunk map a
/// sender can make a receiver hold, whatever chunk size it picks.
pub const MAX_CHUNKS: u64 = MAX_FILE_SIZE / MAX_CHUNK_SIZE as u64;
/// Largest broadcast payload the overlay carries (a signed chat message and its envelope).
pub const MAX_GOSSIP_LEN: usize = MAX_TEXT_LEN + 1024;
/// The overlay's messages as they travel between nodes.
pub type OverlayMessage = crate::overlay::Message<PeerId, crate::overlay::record::SignedRecord>;
/// Longest file name in an offer, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// A 16-byte message id, random per message; the key of the broadcast seen-cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId(pub [u8; 16]);

impl core::fmt::Display for MsgId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A 16-byte transfer id chosen by the sender of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferId(pub [u8; 16]);

impl core::fmt::Display for TransferId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for TransferId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.is_ascii() {
            return Err(());
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(TransferId(out))
    }
}

/// What a node can do, as bits, so a newer peer's extra bits are harmless.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Serves file chunks.
    pub const FILES: u64 = 1;
    /// Relays broadcasts (every full node does).
    pub const RELAY_BROADCAST: u64 = 2;
    /// Accepts TCP links (a native node with a listener).
    pub const TCP: u64 = 4;
    /// Accepts and opens WebRTC data-channel links (browsers, and native nodes built with WebRTC).
    pub const WEBRTC: u64 = 8;

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u64) -> bool {
        self.0 & bits == bits
    }
}

/// The first message on every link, both ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`super::PROTOCOL_VERSION`] of the sender.
    pub protocol_version: u16,
    /// Must equal the id the transport authenticated; checked, never trusted alone.
    pub peer_id: PeerId,
    /// Display name, for UIs.
    pub name: String,
    /// Meshes are separate: a peer from another mesh is refused.
    pub mesh_id: String,
    /// The sender's TCP listening port, so the receiver can tell others where to dial it.
    pub listen_port: Option<u16>,
    /// Addresses the sender believes it listens on (hints for peer exchange).
    pub listen_addrs: Vec<SocketAddr>,
    /// What the sender supports.
    pub capabilities: Capabilities,
}

/// A peer as described by a third party: a hint to verify by dialing, never a fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Whom to expect at the addresses (the transport checks it).
    pub peer_id: PeerId,
    /// Display name as the describer knows it.
    pub name: String,
    /// Where the describer saw it listening (empty for a browser).
    pub addrs: Vec<SocketAddr>,
    /// What the peer said it supports in its `Hello`, so a browser is linked over WebRTC.
    pub capabilities: Capabilities,
}

/// The signed part of a broadcast chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatBody {
    /// Unique per message; the dedup key.
    pub msg_id: MsgId,
    /// Who wrote it (the signer).
    pub author: PeerId,
    /// The author's display name when sent.
    pub author_name: String,
    /// The text.
    pub text: String,
    /// When it was written, by the author's clock.
    pub unix_ms: u64,
}

/// The signed part of a direct message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectBody {
    /// Unique per message; the dedup key when routed.
    pub msg_id: MsgId,
    /// Who wrote it (the signer).
    pub author: PeerId,
    /// The only node that delivers it.
    pub to: PeerId,
    /// The text.
    pub text: String,
    /// When it was written, by the author's clock.
    pub unix_ms: u64,
}

/// A signed body with its relay hop count (not signed: relays decrement it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<B> {
    /// The content, as signed by its author.
    pub body: B,
    /// The author's signature over the postcard encoding of `body` under its domain tag.
    pub signature: Signature,
    /// Remaining relays; a message arriving with 0 is delivered but not forwarded.
    pub hops: u8,
}

/// A file offered by its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The sender's id for this transfer.
    pub transfer_id: TransferId,
    /// File name as the sender has it; the receiver reduces it to one safe path component.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Bytes per chunk (the last may be shorter).
    pub chunk_size: u32,
    /// BLAKE3 of the whole file: the name of the content, and the final check before rename.
    pub file_hash: [u8; 32],
    /// BLAKE3 of the concatenated per-chunk hashes: lets the receiver verify the hash list.
    pub hash_list_hash: [u8; 32],
}

/// Every message on a link. New kinds are appended, never inserted, so kind numbers stay stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// First message on a link.
    Hello(Hello),
    /// Liveness probe.
    Ping {
        /// Echoed in the pong, to measure round-trip time.
        nonce: u64,
    },
    /// Liveness answer.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Asks the peer for its peers.
    PeerRequest,
    /// Peers the sender is linked to.
    PeerExchange {
        /// At most [`MAX_PEX_ENTRIES`].
        peers: Vec<PeerInfo>,
    },
    /// A broadcast chat message, flooded with dedup.
    Chat(Signed<ChatBody>),
    /// A message for one node, routed if there is no direct link.
    Direct(Signed<DirectBody>),
    /// A file offer.
    Offer(Offer),
    /// Asks for a page of chunk hashes.
    HashesRequest {
        /// Which transfer.
        transfer_id: TransferId,
        /// First chunk index of the page.
        start: u32,
    },
    /// A page of chunk hashes.
    Hashes {
        /// Which transfer.
        transfer_id: TransferId,
        /// First chunk index of the page.
        start: u32,
        /// Concatenated 32-byte hashes, at most [`HASHES_PER_PAGE`].
        #[serde(with = "serde_bytes")]
        hashes: Vec<u8>,
    },
    /// Asks for chunks; each index is one credit the receiver grants the sender.
    Want {
        /// Which transfer.
        transfer_id: TransferId,
        /// Chunk indices, at most [`MAX_WANT`].
        chunks: Vec<u32>,
    },
    /// One chunk of file data.
    Chunk {
        /// Which transfer.
        transfer_id: TransferId,
        /// Chunk index.
        index: u32,
        /// The bytes, at most the offer's chunk size.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The receiver has the whole file, verified.
    TransferComplete {
        /// Which transfer.
        transfer_id: TransferId,
    },
    /// Either side gives up on a transfer.
    TransferCancel {
        /// Which transfer.
        transfer_id: TransferId,
        /// Human-readable why.
        reason: String,
    },
    /// The sender is closing this link on purpose (not a failure: no reconnect).
    Goodbye {
        /// Human-readable why.
        reason: String,
    },
    /// A signaling envelope on its way to `envelope.to`: mesh-routed signaling, so two nodes
    /// with no link and no server can still set one up.
    Signal {
        /// The envelope, signed by its sender and sealed to its recipient.
        envelope: crate::envelope::Envelope,
        /// Remaining relays (not signed: relays decrement it).
        hops: u8,
    },
    /// The overlay's traffic: membership, broadcast and DHT messages.
    Overlay {
        /// The message.
        message: OverlayMessage,
        /// How to reach the peers it names, as far as the sender knows (dial hints, like a peer
        /// exchange; at most [`MAX_PEX_ENTRIES`]).
        hints: Vec<PeerInfo>,
    },
}

impl Message {
    /// How many kinds this version knows; kinds at or past it are a newer version's.
    pub const KIND_COUNT: u32 = 17;

    /// Checks the peer-controlled sizes that the type system does not bound.
    pub fn validate(&self) -> Result<(), &'static str> {
        let ok = match self {
            Message::Hello(h) => {
                h.name.len() <= MAX_NAME_LEN && h.mesh_id.len() <= MAX_MESH_ID_LEN && h.listen_addrs.len() <= MAX_ADDRS
            }
            Message::PeerExchange { peers } => {
                peers.len() <= MAX_PEX_ENTRIES
                    && peers.iter().all(|p| p.name.len() <= MAX_NAME_LEN && p.addrs.len() <= MAX_ADDRS)
            }
            Message::Chat(c) => c.body.text.len() <= MAX_TEXT_LEN && c.body.author_name.len() <= MAX_NAME_LEN,
            Message::Direct(d) => d.body.text.len() <= MAX_TEXT_LEN,
            Message::Offer(o) => {
                o.name.len() <= MAX_FILE_NAME_LEN
                    && o.chunk_size > 0
                    && o.chunk_size <= MAX_CHUNK_SIZE
                    && o.size <= MAX_FILE_SIZE
                    && o.size.div_ceil(u64::from(o.chunk_size)) <= MAX_CHUNKS
            }
            Message::Hashes { hashes, .. } => hashes.len() % 32 == 0 && hashes.len() / 32 <= HASHES_PER_PAGE as usize,
            Message::Want { chunks, .. } => chunks.len() <= MAX_WANT,
            Message::Chunk { data, .. } => data.len() <= MAX_CHUNK_SIZE as usize,
            Message::TransferCancel { reason, .. } | Message::Goodbye { reason } => reason.len() <= 256,
            Message::Signal { envelope, .. } => envelope.sealed.len() <= crate::envelope::MAX_ENVELOPE_LEN,
            Message::Overlay { message, hints } => {
                message.within_bounds(MAX_GOSSIP_LEN)
                    && hints.len() <= MAX_PEX_ENTRIES
                    && hints.iter().all(|p| p.name.len() <= MAX_NAME_LEN && p.addrs.len() <= MAX_ADDRS)
            }
            Message::Ping { .. }
            | Message::Pong { .. }
            | Message::PeerRequest
            | Message::HashesRequest { .. }
            | Message::TransferComplete { .. } => true,
        };
        if ok {
            Ok(())
        } else {
            Err("a field exceeds its protocol limit")
        }
    }
}
