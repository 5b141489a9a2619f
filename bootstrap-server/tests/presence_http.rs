//! Presence and trust over real HTTP on loopback: signed announcements, server-signed peer and
//! trusted lists, replay / tamper / clock checks on the injected clock, and the `trust` CLI of the
//! real binary working on the running server's database.

mod support;

use bootstrap_server::presence::{PresenceLimits, LISTED_FOR_MS, REANNOUNCE_AFTER_SECS};
use bootstrap_server::ServerConfig;
use node_core::identity::Keypair;
use node_core::presence::{
    AnnounceReply, NatInfo, PeerList, Presence, ServerSigned, SignedPresence, StatementError, TrustedList,
    PRESENCE_CLOCK_WINDOW_MS,
};
use node_core::wire::{Capabilities, MAX_MESH_ID_LEN};
use node_core::PeerId;
use std::net::IpAddr;
use std::process::Output;
use support::{keys, request_from, server, server_with, Answer, Server, START, WAIT};

const LOCAL: [u8; 4] = [127, 0, 0, 1];

fn presence(keys: &Keypair, name: &str, mesh: &str, unix_ms: u64) -> SignedPresence {
    Presence {
        peer_id: keys.peer_id(),
        name: name.into(),
        mesh_id: mesh.into(),
        addrs: vec!["127.0.0.1:4000".parse().unwrap()],
        nat: NatInfo::default(),
        capabilities: Capabilities(Capabilities::FILES),
        unix_ms,
    }
    .sign(keys)
}

async fn announce(s: &Server, from: impl Into<IpAddr>, p: &SignedPresence) -> Answer {
    let body = serde_json::to_vec(p).unwrap();
    request_from(from.into(), s.addr, "POST", "/v1/announce", Some(&body)).await
}

/// `GET /v1/peers?mesh=`, checked against the server's key.
async fn peers(s: &Server, mesh: &str) -> PeerList {
    let a = request_from(LOCAL.into(), s.addr, "GET", &format!("/v1/peers?mesh={mesh}"), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let signed: ServerSigned<PeerList> = serde_json::from_str(&a.body).unwrap();
    let other = keys(99).peer_id();
    assert!(matches!(signed.verify(&other), Err(StatementError::WrongServer { .. })));
    signed.verify(&s.key).expect("the peer list carries the server's signature").clone()
}

fn names(list: &PeerList) -> Vec<&str> {
    list.peers.iter().map(|p| p.presence.presence.name.as_str()).collect()
}

fn code(a: &Answer) -> (u16, String) {
    (a.status, a.json()["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn announcements_are_listed_per_mesh_signed_and_checked() {
    let s = server().await;
    let (alice, bob) = (keys(1), keys(2));
    let first = presence(&alice, "alice", "m", START);

    let a = announce(&s, LOCAL, &first).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let reply: AnnounceReply = serde_json::from_str(&a.body).unwrap();
    assert_eq!(reply, AnnounceReply { reannounce_after_secs: REANNOUNCE_AFTER_SECS, observed_ip: LOCAL.into() });

    let list = peers(&s, "m").await;
    assert_eq!((list.mesh_id.as_str(), list.unix_ms), ("m", START));
    assert_eq!(list.peers.len(), 1);
    assert_eq!(list.peers[0].presence, first, "listed exactly as the node signed it");
    assert_eq!(list.peers[0].presence.verify(), Ok(()), "the node's own signature still checks out");
    assert_eq!(list.peers[0].observed_ip, IpAddr::from(LOCAL));
    assert!(peers(&s, "another-mesh").await.peers.is_empty());

    let a = announce(&s, LOCAL, &first).await;
    assert_eq!(code(&a), (409, "stale_announcement".into()), "a replay is refused");

    let mut tampered = presence(&alice, "alice", "m", START + 1);
    tampered.presence.name = "mallory".into();
    assert_eq!(code(&announce(&s, LOCAL, &tampered).await), (400, "bad_signature".into()));
    let mut moved = presence(&alice, "alice", "m", START + 1);
    moved.presence.mesh_id = "another-mesh".into();
    assert_eq!(code(&announce(&s, LOCAL, &moved).await), (400, "bad_signature".into()));
    let long_mesh = "x".repeat(MAX_MESH_ID_LEN + 1);
    let a = announce(&s, LOCAL, &presence(&alice, "alice", &long_mesh, START + 1)).await;
    assert_eq!(code(&a), (400, "bad_presence".into()));
    let a = request_from(LOCAL.into(), s.addr, "GET", &format!("/v1/peers?mesh={long_mesh}"), None).await;
    assert_eq!(code(&a), (400, "bad_query".into()));
    assert_eq!(names(&peers(&s, "m").await), ["alice"], "refused announcements change nothing");

    // A second node, seen from another address: newest announcement first.
    let a = announce(&s, [127, 0, 0, 2], &presence(&bob, "bob", "m", START + 10)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["observed_ip"], "127.0.0.2");
    let list = peers(&s, "m").await;
    assert_eq!(names(&list), ["bob", "alice"]);
    assert_eq!(list.peers[0].observed_ip, IpAddr::from([127, 0, 0, 2]));

    // Listed for LISTED_FOR_MS after the last announcement, by the server's clock.
    s.set_now(START + LISTED_FOR_MS - 1);
    assert_eq!(names(&peers(&s, "m").await), ["bob", "alice"]);
    s.set_now(START + LISTED_FOR_MS);
    assert!(peers(&s, "m").await.peers.is_empty(), "silent peers drop off the list");

    // The node's clock must be within the window of the server's, either way.
    let now = s.now();
    for off in [now - PRESENCE_CLOCK_WINDOW_MS - 1, now + PRESENCE_CLOCK_WINDOW_MS + 1] {
        let a = announce(&s, LOCAL, &presence(&alice, "alice", "m", off)).await;
        assert_eq!(code(&a), (400, "clock_skew".into()), "signed at {off}, server at {now}");
    }
    let a = announce(&s, LOCAL, &presence(&alice, "alice", "m", now - PRESENCE_CLOCK_WINDOW_MS)).await;
    assert_eq!(a.status, 200, "the edge of the window is inside it: {}", a.body);
    assert_eq!(names(&peers(&s, "m").await), ["alice"]);
}

#[tokio::test]
async fn announcements_per_address_are_bounded() {
    let presence = PresenceLimits { per_ip: 2, ..Default::default() };
    let s = server_with(ServerConfig { presence, ..Default::default() }).await;
    for seed in [1, 2] {
        let a = announce(&s, LOCAL, &presence_of(&keys(seed), "m", START)).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let a = announce(&s, LOCAL, &presence_of(&keys(3), "m", START)).await;
    assert_eq!(code(&a), (429, "presence_full".into()));
    let a = announce(&s, [127, 0, 0, 2], &presence_of(&keys(3), "m", START)).await;
    assert_eq!(a.status, 200, "another address has room: {}", a.body);
    let a = announce(&s, LOCAL, &presence_of(&keys(1), "m", START + 1)).await;
    assert_eq!(a.status, 200, "a listed peer may always refresh: {}", a.body);
    assert_eq!(peers(&s, "m").await.peers.len(), 3);
}

fn presence_of(keys: &Keypair, mesh: &str, unix_ms: u64) -> SignedPresence {
    presence(keys, &keys.peer_id().to_string()[..8], mesh, unix_ms)
}

/// Runs the real binary on the server's data dir.
async fn cli(s: &Server, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft-bootstrap"));
    cmd.arg("--data-dir").arg(s.dir.path()).args(args).kill_on_drop(true);
    // Another database, or backtraces under the error line, would change what is tested.
    for var in ["DATABASE_URL", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"] {
        cmd.env_remove(var);
    }
    tokio::time::timeout(WAIT * 4, cmd.output()).await.expect("the CLI hangs").expect("the CLI runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn trusted(s: &Server) -> Vec<PeerId> {
    let a = request_from(LOCAL.into(), s.addr, "GET", "/v1/trusted", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let signed: ServerSigned<TrustedList> = serde_json::from_str(&a.body).unwrap();
    let list = signed.verify(&s.key).expect("the trusted list carries the server's signature");
    assert_eq!(list.unix_ms, s.now());
    list.peers.clone()
}

#[tokio::test]
async fn the_trust_cli_edits_the_running_servers_list() {
    let s = server().await;
    let peer = keys(7).peer_id().to_string();
    assert!(trusted(&s).await.is_empty());

    let out = cli(&s, &["trust", "add", &peer, "--note", "x"]).await;
    assert!(out.status.success(), "trust add: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("trusted {peer}"));
    assert_eq!(trusted(&s).await, [keys(7).peer_id()], "the running server sees the CLI's write");

    let out = cli(&s, &["trust", "list"]).await;
    assert!(out.status.success(), "trust list: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{peer}\tx\n"));

    let out = cli(&s, &["trust", "add", &peer]).await;
    assert!(out.status.success(), "adding twice is fine: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already trusted"), "{}", text(&out.stdout));
    assert_eq!(trusted(&s).await.len(), 1);
    let out = cli(&s, &["trust", "list"]).await;
    assert_eq!(text(&out.stdout), format!("{peer}\tx\n"), "an empty note keeps the old one");

    let out = cli(&s, &["trust", "remove", &peer]).await;
    assert!(out.status.success(), "trust remove: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("no longer trusted: {peer}"));
    assert!(trusted(&s).await.is_empty());

    let out = cli(&s, &["trust", "remove", &peer]).await;
    assert!(!out.status.success(), "removing an untrusted node fails");
    assert_eq!(text(&out.stderr), format!("Error: {peer} is not trusted\n"));

    let out = cli(&s, &["trust", "add", "not-a-peer-id"]).await;
    assert!(!out.status.success(), "an invalid peer id fails");
    let err = text(&out.stderr);
    assert!(err.contains("not-a-peer-id") && err.contains("peer id"), "{err}");
    let out = cli(&s, &["trust", "list"]).await;
    assert!(out.status.success() && out.stdout.is_empty(), "nothing was added: {}", text(&out.stdout));
    assert!(trusted(&s).await.is_empty());
}
