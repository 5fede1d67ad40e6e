//! Each eviction cause is counted right, TTL counts from the write, cleanup runs alone.

use std::time::{Duration, Instant};

use resync_cache_core::Cache;

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns whether it held.
async fn eventually(limit: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn small_cache() -> Cache<u64, String> {
    Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 512)
        .build()
        .expect("valid settings")
}

#[tokio::test]
async fn replacement_and_invalidation_are_counted() {
    let cache = small_cache();
    cache.insert(1, "a".into()).await.expect("fits");
    cache.insert(1, "b".into()).await.expect("fits");
    cache.insert(2, "c".into()).await.expect("fits");
    cache.invalidate(&2).await;
    cache.invalidate(&3).await; // absent: an invalidation call, no eviction
    cache.run_pending_tasks().await;
    let metrics = cache.metrics();
    assert_eq!(metrics.inserts, 3);
    assert_eq!(metrics.updates, 1);
    assert_eq!(metrics.evictions.replaced, 1);
    assert_eq!(metrics.evictions.explicit, 1);
    assert_eq!(metrics.invalidations, 2);
    assert_eq!(metrics.evictions.size + metrics.evictions.expired, 0);
    assert_eq!(metrics.entries, 1);
}

#[tokio::test]
async fn invalidate_all_counts_every_removed_entry() {
    let cache = small_cache();
    for key in 0..10 {
        cache.insert(key, key.to_string()).await.expect("fits");
    }
    cache.invalidate_all().await;
    cache.run_pending_tasks().await;
    let metrics = cache.metrics();
    assert_eq!(metrics.evictions.explicit, 10);
    assert_eq!(metrics.entries, 0);
}

#[tokio::test]
async fn size_evictions_are_counted() {
    let cache = small_cache();
    for key in 0..5_000 {
        cache.insert(key, String::new()).await.expect("fits");
    }
    cache.run_pending_tasks().await;
    let metrics = cache.metrics();
    assert!(metrics.entries <= 1_000);
    // Every insert either stayed or was evicted (or refused at admission) for size.
    assert_eq!(metrics.evictions.size, 5_000 - metrics.entries);
    assert!(metrics.memory_utilization <= 1.0);
}

#[tokio::test]
async fn expired_entries_are_counted() {
    let cache: Cache<u64, String> = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 512)
        .ttl(Duration::from_millis(100))
        .build()
        .expect("valid settings");
    for key in 0..20 {
        cache.insert(key, "v".into()).await.expect("fits");
    }
    let all_expired = eventually(Duration::from_secs(10), async || {
        cache.run_pending_tasks().await;
        cache.metrics().evictions.expired == 20
    })
    .await;
    assert!(all_expired, "expired: {:?}", cache.metrics().evictions);
    assert_eq!(cache.metrics().entries, 0);
}

#[tokio::test]
async fn a_hot_key_still_expires_at_its_ttl() {
    let ttl = Duration::from_millis(300);
    let cache: Cache<u64, String> = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 512)
        .ttl(ttl)
        .build()
        .expect("valid settings");
    cache.insert(1, "hot".into()).await.expect("fits");
    let written = Instant::now();
    // Read the key continuously; reads must not extend a TTL counted from the write.
    let mut gone_after = None;
    while written.elapsed() < ttl + Duration::from_secs(10) {
        if cache.get(&1).await.is_none() {
            gone_after = Some(written.elapsed());
            break;
        }
        tokio::task::yield_now().await;
    }
    let gone_after = gone_after.expect("the hot key expired despite continuous reads");
    // moka reads a coarse clock, so allow it to see the deadline a few milliseconds early.
    assert!(
        gone_after >= ttl - Duration::from_millis(50),
        "expired long before its TTL: {gone_after:?}"
    );
}

#[tokio::test]
async fn time_to_idle_expires_unread_entries() {
    let cache: Cache<u64, String> = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 512)
        .time_to_idle(Duration::from_millis(100))
        .build()
        .expect("valid settings");
    cache.insert(1, "idle".into()).await.expect("fits");
    // `contains_key` does not count as a read, so the entry stays idle while we poll.
    let expired = eventually(Duration::from_secs(10), async || !cache.contains_key(&1)).await;
    assert!(expired);
    assert_eq!(cache.get(&1).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_task_removes_expired_entries_and_stops_with_the_cache() {
    let runtime = tokio::runtime::Handle::current();
    let tasks_before = runtime.metrics().num_alive_tasks();
    let cache: Cache<u64, String> = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 512)
        .ttl(Duration::from_millis(50))
        .cleanup_interval(Duration::from_millis(50))
        .build()
        .expect("valid settings");
    assert_eq!(runtime.metrics().num_alive_tasks(), tasks_before + 1);
    for key in 0..50 {
        cache.insert(key, "v".into()).await.expect("fits");
    }
    // Nobody touches the cache: only the cleanup task can remove the entries.
    let cleaned = eventually(Duration::from_secs(10), async || {
        let metrics = cache.metrics();
        metrics.evictions.expired == 50 && metrics.entries == 0
    })
    .await;
    assert!(cleaned, "{:?}", cache.metrics().evictions);
    drop(cache);
    let stopped = eventually(Duration::from_secs(10), async || {
        runtime.metrics().num_alive_tasks() == tasks_before
    })
    .await;
    assert!(stopped, "the cleanup task outlived its cache");
}

#[test]
fn cleanup_without_a_runtime_is_an_error() {
    let built = Cache::<u64, String>::builder()
        .cleanup_interval(Duration::from_secs(1))
        .build();
    assert!(matches!(built, Err(resync_cache_core::Error::NoRuntime)));
}
