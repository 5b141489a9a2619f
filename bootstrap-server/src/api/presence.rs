//! Presence and trust: `POST /v1/announce`, `GET /v1/peers?mesh=`, `GET /v1/trusted`.

use super::{json_body, ApiError, ErrorBody};
use crate::client_ip::ClientIp;
use crate::db;
use crate::server::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::Json;
use node_core::presence::{AnnounceReply, PeerList, ServerSigned, SignedPresence, TrustedList};
use node_core::wire::MAX_MESH_ID_LEN;
use serde::Deserialize;
use utoipa::IntoParams;

/// `POST /v1/announce`: list the signing node as live in its mesh.
#[utoipa::path(post, path = "/v1/announce",
    request_body(content = SignedPresence, description = "The node's presence, signed by it"),
    responses(
        (status = 200, description = "Listed; announce again within `reannounce_after_secs`", body = AnnounceReply),
        (status = 400, description = "Malformed, badly signed, or the clock is off", body = ErrorBody),
        (status = 409, description = "Not newer than the listed announcement", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "Rate limited, or too many peers from this address", body = ErrorBody),
    ))]
pub async fn announce(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<SignedPresence>, JsonRejection>,
) -> Result<Json<AnnounceReply>, ApiError> {
    let signed = json_body(body)?;
    let now = (st.clock)();
    let reply = st.presence().announce(signed, ip, now)?;
    Ok(Json(reply))
}

/// The query of `GET /v1/peers`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeersQuery {
    /// The mesh to list.
    #[param(max_length = 64)]
    pub mesh: String,
}

/// `GET /v1/peers?mesh=`: the mesh's live peers, signed by the server.
#[utoipa::path(get, path = "/v1/peers",
    params(PeersQuery),
    responses(
        (status = 200, description = "The live peers, newest first, signed by the server", body = ServerSigned<PeerList>),
        (status = 400, description = "Missing or invalid mesh", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("retry-after" = u64))),
    ))]
pub async fn peers(
    State(st): State<AppState>,
    query: Result<Query<PeersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ServerSigned<PeerList>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest("bad_query", e.body_text()))?;
    if q.mesh.len() > MAX_MESH_ID_LEN {
        return Err(ApiError::BadRequest("bad_query", format!("a mesh id is at most {MAX_MESH_ID_LEN} bytes")));
    }
    let now = (st.clock)();
    let peers = st.presence().list(&q.mesh, now);
    Ok(Json(ServerSigned::new(PeerList { mesh_id: q.mesh, peers, unix_ms: now }, &st.keys)))
}

/// `GET /v1/trusted`: the nodes the operator trusts, signed by the server.
#[utoipa::path(get, path = "/v1/trusted",
    responses(
        (status = 200, description = "The trusted nodes, signed by the server", body = ServerSigned<TrustedList>),
        (status = 429, description = "Rate limited", body = ErrorBody, headers(("retry-after" = u64))),
    ))]
pub async fn trusted(State(st): State<AppState>) -> Result<Json<ServerSigned<TrustedList>>, ApiError> {
    let peers = db::trust_list(&st.pool).await?.into_iter().map(|t| t.peer_id).collect();
    Ok(Json(ServerSigned::new(TrustedList { peers, unix_ms: (st.clock)() }, &st.keys)))
}
