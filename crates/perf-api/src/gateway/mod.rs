//! What the caching HTTP gateway records about every request it serves, and how the service
//! reports it: [`GatewayStats`] is the recorder the gateway holds, [`GatewayMetrics`] its
//! cumulative snapshot, [`GatewayHealthThresholds`] the rule the component `gateway` is
//! judged by. [`L2Stats`] records the gateway's Redis second level cache the same way, and
//! [`L2Metrics`] is its snapshot (the component `gateway_l2`).
//!
//! Recording is on the gateway's hot path, so [`GatewayStats::record`] takes no lock and
//! allocates nothing: every counter and both latency histograms live in per-thread stripes
//! (perf-core's [`Striped`]), each on its own cache lines, and a request is a few adds on the
//! calling thread's stripe: plain loads and stores where the thread owns the stripe, relaxed
//! atomic adds on the shared overflow stripe. A snapshot sums the stripes.
//!
//! Every label set is bounded: methods are `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`,
//! `OPTIONS` or `OTHER` ([`MethodLabel`]); statuses count by class `1xx` … `5xx`
//! ([`StatusClass`]); the cache outcome is `hit`, `miss`, `stale` or `bypass`
//! ([`CacheOutcome`]); an upstream exchange ends `answered_2xx` … `answered_5xx`,
//! `unreachable`, `failed`, `timed_out` or `exhausted` ([`UpstreamOutcome`]).
//!
//! ```
//! use std::time::Duration;
//! use axum::http::Method;
//! use resync_perf_api::{
//!     CacheOutcome, GatewayExchange, GatewayStats, PerformanceService, UpstreamOutcome,
//! };
//!
//! let stats = GatewayStats::new();
//! let service = PerformanceService::default();
//! service.set_gateway(stats.clone()); // the component `gateway`
//!
//! // A miss that went to the upstream, then a hit.
//! stats.record(&GatewayExchange {
//!     method: &Method::GET,
//!     status: 200,
//!     cache: CacheOutcome::Miss,
//!     latency: Duration::from_millis(42),
//!     upstream: Some((Duration::from_millis(40), UpstreamOutcome::Answered(200))),
//!     body_bytes: 512,
//! });
//! stats.record(&GatewayExchange {
//!     method: &Method::GET,
//!     status: 200,
//!     cache: CacheOutcome::Hit,
//!     latency: Duration::from_micros(80),
//!     upstream: None,
//!     body_bytes: 512,
//! });
//!
//! let metrics = stats.metrics();
//! assert_eq!(metrics.total_requests(), 2);
//! assert_eq!(metrics.hit_rate(), Some(0.5));
//! assert_eq!(metrics.upstream.total(), 1);
//! assert_eq!((metrics.bytes_from_cache, metrics.bytes_from_upstream), (512, 512));
//! ```
//!
//! [`Striped`]: resync_perf_core::stripes::Striped

mod health;
mod l2;
mod labels;
mod metrics;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use resync_perf_core::stripes::Striped;
use resync_perf_core::{Histogram, HistogramSnapshot};

pub use health::GatewayHealthThresholds;
pub use l2::{
    L2ErrorCounts, L2InvalidationCounts, L2Lease, L2LeaseCounts, L2Lookup, L2LookupCounts,
    L2Metrics, L2Op, L2Stats, L2StoreCounts, L2_MAX_MESSAGE_BYTES,
};
pub use labels::{CacheOutcome, MethodLabel, StatusClass, UpstreamOutcome};
pub use metrics::{GatewayMetrics, RequestCount, UpstreamCounts};

pub(crate) use labels::UPSTREAM_LABELS;
pub(crate) use metrics::{request_cell, REQUEST_CELLS};

/// One request the gateway served, as it records it.
#[derive(Clone, Copy, Debug)]
pub struct GatewayExchange<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// Status sent to the client.
    pub status: u16,
    /// How the response cache took part.
    pub cache: CacheOutcome,
    /// Whole request, first byte in to response head out.
    pub latency: Duration,
    /// The upstream exchange, when one was made by this request.
    pub upstream: Option<(Duration, UpstreamOutcome)>,
    /// Response body bytes sent to the client (from the cache for Hit/Stale, from the
    /// upstream otherwise).
    pub body_bytes: u64,
}

/// The gateway's recorder: request counts by method, status class and cache outcome,
/// upstream exchanges by outcome, body bytes by source, request and upstream latency.
///
/// Cheap to clone; clones share. Recording takes no lock and allocates nothing (striped
/// counters and perf-core's [`Histogram`]); counters are cumulative and never reset.
///
/// Memory: one stripe per thread slot (the machine's parallelism plus two, rounded up to a
/// power of two, at most 16) and the overflow stripe, each with two 15 KiB histograms and 170
/// counters: at most ≈ 530 KiB.
#[derive(Clone, Debug, Default)]
pub struct GatewayStats {
    inner: Arc<Stripes>,
}

/// The stripes of one recorder.
struct Stripes(Striped<Stripe>);

/// What the requests of one thread record (or of the threads that share the overflow
/// stripe): written only through the stripe's `StripeWriter`.
struct Stripe {
    /// By `request_cell(method, status class, cache outcome)`.
    requests: [AtomicU64; REQUEST_CELLS],
    /// By `UpstreamOutcome::index`.
    upstream: [AtomicU64; UPSTREAM_LABELS.len()],
    bytes_from_cache: AtomicU64,
    bytes_from_upstream: AtomicU64,
    request_latency: Histogram,
    upstream_latency: Histogram,
}

/// Stripes per recorder: the machine's parallelism plus two (the runtime's workers, its
/// `block_on` thread and one more each own a stripe), rounded up to a power of two, at most
/// 16 (as a pool's checkout shards).
fn stripe_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_add(2)
        .next_power_of_two()
        .min(16)
}

impl Default for Stripes {
    fn default() -> Self {
        Self(Striped::new(stripe_count(), || Stripe {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            upstream: std::array::from_fn(|_| AtomicU64::new(0)),
            bytes_from_cache: AtomicU64::new(0),
            bytes_from_upstream: AtomicU64::new(0),
            request_latency: Histogram::new(),
            upstream_latency: Histogram::new(),
        }))
    }
}

impl fmt::Debug for Stripes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The counters of every stripe help nobody; the totals say what is inside.
        let requests: u64 = self
            .0
            .iter()
            .flat_map(|stripe| stripe.requests.iter())
            .map(|count| count.load(Ordering::Relaxed))
            .sum();
        f.debug_struct("Stripes")
            .field("count", &self.0.stripe_count())
            .field("requests", &requests)
            .finish()
    }
}

impl GatewayStats {
    /// An empty recorder (allocates its stripes once).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request on the calling thread's stripe: a few adds (plain loads and
    /// stores where the thread owns the stripe, relaxed atomic adds on the shared overflow
    /// stripe), no lock, no allocation.
    #[inline]
    pub fn record(&self, exchange: &GatewayExchange<'_>) {
        let cell = request_cell(
            MethodLabel::of(exchange.method),
            StatusClass::of(exchange.status),
            exchange.cache,
        );
        self.inner.0.with_local(|stripe, writer| {
            writer.add(&stripe.requests[cell], 1);
            stripe
                .request_latency
                .record_duration_with(writer, exchange.latency);
            if exchange.body_bytes > 0 {
                let bytes = if exchange.cache.served_from_cache() {
                    &stripe.bytes_from_cache
                } else {
                    &stripe.bytes_from_upstream
                };
                writer.add(bytes, exchange.body_bytes);
            }
            if let Some((took, outcome)) = exchange.upstream {
                writer.add(&stripe.upstream[outcome.index()], 1);
                stripe.upstream_latency.record_duration_with(writer, took);
            }
        });
    }

    /// A snapshot of the cumulative figures (sums the stripes; allocates only the
    /// histograms' non-empty buckets).
    ///
    /// Requests recorded while the snapshot is taken may show in some figures and not yet
    /// in others (a count but not its latency); the next snapshot has them fully.
    #[must_use]
    pub fn metrics(&self) -> GatewayMetrics {
        let mut metrics = GatewayMetrics::default();
        let mut requests = [0_u64; REQUEST_CELLS];
        let mut upstream = [0_u64; UPSTREAM_LABELS.len()];
        let mut request_latency = HistogramSnapshot::default();
        let mut upstream_latency = HistogramSnapshot::default();
        for stripe in self.inner.0.iter() {
            for (total, count) in requests.iter_mut().zip(&stripe.requests) {
                *total += count.load(Ordering::Relaxed);
            }
            for (total, count) in upstream.iter_mut().zip(&stripe.upstream) {
                *total += count.load(Ordering::Relaxed);
            }
            metrics.bytes_from_cache += stripe.bytes_from_cache.load(Ordering::Relaxed);
            metrics.bytes_from_upstream += stripe.bytes_from_upstream.load(Ordering::Relaxed);
            request_latency.merge(&stripe.request_latency.snapshot());
            upstream_latency.merge(&stripe.upstream_latency.snapshot());
        }
        metrics.set_request_cells(requests);
        metrics.upstream = UpstreamCounts::from_cells(upstream);
        metrics.request_latency = request_latency;
        metrics.upstream_latency = upstream_latency;
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(
        method: &Method,
        status: u16,
        cache: CacheOutcome,
        upstream: Option<UpstreamOutcome>,
    ) -> GatewayExchange<'_> {
        GatewayExchange {
            method,
            status,
            cache,
            latency: Duration::from_millis(2),
            upstream: upstream.map(|outcome| (Duration::from_millis(1), outcome)),
            body_bytes: 100,
        }
    }

    #[test]
    fn clones_share_and_threads_add_up() {
        let stats = GatewayStats::new();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let stats = stats.clone();
                scope.spawn(move || {
                    for _ in 0..250 {
                        stats.record(&exchange(
                            &Method::GET,
                            200,
                            CacheOutcome::Miss,
                            Some(UpstreamOutcome::Answered(200)),
                        ));
                    }
                });
            }
        });
        let metrics = stats.metrics();
        assert_eq!(metrics.total_requests(), 1_000);
        assert_eq!(
            metrics.requests(MethodLabel::Get, StatusClass::Success, CacheOutcome::Miss),
            1_000
        );
        assert_eq!(metrics.upstream.answered_2xx, 1_000);
        assert_eq!(metrics.request_latency.count(), 1_000);
        assert_eq!(metrics.upstream_latency.count(), 1_000);
        assert_eq!(metrics.bytes_from_upstream, 100_000);
        assert!(format!("{stats:?}").contains("requests: 1000"));
    }

    #[test]
    fn bytes_go_by_source_and_only_exchanges_are_timed_upstream() {
        let stats = GatewayStats::default();
        let post = Method::POST;
        stats.record(&exchange(&Method::GET, 200, CacheOutcome::Hit, None));
        stats.record(&exchange(&Method::HEAD, 200, CacheOutcome::Stale, None));
        stats.record(&exchange(
            &post,
            502,
            CacheOutcome::Bypass,
            Some(UpstreamOutcome::Unreachable),
        ));
        let metrics = stats.metrics();
        assert_eq!(metrics.bytes_from_cache, 200);
        assert_eq!(metrics.bytes_from_upstream, 100);
        assert_eq!(metrics.request_latency.count(), 3);
        assert_eq!(metrics.upstream_latency.count(), 1);
        assert_eq!(metrics.upstream.unreachable, 1);
        assert_eq!(metrics.upstream.errors(), 1);
        assert_eq!(
            metrics.requests(
                MethodLabel::Post,
                StatusClass::ServerError,
                CacheOutcome::Bypass
            ),
            1
        );
    }
}
