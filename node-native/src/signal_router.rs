//! Where an envelope for a given PeerId can go outside the mesh: today the bootstrap server's
//! `/v1/signal` session (browsers on the node's own `/v1/signal` join it with `weft run --http`).
//! Shared by the actor (which sends) and the signaling task (which keeps it current).

use node_core::signal::ClientMsg;
use node_core::PeerId;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// The routes, behind a lock held only to look up or update, never across an await.
#[derive(Default)]
pub struct SignalRouter {
    /// The bootstrap server session: its outgoing queue and who is online there.
    server: Mutex<Option<(mpsc::Sender<ClientMsg>, HashSet<PeerId>)>>,
}

/// Why an envelope could not be handed to a channel.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No channel reaches the recipient now.
    NoRoute,
    /// The channel's queue is full (its reader is slow); the envelope is dropped.
    Busy,
}

impl SignalRouter {
    /// Hands `envelope` (encoded) to a channel that reaches `to`. Never waits.
    pub fn send(&self, to: PeerId, envelope: Vec<u8>) -> Result<(), RouteError> {
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        match &*server {
            Some((tx, online)) if online.contains(&to) => {
                tx.try_send(ClientMsg::Send { to, payload: envelope }).map_err(|_| RouteError::Busy)
            }
            _ => Err(RouteError::NoRoute),
        }
    }

    /// The server session started (`Some`) or ended (`None`).
    pub fn set_server(&self, tx: Option<mpsc::Sender<ClientMsg>>) {
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = tx.map(|t| (t, HashSet::new()));
    }

    /// A peer came online (or went offline) on the server.
    pub fn server_peer(&self, peer: PeerId, online: bool) {
        if let Some((_, set)) = &mut *self.server.lock().unwrap_or_else(|e| e.into_inner()) {
            if online {
                set.insert(peer);
            } else {
                set.remove(&peer);
            }
        }
    }
}
