//! `GET|PUT /v1/names/{name}`: the name registry over HTTP.

use super::ErrorBody;
use super::{json_body, ApiError};
use crate::client_ip::ClientIp;
use crate::db;
use crate::registry::{self, buckets, Decision};
use crate::server::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use node_core::names::{Name, NameAnswer, SignedNameRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn path_name(name: Result<Path<String>, PathRejection>) -> Result<Name, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest("bad_name", e.body_text()))?;
    Name::parse(&name).map_err(|e| ApiError::BadRequest("bad_name", e.to_string()))
}

/// `GET /v1/names/{name}`: the owner-signed record, its expiry, and the server's signature.
#[utoipa::path(get, path = "/v1/names/{name}",
    params(("name" = Name, Path, description = "The name")),
    responses(
        (status = 200, description = "The record, signed by its owner and by the server", body = NameAnswer),
        (status = 400, description = "Not a valid name", body = ErrorBody),
        (status = 404, description = "No such name, or expired", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("retry-after" = u64))),
    ))]
pub async fn get_name(
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    let now = (st.clock)();
    let cached = match st.answers.get(&name, now) {
        Some(hit) => hit,
        None => {
            // Fill under the write lock, so no write can slip between our read and our insert.
            let _guard = st.writes.lock().await;
            match db::get(&st.pool, &name).await? {
                Some(s) if s.live(now) => st.answers.put(&NameAnswer::new(s.signed, s.expires_unix_ms, &st.keys)),
                _ => return Err(ApiError::NotFound),
            }
        }
    };
    Ok(([(CONTENT_TYPE, "application/json")], cached.json.clone()).into_response())
}

/// What a successful `PUT` answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PutAnswer {
    /// The name is stored: the same answer a lookup gives.
    Stored(Box<NameAnswer>),
    /// The name is deleted.
    Deleted {
        /// The deleted name.
        deleted: Name,
    },
}

/// `PUT /v1/names/{name}`: a claim, an update or a delete, signed by the owner.
#[utoipa::path(put, path = "/v1/names/{name}",
    params(("name" = Name, Path, description = "The name; must equal the record's")),
    request_body(content = SignedNameRecord, description = "The record, signed by its owner"),
    responses(
        (status = 200, description = "Stored (or deleted)", body = PutAnswer),
        (status = 400, description = "Malformed, badly signed, or a name mismatch", body = ErrorBody),
        (status = 403, description = "Owned by another key, or the address's quota is used up", body = ErrorBody),
        (status = 404, description = "Deleting a name that does not exist", body = ErrorBody),
        (status = 409, description = "`seq` not above the stored one (a replay)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("retry-after" = u64))),
    ))]
pub async fn put_name(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<SignedNameRecord>, JsonRejection>,
) -> Result<Json<PutAnswer>, ApiError> {
    let name = path_name(name)?;
    let signed = json_body(body)?;
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
            st.metrics.name_writes.inc();
            let answer = NameAnswer::new(signed, expires_unix_ms, &st.keys);
            st.answers.put(&answer);
            Ok(Json(PutAnswer::Stored(Box::new(answer))))
        }
        Decision::Delete => {
            db::delete(&st.pool, &name).await?;
            st.answers.forget(&name);
            st.metrics.name_writes.inc();
            Ok(Json(PutAnswer::Deleted { deleted: name }))
        }
    }
}
