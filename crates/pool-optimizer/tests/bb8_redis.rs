//! bb8-redis's `RedisConnectionManager` under a `MonitoredPool` (feature `bb8-redis`), against
//! the shared Redis server (`cargo xtask services up`).

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use resync_pool_optimizer::{MonitoredPool, PoolConfig, PoolManager};
use resync_resource_manager::ResourceTracker;

const BOUND: Duration = Duration::from_secs(60);

fn pool(name: &str) -> MonitoredPool<RedisConnectionManager> {
    let manager = RedisConnectionManager::new(test_support::shared_redis_url()).expect("valid url");
    let config = PoolConfig {
        min_size: 0,
        max_size: 2,
        acquire_timeout: Some(BOUND),
        ..PoolConfig::redis()
    };
    MonitoredPool::new(name, config, manager, &ResourceTracker::new()).expect("valid config")
}

#[tokio::test]
async fn commands_go_through_and_the_health_check_pings() {
    let pool = pool("bb8-redis");
    let key = format!("pool-optimizer-bb8-redis-{}", std::process::id());
    for i in 0..3_i64 {
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
    let checked = tokio::time::timeout(BOUND, pool.check_health())
        .await
        .expect("bounded");
    assert!(checked.is_ok(), "PING probe: {checked:?}");
    let metrics = pool.metrics();
    assert_eq!(metrics.acquires, 5, "four gets and the health check's");
    assert_eq!(metrics.caller_errors, 0);
}

#[tokio::test]
async fn the_pool_manager_checks_a_bb8_redis_pool() {
    let manager = PoolManager::default();
    manager.add(pool("bb8-redis-managed")).expect("added");
    let outcomes = tokio::time::timeout(BOUND, manager.check_all())
        .await
        .expect("bounded");
    assert!(
        matches!(outcomes.get("bb8-redis-managed"), Some(Ok(()))),
        "{outcomes:?}"
    );
    let record = manager
        .health_check("bb8-redis-managed")
        .expect("the pool is registered");
    assert!(!record.is_failing(), "{record:?}");
}
