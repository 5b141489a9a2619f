//! TCP links: the listener, the dialer, and the two tasks per link that move frames between the
//! socket and the actor. The tasks only frame and encrypt; every decision stays in the core.

use crate::actor::ToActor;
use crate::link::{LinkTasks, LINK_QUEUE};
use crate::noise::{self, Established, Opener, Sealer};
use node_core::identity::Keypair;
use node_core::wire::frame::{encode_frame, FrameDecoder};
use node_core::{Input, LinkId, PeerId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// A TCP connect plus Noise handshake must finish within this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// An inbound connection must finish its handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once: garbage connections cannot pile up.
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Longest one socket write may take before the link is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Identity material the link tasks need.
#[derive(Clone)]
pub struct Keys {
    /// The node's Ed25519 identity.
    pub identity: Arc<Keypair>,
    /// The process's Noise static key.
    pub noise_static: Arc<snow::Keypair>,
}

/// What an authenticated link runs over.
pub enum LinkStream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A relayed websocket, as a byte stream (see `relay.rs`).
    Relay(tokio::io::DuplexStream),
}

impl LinkStream {
    /// The link kind the core is told.
    pub fn kind(&self) -> node_core::LinkKind {
        match self {
            LinkStream::Tcp(_) => node_core::LinkKind::Tcp,
            LinkStream::Relay(_) => node_core::LinkKind::Relay,
        }
    }
}

/// A link whose handshake finished, ready for the actor to adopt.
pub struct NewLink {
    /// The stream.
    pub stream: LinkStream,
    /// The cipher state and the proven peer.
    pub established: Established,
    /// The remote address.
    pub remote: SocketAddr,
}

/// Accepts connections forever, handing finished handshakes to the actor.
pub fn spawn_listener(listener: TcpListener, keys: Keys, to_actor: mpsc::Sender<ToActor>) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (mut stream, remote) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // IPv4 peers on the dual-stack socket appear as ::ffff:a.b.c.d; show them as IPv4.
            let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
            let Ok(permit) = pending.clone().try_acquire_owned() else {
                tracing::debug!("too many handshakes in progress; dropping {remote}");
                continue;
            };
            let keys = keys.clone();
            let to_actor = to_actor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = stream.set_nodelay(true);
                let hs = noise::respond(&mut stream, &keys.identity, &keys.noise_static);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, hs).await {
                    Ok(Ok(established)) => {
                        let stream = LinkStream::Tcp(stream);
                        let _ = to_actor.send(ToActor::Inbound(NewLink { stream, established, remote })).await;
                    }
                    Ok(Err(e)) => tracing::debug!("handshake with {remote} failed: {e}"),
                    Err(_) => tracing::debug!("handshake with {remote} timed out"),
                }
            });
        }
    });
}

/// Dials `addr` for `link`, reporting the result to the actor.
pub fn spawn_dial(link: LinkId, addr: SocketAddr, expect: Option<PeerId>, keys: Keys, to_actor: mpsc::Sender<ToActor>) {
    tokio::spawn(async move {
        let attempt = async {
            let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let established = noise::initiate(&mut stream, &keys.identity, &keys.noise_static, expect)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(NewLink { stream: LinkStream::Tcp(stream), established, remote: addr })
        };
        let msg = match tokio::time::timeout(DIAL_TIMEOUT, attempt).await {
            Ok(Ok(new)) => ToActor::Outbound(link, new),
            Ok(Err(reason)) => ToActor::Input(Input::LinkFailed { link, reason }),
            Err(_) => ToActor::Input(Input::LinkFailed { link, reason: "dial timed out".into() }),
        };
        let _ = to_actor.send(msg).await;
    });
}

/// Starts the reader and writer tasks of an established link.
pub fn spawn_link(link: LinkId, new: NewLink, frame_cap: usize, to_actor: mpsc::Sender<ToActor>) -> LinkTasks {
    match new.stream {
        LinkStream::Tcp(stream) => {
            let (read, write) = stream.into_split();
            spawn_halves(link, read, write, new.established, frame_cap, to_actor)
        }
        LinkStream::Relay(stream) => {
            let (read, write) = tokio::io::split(stream);
            spawn_halves(link, read, write, new.established, frame_cap, to_actor)
        }
    }
}

fn spawn_halves<R, W>(
    link: LinkId,
    read: R,
    write: W,
    established: Established,
    frame_cap: usize,
    to_actor: mpsc::Sender<ToActor>,
) -> LinkTasks
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    let transport = established.transport;
    let queued = Arc::new(AtomicUsize::new(0));
    let writer =
        tokio::spawn(write_loop(write, Sealer::new(transport.clone()), rx, frame_cap, queued.clone())).abort_handle();
    let reader = tokio::spawn(read_loop(link, read, Opener::new(transport), frame_cap, to_actor)).abort_handle();
    LinkTasks::new(tx, queued, reader, writer)
}

async fn read_loop<R: AsyncRead + Unpin>(
    link: LinkId,
    mut read: R,
    mut opener: Opener,
    frame_cap: usize,
    to_actor: mpsc::Sender<ToActor>,
) {
    let mut decoder = FrameDecoder::new(frame_cap);
    let mut plain = Vec::new();
    let reason = loop {
        match opener.open(&mut read, &mut plain).await {
            Ok(true) => {}
            Ok(false) => break "connection closed by peer".to_owned(),
            Err(e) => break format!("read failed: {e}"),
        }
        if let Err(e) = decoder.push(&plain) {
            break e.to_string();
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(data)) => {
                    if to_actor.send(ToActor::Input(Input::Frame { link, data })).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = to_actor.send(ToActor::Input(Input::LinkClosed { link, reason: e.to_string() })).await;
                    return;
                }
            }
        }
    };
    let _ = to_actor.send(ToActor::Input(Input::LinkClosed { link, reason })).await;
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut sealer: Sealer,
    mut rx: mpsc::Receiver<Vec<u8>>,
    frame_cap: usize,
    queued: Arc<AtomicUsize>,
) {
    let mut plain = Vec::new();
    let mut wire = Vec::new();
    while let Some(first) = rx.recv().await {
        plain.clear();
        wire.clear();
        let mut taken = first.len();
        if encode_frame(&first, frame_cap, &mut plain).is_err() {
            tracing::warn!("dropping an oversized outgoing frame ({} bytes)", first.len());
        }
        // Batch whatever else is queued into one write.
        while plain.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(next) => {
                    taken += next.len();
                    if encode_frame(&next, frame_cap, &mut plain).is_err() {
                        tracing::warn!("dropping an oversized outgoing frame ({} bytes)", next.len());
                    }
                }
                Err(_) => break,
            }
        }
        if sealer.seal(&plain, &mut wire).is_err() {
            return;
        }
        // A peer that stops reading must not hold this task (and its queue) forever.
        match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&wire)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        queued.fetch_sub(taken, Ordering::Relaxed);
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write.shutdown()).await;
}
