//! QUIC links over a punched UDP path (`quinn`): the lower PeerId connects, the higher accepts,
//! and both require the other's certificate to carry exactly the PeerId they expect
//! ([`tls`]). One bidirectional stream carries the link's frames; QUIC's TLS encrypts it, so
//! there is no Noise inside. Keepalives every 10 s hold the NATs' UDP mappings open (they
//! forget a quiet flow after 30 s).

pub mod tls;

use node_core::identity::Keypair;
use node_core::PeerId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, EndpointConfig, IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tls::TlsIdentity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first byte each way on a link's stream: opening a QUIC stream sends nothing until data
/// is written, so the connecting end writes this at once, and the accepting end answers it once
/// it has checked the client's certificate. It also names the framing version.
const PREAMBLE: u8 = 1;
/// Keepalive interval: well under the 30 s UDP conntrack timeout of common NATs.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// A link silent this long is dead.
const IDLE: Duration = Duration::from_secs(30);
/// The first round-trip estimate: the punch has just shown the path is live, so QUIC's
/// conservative default (333 ms) would only slow the first retransmission.
const INITIAL_RTT: Duration = Duration::from_millis(100);
/// Flow-control windows: large enough that one file transfer is not held back by them.
const STREAM_WINDOW: u32 = 8 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
/// How long a closing link's last bytes (a Goodbye) get to be acknowledged before the
/// connection is dropped (dropping it discards what is in flight).
const LINGER: Duration = Duration::from_secs(3);

/// Errors making a QUIC link.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The socket could not be used.
    #[error("QUIC socket: {0}")]
    Io(#[from] std::io::Error),
    /// The connection could not be started.
    #[error("QUIC connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The handshake or the connection failed (a wrong certificate ends here).
    #[error("QUIC: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The stream could not be opened or read.
    #[error("QUIC stream: {0}")]
    Stream(String),
    /// The endpoint closed before anyone connected.
    #[error("QUIC: no connection arrived")]
    NoConnection,
}

/// An established link's stream, with what keeps its connection alive.
pub struct QuicStream {
    send: SendStream,
    recv: RecvStream,
    connection: Connection,
    endpoint: Endpoint,
}

impl QuicStream {
    /// The reading and the writing half; the connection lives while either does.
    pub fn into_split(self) -> (QuicRecv, QuicSend) {
        let recv = QuicRecv { recv: self.recv, _connection: self.connection.clone(), _endpoint: self.endpoint.clone() };
        let send = QuicSend { send: self.send, connection: self.connection, endpoint: self.endpoint };
        (recv, send)
    }

    /// The address the connection runs to.
    pub fn remote(&self) -> SocketAddr {
        self.connection.remote_address()
    }
}

/// The reading half.
pub struct QuicRecv {
    recv: RecvStream,
    _connection: Connection,
    _endpoint: Endpoint,
}

impl AsyncRead for QuicRecv {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.get_mut().recv), cx, buf)
    }
}

/// The writing half. Dropping it waits (in the background, up to [`LINGER`]) for the peer to
/// take what was written before letting the connection go.
pub struct QuicSend {
    send: SendStream,
    connection: Connection,
    endpoint: Endpoint,
}

impl AsyncWrite for QuicSend {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.get_mut().send), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.get_mut().send), cx)
    }
}

impl Drop for QuicSend {
    fn drop(&mut self) {
        let stopped = self.send.stopped();
        let keep = (self.connection.clone(), self.endpoint.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(LINGER, stopped).await;
                drop(keep);
            });
        }
    }
}

fn transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEPALIVE))
        .max_idle_timeout(IdleTimeout::try_from(IDLE).ok())
        .initial_rtt(INITIAL_RTT)
        // One stream each way is all a link uses: a peer cannot open more.
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None)
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW));
    Arc::new(t)
}

/// Makes the link with `peer` over `socket`, whose path to `remote` is open: the lower PeerId
/// connects, the higher accepts a connection from `remote`'s IP only. The caller bounds it in
/// time.
pub async fn link(
    socket: std::net::UdpSocket,
    remote: SocketAddr,
    me: &Keypair,
    tls: &TlsIdentity,
    peer: PeerId,
) -> Result<QuicStream, QuicError> {
    let runtime = Arc::new(quinn::TokioRuntime);
    if me.peer_id() < peer {
        let endpoint = Endpoint::new(EndpointConfig::default(), None, socket, runtime)?;
        let crypto = QuicClientConfig::try_from(tls.client(peer)?).map_err(|e| QuicError::Stream(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport());
        let connection = endpoint.connect_with(config, remote, tls::SERVER_NAME)?.await?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| QuicError::Stream(e.to_string()))?;
        send.write_all(&[PREAMBLE]).await.map_err(|e| QuicError::Stream(e.to_string()))?;
        // TLS 1.3 finishes on the client before the server has checked the client's
        // certificate: only the server's answer shows we were accepted.
        expect_preamble(&mut recv).await?;
        Ok(QuicStream { send, recv, connection, endpoint })
    } else {
        let crypto = QuicServerConfig::try_from(tls.server(peer)?).map_err(|e| QuicError::Stream(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport());
        let endpoint = Endpoint::new(EndpointConfig::default(), Some(config), socket, runtime)?;
        let connection = loop {
            let incoming = endpoint.accept().await.ok_or(QuicError::NoConnection)?;
            if incoming.remote_address().ip() != remote.ip() {
                incoming.refuse();
                continue;
            }
            // A failed handshake ends the punch: the peer is the only one who knows when and
            // where to connect (a host sharing its public IP could spoil it, not get in).
            break incoming.await?;
        };
        // One link per punch: nobody else gets to connect to this socket.
        endpoint.set_server_config(None);
        let (mut send, mut recv) = connection.accept_bi().await.map_err(|e| QuicError::Stream(e.to_string()))?;
        expect_preamble(&mut recv).await?;
        send.write_all(&[PREAMBLE]).await.map_err(|e| QuicError::Stream(e.to_string()))?;
        Ok(QuicStream { send, recv, connection, endpoint })
    }
}

/// Reads the other end's [`PREAMBLE`].
async fn expect_preamble(recv: &mut RecvStream) -> Result<(), QuicError> {
    let mut first = [0u8; 1];
    recv.read_exact(&mut first).await.map_err(|e| QuicError::Stream(e.to_string()))?;
    match first[0] {
        PREAMBLE => Ok(()),
        other => Err(QuicError::Stream(format!("unknown link version {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::around;

    /// Links `a` (expecting `a_expects`) and `b` (expecting `b_expects`) over two loopback
    /// sockets; each side's result, and on success the streams.
    async fn between(
        a: &Keypair,
        a_expects: PeerId,
        b: &Keypair,
        b_expects: PeerId,
    ) -> (Result<QuicStream, String>, Result<QuicStream, String>) {
        let bind = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let (sa, sb) = (bind(), bind());
        let (addr_a, addr_b) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
        let (tls_a, tls_b) = (TlsIdentity::new(a).unwrap(), TlsIdentity::new(b).unwrap());
        let limit = Duration::from_secs(3);
        let (l, r) = tokio::join!(
            tokio::time::timeout(limit, link(sa, addr_b, a, &tls_a, a_expects)),
            tokio::time::timeout(limit, link(sb, addr_a, b, &tls_b, b_expects))
        );
        let flat = |r: Result<Result<QuicStream, QuicError>, _>| match r {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        (flat(l), flat(r))
    }

    #[tokio::test]
    async fn both_ends_require_the_expected_key_and_the_link_carries_bytes() {
        let alice = Keypair::from_secret([1; 32]);
        let (low, high) = around(&alice, 2);
        for bob in [&low, &high] {
            let (l, r) = between(&alice, bob.peer_id(), bob, alice.peer_id()).await;
            let (mut l, mut r) = (l.expect("alice links to bob"), r.expect("bob links to alice"));
            l.send.write_all(b"over quic").await.unwrap();
            let mut got = [0u8; 9];
            r.recv.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"over quic");
        }
        // Mallory answers where Bob was expected, in the role Bob would have had: Alice
        // connecting (Bob's id above hers) and Alice accepting (below). She refuses the
        // certificate both times, and Mallory's end fails too.
        let (mallory_low, mallory_high) = around(&alice, 100);
        for (bob, mallory) in [(&high, &mallory_high), (&low, &mallory_low)] {
            assert_eq!(bob.peer_id() > alice.peer_id(), mallory.peer_id() > alice.peer_id(), "same role");
            let (l, r) = between(&alice, bob.peer_id(), mallory, alice.peer_id()).await;
            let refusal = l.err().expect("alice refused mallory");
            assert!(refusal.contains("certificate"), "refused for the certificate, not a timeout: {refusal}");
            assert!(r.is_err(), "mallory's end does not come up either");
        }
    }
}
