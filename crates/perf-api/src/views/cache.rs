//! A cache as the API shows it.

use std::time::Duration;

use resync_cache_core::CacheMetrics;
use serde::Serialize;
use utoipa::ToSchema;

use super::LatencySeconds;

/// Entries removed, by cause.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvictionsView {
    /// Evicted for room (size or entry bound), including refused admissions.
    pub size: u64,
    /// Expired (TTL, time to idle, per-entry expiry).
    pub expired: u64,
    /// Removed by `invalidate`, `remove` or `invalidate_all`.
    pub explicit: u64,
    /// Replaced by a newer value.
    pub replaced: u64,
}

/// One point of the advisor's miss-ratio curve.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurvePointView {
    /// The memory bound as a multiple of the current one.
    pub capacity_factor: f64,
    /// That memory bound in bytes.
    pub max_memory_bytes: u64,
    /// The hit rate predicted at that bound (0–1).
    pub predicted_hit_rate: Option<f64>,
}

/// The advisor's prediction of the hit rate at other memory bounds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurveView {
    /// Share of keys sampled into the simulations.
    pub sample_rate: f64,
    /// Gets the simulations replayed.
    pub sampled_gets: u64,
    /// Sampled gets not replayed: with the default sample rate, a cache of fewer than 8 192
    /// entries replays only some windows of its sample, to bound what the advisor costs; 0
    /// when every sampled get is replayed.
    pub skipped_gets: u64,
    /// Predictions at ½×, 1×, 2×, 4× the memory bound.
    pub points: Vec<CurvePointView>,
    /// The hit rate predicted with a doubled TTL, when the cache has one.
    pub ttl_doubled_predicted_hit_rate: Option<f64>,
}

/// A cache's figures over the health window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheWindowView {
    /// The window's length in seconds.
    pub seconds: f64,
    /// Gets in the window.
    pub requests: u64,
    /// Hits in the window.
    pub hits: u64,
    /// Hit rate in the window (0–1), `null` without a request.
    pub hit_rate: Option<f64>,
    /// Evictions for room in the window.
    pub size_evictions: u64,
}

/// One cache: counters since start, bounds, latency, score, curve and the recent window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheView {
    /// The cache's name.
    pub name: String,
    /// Gets that found a value.
    pub hits: u64,
    /// Gets that did not.
    pub misses: u64,
    /// `hits / (hits + misses)` since start (0–1), `null` without a request.
    pub hit_rate: Option<f64>,
    /// Values written.
    pub inserts: u64,
    /// Writes that replaced a value.
    pub updates: u64,
    /// Invalidation calls.
    pub invalidations: u64,
    /// Entries removed, by cause.
    pub evictions: EvictionsView,
    /// Read-through loads that produced a value.
    pub loads_ok: u64,
    /// Read-through loads that failed.
    pub loads_failed: u64,
    /// Loaded values too large to cache.
    pub loads_uncached: u64,
    /// Load time.
    pub load_seconds: LatencySeconds,
    /// Sampled get latency.
    pub get_seconds: LatencySeconds,
    /// Entries cached.
    pub entries: u64,
    /// Bytes cached (entry weights).
    pub weighted_bytes: u64,
    /// The entry bound.
    pub max_entries: u64,
    /// The memory bound in bytes.
    pub max_memory_bytes: u64,
    /// `entries / max_entries`.
    pub entry_utilization: f64,
    /// `weighted_bytes / max_memory_bytes`.
    pub memory_utilization: f64,
    /// Time to live in seconds, if any.
    pub ttl_seconds: Option<f64>,
    /// Statistics stripes in use.
    pub stat_shards: u64,
    /// Seconds between background maintenance runs, if the cache has them.
    pub cleanup_interval_seconds: Option<f64>,
    /// Efficiency score 0–100: `100 · (0.8 · hit_rate + 0.2 · (1 − size_evictions / inserts))`.
    pub efficiency_score: f64,
    /// The advisor's miss-ratio curve, `null` until it has enough samples.
    pub curve: Option<CurveView>,
    /// The recent window.
    pub window: CacheWindowView,
}

impl CacheView {
    pub(crate) fn of(total: &CacheMetrics, window: &CacheMetrics, seconds: Duration) -> Self {
        Self {
            name: total.name.clone(),
            hits: total.hits,
            misses: total.misses,
            hit_rate: total.hit_rate,
            inserts: total.inserts,
            updates: total.updates,
            invalidations: total.invalidations,
            evictions: EvictionsView {
                size: total.evictions.size,
                expired: total.evictions.expired,
                explicit: total.evictions.explicit,
                replaced: total.evictions.replaced,
            },
            loads_ok: total.loads_ok,
            loads_failed: total.loads_failed,
            loads_uncached: total.loads_uncached,
            load_seconds: LatencySeconds::of(total.load_time_snapshot()),
            get_seconds: LatencySeconds::of(total.get_latency_snapshot()),
            entries: total.entries,
            weighted_bytes: total.weighted_bytes,
            max_entries: total.max_entries,
            max_memory_bytes: total.max_memory_bytes,
            entry_utilization: total.entry_utilization,
            memory_utilization: total.memory_utilization,
            ttl_seconds: total.ttl_seconds,
            stat_shards: total.stat_shards as u64,
            cleanup_interval_seconds: total.cleanup_interval_seconds,
            efficiency_score: total.efficiency_score,
            curve: total.curve.as_ref().map(|curve| CurveView {
                sample_rate: curve.sample_rate,
                sampled_gets: curve.sampled_gets,
                skipped_gets: curve.skipped_gets,
                points: curve
                    .points
                    .iter()
                    .map(|point| CurvePointView {
                        capacity_factor: point.capacity_factor,
                        max_memory_bytes: point.max_memory_bytes,
                        predicted_hit_rate: point.predicted_hit_rate,
                    })
                    .collect(),
                ttl_doubled_predicted_hit_rate: curve.predicted_2x_ttl(),
            }),
            window: CacheWindowView {
                seconds: seconds.as_secs_f64(),
                requests: window.requests(),
                hits: window.hits,
                hit_rate: window.hit_rate,
                size_evictions: window.evictions.size,
            },
        }
    }
}
