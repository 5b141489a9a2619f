//! MQTT over websocket as the page's signaling channel (`start({mqtt: 'wss://broker/mqtt'})`):
//! the topics and envelopes of `weft --mqtt` (node-native/src/mqtt.rs). The page subscribes to
//! `weft/v1/<mesh>/<its PeerId>` and publishes envelopes to the recipient's topic, at QoS 1;
//! the broker sees only signed, sealed envelopes. `mqttrs` encodes and decodes the packets; the
//! session (connect, subscribe, acknowledgements, keepalive, reconnect) is here.

use crate::{emit, feed, Inner};
use mqttrs::{Connect, Packet, Pid, Protocol, Publish, QoS, QosPid, Subscribe, SubscribeTopic};
use node_core::envelope::{Envelope, MAX_ENVELOPE_LEN};
use node_core::{Input, PeerId};
use serde_json::json;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// MQTT keepalive, in seconds; a PINGREQ goes out at two thirds of it.
const KEEPALIVE_S: u16 = 30;
/// Longest wait between reconnects.
const MAX_BACKOFF_MS: i32 = 30_000;
/// Room for the topic and MQTT's headers around an envelope.
const PACKET_OVERHEAD: usize = 1024;
/// Most bytes buffered from the broker before a packet completes: one largest publish.
const MAX_BUFFERED: usize = MAX_ENVELOPE_LEN + PACKET_OVERHEAD;

/// The broker connection and its state.
pub struct Broker {
    url: String,
    /// `weft/v1/<mesh>/`.
    prefix: String,
    me: PeerId,
    ws: Option<WebSocket>,
    /// Subscribed to our topic: envelopes can flow.
    up: bool,
    inbuf: Vec<u8>,
    /// Bytes still to discard of an oversized packet (a stranger's, on our topic).
    skip: usize,
    next_pid: Pid,
    backoff_ms: i32,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    /// The keepalive interval: its id and the closure it calls.
    ping: Option<(i32, Closure<dyn FnMut()>)>,
    /// The pending reconnect: its timer id and the closure it calls.
    reconnect: Option<(i32, Closure<dyn FnMut()>)>,
}

impl Broker {
    /// A connection to the broker at `url` for `me` in `mesh`, not yet opened.
    pub fn new(url: String, mesh: &str, me: PeerId) -> Self {
        Broker {
            url,
            prefix: format!("weft/v1/{mesh}/"),
            me,
            ws: None,
            up: false,
            inbuf: Vec::new(),
            skip: 0,
            next_pid: Pid::new(),
            backoff_ms: 1000,
            handlers: Vec::new(),
            ping: None,
            reconnect: None,
        }
    }

    fn topic(&self, peer: &PeerId) -> String {
        format!("{}{peer}", self.prefix)
    }

    /// Publishes an envelope for `to`; false when the broker is not connected, or when the
    /// envelope is not one this node signed (the broker carries only our own).
    pub fn publish(&mut self, to: &PeerId, payload: &[u8]) -> bool {
        if !self.up || !Envelope::decode(payload).is_ok_and(|e| e.from == self.me) {
            return false;
        }
        let pid = self.next_pid;
        self.next_pid = pid + 1;
        let topic = self.topic(to);
        let packet = Packet::Publish(Publish {
            dup: false,
            qospid: QosPid::AtLeastOnce(pid),
            retain: false,
            topic_name: &topic,
            payload,
        });
        self.send(&packet)
    }

    fn send(&self, packet: &Packet) -> bool {
        let Some(ws) = &self.ws else { return false };
        let mut buf = vec![0u8; MAX_BUFFERED];
        match mqttrs::encode_slice(packet, &mut buf) {
            Ok(n) => ws.send_with_u8_array(&buf[..n]).is_ok(),
            Err(_) => false,
        }
    }

    /// Closes the connection for good; true if the broker was up (the core must hear it is not).
    pub fn close(&mut self) -> bool {
        let was = std::mem::take(&mut self.up);
        if let Some(ws) = self.ws.take() {
            detach(&ws);
            let _ = ws.close();
        }
        if let Some(w) = web_sys::window() {
            if let Some((id, _)) = self.reconnect.take() {
                w.clear_timeout_with_handle(id);
            }
            if let Some((id, _)) = self.ping.take() {
                w.clear_interval_with_handle(id);
            }
        }
        self.handlers.clear();
        was
    }
}

fn detach(ws: &WebSocket) {
    ws.set_onopen(None);
    ws.set_onmessage(None);
    ws.set_onclose(None);
}

/// The length of the first MQTT packet in `buf` (fixed header included), once its header is
/// complete; `Err` for a remaining length over four bytes.
fn packet_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(1 + i + 1 + len));
        }
    }
    if buf.len() > 5 {
        Err(())
    } else {
        Ok(None)
    }
}

/// Opens (or reopens) the broker connection of `inner`.
pub fn connect(inner: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(inner);
    let mut i = inner.borrow_mut();
    let Some(b) = i.broker.as_mut() else { return };
    let ws = match WebSocket::new_with_str(&b.url, "mqtt") {
        Ok(ws) => ws,
        Err(e) => {
            let (url, error) = (b.url.clone(), format!("cannot open: {e:?}"));
            drop(i);
            emit(inner, json!({"event": "mqtt", "url": url, "connected": false, "error": error}));
            return;
        }
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    let w = weak.clone();
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| on_open(&w));
    let w = weak.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(data) = ev.dyn_into::<MessageEvent>().ok().map(|e| e.data()) else { return };
        let Ok(buffer) = data.dyn_into::<js_sys::ArrayBuffer>() else { return };
        on_bytes(&w, &js_sys::Uint8Array::new(&buffer).to_vec());
    });
    let w = weak.clone();
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let reason =
            ev.dyn_into::<CloseEvent>().map(|e| format!("code {} {}", e.code(), e.reason())).unwrap_or_default();
        on_lost(&w, reason);
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    b.handlers = vec![on_open, on_message, on_close];
    b.ws = Some(ws);
    b.inbuf.clear();
    b.skip = 0;
}

fn on_open(weak: &Weak<RefCell<Inner>>) {
    let Some(inner) = weak.upgrade() else { return };
    let i = inner.borrow();
    let Some(b) = i.broker.as_ref() else { return };
    // Unique per page load: a broker drops the older of two sessions with one client id.
    let mut nonce = [0u8; 4];
    let _ = getrandom::getrandom(&mut nonce);
    let client_id = format!("weft-{}-{:08x}", b.me.short(), u32::from_le_bytes(nonce));
    b.send(&Packet::Connect(Connect {
        protocol: Protocol::MQTT311,
        keep_alive: KEEPALIVE_S,
        client_id: &client_id,
        clean_session: true,
        last_will: None,
        username: None,
        password: None,
    }));
}

fn on_bytes(weak: &Weak<RefCell<Inner>>, data: &[u8]) {
    let Some(inner) = weak.upgrade() else { return };
    let mut envelopes = Vec::new();
    let mut became_up = false;
    let mut fault = None;
    {
        let mut i = inner.borrow_mut();
        let Some(b) = i.broker.as_mut() else { return };
        // The rest of an oversized packet is dropped as it comes; what follows it is read.
        let dropped = b.skip.min(data.len());
        b.skip -= dropped;
        b.inbuf.extend_from_slice(&data[dropped..]);
        while fault.is_none() {
            let len = match packet_len(&b.inbuf) {
                // Anyone on the broker can publish to our topic: a packet no envelope fits in
                // is skipped, not buffered, and does not cost us the connection.
                Ok(Some(len)) if len > MAX_BUFFERED => {
                    let here = len.min(b.inbuf.len());
                    b.inbuf.drain(..here);
                    b.skip = len - here;
                    continue;
                }
                Ok(Some(len)) if len <= b.inbuf.len() => len,
                Ok(_) => break,
                Err(()) => {
                    fault = Some("the broker sent a malformed packet".to_owned());
                    break;
                }
            };
            let bytes: Vec<u8> = b.inbuf.drain(..len).collect();
            match mqttrs::decode_slice(&bytes) {
                Ok(Some(Packet::Connack(c))) if c.code == mqttrs::ConnectReturnCode::Accepted => {
                    let topic = SubscribeTopic { topic_path: b.topic(&b.me), qos: QoS::AtLeastOnce };
                    let pid = b.next_pid;
                    b.next_pid = pid + 1;
                    b.send(&Packet::Subscribe(Subscribe { pid, topics: vec![topic] }));
                }
                Ok(Some(Packet::Connack(c))) => fault = Some(format!("the broker refused us: {:?}", c.code)),
                Ok(Some(Packet::Suback(ack))) => {
                    if ack.return_codes.iter().all(|c| matches!(c, mqttrs::SubscribeReturnCodes::Success(_))) {
                        b.up = true;
                        b.backoff_ms = 1000;
                        became_up = true;
                    } else {
                        fault = Some("the broker refused the subscription to our topic".to_owned());
                    }
                }
                Ok(Some(Packet::Publish(p))) => {
                    if let QosPid::AtLeastOnce(pid) = p.qospid {
                        b.send(&Packet::Puback(pid));
                    }
                    // Only envelopes for us, on our topic: anything else is someone using us
                    // as a relay.
                    let ours = p.topic_name == b.topic(&b.me);
                    if ours && Envelope::decode(p.payload).is_ok_and(|e| e.to == b.me) {
                        envelopes.push(p.payload.to_vec());
                    }
                }
                Ok(_) => {} // PUBACK, PINGRESP, ...
                Err(e) => fault = Some(format!("the broker sent a malformed packet: {e:?}")),
            }
        }
    }
    if became_up {
        start_pings(&inner);
        let url = inner.borrow().broker.as_ref().map(|b| b.url.clone()).unwrap_or_default();
        emit(&inner, json!({"event": "mqtt", "url": url, "connected": true, "error": null}));
        feed(weak, Input::SignalBroker { up: true });
    }
    for data in envelopes {
        feed(weak, Input::Signal { data });
    }
    if let Some(reason) = fault {
        let ws = inner.borrow_mut().broker.as_mut().and_then(|b| b.ws.take());
        if let Some(ws) = ws {
            detach(&ws);
            let _ = ws.close();
        }
        on_lost(weak, reason);
    }
}

/// Keeps the broker from timing us out: a PINGREQ every two thirds of the keepalive.
fn start_pings(inner: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(inner);
    let ping = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = weak.upgrade() {
            if let Some(b) = inner.borrow().broker.as_ref() {
                b.send(&Packet::Pingreq);
            }
        }
    });
    let mut i = inner.borrow_mut();
    let (Some(b), Some(window)) = (i.broker.as_mut(), web_sys::window()) else { return };
    let every = i32::from(KEEPALIVE_S) * 2000 / 3;
    if let Ok(id) = window.set_interval_with_callback_and_timeout_and_arguments_0(ping.as_ref().unchecked_ref(), every)
    {
        if let Some((old, _)) = b.ping.replace((id, ping)) {
            window.clear_interval_with_handle(old);
        }
    }
}

/// The connection closed or failed: tell the page and the core, then reconnect after a backoff.
fn on_lost(weak: &Weak<RefCell<Inner>>, reason: String) {
    let Some(inner) = weak.upgrade() else { return };
    let (was, url, delay) = {
        let mut i = inner.borrow_mut();
        if i.stopped {
            return;
        }
        let Some(b) = i.broker.as_mut() else { return };
        if let Some(ws) = b.ws.take() {
            detach(&ws);
        }
        if let (Some((id, _)), Some(w)) = (b.ping.take(), web_sys::window()) {
            w.clear_interval_with_handle(id);
        }
        let was = std::mem::take(&mut b.up);
        let delay = b.backoff_ms;
        b.backoff_ms = (b.backoff_ms * 2).min(MAX_BACKOFF_MS);
        (was, b.url.clone(), delay)
    };
    emit(&inner, json!({"event": "mqtt", "url": url, "connected": false, "error": reason, "retry_ms": delay}));
    if was {
        feed(weak, Input::SignalBroker { up: false });
    }
    let w = weak.clone();
    let retry = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = w.upgrade() {
            connect(&inner);
        }
    });
    // A page callback may have stopped the node during `emit`: then there is nothing to retry.
    let mut i = inner.borrow_mut();
    let (Some(b), Some(window)) = (i.broker.as_mut(), web_sys::window()) else { return };
    if let Ok(id) = window.set_timeout_with_callback_and_timeout_and_arguments_0(retry.as_ref().unchecked_ref(), delay)
    {
        b.reconnect = Some((id, retry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_lengths_come_from_the_fixed_header() {
        assert_eq!(packet_len(&[0xd0, 0x00]), Ok(Some(2)), "PINGRESP");
        assert_eq!(packet_len(&[0x30]), Ok(None), "the length is still to come");
        assert_eq!(packet_len(&[0x30, 0x80]), Ok(None), "a longer length is still to come");
        assert_eq!(packet_len(&[0x30, 0xc1, 0x02]), Ok(Some(3 + 321)));
        assert_eq!(packet_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), Err(()), "five length bytes");
    }
}
