//! LAN discovery between real `weft` processes in network namespaces on one bridge.
//! Needs root; skips with a reason elsewhere, and fails under CI if it cannot run.

mod support;

use node_core::discovery::Announcement;
use node_core::identity::Keypair;
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use support::netns::{self, Lan};
use support::Weft;

const T: Duration = Duration::from_secs(20);

fn start(lan: &Lan, dir: &std::path::Path, host: usize, name: &str, extra: &[&str]) -> Weft {
    Weft::start_with_prefix(dir, name, extra, &lan.exec(host))
}

#[test]
fn nodes_on_one_lan_find_each_other_and_other_meshes_are_ignored() {
    if !netns::required() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lan = Lan::new();
    for _ in 0..5 {
        lan.add_host();
    }
    let mut nodes: Vec<Weft> = (0..3).map(|i| start(&lan, dir.path(), i, &format!("n{i}"), &[])).collect();
    for i in 0..3 {
        let others: Vec<String> = (0..3).filter(|j| *j != i).map(|j| nodes[j].peer_id.clone()).collect();
        assert!(nodes[i].wait_peers(T, |p| others.iter().all(|o| p.contains(o))), "n{i} links to the other two");
    }
    // Each node tells its user where others can reach it.
    let ready = nodes[0].events().into_iter().find(|e| e["event"] == "ready").unwrap();
    let reach = format!("{}:{}", lan.ip(0), nodes[0].tcp_port);
    assert!(ready["listen_addrs"].as_array().unwrap().iter().any(|a| a == reach.as_str()), "{ready}");
    // The links run to the hosts' LAN addresses.
    let ev = nodes[0].wait_event(T, |e| e["event"] == "peer_connected").unwrap();
    assert!(ev["addr"].as_str().unwrap().starts_with("10.77.0."), "{ev}");

    let late = start(&lan, dir.path(), 3, "late", &[]);
    let late_id = late.peer_id.clone();
    nodes.push(late);
    // A second node on host 0 shares its discovery ports (SO_REUSEPORT) and still finds everyone.
    let twin = start(&lan, dir.path(), 0, "twin", &[]);
    let twin_id = twin.peer_id.clone();
    nodes.push(twin);
    for n in nodes.iter_mut() {
        assert!(n.wait_peers(T, |p| p.len() == 4), "{} links to everyone incl. the late nodes", n.name);
    }
    let p0 = nodes[0].peers();
    assert!(p0.contains(&late_id) && p0.contains(&twin_id));

    let mut stranger = start(&lan, dir.path(), 4, "stranger", &["--mesh", "elsewhere"]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(stranger.peers().is_empty(), "a node of another mesh links to nobody");
    for n in nodes.iter_mut() {
        assert!(!n.peers().contains(&stranger.peer_id), "{} ignores the other mesh", n.name);
        assert_eq!(n.count(|e| e["event"] == "peer_discovered" && e["peer_id"] == stranger.peer_id.as_str()), 0);
    }

    nodes[3].send(json!({"cmd": "chat", "text": "hi lan"}));
    for n in nodes.iter().filter(|n| n.name != "late") {
        assert!(n.wait_event(T, |e| e["event"] == "chat" && e["text"] == "hi lan").is_some());
    }
    std::thread::sleep(Duration::from_millis(500));
    for n in nodes.iter().filter(|n| n.name != "late") {
        assert_eq!(n.count(|e| e["event"] == "chat" && e["text"] == "hi lan"), 1, "{} got it once", n.name);
    }
    assert_eq!(stranger.count(|e| e["event"] == "chat"), 0);
}

#[test]
fn an_ipv6_only_lan_links_over_link_local_multicast() {
    if !netns::required() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lan = Lan::new();
    for _ in 0..3 {
        lan.add_host_v6_only();
    }
    let mut nodes: Vec<Weft> = (0..3).map(|i| start(&lan, dir.path(), i, &format!("v{i}"), &[])).collect();
    for n in nodes.iter_mut() {
        assert!(n.wait_peers(T, |p| p.len() == 2), "{} links to the other two over IPv6", n.name);
    }
    let ev = nodes[0].wait_event(T, |e| e["event"] == "peer_connected").unwrap();
    assert!(ev["addr"].as_str().unwrap().starts_with("[fe80::"), "{ev}");
    nodes[1].send(json!({"cmd": "chat", "text": "v6"}));
    assert!(nodes[2].wait_event(T, |e| e["event"] == "chat" && e["text"] == "v6").is_some());
}

/// An announcement signed by `keys`, as a node would send it.
fn announcement(keys: &Keypair, tcp_port: u16, unix_ms: u64, nonce: u64) -> Vec<u8> {
    Announcement {
        peer_id: keys.peer_id(),
        name: "forger".into(),
        mesh_id: "default".into(),
        tcp_port,
        quic_port: None,
        http_port: None,
        unix_ms,
        nonce,
    }
    .encode_signed(keys)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn junk_and_forged_announcements_do_not_stall_or_fool_discovery() {
    if !netns::required() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lan = Lan::new();
    for _ in 0..4 {
        lan.add_host();
    }
    let mut a = start(&lan, dir.path(), 0, "a", &[]);
    let target = lan.ip(0);

    // 100,000 random datagrams at every pool port, a quarter of them with the Weft magic.
    let sent = lan.run_in(2, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        let mut buf = [0u8; 1400];
        for i in 0..100_000u32 {
            let len = (i as usize * 131) % buf.len();
            for b in buf[..len].iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if i % 4 == 0 && len >= 5 {
                buf[..5].copy_from_slice(b"WEFT1");
            }
            let port = 47470 + (i % 5) as u16;
            let _ = s.send_to(&buf[..len], SocketAddr::from((target, port)));
        }
        100_000
    });
    assert_eq!(sent, 100_000);

    // Forgeries from host 2: a bad signature, a replay of a valid announcement, and a valid
    // announcement whose body points at host 1's port (the dial must go to the source, host 2).
    let forger = Keypair::from_secret([9; 32]);
    let forged_id = forger.peer_id().to_string();
    lan.run_in(2, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let to = SocketAddr::from((target, 47470));
        let mut bad = announcement(&Keypair::from_secret([8; 32]), 4242, unix_ms(), 1);
        let n = bad.len();
        bad[n - 1] ^= 0xff; // break the signature
        s.send_to(&bad, to).unwrap();
        let good = announcement(&forger, 4242, unix_ms(), 2);
        s.send_to(&good, to).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        s.send_to(&good, to).unwrap(); // the replay
        let stale = announcement(&forger, 4242, unix_ms() - 600_000, 3);
        s.send_to(&stale, to).unwrap();
    });
    let found = a.wait_event(T, |e| e["event"] == "peer_discovered" && e["peer_id"] == forged_id.as_str());
    let found = found.expect("the validly signed announcement is seen once");
    assert_eq!(found["addr"], format!("{}:4242", lan.ip(2)), "dials go to the UDP source, never elsewhere");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.count(|e| e["event"] == "peer_discovered" && e["peer_id"] == forged_id.as_str()), 1);
    let bad_id = Keypair::from_secret([8; 32]).peer_id().to_string();
    assert_eq!(a.count(|e| e["event"] == "peer_discovered" && e["peer_id"] == bad_id.as_str()), 0);
    a.send(json!({"cmd": "stats"}));
    let stats = a.wait_event(T, |e| e["event"] == "stats").unwrap();
    assert!(stats["replayed_announcements"].as_u64().unwrap() >= 2, "replay and stale clock counted: {stats}");
    assert!(stats["bad_datagrams"].as_u64().unwrap() + stats["dropped_datagrams"].as_u64().unwrap() >= 1000, "{stats}");

    // Discovery and chat still work afterwards.
    let mut b = start(&lan, dir.path(), 1, "b", &[]);
    let mut c = start(&lan, dir.path(), 3, "c", &[]);
    let (ida, idb, idc) = (a.peer_id.clone(), b.peer_id.clone(), c.peer_id.clone());
    assert!(a.wait_peers(T, |p| p.contains(&idb) && p.contains(&idc)));
    assert!(b.wait_peers(T, |p| p.contains(&ida) && p.contains(&idc)));
    c.send(json!({"cmd": "chat", "text": "after the flood"}));
    assert!(a.wait_event(T, |e| e["event"] == "chat" && e["text"] == "after the flood").is_some());
    assert!(a.alive());
}
