//! The OpenAPI document covers every route of the router, and every real response — each
//! endpoint's 200 (or 503), and the JSON errors — validates against the schema the document
//! declares for it.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use resync_cache_core::Cache;
use resync_perf_api::{
    openapi_document, route_paths, router, CacheOutcome, GatewayExchange, GatewayStats, L2Lookup,
    L2Op, L2Stats, PerformanceService, ServiceConfig, UpstreamOutcome,
};
use resync_pool_optimizer::{FnManager, MonitoredPool, PoolConfig, PoolManager};
use resync_resource_manager::{KindConfig, LeakThreshold, ResourceTracker};
use serde_json::{json, Value};

use common::{get, request, serve, wait_for};

/// The schema of `path`'s `status` response, as a JSON Schema whose `$ref`s resolve inside
/// the whole document.
fn response_schema(document: &Value, path: &str, status: u16) -> Option<Value> {
    let content = &document["paths"][path]["get"]["responses"][status.to_string()]["content"];
    let schema = content.get("application/json")?.get("schema")?.clone();
    let mut root = document.clone();
    let object = root.as_object_mut().unwrap();
    object.insert(
        "$schema".to_owned(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    object.insert("allOf".to_owned(), json!([schema]));
    Some(root)
}

fn assert_valid(document: &Value, path: &str, status: u16, body: &Value) {
    let schema = response_schema(document, path, status)
        .unwrap_or_else(|| panic!("{path} documents no JSON schema for {status}"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{path} {status}: {errors:#?}\nbody: {body}"
    );
}

#[tokio::test]
async fn the_document_covers_every_route_and_real_responses_match_it() {
    let service = PerformanceService::new(ServiceConfig::default());
    let cache: Cache<u64, String> = Cache::builder()
        .name("users")
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let tracker = ResourceTracker::new();
    let pools = Arc::new(PoolManager::default());
    let pool = MonitoredPool::new(
        "numbers",
        PoolConfig {
            min_size: 0,
            max_size: 2,
            ..PoolConfig::default()
        },
        FnManager::new(|| async { Ok::<_, std::io::Error>(1_u8) }),
        &tracker,
    )
    .unwrap();
    pools.add(pool.clone()).unwrap();
    service.register_cache(cache.clone()).unwrap();
    service.set_pool_manager(Arc::clone(&pools));
    service.set_tracker(tracker.clone());
    let gateway = GatewayStats::new();
    service.set_gateway(gateway.clone());
    // The gateway's L2, down with a reason and an error, so that every field has a value.
    let l2 = L2Stats::new();
    service.set_gateway_l2(l2.clone());
    // Enough traffic for the advisor's curve and real advice, and a leak for the leaks list.
    service.sample().await;
    for key in 0..3_000_u64 {
        cache
            .get_with(key % 700, async move { format!("v{key}") })
            .await;
    }
    for _ in 0..50 {
        drop(pool.get().await.unwrap());
    }
    for (cache, upstream) in [
        (CacheOutcome::Miss, Some(UpstreamOutcome::Answered(200))),
        (CacheOutcome::Hit, None),
        (CacheOutcome::Bypass, Some(UpstreamOutcome::TimedOut)),
    ] {
        gateway.record(&GatewayExchange {
            method: &axum::http::Method::GET,
            status: 200,
            cache,
            latency: Duration::from_millis(3),
            upstream: upstream.map(|outcome| (Duration::from_millis(2), outcome)),
            body_bytes: 64,
        });
    }
    l2.record_lookup(L2Lookup::Hit, Some(Duration::from_micros(400)));
    l2.record_lookup(L2Lookup::Skipped, None);
    l2.record_store(true, Duration::from_millis(1));
    l2.record_error(L2Op::Subscribe, "connection refused");
    l2.set_available(false, Some("the invalidation subscriber is disconnected"));
    tracker.configure_kind(
        "export_job",
        KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_millis(1)),
            ..KindConfig::default()
        },
    );
    let _held = tracker.track("export_job", "nightly");
    wait_for("the leak", || async {
        (!service.leaks(Duration::ZERO).is_empty()).then_some(())
    })
    .await;
    service.sample().await;

    let server = serve(router(service.clone()).fallback(resync_perf_api::not_found)).await;
    let served = get(server.addr, "/openapi.json").await;
    assert_eq!(served.status, 200);
    let document = served.json();
    assert_eq!(document, serde_json::to_value(openapi_document()).unwrap());

    let documented: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let routed: BTreeSet<&str> = route_paths().collect();
    assert_eq!(documented, routed, "the document and the router disagree");

    for path in route_paths() {
        let reply = get(server.addr, path).await;
        assert_ne!(reply.status, 404, "{path} is routed");
        if path == "/metrics" {
            assert_eq!(reply.status, 200);
            continue;
        }
        let body = reply.json();
        assert_valid(&document, path, reply.status, &body);
    }
    // The validation is real: a wrong type is caught.
    let mut wrong = get(server.addr, "/api/performance/cache/metrics")
        .await
        .json();
    wrong["caches"][0]["hits"] = json!("many");
    let schema = response_schema(&document, "/api/performance/cache/metrics", 200).unwrap();
    assert!(!jsonschema::validator_for(&schema).unwrap().is_valid(&wrong));
    // The gateway's view was validated with its figures, not as null.
    let gateway = get(server.addr, "/api/performance/gateway/metrics")
        .await
        .json();
    assert_eq!(gateway["gateway"]["requests"], 3, "{gateway}");
    let l2 = &gateway["gateway"]["l2"];
    assert_eq!(l2["lookups"]["hit"], 1, "{gateway}");
    assert_eq!(l2["last_error"]["op"], "subscribe", "{gateway}");
    assert!(l2["unavailable_reason"].is_string(), "{gateway}");
    let history = get(server.addr, "/api/performance/history").await.json();
    assert_eq!(
        history["samples"][1]["gateway"]["l2"]["hits"], 1,
        "{history}"
    );
    let mut wrong = gateway;
    wrong["gateway"]["by_status_class"]["2xx"] = json!("many");
    let schema = response_schema(&document, "/api/performance/gateway/metrics", 200).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(!validator.is_valid(&wrong));
    wrong["gateway"]["by_status_class"]["2xx"] = json!(1);
    assert!(validator.is_valid(&wrong));
    wrong["gateway"]["l2"]["leases"]["won"] = json!("many");
    assert!(!validator.is_valid(&wrong), "the l2 object is checked too");

    // The leak makes health critical: its 503 body is documented too.
    assert_eq!(
        get(server.addr, "/api/performance/health").await.status,
        503
    );

    let errors = [
        ("/api/performance/history?limit=many", 400),
        ("/api/performance/resources/leaks?min_age_secs=x", 400),
    ];
    for (target, status) in errors {
        let reply = get(server.addr, target).await;
        assert_eq!(reply.status, status, "{target}");
        let path = target.split('?').next().unwrap();
        assert_valid(&document, path, status, &reply.json());
    }
    let guarded = serve(router(service.with_api_token("t0ken"))).await;
    let reply = request(guarded.addr, "GET", "/api/performance/report", &[]).await;
    assert_eq!(reply.status, 401);
    assert_valid(&document, "/api/performance/report", 401, &reply.json());
}
