//! The relay websocket on loopback: two peers that ask for each other get joined and their binary
//! frames flow both ways intact and in order; unanswered requests time out; sessions per peer are
//! capped.

mod support;

use bootstrap_server::relay::RelayLimits;
use bootstrap_server::ServerConfig;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use node_core::identity::Keypair;
use node_core::signal::{ClientMsg, ServerMsg, SignalError};
use node_core::PeerId;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use support::ws::{self, closes, connect_from, login, msg, send, Frame, Ws};
use support::{keys, request_from, server, server_with, WAIT};
use tokio_tungstenite::tungstenite::Message;

const PATH: &str = "/v1/relay";
const FRAME: usize = 64 * 1024;
const FRAMES: usize = 16; // 1 MiB each way

/// Connects from `source`, logs in as `keys` and asks for `peer`.
async fn ask(addr: SocketAddr, source: [u8; 4], keys: &Keypair, peer: PeerId) -> Ws {
    let mut c = connect_from(IpAddr::from(source), addr, PATH).await;
    login(&mut c, keys, "m").await;
    send(&mut c, &ClientMsg::RelayTo { peer }).await.unwrap();
    c
}

fn frame(side: u8, i: usize) -> Vec<u8> {
    (0..FRAME).map(|j| (j as u8).wrapping_mul(31) ^ (i as u8) ^ side.wrapping_mul(0x80)).collect()
}

/// The counter's value in the server's Prometheus text.
async fn relay_bytes(addr: SocketAddr) -> u64 {
    let m = request_from([127, 0, 0, 1].into(), addr, "GET", "/metrics", None).await;
    m.body
        .lines()
        .find_map(|l| l.strip_prefix("weft_bootstrap_relay_bytes_total ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no relay_bytes in {}", m.body))
}

async fn pump(tx: &mut SplitSink<Ws, Message>, frames: Vec<Vec<u8>>) {
    for f in frames {
        tx.send(Message::Binary(f.into())).await.unwrap();
    }
}

async fn drain(rx: &mut SplitStream<Ws>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while got.len() < FRAMES {
        match ws::next(rx).await {
            Frame::Binary(b) => got.push(b),
            other => panic!("expected relayed data, got {other:?}"),
        }
    }
    got
}

fn error_code(m: &ServerMsg) -> Option<SignalError> {
    match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn a_relay_carries_a_mebibyte_each_way_at_once_intact_and_in_order() {
    let s = server().await;
    let (ka, kb) = (keys(1), keys(2));
    assert_eq!(relay_bytes(s.addr).await, 0);
    let mut a = ask(s.addr, [127, 0, 0, 1], &ka, kb.peer_id()).await;
    let mut b = ask(s.addr, [127, 0, 0, 2], &kb, ka.peer_id()).await;
    assert_eq!(msg(&mut a).await, ServerMsg::RelayReady { peer: kb.peer_id() });
    assert_eq!(msg(&mut b).await, ServerMsg::RelayReady { peer: ka.peer_id() });

    let (mut a_tx, mut a_rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    let a_frames: Vec<Vec<u8>> = (0..FRAMES).map(|i| frame(0, i)).collect();
    let b_frames: Vec<Vec<u8>> = (0..FRAMES).map(|i| frame(1, i)).collect();
    let ((), (), to_b, to_a) = tokio::join!(
        pump(&mut a_tx, a_frames.clone()),
        pump(&mut b_tx, b_frames.clone()),
        drain(&mut b_rx),
        drain(&mut a_rx)
    );
    assert!(to_b == a_frames, "A's frames reach B intact and in order");
    assert!(to_a == b_frames, "B's frames reach A intact and in order");

    // The counter is bumped just after each frame is handed over, so it may trail the data briefly.
    let want = (2 * FRAMES * FRAME) as u64;
    let deadline = Instant::now() + WAIT;
    while relay_bytes(s.addr).await < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(relay_bytes(s.addr).await, want, "every relayed byte is counted, once");

    // Either side leaving ends the relay for the other.
    let mut a = a_tx.reunite(a_rx).unwrap();
    a.close(None).await.unwrap();
    let mut b = b_tx.reunite(b_rx).unwrap();
    assert!(closes(&mut b).await, "B's relay ends with A's");
}

#[tokio::test]
async fn a_relay_nobody_answers_times_out() {
    let pair_timeout = Duration::from_millis(300);
    let relay = RelayLimits { pair_timeout, ..Default::default() };
    let s = server_with(ServerConfig { relay, ..Default::default() }).await;
    let mut a = ask(s.addr, [127, 0, 0, 1], &keys(1), keys(2).peer_id()).await;
    let asked = Instant::now();
    let m = msg(&mut a).await;
    assert_eq!(error_code(&m), Some(SignalError::UnknownRecipient), "{m:?}");
    assert!(asked.elapsed() >= pair_timeout, "not before the pair timeout: {:?}", asked.elapsed());
    assert!(closes(&mut a).await);
    // The request is gone: B asking now waits (and times out) in turn instead of pairing.
    let mut b = ask(s.addr, [127, 0, 0, 2], &keys(2), keys(1).peer_id()).await;
    let m = msg(&mut b).await;
    assert_eq!(error_code(&m), Some(SignalError::UnknownRecipient), "{m:?}");
}

#[tokio::test]
async fn sessions_per_peer_are_capped() {
    let relay = RelayLimits { sessions_per_peer: 2, ..Default::default() };
    let s = server_with(ServerConfig { relay, ..Default::default() }).await;
    let a = keys(1);
    let others: Vec<Keypair> = (10..14).map(keys).collect();
    // Two paired sessions of A (each partner asks first, so A's answer is immediate).
    let mut open = Vec::new();
    for other in &others[..2] {
        let mut o = ask(s.addr, [127, 0, 0, 2], other, a.peer_id()).await;
        let mut mine = ask(s.addr, [127, 0, 0, 1], &a, other.peer_id()).await;
        assert_eq!(msg(&mut mine).await, ServerMsg::RelayReady { peer: other.peer_id() });
        assert_eq!(msg(&mut o).await, ServerMsg::RelayReady { peer: a.peer_id() });
        open.push((mine, o));
    }
    // A third is refused, even with its partner waiting.
    let mut waiting = ask(s.addr, [127, 0, 0, 2], &others[2], a.peer_id()).await;
    let mut third = ask(s.addr, [127, 0, 0, 1], &a, others[2].peer_id()).await;
    let m = msg(&mut third).await;
    assert_eq!(error_code(&m), Some(SignalError::RelayLimit), "{m:?}");
    assert!(matches!(&m, ServerMsg::Error { message, .. } if message.contains('2')), "{m:?}");
    assert!(closes(&mut third).await);
    // The other peers are not limited by A's count.
    let mut o3 = ask(s.addr, [127, 0, 0, 3], &others[3], others[2].peer_id()).await;
    let mut w3 = ask(s.addr, [127, 0, 0, 2], &others[2], others[3].peer_id()).await;
    assert_eq!(msg(&mut w3).await, ServerMsg::RelayReady { peer: others[3].peer_id() });
    assert_eq!(msg(&mut o3).await, ServerMsg::RelayReady { peer: others[2].peer_id() });

    // Closing one of A's sessions frees its slot (once the server has noticed).
    let (mut mine, _o) = open.remove(0);
    mine.close(None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = ask(s.addr, [127, 0, 0, 1], &a, others[2].peer_id()).await;
        match msg(&mut again).await {
            ServerMsg::RelayReady { peer } => {
                assert_eq!(peer, others[2].peer_id());
                assert_eq!(msg(&mut waiting).await, ServerMsg::RelayReady { peer: a.peer_id() });
                break;
            }
            m if error_code(&m) == Some(SignalError::RelayLimit) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            m => panic!("the slot was never freed: {m:?}"),
        }
    }
}
