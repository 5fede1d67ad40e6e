//! The built-in dashboard: the page at `GET /` and its assets, served without the API token
//! even when one is set, with their content types and cache headers; the page loads
//! nothing from another host.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use common::{get, request, serve};
use resync_perf_api::dashboard::{asset_paths, ASSETS_PREFIX, CONTENT_SECURITY_POLICY};
use resync_perf_api::{api_router, router, PerformanceService, ServiceConfig};

const TOKEN: &str = "s3cret-token";

fn app() -> axum::Router {
    let service = PerformanceService::new(ServiceConfig::default()).with_api_token(TOKEN);
    router(service).fallback(resync_perf_api::not_found)
}

/// Every `src="…"` and `href="…"` value of the page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let end = rest.find('"').unwrap();
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn the_page_is_served_without_the_token_and_the_api_still_needs_it() {
    let server = serve(app()).await;

    let page = get(server.addr, "/").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(
        page.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY)
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<title>Resync performance</title>"));
    for id in [
        "chart-cache-hit-rate",
        "chart-cache-memory",
        "chart-pool-utilization",
        "chart-pool-acquire",
        "chart-gateway-traffic",
        "chart-gateway-l2",
        "health",
        "advice",
        "token-form",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no #{id}");
    }

    // The data the page reads stays behind the token.
    let denied = get(server.addr, "/api/performance/health").await;
    assert_eq!(denied.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let allowed = request(
        server.addr,
        "GET",
        "/api/performance/health",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(allowed.status, 200);

    // Only GET: another method is the API's JSON 405.
    let post = request(server.addr, "POST", "/", &[]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.json()["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_cache_headers() {
    let server = serve(app()).await;
    let html = get(server.addr, "/").await.text();
    let referenced: Vec<String> = references(&html)
        .into_iter()
        .filter(|reference| reference.starts_with(ASSETS_PREFIX))
        .collect();
    assert_eq!(referenced.len(), asset_paths().count(), "{referenced:?}");

    for path in asset_paths() {
        let url = format!("{ASSETS_PREFIX}{path}");
        assert!(referenced.contains(&url), "the page does not load {url}");
        let reply = get(server.addr, &url).await;
        assert_eq!(reply.status, 200, "{url}");
        assert!(!reply.body.is_empty(), "{url}");
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(reply.header("content-type"), Some(expected), "{url}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        let cache = reply.header("cache-control").unwrap();
        if path.starts_with("vendor/") {
            assert_eq!(cache, "public, max-age=31536000, immutable", "{url}");
        } else {
            assert_eq!(cache, "no-cache", "{url}");
        }

        // Revalidation: the ETag it gave answers 304 without a body.
        let etag = reply.header("etag").unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let again = request(server.addr, "GET", &url, &[("If-None-Match", &etag)]).await;
        assert_eq!(again.status, 304, "{url}");
        assert!(again.body.is_empty());
        let other = request(server.addr, "GET", &url, &[("If-None-Match", "\"0\"")]).await;
        assert_eq!(other.status, 200, "{url}");
    }

    let missing = get(server.addr, "/dashboard/assets/nothing.js").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_page_loads_nothing_from_another_host() {
    let server = serve(app()).await;
    let html = get(server.addr, "/").await.text();
    for scheme in ["http://", "https://", "//"] {
        let outside: Vec<String> = references(&html)
            .into_iter()
            .filter(|reference| reference.starts_with(scheme))
            .collect();
        assert!(outside.is_empty(), "{outside:?}");
    }
    assert!(!html.contains("http://"), "the page names an http URL");
    assert!(!html.contains("https://"), "the page names an https URL");
    // Every reference is a path on this server or an inline data URL (the empty favicon).
    for reference in references(&html) {
        assert!(
            reference.starts_with(ASSETS_PREFIX) || reference == "data:,",
            "{reference}"
        );
    }
    // The dashboard's own script and stylesheet call no other host either.
    for path in ["dashboard.js", "dashboard.css"] {
        let text = get(server.addr, &format!("{ASSETS_PREFIX}{path}"))
            .await
            .text();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn api_router_leaves_the_root_to_the_application() {
    let service = PerformanceService::new(ServiceConfig::default());
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { "the application's own page" }),
        )
        .merge(api_router(service))
        .fallback(resync_perf_api::not_found);
    let server = serve(app).await;
    assert_eq!(
        get(server.addr, "/").await.text(),
        "the application's own page"
    );
    assert_eq!(
        get(server.addr, "/dashboard/assets/dashboard.js")
            .await
            .status,
        404
    );
    assert_eq!(
        get(server.addr, "/api/performance/health").await.status,
        200
    );
}
