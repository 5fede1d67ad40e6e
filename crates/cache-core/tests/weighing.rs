//! How moka weighs the entries: counted (no weigher, bare moka's admission) while every entry
//! weighs the per-entry floor, in bytes from the first write heavier than that; both bounds
//! hold throughout, and the entries dropped by the move count as size evictions.

use std::time::Duration;

use resync_cache_core::Cache;

const MAX_ENTRIES: u64 = 1_000;
/// A floor of 512 bytes: a `u64` key with a `String` of up to 160 bytes weighs less.
const MAX_MEMORY: u64 = MAX_ENTRIES * 512;

/// Without (`false`) or with (`true`) expiration, i.e. derived counts or moka's listener.
const MODES: [bool; 2] = [false, true];

fn cache(expiring: bool) -> Cache<u64, String> {
    let builder = Cache::builder()
        .max_entries(MAX_ENTRIES)
        .max_memory_bytes(MAX_MEMORY);
    // Far longer than the test: nothing expires, but the eviction listener counts causes.
    let builder = if expiring {
        builder.ttl(Duration::from_secs(3_600))
    } else {
        builder
    };
    builder.build().expect("valid settings")
}

fn small() -> String {
    "s".repeat(16)
}

fn heavy() -> String {
    "h".repeat(2_000)
}

#[tokio::test]
async fn entries_at_the_floor_are_counted_and_both_bounds_hold() {
    for expiring in MODES {
        let cache = cache(expiring);
        assert!(!cache.weighs_bytes(), "a new cache counts entries");
        for key in 0..5_000 {
            cache.insert(key, small()).await.expect("fits");
        }
        let metrics = cache.settled_metrics().await;
        assert!(!cache.weighs_bytes(), "every entry weighed the floor");
        assert!(metrics.entries <= MAX_ENTRIES, "{}", metrics.entries);
        assert!(metrics.entries > MAX_ENTRIES / 2, "{}", metrics.entries);
        assert_eq!(metrics.weighted_bytes, metrics.entries * 512);
        assert!(metrics.weighted_bytes <= MAX_MEMORY);
        assert_eq!(metrics.evictions.size, 5_000 - metrics.entries);
    }
}

#[tokio::test]
async fn the_first_heavier_write_moves_the_cache_to_weighing_bytes() {
    for expiring in MODES {
        let cache = cache(expiring);
        for key in 0..500 {
            cache.insert(key, small()).await.expect("fits");
        }
        cache.run_pending_tasks().await;
        assert_eq!(cache.entry_count(), 500);

        cache.insert(10_000, heavy()).await.expect("fits");
        assert!(cache.weighs_bytes());
        let metrics = cache.settled_metrics().await;
        // The entry-weighed moka's entries were dropped (moka cannot re-weigh them), counted
        // as size evictions; the heavy entry is cached in the byte-weighed one.
        assert_eq!(metrics.entries, 1, "expiring {expiring}");
        assert_eq!(metrics.evictions.size, 500, "expiring {expiring}");
        assert_eq!(metrics.evictions.explicit, 0, "expiring {expiring}");
        assert_eq!(cache.get(&10_000).await, Some(heavy()));
        assert_eq!(cache.get(&1).await, None);

        // From now on entries weigh their bytes: the memory bound keeps fewer heavy entries
        // than the entry bound would, and small ones still fill up to the entry bound.
        for key in 0..2_000 {
            cache.insert(20_000 + key, heavy()).await.expect("fits");
        }
        let metrics = cache.settled_metrics().await;
        assert!(
            metrics.weighted_bytes <= MAX_MEMORY,
            "{}",
            metrics.weighted_bytes
        );
        assert!(metrics.entries < MAX_ENTRIES / 2, "{}", metrics.entries);
        for key in 0..5_000 {
            cache.insert(30_000 + key, small()).await.expect("fits");
        }
        let metrics = cache.settled_metrics().await;
        assert!(
            metrics.weighted_bytes <= MAX_MEMORY,
            "{}",
            metrics.weighted_bytes
        );
        assert!(metrics.entries <= MAX_ENTRIES, "{}", metrics.entries);
        assert_eq!(
            metrics.inserts,
            metrics.updates + metrics.evictions.size + metrics.evictions.explicit + metrics.entries,
            "expiring {expiring}: {:?}, entries {}",
            metrics.evictions,
            metrics.entries
        );
    }
}

#[tokio::test]
async fn a_heavier_loaded_value_is_stored_once_the_cache_weighs_bytes() {
    for expiring in MODES {
        let cache = cache(expiring);
        cache.insert(1, small()).await.expect("fits");
        let loaded = cache.get_with(2, async { heavy() }).await;
        assert_eq!(loaded, heavy());
        assert!(cache.weighs_bytes());
        assert_eq!(
            cache.get(&2).await,
            Some(heavy()),
            "the loaded value is cached"
        );
        let loaded_again = cache.get_with(2, async { unreachable!("cached") }).await;
        assert_eq!(loaded_again, heavy());
        let metrics = cache.settled_metrics().await;
        assert_eq!(metrics.inserts, 2);
        assert_eq!(metrics.loads_ok, 1);
        assert_eq!((metrics.hits, metrics.misses), (2, 1));
        assert_eq!(metrics.entries, 1);
        assert_eq!(
            metrics.evictions.size, 1,
            "the small entry, dropped by the move"
        );
    }
}

#[tokio::test]
async fn a_cache_whose_every_entry_outweighs_the_floor_weighs_bytes_from_the_start() {
    // `u64` keys and `String` values weigh at least 8 + 32 + 320 bytes: above a floor of 100.
    let cache: Cache<u64, String> = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(100_000)
        .build()
        .expect("valid settings");
    assert!(cache.weighs_bytes());
    // A custom weigher could return anything: the cache starts counting entries.
    let custom: Cache<u64, String> = Cache::builder()
        .max_entries(1_000)
        .max_memory_bytes(100_000)
        .build_with_weigher(|_key: &u64, value: &String| value.len() as u64)
        .expect("valid settings");
    assert!(!custom.weighs_bytes());
    custom.insert(1, "x".repeat(50)).await.expect("fits");
    assert!(!custom.weighs_bytes(), "50 bytes weigh the floor of 100");
    custom.insert(2, "x".repeat(150)).await.expect("fits");
    assert!(custom.weighs_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_the_move_leave_both_bounds_and_every_count_intact() {
    const WRITERS: u64 = 4;
    const KEYS_PER_WRITER: u64 = 3_000;
    for expiring in MODES {
        let cache = cache(expiring);
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    for i in 0..KEYS_PER_WRITER {
                        let key = writer * KEYS_PER_WRITER + i;
                        // One writer turns heavy a third of the way in; the others stay small.
                        let value = if writer == 0 && i >= KEYS_PER_WRITER / 3 {
                            heavy()
                        } else {
                            small()
                        };
                        if i % 2 == 0 {
                            cache.insert(key, value).await.expect("fits");
                        } else {
                            let _ = cache.get_with(key, async move { value }).await;
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer panicked");
        }
        assert!(cache.weighs_bytes());
        let metrics = cache.settled_metrics().await;
        assert!(
            metrics.weighted_bytes <= MAX_MEMORY,
            "{}",
            metrics.weighted_bytes
        );
        assert!(metrics.entries <= MAX_ENTRIES, "{}", metrics.entries);
        assert_eq!(metrics.inserts, WRITERS * KEYS_PER_WRITER);
        assert_eq!(
            metrics.inserts,
            metrics.updates + metrics.evictions.size + metrics.evictions.explicit + metrics.entries,
            "expiring {expiring}: {:?}, entries {}",
            metrics.evictions,
            metrics.entries
        );
    }
}
