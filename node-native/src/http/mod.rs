//! `weft run --http ADDR`: the node's own web server, so a browser on the LAN joins the mesh
//! through any native node with no bootstrap server. It serves the page (built into the binary,
//! or from `--web-dir`), `/v1/info` (who this node is, so the page can preset the mesh), and
//! `/v1/signal` (see [`signal`]).

mod assets;
mod serve;
pub mod signal;

use crate::actor::ToActor;
use crate::clock::Clock;
use crate::signal_router::SignalRouter;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use node_core::PeerId;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Where and what to serve.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Serve the page from this directory instead of the one built into the binary.
    pub web_dir: Option<PathBuf>,
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub me: PeerId,
    pub name: String,
    pub mesh: String,
    pub clock: Clock,
    pub router: Arc<SignalRouter>,
    pub to_actor: mpsc::Sender<ToActor>,
    pub sessions: Arc<signal::Sessions>,
}

/// Checks `config` and binds its address, before the node starts anything else, so that a bad
/// `--http` leaves nothing running. Returns the listener and the address it got.
pub(crate) async fn bind(config: &HttpConfig) -> std::io::Result<(TcpListener, SocketAddr)> {
    if let Some(dir) = &config.web_dir {
        if !dir.join("index.html").is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no index.html (point --web-dir at the page's directory)", dir.display()),
            ));
        }
    } else if !assets::has_page() {
        tracing::warn!(
            "this weft was built without the page (run scripts/build-web.sh, then rebuild); serving signaling only"
        );
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves on `listener` (from [`bind`]) until the node stops.
pub(crate) fn spawn(listener: TcpListener, config: &HttpConfig, state: HttpState) {
    let stopped = state.to_actor.clone();
    let app = Router::new()
        .route("/v1/info", get(info))
        .route("/v1/signal", get(signal::upgrade))
        .route("/v1/doctor/{peer}", get(doctor))
        .with_state(state);
    let app = match &config.web_dir {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => app.fallback(assets::serve),
    };
    let own_names = Arc::new(own_host_names());
    let app = app.layer(axum::middleware::from_fn(move |req, next| guard_host(own_names.clone(), req, next)));
    tokio::spawn(serve::serve(listener, app, serve::ServeLimits::default(), async move { stopped.closed().await }));
}

/// `GET /v1/doctor/<peer id>`: this node's connectivity report for the peer (the `doctor` JSON
/// of `weft --json`). It names addresses, so only this machine may ask.
async fn doctor(
    State(st): State<HttpState>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<SocketAddr>,
    axum::extract::Path(peer): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    if !from.ip().to_canonical().is_loopback() {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "the doctor answers this machine only"}))).into_response();
    }
    let Ok(peer) = peer.parse::<PeerId>() else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "not a peer id"}))).into_response();
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if st.to_actor.send(ToActor::Diagnose(peer, tx)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the node is stopping"}))).into_response();
    }
    match rx.await {
        Ok(d) => Json(node_core::json::diagnosis(&d)).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the node is stopping"}))).into_response(),
    }
}

/// Names this host answers to besides IP literals and `localhost`: its host name, and that name
/// under `.local` (mDNS).
fn own_host_names() -> Vec<String> {
    let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_ascii_lowercase();
    if name.is_empty() {
        return Vec::new();
    }
    vec![format!("{name}.local"), name]
}

/// The host part of a `Host` header value or an origin's authority (`[v6]:port`, `name:port`).
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// True when a request for `host` may be answered: an IP literal, `localhost`, or one of
/// `own` names. Anything else could be DNS rebinding — a hostile site's name pointed at this
/// node, so that a visitor's browser treats the node as part of that site.
fn host_allowed(host: &str, own: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" || own.contains(&host)
}

/// Refuses requests whose `Host` is not this node's (see [`host_allowed`]).
async fn guard_host(
    own: Arc<Vec<String>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = req.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !host_allowed(host_part(host), &own) {
        let message = "this node answers only to its IP addresses, localhost and its own host name\n";
        return (axum::http::StatusCode::MISDIRECTED_REQUEST, message).into_response();
    }
    next.run(req).await
}

/// `GET /v1/info`: this node, in the shape of a bootstrap server's answer where they overlap
/// (`stun` is null: on a LAN, host candidates are all a browser needs).
async fn info(State(st): State<HttpState>) -> Json<Value> {
    Json(json!({
        "kind": "node",
        "peer_id": st.me,
        "public_key": st.me,
        "name": st.name,
        "mesh": st.mesh,
        "version": env!("CARGO_PKG_VERSION"),
        "stun": null,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_hosts_names_are_answered() {
        let own = vec!["box.local".to_owned(), "box".to_owned()];
        for ok in ["127.0.0.1:8480", "[::1]:8480", "192.168.1.9", "localhost:8480", "BOX:8480", "box.local"] {
            assert!(host_allowed(host_part(ok), &own), "{ok}");
        }
        for bad in ["evil.example:8480", "box.evil.example", "", "localhost.evil.example"] {
            assert!(!host_allowed(host_part(bad), &own), "{bad}");
        }
    }
}
