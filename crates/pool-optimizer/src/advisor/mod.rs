//! The sizing advisor: advice for a person to apply (bb8 cannot resize a live pool).

mod timeouts;

use resync_perf_core::{Recommendation, SettingChange, Severity};

use crate::config::PoolConfig;
use crate::erlang::{erlang_c, erlang_c_size};
use crate::health::{HealthCheckRecord, HealthThresholds};
use crate::metrics::PoolMetrics;

pub use timeouts::{GENEROUS_FACTOR, MIN_CONNECTS, NEAR_TIMEOUT};

/// Fewest checkouts in a window before the advisor judges the pool.
pub const MIN_ACQUIRES: u64 = 50;
/// Target probability that a checkout waits (Erlang C).
pub const MAX_WAIT_PROBABILITY: f64 = 0.05;
/// Headroom multiplied onto the Erlang-C size for the suggested `max_size`.
pub const HEADROOM: f64 = 1.25;
/// The suggested `max_size` never exceeds this multiple of the current one (one step of advice
/// at a time; figures measured on a saturated pool under-state the demand). It also bounds
/// the Erlang-C search.
pub const MAX_GROWTH_FACTOR: u32 = 4;

/// The queueing model of one window of a pool's load.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Sizing {
    /// Arrival rate λ: checkouts per second.
    pub arrival_rate: f64,
    /// Mean hold time W, in seconds.
    pub mean_hold_secs: f64,
    /// Offered load L = λ·W, in Erlangs (connections busy on average).
    pub offered_load: f64,
    /// The smallest size whose Erlang-C wait probability is ≤ 5 %, searched up to
    /// `MAX_GROWTH_FACTOR × max_size`; when no size up to that cap is enough, the cap
    /// (and `erlang_c_capped` is set: the answer is "more than this").
    pub erlang_c_size: u32,
    /// Whether the search stopped at its cap without meeting the target.
    pub erlang_c_capped: bool,
    /// That size's wait probability.
    pub wait_probability: f64,
    /// Suggested `max_size`: the Erlang-C size with headroom, clamped to
    /// `[max(min_size, 1), MAX_GROWTH_FACTOR × max_size]`.
    pub suggested_max_size: u32,
    /// Suggested `min_size`: the steady load ⌈L⌉, at most the suggested `max_size`.
    pub suggested_min_size: u32,
}

impl Sizing {
    /// The model of `window`, or `None` without checkouts, releases or elapsed time (or
    /// with a non-finite load).
    #[must_use]
    pub fn from_window(window: &PoolMetrics) -> Option<Self> {
        if window.elapsed_secs <= 0.0 || window.acquires == 0 || window.hold_time.is_empty() {
            return None;
        }
        let arrival_rate = window.acquires as f64 / window.elapsed_secs;
        let mean_hold_secs = window.hold_time.mean() / 1e9;
        let offered_load = arrival_rate * mean_hold_secs;
        if !offered_load.is_finite() {
            return None;
        }
        let floor = window.min_size.max(1);
        let ceiling = window.max_size.saturating_mul(MAX_GROWTH_FACTOR).max(floor);
        let (size, capped) = match erlang_c_size(offered_load, MAX_WAIT_PROBABILITY, ceiling) {
            Some(size) => (size, false),
            None => (ceiling, true),
        };
        let suggested_max_size = if capped {
            ceiling
        } else {
            ((f64::from(size) * HEADROOM).ceil() as u32).clamp(floor, ceiling)
        };
        let suggested_min_size = (offered_load.ceil() as u32).min(suggested_max_size);
        Some(Self {
            arrival_rate,
            mean_hold_secs,
            offered_load,
            erlang_c_size: size,
            erlang_c_capped: capped,
            wait_probability: erlang_c(size, offered_load),
            suggested_max_size,
            suggested_min_size,
        })
    }
}

/// Recommendations for one pool from a window of its metrics (the difference of two
/// snapshots, or everything since start), its configuration and its health-check record.
///
/// Codes (stable; each carries its evidence and, where a setting helps, a change on the real
/// key):
///
/// - `pool.unhealthy` — the health check is failing.
/// - `pool.insufficient_data` — fewer than [`MIN_ACQUIRES`] checkouts; nothing else is said.
/// - `pool.exhausted` — gets timed out with every connection in use: grow `*_MAX_SIZE`, or,
///   when connections are leaked, fix the leak (no size change; evidence `leaked`).
/// - `pool.grow_max_size` — the Erlang-C size with headroom is above `max_size`.
/// - `pool.shrink_max_size` — it is at most half of `max_size`, with no exhaustion and the
///   p95 wait under the threshold; never below the observed peak in use.
/// - `pool.raise_min_size` / `pool.raise_idle_timeout` — connections closed idle were made
///   again in the window (see the timeout rules in the crate README).
/// - `pool.raise_max_lifetime` — most connections made replaced ones aged out.
/// - `pool.raise_connect_timeout` / `pool.lower_connect_timeout` — from connect latency.
/// - `pool.slow_acquire` — p95 acquire wait above the threshold.
/// - `pool.high_error_rate` — error rate above the threshold.
#[must_use]
pub fn advise(
    window: &PoolMetrics,
    config: &PoolConfig,
    check: Option<&HealthCheckRecord>,
    thresholds: &HealthThresholds,
) -> Vec<Recommendation> {
    let component = format!("pool:{}", window.name);
    let mut advice = Vec::new();
    if let Some(check) = check.filter(|check| check.is_failing()) {
        advice.push(
            Recommendation::new(
                &component,
                "pool.unhealthy",
                Severity::Critical,
                format!(
                    "health check failing: {}",
                    check.last_error.as_deref().unwrap_or("unknown error")
                ),
            )
            .with_evidence("consecutive_failures", check.consecutive_failures as f64)
            .with_evidence(
                "last_check_secs",
                check.last_duration_secs.unwrap_or(f64::NAN),
            ),
        );
    }
    if window.acquires < MIN_ACQUIRES {
        advice.push(
            Recommendation::insufficient_data(
                &component,
                "pool",
                format!(
                    "{} checkouts in {:.0} s: too few to judge the pool's size (need {MIN_ACQUIRES})",
                    window.acquires, window.elapsed_secs
                ),
            )
            .with_evidence("acquires", window.acquires as f64)
            .with_evidence("window_secs", window.elapsed_secs),
        );
        return advice;
    }
    let sizing = Sizing::from_window(window);
    let evidence = Evidence {
        window,
        config,
        sizing: sizing.as_ref(),
        p95_wait_ms: window.acquire_latency.p95() as f64 / 1e6,
        utilization: window.utilization().unwrap_or(0.0),
    };
    size_advice(&component, &evidence, thresholds, &mut advice);
    advice.extend(timeouts::idle_churn_advice(
        &component,
        window,
        config,
        sizing.as_ref().map(|s| s.suggested_min_size),
    ));
    advice.extend(timeouts::lifetime_advice(&component, window, config));
    let connect = timeouts::connect_timeout_advice(&component, window, config);
    if evidence.p95_wait_ms > thresholds.max_acquire_wait.as_secs_f64() * 1e3 {
        let mut rec = evidence.attach(Recommendation::new(
            &component,
            "pool.slow_acquire",
            Severity::Warning,
            format!(
                "p95 acquire wait {:.1} ms is above {} ms",
                evidence.p95_wait_ms,
                thresholds.max_acquire_wait.as_millis()
            ),
        ));
        if let Some(s) = sizing
            .as_ref()
            .filter(|s| s.suggested_max_size > window.max_size)
        {
            rec = rec.with_change(evidence.max_change(s.suggested_max_size));
        }
        advice.push(rec);
    }
    let error_rate = window.error_rate().unwrap_or(0.0);
    if error_rate > thresholds.max_error_rate {
        let mut rec = evidence
            .attach(Recommendation::new(
                &component,
                "pool.high_error_rate",
                Severity::Warning,
                format!(
                    "{} connection errors for {} checkouts (rate {error_rate:.3})",
                    window.errors(),
                    window.acquires
                ),
            ))
            .with_evidence("error_rate", error_rate)
            .with_evidence("connect_failures", window.connect_failures as f64)
            .with_evidence("connect_timeouts", window.connect_timeouts as f64)
            .with_evidence("broken", window.broken as f64)
            .with_evidence("caller_errors", window.caller_errors as f64);
        // Only a timeout raise backed by connect latency belongs here.
        if let Some(change) = connect
            .as_ref()
            .filter(|rec| rec.code == "pool.raise_connect_timeout")
            .and_then(|rec| rec.change.clone())
        {
            rec = rec.with_change(change);
        }
        advice.push(rec);
    }
    advice.extend(connect);
    advice
}

/// The measurements every sizing item carries.
struct Evidence<'a> {
    window: &'a PoolMetrics,
    config: &'a PoolConfig,
    sizing: Option<&'a Sizing>,
    p95_wait_ms: f64,
    utilization: f64,
}

impl Evidence<'_> {
    fn attach(&self, rec: Recommendation) -> Recommendation {
        let rec = rec
            .with_evidence("p95_wait_ms", self.p95_wait_ms)
            .with_evidence("utilization", self.utilization)
            .with_evidence("exhaustions", self.window.exhaustions as f64)
            .with_evidence("peak_in_use", self.window.peak_in_use as f64)
            .with_evidence(
                "acquire_timeout_secs",
                self.config.effective_acquire_timeout().as_secs_f64(),
            )
            .with_evidence(
                "connect_timeout_secs",
                self.config.connect_timeout.as_secs_f64(),
            )
            .with_evidence("max_size", f64::from(self.window.max_size));
        match self.sizing {
            Some(s) => rec
                .with_evidence("arrival_rate_per_sec", s.arrival_rate)
                .with_evidence("mean_hold_secs", s.mean_hold_secs)
                .with_evidence("offered_load", s.offered_load)
                .with_evidence("erlang_c_size", f64::from(s.erlang_c_size))
                .with_evidence(
                    "erlang_c_size_capped",
                    if s.erlang_c_capped { 1.0 } else { 0.0 },
                )
                .with_evidence("erlang_c_wait_probability", s.wait_probability),
            None => rec,
        }
    }

    fn max_change(&self, suggested: u32) -> SettingChange {
        SettingChange::new(self.config.key("MAX_SIZE"), self.window.max_size, suggested)
    }
}

/// `pool.exhausted`, `pool.grow_max_size` or `pool.shrink_max_size`.
fn size_advice(
    component: &str,
    evidence: &Evidence<'_>,
    thresholds: &HealthThresholds,
    advice: &mut Vec<Recommendation>,
) {
    let window = evidence.window;
    if window.exhaustions > 0 {
        let exhausted = |message: String| {
            evidence.attach(Recommendation::new(
                component,
                "pool.exhausted",
                Severity::Critical,
                message,
            ))
        };
        let rec = if window.leaked > 0 {
            // Connections that never come back exhaust any size: growing hides the bug.
            exhausted(format!(
                "{} get(s) timed out with all {} connections in use while {} connection(s) are leaked: fix the leak (see the tracker's leak report) before growing the pool",
                window.exhaustions, window.max_size, window.leaked
            ))
            .with_evidence("leaked", window.leaked as f64)
        } else {
            let suggested = evidence
                .sizing
                .map_or(0, |s| s.suggested_max_size)
                .max(window.max_size + window.max_size.div_ceil(4));
            exhausted(format!(
                "{} get(s) timed out with all {} connections in use",
                window.exhaustions, window.max_size
            ))
            .with_change(evidence.max_change(suggested))
        };
        advice.push(rec);
        return;
    }
    let Some(s) = evidence.sizing else { return };
    if s.suggested_max_size > window.max_size {
        advice.push(
            evidence
                .attach(Recommendation::new(
                    component,
                    "pool.grow_max_size",
                    Severity::Warning,
                    format!(
                        "offered load {:.1} needs {}{} connections to keep the wait probability under 5 %; max_size is {}",
                        s.offered_load,
                        if s.erlang_c_capped { "more than " } else { "" },
                        s.erlang_c_size,
                        window.max_size
                    ),
                ))
                .with_change(evidence.max_change(s.suggested_max_size)),
        );
        return;
    }
    let callers_waited = evidence.p95_wait_ms > thresholds.max_acquire_wait.as_secs_f64() * 1e3;
    let peak = u32::try_from(window.peak_in_use).unwrap_or(u32::MAX);
    let target = s.suggested_max_size.max(peak);
    if s.suggested_max_size <= window.max_size / 2 && !callers_waited && target < window.max_size {
        advice.push(
            evidence
                .attach(Recommendation::new(
                    component,
                    "pool.shrink_max_size",
                    Severity::Info,
                    format!(
                        "offered load {:.1} is served by {} connections (with headroom {}, peak in use {peak}); max_size {} holds idle capacity",
                        s.offered_load, s.erlang_c_size, s.suggested_max_size, window.max_size
                    ),
                ))
                .with_change(evidence.max_change(target)),
        );
    }
}
