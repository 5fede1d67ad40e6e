//! Advice from real traffic: insufficient data, grow, low hit rate, TTL too short.

mod support;

use std::time::Duration;

use resync_cache_core::{Cache, GROW_MIN_GAIN, MIN_REQUESTS};
use resync_perf_core::{SettingValue, Severity};
use support::zipf::Zipf;

fn codes(cache: &Cache<u64, u64>) -> Vec<String> {
    cache
        .recommendations()
        .into_iter()
        .map(|advice| advice.code)
        .collect()
}

#[tokio::test]
async fn an_idle_cache_says_insufficient_data() {
    let cache: Cache<u64, u64> = Cache::builder()
        .name("idle")
        .build()
        .expect("valid settings");
    let advice = cache.recommendations();
    assert_eq!(advice.len(), 1);
    assert_eq!(advice[0].code, "cache.insufficient_data");
    assert_eq!(advice[0].component, "cache:idle");
    assert_eq!(advice[0].severity, Severity::Info);
    assert_eq!(cache.metrics().hit_rate, None);
    // A few misses are still not enough to call the hit rate low.
    for key in 0..MIN_REQUESTS / 2 {
        let _ = cache.get(&key).await;
    }
    assert_eq!(codes(&cache), ["cache.insufficient_data"]);
}

#[tokio::test]
async fn a_small_cache_under_zipf_load_is_told_to_grow() {
    let cache: Cache<u64, u64> = Cache::builder()
        .name("small")
        .max_entries(2_000)
        .max_memory_bytes(2_000 * 1024)
        .build()
        .expect("valid settings");
    for key in Zipf::new(50_000, 0.9).trace(300_000, 7) {
        if cache.get(&key).await.is_none() {
            cache.insert(key, key).await.expect("fits");
        }
    }
    cache.run_pending_tasks().await;
    let advice = cache.recommendations();
    // u64 entries weigh less than the 1 KiB floor (2 000 KiB / 2 000 entries): the entry
    // bound limits this cache, and doubling the memory would only double the floor.
    let grow = advice
        .iter()
        .find(|advice| advice.code == "cache.grow_entries")
        .unwrap_or_else(|| panic!("no grow advice in {advice:?}"));
    let change = grow.change.as_ref().expect("a settings change");
    assert_eq!(change.key, "ASYNC_CACHE_MAX_ENTRIES");
    assert_eq!(change.current, SettingValue::from(2_000u64));
    assert_eq!(change.suggested, SettingValue::from(4_000u64));
    assert!(
        !advice
            .iter()
            .any(|advice| advice.code == "cache.grow_memory"),
        "memory growth is useless at the floor: {advice:?}"
    );
    let hit_rate = grow.evidence["hit_rate"];
    assert!(grow.evidence["predicted_hit_rate_2x"] > hit_rate);
    assert!(!advice
        .iter()
        .any(|advice| advice.code == "cache.insufficient_data"));
}

#[tokio::test]
async fn one_off_keys_give_a_low_hit_rate_that_growing_would_not_fix() {
    let cache: Cache<u64, u64> = Cache::builder()
        .name("scan")
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 1024)
        .build()
        .expect("valid settings");
    for key in 0..20_000u64 {
        if cache.get(&key).await.is_none() {
            cache.insert(key, key).await.expect("fits");
        }
    }
    cache.run_pending_tasks().await;
    let codes = codes(&cache);
    assert!(
        codes.contains(&"cache.low_hit_rate".to_owned()),
        "{codes:?}"
    );
    assert!(
        !codes.contains(&"cache.grow_memory".to_owned())
            && !codes.contains(&"cache.grow_entries".to_owned()),
        "{codes:?}"
    );
}

#[tokio::test]
async fn frequent_expirations_say_the_ttl_is_too_short() {
    let cache: Cache<u64, u64> = Cache::builder()
        .name("short-ttl")
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 1024)
        .ttl(Duration::from_millis(20))
        .build()
        .expect("valid settings");
    // A small working set read again and again: every miss is a reload of an expired value.
    let mut rounds = 0;
    while cache.metrics().evictions.expired < 200 || rounds < 20 {
        for key in 0..50u64 {
            if cache.get(&key).await.is_none() {
                cache.insert(key, key).await.expect("fits");
            }
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
        cache.run_pending_tasks().await;
        assert!(rounds < 2_000, "entries never expired");
    }
    let advice = cache.recommendations();
    let ttl = advice
        .iter()
        .find(|advice| advice.code == "cache.ttl_too_short")
        .unwrap_or_else(|| panic!("no TTL advice in {advice:?}"));
    let change = ttl.change.as_ref().expect("a settings change");
    assert_eq!(change.key, "ASYNC_CACHE_TTL");
    assert!(ttl.evidence["predicted_hit_rate_2x_ttl"] >= ttl.evidence["hit_rate"] + GROW_MIN_GAIN);
}

#[tokio::test]
async fn one_off_keys_that_expire_unread_do_not_blame_the_ttl() {
    let cache: Cache<u64, u64> = Cache::builder()
        .name("one-off-ttl")
        .max_entries(1_000)
        .max_memory_bytes(1_000 * 1024)
        .ttl(Duration::from_millis(20))
        .build()
        .expect("valid settings");
    // Every key is read once, missed, written and left to expire: expirations match misses,
    // but a longer TTL would not turn a single miss into a hit.
    let mut rounds = 0u64;
    while cache.metrics().evictions.expired < 200 || rounds < 30 {
        for key in rounds * 50..(rounds + 1) * 50 {
            if cache.get(&key).await.is_none() {
                cache.insert(key, key).await.expect("fits");
            }
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
        cache.run_pending_tasks().await;
        assert!(rounds < 2_000, "entries never expired");
    }
    let metrics = cache.metrics();
    assert!(metrics.evictions.expired as f64 >= 0.25 * metrics.misses as f64);
    let curve = metrics.curve.as_ref().expect("enough sampled gets");
    assert!(curve.predicted_2x_ttl().is_some());
    let codes = codes(&cache);
    assert!(
        !codes.contains(&"cache.ttl_too_short".to_owned()),
        "{codes:?}"
    );
}
