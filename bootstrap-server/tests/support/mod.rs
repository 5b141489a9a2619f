//! Test support: an in-process server on loopback with a real SQLite file and an injected clock,
//! a tiny HTTP/1.1 client that can pick its source address, and a websocket client ([`ws`]).
#![allow(dead_code)]

use bootstrap_server::{AppState, ServerConfig};
use node_core::identity::Keypair;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod ws;

pub const START: u64 = 1_750_000_000_000;
/// The longest any test waits for one answer: a hang fails instead of blocking.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Server {
    pub addr: SocketAddr,
    pub clock: Arc<AtomicU64>,
    pub state: AppState,
    pub key: node_core::PeerId,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn set_now(&self, ms: u64) {
        self.clock.store(ms, Ordering::SeqCst)
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.state.pool
    }
}

/// A server with no rate limit.
pub async fn server() -> Server {
    server_with(ServerConfig::default()).await
}

pub async fn server_with(config: ServerConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pool = bootstrap_server::db::open(dir.path()).await.unwrap();
    let keys = bootstrap_server::keyfile::load_or_create(dir.path()).unwrap();
    let key = keys.peer_id();
    let clock = Arc::new(AtomicU64::new(START));
    let c = clock.clone();
    let state = AppState::new(pool, keys, config, Arc::new(move || c.load(Ordering::SeqCst)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(bootstrap_server::run(listener, state.clone(), std::future::pending()));
    Server { addr, clock, state, key, dir }
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One request from `source` (any loopback address: all of 127/8 is local on Linux).
pub async fn request_from(source: IpAddr, addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> Answer {
    try_request_from(source, addr, method, path, body).await.unwrap()
}

/// [`request_from`], with the connection's failure as an error (for servers that may be killed).
/// A hang fails too: nothing here waits longer than [`WAIT`].
pub async fn try_request_from(
    source: IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<Answer> {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let mut s = socket.connect(addr).await?;
        let body = body.unwrap_or(b"");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        // The server may answer (413) and close before reading a large body.
        let _ = s.write_all(body).await;
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out).await;
        if out.is_empty() {
            read?;
        }
        Ok::<_, std::io::Error>(out)
    };
    let out = tokio::time::timeout(WAIT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))??;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Answer { status, headers: headers.to_owned(), body: body.to_owned() })
}

/// (status, JSON body or Null) from 127.0.0.1.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let a = request_from([127, 0, 0, 1].into(), addr, method, path, body.map(str::as_bytes)).await;
    (a.status, a.json())
}

/// A fixed test key.
pub fn keys(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}
