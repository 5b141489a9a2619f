//! The OpenAPI document at `/v1/openapi.json`, generated from the handlers' annotations and the
//! types' schemas (utoipa). The websockets (`/v1/signal`, `/v1/relay`) are described in
//! `node_core::signal`, not here: OpenAPI has no words for them.

use crate::api;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::OpenApi;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "weft-bootstrap",
        description = "Weft's bootstrap, name and signaling server. Errors are JSON `{code, message}` with a stable `code`."
    ),
    paths(
        api::healthz,
        api::info,
        api::names::get_name,
        api::names::put_name,
        api::presence::announce,
        api::presence::peers,
        api::presence::trusted,
        crate::metrics::render,
    ),
    components(schemas(api::ErrorBody))
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`.
pub async fn document() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default());
    ([(CONTENT_TYPE, "application/json")], json.as_str()).into_response()
}
