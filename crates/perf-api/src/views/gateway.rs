//! The caching gateway as the API shows it.

use std::time::Duration;

use resync_perf_core::per_second;
use serde::Serialize;
use utoipa::ToSchema;

use super::LatencySeconds;
use crate::gateway::{CacheOutcome, GatewayMetrics, MethodLabel, StatusClass};

/// Requests by how the response cache took part.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheOutcomesView {
    /// Answered from a fresh cached response.
    pub hit: u64,
    /// Not cached (or not fresh): fetched from the upstream.
    pub miss: u64,
    /// Answered from a stale cached response.
    pub stale: u64,
    /// The cache was not consulted (writes, `no-store`, bodies too large to cache).
    pub bypass: u64,
}

/// Requests by the class of the status sent to the client.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusClassesView {
    /// 1xx.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// 2xx.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// 3xx.
    #[serde(rename = "3xx")]
    pub redirection: u64,
    /// 4xx.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// 5xx.
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

/// Requests by method.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MethodsView {
    /// `GET`.
    #[serde(rename = "GET")]
    pub get: u64,
    /// `HEAD`.
    #[serde(rename = "HEAD")]
    pub head: u64,
    /// `POST`.
    #[serde(rename = "POST")]
    pub post: u64,
    /// `PUT`.
    #[serde(rename = "PUT")]
    pub put: u64,
    /// `PATCH`.
    #[serde(rename = "PATCH")]
    pub patch: u64,
    /// `DELETE`.
    #[serde(rename = "DELETE")]
    pub delete: u64,
    /// `OPTIONS`.
    #[serde(rename = "OPTIONS")]
    pub options: u64,
    /// Any other method.
    #[serde(rename = "OTHER")]
    pub other: u64,
}

/// The upstream exchanges the gateway made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamView {
    /// Exchanges attempted.
    pub requests: u64,
    /// Answered below 300.
    pub answered_2xx: u64,
    /// Answered 3xx.
    pub answered_3xx: u64,
    /// Answered 4xx.
    pub answered_4xx: u64,
    /// Answered 5xx.
    pub answered_5xx: u64,
    /// No connection could be made (the gateway answered 502).
    pub unreachable: u64,
    /// Broke mid-way (502).
    pub failed: u64,
    /// No answer within the read timeout (504).
    pub timed_out: u64,
    /// The HTTP pool was exhausted (503).
    pub exhausted: u64,
    /// 5xx answers + unreachable + failed + timed out + exhausted.
    pub errors: u64,
    /// `errors / requests` (0–1), `null` without an exchange.
    pub error_rate: Option<f64>,
    /// Exchange latency.
    pub latency_seconds: LatencySeconds,
}

/// The gateway's figures over the health window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayWindowView {
    /// The window's length in seconds.
    pub seconds: f64,
    /// Requests in the window.
    pub requests: u64,
    /// Requests per second over the window, `null` for an empty window.
    pub requests_per_second: Option<f64>,
    /// Hit rate in the window (0–1), `null` without a cacheable request.
    pub hit_rate: Option<f64>,
    /// Requests answered 5xx in the window.
    pub responses_5xx: u64,
    /// Upstream exchanges in the window.
    pub upstream_requests: u64,
    /// Upstream errors in the window.
    pub upstream_errors: u64,
    /// Upstream error rate in the window (0–1), `null` without an exchange; health judges it.
    pub upstream_error_rate: Option<f64>,
    /// Body bytes sent from the cache in the window.
    pub bytes_from_cache: u64,
    /// Body bytes sent otherwise in the window.
    pub bytes_from_upstream: u64,
    /// 95th percentile request latency in the window, in seconds.
    pub request_p95_seconds: Option<f64>,
    /// 95th percentile upstream latency in the window, in seconds.
    pub upstream_p95_seconds: Option<f64>,
}

/// The caching gateway: counters since start, latency and the recent window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayView {
    /// Requests served.
    pub requests: u64,
    /// Requests by cache outcome.
    pub by_cache: CacheOutcomesView,
    /// Requests by the class of the status sent.
    pub by_status_class: StatusClassesView,
    /// Requests by method.
    pub by_method: MethodsView,
    /// `(hit + stale) / (hit + stale + miss)` since start (0–1; bypasses are not cacheable),
    /// `null` without a cacheable request.
    pub hit_rate: Option<f64>,
    /// Body bytes sent from the cache (hits and stale answers).
    pub bytes_from_cache: u64,
    /// Body bytes sent otherwise (the upstream's, and the gateway's own error bodies).
    pub bytes_from_upstream: u64,
    /// Request latency, first byte in to response head out.
    pub latency_seconds: LatencySeconds,
    /// The upstream exchanges.
    pub upstream: UpstreamView,
    /// The recent window.
    pub window: GatewayWindowView,
}

/// `{"gateway": …}`: `null` when the service has no gateway.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayResponse {
    /// The gateway, if one is set.
    pub gateway: Option<GatewayView>,
}

impl GatewayView {
    pub(crate) fn of(total: &GatewayMetrics, window: &GatewayMetrics, seconds: Duration) -> Self {
        let cache = |outcome| total.requests_with_cache(outcome);
        let class = |class| total.requests_with_status(class);
        let method = |method| total.requests_with_method(method);
        let upstream = &total.upstream;
        let p95_seconds = |histogram: &resync_perf_core::HistogramSnapshot| {
            (!histogram.is_empty()).then(|| Duration::from_nanos(histogram.p95()).as_secs_f64())
        };
        let window_requests = window.total_requests();
        Self {
            requests: total.total_requests(),
            by_cache: CacheOutcomesView {
                hit: cache(CacheOutcome::Hit),
                miss: cache(CacheOutcome::Miss),
                stale: cache(CacheOutcome::Stale),
                bypass: cache(CacheOutcome::Bypass),
            },
            by_status_class: StatusClassesView {
                informational: class(StatusClass::Informational),
                success: class(StatusClass::Success),
                redirection: class(StatusClass::Redirection),
                client_error: class(StatusClass::ClientError),
                server_error: class(StatusClass::ServerError),
            },
            by_method: MethodsView {
                get: method(MethodLabel::Get),
                head: method(MethodLabel::Head),
                post: method(MethodLabel::Post),
                put: method(MethodLabel::Put),
                patch: method(MethodLabel::Patch),
                delete: method(MethodLabel::Delete),
                options: method(MethodLabel::Options),
                other: method(MethodLabel::Other),
            },
            hit_rate: total.hit_rate(),
            bytes_from_cache: total.bytes_from_cache,
            bytes_from_upstream: total.bytes_from_upstream,
            latency_seconds: LatencySeconds::of(&total.request_latency),
            upstream: UpstreamView {
                requests: upstream.total(),
                answered_2xx: upstream.answered_2xx,
                answered_3xx: upstream.answered_3xx,
                answered_4xx: upstream.answered_4xx,
                answered_5xx: upstream.answered_5xx,
                unreachable: upstream.unreachable,
                failed: upstream.failed,
                timed_out: upstream.timed_out,
                exhausted: upstream.exhausted,
                errors: upstream.errors(),
                error_rate: upstream.error_rate(),
                latency_seconds: LatencySeconds::of(&total.upstream_latency),
            },
            window: GatewayWindowView {
                seconds: seconds.as_secs_f64(),
                requests: window_requests,
                requests_per_second: per_second(window_requests, seconds),
                hit_rate: window.hit_rate(),
                responses_5xx: window.requests_with_status(StatusClass::ServerError),
                upstream_requests: window.upstream.total(),
                upstream_errors: window.upstream.errors(),
                upstream_error_rate: window.upstream.error_rate(),
                bytes_from_cache: window.bytes_from_cache,
                bytes_from_upstream: window.bytes_from_upstream,
                request_p95_seconds: p95_seconds(&window.request_latency),
                upstream_p95_seconds: p95_seconds(&window.upstream_latency),
            },
        }
    }
}
