//! TCP links: the listener and the dialer, each ending in a Noise handshake (the link's tasks
//! are in `stream_link.rs`).

use crate::actor::ToActor;
use crate::noise;
use crate::stream_link::NewLink;
use node_core::identity::Keypair;
use node_core::{Input, LinkId, PeerId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// A TCP connect plus Noise handshake must finish within this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// An inbound connection must finish its handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once: garbage connections cannot pile up.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// Identity material the link tasks need.
#[derive(Clone)]
pub struct Keys {
    /// The node's Ed25519 identity.
    pub identity: Arc<Keypair>,
    /// The process's Noise static key.
    pub noise_static: Arc<snow::Keypair>,
    /// The identity's self-signed certificate, for QUIC.
    pub tls: Arc<crate::quic::tls::TlsIdentity>,
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
                        let _ = to_actor.send(ToActor::Inbound(NewLink::tcp(stream, established, remote))).await;
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
            Ok::<_, String>(NewLink::tcp(stream, established, addr))
        };
        let msg = match tokio::time::timeout(DIAL_TIMEOUT, attempt).await {
            Ok(Ok(new)) => ToActor::Outbound(link, new),
            Ok(Err(reason)) => ToActor::Input(Input::LinkFailed { link, reason }),
            Err(_) => ToActor::Input(Input::LinkFailed { link, reason: "dial timed out".into() }),
        };
        let _ = to_actor.send(msg).await;
    });
}
