//! `pool_metrics`: the cost of one `MonitoredPool::metrics()` snapshot in a tracker that also
//! holds 10 000 live resources of another kind (tracked files), beside the leak scan the
//! snapshot used to make on every call.
//!
//! - `metrics`: `pool.metrics()` as it is: the pool's leaked figure is one atomic load of its
//!   lease group's count, whatever else the tracker holds.
//! - `tracker_leaks`: `tracker.leaks()` alone, the full scan of every live resource that
//!   `metrics()` ran before.
//! - `metrics_with_leak_scan`: what the old `metrics()` cost: the snapshot plus that scan,
//!   filtered to the pool's kind and label.
//!
//! `cargo bench -p resync-pool-optimizer --bench metrics -- pool_metrics`

#![allow(missing_docs)] // reason: criterion_group! generates an undocumented function.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use resync_pool_optimizer::{MonitoredPool, PoolConfig};
use resync_resource_manager::{ResourceGuard, ResourceTracker};

use common::Trivial;

/// Live resources of another kind in the pool's tracker.
const LIVE_RESOURCES: usize = 10_000;
/// Connections of the pool (each with its lease slot).
const CONNECTIONS: u32 = 16;

fn pool_metrics(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tracker = ResourceTracker::new();
    let files: Vec<ResourceGuard> = (0..LIVE_RESOURCES)
        .map(|i| tracker.track("file", format!("/var/data/part-{i}.csv")))
        .collect();
    let config = PoolConfig {
        min_size: 0,
        max_size: CONNECTIONS,
        ..PoolConfig::default()
    };
    let pool = rt.block_on(async {
        let pool = MonitoredPool::new("bench", config, Trivial, &tracker).expect("valid");
        // Open every connection (and its lease slot) and record some checkouts.
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            held.push(pool.get().await.expect("get"));
        }
        drop(held);
        for _ in 0..1_000 {
            drop(pool.get().await.expect("get"));
        }
        pool
    });
    let kind = pool.config().resource_kind;
    assert_eq!(pool.metrics().connections, CONNECTIONS);

    let mut group = c.benchmark_group("pool_metrics");
    group.bench_function("metrics", |b| b.iter(|| black_box(pool.metrics())));
    group.bench_function("tracker_leaks", |b| b.iter(|| black_box(tracker.leaks())));
    group.bench_function("metrics_with_leak_scan", |b| {
        b.iter(|| {
            let leaked = tracker
                .leaks()
                .iter()
                .filter(|leak| leak.kind == kind && leak.label == pool.name())
                .count();
            black_box((pool.metrics(), leaked))
        });
    });
    group.finish();
    drop(files);
    // bb8's tasks end with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
}

criterion_group! {
    name = benches;
    config = Criterion::default().configure_from_args();
    targets = pool_metrics
}
criterion_main!(benches);
