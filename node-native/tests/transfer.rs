//! File transfer between real `weft` processes on loopback: byte-identical delivery, resume after
//! the receiver is killed, and safe names for hostile file names.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{hash_file, make_file, Weft};

const MIB: u64 = 1 << 20;

fn pair(dir: &std::path::Path, b_port: u16) -> (Weft, Weft) {
    let port = b_port.to_string();
    let mut b = Weft::start(dir, "b", &["--no-discovery", "--port", &port]);
    let mut a = Weft::start(dir, "a", &["--no-discovery", "--connect", &format!("127.0.0.1:{}", b.tcp_port)]);
    let idb = b.peer_id.clone();
    assert!(a.wait_peers(Duration::from_secs(20), |p| p.contains(&idb)));
    assert!(b.wait_peers(Duration::from_secs(20), |p| p.len() == 1));
    (a, b)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn last_sent(w: &Weft) -> u64 {
    w.events().iter().filter(|e| e["event"] == "transfer_sent").filter_map(|e| e["sent"].as_u64()).max().unwrap_or(0)
}

fn progress_at_least(bytes: u64) -> impl Fn(&[Value]) -> Option<u64> {
    move |evs| {
        evs.iter()
            .filter(|e| e["event"] == "transfer_progress")
            .filter_map(|e| e["done"].as_u64())
            .find(|d| *d >= bytes)
    }
}

#[test]
fn a_200_mib_file_arrives_intact_and_resumes_after_the_receiver_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = pair(dir.path(), free_port());
    let size = 200 * MIB;
    let src = dir.path().join("big.bin");
    make_file(&src, size, 42);
    let src_hash = hash_file(&src);
    a.send(json!({"cmd": "send", "path": src.display().to_string(), "peer": b.peer_id}));
    // Kill the receiver mid-way, once half the file is written on its side.
    b.wait_until(Duration::from_secs(120), progress_at_least(size / 2)).expect("transfer under way");
    b.kill();
    // The sender reports where it paused when it loses the receiver.
    let idb = b.peer_id.clone();
    a.wait_event(Duration::from_secs(20), |e| e["event"] == "peer_disconnected" && e["peer_id"] == idb.as_str())
        .expect("a notices b is gone");
    std::thread::sleep(Duration::from_millis(200));
    let sent_before = last_sent(&a);
    assert!(sent_before >= size / 2, "a had sent {sent_before}");
    b.restart();
    let resumed = b
        .wait_until(Duration::from_secs(60), |evs| {
            evs.iter().find(|e| e["event"] == "transfer_progress").and_then(|e| e["done"].as_u64())
        })
        .expect("the restarted receiver reports progress");
    assert!(resumed >= size * 2 / 5, "resumed from what was on disk ({resumed} bytes), not from zero");
    let done = b
        .wait_event(Duration::from_secs(300), |e| e["event"] == "transfer_done" || e["event"] == "transfer_failed")
        .expect("the transfer finishes");
    assert_eq!(done["event"], "transfer_done", "{done}");
    let path = std::path::PathBuf::from(done["path"].as_str().unwrap());
    assert_eq!(path, b.data_dir.join("downloads").join("big.bin"));
    assert_eq!(done["size"].as_u64(), Some(size));
    assert_eq!(done["blake3"].as_str(), Some(src_hash.as_str()));
    assert_eq!(hash_file(&path), src_hash, "byte-identical (hashed by the test)");
    assert!(!b.data_dir.join("downloads/big.bin.part").exists(), "the .part file is gone");
    assert!(a
        .wait_event(Duration::from_secs(20), |e| e["event"] == "transfer_sent" && e["complete"] == true)
        .is_some());
    let sent_again = last_sent(&a) - sent_before;
    eprintln!("killed with {sent_before} sent; resumed from {resumed}; sent again {sent_again}");
    assert!(sent_again < size * 6 / 10, "sent again {sent_again} of {size} bytes: must be under 60 %");
    assert!(sent_again <= size - resumed + 16 * MIB, "only what was missing is sent again");
}

#[test]
fn hostile_file_names_land_as_one_safe_name_inside_the_downloads_dir() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut b = Weft::start(dir.path(), "b", &["--no-discovery"]);
    let src = dir.path().join("payload.bin");
    make_file(&src, 3 * MIB + 17, 7);
    let b_addr: std::net::SocketAddr = format!("127.0.0.1:{}", b.tcp_port).parse().unwrap();
    let b_id: node_core::PeerId = b.peer_id.parse().unwrap();
    rt.block_on(async {
        let a = weft_native::start(weft_native::NodeConfig {
            name: "hostile".into(),
            data_dir: dir.path().join("hostile"),
            downloads_dir: dir.path().join("hostile/downloads"),
            lan_discovery: false,
            connect: vec![b_addr],
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
        for _ in 0..100 {
            if a.peers().await.unwrap().iter().any(|p| p.peer == b_id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.send_file_as(&src, "../../etc/x", b_id).await.unwrap();
        let done = b.wait_event(Duration::from_secs(60), |e| e["event"] == "transfer_done").expect("done");
        let path = std::path::PathBuf::from(done["path"].as_str().unwrap());
        assert_eq!(path, b.data_dir.join("downloads").join("x"));
        assert_eq!(hash_file(&path), hash_file(&src));
        a.shutdown().await;
    });
    assert!(!dir.path().join("etc/x").exists());
    assert!(b.alive());
}
