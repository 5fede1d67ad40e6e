//! [`PoolMetrics`]: a snapshot of one pool's figures, its windows and its efficiency score.

use std::time::Duration;

use resync_perf_core::{
    clamp_unit, falloff, ratio, weighted_score, Delta, Histogram, HistogramSnapshot,
};

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
    /// Configured `min_size`.
    pub min_size: u32,
    /// Open connections (idle + in use).
    pub connections: u32,
    /// Idle connections (in the pool's stash and in bb8).
    pub idle: u32,
    /// Connections checked out now.
    pub in_use: u64,
    /// `get()` calls waiting for a connection now (the pool's own gauge).
    pub waiting: u64,
    /// Most connections ever checked out at once (not windowed).
    pub peak_in_use: u64,
    /// Successful checkouts (`acquires_direct + acquires_waited`).
    pub acquires: u64,
    /// Checkouts served on the first poll, without waiting (recorded as 0 ns in
    /// `acquire_latency`).
    pub acquires_direct: u64,
    /// Checkouts that had to wait (for a release, a connect or a validation round trip).
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
    /// Connections the backend reported broken when returned (caller-reported ones are
    /// counted in `caller_errors` only).
    pub broken: u64,
    /// Connection errors reported by callers through the guard.
    pub caller_errors: u64,
    /// Checkout validations that made the round trip.
    pub validations_run: u64,
    /// Checkouts whose connection skipped the round trip because it was used recently
    /// (derived: acquires − round trips that passed).
    pub validations_skipped: u64,
    /// Checkout validations that failed, including connections found broken in the pool's
    /// stash (the connection was discarded).
    pub validation_failures: u64,
    /// Connections created: bb8's (its statistics), the fresh ones of
    /// `MonitoredPool::get_fresh_owned` and those the stash's keeper opened for `min_size`.
    pub created: u64,
    /// Connections closed on return because they were broken (reported by a caller, or by the
    /// backend).
    pub closed_broken: u64,
    /// Connections closed because checkout validation failed (equals `validation_failures`).
    pub closed_invalid: u64,
    /// Connections closed at `max_lifetime`: when returned past it, or when a checkout found
    /// an idle one past it (such a connection is never handed out).
    pub closed_max_lifetime: u64,
    /// Connections closed at `idle_timeout`.
    pub closed_idle_timeout: u64,
    /// Total time connections were held, in seconds (the hold histogram's sum).
    pub hold_secs_total: f64,
    /// Checkouts of this pool currently held past the leak threshold, as of the tracker's
    /// last leak scan (`ResourceTracker::spawn_leak_scanner`, which the server runs, or
    /// `leaks()` / `stats()`): a checkout is counted once a scan has seen it past the
    /// threshold, so the figure lags by at most one scan — and stays 0 while nothing scans —
    /// and it is uncounted the moment it is returned. Reading it does not scan (see
    /// `LeaseGroup::leaked_now`). A gauge: a window keeps the newer value.
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
        let load = PoolStats::load;
        let checkouts = stats.checkout_totals();
        let (direct, waited) = (checkouts.direct, checkouts.waited);
        let acquires = direct + waited;
        let validations_run = load(&stats.validations_run);
        let validations_passed =
            validations_run.saturating_sub(load(&stats.validation_run_failures));
        // Direct checkouts are not timed on the hot path: they are zeros of the histogram.
        let mut acquire_latency = checkouts.acquire_latency;
        if direct > 0 {
            let zeros = Histogram::new();
            zeros.record_n(0, direct);
            acquire_latency.merge(&zeros.snapshot());
        }
        let hold_time = checkouts.hold_time;
        Self {
            name: stats.name.to_string(),
            settings_prefix: shared.config.settings_prefix.to_owned(),
            elapsed_secs: stats.started.elapsed().as_secs_f64(),
            max_size: shared.config.max_size,
            min_size: shared.config.min_size,
            connections: state.connections,
            // bb8 counts the stash's connections as checked out. Read apart from bb8's state, a
            // connection moving between the two could be seen twice: never more than are open.
            idle: (state.idle_connections + shared.stash.len()).min(state.connections),
            in_use: stats.in_use(),
            waiting: stats.waiting(),
            peak_in_use: stats.peak_in_use(),
            acquires,
            acquires_direct: direct,
            acquires_waited: waited,
            exhaustions: load(&stats.exhaustions),
            unavailable: load(&stats.unavailable),
            connect_attempts: load(&stats.connect_attempts),
            connect_failures: load(&stats.connect_failures),
            connect_timeouts: load(&stats.connect_timeouts),
            broken: load(&stats.broken),
            caller_errors: load(&stats.caller_errors),
            validations_run,
            // Every checkout passed exactly one validation: skipped, or a round trip.
            validations_skipped: acquires.saturating_sub(validations_passed),
            validation_failures: load(&stats.validation_failures),
            created: bb8.connections_created
                + load(&stats.fresh_connections)
                + load(&stats.keeper_connections),
            // The wrapper retires connections at `max_lifetime` by telling bb8 they are broken
            // (on return) or invalid (at checkout), so bb8's counts of those mix reasons: the
            // pool's own counts, each made where the decision is, are used instead (and never
            // go down between two snapshots).
            closed_broken: load(&stats.closed_broken),
            closed_invalid: load(&stats.validation_failures),
            closed_max_lifetime: bb8.connections_closed_max_lifetime + load(&stats.expired),
            closed_idle_timeout: bb8.connections_closed_idle_timeout,
            hold_secs_total: Duration::from_nanos(hold_time.sum()).as_secs_f64(),
            // One atomic load: the tracker's scans and this pool's returns keep the count.
            leaked: shared.leases.leaked_now(),
            acquire_latency,
            hold_time,
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

    /// Error rate = (connect errors + broken + caller-reported) / acquires, at most 1;
    /// `None` without acquires (or, with errors but no acquire at all, `Some(1.0)`).
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        if self.acquires == 0 {
            return (self.errors() > 0).then_some(1.0);
        }
        ratio(self.errors() as f64, self.acquires as f64).map(|rate| rate.min(1.0))
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
