//! Port mapping on the LAN's router (UPnP IGD, `igd-next`): at start the node looks for an
//! internet gateway device, asks it for its public address and for a mapping of our TCP port,
//! and tells the core (`Input::PortMapped`), which offers the mapping to peers so they can dial
//! us directly, whatever our NAT does to other traffic. The lease (an hour) is renewed at half
//! time and given back when the node stops in good order (else it lapses by itself).

use igd_next::aio::tokio::{search_gateway, Tokio};
use igd_next::aio::Gateway;
use igd_next::{PortMappingProtocol, SearchOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How long to look for a gateway (SSDP) before concluding there is none.
const SEARCH_FOR: Duration = Duration::from_secs(3);
/// The lease asked for, in seconds; renewed at half time.
const LEASE_S: u32 = 3600;
/// What the router's mapping table shows.
const DESCRIPTION: &str = "weft";
/// Longest wait for one request to the router (igd-next sets none).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why there is no mapping.
#[derive(Debug, thiserror::Error)]
pub enum UpnpError {
    /// No gateway answered.
    #[error("no UPnP router answered: {0}")]
    Search(#[from] igd_next::SearchError),
    /// The gateway would not say its public address.
    #[error("the UPnP router did not give its public address: {0}")]
    ExternalIp(#[from] igd_next::GetExternalIpError),
    /// The gateway refused the mapping.
    #[error("the UPnP router refused to map the port: {0}")]
    Map(String),
    /// Our address towards the gateway could not be found.
    #[error("cannot find our address towards the router: {0}")]
    Local(#[from] std::io::Error),
    /// The answer to our search named a device off the LAN.
    #[error("ignoring a UPnP answer that points at {0}, which is not on the LAN")]
    NotOnLan(SocketAddr),
    /// The router did not answer a request in time.
    #[error("the UPnP router did not answer within {0:?}")]
    Timeout(Duration),
}

/// `request`, given at most [`REQUEST_TIMEOUT`].
async fn bounded<T>(request: impl std::future::Future<Output = T>) -> Result<T, UpnpError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request).await.map_err(|_| UpnpError::Timeout(REQUEST_TIMEOUT))
}

/// A mapping the router granted.
pub struct Mapping {
    /// The public address peers dial.
    pub external: SocketAddr,
    local: SocketAddr,
    gateway: Gateway<Tokio>,
}

impl Mapping {
    /// Renews the lease every half lease until `stopped` resolves, then gives the mapping back.
    pub async fn keep(self, stopped: impl std::future::Future<Output = ()>) {
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(u64::from(LEASE_S / 2))) => {
                    let port = self.external.port();
                    let renew = self.gateway.add_port(PortMappingProtocol::TCP, port, self.local, LEASE_S, DESCRIPTION);
                    match bounded(renew).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!("renewing the UPnP mapping of port {port} failed: {e}"),
                        Err(e) => tracing::warn!("renewing the UPnP mapping of port {port}: {e}"),
                    }
                }
                () = &mut stopped => break,
            }
        }
        let _ = bounded(self.gateway.remove_port(PortMappingProtocol::TCP, self.external.port())).await;
    }
}

/// Asks the LAN's router to map a public port to `listen` (our TCP listener).
pub async fn map_tcp(listen: SocketAddr) -> Result<Mapping, UpnpError> {
    let bind_ip = match listen.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        // UPnP IGD maps IPv4 ports; a wildcard IPv6 listener takes IPv4 too.
        IpAddr::V6(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let options = SearchOptions {
        bind_addr: SocketAddr::new(bind_ip, 0),
        timeout: Some(SEARCH_FOR),
        single_search_timeout: Some(SEARCH_FOR),
        ..SearchOptions::default()
    };
    let gateway = search_gateway(options).await?;
    // Any host on the LAN can answer the search, naming any address as the router: only a
    // device on a private network is taken (never this host's loopback services, say).
    let on_lan = match gateway.addr.ip() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unique_local() || v6.is_unicast_link_local(),
    };
    if !on_lan {
        return Err(UpnpError::NotOnLan(gateway.addr));
    }
    // Our address on the LAN, as the router sees it: the source of a route towards it.
    let local_ip = if bind_ip.is_unspecified() {
        let probe = std::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0))?;
        probe.connect(gateway.addr)?;
        probe.local_addr()?.ip()
    } else {
        bind_ip
    };
    let local = SocketAddr::new(local_ip, listen.port());
    let external_ip = bounded(gateway.get_external_ip()).await??;
    let port =
        match bounded(gateway.add_port(PortMappingProtocol::TCP, listen.port(), local, LEASE_S, DESCRIPTION)).await? {
            Ok(()) => listen.port(),
            // Someone else holds our port number on the router: any free one will do.
            Err(_) => bounded(gateway.add_any_port(PortMappingProtocol::TCP, local, LEASE_S, DESCRIPTION))
                .await?
                .map_err(|e| UpnpError::Map(e.to_string()))?,
        };
    Ok(Mapping { external: SocketAddr::new(external_ip, port), local, gateway })
}
