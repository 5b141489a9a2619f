//! # node-wasm — Weft's browser node
//!
//! The browser driver of [`node_core`]: the node's clock is `Date.now()`, its randomness the
//! browser's CSPRNG, its timers `setTimeout`, and its events go to a JavaScript callback as the
//! same JSON objects `weft --json` prints. The JavaScript API around it (`web/weft.js`: `start`,
//! `chat`, `peers`, `onEvent`, `stop`) keeps the identity in IndexedDB.
//!
//! Links (WebRTC data channels) and signaling arrive in the next steps; this step runs the node
//! itself in the page.

use node_core::{Command, Config, Identity, Instant, Node, Output};
use rand_core::{OsRng, RngCore};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

fn now() -> Instant {
    Instant::from_unix_ms(js_sys::Date::now() as u64)
}

struct Inner {
    node: Node,
    on_event: Option<js_sys::Function>,
    /// The pending `setTimeout`, if any.
    timer: Option<i32>,
    /// What the timer calls: `drive` (a JS function of the closure `WasmNode` keeps alive).
    tick: Option<js_sys::Function>,
    stopped: bool,
}

/// A running browser node.
#[wasm_bindgen]
pub struct WasmNode {
    inner: Rc<RefCell<Inner>>,
    peer_id: String,
    secret: Vec<u8>,
    /// Lives as long as the node, so a pending timer never calls a freed closure (and the timer
    /// is cleared when the node is stopped or freed).
    _tick: Closure<dyn FnMut()>,
}

#[wasm_bindgen]
impl WasmNode {
    /// Starts a node named `name` in mesh `mesh`, with the 32-byte `secret` (a new identity when
    /// it is empty: read it back with [`secret`](Self::secret) to keep it).
    #[wasm_bindgen(constructor)]
    pub fn new(name: String, mesh: String, secret: &[u8]) -> Result<WasmNode, JsError> {
        let keys = match <[u8; 32]>::try_from(secret) {
            Ok(s) => Identity::from_secret(s),
            Err(_) if secret.is_empty() => Identity::generate(&mut OsRng),
            Err(_) => return Err(JsError::new("an identity secret is 32 bytes")),
        };
        if name.len() > node_core::wire::MAX_NAME_LEN || mesh.len() > node_core::wire::MAX_MESH_ID_LEN {
            return Err(JsError::new("the name and the mesh are at most 64 bytes each"));
        }
        let config = Config { name, mesh_id: mesh, lan_discovery: false, tcp_port: None, ..Config::default() };
        let peer_id = keys.peer_id().to_string();
        let secret = keys.secret().to_vec();
        let node = Node::new(config, keys, OsRng.next_u64(), now());
        let inner = Rc::new(RefCell::new(Inner { node, on_event: None, timer: None, tick: None, stopped: false }));
        let weak = Rc::downgrade(&inner);
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.borrow_mut().timer = None;
                drive(&inner);
            }
        });
        inner.borrow_mut().tick = Some(tick.as_ref().unchecked_ref::<js_sys::Function>().clone());
        Ok(WasmNode { inner, peer_id, secret, _tick: tick })
    }

    /// This node's PeerId (text form).
    #[wasm_bindgen(getter, js_name = peerId)]
    pub fn peer_id(&self) -> String {
        self.peer_id.clone()
    }

    /// The identity's secret, to store (IndexedDB) and pass back on the next start.
    #[wasm_bindgen(getter)]
    pub fn secret(&self) -> Vec<u8> {
        self.secret.clone()
    }

    /// Where events go: `callback(event)` with one JSON-shaped object per event.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, callback: js_sys::Function) {
        self.inner.borrow_mut().on_event = Some(callback);
        drive(&self.inner);
    }

    /// Broadcasts a chat message.
    pub fn chat(&self, text: String) -> Result<(), JsError> {
        self.command(Command::Chat { text })
    }

    /// The linked peers, as the `peers` event's `list`.
    pub fn peers(&self) -> JsValue {
        let list = self.inner.borrow().node.peers();
        to_js(&node_core::json::peers(&list)["list"])
    }

    /// Stops the node: no more timers or events.
    pub fn stop(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.stopped = true;
        if let (Some(id), Some(w)) = (inner.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(id);
        }
    }

    fn command(&self, command: Command) -> Result<(), JsError> {
        let r = self.inner.borrow_mut().node.command(now(), command);
        drive(&self.inner);
        r.map(|_| ()).map_err(|e| JsError::new(&e.to_string()))
    }
}

fn to_js(v: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap_or(JsValue::NULL)
}

/// Runs due timers, delivers outputs, and arms `setTimeout` for the next deadline.
fn drive(inner: &Rc<RefCell<Inner>>) {
    let mut events = Vec::new();
    let (callback, next) = {
        let mut i = inner.borrow_mut();
        if i.stopped {
            return;
        }
        let t = now();
        i.node.handle_timeout(t);
        while let Some(out) = i.node.poll_output() {
            if let Output::Event(e) = out {
                events.extend(node_core::json::event(&e));
            }
            // Links, datagrams and dials need the browser's transports (next step).
        }
        (i.on_event.clone(), i.node.poll_timeout())
    };
    if let Some(cb) = callback {
        for e in events {
            let _ = cb.call1(&JsValue::NULL, &to_js(&e));
        }
    }
    arm(inner, next);
}

fn arm(inner: &Rc<RefCell<Inner>>, next: Option<Instant>) {
    let Some(window) = web_sys::window() else { return };
    let mut i = inner.borrow_mut();
    if let Some(id) = i.timer.take() {
        window.clear_timeout_with_handle(id);
    }
    let (Some(next), Some(tick)) = (next, i.tick.clone()) else { return };
    let delay = next.as_micros().saturating_sub(now().as_micros()) / 1000;
    let delay = i32::try_from(delay).unwrap_or(i32::MAX);
    i.timer = window.set_timeout_with_callback_and_timeout_and_arguments_0(&tick, delay).ok();
}

impl Drop for WasmNode {
    fn drop(&mut self) {
        self.stop();
    }
}
