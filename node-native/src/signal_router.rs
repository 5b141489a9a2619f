//! Where an envelope for a given PeerId can go outside the mesh: a browser logged in on this
//! node's own `/v1/signal` (`weft run --http`), else the bootstrap server's `/v1/signal` session.
//! Shared by the actor (which sends), the bootstrap signaling task and the local signaling
//! sessions (which keep it current).

use node_core::envelope::Envelope;
use node_core::signal::{ClientMsg, ServerMsg};
use node_core::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::mpsc;

/// What a local signaling session is told to do.
#[derive(Debug)]
pub enum LocalOut {
    /// Send this message to the browser.
    Msg(ServerMsg),
    /// The same PeerId logged in on a newer connection: close this one.
    Replaced,
}

/// A browser on our `/v1/signal`.
struct LocalClient {
    /// Tells a replaced session from its successor.
    session: u64,
    tx: mpsc::Sender<LocalOut>,
}

#[derive(Default)]
struct Local {
    clients: HashMap<PeerId, LocalClient>,
    next_session: u64,
}

/// The routes, behind locks held only to look up or update, never across an await.
#[derive(Default)]
pub struct SignalRouter {
    /// Browsers logged in on this node's `/v1/signal`.
    local: Mutex<Local>,
    /// The bootstrap server session: its outgoing queue and who is online there.
    server: Mutex<Option<(mpsc::Sender<ClientMsg>, HashSet<PeerId>)>>,
    /// The MQTT broker, while connected: it reaches any PeerId.
    broker: Mutex<Option<crate::mqtt::BrokerSender>>,
    /// Messages on our MQTT topic that were not envelopes for us (dropped).
    pub misaddressed: std::sync::atomic::AtomicU64,
    /// Envelopes from the broker dropped because they came faster than the node takes them.
    pub throttled: std::sync::atomic::AtomicU64,
}

/// Why an envelope could not be handed to a channel.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No channel reaches the recipient now.
    NoRoute,
    /// The channel's queue is full (its reader is slow); the envelope is dropped.
    Busy,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SignalRouter {
    /// Hands `envelope` (encoded, from the core) to the channels that reach `to`: a browser on
    /// our `/v1/signal` alone; else the server, if `to` is online there, and the broker, if one
    /// is up (both at once: the recipient drops the second copy by nonce, and whichever path
    /// is up delivers). Never waits.
    pub fn send(&self, to: PeerId, envelope: Vec<u8>) -> Result<(), RouteError> {
        if lock(&self.local).clients.contains_key(&to) {
            // A browser reads `from` off the envelope itself; the field says who signed it.
            let from = Envelope::decode(&envelope).map_err(|_| RouteError::NoRoute)?.from;
            return self.forward_local(from, to, envelope);
        }
        let mut result = Err(RouteError::NoRoute);
        if let Some(broker) = &*lock(&self.broker) {
            result = if broker.publish(&to, envelope.clone()) { Ok(()) } else { Err(RouteError::Busy) };
        }
        if let Some((tx, online)) = &*lock(&self.server) {
            if online.contains(&to) {
                let sent = tx.try_send(ClientMsg::Send { to, payload: envelope }).map_err(|_| RouteError::Busy);
                result = result.or(sent);
            }
        }
        result
    }

    /// The broker connected (`Some`) or went away (`None`).
    pub fn set_broker(&self, sender: Option<crate::mqtt::BrokerSender>) {
        *lock(&self.broker) = sender;
    }

    /// Delivers `payload` from `from` to the local browser `to`.
    pub fn forward_local(&self, from: PeerId, to: PeerId, payload: Vec<u8>) -> Result<(), RouteError> {
        let local = lock(&self.local);
        let client = local.clients.get(&to).ok_or(RouteError::NoRoute)?;
        client.tx.try_send(LocalOut::Msg(ServerMsg::Envelope { from, payload })).map_err(|_| RouteError::Busy)
    }

    /// True when `peer` is a browser logged in on our `/v1/signal`.
    pub fn is_local(&self, peer: &PeerId) -> bool {
        lock(&self.local).clients.contains_key(peer)
    }

    /// True when some channel reaches `peer`: a browser on our `/v1/signal`, or a peer online on
    /// the bootstrap server. A browser may be on both; it is offline only when it left both.
    pub fn reachable(&self, peer: &PeerId) -> bool {
        self.is_local(peer) || lock(&self.server).as_ref().is_some_and(|(_, online)| online.contains(peer))
    }

    /// A browser logged in: registers it (closing an older session of the same PeerId), tells the
    /// other browsers, and returns its session number and the browsers already there.
    pub fn join_local(&self, peer: PeerId, tx: mpsc::Sender<LocalOut>) -> (u64, Vec<PeerId>) {
        let mut local = lock(&self.local);
        local.next_session += 1;
        let session = local.next_session;
        if let Some(old) = local.clients.insert(peer, LocalClient { session, tx }) {
            let _ = old.tx.try_send(LocalOut::Replaced);
        }
        let others: Vec<PeerId> = local.clients.keys().filter(|p| **p != peer).copied().collect();
        for other in &others {
            if let Some(c) = local.clients.get(other) {
                let _ = c.tx.try_send(LocalOut::Msg(ServerMsg::PeerJoined { peer_id: peer }));
            }
        }
        (session, others)
    }

    /// Session `session` of `peer` ended; true if it was the current one (then the others are
    /// told it left). A replaced session's end changes nothing.
    pub fn leave_local(&self, peer: PeerId, session: u64) -> bool {
        let mut local = lock(&self.local);
        if local.clients.get(&peer).is_none_or(|c| c.session != session) {
            return false;
        }
        local.clients.remove(&peer);
        for c in local.clients.values() {
            let _ = c.tx.try_send(LocalOut::Msg(ServerMsg::PeerLeft { peer_id: peer }));
        }
        true
    }

    /// The server session started (`Some`) or ended (`None`).
    pub fn set_server(&self, tx: Option<mpsc::Sender<ClientMsg>>) {
        *lock(&self.server) = tx.map(|t| (t, HashSet::new()));
    }

    /// A peer came online (or went offline) on the server.
    pub fn server_peer(&self, peer: PeerId, online: bool) {
        if let Some((_, set)) = &mut *lock(&self.server) {
            if online {
                set.insert(peer);
            } else {
                set.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::identity::Keypair;

    fn peer(n: u8) -> PeerId {
        Keypair::from_secret([n; 32]).peer_id()
    }

    #[test]
    fn local_browsers_see_each_other_and_a_replaced_session_leaves_nothing_behind() {
        let router = SignalRouter::default();
        let (tx1, mut rx1) = mpsc::channel(8);
        let (s1, others) = router.join_local(peer(1), tx1);
        assert!(others.is_empty());
        let (tx2, _rx2) = mpsc::channel(8);
        let (_, others) = router.join_local(peer(2), tx2);
        assert_eq!(others, vec![peer(1)]);
        assert!(matches!(rx1.try_recv(), Ok(LocalOut::Msg(ServerMsg::PeerJoined { peer_id })) if peer_id == peer(2)));

        // The same browser again: the old session is told to close, and its end is a no-op.
        let (tx1b, _rx1b) = mpsc::channel(8);
        let (s1b, _) = router.join_local(peer(1), tx1b);
        assert!(matches!(rx1.try_recv(), Ok(LocalOut::Replaced)));
        assert!(!router.leave_local(peer(1), s1));
        assert!(router.is_local(&peer(1)));
        assert!(router.leave_local(peer(1), s1b));
        assert!(!router.is_local(&peer(1)));
        assert_eq!(router.forward_local(peer(2), peer(1), vec![1]), Err(RouteError::NoRoute));
    }

    #[test]
    fn a_browser_on_both_channels_stays_reachable_until_it_left_both() {
        let router = SignalRouter::default();
        let (server_tx, _server_rx) = mpsc::channel(8);
        router.set_server(Some(server_tx));
        router.server_peer(peer(1), true);
        let (tx, _rx) = mpsc::channel(8);
        let (session, _) = router.join_local(peer(1), tx);
        assert!(router.leave_local(peer(1), session));
        assert!(router.reachable(&peer(1)), "still online on the server");
        let (tx, _rx) = mpsc::channel(8);
        router.join_local(peer(1), tx);
        router.set_server(None);
        assert!(router.reachable(&peer(1)), "still on our own /v1/signal");
        assert!(!router.reachable(&peer(2)));
    }

    #[test]
    fn a_full_local_queue_is_busy_not_blocking() {
        let router = SignalRouter::default();
        let (tx, _rx) = mpsc::channel(1);
        router.join_local(peer(1), tx);
        assert_eq!(router.forward_local(peer(2), peer(1), vec![1]), Ok(()));
        assert_eq!(router.forward_local(peer(2), peer(1), vec![2]), Err(RouteError::Busy));
    }
}
