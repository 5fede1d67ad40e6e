//! A pool as the API shows it.

use std::time::Duration;

use resync_pool_optimizer::{HealthCheckRecord, PoolConfig, PoolMetrics};
use serde::Serialize;
use utoipa::ToSchema;

use super::LatencySeconds;

/// Connections closed, by reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClosedView {
    /// Found broken on return.
    pub broken: u64,
    /// Failed validation at checkout.
    pub invalid: u64,
    /// Past the maximum lifetime.
    pub max_lifetime: u64,
    /// Idle past the idle timeout.
    pub idle_timeout: u64,
}

/// What the background health checks have seen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthChecksView {
    /// Checks run.
    pub checks: u64,
    /// Checks that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Whether the last check succeeded; `null` before the first.
    pub last_ok: Option<bool>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// How long the last check took.
    pub last_duration_seconds: Option<f64>,
}

/// How a pool is configured (its settings in effect).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolConfigView {
    /// Idle connections are closed after this long; `null` for never.
    pub idle_timeout_seconds: Option<f64>,
    /// Connections are replaced after this age; `null` for never.
    pub max_lifetime_seconds: Option<f64>,
    /// Longest one connect may take.
    pub connect_timeout_seconds: f64,
    /// Longest a checkout waits for a connection.
    pub acquire_timeout_seconds: f64,
    /// Seconds between background health checks.
    pub health_check_interval_seconds: f64,
    /// Longest one health check may take.
    pub health_check_timeout_seconds: f64,
    /// A checkout held longer than this is a leak.
    pub leak_threshold_seconds: f64,
}

impl From<&PoolConfig> for PoolConfigView {
    fn from(config: &PoolConfig) -> Self {
        Self {
            idle_timeout_seconds: config.idle_timeout.map(|d| d.as_secs_f64()),
            max_lifetime_seconds: config.max_lifetime.map(|d| d.as_secs_f64()),
            connect_timeout_seconds: config.connect_timeout.as_secs_f64(),
            acquire_timeout_seconds: config.effective_acquire_timeout().as_secs_f64(),
            health_check_interval_seconds: config.health_check_interval.as_secs_f64(),
            health_check_timeout_seconds: config.effective_health_check_timeout().as_secs_f64(),
            leak_threshold_seconds: config.leak_threshold.as_secs_f64(),
        }
    }
}

/// A pool's figures over the health window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolWindowView {
    /// The window's length in seconds.
    pub seconds: f64,
    /// Successful checkouts in the window.
    pub acquires: u64,
    /// Utilization in the window (0–1).
    pub utilization: Option<f64>,
    /// Error rate in the window (0–1).
    pub error_rate: Option<f64>,
    /// Exhausted checkouts in the window.
    pub exhaustions: u64,
    /// 95th percentile acquire wait in the window, in seconds.
    pub acquire_p95_seconds: Option<f64>,
}

/// One pool: size, use, checkouts, errors, latency, closes, health checks, score, window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolView {
    /// The pool's name.
    pub name: String,
    /// Its settings-key prefix (`DB_POOL`, `REDIS_POOL`, `HTTP_POOL`).
    pub settings_prefix: String,
    /// Idle connections kept open.
    pub min_size: u32,
    /// Most connections open at once.
    pub max_size: u32,
    /// Connections open.
    pub connections: u32,
    /// Connections idle.
    pub idle: u32,
    /// Connections checked out.
    pub in_use: u64,
    /// Callers waiting.
    pub waiting: u64,
    /// The most connections checked out at once.
    pub peak_in_use: u64,
    /// Σ hold time / (elapsed × max size) since start (0–1).
    pub utilization: Option<f64>,
    /// Successful checkouts.
    pub acquires: u64,
    /// Checkouts served by an idle connection at once.
    pub acquires_direct: u64,
    /// Checkouts that waited.
    pub acquires_waited: u64,
    /// Checkouts that timed out with every connection in use.
    pub exhaustions: u64,
    /// Checkouts that failed because no connection could be made.
    pub unavailable: u64,
    /// Connect attempts.
    pub connect_attempts: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Connect attempts that timed out.
    pub connect_timeouts: u64,
    /// Connections found broken.
    pub broken: u64,
    /// Errors callers reported on a connection.
    pub caller_errors: u64,
    /// (connect failures + broken + caller errors) / acquires (0–1).
    pub error_rate: Option<f64>,
    /// Connections created.
    pub created: u64,
    /// Connections closed, by reason.
    pub closed: ClosedView,
    /// Checkouts held past the leak threshold now.
    pub leaked: u64,
    /// Acquire wait (direct checkouts count as 0).
    pub acquire_seconds: LatencySeconds,
    /// Hold time.
    pub hold_seconds: LatencySeconds,
    /// Connect time.
    pub connect_seconds: LatencySeconds,
    /// The background health checks.
    pub health_checks: HealthChecksView,
    /// Efficiency score 0–100, `null` before the first checkout.
    pub efficiency_score: Option<f64>,
    /// The recent window.
    pub window: PoolWindowView,
    /// The settings in effect, `null` when the pool is not (or no longer) registered.
    pub config: Option<PoolConfigView>,
}

impl PoolView {
    pub(crate) fn of(
        total: &PoolMetrics,
        window: &PoolMetrics,
        seconds: Duration,
        record: &HealthCheckRecord,
        config: Option<&PoolConfig>,
    ) -> Self {
        Self {
            name: total.name.clone(),
            settings_prefix: total.settings_prefix.clone(),
            min_size: total.min_size,
            max_size: total.max_size,
            connections: total.connections,
            idle: total.idle,
            in_use: total.in_use,
            waiting: total.waiting,
            peak_in_use: total.peak_in_use,
            utilization: total.utilization(),
            acquires: total.acquires,
            acquires_direct: total.acquires_direct,
            acquires_waited: total.acquires_waited,
            exhaustions: total.exhaustions,
            unavailable: total.unavailable,
            connect_attempts: total.connect_attempts,
            connect_failures: total.connect_failures,
            connect_timeouts: total.connect_timeouts,
            broken: total.broken,
            caller_errors: total.caller_errors,
            error_rate: total.error_rate(),
            created: total.created,
            closed: ClosedView {
                broken: total.closed_broken,
                invalid: total.closed_invalid,
                max_lifetime: total.closed_max_lifetime,
                idle_timeout: total.closed_idle_timeout,
            },
            leaked: total.leaked,
            acquire_seconds: LatencySeconds::of(&total.acquire_latency),
            hold_seconds: LatencySeconds::of(&total.hold_time),
            connect_seconds: LatencySeconds::of(&total.connect_latency),
            health_checks: HealthChecksView {
                checks: record.checks,
                failures: record.failures,
                consecutive_failures: record.consecutive_failures,
                last_ok: record.last_ok,
                last_error: record.last_error.clone(),
                last_duration_seconds: record.last_duration_secs,
            },
            efficiency_score: total.efficiency_score(),
            window: PoolWindowView {
                seconds: seconds.as_secs_f64(),
                acquires: window.acquires,
                utilization: window.utilization(),
                error_rate: window.error_rate(),
                exhaustions: window.exhaustions,
                acquire_p95_seconds: (!window.acquire_latency.is_empty())
                    .then(|| window.acquire_latency.p95() as f64 / 1e9),
            },
            config: config.map(PoolConfigView::from),
        }
    }
}
