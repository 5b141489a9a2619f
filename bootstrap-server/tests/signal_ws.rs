//! The signaling websocket on loopback: challenge login, presence events, envelopes, and every
//! refusal (not logged in, a forged or replayed login, oversized payloads, floods).

mod support;

use node_core::identity::Keypair;
use node_core::signal::{login_bytes, ClientMsg, ServerMsg, SignalError, MAX_SIGNAL_PAYLOAD};
use node_core::PeerId;
use support::keys;
use support::ws::{self, closes, connect, login, msg, send, Ws};

const PATH: &str = "/v1/signal";

/// Logs in as `keys` in `mesh`; returns the socket and the peers the welcome named.
async fn join(addr: std::net::SocketAddr, keys: &Keypair, mesh: &str) -> (Ws, Vec<PeerId>) {
    let mut c = connect(addr, PATH).await;
    login(&mut c, keys, mesh).await;
    match msg(&mut c).await {
        ServerMsg::Welcome { peers } => (c, peers),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

async fn send_to(c: &mut Ws, to: PeerId, payload: Vec<u8>) {
    send(c, &ClientMsg::Send { to, payload }).await.expect("the connection is open");
}

fn error_code(m: &ServerMsg) -> Option<SignalError> {
    match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// The next message must be an envelope from `from`; returns its payload.
async fn envelope_from(c: &mut Ws, from: PeerId) -> Vec<u8> {
    match msg(c).await {
        ServerMsg::Envelope { from: f, payload } if f == from => payload,
        other => panic!("expected an envelope from {from}, got {other:?}"),
    }
}

#[tokio::test]
async fn peers_log_in_hear_each_other_and_exchange_envelopes() {
    let s = support::server().await;
    let (ka, kb, kc) = (keys(1), keys(2), keys(3));
    let (a_id, b_id) = (ka.peer_id(), kb.peer_id());

    let mut a = connect(s.addr, PATH).await;
    assert_eq!(login(&mut a, &ka, "m").await, s.key, "the challenge names the server's key");
    assert_eq!(msg(&mut a).await, ServerMsg::Welcome { peers: vec![] });
    let (mut b, peers) = join(s.addr, &kb, "m").await;
    assert_eq!(peers, [a_id]);
    assert_eq!(msg(&mut a).await, ServerMsg::PeerJoined { peer_id: b_id });
    // Another mesh: its own welcome, and no event for m.
    let (mut c, peers) = join(s.addr, &kc, "other").await;
    assert!(peers.is_empty());

    let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    send_to(&mut a, b_id, payload.clone()).await;
    assert_eq!(envelope_from(&mut b, a_id).await, payload, "byte-identical, from the authenticated sender");
    send_to(&mut b, a_id, b"reply".to_vec()).await;
    assert_eq!(envelope_from(&mut a, b_id).await, b"reply", "nothing (no event about the other mesh) came first");
    let largest: Vec<u8> = (0..MAX_SIGNAL_PAYLOAD).map(|i| (i * 7 % 251) as u8).collect();
    send_to(&mut a, b_id, largest.clone()).await;
    assert_eq!(envelope_from(&mut b, a_id).await, largest, "a payload of exactly the limit goes through");

    let stranger = keys(42).peer_id();
    send_to(&mut a, stranger, b"hello?".to_vec()).await;
    let m = msg(&mut a).await;
    assert_eq!(error_code(&m), Some(SignalError::UnknownRecipient), "{m:?}");
    send_to(&mut a, b_id, b"still open".to_vec()).await;
    assert_eq!(envelope_from(&mut b, a_id).await, b"still open");

    b.close(None).await.unwrap();
    assert_eq!(msg(&mut a).await, ServerMsg::PeerLeft { peer_id: b_id });
    send_to(&mut a, b_id, b"gone".to_vec()).await;
    assert_eq!(error_code(&msg(&mut a).await), Some(SignalError::UnknownRecipient));
    // Envelopes go by PeerId; the mesh only scopes presence events.
    send_to(&mut c, a_id, b"across meshes".to_vec()).await;
    assert_eq!(envelope_from(&mut a, kc.peer_id()).await, b"across meshes");
}

#[tokio::test]
async fn a_second_login_of_the_same_peer_replaces_the_first() {
    let s = support::server().await;
    let (ka, kb) = (keys(1), keys(2));
    let (mut a1, _) = join(s.addr, &ka, "m").await;
    let (mut b, _) = join(s.addr, &kb, "m").await;
    assert_eq!(msg(&mut a1).await, ServerMsg::PeerJoined { peer_id: kb.peer_id() });
    let (mut a2, peers) = join(s.addr, &ka, "m").await;
    assert_eq!(peers, [kb.peer_id()]);
    assert_eq!(error_code(&msg(&mut a1).await), Some(SignalError::Replaced));
    assert!(closes(&mut a1).await);
    assert_eq!(msg(&mut b).await, ServerMsg::PeerJoined { peer_id: ka.peer_id() });
    send_to(&mut b, ka.peer_id(), b"to the new one".to_vec()).await;
    assert_eq!(envelope_from(&mut a2, kb.peer_id()).await, b"to the new one");
}

#[tokio::test]
async fn nothing_is_forwarded_before_a_valid_login() {
    let s = support::server().await;
    let (ka, kb, kx) = (keys(1), keys(2), keys(3));
    let (mut b, _) = join(s.addr, &kb, "m").await;

    // Sending before logging in.
    let mut x = connect(s.addr, PATH).await;
    ws::challenge(&mut x).await;
    send_to(&mut x, kb.peer_id(), b"sneaky".to_vec()).await;
    assert_eq!(error_code(&msg(&mut x).await), Some(SignalError::NotLoggedIn));
    assert!(closes(&mut x).await, "the server hangs up");

    // Signed by X, claiming to be B.
    let mut x = connect(s.addr, PATH).await;
    let (server_key, nonce) = ws::challenge(&mut x).await;
    let claimed = kb.peer_id();
    let signature = kx.sign(&login_bytes(&server_key, &nonce, &claimed, "m"));
    send(&mut x, &ClientMsg::Login { peer_id: claimed, mesh_id: "m".into(), signature }).await.unwrap();
    assert_eq!(error_code(&msg(&mut x).await), Some(SignalError::BadLogin));
    let _ = send(&mut x, &ClientMsg::Send { to: kb.peer_id(), payload: b"as b".to_vec() }).await;
    assert!(closes(&mut x).await, "the server hangs up");

    // A login replayed from another connection (another nonce).
    let mut first = connect(s.addr, PATH).await;
    let (server_key, nonce) = ws::challenge(&mut first).await;
    let signature = kx.sign(&login_bytes(&server_key, &nonce, &kx.peer_id(), "m"));
    let replayed = ClientMsg::Login { peer_id: kx.peer_id(), mesh_id: "m".into(), signature };
    let mut second = connect(s.addr, PATH).await;
    ws::challenge(&mut second).await;
    send(&mut second, &replayed).await.unwrap();
    assert_eq!(error_code(&msg(&mut second).await), Some(SignalError::BadLogin));
    assert!(closes(&mut second).await);
    drop(first);

    // B heard nothing of any of them: not replaced, no joins, no envelopes. The next things it
    // hears are A's arrival and A's envelope.
    let (mut a, peers) = join(s.addr, &ka, "m").await;
    assert_eq!(peers, [kb.peer_id()], "only B is logged in");
    send_to(&mut a, kb.peer_id(), b"marker".to_vec()).await;
    assert_eq!(msg(&mut b).await, ServerMsg::PeerJoined { peer_id: ka.peer_id() });
    assert_eq!(envelope_from(&mut b, ka.peer_id()).await, b"marker");
}

#[tokio::test]
async fn oversized_payloads_are_refused() {
    let s = support::server().await;
    let (ka, kb) = (keys(1), keys(2));
    let (mut a, _) = join(s.addr, &ka, "m").await;
    let (mut b, _) = join(s.addr, &kb, "m").await;
    assert_eq!(msg(&mut a).await, ServerMsg::PeerJoined { peer_id: kb.peer_id() });

    // Just over the payload limit: the message still fits a websocket message; refused, and the
    // connection stays.
    send_to(&mut a, kb.peer_id(), vec![7; MAX_SIGNAL_PAYLOAD + 1]).await;
    assert_eq!(error_code(&msg(&mut a).await), Some(SignalError::TooLarge));
    send_to(&mut a, kb.peer_id(), b"after".to_vec()).await;
    assert_eq!(envelope_from(&mut b, ka.peer_id()).await, b"after", "the oversized one was not forwarded");

    // Far over: the websocket message exceeds the server's maximum, and it hangs up.
    let _ = send(&mut a, &ClientMsg::Send { to: kb.peer_id(), payload: vec![7; 2 * MAX_SIGNAL_PAYLOAD] }).await;
    // No error frame and no close frame (1009) first: the server drops the TCP connection, which
    // the client sees as a reset.
    assert!(closes(&mut a).await, "the server closes a connection whose message is too big");
    assert_eq!(msg(&mut b).await, ServerMsg::PeerLeft { peer_id: ka.peer_id() }, "and nothing was forwarded");
}

#[tokio::test]
async fn a_flood_of_envelopes_is_rate_limited() {
    let s = support::server().await;
    let (ka, kb) = (keys(1), keys(2));
    let (mut a, _) = join(s.addr, &ka, "m").await;
    let (mut b, _) = join(s.addr, &kb, "m").await;
    assert_eq!(msg(&mut a).await, ServerMsg::PeerJoined { peer_id: kb.peer_id() });

    // Every message of the flood has exactly one outcome: forwarded to B, or an error to A.
    const FLOOD: usize = 120;
    for i in 0..FLOOD {
        send_to(&mut a, kb.peer_id(), (i as u32).to_be_bytes().to_vec()).await;
    }
    let (mut refused, mut got) = (Vec::new(), Vec::new());
    while refused.len() + got.len() < FLOOD {
        tokio::select! {
            m = msg(&mut a) => match m {
                ServerMsg::Error { code, .. } => refused.push(code),
                other => panic!("unexpected {other:?}"),
            },
            p = envelope_from(&mut b, ka.peer_id()) => got.push(u32::from_be_bytes(p.try_into().unwrap())),
        }
    }
    let limited = refused.iter().filter(|c| **c == SignalError::RateLimited).count();
    assert!(limited > 0, "a flood of {FLOOD} is limited: {refused:?}");
    assert!(got.len() >= 50, "the burst (50) goes through: only {}", got.len());
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    assert_eq!(got[..50], (0..50).collect::<Vec<u32>>()[..], "the first 50 are the burst");

    // Once the bucket has refilled, an envelope goes through again, and it is the next thing B
    // hears: nothing refused was forwarded late.
    loop {
        // Let the bucket refill (20 per second) before trying; not a timing assertion.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        send_to(&mut a, kb.peer_id(), b"end".to_vec()).await;
        tokio::select! {
            m = msg(&mut a) => assert_eq!(error_code(&m), Some(SignalError::RateLimited), "{m:?}"),
            p = envelope_from(&mut b, ka.peer_id()) => {
                assert_eq!(p, b"end");
                break;
            }
        }
    }
}

/// A peer that logs in again (a new connection replaces the old one) in another mesh has left the
/// first mesh: its members must hear `peer_left`, as they would had it disconnected, so that their
/// view agrees with what a newcomer's welcome says.
#[tokio::test]
async fn moving_to_another_mesh_by_logging_in_again_is_a_departure() {
    let s = support::server().await;
    let (ka, kb, kc) = (keys(1), keys(2), keys(3));
    let (mut a, _) = join(s.addr, &ka, "m").await;
    let (mut b_in_m, _) = join(s.addr, &kb, "m").await;
    assert_eq!(msg(&mut a).await, ServerMsg::PeerJoined { peer_id: kb.peer_id() });

    let (_b_in_n, peers) = join(s.addr, &kb, "n").await;
    assert!(peers.is_empty());
    assert_eq!(error_code(&msg(&mut b_in_m).await), Some(SignalError::Replaced));
    // A newcomer to m is told only A is there...
    let (_c, peers) = join(s.addr, &kc, "m").await;
    assert_eq!(peers, [ka.peer_id()]);
    // ...so A must have heard that B left before it hears that C came.
    assert_eq!(msg(&mut a).await, ServerMsg::PeerLeft { peer_id: kb.peer_id() }, "B still listed in m for A");
    assert_eq!(msg(&mut a).await, ServerMsg::PeerJoined { peer_id: kc.peer_id() });
}

#[tokio::test]
async fn signaling_connections_per_address_are_capped() {
    use bootstrap_server::signal::SignalLimits;
    let signal = SignalLimits { connections_per_ip: 2, ..Default::default() };
    let s = support::server_with(bootstrap_server::ServerConfig { signal, ..Default::default() }).await;
    let source = std::net::IpAddr::from([127, 0, 0, 9]);
    let mut first = ws::connect_from(source, s.addr, PATH).await;
    ws::challenge(&mut first).await;
    let _second = ws::connect_from(source, s.addr, PATH).await;
    let refused = refused_upgrade(source, s.addr).await;
    assert_eq!(refused.0, 429);
    assert!(refused.1.contains("too_many_connections"), "{}", refused.1);
    // Another address is not affected, and a closed connection frees its slot.
    let _other = ws::connect_from([127, 0, 0, 10].into(), s.addr, PATH).await;
    first.close(None).await.unwrap();
    assert!(closes(&mut first).await);
    let deadline = std::time::Instant::now() + support::WAIT;
    while refused_upgrade(source, s.addr).await.0 == 429 {
        assert!(std::time::Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Tries a websocket upgrade from `source`; (HTTP status, body) of the answer (101 on success).
async fn refused_upgrade(source: std::net::IpAddr, addr: std::net::SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let head = "GET /v1/signal HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    // Until the head is complete and, unless switching protocols, the JSON body with it.
    let mut text = String::new();
    let mut buf = vec![0u8; 4096];
    while !(text.contains("\r\n\r\n") && (text.contains(" 101 ") || text.ends_with('}'))) {
        let n = tokio::time::timeout(support::WAIT, s.read(&mut buf)).await.expect("no answer").unwrap();
        assert!(n > 0, "closed mid-answer: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}
