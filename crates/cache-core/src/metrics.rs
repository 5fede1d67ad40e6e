//! Snapshots of a cache's statistics and its miss-ratio curve.

use resync_perf_core::{
    clamp_unit, ratio, weighted_score, Delta, HistogramSnapshot, HistogramSummary,
};

/// Entries removed, by cause.
///
/// Where each figure comes from depends on whether the cache can expire entries:
///
/// - **With expiration** (a TTL, a time-to-idle or a per-entry [`Expiry`](crate::Expiry)
///   is set): every figure comes from moka's eviction listener, which reports each removal
///   with its cause when it happens (removals by maintenance, such as size evictions and
///   expirations, when maintenance runs).
/// - **Without expiration** there is no listener — moka takes a per-key lock on every write
///   when one is installed, which cost writes about a third of their throughput — and:
///   `replaced` is counted by moka's expiry callbacks inside each write (an internal
///   [`Expiry`](crate::Expiry) that never expires anything); `explicit` by `invalidate` /
///   `remove` when moka removed something, and by
///   `invalidate_all` as the entry count after a maintenance pass run first; `size` is
///   derived as *entries created − explicit removals − entries cached*, and `expired` is 0.
///   See each field for how exact it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EvictionCounts {
    /// Evicted to keep a bound, including new entries that TinyLFU refused to admit.
    ///
    /// Without expiration this is derived: every entry created (an insert of a key moka did
    /// not hold, or a stored load) has left by a size eviction or an explicit removal, or is
    /// still cached. It is computed when metrics are taken, against moka's entry count (as
    /// of moka's last maintenance pass, which moka runs itself whenever 64 reads or writes
    /// are queued), from a lower bound of the creates moka has applied: the creates counted
    /// so far less every write that may still be pending (in flight, abandoned by a dropped
    /// future since the last pass this cache ran, or queued inside moka: at most 2 304 per
    /// moka cache, of which a cache that moved to weighing bytes has two), or
    /// the creates known applied by the last pass this cache ran (`run_pending_tasks`,
    /// `settled_metrics`, `invalidate_all` or the cleanup task), whichever is higher;
    /// removals in flight or ever abandoned count as explicit. So writes moka has not applied
    /// yet are never taken for evictions: a plain `metrics()` lags by at most those pending
    /// writes plus the operations in flight or abandoned, never runs ahead, and
    /// `settled_metrics()` with no write running is exact. The figure never decreases (it
    /// feeds a counter).
    pub size: u64,
    /// Removed because their time-to-live, time-to-idle or per-entry expiry passed (0 by
    /// construction without expiration).
    pub expired: u64,
    /// Removed by `invalidate`, `remove` or `invalidate_all`.
    ///
    /// Without expiration, `invalidate_all` counts the entries cached after a maintenance
    /// pass it runs first: exact unless writes race the call.
    pub explicit: u64,
    /// Replaced by a write of the same key.
    ///
    /// Without expiration, counted when moka calls `expire_after_update` inside the write
    /// (and entries created when it calls `expire_after_create`): exact under concurrent
    /// writes of one key. A write racing `invalidate_all` over an entry that call already
    /// counted counts as a replacement.
    pub replaced: u64,
}

impl EvictionCounts {
    /// All removals together.
    pub fn total(&self) -> u64 {
        self.size + self.expired + self.explicit + self.replaced
    }
}

impl Delta for EvictionCounts {
    fn delta(&self, older: &Self) -> Self {
        Self {
            size: self.size.saturating_sub(older.size),
            expired: self.expired.saturating_sub(older.expired),
            explicit: self.explicit.saturating_sub(older.explicit),
            replaced: self.replaced.saturating_sub(older.replaced),
        }
    }
}

/// One point of the miss-ratio curve.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CurvePoint {
    /// Memory bound relative to the current one (0.5, 1, 2, 4).
    pub capacity_factor: f64,
    /// The memory bound this point stands for, in bytes.
    pub max_memory_bytes: u64,
    /// Hits of the miniature simulation at this size (cumulative).
    pub simulated_hits: u64,
    /// Predicted hit rate in 0..=1: the measured hit rate plus the extra hits this miniature
    /// scored over the 1× miniature, scaled up by the sample rate and the share of sampled
    /// gets replayed (`(hits_f − hits_1) / (sample_rate · requests · sampled_gets /
    /// (sampled_gets + skipped_gets))`). `None` while the cache has served no request.
    pub predicted_hit_rate: Option<f64>,
}

/// Predicted hit rates at ½×, 1×, 2× and 4× the current memory bound.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MissRatioCurve {
    /// Share of keys whose accesses feed the simulations.
    pub sample_rate: f64,
    /// Sampled gets replayed into the simulations (cumulative).
    pub sampled_gets: u64,
    /// Sampled gets not replayed (cumulative): with the default sample rate, a cache of
    /// fewer than 8 192 entries replays only some windows of its sampled events, to bound
    /// what the advisor costs (see the crate README, *The advisor*); 0 when every sampled
    /// event is replayed.
    pub skipped_gets: u64,
    /// The points, in increasing size.
    pub points: Vec<CurvePoint>,
    /// With a TTL set: the 1× miniature run with twice the TTL (same size), anchored like
    /// the other points. `None` without a TTL.
    pub ttl_doubled: Option<CurvePoint>,
}

impl MissRatioCurve {
    /// The predicted hit rate at `capacity_factor` (one of 0.5, 1, 2, 4).
    pub fn predicted(&self, capacity_factor: f64) -> Option<f64> {
        self.points
            .iter()
            .find(|point| (point.capacity_factor - capacity_factor).abs() < 1e-9)
            .and_then(|point| point.predicted_hit_rate)
    }

    /// The predicted hit rate at today's size with twice the TTL (`None` without a TTL).
    pub fn predicted_2x_ttl(&self) -> Option<f64> {
        self.ttl_doubled
            .as_ref()
            .and_then(|point| point.predicted_hit_rate)
    }

    /// The simulated hit rate of the miniature at `capacity_factor` (before anchoring).
    pub fn simulated(&self, capacity_factor: f64) -> Option<f64> {
        let point = self
            .points
            .iter()
            .find(|point| (point.capacity_factor - capacity_factor).abs() < 1e-9)?;
        ratio(point.simulated_hits as f64, self.sampled_gets as f64)
    }

    /// Recomputes the predictions from the simulation counts, the measured hit rate and the
    /// number of gets it was measured over.
    ///
    /// The extra hits are divided by the gets the sample is *expected* to hold
    /// (`sample_rate · requests`), not by the gets it happened to hold: a hot key that falls
    /// into the sample inflates the sampled gets but hits at every size, so dividing by the
    /// sampled gets would shrink every difference (a Horvitz–Thompson estimate of the total).
    /// When only some windows of the sample were replayed, the expectation is taken for the
    /// replayed share, `sampled_gets / (sampled_gets + skipped_gets)` (a hot sampled key
    /// inflates both counts alike).
    pub(crate) fn anchor(&mut self, measured_hit_rate: Option<f64>, requests: u64) {
        let current = self
            .points
            .get(crate::advisor::CURRENT_POINT)
            .map_or(0, |point| point.simulated_hits);
        let offered = self.sampled_gets + self.skipped_gets;
        let replayed_share = ratio(self.sampled_gets as f64, offered as f64).unwrap_or(1.0);
        let expected_sampled = self.sample_rate * requests as f64 * replayed_share;
        for point in self.points.iter_mut().chain(self.ttl_doubled.as_mut()) {
            point.predicted_hit_rate = measured_hit_rate.and_then(|measured| {
                let difference = ratio(
                    point.simulated_hits as f64 - current as f64,
                    expected_sampled,
                )?;
                Some(clamp_unit(measured + difference))
            });
        }
    }

    /// The simulation counts of `self` minus those of `older` (predictions not yet anchored).
    pub(crate) fn window(&self, older: &Self) -> Self {
        let mut window = self.clone();
        window.sampled_gets = self.sampled_gets.saturating_sub(older.sampled_gets);
        window.skipped_gets = self.skipped_gets.saturating_sub(older.skipped_gets);
        for (point, old) in window.points.iter_mut().zip(&older.points) {
            point.simulated_hits = point.simulated_hits.saturating_sub(old.simulated_hits);
        }
        if let (Some(point), Some(old)) = (window.ttl_doubled.as_mut(), older.ttl_doubled.as_ref())
        {
            point.simulated_hits = point.simulated_hits.saturating_sub(old.simulated_hits);
        }
        window
    }
}

/// A snapshot of a cache's statistics.
///
/// Counters are cumulative since the cache was built; [`Delta::delta`] of two snapshots gives
/// the figures of the window between them (gauges such as `entries` keep the newer value).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheMetrics {
    /// The cache's name.
    pub name: String,
    /// `get`s that found a value, and `get_with` / `try_get_with` calls that returned a value
    /// stored before the call was made.
    pub hits: u64,
    /// `get`s that found nothing, and read-through calls that did not hit: their own load, a
    /// load they waited for, a failed or oversized load, a value written while they ran.
    pub misses: u64,
    /// `hits / (hits + misses)`, `None` when there was no request.
    pub hit_rate: Option<f64>,
    /// Values written, by `insert` or by a completed load.
    pub inserts: u64,
    /// Writes that replaced a value already cached (equals `evictions.replaced`).
    pub updates: u64,
    /// Calls of `invalidate`, `remove` and `invalidate_all`.
    pub invalidations: u64,
    /// Entries removed, by cause.
    pub evictions: EvictionCounts,
    /// Loads (`get_with` / `try_get_with` initializers) that produced a value.
    pub loads_ok: u64,
    /// Loads that failed (`try_get_with` errors); failures are never cached.
    pub loads_failed: u64,
    /// Loads whose value weighed more than the memory bound (or `u32::MAX` bytes, moka's
    /// largest weight): returned to the callers but never cached. Also counted in `loads_ok`.
    pub loads_uncached: u64,
    /// Load time, in nanoseconds.
    pub load_time: HistogramSummary,
    /// Get latency in nanoseconds, timed for one get in 64 per thread.
    pub get_latency: HistogramSummary,
    /// Entries cached, as of moka's last maintenance pass (moka runs one itself whenever 64
    /// reads or writes are queued).
    pub entries: u64,
    /// Sum of entry weights in bytes, as of the last maintenance pass.
    pub weighted_bytes: u64,
    /// The entry bound.
    pub max_entries: u64,
    /// The memory bound in bytes.
    pub max_memory_bytes: u64,
    /// `entries / max_entries`.
    pub entry_utilization: f64,
    /// `weighted_bytes / max_memory_bytes`.
    pub memory_utilization: f64,
    /// The configured time-to-live in seconds, if any.
    pub ttl_seconds: Option<f64>,
    /// Statistics stripes in use (the builder's `stat_shards`, rounded up to a power of two).
    pub stat_shards: usize,
    /// Seconds between the background maintenance runs, when the cache has them.
    pub cleanup_interval_seconds: Option<f64>,
    /// 0–100; see [`efficiency_score`].
    pub efficiency_score: f64,
    /// The advisor's miss-ratio curve, `None` with the advisor off or too few sampled gets.
    pub curve: Option<MissRatioCurve>,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) load_time_snapshot: HistogramSnapshot,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) get_latency_snapshot: HistogramSnapshot,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) raw_curve: Option<MissRatioCurve>,
}

impl CacheMetrics {
    /// Gets served (`hits + misses`).
    pub fn requests(&self) -> u64 {
        self.hits + self.misses
    }

    /// The load-time histogram (nanoseconds), for windowing by subtraction.
    pub fn load_time_snapshot(&self) -> &HistogramSnapshot {
        &self.load_time_snapshot
    }

    /// The sampled get-latency histogram (nanoseconds), for windowing by subtraction.
    pub fn get_latency_snapshot(&self) -> &HistogramSnapshot {
        &self.get_latency_snapshot
    }

    /// Recomputes the derived figures (rates, score, summaries, curve) from the raw ones.
    pub(crate) fn derive(&mut self) {
        self.hit_rate = ratio(self.hits as f64, self.requests() as f64);
        self.entry_utilization = ratio(self.entries as f64, self.max_entries as f64).unwrap_or(0.0);
        self.memory_utilization =
            ratio(self.weighted_bytes as f64, self.max_memory_bytes as f64).unwrap_or(0.0);
        self.efficiency_score = efficiency_score(self);
        self.load_time = self.load_time_snapshot.summary();
        self.get_latency = self.get_latency_snapshot.summary();
        self.curve = self.raw_curve.as_ref().and_then(|raw| {
            let mut curve = raw.clone();
            curve.anchor(self.hit_rate, self.requests());
            (curve.sampled_gets >= crate::advisor::MIN_SAMPLED_GETS).then_some(curve)
        });
    }
}

#[cfg(test)]
impl CacheMetrics {
    /// A snapshot of the cache `judged` for unit tests: `hits` and `misses` (as many inserts
    /// as misses), `weighted_bytes` in entries of 1 000 bytes, bounds of 1 000 entries and
    /// 1 000 000 bytes, derived figures computed. Tests change fields and call `derive()`.
    pub(crate) fn for_tests(hits: u64, misses: u64, weighted_bytes: u64) -> Self {
        let mut metrics = Self {
            name: "judged".to_owned(),
            hits,
            misses,
            hit_rate: None,
            inserts: misses,
            updates: 0,
            invalidations: 0,
            evictions: EvictionCounts::default(),
            loads_ok: 0,
            loads_failed: 0,
            loads_uncached: 0,
            load_time: HistogramSummary::default(),
            get_latency: HistogramSummary::default(),
            entries: weighted_bytes / 1_000,
            weighted_bytes,
            max_entries: 1_000,
            max_memory_bytes: 1_000_000,
            entry_utilization: 0.0,
            memory_utilization: 0.0,
            ttl_seconds: None,
            stat_shards: 1,
            cleanup_interval_seconds: None,
            efficiency_score: 0.0,
            curve: None,
            load_time_snapshot: HistogramSnapshot::default(),
            get_latency_snapshot: HistogramSnapshot::default(),
            raw_curve: None,
        };
        metrics.derive();
        metrics
    }
}

impl Delta for CacheMetrics {
    fn delta(&self, older: &Self) -> Self {
        let mut window = Self {
            name: self.name.clone(),
            hits: self.hits.saturating_sub(older.hits),
            misses: self.misses.saturating_sub(older.misses),
            hit_rate: None,
            inserts: self.inserts.saturating_sub(older.inserts),
            updates: self.updates.saturating_sub(older.updates),
            invalidations: self.invalidations.saturating_sub(older.invalidations),
            evictions: self.evictions.delta(&older.evictions),
            loads_ok: self.loads_ok.saturating_sub(older.loads_ok),
            loads_failed: self.loads_failed.saturating_sub(older.loads_failed),
            loads_uncached: self.loads_uncached.saturating_sub(older.loads_uncached),
            load_time: self.load_time,
            get_latency: self.get_latency,
            entries: self.entries,
            weighted_bytes: self.weighted_bytes,
            max_entries: self.max_entries,
            max_memory_bytes: self.max_memory_bytes,
            entry_utilization: 0.0,
            memory_utilization: 0.0,
            ttl_seconds: self.ttl_seconds,
            stat_shards: self.stat_shards,
            cleanup_interval_seconds: self.cleanup_interval_seconds,
            efficiency_score: 0.0,
            curve: None,
            load_time_snapshot: self.load_time_snapshot.subtract(&older.load_time_snapshot),
            get_latency_snapshot: self
                .get_latency_snapshot
                .subtract(&older.get_latency_snapshot),
            raw_curve: match (&self.raw_curve, &older.raw_curve) {
                (Some(newer), Some(old)) => Some(newer.window(old)),
                (newer, _) => newer.clone(),
            },
        };
        window.derive();
        window
    }
}

/// The efficiency score, 0–100:
///
/// `100 · (0.8 · hit_rate + 0.2 · (1 − min(1, size_evictions / inserts)))`
///
/// The hit rate is what a cache is for; the second term penalises churn (entries written
/// only to be evicted for room). With no request yet the score is 0 — read it together with
/// `hit_rate`, which is `None` in that case, and with the `cache.insufficient_data` advice.
pub fn efficiency_score(metrics: &CacheMetrics) -> f64 {
    let Some(hit_rate) = metrics.hit_rate else {
        return 0.0;
    };
    let churn =
        ratio(metrics.evictions.size as f64, metrics.inserts as f64).map_or(0.0, clamp_unit);
    weighted_score(&[(0.8, hit_rate), (0.2, 1.0 - churn)])
}
