//! The STUN responder over real UDP on loopback (A1 = 127.0.0.1, A2 = 127.0.0.2): our own client
//! checks RFC 5780 Table 1 socket by socket, and coturn's `turnutils_stunclient` checks that a
//! third-party client reads our answers the same way.

mod support;

use bootstrap_server::metrics::Metrics;
use bootstrap_server::stun::attr::{ChangeRequest, ResponsePort};
use bootstrap_server::stun::client::{binding_request, parse_binding_response, BindingOutcome};
use bootstrap_server::stun::{ServerAddrs, SocketId, StunServer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use stun_types::message::{Message, MessageClass, MessageType, MessageWriteVec, TransactionId, BINDING};
use stun_types::prelude::*;
use support::WAIT;
use tokio::net::UdpSocket;

const A1: [u8; 4] = [127, 0, 0, 1];
const A2: [u8; 4] = [127, 0, 0, 2];

struct Stun {
    addrs: ServerAddrs,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stun {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stun {
    fn at(&self, id: SocketId) -> SocketAddr {
        self.addrs.addr(id).unwrap()
    }
    fn primary(&self) -> SocketAddr {
        self.at(SocketId::PRIMARY)
    }
}

async fn start(alt_ip: Option<[u8; 4]>, change_port_without_alt_ip: bool) -> Stun {
    let addrs = ServerAddrs {
        primary_ip: A1.into(),
        primary_port: 0,
        alt_port: Some(0),
        alt_ip: alt_ip.map(IpAddr::from),
        change_port_without_alt_ip,
    };
    let server = StunServer::bind(addrs).await.unwrap();
    let addrs = server.addrs();
    let mut bound: Vec<SocketAddr> = server.local_addrs().into_iter().map(|(_, a)| a).collect();
    let mut want: Vec<SocketAddr> = addrs.sockets().into_iter().map(|(_, a)| a).collect();
    bound.sort();
    want.sort();
    assert_eq!(bound, want, "every socket of the configuration is bound where it says");
    let metrics = Arc::new(Metrics::new());
    let task = tokio::spawn(server.serve(metrics.clone()));
    Stun { addrs, metrics, task }
}

/// Sends `request` from `client` to `to`; returns the answer and where it came from.
async fn exchange(client: &UdpSocket, to: SocketAddr, request: &[u8], tid: u128) -> (BindingOutcome, SocketAddr) {
    client.send_to(request, to).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) =
        tokio::time::timeout(WAIT, client.recv_from(&mut buf)).await.expect("no STUN answer in time").unwrap();
    (parse_binding_response(&buf[..n], tid).expect("an answer to our transaction"), from)
}

async fn client() -> UdpSocket {
    UdpSocket::bind(SocketAddr::new(A1.into(), 0)).await.unwrap()
}

#[tokio::test]
async fn each_change_request_is_answered_from_the_socket_rfc_5780_table_1_names() {
    let stun = start(Some(A2), false).await;
    let c = client().await;
    let me = c.local_addr().unwrap();
    let other = SocketAddr::new(A2.into(), stun.addrs.alt_port.unwrap());
    assert_ne!(stun.primary().port(), other.port());

    // Requests to every one of the four sockets, each with every CHANGE-REQUEST combination.
    let mut tid = 100u128;
    for (dest, _) in stun.addrs.sockets() {
        for (change_ip, change_port) in [(false, false), (false, true), (true, false), (true, true)] {
            tid += 1;
            let change = ChangeRequest { change_ip, change_port };
            let req = binding_request(tid, (change_ip || change_port).then_some(change));
            let (outcome, from) = exchange(&c, stun.at(dest), &req, tid).await;
            let source = stun.at(SocketId { alt_ip: dest.alt_ip ^ change_ip, alt_port: dest.alt_port ^ change_port });
            let ctx = format!("to {:?} with {change:?}", stun.at(dest));
            assert_eq!(from, source, "sent from (Da or Ca, Dp or Cp): {ctx}");
            assert_eq!(
                outcome,
                BindingOutcome::Success { mapped: me, other: Some(stun.at(dest.other())), origin: Some(source) },
                "{ctx}"
            );
        }
    }
    assert_eq!(stun.at(SocketId::PRIMARY.other()), other, "OTHER-ADDRESS of the primary is A2:alt port");
    assert_eq!(stun.metrics.stun_requests.get(), 16);

    // RESPONSE-PORT: the answer goes to that port of the requester's address, not to its source.
    let c2 = client().await;
    let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
    let mut req = Message::builder(mtype, TransactionId::from(7u128), MessageWriteVec::with_capacity(48));
    req.add_attribute(&ResponsePort(c2.local_addr().unwrap().port())).unwrap();
    req.add_fingerprint().unwrap();
    c.send_to(&req.finish(), stun.primary()).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) =
        tokio::time::timeout(WAIT, c2.recv_from(&mut buf)).await.expect("no answer on RESPONSE-PORT").unwrap();
    assert_eq!(from, stun.primary());
    let outcome = parse_binding_response(&buf[..n], 7).unwrap();
    assert!(matches!(outcome, BindingOutcome::Success { mapped, .. } if mapped == me), "{outcome:?}");
}

#[tokio::test]
async fn without_a_second_ip_there_is_no_other_address_and_change_ip_is_refused() {
    for lenient in [true, false] {
        let stun = start(None, lenient).await;
        let c = client().await;
        let me = c.local_addr().unwrap();
        let (outcome, from) = exchange(&c, stun.primary(), &binding_request(1, None), 1).await;
        assert_eq!(from, stun.primary());
        assert_eq!(outcome, BindingOutcome::Success { mapped: me, other: None, origin: Some(stun.primary()) });

        let ip = binding_request(2, Some(ChangeRequest { change_ip: true, change_port: false }));
        let (outcome, from) = exchange(&c, stun.primary(), &ip, 2).await;
        assert_eq!((outcome, from), (BindingOutcome::Error { code: 420 }, stun.primary()));

        let port = binding_request(3, Some(ChangeRequest { change_ip: false, change_port: true }));
        let (outcome, from) = exchange(&c, stun.primary(), &port, 3).await;
        if lenient {
            // The extension: change-port is honoured from the alternate port, still with no OTHER-ADDRESS.
            let alt = SocketAddr::new(A1.into(), stun.addrs.alt_port.unwrap());
            assert_eq!((outcome, from), (BindingOutcome::Success { mapped: me, other: None, origin: Some(alt) }, alt));
        } else {
            // RFC 5780 §6: 420 to any CHANGE-REQUEST without a second address.
            assert_eq!((outcome, from), (BindingOutcome::Error { code: 420 }, stun.primary()));
        }
    }
}

/// `turnutils_stunclient` (coturn), or `None` with the reason printed. Under `CI=true` its absence
/// fails the test.
fn stunclient() -> Option<&'static str> {
    const BIN: &str = "turnutils_stunclient";
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(BIN).is_file()));
    if found {
        return Some(BIN);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{BIN} is missing (install the Debian package coturn); CI=true requires it");
    }
    println!("SKIPPED: {BIN} is not installed (Debian package coturn)");
    None
}

/// Runs it (under `timeout 5`: it waits forever for an answer that does not come).
async fn run_stunclient(bin: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("timeout")
        .arg("5")
        .arg(bin)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("timeout(1) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The address after `label` on each line that has it ("...UDP reflexive addr: 127.0.0.1:5000").
fn addrs_after(text: &str, label: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find(label)? + label.len()..];
            rest.trim_start_matches([':', ' ']).trim().parse().ok()
        })
        .collect()
}

/// The output split into the client's rounds: before the first RFC 5780 banner, then one per banner.
fn rounds(text: &str) -> Vec<&str> {
    text.split("RFC 5780 response").collect()
}

#[tokio::test]
async fn turnutils_stunclient_reads_our_answers() {
    let Some(bin) = stunclient() else { return };
    let stun = start(Some(A2), true).await;
    let port = stun.primary().port().to_string();
    let alt = SocketAddr::new(A2.into(), stun.addrs.alt_port.unwrap());

    for args in [vec!["-p", &port, "127.0.0.1"], vec!["-f", "-p", &port, "127.0.0.1"]] {
        let (ok, out) = run_stunclient(bin, &args).await;
        assert!(ok, "{args:?} exits 0 (no hang, no error):\n{out}");
        // It sees OTHER-ADDRESS in the first answer and so runs the RFC 5780 rounds even without -f:
        // round 1 a plain binding; round 2 change IP and port with RESPONSE-PORT; round 3 the
        // same plus PADDING.
        let r = rounds(&out);
        assert_eq!(r.len(), 3, "two RFC 5780 banners ({args:?}):\n{out}");
        let reflexive = addrs_after(&out, "UDP reflexive addr");
        assert!(!reflexive.is_empty(), "{out}");
        assert!(
            reflexive.iter().all(|a| a.ip() == IpAddr::from(A1) && a.port() != 0 && a.port() == reflexive[0].port()),
            "the client's own address, the same in both rounds: {reflexive:?}\n{out}"
        );
        // Round 1 comes from A1:P1; OTHER-ADDRESS is A2:P2.
        assert!(addrs_after(r[1], "Response origin").iter().all(|a| *a == stun.primary()), "{out}");
        assert_eq!(addrs_after(r[1], "Other addr"), [alt], "{out}");
        // Round 2 asked to change both: it comes from A2:P2 (Table 1), to the RESPONSE-PORT the
        // client listens on; OTHER-ADDRESS is relative to where the request arrived, so still A2:P2.
        assert!(!addrs_after(r[2], "Response origin").is_empty(), "{out}");
        assert!(addrs_after(r[2], "Response origin").iter().all(|a| *a == alt), "{out}");
        assert_eq!(addrs_after(r[2], "Other addr"), [alt], "{out}");
        // Round 3 carries PADDING, which this server does not support: 420 (RFC 5389 §7.3.1 for an
        // unknown comprehension-required attribute).
        assert!(r[2].contains("error 420"), "{out}");
    }

    // Without a second IP there is no OTHER-ADDRESS: the client stops after one plain binding,
    // unless forced; forced, change IP gets 420 (sent to its RESPONSE-PORT, so it does not hang).
    let single = start(None, true).await;
    let port = single.primary().port().to_string();
    let (ok, out) = run_stunclient(bin, &["-p", &port, "127.0.0.1"]).await;
    assert!(ok, "{out}");
    assert!(!out.contains("RFC 5780") && !out.contains("Other addr") && !out.contains("error"), "{out}");
    assert!(
        addrs_after(&out, "UDP reflexive addr").iter().any(|a| a.ip() == IpAddr::from(A1) && a.port() != 0),
        "{out}"
    );
    let (ok, out) = run_stunclient(bin, &["-f", "-p", &port, "127.0.0.1"]).await;
    assert!(ok, "forced RFC 5780 rounds must not hang:\n{out}");
    assert_eq!(out.matches("error 420").count(), 2, "{out}");
    assert!(!out.contains("Other addr"), "{out}");
}
