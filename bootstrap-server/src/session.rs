//! What the signaling and relay websockets share: per-address connection caps, the challenge
//! login, and JSON text messages.

use crate::client_ip::ClientIp;
use crate::server::AppState;
use axum::extract::ws::{Message, WebSocket};
use node_core::signal::{login_bytes, ClientMsg, ServerMsg, SignalError, NONCE_LEN};
use node_core::wire::MAX_MESH_ID_LEN;
use node_core::PeerId;
use rand::RngCore;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a client has to log in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one protocol message; false if the socket is gone.
pub async fn send(ws: &mut WebSocket, msg: &ServerMsg) -> bool {
    let text = serde_json::to_string(msg).unwrap_or_default();
    ws.send(Message::Text(text.into())).await.is_ok()
}

/// Sends an error frame.
pub async fn send_error(ws: &mut WebSocket, code: SignalError, message: impl Into<String>) -> bool {
    send(ws, &ServerMsg::Error { code, message: message.into() }).await
}

/// A logged-in client.
#[derive(Debug, Clone)]
pub struct Login {
    /// Who it proved to be.
    pub peer_id: PeerId,
    /// The mesh it joined.
    pub mesh_id: String,
}

/// Runs the challenge login: sends a fresh nonce, waits for a `login` signed over it. Answers the
/// client with an error frame on failure (the caller then closes).
pub async fn login(ws: &mut WebSocket, st: &AppState) -> Option<Login> {
    let mut nonce = vec![0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let server_key = st.keys.peer_id();
    if !send(ws, &ServerMsg::Challenge { server_key, nonce: nonce.clone() }).await {
        return None;
    }
    let first = match tokio::time::timeout(LOGIN_TIMEOUT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<ClientMsg>(text.as_str()).ok(),
        Ok(Some(Ok(_))) => None,
        _ => return None,
    };
    match first {
        Some(ClientMsg::Login { peer_id, mesh_id, signature }) => {
            if mesh_id.len() > MAX_MESH_ID_LEN {
                send_error(ws, SignalError::BadLogin, "the mesh id is too long").await;
                return None;
            }
            if !peer_id.verify(&login_bytes(&server_key, &nonce, &peer_id, &mesh_id), &signature) {
                send_error(ws, SignalError::BadLogin, "the login signature does not verify").await;
                return None;
            }
            Some(Login { peer_id, mesh_id })
        }
        Some(_) => {
            send_error(ws, SignalError::NotLoggedIn, "log in first").await;
            None
        }
        None => {
            send_error(ws, SignalError::BadMessage, "expected a login message (JSON text)").await;
            None
        }
    }
}

/// Counts open websockets per client address and in total, and refuses past the caps.
#[derive(Default)]
pub struct ConnectionCaps {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    per_ip: BTreeMap<IpAddr, usize>,
    total: usize,
}

/// Holds one slot of a [`ConnectionCaps`]; frees it on drop.
pub struct Slot {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl ConnectionCaps {
    /// Takes a slot for `ip` unless it already holds `per_ip`, or `total` are open.
    pub fn take(self: &Arc<Self>, ClientIp(ip): ClientIp, per_ip: usize, total: usize) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= total {
            return None;
        }
        let n = open.per_ip.entry(ip).or_default();
        if *n >= per_ip {
            return None;
        }
        *n += 1;
        open.total += 1;
        Some(Slot { caps: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}
