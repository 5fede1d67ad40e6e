//! The gateway's caching rules against a real upstream on loopback: hits and misses, single
//! flight, credentials, uncacheable answers, `Vary`, invalidation by writes, body caps.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

#[path = "common/gateway.rs"]
mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::Gateway;
use hyper::Method;
use test_support::{Reply, TestUpstream};

/// The last request the upstream received that `matches` (the pool's health probe, `GET /`,
/// may arrive at any time, so "the last request" alone is not the one a test sent).
fn received(
    upstream: &TestUpstream,
    matches: impl Fn(&test_support::RecordedRequest) -> bool,
) -> test_support::RecordedRequest {
    upstream
        .request_log()
        .into_iter()
        .rev()
        .find(|request| matches(request))
        .expect("the upstream received the request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_then_a_hit_with_age_from_one_upstream_request() {
    let upstream = TestUpstream::start().await.unwrap();
    let gateway = Gateway::before(&upstream, |_| {}).await;
    let first = gateway.get("/tws/items/1?page=2").await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    assert_eq!(first.header("age"), "0");
    let second = gateway.get("/tws/items/1?page=2").await;
    assert_eq!((second.status, second.cache()), (200, "HIT"));
    assert!(
        second.header("age").parse::<u64>().is_ok(),
        "{:?}",
        second.headers
    );
    assert_eq!(second.body, first.body);
    assert_eq!(second.serial(), first.serial());
    assert_eq!(upstream.requests_for("/items/1"), 1);
    // Another query is another entry.
    let other = gateway.get("/tws/items/1?page=3").await;
    assert_eq!(other.cache(), "MISS");
    assert_eq!(upstream.requests_for("/items/1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_gets_of_one_key_make_one_upstream_request() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/slow", Reply::new().latency(Duration::from_millis(300)));
    let gateway = std::sync::Arc::new(Gateway::before(&upstream, |_| {}).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let gateway = std::sync::Arc::clone(&gateway);
        tasks.spawn(async move { gateway.get("/tws/slow/one").await });
    }
    let mut serials = std::collections::BTreeSet::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200);
        serials.insert(answer.serial());
    }
    assert_eq!(upstream.requests_for("/slow/one"), 1);
    assert_eq!(serials.len(), 1, "every caller got the one upstream answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_with_different_credentials_never_share_an_entry() {
    let upstream = TestUpstream::start().await.unwrap();
    let gateway = Gateway::before(&upstream, |_| {}).await;
    let callers: [&[(&str, &str)]; 5] = [
        &[],
        &[("authorization", "Bearer alice")],
        &[("authorization", "Bearer bob")],
        &[("cookie", "session=alice")],
        &[("cookie", "session=bob")],
    ];
    let mut first_serials = Vec::new();
    for headers in callers {
        let answer = gateway.get_with("/tws/me", headers).await;
        assert_eq!(answer.cache(), "MISS", "{headers:?}");
        first_serials.push(answer.serial());
    }
    for (headers, serial) in callers.iter().zip(&first_serials) {
        let answer = gateway.get_with("/tws/me", headers).await;
        assert_eq!(answer.cache(), "HIT", "{headers:?}");
        assert_eq!(answer.serial(), *serial, "{headers:?} got its own answer");
    }
    assert_eq!(upstream.requests_for("/me"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_private_set_cookie_and_errors_are_never_stored() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply(
        "/no-store",
        Reply::new().header("cache-control", "no-store"),
    );
    upstream.set_reply(
        "/private",
        Reply::new().header("cache-control", "private, max-age=60"),
    );
    upstream.set_reply("/cookie", Reply::new().header("set-cookie", "session=1"));
    upstream.set_reply("/broken", Reply::new().status(500));
    upstream.set_reply("/unavailable", Reply::new().status(503));
    upstream.set_reply("/missing", Reply::new().status(404));
    upstream.set_reply("/vary-star", Reply::new().header("vary", "*"));
    let gateway = Gateway::before(&upstream, |_| {}).await;
    for (path, status) in [
        ("/no-store", 200),
        ("/private", 200),
        ("/cookie", 200),
        ("/broken", 500),
        ("/unavailable", 503),
        ("/missing", 404),
        ("/vary-star", 200),
    ] {
        for round in 0..2 {
            let answer = gateway.get(&format!("/tws{path}")).await;
            assert_eq!(answer.status, status, "{path}");
            assert_eq!(answer.cache(), "BYPASS", "{path} round {round}");
        }
        assert_eq!(upstream.requests_for(path), 2, "{path}");
    }
    let cookie = gateway.get("/tws/cookie").await;
    assert_eq!(
        cookie.header("set-cookie"),
        "session=1",
        "passed through to its caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_stored_when_the_setting_allows_it() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/missing", Reply::new().status(404));
    let gateway = Gateway::before(&upstream, |settings| {
        settings.gateway_cache_not_found = true;
    })
    .await;
    assert_eq!(gateway.get("/tws/missing").await.cache(), "MISS");
    let again = gateway.get("/tws/missing").await;
    assert_eq!((again.status, again.cache()), (404, "HIT"));
    assert_eq!(upstream.requests_for("/missing"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_varies_is_served_only_to_matching_requests() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/greeting", Reply::new().header("vary", "Accept-Language"));
    let gateway = Gateway::before(&upstream, |_| {}).await;
    let french = [("accept-language", "fr")];
    let german = [("accept-language", "de")];
    let fr = gateway.get_with("/tws/greeting", &french).await;
    assert_eq!(fr.cache(), "MISS");
    let fr_again = gateway.get_with("/tws/greeting", &french).await;
    assert_eq!((fr_again.cache(), fr_again.serial()), ("HIT", fr.serial()));
    let de = gateway.get_with("/tws/greeting", &german).await;
    assert_eq!(
        de.cache(),
        "MISS",
        "another variant is not served the stored one"
    );
    assert_ne!(de.serial(), fr.serial());
    let none = gateway.get("/tws/greeting").await;
    assert_ne!(none.serial(), de.serial(), "no header is a variant too");
    assert_eq!(none.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_passes_through_and_invalidates_the_paths_entries() {
    let upstream = TestUpstream::start().await.unwrap();
    let gateway = Gateway::before(&upstream, |_| {}).await;
    assert_eq!(gateway.get("/tws/items/7").await.cache(), "MISS");
    assert_eq!(gateway.get("/tws/items/7?view=full").await.cache(), "MISS");
    assert_eq!(gateway.get("/tws/items/7").await.cache(), "HIT");
    let body = Bytes::from_static(b"{\"name\":\"new\"}");
    let write = gateway
        .send(
            Method::POST,
            "/tws/items/7",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
    assert_eq!((write.status, write.cache()), (200, "BYPASS"));
    let received = received(&upstream, |r| r.method == Method::POST);
    assert_eq!(received.path_and_query, "/items/7");
    assert_eq!(received.body_len, body.len());
    assert_eq!(
        gateway.get("/tws/items/7").await.cache(),
        "MISS",
        "the write invalidated it"
    );
    assert_eq!(
        gateway.get("/tws/items/7?view=full").await.cache(),
        "MISS",
        "every query of the path"
    );
    let put = gateway
        .send(Method::PUT, "/tws/items/7", &[], Bytes::new())
        .await;
    assert_eq!(put.cache(), "BYPASS");
    assert_eq!(gateway.get("/tws/items/7").await.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_uncached_and_large_requests_get_413() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/big", Reply::new().body_bytes(300_000));
    upstream.set_reply("/small", Reply::new().body_bytes(1_000));
    upstream.set_reply("/upload", Reply::new().echo_request_body());
    let gateway = Gateway::before(&upstream, |settings| {
        settings.gateway_max_cached_body_bytes = 100_000;
        settings.gateway_max_request_body_bytes = 50_000;
    })
    .await;
    for _ in 0..2 {
        let big = gateway.get("/tws/big").await;
        assert_eq!(
            (big.status, big.cache(), big.body.len()),
            (200, "BYPASS", 300_000)
        );
    }
    assert_eq!(upstream.requests_for("/big"), 2);
    assert_eq!(gateway.get("/tws/small").await.cache(), "MISS");
    assert_eq!(gateway.get("/tws/small").await.body.len(), 1_000);

    let fits = gateway
        .send(Method::POST, "/tws/upload", &[], vec![7u8; 50_000])
        .await;
    assert_eq!((fits.status, fits.body.len()), (200, 50_000));
    let before = upstream.requests_for("/upload");
    let too_large = gateway
        .send(Method::POST, "/tws/upload", &[], vec![7u8; 50_001])
        .await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["error"]["code"], "request_body_too_large");
    assert_eq!(
        upstream.requests_for("/upload"),
        before,
        "refused before the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_sees_the_target_byte_for_byte_and_proxy_headers() {
    let upstream = TestUpstream::start().await.unwrap();
    let gateway = Gateway::before(&upstream, |_| {}).await;
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = gateway
        .get_with(
            "/tws/a%20b/c%2Fd?x=1&y=%2F&z",
            &[
                ("traceparent", trace),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("x-end-to-end", "kept"),
                ("te", "trailers"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    let seen = received(&upstream, |r| r.path_and_query.starts_with("/a%20b"));
    assert_eq!(seen.path_and_query, "/a%20b/c%2Fd?x=1&y=%2F&z");
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr().to_string().as_str())
    );
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("traceparent"), Some(trace));
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    assert_eq!(seen.header("x-hop"), None);
    assert_eq!(seen.header("te"), None);

    gateway.get("/tws?root=1").await;
    let root = received(&upstream, |r| r.path_and_query.ends_with("?root=1"));
    assert_eq!(root.path_and_query, "/?root=1");
    let generated = root.header("traceparent").unwrap();
    assert!(
        resync_server::gateway::valid_traceparent(generated.as_bytes()),
        "{generated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_path_of_the_upstream_url_is_kept() {
    let upstream = TestUpstream::start().await.unwrap();
    let mut settings = harness::settings(&format!("{}/api/v2", upstream.url()));
    settings.http_pool_min_size = 1;
    let gateway = Gateway::start(&settings).await;
    assert_eq!(gateway.get("/tws/items?q=1").await.status, 200);
    let seen = received(&upstream, |r| r.path_and_query.contains("items"));
    assert_eq!(seen.path_and_query, "/api/v2/items?q=1");
}
