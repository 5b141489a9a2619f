//! Prometheus metrics at `/metrics`: requests by route and status, names, live peers, signaling
//! and relay sessions, relay bytes, STUN requests, rate-limited requests.

use crate::server::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The labels of a request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (never the raw path, which a client could vary without bound).
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status.
    pub status: u16,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Names claimed, updated or deleted.
    pub name_writes: Counter,
    /// Names stored (set when scraped).
    pub names: Gauge,
    /// Peers listed as live (set when scraped).
    pub live_peers: Gauge,
    /// Logged-in signaling connections.
    pub signal_sessions: Gauge,
    /// Envelopes forwarded.
    pub signal_envelopes: Counter,
    /// Paired relay sessions.
    pub relay_sessions: Gauge,
    /// Bytes forwarded by the relay.
    pub relay_bytes: Counter,
    /// STUN binding requests answered.
    pub stun_requests: Counter,
    /// Requests refused by the rate limiter.
    pub rate_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `weft_bootstrap` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft_bootstrap");
        let m = Metrics {
            requests: Family::default(),
            name_writes: Counter::default(),
            names: Gauge::default(),
            live_peers: Gauge::default(),
            signal_sessions: Gauge::default(),
            signal_envelopes: Counter::default(),
            relay_sessions: Gauge::default(),
            relay_bytes: Counter::default(),
            stun_requests: Counter::default(),
            rate_limited: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests answered", m.requests.clone());
        registry.register("name_writes", "Names claimed, updated or deleted", m.name_writes.clone());
        registry.register("names", "Names stored", m.names.clone());
        registry.register("live_peers", "Peers listed as live", m.live_peers.clone());
        registry.register("signal_sessions", "Logged-in signaling connections", m.signal_sessions.clone());
        registry.register("signal_envelopes", "Signaling envelopes forwarded", m.signal_envelopes.clone());
        registry.register("relay_sessions", "Paired relay sessions", m.relay_sessions.clone());
        registry.register("relay_bytes", "Bytes forwarded by the relay", m.relay_bytes.clone());
        registry.register("stun_requests", "STUN binding requests answered", m.stun_requests.clone());
        registry.register("rate_limited", "Requests refused by the rate limiter", m.rate_limited.clone());
        Metrics { registry, ..m }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `GET /metrics`: Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
))]
pub async fn render(State(st): State<AppState>) -> Response {
    if let Ok(n) = crate::db::count(&st.pool).await {
        st.metrics.names.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    st.metrics.live_peers.set(st.presence().len() as i64);
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(CONTENT_TYPE, content_type)], st.metrics.encode()).into_response()
}

/// The middleware counting every answered request.
pub async fn count(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH") => m,
        _ => "other", // a client may send any token; the label set must stay bounded
    }
    .to_owned();
    let resp = next.run(req).await;
    st.metrics.requests.get_or_create(&RequestLabels { route, method, status: resp.status().as_u16() }).inc();
    resp
}
