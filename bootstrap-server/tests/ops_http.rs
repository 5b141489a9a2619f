//! Operations over real HTTP on loopback: body limits and JSON errors, the per-address rate limit,
//! Prometheus metrics, the OpenAPI document, and the static page.

mod support;

use bootstrap_server::ratelimit::RateLimit;
use bootstrap_server::server::BODY_LIMIT;
use bootstrap_server::ServerConfig;
use std::net::IpAddr;
use std::num::NonZeroU32;
use support::{request_from, server, server_with, Answer};

const LOCAL: [u8; 4] = [127, 0, 0, 1];

async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    request_from(LOCAL.into(), addr, "GET", path, None).await
}

fn code(a: &Answer) -> (u16, String) {
    (a.status, a.json()["code"].as_str().unwrap_or_default().to_owned())
}

/// The value of the sample `name{labels}` (labels exactly as encoded), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn oversized_malformed_and_unknown_requests_get_json_errors() {
    let s = server().await;
    let big = vec![b' '; BODY_LIMIT + 1];
    for (method, path) in [("POST", "/v1/announce"), ("PUT", "/v1/names/alice")] {
        let a = request_from(LOCAL.into(), s.addr, method, path, Some(&big)).await;
        assert_eq!(code(&a), (413, "body_too_large".into()), "{method} {path}: {}", a.body);
        assert!(a.json()["message"].as_str().unwrap().contains(&BODY_LIMIT.to_string()));
    }
    let a = request_from(LOCAL.into(), s.addr, "POST", "/v1/announce", Some(b"{\"presence\": ")).await;
    assert_eq!(code(&a), (400, "bad_json".into()), "{}", a.body);
    let a = request_from(LOCAL.into(), s.addr, "POST", "/v1/announce", Some(b"{\"presence\": 1}")).await;
    assert_eq!(code(&a), (400, "bad_json".into()), "well-formed JSON of the wrong shape: {}", a.body);
    let a = get(s.addr, "/v1/peers").await;
    assert_eq!(code(&a), (400, "bad_query".into()), "{}", a.body);
    assert!(a.header("content-type").unwrap().starts_with("application/json"));
    let a = get(s.addr, "/v1/no/such/thing").await;
    assert_eq!(code(&a), (404, "not_found".into()), "{}", a.body);
    assert!(a.header("content-type").unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn a_flood_is_rate_limited_per_address_and_counted() {
    let limit = RateLimit { per_second: NonZeroU32::new(1).unwrap(), burst: NonZeroU32::new(5).unwrap() };
    let s = server_with(ServerConfig { rate_limit: Some(limit), ..Default::default() }).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let a = get(s.addr, "/v1/info").await;
        statuses.push(a.status);
        if a.status == 429 {
            refused = Some(a);
            break;
        }
    }
    assert_eq!(statuses[..5], [200; 5], "the burst is served");
    let refused = refused.unwrap_or_else(|| panic!("never refused: {statuses:?}"));
    assert_eq!(code(&refused), (429, "rate_limited".into()), "{}", refused.body);
    let retry: u64 = refused.header("retry-after").expect("a Retry-After header").parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let served_local = statuses.iter().filter(|s| **s == 200).count();

    // The bucket of 127.0.0.1 is empty now; health checks and metrics do not draw from it
    // (were they limited, at most one of these could pass at 1 request per second).
    for _ in 0..20 {
        assert_eq!(get(s.addr, "/healthz").await.status, 200);
    }
    // Another address has its own bucket.
    let other = request_from(IpAddr::from([127, 0, 0, 2]), s.addr, "GET", "/v1/info", None).await;
    assert_eq!(other.status, 200, "{}", other.body);
    let _ = get(s.addr, "/v1/no/such/thing-7f3a").await;

    let m = get(s.addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().contains("openmetrics-text"));
    let route = |r: &str, status: u16| {
        format!(r#"weft_bootstrap_http_requests_total{{route="{r}",method="GET",status="{status}"}}"#)
    };
    assert_eq!(sample(&m.body, &route("/v1/info", 200)), Some((served_local + 1) as f64), "{}", m.body);
    assert_eq!(sample(&m.body, &route("/v1/info", 429)), Some(1.0), "{}", m.body);
    assert_eq!(sample(&m.body, &route("/healthz", 200)), Some(20.0), "{}", m.body);
    assert_eq!(sample(&m.body, "weft_bootstrap_rate_limited_total"), Some(1.0), "{}", m.body);
    assert!(!m.body.contains("thing-7f3a"), "raw paths never become labels");
    assert_eq!(sample(&m.body, &route("unmatched", 404)), Some(1.0), "{}", m.body);
    for gauge in ["weft_bootstrap_live_peers", "weft_bootstrap_names", "weft_bootstrap_signal_sessions"] {
        assert_eq!(sample(&m.body, gauge), Some(0.0), "{gauge}: {}", m.body);
    }
    assert!(m.body.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");
}

#[tokio::test]
async fn the_openapi_document_lists_the_api() {
    let s = server().await;
    let a = get(s.addr, "/v1/openapi.json").await;
    assert_eq!(a.status, 200);
    assert!(a.header("content-type").unwrap().starts_with("application/json"));
    let doc = a.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for p in ["/v1/names/{name}", "/v1/announce", "/v1/peers", "/v1/trusted", "/v1/info", "/healthz", "/metrics"] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(paths["/v1/names/{name}"]["put"].is_object() && paths["/v1/names/{name}"]["get"].is_object());
    assert!(paths["/v1/announce"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn the_web_dir_is_served_at_the_root_next_to_the_api() {
    let web = tempfile::tempdir().unwrap();
    let page = "<!doctype html><title>weft</title><p>hello from the test page</p>\n";
    std::fs::write(web.path().join("index.html"), page).unwrap();
    let s = server_with(ServerConfig { web_dir: Some(web.path().to_owned()), ..Default::default() }).await;
    let a = get(s.addr, "/").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, page);
    assert!(a.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(get(s.addr, "/index.html").await.body, page);
    assert_eq!(get(s.addr, "/v1/info").await.status, 200, "the API still answers");
    assert_eq!(get(s.addr, "/missing.html").await.status, 404);
}
