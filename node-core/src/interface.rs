//! The vocabulary between a driver and the [`Node`](crate::Node): ids, inputs, outputs, events and
//! commands. Everything is plain data (`Debug + Clone`) so a run can be logged and replayed.

mod command;

pub use command::{Command, CommandError};

use crate::envelope::RtcSignal;
use crate::identity::PeerId;
use crate::time::Instant;
use crate::wire::{MsgId, TransferId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A link as the core knows it. Outbound links get their id from the core (in
/// [`Output::OpenLink`]); inbound ones from [`Node::allocate_link_id`](crate::Node::allocate_link_id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// Id of a command, returned by [`Node::command`](crate::Node::command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(pub u64);

/// BLAKE3 hash of a whole file: the name of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileHash(pub [u8; 32]);

impl core::fmt::Display for FileHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Who opened a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// The transport under a link. The core treats them alike; UIs show the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// TCP with Noise XX.
    Tcp,
    /// QUIC after a UDP punch.
    Quic,
    /// A WebRTC data channel.
    WebRtc,
    /// Through the bootstrap server's relay.
    Relay,
}

impl LinkKind {
    /// Lowercase name for UIs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Tcp => "tcp",
            LinkKind::Quic => "quic",
            LinkKind::WebRtc => "webrtc",
            LinkKind::Relay => "relay",
        }
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramDest {
    /// Every LAN broadcast and multicast destination the driver has, on this discovery port.
    LanBroadcast {
        /// The designated pool port.
        port: u16,
    },
    /// One address.
    Unicast(SocketAddr),
}

/// Something that happened outside the core.
#[derive(Debug, Clone)]
pub enum Input {
    /// A UDP datagram arrived (discovery traffic).
    Datagram {
        /// Its source: the only address a discovery reply or dial may go to.
        from: SocketAddr,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A link finished its transport handshake; `peer` is what the transport authenticated.
    LinkUp {
        /// The link.
        link: LinkId,
        /// The authenticated remote identity.
        peer: PeerId,
        /// Who dialed.
        direction: Direction,
        /// The remote socket address.
        remote_addr: SocketAddr,
        /// The transport.
        kind: LinkKind,
    },
    /// An [`Output::OpenLink`] did not come up.
    LinkFailed {
        /// The link.
        link: LinkId,
        /// Why, for logs and the doctor.
        reason: String,
    },
    /// An up link closed without the core asking.
    LinkClosed {
        /// The link.
        link: LinkId,
        /// Why.
        reason: String,
    },
    /// One whole frame arrived on a link.
    Frame {
        /// The link.
        link: LinkId,
        /// The frame payload (without the length prefix).
        data: Vec<u8>,
    },
    /// The answer to an [`Output::ReadChunk`].
    ChunkRead {
        /// The content it was read from.
        file: FileHash,
        /// Chunk index.
        index: u32,
        /// The bytes, or why they could not be read.
        result: Result<Vec<u8>, String>,
    },
    /// The answer to an [`Output::WriteChunk`]: the chunk is written.
    ChunkWritten {
        /// The content.
        file: FileHash,
        /// Chunk index.
        index: u32,
    },
    /// The answer to an [`Output::FinalizeDownload`].
    DownloadFinalized {
        /// The content.
        file: FileHash,
        /// The final path, or why finalizing failed (the whole-file hash did not match, the disk...).
        result: Result<String, String>,
    },
    /// Writing a chunk of a download failed; the download fails.
    StorageFailed {
        /// The content.
        file: FileHash,
        /// Why.
        reason: String,
    },
    /// The driver's signaling channels (a server websocket, a native node's `/v1/signal`) can
    /// now reach `peer` (`online`), or no longer can. Such peers get envelopes through
    /// [`Output::SendSignal`], and a browser links to them over WebRTC.
    SignalPeer {
        /// Who.
        peer: PeerId,
        /// Reachable or not.
        online: bool,
    },
    /// The driver asked the LAN's router for a port mapping to our TCP listener (UPnP IGD):
    /// the public address it got, or `None` when there is no such router or it refused. Link
    /// attempts wait a few seconds for this when [`crate::Config::port_mapping`] is set.
    PortMapped {
        /// The mapped public address.
        tcp: Option<std::net::SocketAddr>,
    },
    /// The driver's broker channel (MQTT) is connected (`up`), or no longer is. While it is, an
    /// envelope for any PeerId goes out through [`Output::SendSignal`], even to a peer the node
    /// has never seen (a broker delivers by topic, with no presence to consult).
    SignalBroker {
        /// Connected or not.
        up: bool,
    },
    /// An envelope arrived over a signaling channel (not a link). Envelopes for other nodes are
    /// verified and routed on, which is how a native node bridges its browsers to the mesh.
    Signal {
        /// The encoded [`crate::envelope::Envelope`].
        data: Vec<u8>,
    },
    /// The driver's WebRTC stack produced a local description or candidate for an
    /// [`Output::OpenRtc`] link; the node seals it to the peer and sends it.
    RtcLocal {
        /// The link.
        link: LinkId,
        /// The offer, answer or candidate.
        signal: RtcSignal,
    },
    /// A socket for [`Output::PreparePunch`] is bound: its local port and, for UDP, the public
    /// address a STUN binding from it showed (`None` for TCP, or when STUN did not answer).
    PunchPrepared {
        /// The punch's link.
        link: LinkId,
        /// The socket's local port.
        local_port: u16,
        /// Its public address as the STUN server saw it.
        mapped: Option<SocketAddr>,
    },
    /// The driver's NAT probe ([`crate::nat::probe`]) finished: what stands between this node
    /// and the internet. Kept for connection planning and reported as [`Event::NatDetected`].
    NatDetected {
        /// The probe's findings.
        report: crate::nat::NatReport,
    },
}

/// The transport of a hole punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PunchProto {
    /// TCP simultaneous open.
    Tcp,
    /// UDP probes, then QUIC.
    Udp,
}

/// Something the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Bind a fresh socket for punching a hole to `peer` (for UDP, also ask the STUN server where
    /// it shows); answer [`Input::PunchPrepared`], or [`Input::LinkFailed`].
    PreparePunch {
        /// The punch's link.
        link: LinkId,
        /// Who is at the other end.
        peer: PeerId,
        /// TCP or UDP.
        proto: PunchProto,
    },
    /// From the socket of [`Output::PreparePunch`], at `at` and for a few seconds, open the path
    /// to `remote`: repeated TCP connects (simultaneous open) or UDP probes then QUIC. Then the
    /// authenticated handshake (the lower PeerId initiates) expecting exactly `peer`; answer
    /// [`Input::LinkUp`] or [`Input::LinkFailed`].
    Punch {
        /// The punch's link.
        link: LinkId,
        /// Who must be at the other end.
        peer: PeerId,
        /// TCP or UDP.
        proto: PunchProto,
        /// The peer's predicted public address.
        remote: SocketAddr,
        /// When both ends start.
        at: Instant,
    },
    /// Open a link to `peer` through the bootstrap server's relay (`/v1/relay`): ask for the peer
    /// there, then run the usual authenticated handshake over the relayed stream (the lower
    /// PeerId initiates) expecting exactly `peer`. Answer with [`Input::LinkUp`] (kind
    /// [`LinkKind::Relay`]) or [`Input::LinkFailed`].
    OpenRelay {
        /// The id the core chose.
        link: LinkId,
        /// Who must be at the other end.
        peer: PeerId,
    },
    /// Send a datagram.
    Transmit {
        /// Where.
        dest: DatagramDest,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Dial `addr`; report [`Input::LinkUp`] or [`Input::LinkFailed`] for `link`.
    OpenLink {
        /// The id the core chose.
        link: LinkId,
        /// Where to dial.
        addr: SocketAddr,
        /// The identity the transport must authenticate, when known; anyone else is refused.
        expect: Option<PeerId>,
        /// The transport to use.
        kind: LinkKind,
    },
    /// Send one frame (the driver adds the length prefix).
    SendFrame {
        /// The link.
        link: LinkId,
        /// The encoded message.
        data: Vec<u8>,
    },
    /// Close a link after flushing frames already queued on it. No `LinkClosed` is expected back.
    CloseLink {
        /// The link.
        link: LinkId,
        /// Why.
        reason: String,
    },
    /// Read a chunk of a file this node offered; answer with [`Input::ChunkRead`].
    ReadChunk {
        /// The content.
        file: FileHash,
        /// Chunk index.
        index: u32,
        /// Byte offset.
        offset: u64,
        /// Byte count.
        len: u32,
    },
    /// Write verified bytes of a download at `offset`, record that chunk `index` is on disk, and
    /// answer with [`Input::ChunkWritten`] (the chunk counts against the window until then).
    WriteChunk {
        /// The content.
        file: FileHash,
        /// Chunk index.
        index: u32,
        /// Byte offset.
        offset: u64,
        /// The verified bytes.
        data: Vec<u8>,
    },
    /// Every chunk is verified and written: check the whole-file hash, rename without overwriting,
    /// and answer with [`Input::DownloadFinalized`].
    FinalizeDownload {
        /// The content (also the expected whole-file hash).
        file: FileHash,
        /// The sender's name for the file (unsanitized; the driver makes it safe).
        name: String,
        /// Expected size.
        size: u64,
    },
    /// Something for the application.
    Event(Event),
    /// Deliver an envelope over a signaling channel that reaches `to` (see [`Input::SignalPeer`]).
    /// Best effort: a lost envelope only makes a link attempt time out.
    SendSignal {
        /// The recipient.
        to: PeerId,
        /// The encoded envelope.
        data: Vec<u8>,
    },
    /// Start a WebRTC link to `peer`: without `offer`, create a data channel and an offer; with
    /// one, answer it. Local descriptions and candidates come back as [`Input::RtcLocal`]; the
    /// data channel opening is [`Input::LinkUp`] (kind WebRTC, `peer` as authenticated by the
    /// signed descriptions), and failure [`Input::LinkFailed`].
    OpenRtc {
        /// The id the core chose.
        link: LinkId,
        /// The peer, whose signed description carried the DTLS fingerprint.
        peer: PeerId,
        /// The remote offer to answer, if we are the answerer.
        offer: Option<String>,
    },
    /// Apply the peer's answer or candidate to an [`Output::OpenRtc`] link.
    RtcRemote {
        /// The link.
        link: LinkId,
        /// The answer or candidate.
        signal: RtcSignal,
    },
}

/// Something the application may want to show.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A valid announcement from a node we did not know.
    PeerDiscovered {
        /// Who.
        peer: PeerId,
        /// Its name.
        name: String,
        /// The address we will dial.
        addr: SocketAddr,
    },
    /// A link finished `Hello` and is in use.
    PeerConnected {
        /// Who.
        peer: PeerId,
        /// Its name.
        name: String,
        /// The transport.
        kind: LinkKind,
        /// Its address.
        addr: SocketAddr,
        /// Who dialed.
        direction: Direction,
    },
    /// The last link to a peer went away.
    PeerDisconnected {
        /// Who.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A broadcast chat message, delivered once.
    Chat {
        /// Author.
        from: PeerId,
        /// Author's name.
        from_name: String,
        /// Text.
        text: String,
        /// Message id.
        msg_id: MsgId,
    },
    /// A direct message for this node.
    Direct {
        /// Author.
        from: PeerId,
        /// Text.
        text: String,
        /// Message id.
        msg_id: MsgId,
    },
    /// An offer of a file; answer with [`Command::AcceptOffer`] or [`Command::DeclineOffer`].
    TransferOffered {
        /// The sender's transfer id.
        transfer_id: TransferId,
        /// The sender.
        from: PeerId,
        /// The sender's file name (unsanitized).
        name: String,
        /// Size in bytes.
        size: u64,
        /// Chunk size.
        chunk_size: u32,
        /// The whole-file hash.
        file: FileHash,
    },
    /// An offer this node made is queued.
    TransferStarted {
        /// The command that asked for it.
        command: CommandId,
        /// The new transfer's id.
        transfer_id: TransferId,
        /// The receiver.
        to: PeerId,
    },
    /// Receiving progress.
    TransferProgress {
        /// The transfer.
        transfer_id: TransferId,
        /// Bytes verified (including what was on disk from before).
        done: u64,
        /// Total bytes.
        total: u64,
    },
    /// Sending progress: bytes this node has served for one of its offers since it started.
    TransferSent {
        /// The transfer.
        transfer_id: TransferId,
        /// The receiver.
        to: PeerId,
        /// Bytes sent by this process for this transfer.
        sent: u64,
        /// The file size.
        total: u64,
        /// Whether the receiver confirmed it has the whole file.
        complete: bool,
    },
    /// A download is verified and in place.
    TransferDone {
        /// The transfer.
        transfer_id: TransferId,
        /// The first sender.
        from: PeerId,
        /// Where it is.
        path: String,
        /// Size.
        size: u64,
        /// Whole-file hash.
        file: FileHash,
    },
    /// A transfer ended without the file.
    TransferFailed {
        /// The transfer.
        transfer_id: TransferId,
        /// Why.
        reason: String,
    },
    /// A peer refused or abandoned a link we were setting up with it (it is full, or linked
    /// already); shown to the user so a refusal is never silent.
    LinkRefused {
        /// Who.
        peer: PeerId,
        /// Its reason.
        reason: String,
    },
    /// A peer broke the protocol; the link was closed.
    PeerMisbehaved {
        /// Who.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
    /// A name lookup in the DHT ([`Command::LookupName`]) ended.
    NameResolved {
        /// The command that asked.
        command: CommandId,
        /// The server whose word was asked for.
        server: PeerId,
        /// The name.
        name: crate::names::Name,
        /// That server's answer for the name, checked against it; `None` if the mesh holds none.
        answer: Option<Box<crate::names::NameAnswer>>,
    },
    /// What the NAT probe found (see [`Input::NatDetected`]).
    NatDetected {
        /// The findings.
        report: crate::nat::NatReport,
    },
    /// An attempt to link to `peer` across networks ([`Command::ConnectPeer`], or one the peer
    /// started) ended: every strategy, tried or skipped, and what came of it.
    Connectivity {
        /// The other end.
        peer: PeerId,
        /// The report.
        report: crate::nat::report::ConnectReport,
    },
}
