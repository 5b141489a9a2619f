//! The node's session on the bootstrap server's `/v1/signal`: log in with the node's key (after
//! checking the server's key against the pin), tell the core who is online there, pass envelopes
//! both ways, and reconnect with backoff when the socket drops.

use super::Bootstrap;
use crate::actor::ToActor;
use crate::signal_router::SignalRouter;
use futures_util::{SinkExt, StreamExt};
use node_core::signal::{login_bytes, ClientMsg, ServerMsg, SignalError};
use node_core::{Input, PeerId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Longest the connect, challenge and welcome may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalive ping interval (proxies drop idle websockets).
const PING_INTERVAL: Duration = Duration::from_secs(25);
/// Most peers remembered as online at the server.
const MAX_ONLINE: usize = 4096;
/// Envelopes queued for the server before new ones are dropped.
const OUT_QUEUE: usize = 256;

/// `http(s)://host` → `ws(s)://host/v1/signal`.
/// The websocket URL of `path` on the server at `base` (http → ws, https → wss).
pub fn ws_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}{path}")
}

/// The two halves of a server websocket.
pub(crate) type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
pub(crate) type WsStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Connects to `path` on the bootstrap server and logs in (the challenge signed by our key,
/// the server's key checked against the pinned one), as `/v1/signal` and `/v1/relay` both want.
pub(crate) async fn login(
    bs: &Bootstrap,
    path: &str,
    mesh: &str,
) -> Result<(WsSink, WsStream, std::net::SocketAddr), String> {
    let url = ws_url(bs.client.url(), path);
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| format!("connect {url}: {e}"))?;
    let remote = match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.peer_addr().ok(),
        _ => None,
    }
    .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let (mut sink, mut stream) = ws.split();
    let Some(ServerMsg::Challenge { server_key, nonce }) = next_msg(&mut stream).await? else {
        return Err("no challenge".to_owned());
    };
    let pinned = bs.client.server_key().await.map_err(|e| e.to_string())?;
    if server_key != pinned {
        return Err(format!("the server presents key {server_key}, not the pinned {pinned}"));
    }
    let me = bs.keys.peer_id();
    let signature = bs.keys.sign(&login_bytes(&server_key, &nonce, &me, mesh));
    let msg = ClientMsg::Login { peer_id: me, mesh_id: mesh.to_owned(), signature };
    sink.send(text(&msg)).await.map_err(|e| e.to_string())?;
    Ok((sink, stream, remote))
}

/// Runs sessions until the node stops.
pub(crate) async fn signal_loop(
    bs: Arc<Bootstrap>,
    mesh: String,
    router: Arc<SignalRouter>,
    to_actor: mpsc::Sender<ToActor>,
) {
    let mut backoff = Duration::from_secs(1);
    while !to_actor.is_closed() {
        let mut online = HashSet::new();
        if let Err(e) = session(&bs, &mesh, &router, &to_actor, &mut online, &mut backoff).await {
            tracing::debug!("signaling session with {} ended: {e}", bs.client.url());
        }
        router.set_server(None);
        // Browsers also on our own `/v1/signal` are still reachable there.
        for peer in online.into_iter().filter(|p| !router.is_local(p)) {
            let _ = to_actor.send(ToActor::Input(Input::SignalPeer { peer, online: false })).await;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn session(
    bs: &Bootstrap,
    mesh: &str,
    router: &SignalRouter,
    to_actor: &mpsc::Sender<ToActor>,
    online: &mut HashSet<PeerId>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let login = async {
        let (sink, mut stream, _) = login(bs, "/v1/signal", mesh).await?;
        match next_msg(&mut stream).await? {
            Some(ServerMsg::Welcome { peers }) => Ok((sink, stream, peers)),
            other => Err(format!("login refused: {other:?}")),
        }
    };
    let (mut sink, mut stream, peers) =
        tokio::time::timeout(LOGIN_TIMEOUT, login).await.map_err(|_| "login timed out".to_owned())??;
    *backoff = Duration::from_secs(1);
    let (tx, mut rx) = mpsc::channel(OUT_QUEUE);
    router.set_server(Some(tx));
    for peer in peers {
        set_online(router, to_actor, online, peer, true).await;
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    loop {
        tokio::select! {
            Some(msg) = rx.recv() => sink.send(text(&msg)).await.map_err(|e| e.to_string())?,
            _ = ping.tick() => sink.send(Message::Ping(Vec::new().into())).await.map_err(|e| e.to_string())?,
            msg = next_msg(&mut stream) => match msg? {
                None => {}
                Some(ServerMsg::PeerJoined { peer_id }) => set_online(router, to_actor, online, peer_id, true).await,
                Some(ServerMsg::PeerLeft { peer_id }) => set_online(router, to_actor, online, peer_id, false).await,
                Some(ServerMsg::Envelope { payload, .. }) => {
                    let delivered = to_actor.send(ToActor::Input(Input::Signal { data: payload })).await;
                    delivered.map_err(|_| "node stopped".to_owned())?;
                }
                Some(ServerMsg::Error { code: SignalError::Replaced, message }) => return Err(message),
                Some(ServerMsg::Error { code, message }) => tracing::debug!("signaling server: {code:?}: {message}"),
                Some(other) => tracing::debug!("unexpected from the signaling server: {other:?}"),
            },
        }
    }
}

async fn set_online(
    router: &SignalRouter,
    to_actor: &mpsc::Sender<ToActor>,
    online: &mut HashSet<PeerId>,
    peer: PeerId,
    up: bool,
) {
    if up && online.len() >= MAX_ONLINE {
        return; // a server listing more than this is not telling us anything useful
    }
    router.server_peer(peer, up);
    let changed = if up { online.insert(peer) } else { online.remove(&peer) };
    if changed && (up || !router.is_local(&peer)) {
        let _ = to_actor.send(ToActor::Input(Input::SignalPeer { peer, online: up })).await;
    }
}

pub(crate) fn text(msg: &ClientMsg) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}

/// The next protocol message: `Ok(None)` for control frames, `Err` when the socket ends.
pub(crate) async fn next_msg<S>(stream: &mut S) -> Result<Option<ServerMsg>, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match stream.next().await {
        Some(Ok(Message::Text(t))) => {
            serde_json::from_str(&t).map(Some).map_err(|e| format!("bad message from the server: {e}"))
        }
        Some(Ok(Message::Close(frame))) => Err(format!("closed by the server: {frame:?}")),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("connection ended".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::ws_url;

    #[test]
    fn websocket_urls_follow_the_scheme() {
        assert_eq!(ws_url("http://127.0.0.1:8080", "/v1/signal"), "ws://127.0.0.1:8080/v1/signal");
        assert_eq!(ws_url("https://mesh.example/", "/v1/relay"), "wss://mesh.example/v1/relay");
    }
}
