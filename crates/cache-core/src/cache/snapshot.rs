//! Snapshots: [`CacheMetrics`] from the striped counters, moka's gauges, the eviction
//! counts and the advisor's curve, and the advice drawn from one.

use std::hash::Hash;

use resync_perf_core::Recommendation;

use super::causes::Causes;
use super::Cache;
use crate::advisor::Advisor;
use crate::metrics::CacheMetrics;
use crate::stats::Counter;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A snapshot of the statistics (cumulative counters; see [`CacheMetrics`]).
    pub fn metrics(&self) -> CacheMetrics {
        let inner = &*self.inner;
        // The creates moka applied at least, then the entry count, then (inside) the
        // removals: each read after the one it is compared with errs toward fewer size
        // evictions, never more.
        let created = match inner.causes {
            Causes::Listener => 0,
            Causes::Derived => inner.created_applied(),
        };
        let entries = inner.store.entry_count();
        let totals = inner.stats.totals();
        let size = match inner.causes {
            Causes::Listener => totals.get(Counter::EvictedSize),
            Causes::Derived => inner.derived_size_evictions(created, entries),
        };
        let evictions = crate::metrics::EvictionCounts {
            size,
            expired: totals.get(Counter::EvictedExpired),
            explicit: totals.get(Counter::EvictedExplicit),
            replaced: totals.get(Counter::EvictedReplaced),
        };
        let load_time_snapshot = inner.stats.load_time();
        let get_latency_snapshot = inner.stats.get_latency();
        let mut metrics = CacheMetrics {
            name: inner.name.clone(),
            hits: totals.get(Counter::Hits),
            misses: totals.get(Counter::Misses),
            hit_rate: None,
            inserts: totals.get(Counter::Inserts),
            updates: evictions.replaced,
            invalidations: totals.get(Counter::Invalidations),
            evictions,
            loads_ok: totals.get(Counter::LoadsOk),
            loads_failed: totals.get(Counter::LoadsFailed),
            loads_uncached: totals.get(Counter::LoadsUncached),
            load_time: load_time_snapshot.summary(),
            get_latency: get_latency_snapshot.summary(),
            entries,
            weighted_bytes: inner.store.weighted_size(),
            max_entries: inner.max_entries,
            max_memory_bytes: inner.max_memory_bytes,
            entry_utilization: 0.0,
            memory_utilization: 0.0,
            ttl_seconds: inner.time_to_live.map(|ttl| ttl.as_secs_f64()),
            stat_shards: inner.stats.shard_count(),
            cleanup_interval_seconds: inner.cleanup_interval.map(|every| every.as_secs_f64()),
            efficiency_score: 0.0,
            curve: None,
            load_time_snapshot,
            get_latency_snapshot,
            raw_curve: inner.advisor.as_ref().map(Advisor::curve),
        };
        metrics.derive();
        metrics
    }

    /// Runs pending maintenance, then takes a snapshot whose entry count and bytes are exact.
    pub async fn settled_metrics(&self) -> CacheMetrics {
        self.run_pending_tasks().await;
        self.metrics()
    }

    /// Advice from the cumulative statistics (see [`recommendations_from`](crate::recommendations_from)).
    pub fn recommendations(&self) -> Vec<Recommendation> {
        crate::recommend::recommendations_from(&self.metrics())
    }
}
