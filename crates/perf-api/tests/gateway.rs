//! The gateway's figures through the real router on a loopback socket: a known set of
//! exchanges shows with its exact counts in `/metrics` (checked by `promtool` when it is
//! installed), in the gateway view and the report, and in the history; the window's upstream
//! error rate drives the `gateway` component healthy → degraded → critical with the
//! configured thresholds; and, as a property, the counters add up whatever is recorded.
//! The gateway's L2 likewise: exact counts in `/metrics`, the view's `l2` object, the report,
//! the history, and the component `gateway_l2` degraded (never critical) while L2 is
//! unavailable or failing, healthy again after.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use proptest::prelude::*;
use resync_perf_api::{
    router, CacheOutcome, GatewayExchange, GatewayHealthThresholds, GatewayStats, L2Lease,
    L2Lookup, L2Op, L2Stats, MethodLabel, PerformanceService, ServiceConfig, StatusClass,
    UpstreamOutcome,
};
use resync_perf_core::Delta;
use serde_json::{json, Value};

use common::{get, serve};

/// One recorded request: method, status sent, cache outcome, upstream outcome (with 7 ms),
/// body bytes; every request takes 2 ms.
type Row = (Method, u16, CacheOutcome, Option<UpstreamOutcome>, u64);

fn record(stats: &GatewayStats, rows: &[Row]) {
    for (method, status, cache, upstream, body_bytes) in rows {
        stats.record(&GatewayExchange {
            method,
            status: *status,
            cache: *cache,
            latency: Duration::from_millis(2),
            upstream: upstream.map(|outcome| (Duration::from_millis(7), outcome)),
            body_bytes: *body_bytes,
        });
    }
}

/// Ten requests: 4 hits, 3 misses (one answered 503 by the upstream), a stale answer after
/// an unreachable upstream, a bypassed POST that timed out and an odd method.
fn known_traffic() -> Vec<Row> {
    use CacheOutcome::{Bypass, Hit, Miss, Stale};
    use UpstreamOutcome::{Answered, TimedOut, Unreachable};
    let purge = Method::from_bytes(b"PURGE").unwrap();
    vec![
        (Method::GET, 200, Hit, None, 100),
        (Method::GET, 200, Hit, None, 100),
        (Method::GET, 304, Hit, None, 0),
        (Method::HEAD, 200, Hit, None, 0),
        (Method::GET, 200, Miss, Some(Answered(200)), 300),
        (Method::GET, 404, Miss, Some(Answered(404)), 20),
        (Method::GET, 503, Miss, Some(Answered(503)), 40),
        (Method::GET, 200, Stale, Some(Unreachable), 100),
        (Method::POST, 504, Bypass, Some(TimedOut), 50),
        (purge, 405, Bypass, None, 10),
    ]
}

/// Sample lines of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut found = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        // The gateway's label values have no commas, quotes or escapes.
        let labels: BTreeMap<String, String> = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap();
                (key.to_owned(), value.trim_matches('"').to_owned())
            })
            .collect();
        let value = match value {
            "+Inf" => f64::INFINITY,
            other => other.parse().unwrap(),
        };
        let previous = found.insert((name.to_owned(), labels), value);
        assert!(previous.is_none(), "a series twice: {line}");
    }
    found
}

fn value(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    *samples
        .get(&key)
        .unwrap_or_else(|| panic!("{name}{labels:?} is exposed"))
}

/// `promtool check metrics` over `text`, when promtool is on the PATH (`cargo xtask ci`
/// installs it); its absence is said, not hidden.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = spawned else {
        eprintln!("promtool is not installed: the exposition was checked by this test only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );
}

#[tokio::test]
async fn known_exchanges_show_exactly_in_metrics_views_report_and_history() {
    let service = PerformanceService::new(ServiceConfig::default());
    let server = serve(router(service.clone())).await;

    // Without a gateway: no family, a null view, no component.
    let text = get(server.addr, "/metrics").await.text();
    assert!(!text.contains("resync_gateway_"), "{text}");
    let view = get(server.addr, "/api/performance/gateway/metrics").await;
    assert_eq!(view.status, 200);
    assert_eq!(view.json(), json!({ "gateway": null }));
    let health = get(server.addr, "/api/performance/health").await.json();
    assert!(health["components"].get("gateway").is_none(), "{health}");

    let stats = GatewayStats::new();
    service.set_gateway(stats.clone());
    service.sample().await;
    record(&stats, &known_traffic());
    service.sample().await;

    let reply = get(server.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    promtool_check(&text);
    let exposed = samples(&text);
    let requests = "resync_gateway_requests_total";
    let by = |method, class, cache| {
        [
            ("method", method),
            ("status_class", class),
            ("cache", cache),
        ]
    };
    #[rustfmt::skip]
    let rows = [
        (by("GET", "2xx", "hit"), 2.0),
        (by("GET", "3xx", "hit"), 1.0),
        (by("HEAD", "2xx", "hit"), 1.0),
        (by("GET", "2xx", "miss"), 1.0),
        (by("GET", "4xx", "miss"), 1.0),
        (by("GET", "5xx", "miss"), 1.0),
        (by("GET", "2xx", "stale"), 1.0),
        (by("POST", "5xx", "bypass"), 1.0),
        (by("OTHER", "4xx", "bypass"), 1.0),
    ];
    for (labels, expected) in &rows {
        assert_eq!(value(&exposed, requests, labels), *expected, "{labels:?}");
    }
    // Every other combination is there, at 0: 160 series summing to the ten requests.
    let request_series: Vec<f64> = exposed
        .iter()
        .filter(|((name, _), _)| name == requests)
        .map(|(_, value)| *value)
        .collect();
    assert_eq!(request_series.len(), 160);
    assert_eq!(request_series.iter().sum::<f64>(), 10.0);
    let upstream = "resync_gateway_upstream_requests_total";
    for (outcome, expected) in [
        ("answered_2xx", 1.0),
        ("answered_3xx", 0.0),
        ("answered_4xx", 1.0),
        ("answered_5xx", 1.0),
        ("unreachable", 1.0),
        ("failed", 0.0),
        ("timed_out", 1.0),
        ("exhausted", 0.0),
    ] {
        assert_eq!(
            value(&exposed, upstream, &[("outcome", outcome)]),
            expected,
            "{outcome}"
        );
    }
    let bytes = "resync_gateway_bytes_total";
    assert_eq!(value(&exposed, bytes, &[("source", "cache")]), 300.0);
    assert_eq!(value(&exposed, bytes, &[("source", "upstream")]), 420.0);
    for (histogram, count, seconds) in [
        ("resync_gateway_request_duration_seconds", 10.0, 0.002),
        ("resync_gateway_upstream_duration_seconds", 5.0, 0.007),
    ] {
        let count_of = value(&exposed, &format!("{histogram}_count"), &[]);
        assert_eq!(count_of, count, "{histogram}");
        let sum = value(&exposed, &format!("{histogram}_sum"), &[]);
        assert!(
            (sum - count * seconds).abs() < 1e-9,
            "{histogram}_sum {sum}"
        );
        let bucket = format!("{histogram}_bucket");
        assert_eq!(value(&exposed, &bucket, &[("le", "+Inf")]), count);
        assert_eq!(value(&exposed, &bucket, &[("le", "0.001")]), 0.0);
        assert_eq!(value(&exposed, &bucket, &[("le", "0.01")]), count);
    }
    // 3 errors in 5 exchanges, but 5 are fewer than the 20 needed to judge: healthy.
    let status = value(
        &exposed,
        "resync_health_status",
        &[("component", "gateway")],
    );
    assert_eq!(status, 0.0);

    // The view: since start and over the window (here: both samples' span, all of it).
    let view = get(server.addr, "/api/performance/gateway/metrics")
        .await
        .json();
    let gateway = &view["gateway"];
    assert_eq!(gateway["requests"], 10);
    assert_eq!(
        gateway["by_cache"],
        json!({"hit": 4, "miss": 3, "stale": 1, "bypass": 2})
    );
    assert_eq!(
        gateway["by_status_class"],
        json!({"1xx": 0, "2xx": 5, "3xx": 1, "4xx": 2, "5xx": 2})
    );
    assert_eq!(
        gateway["by_method"],
        json!({"GET": 7, "HEAD": 1, "POST": 1, "PUT": 0, "PATCH": 0, "DELETE": 0, "OPTIONS": 0, "OTHER": 1})
    );
    assert_eq!(
        gateway["hit_rate"],
        5.0 / 8.0,
        "(4 hits + 1 stale) / 8 cacheable"
    );
    assert_eq!(gateway["bytes_from_cache"], 300);
    assert_eq!(gateway["bytes_from_upstream"], 420);
    assert_eq!(gateway["latency_seconds"]["count"], 10);
    let upstream = &gateway["upstream"];
    assert_eq!(upstream["requests"], 5);
    assert_eq!(upstream["errors"], 3);
    assert_eq!(upstream["error_rate"], 0.6);
    assert_eq!(upstream["answered_5xx"], 1);
    assert_eq!(upstream["timed_out"], 1);
    assert_eq!(upstream["latency_seconds"]["count"], 5);
    let window = &gateway["window"];
    assert_eq!(window["requests"], 10);
    assert_eq!(window["upstream_requests"], 5);
    assert_eq!(window["upstream_errors"], 3);
    assert_eq!(window["upstream_error_rate"], 0.6);
    assert_eq!(window["hit_rate"], 5.0 / 8.0);
    assert_eq!(window["responses_5xx"], 2);
    assert!(window["requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(window["request_p95_seconds"].as_f64().unwrap() > 0.0);

    // The report carries the same view, and health its component.
    let report = get(server.addr, "/api/performance/report").await.json();
    assert_eq!(report["gateway"]["requests"], 10);
    assert_eq!(report["gateway"]["upstream"], gateway["upstream"]);
    let component = &report["health"]["components"]["gateway"];
    assert_eq!(component["status"], "healthy");
    assert_eq!(component["reasons"][0]["code"], "gateway.insufficient_data");
    assert_eq!(component["reasons"][0]["measured"], 5.0);
    assert_eq!(component["reasons"][0]["threshold"], 20.0);
    assert_eq!(report["health"]["thresholds"]["gateway_min_requests"], 20.0);

    // The history: cumulative counters, and the interval's ratios.
    let history = get(server.addr, "/api/performance/history").await.json();
    let samples = history["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0]["gateway"]["requests"], 0);
    assert_eq!(samples[0]["gateway"]["interval_hit_rate"], Value::Null);
    let last = &samples[1]["gateway"];
    #[rustfmt::skip]
    let expected = [
        ("requests", 10), ("hits", 4), ("stale", 1), ("misses", 3), ("responses_5xx", 2),
        ("upstream_requests", 5), ("upstream_errors", 3), ("bytes_from_cache", 300),
        ("bytes_from_upstream", 420),
    ];
    for (field, count) in expected {
        assert_eq!(last[field], count, "{field} in {last}");
    }
    assert_eq!(last["interval_hit_rate"], 0.625);
    assert!((last["interval_upstream_error_rate"].as_f64().unwrap() - 0.6).abs() < 1e-6);
    assert!(last["interval_upstream_p95_seconds"].as_f64().unwrap() > 0.0);
}

/// One phase of traffic and the verdict it must get: (answered 200s, answered 502s, pool
/// exhaustions), the HTTP status of `/api/performance/health` and `/readyz`, the component's
/// status, and its one reason (code, measured, threshold) if any.
type Phase<'a> = (
    (usize, usize, usize),
    u16,
    &'a str,
    Option<(&'a str, f64, f64)>,
);

/// The health window is the traffic since the last sample (a window of 0 s: the newest
/// sample is its base), so each phase below is judged on its own exchanges.
#[tokio::test]
async fn the_windows_error_rate_drives_health_through_the_thresholds() {
    let thresholds = GatewayHealthThresholds {
        max_error_rate_degraded: 0.1,
        max_error_rate_critical: 0.4,
        min_requests: 10,
    };
    let service = PerformanceService::new(ServiceConfig {
        health_window: Duration::ZERO,
        gateway_thresholds: thresholds,
        ..ServiceConfig::default()
    });
    let stats = GatewayStats::new();
    service.set_gateway(stats.clone());
    let server = serve(router(service.clone())).await;

    #[rustfmt::skip]
    let phases: [Phase<'_>; 6] = [
        ((0, 0, 0), 200, "healthy", Some(("gateway.insufficient_data", 0.0, 10.0))),
        ((9, 0, 0), 200, "healthy", Some(("gateway.insufficient_data", 9.0, 10.0))),
        ((9, 1, 0), 200, "healthy", None),
        ((8, 1, 1), 200, "degraded", Some(("gateway.upstream_error_rate", 0.2, 0.1))),
        ((5, 3, 2), 503, "critical", Some(("gateway.upstream_error_rate", 0.5, 0.4))),
        // Nine failures are still too few to judge: never a verdict without the traffic.
        ((0, 9, 0), 200, "healthy", Some(("gateway.insufficient_data", 9.0, 10.0))),
    ];
    for ((ok, bad, exhausted), http, status, reason) in phases {
        service.sample().await;
        let mut rows: Vec<Row> = Vec::new();
        let answered = |status| Some(UpstreamOutcome::Answered(status));
        rows.extend((0..ok).map(|_| (Method::GET, 200, CacheOutcome::Miss, answered(200), 10)));
        rows.extend((0..bad).map(|_| (Method::GET, 502, CacheOutcome::Miss, answered(502), 10)));
        let pool = Some(UpstreamOutcome::Exhausted);
        rows.extend((0..exhausted).map(|_| (Method::GET, 503, CacheOutcome::Miss, pool, 10)));
        // Hits make no upstream exchange and never dilute the error rate.
        rows.extend((0..50).map(|_| (Method::GET, 200, CacheOutcome::Hit, None, 10)));
        record(&stats, &rows);

        let phase = format!("{ok} ok, {bad} 502, {exhausted} exhausted");
        let reply = get(server.addr, "/api/performance/health").await;
        assert_eq!(reply.status, http, "{phase}: {}", reply.text());
        let body = reply.json();
        let component = &body["components"]["gateway"];
        assert_eq!(component["status"], status, "{phase}: {component}");
        let reasons = component["reasons"].as_array().unwrap();
        match reason {
            None => assert!(reasons.is_empty(), "{phase}: {component}"),
            Some((code, measured, threshold)) => {
                assert_eq!(reasons.len(), 1, "{phase}: {component}");
                let reason = &reasons[0];
                assert_eq!(reason["code"], code, "{phase}");
                assert_eq!(reason["status"], status, "{phase}");
                assert!((reason["measured"].as_f64().unwrap() - measured).abs() < 1e-9);
                assert_eq!(reason["threshold"], threshold, "{phase}");
                assert!(!reason["message"].as_str().unwrap().is_empty());
            }
        }
        assert_eq!(body["thresholds"]["gateway_max_error_rate"], 0.1);
        assert_eq!(body["thresholds"]["gateway_critical_error_rate"], 0.4);
        assert_eq!(body["thresholds"]["gateway_min_requests"], 10.0);
        let ready = get(server.addr, "/readyz").await;
        assert_eq!(ready.status, http, "{phase}");
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
        Just(Method::TRACE),
        Just(Method::from_bytes(b"PURGE").unwrap()),
    ]
}

fn cache() -> impl Strategy<Value = CacheOutcome> {
    prop_oneof![
        Just(CacheOutcome::Hit),
        Just(CacheOutcome::Miss),
        Just(CacheOutcome::Stale),
        Just(CacheOutcome::Bypass),
    ]
}

fn upstream() -> impl Strategy<Value = Option<UpstreamOutcome>> {
    prop_oneof![
        Just(None),
        (100_u16..1000).prop_map(|status| Some(UpstreamOutcome::Answered(status))),
        Just(Some(UpstreamOutcome::Unreachable)),
        Just(Some(UpstreamOutcome::Failed)),
        Just(Some(UpstreamOutcome::TimedOut)),
        Just(Some(UpstreamOutcome::Exhausted)),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (method(), 100_u16..1000, cache(), upstream(), 0_u64..1 << 20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever is recorded, every marginal of the counters sums to what was recorded, and a
    /// window (newer − older) holds exactly the requests between the two snapshots.
    #[test]
    fn the_counters_add_up(
        before in prop::collection::vec(row(), 0..50),
        rows in prop::collection::vec(row(), 0..200),
    ) {
        let stats = GatewayStats::new();
        record(&stats, &before);
        let older = stats.metrics();
        record(&stats, &rows);
        let metrics = stats.metrics().delta(&older);
        let recorded = rows.len() as u64;

        prop_assert_eq!(metrics.total_requests(), recorded);
        prop_assert_eq!(metrics.request_counts().map(|row| row.count).sum::<u64>(), recorded);
        let by_cache: u64 = CacheOutcome::ALL.iter().map(|c| metrics.requests_with_cache(*c)).sum();
        let by_class: u64 = StatusClass::ALL.iter().map(|c| metrics.requests_with_status(*c)).sum();
        let by_method: u64 = MethodLabel::ALL.iter().map(|m| metrics.requests_with_method(*m)).sum();
        prop_assert_eq!((by_cache, by_class, by_method), (recorded, recorded, recorded));
        for cache in CacheOutcome::ALL {
            let expected = rows.iter().filter(|row| row.2 == cache).count() as u64;
            prop_assert_eq!(metrics.requests_with_cache(cache), expected);
        }
        for class in StatusClass::ALL {
            let expected = rows.iter().filter(|row| StatusClass::of(row.1) == class).count() as u64;
            prop_assert_eq!(metrics.requests_with_status(class), expected);
        }
        for method in MethodLabel::ALL {
            let expected = rows.iter().filter(|row| MethodLabel::of(&row.0) == method).count() as u64;
            prop_assert_eq!(metrics.requests_with_method(method), expected);
        }

        let exchanges: Vec<UpstreamOutcome> = rows.iter().filter_map(|row| row.3).collect();
        let upstream = &metrics.upstream;
        prop_assert_eq!(upstream.total(), exchanges.len() as u64);
        prop_assert_eq!(upstream.by_label().iter().map(|(_, n)| n).sum::<u64>(), upstream.total());
        let errors = exchanges.iter().filter(|outcome| outcome.is_error()).count() as u64;
        prop_assert_eq!(upstream.errors(), errors);
        for (label, count) in upstream.by_label() {
            let expected = exchanges.iter().filter(|outcome| outcome.as_str() == label).count();
            prop_assert_eq!(count, expected as u64, "{}", label);
        }

        let cached: u64 = rows.iter().filter(|row| row.2.served_from_cache()).map(|row| row.4).sum();
        let other: u64 = rows.iter().filter(|row| !row.2.served_from_cache()).map(|row| row.4).sum();
        prop_assert_eq!((metrics.bytes_from_cache, metrics.bytes_from_upstream), (cached, other));
        prop_assert_eq!(metrics.request_latency.count(), recorded);
        prop_assert_eq!(metrics.upstream_latency.count(), exchanges.len() as u64);
    }
}

/// One exposed series and the value it must show.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// One phase of L2 traffic — (hits, failed lookups, failed stores) — and the component's
/// status, its first reason's code and measured figure.
type L2Phase<'a> = ((usize, usize, usize), &'a str, &'a str, f64);

/// The L2 traffic of [`the_l2_shows_exactly_in_metrics_view_report_history_and_health`]:
/// 4 hits, 2 misses, 1 of another version and 1 failed lookup (300 µs each), 3 skipped; 3
/// stores and a failed one (2 ms each); leases 2 won, 1 waited, 1 expired; 2 invalidations
/// sent, 3 received; an L1 flush; errors of a lookup, a store and the subscriber.
fn record_l2(l2: &L2Stats) {
    let lookup = Some(Duration::from_micros(300));
    for outcome in [
        L2Lookup::Hit,
        L2Lookup::Hit,
        L2Lookup::Miss,
        L2Lookup::Hit,
        L2Lookup::OtherVersion,
        L2Lookup::Error,
        L2Lookup::Miss,
        L2Lookup::Hit,
    ] {
        l2.record_lookup(outcome, lookup);
    }
    for _ in 0..3 {
        l2.record_lookup(L2Lookup::Skipped, None);
    }
    for stored in [true, true, false, true] {
        l2.record_store(stored, Duration::from_millis(2));
    }
    for lease in [
        L2Lease::Won,
        L2Lease::Waited,
        L2Lease::Won,
        L2Lease::Expired,
    ] {
        l2.record_lease(lease);
    }
    l2.record_invalidation_sent();
    l2.record_invalidation_sent();
    for _ in 0..3 {
        l2.record_invalidation_received();
    }
    l2.record_l1_flush();
    l2.record_error(L2Op::Lookup, "timed out after 50 ms");
    l2.record_error(L2Op::Store, "OOM command not allowed");
    l2.record_error(L2Op::Subscribe, "connection reset by peer");
}

#[tokio::test]
async fn the_l2_shows_exactly_in_metrics_view_report_history_and_health() {
    let service = PerformanceService::new(ServiceConfig::default());
    let server = serve(router(service.clone())).await;
    service.set_gateway(GatewayStats::new());

    // Without an L2: no family, a null object, no component.
    let text = get(server.addr, "/metrics").await.text();
    assert!(!text.contains("resync_gateway_l2_"), "{text}");
    assert!(!text.contains("resync_gateway_l1_"), "{text}");
    let view = get(server.addr, "/api/performance/gateway/metrics")
        .await
        .json();
    assert_eq!(view["gateway"]["l2"], Value::Null, "{view}");
    let health = get(server.addr, "/api/performance/health").await.json();
    assert!(health["components"].get("gateway_l2").is_none(), "{health}");

    let l2 = L2Stats::new();
    service.set_gateway_l2(l2.clone());
    l2.set_available(true, None);
    service.sample().await;
    record_l2(&l2);
    service.sample().await;

    let reply = get(server.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    promtool_check(&text);
    let exposed = samples(&text);
    #[rustfmt::skip]
    let rows: [Expected<'_>; 23] = [
        ("resync_gateway_l2_lookups_total", &[("result", "hit")], 4.0),
        ("resync_gateway_l2_lookups_total", &[("result", "miss")], 2.0),
        ("resync_gateway_l2_lookups_total", &[("result", "other_version")], 1.0),
        ("resync_gateway_l2_lookups_total", &[("result", "error")], 1.0),
        ("resync_gateway_l2_lookups_total", &[("result", "skipped")], 3.0),
        ("resync_gateway_l2_stores_total", &[("result", "stored")], 3.0),
        ("resync_gateway_l2_stores_total", &[("result", "error")], 1.0),
        ("resync_gateway_l2_leases_total", &[("outcome", "won")], 2.0),
        ("resync_gateway_l2_leases_total", &[("outcome", "waited")], 1.0),
        ("resync_gateway_l2_leases_total", &[("outcome", "expired")], 1.0),
        ("resync_gateway_l2_invalidations_total", &[("direction", "sent")], 2.0),
        ("resync_gateway_l2_invalidations_total", &[("direction", "received")], 3.0),
        ("resync_gateway_l1_flushes_total", &[], 1.0),
        ("resync_gateway_l2_errors_total", &[("op", "lookup")], 1.0),
        ("resync_gateway_l2_errors_total", &[("op", "store")], 1.0),
        ("resync_gateway_l2_errors_total", &[("op", "lease")], 0.0),
        ("resync_gateway_l2_errors_total", &[("op", "invalidate")], 0.0),
        ("resync_gateway_l2_errors_total", &[("op", "subscribe")], 1.0),
        ("resync_gateway_l2_available", &[], 1.0),
        ("resync_gateway_l2_lookup_duration_seconds_count", &[], 8.0),
        ("resync_gateway_l2_lookup_duration_seconds_bucket", &[("le", "0.00025")], 0.0),
        ("resync_gateway_l2_lookup_duration_seconds_bucket", &[("le", "0.0005")], 8.0),
        ("resync_gateway_l2_store_duration_seconds_count", &[], 4.0),
    ];
    for (name, labels, expected) in rows {
        assert_eq!(value(&exposed, name, labels), expected, "{name}{labels:?}");
    }
    // Every label value is a series, and no other: 5 + 2 + 3 + 2 + 5.
    for (family, series) in [
        ("resync_gateway_l2_lookups_total", 5),
        ("resync_gateway_l2_stores_total", 2),
        ("resync_gateway_l2_leases_total", 3),
        ("resync_gateway_l2_invalidations_total", 2),
        ("resync_gateway_l2_errors_total", 5),
    ] {
        let found = exposed.keys().filter(|(name, _)| name == family).count();
        assert_eq!(found, series, "{family}");
    }
    let sum = value(
        &exposed,
        "resync_gateway_l2_lookup_duration_seconds_sum",
        &[],
    );
    assert!((sum - 8.0 * 0.000_3).abs() < 1e-9, "lookup sum {sum}");
    let sum = value(
        &exposed,
        "resync_gateway_l2_store_duration_seconds_sum",
        &[],
    );
    assert!((sum - 4.0 * 0.002).abs() < 1e-9, "store sum {sum}");
    // 8 lookups are fewer than the 20 needed to judge the error rate: healthy.
    let status = &[("component", "gateway_l2")];
    assert_eq!(value(&exposed, "resync_health_status", status), 0.0);

    // The view: since start, latency quantiles, state and the window.
    let view = get(server.addr, "/api/performance/gateway/metrics")
        .await
        .json();
    let l2_view = &view["gateway"]["l2"];
    assert_eq!(l2_view["available"], true, "{l2_view}");
    assert_eq!(l2_view["unavailable_reason"], Value::Null);
    assert_eq!(
        l2_view["lookups"],
        json!({"hit": 4, "miss": 2, "other_version": 1, "error": 1, "skipped": 3, "attempted": 8})
    );
    assert_eq!(
        l2_view["hit_rate"],
        4.0 / 7.0,
        "4 hits of 7 answered lookups"
    );
    let latency = &l2_view["lookup_latency_seconds"];
    assert_eq!(latency["count"], 8);
    for quantile in ["p50", "p95", "p99"] {
        let seconds = latency[quantile].as_f64().unwrap();
        assert!(
            (seconds - 0.000_3).abs() < 0.000_3 * 0.04,
            "{quantile} {seconds}"
        );
    }
    assert_eq!(l2_view["stores"]["stored"], 3);
    assert_eq!(l2_view["stores"]["error"], 1);
    assert_eq!(l2_view["stores"]["latency_seconds"]["count"], 4);
    assert_eq!(
        l2_view["leases"],
        json!({"won": 2, "waited": 1, "expired": 1})
    );
    assert_eq!(l2_view["invalidations"], json!({"sent": 2, "received": 3}));
    assert_eq!(l2_view["l1_flushes"], 1);
    assert_eq!(
        l2_view["errors"],
        json!({"lookup": 1, "store": 1, "lease": 0, "invalidate": 0, "subscribe": 1})
    );
    assert_eq!(
        l2_view["error_rate"],
        2.0 / 12.0,
        "2 failed of 8 lookups + 4 stores"
    );
    let last = &l2_view["last_error"];
    assert_eq!(last["op"], "subscribe");
    assert_eq!(last["message"], "connection reset by peer");
    assert!(last["age_seconds"].as_f64().unwrap() >= 0.0);
    let window = &l2_view["window"];
    assert_eq!(window["lookups"], 8);
    assert_eq!(window["skipped"], 3);
    assert_eq!(window["errors"], 2);
    assert_eq!(window["hit_rate"], 4.0 / 7.0);
    assert!(window["lookup_p95_seconds"].as_f64().unwrap() > 0.0);

    // The report carries the same object, and health its component with the evidence.
    let report = get(server.addr, "/api/performance/report").await.json();
    let reported = &report["gateway"]["l2"];
    for field in [
        "lookups",
        "stores",
        "leases",
        "invalidations",
        "errors",
        "hit_rate",
    ] {
        assert_eq!(reported[field], l2_view[field], "{field}");
    }
    let component = &report["health"]["components"]["gateway_l2"];
    assert_eq!(component["status"], "healthy", "{component}");
    let reason = &component["reasons"][0];
    assert_eq!(reason["code"], "gateway_l2.insufficient_data");
    assert_eq!(reason["measured"], 8.0);
    assert_eq!(reason["threshold"], 20.0);
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .contains("4 hits, 2 misses"),
        "{reason}"
    );

    // The history: cumulative counters, availability and the interval's ratios.
    let history = get(server.addr, "/api/performance/history").await.json();
    let rows = history["samples"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["gateway"]["l2"]["hits"], 0);
    assert_eq!(rows[0]["gateway"]["l2"]["interval_hit_rate"], Value::Null);
    let last = &rows[1]["gateway"]["l2"];
    #[rustfmt::skip]
    let expected = [
        ("hits", 4), ("misses", 2), ("other_version", 1), ("lookup_errors", 1), ("skipped", 3),
        ("stores", 4), ("store_errors", 1), ("errors", 3), ("leases_won", 2),
        ("leases_waited", 1), ("leases_expired", 1), ("invalidations_sent", 2),
        ("invalidations_received", 3), ("l1_flushes", 1),
    ];
    for (field, count) in expected {
        assert_eq!(last[field], count, "{field} in {last}");
    }
    assert_eq!(last["available"], true);
    assert!((last["interval_hit_rate"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-6);
    assert!((last["interval_error_rate"].as_f64().unwrap() - 2.0 / 12.0).abs() < 1e-6);
    assert!(last["interval_lookup_p95_seconds"].as_f64().unwrap() > 0.0);

    // Redis goes away: degraded (never critical), with the reason given; then back.
    l2.set_available(false, Some("redis: connection refused"));
    let reply = get(server.addr, "/api/performance/health").await;
    assert_eq!(reply.status, 200, "degraded is not a 503");
    let body = reply.json();
    assert_eq!(body["status"], "degraded");
    let component = &body["components"]["gateway_l2"];
    assert_eq!(component["status"], "degraded", "{component}");
    let reason = &component["reasons"][0];
    assert_eq!(reason["code"], "gateway_l2.unavailable");
    assert_eq!(reason["status"], "degraded");
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .contains("unavailable: redis: connection refused"),
        "{reason}"
    );
    assert_eq!(get(server.addr, "/readyz").await.status, 200);
    let exposed = samples(&get(server.addr, "/metrics").await.text());
    assert_eq!(value(&exposed, "resync_gateway_l2_available", &[]), 0.0);
    assert_eq!(value(&exposed, "resync_health_status", status), 1.0);
    let view = get(server.addr, "/api/performance/gateway/metrics")
        .await
        .json();
    assert_eq!(view["gateway"]["l2"]["available"], false);
    assert_eq!(
        view["gateway"]["l2"]["unavailable_reason"],
        "redis: connection refused"
    );
    // Without a reason, the last error says why.
    l2.set_available(false, None);
    let health = get(server.addr, "/api/performance/health").await.json();
    let message = health["components"]["gateway_l2"]["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("last error (subscribe") && message.contains("connection reset by peer"),
        "{message}"
    );

    l2.set_available(true, None);
    let health = get(server.addr, "/api/performance/health").await.json();
    assert_eq!(health["status"], "healthy", "{health}");
    let component = &health["components"]["gateway_l2"];
    assert_eq!(component["status"], "healthy");
    assert_eq!(
        component["reasons"][0]["code"],
        "gateway_l2.insufficient_data"
    );
    let exposed = samples(&get(server.addr, "/metrics").await.text());
    assert_eq!(value(&exposed, "resync_gateway_l2_available", &[]), 1.0);
    assert_eq!(value(&exposed, "resync_health_status", status), 0.0);
}

/// The window's L2 error rate drives `gateway_l2` healthy → degraded → healthy with the
/// gateway's thresholds; never critical, however high. The window is the traffic since the
/// last sample.
#[tokio::test]
async fn the_l2_error_rate_degrades_but_never_fails_the_service() {
    let service = PerformanceService::new(ServiceConfig {
        health_window: Duration::ZERO,
        gateway_thresholds: GatewayHealthThresholds {
            max_error_rate_degraded: 0.1,
            max_error_rate_critical: 0.4,
            min_requests: 10,
        },
        ..ServiceConfig::default()
    });
    let l2 = L2Stats::new();
    l2.set_available(true, None);
    service.set_gateway_l2(l2.clone());
    let server = serve(router(service.clone())).await;
    let took = Some(Duration::from_micros(200));

    // (hits, failed lookups, failed stores) → status, reason code, measured.
    #[rustfmt::skip]
    let phases: [L2Phase<'_>; 5] = [
        ((5, 4, 0), "healthy", "gateway_l2.insufficient_data", 9.0),
        ((9, 1, 0), "healthy", "gateway_l2.error_rate", 0.1),
        ((8, 2, 0), "degraded", "gateway_l2.error_rate", 0.2),
        ((0, 10, 10), "degraded", "gateway_l2.error_rate", 1.0),
        ((20, 0, 0), "healthy", "gateway_l2.error_rate", 0.0),
    ];
    for ((hits, errors, store_errors), status, code, measured) in phases {
        service.sample().await;
        for _ in 0..hits {
            l2.record_lookup(L2Lookup::Hit, took);
        }
        for _ in 0..errors {
            l2.record_lookup(L2Lookup::Error, took);
            l2.record_error(L2Op::Lookup, "timed out");
        }
        for _ in 0..store_errors {
            l2.record_store(false, Duration::from_millis(1));
        }
        let phase = format!("{hits} hits, {errors} failed lookups, {store_errors} failed stores");
        let reply = get(server.addr, "/api/performance/health").await;
        assert_eq!(reply.status, 200, "{phase}: never a 503");
        let body = reply.json();
        let component = &body["components"]["gateway_l2"];
        assert_eq!(component["status"], status, "{phase}: {component}");
        let reason = &component["reasons"][0];
        assert_eq!(reason["code"], code, "{phase}");
        assert!(
            (reason["measured"].as_f64().unwrap() - measured).abs() < 1e-9,
            "{phase}: {reason}"
        );
        assert_eq!(body["status"], status, "{phase}: the only component");
    }
}
