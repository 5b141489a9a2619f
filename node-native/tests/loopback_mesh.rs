//! Real `weft` processes on loopback (LAN discovery off: nothing leaves this machine).

mod support;

use serde_json::json;
use std::time::Duration;
use support::Weft;

const T: Duration = Duration::from_secs(20);

fn chained_mesh(dir: &std::path::Path) -> (Weft, Weft, Weft) {
    let a = Weft::start(dir, "a", &["--no-discovery"]);
    let b = Weft::start(dir, "b", &["--no-discovery", "--connect", &format!("127.0.0.1:{}", a.tcp_port)]);
    let c = Weft::start(dir, "c", &["--no-discovery", "--connect", &format!("127.0.0.1:{}", b.tcp_port)]);
    (a, b, c)
}

#[test]
fn three_chained_nodes_become_a_full_mesh_through_peer_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c) = chained_mesh(dir.path());
    let (ida, idb, idc) = (a.peer_id.clone(), b.peer_id.clone(), c.peer_id.clone());
    assert!(a.wait_peers(T, |p| p.contains(&idb) && p.contains(&idc) && p.len() == 2), "a links to b and c");
    assert!(b.wait_peers(T, |p| p.contains(&ida) && p.contains(&idc) && p.len() == 2), "b links to a and c");
    assert!(c.wait_peers(T, |p| p.contains(&ida) && p.contains(&idb) && p.len() == 2), "c links to a and b");
    // Round-trip times are measured from the start, not after the first 15 s keepalive.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let measured = loop {
        a.peers();
        let last = a.events().into_iter().rev().find(|e| e["event"] == "peers").unwrap();
        let list = last["list"].as_array().unwrap().clone();
        if list.iter().all(|p| p["rtt_ms"].as_f64().is_some() && p["link"] == "tcp")
            || std::time::Instant::now() > deadline
        {
            break list;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(measured.iter().all(|p| p["rtt_ms"].as_f64().is_some()), "{measured:?}");
    // A knew nobody: its link to C exists only because B told C about A.
    let a_to_c = a.wait_event(T, |e| e["event"] == "peer_connected" && e["peer_id"] == idc.as_str()).unwrap();
    assert_eq!(a_to_c["link"], "tcp");
}

#[test]
fn chat_reaches_every_node_once_and_direct_messages_only_their_target() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c) = chained_mesh(dir.path());
    for n in [&mut a, &mut b, &mut c] {
        assert!(n.wait_peers(T, |p| p.len() == 2), "{} is fully meshed", n.name);
    }
    c.send(json!({"cmd": "chat", "text": "hello from c"}));
    a.send(json!({"cmd": "chat", "text": "hello from a"}));
    let is_chat = |text: &'static str| move |e: &serde_json::Value| e["event"] == "chat" && e["text"] == text;
    assert!(a.wait_event(T, is_chat("hello from c")).is_some());
    assert!(b.wait_event(T, is_chat("hello from c")).is_some());
    assert!(b.wait_event(T, is_chat("hello from a")).is_some());
    assert!(c.wait_event(T, is_chat("hello from a")).is_some());
    // Give duplicates every chance to arrive before counting.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.count(is_chat("hello from c")), 1);
    assert_eq!(b.count(is_chat("hello from c")), 1);
    assert_eq!(c.count(is_chat("hello from c")), 0, "the author does not get its own chat back");
    assert_eq!(c.count(is_chat("hello from a")), 1);
    let from_c = a.events().into_iter().find(|e| e["event"] == "chat").unwrap();
    assert_eq!(from_c["from"], c.peer_id.as_str());
    assert_eq!(from_c["from_name"], "c");

    a.send(json!({"cmd": "msg", "peer": &c.peer_id[..10], "text": "for c only"}));
    let direct = c.wait_event(T, |e| e["event"] == "direct").expect("c gets the direct message");
    assert_eq!(direct["text"], "for c only");
    assert_eq!(direct["from"], a.peer_id.as_str());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.count(|e| e["event"] == "direct"), 0, "b never sees it");
    assert_eq!(a.count(|e| e["event"] == "direct"), 0);

    a.send(json!({"cmd": "msg", "peer": "nobody", "text": "x"}));
    let err = a.wait_event(T, |e| e["event"] == "error").expect("unknown peer is an error event");
    assert_eq!(err["code"], "unknown_peer");
    a.send(json!({"cmd": "bogus"}));
    assert!(a.wait_event(T, |e| e["event"] == "error" && e["code"] == "bad_command").is_some());
}

#[test]
fn a_stopped_peer_is_reported_and_the_rest_stay_linked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b, mut c) = chained_mesh(dir.path());
    assert!(a.wait_peers(T, |p| p.len() == 2));
    let idb = b.peer_id.clone();
    b.quit();
    let gone = a.wait_event(T, |e| e["event"] == "peer_disconnected" && e["peer_id"] == idb.as_str());
    assert!(gone.is_some(), "a reports b leaving");
    assert!(a.wait_peers(T, |p| p == [c.peer_id.clone()]));
    assert!(c.wait_peers(T, |p| p == [a.peer_id.clone()]));
}
