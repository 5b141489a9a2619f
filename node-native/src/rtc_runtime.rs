//! The `webrtc` crate's tokio runtime, with larger UDP receive buffers on the ICE sockets.
//!
//! With the kernel's default (`net.core.rmem_default`, 208 KiB on Debian) a burst from a browser
//! overflows the socket while the SCTP stack is busy, the kernel drops datagrams (`RcvbufErrors`
//! in `/proc/net/snmp`) and SCTP retransmits and halves its window: docs/BENCHMARKS.md has the
//! measurements. The kernel caps the request at `net.core.rmem_max`; asking for more is harmless.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime, TokioRuntime,
};

/// Receive buffer asked for on every ICE socket.
pub const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// [`TokioRuntime`] with [`UDP_RECEIVE_BUFFER`]-sized receive buffers.
#[derive(Debug)]
pub struct BufferedRuntime {
    receive_buffer: usize,
}

impl BufferedRuntime {
    pub fn new(receive_buffer: usize) -> Self {
        Self { receive_buffer }
    }
}

impl Runtime for BufferedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        if self.receive_buffer > 0 {
            // Best effort: a smaller buffer than asked for still works, only with more drops.
            if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(self.receive_buffer) {
                tracing::debug!("cannot enlarge an ICE socket's receive buffer: {e}");
            }
        }
        TokioRuntime.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.connect_tcp(remote_addr).await })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.resolve_host(host).await })
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (larger UDP receive buffers)"
    }
}
