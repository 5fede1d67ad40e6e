//! The sizing advisor: advice for a person to apply (bb8 cannot resize a live pool).

use std::time::Duration;

use resync_perf_core::{Recommendation, SettingChange, Severity};

use crate::config::PoolConfig;
use crate::erlang::{erlang_c, erlang_c_size};
use crate::health::{HealthCheckRecord, HealthThresholds};
use crate::metrics::PoolMetrics;

/// Fewest checkouts in a window before the advisor judges the pool.
pub const MIN_ACQUIRES: u64 = 50;
/// Target probability that a checkout waits (Erlang C).
pub const MAX_WAIT_PROBABILITY: f64 = 0.05;
/// Headroom multiplied onto the Erlang-C size for the suggested `max_size`.
pub const HEADROOM: f64 = 1.25;
/// The suggested `max_size` never exceeds this multiple of the current one (one step of advice
/// at a time; figures measured on a saturated pool under-state the demand).
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
    /// The smallest size whose Erlang-C wait probability is ≤ 5 %.
    pub erlang_c_size: u32,
    /// That size's wait probability.
    pub wait_probability: f64,
    /// Suggested `max_size`: the Erlang-C size with headroom, clamped to
    /// `[max(min_size, 1), MAX_GROWTH_FACTOR × max_size]`.
    pub suggested_max_size: u32,
    /// Suggested `min_size`: the steady load ⌈L⌉, at most the suggested `max_size`.
    pub suggested_min_size: u32,
}

impl Sizing {
    /// The model of `window`, or `None` without checkouts, releases or elapsed time.
    #[must_use]
    pub fn from_window(window: &PoolMetrics) -> Option<Self> {
        if window.elapsed_secs <= 0.0 || window.acquires == 0 || window.hold_time.is_empty() {
            return None;
        }
        let arrival_rate = window.acquires as f64 / window.elapsed_secs;
        let mean_hold_secs = window.hold_time.mean() / 1e9;
        let offered_load = arrival_rate * mean_hold_secs;
        let size = erlang_c_size(offered_load, MAX_WAIT_PROBABILITY);
        let floor = window.min_size.max(1);
        let ceiling = window.max_size.saturating_mul(MAX_GROWTH_FACTOR).max(floor);
        let with_headroom = (f64::from(size) * HEADROOM).ceil() as u32;
        let suggested_max_size = with_headroom.clamp(floor, ceiling);
        let suggested_min_size = (offered_load.ceil() as u32).min(suggested_max_size);
        Some(Self {
            arrival_rate,
            mean_hold_secs,
            offered_load,
            erlang_c_size: size,
            wait_probability: erlang_c(size, offered_load),
            suggested_max_size,
            suggested_min_size,
        })
    }
}

/// Recommendations for one pool from a window of its metrics (the difference of two
/// snapshots, or everything since start), its configuration and its health-check record.
///
/// Codes: `pool.unhealthy` (failing health check), `pool.insufficient_data` (fewer than
/// [`MIN_ACQUIRES`] checkouts), `pool.exhausted`, `pool.grow_max_size`,
/// `pool.shrink_max_size`, `pool.raise_min_size`, `pool.slow_acquire`,
/// `pool.high_error_rate`. Each carries its evidence; sizing items carry λ, W, L, the
/// pre-headroom Erlang-C size, p95 wait, utilization and the timeouts.
#[must_use]
pub fn advise(
    window: &PoolMetrics,
    config: &PoolConfig,
    check: Option<&HealthCheckRecord>,
    thresholds: &HealthThresholds,
) -> Vec<Recommendation> {
    let component = format!("pool:{}", window.name);
    let key = |suffix: &str| config.key(suffix);
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
    let p95_wait_ms = window.acquire_latency.p95() as f64 / 1e6;
    let utilization = window.utilization().unwrap_or(0.0);
    let error_rate = window.error_rate().unwrap_or(0.0);
    let evidence = |rec: Recommendation, sizing: Option<&Sizing>| {
        let rec = rec
            .with_evidence("p95_wait_ms", p95_wait_ms)
            .with_evidence("utilization", utilization)
            .with_evidence("exhaustions", window.exhaustions as f64)
            .with_evidence(
                "acquire_timeout_secs",
                config.effective_acquire_timeout().as_secs_f64(),
            )
            .with_evidence("connect_timeout_secs", config.connect_timeout.as_secs_f64())
            .with_evidence("max_size", f64::from(window.max_size));
        match sizing {
            Some(s) => rec
                .with_evidence("arrival_rate_per_sec", s.arrival_rate)
                .with_evidence("mean_hold_secs", s.mean_hold_secs)
                .with_evidence("offered_load", s.offered_load)
                .with_evidence("erlang_c_size", f64::from(s.erlang_c_size))
                .with_evidence("erlang_c_wait_probability", s.wait_probability),
            None => rec,
        }
    };
    let sizing = Sizing::from_window(window);
    let max_change =
        |suggested: u32| SettingChange::new(key("MAX_SIZE"), window.max_size, suggested);
    if window.exhaustions > 0 {
        let suggested = sizing
            .map_or(0, |s| s.suggested_max_size)
            .max(window.max_size + window.max_size.div_ceil(4));
        advice.push(
            evidence(
                Recommendation::new(
                    &component,
                    "pool.exhausted",
                    Severity::Critical,
                    format!(
                        "{} get(s) timed out with all {} connections in use",
                        window.exhaustions, window.max_size
                    ),
                ),
                sizing.as_ref(),
            )
            .with_change(max_change(suggested)),
        );
    } else if let Some(s) = sizing.as_ref() {
        if s.suggested_max_size > window.max_size {
            advice.push(
                evidence(
                    Recommendation::new(
                        &component,
                        "pool.grow_max_size",
                        Severity::Warning,
                        format!(
                            "offered load {:.1} needs {} connections to keep the wait probability under 5 %; max_size is {}",
                            s.offered_load, s.erlang_c_size, window.max_size
                        ),
                    ),
                    Some(s),
                )
                .with_change(max_change(s.suggested_max_size)),
            );
        } else if s.suggested_max_size <= window.max_size / 2 {
            advice.push(
                evidence(
                    Recommendation::new(
                        &component,
                        "pool.shrink_max_size",
                        Severity::Info,
                        format!(
                            "offered load {:.1} is served by {} connections (with headroom {}); max_size {} holds idle capacity",
                            s.offered_load, s.erlang_c_size, s.suggested_max_size, window.max_size
                        ),
                    ),
                    Some(s),
                )
                .with_change(max_change(s.suggested_max_size)),
            );
        }
    }
    if let Some(s) = sizing.as_ref() {
        // Connections made while the pool was in use, or closed idle and made again, mean
        // callers paid for connects a warm minimum would have saved.
        if s.suggested_min_size > window.min_size && window.created > 0 {
            advice.push(
                evidence(
                    Recommendation::new(
                        &component,
                        "pool.raise_min_size",
                        Severity::Info,
                        format!(
                            "steady load keeps {} connections busy but min_size is {}; {} connections were made in the window",
                            s.suggested_min_size, window.min_size, window.created
                        ),
                    ),
                    Some(s),
                )
                .with_evidence("connections_created", window.created as f64)
                .with_evidence("closed_idle_timeout", window.closed_idle_timeout as f64)
                .with_change(SettingChange::new(
                    key("MIN_SIZE"),
                    window.min_size,
                    s.suggested_min_size,
                )),
            );
        }
    }
    if p95_wait_ms > thresholds.max_acquire_wait.as_secs_f64() * 1e3 {
        let mut rec = evidence(
            Recommendation::new(
                &component,
                "pool.slow_acquire",
                Severity::Warning,
                format!(
                    "p95 acquire wait {p95_wait_ms:.1} ms is above {} ms",
                    thresholds.max_acquire_wait.as_millis()
                ),
            ),
            sizing.as_ref(),
        );
        if let Some(s) = sizing
            .as_ref()
            .filter(|s| s.suggested_max_size > window.max_size)
        {
            rec = rec.with_change(max_change(s.suggested_max_size));
        }
        advice.push(rec);
    }
    if error_rate > thresholds.max_error_rate {
        let mut rec = evidence(
            Recommendation::new(
                &component,
                "pool.high_error_rate",
                Severity::Warning,
                format!(
                    "{} connection errors for {} checkouts (rate {error_rate:.3})",
                    window.errors(),
                    window.acquires
                ),
            ),
            sizing.as_ref(),
        )
        .with_evidence("error_rate", error_rate)
        .with_evidence("connect_failures", window.connect_failures as f64)
        .with_evidence("connect_timeouts", window.connect_timeouts as f64)
        .with_evidence("broken", window.broken as f64)
        .with_evidence("caller_errors", window.caller_errors as f64);
        if window.connect_timeouts > 0 {
            rec = rec.with_change(connect_timeout_change(window, config));
        }
        advice.push(rec);
    }
    advice
}

/// Connects that time out while successful ones take a while: give the connect timeout room
/// for three times the observed p99 connect latency (at least double the current value).
fn connect_timeout_change(window: &PoolMetrics, config: &PoolConfig) -> SettingChange {
    let current = config.connect_timeout.as_secs();
    let p99 = Duration::from_nanos(window.connect_latency.p99());
    let suggested = (p99 * 3).as_secs().max(current * 2).max(1);
    SettingChange::new(config.key("CONNECT_TIMEOUT"), current, suggested)
}
