//! The actor: one task that owns the [`Node`], feeds it everything that happens, and carries out
//! what it decides. Socket and file tasks talk to it only through bounded channels.

use crate::clock::Clock;
use crate::files::{read_chunk, PartFile};
use crate::handle::{ActorCommand, NodeEvent, OfferRequest};
use crate::link::LinkTasks;
use crate::punch;
use crate::relay;
use crate::rtc::{self, RtcAttempt, RtcSettings, RtcUp};
use crate::signal_router::SignalRouter;
use crate::stream_link::{self, NewLink};
use crate::tcp::{self, Keys};
use crate::udp::Discovery;
use node_core::names::NameAnswer;
use node_core::{
    Command, CommandError, CommandId, Event, FileHash, Input, LinkId, LinkKind, Node, Output, PeerId, PunchProto,
    TransferId,
};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// What socket and file tasks send the actor.
pub enum ToActor {
    /// Something for the core.
    Input(Input),
    /// An accepted connection finished its handshake.
    Inbound(NewLink),
    /// A dial finished its handshake.
    Outbound(LinkId, NewLink),
    /// A WebRTC data channel opened.
    RtcUp(RtcUp),
    /// The local API asks for a peer's connectivity report.
    Diagnose(PeerId, oneshot::Sender<node_core::Diagnosis>),
    /// A UDP punch socket was bound and its public address asked for (`Output::PreparePunch`).
    PunchSocket {
        /// The punch.
        link: LinkId,
        /// The socket and where STUN saw it, or why there is none.
        result: std::io::Result<(tokio::net::UdpSocket, Option<std::net::SocketAddr>)>,
    },
    /// A download's `.part` file was opened (or not) for an offer.
    Opened {
        /// The content.
        file: FileHash,
        /// The offer's sender.
        from: PeerId,
        /// The offer.
        transfer_id: TransferId,
        /// The file and the chunk map to resume from.
        result: std::io::Result<(PartFile, Vec<bool>)>,
    },
}

/// Capacity of the channel into the actor. Link readers wait when it is full (TCP back-pressure);
/// discovery datagrams are dropped and counted instead.
pub const INBOX: usize = 1024;
/// How often a download's chunk map is saved.
const STATE_SAVE_INTERVAL: Duration = Duration::from_millis(100);

/// A download's writer thread, as the actor holds it.
pub(crate) struct DownloadWriter {
    /// Chunks to write, then `Finalize`.
    jobs: mpsc::Sender<WriteJob>,
    /// The blocking task, awaited at shutdown so chunk maps are saved.
    task: JoinHandle<()>,
    /// The transfer whose end (done or failed) retires it.
    transfer_id: TransferId,
}

pub(crate) enum WriteJob {
    Chunk { index: u32, offset: u64, data: Vec<u8> },
    Finalize,
}

pub(crate) struct Actor {
    pub node: Node,
    pub clock: Clock,
    pub keys: Keys,
    pub frame_cap: usize,
    pub downloads_dir: PathBuf,
    pub auto_accept: bool,
    pub to_actor: mpsc::Sender<ToActor>,
    pub discovery: Option<Discovery>,
    pub events: broadcast::Sender<NodeEvent>,
    pub links: HashMap<LinkId, LinkTasks>,
    /// WebRTC links still negotiating.
    pub rtc_attempts: HashMap<LinkId, RtcAttempt>,
    pub rtc: Arc<RtcSettings>,
    /// Signaling channels outside the mesh (our `/v1/signal`, the bootstrap server's).
    pub router: Arc<SignalRouter>,
    /// Open files we offer, with how many unfinished offers use each (closed at zero).
    pub served: HashMap<FileHash, (Arc<File>, usize)>,
    /// Which file each of our unfinished offers serves.
    pub offers: HashMap<TransferId, FileHash>,
    pub downloads: HashMap<FileHash, DownloadWriter>,
    /// Downloads whose file is being opened, with further offers of the same content waiting.
    pub opening: HashMap<FileHash, Vec<(PeerId, TransferId)>>,
    pub pending_offers: HashMap<CommandId, (FileHash, oneshot::Sender<Result<TransferId, String>>)>,
    /// Name lookups in the DHT, answered by [`Event::NameResolved`] (node-core bounds how many
    /// run, and ends each).
    pub pending_names: HashMap<CommandId, oneshot::Sender<Result<Option<NameAnswer>, CommandError>>>,
    /// The bootstrap server and mesh to relay through, if there is a server.
    pub relay: Option<(Arc<crate::bootstrap::Bootstrap>, String)>,
    /// The address punch sockets bind to (the listen address).
    pub punch_ip: std::net::IpAddr,
    /// The STUN responder UDP punch sockets ask where they show, once the NAT probe found it.
    pub punch_stun: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    /// Sockets held for punches being prepared.
    pub punches: HashMap<LinkId, punch::Held>,
}

impl Actor {
    /// Runs until shutdown: commands first (local work before remote work), then inputs, then the timer.
    pub async fn run(mut self, mut commands: mpsc::Receiver<ActorCommand>, mut inbox: mpsc::Receiver<ToActor>) {
        loop {
            let deadline = self.node.poll_timeout().map(|t| self.clock.deadline(t));
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(ActorCommand::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.handle_command(cmd),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(msg) = inbox.recv() => self.handle_inbox(msg),
                () = sleep => {
                    let now = self.clock.now();
                    self.node.handle_timeout(now);
                }
            }
            self.drain();
        }
    }

    fn handle_command(&mut self, cmd: ActorCommand) {
        let now = self.clock.now();
        match cmd {
            ActorCommand::Core(c, reply) => {
                let r = self.node.command(now, c);
                let _ = reply.send(r);
            }
            ActorCommand::Offer(OfferRequest { path, hashed, name, to, reply }) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = self.served.entry(hashed.file) {
                    match File::open(&path) {
                        Ok(f) => {
                            slot.insert((Arc::new(f), 0));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(format!("cannot open {}: {e}", path.display())));
                            return;
                        }
                    }
                }
                let file = hashed.file;
                let cmd = Command::OfferFile {
                    to,
                    name,
                    size: hashed.size,
                    chunk_size: self.node.config().chunk_size,
                    file: hashed.file,
                    chunk_hashes: hashed.chunk_hashes,
                };
                match self.node.command(now, cmd) {
                    Ok(id) => {
                        self.pending_offers.insert(id, (file, reply));
                    }
                    Err(e) => {
                        if self.served.get(&file).is_some_and(|(_, users)| *users == 0) {
                            self.served.remove(&file);
                        }
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            ActorCommand::Peers(reply) => {
                let _ = reply.send(self.node.peers());
            }
            ActorCommand::LookupName(server, name, reply) => {
                match self.node.command(now, Command::LookupName { server, name }) {
                    Ok(id) => {
                        self.pending_names.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            ActorCommand::Diagnose(peer, reply) => {
                let _ = reply.send(self.node.diagnose(&peer));
            }
            ActorCommand::Stats(reply) => {
                use std::sync::atomic::Ordering::Relaxed;
                let driver = crate::handle::DriverStats {
                    dropped_datagrams: self.discovery.as_ref().map_or(0, |d| d.dropped.load(Relaxed)),
                    misaddressed_envelopes: self.router.misaddressed.load(Relaxed),
                    throttled_envelopes: self.router.throttled.load(Relaxed),
                };
                let _ = reply.send((self.node.stats().clone(), driver));
            }
            ActorCommand::Shutdown(_) => {}
        }
    }

    fn handle_inbox(&mut self, msg: ToActor) {
        let now = self.clock.now();
        match msg {
            ToActor::Input(input) => {
                if let Input::LinkClosed { link, .. } | Input::LinkFailed { link, .. } = &input {
                    // The reader stopped: drop the writer too, which closes the socket.
                    self.links.remove(link);
                    self.rtc_attempts.remove(link);
                }
                self.node.handle(now, input)
            }
            ToActor::Inbound(new) => {
                let link = self.node.allocate_link_id();
                self.adopt(link, new, node_core::Direction::Inbound);
            }
            // A dial, punch or relay the core gave up on meanwhile: dropping it closes it.
            ToActor::Outbound(link, _) if !self.node.has_link(link) => {}
            ToActor::Outbound(link, new) => self.adopt(link, new, node_core::Direction::Outbound),
            ToActor::RtcUp(RtcUp { link, peer, tasks }) => {
                // Gone from the attempts: the core gave up on it meanwhile, and dropping the
                // tasks closes the connection.
                let Some(attempt) = self.rtc_attempts.remove(&link) else { return };
                self.links.insert(link, tasks);
                let remote_addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
                let direction = attempt.direction;
                self.node.handle(now, Input::LinkUp { link, peer, direction, remote_addr, kind: LinkKind::WebRtc });
            }
            ToActor::Opened { file, from, transfer_id, result } => self.opened(file, from, transfer_id, result),
            ToActor::Diagnose(peer, reply) => {
                let _ = reply.send(self.node.diagnose(&peer));
            }
            // Not for a punch the core gave up on meanwhile: dropping the socket closes it.
            ToActor::PunchSocket { link, result: _ } if !self.node.has_link(link) => {}
            ToActor::PunchSocket { link, result } => match result.and_then(|(s, m)| Ok((s.local_addr()?.port(), s, m)))
            {
                Ok((local_port, socket, mapped)) => {
                    self.punches.insert(link, punch::Held::Udp(socket));
                    self.node.handle(now, Input::PunchPrepared { link, local_port, mapped });
                }
                Err(e) => self.node.handle(now, Input::LinkFailed { link, reason: format!("UDP punch socket: {e}") }),
            },
        }
    }

    fn adopt(&mut self, link: LinkId, new: NewLink, direction: node_core::Direction) {
        let now = self.clock.now();
        let (peer, remote, kind) = (new.peer, new.remote, new.kind());
        let tasks = stream_link::spawn_link(link, new, self.frame_cap, self.to_actor.clone());
        self.links.insert(link, tasks);
        self.node.handle(now, Input::LinkUp { link, peer, direction, remote_addr: remote, kind });
    }

    /// Carries out every pending output, in order.
    fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            self.carry_out(out);
        }
    }

    fn carry_out(&mut self, out: Output) {
        match out {
            Output::Transmit { dest, data } => {
                if let Some(d) = &self.discovery {
                    d.send(&dest, &data);
                }
            }
            Output::OpenLink { link, addr, expect, kind: _ } => {
                tcp::spawn_dial(link, addr, expect, self.keys.clone(), self.to_actor.clone());
            }
            Output::SendFrame { link, data } => {
                let Some(tasks) = self.links.get(&link) else { return };
                if !tasks.send(data) {
                    // The peer stopped reading (or the link died): never queue without bound.
                    self.links.remove(&link);
                    let now = self.clock.now();
                    let reason = "send queue full: peer not reading".to_owned();
                    self.node.handle(now, Input::LinkClosed { link, reason });
                }
            }
            Output::CloseLink { link, reason } => {
                tracing::debug!("closing link {link:?}: {reason}");
                self.links.remove(&link);
                self.rtc_attempts.remove(&link);
                self.punches.remove(&link);
            }
            Output::PreparePunch { link, peer: _, proto: PunchProto::Tcp } => {
                let now = self.clock.now();
                match punch::tcp::hold_port(self.punch_ip) {
                    Ok(held) => {
                        let local_port = held.local.port();
                        self.punches.insert(link, punch::Held::Tcp(held));
                        self.node.handle(now, Input::PunchPrepared { link, local_port, mapped: None });
                    }
                    Err(e) => self.node.handle(now, Input::LinkFailed { link, reason: e.to_string() }),
                }
            }
            Output::PreparePunch { link, peer: _, proto: PunchProto::Udp } => {
                let (ip, stun, to_actor) = (self.punch_ip, self.punch_stun.get().copied(), self.to_actor.clone());
                tokio::spawn(async move {
                    let result = punch::udp::prepare(ip, stun).await;
                    let _ = to_actor.send(ToActor::PunchSocket { link, result }).await;
                });
            }
            Output::Punch { link, peer, proto: _, remote, at } => {
                let Some(held) = self.punches.remove(&link) else { return };
                let wait = at.saturating_duration_since(self.clock.now());
                let (keys, to_actor) = (self.keys.clone(), self.to_actor.clone());
                match held {
                    punch::Held::Tcp(port) => punch::tcp::spawn(link, peer, port, remote, wait, keys, to_actor),
                    punch::Held::Udp(socket) => punch::udp::spawn(link, peer, socket, remote, wait, keys, to_actor),
                }
            }
            Output::OpenRelay { link, peer } => match &self.relay {
                Some((bs, mesh)) => {
                    relay::spawn_relay(link, peer, bs.clone(), mesh.clone(), self.keys.clone(), self.to_actor.clone())
                }
                None => {
                    let now = self.clock.now();
                    let reason = "no bootstrap server to relay through".to_owned();
                    self.node.handle(now, Input::LinkFailed { link, reason });
                }
            },
            Output::OpenRtc { link, peer, offer } => {
                let attempt = rtc::spawn_attempt(link, peer, offer, self.rtc.clone(), self.to_actor.clone());
                self.rtc_attempts.insert(link, attempt);
            }
            Output::RtcRemote { link, signal } => {
                if let Some(a) = self.rtc_attempts.get(&link) {
                    if !a.remote(signal) {
                        tracing::debug!("link {link:?}: too many remote candidates queued; dropping one");
                    }
                }
            }
            Output::SendSignal { to, data } => {
                if let Err(e) = self.router.send(to, data) {
                    tracing::debug!("no signaling route to {}: {e:?}", to.short());
                }
            }
            Output::ReadChunk { file, index, offset, len } => {
                let Some(f) = self.served.get(&file).map(|(f, _)| f.clone()) else {
                    let now = self.clock.now();
                    let result = Err("file no longer offered".to_owned());
                    self.node.handle(now, Input::ChunkRead { file, index, result });
                    return;
                };
                let to_actor = self.to_actor.clone();
                tokio::task::spawn_blocking(move || {
                    let result = read_chunk(&f, offset, len).map_err(|e| e.to_string());
                    let _ = to_actor.blocking_send(ToActor::Input(Input::ChunkRead { file, index, result }));
                });
            }
            Output::WriteChunk { file, index, offset, data } => {
                self.write_job(file, WriteJob::Chunk { index, offset, data })
            }
            Output::FinalizeDownload { file, .. } => self.write_job(file, WriteJob::Finalize),
            Output::Event(event) => self.on_event(event),
        }
    }

    fn write_job(&mut self, file: FileHash, job: WriteJob) {
        let Some(DownloadWriter { jobs: tx, .. }) = self.downloads.get(&file) else { return };
        if tx.try_send(job).is_err() {
            self.downloads.remove(&file);
            let now = self.clock.now();
            let reason = "disk writer fell behind".to_owned();
            self.node.handle(now, Input::StorageFailed { file, reason });
        }
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::TransferStarted { command, transfer_id, .. } => {
                if let Some((file, reply)) = self.pending_offers.remove(command) {
                    if let Some((_, users)) = self.served.get_mut(&file) {
                        *users += 1;
                    }
                    self.offers.insert(*transfer_id, file);
                    let _ = reply.send(Ok(*transfer_id));
                }
            }
            Event::NameResolved { command, answer, .. } => {
                if let Some(reply) = self.pending_names.remove(command) {
                    let _ = reply.send(Ok(answer.as_deref().cloned()));
                }
            }
            Event::TransferSent { transfer_id, complete: true, .. } => self.offer_finished(*transfer_id),
            Event::TransferOffered { transfer_id, from, name, size, chunk_size, file } if self.auto_accept => {
                self.accept(*transfer_id, *from, name, *size, *chunk_size, *file);
            }
            Event::TransferDone { transfer_id, .. } | Event::TransferFailed { transfer_id, .. } => {
                self.downloads.retain(|_, d| d.transfer_id != *transfer_id);
                self.offer_finished(*transfer_id);
            }
            _ => {}
        }
        let _ = self.events.send(NodeEvent::Core(event));
    }

    /// One of our offers ended: close its file once no other offer uses it.
    fn offer_finished(&mut self, transfer_id: TransferId) {
        if let Some(file) = self.offers.remove(&transfer_id) {
            self.release_served(file);
        }
    }

    fn release_served(&mut self, file: FileHash) {
        if let Some((_, users)) = self.served.get_mut(&file) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                self.served.remove(&file);
            }
        }
    }

    /// Accepts an offer: opens `<downloads>/<name>.part` (resuming from its state file) on a
    /// blocking thread, then answers the node in [`Self::opened`]. A second offer for content
    /// already being opened waits for that, then joins it as another source.
    fn accept(
        &mut self,
        transfer_id: TransferId,
        from: PeerId,
        name: &str,
        size: u64,
        chunk_size: u32,
        file: FileHash,
    ) {
        if let Some(waiting) = self.opening.get_mut(&file) {
            waiting.push((from, transfer_id));
            return;
        }
        self.opening.insert(file, Vec::new());
        let (dir, name, to_actor) = (self.downloads_dir.clone(), name.to_owned(), self.to_actor.clone());
        tokio::task::spawn_blocking(move || {
            let result = PartFile::open(&dir, file, &name, size, chunk_size);
            let _ = to_actor.blocking_send(ToActor::Opened { file, from, transfer_id, result });
        });
    }

    /// A download's file is open (or could not be): start its writer and accept.
    fn opened(
        &mut self,
        file: FileHash,
        from: PeerId,
        transfer_id: TransferId,
        result: std::io::Result<(PartFile, Vec<bool>)>,
    ) {
        let now = self.clock.now();
        let waiting = self.opening.remove(&file).unwrap_or_default();
        match result {
            Ok((part, have)) => {
                let (tx, rx) = mpsc::channel(1024);
                let to_actor = self.to_actor.clone();
                let task = tokio::task::spawn_blocking(move || download_writer(part, file, rx, to_actor));
                if let Err(e) = self.node.command(now, Command::AcceptOffer { from, transfer_id, have }) {
                    // The offer went away meanwhile (cancelled, or its sender left): dropping
                    // the channel makes the writer save its state and stop.
                    tracing::debug!("offer {transfer_id} no longer pending: {e}");
                    drop(tx);
                    return;
                }
                self.downloads.insert(file, DownloadWriter { jobs: tx, task, transfer_id });
                for (from, transfer_id) in waiting {
                    let _ = self.node.command(now, Command::AcceptOffer { from, transfer_id, have: Vec::new() });
                }
            }
            Err(e) => {
                let reason = format!("cannot store the download: {e}");
                let _ = self.events.send(NodeEvent::Error { code: "storage", message: reason.clone() });
                for (from, transfer_id) in std::iter::once((from, transfer_id)).chain(waiting) {
                    let _ = self.node.command(now, Command::DeclineOffer { from, transfer_id, reason: reason.clone() });
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        let now = self.clock.now();
        let _ = self.node.command(now, Command::Shutdown);
        self.drain();
        self.links.clear();
        // Dropping each job channel makes its writer save the chunk map and stop.
        let writers: Vec<JoinHandle<()>> = self.downloads.drain().map(|(_, d)| d.task).collect();
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
        // Let link writers flush their goodbyes.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Owns one `.part` file: writes verified chunks in order, saves the chunk map now and then, and
/// finishes the file when told. Runs on a blocking thread.
fn download_writer(
    mut part: PartFile,
    file: FileHash,
    mut rx: mpsc::Receiver<WriteJob>,
    to_actor: mpsc::Sender<ToActor>,
) {
    let mut last_save = std::time::Instant::now();
    while let Some(job) = rx.blocking_recv() {
        match job {
            WriteJob::Chunk { index, offset, data } => {
                let r = part.write_chunk(index, offset, &data).and_then(|()| {
                    if last_save.elapsed() >= STATE_SAVE_INTERVAL {
                        last_save = std::time::Instant::now();
                        part.save_state()
                    } else {
                        Ok(())
                    }
                });
                let input = match r {
                    Ok(()) => Input::ChunkWritten { file, index },
                    Err(e) => Input::StorageFailed { file, reason: e.to_string() },
                };
                let failed = matches!(input, Input::StorageFailed { .. });
                if to_actor.blocking_send(ToActor::Input(input)).is_err() || failed {
                    return;
                }
            }
            WriteJob::Finalize => {
                let result = part.finish(file).map(|p| p.display().to_string()).map_err(|e| e.to_string());
                let _ = to_actor.blocking_send(ToActor::Input(Input::DownloadFinalized { file, result }));
                return;
            }
        }
    }
    if let Err(e) = part.save_state() {
        tracing::warn!("could not save download state: {e}");
    }
}
