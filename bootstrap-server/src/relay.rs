//! `GET /v1/relay`: the last resort for two peers no NAT strategy could join. Each logs in (as on
//! `/v1/signal`) and asks for the other with `relay_to`; once both have, the server answers
//! `relay_ready` and forwards their binary frames to each other. The frames are the peers' own
//! encrypted link (Noise), so the relay sees only ciphertext.
//!
//! Limits: websockets per address, sessions per PeerId, and bandwidth per PeerId and per address
//! (token buckets in KiB; a sender over its budget is slowed, not cut).

use crate::client_ip::ClientIp;
use crate::metrics::Metrics;
use crate::server::AppState;
use crate::session::{self, ConnectionCaps, Login, LOGIN_TIMEOUT};
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota};
use node_core::signal::{ClientMsg, ServerMsg, SignalError};
use node_core::wire::MAX_CHUNK_SIZE;
use node_core::PeerId;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Relay limits.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Open relay websockets per client address.
    pub connections_per_ip: usize,
    /// Open relay websockets in all.
    pub connections_total: usize,
    /// Relay sessions (paired or waiting) per PeerId.
    pub sessions_per_peer: usize,
    /// Bandwidth per PeerId, KiB/s (both directions of all its sessions).
    pub kib_per_sec_per_peer: NonZeroU32,
    /// Bandwidth per client address, KiB/s.
    pub kib_per_sec_per_ip: NonZeroU32,
    /// How long a session waits for the other peer to ask.
    pub pair_timeout: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        const PER_PEER: NonZeroU32 = NonZeroU32::new(1024).unwrap();
        const PER_IP: NonZeroU32 = NonZeroU32::new(2048).unwrap();
        RelayLimits {
            connections_per_ip: 8,
            connections_total: 1_000,
            sessions_per_peer: 4,
            kib_per_sec_per_peer: PER_PEER,
            kib_per_sec_per_ip: PER_IP,
            pair_timeout: Duration::from_secs(60),
        }
    }
}

/// The largest frame relayed: a maximal data chunk plus framing.
pub const MAX_RELAY_FRAME: usize = MAX_CHUNK_SIZE as usize + 4096;
/// The largest frame in KiB, the burst of every bandwidth bucket (a frame must always fit).
const MAX_FRAME_KIB: NonZeroU32 = NonZeroU32::new(MAX_RELAY_FRAME.div_ceil(1024) as u32 * 2).unwrap();
/// Frames queued towards one side before its partner is slowed down.
const QUEUE: usize = 16;

struct Waiting {
    id: u64,
    /// Frames for the waiting side.
    to_waiting: mpsc::Sender<Bytes>,
    /// Hands the waiting side its partner's sender.
    pair: oneshot::Sender<mpsc::Sender<Bytes>>,
}

#[derive(Default)]
struct Sessions {
    /// (who waits, for whom).
    waiting: BTreeMap<(PeerId, PeerId), Waiting>,
    per_peer: BTreeMap<PeerId, usize>,
    next_id: u64,
}

/// Relay sessions and budgets.
pub struct RelayHub {
    limits: RelayLimits,
    metrics: Arc<Metrics>,
    caps: Arc<ConnectionCaps>,
    sessions: Mutex<Sessions>,
    peer_budget: DefaultKeyedRateLimiter<PeerId>,
    ip_budget: DefaultKeyedRateLimiter<IpAddr>,
}

/// Frees a session slot on drop.
struct SessionSlot<'a> {
    hub: &'a RelayHub,
    peer: PeerId,
}

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        let mut s = self.hub.sessions();
        if let Some(n) = s.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                s.per_peer.remove(&self.peer);
            }
        }
    }
}

impl RelayHub {
    /// A hub with `limits`.
    pub fn new(limits: RelayLimits, metrics: Arc<Metrics>) -> Self {
        let budget = |kib: NonZeroU32| Quota::per_second(kib).allow_burst(MAX_FRAME_KIB.max(kib));
        RelayHub {
            limits,
            metrics,
            caps: Default::default(),
            sessions: Default::default(),
            peer_budget: DefaultKeyedRateLimiter::keyed(budget(limits.kib_per_sec_per_peer)),
            ip_budget: DefaultKeyedRateLimiter::keyed(budget(limits.kib_per_sec_per_ip)),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self, peer: PeerId) -> Option<SessionSlot<'_>> {
        let mut s = self.sessions();
        let n = s.per_peer.entry(peer).or_default();
        if *n >= self.limits.sessions_per_peer {
            return None;
        }
        *n += 1;
        Some(SessionSlot { hub: self, peer })
    }

    /// Pairs `me` with `peer` if it is waiting for `me`; otherwise registers `me` as waiting.
    fn pair(&self, me: PeerId, peer: PeerId, to_me: mpsc::Sender<Bytes>) -> Pairing {
        let mut s = self.sessions();
        let to_me = match s.waiting.remove(&(peer, me)) {
            Some(w) => match w.pair.send(to_me) {
                Ok(()) => return Pairing::Paired(w.to_waiting),
                // It gave up just now: wait for its next attempt instead.
                Err(to_me) => to_me,
            },
            None => to_me,
        };
        s.next_id += 1;
        let (pair, paired) = oneshot::channel();
        let id = s.next_id;
        // A second wait for the same pair replaces the first (the client reconnected).
        s.waiting.insert((me, peer), Waiting { id, to_waiting: to_me, pair });
        Pairing::Wait(id, paired)
    }

    fn give_up(&self, me: PeerId, peer: PeerId, id: u64) {
        let mut s = self.sessions();
        if s.waiting.get(&(me, peer)).is_some_and(|w| w.id == id) {
            s.waiting.remove(&(me, peer));
        }
    }

    /// Forgets bandwidth buckets that are full again (PeerIds cost nothing to make, so the maps
    /// must not keep every one that ever relayed).
    pub fn shrink(&self) {
        self.peer_budget.retain_recent();
        self.peer_budget.shrink_to_fit();
        self.ip_budget.retain_recent();
        self.ip_budget.shrink_to_fit();
    }

    /// Waits until `ip` and `peer` may send `len` more bytes.
    async fn spend(&self, ip: IpAddr, peer: PeerId, len: usize) {
        let kib = NonZeroU32::new(len.div_ceil(1024) as u32).unwrap_or(NonZeroU32::MIN);
        // `kib` never exceeds the burst (frames are capped at MAX_RELAY_FRAME), so these succeed.
        let _ = self.ip_budget.until_key_n_ready(&ip, kib).await;
        let _ = self.peer_budget.until_key_n_ready(&peer, kib).await;
    }
}

enum Pairing {
    Paired(mpsc::Sender<Bytes>),
    Wait(u64, oneshot::Receiver<mpsc::Sender<Bytes>>),
}

/// `GET /v1/relay`: upgrades to a relay websocket.
pub async fn upgrade(State(st): State<AppState>, ip: ClientIp, ws: WebSocketUpgrade) -> Response {
    let Some(slot) = st.relay.caps.take(ip, st.relay.limits.connections_per_ip, st.relay.limits.connections_total)
    else {
        let message = "too many relay connections from this address, or in all";
        return crate::api::ErrorBody::response(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", message);
    };
    let frame = MAX_RELAY_FRAME + 1024;
    ws.max_message_size(frame).max_frame_size(frame).on_upgrade(move |socket| async move {
        run_session(socket, st, ip.0).await;
        drop(slot);
    })
}

async fn run_session(mut ws: WebSocket, st: AppState, ip: IpAddr) {
    let Some(login) = session::login(&mut ws, &st).await else { return };
    let hub = st.relay.clone();
    let peer = match tokio::time::timeout(LOGIN_TIMEOUT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ClientMsg>(t.as_str()) {
            Ok(ClientMsg::RelayTo { peer }) => peer,
            _ => {
                session::send_error(&mut ws, SignalError::BadMessage, "expected relay_to").await;
                return;
            }
        },
        _ => return,
    };
    let Some(_slot) = hub.open(login.peer_id) else {
        let message = format!("at most {} relay sessions per peer", hub.limits.sessions_per_peer);
        session::send_error(&mut ws, SignalError::RelayLimit, message).await;
        return;
    };
    let (to_me, from_partner) = mpsc::channel(QUEUE);
    let to_partner = match hub.pair(login.peer_id, peer, to_me) {
        Pairing::Paired(tx) => tx,
        Pairing::Wait(id, paired) => match wait_for_partner(&mut ws, paired, hub.limits.pair_timeout).await {
            Waited::Paired(tx) => tx,
            Waited::TimedOut => {
                hub.give_up(login.peer_id, peer, id);
                let message = format!("{peer} did not ask for this relay in time");
                session::send_error(&mut ws, SignalError::UnknownRecipient, message).await;
                return;
            }
            Waited::Spoke => {
                hub.give_up(login.peer_id, peer, id);
                session::send_error(&mut ws, SignalError::BadMessage, "wait for relay_ready before sending").await;
                return;
            }
            Waited::Left => {
                hub.give_up(login.peer_id, peer, id);
                return;
            }
        },
    };
    if !session::send(&mut ws, &ServerMsg::RelayReady { peer }).await {
        return;
    }
    hub.metrics.relay_sessions.inc();
    forward(ws, &hub, &login, ip, to_partner, from_partner).await;
    hub.metrics.relay_sessions.dec();
}

enum Waited {
    Paired(mpsc::Sender<Bytes>),
    TimedOut,
    /// The client sent something before `relay_ready`.
    Spoke,
    /// The client closed.
    Left,
}

/// Waits for the partner, watching the socket so a client that leaves is noticed.
async fn wait_for_partner(
    ws: &mut WebSocket,
    paired: oneshot::Receiver<mpsc::Sender<Bytes>>,
    timeout: Duration,
) -> Waited {
    let wait = tokio::time::timeout(timeout, paired);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            r = &mut wait => return match r {
                Ok(Ok(tx)) => Waited::Paired(tx),
                // Replaced by a newer wait for the same pair, or timed out.
                _ => Waited::TimedOut,
            },
            m = ws.recv() => match m {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Waited::Left,
                Some(Ok(_)) => return Waited::Spoke,
            },
        }
    }
}

/// Both directions concurrently (so neither can block the other), until either side ends.
async fn forward(
    ws: WebSocket,
    hub: &RelayHub,
    login: &Login,
    ip: IpAddr,
    to_partner: mpsc::Sender<Bytes>,
    mut from_partner: mpsc::Receiver<Bytes>,
) {
    let (mut sink, mut stream) = ws.split();
    let upstream = async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(frame) => {
                    hub.spend(ip, login.peer_id, frame.len()).await;
                    let len = frame.len() as u64;
                    if to_partner.send(frame).await.is_err() {
                        return;
                    }
                    hub.metrics.relay_bytes.inc_by(len);
                }
                Message::Close(_) => return,
                _ => {}
            }
        }
    };
    let downstream = async {
        while let Some(frame) = from_partner.recv().await {
            if sink.send(Message::Binary(frame)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
