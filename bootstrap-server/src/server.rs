//! The server: routes, shared state, the prune task, and `run(listener, pool, …, shutdown)`.

use crate::api;
use crate::registry::Quotas;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use node_core::identity::Keypair;
use sqlx::SqlitePool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 16 * 1024;
/// How often expired names are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Unix milliseconds now: the real clock in the binary, a controllable one in tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    })
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
    /// Serializes name writes (read, decide, write).
    pub writes: Arc<Mutex<()>>,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/v1/info", get(api::info))
        .route("/v1/names/{name}", get(api::get_name).put(api::put_name))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves until `shutdown` completes, pruning expired names in the background.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (pool, clock) = (state.pool.clone(), state.clock.clone());
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tick.tick().await;
            match crate::db::prune(&pool, clock()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("pruned {n} expired names"),
                Err(e) => tracing::warn!("pruning failed: {e}"),
            }
        }
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    pruner.abort();
    r
}
