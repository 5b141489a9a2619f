//! The accept loop for `weft run --http`: axum's router on hyper, with what `axum::serve` leaves
//! out. `axum::serve` sets no timer, so hyper's header deadline is off and a client that sends one
//! header byte a minute keeps its connection (and task) forever; nor does it cap connections. A
//! node on a LAN is exposed to every device there, so both are bounded here.
//!
//! Websocket sessions are not counted once upgraded: the connection task ends with the upgrade,
//! and `/v1/signal` caps its own sessions.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// Bounds on the HTTP connections of one server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections (not counting upgraded websockets); one more is closed at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, also between requests on a kept-alive
    /// connection.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish once the server stops.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish (up to
/// the grace period). Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, app: Router, limits: ServeLimits, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::debug!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!("HTTP connection from {addr} refused: {} open", limits.max_connections);
            continue;
        };
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                app.clone().oneshot(req.map(Body::new))
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = async { drop(stop.wait_for(|stopped| *stopped).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("HTTP connection from {addr}: {e}");
            }
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: ServeLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/who", get(|ConnectInfo(from): ConnectInfo<SocketAddr>| async move { from.ip().to_string() }));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    async fn get_who(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Reads until the server closes the connection; false if it is still open after `within`.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 512];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    #[tokio::test]
    async fn requests_see_the_client_address() {
        let (addr, _stop) = start(ServeLimits::default()).await;
        let answer = get_who(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_slow_with_its_headers_is_cut_off() {
        let limits = ServeLimits { header_timeout: Duration::from_millis(300), ..ServeLimits::default() };
        let (addr, _stop) = start(limits).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        assert!(closed_within(&mut slow, Duration::from_secs(5)).await, "a half-sent request is closed");
        // An idle connection that never sends anything goes the same way.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(5)).await, "an idle connection is closed");
        assert!(get_who(addr).await.starts_with("HTTP/1.1 200"), "the server still answers");
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_and_the_rest_still_served() {
        let limits =
            ServeLimits { max_connections: 2, header_timeout: Duration::from_secs(30), ..ServeLimits::default() };
        let (addr, _stop) = start(limits).await;
        let held = [TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
        let mut extra = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut extra, Duration::from_secs(5)).await, "the third connection is closed");
        drop(held);
        // Freed slots take new clients again (the server notices the closes first).
        let served = async {
            loop {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out).await;
                if out.starts_with("HTTP/1.1 200") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), served).await.expect("served once slots are free");
    }

    #[tokio::test]
    async fn stopping_ends_idle_connections() {
        let (addr, stop) =
            start(ServeLimits { header_timeout: Duration::from_secs(30), ..ServeLimits::default() }).await;
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        assert!(kept.read(&mut buf).await.unwrap() > 0, "answered, connection kept alive");
        let _ = stop.send(());
        assert!(closed_within(&mut kept, Duration::from_secs(5)).await, "closed when the server stops");
    }
}
