//! WebRTC links in the browser: one `RTCPeerConnection` with one ordered data channel per link.
//!
//! Negotiation runs as one local task per link that applies the peer's answer and candidates in
//! arrival order (a candidate must never be added before the remote description is set). Frames
//! are cut into 64 KiB pieces; sending is paced by `bufferedAmount`, with the excess queued (and
//! bounded) until `bufferedamountlow` fires.

use crate::{feed, Inner};
use futures_channel::mpsc;
use futures_util::StreamExt;
use js_sys::{Reflect, Uint8Array};
use node_core::envelope::{IceCandidate, RtcSignal};
use node_core::wire::fragment::{self, Reassembler};
use node_core::{Direction, Input, LinkId, LinkKind, PeerId};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelType, RtcIceCandidateInit,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};

/// Send straight to the channel while it holds less than this.
const HIGH_WATER: u32 = 4 << 20;
/// `bufferedamountlow` fires below this; queued pieces are then sent.
const LOW_WATER: u32 = 1 << 20;
/// Bytes queued beyond the channel's own buffer before the link counts as stuck.
const MAX_QUEUED: usize = 32 << 20;
/// Remote signals queued for one link's negotiation.
const REMOTE_QUEUE: usize = 64;

/// One link: the connection, its channel once known, and the handlers kept alive with it.
pub struct BrowserLink {
    pc: RtcPeerConnection,
    dc: Option<RtcDataChannel>,
    remote: mpsc::Sender<RtcSignal>,
    joiner: Reassembler,
    queued: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    pc_handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    dc_handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl BrowserLink {
    /// Passes the peer's answer or candidate to the negotiation task.
    pub fn remote(&mut self, signal: RtcSignal) {
        let _ = self.remote.try_send(signal);
    }

    /// Queues one frame; false if the link is stuck (its queue is full) or has no open channel.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        let Some(dc) = &self.dc else { return false };
        for piece in fragment::split(frame) {
            if self.queued.is_empty() && dc.buffered_amount() < HIGH_WATER {
                if dc.send_with_u8_array(&piece).is_err() {
                    return false;
                }
            } else {
                self.queued_bytes += piece.len();
                self.queued.push_back(piece);
            }
        }
        self.queued_bytes <= MAX_QUEUED
    }

    /// Sends queued pieces while the channel has room.
    fn flush(&mut self) {
        let Some(dc) = &self.dc else { return };
        while dc.buffered_amount() < HIGH_WATER {
            let Some(piece) = self.queued.pop_front() else { break };
            self.queued_bytes -= piece.len();
            if dc.send_with_u8_array(&piece).is_err() {
                break;
            }
        }
    }

    /// A message arrived: returns a whole frame when it completes one.
    fn receive(&mut self, piece: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.joiner.push(piece).map_err(|e| e.to_string())
    }
}

impl Drop for BrowserLink {
    fn drop(&mut self) {
        // Detach handlers before their closures are freed, then close.
        if let Some(dc) = &self.dc {
            dc.set_onopen(None);
            dc.set_onmessage(None);
            dc.set_onclose(None);
            dc.set_onbufferedamountlow(None);
            dc.close();
        }
        self.pc.set_onicecandidate(None);
        self.pc.set_ondatachannel(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.close();
    }
}

/// Starts link `link` to `peer`: as the offerer (`offer` is `None`) or the answerer.
pub fn open(
    inner: &Rc<RefCell<Inner>>,
    link: LinkId,
    peer: PeerId,
    offer: Option<String>,
    ice_servers: &JsValue,
    frame_cap: usize,
) -> Result<BrowserLink, JsValue> {
    let config = RtcConfiguration::new();
    config.set_ice_servers(ice_servers);
    let pc = RtcPeerConnection::new_with_configuration(&config)?;
    let (remote_tx, remote_rx) = mpsc::channel(REMOTE_QUEUE);
    let weak = Rc::downgrade(inner);
    let direction = if offer.is_some() { Direction::Inbound } else { Direction::Outbound };
    let mut link_state = BrowserLink {
        pc: pc.clone(),
        dc: None,
        remote: remote_tx,
        joiner: Reassembler::new(frame_cap),
        queued: VecDeque::new(),
        queued_bytes: 0,
        pc_handlers: Vec::new(),
        dc_handlers: Vec::new(),
    };
    // Our trickled candidates go to the peer as they are found.
    let w = weak.clone();
    let on_candidate = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Some(c) = ev.dyn_into::<RtcPeerConnectionIceEvent>().ok().and_then(|e| e.candidate()) else { return };
        let candidate = IceCandidate {
            candidate: c.candidate(),
            sdp_mid: c.sdp_mid(),
            sdp_m_line_index: c.sdp_m_line_index(),
            username_fragment: None,
        };
        if !candidate.candidate.is_empty() {
            feed(&w, Input::RtcLocal { link, signal: RtcSignal::Candidate(candidate) });
        }
    });
    pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
    link_state.pc_handlers.push(on_candidate);
    let w = weak.clone();
    let watched = pc.clone();
    let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if watched.connection_state() == RtcPeerConnectionState::Failed {
            feed(&w, Input::LinkFailed { link, reason: "WebRTC connection failed".into() });
        }
    });
    pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
    link_state.pc_handlers.push(on_state);
    match &offer {
        None => {
            let dc = pc.create_data_channel("weft");
            attach_channel(&weak, &mut link_state, dc, link, peer, direction);
        }
        Some(_) => {
            let w = weak.clone();
            let on_channel = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
                let Ok(ev) = ev.dyn_into::<RtcDataChannelEvent>() else { return };
                let Some(inner) = w.upgrade() else { return };
                let mut i = inner.borrow_mut();
                match i.links.get_mut(&link) {
                    // One channel per link: a second one from the peer is refused.
                    Some(l) if l.dc.is_none() => attach_channel(&w, l, ev.channel(), link, peer, direction),
                    _ => ev.channel().close(),
                }
            });
            pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
            link_state.pc_handlers.push(on_channel);
        }
    }
    wasm_bindgen_futures::spawn_local(negotiate(weak, link, pc, offer, remote_rx));
    Ok(link_state)
}

/// Wires a data channel's events to the node.
fn attach_channel(
    weak: &Weak<RefCell<Inner>>,
    link_state: &mut BrowserLink,
    dc: RtcDataChannel,
    link: LinkId,
    peer: PeerId,
    direction: Direction,
) {
    dc.set_binary_type(RtcDataChannelType::Arraybuffer);
    dc.set_buffered_amount_low_threshold(LOW_WATER);
    let w = weak.clone();
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        let remote_addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        feed(&w, Input::LinkUp { link, peer, direction, remote_addr, kind: LinkKind::WebRtc });
    });
    let w = weak.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Ok(ev) = ev.dyn_into::<MessageEvent>() else { return };
        let piece = Uint8Array::new(&ev.data()).to_vec();
        let Some(inner) = w.upgrade() else { return };
        let got = inner.borrow_mut().links.get_mut(&link).map(|l| l.receive(&piece));
        match got {
            Some(Ok(Some(data))) => feed(&w, Input::Frame { link, data }),
            Some(Err(reason)) => feed(&w, Input::LinkClosed { link, reason }),
            _ => {}
        }
    });
    let w = weak.clone();
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        feed(&w, Input::LinkClosed { link, reason: "data channel closed".into() });
    });
    let w = weak.clone();
    let on_low = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(inner) = w.upgrade() {
            if let Some(l) = inner.borrow_mut().links.get_mut(&link) {
                l.flush();
            }
        }
    });
    dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    dc.set_onbufferedamountlow(Some(on_low.as_ref().unchecked_ref()));
    link_state.dc_handlers.extend([on_open, on_message, on_close, on_low]);
    link_state.dc = Some(dc);
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

/// Makes our description, then applies the peer's answer and candidates in order. Ends when
/// the link is dropped (its signal sender with it).
async fn negotiate(
    weak: Weak<RefCell<Inner>>,
    link: LinkId,
    pc: RtcPeerConnection,
    offer: Option<String>,
    mut remote: mpsc::Receiver<RtcSignal>,
) {
    let run = async {
        let offering = offer.is_none();
        let local = match offer {
            None => JsFuture::from(pc.create_offer()).await?,
            Some(sdp) => {
                JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Offer, &sdp))).await?;
                JsFuture::from(pc.create_answer()).await?
            }
        };
        let sdp = Reflect::get(&local, &"sdp".into())?.as_string().unwrap_or_default();
        let kind = if offering { RtcSdpType::Offer } else { RtcSdpType::Answer };
        JsFuture::from(pc.set_local_description(&description(kind, &sdp))).await?;
        let signal = if offering { RtcSignal::Offer { sdp } } else { RtcSignal::Answer { sdp } };
        feed(&weak, Input::RtcLocal { link, signal });
        while let Some(signal) = remote.next().await {
            match signal {
                RtcSignal::Answer { sdp } => {
                    JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Answer, &sdp))).await?;
                }
                RtcSignal::Candidate(c) => {
                    let init = RtcIceCandidateInit::new(&c.candidate);
                    init.set_sdp_mid(c.sdp_mid.as_deref());
                    init.set_sdp_m_line_index(c.sdp_m_line_index);
                    // One unusable candidate is not fatal: others may work.
                    let _ = JsFuture::from(pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await;
                }
                RtcSignal::Offer { .. } | RtcSignal::Hangup { .. } => {}
            }
        }
        Ok::<(), JsValue>(())
    };
    if let Err(e) = run.await {
        let reason = format!("WebRTC negotiation failed: {}", e.as_string().unwrap_or_else(|| format!("{e:?}")));
        feed(&weak, Input::LinkFailed { link, reason });
    }
}
