//! The server: configuration, shared state, routes, background tasks, and
//! `run(listener, state, shutdown)`.

use crate::answers::Answers;
use crate::api::{self, StunInfo};
use crate::metrics::Metrics;
use crate::presence::{PresenceLimits, PresenceTable};
use crate::ratelimit::{self, RateLimit, RateLimiter};
use crate::registry::Quotas;
use crate::relay::{RelayHub, RelayLimits};
use crate::signal::{SignalHub, SignalLimits};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use node_core::identity::Keypair;
use sqlx::SqlitePool;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 16 * 1024;
/// How often expired names and peers are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// Unix milliseconds now: the real clock in the binary, a controllable one in tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    })
}

/// How the server is set up.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Believe `X-Forwarded-For` (only behind a reverse proxy that sets it).
    pub behind_proxy: bool,
    /// Per-address request rate limit for the API; `None` turns it off.
    pub rate_limit: Option<RateLimit>,
    /// The STUN endpoints `/v1/info` advertises.
    pub stun: Option<StunInfo>,
    /// The static page to serve at `/`.
    pub web_dir: Option<PathBuf>,
    /// Name quotas.
    pub quotas: Quotas,
    /// Presence table bounds.
    pub presence: PresenceLimits,
    /// Signaling limits.
    pub signal: SignalLimits,
    /// Relay limits.
    pub relay: RelayLimits,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: SqlitePool,
    /// The server's identity (signs answers).
    pub keys: Arc<Keypair>,
    /// Name quotas.
    pub quotas: Quotas,
    /// The clock.
    pub clock: Clock,
    /// Serializes name writes (read, decide, write) and answer-cache fills.
    pub writes: Arc<Mutex<()>>,
    /// Signed name answers ready to send.
    pub answers: Arc<Answers>,
    /// Live peers.
    pub presence: Arc<std::sync::Mutex<PresenceTable>>,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-address request limiter.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Logged-in signaling clients.
    pub signal: Arc<SignalHub>,
    /// Relay sessions.
    pub relay: Arc<RelayHub>,
}

impl AppState {
    /// The state for a server with `config`.
    pub fn new(pool: SqlitePool, keys: Keypair, config: ServerConfig, clock: Clock) -> Self {
        let metrics = Arc::new(Metrics::new());
        AppState {
            pool,
            keys: Arc::new(keys),
            quotas: config.quotas,
            clock,
            writes: Default::default(),
            answers: Default::default(),
            presence: Arc::new(std::sync::Mutex::new(PresenceTable::new(config.presence))),
            metrics: metrics.clone(),
            limiter: config.rate_limit.map(|r| Arc::new(RateLimiter::new(r))),
            signal: Arc::new(SignalHub::new(config.signal, metrics.clone())),
            relay: Arc::new(RelayHub::new(config.relay, metrics)),
            config: Arc::new(config),
        }
    }

    /// The presence table (a panicked holder leaves it usable: every update is one insert).
    pub fn presence(&self) -> MutexGuard<'_, PresenceTable> {
        self.presence.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/info", get(api::info))
        .route("/v1/names/{name}", get(api::names::get_name).put(api::names::put_name))
        .route("/v1/announce", post(api::presence::announce))
        .route("/v1/peers", get(api::presence::peers))
        .route("/v1/trusted", get(api::presence::trusted))
        .route("/v1/signal", get(crate::signal::upgrade))
        .route("/v1/relay", get(crate::relay::upgrade))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), ratelimit::limit));
    let mut app = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(crate::metrics::render))
        .route("/v1/openapi.json", get(crate::openapi::document))
        .merge(api);
    app = match &state.config.web_dir {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => app.fallback(api::not_found),
    };
    app.layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::count))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves until `shutdown` completes, pruning expired names, peers and rate-limit entries in the
/// background.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pruner = tokio::spawn(prune_forever(state.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    pruner.abort();
    r
}

async fn prune_forever(st: AppState) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tick.tick().await;
        let now = (st.clock)();
        match crate::db::prune(&st.pool, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("pruned {n} expired names"),
            Err(e) => tracing::warn!("pruning failed: {e}"),
        }
        st.presence().prune(now);
        if let Some(limiter) = &st.limiter {
            limiter.shrink();
        }
        st.relay.shrink();
    }
}
