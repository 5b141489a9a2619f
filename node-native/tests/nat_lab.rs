//! Through NATs, in the project's NAT lab (tests/support/natlab.rs: namespaces and nftables, a
//! bootstrap server with an RFC 5780 STUN responder on two public addresses, hosts behind
//! switchable NATs). Real `weft` processes; needs root (skips with a reason on a user's machine,
//! fails under CI=true).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::natlab::{Nat, NatLab, Side, PUBLIC_IP, PUBLIC_IP2};
use support::Weft;

const HTTP_PORT: u16 = 8080;
const STUN_PORT: u16 = 3478;

/// A bootstrap server (in-process, its own runtime) inside the lab's public namespace.
struct LabServer {
    url: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl LabServer {
    fn start(lab: &NatLab) -> LabServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        // The runtime is built on the namespace thread, so its workers (and every socket the
        // server opens) live in the public namespace.
        let (runtime, url) = lab.run_in("pub", move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let url = runtime.block_on(async move {
                use bootstrap_server::stun::{ServerAddrs, StunServer};
                let pool = bootstrap_server::db::open(&path).await.unwrap();
                let keys = bootstrap_server::keyfile::load_or_create(&path).unwrap();
                let stun = StunServer::bind(ServerAddrs {
                    primary_ip: IpAddr::V4(PUBLIC_IP),
                    primary_port: STUN_PORT,
                    alt_port: Some(STUN_PORT + 1),
                    alt_ip: Some(IpAddr::V4(PUBLIC_IP2)),
                    change_port_without_alt_ip: true,
                })
                .await
                .expect("bind the STUN responder in the lab");
                let config = bootstrap_server::ServerConfig {
                    stun: Some(bootstrap_server::api::StunInfo {
                        port: STUN_PORT,
                        alt_port: STUN_PORT + 1,
                        alt_ip: Some(IpAddr::V4(PUBLIC_IP2)),
                    }),
                    ..Default::default()
                };
                let state = bootstrap_server::AppState::new(pool, keys, config, bootstrap_server::system_clock());
                tokio::spawn(stun.serve(state.metrics.clone()));
                let listener =
                    tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(PUBLIC_IP), HTTP_PORT)).await.unwrap();
                tokio::spawn(bootstrap_server::run(listener, state, std::future::pending()));
                format!("http://{PUBLIC_IP}:{HTTP_PORT}")
            });
            (runtime, url)
        });
        LabServer { url, _runtime: runtime, _dir: dir }
    }
}

/// `weft` on `side`'s host, with the lab's server as its bootstrap server.
fn node(lab: &NatLab, dir: &std::path::Path, server: &LabServer, side: Side, name: &str) -> Weft {
    let bind = lab.host_ip(side).to_string();
    Weft::start_with_prefix(
        dir,
        name,
        &["--no-discovery", "--bind", &bind, "--bootstrap", &server.url],
        &lab.exec(side),
    )
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
        let a = node(&lab, dir.path(), &server, Side::A, "a");
        let report = a
            .wait_event(Duration::from_secs(20), |e| e["event"] == "nat")
            .unwrap_or_else(|| panic!("no NAT report behind a {nat:?} router: {:#?}", a.events()));
        eprintln!("behind a {nat:?} router: {report}");
        assert_eq!(report["type"], nat.reported(), "behind a {nat:?} router: {report}");
        assert_eq!(report["exact"], true, "the server has two addresses: {report}");
        let public: SocketAddr = report["public"].as_str().unwrap().parse().unwrap();
        assert_eq!(public.ip(), IpAddr::from([198, 51, 100, 1]), "seen as the router's public address");
        let allocation = &report["allocation"]["kind"];
        match nat {
            Nat::Symmetric => assert_eq!(allocation, "random", "masquerade random: {report}"),
            _ => assert_eq!(allocation, "preserving", "masquerade keeps ports: {report}"),
        }
    }
}
