//! Drives node-core's NAT probe ([`node_core::nat::probe`]) against the bootstrap server's STUN
//! responder: binds the probe's sockets, sends what it asks, feeds back what arrives, keeps its
//! timers. Runs once at start when a bootstrap server with STUN is configured; the report goes
//! to the node as `Input::NatDetected`.

use crate::clock::Clock;
use node_core::nat::probe::{NatProbe, ProbeTiming, StunTarget, SOCKETS};
use node_core::nat::{stun, NatReport};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Longest datagram read; binding answers are far smaller.
const MAX_DATAGRAM: usize = 1024;
/// Datagrams queued between the socket readers and the probe.
const QUEUE: usize = 64;
/// A probe that is still running after this long is abandoned (its timers should end it in a
/// few seconds; this only guards against a bug leaving it waiting forever).
const DEADLINE: Duration = Duration::from_secs(30);

/// Errors of a probe run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe's sockets could not be set up.
    #[error("cannot open the NAT probe's sockets: {0}")]
    Socket(#[from] std::io::Error),
    /// The responder refused to answer.
    #[error(transparent)]
    Refused(#[from] node_core::nat::probe::ProbeRefused),
    /// The probe did not finish in time.
    #[error("the NAT probe did not finish within {0:?}")]
    Stuck(Duration),
}

/// STUN binding: attempts, and the wait for each answer.
const BINDING_TRIES: usize = 3;
const BINDING_WAIT: Duration = Duration::from_millis(400);

/// What one binding request showed.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Where the server saw `socket`.
    pub mapped: SocketAddr,
    /// The server's OTHER-ADDRESS (RFC 5780), when it has a second address.
    pub other: Option<SocketAddr>,
}

/// Asks `server` where `socket` shows (a few tries); `None` if it never answered.
pub async fn binding(socket: &UdpSocket, server: SocketAddr) -> Option<Binding> {
    let mut buf = [0u8; MAX_DATAGRAM];
    for _ in 0..BINDING_TRIES {
        let tid = rand::random::<u128>() & ((1 << 96) - 1);
        socket.send_to(&stun::binding_request(tid, None), server).await.ok()?;
        let until = tokio::time::Instant::now() + BINDING_WAIT;
        while let Ok(got) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
            let Ok((n, from)) = got else { continue }; // an ICMP error: the socket still works
            if from != server {
                continue;
            }
            if let Some(stun::BindingOutcome::Success { mapped, other, .. }) =
                stun::parse_binding_response(&buf[..n], tid)
            {
                return Some(Binding { mapped, other });
            }
        }
    }
    None
}

/// The probe's target for a responder known only by its address (`--stun`): its alternate
/// address and port come from the OTHER-ADDRESS of a first binding.
pub async fn target_of(primary: SocketAddr) -> Option<StunTarget> {
    let wildcard =
        if primary.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
    let socket = UdpSocket::bind(SocketAddr::new(wildcard, 0)).await.ok()?;
    let other = binding(&socket, primary).await?.other;
    Some(StunTarget {
        primary,
        alt_port: other.map(|o| o.port()),
        alt_ip: other.map(|o| o.ip()).filter(|ip| *ip != primary.ip()),
    })
}

/// Runs one probe against `target` and returns what it found.
pub async fn probe(target: StunTarget, clock: &Clock) -> Result<NatReport, ProbeError> {
    let wildcard = match target.primary.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut sockets = Vec::with_capacity(SOCKETS);
    let mut ports = [0u16; SOCKETS];
    for port in &mut ports {
        let socket = UdpSocket::bind(SocketAddr::new(wildcard, 0)).await?;
        *port = socket.local_addr()?.port();
        sockets.push(Arc::new(socket));
    }
    let local_ips: Vec<IpAddr> =
        if_addrs::get_if_addrs().map(|l| l.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
    let (tx, mut rx) = mpsc::channel::<(usize, SocketAddr, Vec<u8>)>(QUEUE);
    let mut readers = JoinSet::new();
    for (index, socket) in sockets.iter().enumerate() {
        let (socket, tx) = (socket.clone(), tx.clone());
        readers.spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        if tx.send((index, from, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    // An ICMP error surfacing on a later read: the socket still works.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(_) => return,
                }
            }
        });
    }
    let mut probe = NatProbe::new(target, local_ips, ports, ProbeTiming::default(), rand::random(), clock.now());
    let run = async {
        loop {
            while let Some(request) = probe.poll_transmit() {
                // A lost send is a lost datagram: the probe's resends cover it.
                let _ = sockets[request.socket].send_to(&stun::encode_request(&request), request.to).await;
            }
            if let Some(result) = probe.result() {
                return result;
            }
            let wake = probe.poll_timeout().map(|at| at.saturating_duration_since(clock.now()));
            tokio::select! {
                Some((socket, from, bytes)) = rx.recv() => {
                    if let Some((tid, response)) = stun::decode_response(&bytes) {
                        probe.handle_response(clock.now(), socket, tid, from, response);
                    }
                }
                () = tokio::time::sleep(wake.unwrap_or(Duration::from_millis(100))) => probe.handle_timeout(clock.now()),
            }
        }
    };
    let result = tokio::time::timeout(DEADLINE, run).await.map_err(|_| ProbeError::Stuck(DEADLINE));
    readers.abort_all();
    Ok(result??)
}
