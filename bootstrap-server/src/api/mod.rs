//! The HTTP API: JSON in and out, errors as `{code, message}` with a stable `code`.

pub mod names;
pub mod presence;

use crate::db::DbError;
use crate::presence::PresenceError;
use crate::registry::{self, RegistryError};
use crate::server::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every failure the API reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// The body is larger than the server accepts.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    /// The registry refused the record.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The presence table refused the announcement.
    #[error(transparent)]
    Presence(#[from] PresenceError),
    /// The name does not exist (or expired).
    #[error("no such name")]
    NotFound,
    /// Storage failed.
    #[error("storage failed")]
    Db(#[from] DbError),
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable.
    pub code: String,
    /// For humans.
    pub message: String,
}

impl ErrorBody {
    /// A response with `status` and this body.
    pub fn response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
        (status, Json(ErrorBody { code: code.into(), message: message.into() })).into_response()
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Db(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Presence(e) => {
                let status = match e {
                    PresenceError::Full(_) => StatusCode::TOO_MANY_REQUESTS,
                    PresenceError::Stale => StatusCode::CONFLICT,
                    _ => StatusCode::BAD_REQUEST,
                };
                (status, e.code())
            }
            ApiError::Registry(e) => {
                let status = match e {
                    RegistryError::Record(_) | RegistryError::NameMismatch => StatusCode::BAD_REQUEST,
                    RegistryError::NotOwner | RegistryError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
                    RegistryError::StaleSeq { .. } => StatusCode::CONFLICT,
                    RegistryError::NotFound => StatusCode::NOT_FOUND,
                };
                (status, e.code())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Db(e) = &self {
            tracing::error!("{e}");
        }
        let (status, code) = self.status_and_code();
        ErrorBody::response(status, code, self.to_string())
    }
}

/// Unwraps a JSON body, turning axum's rejection into our error: 413 for an oversized body, 400
/// `bad_json` for anything else.
pub fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(crate::server::BODY_LIMIT)),
        Err(e) => Err(ApiError::BadRequest("bad_json", e.body_text())),
    }
}

/// `GET /healthz`: the server is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The server's STUN endpoints, as `/v1/info` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StunInfo {
    /// The binding responder's UDP port.
    pub port: u16,
    /// The alternate port (RFC 5780 change-port answers come from it).
    pub alt_port: u16,
    /// The alternate address, when the server has one (change-IP answers come from it).
    #[schema(value_type = Option<String>)]
    pub alt_ip: Option<std::net::IpAddr>,
}

/// Limits a client should respect.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Longest name.
    pub name_max_len: usize,
    /// Largest name value.
    pub value_max_bytes: usize,
    /// How long a name lives after its last bump, with the quota unused.
    pub name_lifetime_secs: u64,
    /// Names per IPv4 address.
    pub names_per_ipv4: u32,
    /// Names per IPv6 address.
    pub names_per_ipv6: u32,
    /// Names per IPv6 /64.
    pub names_per_ipv6_64: u32,
    /// Names per IPv6 /48.
    pub names_per_ipv6_48: u32,
    /// Largest request body.
    pub body_max_bytes: usize,
    /// Largest signaling payload.
    pub signal_payload_max_bytes: usize,
    /// Re-announce interval.
    pub reannounce_after_secs: u32,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerInfo {
    /// The server's Ed25519 key (PeerId text form): what nodes pin.
    pub public_key: node_core::PeerId,
    /// Server version.
    pub version: String,
    /// STUN, when enabled.
    pub stun: Option<StunInfo>,
    /// Limits.
    pub limits: Limits,
}

/// `GET /v1/info`: the server's key, version, STUN endpoints and limits.
#[utoipa::path(get, path = "/v1/info", responses(
    (status = 200, description = "The server's key, version, STUN endpoints and limits", body = ServerInfo),
    (status = 429, description = "Rate limited", body = ErrorBody, headers(("retry-after" = u64))),
))]
pub async fn info(State(st): State<AppState>) -> Json<ServerInfo> {
    let q = &st.quotas;
    Json(ServerInfo {
        public_key: st.keys.peer_id(),
        version: env!("CARGO_PKG_VERSION").into(),
        stun: st.config.stun.clone(),
        limits: Limits {
            name_max_len: node_core::names::MAX_NAME_LEN,
            value_max_bytes: node_core::names::MAX_VALUE_LEN,
            name_lifetime_secs: registry::FULL_LIFETIME.as_secs(),
            names_per_ipv4: q.per_ipv4,
            names_per_ipv6: q.per_ipv6,
            names_per_ipv6_64: q.per_ipv6_64,
            names_per_ipv6_48: q.per_ipv6_48,
            body_max_bytes: crate::server::BODY_LIMIT,
            signal_payload_max_bytes: node_core::signal::MAX_SIGNAL_PAYLOAD,
            reannounce_after_secs: crate::presence::REANNOUNCE_AFTER_SECS,
        },
    })
}

/// Any path the server does not know.
pub async fn not_found() -> Response {
    ErrorBody::response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
