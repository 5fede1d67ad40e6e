//! Health of one pool by DESIGN.md's rules, and the record of its background checks.

use std::time::{Duration, Instant};

use resync_perf_core::HealthStatus;

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
    /// One sentence per rule that fired.
    pub reasons: Vec<String>,
}

/// Judges a pool from a window of its metrics and its health-check record:
/// utilization > max → critical; any exhaustion → critical; failing health check →
/// critical; leaked connections → critical; p95 acquire wait > max → degraded; error rate
/// > max → degraded. Otherwise healthy.
#[must_use]
pub fn evaluate_health(
    window: &PoolMetrics,
    check: &HealthCheckRecord,
    thresholds: &HealthThresholds,
) -> PoolHealth {
    let mut status = HealthStatus::Healthy;
    let mut reasons = Vec::new();
    let mut fire = |level: HealthStatus, reason: String| {
        status = status.worst(level);
        reasons.push(reason);
    };
    if let Some(utilization) = window.utilization() {
        if utilization > thresholds.max_utilization {
            fire(
                HealthStatus::Critical,
                format!(
                    "utilization {utilization:.2} is above {:.2}",
                    thresholds.max_utilization
                ),
            );
        }
    }
    if window.exhaustions > 0 {
        fire(
            HealthStatus::Critical,
            format!(
                "{} get(s) timed out with the pool exhausted",
                window.exhaustions
            ),
        );
    }
    if check.is_failing() {
        fire(
            HealthStatus::Critical,
            format!(
                "health check failing ({} in a row): {}",
                check.consecutive_failures,
                check.last_error.as_deref().unwrap_or("unknown error")
            ),
        );
    }
    if window.leaked > 0 {
        fire(
            HealthStatus::Critical,
            format!(
                "{} connection(s) held past the leak threshold",
                window.leaked
            ),
        );
    }
    let p95 = Duration::from_nanos(window.acquire_latency.p95());
    if !window.acquire_latency.is_empty() && p95 > thresholds.max_acquire_wait {
        fire(
            HealthStatus::Degraded,
            format!(
                "p95 acquire wait {:.1} ms is above {} ms",
                p95.as_secs_f64() * 1e3,
                thresholds.max_acquire_wait.as_millis()
            ),
        );
    }
    if let Some(error_rate) = window.error_rate() {
        if error_rate > thresholds.max_error_rate {
            fire(
                HealthStatus::Degraded,
                format!(
                    "error rate {error_rate:.3} is above {:.3}",
                    thresholds.max_error_rate
                ),
            );
        }
    }
    PoolHealth {
        name: window.name.clone(),
        status,
        reasons,
    }
}
