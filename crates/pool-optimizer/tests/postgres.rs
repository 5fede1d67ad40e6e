//! Postgres through the pool, against the shared server (`cargo xtask services up`).

use std::time::Duration;

use resync_pool_optimizer::{Error, MonitoredPool, PoolConfig, PostgresManager};
use resync_resource_manager::ResourceTracker;

const BOUND: Duration = Duration::from_secs(60);

fn pool(max_size: u32, acquire_timeout: Duration) -> MonitoredPool<PostgresManager> {
    let url = test_support::shared_database_url();
    let manager = PostgresManager::new(&url, None).expect("valid url");
    let config = PoolConfig {
        min_size: 0,
        max_size,
        acquire_timeout: Some(acquire_timeout),
        connect_timeout: Duration::from_secs(20),
        ..PoolConfig::database()
    };
    MonitoredPool::new("pg", config, manager, &ResourceTracker::new()).expect("valid config")
}

#[tokio::test]
async fn round_trips_count_one_acquire_each() {
    let pool = pool(4, BOUND);
    for i in 0..10_i32 {
        let conn = tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")
            .expect("get");
        let row = conn
            .query_one("SELECT $1::int4 + 1", &[&i])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(0), i + 1);
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires, 10);
    assert!(metrics.created >= 1 && metrics.created <= 4, "{metrics:?}");
    assert_eq!(metrics.connect_failures, 0);
    let checked = tokio::time::timeout(BOUND, pool.check_health())
        .await
        .expect("bounded");
    assert!(checked.is_ok(), "SELECT 1 probe: {checked:?}");
}

#[tokio::test]
async fn a_third_concurrent_get_times_out_as_an_exhaustion() {
    let pool = pool(2, Duration::from_millis(300));
    let first = pool.get().await.expect("first");
    let second = pool.get().await.expect("second");
    let third = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded");
    assert!(matches!(third, Err(Error::Exhausted { .. })), "{third:?}");
    assert_eq!(pool.metrics().exhaustions, 1);
    drop(first);
    drop(second);
}

#[tokio::test]
async fn a_connection_held_past_the_threshold_is_a_leak_naming_this_line() {
    let url = test_support::shared_database_url();
    let tracker = ResourceTracker::new();
    let config = PoolConfig {
        min_size: 0,
        max_size: 2,
        leak_threshold: Duration::from_millis(100),
        ..PoolConfig::database()
    };
    let pool = MonitoredPool::new(
        "pg-leak",
        config,
        PostgresManager::new(&url, None).expect("url"),
        &tracker,
    )
    .expect("valid config");
    let line = line!() + 1;
    let held = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("get");
    // The server runs the tracker's scanner; the pool's figure comes from its marks.
    let scanner = tracker.spawn_leak_scanner(Duration::from_millis(20));
    let started = std::time::Instant::now();
    while pool.metrics().leaked == 0 {
        assert!(
            started.elapsed() < BOUND,
            "the held connection never became a leak"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leak = tracker
        .leaks()
        .into_iter()
        .find(|leak| leak.label == "pg-leak")
        .expect("a leak report for this pool");
    assert_eq!(leak.kind, "db_connection");
    assert!(
        leak.acquired_at
            .starts_with(&format!("{}:{line}:", file!())),
        "acquired at {}, expected this file's line {line}",
        leak.acquired_at
    );
    held.simple_query("SELECT 1").await.expect("still usable");
    drop(held);
    assert_eq!(pool.metrics().leaked, 0);
    scanner.abort();
}

#[tokio::test]
async fn a_pool_for_a_down_backend_builds_at_once_and_fails_fast() {
    let port = test_support::free_port().expect("free port");
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let config = PoolConfig {
        min_size: 2,
        max_size: 4,
        connect_timeout: Duration::from_secs(5),
        acquire_timeout: Some(Duration::from_secs(20)),
        ..PoolConfig::database()
    };
    let pool = MonitoredPool::new(
        "pg-down",
        config,
        PostgresManager::new(&url, None).expect("url"),
        &ResourceTracker::new(),
    )
    .expect("building never waits for the backend");
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded");
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited the whole acquire timeout"
    );
    assert!(pool.metrics().connect_failures >= 1);
}
