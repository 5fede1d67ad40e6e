//! Both bounds hold after any sequence of operations and pending maintenance, with and
//! without expiration (with it, moka's eviction listener counts the causes; without it, the
//! cache counts them itself), and the counts account for every write.

use std::time::Duration;

use proptest::prelude::*;
use resync_cache_core::{Cache, Error};

const MAX_ENTRIES: u64 = 40;
const MAX_MEMORY: u64 = 32 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, usize),
    Get(u16),
    GetWith(u16, usize),
    Invalidate(u16),
    InvalidateAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..200, 0usize..40_000).prop_map(|(key, len)| Op::Insert(key, len)),
        3 => (0u16..200).prop_map(Op::Get),
        3 => (0u16..200, 0usize..40_000).prop_map(|(key, len)| Op::GetWith(key, len)),
        1 => (0u16..200).prop_map(Op::Invalidate),
        1 => Just(Op::InvalidateAll),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bounds_hold_after_any_operations(
        ops in prop::collection::vec(op(), 1..300),
        expiring in any::<bool>(),
    ) {
        runtime().block_on(async {
            let builder = Cache::builder()
                .max_entries(MAX_ENTRIES)
                .max_memory_bytes(MAX_MEMORY);
            // A TTL far longer than the test: nothing expires, but the listener is on.
            let builder = if expiring { builder.ttl(Duration::from_secs(3_600)) } else { builder };
            let cache: Cache<u16, Vec<u8>> = builder.build().expect("valid settings");
            for op in &ops {
                match op {
                    Op::Insert(key, len) => {
                        let value = vec![0u8; *len];
                        let weight = cache.weigh(key, &value);
                        // The model: an entry over the memory bound is refused, any other fits.
                        let too_large = weight > MAX_MEMORY;
                        match cache.insert(*key, value).await {
                            Ok(()) => assert!(!too_large, "weight {weight} accepted"),
                            Err(Error::EntryTooLarge { weight: refused, max_memory_bytes }) => {
                                assert!(too_large, "weight {weight} refused");
                                assert_eq!(refused, weight);
                                assert_eq!(max_memory_bytes, MAX_MEMORY);
                            }
                            Err(other) => panic!("unexpected error {other}"),
                        }
                    }
                    Op::Get(key) => {
                        let _ = cache.get(key).await;
                    }
                    Op::GetWith(key, len) => {
                        // The value may be an earlier one (a hit) and may be gone right after
                        // (maintenance triggered by the read can evict it), so only the bounds
                        // below are checked.
                        let value = cache.get_with(*key, async { vec![0u8; *len] }).await;
                        // Only a fresh load can return an oversized value; it is never kept.
                        if cache.weigh(key, &value) > MAX_MEMORY {
                            assert!(!cache.contains_key(key), "oversized value of {} B cached", value.len());
                        }
                    }
                    Op::Invalidate(key) => cache.invalidate(key).await,
                    Op::InvalidateAll => cache.invalidate_all().await,
                }
            }
            cache.run_pending_tasks().await;
            let present = (0u16..200).filter(|key| cache.contains_key(key)).count() as u64;
            prop_assert!(cache.weighted_size() <= MAX_MEMORY, "weighted {}", cache.weighted_size());
            prop_assert!(cache.entry_count() <= MAX_ENTRIES, "entries {}", cache.entry_count());
            prop_assert!(present <= MAX_ENTRIES, "present {present}");
            // Every stored write created an entry or replaced one; every entry created left
            // by a size eviction or an explicit removal, or is still there.
            let metrics = cache.settled_metrics().await;
            let evictions = metrics.evictions;
            prop_assert_eq!(evictions.expired, 0);
            prop_assert_eq!(
                metrics.inserts,
                metrics.updates + evictions.size + evictions.explicit + metrics.entries,
                "{:?}, entries {}", evictions, metrics.entries
            );
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn the_entry_bound_holds_through_the_weight_floor() {
    // Tiny entries: only the floor max_memory / max_entries keeps their number bounded.
    let cache: Cache<u32, u8> = Cache::builder()
        .max_entries(100)
        .max_memory_bytes(1 << 30)
        .build()
        .expect("valid settings");
    assert_eq!(cache.weigh(&1, &1), (1u64 << 30).div_ceil(100));
    for key in 0..5_000 {
        cache.insert(key, 1).await.expect("small entries fit");
    }
    cache.run_pending_tasks().await;
    assert!(
        cache.entry_count() <= 100,
        "entries {}",
        cache.entry_count()
    );
    assert!(cache.entry_count() > 0);
}

#[tokio::test]
async fn an_entry_larger_than_the_memory_bound_is_refused() {
    let cache: Cache<u8, Vec<u8>> = Cache::builder()
        .max_entries(10)
        .max_memory_bytes(10_000)
        .build()
        .expect("valid settings");
    let error = cache
        .insert(1, vec![0u8; 20_000])
        .await
        .expect_err("too large");
    assert!(
        matches!(
            error,
            Error::EntryTooLarge {
                max_memory_bytes: 10_000,
                ..
            }
        ),
        "{error}"
    );
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.metrics().inserts, 0);
}

#[tokio::test]
async fn an_oversized_loaded_value_is_returned_but_not_cached() {
    const BOUND: u64 = 4_096;
    let cache: Cache<u8, Vec<u8>> = Cache::builder()
        .max_entries(4)
        .max_memory_bytes(BOUND)
        .build()
        .expect("valid settings");
    cache.insert(1, vec![1u8; 100]).await.expect("fits");
    let big = vec![7u8; 2 * BOUND as usize];
    assert!(cache.weigh(&2, &big) > BOUND);
    let loaded = cache.get_with(2, async { big.clone() }).await;
    assert_eq!(loaded, big, "the caller gets the loaded value");
    assert!(
        !cache.contains_key(&2),
        "an oversized value is never stored"
    );
    let retried: Result<_, std::sync::Arc<&str>> =
        cache.try_get_with(2, async { Ok(big.clone()) }).await;
    assert_eq!(retried.expect("the load succeeded"), big);
    cache.run_pending_tasks().await;
    assert!(!cache.contains_key(&2));
    assert!(cache.contains_key(&1), "the small entry was not pushed out");
    assert!(cache.weighted_size() <= BOUND);
    let metrics = cache.metrics();
    assert_eq!(metrics.loads_uncached, 2);
    assert_eq!(metrics.loads_ok, 2);
    assert_eq!(
        metrics.inserts, 1,
        "only the explicit insert stored a value"
    );
    assert_eq!(metrics.evictions.size, 0);
}
