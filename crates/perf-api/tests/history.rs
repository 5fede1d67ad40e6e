//! The history sampler, in memory and written to a real Postgres; a database that is stopped
//! or frozen (`SIGSTOP`) never holds up the in-memory history or the API, and shows in health.

#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use resync_cache_core::Cache;
use resync_perf_api::{
    router, CacheOutcome, GatewayExchange, GatewayStats, L2Lookup, L2Stats, PerformanceService,
    PostgresHistory, ServiceConfig, HISTORY_TABLE,
};
use resync_pool_optimizer::{MonitoredPool, PoolConfig, PoolManager, PostgresManager};
use resync_resource_manager::ResourceTracker;

use common::{get, serve, wait_for, BOUND};

fn config(sample_interval: Duration) -> ServiceConfig {
    ServiceConfig {
        sample_interval,
        history_len: 100,
        health_window: sample_interval * 2,
        check_timeout: Duration::from_secs(5),
        ..ServiceConfig::default()
    }
}

fn postgres_pool(url: &str, tracker: &ResourceTracker) -> MonitoredPool<PostgresManager> {
    let config = PoolConfig {
        min_size: 0,
        max_size: 2,
        connect_timeout: Duration::from_secs(2),
        acquire_timeout: Some(Duration::from_secs(2)),
        health_check_interval: Duration::from_millis(200),
        ..PoolConfig::database()
    };
    MonitoredPool::new(
        "db",
        config,
        PostgresManager::new(url, None).unwrap(),
        tracker,
    )
    .unwrap()
}

#[tokio::test]
async fn the_sampler_fills_the_ring_and_the_endpoint_filters_it() {
    let service = PerformanceService::new(config(Duration::from_millis(20)));
    let cache: Cache<u64, u64> = Cache::builder().name("numbers").build().unwrap();
    service.register_cache(cache.clone()).unwrap();
    let sampler = service.spawn_sampler();
    let server = serve(router(service.clone())).await;
    wait_for("five samples", || async {
        (service.history(None, 100).len() >= 5).then_some(())
    })
    .await;

    let all = get(server.addr, "/api/performance/history").await.json();
    let samples = all["samples"].as_array().unwrap();
    assert!(samples.len() >= 5);
    let times: Vec<f64> = samples
        .iter()
        .map(|s| s["unix_seconds"].as_f64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "oldest first: {times:?}"
    );
    assert_eq!(samples[0]["caches"][0]["name"], "numbers");

    let limited = get(server.addr, "/api/performance/history?limit=2")
        .await
        .json();
    let limited = limited["samples"].as_array().unwrap();
    assert_eq!(limited.len(), 2);
    let since = times[2];
    let filtered = get(
        server.addr,
        &format!("/api/performance/history?since={since}"),
    )
    .await
    .json();
    let filtered = filtered["samples"].as_array().unwrap();
    assert!(filtered
        .iter()
        .all(|s| s["unix_seconds"].as_f64().unwrap() >= since));
    assert!(filtered.len() < samples.len() + 5);
    let rfc3339 = samples[2]["timestamp"].as_str().unwrap();
    let by_time = get(
        server.addr,
        &format!("/api/performance/history?since={rfc3339}"),
    )
    .await;
    assert_eq!(by_time.status, 200, "{}", by_time.text());
    sampler.abort();
}

#[tokio::test]
async fn samples_are_written_to_postgres_and_old_rows_deleted() {
    let url = test_support::shared_database_url();
    let tracker = ResourceTracker::new();
    let pool = postgres_pool(&url, &tracker);
    let service = PerformanceService::new(config(Duration::from_secs(3600)));
    let name = format!("persisted-{}", std::process::id());
    let cache: Cache<u64, u64> = Cache::builder().name(name.clone()).build().unwrap();
    service.register_cache(cache).unwrap();
    let gateway = GatewayStats::new();
    service.set_gateway(gateway.clone());
    let l2 = L2Stats::new();
    service.set_gateway_l2(l2.clone());
    l2.set_available(true, None);
    for _ in 0..5 {
        l2.record_lookup(L2Lookup::Hit, Some(Duration::from_micros(300)));
    }
    for _ in 0..7 {
        gateway.record(&GatewayExchange {
            method: &axum::http::Method::GET,
            status: 200,
            cache: CacheOutcome::Hit,
            latency: Duration::from_micros(50),
            upstream: None,
            body_bytes: 10,
        });
    }
    let sink = PostgresHistory::start(
        pool.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(10),
    );
    service.persist_history(sink.clone()).unwrap();
    for _ in 0..3 {
        service.sample().await;
    }
    wait_for("three rows written", || async {
        (sink.written() >= 3).then_some(())
    })
    .await;
    let conn = pool.get().await.unwrap();
    let rows_named = |extra: &'static str| {
        format!(
            "SELECT count(*) FROM {HISTORY_TABLE} WHERE sample->'caches'->0->>'name' = $1 {extra}"
        )
    };
    let rows: i64 = conn
        .query_one(&rows_named(""), &[&name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3);
    // The gateway's figures are persisted with the rest of each sample.
    let hits: Vec<i64> = conn
        .query(
            &format!(
                "SELECT (sample->'gateway'->>'hits')::bigint FROM {HISTORY_TABLE} \
                 WHERE sample->'caches'->0->>'name' = $1"
            ),
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(hits, [7, 7, 7]);
    // The L2's with them, inside the gateway's; a row written before the L2 existed (its
    // gateway without `l2`) reads as null, not as an error.
    let l2_rows: Vec<(Option<i64>, Option<bool>)> = conn
        .query(
            &format!(
                "SELECT (sample->'gateway'->'l2'->>'hits')::bigint, \
                        (sample->'gateway'->'l2'->>'available')::boolean \
                 FROM {HISTORY_TABLE} WHERE sample->'caches'->0->>'name' = $1"
            ),
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(l2_rows, [(Some(5), Some(true)); 3]);
    let before_l2: Option<i64> = conn
        .query_one(
            "SELECT ($1::text::jsonb->'gateway'->'l2'->>'hits')::bigint",
            &[&r#"{"gateway": {"hits": 7}}"#],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(before_l2, None);
    // A row two hours old, past the one-hour span: the next prune deletes it.
    conn.execute(
        &format!(
            "INSERT INTO {HISTORY_TABLE} (taken_at, sample) VALUES (now() - interval '2 hours', \
             jsonb_build_object('caches', jsonb_build_array(jsonb_build_object('name', $1::text))))"
        ),
        &[&name],
    )
    .await
    .unwrap();
    let old = "AND taken_at < now() - interval '1 hour'";
    let rows: i64 = conn
        .query_one(&rows_named(old), &[&name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    drop(conn);
    // Rows are pruned every tenth write.
    for _ in 0..8 {
        service.sample().await;
    }
    wait_for("eleven rows written", || async {
        (sink.written() >= 11).then_some(())
    })
    .await;
    let conn = pool.get().await.unwrap();
    let rows: i64 = conn
        .query_one(&rows_named(old), &[&name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the old row is deleted");
    let rows: i64 = conn
        .query_one(&rows_named(""), &[&name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 11);
    drop(conn);
    let health = service.health().await;
    assert_eq!(
        health.components["history:postgres"].status.as_str(),
        "healthy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_frozen_database_never_holds_up_the_history_or_the_api() {
    let mut postgres = tokio::task::block_in_place(test_support::PostgresServer::start).unwrap();
    let tracker = ResourceTracker::new();
    let pool = postgres_pool(&postgres.url(), &tracker);
    let pools = Arc::new(PoolManager::default());
    pools.add(pool.clone()).unwrap();
    let service = PerformanceService::new(config(Duration::from_millis(100)));
    service.set_pool_manager(Arc::clone(&pools));
    let sink = PostgresHistory::start(pool, Duration::from_secs(3600), Duration::from_millis(500));
    service.persist_history(sink.clone()).unwrap();
    let _sampler = service.spawn_sampler();
    let server = serve(router(service.clone())).await;
    wait_for("a first write", || async {
        (sink.written() >= 1).then_some(())
    })
    .await;

    // Frozen: connections stay open and nothing answers.
    postgres.pause().unwrap();
    let samples_before = service.history(None, 100).len();
    let degraded = wait_for("history:postgres degraded while frozen", || async {
        let reply = get(server.addr, "/api/performance/health").await;
        let body = reply.json();
        (body["components"]["history:postgres"]["status"] == "degraded").then_some(body)
    })
    .await;
    let reason = &degraded["components"]["history:postgres"]["reasons"][0];
    assert_eq!(reason["code"], "history.write_failing", "{reason}");
    wait_for("the in-memory history to go on", || async {
        (service.history(None, 100).len() >= samples_before + 3).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    for path in [
        "/api/performance/report",
        "/api/performance/pools/metrics",
        "/metrics",
    ] {
        assert_eq!(get(server.addr, path).await.status, 200, "{path}");
    }
    assert!(started.elapsed() < BOUND);
    postgres.resume().unwrap();
    let written = sink.written();
    wait_for("writes to resume", || async {
        (sink.written() > written + 1).then_some(())
    })
    .await;

    // Stopped: connects are refused; then started again on the same port.
    tokio::task::block_in_place(|| postgres.stop()).unwrap();
    let failed = sink.failed();
    wait_for("a refused write", || async {
        (sink.failed() > failed).then_some(())
    })
    .await;
    let reply = get(server.addr, "/api/performance/health").await;
    assert_eq!(
        reply.json()["components"]["history:postgres"]["status"],
        "degraded"
    );
    let samples_now = service.history(None, 100).len();
    wait_for("the in-memory history to go on", || async {
        (service.history(None, 100).len() >= samples_now + 3).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| postgres.start_again()).unwrap();
    wait_for("history:postgres healthy again", || async {
        let body = get(server.addr, "/api/performance/health").await.json();
        (body["components"]["history:postgres"]["status"] == "healthy").then_some(())
    })
    .await;
}
