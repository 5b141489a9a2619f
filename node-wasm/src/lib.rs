//! # node-wasm — Weft's browser node
//!
//! The browser driver of [`node_core`]: the node's clock is `Date.now()`, its randomness the
//! browser's CSPRNG, its timers `setTimeout`, and its events go to a JavaScript callback as the
//! same JSON objects `weft --json` prints. The JavaScript API around it (`web/weft.js`: `start`,
//! `chat`, `peers`, `onEvent`, `stop`) keeps the identity in IndexedDB.
//!
//! Links are WebRTC data channels ([`rtc`]), set up through envelopes carried by the page's
//! signaling socket ([`signaling`]) or routed through peers already linked. File chunks are read
//! and written by the page's storage ([`files`]).

mod files;
mod mqtt;
mod rtc;
mod signaling;

pub use files::{Blake3, FileHasher};
use node_core::{Command, Config, FileHash, Identity, Input, Instant, LinkId, Node, Output, PeerId};
use rand_core::{OsRng, RngCore};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;

fn now() -> Instant {
    Instant::from_unix_ms(js_sys::Date::now() as u64)
}

/// Browser peers link to at most this many others (DESIGN: 16 for browsers).
const BROWSER_MAX_PEERS: usize = 16;

pub(crate) struct Inner {
    node: Node,
    /// The identity, for the signaling login.
    keys: Identity,
    links: BTreeMap<LinkId, rtc::BrowserLink>,
    signaling: Option<signaling::Signaling>,
    /// An MQTT broker over websocket, the other signaling channel.
    broker: Option<mqtt::Broker>,
    /// `RTCConfiguration.iceServers` for new connections.
    ice_servers: JsValue,
    on_event: Option<js_sys::Function>,
    /// The page's file storage (`web/files.js`), for offered files and downloads.
    files: Option<JsValue>,
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
        let config = Config {
            name,
            mesh_id: mesh,
            lan_discovery: false,
            tcp_port: None,
            webrtc: true,
            max_peers: BROWSER_MAX_PEERS,
            ..Config::default()
        };
        let peer_id = keys.peer_id().to_string();
        let secret = keys.secret().to_vec();
        let mut node = Node::new(config, keys.clone(), OsRng.next_u64(), now());
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        node.add_entropy(seed);
        let inner = Rc::new(RefCell::new(Inner {
            node,
            keys,
            links: BTreeMap::new(),
            signaling: None,
            broker: None,
            ice_servers: js_sys::Array::new().into(),
            on_event: None,
            files: None,
            timer: None,
            tick: None,
            stopped: false,
        }));
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

    /// Connects the signaling socket (`ws(s)://host/v1/signal`), with `ice_servers` as
    /// `RTCConfiguration.iceServers` for the links it sets up. Reconnects by itself when dropped.
    #[wasm_bindgen(js_name = connectSignal)]
    pub fn connect_signal(&self, url: String, ice_servers: JsValue) {
        let gone = {
            let mut i = self.inner.borrow_mut();
            let gone = i.signaling.take().map(|mut old| old.close()).unwrap_or_default();
            i.signaling = Some(signaling::Signaling::new(url));
            i.ice_servers = ice_servers;
            gone
        };
        let weak = Rc::downgrade(&self.inner);
        for peer in gone {
            feed(&weak, Input::SignalPeer { peer, online: false });
        }
        signaling::connect(&self.inner);
    }

    /// Signals through the MQTT broker at `url` (`ws(s)://host[:port]/path`) too, with
    /// `ice_servers` for the links it sets up. Reconnects by itself when dropped; the page hears
    /// `mqtt` events.
    #[wasm_bindgen(js_name = connectMqtt)]
    pub fn connect_mqtt(&self, url: String, ice_servers: JsValue) -> Result<(), JsError> {
        let mesh = self.inner.borrow().node.config().mesh_id.clone();
        if mesh.is_empty() || mesh.contains(['+', '#', '/', '\0']) {
            return Err(JsError::new("the mesh name has characters MQTT topics reserve (+, #, /)"));
        }
        let was_up = {
            let mut i = self.inner.borrow_mut();
            let was_up = i.broker.take().is_some_and(|mut old| old.close());
            let (mesh, me) = (i.node.config().mesh_id.clone(), i.keys.peer_id());
            i.broker = Some(mqtt::Broker::new(url, &mesh, me));
            i.ice_servers = ice_servers;
            was_up
        };
        if was_up {
            feed(&Rc::downgrade(&self.inner), Input::SignalBroker { up: false });
        }
        mqtt::connect(&self.inner);
        Ok(())
    }

    /// Links to the peer with this PeerId (text form) over WebRTC, through whichever signaling
    /// channel reaches it (a broker reaches anyone).
    #[wasm_bindgen(js_name = connectPeer)]
    pub fn connect_peer(&self, peer: &str) -> Result<(), JsError> {
        self.command(Command::ConnectPeer { peer: parse_peer(peer)? }).map(|_| ())
    }

    /// What this node knows of its connectivity to `peer` (text form): the `doctor` object of
    /// `weft --json` (its link, an attempt under way, the last attempt's report).
    pub fn doctor(&self, peer: &str) -> Result<JsValue, JsError> {
        let peer = parse_peer(peer)?;
        Ok(to_js(&node_core::json::diagnosis(&self.inner.borrow().node.diagnose(&peer))))
    }

    /// Broadcasts a chat message.
    pub fn chat(&self, text: String) -> Result<(), JsError> {
        self.command(Command::Chat { text }).map(|_| ())
    }

    /// Where file chunks are read and written: an object with `read(file, index, offset, len)`
    /// → `Promise<Uint8Array>`, `write(file, index, offset, bytes)` → `Promise`, and
    /// `finalize(file, name, size)` → `Promise<string>` (checks the whole file, returns its
    /// saved name). `file` is the content's BLAKE3 in hex.
    #[wasm_bindgen(js_name = setFiles)]
    pub fn set_files(&self, storage: JsValue) {
        self.inner.borrow_mut().files = Some(storage);
    }

    /// The chunk size offers are hashed with.
    #[wasm_bindgen(getter, js_name = chunkSize)]
    pub fn chunk_size(&self) -> u32 {
        self.inner.borrow().node.config().chunk_size
    }

    /// Offers a file hashed with a [`FileHasher`] to `peer` (queued until a link to it is up);
    /// the `transfer_started` event with this call's result as `command` names the transfer.
    #[wasm_bindgen(js_name = offerFile)]
    pub fn offer_file(
        &self,
        peer: &str,
        name: String,
        size: f64,
        blake3: &str,
        chunk_hashes: &[u8],
    ) -> Result<String, JsError> {
        let to = parse_peer(peer)?;
        let file = parse_hash(blake3)?;
        if !(0.0..=9.0e15).contains(&size) || size.fract() != 0.0 {
            return Err(JsError::new("the size must be a whole number of bytes"));
        }
        let chunk_hashes = chunk_hashes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect();
        let chunk_size = self.chunk_size();
        let id = self.command(Command::OfferFile { to, name, size: size as u64, chunk_size, file, chunk_hashes })?;
        Ok(id.0.to_string())
    }

    /// Accepts an offer; `have` holds one byte per chunk (non-zero: already stored).
    #[wasm_bindgen(js_name = acceptOffer)]
    pub fn accept_offer(&self, from: &str, transfer_id: &str, have: &[u8]) -> Result<(), JsError> {
        let from = parse_peer(from)?;
        let transfer_id = transfer_id.parse().map_err(|_| JsError::new("not a transfer id"))?;
        let have = have.iter().map(|b| *b != 0).collect();
        self.command(Command::AcceptOffer { from, transfer_id, have }).map(|_| ())
    }

    /// Declines an offer.
    #[wasm_bindgen(js_name = declineOffer)]
    pub fn decline_offer(&self, from: &str, transfer_id: &str, reason: String) -> Result<(), JsError> {
        let from = parse_peer(from)?;
        let transfer_id = transfer_id.parse().map_err(|_| JsError::new("not a transfer id"))?;
        self.command(Command::DeclineOffer { from, transfer_id, reason }).map(|_| ())
    }

    /// The linked peers, as the `peers` event's `list`.
    pub fn peers(&self) -> JsValue {
        let list = self.inner.borrow().node.peers();
        to_js(&node_core::json::peers(&list)["list"])
    }

    /// The mesh as this node sees it, as the `map` answer: `{nodes: [{peer_id, name}], links:
    /// [{a, b, link}]}` (this node first; `link` is null for links only a neighbour reported).
    #[wasm_bindgen(js_name = meshMap)]
    pub fn mesh_map(&self) -> JsValue {
        to_js(&node_core::json::mesh_map(&self.inner.borrow().node.mesh_map()))
    }

    /// Stops the node: says goodbye on every link (so peers drop it at once rather than after
    /// the liveness timeout), closes links and signaling; no more timers or events.
    pub fn stop(&self) {
        if self.inner.borrow().stopped {
            return;
        }
        let _ = self.inner.borrow_mut().node.command(now(), Command::Shutdown);
        loop {
            let Some(out) = self.inner.borrow_mut().node.poll_output() else { break };
            if !matches!(out, Output::Event(_)) {
                carry_out(&self.inner, out);
            }
        }
        let mut inner = self.inner.borrow_mut();
        inner.stopped = true;
        inner.tick = None;
        if let Some(mut sig) = inner.signaling.take() {
            sig.close();
        }
        if let Some(mut broker) = inner.broker.take() {
            broker.close();
        }
        inner.links.clear();
        if let (Some(id), Some(w)) = (inner.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(id);
        }
    }

    fn command(&self, command: Command) -> Result<node_core::CommandId, JsError> {
        let r = self.inner.borrow_mut().node.command(now(), command);
        drive(&self.inner);
        r.map_err(|e| JsError::new(&e.to_string()))
    }
}

fn parse_peer(text: &str) -> Result<PeerId, JsError> {
    text.parse().map_err(|_| JsError::new(&format!("not a peer id: {text:?}")))
}

fn parse_hash(text: &str) -> Result<FileHash, JsError> {
    let bytes: Option<Vec<u8>> =
        (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(FileHash)
        .ok_or_else(|| JsError::new("not a BLAKE3 hash (64 hex digits)"))
}

fn to_js(v: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap_or(JsValue::NULL)
}

/// Feeds one input from a browser callback, then drives the node.
pub(crate) fn feed(weak: &Weak<RefCell<Inner>>, input: Input) {
    let Some(inner) = weak.upgrade() else { return };
    {
        let mut i = inner.borrow_mut();
        if i.stopped {
            return;
        }
        if let Input::LinkClosed { link, .. } | Input::LinkFailed { link, .. } = &input {
            // The core sends no CloseLink for a link that ended by itself: release it here.
            // (wasm-bindgen defers freeing a handler that is running, so this is safe from
            // inside the link's own callbacks.)
            i.links.remove(link);
        }
        i.node.handle(now(), input);
    }
    drive(&inner);
}

/// Hands one event object to the page's callback.
pub(crate) fn emit(inner: &Rc<RefCell<Inner>>, event: serde_json::Value) {
    let callback = inner.borrow().on_event.clone();
    if let Some(cb) = callback {
        let _ = cb.call1(&JsValue::NULL, &to_js(&event));
    }
}

/// Runs due timers, carries out every output, and arms `setTimeout` for the next deadline.
/// Each output is handled under a short borrow, so browser calls made on the way never find
/// the node borrowed.
fn drive(inner: &Rc<RefCell<Inner>>) {
    let mut events = Vec::new();
    {
        let mut i = inner.borrow_mut();
        if i.stopped {
            return;
        }
        i.node.handle_timeout(now());
    }
    loop {
        let Some(out) = inner.borrow_mut().node.poll_output() else { break };
        match out {
            Output::Event(e) => events.extend(node_core::json::event(&e)),
            out => carry_out(inner, out),
        }
    }
    let next = inner.borrow().node.poll_timeout();
    for e in events {
        emit(inner, e);
    }
    arm(inner, next);
}

fn carry_out(inner: &Rc<RefCell<Inner>>, out: Output) {
    let mut i = inner.borrow_mut();
    match out {
        Output::SendFrame { link, data } => {
            let ok = i.links.get_mut(&link).is_some_and(|l| l.send(&data));
            if !ok && i.links.remove(&link).is_some() {
                let reason = "send queue full: peer not reading".to_owned();
                i.node.handle(now(), Input::LinkClosed { link, reason });
            }
        }
        Output::CloseLink { link, .. } => {
            i.links.remove(&link);
        }
        Output::OpenRelay { link, .. } | Output::PreparePunch { link, .. } | Output::Punch { link, .. } => {
            let reason = "a browser links over WebRTC only".to_owned();
            i.node.handle(now(), Input::LinkFailed { link, reason });
        }
        Output::OpenRtc { link, peer, offer } => {
            let frame_cap = i.node.config().frame_cap;
            let ice = i.ice_servers.clone();
            match rtc::open(inner, link, peer, offer, &ice, frame_cap) {
                Ok(l) => {
                    i.links.insert(link, l);
                }
                Err(e) => {
                    let reason = format!("cannot create a peer connection: {e:?}");
                    i.node.handle(now(), Input::LinkFailed { link, reason });
                }
            }
        }
        Output::RtcRemote { link, signal } => {
            if let Some(l) = i.links.get_mut(&link) {
                l.remote(signal);
            }
        }
        Output::SendSignal { to, data } => {
            // Every channel that reaches `to`: the recipient drops a second copy by nonce.
            let published = i.broker.as_mut().is_some_and(|b| b.publish(&to, &data));
            if let Some(sig) = i.signaling.as_ref().filter(|s| !published || s.reaches(&to)) {
                sig.send(to, data);
            }
        }
        out @ (Output::ReadChunk { .. } | Output::WriteChunk { .. } | Output::FinalizeDownload { .. }) => {
            files::carry_out(Rc::downgrade(inner), i.files.clone(), out);
        }
        // No UDP and no TCP in the page: these never arise for a browser node's configuration.
        _ => {}
    }
}

fn arm(inner: &Rc<RefCell<Inner>>, next: Option<Instant>) {
    let Some(window) = web_sys::window() else { return };
    let mut i = inner.borrow_mut();
    if let Some(id) = i.timer.take() {
        window.clear_timeout_with_handle(id);
    }
    if i.stopped {
        return; // a page callback stopped the node while its events were being delivered
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
