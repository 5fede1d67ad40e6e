//! The in-memory history at its default length, with 3 caches, 3 pools and the gateway (with
//! its L2), measured with a counting allocator: the bytes the ring holds once full (target
//! ≤ 16 MiB).
//! Run with `--nocapture` to see the figure quoted in the crate README.

// A global allocator is the one way to count every byte; the unsafe is the std `System`
// allocator's own contract, forwarded unchanged.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)] // reason: a test; a failed step should panic with its error.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use resync_cache_core::Cache;
use resync_perf_api::{
    CacheOutcome, GatewayExchange, GatewayStats, L2Lookup, L2Stats, PerformanceService,
    ServiceConfig, UpstreamOutcome,
};
use resync_pool_optimizer::{FnManager, MonitoredPool, PoolConfig, PoolManager};
use resync_resource_manager::ResourceTracker;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments; the counter is
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::test(flavor = "current_thread")]
async fn a_full_ring_at_the_default_length_stays_under_16_mib() {
    let config = ServiceConfig::default();
    let length = config.history_len;
    assert_eq!(length, 8640);
    let service = PerformanceService::new(config);
    let tracker = ResourceTracker::new();
    let pools = Arc::new(PoolManager::default());
    let mut keep = Vec::new();
    for name in ["responses", "users", "sessions"] {
        let cache: Cache<u64, u64> = Cache::builder().name(name).build().unwrap();
        for key in 0..2_000 {
            cache.get_with(key % 500, async move { key }).await;
        }
        service.register_cache(cache.clone()).unwrap();
        keep.push(cache);
    }
    for name in ["db", "redis", "http"] {
        let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(0_u8) });
        let config = PoolConfig {
            min_size: 0,
            max_size: 4,
            ..PoolConfig::database()
        };
        let pool = MonitoredPool::new(name, config, manager, &tracker).unwrap();
        for _ in 0..100 {
            drop(pool.get().await.unwrap());
        }
        pools.add(pool).unwrap();
    }
    service.set_pool_manager(pools);
    service.set_tracker(tracker);
    let gateway = GatewayStats::new();
    for latency in 0..1_000_u64 {
        gateway.record(&GatewayExchange {
            method: &axum::http::Method::GET,
            status: 200,
            cache: CacheOutcome::Miss,
            latency: std::time::Duration::from_micros(latency * 37),
            upstream: Some((
                std::time::Duration::from_micros(latency * 31),
                UpstreamOutcome::Answered(200),
            )),
            body_bytes: 512,
        });
    }
    service.set_gateway(gateway);
    let l2 = L2Stats::new();
    for latency in 0..1_000_u64 {
        l2.record_lookup(
            L2Lookup::Hit,
            Some(std::time::Duration::from_micros(latency * 3)),
        );
    }
    l2.set_available(true, None);
    service.set_gateway_l2(l2);

    // Warm up (interned names, the window bases), then fill the ring.
    for _ in 0..10 {
        service.sample().await;
    }
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..length {
        service.sample().await;
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(service.history(None, length).len(), length);
    let bytes = (after - before) as f64;
    let per_sample = bytes / length as f64;
    println!(
        "history ring at {length} samples, 3 caches + 3 pools + {} kinds + the gateway and its L2: {:.2} MiB ({per_sample:.0} B per sample)",
        service.history(None, 1)[0].resources.len(),
        bytes / MIB,
    );
    assert!(bytes < 16.0 * MIB, "{:.2} MiB", bytes / MIB);
    assert!(bytes > 0.0, "the ring holds the samples");
}
