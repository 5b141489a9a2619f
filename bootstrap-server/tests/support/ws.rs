//! A websocket client for `/v1/signal` and `/v1/relay`: connect (from a chosen loopback address),
//! answer the login challenge, and read what the server sends, never waiting longer than
//! [`WAIT`](super::WAIT).

use super::WAIT;
use futures_util::{SinkExt, StreamExt};
use node_core::identity::Keypair;
use node_core::signal::{login_bytes, ClientMsg, ServerMsg};
use node_core::PeerId;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `ws://addr{path}` from 127.0.0.1.
pub async fn connect(addr: SocketAddr, path: &str) -> Ws {
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("the websocket handshake hangs")
        .expect("the websocket handshake fails");
    ws
}

/// Connects to `ws://addr{path}` from `source` (any of 127/8).
pub async fn connect_from(source: IpAddr, addr: SocketAddr, path: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)))
        .await
        .expect("the websocket handshake hangs")
        .expect("the websocket handshake fails");
    ws
}

/// What the server sent next.
pub enum Frame {
    /// A protocol message (JSON text).
    Msg(ServerMsg),
    /// A binary frame (relay data).
    Binary(Vec<u8>),
    /// The connection ended: a close frame, an error, or the end of the stream.
    Closed(String),
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Msg(m) => write!(f, "Msg({m:?})"),
            Frame::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
            Frame::Closed(how) => write!(f, "Closed({how})"),
        }
    }
}

/// The next frame (pings and pongs skipped); panics if nothing arrives within [`WAIT`].
pub async fn next<S>(ws: &mut S) -> Frame
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let item = tokio::time::timeout(WAIT, ws.next()).await.expect("nothing arrived from the server in time");
        return match item {
            Some(Ok(Message::Text(t))) => {
                Frame::Msg(serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("not a ServerMsg ({e}): {t}")))
            }
            Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(c))) => Frame::Closed(format!("close frame {c:?}")),
            Some(Err(e)) => Frame::Closed(format!("error {e}")),
            None => Frame::Closed("end of stream".into()),
        };
    }
}

/// The next protocol message; panics on anything else.
pub async fn msg(ws: &mut Ws) -> ServerMsg {
    match next(ws).await {
        Frame::Msg(m) => m,
        other => panic!("expected a protocol message, got {other:?}"),
    }
}

/// True if the connection ends next (nothing else arrives first).
pub async fn closes(ws: &mut Ws) -> bool {
    matches!(next(ws).await, Frame::Closed(_))
}

/// Sends one protocol message. Errors (a closed connection) are returned, not panicked on.
pub async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Text(serde_json::to_string(msg).unwrap().into())).await
}

/// Reads the challenge and answers it as `keys` in `mesh`; returns the server key it named.
pub async fn login(ws: &mut Ws, keys: &Keypair, mesh: &str) -> PeerId {
    let (server_key, nonce) = challenge(ws).await;
    let peer_id = keys.peer_id();
    let signature = keys.sign(&login_bytes(&server_key, &nonce, &peer_id, mesh));
    send(ws, &ClientMsg::Login { peer_id, mesh_id: mesh.into(), signature }).await.unwrap();
    server_key
}

/// Reads the challenge: (server key, nonce).
pub async fn challenge(ws: &mut Ws) -> (PeerId, Vec<u8>) {
    match msg(ws).await {
        ServerMsg::Challenge { server_key, nonce } => (server_key, nonce),
        other => panic!("expected a challenge first, got {other:?}"),
    }
}
