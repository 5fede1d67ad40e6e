//! The `/metrics` exposition: every cache, pool, resource kind, the gateway and every health
//! verdict, plus build and process figures, as Prometheus text (0.0.4) or OpenMetrics text (1.0), encoded
//! by prometheus-client from snapshots the caller takes.
//!
//! The names are a contract (`docs/ARCHITECTURE.md`, *Metric names*); they are written below as
//! the Prometheus text format exposes them. Counters are cumulative since their component
//! was built; gauges are current values. Labels: `cache`, `pool`, `kind` and `component`
//! carry the component's name (there is one gateway, so its families have no name label).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `resync_cache_requests_total` | counter | `cache`, `result` = `hit` \| `miss` |
//! | `resync_cache_evictions_total` | counter | `cache`, `cause` = `size` \| `expired` \| `explicit` \| `replaced` |
//! | `resync_cache_inserts_total` | counter | `cache` |
//! | `resync_cache_invalidations_total` | counter | `cache` |
//! | `resync_cache_loads_total` | counter | `cache`, `result` = `ok` \| `failed` |
//! | `resync_cache_load_seconds` | histogram | `cache` |
//! | `resync_cache_entries`, `resync_cache_max_entries` | gauge | `cache` |
//! | `resync_cache_bytes`, `resync_cache_max_bytes` | gauge | `cache` |
//! | `resync_cache_skipped_gets_total` | counter | `cache` (only a cache with a miss-ratio curve) |
//! | `resync_pool_connections` | gauge | `pool`, `state` = `idle` \| `in_use` \| `open` \| `max` |
//! | `resync_pool_waiting` | gauge | `pool` |
//! | `resync_pool_acquires_total` | counter | `pool`, `path` = `direct` \| `waited` |
//! | `resync_pool_timeouts_total` | counter | `pool` |
//! | `resync_pool_exhaustions_total`, `resync_pool_unavailable_total` | counter | `pool` |
//! | `resync_pool_errors_total` | counter | `pool`, `kind` = `connect` \| `broken` \| `caller` |
//! | `resync_pool_connect_timeouts_total` | counter | `pool` |
//! | `resync_pool_connections_created_total` | counter | `pool` |
//! | `resync_pool_connections_closed_total` | counter | `pool`, `reason` = `broken` \| `invalid` \| `max_lifetime` \| `idle_timeout` |
//! | `resync_pool_acquire_seconds`, `resync_pool_hold_seconds`, `resync_pool_connect_seconds` | histogram | `pool` |
//! | `resync_resources_active`, `resync_resources_leaked` | gauge | `kind` |
//! | `resync_resources_leaks_total` | counter | `kind` |
//! | `resync_resources_created_total`, `resync_resources_released_total`, `resync_resources_released_without_close_total` | counter | `kind` |
//! | `resync_gateway_requests_total` | counter | `method` = `GET` \| `HEAD` \| `POST` \| `PUT` \| `PATCH` \| `DELETE` \| `OPTIONS` \| `OTHER`, `status_class` = `1xx` … `5xx`, `cache` = `hit` \| `miss` \| `stale` \| `bypass` |
//! | `resync_gateway_upstream_requests_total` | counter | `outcome` = `answered_2xx` \| `answered_3xx` \| `answered_4xx` \| `answered_5xx` \| `unreachable` \| `failed` \| `timed_out` \| `exhausted` |
//! | `resync_gateway_bytes_total` | counter | `source` = `cache` \| `upstream` |
//! | `resync_gateway_request_duration_seconds`, `resync_gateway_upstream_duration_seconds` | histogram | — |
//! | `resync_gateway_l2_lookups_total` | counter | `result` = `hit` \| `miss` \| `other_version` \| `error` \| `skipped` |
//! | `resync_gateway_l2_stores_total` | counter | `result` = `stored` \| `error` |
//! | `resync_gateway_l2_lookup_duration_seconds`, `resync_gateway_l2_store_duration_seconds` | histogram | — |
//! | `resync_gateway_l2_leases_total` | counter | `outcome` = `won` \| `waited` \| `expired` |
//! | `resync_gateway_l2_invalidations_total` | counter | `direction` = `sent` \| `received` |
//! | `resync_gateway_l1_flushes_total` | counter | — |
//! | `resync_gateway_l2_errors_total` | counter | `op` = `lookup` \| `store` \| `lease` \| `invalidate` \| `subscribe` |
//! | `resync_gateway_l2_available` | gauge (0 \| 1) | — |
//! | `resync_health_status` | gauge | `component` (`overall` for the whole) |
//! | `resync_build_info` | gauge (info) = 1 | `version` |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | gauge | — |
//! | `process_cpu_seconds_total` | counter | — |
//!
//! Choices worth knowing:
//!
//! - `resync_pool_timeouts_total` counts acquire timeouts: `get()` calls that waited the
//!   whole acquire timeout with every connection checked out (the pool's *exhaustions*, also
//!   exported as `resync_pool_exhaustions_total`). A `get()` that failed because no
//!   connection could be made is *unavailable* (`resync_pool_unavailable_total`), not a
//!   timeout: it may fail at once with the connect error, and it means the backend is down,
//!   not that the pool is too small.
//! - The cumulative count of leaks is `resync_resources_leaks_total` (each resource counted
//!   once, the first time a scan saw it past its threshold), not `resync_resources_leaked_total`:
//!   in OpenMetrics a counter's family name drops `_total`, and a counter named
//!   `resync_resources_leaked` would clash with the gauge of that name.
//! - `resync_health_status` is 0 healthy, 1 degraded, 2 critical
//!   ([`HealthStatus::as_gauge`]).
//! - Histograms come from the perf-core histograms (nanoseconds), exposed in seconds with
//!   the fixed bounds of [`LE_NANOS`] (1 µs … 60 s) and `+Inf`. A bucket counts the values at
//!   or below its bound at the histogram's resolution: a value at most 3.125 % above a bound
//!   may be counted in it. `_sum` is exact. The acquire histogram includes the failed
//!   `get()`s (time to the failure), and direct checkouts as 0 s; the hold histogram counts
//!   returned connections; the connect histogram successful connects; the load histogram
//!   every load, failed or not.
//! - `resync_cache_skipped_gets_total` is the advisor's, not the cache's: the sampled gets
//!   it did not replay into its miss-ratio simulations (cache-core's
//!   `MissRatioCurve::skipped_gets`; with the default sample rate, a cache of fewer than
//!   8 192 entries replays only some windows of its sample). It is not a result of a get, so
//!   it is a family of its own rather than a `result` of `resync_cache_requests_total`, and
//!   a cache has the series only once it has a curve (the advisor on, enough sampled gets).
//! - The gateway families are there only when a gateway is set
//!   ([`PerformanceService::set_gateway`](crate::PerformanceService::set_gateway)), and then
//!   with every label combination (160 request series, zeros included), so a rate never
//!   misses a series' first increment. Statuses outside 100–599 count in the nearest class;
//!   `resync_gateway_bytes_total{source="upstream"}` counts every body not served from the
//!   cache, the gateway's own error bodies included.
//! - The gateway L2 families (`resync_gateway_l2_*`, `resync_gateway_l1_flushes_total`) are
//!   there only when an L2 is set
//!   ([`PerformanceService::set_gateway_l2`](crate::PerformanceService::set_gateway_l2)),
//!   then with every label value, zeros included. A lookup that failed counts in
//!   `resync_gateway_l2_lookups_total{result="error"}`; `resync_gateway_l2_errors_total`
//!   counts the errors the gateway reported with their message, by operation (the two
//!   overlap when the gateway reports a failed lookup both ways). The lookup histogram
//!   counts every lookup sent to Redis (skipped ones are not timed), the store histogram
//!   every store, failed ones included.
//! - Process figures come from `/proc/self` ([`ProcessStats`]); each is left out when it
//!   cannot be read. A family with no series (no pool registered, say) is left out whole.

use axum::http::HeaderValue;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use resync_cache_core::CacheMetrics;
use resync_perf_core::HealthStatus;
use resync_pool_optimizer::PoolMetrics;
use resync_resource_manager::ResourceStats;

use crate::gateway::{GatewayMetrics, L2Metrics};

mod families;
mod family;
pub(crate) mod process;
#[cfg(test)]
mod tests;

use family::Families;
use process::ProcessStats;

/// The `Content-Type` of OpenMetrics text 1.0.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the histogram buckets, in nanoseconds: 1 µs to 60 s, about three per
/// decade, covering an in-memory load (µs), a pooled checkout (µs to ms), a connect or a
/// slow query (ms to s) and an acquire that waits out a connect timeout (up to 60 s).
pub(super) const LE_NANOS: [u64; 20] = [
    1_000,
    10_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

pub(super) const NANOS_PER_SECOND: f64 = 1e9;

/// What one scrape exposes; the caller takes the snapshots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exposition<'a> {
    pub(crate) caches: &'a [CacheMetrics],
    pub(crate) pools: &'a [PoolMetrics],
    pub(crate) kinds: &'a [ResourceStats],
    /// The gateway's figures, when one is set.
    pub(crate) gateway: Option<&'a GatewayMetrics>,
    /// The gateway L2's figures, when one is set.
    pub(crate) gateway_l2: Option<&'a L2Metrics>,
    /// component name -> status, e.g. ("cache:responses", Healthy), plus ("overall", ...)
    pub(crate) health: &'a [(String, HealthStatus)],
}

/// The text format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFormat {
    /// Prometheus text 0.0.4 (`text/plain`), what every Prometheus version reads.
    Prometheus,
    /// OpenMetrics text 1.0 (`application/openmetrics-text`), ending in `# EOF`.
    OpenMetrics,
}

impl TextFormat {
    /// OpenMetrics when the Accept header asks for application/openmetrics-text, else
    /// Prometheus text 0.0.4.
    ///
    /// OpenMetrics is chosen when the header lists `application/openmetrics-text` with a
    /// quality above 0 and at least that of `text/plain` (Prometheus asks for OpenMetrics
    /// first, with text as a fallback). A missing or unreadable header means Prometheus text.
    pub(crate) fn negotiate(accept: Option<&HeaderValue>) -> Self {
        let Some(accept) = accept.and_then(|value| value.to_str().ok()) else {
            return Self::Prometheus;
        };
        let (mut openmetrics, mut plain) = (0.0_f64, 0.0_f64);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|parameter| parameter.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, value)| {
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|quality| !quality.is_nan())
                        .map_or(0.0, |quality| quality.clamp(0.0, 1.0))
                });
            if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(quality);
            } else if media_type.eq_ignore_ascii_case("text/plain") {
                plain = plain.max(quality);
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Renders every metric; never panics.
pub(crate) fn render(exposition: &Exposition<'_>, format: TextFormat) -> String {
    render_with(exposition, &ProcessStats::read(), format)
}

/// [`render`] with the process figures given.
fn render_with(exposition: &Exposition<'_>, process: &ProcessStats, format: TextFormat) -> String {
    let families = Families::of(exposition, process);
    let mut output = String::with_capacity(families.estimated_len());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    let encoded = match format {
        TextFormat::Prometheus => prometheus_text::encode(&mut output, &registry),
        TextFormat::OpenMetrics => text::encode(&mut output, &registry),
    };
    // Writing to a `String` cannot fail and the collector returns only the encoder's errors.
    if encoded.is_err() {
        tracing::error!(?format, "encoding the metrics exposition failed");
    }
    output
}
