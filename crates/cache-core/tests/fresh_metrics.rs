//! A plain `metrics()` is true when read: after heavy eviction, without the caller running
//! maintenance, the derived size evictions and the entry count are within 5 % of what
//! `settled_metrics()` reports, and never above it.
//!
//! The trace is the issue's: Zipf 0.99 over 1 000 000 keys, a cache of 100 000 entries,
//! get then insert on a miss, two tasks, 128-byte `Bytes` values — scaled from 2 × 2 000 000
//! to 2 × 1 000 000 operations to keep the test at a few seconds, which still evicts more than
//! three times the capacity. (On the full trace: 744 817 size evictions read plain against
//! 747 121 settled, both with 99 959 entries.)

mod support;

use bytes::Bytes;
use resync_cache_core::Cache;
use support::zipf::Zipf;

const KEYS: usize = 1_000_000;
const MAX_ENTRIES: u64 = 100_000;
const TASKS: u64 = 2;
const OPS_PER_TASK: usize = 1_000_000;
const TOLERANCE: f64 = 0.05;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_metrics_keep_up_with_moka_after_heavy_eviction() {
    let zipf = Zipf::new(KEYS, 0.99);
    let traces: Vec<Vec<u64>> = (0..TASKS)
        .map(|task| zipf.trace(OPS_PER_TASK, 0x5eed + task))
        .collect();
    let cache: Cache<u64, Bytes> = Cache::builder()
        .name("fresh")
        .max_entries(MAX_ENTRIES)
        .build()
        .expect("valid settings");
    let value = Bytes::from(vec![0x5a; 128]);
    let tasks: Vec<_> = traces
        .into_iter()
        .map(|trace| {
            let cache = cache.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for key in trace {
                    if cache.get(&key).await.is_none() {
                        cache.insert(key, value.clone()).await.expect("fits");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("replay task panicked");
    }

    let plain = cache.metrics();
    let settled = cache.settled_metrics().await;
    println!(
        "plain: size evictions {} entries {}; settled: size evictions {} entries {}; inserts {}",
        plain.evictions.size,
        plain.entries,
        settled.evictions.size,
        settled.entries,
        settled.inserts,
    );
    assert!(
        settled.evictions.size > 3 * MAX_ENTRIES,
        "the trace evicts far more than the capacity: {}",
        settled.evictions.size
    );
    assert!(
        plain.evictions.size <= settled.evictions.size,
        "a plain snapshot never runs ahead: {} > {}",
        plain.evictions.size,
        settled.evictions.size
    );
    let within = |plain: u64, settled: u64| {
        (settled as f64 - plain as f64).abs() <= TOLERANCE * settled as f64
    };
    assert!(
        within(plain.evictions.size, settled.evictions.size),
        "size evictions: plain {} vs settled {}",
        plain.evictions.size,
        settled.evictions.size
    );
    assert!(
        within(plain.entries, settled.entries),
        "entries: plain {} vs settled {}",
        plain.entries,
        settled.entries
    );
    assert_eq!(
        settled.inserts,
        settled.updates + settled.evictions.size + settled.entries,
        "at rest every insert replaced a value (both tasks missed one key), is cached, or was evicted for size"
    );
}
