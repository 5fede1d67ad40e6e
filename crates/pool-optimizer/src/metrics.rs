//! [`PoolMetrics`]: a snapshot of one pool's figures, its windows and its efficiency score.

use std::time::Duration;

use resync_perf_core::{clamp_unit, falloff, ratio, weighted_score, Delta, HistogramSnapshot};

use crate::pool::PoolShared;
use crate::stats::PoolStats;

/// Utilization the sizing part of the efficiency score treats as ideal.
pub const TARGET_UTILIZATION: f64 = 0.7;

/// Everything measured about one pool at one moment.
///
/// Counters are cumulative since the pool was built; `connections`, `idle`, `in_use`,
/// `max_size` and `min_size` are current values. The difference of two snapshots
/// ([`Delta::delta`]) is the window between them: its counters and histograms hold only what
/// happened in the window, its `elapsed_secs` is the window's length and its gauges are the
/// newer snapshot's. Latencies are recorded in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PoolMetrics {
    /// The pool's name.
    pub name: String,
    /// Settings-key prefix of the pool (`DB_POOL`, `REDIS_POOL`, `HTTP_POOL`).
    pub settings_prefix: String,
    /// Seconds covered: since the pool was built, or the window's length.
    pub elapsed_secs: f64,
    /// Configured `max_size`.
    pub max_size: u32,
    /// Configured `min_size` (bb8's `min_idle`).
    pub min_size: u32,
    /// Open connections (idle + in use).
    pub connections: u32,
    /// Idle connections.
    pub idle: u32,
    /// Connections checked out now.
    pub in_use: u64,
    /// `get()` calls waiting for a connection now.
    pub waiting: u64,
    /// Most connections ever checked out at once (not windowed).
    pub peak_in_use: u64,
    /// Successful checkouts.
    pub acquires: u64,
    /// Checkouts served without waiting for a connection (bb8's `get_direct`).
    pub acquires_direct: u64,
    /// Checkouts that had to wait (bb8's `get_waited`).
    pub acquires_waited: u64,
    /// `get()` calls that timed out with every connection in use.
    pub exhaustions: u64,
    /// `get()` calls that failed because no connection could be made.
    pub unavailable: u64,
    /// Connect attempts.
    pub connect_attempts: u64,
    /// Failed connect attempts (timeouts included).
    pub connect_failures: u64,
    /// Connect attempts that hit the connect timeout.
    pub connect_timeouts: u64,
    /// Connections found broken when returned.
    pub broken: u64,
    /// Connection errors reported by callers through the guard.
    pub caller_errors: u64,
    /// Checkout validations that made the round trip.
    pub validations_run: u64,
    /// Checkout validations skipped because the connection was used recently.
    pub validations_skipped: u64,
    /// Checkout validations that failed (the connection was discarded).
    pub validation_failures: u64,
    /// Connections created (bb8's statistics).
    pub created: u64,
    /// Connections closed because they were broken.
    pub closed_broken: u64,
    /// Connections closed because validation failed.
    pub closed_invalid: u64,
    /// Connections closed at `max_lifetime`.
    pub closed_max_lifetime: u64,
    /// Connections closed at `idle_timeout`.
    pub closed_idle_timeout: u64,
    /// Total time connections were held, in seconds.
    pub hold_secs_total: f64,
    /// Checkouts of this pool currently alive past the leak threshold.
    pub leaked: u64,
    /// Time from `get()` to a connection (or failure), in nanoseconds.
    pub acquire_latency: HistogramSnapshot,
    /// Time each connection was held, in nanoseconds.
    pub hold_time: HistogramSnapshot,
    /// Time of successful connects, in nanoseconds.
    pub connect_latency: HistogramSnapshot,
}

impl PoolMetrics {
    pub(crate) fn collect<M>(shared: &PoolShared<M>) -> Self
    where
        M: bb8::ManageConnection,
        M::Error: std::error::Error + Send + Sync + 'static,
    {
        let stats = &shared.stats;
        let state = shared.pool.state();
        let bb8 = state.statistics;
        let leaked = shared
            .tracker
            .leaks()
            .iter()
            .filter(|leak| leak.kind == shared.config.resource_kind && *leak.label == *stats.name)
            .count();
        let load = PoolStats::load;
        Self {
            name: stats.name.to_string(),
            settings_prefix: shared.config.settings_prefix.to_owned(),
            elapsed_secs: stats.started.elapsed().as_secs_f64(),
            max_size: shared.config.max_size,
            min_size: shared.config.min_size,
            connections: state.connections,
            idle: state.idle_connections,
            in_use: load(&stats.in_use),
            waiting: bb8.pending_gets(),
            peak_in_use: load(&stats.peak_in_use),
            acquires: load(&stats.acquires),
            acquires_direct: bb8.get_direct,
            acquires_waited: bb8.get_waited,
            exhaustions: load(&stats.exhaustions),
            unavailable: load(&stats.unavailable),
            connect_attempts: load(&stats.connect_attempts),
            connect_failures: load(&stats.connect_failures),
            connect_timeouts: load(&stats.connect_timeouts),
            broken: load(&stats.broken),
            caller_errors: load(&stats.caller_errors),
            validations_run: load(&stats.validations_run),
            validations_skipped: load(&stats.validations_skipped),
            validation_failures: load(&stats.validation_failures),
            created: bb8.connections_created,
            closed_broken: bb8.connections_closed_broken,
            closed_invalid: bb8.connections_closed_invalid,
            closed_max_lifetime: bb8.connections_closed_max_lifetime,
            closed_idle_timeout: bb8.connections_closed_idle_timeout,
            hold_secs_total: Duration::from_nanos(load(&stats.hold_nanos_total)).as_secs_f64(),
            leaked: u64::try_from(leaked).unwrap_or(u64::MAX),
            acquire_latency: stats.acquire_latency.snapshot(),
            hold_time: stats.hold_time.snapshot(),
            connect_latency: stats.connect_latency.snapshot(),
        }
    }

    /// `get()` calls that completed (successful, exhausted or unavailable).
    #[must_use]
    pub fn gets(&self) -> u64 {
        self.acquires + self.exhaustions + self.unavailable
    }

    /// Connection errors: failed connects + broken connections + caller-reported errors.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.connect_failures + self.broken + self.caller_errors
    }

    /// Error rate = (connect errors + broken + caller-reported) / acquires; `None` without
    /// acquires (or, with errors but no acquire at all, `Some(1.0)`).
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        if self.acquires == 0 {
            return (self.errors() > 0).then_some(1.0);
        }
        ratio(self.errors() as f64, self.acquires as f64)
    }

    /// Utilization = Σ hold time / (elapsed × max_size), in `[0, 1]`; `None` when no time
    /// elapsed.
    #[must_use]
    pub fn utilization(&self) -> Option<f64> {
        ratio(
            self.hold_secs_total,
            self.elapsed_secs * f64::from(self.max_size),
        )
        .map(clamp_unit)
    }

    /// Share of `get()` calls that timed out with the pool exhausted.
    #[must_use]
    pub fn exhaustion_rate(&self) -> Option<f64> {
        ratio(self.exhaustions as f64, self.gets() as f64)
    }

    /// Share of checkouts served without waiting.
    #[must_use]
    pub fn direct_ratio(&self) -> Option<f64> {
        ratio(
            self.acquires_direct as f64,
            (self.acquires_direct + self.acquires_waited) as f64,
        )
    }

    /// Efficiency score 0–100, or `None` before any `get()`:
    ///
    /// ```text
    /// score = weighted_score([
    ///     (0.35, 1 − error_rate),                       // connections work
    ///     (0.25, 1 − exhaustion_rate),                  // callers get a connection
    ///     (0.20, falloff(p95 acquire ms, 10, 100)),     // and get it fast
    ///     (0.10, direct_ratio),                         // without queueing
    ///     (0.10, 1 − |utilization − 0.7| / 0.7),        // the pool is neither idle nor full
    /// ])
    /// ```
    #[must_use]
    pub fn efficiency_score(&self) -> Option<f64> {
        if self.gets() == 0 {
            return None;
        }
        let p95_ms = self.acquire_latency.p95() as f64 / 1e6;
        let utilization = self.utilization().unwrap_or(0.0);
        Some(weighted_score(&[
            (0.35, 1.0 - self.error_rate().unwrap_or(0.0)),
            (0.25, 1.0 - self.exhaustion_rate().unwrap_or(0.0)),
            (0.20, falloff(p95_ms, 10.0, 100.0)),
            (0.10, self.direct_ratio().unwrap_or(1.0)),
            (
                0.10,
                1.0 - (utilization - TARGET_UTILIZATION).abs() / TARGET_UTILIZATION,
            ),
        ]))
    }
}

impl Delta for PoolMetrics {
    fn delta(&self, older: &Self) -> Self {
        let d = |newer: u64, older: u64| newer.saturating_sub(older);
        Self {
            name: self.name.clone(),
            settings_prefix: self.settings_prefix.clone(),
            elapsed_secs: (self.elapsed_secs - older.elapsed_secs).max(0.0),
            max_size: self.max_size,
            min_size: self.min_size,
            connections: self.connections,
            idle: self.idle,
            in_use: self.in_use,
            waiting: self.waiting,
            peak_in_use: self.peak_in_use,
            acquires: d(self.acquires, older.acquires),
            acquires_direct: d(self.acquires_direct, older.acquires_direct),
            acquires_waited: d(self.acquires_waited, older.acquires_waited),
            exhaustions: d(self.exhaustions, older.exhaustions),
            unavailable: d(self.unavailable, older.unavailable),
            connect_attempts: d(self.connect_attempts, older.connect_attempts),
            connect_failures: d(self.connect_failures, older.connect_failures),
            connect_timeouts: d(self.connect_timeouts, older.connect_timeouts),
            broken: d(self.broken, older.broken),
            caller_errors: d(self.caller_errors, older.caller_errors),
            validations_run: d(self.validations_run, older.validations_run),
            validations_skipped: d(self.validations_skipped, older.validations_skipped),
            validation_failures: d(self.validation_failures, older.validation_failures),
            created: d(self.created, older.created),
            closed_broken: d(self.closed_broken, older.closed_broken),
            closed_invalid: d(self.closed_invalid, older.closed_invalid),
            closed_max_lifetime: d(self.closed_max_lifetime, older.closed_max_lifetime),
            closed_idle_timeout: d(self.closed_idle_timeout, older.closed_idle_timeout),
            hold_secs_total: (self.hold_secs_total - older.hold_secs_total).max(0.0),
            leaked: self.leaked,
            acquire_latency: self.acquire_latency.delta(&older.acquire_latency),
            hold_time: self.hold_time.delta(&older.hold_time),
            connect_latency: self.connect_latency.delta(&older.connect_latency),
        }
    }
}
