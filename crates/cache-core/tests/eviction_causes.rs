//! Each eviction cause is counted right, TTL counts from the write, cleanup runs alone.
//!
//! The cause tests run in both modes: without expiration (the cache counts replacements and
//! removals itself and derives size evictions) and with a TTL (moka's eviction listener
//! reports each removal's cause; the TTL here is far longer than any test, so nothing
//! expires unless a test means it to).

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

/// The two ways causes are counted.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// No TTL, TTI or per-entry expiry: no eviction listener.
    NoExpiration,
    /// A (long) TTL: moka's eviction listener counts the causes.
    Expiring,
}

const MODES: [Mode; 2] = [Mode::NoExpiration, Mode::Expiring];

fn small_cache(mode: Mode) -> Cache<u64, String> {
    let builder = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 512);
    match mode {
        Mode::NoExpiration => builder,
        Mode::Expiring => builder.ttl(Duration::from_secs(3_600)),
    }
    .build()
    .expect("valid settings")
}

#[tokio::test]
async fn replacement_and_invalidation_are_counted() {
    for mode in MODES {
        replacement_and_invalidation(mode).await;
    }
}

async fn replacement_and_invalidation(mode: Mode) {
    let cache = small_cache(mode);
    cache.insert(1, "a".into()).await.expect("fits");
    cache.insert(1, "b".into()).await.expect("fits");
    cache.insert(2, "c".into()).await.expect("fits");
    cache.invalidate(&2).await;
    cache.invalidate(&3).await; // absent: an invalidation call, no eviction
    cache.run_pending_tasks().await;
    let metrics = cache.metrics();
    assert_eq!(metrics.inserts, 3, "{mode:?}");
    assert_eq!(metrics.updates, 1, "{mode:?}");
    assert_eq!(metrics.evictions.replaced, 1, "{mode:?}");
    assert_eq!(metrics.evictions.explicit, 1, "{mode:?}");
    assert_eq!(metrics.invalidations, 2, "{mode:?}");
    assert_eq!(
        metrics.evictions.size + metrics.evictions.expired,
        0,
        "{mode:?}"
    );
    assert_eq!(metrics.entries, 1, "{mode:?}");
}

#[tokio::test]
async fn remove_counts_an_explicit_eviction_only_for_a_present_key() {
    for mode in MODES {
        let cache = small_cache(mode);
        cache.insert(1, "a".into()).await.expect("fits");
        assert_eq!(cache.remove(&1).await.as_deref(), Some("a"), "{mode:?}");
        assert_eq!(cache.remove(&1).await, None, "{mode:?}");
        assert_eq!(cache.remove(&2).await, None, "{mode:?}");
        cache.invalidate(&1).await;
        let metrics = cache.settled_metrics().await;
        assert_eq!(metrics.invalidations, 4, "{mode:?}");
        assert_eq!(metrics.evictions.explicit, 1, "{mode:?}");
        assert_eq!(metrics.evictions.total(), 1, "{mode:?}");
        assert_eq!(metrics.entries, 0, "{mode:?}");
    }
}

#[tokio::test]
async fn a_loaded_value_replaced_by_an_insert_is_a_replacement() {
    for mode in MODES {
        let cache = small_cache(mode);
        assert_eq!(cache.get_with(1, async { "loaded".into() }).await, "loaded");
        // A hit: nothing is written.
        assert_eq!(cache.get_with(1, async { "again".into() }).await, "loaded");
        cache.insert(1, "written".into()).await.expect("fits");
        let metrics = cache.settled_metrics().await;
        assert_eq!((metrics.inserts, metrics.updates), (2, 1), "{mode:?}");
        assert_eq!(metrics.evictions.replaced, 1, "{mode:?}");
        assert_eq!(metrics.evictions.total(), 1, "{mode:?}");
        assert_eq!(metrics.entries, 1, "{mode:?}");
    }
}

#[tokio::test]
async fn invalidate_all_counts_every_removed_entry() {
    for mode in MODES {
        let cache = small_cache(mode);
        for key in 0..10 {
            cache.insert(key, key.to_string()).await.expect("fits");
        }
        cache.invalidate_all().await;
        cache.run_pending_tasks().await;
        let metrics = cache.metrics();
        assert_eq!(metrics.evictions.explicit, 10, "{mode:?}");
        assert_eq!(metrics.entries, 0, "{mode:?}");
        assert_eq!(metrics.invalidations, 1, "{mode:?}");
        // Keys written again after the call are new entries, not replacements.
        for key in 0..3 {
            cache.insert(key, "again".into()).await.expect("fits");
        }
        let metrics = cache.settled_metrics().await;
        assert_eq!(metrics.entries, 3, "{mode:?}");
        assert_eq!(metrics.evictions.replaced, 0, "{mode:?}");
        assert_eq!(metrics.evictions.explicit, 10, "{mode:?}");
        assert_eq!(metrics.evictions.size, 0, "{mode:?}");
    }
}

#[tokio::test]
async fn size_evictions_are_counted() {
    for mode in MODES {
        let cache = small_cache(mode);
        for key in 0..5_000 {
            cache.insert(key, String::new()).await.expect("fits");
        }
        cache.run_pending_tasks().await;
        let metrics = cache.metrics();
        assert!(metrics.entries <= 1_000, "{mode:?}");
        assert!(metrics.entries > 0, "{mode:?}");
        // Every insert either stayed or was evicted (or refused at admission) for size.
        assert_eq!(metrics.evictions.size, 5_000 - metrics.entries, "{mode:?}");
        assert_eq!(
            metrics.evictions.total(),
            metrics.evictions.size,
            "{mode:?}"
        );
        assert!(metrics.memory_utilization <= 1.0, "{mode:?}");
    }
}

#[tokio::test]
async fn loads_count_as_new_entries_for_size_evictions() {
    for mode in MODES {
        let cache = small_cache(mode);
        for key in 0..3_000 {
            let _ = cache.get_with(key, async move { key.to_string() }).await;
        }
        let metrics = cache.settled_metrics().await;
        assert_eq!(metrics.inserts, 3_000, "{mode:?}");
        assert!(metrics.entries <= 1_000, "{mode:?}");
        assert_eq!(metrics.evictions.size, 3_000 - metrics.entries, "{mode:?}");
    }
}

#[tokio::test]
async fn the_size_eviction_count_never_decreases_and_never_runs_ahead() {
    let cache = small_cache(Mode::NoExpiration);
    for key in 0..3_000 {
        cache.insert(key, String::new()).await.expect("fits");
    }
    // Before maintenance, writes moka has not applied are not taken for evictions.
    let unsettled = cache.metrics().evictions.size;
    let settled = cache.settled_metrics().await;
    assert!(unsettled <= settled.evictions.size);
    assert_eq!(settled.evictions.size, 3_000 - settled.entries);
    let mut last = settled.evictions.size;
    // Removals counted before maintenance applies them would lower a plain difference
    // (created − explicit − entries); the reported figure holds instead.
    let present: Vec<u64> = (0..3_000).filter(|key| cache.contains_key(key)).collect();
    assert!(present.len() >= 20);
    for key in &present[..20] {
        cache.invalidate(key).await;
        let size = cache.metrics().evictions.size;
        assert!(
            size >= last,
            "size evictions went from {last} down to {size}"
        );
        last = size;
    }
    // More writes and removals, interleaved with snapshots: never lower.
    for key in 3_000..6_000 {
        cache.insert(key, String::new()).await.expect("fits");
        if key % 7 == 0 {
            cache.invalidate(&(key - 3)).await;
        }
        if key % 100 == 0 {
            let size = cache.metrics().evictions.size;
            assert!(
                size >= last,
                "size evictions went from {last} down to {size}"
            );
            last = size;
        }
    }
    let settled = cache.settled_metrics().await;
    assert!(settled.evictions.size >= last);
    assert_eq!(
        settled.evictions.size + settled.evictions.explicit + settled.entries,
        6_000,
        "{:?}",
        settled.evictions
    );
    assert_eq!(settled.evictions.replaced + settled.evictions.expired, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_is_accounted_for_under_concurrency() {
    const TASKS: u64 = 8;
    const KEYS: u64 = 1_000;
    for mode in MODES {
        let cache = small_cache(mode);
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    // Each task owns its keys, so a key never races itself.
                    for round in 0..2 {
                        for i in 0..KEYS {
                            let key = task * KEYS + i;
                            cache.insert(key, round.to_string()).await.expect("fits");
                            if round == 1 && i % 10 == 0 {
                                cache.invalidate(&key).await;
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task panicked");
        }
        let metrics = cache.settled_metrics().await;
        let evictions = metrics.evictions;
        assert_eq!(metrics.inserts, 2 * TASKS * KEYS, "{mode:?}");
        assert_eq!(evictions.expired, 0, "{mode:?}");
        assert!(evictions.size > 0, "{mode:?}: 8 000 keys in 1 000 entries");
        assert!(evictions.explicit <= TASKS * KEYS / 10, "{mode:?}");
        assert_eq!(
            metrics.inserts,
            metrics.updates + evictions.size + evictions.explicit + metrics.entries,
            "{mode:?}: {evictions:?}, entries {}",
            metrics.entries
        );
    }
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

#[test]
fn the_cleanup_task_removes_expired_entries_and_stops_with_the_cache() {
    // A runtime of its own, in which nothing but the cache spawns: its count of alive tasks
    // is the cleanup task's presence, not a difference from whatever else a shared runtime
    // runs. Each count is waited for (bounded), since a finished task leaves the count when
    // a worker releases it, not when it returns.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let alive = || runtime.metrics().num_alive_tasks();
    runtime.block_on(async {
        assert_eq!(alive(), 0, "nothing runs before the cache");
        let cache: Cache<u64, String> = Cache::builder()
            .max_entries(1_000)
            .max_memory_bytes(1_000 * 512)
            .ttl(Duration::from_millis(50))
            .cleanup_interval(Duration::from_millis(50))
            .build()
            .expect("valid settings");
        let started = eventually(Duration::from_secs(10), async || alive() == 1).await;
        assert!(started, "one cleanup task, found {} tasks", alive());
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
        let stopped = eventually(Duration::from_secs(10), async || alive() == 0).await;
        assert!(
            stopped,
            "the cleanup task outlived its cache: {} tasks",
            alive()
        );
    });
}

#[test]
fn cleanup_without_a_runtime_is_an_error() {
    let built = Cache::<u64, String>::builder()
        .cleanup_interval(Duration::from_secs(1))
        .build();
    assert!(matches!(built, Err(resync_cache_core::Error::NoRuntime)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_on_the_same_keys_count_each_create_once() {
    const TASKS: u64 = 8;
    const WRITES: u64 = 500;
    const KEYS: u64 = 4;
    for mode in MODES {
        let cache = small_cache(mode);
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS as usize));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let cache = cache.clone();
                let start = std::sync::Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    for i in 0..WRITES {
                        cache
                            .insert((task + i) % KEYS, "v".into())
                            .await
                            .expect("fits");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task panicked");
        }
        let metrics = cache.settled_metrics().await;
        // Four keys were created, whichever writer got there first; every other write
        // replaced a live value. Nothing was evicted.
        assert_eq!(metrics.entries, KEYS, "{mode:?}");
        assert_eq!(metrics.inserts, TASKS * WRITES, "{mode:?}");
        assert_eq!(metrics.updates, TASKS * WRITES - KEYS, "{mode:?}");
        assert_eq!(
            metrics.evictions.total(),
            metrics.evictions.replaced,
            "{mode:?}: {:?}",
            metrics.evictions
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_racing_writes_and_maintenance_never_report_phantom_size_evictions() {
    race_writers_against_snapshots(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_racing_read_through_loads_never_report_phantom_size_evictions() {
    race_writers_against_snapshots(true).await;
}

/// Writers store (with `insert`, or by loading through `get_with`) and remove keys while a
/// watcher takes snapshots and runs maintenance; no size eviction may ever be reported.
async fn race_writers_against_snapshots(read_through: bool) {
    // Room for every key: any size eviction reported would be a phantom, and it would stick,
    // since the figure never decreases.
    const WRITERS: u64 = 4;
    const KEYS_PER_WRITER: u64 = 5_000;
    let cache: Cache<u64, u64> = Cache::builder()
        .max_entries(100_000)
        .max_memory_bytes(100_000 * 512)
        .build()
        .expect("valid settings");
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for key in 0..KEYS_PER_WRITER {
                    let key = writer * KEYS_PER_WRITER + key;
                    if read_through {
                        assert_eq!(cache.get_with(key, async move { key }).await, key);
                    } else {
                        cache.insert(key, key).await.expect("small entries fit");
                    }
                    if key % 7 == 0 {
                        cache.remove(&key).await;
                    }
                }
            })
        })
        .collect();
    let watcher = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let mut snapshots = 0_u64;
            loop {
                cache.run_pending_tasks().await;
                let settled = cache.settled_metrics().await;
                let plain = cache.metrics();
                assert_eq!(
                    settled.evictions.size, 0,
                    "phantom size evictions (settled)"
                );
                assert_eq!(plain.evictions.size, 0, "phantom size evictions (plain)");
                snapshots += 1;
                if cache.metrics().inserts >= WRITERS * KEYS_PER_WRITER {
                    return snapshots;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for writer in writers {
        writer.await.expect("writer panicked");
    }
    let snapshots = watcher.await.expect("watcher panicked");
    assert!(snapshots > 0);
    let metrics = cache.settled_metrics().await;
    let removed = (0..WRITERS * KEYS_PER_WRITER)
        .filter(|key| key % 7 == 0)
        .count() as u64;
    assert_eq!(metrics.evictions.size, 0);
    assert_eq!(metrics.evictions.explicit, removed);
    assert_eq!(metrics.entries, WRITERS * KEYS_PER_WRITER - removed);
}
