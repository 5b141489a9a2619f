//! Hostile peers against a real `weft` process on loopback: forged identities, oversized frames,
//! and garbage on the TCP port.

mod support;

use node_core::identity::Keypair;
use node_core::wire::{self, Capabilities, Hello, Message};
use serde_json::json;
use std::time::Duration;
use support::Weft;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_native::noise;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn keys(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

/// Reads until EOF or error; true if the node closed the connection within `timeout`.
async fn closed_by_node(stream: &mut TcpStream, timeout: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_noise_key_not_bound_to_the_claimed_peer_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Weft::start(dir.path(), "n", &["--no-discovery"]);
    let addr = format!("127.0.0.1:{}", node.tcp_port);
    rt().block_on(async {
        // Claim identity `victim` but sign someone else's Noise static key.
        let victim = keys(1);
        let static_key = noise::generate_static();
        let other_static = noise::generate_static();
        let forged = noise::binding_payload(&victim, &other_static.public);
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let r = noise::initiate_with_payload(&mut s, &static_key, &forged, None).await;
        assert!(r.is_ok(), "our side of the handshake completes; the node judges the binding");
        assert!(closed_by_node(&mut s, Duration::from_secs(5)).await, "the node hangs up");

        // A correct binding for the same identity is accepted (the test can fail both ways).
        let good = noise::binding_payload(&victim, &static_key.public);
        let mut s = TcpStream::connect(&addr).await.unwrap();
        noise::initiate_with_payload(&mut s, &static_key, &good, None).await.unwrap();
        assert!(!closed_by_node(&mut s, Duration::from_millis(500)).await, "an honest peer stays connected");
    });
    assert_eq!(
        node.count(|e| e["event"] == "peer_connected" && e["peer_id"] == keys(1).peer_id().to_string().as_str()),
        0,
        "no link comes up before Hello"
    );
}

#[test]
fn dialing_for_one_peer_id_refuses_a_node_that_proves_another() {
    let dir = tempfile::tempdir().unwrap();
    let node = Weft::start(dir.path(), "n", &["--no-discovery"]);
    let addr = format!("127.0.0.1:{}", node.tcp_port);
    rt().block_on(async {
        let me = keys(2);
        let static_key = noise::generate_static();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let expected = keys(3).peer_id();
        let r = noise::initiate(&mut s, &me, &static_key, Some(expected)).await;
        assert!(matches!(r, Err(noise::HandshakeError::UnexpectedPeer { .. })), "{:?}", r.err());
    });
}

#[test]
fn an_oversized_frame_closes_only_that_link_and_junk_never_stalls_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Weft::start(dir.path(), "n", &["--no-discovery"]);
    let addr = format!("127.0.0.1:{}", node.tcp_port);
    let node_id: node_core::PeerId = node.peer_id.parse().unwrap();
    rt().block_on(async {
        // An authenticated peer that says Hello, then announces a 4 GiB frame.
        let me = keys(4);
        let static_key = noise::generate_static();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let est = noise::initiate(&mut s, &me, &static_key, Some(node_id)).await.unwrap();
        let mut sealer = noise::Sealer::new(est.transport.clone());
        let hello = Message::Hello(Hello {
            protocol_version: wire::PROTOCOL_VERSION,
            peer_id: me.peer_id(),
            name: "big".into(),
            mesh_id: "default".into(),
            listen_port: None,
            listen_addrs: vec![],
            capabilities: Capabilities(0),
        });
        let mut plain = Vec::new();
        wire::frame::encode_frame(&wire::encode(&hello), 1 << 20, &mut plain).unwrap();
        let mut out = Vec::new();
        sealer.seal(&plain, &mut out).unwrap();
        s.write_all(&out).await.unwrap();
        let mut out = Vec::new();
        sealer.seal(&0xffff_fff0u32.to_be_bytes(), &mut out).unwrap();
        s.write_all(&out).await.unwrap();
        assert!(closed_by_node(&mut s, Duration::from_secs(5)).await, "the link is closed");

        // Garbage: random bytes, half handshakes, and idle connections on the TCP port.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut junk = Vec::new();
        for i in 0..300 {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            let mut bytes = vec![0u8; (i * 37) % 3000];
            for b in bytes.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = c.write_all(&bytes).await;
            junk.push(c); // keep some open and silent
            if junk.len() > 40 {
                junk.remove(0);
            }
        }
    });
    // Still works: a new peer links and chats.
    let mut other = Weft::start(dir.path(), "other", &["--no-discovery", "--connect", &addr]);
    let id = other.peer_id.clone();
    assert!(node.wait_peers(Duration::from_secs(20), |p| p.contains(&id)));
    other.send(json!({"cmd": "chat", "text": "after the junk"}));
    assert!(node
        .wait_event(Duration::from_secs(10), |e| e["event"] == "chat" && e["text"] == "after the junk")
        .is_some());
    assert!(node.alive());
}
