//! `weft run --http ADDR`: the node's own web server, so a browser on the LAN joins the mesh
//! through any native node with no bootstrap server. It serves the page (built into the binary,
//! or from `--web-dir`), `/v1/info` (who this node is, so the page can preset the mesh), and
//! `/v1/signal` (see [`signal`]).

mod assets;
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

/// Binds `config.listen` and serves until the node stops; returns the bound address.
pub(crate) async fn spawn(config: &HttpConfig, state: HttpState) -> std::io::Result<SocketAddr> {
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
    let stopped = state.to_actor.clone();
    let app = Router::new().route("/v1/info", get(info)).route("/v1/signal", get(signal::upgrade)).with_state(state);
    let app = match &config.web_dir {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => app.fallback(assets::serve),
    };
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let shutdown = async move { stopped.closed().await };
        if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(shutdown).await {
            tracing::warn!("the HTTP server on {addr} stopped: {e}");
        }
    });
    Ok(addr)
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
