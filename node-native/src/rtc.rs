//! WebRTC links to browsers, with the `webrtc` crate: one peer connection and one data channel
//! per link, negotiated through the core's envelopes, then the same reader/writer pair as TCP.
//!
//! Settings that matter (see docs/ARCHITECTURE.md): ICE sockets bound explicitly (a wildcard
//! skips loopback), mDNS off (it needs a multicast interface and queries the LAN), ICE servers
//! only the bootstrap server's STUN, and a bounded send buffer so `send` applies backpressure.
//! This side sends complete descriptions (it waits for its few host candidates to be gathered)
//! and takes the browser's trickled candidates.

use crate::actor::ToActor;
use crate::link::{LinkTasks, LINK_QUEUE};
use crate::rtc_runtime::{BufferedRuntime, UDP_RECEIVE_BUFFER};
use bytes::{BufMut, BytesMut};
use node_core::envelope::{IceCandidate, RtcSignal};
use node_core::wire::fragment::{self, Reassembler};
use node_core::{Direction, Input, LinkId, PeerId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

/// Longest a link may take from `OpenRtc` to an open data channel.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest to wait for local candidates before sending the description anyway.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes a data channel may hold unsent before `send` waits (Chromium's queue is 16 MiB).
const SEND_BUFFER: usize = 4 << 20;
/// Remote signals (answer, candidates) queued for one attempt.
const REMOTE_QUEUE: usize = 64;

/// How this node sets up WebRTC.
#[derive(Debug, Default)]
pub struct RtcSettings {
    /// Local UDP addresses for ICE (port 0: any). Loopback must be listed to be used.
    pub udp_addrs: Vec<SocketAddr>,
    /// `stun:host:port` URLs (the bootstrap server's responder, learned after start); never a
    /// third party's.
    pub stun_urls: std::sync::Mutex<Vec<String>>,
    /// Largest frame accepted.
    pub frame_cap: usize,
}

impl RtcSettings {
    /// ICE addresses for a node listening on `listen`: that address, or for a wildcard every
    /// interface plus loopback (which the crate's wildcard expansion leaves out).
    pub fn udp_addrs_for(listen: SocketAddr) -> Vec<SocketAddr> {
        let ip = listen.ip();
        if !ip.is_unspecified() {
            return vec![SocketAddr::new(ip, 0)];
        }
        vec![SocketAddr::from(([0, 0, 0, 0], 0)), SocketAddr::from(([127, 0, 0, 1], 0))]
    }
}

/// The actor's handle on a link being negotiated.
pub struct RtcAttempt {
    remote: mpsc::Sender<RtcSignal>,
    task: AbortHandle,
    /// Who opened it.
    pub direction: Direction,
}

impl RtcAttempt {
    /// Passes the peer's answer or candidate on; false if the attempt's queue is full or gone.
    pub fn remote(&self, signal: RtcSignal) -> bool {
        self.remote.try_send(signal).is_ok()
    }
}

impl Drop for RtcAttempt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A data channel that opened, ready for the actor to adopt.
pub struct RtcUp {
    /// The link.
    pub link: LinkId,
    /// The peer whose signed description set this connection up.
    pub peer: PeerId,
    /// The link's tasks.
    pub tasks: LinkTasks,
}

/// Starts negotiating `link` with `peer`: as the offerer (`offer` is `None`) or the answerer.
pub fn spawn_attempt(
    link: LinkId,
    peer: PeerId,
    offer: Option<String>,
    settings: Arc<RtcSettings>,
    to_actor: mpsc::Sender<ToActor>,
) -> RtcAttempt {
    let (remote_tx, remote_rx) = mpsc::channel(REMOTE_QUEUE);
    let direction = if offer.is_some() { Direction::Inbound } else { Direction::Outbound };
    let task = tokio::spawn(async move {
        let run = negotiate(link, peer, offer, &settings, remote_rx, to_actor.clone());
        let reason = match tokio::time::timeout(SETUP_TIMEOUT, run).await {
            Ok(Ok(up)) => {
                let _ = to_actor.send(ToActor::RtcUp(up)).await;
                return;
            }
            Ok(Err(reason)) => reason,
            Err(_) => "WebRTC set-up timed out".to_owned(),
        };
        let _ = to_actor.send(ToActor::Input(Input::LinkFailed { link, reason })).await;
    })
    .abort_handle();
    RtcAttempt { remote: remote_tx, task, direction }
}

/// Owns a peer connection and closes it when dropped: the crate's background driver (and its
/// UDP sockets) stops only on `close()`, so every path — failure, timeout, abort, link end —
/// must go through this.
struct Closing(Arc<dyn PeerConnection>);

impl Drop for Closing {
    fn drop(&mut self) {
        let pc = self.0.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Peer-connection events the negotiation waits for.
struct Events {
    gathered: Arc<Notify>,
    channel: mpsc::Sender<Arc<dyn DataChannel>>,
    state: mpsc::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.try_send(state);
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.channel.try_send(dc);
    }
}

fn err(what: &str) -> impl Fn(webrtc::error::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

async fn negotiate(
    link: LinkId,
    peer: PeerId,
    offer: Option<String>,
    settings: &RtcSettings,
    mut remote: mpsc::Receiver<RtcSignal>,
    to_actor: mpsc::Sender<ToActor>,
) -> Result<RtcUp, String> {
    let gathered = Arc::new(Notify::new());
    let (channel_tx, mut channel_rx) = mpsc::channel(1);
    let (state_tx, mut state_rx) = mpsc::channel(16);
    let events = Events { gathered: gathered.clone(), channel: channel_tx, state: state_tx };
    let stun_urls = settings.stun_urls.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ice_servers =
        if stun_urls.is_empty() { Vec::new() } else { vec![RTCIceServer { urls: stun_urls, ..Default::default() }] };
    // The SCTP window (1 MiB) and MTU (1191) stay at the crate's defaults: raising either did not
    // help (docs/BENCHMARKS.md, "Browser data channels").
    let setting_engine =
        SettingEngineBuilder::new().with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled).build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
        .with_setting_engine(setting_engine)
        .with_handler(Arc::new(events))
        .with_runtime(Arc::new(BufferedRuntime::new(UDP_RECEIVE_BUFFER)))
        .with_udp_addrs(settings.udp_addrs.clone())
        .with_data_channel_send_buffer_limit(SEND_BUFFER)
        .build()
        .await
        .map_err(err("cannot create a peer connection"))?;
    let guard = Closing(Arc::new(pc));
    let pc = guard.0.clone();
    let offering = offer.is_none();
    // The offerer makes the channel; the answerer gets it from `on_data_channel`.
    let mut dc: Option<Arc<dyn DataChannel>> = None;
    let description = match offer {
        None => {
            dc = Some(pc.create_data_channel("weft", None).await.map_err(err("cannot create the data channel"))?);
            pc.create_offer(None).await.map_err(err("cannot create an offer"))?
        }
        Some(sdp) => {
            let offer = RTCSessionDescription::offer(sdp).map_err(err("bad offer"))?;
            pc.set_remote_description(offer).await.map_err(err("offer refused"))?;
            pc.create_answer(None).await.map_err(err("cannot create an answer"))?
        }
    };
    pc.set_local_description(description).await.map_err(err("cannot set the local description"))?;
    let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.notified()).await;
    let local = pc.local_description().await.ok_or("no local description")?;
    let signal = if offering { RtcSignal::Offer { sdp: local.sdp } } else { RtcSignal::Answer { sdp: local.sdp } };
    to_actor.send(ToActor::Input(Input::RtcLocal { link, signal })).await.map_err(|_| "node stopped")?;
    // Until the channel opens: apply the peer's answer and candidates, watch the connection.
    loop {
        tokio::select! {
            Some(signal) = remote.recv() => apply_remote(&pc, signal).await?,
            Some(channel) = channel_rx.recv(), if dc.is_none() => dc = Some(channel),
            Some(state) = state_rx.recv() => {
                if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                    return Err(format!("WebRTC connection {state}"));
                }
            }
            event = poll_channel(&dc) => match event {
                Some(DataChannelEvent::OnOpen) => break,
                Some(DataChannelEvent::OnClose) | None => return Err("data channel closed during set-up".into()),
                Some(_) => {}
            },
        }
    }
    let dc = dc.ok_or("no data channel")?;
    drop(pc);
    let tasks = spawn_link_tasks(link, guard, dc, settings.frame_cap, to_actor);
    Ok(RtcUp { link, peer, tasks })
}

async fn poll_channel(dc: &Option<Arc<dyn DataChannel>>) -> Option<DataChannelEvent> {
    match dc {
        Some(dc) => dc.poll().await,
        None => std::future::pending().await,
    }
}

async fn apply_remote(pc: &Arc<dyn PeerConnection>, signal: RtcSignal) -> Result<(), String> {
    match signal {
        RtcSignal::Answer { sdp } => {
            let answer = RTCSessionDescription::answer(sdp).map_err(err("bad answer"))?;
            pc.set_remote_description(answer).await.map_err(err("answer refused"))
        }
        RtcSignal::Candidate(c) => {
            // A candidate this stack cannot use (an mDNS name, say) is not fatal: others may work.
            if let Err(e) = pc.add_ice_candidate(candidate_init(c)).await {
                tracing::debug!("ignoring a remote candidate: {e}");
            }
            Ok(())
        }
        RtcSignal::Offer { .. } | RtcSignal::Hangup { .. } => Ok(()),
    }
}

fn candidate_init(c: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}

/// The reader (data-channel messages → frames → actor) and the writer (frames → pieces → data
/// channel). The reader owns the peer connection, so the connection lives exactly as long as
/// the link: aborting the reader drops it, which closes it.
fn spawn_link_tasks(
    link: LinkId,
    pc: Closing,
    dc: Arc<dyn DataChannel>,
    frame_cap: usize,
    to_actor: mpsc::Sender<ToActor>,
) -> LinkTasks {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(LINK_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_dc = dc.clone();
    let writer_queued = queued.clone();
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            for (flag, body) in fragment::pieces(&frame) {
                // Straight into the message buffer: one copy of each byte before SCTP's own.
                let mut piece = BytesMut::with_capacity(body.len() + 1);
                piece.put_u8(flag);
                piece.extend_from_slice(body);
                if writer_dc.send(piece).await.is_err() {
                    return;
                }
            }
            writer_queued.fetch_sub(frame.len(), Ordering::Relaxed);
        }
        let _ = writer_dc.close().await;
    })
    .abort_handle();
    let reader = tokio::spawn(async move {
        let _pc = pc;
        let mut joiner = Reassembler::new(frame_cap);
        let reason = loop {
            match dc.poll().await {
                Some(DataChannelEvent::OnMessage(msg)) => match joiner.push(&msg.data) {
                    Ok(Some(data)) => {
                        if to_actor.send(ToActor::Input(Input::Frame { link, data })).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => break e.to_string(),
                },
                Some(DataChannelEvent::OnClose) | None => break "data channel closed".to_owned(),
                Some(_) => {}
            }
        };
        let _ = to_actor.send(ToActor::Input(Input::LinkClosed { link, reason })).await;
    })
    .abort_handle();
    LinkTasks::new(tx, queued, reader, writer)
}
