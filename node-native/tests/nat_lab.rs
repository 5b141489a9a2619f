//! Through NATs, in the project's NAT lab (tests/support/natlab.rs: namespaces and nftables, a
//! bootstrap server with an RFC 5780 STUN responder on two public addresses, hosts behind
//! switchable NATs). Real `weft` processes; needs root (skips with a reason on a user's machine,
//! fails under CI=true).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::lab_server::{LabServer, STUN_PORT};
use support::mosquitto::{accepts, Mosquitto, Watcher};
use support::natlab::{Nat, NatLab, Side, PUBLIC_IP, ROUTER_A, ROUTER_B};
use support::Weft;

/// `weft` on `side`'s host, with the lab's server as its bootstrap server, and `args`.
fn node(lab: &NatLab, dir: &std::path::Path, server: &LabServer, side: Side, name: &str, args: &[&str]) -> Weft {
    bare_node(lab, dir, side, name, &[&["--bootstrap", &server.url], args].concat())
}

/// `weft` on `side`'s host with only `args` (no bootstrap server).
fn bare_node(lab: &NatLab, dir: &std::path::Path, side: Side, name: &str, args: &[&str]) -> Weft {
    let bind = lab.host_ip(side).to_string();
    let base = ["--no-discovery", "--bind", &bind];
    Weft::start_with_prefix(dir, name, &[&base[..], args].concat(), &lab.exec(side))
}

#[test]
fn each_node_reports_the_nat_type_its_router_was_given() {
    if !support::netns::required() {
        return;
    }
    for nat in Nat::ALL {
        let lab = NatLab::new(nat, Nat::PortRestricted);
        let server = LabServer::start(&lab);
        let dir = tempfile::tempdir().unwrap();
        let a = node(&lab, dir.path(), &server, Side::A, "a", &[]);
        let report = a
            .wait_event(Duration::from_secs(20), |e| e["event"] == "nat")
            .unwrap_or_else(|| panic!("no NAT report behind a {nat:?} router: {:#?}", a.events()));
        eprintln!("behind a {nat:?} router: {report}");
        assert_eq!(report["type"], nat.reported(), "behind a {nat:?} router: {report}");
        assert_eq!(report["exact"], true, "the server has two addresses: {report}");
        let public: SocketAddr = report["public"].as_str().unwrap().parse().unwrap();
        assert_eq!(public.ip(), IpAddr::V4(ROUTER_A), "seen as the router's public address");
        let allocation = &report["allocation"]["kind"];
        match nat {
            Nat::Symmetric => assert_eq!(allocation, "random", "masquerade random: {report}"),
            _ => assert_eq!(allocation, "preserving", "masquerade keeps ports: {report}"),
        }
    }
}

/// Waits for `w`'s connectivity report about `peer`.
fn connectivity(w: &Weft, peer: &str) -> serde_json::Value {
    w.wait_event(Duration::from_secs(60), |e| e["event"] == "connectivity" && e["peer_id"] == peer)
        .unwrap_or_else(|| panic!("{} reported no connectivity for {peer}: {:#?}", w.name, w.events()))
}

/// What the matrix expects for a pair: the strategy that must link it (`../shared/natlab`'s
/// table: every pair punches UDP except a symmetric NAT facing a port-restricted or symmetric
/// one, which no punch gets through).
fn expected(a: Nat, b: Nat) -> &'static str {
    match (a, b) {
        (Nat::Symmetric, Nat::Symmetric | Nat::PortRestricted) | (Nat::PortRestricted, Nat::Symmetric) => "relay",
        _ => "udp-punch",
    }
}

/// The link kind each strategy must end in.
fn link_kind(strategy: &str) -> &'static str {
    match strategy {
        "udp-punch" => "quic",
        "relay" => "relay",
        _ => "tcp",
    }
}

#[test]
fn every_pair_of_nat_types_links_and_carries_chat_and_a_file() {
    if !support::netns::required() {
        return;
    }
    for (i, &na) in Nat::ALL.iter().enumerate() {
        for &nb in &Nat::ALL[i..] {
            link_across(na, nb, &[], expected(na, nb));
        }
    }
}

#[test]
fn with_udp_punching_off_tcp_simultaneous_open_links_port_restricted_nats() {
    if !support::netns::required() {
        return;
    }
    link_across(Nat::PortRestricted, Nat::PortRestricted, &["--no-udp-punch"], "tcp-simultaneous-open");
}

/// Two nodes behind `na` and `nb` (both started with `args`), where A knows only B's PeerId and
/// the server, end up linked by `want`, and a chat and a 10 MiB file cross.
fn link_across(na: Nat, nb: Nat, args: &[&str], want: &str) {
    let data: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let lab = NatLab::new(na, nb);
    let server = LabServer::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let b = node(&lab, dir.path(), &server, Side::B, "b", args);
    let mut a = node(&lab, dir.path(), &server, Side::A, "a", &[args, &["--connect", &b.peer_id]].concat());
    let report = connectivity(&a, &b.peer_id);
    eprintln!("{na:?} x {nb:?}: {report}");
    assert_eq!(report["linked"], want, "{na:?} x {nb:?}: {report}\nA: {:#?}\nB: {:#?}", a.events(), b.events());
    assert_eq!(report["role"], "initiator");
    for step in report["steps"].as_array().unwrap() {
        let explained = step["result"] == "linked"
            || step["result"] == "timed-out"
            || step["reason"].as_str().is_some_and(|r| !r.is_empty());
        assert!(explained, "every step says what became of it: {step}");
    }
    // The doctor answers with the same report and a summary naming the winner, and why every
    // earlier strategy did not win.
    a.send(serde_json::json!({"cmd": "doctor", "peer": b.peer_id}));
    let doctor = a.wait_event(Duration::from_secs(5), |e| e["event"] == "doctor").expect("a doctor answer");
    assert_eq!(doctor["report"]["linked"], want, "{doctor}");
    let summary: Vec<&str> =
        doctor["report"]["summary"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(summary[0].starts_with(&format!("linked by {want}")), "{summary:?}");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(summary.len(), 1 + steps.len(), "{summary:?}");
    for (line, step) in summary[1..].iter().zip(steps) {
        let name = step["strategy"].as_str().unwrap();
        assert!(line.starts_with(&format!("{name}: ")), "{line}");
        if step["strategy"] != want {
            let why = step["reason"].as_str().map(str::to_owned).unwrap_or_else(|| "timed out".into());
            assert!(line.contains(&why), "{line} says why ({why})");
        }
    }
    let b_report = connectivity(&b, &a.peer_id);
    assert_eq!(b_report["linked"], want, "B agrees: {b_report}");
    assert_eq!(b_report["role"], "responder");
    if na == Nat::Symmetric && nb == Nat::Symmetric {
        let udp = report["steps"].as_array().unwrap().iter().find(|s| s["strategy"] == "udp-punch").unwrap();
        assert!(udp["reason"].as_str().unwrap().contains("unpredictable"), "{report}");
    }

    let linked = a
        .wait_event(Duration::from_secs(10), |e| e["event"] == "peer_connected" && e["peer_id"] == b.peer_id)
        .expect("A lists B");
    assert_eq!(linked["link"], link_kind(want), "{linked}");
    if want != "relay" {
        // Direct: B's router's public address, not the server's.
        assert!(linked["addr"].as_str().unwrap().starts_with(&format!("{ROUTER_B}:")), "{linked}");
    }
    let text = format!("hello across {na:?} x {nb:?}");
    a.send(serde_json::json!({"cmd": "chat", "text": text}));
    b.wait_event(Duration::from_secs(10), |e| e["event"] == "chat" && e["text"] == text.as_str())
        .unwrap_or_else(|| panic!("the chat did not cross {na:?} x {nb:?}"));
    let src = dir.path().join("ten.bin");
    std::fs::write(&src, &data).unwrap();
    a.send(serde_json::json!({"cmd": "send", "path": src.display().to_string(), "peer": b.peer_id}));
    let done = b
        .wait_event(Duration::from_secs(120), |e| e["event"] == "transfer_done")
        .unwrap_or_else(|| panic!("the file did not cross {na:?} x {nb:?}: {:#?}", b.events()));
    let got = std::fs::read(done["path"].as_str().unwrap()).unwrap();
    assert!(got == data, "the file crossed {na:?} x {nb:?} byte-identical");
}

#[test]
fn with_only_an_mqtt_broker_port_restricted_nodes_punch_and_link() {
    if !support::netns::required() {
        return;
    }
    let Some(bin) = support::mosquitto::required() else { return };
    let lab = NatLab::new(Nat::PortRestricted, Nat::PortRestricted);
    // No bootstrap server: a STUN responder and a broker on the public segment, nothing else.
    let _stun = LabServer::start_with(&lab, false);
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::new(IpAddr::V4(PUBLIC_IP), 1883);
    let prefix: Vec<String> = vec!["ip".into(), "netns".into(), "exec".into(), lab.ns("pub")];
    let broker = Mosquitto::start(&bin, dir.path(), addr, &prefix, || lab.run_in("pub", move || accepts(addr)));
    let watcher = Watcher::connect(lab.run_in("pub", || tokio::runtime::Runtime::new().unwrap()), addr);
    let (url, stun) = (broker.url(), format!("{PUBLIC_IP}:{STUN_PORT}"));
    let args = ["--mqtt", url.as_str(), "--stun", stun.as_str()];
    let b = bare_node(&lab, dir.path(), Side::B, "b", &args);
    b.wait_event(Duration::from_secs(10), |e| e["event"] == "mqtt" && e["connected"] == true)
        .unwrap_or_else(|| panic!("B reached the broker: {:#?}", b.events()));
    let mut a = bare_node(&lab, dir.path(), Side::A, "a", &[&args[..], &["--connect", &b.peer_id]].concat());
    let report = connectivity(&a, &b.peer_id);
    eprintln!("MQTT only, port x port: {report}");
    assert_eq!(report["linked"], "udp-punch", "{report}\nA: {:#?}\nB: {:#?}", a.events(), b.events());
    assert_eq!(connectivity(&b, &a.peer_id)["linked"], "udp-punch");
    let linked = a
        .wait_event(Duration::from_secs(10), |e| e["event"] == "peer_connected" && e["peer_id"] == b.peer_id)
        .expect("A lists B");
    assert_eq!(linked["link"], "quic", "{linked}");
    a.send(serde_json::json!({"cmd": "chat", "text": "through a broker and two NATs"}));
    b.wait_event(Duration::from_secs(10), |e| e["event"] == "chat" && e["text"] == "through a broker and two NATs")
        .expect("the chat crossed");
    // The broker carried the whole negotiation, and none of it is readable.
    let seen = watcher.messages();
    assert!(seen.len() >= 4, "Hello, Welcome, the UDP step and its punch went through the broker: {seen:?}");
    for m in &seen {
        let text = String::from_utf8_lossy(&m.payload);
        for secret in ["10.0.", "20.20.20", "udp-punch", "punch"] {
            assert!(!text.contains(secret), "{secret:?} readable on {}", m.topic);
        }
        assert!(!m.payload.windows(3).any(|w| w == [20, 20, 20]), "a raw public address on {}", m.topic);
    }
}

/// Where Debian's miniupnpd is, or why the test cannot run (skips on a user's machine without
/// it, fails under CI=true).
fn miniupnpd() -> Option<std::path::PathBuf> {
    let bin = std::path::PathBuf::from("/usr/sbin/miniupnpd");
    if bin.exists() {
        return Some(bin);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the UPnP test must run under CI, but miniupnpd is not installed (apt-get install miniupnpd-nftables)");
    }
    eprintln!("skipping the UPnP test: miniupnpd is not installed (apt-get install miniupnpd-nftables)");
    None
}

#[test]
fn with_upnp_on_its_router_a_node_behind_a_symmetric_nat_is_dialled_directly() {
    if !support::netns::required() {
        return;
    }
    let Some(bin) = miniupnpd() else { return };
    // Two symmetric NATs: no punch joins them, so without the router's mapping this pair goes
    // through the relay.
    let lab = NatLab::new(Nat::Symmetric, Nat::Symmetric);
    let server = LabServer::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let _upnpd = lab.start_miniupnpd(Side::B, &bin, dir.path());
    // B talks to its LAN (that is where the router listens); A does not.
    let bind = lab.host_ip(Side::B).to_string();
    // Neither dials the server's peer list, so the link comes from A's connect attempt (a dial
    // to B's announced address would work too, through the same mapping).
    let b_args = [
        "--bind",
        bind.as_str(),
        "--bootstrap",
        server.url.as_str(),
        "--bootstrap-peers",
        "0",
        "--discovery-ports",
        "47490",
    ];
    let b = Weft::start_with_prefix(dir.path(), "b", &b_args, &lab.exec(Side::B));
    let mapped = b
        .wait_event(Duration::from_secs(20), |e| e["event"] == "upnp")
        .unwrap_or_else(|| panic!("B reported no UPnP outcome: {:#?}", b.events()));
    assert_eq!(mapped["external"], format!("{ROUTER_B}:{}", b.tcp_port), "{mapped}");
    let mut a = node(&lab, dir.path(), &server, Side::A, "a", &["--bootstrap-peers", "0", "--connect", &b.peer_id]);
    let report = connectivity(&a, &b.peer_id);
    eprintln!("symmetric x symmetric+UPnP: {report}");
    assert_eq!(report["linked"], "public-direct", "{report}\nB: {:#?}", b.events());
    let linked = a
        .wait_event(Duration::from_secs(10), |e| e["event"] == "peer_connected" && e["peer_id"] == b.peer_id)
        .expect("A lists B");
    assert_eq!(linked["link"], "tcp", "{linked}");
    assert_eq!(linked["addr"], mapped["external"], "A dialled the router's mapping: {linked}");
    a.send(serde_json::json!({"cmd": "chat", "text": "through a mapped port"}));
    b.wait_event(Duration::from_secs(10), |e| e["event"] == "chat" && e["text"] == "through a mapped port")
        .expect("the chat crossed");
}
