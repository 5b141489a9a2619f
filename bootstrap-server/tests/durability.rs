//! Crash safety of the real binary: names answered 2xx survive a SIGKILL in the middle of a burst
//! of concurrent writes, and the restarted server on the same data dir serves every one of them.

mod support;

use node_core::identity::Keypair;
use node_core::names::{Name, NameAnswer, NameRecord};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{try_request_from, WAIT};

/// Writers, each with its own key and its own addresses 127.0.<w+1>.x.
const WRITERS: u8 = 8;
/// Names charged to one source address: the IPv4 quota is 20, stay under it.
const PER_ADDRESS: usize = 10;

/// The server process; killed (SIGKILL) when dropped, so a failing test leaves nothing running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weft-bootstrap` on a free loopback port and waits for its ready line.
fn start(dir: &Path) -> (Process, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft-bootstrap"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir)
        .args(["--no-stun", "--rate-limit", "0"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).expect("no ready line in time");
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(ready["event"], "ready", "{line}");
    (process, ready["listen"].as_str().unwrap().parse().unwrap())
}

fn name_of(writer: u8, i: usize) -> String {
    format!("w{writer}-n{i}")
}

fn value_of(writer: u8, i: usize) -> Vec<u8> {
    format!("value of {} from writer {writer}", name_of(writer, i)).into_bytes()
}

fn source_of(writer: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, writer + 1, (i / PER_ADDRESS) as u8 + 1))
}

/// Claims names until the server dies (or the addresses run out); returns the ones answered 2xx.
async fn writer(addr: SocketAddr, w: u8) -> Vec<usize> {
    let keys = Keypair::from_secret([w + 1; 32]);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut stored = Vec::new();
    for i in 0..PER_ADDRESS * 250 {
        let name = name_of(w, i);
        let record = NameRecord {
            name: Name::parse(&name).unwrap(),
            value: value_of(w, i),
            owner: keys.peer_id(),
            seq: 1,
            unix_ms: now,
            delete: false,
        }
        .sign(&keys);
        let body = serde_json::to_vec(&record).unwrap();
        match try_request_from(source_of(w, i), addr, "PUT", &format!("/v1/names/{name}"), Some(&body)).await {
            Ok(a) if (200..300).contains(&a.status) => stored.push(i),
            Ok(a) if a.status == 0 => break, // cut off mid-answer: the server is gone
            Ok(a) => panic!("{name} from {}: {} {}", source_of(w, i), a.status, a.body),
            Err(_) => break,
        }
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_answered_before_a_sigkill_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut process, addr) = start(dir.path());
    let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(writer(addr, w))).collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    process.0.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    process.0.wait().unwrap();
    let mut stored = Vec::new();
    for (w, t) in writers.into_iter().enumerate() {
        let names = tokio::time::timeout(WAIT, t).await.expect("a writer hangs").expect("a writer panicked");
        stored.extend(names.into_iter().map(|i| (w as u8, i)));
    }
    println!("{} names answered before the kill", stored.len());
    assert!(stored.len() >= 20, "too few writes before the kill to mean anything: {}", stored.len());
    assert!(stored.len() < WRITERS as usize * PER_ADDRESS * 250, "the kill came after every write finished");

    let (_process, addr) = start(dir.path());
    let local = IpAddr::from([127, 0, 0, 1]);
    for (w, i) in stored {
        let name = name_of(w, i);
        let a = try_request_from(local, addr, "GET", &format!("/v1/names/{name}"), None).await.unwrap();
        assert_eq!(a.status, 200, "{name} was answered 2xx before the kill but is gone: {}", a.body);
        let answer: NameAnswer = serde_json::from_str(&a.body).unwrap();
        assert_eq!(answer.record.record.value, value_of(w, i), "{name}");
        assert_eq!(answer.record.record.owner, Keypair::from_secret([w + 1; 32]).peer_id());
    }
}
