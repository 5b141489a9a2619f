//! A bootstrap server for the NAT lab: in-process, on its own runtime, inside the lab's public
//! namespace, with the RFC 5780 STUN responder on both public addresses.

use super::natlab::{NatLab, PUBLIC_IP, PUBLIC_IP2};
use std::net::{IpAddr, SocketAddr};

/// The server's HTTP port and its STUN responder's first port.
pub const HTTP_PORT: u16 = 8080;
pub const STUN_PORT: u16 = 3478;

/// A bootstrap server (in-process, its own runtime) inside the lab's public namespace, or only
/// its STUN responder.
pub struct LabServer {
    /// The bootstrap URL nodes get.
    pub url: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// The STUN responder on both public addresses, as weft-bootstrap runs it.
async fn lab_stun() -> bootstrap_server::stun::StunServer {
    use bootstrap_server::stun::{ServerAddrs, StunServer};
    StunServer::bind(ServerAddrs {
        primary_ip: IpAddr::V4(PUBLIC_IP),
        primary_port: STUN_PORT,
        alt_port: Some(STUN_PORT + 1),
        alt_ip: Some(IpAddr::V4(PUBLIC_IP2)),
        change_port_without_alt_ip: true,
    })
    .await
    .expect("bind the STUN responder in the lab")
}

impl LabServer {
    /// The whole server: API, signaling, relay and STUN.
    pub fn start(lab: &NatLab) -> LabServer {
        Self::start_with(lab, true)
    }

    /// With `http` false, only the STUN responder runs: no API, signaling or relay.
    pub fn start_with(lab: &NatLab, http: bool) -> LabServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        // The runtime is built on the namespace thread, so its workers (and every socket the
        // server opens) live in the public namespace.
        let (runtime, url) = lab.run_in("pub", move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let url = runtime.block_on(async move {
                let pool = bootstrap_server::db::open(&path).await.unwrap();
                let keys = bootstrap_server::keyfile::load_or_create(&path).unwrap();
                let stun = lab_stun().await;
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
                if http {
                    let listener =
                        tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(PUBLIC_IP), HTTP_PORT)).await.unwrap();
                    tokio::spawn(bootstrap_server::run(listener, state, std::future::pending()));
                }
                format!("http://{PUBLIC_IP}:{HTTP_PORT}")
            });
            (runtime, url)
        });
        LabServer { url, _runtime: runtime, _dir: dir }
    }
}
