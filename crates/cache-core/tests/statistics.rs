//! Counters are exact under concurrency; loads are coalesced and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resync_cache_core::Cache;

fn cache(name: &str) -> Cache<u64, u64> {
    Cache::builder()
        .name(name)
        .max_entries(10_000)
        .max_memory_bytes(10_000 * 512)
        .stat_shards(4)
        .build()
        .expect("valid settings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hits_and_misses_add_up_to_gets_under_concurrency() {
    let cache = cache("concurrent");
    for key in 0..500 {
        cache.insert(key, key).await.expect("fits");
    }
    const TASKS: u64 = 32;
    const GETS: u64 = 2_000;
    let expected_hits = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let cache = cache.clone();
            let expected_hits = Arc::clone(&expected_hits);
            tokio::spawn(async move {
                for i in 0..GETS {
                    // Keys 0..1000: the first half is cached, the second is not.
                    if cache.get(&((task * 31 + i) % 1_000)).await.is_some() {
                        expected_hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task panicked");
    }
    let metrics = cache.metrics();
    assert_eq!(metrics.hits + metrics.misses, TASKS * GETS);
    assert_eq!(metrics.hits, expected_hits.load(Ordering::Relaxed));
    assert_eq!(metrics.inserts, 500);
    let hit_rate = metrics.hit_rate.expect("requests were made");
    assert!((0.0..=1.0).contains(&hit_rate));
    assert!(
        metrics.get_latency.count > 0,
        "one get in 64 per thread is timed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_of_one_key_run_one_load() {
    const CALLERS: u64 = 100;
    let cache = cache("coalescing");
    let loads = Arc::new(AtomicU64::new(0));
    let called = Arc::new(AtomicU64::new(0));
    let started = Arc::new(tokio::sync::Barrier::new(CALLERS as usize));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            let called = Arc::clone(&called);
            let load_sees_called = Arc::clone(&called);
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.wait().await;
                // The call is made (and its start taken) here, before it is awaited.
                let call = cache.get_with(7, async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Hold the load open until every caller has made its call, so all of
                    // them must get this one load's value rather than an earlier one.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while load_sees_called.load(Ordering::SeqCst) < CALLERS {
                        assert!(Instant::now() < deadline, "callers never all called");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    42
                });
                called.fetch_add(1, Ordering::SeqCst);
                call.await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.expect("caller panicked"), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let metrics = cache.metrics();
    assert_eq!(metrics.misses, CALLERS, "every caller missed");
    assert_eq!(metrics.hits, 0);
    assert_eq!(metrics.loads_ok, 1);
    assert_eq!(metrics.inserts, 1);
    assert_eq!(metrics.load_time.count, 1);
}

#[tokio::test]
async fn a_failed_load_is_counted_and_not_cached() {
    let cache = cache("failing");
    let failed: Result<u64, _> = cache
        .try_get_with(1, async { Err::<u64, _>("backend down") })
        .await;
    assert_eq!(*failed.expect_err("the load failed"), "backend down");
    assert!(!cache.contains_key(&1));
    let loaded = cache.try_get_with(1, async { Ok::<_, &str>(10) }).await;
    assert_eq!(loaded.expect("the second load succeeds"), 10);
    let cached = cache.try_get_with(1, async { Ok::<_, &str>(11) }).await;
    assert_eq!(cached.expect("cached"), 10);
    let metrics = cache.metrics();
    assert_eq!((metrics.loads_ok, metrics.loads_failed), (1, 1));
    assert_eq!((metrics.hits, metrics.misses), (1, 2));
    assert_eq!(metrics.load_time.count, 2);
}

#[tokio::test]
async fn windows_come_from_two_snapshots() {
    use resync_perf_core::Delta;
    let cache = cache("windowed");
    cache.insert(1, 1).await.expect("fits");
    for _ in 0..10 {
        let _ = cache.get(&1).await;
    }
    let older = cache.metrics();
    for _ in 0..5 {
        let _ = cache.get(&2).await;
    }
    let window = cache.settled_metrics().await.delta(&older);
    assert_eq!((window.hits, window.misses, window.inserts), (0, 5, 0));
    assert_eq!(window.hit_rate, Some(0.0));
    assert_eq!(window.entries, 1, "gauges keep the newer value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_through_hits_and_misses_add_up_under_concurrency() {
    let cache = cache("read-through");
    const TASKS: u64 = 16;
    const CALLS: u64 = 2_000;
    let loads = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            tokio::spawn(async move {
                for i in 0..CALLS {
                    let key = (task * 17 + i * 7) % 3_000;
                    let loads = Arc::clone(&loads);
                    let value = cache
                        .get_with(key, async move {
                            loads.fetch_add(1, Ordering::Relaxed);
                            key * 2
                        })
                        .await;
                    assert_eq!(value, key * 2);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task panicked");
    }
    let metrics = cache.metrics();
    let loads = loads.load(Ordering::Relaxed);
    assert_eq!(metrics.hits + metrics.misses, TASKS * CALLS);
    assert_eq!(metrics.loads_ok, loads);
    assert_eq!(metrics.inserts, loads);
    // Every load is a miss of its caller; callers that waited for a load miss too.
    assert!(metrics.misses >= loads, "{metrics:?}");
    assert!(metrics.hits > 0, "keys repeat, so some calls hit");
}

#[tokio::test]
async fn a_read_through_hits_only_values_stored_before_the_call() {
    let cache = cache("stamps");
    cache.insert(1, 10).await.expect("fits");
    // The call is made while key 2 is absent; the value is stored before it is awaited.
    let early = cache.get_with(2, async { 99 });
    cache.insert(2, 20).await.expect("fits");
    assert_eq!(early.await, 20, "the stored value is returned, not loaded");
    assert_eq!(cache.get_with(1, async { 11 }).await, 10);
    let metrics = cache.metrics();
    assert_eq!(
        (metrics.hits, metrics.misses),
        (1, 1),
        "a value stored after the call was made is a miss; one stored before, a hit"
    );
    assert_eq!(metrics.loads_ok, 0);
}

#[tokio::test]
async fn a_caller_waiting_on_a_failed_load_shares_its_error_and_misses() {
    let cache = cache("failed-waiters");
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (started, load_started) = tokio::sync::oneshot::channel::<()>();
    let loader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .try_get_with(5, async move {
                    started.send(()).expect("the test waits for the start");
                    released.await.expect("the test releases the load");
                    Err::<u64, _>("backend down")
                })
                .await
        })
    };
    // The second call is made while the first one's load runs.
    tokio::time::timeout(Duration::from_secs(30), load_started)
        .await
        .expect("the load starts within 30 s")
        .expect("the loader signals its start");
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.try_get_with(5, async { Ok::<u64, &str>(99) }).await })
    };
    tokio::task::yield_now().await;
    release.send(()).expect("the load is waiting");
    let first = loader.await.expect("loader panicked");
    assert_eq!(*first.expect_err("the load failed"), "backend down");
    let second = waiter.await.expect("waiter panicked");
    let metrics = cache.metrics();
    match second {
        // It waited for the failed load and shares its error: one load ran.
        Err(error) => {
            assert_eq!(*error, "backend down");
            assert_eq!((metrics.loads_ok, metrics.loads_failed), (0, 1));
            assert_eq!(metrics.inserts, 0);
        }
        // It came after the failure and loaded itself.
        Ok(value) => {
            assert_eq!(value, 99);
            assert_eq!((metrics.loads_ok, metrics.loads_failed), (1, 1));
            assert_eq!(metrics.inserts, 1);
        }
    }
    assert_eq!(
        (metrics.hits, metrics.misses),
        (0, 2),
        "neither call found a value"
    );
}

#[tokio::test]
async fn get_if_counts_an_accepted_value_as_a_hit_and_leaves_the_miss_to_the_load() {
    let cache = cache("judged");
    cache.insert(1, 10).await.expect("fits");
    cache.insert(2, 20).await.expect("fits");

    // Accepted: one hit.
    assert_eq!(cache.get_if(&1, |value| *value == 10).await, Some(Ok(10)));
    // Refused, and then loaded anew: the load's miss is the only count.
    assert_eq!(cache.get_if(&2, |_| false).await, Some(Err(20)));
    cache.invalidate(&2).await;
    assert_eq!(cache.get_with(2, async { 21 }).await, 21);
    // Missing, then loaded: again one miss.
    assert_eq!(cache.get_if(&3, |_| true).await, None);
    assert_eq!(cache.get_with(3, async { 30 }).await, 30);

    let metrics = cache.metrics();
    assert_eq!((metrics.hits, metrics.misses), (1, 2));
}
