//! The HTTP API: JSON in and out, errors as `{code, message}` with a stable `code`.

use crate::db::{self, DbError};
use crate::registry::{self, buckets, Decision, RegistryError};
use crate::server::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use data_encoding::{BASE64, HEXLOWER};
use node_core::identity::Signature;
use node_core::names::{answer_bytes, Name, NameRecord, SignedNameRecord};
use node_core::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;

/// Every failure the API reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// The registry refused the record.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The name does not exist (or expired).
    #[error("no such name")]
    NotFound,
    /// Storage failed.
    #[error("storage failed")]
    Db(#[from] DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, *code),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Db(e) => {
                tracing::error!("{e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
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
        };
        (status, Json(json!({"code": code, "message": self.to_string()}))).into_response()
    }
}

/// A name record as JSON: text ids, base64 value, hex signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordJson {
    /// The name.
    pub name: String,
    /// The value, base64.
    pub value: String,
    /// The owner's PeerId (text form).
    pub owner: String,
    /// Strictly increasing per name.
    pub seq: u64,
    /// The owner's clock when signing.
    pub unix_ms: u64,
    /// True to delete.
    #[serde(default)]
    pub delete: bool,
    /// The owner's signature, hex.
    pub signature: String,
}

impl RecordJson {
    /// The JSON form of a signed record.
    pub fn from_signed(s: &SignedNameRecord) -> Self {
        RecordJson {
            name: s.record.name.to_string(),
            value: BASE64.encode(&s.record.value),
            owner: s.record.owner.to_string(),
            seq: s.record.seq,
            unix_ms: s.record.unix_ms,
            delete: s.record.delete,
            signature: HEXLOWER.encode(&s.signature.to_bytes()),
        }
    }

    /// Parses back into a signed record (signature not yet checked).
    pub fn to_signed(&self) -> Result<SignedNameRecord, ApiError> {
        let bad = |what: &str| ApiError::BadRequest("bad_record", format!("invalid {what}"));
        let name = Name::parse(&self.name).map_err(|e| ApiError::BadRequest("bad_name", e.to_string()))?;
        let value = BASE64.decode(self.value.as_bytes()).map_err(|_| bad("value (base64)"))?;
        let owner: PeerId = self.owner.parse().map_err(|_| bad("owner"))?;
        let sig = HEXLOWER.decode(self.signature.as_bytes()).map_err(|_| bad("signature (hex)"))?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| bad("signature length"))?;
        Ok(SignedNameRecord {
            record: NameRecord { name, value, owner, seq: self.seq, unix_ms: self.unix_ms, delete: self.delete },
            signature: Signature::from_bytes(sig),
        })
    }
}

fn path_name(name: &str) -> Result<Name, ApiError> {
    Name::parse(name).map_err(|e| ApiError::BadRequest("bad_name", e.to_string()))
}

/// `GET /healthz`
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /v1/info`: the server's key, version and limits.
pub async fn info(State(st): State<AppState>) -> Json<serde_json::Value> {
    let q = &st.quotas;
    Json(json!({
        "public_key": st.keys.peer_id().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "limits": {
            "name_max_len": node_core::names::MAX_NAME_LEN,
            "value_max_bytes": node_core::names::MAX_VALUE_LEN,
            "name_lifetime_secs": registry::FULL_LIFETIME.as_secs(),
            "names_per_ipv4": q.per_ipv4, "names_per_ipv6": q.per_ipv6,
            "names_per_ipv6_64": q.per_ipv6_64, "names_per_ipv6_48": q.per_ipv6_48,
            "body_max_bytes": crate::server::BODY_LIMIT,
        },
    }))
}

/// The answer for a name: the owner-signed record, its expiry, and the server's signature.
fn answer(st: &AppState, signed: &SignedNameRecord, expires_unix_ms: u64) -> serde_json::Value {
    let server_signature = st.keys.sign(&answer_bytes(signed, expires_unix_ms));
    json!({
        "record": RecordJson::from_signed(signed),
        "expires_unix_ms": expires_unix_ms,
        "server_key": st.keys.peer_id().to_string(),
        "server_signature": HEXLOWER.encode(&server_signature.to_bytes()),
    })
}

/// `GET /v1/names/{name}`
pub async fn get_name(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = path_name(&name)?;
    let now = (st.clock)();
    match db::get(&st.pool, &name).await? {
        Some(s) if s.live(now) => Ok(Json(answer(&st, &s.signed, s.expires_unix_ms))),
        _ => Err(ApiError::NotFound),
    }
}

/// `PUT /v1/names/{name}`: a claim, an update or a delete, signed by the owner.
pub async fn put_name(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    body: Result<Json<RecordJson>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = path_name(&name)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest("bad_json", e.body_text()))?;
    let signed = body.to_signed()?;
    let ip = peer.ip();
    // One decision at a time: read, decide and write must not interleave for the same name.
    let _guard = st.writes.lock().await;
    let now = (st.clock)();
    let stored = db::get(&st.pool, &name).await?;
    let mut counts = Vec::new();
    for (bucket, _) in buckets(ip, &st.quotas) {
        counts.push((bucket, db::used(&st.pool, bucket, &name, now).await?));
    }
    let used = |b| counts.iter().find(|(x, _)| *x == b).map_or(0, |(_, n)| *n);
    match registry::decide(&name, &signed, stored.as_ref(), ip, &st.quotas, used, now)? {
        Decision::Store { expires_unix_ms } => {
            db::store(&st.pool, &signed, ip, expires_unix_ms).await?;
            Ok(Json(answer(&st, &signed, expires_unix_ms)))
        }
        Decision::Delete => {
            db::delete(&st.pool, &name).await?;
            Ok(Json(json!({"deleted": name.to_string()})))
        }
    }
}
