//! The name API over real HTTP on loopback, against a real SQLite file, with an injected clock.

mod support;

use bootstrap_server::registry;
use node_core::identity::Keypair;
use node_core::names::{Name, NameAnswer, NameRecord};
use std::sync::atomic::Ordering;
use support::{http, server, START};

fn record(owner: &Keypair, name: &str, value: &str, seq: u64, delete: bool) -> String {
    let signed = NameRecord {
        name: Name::parse(name).unwrap(),
        value: value.as_bytes().to_vec(),
        owner: owner.peer_id(),
        seq,
        unix_ms: START,
        delete,
    }
    .sign(owner);
    serde_json::to_string(&signed).unwrap()
}

#[tokio::test]
async fn claim_lookup_update_replay_foreign_key_and_delete() {
    let s = server().await;
    let (alice, mallory) = (Keypair::from_secret([1; 32]), Keypair::from_secret([2; 32]));
    let (st, _) = http(s.addr, "PUT", "/v1/names/alice", Some(&record(&alice, "alice", "v1", 1, false))).await;
    assert_eq!(st, 200);
    let (st, got) = http(s.addr, "GET", "/v1/names/alice", None).await;
    assert_eq!(st, 200);
    assert_eq!(got["record"]["record"]["owner"], alice.peer_id().to_string());
    // Both signatures check out: the owner's over the record, the server's over the answer.
    let answer: NameAnswer = serde_json::from_value(got).unwrap();
    assert_eq!(answer.verify(&s.key), Ok(()));
    assert_eq!(answer.record.record.value, b"v1");
    assert_eq!(answer.expires_unix_ms, START + registry::FULL_LIFETIME.as_millis() as u64);

    assert_eq!(http(s.addr, "PUT", "/v1/names/alice", Some(&record(&alice, "alice", "v2", 2, false))).await.0, 200);
    let (st, err) = http(s.addr, "PUT", "/v1/names/alice", Some(&record(&alice, "alice", "v1", 1, false))).await;
    assert_eq!((st, err["code"].as_str()), (409, Some("stale_seq")), "a replayed update is refused");
    let (st, err) = http(s.addr, "PUT", "/v1/names/alice", Some(&record(&alice, "alice", "v2b", 2, false))).await;
    assert_eq!((st, err["code"].as_str()), (409, Some("stale_seq")), "the same seq again is refused");
    let (st, err) = http(s.addr, "PUT", "/v1/names/alice", Some(&record(&mallory, "alice", "mine", 9, false))).await;
    assert_eq!((st, err["code"].as_str()), (403, Some("not_owner")));
    let (_, got) = http(s.addr, "GET", "/v1/names/alice", None).await;
    assert_eq!(got["record"]["record"]["value"], data_encoding::BASE64.encode(b"v2"));

    assert_eq!(http(s.addr, "PUT", "/v1/names/alice", Some(&record(&alice, "alice", "", 3, true))).await.0, 200);
    let (st, err) = http(s.addr, "GET", "/v1/names/alice", None).await;
    assert_eq!((st, err["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn the_21st_name_from_one_address_is_refused_with_a_clear_code() {
    let s = server().await;
    let k = Keypair::from_secret([3; 32]);
    for i in 0..20 {
        let (st, _) =
            http(s.addr, "PUT", &format!("/v1/names/n{i}"), Some(&record(&k, &format!("n{i}"), "x", 1, false))).await;
        assert_eq!(st, 200, "name {i}");
    }
    let (st, err) = http(s.addr, "PUT", "/v1/names/n20", Some(&record(&k, "n20", "x", 1, false))).await;
    assert_eq!((st, err["code"].as_str()), (403, Some("quota_exceeded")));
    assert!(err["message"].as_str().unwrap().contains("20"));
}

#[tokio::test]
async fn names_expire_with_the_clock_and_are_pruned() {
    let s = server().await;
    let k = Keypair::from_secret([4; 32]);
    assert_eq!(http(s.addr, "PUT", "/v1/names/brief", Some(&record(&k, "brief", "x", 1, false))).await.0, 200);
    s.clock.store(START + registry::FULL_LIFETIME.as_millis() as u64 - 1, Ordering::SeqCst);
    assert_eq!(http(s.addr, "GET", "/v1/names/brief", None).await.0, 200, "alive until its lifetime ends");
    s.clock.store(START + registry::FULL_LIFETIME.as_millis() as u64, Ordering::SeqCst);
    assert_eq!(http(s.addr, "GET", "/v1/names/brief", None).await.0, 404, "expired");
    let now = s.clock.load(Ordering::SeqCst);
    assert_eq!(bootstrap_server::db::prune(s.pool(), now).await.unwrap(), 1);
    assert_eq!(bootstrap_server::db::count(s.pool()).await.unwrap(), 0);
    // Expired names are free for anyone.
    let other = Keypair::from_secret([5; 32]);
    assert_eq!(http(s.addr, "PUT", "/v1/names/brief", Some(&record(&other, "brief", "y", 1, false))).await.0, 200);
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let s = server().await;
    let (st, err) = http(s.addr, "PUT", "/v1/names/alice", Some("{not json")).await;
    assert_eq!((st, err["code"].as_str()), (400, Some("bad_json")));
    let (st, err) = http(s.addr, "GET", "/v1/names/Not-Valid", None).await;
    assert_eq!((st, err["code"].as_str()), (400, Some("bad_name")));
    let k = Keypair::from_secret([6; 32]);
    let (st, err) = http(s.addr, "PUT", "/v1/names/bob", Some(&record(&k, "alice", "x", 1, false))).await;
    assert_eq!((st, err["code"].as_str()), (400, Some("name_mismatch")));
    let (st, info) = http(s.addr, "GET", "/v1/info", None).await;
    assert_eq!(st, 200);
    assert_eq!(info["public_key"], s.key.to_string());
}
