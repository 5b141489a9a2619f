//! The node's own `/v1/signal`, for browsers that loaded the page from this node. It speaks the
//! bootstrap server's protocol (challenge, login, welcome, envelopes) with the node's key as the
//! server key, so the same page works against either. The welcome lists the node itself first,
//! then the other browsers logged in here.
//!
//! Envelopes between two browsers here are passed straight across; every other envelope goes to
//! the core, which opens the ones for us and routes the rest over the mesh — that is how a page
//! reaches a node only this one knows. Unlike a bootstrap server, the node checks each envelope
//! before it spends anything on it, and a client that sends anything but well-formed envelopes
//! signed by its own key is disconnected with a close code that says why.

use super::HttpState;
use crate::actor::ToActor;
use crate::signal_router::{LocalOut, RouteError};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::{DefaultDirectRateLimiter, Quota};
use node_core::envelope::Envelope;
use node_core::signal::{login_bytes, ClientMsg, ServerMsg, SignalError, MAX_SIGNAL_PAYLOAD, NONCE_LEN};
use node_core::{Input, PeerId};
use rand::RngCore;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// Open signaling sockets in all: one per browser tab, and a node links to few more peers.
pub const MAX_SESSIONS: usize = 64;
/// Open signaling sockets per client address.
pub const MAX_SESSIONS_PER_IP: usize = 16;
/// The largest websocket message: a maximal envelope in base64 plus the JSON around it.
pub const MAX_MESSAGE: usize = MAX_SIGNAL_PAYLOAD * 4 / 3 + 1024;
/// How long a client has to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle socket is pinged (browsers answer pings by themselves).
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A socket silent this long (not even a pong) is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a write to one client may take before it counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting for one slow client before envelopes to it are refused.
const QUEUE: usize = 64;
/// Sustained messages per second per client: a page negotiating many links at once sends an
/// offer and a few candidates per link.
const PER_SECOND: NonZeroU32 = NonZeroU32::new(50).expect("nonzero");
/// Messages a client may send at once.
const BURST: NonZeroU32 = NonZeroU32::new(200).expect("nonzero");

/// Why the node closed a signaling socket: standard websocket close codes; the reason text (at
/// most 123 bytes) says more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The node is stopping (1001).
    GoingAway = 1001,
    /// Binary data, or text that is not a message of this protocol (1003).
    Unsupported = 1003,
    /// A bad login, another mesh, an envelope signed by another key or not in its clock window,
    /// or a newer session of the same PeerId (1008).
    Policy = 1008,
    /// A message over [`MAX_MESSAGE`] bytes, or a payload over [`MAX_SIGNAL_PAYLOAD`] (1009).
    TooBig = 1009,
}

/// A reason to close, as it goes on the wire.
#[derive(Debug)]
pub struct Close {
    /// The code.
    pub code: CloseCode,
    /// For humans.
    pub reason: String,
    /// The client's frame was refused unread: its bytes are still arriving, and closing the
    /// socket on them makes the kernel reset the connection, which can destroy the close frame
    /// before the client reads it. So the socket stays open for [`LINGER`] first.
    unread: bool,
}

/// How long a socket with unread input stays open after its close frame.
const LINGER: Duration = Duration::from_secs(1);

impl Close {
    fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Close { code, reason: reason.into(), unread: false }
    }

    fn frame(&self) -> CloseFrame {
        // A close frame's reason is at most 123 bytes; cut at a character boundary.
        let mut end = self.reason.len().min(123);
        while !self.reason.is_char_boundary(end) {
            end -= 1;
        }
        CloseFrame { code: self.code as u16, reason: Utf8Bytes::from(&self.reason[..end]) }
    }
}

/// Open sockets per client address and in all.
#[derive(Default)]
pub(crate) struct Sessions {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One open socket's place in [`Sessions`]; freed on drop.
struct Slot {
    state: HttpState,
    ip: IpAddr,
}

impl Sessions {
    fn take(&self, state: &HttpState, ip: IpAddr) -> Option<Slot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = per_ip.values().sum();
        let n = per_ip.entry(ip).or_default();
        if total >= MAX_SESSIONS || *n >= MAX_SESSIONS_PER_IP {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Slot { state: state.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.state.sessions.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// `GET /v1/signal`: upgrades to the signaling websocket.
pub(crate) async fn upgrade(
    State(st): State<HttpState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A page from another site must not join the mesh through a visitor's browser: browsers send
    // `Origin`, and it must be this node's own origin. (Programs that send none are not a
    // visitor's browser, and log in with their own key like anyone.)
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or_default();
        if !authority.eq_ignore_ascii_case(host) {
            let message = format!("pages from {origin} may not use this node's signaling");
            return (StatusCode::FORBIDDEN, message).into_response();
        }
    }
    let Some(slot) = st.sessions.take(&st, addr.ip()) else {
        let message = "too many signaling connections to this node from this address, or in all";
        return (StatusCode::TOO_MANY_REQUESTS, message).into_response();
    };
    // Frames and messages over the cap fail the read; the session answers with `TooBig`.
    ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE).on_upgrade(move |socket| async move {
        run(socket, &st).await;
        drop(slot);
    })
}

async fn run(mut ws: WebSocket, st: &HttpState) {
    let close = match login(&mut ws, st).await {
        Ok(peer) => serve(&mut ws, st, peer).await,
        Err(close) => close,
    };
    if let Some(close) = close {
        tracing::debug!("closing a signaling socket: {close:?}");
        let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Close(Some(close.frame())))).await;
        if close.unread {
            tokio::time::sleep(LINGER).await;
        }
    }
}

/// Sends one message, within [`WRITE_TIMEOUT`]; false if the client is gone or stuck.
async fn send(ws: &mut WebSocket, msg: &ServerMsg) -> bool {
    let text = serde_json::to_string(msg).unwrap_or_default();
    matches!(tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Text(text.into()))).await, Ok(Ok(())))
}

/// The challenge login. `Err(Some(close))` refuses the client; `Err(None)` means it is gone.
async fn login(ws: &mut WebSocket, st: &HttpState) -> Result<PeerId, Option<Close>> {
    let mut nonce = vec![0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let me = st.me;
    if !send(ws, &ServerMsg::Challenge { server_key: me, nonce: nonce.clone() }).await {
        return Err(None);
    }
    let first = match tokio::time::timeout(LOGIN_TIMEOUT, ws.recv()).await {
        Err(_) => return Err(Some(Close::new(CloseCode::Policy, "no login within 10 s"))),
        // A client that left during the login gets no close frame (there is no one to read it).
        Ok(first) => parse(first).map_err(|close| (close.code != CloseCode::GoingAway).then_some(close))?,
    };
    let Some(first) = first else { return Err(Some(Close::new(CloseCode::Policy, "expected a login"))) };
    let ClientMsg::Login { peer_id, mesh_id, signature } = first else {
        return Err(Some(Close::new(CloseCode::Policy, "log in first")));
    };
    if !peer_id.verify(&login_bytes(&me, &nonce, &peer_id, &mesh_id), &signature) {
        return Err(Some(Close::new(CloseCode::Policy, "the login signature does not verify")));
    }
    if mesh_id != st.mesh {
        let reason = format!("this node is in mesh {:?}; join that mesh to link through it", st.mesh);
        let _ = send(ws, &ServerMsg::Error { code: SignalError::BadLogin, message: reason.clone() }).await;
        return Err(Some(Close::new(CloseCode::Policy, reason)));
    }
    if peer_id == me {
        return Err(Some(Close::new(CloseCode::Policy, "that is this node's own key")));
    }
    Ok(peer_id)
}

/// One received frame as a protocol message: `Ok(None)` for control frames, `Err` to close
/// (`Unsupported` for junk, `TooBig` for an oversized frame, `None` when the socket is gone).
fn parse(frame: Option<Result<Message, axum::Error>>) -> Result<Option<ClientMsg>, Close> {
    match frame {
        Some(Ok(Message::Text(text))) => serde_json::from_str::<ClientMsg>(text.as_str())
            .map(Some)
            .map_err(|e| Close::new(CloseCode::Unsupported, format!("not a signaling message: {e}"))),
        Some(Ok(Message::Binary(_))) => Err(Close::new(CloseCode::Unsupported, "signaling speaks JSON text")),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(None),
        Some(Err(e)) if is_too_big(&e) => Err(Close {
            unread: true,
            ..Close::new(CloseCode::TooBig, format!("messages are at most {MAX_MESSAGE} bytes"))
        }),
        Some(Ok(Message::Close(_)) | Err(_)) | None => Err(Close::new(CloseCode::GoingAway, "")),
    }
}

/// True for the read error of a frame or message over the size cap.
fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::Error;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(Error::Capacity(_)) = s.downcast_ref::<Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Serves a logged-in browser until it leaves or misbehaves; returns why to close, if anything.
async fn serve(ws: &mut WebSocket, st: &HttpState, peer: PeerId) -> Option<Close> {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let (session, others) = st.router.join_local(peer, tx);
    let _ = st.to_actor.send(ToActor::Input(Input::SignalPeer { peer, online: true })).await;
    let peers = std::iter::once(st.me).chain(others).collect();
    let close =
        if send(ws, &ServerMsg::Welcome { peers }).await { session_loop(ws, st, peer, &mut rx).await } else { None };
    // Still reachable through the bootstrap server: then it has not gone offline.
    if st.router.leave_local(peer, session) && !st.router.reachable(&peer) {
        let _ = st.to_actor.send(ToActor::Input(Input::SignalPeer { peer, online: false })).await;
    }
    close
}

async fn session_loop(
    ws: &mut WebSocket,
    st: &HttpState,
    peer: PeerId,
    rx: &mut mpsc::Receiver<LocalOut>,
) -> Option<Close> {
    let limiter = DefaultDirectRateLimiter::direct(Quota::per_second(PER_SECOND).allow_burst(BURST));
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(LocalOut::Msg(m)) => if !send(ws, &m).await { return None },
                Some(LocalOut::Replaced) => {
                    // Said as the bootstrap server says it, so a page can tell why it was closed.
                    let message = "this PeerId logged in on another connection";
                    let _ = send(ws, &ServerMsg::Error { code: SignalError::Replaced, message: message.into() }).await;
                    return Some(Close::new(CloseCode::Policy, message));
                }
                None => return None,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return Some(Close::new(CloseCode::GoingAway, "silent for 60 s"));
                }
                let pinged = tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Ping(Default::default()))).await;
                if !matches!(pinged, Ok(Ok(()))) {
                    return None;
                }
            }
            () = st.to_actor.closed() => return Some(Close::new(CloseCode::GoingAway, "the node is stopping")),
            frame = ws.recv() => {
                last_heard = tokio::time::Instant::now();
                let msg = match parse(frame) {
                    Ok(Some(msg)) => msg,
                    Ok(None) => continue,
                    Err(close) if close.code == CloseCode::GoingAway => return None,
                    Err(close) => return Some(close),
                };
                if limiter.check().is_err() {
                    let refused = ServerMsg::Error { code: SignalError::RateLimited, message: "too many messages; slow down".into() };
                    if !send(ws, &refused).await {
                        return None;
                    }
                    continue;
                }
                match deliver(st, peer, msg).await {
                    Ok(()) => {}
                    Err(Refusal::Close(close)) => return Some(close),
                    Err(Refusal::Error(code, message)) => if !send(ws, &ServerMsg::Error { code, message }).await { return None },
                }
            }
        }
    }
}

/// What to do about a message that cannot be delivered.
enum Refusal {
    /// Misbehaviour: disconnect.
    Close(Close),
    /// A routine failure: tell the client, keep the socket.
    Error(SignalError, String),
}

/// Checks one message from `peer` and passes its envelope on: straight to another browser here,
/// or to the core (ours to open, or to route over the mesh).
async fn deliver(st: &HttpState, peer: PeerId, msg: ClientMsg) -> Result<(), Refusal> {
    let ClientMsg::Send { to, payload } = msg else {
        return Err(Refusal::Close(Close::new(CloseCode::Policy, "only `send` is accepted after login")));
    };
    if payload.len() > MAX_SIGNAL_PAYLOAD {
        let reason = format!("envelopes are at most {MAX_SIGNAL_PAYLOAD} bytes");
        return Err(Refusal::Close(Close::new(CloseCode::TooBig, reason)));
    }
    let envelope = Envelope::decode(&payload)
        .map_err(|e| Refusal::Close(Close::new(CloseCode::Unsupported, format!("not an envelope: {e}"))))?;
    if envelope.from != peer {
        let reason = format!("an envelope from {} on the socket of {}", envelope.from.short(), peer.short());
        return Err(Refusal::Close(Close::new(CloseCode::Policy, reason)));
    }
    if envelope.to != to {
        return Err(Refusal::Close(Close::new(CloseCode::Policy, "the envelope is addressed to another peer")));
    }
    envelope
        .verify(st.clock.now())
        .map_err(|e| Refusal::Close(Close::new(CloseCode::Policy, format!("envelope refused: {e}"))))?;
    if st.router.is_local(&to) {
        return st.router.forward_local(peer, to, payload).map_err(|e| match e {
            RouteError::Busy => Refusal::Error(SignalError::RecipientBusy, format!("{} is not keeping up", to.short())),
            RouteError::NoRoute => Refusal::Error(SignalError::UnknownRecipient, format!("{} left", to.short())),
        });
    }
    // Ours, or for the mesh: the core verifies again (it trusts no channel) and routes it.
    st.to_actor
        .send(ToActor::Input(Input::Signal { data: payload }))
        .await
        .map_err(|_| Refusal::Close(Close::new(CloseCode::GoingAway, "the node is stopping")))
}
