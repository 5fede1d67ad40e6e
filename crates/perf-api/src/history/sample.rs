//! One compact history sample: scalars per cache, pool, resource kind and the gateway, and
//! the quantiles of the interval it closes (full histograms are never kept in history).

use std::sync::Arc;
use std::time::Duration;

use resync_cache_core::CacheMetrics;
use resync_perf_core::{Delta, HealthStatus, HistogramSnapshot};
use resync_pool_optimizer::PoolMetrics;
use resync_resource_manager::ResourceStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::gateway::{CacheOutcome, GatewayMetrics, L2Metrics, StatusClass};

/// The state of everything at one instant, with the figures of the interval since the
/// previous sample.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistorySample {
    /// When it was taken, RFC 3339 (UTC).
    pub timestamp: String,
    /// When it was taken, in seconds since the Unix epoch.
    pub unix_seconds: f64,
    /// The seconds since the previous sample (0 for the first one).
    pub interval_seconds: f64,
    /// The overall health verdict at that time.
    #[schema(value_type = String, example = "healthy")]
    pub status: HealthStatus,
    /// One entry per cache.
    pub caches: Box<[CacheSample]>,
    /// One entry per pool.
    pub pools: Box<[PoolSample]>,
    /// One entry per resource kind.
    pub resources: Box<[KindSample]>,
    /// The gateway, `null` when none is set (boxed: a sample without one pays a pointer).
    pub gateway: Option<Box<GatewaySample>>,
}

/// A cache at one instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheSample {
    /// The cache's name.
    #[schema(value_type = String)]
    pub name: Arc<str>,
    /// Cumulative hits.
    pub hits: u64,
    /// Cumulative misses.
    pub misses: u64,
    /// Hit rate over the interval (0–1), `null` without a request in it.
    pub interval_hit_rate: Option<f32>,
    /// Entries cached.
    pub entries: u64,
    /// Bytes cached (entry weights).
    pub weighted_bytes: u64,
    /// The memory bound in bytes.
    pub max_memory_bytes: u64,
    /// Cumulative evictions for room.
    pub size_evictions: u64,
    /// Cumulative expirations.
    pub expired_evictions: u64,
}

/// A pool at one instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolSample {
    /// The pool's name.
    #[schema(value_type = String)]
    pub name: Arc<str>,
    /// Connections open.
    pub connections: u32,
    /// Connections idle.
    pub idle: u32,
    /// Connections checked out.
    pub in_use: u64,
    /// The size bound.
    pub max_size: u32,
    /// Callers waiting for a connection.
    pub waiting: u64,
    /// Cumulative successful checkouts.
    pub acquires: u64,
    /// Cumulative checkouts that timed out with every connection in use.
    pub exhaustions: u64,
    /// Cumulative checkouts that failed because no connection could be made.
    pub unavailable: u64,
    /// Cumulative connection errors (connect failures, broken connections, caller reports).
    pub errors: u64,
    /// Utilization over the interval (Σ hold time / (interval × max size)), 0–1.
    pub interval_utilization: Option<f32>,
    /// Median acquire wait over the interval, in seconds.
    pub interval_acquire_p50_seconds: Option<f32>,
    /// 95th percentile acquire wait over the interval, in seconds.
    pub interval_acquire_p95_seconds: Option<f32>,
    /// 99th percentile acquire wait over the interval, in seconds.
    pub interval_acquire_p99_seconds: Option<f32>,
}

/// A resource kind at one instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KindSample {
    /// The kind's name.
    #[schema(value_type = String)]
    pub kind: Arc<str>,
    /// Resources alive.
    pub active: u64,
    /// Resources alive past the leak threshold.
    pub leaked_now: u64,
    /// Cumulative resources tracked.
    pub created: u64,
    /// Cumulative releases.
    pub released: u64,
}

/// The gateway at one instant: cumulative counters (a window's request rate, hit rate and
/// upstream error rate are the difference of two samples over their `unix_seconds`), and the
/// interval's ratios and latency quantiles.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewaySample {
    /// Cumulative requests served.
    pub requests: u64,
    /// Cumulative requests answered from a fresh cached response.
    pub hits: u64,
    /// Cumulative requests answered from a stale cached response.
    pub stale: u64,
    /// Cumulative requests that missed the cache (the rest of `requests` bypassed it).
    pub misses: u64,
    /// Cumulative requests answered with a 5xx status.
    pub responses_5xx: u64,
    /// Cumulative upstream exchanges attempted.
    pub upstream_requests: u64,
    /// Cumulative upstream errors (5xx answers, unreachable, failed, timed out, pool
    /// exhausted).
    pub upstream_errors: u64,
    /// Cumulative body bytes sent from the cache.
    pub bytes_from_cache: u64,
    /// Cumulative body bytes sent otherwise.
    pub bytes_from_upstream: u64,
    /// `(hits + stale) / (hits + stale + misses)` over the interval (0–1), `null` without a
    /// cacheable request in it.
    pub interval_hit_rate: Option<f32>,
    /// Upstream errors / exchanges over the interval (0–1), `null` without an exchange.
    pub interval_upstream_error_rate: Option<f32>,
    /// Median request latency over the interval, in seconds.
    pub interval_request_p50_seconds: Option<f32>,
    /// 95th percentile request latency over the interval, in seconds.
    pub interval_request_p95_seconds: Option<f32>,
    /// 99th percentile request latency over the interval, in seconds.
    pub interval_request_p99_seconds: Option<f32>,
    /// Median upstream latency over the interval, in seconds.
    pub interval_upstream_p50_seconds: Option<f32>,
    /// 95th percentile upstream latency over the interval, in seconds.
    pub interval_upstream_p95_seconds: Option<f32>,
    /// 99th percentile upstream latency over the interval, in seconds.
    pub interval_upstream_p99_seconds: Option<f32>,
    /// The gateway's second level cache (Redis), `null` when none is set (boxed: a sample
    /// without one pays a pointer). Rows written before it existed have no `l2` at all.
    pub l2: Option<Box<L2Sample>>,
}

/// The gateway's L2 at one instant: cumulative counters (a window's figures are the
/// difference of two samples), whether it was usable, and the interval's ratios and lookup
/// latency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct L2Sample {
    /// Whether L2 was usable when the sample was taken.
    pub available: bool,
    /// Cumulative lookups that found a current entry.
    pub hits: u64,
    /// Cumulative lookups that found nothing.
    pub misses: u64,
    /// Cumulative lookups that found an entry of another version.
    pub other_version: u64,
    /// Cumulative lookups that failed.
    pub lookup_errors: u64,
    /// Cumulative lookups not made because L2 was unavailable.
    pub skipped: u64,
    /// Cumulative stores attempted.
    pub stores: u64,
    /// Cumulative stores that failed.
    pub store_errors: u64,
    /// Cumulative errors of every operation (lookup, store, lease, invalidate, subscribe).
    pub errors: u64,
    /// Cumulative fetch leases this instance won.
    pub leases_won: u64,
    /// Cumulative fetch leases waited on, the value arriving in time.
    pub leases_waited: u64,
    /// Cumulative fetch leases waited on in vain.
    pub leases_expired: u64,
    /// Cumulative invalidations published.
    pub invalidations_sent: u64,
    /// Cumulative invalidations received.
    pub invalidations_received: u64,
    /// Cumulative flushes of the whole L1 after the subscriber reconnected.
    pub l1_flushes: u64,
    /// `hits / (hits + misses + other_version)` over the interval (0–1), `null` without
    /// such a lookup in it.
    pub interval_hit_rate: Option<f32>,
    /// Failed lookups and stores / attempted lookups and stores over the interval (0–1),
    /// `null` without one.
    pub interval_error_rate: Option<f32>,
    /// 95th percentile lookup latency over the interval, in seconds.
    pub interval_lookup_p95_seconds: Option<f32>,
}

impl CacheSample {
    pub(crate) fn of(name: Arc<str>, now: &CacheMetrics, previous: Option<&CacheMetrics>) -> Self {
        let interval = previous.map_or_else(|| now.clone(), |older| now.delta(older));
        Self {
            name,
            hits: now.hits,
            misses: now.misses,
            interval_hit_rate: interval.hit_rate.map(narrow),
            entries: now.entries,
            weighted_bytes: now.weighted_bytes,
            max_memory_bytes: now.max_memory_bytes,
            size_evictions: now.evictions.size,
            expired_evictions: now.evictions.expired,
        }
    }
}

impl PoolSample {
    pub(crate) fn of(name: Arc<str>, now: &PoolMetrics, previous: Option<&PoolMetrics>) -> Self {
        let interval = previous.map_or_else(|| now.clone(), |older| now.delta(older));
        let wait = &interval.acquire_latency;
        Self {
            name,
            connections: now.connections,
            idle: now.idle,
            in_use: now.in_use,
            max_size: now.max_size,
            waiting: now.waiting,
            acquires: now.acquires,
            exhaustions: now.exhaustions,
            unavailable: now.unavailable,
            errors: now.errors(),
            interval_utilization: interval.utilization().map(narrow),
            interval_acquire_p50_seconds: quantile_seconds(wait, HistogramSnapshot::p50),
            interval_acquire_p95_seconds: quantile_seconds(wait, HistogramSnapshot::p95),
            interval_acquire_p99_seconds: quantile_seconds(wait, HistogramSnapshot::p99),
        }
    }
}

impl GatewaySample {
    pub(crate) fn of(
        now: &GatewayMetrics,
        previous: Option<&GatewayMetrics>,
        l2: Option<Box<L2Sample>>,
    ) -> Self {
        let interval = previous.map_or_else(|| now.clone(), |older| now.delta(older));
        let (requests, upstream) = (&interval.request_latency, &interval.upstream_latency);
        Self {
            requests: now.total_requests(),
            hits: now.requests_with_cache(CacheOutcome::Hit),
            stale: now.requests_with_cache(CacheOutcome::Stale),
            misses: now.requests_with_cache(CacheOutcome::Miss),
            responses_5xx: now.requests_with_status(StatusClass::ServerError),
            upstream_requests: now.upstream.total(),
            upstream_errors: now.upstream.errors(),
            bytes_from_cache: now.bytes_from_cache,
            bytes_from_upstream: now.bytes_from_upstream,
            interval_hit_rate: interval.hit_rate().map(narrow),
            interval_upstream_error_rate: interval.upstream.error_rate().map(narrow),
            interval_request_p50_seconds: quantile_seconds(requests, HistogramSnapshot::p50),
            interval_request_p95_seconds: quantile_seconds(requests, HistogramSnapshot::p95),
            interval_request_p99_seconds: quantile_seconds(requests, HistogramSnapshot::p99),
            interval_upstream_p50_seconds: quantile_seconds(upstream, HistogramSnapshot::p50),
            interval_upstream_p95_seconds: quantile_seconds(upstream, HistogramSnapshot::p95),
            interval_upstream_p99_seconds: quantile_seconds(upstream, HistogramSnapshot::p99),
            l2,
        }
    }
}

impl L2Sample {
    pub(crate) fn of(now: &L2Metrics, previous: Option<&L2Metrics>) -> Self {
        let interval = previous.map_or_else(|| now.clone(), |older| now.delta(older));
        Self {
            available: now.available,
            hits: now.lookups.hit,
            misses: now.lookups.miss,
            other_version: now.lookups.other_version,
            lookup_errors: now.lookups.error,
            skipped: now.lookups.skipped,
            stores: now.stores.total(),
            store_errors: now.stores.error,
            errors: now.errors.total(),
            leases_won: now.leases.won,
            leases_waited: now.leases.waited,
            leases_expired: now.leases.expired,
            invalidations_sent: now.invalidations.sent,
            invalidations_received: now.invalidations.received,
            l1_flushes: now.l1_flushes,
            interval_hit_rate: interval.hit_rate().map(narrow),
            interval_error_rate: interval.error_rate().map(narrow),
            interval_lookup_p95_seconds: quantile_seconds(
                &interval.lookup_latency,
                HistogramSnapshot::p95,
            ),
        }
    }
}

impl KindSample {
    pub(crate) fn of(kind: Arc<str>, stats: &ResourceStats) -> Self {
        Self {
            kind,
            active: stats.active,
            leaked_now: stats.leaked_now,
            created: stats.created,
            released: stats.released,
        }
    }
}

/// Samples keep `f32`: seven significant digits are plenty for a trend and halve the size.
#[allow(clippy::cast_possible_truncation)] // reason: precision is deliberately reduced.
fn narrow(value: f64) -> f32 {
    value as f32
}

fn quantile_seconds(
    histogram: &HistogramSnapshot,
    quantile: fn(&HistogramSnapshot) -> u64,
) -> Option<f32> {
    (!histogram.is_empty()).then(|| narrow(Duration::from_nanos(quantile(histogram)).as_secs_f64()))
}
