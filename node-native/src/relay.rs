//! Relay links: the last resort for two nodes no NAT strategy could join. Both ends log in to the
//! bootstrap server's `/v1/relay` and ask for each other; once the server pairs them, its binary
//! frames carry the same Noise-encrypted stream as a TCP link (the lower PeerId initiates the
//! handshake, both ends require the other's exact key), so the server sees only ciphertext.
//!
//! The websocket is turned into a byte stream by two pump tasks around an in-memory pipe; they
//! end when either the link or the websocket does.

use crate::actor::ToActor;
use crate::bootstrap::signal::{login, next_msg, text, WsSink, WsStream};
use crate::bootstrap::Bootstrap;
use crate::noise;
use crate::stream_link::NewLink;
use crate::tcp::Keys;
use futures_util::{SinkExt, StreamExt};
use node_core::signal::{ClientMsg, ServerMsg};
use node_core::{Input, LinkId, PeerId};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Login, pairing and handshake must finish within this (the server waits up to 60 s for the
/// partner; the core moves on sooner, and closing the link ends this).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes buffered in the pipe each way.
const PIPE: usize = 256 * 1024;
/// Largest binary frame sent (the server takes a chunk plus headroom).
const MAX_SEND: usize = 64 * 1024;

/// Opens a relay link to `peer` for `link`, reporting the result to the actor.
pub fn spawn_relay(
    link: LinkId,
    peer: PeerId,
    bs: Arc<Bootstrap>,
    mesh: String,
    keys: Keys,
    to_actor: mpsc::Sender<ToActor>,
) {
    tokio::spawn(async move {
        let msg = match tokio::time::timeout(SETUP_TIMEOUT, open(peer, &bs, &mesh, &keys)).await {
            Ok(Ok(new)) => ToActor::Outbound(link, new),
            Ok(Err(reason)) => ToActor::Input(Input::LinkFailed { link, reason }),
            Err(_) => ToActor::Input(Input::LinkFailed { link, reason: "the relay did not pair us in time".into() }),
        };
        let _ = to_actor.send(msg).await;
    });
}

async fn open(peer: PeerId, bs: &Bootstrap, mesh: &str, keys: &Keys) -> Result<NewLink, String> {
    let (mut sink, mut stream, remote) = login(bs, "/v1/relay", mesh).await?;
    sink.send(text(&ClientMsg::RelayTo { peer })).await.map_err(|e| e.to_string())?;
    loop {
        match next_msg(&mut stream).await? {
            Some(ServerMsg::RelayReady { peer: p }) if p == peer => break,
            Some(ServerMsg::Error { code, message }) => return Err(format!("the relay refused ({code:?}): {message}")),
            Some(other) => return Err(format!("unexpected from the relay: {other:?}")),
            None => {}
        }
    }
    let (mut mine, pumped) = tokio::io::duplex(PIPE);
    pump(sink, stream, pumped);
    let established = noise::handshake_between(&mut mine, &keys.identity, &keys.noise_static, peer).await?;
    Ok(NewLink::relay(mine, established, remote))
}

/// Moves bytes between the pipe and the websocket until either ends.
fn pump(mut sink: WsSink, mut stream: WsStream, pipe: DuplexStream) {
    let (mut from_link, mut to_link) = tokio::io::split(pipe);
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_SEND];
        loop {
            match from_link.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(data) if to_link.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {} // written above; pings are answered by the websocket itself
            }
        }
        let _ = to_link.shutdown().await;
    });
}
