//! Nodes meeting through a bootstrap server (a real one, in-process on loopback with a real
//! SQLite file): presence, names, connect by name, key pinning. LAN discovery is off, so the
//! server is the only way these nodes learn of each other.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::Weft;

const T: Duration = Duration::from_secs(20);

/// A bootstrap server on its own runtime thread; dropped with the test.
struct Server {
    url: String,
    key: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, key) = runtime.block_on(async {
        let pool = bootstrap_server::db::open(dir.path()).await.unwrap();
        let keys = bootstrap_server::keyfile::load_or_create(dir.path()).unwrap();
        let key = keys.peer_id().to_string();
        let state = bootstrap_server::AppState::new(pool, keys, Default::default(), bootstrap_server::system_clock());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(bootstrap_server::run(listener, state, std::future::pending()));
        (url, key)
    });
    Server { url, key, _runtime: runtime, _dir: dir }
}

fn node(dir: &std::path::Path, name: &str, server: &Server, extra: &[&str]) -> Weft {
    let mut args = vec!["--no-discovery", "--bind", "127.0.0.1", "--bootstrap", &server.url];
    args.extend_from_slice(extra);
    Weft::start(dir, name, &args)
}

fn connected_to_server(w: &Weft, server: &Server) -> Value {
    w.wait_event(T, |e| e["event"] == "bootstrap_connected")
        .unwrap_or_else(|| panic!("{} reached the server", w.name))
        .tap(|e| assert_eq!(e["server_key"], server.key.as_str(), "the key pinned is the server's"))
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&Self)) -> Self {
        f(&self);
        self
    }
}
impl<T> Tap for T {}

#[test]
fn nodes_find_each_other_through_the_server_and_link_by_name() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = node(dir.path(), "alice", &s, &[]);
    assert_eq!(connected_to_server(&alice, &s)["observed_ip"], "127.0.0.1");
    let mut bob = node(dir.path(), "bob", &s, &[]);
    connected_to_server(&bob, &s);
    let (ida, idb) = (alice.peer_id.clone(), bob.peer_id.clone());
    assert!(bob.wait_peers(T, |p| p.contains(&ida)), "bob links to alice, learned from the server");
    assert!(alice.wait_peers(T, |p| p.contains(&idb)), "alice sees bob's link");

    // Alice claims a name; anyone can look it up, signed by alice and by the server.
    alice.send(json!({"cmd": "name_claim", "name": "alice-laptop"}));
    let claimed = alice.wait_event(T, |e| e["event"] == "name" || e["event"] == "error").unwrap();
    assert_eq!(claimed["event"], "name", "{claimed}");
    assert_eq!(claimed["owner"], ida.as_str());
    bob.send(json!({"cmd": "name_lookup", "name": "alice-laptop"}));
    let looked = bob.wait_event(T, |e| e["event"] == "name" || e["event"] == "error").unwrap();
    assert_eq!((looked["name"].as_str(), looked["owner"].as_str()), (Some("alice-laptop"), Some(ida.as_str())));
    let value: Value = serde_json::from_str(looked["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["peer_id"], ida.as_str());
    bob.send(json!({"cmd": "name_lookup", "name": "nobody-here"}));
    let missing = bob.wait_event(T, |e| e["event"] == "error" && e["code"] == "name_not_found");
    assert!(missing.is_some(), "an unknown name is a clear error");

    // Carol dials nobody from the server's list: only the name links her to alice.
    let mut carol = node(dir.path(), "carol", &s, &["--bootstrap-peers", "0"]);
    connected_to_server(&carol, &s);
    assert!(carol.peers().is_empty(), "carol has no peers before connecting by name");
    carol.send(json!({"cmd": "connect", "addr": "alice-laptop"}));
    assert!(carol.wait_peers(T, |p| p.contains(&ida)), "carol links to alice by name");
    let link = carol.wait_event(T, |e| e["event"] == "peer_connected" && e["peer_id"] == ida.as_str()).unwrap();
    assert_eq!(link["link"], "tcp");
}

#[test]
fn a_server_with_another_key_than_the_pinned_one_is_refused() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let impostor = node_core::identity::Keypair::from_secret([9; 32]).peer_id().to_string();
    let mut dave = node(dir.path(), "dave", &s, &["--bootstrap-key", &impostor]);
    let err = dave.wait_event(T, |e| e["event"] == "error" && e["code"] == "bootstrap").expect("an error event");
    assert!(err["message"].as_str().unwrap().contains(&impostor), "{err}");
    assert_eq!(dave.count(|e| e["event"] == "bootstrap_connected"), 0);
    dave.send(json!({"cmd": "name_lookup", "name": "anything"}));
    let is_refusal = |e: &Value| e["event"] == "error" && e["code"] == "bootstrap";
    let refused = dave.wait_until(T, |events| events.iter().filter(|e| is_refusal(e)).nth(1).cloned()).unwrap();
    assert!(refused["message"].as_str().unwrap().contains("is pinned (by flag)"), "{refused}");

    // Trust on first use: a node pins the key it first sees, and refuses a different one later.
    let erin = node(dir.path(), "erin", &s, &[]);
    connected_to_server(&erin, &s);
    erin.quit();
    let pins = dir.path().join("erin").join("bootstrap-pins.json");
    let text = std::fs::read_to_string(&pins).unwrap();
    assert!(text.contains(&s.key), "{text}");
    std::fs::write(&pins, text.replace(&s.key, &impostor)).unwrap();
    let erin = node(dir.path(), "erin", &s, &[]);
    let err = erin.wait_event(T, |e| e["event"] == "error" && e["code"] == "bootstrap").expect("pinned key mismatch");
    assert!(err["message"].as_str().unwrap().contains("pinned (on first contact)"), "{err}");
}

#[test]
fn a_name_resolves_from_the_mesh_while_the_server_is_down() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = node(dir.path(), "alice", &s, &[]);
    connected_to_server(&alice, &s);
    let mut bob = node(dir.path(), "bob", &s, &[]);
    connected_to_server(&bob, &s);
    let mut carol = node(dir.path(), "carol", &s, &[]);
    connected_to_server(&carol, &s);
    let (ida, idb) = (alice.peer_id.clone(), bob.peer_id.clone());
    assert!(carol.wait_peers(T, |p| p.contains(&ida) && p.contains(&idb)), "the three link through the server");
    assert!(alice.wait_peers(T, |p| p.len() == 2), "alice links to both");

    // Alice claims a name: her node mirrors the server's answer into the mesh.
    alice.send(json!({"cmd": "name_claim", "name": "alice-laptop"}));
    let claimed = alice.wait_event(T, |e| e["event"] == "name" || e["event"] == "error").unwrap();
    assert_eq!((claimed["event"].as_str(), claimed["source"].as_str()), (Some("name"), Some("server")), "{claimed}");
    // Looked up while the server is up: the server answers.
    bob.send(json!({"cmd": "name_lookup", "name": "alice-laptop"}));
    let looked = bob.wait_event(T, |e| e["event"] == "name" || e["event"] == "error").unwrap();
    assert_eq!(looked["source"], "server", "{looked}");

    // The server goes away, and so does alice: carol, who never asked for the name, still
    // resolves it, from the answer the server signed.
    drop(s);
    alice.quit();
    // (Asked again while the copies alice stored are still on their way: each lookup ends.)
    let deadline = std::time::Instant::now() + T;
    let found = loop {
        let before = carol.count(|e| e["event"] == "name" || e["event"] == "error");
        carol.send(json!({"cmd": "name_lookup", "name": "alice-laptop"}));
        let answer = carol
            .wait_until(T, |events| {
                events.iter().filter(|e| e["event"] == "name" || e["event"] == "error").nth(before).cloned()
            })
            .expect("carol's lookup ends");
        if answer["event"] == "name" || std::time::Instant::now() > deadline {
            break answer;
        }
        assert_eq!(answer["code"], "name_unavailable", "{answer}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!((found["event"].as_str(), found["source"].as_str()), (Some("name"), Some("mesh")), "{found}");
    assert_eq!((found["owner"].as_str(), found["seq"].as_u64()), (Some(ida.as_str()), claimed["seq"].as_u64()));
    assert_eq!(found["expires_unix"], claimed["expires_unix"], "vouched for as long as the server said");
    let value: Value = serde_json::from_str(found["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["peer_id"], ida.as_str());
    // A name the server never vouched for: a clear error saying the server is unreachable.
    carol.send(json!({"cmd": "name_lookup", "name": "nobody-here"}));
    let missing = carol.wait_event(T, |e| e["event"] == "error").unwrap();
    assert_eq!(missing["code"], "name_unavailable", "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("unreachable"), "{missing}");
}
