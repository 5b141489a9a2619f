//! The page built into the binary (see `build.rs`), served when no `--web-dir` is given.

use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The file the page cannot work without: the browser node itself.
const BUNDLE: &str = "pkg/node_wasm_bg.wasm";

/// True when this binary carries a complete page.
pub fn has_page() -> bool {
    find(BUNDLE).is_some()
}

fn find(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(name, _)| *name == path).map(|(_, bytes)| *bytes)
}

/// The content type browsers need for `path` (a wasm module only streams as `application/wasm`,
/// and module scripts load only with a JavaScript type).
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Answers a GET for a page file.
pub async fn serve(uri: Uri) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    if path == "index.html" && !has_page() {
        return (StatusCode::SERVICE_UNAVAILABLE, Html(NO_PAGE)).into_response();
    }
    match find(path) {
        // The page changes with the binary; `no-cache` makes browsers revalidate after an upgrade.
        Some(bytes) => {
            ([(header::CONTENT_TYPE, content_type(path)), (header::CACHE_CONTROL, "no-cache")], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

const NO_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Weft</title>\
<p>This <code>weft</code> was built without the page. Run <code>scripts/build-web.sh</code> and \
rebuild, or start it with <code>--web-dir</code> pointing at a built <code>web/</code> directory. \
Signaling on <code>/v1/signal</code> works either way.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_fit_what_browsers_require() {
        assert_eq!(content_type("pkg/node_wasm_bg.wasm"), "application/wasm");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn only_page_files_are_embedded() {
        for (name, _) in ASSETS {
            assert!(!name.starts_with("tests/") && !name.contains("node_modules"), "{name} is not part of the page");
        }
    }
}
