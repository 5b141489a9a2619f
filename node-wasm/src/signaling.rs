//! The page's signaling socket: `/v1/signal` of whichever server served it (a bootstrap server
//! or a native node). Logs in with the node's key, tells the core who is reachable, and carries
//! envelopes both ways. When the socket drops, the page hears about it and it reconnects with
//! backoff; links already up do not need it.

use crate::{emit, feed, Inner};
use node_core::identity::Keypair;
use node_core::signal::{login_bytes, ClientMsg, ServerMsg, SignalError};
use node_core::{Input, PeerId};
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Most peers remembered as reachable through the socket.
const MAX_ONLINE: usize = 4096;
/// Longest wait between reconnects.
const MAX_BACKOFF_MS: i32 = 30_000;

/// A signaling socket and what it has told the core.
pub struct Signaling {
    url: String,
    ws: Option<WebSocket>,
    logged_in: bool,
    /// Peers the core was told are reachable through this socket.
    online: BTreeSet<PeerId>,
    backoff_ms: i32,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    /// The pending reconnect: its timer id and the closure it calls (cleared before freeing).
    reconnect: Option<(i32, Closure<dyn FnMut()>)>,
    /// Set when the server said why it is closing and trying again cannot help: then the socket
    /// is not reopened (two tabs of one profile would otherwise take turns replacing each other).
    given_up: Option<&'static str>,
}

impl Signaling {
    /// A socket to `url`, not yet connected.
    pub fn new(url: String) -> Self {
        Signaling {
            url,
            ws: None,
            logged_in: false,
            online: BTreeSet::new(),
            backoff_ms: 1000,
            handlers: Vec::new(),
            reconnect: None,
            given_up: None,
        }
    }

    /// Sends an envelope to `to`; false when the socket is not logged in.
    pub fn send(&self, to: PeerId, payload: Vec<u8>) -> bool {
        match &self.ws {
            Some(ws) if self.logged_in => {
                let text = serde_json::to_string(&ClientMsg::Send { to, payload }).unwrap_or_default();
                ws.send_with_str(&text).is_ok()
            }
            _ => false,
        }
    }

    /// Whether the server listed `peer` as online.
    pub fn reaches(&self, peer: &PeerId) -> bool {
        self.online.contains(peer)
    }

    /// Closes the socket for good (the node stops, or another socket replaces it); returns
    /// the peers it reached, which the core must now count as unreachable.
    pub fn close(&mut self) -> BTreeSet<PeerId> {
        if let Some(ws) = self.ws.take() {
            detach(&ws);
            let _ = ws.close();
        }
        if let (Some((id, _)), Some(w)) = (self.reconnect.take(), web_sys::window()) {
            w.clear_timeout_with_handle(id);
        }
        self.handlers.clear();
        std::mem::take(&mut self.online)
    }
}

fn detach(ws: &WebSocket) {
    ws.set_onmessage(None);
    ws.set_onclose(None);
}

/// Opens (or reopens) the socket of `inner`'s signaling.
pub fn connect(inner: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(inner);
    let mut i = inner.borrow_mut();
    let Some(sig) = i.signaling.as_mut() else { return };
    let ws = match WebSocket::new(&sig.url) {
        Ok(ws) => ws,
        Err(e) => {
            let message = format!("cannot open {}: {e:?}", sig.url);
            drop(i);
            emit(inner, json!({"event": "error", "code": "signaling", "message": message}));
            return;
        }
    };
    let w = weak.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(text) = ev.dyn_into::<MessageEvent>().ok().and_then(|e| e.data().as_string()) else { return };
        match serde_json::from_str::<ServerMsg>(&text) {
            Ok(msg) => on_server_msg(&w, msg),
            Err(e) => {
                emit_weak(&w, json!({"event": "error", "code": "signaling", "message": format!("bad message: {e}")}))
            }
        }
    });
    let w = weak.clone();
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let reason =
            ev.dyn_into::<CloseEvent>().map(|e| format!("code {} {}", e.code(), e.reason())).unwrap_or_default();
        on_lost(&w, reason);
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    sig.handlers = vec![on_message, on_close];
    sig.ws = Some(ws);
    sig.logged_in = false;
}

fn emit_weak(weak: &Weak<RefCell<Inner>>, event: serde_json::Value) {
    if let Some(inner) = weak.upgrade() {
        emit(&inner, event);
    }
}

fn on_server_msg(weak: &Weak<RefCell<Inner>>, msg: ServerMsg) {
    let Some(inner) = weak.upgrade() else { return };
    match msg {
        ServerMsg::Challenge { server_key, nonce } => {
            let i = inner.borrow();
            let keys: &Keypair = &i.keys;
            let me = keys.peer_id();
            let mesh = i.node.config().mesh_id.clone();
            let signature = keys.sign(&login_bytes(&server_key, &nonce, &me, &mesh));
            let login = ClientMsg::Login { peer_id: me, mesh_id: mesh, signature };
            if let Some(ws) = i.signaling.as_ref().and_then(|s| s.ws.as_ref()) {
                let _ = ws.send_with_str(&serde_json::to_string(&login).unwrap_or_default());
            }
        }
        ServerMsg::Welcome { peers } => {
            let url = {
                let mut i = inner.borrow_mut();
                let Some(sig) = i.signaling.as_mut() else { return };
                sig.logged_in = true;
                sig.backoff_ms = 1000;
                sig.url.clone()
            };
            emit(&inner, json!({"event": "signaling", "state": "connected", "url": url, "peers": peers.len()}));
            for peer in peers {
                set_online(weak, peer, true);
            }
        }
        ServerMsg::PeerJoined { peer_id } => set_online(weak, peer_id, true),
        ServerMsg::PeerLeft { peer_id } => set_online(weak, peer_id, false),
        ServerMsg::Envelope { payload, .. } => feed(weak, Input::Signal { data: payload }),
        ServerMsg::Error { code, message } => {
            let final_reason = match code {
                SignalError::Replaced => Some("this identity signed in to signaling from another tab or window"),
                SignalError::BadLogin => Some("the signaling server refused this node's login (another mesh?)"),
                _ => None,
            };
            if let (Some(reason), Some(sig)) = (final_reason, inner.borrow_mut().signaling.as_mut()) {
                sig.given_up = Some(reason);
            }
            let code = serde_json::to_value(code).unwrap_or_default();
            emit(&inner, json!({"event": "error", "code": "signaling", "reason": code, "message": message}));
        }
        ServerMsg::RelayReady { .. } => {}
    }
}

fn set_online(weak: &Weak<RefCell<Inner>>, peer: PeerId, online: bool) {
    let Some(inner) = weak.upgrade() else { return };
    {
        let mut i = inner.borrow_mut();
        let Some(sig) = i.signaling.as_mut() else { return };
        if online && sig.online.len() >= MAX_ONLINE {
            return; // a server listing more than this is not telling us anything useful
        }
        let changed = if online { sig.online.insert(peer) } else { sig.online.remove(&peer) };
        if !changed {
            return;
        }
    }
    feed(weak, Input::SignalPeer { peer, online });
}

/// The socket closed: tell the page and the core, then reconnect after a backoff (unless the
/// server said that would not help).
fn on_lost(weak: &Weak<RefCell<Inner>>, reason: String) {
    let Some(inner) = weak.upgrade() else { return };
    let (was, url, delay, gone, given_up) = {
        let mut i = inner.borrow_mut();
        if i.stopped {
            return;
        }
        let Some(sig) = i.signaling.as_mut() else { return };
        if let Some(ws) = sig.ws.take() {
            detach(&ws);
        }
        let was = std::mem::take(&mut sig.logged_in);
        let delay = sig.backoff_ms;
        sig.backoff_ms = (sig.backoff_ms * 2).min(MAX_BACKOFF_MS);
        (was, sig.url.clone(), delay, std::mem::take(&mut sig.online), sig.given_up)
    };
    if let Some(why) = given_up {
        emit(&inner, json!({"event": "signaling", "state": "stopped", "url": url, "reason": why}));
    } else {
        let state = if was { "lost" } else { "unavailable" };
        emit(&inner, json!({"event": "signaling", "state": state, "url": url, "reason": reason, "retry_ms": delay}));
    }
    for peer in gone {
        feed(weak, Input::SignalPeer { peer, online: false });
    }
    if given_up.is_some() {
        return;
    }
    let w = weak.clone();
    let retry = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = w.upgrade() {
            connect(&inner);
        }
    });
    // A page callback may have stopped the node during `emit`: then there is nothing to retry.
    let mut i = inner.borrow_mut();
    let (Some(sig), Some(window)) = (i.signaling.as_mut(), web_sys::window()) else { return };
    if let Ok(id) = window.set_timeout_with_callback_and_timeout_and_arguments_0(retry.as_ref().unchecked_ref(), delay)
    {
        sig.reconnect = Some((id, retry));
    }
}
