//! Whose request is this: the address quotas, rate limits and presence are charged to.
//!
//! Directly exposed, it is the TCP peer address. Behind a reverse proxy (`--behind-proxy`), every
//! connection comes from the proxy, so the client is the last address the proxy appended to
//! `X-Forwarded-For`; that header is only believed in this mode, since clients can forge it.

use crate::server::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// The client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client address of a request: the connection's peer, or the proxy's `X-Forwarded-For` entry.
pub fn client_ip(parts: &Parts, behind_proxy: bool) -> Option<IpAddr> {
    if behind_proxy {
        let header = parts.headers.get_all("x-forwarded-for").iter().next_back()?;
        let last = header.to_str().ok()?.rsplit(',').next()?.trim();
        return last.parse().ok();
    }
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| canonical(a.ip()))
}

/// IPv4-mapped IPv6 addresses (from a dual-stack listener) as plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        client_ip(parts, st.config.behind_proxy).map(ClientIp).ok_or_else(|| {
            let message = "no client address (behind a proxy that sets no X-Forwarded-For?)";
            crate::api::ErrorBody::response(StatusCode::BAD_REQUEST, "no_client_address", message).into_response()
        })
    }
}
