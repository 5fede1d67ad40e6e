//! Redis through the pool, against the shared server (`cargo xtask services up`).

use std::time::Duration;

use resync_pool_optimizer::{Error, MonitoredPool, PoolConfig, RedisManager};
use resync_resource_manager::ResourceTracker;

const BOUND: Duration = Duration::from_secs(60);

fn pool(max_size: u32, acquire_timeout: Duration) -> MonitoredPool<RedisManager> {
    let url = test_support::shared_redis_url();
    let manager = RedisManager::new(&url, Duration::from_secs(10), None).expect("valid url");
    let config = PoolConfig {
        min_size: 0,
        max_size,
        acquire_timeout: Some(acquire_timeout),
        ..PoolConfig::redis()
    };
    MonitoredPool::new("redis", config, manager, &ResourceTracker::new()).expect("valid config")
}

#[tokio::test]
async fn round_trips_count_one_acquire_each() {
    let pool = pool(3, BOUND);
    let key = format!("pool-optimizer-test-{}", std::process::id());
    for i in 0..10_i64 {
        let mut conn = tokio::time::timeout(BOUND, pool.get())
            .await
            .expect("bounded")
            .expect("get");
        let value: i64 = redis::cmd("INCR")
            .arg(&key)
            .query_async(&mut *conn)
            .await
            .expect("incr");
        assert_eq!(value, i + 1);
    }
    let mut conn = pool.get().await.expect("get");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut *conn)
        .await
        .expect("del");
    drop(conn);
    assert_eq!(pool.metrics().acquires, 11);
    let checked = tokio::time::timeout(BOUND, pool.check_health())
        .await
        .expect("bounded");
    assert!(checked.is_ok(), "PING probe: {checked:?}");
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
    drop((first, second));
}

#[tokio::test]
async fn the_response_timeout_is_honoured() {
    let url = test_support::shared_redis_url();
    let response_timeout = Duration::from_millis(200);
    let manager = RedisManager::new(&url, response_timeout, None).expect("valid url");
    let config = PoolConfig {
        min_size: 0,
        max_size: 1,
        ..PoolConfig::redis()
    };
    let pool =
        MonitoredPool::new("redis-slow", config, manager, &ResourceTracker::new()).expect("valid");
    let mut conn = tokio::time::timeout(BOUND, pool.get())
        .await
        .expect("bounded")
        .expect("get");
    let key = format!("pool-optimizer-empty-{}", std::process::id());
    // BLPOP with timeout 0 blocks on the server forever: only the client's response timeout
    // can end it.
    let result: Result<Option<(String, String)>, redis::RedisError> = tokio::time::timeout(
        BOUND,
        redis::cmd("BLPOP").arg(&key).arg(0).query_async(&mut *conn),
    )
    .await
    .expect("the response timeout ended the call, not the test's bound");
    match result {
        Err(error) => assert!(error.is_timeout(), "expected a timeout, got {error}"),
        Ok(reply) => panic!("BLPOP on an empty key answered {reply:?}"),
    }
    conn.report_error();
}
