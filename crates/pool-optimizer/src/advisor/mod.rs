//! The sizing advisor: advice for a person to apply (bb8 cannot resize a live pool), one
//! function per rule over what the rules share (the window, its queueing model, the evidence).

mod timeouts;

use resync_perf_core::{Recommendation, SettingChange, Severity};

use crate::config::PoolConfig;
use crate::erlang::{erlang_c, erlang_c_size};
use crate::health::{HealthCheckRecord, HealthThresholds};
use crate::metrics::PoolMetrics;

pub use timeouts::{GENEROUS_FACTOR, MIN_CONNECTS, NEAR_TIMEOUT};

#[cfg(test)]
mod tests;

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
    let mut advice: Vec<Recommendation> = check
        .and_then(|check| unhealthy(&component, check))
        .into_iter()
        .collect();
    if let Some(insufficient) = insufficient_data(&component, window) {
        advice.push(insufficient);
        return advice;
    }
    let judged = Judged::new(component, window, config, thresholds);
    let connect = timeouts::connect_timeout_advice(&judged.component, window, config);
    let suggested_min_size = judged.sizing.as_ref().map(|s| s.suggested_min_size);
    advice.extend(exhausted(&judged));
    advice.extend(grow_max_size(&judged));
    advice.extend(shrink_max_size(&judged));
    advice.extend(timeouts::idle_churn_advice(
        &judged.component,
        window,
        config,
        suggested_min_size,
    ));
    advice.extend(timeouts::lifetime_advice(&judged.component, window, config));
    advice.extend(slow_acquire(&judged));
    advice.extend(high_error_rate(&judged, connect.as_ref()));
    advice.extend(connect);
    advice
}

/// A window with enough checkouts to judge, and what the rules past that check share: the
/// queueing model and the measurements every sizing item carries.
struct Judged<'a> {
    component: String,
    window: &'a PoolMetrics,
    config: &'a PoolConfig,
    thresholds: &'a HealthThresholds,
    sizing: Option<Sizing>,
    p95_wait_ms: f64,
    utilization: f64,
}

impl<'a> Judged<'a> {
    fn new(
        component: String,
        window: &'a PoolMetrics,
        config: &'a PoolConfig,
        thresholds: &'a HealthThresholds,
    ) -> Self {
        Self {
            component,
            window,
            config,
            thresholds,
            sizing: Sizing::from_window(window),
            p95_wait_ms: window.acquire_latency.p95() as f64 / 1e6,
            utilization: window.utilization().unwrap_or(0.0),
        }
    }

    /// Whether the p95 acquire wait is above the threshold.
    fn callers_waited(&self) -> bool {
        self.p95_wait_ms > self.thresholds.max_acquire_wait.as_secs_f64() * 1e3
    }

    /// A recommendation about this pool, with the sizing evidence attached.
    fn recommend(&self, code: &str, severity: Severity, message: String) -> Recommendation {
        self.attach(Recommendation::new(
            &self.component,
            code,
            severity,
            message,
        ))
    }

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
        match &self.sizing {
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

/// `pool.unhealthy`: the last health check failed.
fn unhealthy(component: &str, check: &HealthCheckRecord) -> Option<Recommendation> {
    if !check.is_failing() {
        return None;
    }
    Some(
        Recommendation::new(
            component,
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
    )
}

/// `pool.insufficient_data`: fewer than [`MIN_ACQUIRES`] checkouts; nothing else is said.
fn insufficient_data(component: &str, window: &PoolMetrics) -> Option<Recommendation> {
    if window.acquires >= MIN_ACQUIRES {
        return None;
    }
    Some(
        Recommendation::insufficient_data(
            component,
            "pool",
            format!(
                "{} checkouts in {:.0} s: too few to judge the pool's size (need {MIN_ACQUIRES})",
                window.acquires, window.elapsed_secs
            ),
        )
        .with_evidence("acquires", window.acquires as f64)
        .with_evidence("window_secs", window.elapsed_secs),
    )
}

/// `pool.exhausted`: gets timed out with every connection in use. Grow `*_MAX_SIZE` — or,
/// when connections are leaked, fix the leak (no size change).
fn exhausted(judged: &Judged<'_>) -> Option<Recommendation> {
    let window = judged.window;
    if window.exhaustions == 0 {
        return None;
    }
    let exhausted =
        |message: String| judged.recommend("pool.exhausted", Severity::Critical, message);
    if window.leaked > 0 {
        // Connections that never come back exhaust any size: growing hides the bug.
        return Some(
            exhausted(format!(
                "{} get(s) timed out with all {} connections in use while {} connection(s) are leaked: fix the leak (see the tracker's leak report) before growing the pool",
                window.exhaustions, window.max_size, window.leaked
            ))
            .with_evidence("leaked", window.leaked as f64),
        );
    }
    let suggested = judged
        .sizing
        .as_ref()
        .map_or(0, |s| s.suggested_max_size)
        .max(window.max_size + window.max_size.div_ceil(4));
    Some(
        exhausted(format!(
            "{} get(s) timed out with all {} connections in use",
            window.exhaustions, window.max_size
        ))
        .with_change(judged.max_change(suggested)),
    )
}

/// `pool.grow_max_size`: without exhaustion (`pool.exhausted` says it then), the Erlang-C
/// size with headroom is above `max_size`.
fn grow_max_size(judged: &Judged<'_>) -> Option<Recommendation> {
    let window = judged.window;
    let s = judged.sizing.as_ref()?;
    if window.exhaustions > 0 || s.suggested_max_size <= window.max_size {
        return None;
    }
    Some(
        judged
            .recommend(
                "pool.grow_max_size",
                Severity::Warning,
                format!(
                    "offered load {:.1} needs {}{} connections to keep the wait probability under 5 %; max_size is {}",
                    s.offered_load,
                    if s.erlang_c_capped { "more than " } else { "" },
                    s.erlang_c_size,
                    window.max_size
                ),
            )
            .with_change(judged.max_change(s.suggested_max_size)),
    )
}

/// `pool.shrink_max_size`: the Erlang-C size with headroom is at most half of `max_size`, with
/// no exhaustion and the p95 wait under the threshold; never below the observed peak in use.
fn shrink_max_size(judged: &Judged<'_>) -> Option<Recommendation> {
    let window = judged.window;
    let s = judged.sizing.as_ref()?;
    let peak = u32::try_from(window.peak_in_use).unwrap_or(u32::MAX);
    let target = s.suggested_max_size.max(peak);
    let shrinks = window.exhaustions == 0
        && s.suggested_max_size <= window.max_size / 2
        && !judged.callers_waited()
        && target < window.max_size;
    if !shrinks {
        return None;
    }
    Some(
        judged
            .recommend(
                "pool.shrink_max_size",
                Severity::Info,
                format!(
                    "offered load {:.1} is served by {} connections (with headroom {}, peak in use {peak}); max_size {} holds idle capacity",
                    s.offered_load, s.erlang_c_size, s.suggested_max_size, window.max_size
                ),
            )
            .with_change(judged.max_change(target)),
    )
}

/// `pool.slow_acquire`: the p95 acquire wait is above the threshold; with a larger suggested
/// size, the change to it.
fn slow_acquire(judged: &Judged<'_>) -> Option<Recommendation> {
    if !judged.callers_waited() {
        return None;
    }
    let rec = judged.recommend(
        "pool.slow_acquire",
        Severity::Warning,
        format!(
            "p95 acquire wait {:.1} ms is above {} ms",
            judged.p95_wait_ms,
            judged.thresholds.max_acquire_wait.as_millis()
        ),
    );
    Some(
        match judged
            .sizing
            .as_ref()
            .filter(|s| s.suggested_max_size > judged.window.max_size)
        {
            Some(s) => rec.with_change(judged.max_change(s.suggested_max_size)),
            None => rec,
        },
    )
}

/// `pool.high_error_rate`: the error rate is above the threshold; when the connect-timeout
/// advice (`connect`) raises the timeout, its change.
fn high_error_rate(
    judged: &Judged<'_>,
    connect: Option<&Recommendation>,
) -> Option<Recommendation> {
    let window = judged.window;
    let error_rate = window.error_rate().unwrap_or(0.0);
    let high = error_rate > judged.thresholds.max_error_rate;
    if !high {
        return None;
    }
    let rec = judged
        .recommend(
            "pool.high_error_rate",
            Severity::Warning,
            format!(
                "{} connection errors for {} checkouts (rate {error_rate:.3})",
                window.errors(),
                window.acquires
            ),
        )
        .with_evidence("error_rate", error_rate)
        .with_evidence("connect_failures", window.connect_failures as f64)
        .with_evidence("connect_timeouts", window.connect_timeouts as f64)
        .with_evidence("broken", window.broken as f64)
        .with_evidence("caller_errors", window.caller_errors as f64);
    // Only a timeout raise backed by connect latency belongs here.
    Some(
        match connect
            .filter(|rec| rec.code == "pool.raise_connect_timeout")
            .and_then(|rec| rec.change.clone())
        {
            Some(change) => rec.with_change(change),
            None => rec,
        },
    )
}
