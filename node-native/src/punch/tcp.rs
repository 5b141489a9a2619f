//! TCP simultaneous open: both ends bind a fresh port (kept with SO_REUSEADDR/SO_REUSEPORT, so
//! each retry can bind it again) and connect to each other's predicted public address at the
//! agreed instant, again and again for a few seconds; each end's SYN opens its own NAT for the
//! other's, and the two SYNs that cross make one connection. Then the usual Noise handshake (the
//! lower PeerId initiates, both require the other's key).

use crate::actor::ToActor;
use crate::noise;
use crate::stream_link::NewLink;
use crate::tcp::Keys;
use node_core::{Input, LinkId, PeerId};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

/// How long an end keeps trying to connect.
const PUNCH_FOR: Duration = Duration::from_secs(5);
/// One connect attempt's patience (the kernel resends SYNs within it).
const CONNECT_TRY: Duration = Duration::from_millis(1500);
/// Pause between attempts after a refusal.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The handshake after the connection is made.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A port held for a TCP punch: a bound socket nobody listens or connects on, so the port stays
/// ours until the punch ends.
pub struct HeldPort {
    _socket: Socket,
    /// The bound address.
    pub local: SocketAddr,
}

/// Binds a fresh port on `ip`.
pub fn hold_port(ip: IpAddr) -> std::io::Result<HeldPort> {
    let ip = super::punch_ip(ip);
    let socket = Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    let local = socket.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    Ok(HeldPort { _socket: socket, local })
}

/// Runs a TCP punch for `link` from `held` to `remote`, starting after `wait`.
pub fn spawn(
    link: LinkId,
    peer: PeerId,
    held: HeldPort,
    remote: SocketAddr,
    wait: Duration,
    keys: Keys,
    to_actor: mpsc::Sender<ToActor>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let msg = match punch(held.local, remote).await {
            Ok(mut stream) => {
                let _ = stream.set_nodelay(true);
                let hs = noise::handshake_between(&mut stream, &keys.identity, &keys.noise_static, peer);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, hs).await {
                    Ok(Ok(established)) => ToActor::Outbound(link, NewLink::tcp(stream, established, remote)),
                    Ok(Err(reason)) => ToActor::Input(Input::LinkFailed { link, reason }),
                    Err(_) => ToActor::Input(Input::LinkFailed { link, reason: "handshake timed out".into() }),
                }
            }
            Err(reason) => ToActor::Input(Input::LinkFailed { link, reason }),
        };
        drop(held);
        let _ = to_actor.send(msg).await;
    });
}

/// Connects from `local` to `remote` until it works or [`PUNCH_FOR`] is over.
async fn punch(local: SocketAddr, remote: SocketAddr) -> Result<TcpStream, String> {
    let end = tokio::time::Instant::now() + PUNCH_FOR;
    let mut last = String::from("no attempt");
    while tokio::time::Instant::now() < end {
        let socket =
            if local.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| e.to_string())?;
        socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
        socket.set_reuseport(true).map_err(|e| e.to_string())?;
        socket.bind(local).map_err(|e| format!("cannot bind {local} again: {e}"))?;
        match tokio::time::timeout(CONNECT_TRY, socket.connect(remote)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no answer".into(),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(format!("TCP simultaneous open to {remote} did not connect: {last}"))
}
