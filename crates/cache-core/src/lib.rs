//! A bounded, instrumented async cache on moka that measures itself and predicts the effect
//! of a resize.
//!
//! [`Cache`] wraps `moka::future::Cache` and adds what moka leaves out:
//!
//! - **Two bounds at once.** Each entry weighs `max(estimated bytes, max_memory_bytes /
//!   max_entries)` (rounded up). While every entry weighs that floor, moka counts entries
//!   (no weigher: bare moka's admission and hit rate) up to the number of floor-weight
//!   entries both bounds allow; from the first heavier write, moka weighs bytes, and keeping
//!   the weight under the memory bound also keeps the entry count under its bound. Sizes
//!   come from [`MemorySize`] plus moka's measured per-entry overhead
//!   ([`ENTRY_OVERHEAD_BYTES`]), or from a custom weigher. An entry larger than the memory
//!   bound is refused ([`Error::EntryTooLarge`]).
//! - **Statistics** ([`CacheMetrics`]): hits, misses, inserts, updates, invalidations,
//!   evictions by cause, loads and their time, sampled get latency, counted on striped
//!   cache lines so recording stays cheap under contention. Counters are cumulative;
//!   windows come from [`Delta::delta`](resync_perf_core::Delta::delta) of two snapshots.
//!   A cache that can expire entries counts eviction causes with moka's eviction listener;
//!   one that cannot goes without it (moka locks each written key for a listener) and
//!   counts them on its own paths, deriving size evictions ([`EvictionCounts`] says where
//!   each figure comes from and how exact it is).
//! - **An advisor**: an online miss-ratio curve from miniature simulations of moka's policy
//!   fed by ~1 % of the keys, predicting the hit rate at ½×, 2× and 4× the memory bound, and
//!   [`recommendations_from`] turning it into advice with evidence and a settings change.
//! - **Health rules** ([`health`], [`CacheHealthThresholds`]): a low hit rate over enough gets
//!   and memory pressure are degraded; too few gets to judge says `cache.insufficient_data`.
//!
//! ```
//! use std::time::Duration;
//! use resync_cache_core::Cache;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resync_cache_core::Error> {
//! let users: Cache<u64, String> = Cache::builder()
//!     .name("users")
//!     .max_entries(10_000)
//!     .max_memory_bytes(8 * 1024 * 1024)
//!     .ttl(Duration::from_secs(300))
//!     .build()?;
//!
//! // Read-through: the first call loads, the second is a hit.
//! let name = users.get_with(7, async { format!("user-{}", 7) }).await;
//! assert_eq!(name, "user-7");
//! assert_eq!(users.get(&7).await.as_deref(), Some("user-7"));
//!
//! users.run_pending_tasks().await;
//! let metrics = users.metrics();
//! assert_eq!((metrics.hits, metrics.misses, metrics.loads_ok), (1, 1, 1));
//! assert_eq!(metrics.hit_rate, Some(0.5));
//! assert_eq!(metrics.entries, 1);
//!
//! // Two gets are far too few to judge: the advice says so instead of "low hit rate".
//! let advice = users.recommendations();
//! assert_eq!(advice[0].code, "cache.insufficient_data");
//! # Ok(())
//! # }
//! ```

mod advisor;
mod builder;
mod cache;
mod error;
mod health;
mod memory_size;
mod metrics;
mod recommend;
mod stats;
mod stored;

pub use builder::{
    CacheBuilder, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_STAT_SHARDS,
    ENTRY_OVERHEAD_BYTES,
};
pub use cache::Cache;
pub use error::{ConfigProblem, Error};
pub use health::{health, CacheHealthThresholds};
pub use memory_size::MemorySize;
pub use metrics::{efficiency_score, CacheMetrics, CurvePoint, EvictionCounts, MissRatioCurve};
pub use moka::notification::RemovalCause;
pub use moka::Expiry;
pub use recommend::{
    recommendations_from, ENTRY_FLOOR_SLACK, FULL_UTILIZATION, GROW_MIN_GAIN, LOW_HIT_RATE,
    MIN_REQUESTS, PRESSURE_EVICTIONS_PER_INSERT, SHRINK_MAX_LOSS, TTL_EXPIRED_PER_MISS,
};

/// The README's examples, compiled and run as doctests, so the README's code stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
