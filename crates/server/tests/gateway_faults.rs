//! The gateway when the upstream fails: unreachable (502 at once), slow (504 at the read
//! timeout), closing every keep-alive connection (no 5xx), failing with a stored entry
//! (`STALE`), an exhausted pool (503 + `Retry-After`), and an HTTPS upstream of a private CA.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

#[path = "common/gateway.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Gateway, BOUND};
use test_support::{Reply, TestCa, TestUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502_well_before_the_read_timeout() {
    let mut upstream = TestUpstream::start().await.unwrap();
    let gateway = Gateway::before(&upstream, |settings| settings.tws_read_timeout = 30).await;
    assert_eq!(gateway.get("/tws/up").await.status, 200);
    upstream.stop().await;
    for path in ["/tws/down/1", "/tws/down/2"] {
        let started = Instant::now();
        let answer = gateway.get(path).await;
        let elapsed = started.elapsed();
        assert_eq!(answer.status, 502, "{path}");
        assert_eq!(answer.json()["error"]["code"], "upstream_unreachable");
        assert!(
            elapsed < Duration::from_secs(15),
            "{path}: answered after {elapsed:?}, the read timeout is 30 s"
        );
        assert!(!answer.body.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_is_a_504_at_the_read_timeout() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/hang", Reply::new().hang());
    upstream.set_reply("/endless", Reply::new().endless());
    let gateway = Gateway::before(&upstream, |settings| settings.tws_read_timeout = 1).await;
    let started = Instant::now();
    let answer = gateway.get("/tws/hang").await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["error"]["code"], "upstream_timeout");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < BOUND, "{elapsed:?}");
    // A body that never ends is bounded too: headers came, the cacheable body did not.
    let endless = gateway.get("/tws/endless").await;
    assert_eq!(endless.status, 504);
    // The pool still serves.
    assert_eq!(gateway.get("/tws/fine").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_every_connection_causes_no_5xx() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.close_after_each_response(true);
    let gateway = Gateway::before(&upstream, |settings| {
        settings.http_pool_min_size = 4;
        settings.http_pool_max_size = 4;
    })
    .await;
    for round in 0..100 {
        let answer = gateway.get(&format!("/tws/closing/{round}")).await;
        assert_eq!(answer.status, 200, "round {round}: {:?}", answer.body);
    }
    assert!(upstream.requests() >= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_entry_is_served_stale_when_the_upstream_fails() {
    let mut upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/stale", Reply::new().max_age(1));
    upstream.set_reply("/flaky", Reply::new().max_age(1));
    let gateway = Gateway::before(&upstream, |settings| {
        settings.gateway_stale_if_error_secs = 600;
    })
    .await;
    let fresh = gateway.get("/tws/stale").await;
    assert_eq!(fresh.cache(), "MISS");
    assert_eq!(gateway.get("/tws/flaky").await.cache(), "MISS");
    // An upstream answering 503: the stale entry is served instead.
    upstream.set_reply("/flaky", Reply::new().status(503));
    let deadline = Instant::now() + BOUND;
    let flaky = loop {
        let answer = gateway.get("/tws/flaky").await;
        if answer.cache() != "HIT" || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((flaky.status, flaky.cache()), (200, "STALE"));
    // An upstream that is down: the same.
    upstream.stop().await;
    let stale = gateway.get("/tws/stale").await;
    assert_eq!((stale.status, stale.cache()), (200, "STALE"));
    assert_eq!(stale.serial(), fresh.serial());
    assert!(stale.header("age").parse::<u64>().unwrap() >= 1);
    // Nothing stored: the failure shows.
    assert_eq!(gateway.get("/tws/never-stored").await.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_stale_window_a_failure_is_not_hidden() {
    let mut upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/short", Reply::new().max_age(1));
    let gateway = Gateway::before(&upstream, |settings| {
        settings.gateway_stale_if_error_secs = 0;
    })
    .await;
    assert_eq!(gateway.get("/tws/short").await.cache(), "MISS");
    upstream.stop().await;
    let deadline = Instant::now() + BOUND;
    let answer = loop {
        let answer = gateway.get("/tws/short").await;
        if answer.cache() != "HIT" || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_a_503_with_retry_after() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/hold", Reply::new().hang());
    let gateway = std::sync::Arc::new(
        Gateway::before(&upstream, |settings| {
            settings.http_pool_min_size = 1;
            settings.http_pool_max_size = 1;
            settings.http_pool_connect_timeout = 1;
            settings.tws_read_timeout = 20;
        })
        .await,
    );
    let holder = {
        let gateway = std::sync::Arc::clone(&gateway);
        tokio::spawn(async move { gateway.get("/tws/hold").await })
    };
    // Wait for the held request itself (the pool's start-up health probe is a request to
    // the upstream too, so a total count would not do).
    let deadline = Instant::now() + BOUND;
    loop {
        let seen = upstream.requests();
        if upstream.requests_for("/hold") > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held request never reached the upstream"
        );
        upstream
            .wait_for_requests(seen + 1, BOUND)
            .await
            .expect("a request reached the upstream");
    }
    let answer = gateway.get("/tws/other").await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), "1");
    assert_eq!(answer.json()["error"]["code"], "upstream_pool_exhausted");
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_of_a_private_ca_is_trusted_through_tws_ca_file() {
    let ca = TestCa::new().unwrap();
    let upstream = TestUpstream::start_tls(&ca).await.unwrap();
    let mut settings = harness::settings(&upstream.url());
    settings.tws_ca_file = ca.ca_file().display().to_string();
    let gateway = Gateway::start(&settings).await;
    let first = gateway.get("/tws/secure").await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    assert_eq!(gateway.get("/tws/secure").await.cache(), "HIT");

    // Without the CA the upstream is not trusted: a 502, not a panic or a hang.
    let untrusting = Gateway::start(&harness::settings(&upstream.url())).await;
    assert_eq!(untrusting.get("/tws/secure").await.status, 502);
}
