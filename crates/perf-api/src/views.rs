//! The JSON shapes of the API: plain numbers (ratios 0–1), units in field names. Each is built
//! from a library snapshot; the OpenAPI document is generated from these types.

use std::collections::BTreeMap;
use std::time::Duration;

use resync_cache_core::CacheMetrics;
use resync_perf_core::{HistogramSnapshot, Recommendation, SettingValue};
use resync_pool_optimizer::{HealthCheckRecord, PoolConfig, PoolMetrics};
use resync_resource_manager::{LeakReport, ResourceStats};
use serde::Serialize;
use utoipa::ToSchema;

use crate::health::HealthReport;
use crate::history::HistorySample;

/// Latency figures of a histogram, in seconds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LatencySeconds {
    /// Values recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Upper bound of the largest value.
    pub max: f64,
}

impl LatencySeconds {
    pub(crate) fn of(nanos: &HistogramSnapshot) -> Self {
        let seconds = |value: u64| Duration::from_nanos(value).as_secs_f64();
        Self {
            count: nanos.count(),
            mean: nanos.mean() / 1e9,
            p50: seconds(nanos.p50()),
            p95: seconds(nanos.p95()),
            p99: seconds(nanos.p99()),
            max: seconds(nanos.max()),
        }
    }
}

/// Entries removed, by cause.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvictionsView {
    /// Evicted for room (size or entry bound), including refused admissions.
    pub size: u64,
    /// Expired (TTL, time to idle, per-entry expiry).
    pub expired: u64,
    /// Removed by `invalidate`, `remove` or `invalidate_all`.
    pub explicit: u64,
    /// Replaced by a newer value.
    pub replaced: u64,
}

/// One point of the advisor's miss-ratio curve.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurvePointView {
    /// The memory bound as a multiple of the current one.
    pub capacity_factor: f64,
    /// That memory bound in bytes.
    pub max_memory_bytes: u64,
    /// The hit rate predicted at that bound (0–1).
    pub predicted_hit_rate: Option<f64>,
}

/// The advisor's prediction of the hit rate at other memory bounds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurveView {
    /// Share of keys sampled into the simulations.
    pub sample_rate: f64,
    /// Gets the simulations replayed.
    pub sampled_gets: u64,
    /// Predictions at ½×, 1×, 2×, 4× the memory bound.
    pub points: Vec<CurvePointView>,
    /// The hit rate predicted with a doubled TTL, when the cache has one.
    pub ttl_doubled_predicted_hit_rate: Option<f64>,
}

/// A cache's figures over the health window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheWindowView {
    /// The window's length in seconds.
    pub seconds: f64,
    /// Gets in the window.
    pub requests: u64,
    /// Hits in the window.
    pub hits: u64,
    /// Hit rate in the window (0–1), `null` without a request.
    pub hit_rate: Option<f64>,
    /// Evictions for room in the window.
    pub size_evictions: u64,
}

/// One cache: counters since start, bounds, latency, score, curve and the recent window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheView {
    /// The cache's name.
    pub name: String,
    /// Gets that found a value.
    pub hits: u64,
    /// Gets that did not.
    pub misses: u64,
    /// `hits / (hits + misses)` since start (0–1), `null` without a request.
    pub hit_rate: Option<f64>,
    /// Values written.
    pub inserts: u64,
    /// Writes that replaced a value.
    pub updates: u64,
    /// Invalidation calls.
    pub invalidations: u64,
    /// Entries removed, by cause.
    pub evictions: EvictionsView,
    /// Read-through loads that produced a value.
    pub loads_ok: u64,
    /// Read-through loads that failed.
    pub loads_failed: u64,
    /// Loaded values too large to cache.
    pub loads_uncached: u64,
    /// Load time.
    pub load_seconds: LatencySeconds,
    /// Sampled get latency.
    pub get_seconds: LatencySeconds,
    /// Entries cached.
    pub entries: u64,
    /// Bytes cached (entry weights).
    pub weighted_bytes: u64,
    /// The entry bound.
    pub max_entries: u64,
    /// The memory bound in bytes.
    pub max_memory_bytes: u64,
    /// `entries / max_entries`.
    pub entry_utilization: f64,
    /// `weighted_bytes / max_memory_bytes`.
    pub memory_utilization: f64,
    /// Time to live in seconds, if any.
    pub ttl_seconds: Option<f64>,
    /// Statistics stripes in use.
    pub stat_shards: u64,
    /// Seconds between background maintenance runs, if the cache has them.
    pub cleanup_interval_seconds: Option<f64>,
    /// Efficiency score 0–100: `100 · (0.8 · hit_rate + 0.2 · (1 − size_evictions / inserts))`.
    pub efficiency_score: f64,
    /// The advisor's miss-ratio curve, `null` until it has enough samples.
    pub curve: Option<CurveView>,
    /// The recent window.
    pub window: CacheWindowView,
}

impl CacheView {
    pub(crate) fn of(total: &CacheMetrics, window: &CacheMetrics, seconds: Duration) -> Self {
        Self {
            name: total.name.clone(),
            hits: total.hits,
            misses: total.misses,
            hit_rate: total.hit_rate,
            inserts: total.inserts,
            updates: total.updates,
            invalidations: total.invalidations,
            evictions: EvictionsView {
                size: total.evictions.size,
                expired: total.evictions.expired,
                explicit: total.evictions.explicit,
                replaced: total.evictions.replaced,
            },
            loads_ok: total.loads_ok,
            loads_failed: total.loads_failed,
            loads_uncached: total.loads_uncached,
            load_seconds: LatencySeconds::of(total.load_time_snapshot()),
            get_seconds: LatencySeconds::of(total.get_latency_snapshot()),
            entries: total.entries,
            weighted_bytes: total.weighted_bytes,
            max_entries: total.max_entries,
            max_memory_bytes: total.max_memory_bytes,
            entry_utilization: total.entry_utilization,
            memory_utilization: total.memory_utilization,
            ttl_seconds: total.ttl_seconds,
            stat_shards: total.stat_shards as u64,
            cleanup_interval_seconds: total.cleanup_interval_seconds,
            efficiency_score: total.efficiency_score,
            curve: total.curve.as_ref().map(|curve| CurveView {
                sample_rate: curve.sample_rate,
                sampled_gets: curve.sampled_gets,
                points: curve
                    .points
                    .iter()
                    .map(|point| CurvePointView {
                        capacity_factor: point.capacity_factor,
                        max_memory_bytes: point.max_memory_bytes,
                        predicted_hit_rate: point.predicted_hit_rate,
                    })
                    .collect(),
                ttl_doubled_predicted_hit_rate: curve.predicted_2x_ttl(),
            }),
            window: CacheWindowView {
                seconds: seconds.as_secs_f64(),
                requests: window.requests(),
                hits: window.hits,
                hit_rate: window.hit_rate,
                size_evictions: window.evictions.size,
            },
        }
    }
}

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

/// One resource kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KindView {
    /// The kind's name.
    pub kind: String,
    /// Alive now.
    pub active: u64,
    /// The most alive at once.
    pub peak: u64,
    /// Ever tracked.
    pub created: u64,
    /// Released (closed or not).
    pub released: u64,
    /// Released without a deliberate close.
    pub released_without_close: u64,
    /// Alive now past the leak threshold.
    pub leaked_now: u64,
    /// Ever seen past the threshold.
    pub leaked_total: u64,
    /// Of those, released later.
    pub leaked_released: u64,
    /// Mean lifetime of released resources, in seconds.
    pub mean_lifetime_seconds: f64,
    /// Longest lifetime of a released resource, in seconds.
    pub max_lifetime_seconds: f64,
    /// The kind's concurrency limit, if any.
    pub limit: Option<u64>,
    /// `active / limit` (0–1), when a limit exists.
    pub utilization: Option<f64>,
    /// Held longer than this, a resource of the kind is a leak; `null` when it never is.
    pub leak_threshold_seconds: Option<f64>,
}

impl From<&ResourceStats> for KindView {
    fn from(stats: &ResourceStats) -> Self {
        Self {
            leak_threshold_seconds: stats.leak_threshold.map(|after| after.as_secs_f64()),
            kind: stats.kind.clone(),
            active: stats.active,
            peak: stats.peak,
            created: stats.created,
            released: stats.released,
            released_without_close: stats.released_without_close,
            leaked_now: stats.leaked_now,
            leaked_total: stats.leaked_total,
            leaked_released: stats.leaked_released,
            mean_lifetime_seconds: stats.mean_lifetime.as_secs_f64(),
            max_lifetime_seconds: stats.max_lifetime.as_secs_f64(),
            limit: stats.limit.map(|limit| limit as u64),
            utilization: stats.utilization,
        }
    }
}

/// A resource alive past its kind's leak threshold.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeakView {
    /// The resource's id.
    pub id: u64,
    /// Its kind.
    pub kind: String,
    /// Its label.
    pub label: String,
    /// How long it has been alive, in seconds.
    pub age_seconds: f64,
    /// The `file:line:column` that acquired it.
    pub acquired_at: String,
    /// The acquiring thread or task, when known.
    pub thread: Option<String>,
    /// The backtrace captured at acquisition, when the kind enables it.
    pub backtrace: Option<String>,
}

impl From<LeakReport> for LeakView {
    fn from(leak: LeakReport) -> Self {
        Self {
            id: leak.id,
            kind: leak.kind,
            label: leak.label,
            age_seconds: leak.age.as_secs_f64(),
            acquired_at: leak.acquired_at,
            thread: leak.thread,
            backtrace: leak.backtrace,
        }
    }
}

/// A setting's value: a number or a string.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SettingValueView {
    /// A number.
    Number(f64),
    /// Anything else.
    Text(String),
}

impl From<&SettingValue> for SettingValueView {
    fn from(value: &SettingValue) -> Self {
        match value {
            SettingValue::Integer(value) => Self::Number(*value as f64),
            SettingValue::Float(value) => Self::Number(*value),
            SettingValue::Text(value) => Self::Text(value.clone()),
        }
    }
}

/// A proposed settings change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeView {
    /// The settings key, as in `settings.toml`.
    pub key: String,
    /// Its value now.
    pub current: SettingValueView,
    /// The suggested value.
    pub suggested: SettingValueView,
}

/// A finding with the measured evidence it rests on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecommendationView {
    /// The component, `cache:<name>` or `pool:<name>`.
    pub component: String,
    /// Stable machine id, e.g. `cache.grow_memory`.
    pub code: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// One sentence.
    pub message: String,
    /// The measured figures, by name (units in the names).
    pub evidence: BTreeMap<String, f64>,
    /// The settings change that addresses it, if one does.
    pub change: Option<ChangeView>,
}

impl From<Recommendation> for RecommendationView {
    fn from(advice: Recommendation) -> Self {
        Self {
            component: advice.component,
            code: advice.code,
            severity: advice.severity.as_str().to_owned(),
            message: advice.message,
            evidence: advice.evidence,
            change: advice.change.map(|change| ChangeView {
                key: change.key,
                current: (&change.current).into(),
                suggested: (&change.suggested).into(),
            }),
        }
    }
}

/// One health finding.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReasonView {
    /// Stable machine id of the rule.
    pub code: String,
    /// The status it gives: `healthy`, `degraded` or `critical`.
    pub status: String,
    /// A sentence citing the figure and the threshold.
    pub message: String,
    /// The measured figure.
    pub measured: f64,
    /// The threshold.
    pub threshold: f64,
}

/// `{"caches": [...]}`
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CachesResponse {
    /// One entry per registered cache.
    pub caches: Vec<CacheView>,
}

/// `{"pools": [...]}`
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolsResponse {
    /// One entry per pool.
    pub pools: Vec<PoolView>,
}

/// `{"recommendations": [...]}`
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecommendationsResponse {
    /// The findings, each with its evidence.
    pub recommendations: Vec<RecommendationView>,
}

/// `{"kinds": [...]}`
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResourcesResponse {
    /// One entry per resource kind.
    pub kinds: Vec<KindView>,
}

/// `{"min_age_seconds": …, "leaks": [...]}`
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaksResponse {
    /// The smallest age asked for.
    pub min_age_seconds: f64,
    /// Leaked resources, oldest first.
    pub leaks: Vec<LeakView>,
}

/// The history: samples oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// Seconds between samples.
    pub sample_interval_seconds: f64,
    /// The window health and advice are judged over, in seconds.
    pub health_window_seconds: f64,
    /// The most samples kept in memory.
    pub capacity: u64,
    /// The samples.
    pub samples: Vec<HistorySample>,
}

/// The process the service runs in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemView {
    /// The crate version.
    pub version: String,
    /// The process id.
    pub pid: u32,
    /// Seconds since the service was built.
    pub uptime_seconds: f64,
    /// CPUs available to the process.
    pub cpus: u64,
    /// Resident memory in bytes (Linux), `null` where unknown.
    pub resident_memory_bytes: Option<u64>,
    /// Open file descriptors (Linux), `null` where unknown.
    pub open_fds: Option<u64>,
}

/// Everything in one document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportResponse {
    /// When it was produced, RFC 3339.
    pub generated_at: String,
    /// The process.
    pub system: SystemView,
    /// The effective settings (secrets redacted).
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Every cache.
    pub caches: Vec<CacheView>,
    /// Advice for caches.
    pub cache_recommendations: Vec<RecommendationView>,
    /// Every pool.
    pub pools: Vec<PoolView>,
    /// Advice for pools.
    pub pool_recommendations: Vec<RecommendationView>,
    /// Every resource kind.
    pub resources: Vec<KindView>,
    /// Leaked resources.
    pub leaks: Vec<LeakView>,
    /// The health verdict.
    pub health: HealthReport,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine id: `bad_request`, `unauthorized`, `not_found`, `method_not_allowed`,
    /// `internal`.
    pub code: String,
    /// A sentence for people; never internal error text on a 5xx.
    pub message: String,
}
