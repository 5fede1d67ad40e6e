//! Fault tests on private servers: a backend stopped and restarted on the same port.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use resync_perf_core::HealthStatus;
use resync_pool_optimizer::{
    Error, HealthCheckRecord, HealthProbe, MonitoredPool, PoolConfig, PoolManager, PostgresManager,
    RedisManager,
};
use resync_resource_manager::ResourceTracker;

use common::wait::{wait_for_failed_check, wait_for_status};

const BOUND: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for a loaded 2-core machine on top of every timing upper bound.
const SLACK: Duration = Duration::from_secs(10);

fn fault_config(defaults: &PoolConfig) -> PoolConfig {
    PoolConfig {
        min_size: 0,
        max_size: 4,
        connect_timeout: CONNECT_TIMEOUT,
        // Far above the connect timeout: a get that returns `Unavailable` before the connect
        // timeout (plus slack) failed fast, it did not wait out its own timeout.
        acquire_timeout: Some(BOUND),
        health_check_interval: INTERVAL,
        ..defaults.clone()
    }
}

/// Asserts the verdict turned critical within two health checks of the stop: at most one
/// check succeeded after it (one may have been in flight while the server stopped), and the
/// last one failed. Counts checks, so it holds however slowly the machine runs.
fn assert_critical_within_two_checks(at_stop: &HealthCheckRecord, at_critical: &HealthCheckRecord) {
    let successes = |record: &HealthCheckRecord| record.checks - record.failures;
    assert!(
        successes(at_critical) - successes(at_stop) <= 1,
        "checks kept succeeding after the stop: {at_stop:?} then {at_critical:?}"
    );
    assert!(at_critical.is_failing(), "{at_critical:?}");
}

/// Calls `get()` until it says `Unavailable`, checking every call ends within the connect
/// timeout (plus slack); a connection that still comes back is used with `use_conn`.
async fn get_until_unavailable<'p, M, F, Fut>(pool: &'p MonitoredPool<M>, use_conn: F)
where
    M: HealthProbe,
    M::Error: std::error::Error + Send + Sync + 'static,
    F: Fn(resync_pool_optimizer::PoolConnection<'p, M>) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    loop {
        let call = Instant::now();
        let result = tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded");
        assert!(
            call.elapsed() < CONNECT_TIMEOUT + SLACK,
            "a get waited {:?}, past its connect timeout",
            call.elapsed()
        );
        match result {
            Err(Error::Unavailable { .. }) => return,
            Ok(conn) => use_conn(conn).await,
            Err(other) => panic!("expected Unavailable, got {other}"),
        }
        assert!(started.elapsed() < BOUND, "get never became Unavailable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_and_critical_then_healthy_after_restart() {
    let mut server = tokio::task::spawn_blocking(test_support::RedisServer::start)
        .await
        .expect("joins")
        .expect("private redis starts");
    let manager = PoolManager::default();
    let redis = RedisManager::new(&server.url(), CONNECT_TIMEOUT, None).expect("url");
    let pool = MonitoredPool::new(
        "redis",
        fault_config(&PoolConfig::redis()),
        redis,
        &ResourceTracker::new(),
    )
    .expect("valid");
    manager.add(pool.clone()).expect("added");
    wait_for_status(&manager, "redis", HealthStatus::Healthy, "before the fault").await;

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop().expect("stops");
        server
    })
    .await
    .expect("joins");
    let at_stop = manager.health_check("redis").expect("registered");
    get_until_unavailable(&pool, |mut conn| async move {
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut *conn).await;
        if pong.is_err() {
            conn.report_error();
        }
    })
    .await;
    let at_critical = wait_for_failed_check(&manager, "redis", "after the stop").await;
    assert_critical_within_two_checks(&at_stop, &at_critical);

    let server = tokio::task::spawn_blocking(move || {
        server.start_again().expect("restarts on the same port");
        server
    })
    .await
    .expect("joins");
    wait_for_status(
        &manager,
        "redis",
        HealthStatus::Healthy,
        "after the restart",
    )
    .await;
    let mut conn = pool.get().await.expect("the same pool reconnects");
    let pong: String = redis::cmd("PING")
        .query_async(&mut *conn)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
    drop(conn);
    assert!(pool.metrics().unavailable >= 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_unavailable_and_critical_then_healthy_after_restart() {
    let mut server = tokio::task::spawn_blocking(test_support::PostgresServer::start)
        .await
        .expect("joins")
        .expect("private postgres starts");
    let manager = PoolManager::default();
    let postgres = PostgresManager::new(&server.url(), None).expect("url");
    let pool = MonitoredPool::new(
        "pg",
        fault_config(&PoolConfig::database()),
        postgres,
        &ResourceTracker::new(),
    )
    .expect("valid");
    manager.add(pool.clone()).expect("added");
    wait_for_status(&manager, "pg", HealthStatus::Healthy, "before the fault").await;

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop().expect("stops");
        server
    })
    .await
    .expect("joins");
    let at_stop = manager.health_check("pg").expect("registered");
    get_until_unavailable(&pool, |mut conn| async move {
        if conn.simple_query("SELECT 1").await.is_err() {
            conn.report_error();
        }
    })
    .await;
    let at_critical = wait_for_failed_check(&manager, "pg", "after the stop").await;
    assert_critical_within_two_checks(&at_stop, &at_critical);

    let server = tokio::task::spawn_blocking(move || {
        server.start_again().expect("restarts on the same port");
        server
    })
    .await
    .expect("joins");
    wait_for_status(&manager, "pg", HealthStatus::Healthy, "after the restart").await;
    let conn = pool.get().await.expect("the same pool reconnects");
    let row = conn.query_one("SELECT 41 + 1", &[]).await.expect("query");
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(conn);
    drop(server);
}
