//! The gateway's traffic as the performance API reports it: `/metrics` counts requests by
//! cache result, bytes by source and upstream outcomes; health turns critical when the
//! upstream fails.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

#[path = "common/gateway.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Gateway, BOUND};
use test_support::{Reply, TestUpstream};

/// The value of the sample `name{labels}` in Prometheus text (0 when absent).
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == name_and_labels).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_bytes_and_upstream_outcomes_are_counted_in_metrics() {
    let upstream = TestUpstream::start().await.unwrap();
    upstream.set_reply("/data", Reply::new().body_bytes(500));
    upstream.set_reply("/broken", Reply::new().status(502));
    let gateway = Gateway::before(&upstream, |_| {}).await;
    for _ in 0..3 {
        assert_eq!(gateway.get("/tws/data").await.status, 200);
    }
    assert_eq!(gateway.get("/tws/broken").await.status, 502);
    let metrics = gateway.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    let requests =
        |labels: &str| sample(&text, &format!("resync_gateway_requests_total{{{labels}}}"));
    assert_eq!(
        requests(r#"method="GET",status_class="2xx",cache="miss""#),
        1.0,
        "{text}"
    );
    assert_eq!(
        requests(r#"method="GET",status_class="2xx",cache="hit""#),
        2.0
    );
    assert_eq!(
        requests(r#"method="GET",status_class="5xx",cache="bypass""#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"resync_gateway_bytes_total{source="cache"}"#),
        1000.0
    );
    assert_eq!(
        sample(
            &text,
            r#"resync_gateway_upstream_requests_total{outcome="answered_2xx"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"resync_gateway_upstream_requests_total{outcome="answered_5xx"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "resync_gateway_request_duration_seconds_count"),
        4.0
    );
    assert_eq!(
        sample(&text, "resync_gateway_upstream_duration_seconds_count"),
        2.0
    );
    // The response cache counts what the gateway served: each miss once (the lookup and
    // the load do not both count it), each hit once.
    let cache = |result: &str| {
        sample(
            &text,
            &format!(r#"resync_cache_requests_total{{cache="responses",result="{result}"}}"#),
        )
    };
    assert_eq!((cache("hit"), cache("miss")), (2.0, 2.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_makes_the_gateway_critical_in_health() {
    let mut upstream = TestUpstream::start().await.unwrap();
    let gateway = Gateway::before(&upstream, |settings| {
        settings.perf_sample_interval = 1;
        settings.perf_health_window_secs = 60;
        settings.health_gateway_min_requests = 10;
    })
    .await;
    upstream.stop().await;
    for round in 0..20 {
        assert_eq!(gateway.get(&format!("/tws/gone/{round}")).await.status, 502);
    }
    // Health judges the window from the sampled history: wait for a sample to take them in.
    let deadline = Instant::now() + BOUND;
    let component = loop {
        let health = gateway.get("/api/performance/health").await.json();
        let component = health["components"]["gateway"].clone();
        if component["status"] == "critical" || Instant::now() > deadline {
            break component;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(component["status"], "critical", "{component}");
    let reasons = component["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|reason| reason["code"] == "gateway.upstream_error_rate"),
        "{component}"
    );
}
