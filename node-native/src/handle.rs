//! [`NodeHandle`]: the library API of a running node — commands in, events out.

use crate::bootstrap::{Bootstrap, BootstrapError};
use crate::files::{hash_file, HashedFile};
use node_core::names::{Name, NameAnswer, NameError};
use node_core::{Command, CommandError, CommandId, Event, PeerId, PeerSummary, Stats, TransferId};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Something a running node reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A protocol event from node-core.
    Core(Event),
    /// The bootstrap server accepted our announcement (first time, or after an outage).
    BootstrapConnected {
        /// The server.
        url: String,
        /// Its (pinned) key.
        server_key: Option<PeerId>,
        /// The address it sees us at.
        observed_ip: std::net::IpAddr,
        /// Live peers it listed in our mesh.
        peers: usize,
    },
    /// The router mapped a public port to our TCP listener (UPnP), or there is no mapping.
    PortMapped {
        /// The public address peers can dial.
        external: Option<std::net::SocketAddr>,
        /// Why there is none, when there is none.
        error: Option<String>,
    },
    /// The MQTT broker connected, or the connection failed or dropped (it is retried).
    Broker {
        /// The broker, without its password.
        url: String,
        /// Connected now.
        connected: bool,
        /// Why not, when not.
        error: Option<String>,
    },
    /// A driver-level problem the user should see.
    Error {
        /// Stable, machine-readable code.
        code: &'static str,
        /// What happened.
        message: String,
    },
}

/// What the driver dropped before the core saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Discovery datagrams dropped because the node was busy.
    pub dropped_datagrams: u64,
    /// Messages on our MQTT topic that were not envelopes for us.
    pub misaddressed_envelopes: u64,
    /// Envelopes from the broker dropped for coming too fast.
    pub throttled_envelopes: u64,
}

pub(crate) struct OfferRequest {
    pub path: PathBuf,
    pub hashed: HashedFile,
    pub name: String,
    pub to: PeerId,
    pub reply: oneshot::Sender<Result<TransferId, String>>,
}

pub(crate) enum ActorCommand {
    Core(Command, oneshot::Sender<Result<CommandId, CommandError>>),
    Offer(OfferRequest),
    Peers(oneshot::Sender<Vec<PeerSummary>>),
    Diagnose(PeerId, oneshot::Sender<node_core::Diagnosis>),
    /// A name lookup in the DHT: answered when the node reports it done.
    LookupName(PeerId, Name, oneshot::Sender<Result<Option<NameAnswer>, CommandError>>),
    Stats(oneshot::Sender<(Stats, DriverStats)>),
    Shutdown(oneshot::Sender<()>),
}

/// Why a request to the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The node refused the command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The offer was refused.
    #[error("offer failed: {0}")]
    Offer(String),
    /// Names and server lookups need a bootstrap server, and none is configured.
    #[error("no bootstrap server is configured (start with --bootstrap URL)")]
    NoBootstrap,
    /// The bootstrap server failed or refused.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// Not a valid name.
    #[error("'{0}' is not a valid name: {1}")]
    BadName(String, NameError),
    /// Nobody holds the name.
    #[error("nobody holds the name '{0}'")]
    NameNotFound(String),
    /// The bootstrap server cannot be reached, and no peer holds its answer for the name.
    #[error("{server_error}; and no peer in the mesh holds the server's answer for '{name}'")]
    NameUnavailable {
        /// The name.
        name: String,
        /// Why the server could not answer.
        server_error: Box<BootstrapError>,
    },
    /// The name's value is not a node's address.
    #[error("the name '{0}' does not point to a weft node")]
    NotANode(String),
}

/// A cloneable handle on a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) commands: mpsc::Sender<ActorCommand>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    /// The receiver created with the node, handed to the first subscriber so it sees every
    /// event since start (a later `subscribe` would miss what happened in between).
    pub(crate) first: std::sync::Arc<std::sync::Mutex<Option<broadcast::Receiver<NodeEvent>>>>,
    pub(crate) peer_id: PeerId,
    pub(crate) tcp_addr: SocketAddr,
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) listen_addrs: Vec<SocketAddr>,
    pub(crate) chunk_size: u32,
    pub(crate) bootstrap: Option<Arc<Bootstrap>>,
}

impl NodeHandle {
    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The TCP address the node accepts links on.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Where the page and `/v1/signal` are served, when they are (`NodeConfig::http`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Addresses other nodes can dial to reach this one (each non-loopback interface).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    /// A stream of everything the node reports from now on (the first subscriber: since start). A subscriber that falls more than
    /// 4096 events behind is told so (`RecvError::Lagged`) rather than slowing the node.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        let first = self.first.lock().ok().and_then(|mut f| f.take());
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Sends a core command and waits for the node to accept it.
    pub async fn command(&self, command: Command) -> Result<CommandId, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(ActorCommand::Core(command, tx)).await.map_err(|_| RequestError::Stopped)?;
        Ok(rx.await.map_err(|_| RequestError::Stopped)??)
    }

    /// Broadcasts a chat message to the mesh.
    pub async fn chat(&self, text: impl Into<String>) -> Result<CommandId, RequestError> {
        self.command(Command::Chat { text: text.into() }).await
    }

    /// Sends a direct message.
    pub async fn direct(&self, to: PeerId, text: impl Into<String>) -> Result<CommandId, RequestError> {
        self.command(Command::Direct { to, text: text.into() }).await
    }

    /// Dials an address (redialed with backoff if the link drops).
    pub async fn connect(&self, addr: SocketAddr) -> Result<CommandId, RequestError> {
        self.command(Command::Connect { addr, expect: None }).await
    }

    /// Announces on the LAN now.
    pub async fn discover(&self) -> Result<CommandId, RequestError> {
        self.command(Command::Discover).await
    }

    /// Peers with an established link.
    pub async fn peers(&self) -> Result<Vec<PeerSummary>, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(ActorCommand::Peers(tx)).await.map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)
    }

    /// What this node knows of its connectivity to `peer` ("doctor"): its link, an attempt
    /// under way, the last attempt's report.
    pub async fn diagnose(&self, peer: PeerId) -> Result<node_core::Diagnosis, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(ActorCommand::Diagnose(peer, tx)).await.map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)
    }

    /// Protocol drop counters, and discovery datagrams dropped while the node was busy.
    pub async fn stats(&self) -> Result<(Stats, DriverStats), RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(ActorCommand::Stats(tx)).await.map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)
    }

    /// Hashes `path` (on a blocking thread) and offers it to `to`. Returns the transfer id;
    /// progress and the result arrive as events.
    pub async fn send_file(&self, path: &Path, to: PeerId) -> Result<TransferId, RequestError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        self.send_file_as(path, &name, to).await
    }

    /// Like [`send_file`](Self::send_file), showing the receiver `name` instead of the file's own
    /// name (the receiver still reduces it to one safe path component).
    pub async fn send_file_as(&self, path: &Path, name: &str, to: PeerId) -> Result<TransferId, RequestError> {
        let owned = path.to_owned();
        let chunk_size = self.chunk_size;
        let hashed = tokio::task::spawn_blocking(move || hash_file(&owned, chunk_size))
            .await
            .map_err(|_| RequestError::Stopped)?
            .map_err(|source| RequestError::File { path: path.display().to_string(), source })?;
        let (tx, rx) = oneshot::channel();
        let req = OfferRequest { path: path.to_owned(), hashed, name: name.to_owned(), to, reply: tx };
        self.commands.send(ActorCommand::Offer(req)).await.map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)?.map_err(RequestError::Offer)
    }

    pub(crate) fn bootstrap(&self) -> Result<&Bootstrap, RequestError> {
        self.bootstrap.as_deref().ok_or(RequestError::NoBootstrap)
    }

    /// Says goodbye to every peer, saves download state, and stops the node.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(ActorCommand::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
