//! Every endpoint on a real loopback socket, over a real cache, pool and tracker: status,
//! keys, auth, errors as JSON, and the health verdict turning critical on a leak.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use resync_cache_core::Cache;
use resync_perf_api::{router, PerformanceService, ServiceConfig};
use resync_pool_optimizer::{FnManager, MonitoredPool, PoolConfig, PoolManager};
use resync_resource_manager::{KindConfig, LeakThreshold, ResourceTracker};

use common::{get, request, serve, wait_for};

const ENDPOINTS: [&str; 10] = [
    "/api/performance/report",
    "/api/performance/cache/metrics",
    "/api/performance/cache/recommendations",
    "/api/performance/pools/metrics",
    "/api/performance/pools/recommendations",
    "/api/performance/resources/stats",
    "/api/performance/resources/leaks",
    "/api/performance/gateway/metrics",
    "/api/performance/health",
    "/api/performance/history",
];

type Connect = Box<dyn Fn() -> std::future::Ready<Result<u64, std::io::Error>> + Send + Sync>;

struct Fixture {
    service: PerformanceService,
    cache: Cache<u64, String>,
    pools: Arc<PoolManager>,
    pool: MonitoredPool<FnManager<Connect, u64, std::io::Error>>,
    tracker: ResourceTracker,
}

fn fixture(token: &str) -> Fixture {
    let service = PerformanceService::new(ServiceConfig::default()).with_api_token(token);
    let cache: Cache<u64, String> = Cache::builder().name("users").build().unwrap();
    let tracker = ResourceTracker::new();
    let connect: Connect = Box::new(|| std::future::ready(Ok(7)));
    let pool = MonitoredPool::new(
        "numbers",
        PoolConfig {
            min_size: 0,
            max_size: 2,
            ..PoolConfig::default()
        },
        FnManager::new(connect),
        &tracker,
    )
    .unwrap();
    let pools = Arc::new(PoolManager::default());
    pools.add(pool.clone()).unwrap();
    service.register_cache(cache.clone()).unwrap();
    service.set_pool_manager(Arc::clone(&pools));
    service.set_tracker(tracker.clone());
    Fixture {
        service,
        cache,
        pools,
        pool,
        tracker,
    }
}

/// A sample, then traffic, then a sample: the window (from the oldest sample, since none is
/// a window old yet) holds all of the traffic.
async fn traffic(fixture: &Fixture) {
    fixture.service.sample().await;
    for key in 0..20_u64 {
        fixture
            .cache
            .get_with(key % 5, async move { format!("v{key}") })
            .await;
    }
    for _ in 0..10 {
        let conn = fixture.pool.get().await.unwrap();
        assert_eq!(*conn, 7);
    }
    fixture.service.sample().await;
}

#[tokio::test]
async fn every_endpoint_answers_with_real_figures() {
    let fixture = fixture("");
    traffic(&fixture).await;
    let app = router(fixture.service.clone()).fallback(resync_perf_api::not_found);
    let server = serve(app).await;

    for path in ENDPOINTS {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        reply.json();
    }

    let caches = get(server.addr, "/api/performance/cache/metrics")
        .await
        .json();
    let users = &caches["caches"][0];
    assert_eq!(users["name"], "users");
    assert_eq!(users["hits"], 15);
    assert_eq!(users["misses"], 5);
    assert_eq!(users["hit_rate"], 0.75);
    assert_eq!(users["loads_ok"], 5);
    for key in [
        "weighted_bytes",
        "max_memory_bytes",
        "memory_utilization",
        "efficiency_score",
        "load_seconds",
        "window",
    ] {
        assert!(!users[key].is_null(), "{key} in {users}");
    }

    let pools = get(server.addr, "/api/performance/pools/metrics")
        .await
        .json();
    let numbers = &pools["pools"][0];
    assert_eq!(numbers["name"], "numbers");
    assert_eq!(numbers["acquires"], 10);
    assert_eq!(numbers["max_size"], 2);
    assert_eq!(numbers["acquire_seconds"]["count"], 10);
    assert!(numbers["utilization"].as_f64().unwrap() >= 0.0);

    let kinds = get(server.addr, "/api/performance/resources/stats")
        .await
        .json();
    let connection_kind = kinds["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kind| kind["kind"] == "db_connection")
        .unwrap_or_else(|| panic!("the pool's kind in {kinds}"));
    assert_eq!(connection_kind["created"], 10);

    let advice = get(server.addr, "/api/performance/cache/recommendations")
        .await
        .json();
    let first = &advice["recommendations"][0];
    assert_eq!(first["code"], "cache.insufficient_data");
    assert_eq!(first["evidence"]["requests"], 20.0);

    let health = get(server.addr, "/api/performance/health").await.json();
    assert_eq!(health["status"], "healthy");
    for component in ["cache:users", "pool:numbers", "resources"] {
        let verdict = &health["components"][component];
        assert_eq!(verdict["status"], "healthy", "{component}: {verdict}");
        assert!(verdict["check_duration_seconds"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(
        health["components"]["cache:users"]["reasons"][0]["code"],
        "cache.insufficient_data"
    );

    let history = get(server.addr, "/api/performance/history").await.json();
    assert_eq!(history["samples"].as_array().unwrap().len(), 2);
    assert_eq!(history["samples"][1]["caches"][0]["hits"], 15);
    assert_eq!(history["samples"][1]["pools"][0]["acquires"], 10);
    assert_eq!(history["capacity"], 8640);

    let report = get(server.addr, "/api/performance/report").await.json();
    for key in [
        "generated_at",
        "system",
        "config",
        "caches",
        "cache_recommendations",
        "pools",
        "pool_recommendations",
        "resources",
        "leaks",
        "gateway",
        "health",
    ] {
        assert!(report.get(key).is_some(), "{key} in the report");
    }
    assert!(report["system"]["resident_memory_bytes"].as_u64().unwrap() > 0);

    assert_eq!(get(server.addr, "/livez").await.json()["status"], "ok");
    assert_eq!(
        get(server.addr, "/readyz").await.json()["status"],
        "healthy"
    );
    let metrics = get(server.addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("resync_cache_requests_total"));
    let openapi = get(server.addr, "/openapi.json").await.json();
    assert!(openapi["paths"]["/api/performance/health"].is_object());
    drop(fixture.pools);
}

/// A small cache replays only some windows of its advisor's sample: the view shows the
/// sampled gets it skipped beside the ones it replayed, as cache-core counts them.
#[tokio::test]
async fn the_cache_view_shows_the_sampled_gets_the_advisor_skipped() {
    let service = PerformanceService::new(ServiceConfig::default());
    let cache: Cache<u64, u64> = Cache::builder()
        .name("small")
        .max_entries(100)
        .max_memory_bytes(1 << 20)
        .build()
        .unwrap();
    service.register_cache(cache.clone()).unwrap();
    for i in 0..20_000_u64 {
        let key = i % 300;
        if cache.get(&key).await.is_none() {
            cache.insert(key, i).await.unwrap();
        }
    }
    let curve = cache.settled_metrics().await.curve.unwrap();
    assert!(curve.skipped_gets > 0, "{curve:?}");
    let server = serve(router(service)).await;

    let caches = get(server.addr, "/api/performance/cache/metrics")
        .await
        .json();
    let shown = &caches["caches"][0]["curve"];
    assert_eq!(shown["skipped_gets"], curve.skipped_gets, "{shown}");
    assert_eq!(shown["sampled_gets"], curve.sampled_gets, "{shown}");
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let fixture = fixture("");
    let app = router(fixture.service.clone()).fallback(resync_perf_api::not_found);
    let server = serve(app).await;

    let cases = [
        (
            "GET",
            "/api/performance/history?since=yesterday",
            400,
            "since",
        ),
        ("GET", "/api/performance/history?limit=0", 400, "limit"),
        ("GET", "/api/performance/history?limt=3", 400, "limt"),
        (
            "GET",
            "/api/performance/resources/leaks?min_age_secs=-1",
            400,
            "min_age_secs",
        ),
        ("GET", "/api/performance/health?verbose=1", 400, "verbose"),
        ("POST", "/api/performance/health", 405, "method"),
        ("DELETE", "/metrics", 405, "method"),
        ("GET", "/api/performance/nothing", 404, "route"),
    ];
    for (method, path, status, mentions) in cases {
        let reply = request(server.addr, method, path, &[]).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        let body = reply.json();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(message.contains(mentions), "{method} {path}: {message}");
    }
}

#[tokio::test]
async fn the_token_guards_every_api_route_but_not_the_probes() {
    let fixture = fixture("s3cret");
    let server = serve(router(fixture.service.clone())).await;
    for path in ENDPOINTS.iter().copied().chain(["/metrics"]) {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.json()["error"]["code"], "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        let wrong = request(
            server.addr,
            "GET",
            path,
            &[("Authorization", "Bearer s3cre")],
        )
        .await;
        assert_eq!(wrong.status, 401, "{path}");
        let right = request(
            server.addr,
            "GET",
            path,
            &[("Authorization", "Bearer s3cret")],
        )
        .await;
        assert_eq!(right.status, 200, "{path}: {}", right.text());
    }
    for open in ["/livez", "/readyz", "/openapi.json"] {
        assert_eq!(get(server.addr, open).await.status, 200, "{open}");
    }
}

#[tokio::test]
async fn two_services_in_one_process_are_independent() {
    let first = fixture("");
    let second = fixture("");
    traffic(&first).await;
    let one = first.service.history(None, 10);
    let other = second.service.history(None, 10);
    assert_eq!((one.len(), other.len()), (2, 0));
    assert_eq!(second.cache.metrics().hits, 0);
    assert_eq!(
        second.service.health().await.components["cache:users"].reasons[0].measured,
        0.0
    );
    assert!(first.service.register_cache(first.cache.clone()).is_err());
    assert!(
        second.service.register_cache(first.cache.clone()).is_err(),
        "same name again"
    );
}

#[tokio::test]
async fn a_leak_makes_health_critical_and_is_listed_with_its_line() {
    let fixture = fixture("");
    fixture.tracker.configure_kind(
        "export_job",
        KindConfig {
            leak_threshold: LeakThreshold::After(Duration::from_millis(50)),
            ..KindConfig::default()
        },
    );
    let held = fixture.tracker.track("export_job", "nightly export");
    let line = line!() - 1;
    let server = serve(router(fixture.service.clone())).await;
    let leaks = wait_for("the leak to be listed", || async {
        let body = get(server.addr, "/api/performance/resources/leaks")
            .await
            .json();
        (!body["leaks"].as_array().unwrap().is_empty()).then_some(body)
    })
    .await;
    let leak = &leaks["leaks"][0];
    assert_eq!(leak["label"], "nightly export");
    assert!(
        leak["acquired_at"]
            .as_str()
            .unwrap()
            .contains(&format!("api.rs:{line}")),
        "{leak}"
    );
    let none = get(
        server.addr,
        "/api/performance/resources/leaks?min_age_secs=3600",
    )
    .await
    .json();
    assert!(none["leaks"].as_array().unwrap().is_empty());

    let health = get(server.addr, "/api/performance/health").await;
    assert_eq!(health.status, 503);
    let body = health.json();
    assert_eq!(body["status"], "critical");
    let reason = &body["components"]["resources"]["reasons"][0];
    assert_eq!(reason["code"], "resources.leaked");
    assert_eq!(reason["measured"], 1.0);
    assert_eq!(get(server.addr, "/readyz").await.status, 503);

    drop(held);
    let health = get(server.addr, "/api/performance/health").await;
    assert_eq!(health.status, 200, "{}", health.text());
}

#[derive(Debug)]
struct Misbehaving {
    name: &'static str,
    hang: bool,
}

impl resync_perf_api::HealthSource for Misbehaving {
    fn name(&self) -> String {
        self.name.to_owned()
    }

    fn check(&self) -> resync_perf_api::BoxFuture<'_, resync_perf_core::HealthVerdict> {
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            panic!("a check that panics");
        })
    }
}

#[tokio::test]
async fn a_check_that_hangs_or_panics_is_critical_and_never_holds_up_the_answer() {
    let service = PerformanceService::new(ServiceConfig {
        check_timeout: Duration::from_millis(100),
        ..ServiceConfig::default()
    });
    for (name, hang) in [("hangs", true), ("panics", false)] {
        service
            .register(Arc::new(Misbehaving { name, hang }))
            .unwrap();
    }
    let server = serve(router(service)).await;
    let reply = get(server.addr, "/api/performance/health").await;
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(
        body["components"]["hangs"]["reasons"][0]["code"],
        "health.check_timeout"
    );
    assert_eq!(
        body["components"]["panics"]["reasons"][0]["code"],
        "health.check_panicked"
    );
}

/// A cache whose statistics cannot be read: its snapshot panics.
#[derive(Debug)]
struct Broken;

impl resync_perf_api::CacheSource for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    fn metrics(&self) -> resync_cache_core::CacheMetrics {
        panic!("secret internal detail")
    }
}

#[tokio::test]
async fn a_handler_that_panics_answers_a_json_500_without_internal_text() {
    let service = PerformanceService::new(ServiceConfig::default());
    service.register_cache(Broken).unwrap();
    let server = serve(router(service)).await;
    let reply = get(server.addr, "/api/performance/cache/metrics").await;
    assert_eq!(reply.status, 500);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "internal");
    assert!(!reply.text().contains("secret"), "{body}");
    assert_eq!(
        get(server.addr, "/livez").await.status,
        200,
        "the server goes on"
    );
}
