//! The JSON shapes of the API: plain numbers (ratios 0–1), units in field names. Each is built
//! from a library snapshot; the OpenAPI document is generated from these types.

mod advice;
mod cache;
mod gateway;
mod labelled;
mod pool;
mod resources;

use std::time::Duration;

use resync_perf_core::HistogramSnapshot;
use serde::Serialize;
use utoipa::ToSchema;

pub use advice::{ChangeView, ReasonView, RecommendationView, SettingValueView};
pub use cache::{CacheView, CacheWindowView, CurvePointView, CurveView, EvictionsView};
pub use gateway::{
    CacheOutcomesView, GatewayResponse, GatewayView, GatewayWindowView, L2ErrorsView,
    L2InvalidationsView, L2LastErrorView, L2LeasesView, L2LookupsView, L2StoresView, L2View,
    L2WindowView, MethodsView, StatusClassesView, UpstreamView,
};
pub use pool::{ClosedView, HealthChecksView, PoolConfigView, PoolView, PoolWindowView};
pub use resources::{KindView, LeakView};

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
    /// The caching gateway, `null` when the service has none.
    pub gateway: Option<GatewayView>,
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
