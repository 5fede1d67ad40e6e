//! Health of one pool by the pool rules of `docs/ARCHITECTURE.md` (*Health rules*), and the
//! record of its background checks.

use std::time::{Duration, Instant};

use resync_perf_core::{HealthReason, HealthStatus, HealthVerdict};

use crate::metrics::PoolMetrics;

/// Thresholds of the pool health rules (settings `HEALTH_POOL_*`; these are the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// Utilization above this is critical (`HEALTH_POOL_MAX_UTILIZATION`, 0.9).
    pub max_utilization: f64,
    /// p95 acquire wait above this is degraded (`HEALTH_POOL_MAX_WAIT_MS`, 100 ms).
    pub max_acquire_wait: Duration,
    /// Error rate above this is degraded (`HEALTH_POOL_MAX_ERROR_RATE`, 0.05).
    pub max_error_rate: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            max_utilization: 0.9,
            max_acquire_wait: Duration::from_millis(100),
            max_error_rate: 0.05,
        }
    }
}

/// What the background health checks of one pool have seen.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HealthCheckRecord {
    /// Checks run.
    pub checks: u64,
    /// Checks that failed (error or timeout).
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Whether the last check succeeded; `None` before the first.
    pub last_ok: Option<bool>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// How long the last check took, in seconds.
    pub last_duration_secs: Option<f64>,
    /// When the last check finished.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub last_checked: Option<Instant>,
}

impl HealthCheckRecord {
    pub(crate) fn record(&mut self, took: Duration, outcome: Result<(), String>) {
        self.checks += 1;
        self.last_duration_secs = Some(took.as_secs_f64());
        self.last_checked = Some(Instant::now());
        match outcome {
            Ok(()) => {
                self.last_ok = Some(true);
                self.consecutive_failures = 0;
            }
            Err(error) => {
                self.last_ok = Some(false);
                self.failures += 1;
                self.consecutive_failures += 1;
                self.last_error = Some(error);
            }
        }
    }

    /// Whether the last check failed.
    #[must_use]
    pub fn is_failing(&self) -> bool {
        self.last_ok == Some(false)
    }
}

/// A pool's health verdict with the reasons behind it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PoolHealth {
    /// The pool's name.
    pub name: String,
    /// The worst status any rule gave.
    pub status: HealthStatus,
    /// One finding per rule that fired, in the order of [`evaluate_health`]'s rules.
    pub reasons: Vec<HealthReason>,
}

/// Judges a pool from a window of its metrics and its health-check record. Each rule that
/// fires adds a [`HealthReason`] whose message cites the measured figure and the threshold:
///
/// | code | fires when | status | `measured` | `threshold` |
/// |---|---|---|---|---|
/// | `pool.utilization` | utilization > `max_utilization` | critical | utilization (0–1) | `max_utilization` |
/// | `pool.exhausted` | any `get()` timed out with the pool exhausted | critical | exhaustions in the window | 0 |
/// | `pool.health_check_failing` | the last health check failed (the message has its error) | critical | consecutive failures | 0 |
/// | `pool.leaked` | connections are held past the leak threshold | critical | `leaked` | 0 |
/// | `pool.acquire_wait` | p95 acquire wait > `max_acquire_wait` | degraded | p95 in ms | `max_acquire_wait` in ms |
/// | `pool.error_rate` | error rate > `max_error_rate` | degraded | error rate (0–1) | `max_error_rate` |
///
/// Healthy, without reasons, when none fires.
#[must_use]
pub fn evaluate_health(
    window: &PoolMetrics,
    check: &HealthCheckRecord,
    thresholds: &HealthThresholds,
) -> PoolHealth {
    let mut verdict = HealthVerdict::default();
    if let Some(utilization) = window.utilization() {
        if utilization > thresholds.max_utilization {
            verdict.push(HealthReason::new(
                "pool.utilization",
                HealthStatus::Critical,
                format!(
                    "utilization {utilization:.2} is above {:.2}",
                    thresholds.max_utilization
                ),
                utilization,
                thresholds.max_utilization,
            ));
        }
    }
    if window.exhaustions > 0 {
        verdict.push(HealthReason::new(
            "pool.exhausted",
            HealthStatus::Critical,
            format!(
                "{} get(s) timed out with the pool exhausted; more than 0 is critical",
                window.exhaustions
            ),
            window.exhaustions as f64,
            0.0,
        ));
    }
    if check.is_failing() {
        verdict.push(HealthReason::new(
            "pool.health_check_failing",
            HealthStatus::Critical,
            format!(
                "health check failing ({} in a row; more than 0 is critical): {}",
                check.consecutive_failures,
                check.last_error.as_deref().unwrap_or("unknown error")
            ),
            check.consecutive_failures as f64,
            0.0,
        ));
    }
    if window.leaked > 0 {
        verdict.push(HealthReason::new(
            "pool.leaked",
            HealthStatus::Critical,
            format!(
                "{} connection(s) held past the leak threshold; more than 0 is critical",
                window.leaked
            ),
            window.leaked as f64,
            0.0,
        ));
    }
    let p95 = Duration::from_nanos(window.acquire_latency.p95());
    if !window.acquire_latency.is_empty() && p95 > thresholds.max_acquire_wait {
        let (p95_ms, max_ms) = (
            p95.as_secs_f64() * 1e3,
            thresholds.max_acquire_wait.as_secs_f64() * 1e3,
        );
        verdict.push(HealthReason::new(
            "pool.acquire_wait",
            HealthStatus::Degraded,
            format!("p95 acquire wait {p95_ms:.1} ms is above {max_ms} ms"),
            p95_ms,
            max_ms,
        ));
    }
    if let Some(error_rate) = window.error_rate() {
        if error_rate > thresholds.max_error_rate {
            verdict.push(HealthReason::new(
                "pool.error_rate",
                HealthStatus::Degraded,
                format!(
                    "error rate {error_rate:.3} is above {:.3}",
                    thresholds.max_error_rate
                ),
                error_rate,
                thresholds.max_error_rate,
            ));
        }
    }
    PoolHealth {
        name: window.name.clone(),
        status: verdict.status,
        reasons: verdict.reasons,
    }
}
