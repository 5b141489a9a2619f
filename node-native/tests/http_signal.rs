//! A real `weft run --http` process against hostile and honest websocket clients on its
//! `/v1/signal`: junk, oversized frames, forged logins and envelopes signed by the wrong key are
//! each disconnected with the close code that says why, and afterwards the node still serves
//! honest browsers (welcome with the node first, presence, envelopes passed between them).

mod support;

use futures_util::{SinkExt, StreamExt};
use node_core::envelope::{Envelope, RtcSignal, SignalBody};
use node_core::identity::Keypair;
use node_core::signal::{login_bytes, ClientMsg, ServerMsg, MAX_SIGNAL_PAYLOAD};
use node_core::{Instant, PeerId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::Weft;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const MESH: &str = "signal-test";

fn keys(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

fn now() -> Instant {
    Instant::from_unix_ms(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64)
}

fn text(msg: &ClientMsg) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap().into())
}

/// The next protocol message, skipping control frames; panics on close or after 5 s.
async fn next(ws: &mut Ws) -> ServerMsg {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message within 5 s");
        match frame {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("a protocol message"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Reads until the node closes; returns its close code and reason.
async fn close_of(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("the node closes within 5 s");
        match frame {
            Some(Ok(Message::Close(Some(f)))) => return (f.code, f.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the socket failed instead of closing cleanly: {e}"),
        }
    }
}

async fn connect(url: &str) -> Ws {
    // The client may send more than the node accepts: that is the point of some tests.
    let config = WebSocketConfig::default().max_message_size(Some(1 << 22)).max_frame_size(Some(1 << 22));
    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await.expect("connect").0
}

/// Connects and logs in as `who` in `mesh`; returns the socket and the node's challenge key.
async fn login(url: &str, who: &Keypair, mesh: &str) -> (Ws, PeerId) {
    let mut ws = connect(url).await;
    let ServerMsg::Challenge { server_key, nonce } = next(&mut ws).await else { panic!("no challenge") };
    let signature = who.sign(&login_bytes(&server_key, &nonce, &who.peer_id(), mesh));
    ws.send(text(&ClientMsg::Login { peer_id: who.peer_id(), mesh_id: mesh.into(), signature })).await.unwrap();
    (ws, server_key)
}

/// Logs in and expects the welcome; returns the socket and the listed peers.
async fn join(url: &str, who: &Keypair) -> (Ws, Vec<PeerId>) {
    let (mut ws, _) = login(url, who, MESH).await;
    match next(&mut ws).await {
        ServerMsg::Welcome { peers } => (ws, peers),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

fn hangup(from: &Keypair, to: PeerId) -> Envelope {
    let body = SignalBody::Rtc { session: 1, signal: RtcSignal::Hangup { reason: "test".into() } };
    Envelope::seal(from, to, now(), &body, &mut rand::rngs::OsRng).unwrap()
}

#[test]
fn bad_signaling_clients_are_closed_with_a_reason_and_honest_ones_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = Weft::start(
        dir.path(),
        "n",
        &["--no-discovery", "--bind", "127.0.0.1", "--mesh", MESH, "--http", "127.0.0.1:0"],
    );
    let ready = node.wait_event(Duration::from_secs(5), |e| e["event"] == "ready").unwrap();
    let url = format!("ws://{}/v1/signal", ready["http"].as_str().expect("the ready event names the http address"));
    let node_id: PeerId = node.peer_id.parse().unwrap();

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // Garbage instead of a login, and garbage after one.
        let mut ws = connect(&url).await;
        let _challenge = next(&mut ws).await;
        ws.send(Message::Text("hello?".into())).await.unwrap();
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(code, CloseCode::Unsupported, "{reason}");
        assert!(reason.contains("not a signaling message"), "{reason}");

        let (mut ws, _) = join(&url, &keys(1)).await;
        ws.send(Message::Text("{\"type\":\"send\",\"to\":42}".into())).await.unwrap();
        assert_eq!(close_of(&mut ws).await.0, CloseCode::Unsupported);

        let (mut ws, _) = join(&url, &keys(1)).await;
        ws.send(Message::Binary(vec![0u8; 64].into())).await.unwrap();
        assert_eq!(close_of(&mut ws).await.0, CloseCode::Unsupported);

        // Oversized: a frame past the socket's cap, and an envelope past the payload cap.
        let (mut ws, _) = join(&url, &keys(1)).await;
        ws.send(Message::Text("x".repeat(200 * 1024).into())).await.unwrap();
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(code, CloseCode::Size, "{reason}");

        let (mut ws, _) = join(&url, &keys(1)).await;
        let big = ClientMsg::Send { to: node_id, payload: vec![7; MAX_SIGNAL_PAYLOAD + 1] };
        ws.send(text(&big)).await.unwrap();
        assert_eq!(close_of(&mut ws).await.0, CloseCode::Size);

        // Not an envelope at all.
        let (mut ws, _) = join(&url, &keys(1)).await;
        ws.send(text(&ClientMsg::Send { to: node_id, payload: vec![1, 2, 3] })).await.unwrap();
        assert_eq!(close_of(&mut ws).await.0, CloseCode::Unsupported);

        // Logged in as 1, sending an envelope signed by 2.
        let (mut ws, _) = join(&url, &keys(1)).await;
        ws.send(text(&ClientMsg::Send { to: node_id, payload: hangup(&keys(2), node_id).encode() })).await.unwrap();
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(code, CloseCode::Policy, "{reason}");

        // Signed as 1 but tampered with after signing.
        let (mut ws, _) = join(&url, &keys(1)).await;
        let mut env = hangup(&keys(1), node_id);
        env.sealed[0] ^= 1;
        ws.send(text(&ClientMsg::Send { to: node_id, payload: env.encode() })).await.unwrap();
        let (code, reason) = close_of(&mut ws).await;
        assert_eq!(code, CloseCode::Policy);
        assert!(reason.contains("signature"), "{reason}");

        // A login signed by someone else, and a login to another mesh.
        let mut ws = connect(&url).await;
        let ServerMsg::Challenge { server_key, nonce } = next(&mut ws).await else { panic!() };
        assert_eq!(server_key, node_id, "the node challenges with its own key");
        let forged = keys(2).sign(&login_bytes(&server_key, &nonce, &keys(1).peer_id(), MESH));
        ws.send(text(&ClientMsg::Login { peer_id: keys(1).peer_id(), mesh_id: MESH.into(), signature: forged }))
            .await
            .unwrap();
        assert_eq!(close_of(&mut ws).await.0, CloseCode::Policy);

        let (mut ws, _) = login(&url, &keys(1), "elsewhere").await;
        let ServerMsg::Error { message, .. } = next(&mut ws).await else { panic!("an error message first") };
        assert!(message.contains(MESH), "the refusal names the node's mesh: {message}");
        assert_eq!(close_of(&mut ws).await.0, CloseCode::Policy);

        // Another site's page in a visitor's browser, and a rebinding name, are turned away.
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
            other => panic!("a foreign origin must be refused: {:?}", other.map(|_| ())),
        }
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("host", "evil.example".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 421),
            other => panic!("a foreign host name must be refused: {:?}", other.map(|_| ())),
        }
        let own_origin = format!("http://{}", url.trim_start_matches("ws://").trim_end_matches("/v1/signal"));
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("origin", own_origin.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("the node's own origin is welcome");
        assert!(matches!(next(&mut ws).await, ServerMsg::Challenge { .. }));

        // The node still serves honest browsers: the welcome lists the node first, presence
        // flows, and an envelope between two browsers here arrives unchanged and attributed.
        let (mut a, peers) = join(&url, &keys(1)).await;
        assert_eq!(peers, vec![node_id]);
        let (mut b, peers) = join(&url, &keys(3)).await;
        assert_eq!(peers, vec![node_id, keys(1).peer_id()]);
        assert_eq!(next(&mut a).await, ServerMsg::PeerJoined { peer_id: keys(3).peer_id() });
        let env = hangup(&keys(1), keys(3).peer_id()).encode();
        a.send(text(&ClientMsg::Send { to: keys(3).peer_id(), payload: env.clone() })).await.unwrap();
        assert_eq!(next(&mut b).await, ServerMsg::Envelope { from: keys(1).peer_id(), payload: env });
        b.close(None).await.unwrap();
        assert_eq!(next(&mut a).await, ServerMsg::PeerLeft { peer_id: keys(3).peer_id() });
    });
    // And the node itself never blinked.
    assert!(node.events().iter().all(|e| e["event"] != "error"), "{:?}", node.events());
}

#[test]
fn a_web_dir_without_a_page_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(support::weft_bin())
        .args(["run", "--json", "--no-discovery", "--bind", "127.0.0.1", "--http", "127.0.0.1:0", "--web-dir"])
        .arg(dir.path().join("nowhere"))
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("index.html"), "the error says what is missing: {stderr}");
}

#[test]
fn the_local_api_doctor_reports_a_peer_and_refuses_what_is_not_a_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["--no-discovery", "--bind", "127.0.0.1", "--mesh", MESH];
    let a = Weft::start(dir.path(), "a", &[&base[..], &["--http", "127.0.0.1:0"]].concat());
    let ready = a.wait_event(Duration::from_secs(5), |e| e["event"] == "ready").unwrap();
    let http = ready["http"].as_str().unwrap().to_owned();
    let b = Weft::start(dir.path(), "b", &[&base[..], &["--connect", &format!("127.0.0.1:{}", a.tcp_port)]].concat());
    a.wait_event(Duration::from_secs(10), |e| e["event"] == "peer_connected" && e["peer_id"] == b.peer_id)
        .expect("B links to A");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let get = |path: String| {
            let url = format!("http://{http}{path}");
            async move { reqwest::get(url).await.unwrap() }
        };
        let answer = get(format!("/v1/doctor/{}", b.peer_id)).await;
        assert_eq!(answer.status(), 200);
        let d: serde_json::Value = answer.json().await.unwrap();
        assert_eq!((d["peer_id"].as_str(), d["link"].as_str()), (Some(b.peer_id.as_str()), Some("tcp")), "{d}");
        assert!(d["report"].is_null(), "a LAN dial crosses no NAT: nothing to report: {d}");
        assert_eq!(get("/v1/doctor/not-a-peer".into()).await.status(), 400);
    });
}
