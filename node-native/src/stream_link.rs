//! Links over byte streams: TCP and relayed websockets with Noise inside, and QUIC streams, whose
//! TLS already encrypts. Two tasks per link move frames between the stream and the actor; they
//! only frame and encrypt, every decision stays in the core.

use crate::actor::ToActor;
use crate::link::{LinkTasks, LINK_QUEUE};
use crate::noise::{Established, Opener, Sealer};
use crate::quic::QuicStream;
use node_core::wire::frame::{encode_frame, FrameDecoder};
use node_core::{Input, LinkId, LinkKind, PeerId};
use snow::StatelessTransportState;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Longest one socket write may take before the link is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest read from a stream that carries frames in the clear (QUIC's own TLS protects it).
const PLAIN_READ: usize = 64 * 1024;
/// Most bytes batched into one write.
const BATCH: usize = 1 << 20;

/// What an authenticated link runs over.
pub enum Carrier {
    /// A TCP connection, Noise inside.
    Tcp(TcpStream, Arc<StatelessTransportState>),
    /// A relayed websocket as a byte stream (see `relay.rs`), Noise inside.
    Relay(DuplexStream, Arc<StatelessTransportState>),
    /// A QUIC stream over a punched UDP path (see `quic.rs`).
    Quic(QuicStream),
}

/// A link whose handshake finished, ready for the actor to adopt.
pub struct NewLink {
    /// The stream and its cipher.
    pub carrier: Carrier,
    /// The peer the handshake proved.
    pub peer: PeerId,
    /// The remote address.
    pub remote: SocketAddr,
}

impl NewLink {
    /// A TCP connection after its Noise handshake.
    pub fn tcp(stream: TcpStream, established: Established, remote: SocketAddr) -> Self {
        NewLink { carrier: Carrier::Tcp(stream, established.transport), peer: established.peer, remote }
    }

    /// A relayed stream after its Noise handshake.
    pub fn relay(stream: DuplexStream, established: Established, remote: SocketAddr) -> Self {
        NewLink { carrier: Carrier::Relay(stream, established.transport), peer: established.peer, remote }
    }

    /// The link kind the core is told.
    pub fn kind(&self) -> LinkKind {
        match self.carrier {
            Carrier::Tcp(..) => LinkKind::Tcp,
            Carrier::Relay(..) => LinkKind::Relay,
            Carrier::Quic(_) => LinkKind::Quic,
        }
    }
}

/// Starts the reader and writer tasks of an established link.
pub fn spawn_link(link: LinkId, new: NewLink, frame_cap: usize, to_actor: mpsc::Sender<ToActor>) -> LinkTasks {
    match new.carrier {
        Carrier::Tcp(stream, noise) => {
            let (read, write) = stream.into_split();
            spawn_halves(link, read, write, Some(noise), frame_cap, to_actor)
        }
        Carrier::Relay(stream, noise) => {
            let (read, write) = tokio::io::split(stream);
            spawn_halves(link, read, write, Some(noise), frame_cap, to_actor)
        }
        Carrier::Quic(stream) => {
            let (read, write) = stream.into_split();
            spawn_halves(link, read, write, None, frame_cap, to_actor)
        }
    }
}

fn spawn_halves<R, W>(
    link: LinkId,
    read: R,
    write: W,
    noise: Option<Arc<StatelessTransportState>>,
    frame_cap: usize,
    to_actor: mpsc::Sender<ToActor>,
) -> LinkTasks
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let (sealer, opener) = match noise {
        Some(t) => (Some(Sealer::new(t.clone())), Unsealer::Noise(Opener::new(t))),
        None => (None, Unsealer::Plain),
    };
    let writer = tokio::spawn(write_loop(write, sealer, rx, frame_cap, queued.clone())).abort_handle();
    let reader = tokio::spawn(read_loop(link, read, opener, frame_cap, to_actor)).abort_handle();
    LinkTasks::new(tx, queued, reader, writer)
}

/// How the reader gets plaintext from the stream.
enum Unsealer {
    /// Length-prefixed Noise messages.
    Noise(Opener),
    /// The bytes as they come (the carrier encrypts).
    Plain,
}

impl Unsealer {
    /// The next piece of plaintext into `plain`; `Ok(false)` at a clean end of stream.
    async fn next<R: AsyncRead + Unpin>(&mut self, read: &mut R, plain: &mut Vec<u8>) -> std::io::Result<bool> {
        match self {
            Unsealer::Noise(opener) => opener.open(read, plain).await,
            Unsealer::Plain => {
                plain.resize(PLAIN_READ, 0);
                let n = read.read(plain).await?;
                plain.truncate(n);
                Ok(n > 0)
            }
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    link: LinkId,
    mut read: R,
    mut unsealer: Unsealer,
    frame_cap: usize,
    to_actor: mpsc::Sender<ToActor>,
) {
    let mut decoder = FrameDecoder::new(frame_cap);
    let mut plain = Vec::new();
    let reason = loop {
        match unsealer.next(&mut read, &mut plain).await {
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
    mut sealer: Option<Sealer>,
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
        while plain.len() < BATCH {
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
        let bytes = match &mut sealer {
            Some(sealer) => {
                if sealer.seal(&plain, &mut wire).is_err() {
                    return;
                }
                &wire
            }
            None => &plain,
        };
        // A peer that stops reading must not hold this task (and its queue) forever.
        match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(bytes)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        queued.fetch_sub(taken, Ordering::Relaxed);
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write.shutdown()).await;
}
