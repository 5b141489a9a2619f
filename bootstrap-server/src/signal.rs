//! `GET /v1/signal`: the signaling websocket. A client logs in by signing the server's challenge;
//! then it sends envelopes `{to, payload}` that the server forwards to `to` (if connected) as
//! `{from, payload}` with `from` the authenticated sender, and it hears who of its mesh comes and
//! goes. Payloads are opaque (nodes seal them end to end).

use crate::client_ip::ClientIp;
use crate::metrics::Metrics;
use crate::presence::MAX_LISTED;
use crate::server::AppState;
use crate::session::{self, ConnectionCaps, Login};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use governor::{DefaultDirectRateLimiter, Quota};
use node_core::signal::{ClientMsg, ServerMsg, SignalError, MAX_SIGNAL_PAYLOAD};
use node_core::PeerId;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::mpsc;

/// Signaling limits.
#[derive(Debug, Clone, Copy)]
pub struct SignalLimits {
    /// Open signaling websockets per client address.
    pub connections_per_ip: usize,
    /// Open signaling websockets in all.
    pub connections_total: usize,
    /// Messages per second per connection, sustained.
    pub per_second: NonZeroU32,
    /// Messages per connection at once.
    pub burst: NonZeroU32,
    /// Messages queued for a slow client before envelopes to it are refused.
    pub queue: usize,
}

impl Default for SignalLimits {
    fn default() -> Self {
        const PER_SECOND: NonZeroU32 = NonZeroU32::new(20).unwrap();
        const BURST: NonZeroU32 = NonZeroU32::new(50).unwrap();
        SignalLimits {
            connections_per_ip: 16,
            connections_total: 10_000,
            per_second: PER_SECOND,
            burst: BURST,
            queue: 64,
        }
    }
}

/// The largest websocket message: a maximal payload in base64 plus the JSON around it.
const MAX_MESSAGE: usize = MAX_SIGNAL_PAYLOAD * 4 / 3 + 1024;

enum Outgoing {
    Msg(ServerMsg),
    /// The same PeerId logged in elsewhere.
    Replaced,
}

struct Client {
    id: u64,
    mesh: String,
    tx: mpsc::Sender<Outgoing>,
}

#[derive(Default)]
struct Clients {
    by_peer: BTreeMap<PeerId, Client>,
    meshes: BTreeMap<String, BTreeSet<PeerId>>,
    next_id: u64,
}

/// Every logged-in signaling client.
pub struct SignalHub {
    limits: SignalLimits,
    metrics: Arc<Metrics>,
    caps: Arc<ConnectionCaps>,
    clients: Mutex<Clients>,
}

impl SignalHub {
    /// An empty hub.
    pub fn new(limits: SignalLimits, metrics: Arc<Metrics>) -> Self {
        SignalHub { limits, metrics, caps: Default::default(), clients: Default::default() }
    }

    fn clients(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a logged-in client (replacing an older connection of the same PeerId); returns its
    /// connection id and the others of its mesh.
    fn join(&self, login: &Login, tx: mpsc::Sender<Outgoing>) -> (u64, Vec<PeerId>) {
        let mut c = self.clients();
        c.next_id += 1;
        let id = c.next_id;
        let me = login.peer_id;
        let old = c.by_peer.insert(me, Client { id, mesh: login.mesh_id.clone(), tx });
        if let Some(old) = old {
            let _ = old.tx.try_send(Outgoing::Replaced);
            if let Some(members) = c.meshes.get_mut(&old.mesh) {
                members.remove(&me);
                let remaining: Vec<PeerId> = members.iter().copied().collect();
                if remaining.is_empty() {
                    c.meshes.remove(&old.mesh);
                } else if old.mesh != login.mesh_id {
                    // Moving to another mesh is leaving this one.
                    for peer in remaining {
                        if let Some(client) = c.by_peer.get(&peer) {
                            let _ = client.tx.try_send(Outgoing::Msg(ServerMsg::PeerLeft { peer_id: me }));
                        }
                    }
                }
            }
        }
        let others: Vec<PeerId> = c.meshes.get(&login.mesh_id).into_iter().flatten().copied().collect();
        for peer in &others {
            if let Some(client) = c.by_peer.get(peer) {
                let _ = client.tx.try_send(Outgoing::Msg(ServerMsg::PeerJoined { peer_id: me }));
            }
        }
        c.meshes.entry(login.mesh_id.clone()).or_default().insert(me);
        (id, others.into_iter().take(MAX_LISTED).collect())
    }

    /// Unregisters connection `id` (unless a newer one replaced it) and tells its mesh.
    fn leave(&self, me: &PeerId, id: u64) {
        let mut c = self.clients();
        if c.by_peer.get(me).is_none_or(|client| client.id != id) {
            return;
        }
        let Some(client) = c.by_peer.remove(me) else { return };
        let Some(members) = c.meshes.get_mut(&client.mesh) else { return };
        members.remove(me);
        let others: Vec<PeerId> = members.iter().copied().collect();
        if others.is_empty() {
            c.meshes.remove(&client.mesh);
        }
        for peer in others {
            if let Some(other) = c.by_peer.get(&peer) {
                let _ = other.tx.try_send(Outgoing::Msg(ServerMsg::PeerLeft { peer_id: *me }));
            }
        }
    }

    /// Forwards `payload` from `from` to `to`.
    fn forward(&self, from: PeerId, to: &PeerId, payload: Vec<u8>) -> Result<(), SignalError> {
        let c = self.clients();
        let client = c.by_peer.get(to).ok_or(SignalError::UnknownRecipient)?;
        client
            .tx
            .try_send(Outgoing::Msg(ServerMsg::Envelope { from, payload }))
            .map_err(|_| SignalError::RecipientBusy)?;
        self.metrics.signal_envelopes.inc();
        Ok(())
    }

    /// How many clients are logged in.
    pub fn len(&self) -> usize {
        self.clients().by_peer.len()
    }

    /// True when nobody is logged in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `GET /v1/signal`: upgrades to the signaling websocket.
pub async fn upgrade(State(st): State<AppState>, ip: ClientIp, ws: WebSocketUpgrade) -> Response {
    let Some(slot) = st.signal.caps.take(ip, st.signal.limits.connections_per_ip, st.signal.limits.connections_total)
    else {
        let message = "too many signaling connections from this address, or in all";
        return crate::api::ErrorBody::response(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", message);
    };
    ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE).on_upgrade(move |socket| async move {
        run_session(socket, st).await;
        drop(slot);
    })
}

async fn run_session(mut ws: WebSocket, st: AppState) {
    let Some(login) = session::login(&mut ws, &st).await else { return };
    let hub = st.signal.clone();
    let (tx, mut rx) = mpsc::channel(hub.limits.queue);
    let (id, peers) = hub.join(&login, tx);
    hub.metrics.signal_sessions.inc();
    if session::send(&mut ws, &ServerMsg::Welcome { peers }).await {
        serve(&mut ws, &hub, &login, &mut rx).await;
    }
    hub.leave(&login.peer_id, id);
    hub.metrics.signal_sessions.dec();
}

async fn serve(ws: &mut WebSocket, hub: &SignalHub, login: &Login, rx: &mut mpsc::Receiver<Outgoing>) {
    let limiter =
        DefaultDirectRateLimiter::direct(Quota::per_second(hub.limits.per_second).allow_burst(hub.limits.burst));
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Msg(m)) => {
                    if !session::send(ws, &m).await {
                        return;
                    }
                }
                Some(Outgoing::Replaced) => {
                    session::send_error(ws, SignalError::Replaced, "this PeerId logged in on another connection").await;
                    return;
                }
                None => return,
            },
            incoming = ws.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        session::send_error(ws, SignalError::BadMessage, "signaling speaks JSON text").await;
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                if let Err((code, message)) = handle(hub, login, &limiter, text.as_str()) {
                    if !session::send_error(ws, code, message).await {
                        return;
                    }
                }
            }
        }
    }
}

fn handle(
    hub: &SignalHub,
    login: &Login,
    limiter: &DefaultDirectRateLimiter,
    text: &str,
) -> Result<(), (SignalError, String)> {
    // Every message counts against the rate, malformed ones too (each costs an error frame).
    if limiter.check().is_err() {
        return Err((SignalError::RateLimited, "too many messages; slow down".into()));
    }
    let msg = serde_json::from_str::<ClientMsg>(text).map_err(|e| (SignalError::BadMessage, e.to_string()))?;
    let ClientMsg::Send { to, payload } = msg else {
        return Err((SignalError::BadMessage, "only `send` is accepted after login".into()));
    };
    if payload.len() > MAX_SIGNAL_PAYLOAD {
        return Err((SignalError::TooLarge, format!("payloads are at most {MAX_SIGNAL_PAYLOAD} bytes")));
    }
    hub.forward(login.peer_id, &to, payload).map_err(|code| {
        let message = match code {
            SignalError::UnknownRecipient => format!("{to} is not connected to this server"),
            _ => format!("{to} is not keeping up; envelope not delivered"),
        };
        (code, message)
    })
}
