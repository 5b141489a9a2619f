//! MQTT signaling against a real broker (Debian's mosquitto on loopback; skips with a reason
//! where it is not installed, fails under CI=true): two `weft` nodes that share only the broker
//! link by PeerId; the broker sees only ciphertext; replayed, forged and misaddressed envelopes
//! published on a node's topic are dropped.

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use support::mosquitto::{accepts, Mosquitto, Watcher};
use support::Weft;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `w`'s drop counters, fresh.
fn stats(w: &mut Weft) -> Value {
    let is_stats = |e: &Value| e["event"] == "stats";
    let before = w.count(is_stats);
    w.send(json!({"cmd": "stats"}));
    w.wait_until(Duration::from_secs(5), |events| events.iter().filter(|e| is_stats(e)).nth(before).cloned())
        .expect("a stats answer")
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap_or_else(|| panic!("no {name} in {stats}"))
}

#[test]
fn two_nodes_sharing_only_a_broker_link_and_the_broker_sees_only_ciphertext() {
    let Some(bin) = support::mosquitto::required() else { return };
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let broker = Mosquitto::start(&bin, dir.path(), addr, &[], || accepts(addr));
    let watcher = Watcher::connect(tokio::runtime::Runtime::new().unwrap(), addr);
    let url = broker.url();
    let base = ["--no-discovery", "--bind", "127.0.0.1", "--mqtt", url.as_str()];
    let mut b = Weft::start(dir.path(), "b", &base);
    b.wait_event(Duration::from_secs(10), |e| e["event"] == "mqtt" && e["connected"] == true)
        .unwrap_or_else(|| panic!("B reached the broker: {:#?}", b.events()));
    let mut a = Weft::start(dir.path(), "a", &[&base[..], &["--connect", &b.peer_id]].concat());

    let report = a
        .wait_event(Duration::from_secs(30), |e| e["event"] == "connectivity")
        .unwrap_or_else(|| panic!("A reported no connectivity: {:#?}", a.events()));
    assert_eq!(report["linked"], "lan-direct", "{report}");
    a.send(json!({"cmd": "chat", "text": "over a broker's introduction"}));
    b.wait_event(Duration::from_secs(10), |e| e["event"] == "chat" && e["text"] == "over a broker's introduction")
        .expect("the chat crossed");

    // What the broker saw: envelopes on the two nodes' topics, and nothing readable in them.
    let seen = watcher.messages();
    let topic = |peer: &str| format!("weft/v1/default/{peer}");
    let to_b: Vec<_> = seen.iter().filter(|m| m.topic == topic(&b.peer_id)).cloned().collect();
    let to_a: Vec<_> = seen.iter().filter(|m| m.topic == topic(&a.peer_id)).cloned().collect();
    assert!(!to_b.is_empty() && !to_a.is_empty(), "both ways went through the broker: {seen:?}");
    assert_eq!(seen.len(), to_a.len() + to_b.len(), "no other topics: {seen:?}");
    let ports = [a.tcp_port, b.tcp_port];
    for m in &seen {
        let text = String::from_utf8_lossy(&m.payload).to_lowercase();
        for secret in ["127.0.0.1", "candidate", "sdp", "lan-direct", "\"a\"", "\"b\""] {
            assert!(!text.contains(secret), "{secret:?} readable on {}", m.topic);
        }
        for port in ports.iter().map(|p| p.to_string()) {
            assert!(!text.contains(&port), "port {port} readable on {}", m.topic);
        }
        assert!(!m.payload.windows(4).any(|w| w == [127, 0, 0, 1]), "a raw loopback address on {}", m.topic);
    }

    // Anyone on the broker can publish on B's topic: a replay, a forgery and an envelope for A
    // are all dropped, and B goes on as before.
    let before = stats(&mut b);
    watcher.publish(&topic(&b.peer_id), to_b[0].payload.clone());
    let mut forged = to_b[0].payload.clone();
    *forged.last_mut().unwrap() ^= 1; // the signature's last byte
    watcher.publish(&topic(&b.peer_id), forged);
    watcher.publish(&topic(&b.peer_id), to_a[0].payload.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = stats(&mut b);
        let grew = |name| counter(&now, name) > counter(&before, name);
        if grew("duplicate_messages") && grew("bad_envelopes") && grew("misaddressed_envelopes") {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "not every bad envelope was counted: {before} then {now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("B dropped: {after}");
    assert_eq!(b.count(|e| e["event"] == "connectivity"), 1, "the replayed Hello started nothing");
    assert_eq!(b.peers().len(), 1, "B still has exactly A");
}
